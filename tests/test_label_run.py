"""`sftlabel label` end to end against a real HTTP server on 127.0.0.1 (fake_llm_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import jsonl, shared, write_jsonl
from .llm_server import FakeLLMServer

KEY = "sk-run-secret-4242424242"
CALL1 = {
    "intent": "learn",
    "language": ["python"],
    "domain": [],
    "task": ["code-explanation"],
    "difficulty": "beginner",
    "confidence": {"intent": 0.9, "language": 0.95, "domain": 0.8, "task": 0.9, "difficulty": 0.8},
    "unmapped": [],
}
CALL2 = {
    "concept": ["data-structures"],
    "agentic": [],
    "constraint": [],
    "context": "snippet",
    "confidence": {"concept": 0.8, "agentic": 0.95, "constraint": 0.9, "context": 0.85},
    "unmapped": [],
}


def answer(payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"content": json.dumps(payload), **extra}


def labeler_rules(
    call1: dict[str, Any] | None = None, call2: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Server rules answering call 2, arbitration and call 1 (most specific first)."""
    return [
        {"match": "first labeling pass", "response": answer(call2 or CALL2)},
        {
            "match": "look again",
            "response": answer({"difficulty": "advanced", "confidence": {"difficulty": 0.9}}),
        },
        {"match": "Label the last assistant reply", "response": answer(call1 or CALL1)},
    ]


def records(count: int, tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "data.jsonl",
        [
            {
                "id": f"r{i}",
                "conversations": [
                    {"from": "human", "value": f"What does list.append do? ({i})"},
                    {"from": "gpt", "value": "It adds one item to the end of the list."},
                ],
            }
            for i in range(count)
        ],
    )


def label_args(server: FakeLLMServer, run: Path, *extra: str | Path) -> list[str | Path]:
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
    ]


def ids(path: Path) -> list[str]:
    return [r["id"] for r in jsonl(path.read_text("utf-8"))] if path.exists() else []


def test_labels_the_shared_pangu_samples_into_a_complete_run_directory(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, shared("pangu_test_samples.jsonl")))
    assert result.exit_code == 0, result.stderr
    for name in (
        "labeled.jsonl",
        "labeled.json",
        "stats.json",
        "monitor.jsonl",
        "failures.jsonl",
        "run.json",
        "dashboard.html",
        "report.md",
    ):
        assert (run / name).exists(), name
    ordered = json.loads((run / "labeled.json").read_text("utf-8"))
    assert [r["index"] for r in ordered] == list(range(18))
    assert ordered[0]["id"] == "pangu-001"
    first = ordered[0]
    assert first["labels"]["intent"] == "learn" and first["labels"]["context"] == "snippet"
    assert first["labeling_monitor"]["llm_calls"] == 2
    assert first["messages"][0]["content"] == "用 Python 写一个快速排序算法"
    stats = json.loads((run / "stats.json").read_text("utf-8"))
    assert (stats["total_samples"], stats["success"], stats["failed"]) == (18, 18, 0)
    assert stats["total_llm_calls"] == 36
    assert stats["tag_distributions"]["intent"] == {"learn": 18}
    assert stats["requests"] == 36
    assert llm_server.stats()["chat_requests"] == 36
    page = (run / "dashboard.html").read_text("utf-8")
    assert "<script src=" not in page and "Plotly.newPlot" in page  # offline: plotly.js inline
    assert "18 samples labeled, 0 failed" in result.stderr


def test_running_the_same_command_again_sends_no_request(cli, llm_server, tmp_path: Path) -> None:
    llm_server.configure(rules=labeler_rules())
    data = records(10, tmp_path)
    assert cli(*label_args(llm_server, tmp_path / "a", data)).exit_code == 0
    before = llm_server.stats()["chat_requests"]
    again = cli(*label_args(llm_server, tmp_path / "b", data))
    assert again.exit_code == 0
    assert llm_server.stats()["chat_requests"] == before
    assert "0 requests (20 from cache)" in again.stderr
    assert ids(tmp_path / "b" / "labeled.jsonl") != []


def test_faults_are_retried_and_every_sample_ends_labeled_or_failed(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    llm_server.script(
        {"status": 429, "headers": {"Retry-After": "0"}},
        {"status": 503},
        {"body": '{"choices": [{"message": {"content": "cut'},
        {"close": True},
        {"status": 500},
    )
    data = records(8, tmp_path)
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, data, "--concurrency", "2", "--timeout", "5"))
    assert result.exit_code == 0, result.stderr
    assert sorted(ids(run / "labeled.jsonl")) == sorted(f"r{i}" for i in range(8))
    stats = json.loads((run / "stats.json").read_text("utf-8"))
    assert stats["retries"] >= 5 and stats["rate_limited_429"] >= 1


