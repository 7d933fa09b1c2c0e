"""Remote datasets through fsspec: a RAW dataset in an Azure container (Azurite on 127.0.0.1)
gets its LABELED_ twin written into the same container."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .azurite import Azurite, find_azurite
from .conftest import shared
from .test_softlabel import TURNS

CONTAINER = "datasets"
RAW = f"az://{CONTAINER}/copilot/vscodedata_demo_20260101"
TWIN = f"az://{CONTAINER}/copilot/LABELED_vscodedata_demo_20260101"


def _missing(what: str) -> None:
    if os.environ.get("SFTLABEL_REQUIRE_AZURITE") == "1":
        pytest.fail(f"{what} is required (SFTLABEL_REQUIRE_AZURITE=1)")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    try:
        import adlfs  # noqa: F401
    except ImportError:
        _missing("adlfs (pip install 'sftlabel[azure]')")
    binary = find_azurite()
    if binary is None:
        _missing("azurite (npm install azurite)")
    assert binary is not None
    with Azurite(binary) as server:
        yield server


@pytest.fixture
def blob(azurite: Azurite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """An adlfs filesystem on a fresh container holding the shared Copilot RAW dataset."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("SFTLABEL_CACHE_DIR", str(tmp_path / "cache"))
    fs = azurite.container(CONTAINER)
    source = shared("copilot_raw/vscodedata_demo_20260101")
    for path in source.rglob("*.json"):
        fs.put_file(str(path), f"{RAW.removeprefix('az://')}/{path.relative_to(source).as_posix()}")
    return fs


def remote_records(fs: Any) -> list[dict[str, Any]]:
    root = TWIN.removeprefix("az://")
    rows: list[dict[str, Any]] = []
    for name in sorted(fs.find(root)):
        if name.endswith(".jsonl"):
            rows += [json.loads(line) for line in fs.cat_file(name).decode().splitlines() if line]
    return rows


def test_raw_dataset_in_a_container_gets_its_labeled_twin(cli, llm_server, blob: Any) -> None:
    raw_root = RAW.removeprefix("az://")
    before = {name: blob.cat_file(name) for name in blob.find(raw_root)}
    common = ["--model", "smol", "--base-url", llm_server.base_url, "--no-rationales", "--no-cache"]
    first = cli("softlabel", RAW, *common, "--limit", "40")
    assert first.exit_code == 0, first.stderr
    assert TWIN in first.stderr
    twin = TWIN.removeprefix("az://")
    names = {n.removeprefix(twin + "/") for n in blob.find(twin)}
    assert "labeling_metadata.json" in names
    assert {n for n in names if n.endswith(".jsonl")} <= {
        n.removeprefix(raw_root + "/").removesuffix(".json") + ".jsonl"
        for n in before
        if n.endswith("_turns.json")
    }
    assert len(remote_records(blob)) == 40
    # an existing remote output is refused without --resume/--overwrite ...
    again = cli("softlabel", RAW, *common)
    assert again.exit_code == 2 and "already exists" in again.stderr
    # ... and finished with --resume: only the missing turns are sent
    llm_server.reset()
    resumed = cli("softlabel", RAW, *common, "--resume", "--limit", str(TURNS))
    assert resumed.exit_code == 0, resumed.stderr
    assert 0 < llm_server.stats()["chat_requests"] <= TURNS - 40  # identical turns sent once
    records = remote_records(blob)
    assert len(records) == TURNS
    assert len({(r["conversationId"], r["messageId"]) for r in records}) == TURNS
    meta = json.loads(blob.cat_file(f"{twin}/labeling_metadata.json"))
    assert meta["counts"]["turns"] == TURNS and len(meta["sessions"]) == 2
    assert meta["inputs"] == [RAW]  # the URL, not the local staging copy
    # the raw blobs are untouched
    assert {name: blob.cat_file(name) for name in blob.find(raw_root)} == before


def test_output_inside_the_raw_dataset_is_refused(cli, llm_server, blob: Any) -> None:
    result = cli(
        "softlabel", RAW, "--model", "smol", "--base-url", llm_server.base_url,
        "-o", f"{RAW}/labels",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "refusing to write into the raw dataset" in result.stderr


def test_a_missing_remote_dataset_is_a_clear_error(cli, llm_server, blob: Any) -> None:
    result = cli(
        "softlabel", f"az://{CONTAINER}/nope", "--model", "smol", "--base-url", llm_server.base_url
    )
    assert result.exit_code != 0
    assert "no such file or folder" in result.stderr


def test_label_reads_a_dataset_in_a_container(cli, llm_server, blob: Any, tmp_path: Path) -> None:
    """`label` gets remote inputs the same way as `softlabel`: staged, recorded as URLs."""
    run = tmp_path / "run"
    common = ["--model", "smol", "--base-url", llm_server.base_url, "--no-cache"]
    result = cli("label", RAW, "-o", run, *common, "--no-arbitration", "--limit", "5")
    assert result.exit_code in (0, 1), result.stderr  # the fake server's default answer is no JSON
    manifest = json.loads((run / "run.json").read_text("utf-8"))
    assert manifest["inputs"] == [RAW]
    done = sum(1 for _ in run.rglob("labeled.jsonl")) + sum(1 for _ in run.rglob("failures.jsonl"))
    parts = {p.parent.relative_to(run).parts[0] for p in run.rglob("labeled.jsonl")}
    assert done and parts <= {"train", "val", "test"}  # the parts mirror the remote folder
    rows = [
        json.loads(line)
        for path in run.rglob("*.jsonl")
        if path.name in ("labeled.jsonl", "failures.jsonl")
        for line in path.read_text("utf-8").splitlines()
    ]
    where = {(r.get("sample") or r)["location"]["path"] for r in rows}
    assert where and all(w.startswith(RAW + "/") for w in where)  # the URL, not the staging copy


def test_a_label_run_directory_in_a_container(
    cli, llm_server, blob: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-o az://…` writes the run directory into the container (a local copy, uploaded when the
    session ends); `--resume az://…` goes on from it, on this machine or on another one."""
    from .test_label_run import labeler_rules

    llm_server.configure(rules=labeler_rules())
    url = f"az://{CONTAINER}/runs/r1"
    common = ["--model", "gpt-4o-mini", "--base-url", llm_server.base_url, "--no-cache"]
    first = cli("label", RAW, "-o", url, *common, "--no-arbitration", "--limit", "4")
    assert first.exit_code == 0, first.stderr
    assert url in first.stderr
    root = url.removeprefix("az://")
    names = {n.removeprefix(root + "/") for n in blob.find(root)}
    assert {"run.json", "report.md", "dashboard.html"} <= names
    again = cli("label", RAW, "-o", url, *common)
    assert again.exit_code == 2 and "already exists" in again.stderr
    monkeypatch.setenv("SFTLABEL_CACHE_DIR", str(tmp_path / "another-machine"))  # no copy there
    resumed = cli("label", "--resume", url, *common, "--limit", "9")
    assert resumed.exit_code == 0, resumed.stderr
    manifest = json.loads(blob.cat_file(f"{root}/run.json"))
    assert manifest["inputs"] == [RAW] and len(manifest["sessions"]) == 2
    labeled = [
        json.loads(line)
        for name in blob.find(root)
        if name.endswith("/labeled.jsonl")
        for line in blob.cat_file(name).decode().splitlines()
    ]
    assert len(labeled) == len({r["id"] for r in labeled}) == 9
    missing = cli("label", "--resume", f"az://{CONTAINER}/runs/none", *common)
    assert missing.exit_code == 2 and "not a run directory" in missing.stderr
