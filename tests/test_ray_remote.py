"""``--engine ray`` over data in a container (Azurite on 127.0.0.1), with workers that stand for
other machines: their own cache directory, so their own staging folder, and nothing of the
driver's disk but the run directory a local ``label`` writes. What they read and write of a
remote run goes through the store (sftlabel.storage.localize, sftlabel.runs._remote)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sftlabel
from sftlabel.storage import input_copy, output_copy

from .azurite import Azurite
from .llm_server import FakeLLMServer
from .test_ray import data, ids, kill_driver_mid_run
from .test_ray import records as label_records
from .test_ray_softlabel import MODEL, TOKENS, dataset, turns
from .test_ray_softlabel import records as soft_records
from .test_remote_storage import azurite  # noqa: F401  (a fixture)

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")

CONTAINER = "cluster"


@pytest.fixture(scope="module")
def node(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:  # noqa: F811
    """A local Ray cluster whose workers have their own cache directory (the "other machine",
    returned) and the store's credentials in their environment, as a cluster's nodes would."""
    folder = tmp_path_factory.mktemp("node-b")
    given = {
        "SFTLABEL_CACHE_DIR": str(folder),
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    saved = {name: os.environ.get(name) for name in given}
    os.environ.update(given)  # the raylet, and so every worker, starts with these
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        yield folder
    finally:
        ray.shutdown()


@pytest.fixture
def store(
    azurite: Azurite,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Any:
    """An empty container; the driver's own cache directory (not the workers')."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("SFTLABEL_CACHE_DIR", str(tmp_path / "driver-cache"))
    return azurite.container(CONTAINER)


def upload(fs: Any, folder: Path, url: str) -> str:
    for path in folder.rglob("*"):
        if path.is_file():
            fs.put_file(str(path), f"{url.removeprefix('az://')}/{path.relative_to(folder)}")
    return url


def download(fs: Any, url: str, target: Path) -> Path:
    root = url.removeprefix("az://")
    for name in fs.find(root):
        local = target / name[len(root) + 1 :]
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(name, str(local))
    return target


def soft(server: FakeLLMServer, source: str | Path, output: str | Path, **options: Any) -> Any:
    return sftlabel.softlabel(
        [source],
        model=MODEL,
        label_token_ids=TOKENS,
        base_url=server.base_url,
        api_key="sk-test",
        output=output,
        rationales=False,
        **options,
    )


def staged(node: Path, url: str, kind: str = "in") -> bool:
    """Whether the workers' machine holds its own copy of a remote input or output."""
    copy = (input_copy if kind == "in" else output_copy)(node / "staging", url)
    return copy.exists() and any(copy.iterdir())