def test_a_rejected_sample_fails_alone_with_the_server_message(
    cli, llm_server, tmp_path: Path
) -> None:
    rules = labeler_rules()
    rules.insert(
        0,
        {
            "match": "poison",
            "response": {
                "status": 400,
                "body": json.dumps({"error": {"message": "context length exceeded"}}),
            },
        },
    )
    llm_server.configure(rules=rules)
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "id": "good",
                "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}],
            },
            {
                "id": "bad",
                "conversations": [
                    {"from": "human", "value": "poison"},
                    {"from": "gpt", "value": "x"},
                ],
            },
        ],
    )
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, data, "--json-mode", "off"))
    assert result.exit_code == 1
    [failure] = jsonl((run / "failures.jsonl").read_text("utf-8"))
    assert (failure["id"], failure["reason"]) == ("bad", "rejected")
    assert "context length exceeded" in failure["error"]
    assert failure["sample"]["messages"][0]["content"] == "poison"
    assert ids(run / "labeled.jsonl") == ["good"]
    assert json.loads((run / "stats.json").read_text("utf-8"))["failures_by_reason"] == {
        "rejected": 1
    }


def test_non_json_answers_fail_the_sample_after_repair_turns(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(default_content="I would say this is about Python.")
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, records(1, tmp_path)))
    assert result.exit_code == 1
    [failure] = jsonl((run / "failures.jsonl").read_text("utf-8"))
    assert failure["reason"] == "no-json"
    assert llm_server.stats()["chat_requests"] == 3


def test_refused_credentials_abort_the_run_and_never_show_the_key(
    cli, llm_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm_server.configure(rules=labeler_rules(), require_api_key="the-right-key-000")
    monkeypatch.setenv("SFTLABEL_API_KEY", KEY)
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, records(5, tmp_path)))
    assert result.exit_code == 3
    assert "refused the credentials (401)" in result.stderr
    assert "the key sent comes from SFTLABEL_API_KEY" in result.stderr  # how to fix it
    assert KEY not in result.output
    for path in run.iterdir():
        assert KEY not in path.read_text("utf-8", errors="replace"), path.name


def test_max_cost_stops_cleanly_and_resume_finishes(cli, llm_server, tmp_path: Path) -> None:
    llm_server.configure(rules=labeler_rules())
    data = records(12, tmp_path)
    run = tmp_path / "run"
    stopped = cli(*label_args(llm_server, run, data, "--concurrency", "1", "--max-cost", "0.004"))
    assert stopped.exit_code == 3
    assert "--max-cost" in stopped.stderr
    partial = ids(run / "labeled.jsonl")
    assert 1 <= len(partial) < 12
    before = llm_server.stats()["chat_requests"]
    resume = ("label", "--resume", run, "--cache", tmp_path / "cache.sqlite")
    # the cap is the run's, over every session: a resume without a new cap spends nothing
    again = cli(*resume)
    assert again.exit_code == 3 and "--max-cost" in again.stderr
    assert llm_server.stats()["chat_requests"] == before
    # a larger cap (and no --base-url: the run recorded its endpoint) finishes the run
    resumed = cli(*resume, "--max-cost", "10")
    assert resumed.exit_code == 0, resumed.stderr
    assert sorted(ids(run / "labeled.jsonl")) == sorted(f"r{i}" for i in range(12))
    manifest = json.loads((run / "run.json").read_text("utf-8"))
    assert [s["status"] for s in manifest["sessions"]] == ["budget", "budget", "completed"]
    assert manifest["rate"]["max_cost"] == 10
    stats = json.loads((run / "stats.json").read_text("utf-8"))
    spent = sum(s["cost"] for s in manifest["sessions"])
    assert stats["cost_usd"] == round(spent, 6)
    assert f"spent ${spent:,.4f}" in resumed.stderr


