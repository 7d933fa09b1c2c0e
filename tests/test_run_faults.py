"""Whole runs (`sftlabel label` / `softlabel`) against a server that behaves like real providers:
dead from the start, a content filter, an outage, a 429 storm, identical requests in flight
(the CLI-level checks of issue "providers as they really behave")."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from .conftest import jsonl, shared, write_jsonl
from .llm_server import FakeLLMServer
from .test_label_run import labeler_rules


def ids(path: Path) -> list[str]:
    return [r["id"] for r in jsonl(path.read_text("utf-8"))] if path.exists() else []


def samples(tmp_path: Path, count: int) -> Path:
    return write_jsonl(
        tmp_path / "data.jsonl",
        [
            {
                "id": f"s{i}",
                "conversations": [
                    {"from": "human", "value": f"How do I sort a dict by value? (variant {i})"},
                    {"from": "gpt", "value": "Use sorted(d.items(), key=lambda kv: kv[1])."},
                ],
            }
            for i in range(count)
        ],
    )


def label(
    cli: Callable[..., Result], base_url: str, run: Path, data: Path, *extra: str | Path
) -> Result:
    return cli(
        "label", data, "-o", run, "--model", "gpt-4o-mini", "--base-url", base_url,
        "--no-cache", "--no-arbitration", "--json-mode", "off", *extra,
    )  # fmt: skip


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_endpoint_stops_the_run_and_fails_no_sample(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    url = f"http://user:sk-secret-in-url-0001@127.0.0.1:{closed_port()}/v1"
    result = label(cli, url, run, samples(tmp_path, 20))
    assert result.exit_code == 3, result.stderr
    assert "connection refused" in result.stderr.lower()
    assert "sk-secret-in-url-0001" not in result.stderr
    assert ids(run / "failures.jsonl") == [] and ids(run / "labeled.jsonl") == []
    manifest = (run / "run.json").read_text("utf-8")
    assert "sk-secret-in-url-0001" not in manifest  # the URL is recorded without credentials
    assert json.loads(manifest)["sessions"][-1]["status"] == "aborted"


def test_a_content_filter_fails_only_its_samples(cli, llm_server, tmp_path: Path) -> None:
    filtered = {
        "status": 400,
        "content": "The response was filtered due to the prompt triggering content policy",
        "code": "content_filter",
    }
    rules = [{"match": f"(variant {i})", "response": filtered} for i in range(6)]
    llm_server.configure(rules=[*rules, *labeler_rules()])
    run = tmp_path / "run"
    result = label(cli, llm_server.base_url, run, samples(tmp_path, 60), "--concurrency", "10")
    assert result.exit_code == 1, result.stderr
    failures = jsonl((run / "failures.jsonl").read_text("utf-8"))
    assert sorted(f["id"] for f in failures) == [f"s{i}" for i in range(6)]
    assert all("content policy" in f["error"] for f in failures)
    assert len(ids(run / "labeled.jsonl")) == 54


def test_an_outage_costs_time_not_samples(tmp_path: Path, cli) -> None:
    with FakeLLMServer(latency=0.05) as server:
        server.configure(rules=labeler_rules())
        server.outage(4.0, mode="refuse", after=1.0)
        run = tmp_path / "run"
        result = label(cli, server.base_url, run, samples(tmp_path, 150), "--concurrency", "20")
        assert result.exit_code == 0, result.stderr
        labeled = ids(run / "labeled.jsonl")
        assert sorted(labeled) == sorted(f"s{i}" for i in range(150))  # each exactly once
        assert ids(run / "failures.jsonl") == []


def test_a_429_storm_costs_time_not_samples(tmp_path: Path, cli) -> None:
    with FakeLLMServer(latency=0.05) as server:
        server.configure(rules=labeler_rules(), storm={"every": 4, "duration": 2, "retry_after": 1})
        run = tmp_path / "run"
        result = label(cli, server.base_url, run, samples(tmp_path, 150), "--concurrency", "20")
        assert result.exit_code == 0, result.stderr
        assert sorted(ids(run / "labeled.jsonl")) == sorted(f"s{i}" for i in range(150))
        stats = server.stats()
        assert stats["by_status"].get("429", 0) > 0  # the storm did happen
        assert stats["duplicates_in_flight"] == 0


def test_softlabel_sends_one_request_per_distinct_turn_in_flight(
    cli, llm_server, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(shared("copilot_raw/vscodedata_demo_20260101"), raw)
    result = cli(
        "softlabel", raw, "--model", "gpt-4o-mini", "--base-url", llm_server.base_url,
        "--no-rationales", "--no-cache", "--concurrency", "50",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    stats = llm_server.stats()
    assert stats["duplicates_in_flight"] == 0
    assert stats["chat_requests"] < 158  # identical turns in flight together are sent once
