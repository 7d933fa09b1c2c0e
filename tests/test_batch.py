"""Batch runs (`label --batch`) over HTTP against the fake server's Files/Batches endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
    path = run / "batches" / "journal.ndjson"
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


def resume_args(server: FakeLLMServer, run: Path, *extra: str | Path) -> list[str | Path]:
    return [
        "label",
        "--resume",
        run,
        "--base-url",
        server.base_url,
        "--cache",
        run.parent / "cache.sqlite",
        *FAST,
        *extra,
    ]


def test_2000_samples_are_labeled_once_at_the_batch_price_and_an_online_rerun_sends_nothing(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    data = records(2000, tmp_path)
    run = tmp_path / "run"
    result = cli(*batch_args(llm_server, run, data, "--batch-max-requests", "1500"))
    assert result.exit_code == 0, result.stderr
    labeled = labeled_ids(run)
    assert len(labeled) == 2000 and len(set(labeled)) == 2000
    batches = llm_server.batches()
    assert batches["lines_answered"] == 4000
    sizes = sorted(len(b["custom_ids"]) for b in batches["batches"])
    assert max(sizes) <= 1500 and sum(sizes) == 4000  # split to the file limit
    assert llm_server.stats()["chat_requests"] == 0
    manifest = json.loads((run / "run.json").read_text())
    spent = manifest["sessions"][-1]["cost"]
    prompt = manifest["sessions"][-1]["prompt_tokens"]
    completion = manifest["sessions"][-1]["completion_tokens"]
    # gpt-4o-mini: $0.15 / $0.60 per million online, half in batch
    assert abs(spent - (prompt * 0.075 + completion * 0.30) / 1e6) < 1e-6
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
    assert len(labeled_ids(tmp_path / "online")) == 2000


def test_an_expired_batch_resubmits_only_the_lines_without_an_answer(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    llm_server.batch_plans({"outcome": "expired", "done_fraction": 0.3, "in_progress": 0.05})
    data = records(20, tmp_path)
    run = tmp_path / "run"
    result = cli(*batch_args(llm_server, run, data))
    assert result.exit_code == 0, result.stderr
    assert sorted(labeled_ids(run)) == sorted(f"r{i}" for i in range(20))
    first, *later = llm_server.batches()["batches"]
    assert first["status"] == "expired" and first["request_counts"]["completed"] == 6
    again = [c for b in later for c in b["custom_ids"] if c.endswith("#1")]
    assert sorted(again) == sorted(first["custom_ids"][6:])  # only the 70% without an answer
    assert llm_server.stats()["batch_lines"] == 6 + 14 + 20


def test_lines_with_error_null_and_status_400_are_failures_with_the_reason(
    cli, llm_server, tmp_path: Path
) -> None:
    rejected = {
        "match": "do? (3)",
        "response": {"status": 400, "content": "Invalid prompt: blocked", "code": "invalid_prompt"},
    }
    llm_server.configure(rules=[rejected, *labeler_rules()])
    llm_server.batch_plans(
        {
            "error_lines": [
                {
                    "match": "do? (5)",
                    "code": "content_filter",
                    "message": "flagged by the content filter",
                }
            ]
        }
    )
    data = records(8, tmp_path)
    run = tmp_path / "run"
    result = cli(*batch_args(llm_server, run, data))
    assert result.exit_code == 1, result.stderr
    assert sorted(labeled_ids(run)) == sorted(f"r{i}" for i in range(8) if i not in (3, 5))
    failures = {f["id"]: f for f in jsonl((run / "failures.jsonl").read_text())}
    assert set(failures) == {"r3", "r5"}
    assert "400" in failures["r3"]["error"] and "blocked" in failures["r3"]["error"]
    assert "content filter" in failures["r5"]["error"]
    assert failures["r3"]["reason"] == "rejected"


def test_a_failed_batch_is_submitted_again(cli, llm_server, tmp_path: Path) -> None:
    llm_server.configure(rules=labeler_rules())
    llm_server.batch_plans(
        {"outcome": "failed", "errors": [{"code": "server_error", "message": "try later"}]}
    )
    data = records(5, tmp_path)
    run = tmp_path / "run"
    result = cli(*batch_args(llm_server, run, data))
    assert result.exit_code == 0, result.stderr
    assert len(labeled_ids(run)) == 5
    states = [b["status"] for b in llm_server.batches()["batches"]]
    assert states == ["failed", "completed", "completed"]


def test_azure_batches_use_the_azure_paths_and_the_deployment_as_model(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    data = records(4, tmp_path)
    run = tmp_path / "run"
    result = cli(
        "label",
        "--model",
        "gpt-4o-mini",
        "--azure-deployment",
        "global-batch-mini",
        "--base-url",
        llm_server.url,
        "--api-key",
        "azure-key-1234567890",
        "-o",
        run,
        "--cache",
        tmp_path / "cache.sqlite",
        "--no-arbitration",
        "--batch",
        *FAST,
        data,
    )
    assert result.exit_code == 0, result.stderr
    assert len(labeled_ids(run)) == 4
    paths = llm_server.stats()["by_path"]
    assert paths.get("/openai/files", 0) >= 2 and paths.get("/openai/batches", 0) == 2
    content = (run / "batches" / "b00001.requests.ndjson").read_text().splitlines()
    line = json.loads(content[0])
    assert line["url"] == "/chat/completions" and line["body"]["model"] == "global-batch-mini"


def test_max_cost_below_the_whole_input_keeps_the_submitted_batches_within_the_cap(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    data = records(30, tmp_path)
    run = tmp_path / "run"
    cap = 0.01  # a worst case of ~$0.0004 a request: some 25 of the 60 requests fit
    result = cli(*batch_args(llm_server, run, data, "--max-cost", str(cap)))
    assert result.exit_code == 3, result.stderr
    # each batch reserved its worst case before it was submitted, within what was left
    reserved = [e["reserved"] for e in journal(run) if e["event"] == "prepared"]
    assert reserved and all(0 < r <= cap for r in reserved)
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["sessions"][-1]["cost"] <= cap
    assert "--max-cost" in result.stderr
    assert 0 < len(labeled_ids(run)) < 30


def _start(
    server: FakeLLMServer, run: Path, data: Path, *, stderr: int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "sftlabel", *map(str, batch_args(server, run, data))]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)


def _wait_for_submit(run: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        path = run / "batches" / "journal.ndjson"
        if path.exists() and any("batch_id" in e for e in journal(run)):
            return
        time.sleep(0.02)
    raise AssertionError("no batch was submitted")


def test_kill_9_right_after_submit_then_resume_finds_the_batch_and_submits_nothing_new(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    llm_server.batch_plans({"in_progress": 3600})  # held until released
    data = records(10, tmp_path)
    run = tmp_path / "run"
    process = _start(llm_server, run, data)
    _wait_for_submit(run, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert llm_server.batches()["created"] == 1
    llm_server.release_batches()
    result = cli(*resume_args(llm_server, run))
    assert result.exit_code == 0, result.stderr
    batches = llm_server.batches()
    assert batches["created"] == 2  # the call-2 round only: the first batch was collected
    assert batches["lines_answered"] == 20
    assert sorted(labeled_ids(run)) == sorted(f"r{i}" for i in range(10))


def test_a_kill_between_create_and_journal_finds_the_batch_by_its_metadata(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    llm_server.batch_plans({"in_progress": 3600})
    data = records(6, tmp_path)
    run = tmp_path / "run"
    process = _start(llm_server, run, data)
    _wait_for_submit(run, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    path = run / "batches" / "journal.ndjson"  # as if killed before the id was written
    kept = [line for line in path.read_text().splitlines() if "batch_id" not in line]
    path.write_text("\n".join(kept) + "\n")
    llm_server.release_batches()
    result = cli(*resume_args(llm_server, run))
    assert result.exit_code == 0, result.stderr
    assert llm_server.batches()["created"] == 2
    assert llm_server.batches()["lines_answered"] == 12
    assert len(labeled_ids(run)) == 6


def test_ctrl_c_leaves_the_batches_running_and_cancel_cancels_them(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    llm_server.batch_plans({"in_progress": 3600, "validating": 0.01})
    data = records(4, tmp_path)
    run = tmp_path / "run"
    process = _start(llm_server, run, data, stderr=subprocess.PIPE)
    _wait_for_submit(run, process)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    text = stderr.decode()
    assert process.returncode == 3, text
    assert "still running" in text and "--cancel" in text and f"--resume {run}" in text
    (batch,) = llm_server.batches()["batches"]
    assert batch["status"] == "in_progress"
    cancelled = cli(*resume_args(llm_server, run, "--cancel"))
    assert cancelled.exit_code == 0, cancelled.stderr
    assert "cancelled 1 running batch" in cancelled.stderr
    assert llm_server.batches()["batches"][0]["status"] == "cancelled"
    finished = cli(*resume_args(llm_server, run))
    assert finished.exit_code == 0, finished.stderr
    assert len(labeled_ids(run)) == 4
    assert [b["status"] for b in llm_server.batches()["batches"]] == [
        "cancelled",
        "completed",
        "completed",
    ]


def test_the_dry_run_shows_online_and_batch_cost_side_by_side(cli, tmp_path: Path) -> None:
    data = records(50, tmp_path)
    result = cli("label", data, "--model", "gpt-4o-mini", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    estimate = json.loads(result.stdout)
    assert estimate["batch_cost"] > 0
    assert abs(estimate["batch_cost"] - estimate["cost"] / 2) < 1e-9
    table = cli("label", data, "--model", "gpt-4o-mini", "--dry-run")
    assert "cost with --batch" in table.stdout


def test_a_price_file_sets_batch_prices(cli, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    price = {"input": 1.0, "cached_input": 0.5, "output": 2.0}
    batch = {"batch_input": 0.1, "batch_cached_input": 0.05, "batch_output": 0.2}
    prices.write_text(json.dumps({"gpt-4o-mini": {**price, **batch}}))
    data = records(5, tmp_path)
    args = ("label", data, "--model", "gpt-4o-mini", "--dry-run", "--json", "--prices", prices)
    estimate = json.loads(cli(*args).stdout)
    assert abs(estimate["batch_cost"] - estimate["cost"] / 10) < 1e-9


def test_progress_shows_each_batch_state_counts_time_in_state_and_next_poll() -> None:
    from sftlabel.cli._progress import figures
    from sftlabel.runs import RunState

    state = RunState(total=10)
    state.batches = [
        {
            "batch": "batch-1",
            "status": "finalizing",
            "requests": 2000,
            "counts": {"total": 2000, "completed": 1990, "failed": 10},
            "in_state": 125.0,
            "next_poll": 28.0,
        }
    ]
    line = figures(state)
    assert "batch-1 finalizing 2,000/2,000 (10 failed) for 2m, poll in 28s" in line


def test_softlabel_batch_passes_logprobs_through_and_a_line_without_them_fails_its_turn(
    cli, llm_server, tmp_path: Path
) -> None:
    from .conftest import write_jsonl

    data = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"id": f"c{i}", "messages": [{"role": "user", "content": f"question {i}"}]}
            for i in range(5)
        ],
    )
    llm_server.configure(rules=[{"match": "question 2", "response": {"content": "1"}}])
    out = tmp_path / "soft"
    result = cli(
        "softlabel",
        data,
        "--model",
        "smol",
        "--base-url",
        llm_server.base_url,
        "-o",
        out,
        "--cache",
        tmp_path / "cache.sqlite",
        "--no-rationales",
        "--batch",
        *FAST,
    )
    assert result.exit_code == 1, result.stderr
    rows = {r["conversationId"]: r for r in jsonl((out / "chat.jsonl").read_text())}
    assert len(rows) == 5
    assert rows["c2"]["reason"] == "rejected" and "without the logprobs" in rows["c2"]["error"]
    assert "soft_label" not in rows["c2"]  # never a silent 0.5
    assert all(rows[f"c{i}"]["hard_label"] == 1 for i in (0, 1, 3, 4))
    line = json.loads((out / "batches" / "b00001.requests.ndjson").read_text().splitlines()[0])
    body = line["body"]
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["logit_bias"]
    assert llm_server.stats()["chat_requests"] == 0


def _run_batch_like_vllm(server: FakeLLMServer, requests: Path, reject: str = "") -> Path:
    """What `vllm run-batch -i requests -o output` does, against the fake server's chat
    endpoint (a line whose body holds ``reject`` gets status 400 with ``"error": null``)."""
    import httpx

    output = requests.with_name(requests.name.removesuffix(".jsonl") + ".output.jsonl")
    lines = []
    with httpx.Client() as client:
        for number, raw in enumerate(requests.read_text().splitlines()):
            line = json.loads(raw)
            if reject and reject in json.dumps(line["body"]):
                status, body = (
                    400,
                    {"error": {"message": "This model's maximum context length is 4096 tokens"}},
                )
            else:
                answer = client.post(server.base_url + "/chat/completions", json=line["body"])
                status, body = answer.status_code, answer.json()
            lines.append(
                {
                    "id": f"vllm-{number}",
                    "custom_id": line["custom_id"],
                    "response": {"status_code": status, "request_id": f"r{number}", "body": body},
                    "error": None,
                }
            )
    output.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return output


def test_batch_export_and_import_for_a_self_hosted_fleet(cli, llm_server, tmp_path: Path) -> None:
    llm_server.configure(rules=labeler_rules())
    data = records(6, tmp_path)
    run = tmp_path / "run"
    exports = tmp_path / "exports"
    args = batch_args(llm_server, run, data, "--batch-export", exports)
    args.remove("--batch")
    first = cli(*args)
    assert first.exit_code == 3, first.stderr
    requests = exports / "b00001.jsonl"
    assert "vllm run-batch -i" in first.stderr and str(requests) in first.stderr
    assert len(requests.read_text().splitlines()) == 6
    output = _run_batch_like_vllm(llm_server, requests, reject="do? (4)")
    second = cli(*resume_args(llm_server, run, "--batch-import", output))
    assert second.exit_code == 3, second.stderr
    round2 = exports / "b00002.jsonl"
    assert len(round2.read_text().splitlines()) == 5  # call 2 of the 5 answered samples
    output2 = _run_batch_like_vllm(llm_server, round2)
    third = cli(*resume_args(llm_server, run, "--batch-import", output2, "--skip-failed"))
    assert third.exit_code == 1, third.stderr
    assert sorted(labeled_ids(run)) == sorted(f"r{i}" for i in range(6) if i != 4)
    (failure,) = jsonl((run / "failures.jsonl").read_text())
    assert failure["id"] == "r4" and "context length" in failure["error"]
    assert llm_server.batches()["created"] == 0


def test_the_slices_of_a_conversation_go_in_the_same_rounds(
    cli, llm_server, tmp_path: Path
) -> None:
    from .conftest import write_jsonl

    turns = []
    for t in range(3):
        turns += [
            {"from": "human", "value": f"step {t}: what does list.append do?"},
            {"from": "gpt", "value": f"It adds one item to the end ({t})."},
        ]
    data = write_jsonl(
        tmp_path / "multi.jsonl",
        [
            {
                "id": f"m{i}",
                "conversations": [
                    *turns,
                    {"from": "human", "value": f"({i})"},
                    {"from": "gpt", "value": "ok"},
                ],
            }
            for i in range(4)
        ],
    )
    llm_server.configure(rules=labeler_rules())
    run = tmp_path / "run"
    result = cli(*batch_args(llm_server, run, data))
    assert result.exit_code == 0, result.stderr
    assert len(labeled_ids(run)) == 16  # 4 conversations x 4 replies
    assert llm_server.batches()["created"] == 2  # call 1 and call 2 of every slice together