def test_resume_after_kill_9_labels_every_sample_exactly_once(tmp_path: Path) -> None:
    with FakeLLMServer(latency=0.15) as server:
        server.configure(rules=labeler_rules())
        data = records(60, tmp_path)
        run = tmp_path / "run"
        command = [
            sys.executable,
            "-m",
            "sftlabel",
            *map(str, label_args(server, run, data, "--concurrency", "4")),
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(ids(run / "labeled.jsonl")) < 12:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        done_before = len(set(ids(run / "labeled.jsonl")))
        assert 0 < done_before < 60
        sent_before = server.stats()["chat_requests"]
        resume = [
            sys.executable,
            "-m",
            "sftlabel",
            "label",
            "--resume",
            str(run),
            "--base-url",
            server.base_url,
            "--cache",
            str(tmp_path / "cache.sqlite"),
        ]
        finished = subprocess.run(resume, capture_output=True, text=True, check=False, timeout=120)
        assert finished.returncode == 0, finished.stderr
        labeled = ids(run / "labeled.jsonl")
        assert sorted(labeled) == sorted(f"r{i}" for i in range(60))  # each exactly once
        remaining_calls = (60 - done_before) * 2
        resent = server.stats()["chat_requests"] - sent_before
        assert resent <= remaining_calls  # in-flight answers of the killed run came from the cache
        json.loads((run / "labeled.json").read_text("utf-8"))  # the array was rewritten whole


def test_dry_run_sends_nothing(cli, llm_server, tmp_path: Path) -> None:
    result = cli("label", records(4, tmp_path), "--model", "gpt-4o-mini", "--dry-run")
    assert result.exit_code == 0
    assert "samples" in result.stdout and "nothing was sent" in result.stdout
    assert llm_server.stats()["chat_requests"] == 0


def test_usage_errors(cli, tmp_path: Path) -> None:
    data = records(1, tmp_path)
    no_model = cli("label", data, "--base-url", "http://127.0.0.1:9/v1")
    assert no_model.exit_code == 2 and "no model given" in no_model.stderr
    no_endpoint = cli("label", data, "--model", "m", "-o", tmp_path / "r")
    assert no_endpoint.exit_code == 2 and "no endpoint configured" in no_endpoint.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    taken = cli(
        "label",
        data,
        "--model",
        "m",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "-o",
        tmp_path / "full",
    )
    assert taken.exit_code == 2 and "already exists and is not empty" in taken.stderr
    not_a_run = cli("label", "--resume", tmp_path)
    assert not_a_run.exit_code == 2 and "not a run directory" in not_a_run.stderr


def test_a_wrong_model_name_stops_the_run_without_failing_the_samples(
    cli, llm_server, tmp_path: Path
) -> None:
    missing = {
        "error": {"message": "The model `gpt-4o-minii` does not exist", "code": "model_not_found"}
    }
    llm_server.configure(
        rules=[{"match": "gpt-4o-minii", "response": {"status": 404, "body": json.dumps(missing)}}]
    )
    run = tmp_path / "run"
    args = label_args(
        llm_server, run, records(20, tmp_path), "--concurrency", "2", "--json-mode", "off"
    )
    args[args.index("gpt-4o-mini")] = "gpt-4o-minii"
    result = cli(*args)
    assert result.exit_code == 3
    assert "the first 5 samples were all rejected" in result.stderr
    assert "does not exist" in result.stderr
    assert ids(run / "failures.jsonl") == [] and ids(run / "labeled.jsonl") == []
    assert llm_server.stats()["chat_requests"] <= 7  # stopped at once, not 20 samples later


def test_arbitrate_re_asks_low_confidence_dimensions_into_a_new_run(
    cli, llm_server, tmp_path: Path
) -> None:
    unsure = {**CALL1, "confidence": {**CALL1["confidence"], "difficulty": 0.4}}
    llm_server.configure(rules=labeler_rules(call1=unsure))
    run = tmp_path / "run"
    assert (
        cli(*label_args(llm_server, run, records(6, tmp_path), "--no-arbitration")).exit_code == 0
    )
    original = (run / "labeled.jsonl").read_bytes()
    before = llm_server.stats()["chat_requests"]
    result = cli(
        "arbitrate", run, "--base-url", llm_server.base_url, "--cache", tmp_path / "cache.sqlite"
    )
    assert result.exit_code == 0, result.stderr
    assert "difficulty: 6 changed" in result.stderr  # summaries go to stderr
    assert llm_server.stats()["chat_requests"] - before == 6  # one arbitration call per sample
    new = json.loads((tmp_path / "run_arbitrated" / "labeled.json").read_text("utf-8"))
    assert [r["labels"]["difficulty"] for r in new] == ["advanced"] * 6
    monitor = new[0]["labeling_monitor"]
    assert monitor["arbitrated"] and monitor["llm_calls"] == 3
    assert monitor["arbitration"][0]["chosen"] == "second"
    assert (run / "labeled.jsonl").read_bytes() == original  # the source run is untouched
    stats = json.loads((tmp_path / "run_arbitrated" / "stats.json").read_text("utf-8"))
    assert stats["arbitrated_count"] == 6


def test_slow_answers_403s_empty_content_and_out_of_pool_tags(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules(call1={**CALL1, "language": ["python", "cuda"]}))
    llm_server.script(
        {"delay": 30},  # an answer that never comes: the client times out and retries
        {"status": 403, "body": "Forbidden by proxy"},  # retried once
        {"content": ""},  # empty content: a repair turn asks again
    )
    run = tmp_path / "run"
    result = cli(
        *label_args(llm_server, run, records(3, tmp_path), "--concurrency", "1", "--timeout", "1")
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(ids(run / "labeled.jsonl")) == ["r0", "r1", "r2"]
    stats = json.loads((run / "stats.json").read_text("utf-8"))
    assert stats["unmapped_tags"] == {"language:cuda": 3}
    assert stats["tag_distributions"]["language"] == {"python": 3}
    assert stats["retries"] >= 2
    traces = jsonl((run / "monitor.jsonl").read_text("utf-8"))
    assert any(call.get("format_error") for trace in traces for call in trace.get("calls", []))


def test_a_directory_run_mirrors_the_input_tree(cli, llm_server, tmp_path: Path) -> None:
    llm_server.configure(rules=labeler_rules(call1={**CALL1, "difficulty": "beginner"}))
    dataset = shared("copilot_raw/vscodedata_demo_20260101")
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, dataset, "--no-arbitration"))
    assert result.exit_code == 0, result.stderr
    part = run / "train" / "short_3_to_5_turns"
    for name in ("labeled.jsonl", "labeled.json", "failures.jsonl", "stats.json", "dashboard.html"):
        assert (part / name).exists(), name
    summary = json.loads((run / "summary_stats.json").read_text("utf-8"))
    assert summary["total_samples"] == 158
    assert len(summary["files"]) == 9
    assert sum(f["success"] for f in summary["files"].values()) == 158
    one = json.loads((part / "stats.json").read_text("utf-8"))
    assert one["part"] == "train/short_3_to_5_turns"
    assert one["total_samples"] == len(json.loads((part / "labeled.json").read_text("utf-8")))
    assert (run / "dashboard.html").exists()
    again = cli(
        "label",
        "--resume",
        run,
        "--base-url",
        llm_server.base_url,
        "--cache",
        tmp_path / "cache.sqlite",
    )
    assert again.exit_code == 0 and "158 already done" in again.stderr
    arbitrated = cli("arbitrate", run, "--threshold", "0.85", "--base-url", llm_server.base_url)
    assert arbitrated.exit_code == 0, arbitrated.stderr
    mirrored = json.loads((tmp_path / "run_arbitrated" / "summary_stats.json").read_text("utf-8"))
    assert mirrored["total_samples"] == 158 and mirrored["arbitrated_count"] == 158


