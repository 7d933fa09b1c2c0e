"""`sftlabel test` against a real HTTP server on 127.0.0.1 (fake_llm_server.py)."""

from __future__ import annotations

import json

from .test_label_run import labeler_rules


def test_an_endpoint_that_serves_both_jobs(cli, llm_server) -> None:
    llm_server.configure(rules=labeler_rules())
    result = cli("test", "--model", "smol", "--base-url", llm_server.base_url, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["softlabel_ready"] and report["label_ready"] and report["missing"] == []
    assert report["label_token_ids"] == {"0": 32, "1": 33}
    assert report["label_token_source"] == "tokenize:/tokenize"
    checks = {c["name"]: c for c in report["checks"]}
    for name in ("logprobs", "top_logprobs", "logit_bias", "taxonomy call", "JSON answer"):
        assert checks[name]["ok"] is True, name
    assert checks["JSON mode"]["ok"] is True
    assert report["logprobs_reported"] == "after-bias"
    assert report["hard_label"] == 1 and 0 < report["soft_label"] < 1
    assert report["taxonomy_labels"]["intent"] == "learn"
    assert checks["logprobs"]["latency"] is not None


def test_missing_logprobs_are_named(cli, llm_server) -> None:
    llm_server.configure(
        rules=[
            {"match": "TURN>>>", "response": {"content": "1", "logprobs": None}},
            *labeler_rules(),
        ]
    )
    result = cli("test", "--model", "o3-mini", "--base-url", llm_server.base_url)
    assert result.exit_code == 1
    assert "softlabel: not ready" in result.stdout and "label: ready" in result.stdout
    assert "missing: logprobs" in result.stdout


def test_json_mode_refused_is_reported_and_label_still_works(cli, llm_server) -> None:
    refuse = {"status": 400, "content": "response_format json_object is not supported"}
    llm_server.configure(
        rules=[{"match": '"response_format"', "response": refuse}, *labeler_rules()]
    )
    result = cli(
        "test", "--model", "smol", "--base-url", llm_server.base_url, "--label-token-ids",
        "0=32,1=33", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["label token ids"]["detail"].endswith("from override (not verified)")
    assert checks["JSON mode"]["ok"] is False
    assert "prompt only" in checks["JSON mode"]["detail"]
    assert checks["JSON answer"]["ok"] is True and report["label_ready"]


def test_a_server_ignoring_logit_bias_is_ready_with_logit_bias_0(cli, llm_server) -> None:
    logprobs = {
        "content": [
            {
                "token": "1",
                "logprob": -0.3,
                "top_logprobs": [{"token": "1", "logprob": -0.3}, {"token": "0", "logprob": -1.4}],
            }
        ]
    }
    llm_server.configure(
        rules=[
            {"match": '"logit_bias"', "response": {"content": "1", "logprobs": logprobs}},
            *labeler_rules(),
        ]
    )
    result = cli("test", "--model", "smol", "--base-url", llm_server.base_url)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "softlabel: ready with --logit-bias 0" in result.stdout
    assert "label: ready" in result.stdout


def test_a_closed_port_answers_connection_refused_at_once(cli) -> None:
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends
    started = time.monotonic()
    result = cli(
        "test", "--model", "smol", "--base-url", f"http://u:sk-secret-42@127.0.0.1:{port}/v1"
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 3, result.stdout + result.stderr
    assert "connection refused" in result.stdout
    assert "sk-secret-42" not in result.stdout + result.stderr
    assert elapsed < 20  # about 2 s of trying; generous for a busy machine
