"""``sftlabel softlabel --engine ray`` on a real local Ray cluster (127.0.0.1, 2 CPUs).

Run with ``nox -s ray`` (the ray extra); skipped where Ray is not installed. The fake server
(tests/fake_llm_server.py) answers every classification with logprobs. The inputs repeat user
turns across conversations, so duplicates (labeled once, ``monitor.duplicate_of``) are part of
every comparison with a local run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import sftlabel
from sftlabel.errors import UsageError

from .conftest import write_jsonl
from .llm_server import FakeLLMServer
from .test_ray import cluster, kill_driver_mid_run  # noqa: F401  (cluster: a fixture)

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")

MODEL = "gpt-4o-mini"
TOKENS = "0=15,1=16"  # given: no tokenizer look-up


def conversations(path: Path, count: int, start: int = 0) -> Path:
    """``count`` conversations of two user turns; the second repeats across conversations."""
    return write_jsonl(
        path,
        (
            {
                "id": f"c{i}",
                "conversations": [
                    {"from": "human", "value": f"How do I reverse a list? (variant {i})"},
                    {"from": "gpt", "value": "Use `items[::-1]`."},
                    {"from": "human", "value": f"Thanks! ({i % 7})"},
                    {"from": "gpt", "value": "You're welcome."},
                ],
            }
            for i in range(start, start + count)
        ),
    )


def dataset(folder: Path, a: int = 30, c: int = 20) -> Path:
    """A folder of two files (two parts of the output): ``2 * (a + c)`` turns."""
    (folder / "b").mkdir(parents=True)
    conversations(folder / "a.jsonl", a)
    conversations(folder / "b" / "c.jsonl", c, start=a)
    return folder


def run(server: FakeLLMServer, source: Path, output: Path, **options: Any) -> Any:
    return sftlabel.softlabel(
        [source],
        model=MODEL,
        label_token_ids=TOKENS,
        base_url=server.base_url,
        api_key="sk-test",
        output=output,
        cache=output.parent / "cache.sqlite",
        rationales=False,
        **options,
    )


def records(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Every output file's records, without the per-request latency."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(root.rglob("*.jsonl")):
        relative = path.relative_to(root).as_posix()
        if relative == "problems.jsonl" or relative.startswith(".shards"):
            continue
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
        for row in rows:
            row.get("monitor", {}).pop("latency", None)
        found[relative] = rows
    return found


def turns(root: Path) -> list[tuple[str, str, int]]:
    return [
        (r["conversationId"], r["messageId"], r["turnIndex"])
        for rows in records(root).values()
        for r in rows
    ]


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def metadata(root: Path) -> dict[str, Any]:
    meta = json.loads((root / "labeling_metadata.json").read_text("utf-8"))
    return {k: v for k, v in meta.items() if k not in ("sessions", "elapsed_seconds")}


@pytest.fixture(scope="module")
def local(llm_server_session: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local run that answered from the cache (a first local run filled it)."""
    llm_server_session.reset()
    base = tmp_path_factory.mktemp("soft")
    source = dataset(base / "in")
    assert run(llm_server_session, source, base / "first").status == "completed"
    result = run(llm_server_session, source, base / "local")
    assert result.status == "completed", result.message
    assert result.labeled == 100 and result.duplicates > 40
    return base


@pytest.mark.parametrize("shards", [1, 2])
def test_the_same_output_as_a_local_run(
    cluster: str,  # noqa: F811
    llm_server: FakeLLMServer,
    local: Path,
    shards: int,
) -> None:
    source = local / "in"
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    around = set(local.iterdir())
    out = local / f"ray{shards}"
    result = run(llm_server, source, out, engine="ray", shards=shards)
    assert result.status == "completed", result.message
    expected = local / "local"
    assert result.labeled == 100 and len(set(turns(out))) == 100
    assert records(out) == records(expected)
    assert files(out) == files(expected)
    assert metadata(out) == metadata(expected)
    assert llm_server.stats()["chat_requests"] == 0  # every answer from the local run's cache
    assert json.loads((out / "run.json").read_text("utf-8"))["shards"] == shards
    # the input untouched; nothing written beside the output but the cache's answers
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before
    new = {p.name for p in set(local.iterdir()) - around if "sqlite-" not in p.name}
    assert new == {out.name}  # the shards' cache files were merged and removed


def test_kill_9_of_the_driver_then_resume_gives_every_turn_once(
    cluster: str,  # noqa: F811
    llm_server: FakeLLMServer,
    tmp_path: Path,
) -> None:
    llm_server.configure(latency=0.05)
    source = dataset(tmp_path / "in", a=90, c=60)
    root = tmp_path / "LABELED_in"
    command = [
        sys.executable, "-m", "sftlabel", "softlabel", str(source), "--model", MODEL,
        "--label-token-ids", TOKENS, "--no-rationales", "--base-url", llm_server.base_url,
        "--api-key", "sk-test", "--cache", str(tmp_path / "cache.sqlite"),
        "--engine", "ray", "--shards", "3", "--ray-address", cluster, "--concurrency", "4",
    ]  # fmt: skip
    kill_driver_mid_run(command, root, "*.jsonl")
    with pytest.raises(UsageError, match="split in 3 shards"):
        run(llm_server, source, root, resume=True, engine="ray", shards=2)
    resumed = run(llm_server, source, root, resume=True, engine="ray")
    assert resumed.status == "completed", resumed.message
    done = turns(root)
    assert len(done) == len(set(done)) == 300
    assert not (root / ".shards").exists()
    meta = json.loads((root / "labeling_metadata.json").read_text("utf-8"))
    assert meta["counts"]["turns"] == meta["counts"]["labeled"] == 300


def test_the_rpm_limit_and_the_budget_hold_across_workers(
    cluster: str,  # noqa: F811
    llm_server: FakeLLMServer,
    tmp_path: Path,
) -> None:
    rpm = 3000
    llm_server.configure(bucket_rpm=rpm, latency=0.05)
    source = dataset(tmp_path / "in", a=60, c=40)  # 200 turns, 7 repeated
    result = run(
        llm_server, source, tmp_path / "rpm", engine="ray", shards=2, concurrency=40, rpm=rpm
    )
    assert result.status == "completed", result.message
    assert result.labeled == 200
    stats = llm_server.stats()
    requests = sum(stats["by_status"].values())
    assert stats["by_status"].get("429", 0) <= 0.02 * requests
    llm_server.reset()
    cap = 0.0005
    out = tmp_path / "fresh" / "cap"  # its own cache: every answer is paid for
    capped = run(llm_server, source, out, engine="ray", shards=2, concurrency=8, max_cost=cap)
    assert capped.status == "budget", capped.message
    assert 0 < capped.spent <= cap
    assert 0 < capped.labeled < 200
    meta = json.loads((out / "labeling_metadata.json").read_text("utf-8"))
    assert meta["cost_usd"] <= cap


def test_batch_and_ray_refuse_each_other(
    cluster: str,  # noqa: F811
    llm_server: FakeLLMServer,
    tmp_path: Path,
) -> None:
    """A batch run needs no workers; nothing is submitted or labeled."""
    source = conversations(tmp_path / "in.jsonl", 3)
    with pytest.raises(UsageError, match="--batch and --engine ray"):
        run(llm_server, source, tmp_path / "both", engine="ray", shards=2, batch=True)
    assert llm_server.batches()["created"] == 0
    assert not (tmp_path / "both").exists()
