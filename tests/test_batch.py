"""Batch runs (`label --batch`) over HTTP against the fake server's Files/Batches endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import jsonl
from .llm_server import FakeLLMServer
from .test_label_run import labeler_rules, records

FAST = ("--poll-interval", "0.05")


def batch_args(server: FakeLLMServer, run: Path, *extra: str | Path) -> list[str | Path]:
    return [
        "label",
        *extra,
        "--model",
        "gpt-4o-mini",
        "--base-url",
        server.base_url,
        "-o",
        run,
        "--cache",
        run.parent / "cache.sqlite",
        "--no-arbitration",
        "--batch",
        *FAST,
    ]


def labeled_ids(run: Path) -> list[str]:
    path = run / "labeled.jsonl"
    return [r["id"] for r in jsonl(path.read_text("utf-8"))] if path.exists() else []


def journal(run: Path) -> list[dict[str, Any]]:
    path = run / "batches" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_batch_run_labels_every_sample_in_two_rounds_and_fills_the_cache(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    llm_server.batch_plans({"validating": 0.05, "in_progress": 0.1, "finalizing": 0.1})
    data = records(20, tmp_path)
    run = tmp_path / "run"
    result = cli(*batch_args(llm_server, run, data))
    assert result.exit_code == 0, result.stderr
    assert sorted(labeled_ids(run)) == sorted(f"r{i}" for i in range(20))
    batches = llm_server.batches()
    assert batches["created"] == 2  # call 1, then call 2
    assert batches["lines_answered"] == 40
    assert llm_server.stats()["chat_requests"] == 0
    custom = batches["batches"][0]["custom_ids"]
    assert all(c.endswith("#1") for c in custom) and len(set(custom)) == 20
    # the following online run sends nothing
    online = cli(
        "label",
        "--model",
        "gpt-4o-mini",
        "--base-url",
        llm_server.base_url,
        "-o",
        tmp_path / "online",
        "--cache",
        tmp_path / "cache.sqlite",
        "--no-arbitration",
        data,
    )
    assert online.exit_code == 0, online.stderr
    assert llm_server.stats()["chat_requests"] == 0
