"""`sftlabel softlabel` against a real HTTP server on 127.0.0.1 (fake_llm_server.py)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import jsonl, shared, write_jsonl
from .llm_server import FakeLLMServer

DATASET = "copilot_raw/vscodedata_demo_20260101"
TURNS = 158


def raw_copy(tmp_path: Path) -> Path:
    """The shared Copilot RAW dataset, copied (the default output goes beside it)."""
    target = tmp_path / "vscodedata_demo_20260101"
    shutil.copytree(shared(DATASET), target)
    return target


def args(server: FakeLLMServer, *extra: str | Path, model: str = "smol") -> list[str | Path]:
    return [
        "softlabel",
        *extra,
        "--model",
        model,
        "--base-url",
        server.base_url,
        "--no-cache",
    ]


def output_records(root: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(root.rglob("*.jsonl")):
        if path.name != "problems.jsonl":
            found += jsonl(path.read_text("utf-8"))
    return found


def logprobs(top: dict[str, float], token: str | None = None) -> dict[str, Any]:
    first = token or max(top, key=lambda t: top[t])
    return {
        "content": [
            {
                "token": first,
                "logprob": top.get(first, -9.0),
                "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.items()],
            }
        ]
    }


def chat_bodies(server: FakeLLMServer) -> list[dict[str, Any]]:
    return [
        r["body"]
        for r in server.stats()["recent"]
        if r["path"] == "/v1/chat/completions" and isinstance(r["body"], dict)
    ]


def test_raw_dataset_into_labeled_twin_one_request_per_turn(
    cli, llm_server, tmp_path: Path
) -> None:
    raw = raw_copy(tmp_path)
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    result = cli(*args(llm_server, raw, "--no-rationales"))
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "LABELED_vscodedata_demo_20260101"
    # the twin mirrors split/bucket, one .jsonl per input file
    inputs = sorted(p.relative_to(raw).with_suffix(".jsonl") for p in raw.rglob("*_turns.json"))
    outputs = sorted(p.relative_to(out) for p in out.rglob("*.jsonl") if p.name != "problems.jsonl")
    assert outputs == inputs
    records = output_records(out)
    assert len(records) == TURNS
    assert len({(r["conversationId"], r["messageId"]) for r in records}) == TURNS
    stats = llm_server.stats()
    # --no-rationales: at most one request per turn (identical turns in flight are sent once)
    assert stats["chat_requests"] <= TURNS
    first = records[0]
    for field in ("conversationId", "messageId", "split", "bucket", "hard_label", "soft_label"):
        assert field in first
    assert first["rationale"] is None
    expected = math.exp(-0.2) / (math.exp(-0.2) + math.exp(-1.7))
    assert first["soft_label"] == pytest.approx(expected, abs=1e-6)
    assert first["hard_label"] == 1 and first["method"] == "top_logprobs"
    by_file = {
        p.relative_to(out).as_posix(): jsonl(p.read_text("utf-8"))
        for p in out.rglob("*.jsonl")
        if p.name != "problems.jsonl"
    }
    for name, rows in by_file.items():
        split, bucket = name.split("/")
        assert {r["split"] for r in rows} == {split}
        assert {r["bucket"] for r in rows} == {bucket.removesuffix(".jsonl")}
    # the classification request: one token, logprobs, the bias on the model's own ids
    body = chat_bodies(llm_server)[-1]
    assert body["max_tokens"] == 1 and body["temperature"] == 1.0
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    assert body["logit_bias"] == {"32": 5.0, "33": 5.0}  # the server's tokenizer, not OpenAI's
    meta = json.loads((out / "labeling_metadata.json").read_text("utf-8"))
    assert meta["label_token_ids"] == {"0": 32, "1": 33}
    assert meta["label_token_source"] == "tokenize:/tokenize"
    assert meta["counts"]["turns"] == TURNS and meta["counts"]["failed"] == 0
    assert meta["model"] == "smol" and meta["strategy"] == "user_message_only"
    # the raw dataset is untouched
    assert {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()} == before


def test_existing_output_is_refused_then_resumed_for_free(cli, llm_server, tmp_path: Path) -> None:
    raw = raw_copy(tmp_path)
    out = tmp_path / "labels"
    assert cli(*args(llm_server, raw, "-o", out, "--no-rationales", "--limit", "20")).exit_code == 0
    again = cli(*args(llm_server, raw, "-o", out, "--no-rationales"))
    assert again.exit_code == 2
    assert "already exists" in again.stderr and "--resume" in again.stderr
    llm_server.reset()
    # --limit is kept by a resume unless given again (it widens the run, answers unchanged)
    resumed = cli(*args(llm_server, raw, "-o", out, "--resume", "--limit", str(TURNS)))
    assert resumed.exit_code == 0, resumed.stderr
    assert llm_server.stats()["chat_requests"] <= TURNS - 20  # only the missing turns (once)
    assert len(output_records(out)) == TURNS
    meta = json.loads((out / "labeling_metadata.json").read_text("utf-8"))
    assert len(meta["sessions"]) == 2
    replaced = cli(
        *args(llm_server, raw, "-o", out, "--no-rationales", "--overwrite", "--limit", "3")
    )
    assert replaced.exit_code == 0
    assert len(output_records(out)) == 3


def test_refuses_to_write_into_the_raw_folder(cli, llm_server, tmp_path: Path) -> None:
    raw = raw_copy(tmp_path)
    for target in (raw, raw / "train"):
        result = cli(*args(llm_server, raw, "-o", target))
        assert result.exit_code == 2
        assert "refusing to write into the raw dataset" in result.stderr
    assert llm_server.stats()["chat_requests"] == 0


def test_rationales_are_a_second_call(cli, llm_server, tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "id": "c1",
                "messages": [
                    {"role": "user", "content": "How do I reverse a list?"},
                    {"role": "assistant", "content": "Use reversed()."},
                    {"role": "user", "content": "Why does my lock deadlock under load?"},
                    {"role": "assistant", "content": "Let us look at the order of acquisition."},
                ],
            }
        ],
    )
    llm_server.configure(
        rules=[{"match": "Explain in 2 to 4 sentences", "response": {"content": " Simple. "}}]
    )
    result = cli(*args(llm_server, data))
    assert result.exit_code == 0, result.stderr
    records = output_records(tmp_path / "LABELED_chat")
    assert [r["messageId"] for r in records] == ["c1#u1", "c1#u2"]
    assert [r["turnIndex"] for r in records] == [1, 2]
    assert {r["rationale"] for r in records} == {"Simple."}
    assert {(r["split"], r["bucket"]) for r in records} == {("", "")}
    bodies = chat_bodies(llm_server)
    assert len(bodies) == 4
    rationale = [b for b in bodies if b.get("max_tokens") == 128]
    assert len(rationale) == 2 and {b["temperature"] for b in rationale} == {0.7}


@pytest.mark.parametrize(
    ("strategy", "present", "absent"),
    [
        ("user_message_only", ["Why does my lock"], ["How do I reverse", "order of acquisition"]),
        ("with_context", ["How do I reverse", "USER MESSAGE TO LABEL"], []),
        ("with_response", ["order of acquisition", "ASSISTANT REPLY"], ["How do I reverse"]),
    ],
)
def test_strategies_decide_what_the_model_sees(
    cli, llm_server, tmp_path: Path, strategy: str, present: list[str], absent: list[str]
) -> None:
    data = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "id": "c1",
                "messages": [
                    {"role": "user", "content": "How do I reverse a list?"},
                    {"role": "assistant", "content": "Use reversed()."},
                    {"role": "user", "content": "Why does my lock deadlock under load?"},
                    {"role": "assistant", "content": "Let us look at the order of acquisition."},
                ],
            }
        ],
    )
    result = cli(*args(llm_server, data, "--no-rationales", "--strategy", strategy))
    assert result.exit_code == 0, result.stderr
    last = chat_bodies(llm_server)[-1]["messages"][-1]["content"]
    for text in present:
        assert text in last
    for text in absent:
        assert text not in last
    records = output_records(tmp_path / "LABELED_chat")
    assert {r["strategy"] for r in records} == {strategy}


def test_unknown_strategy_is_a_usage_error(cli, llm_server, tmp_path: Path) -> None:
    raw = raw_copy(tmp_path)
    result = cli(*args(llm_server, raw, "--strategy", "nope"))
    assert result.exit_code == 2
    assert "unknown strategy 'nope'" in result.stderr and "with_context" in result.stderr


def test_censored_first_token_and_failed_turns_are_reported(
    cli, llm_server, tmp_path: Path
) -> None:
    data = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"id": f"c{i}", "messages": [{"role": "user", "content": f"question {i}"}]}
            for i in range(4)
        ],
    )
    llm_server.script(
        # c0: "0" missing from the top-k
        {"content": "1", "logprobs": logprobs({"1": -0.2, "A": -2.5, "B": -3.0})},
        # c1: the first token is a space, both labels further down
        {"content": " ", "logprobs": logprobs({" ": -0.3, "0": -1.5, "1": -2.5}, token=" ")},
        # c2: no label at all
        {"content": "<", "logprobs": logprobs({"<": -0.1, "The": -2.0})},
        # c3: the server refuses the request
        {"status": 400, "content": "This model's maximum context length is 8 tokens"},
    )
    result = cli(*args(llm_server, data, "--no-rationales", "--concurrency", "1"))
    assert result.exit_code == 1  # some turns failed
    records = {r["conversationId"]: r for r in output_records(tmp_path / "LABELED_chat")}
    assert len(records) == 4  # nothing silently dropped
    censored = records["c0"]
    assert censored["method"] == "censored" and censored["censored"] == ["0"]
    assert censored["hard_label"] == 1 and censored.get("p0") is None
    low, high = censored["soft_label_range"]
    assert low <= censored["soft_label"] <= high and high == 1.0
    listed = [math.exp(-0.2), math.exp(-2.5), math.exp(-3.0)]
    bound = min(*listed, 1 - sum(listed))  # what the top-k leave for the missing "0"
    assert low == pytest.approx(listed[0] / (listed[0] + bound), abs=1e-6)
    space = records["c1"]
    assert space["method"] == "first-token-not-label" and space["token"] == " "
    assert space["hard_label"] == 0  # the likelier label
    assert records["c2"]["reason"] == "no-label" and "'<'" in records["c2"]["error"]
    assert "hard_label" not in records["c2"]
    assert records["c3"]["reason"] == "rejected" and "context length" in records["c3"]["error"]
    assert "1 with a censored label token" in result.stderr


def test_resolve_missing_asks_again_with_a_large_equal_bias(
    cli, llm_server, tmp_path: Path
) -> None:
    data = write_jsonl(
        tmp_path / "chat.jsonl", [{"id": "c0", "messages": [{"role": "user", "content": "hi"}]}]
    )
    llm_server.script(
        {"content": "1", "logprobs": logprobs({"1": -0.1, "A": -2.5, "B": -3.0})},
        # after a +30 bias on both labels, both are visible (reported after the bias)
        {"content": "1", "logprobs": logprobs({"1": -0.01, "0": -4.6})},
    )
    result = cli(*args(llm_server, data, "--no-rationales", "--resolve-missing"))
    assert result.exit_code == 0, result.stderr
    (record,) = output_records(tmp_path / "LABELED_chat")
    assert record["method"] == "resolved" and not record.get("censored")
    expected = math.exp(-0.01) / (math.exp(-0.01) + math.exp(-4.6))
    assert record["soft_label"] == pytest.approx(expected, abs=1e-6)
    second = chat_bodies(llm_server)[-1]
    assert second["logit_bias"] == {"32": 30.0, "33": 30.0}


def test_a_model_without_logprobs_stops_the_run_with_its_name(
    cli, llm_server, tmp_path: Path
) -> None:
    raw = raw_copy(tmp_path)
    llm_server.configure(
        rules=[{"match": "TURN>>>", "response": {"content": "1", "logprobs": None}}]
    )
    result = cli(*args(llm_server, raw, "--no-rationales", model="o3-mini"))
    assert result.exit_code == 3
    assert "'o3-mini' answered without logprobs" in result.stderr
    assert "reasoning models" in result.stderr


def test_logprobs_refused_with_400_stops_the_run(cli, llm_server, tmp_path: Path) -> None:
    raw = raw_copy(tmp_path)
    llm_server.configure(
        rules=[
            {
                "match": "TURN>>>",
                "response": {"status": 400, "content": "logprobs is not supported with this model"},
            }
        ]
    )
    result = cli(*args(llm_server, raw, "--no-rationales", model="gpt-5"))
    assert result.exit_code == 3
    assert "'gpt-5' refuses logprobs" in result.stderr


def test_explicit_label_token_ids_are_used(cli, llm_server, tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "chat.jsonl", [{"id": "c0", "messages": [{"role": "user", "content": "hi"}]}]
    )
    result = cli(*args(llm_server, data, "--no-rationales", "--label-token-ids", "0=15,1=16"))
    assert result.exit_code == 0, result.stderr
    assert chat_bodies(llm_server)[-1]["logit_bias"] == {"15": 5.0, "16": 5.0}
    bad = cli(*args(llm_server, data, "--label-token-ids", "0=15", "-o", tmp_path / "x"))
    assert bad.exit_code == 2 and "must give both 0 and 1" in bad.stderr


def test_bad_records_are_reported_with_file_and_line(cli, llm_server, tmp_path: Path) -> None:
    data = tmp_path / "chat.jsonl"
    data.write_text(
        '{"id": "ok", "messages": [{"role": "user", "content": "hi"}]}\n{"broken\n', "utf-8"
    )
    result = cli(*args(llm_server, data, "--no-rationales"))
    assert result.exit_code == 1, result.stderr  # an unreadable record: the run is not whole
    assert "1 input record could not be read (problems.jsonl: truncated-json 1)" in result.stderr
    problems = jsonl((tmp_path / "LABELED_chat" / "problems.jsonl").read_text("utf-8"))
    assert problems[0]["location"]["line"] == 2
    assert len(output_records(tmp_path / "LABELED_chat")) == 1


def test_dry_run_counts_turns_and_sends_nothing(cli, llm_server, tmp_path: Path) -> None:
    raw = raw_copy(tmp_path)
    result = cli("softlabel", raw, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert re.search(rf"turns\s+{TURNS}\b", result.stdout)
    # the 79 duplicate turns are labeled once: two requests for each of the 79 others
    assert re.search(r"of which duplicates \(copied, not sent\)\s+79\b", result.stdout)
    assert re.search(rf"requests \(2 per turn sent\)\s+{TURNS}\b", result.stdout)
    assert re.search(r"prompt tokens \(estimate\)\s+[1-9]", result.stdout)
    assert not (tmp_path / "LABELED_vscodedata_demo_20260101").exists()


def test_the_api_key_can_come_from_key_vault(
    cli, llm_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vault is Azure's (not reachable here): fetch_secret is replaced, the wiring is real."""
    import sftlabel.api._endpoint as keyvault

    secret = "sk-from-the-vault-123456"
    asked: list[tuple[str, str]] = []

    def fetch(vault: str, name: str) -> str:
        asked.append((vault, name))
        return secret

    monkeypatch.setattr(keyvault, "fetch_secret", fetch)
    monkeypatch.setenv("SFTLABEL_KEYVAULT", "my-vault")
    monkeypatch.setenv("SFTLABEL_KEYVAULT_SECRET", "openai-key")
    llm_server.configure(require_api_key=secret)
    data = write_jsonl(
        tmp_path / "chat.jsonl", [{"id": "c0", "messages": [{"role": "user", "content": "hi"}]}]
    )
    result = cli(*args(llm_server, data, "--no-rationales"))
    assert result.exit_code == 0, result.stderr
    assert asked == [("my-vault", "openai-key")]
    assert secret not in result.stderr + result.stdout
    meta = (tmp_path / "LABELED_chat" / "labeling_metadata.json").read_text("utf-8")
    assert secret not in meta
    # --no-keyvault skips the vault: the server then refuses the missing key (exit 3)
    skipped = cli(*args(llm_server, data, "--no-rationales", "--no-keyvault", "-o", tmp_path / "n"))
    assert skipped.exit_code == 3 and len(asked) == 1
    assert secret not in skipped.stderr


