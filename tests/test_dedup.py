"""Duplicate samples and turns are labeled once (label and softlabel share the engine's dedup)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .conftest import jsonl, shared, write_jsonl
from .llm_server import FakeLLMServer
from .test_label_run import labeler_rules

COPILOT = "copilot_raw/vscodedata_demo_20260101"


def conversation(id_: str, question: str) -> dict[str, Any]:
    return {
        "id": id_,
        "conversations": [
            {"from": "human", "value": question},
            {"from": "gpt", "value": "It adds one item to the end of the list."},
        ],
    }


def with_duplicates(tmp_path: Path) -> Path:
    """Nine samples, three distinct contents (ids differ: the content decides)."""
    questions = ["What does append do?", "What does pop do?", "What does sort do?"]
    rows = [conversation(f"s{i}", questions[i % 3]) for i in range(9)]
    return write_jsonl(tmp_path / "dups.jsonl", rows)


def label_args(server: FakeLLMServer, run: Path, *extra: str | Path) -> list[str | Path]:
    """``sftlabel label`` without the response cache (a cached answer is no request)."""
    model = ("--model", "gpt-4o-mini", "--base-url", server.base_url)
    return ["label", *extra, *model, "-o", run, "--no-cache"]


def records(path: Path) -> list[dict[str, Any]]:
    return jsonl(path.read_text("utf-8")) if path.exists() else []


def test_duplicate_samples_are_sent_once_and_copied_with_a_pointer(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules(), latency=0.05)  # originals still in flight
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, with_duplicates(tmp_path), "--json"))
    assert result.exit_code == 0, result.stderr
    assert llm_server.stats()["chat_requests"] == 3 * 2  # two calls per distinct sample
    labeled = {r["id"]: r for r in records(run / "labeled.jsonl")}
    assert sorted(labeled) == [f"s{i}" for i in range(9)]
    for i in range(9):
        monitor = labeled[f"s{i}"]["labeling_monitor"]
        if i < 3:
            assert "duplicate_of" not in monitor and monitor["llm_calls"] == 2
        else:
            assert monitor["duplicate_of"] == f"s{i % 3}"
            assert monitor["llm_calls"] == 0 and monitor["cost"] == 0.0
            assert labeled[f"s{i}"]["labels"] == labeled[f"s{i % 3}"]["labels"]
            assert labeled[f"s{i}"]["index"] == i  # its own place in labeled.json
    stats = json.loads((run / "stats.json").read_text("utf-8"))
    assert (stats["success"], stats["duplicates"], stats["distinct_labeled"]) == (9, 6, 3)
    assert stats["total_llm_calls"] == 6
    summary = json.loads(result.stdout)
    assert (summary["labeled"], summary["duplicates"], summary["failed"]) == (9, 6, 0)
    assert "(6 duplicates labeled once and copied)" in result.stderr
    assert "duplicates" in (run / "dashboard.html").read_text("utf-8")
    ordered = json.loads((run / "labeled.json").read_text("utf-8"))
    assert [r["id"] for r in ordered] == [f"s{i}" for i in range(9)]


def test_no_dedup_sends_every_sample(cli, llm_server, tmp_path: Path) -> None:
    llm_server.configure(rules=labeler_rules())
    run = tmp_path / "run"
    # one at a time: identical requests in flight together would be sent once by the client
    extra = ("--no-dedup", "--concurrency", "1")
    result = cli(*label_args(llm_server, run, with_duplicates(tmp_path), *extra))
    assert result.exit_code == 0, result.stderr
    assert llm_server.stats()["chat_requests"] == 9 * 2
    assert all("duplicate_of" not in r["labeling_monitor"] for r in records(run / "labeled.jsonl"))
    assert json.loads((run / "stats.json").read_text("utf-8"))["duplicates"] == 0
    assert not (run / "dedup.sqlite").exists()


def test_a_failed_original_does_not_leave_its_duplicates_unlabeled(
    cli, llm_server, tmp_path: Path
) -> None:
    rules = labeler_rules()
    poison = {"status": 400, "body": json.dumps({"error": {"message": "context length exceeded"}})}
    rules.insert(0, {"match": "poison", "response": poison})
    llm_server.configure(rules=rules, latency=0.05)
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [conversation("good", "hi"), *(conversation(f"bad{i}", "poison") for i in range(3))],
    )
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, data, "--json-mode", "off"))
    assert result.exit_code == 1
    # each duplicate of the failed original was tried as its own sample, and failed the same way
    failures = records(run / "failures.jsonl")
    assert sorted(f["id"] for f in failures) == ["bad0", "bad1", "bad2"]
    assert {f["reason"] for f in failures} == {"rejected"}
    assert [r["id"] for r in records(run / "labeled.jsonl")] == ["good"]


def test_resume_copies_duplicates_of_earlier_sessions_without_requests(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    run = tmp_path / "run"
    data = with_duplicates(tmp_path)
    first = cli(*label_args(llm_server, run, data, "--limit", "3"))
    assert first.exit_code == 0, first.stderr
    assert llm_server.stats()["chat_requests"] == 6
    llm_server.reset()
    resumed = cli("label", "--resume", run, "--base-url", llm_server.base_url, "--limit", "9")
    assert resumed.exit_code == 0, resumed.stderr
    assert llm_server.stats()["chat_requests"] == 0  # the originals were labeled before
    labeled = records(run / "labeled.jsonl")
    assert len(labeled) == 9
    assert sum("duplicate_of" in r["labeling_monitor"] for r in labeled) == 6
    assert "skipped 3 already done" in resumed.stderr
    # nothing is labeled twice by a third session either
    again = cli("label", "--resume", run, "--base-url", llm_server.base_url)
    assert again.exit_code == 0 and llm_server.stats()["chat_requests"] == 0
    assert len(records(run / "labeled.jsonl")) == 9


def test_softlabel_sends_one_request_per_distinct_turn_text(
    cli, llm_server, tmp_path: Path
) -> None:
    raw = tmp_path / "vscodedata_demo_20260101"
    shutil.copytree(shared(COPILOT), raw)
    out = tmp_path / "out"
    base = ("--model", "smol", "--base-url", llm_server.base_url, "--no-cache", "-o", out)
    result = cli("softlabel", raw, *base, "--no-rationales", "--json")
    assert result.exit_code == 0, result.stderr
    assert llm_server.stats()["chat_requests"] == 79
    turns = [
        r for p in sorted(out.rglob("*.jsonl")) if p.name != "problems.jsonl" for r in records(p)
    ]
    assert len(turns) == 158
    copies = [r for r in turns if "duplicate_of" in r["monitor"]]
    assert len(copies) == 79
    keys = {(r["conversationId"], r["messageId"], r["turnIndex"]): r for r in turns}
    for copy in copies:
        pointer = copy["monitor"]["duplicate_of"]
        original = keys[(pointer["conversationId"], pointer["messageId"], pointer["turnIndex"])]
        assert "duplicate_of" not in original["monitor"]
        assert copy["soft_label"] == original["soft_label"]
        assert copy["hard_label"] == original["hard_label"]
    assert json.loads(result.stdout)["duplicates"] == 79
    meta = json.loads((out / "labeling_metadata.json").read_text("utf-8"))
    assert meta["counts"]["duplicates"] == 79 and meta["counts"]["turns"] == 158
    llm_server.reset()
    every = cli("softlabel", raw, *base, "--no-rationales", "--overwrite", "--no-dedup")
    assert every.exit_code == 0, every.stderr
    assert 79 < llm_server.stats()["chat_requests"] <= 158


def test_the_dedup_key_covers_everything_the_prompts_are_rendered_from() -> None:
    """LabelTask.content hashes the fields the prompts are rendered from (cheaper than the
    rendering): a field it leaves out must never change a prompt, or two samples the model sees
    differently would share labels."""
    from sftlabel.labeling import Labeler, build_messages
    from sftlabel.model import Location, Message, Sample, ToolCall, Truncation
    from sftlabel.runs import LabelOptions, LabelTask
    from sftlabel.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    task = LabelTask(Labeler(None, taxonomy), [], LabelOptions(model="m"))  # type: ignore[arg-type]

    def sample(**changes: Any) -> Sample:
        call = ToolCall(name="read_file", arguments='{"path": "a.py"}', id=changes.pop("cid", "c1"))
        messages = [
            Message(role="user", content="Fix a.py", id=changes.pop("mid", "m1")),
            Message(
                role="assistant",
                content="Reading it.\n```python\nx = 1\n```",
                tool_calls=[call],
                reasoning=changes.pop("reasoning", None),
                weight=changes.pop("weight", None),
            ),
            Message(
                role="tool",
                name="read_file",
                content="x = 1",
                tool_call_id=changes.pop("tcid", "c1"),
            ),
            Message(role="assistant", content="Done."),
        ]
        fields: dict[str, Any] = {
            "id": "s1",
            "source_id": "src",
            "source_format": "openai",
            "turn_index": 2,
            "total_turns": 2,
            "messages": messages,
            "system": "You are a coding agent.",
            "tools": [{"name": "read_file"}],
            "truncation": Truncation(original_chars=900, kept_chars=800, gap_at=1),
        }
        fields.update(changes)
        return Sample(**fields)

    def prompts(s: Sample) -> list[Any]:
        previous = {"intent": "build"}
        dims = tuple(taxonomy.dimensions())
        return [
            build_messages(taxonomy, 1, s),
            build_messages(taxonomy, 2, s, previous=previous),
            build_messages(taxonomy, 0, s, previous=previous, dimensions=dims),  # arbitration
        ]

    base = sample()
    unseen = [
        sample(id="s2", source_id="other", source_format="sharegpt", turn_index=5, total_turns=9),
        sample(metadata={"k": "v"}, split="train", bucket="b", variants=["x"]),
        sample(inherited_by=["s9"], location=Location(path="p.jsonl", line=3)),
        sample(mid="m2", cid="c2", tcid="c2", reasoning="hidden", weight=0.0),
    ]
    for other in unseen:  # not in the key, and indeed never in a prompt
        assert task.content((0, other)) == task.content((0, base))
        assert prompts(other) == prompts(base)
    changed = [
        sample(system="You are a reviewer."),
        sample(tools=[{"name": "write_file"}]),
        sample(truncation=None),
        sample(messages=[Message(role="user", content="Fix b.py"), *base.messages[1:]]),
    ]
    for other in changed:
        assert task.content((0, other)) != task.content((0, base))
        assert prompts(other) != prompts(base)


def test_dry_run_counts_the_duplicates_it_would_not_send(cli, tmp_path: Path) -> None:
    data = with_duplicates(tmp_path)
    found = json.loads(cli("label", data, "--model", "m", "--dry-run", "--json").stdout)
    assert (found["samples"], found["duplicates"], found["requests"]) == (9, 6, 6)
    every = json.loads(
        cli("label", data, "--model", "m", "--dry-run", "--json", "--no-dedup").stdout
    )
    assert (every["samples"], every["duplicates"], every["requests"]) == (9, 0, 18)
    assert every["prompt_tokens"] == 3 * found["prompt_tokens"]


def test_duplicates_and_a_conversations_slices_share_a_ray_shard() -> None:
    """--engine ray splits by the task's shard key: duplicates (other ids, other conversations,
    equal content) meet in one shard, so the first of them in input order is the original there
    as in a local run and none is labeled twice; the slices of a conversation stay together."""
    from sftlabel.model import Message, Sample
    from sftlabel.runs._label import LabelTask
    from sftlabel.runs._manifest import LabelOptions
    from sftlabel.runs._shards import shard_key, shard_of

    def sample(sid: str, source: str, turns: int, total: int, opening: str) -> Sample:
        messages = [Message(role="user", content=opening), Message(role="assistant", content="a")]
        for k in range(2, turns + 1):
            messages += [
                Message(role="user", content=f"q{k}"),
                Message(role="assistant", content="b"),
            ]
        return Sample(
            id=sid, source_id=source, source_format="sharegpt", turn_index=turns,
            total_turns=total, messages=messages,
        )  # fmt: skip

    task = LabelTask(None, [], LabelOptions(model="m"))  # type: ignore[arg-type]
    plain = LabelTask(None, [], LabelOptions(model="m", dedup=False))  # type: ignore[arg-type]
    twins = [sample(f"c{i}", f"c{i}", 1, 1, "same question") for i in range(20)]
    slices = [sample(f"long_t{k}", "long", k, 3, "another question") for k in (1, 2, 3)]
    others = [sample(f"o{i}", f"o{i}", 1, 1, f"question {i}") for i in range(20)]
    for shards in (2, 3, 4, 7):

        def where(t: LabelTask, s: Sample, n: int = shards) -> int:
            return shard_of(shard_key(t, (0, s)), n)

        assert len({where(task, s) for s in twins}) == 1
        assert len({where(task, s) for s in slices}) == 1
        assert len({where(plain, s) for s in slices}) == 1  # by conversation
        assert len({where(task, s) for s in others}) > 1  # distinct samples spread
    assert len({shard_of(shard_key(plain, (0, s)), 4) for s in twins}) > 1  # by id
