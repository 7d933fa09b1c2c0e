"""``--engine ray`` on a real local Ray cluster (127.0.0.1, 2 CPUs) that these tests start and stop.

Run with ``nox -s ray`` (the ray extra); skipped where Ray is not installed. The fake server
(tests/fake_llm_server.py) answers every labeling call.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sftlabel

from .conftest import shared, write_jsonl
from .llm_server import FakeLLMServer
from .test_label_run import CALL1, labeler_rules

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")

ENV = {"RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster with 2 CPUs; its address (for drivers in other processes)."""
    os.environ.update(ENV)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def server(llm_server: FakeLLMServer) -> FakeLLMServer:
    llm_server.configure(rules=labeler_rules())
    return llm_server


def data(path: Path, count: int) -> Path:
    return write_jsonl(
        path,
        (
            {
                "id": f"s{i}",
                "conversations": [
                    {"from": "human", "value": f"How do I reverse a list? (variant {i})"},
                    {"from": "gpt", "value": "Use `items[::-1]`."},
                ],
            }
            for i in range(count)
        ),
    )


def run(server: FakeLLMServer, inputs: list[Path] | None, output: Path, **options: Any) -> Any:
    return sftlabel.label(
        inputs,
        model="gpt-4o-mini",
        base_url=server.base_url,
        api_key="sk-test",
        output=None if "resume" in options else output,
        cache=options.pop("cache", output.parent / "cache.sqlite"),
        report=False,
        **options,
    )


def records(root: Path) -> list[dict[str, Any]]:
    """labeled.json without the per-request monitor (latencies, cache flags)."""
    rows = json.loads((root / "labeled.json").read_text("utf-8"))
    return [{k: v for k, v in row.items() if k != "labeling_monitor"} for row in rows]


def ids(root: Path) -> list[str]:
    lines = (root / "labeled.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line)["id"] for line in lines if line.strip()]


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_every_sample_exactly_once_and_the_same_records_as_a_local_run(
    cluster: str, server: FakeLLMServer, tmp_path: Path, shards: int
) -> None:
    source = shared("raw_samples.json")
    local = run(server, [source], tmp_path / "local")
    assert local.status == "completed"
    sharded = run(server, [source], tmp_path / "ray", engine="ray", shards=shards)
    assert sharded.status == "completed", sharded.message
    assert sharded.labeled == local.labeled == 215
    assert sorted(ids(tmp_path / "ray")) == sorted(ids(tmp_path / "local"))
    assert len(set(ids(tmp_path / "ray"))) == 215
    assert records(tmp_path / "ray") == records(tmp_path / "local")
    assert files(tmp_path / "ray") == files(tmp_path / "local")
    assert sharded.session.cache_hits == local.session.requests  # the local run's cache
    manifest = json.loads((tmp_path / "ray" / "run.json").read_text("utf-8"))
    assert manifest["shards"] == shards


def test_duplicates_across_conversations_are_labeled_once_as_in_a_local_run(
    cluster: str, server: FakeLLMServer, tmp_path: Path
) -> None:
    """40 samples, 10 contents: every duplicate meets its original in one shard, so the ray
    run sends as many requests as a local run (none paid twice) and records the same
    duplicate_of."""
    source = write_jsonl(
        tmp_path / "dups.jsonl",
        (
            {
                "id": f"d{i}",
                "conversations": [
                    {"from": "human", "value": f"How do I sort a dict by value? ({i % 10})"},
                    {"from": "gpt", "value": "Use `sorted(d.items(), key=lambda kv: kv[1])`."},
                ],
            }
            for i in range(40)
        ),
    )
    local = run(server, [source], tmp_path / "local", cache=tmp_path / "local.sqlite")
    sharded = run(
        server, [source], tmp_path / "ray", engine="ray", shards=4, cache=tmp_path / "ray.sqlite"
    )
    assert sharded.status == local.status == "completed", sharded.message
    assert sharded.labeled == local.labeled == 40
    assert sharded.session.requests == local.session.requests == 2 * 10  # two calls a content

    def originals(root: Path) -> dict[str, Any]:
        rows = json.loads((root / "labeled.json").read_text("utf-8"))
        return {r["id"]: r["labeling_monitor"].get("duplicate_of") for r in rows}

    assert originals(tmp_path / "ray") == originals(tmp_path / "local")
    assert sum(v is not None for v in originals(tmp_path / "local").values()) == 30


def test_a_run_over_a_directory_keeps_its_parts(
    cluster: str, server: FakeLLMServer, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    (folder / "b").mkdir(parents=True)
    data(folder / "a.jsonl", 30)
    data(folder / "b" / "c.jsonl", 20)
    local = run(server, [folder], tmp_path / "local")
    sharded = run(server, [folder], tmp_path / "ray", engine="ray", shards=3)
    assert sharded.labeled == local.labeled == 50
    assert files(tmp_path / "ray") == files(tmp_path / "local")
    for part in ("a", "b/c"):
        assert records(tmp_path / "ray" / part) == records(tmp_path / "local" / part)


def shard_workers() -> list[int]:
    """The processes running a shard (Ray names them after the task; Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"ray::run_shard" in cmdline:
            found.append(int(entry.name))
    return found


def shard_lines(root: Path, pattern: str = "labeled.jsonl") -> int:
    """Lines the shards have written so far into their ``pattern`` files (problems aside)."""
    return sum(
        p.read_bytes().count(b"\n")
        for p in (root / ".shards").rglob(pattern)
        if p.name != "problems.jsonl"
    )


def kill_driver_mid_run(command: list[str], root: Path, pattern: str = "labeled.jsonl") -> None:
    """Run the CLI ``command`` (a driver writing the run at ``root``) and kill -9 it once its
    shards have written 30 lines; then give Ray a second to end the dead driver's tasks."""
    driver = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **ENV}
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and driver.poll() is None:
            if (root / ".shards").exists() and shard_lines(root, pattern) >= 30:
                break
            time.sleep(0.05)
        assert driver.poll() is None, "the run ended before it could be killed"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    time.sleep(1.0)  # Ray ends the dead driver's tasks


def test_a_worker_killed_mid_shard_loses_and_duplicates_nothing(
    cluster: str, server: FakeLLMServer, tmp_path: Path
) -> None:
    server.configure(latency=0.05)
    source = data(tmp_path / "in.jsonl", 300)
    root = tmp_path / "ray"
    import threading

    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(
            run(server, [source], root, engine="ray", shards=2, concurrency=4)
        )
    )
    worker.start()
    killed = 0
    deadline = time.monotonic() + 60
    while not killed and time.monotonic() < deadline:
        if (root / ".shards").exists() and shard_lines(root) >= 20:
            for pid in shard_workers()[:1]:
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.05)
    worker.join(timeout=300)
    assert killed == 1
    assert result and result[0].status == "completed", result[0].message if result else None
    assert sorted(ids(root)) == sorted(f"s{i}" for i in range(300))