def test_keyvault_without_a_secret_name_is_a_usage_error(cli, llm_server, tmp_path: Path) -> None:
    raw = raw_copy(tmp_path)
    result = cli(*args(llm_server, raw, "--keyvault", "my-vault"))
    assert result.exit_code == 2 and "--keyvault needs --secret" in result.stderr


def test_an_early_rejection_is_written_beside_its_turns(cli, llm_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a", "b"):
        write_jsonl(
            data / f"{name}.jsonl",
            [
                {"id": f"{name}{i}", "messages": [{"role": "user", "content": "hi"}]}
                for i in range(2)
            ],
        )
    llm_server.script({"status": 400, "content": "bad request for this one"})
    result = cli(*args(llm_server, data, "--no-rationales", "--concurrency", "1"))
    assert result.exit_code == 1
    out = tmp_path / "LABELED_data"
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["a.jsonl", "b.jsonl"]
    first = jsonl((out / "a.jsonl").read_text("utf-8"))
    # the held failure is written into a.jsonl once the endpoint has proved it works, and the
    # finished files are in input order
    assert [(r["conversationId"], r.get("reason")) for r in first] == [
        ("a0", "rejected"),
        ("a1", None),
    ]


def test_systematic_rejections_stop_the_run_without_writing_them(
    cli, llm_server, tmp_path: Path
) -> None:
    raw = raw_copy(tmp_path)
    llm_server.configure(
        rules=[{"match": "TURN>>>", "response": {"status": 404, "content": "model not found"}}]
    )
    result = cli(*args(llm_server, raw, "--no-rationales", "--concurrency", "1"))
    assert result.exit_code == 3
    assert "were all rejected" in result.stderr and "--model" in result.stderr
    assert output_records(tmp_path / "LABELED_vscodedata_demo_20260101") == []