def test_random_429_and_5xx_storms_still_label_every_sample(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules(), fault_rate={"429": 0.3, "500": 0.1, "502": 0.1})
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, records(20, tmp_path), "--concurrency", "8"))
    assert result.exit_code == 0, result.stderr
    assert sorted(ids(run / "labeled.jsonl")) == sorted(f"r{i}" for i in range(20))
    by_status = llm_server.stats()["by_status"]
    assert by_status.get("429", 0) > 0 and by_status.get("200") == 40
    stats = json.loads((run / "stats.json").read_text("utf-8"))
    assert stats["rate_limited_429"] == by_status["429"]


def test_json_mode_refused_while_many_requests_are_in_flight(
    cli, llm_server, tmp_path: Path
) -> None:
    """Every request sent before the first refusal turned JSON mode off is asked again."""
    refuse = {"status": 400, "content": "response_format json_object is not supported"}
    llm_server.configure(
        latency=0.05, rules=[{"match": '"response_format"', "response": refuse}, *labeler_rules()]
    )
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, records(20, tmp_path), "--concurrency", "20"))
    assert result.exit_code == 0, result.stderr
    assert len(ids(run / "labeled.jsonl")) == 20 and ids(run / "failures.jsonl") == []


def test_max_cost_needs_a_known_price(cli, llm_server, tmp_path: Path) -> None:
    args = label_args(llm_server, tmp_path / "run", records(2, tmp_path), "--max-cost", "1")
    args[args.index("gpt-4o-mini")] = "my-local-model"
    result = cli(*args)
    assert result.exit_code == 2
    assert "--max-cost needs the price of model 'my-local-model'" in result.stderr
    assert "--prices" in result.stderr
    assert llm_server.stats()["chat_requests"] == 0