def test_kill_9_of_the_driver_then_resume_gives_every_sample_once(
    cluster: str, server: FakeLLMServer, tmp_path: Path
) -> None:
    server.configure(latency=0.05)
    source = data(tmp_path / "in.jsonl", 300)
    root = tmp_path / "ray"
    command = [
        sys.executable, "-m", "sftlabel", "label", str(source), "--model", "gpt-4o-mini",
        "--base-url", server.base_url, "--api-key", "sk-test", "-o", str(root),
        "--cache", str(tmp_path / "cache.sqlite"), "--engine", "ray", "--shards", "3",
        "--ray-address", cluster, "--concurrency", "4",
    ]  # fmt: skip
    kill_driver_mid_run(command, root)
    resumed = run(server, None, root, resume=root, engine="ray")
    assert resumed.status == "completed", resumed.message
    assert sorted(ids(root)) == sorted(f"s{i}" for i in range(300))
    assert not (root / ".shards").exists()


def test_the_run_wide_rpm_holds_with_two_workers(
    cluster: str, server: FakeLLMServer, tmp_path: Path
) -> None:
    rpm = 3000
    server.configure(bucket_rpm=rpm, latency=0.05)
    source = data(tmp_path / "in.jsonl", 300)
    result = run(
        server, [source], tmp_path / "ray", engine="ray", shards=2, concurrency=50, rpm=rpm
    )
    assert result.status == "completed", result.message
    assert result.labeled == 300
    stats = server.stats()
    requests = sum(stats["by_status"].values())
    assert stats["by_status"].get("429", 0) <= 0.02 * requests


def test_max_cost_holds_across_workers(cluster: str, server: FakeLLMServer, tmp_path: Path) -> None:
    source = data(tmp_path / "in.jsonl", 400)
    cap = 0.02
    result = run(
        server, [source], tmp_path / "ray", engine="ray", shards=2, max_cost=cap, concurrency=8
    )
    assert result.status == "budget"
    assert 0 < result.spent <= cap
    assert 0 < result.labeled < 400
    manifest = json.loads((tmp_path / "ray" / "run.json").read_text("utf-8"))
    assert manifest["sessions"][-1]["cost"] <= cap


def test_arbitrate_on_ray_gives_the_local_arbitration(
    cluster: str, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    unsure = {**CALL1, "confidence": {**CALL1["confidence"], "difficulty": 0.4}}
    llm_server.configure(rules=labeler_rules(call1=unsure))
    source = data(tmp_path / "in.jsonl", 40)
    labeled = run(llm_server, [source], tmp_path / "run", arbitration=False)
    assert labeled.labeled == 40
    common = {"base_url": llm_server.base_url, "cache": tmp_path / "cache.sqlite", "report": False}
    local = sftlabel.arbitrate(tmp_path / "run", output=tmp_path / "local", **common)
    sharded = sftlabel.arbitrate(
        tmp_path / "run", output=tmp_path / "ray", engine="ray", shards=2, **common
    )
    assert sharded.status == local.status == "completed", sharded.message
    assert records(tmp_path / "ray") == records(tmp_path / "local")
    assert [r["labels"]["difficulty"] for r in records(tmp_path / "ray")] == ["advanced"] * 40
    assert files(tmp_path / "ray") == files(tmp_path / "local")


def test_batch_and_ray_refuse_each_other(
    cluster: str, server: FakeLLMServer, tmp_path: Path
) -> None:
    """A batch run needs no workers; nothing is submitted or labeled."""
    from sftlabel.errors import UsageError

    source = data(tmp_path / "in.jsonl", 3)
    with pytest.raises(UsageError, match="--batch and --engine ray"):
        run(server, [source], tmp_path / "both", engine="ray", shards=2, batch=True)
    assert server.batches()["created"] == 0
    assert not (tmp_path / "both").exists()