def test_softlabel_of_a_container_with_workers_that_see_only_the_store(
    node: Path, store: Any, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    source = dataset(tmp_path / "raw" / "in")
    local = soft(llm_server, source, tmp_path / "local", cache=tmp_path / "local.sqlite")
    assert local.status == "completed", local.message
    sent = llm_server.stats()["chat_requests"]
    llm_server.reset()
    raw = upload(store, source, f"az://{CONTAINER}/raw/in")
    twin = f"az://{CONTAINER}/raw/LABELED_in"
    result = soft(llm_server, raw, twin, engine="ray", shards=2, cache=tmp_path / "ray.sqlite")
    assert result.status == "completed", result.message
    assert result.labeled == 100
    assert llm_server.stats()["chat_requests"] == sent  # no turn paid twice across shards
    out = download(store, twin, tmp_path / "fetched")
    assert soft_records(out) == soft_records(tmp_path / "local")
    assert len(set(turns(out))) == 100
    assert not (out / ".shards").exists()  # merged, and the store's copy mirrors the result
    assert staged(node, raw) and staged(node, twin, "out")  # the workers' own copies


def test_label_over_a_container_stages_the_inputs_on_each_machine(
    node: Path, store: Any, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    from .test_label_run import labeler_rules

    llm_server.configure(rules=labeler_rules())
    folder = tmp_path / "raw"
    folder.mkdir()
    data(folder / "a.jsonl", 30)
    url = upload(store, folder, f"az://{CONTAINER}/label") + "/a.jsonl"  # one file
    common: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "base_url": llm_server.base_url,
        "api_key": "sk-test",
        "report": False,
    }
    local = sftlabel.label([url], output=tmp_path / "local", cache=tmp_path / "l.sqlite", **common)
    sharded = sftlabel.label(
        [url],
        output=tmp_path / "ray",
        cache=tmp_path / "r.sqlite",
        engine="ray",
        shards=2,
        **common,
    )
    assert sharded.status == local.status == "completed", sharded.message
    assert sorted(ids(tmp_path / "ray")) == sorted(ids(tmp_path / "local"))
    assert label_records(tmp_path / "ray") == label_records(tmp_path / "local")
    assert staged(node, url)
    # the run directory in the container too: the workers' machine has its own copy of it
    run_url = f"az://{CONTAINER}/runs/ray"
    remote = sftlabel.label(
        [url], output=run_url, cache=tmp_path / "c.sqlite", engine="ray", shards=2, **common
    )
    assert remote.status == "completed", remote.message
    assert remote.path == run_url
    fetched = download(store, run_url, tmp_path / "fetched")
    assert label_records(fetched) == label_records(tmp_path / "local")
    assert not (fetched / ".shards").exists()
    assert staged(node, run_url, "out")


def test_kill_9_of_the_driver_then_resume_with_the_shards_on_the_workers_machine(
    node: Path, store: Any, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    """The driver dies while the shards are on the workers' machine only; the resume fetches
    the run again there, keeps those shards (further on than the store's) and finishes."""
    llm_server.configure(latency=0.05)
    source = dataset(tmp_path / "raw" / "in", a=90, c=60)
    raw = upload(store, source, f"az://{CONTAINER}/kill/in")
    twin = f"az://{CONTAINER}/kill/LABELED_in"
    command = [
        sys.executable, "-m", "sftlabel", "softlabel", raw, "-o", twin, "--model", MODEL,
        "--label-token-ids", TOKENS, "--no-rationales", "--base-url", llm_server.base_url,
        "--api-key", "sk-test", "--cache", str(tmp_path / "cache.sqlite"), "--engine", "ray",
        "--shards", "2", "--ray-address", ray.get_runtime_context().gcs_address,
        "--concurrency", "4",
    ]  # fmt: skip
    kill_driver_mid_run(command, output_copy(node / "staging", twin), "*.jsonl")
    resumed = soft(llm_server, raw, twin, resume=True, engine="ray")
    assert resumed.status == "completed", resumed.message
    out = download(store, twin, tmp_path / "fetched")
    done = turns(out)
    assert len(done) == len(set(done)) == 300
    assert not (out / ".shards").exists()
    distinct = 150 + 7  # every first turn, and 7 second turns
    # over both sessions: the turns written before the kill were not sent again (at most the
    # 2 x 4 in flight at the kill were)
    assert distinct <= llm_server.stats()["chat_requests"] <= distinct + 8


def test_a_run_stopped_by_its_budget_resumes_from_the_store_on_new_machines(
    node: Path, store: Any, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    """The first session stops at --max-cost; both machines' staging folders are then wiped
    (new machines): the resume goes on from the store's copy, every turn once, nothing paid
    twice."""
    source = dataset(tmp_path / "raw" / "in")
    whole = soft(llm_server, source, tmp_path / "local", cache=tmp_path / "local.sqlite")
    assert whole.labeled == 100
    sent = llm_server.stats()["chat_requests"]
    llm_server.reset()
    raw = upload(store, source, f"az://{CONTAINER}/budget/in")
    twin = f"az://{CONTAINER}/budget/LABELED_in"
    options: dict[str, Any] = {"engine": "ray", "shards": 2, "concurrency": 4}
    options["cache"] = tmp_path / "budget.sqlite"
    first = soft(llm_server, raw, twin, max_cost=0.0004, **options)
    assert first.status == "budget", first.message
    assert 0 < first.labeled < 100
    for machine in (node / "staging", tmp_path / "driver-cache" / "staging"):
        shutil.rmtree(machine)
    second = soft(llm_server, raw, twin, resume=True, max_cost=10.0, **options)
    assert second.status == "completed", second.message
    assert llm_server.stats()["chat_requests"] == sent  # over both sessions
    out = download(store, twin, tmp_path / "fetched")
    assert soft_records(out) == soft_records(tmp_path / "local")
    meta = json.loads((out / "labeling_metadata.json").read_text("utf-8"))
    assert len(meta["sessions"]) == 2
