"""The four commands users were promised, run as written against the real model (issue 14):

    pipx install sftlabel                      (here: the wheel built from this tree)
    sftlabel label ./data --model deepseek-v3.2
    sftlabel softlabel --no-rationales
    sftlabel compare runA runB

The installed CLI runs in its own process, from a working directory that holds the data and an
``sftlabel.toml``, with the old pipeline's ``LITELLM_BASE``/``LITELLM_KEY`` and a private HOME:
nothing is written outside that directory. The config file carries what a user sets once for
this machine (a long timeout and no arbitration: SmolLM2-135M reads a ~7K-token labeling prompt
in minutes on a busy CPU) and the soft-label job: the dataset, the model, the endpoint.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

import pytest

from .conftest import ROOT, jsonl, shared
from .model_server import ModelServer
from .test_e2e import failing_on_exit, server  # noqa: F401  (the module's llama.cpp server)

pytestmark = pytest.mark.e2e

DATASET = "vscodedata_demo_20260101"
KEY = "sk-promise-test-0123456789abcdef"  # must never appear in any output


def test_the_four_promised_commands_run_as_written(server: ModelServer, tmp_path: Path) -> None:  # noqa: F811
    def guarded() -> AbstractContextManager[None]:
        """The server's death fails the test at once, with its status and log."""
        stack = ExitStack()
        stack.enter_context(failing_on_exit())
        stack.enter_context(server.watching())
        return stack

    promise(server.base_url, tmp_path, guarded)


def promise(
    base_url: str, tmp_path: Path, guarded: Callable[[], AbstractContextManager[object]]
) -> None:
    """The four commands against the endpoint at ``base_url`` (each inside ``guarded()``)."""
    if importlib.util.find_spec("pipx") is None:
        pytest.skip("pipx is not installed (nox -s e2e installs it)")
    work = tmp_path / "work"
    work.mkdir()
    env = private_env(tmp_path, base_url)

    # pipx install: the wheel of this tree, alone, into pipx's own venv
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)],
        check=True, env=env,
    )  # fmt: skip
    (wheel,) = dist.glob("sftlabel-*.whl")
    subprocess.run([sys.executable, "-m", "pipx", "install", str(wheel)], check=True, env=env)
    sftlabel = Path(env["PIPX_BIN_DIR"]) / "sftlabel"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        with guarded():
            done = subprocess.run(
                [str(sftlabel), *args],
                check=False, cwd=work, env=env, capture_output=True, text=True,
            )  # fmt: skip
        assert KEY not in done.stdout + done.stderr
        return done

    data = work / "data"
    data.mkdir()
    raw = json.loads(shared("raw_samples.json").read_text("utf-8"))
    chosen = [raw[2], raw[55]]  # the two shortest records, one assistant reply each
    (data / "sharegpt.json").write_text(json.dumps(chosen, ensure_ascii=False), "utf-8")
    copy = copilot_copy(work / DATASET)
    before = tree_digest(copy)
    (work / "sftlabel.toml").write_text(
        f"""[label]
timeout = 1800
json_mode = "on"
concurrency = 2
arbitration = false

[softlabel]
input = "{DATASET}"
model = "smollm2"
base_url = "{base_url}"
timeout = 1800
concurrency = 2
""",
        "utf-8",
    )

    # sftlabel label ./data --model deepseek-v3.2, twice: the second run is answered from cache
    runs = []
    for name in ("runA", "runB"):
        labeled = run("label", "./data", "--model", "deepseek-v3.2")
        assert labeled.returncode in (0, 1), labeled.stderr  # a 135M model may fail a sample
        made = [p for p in (work / "runs").iterdir() if p.name.endswith("_deepseek-v3.2")]
        new = [p for p in made if p.name not in {r.name for r in runs}]
        assert len(new) == 1, made
        runs.append(new[0])
        ok = [r for p in new[0].rglob("labeled.jsonl") for r in jsonl(p.read_text("utf-8"))]
        failed = [r for p in new[0].rglob("failures.jsonl") for r in jsonl(p.read_text("utf-8"))]
        assert len(ok) + len(failed) == 2, labeled.stderr  # every sample accounted for
        assert all(r["reason"] and r["error"] for r in failed)
        assert ok, f"no sample labeled: {[r['error'] for r in failed]}"
        manifest = json.loads((new[0] / "run.json").read_text("utf-8"))
        assert manifest["options"]["model"] == "deepseek-v3.2"
        shutil.move(new[0], work / name)
    runs = [work / "runA", work / "runB"]

    # sftlabel compare runA runB
    compared = run("compare", "runA", "runB")
    assert compared.returncode == 0, compared.stderr
    assert "runA" in compared.stdout + compared.stderr
    figures = run("compare", "runA", "runB", "--json")
    (pair,) = json.loads(figures.stdout)["comparisons"]
    assert pair["paired"] >= 1
    assert pair["all_dimensions_exact"] == 1.0  # runB's answers came from runA's cache

    # sftlabel softlabel --no-rationales: the configured dataset, into LABELED_ beside it
    soft = run("softlabel", "--no-rationales")
    assert soft.returncode in (0, 1), soft.stderr
    out = work / f"LABELED_{DATASET}"
    records = [r for p in sorted(out.glob("*/*.jsonl")) for r in jsonl(p.read_text("utf-8"))]
    turns = sum(
        len(c["turnsArray"]) for p in copy.rglob("*_turns.json") for c in json.loads(p.read_text())
    )
    assert len(records) == turns  # every user turn: labeled, or failed with its reason
    labeled_turns = [r for r in records if "error" not in r]
    assert labeled_turns, [r.get("reason") for r in records]
    for record in labeled_turns:
        assert 0.0 <= record["soft_label"] <= 1.0 and record["rationale"] is None
    assert tree_digest(copy) == before  # the raw dataset is never touched

    # the outputs are where they were promised, and the key is in none of them
    made = {p.name for p in work.iterdir()}
    assert made == {"data", DATASET, "sftlabel.toml", "runs", "runA", "runB", out.name}
    for text in (p.read_text("utf-8", "replace") for p in work.rglob("*") if p.is_file()):
        assert KEY not in text


def private_env(tmp_path: Path, base_url: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    # pip's and the proxy's settings stay (a CI machine's index may be set there); no
    # sftlabel, endpoint or Azure setting of this machine leaks into the run
    ours = ("SFTLABEL_", "LITELLM_", "OPENAI_", "AZURE_", "PIPX_", "VIRTUAL_ENV")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return {
        **keep,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "PIPX_HOME": str(home / "pipx"),
        "PIPX_BIN_DIR": str(home / "bin"),
        "LITELLM_BASE": base_url,  # the old pipeline's environment
        "LITELLM_KEY": KEY,
        "NO_COLOR": "1",
    }


def copilot_copy(target: Path) -> Path:
    """A copy of the shared Copilot dataset trimmed to its first short test conversation (the
    whole set is 158 turns; a CPU model answers a few a minute), in the dataset's layout:
    ``metadata.json`` and ``<split>/<bucket>.json``."""
    source = shared(f"copilot_raw/{DATASET}")
    shutil.copytree(source, target, copy_function=shutil.copyfile)
    for path in target.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)  # ../shared is read-only
    for bucket in target.glob("*/*_turns.json"):
        conversations = json.loads(bucket.read_text("utf-8"))
        if bucket.parent.name == "test" and bucket.name.startswith("short"):
            bucket.write_text(json.dumps(conversations[:1], ensure_ascii=False), "utf-8")
        else:
            bucket.unlink()
    return target


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
