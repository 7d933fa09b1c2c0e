"""Every common SFT data shape read right (or refused loudly): content parts, Anthropic
messages, reasoning, the sample format, the other chat/instruction formats, wrappers, source
priority, weights and ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sftlabel.formats import Reader
from sftlabel.model import Conversation, Problem, Sample
from sftlabel.slicing import iter_samples

from .conftest import jsonl, shared, write_jsonl


def read(*paths: Path) -> tuple[list[Conversation | Sample], list[Problem]]:
    items: list[Conversation | Sample] = []
    problems: list[Problem] = []
    for item in Reader().read(list(paths)):
        (problems if isinstance(item, Problem) else items).append(item)  # type: ignore[arg-type]
    return items, problems


def one(tmp_path: Path, record: dict[str, Any]) -> tuple[Conversation, list[tuple[str, str]]]:
    [conversation], problems = read(write_jsonl(tmp_path / "one.jsonl", [record]))
    assert isinstance(conversation, Conversation)
    return conversation, [(p.code, p.message) for p in problems]


def codes(problems: list[tuple[str, str]]) -> list[str]:
    return [code for code, _ in problems]


def samples_of(*paths: Path) -> list[Sample]:
    return [s for s in iter_samples(Reader().read(list(paths))) if isinstance(s, Sample)]


# ---------------------------------------------------------------------------------------------
# samples read back: slice | label gives the same samples as label alone


def test_a_slice_output_is_read_as_samples_never_sliced_again(tmp_path: Path, cli) -> None:
    raw = shared("raw_samples.json")
    direct = samples_of(raw)
    assert len(direct) == 215
    out = tmp_path / "s.jsonl"
    result = cli("slice", raw, "-o", out)
    assert result.exit_code == 0, result.stderr

    again = samples_of(out)
    assert again == direct  # the same 215 samples, not 860

    detected = cli("detect", out, "--json")
    assert detected.exit_code == 0
    (report,) = jsonl(detected.stdout)
    assert report["formats"] == {"sample": 215}
    assert report["samples"] == 215

    twice = tmp_path / "s2.jsonl"
    result = cli("slice", out, "-o", twice)
    assert result.exit_code == 0
    assert "215 read as samples" in result.stderr
    assert twice.read_bytes() == out.read_bytes()


def test_a_sample_line_that_is_not_valid_is_an_error(tmp_path: Path) -> None:
    bad = {"id": "x", "source_id": "x", "turn_index": "one", "total_turns": 1, "messages": []}
    items, problems = read(write_jsonl(tmp_path / "bad.jsonl", [bad]))
    assert items == []
    assert [p.code for p in problems] == ["invalid-sample"]


def test_duplicate_sample_ids_are_renamed_like_conversations(tmp_path: Path) -> None:
    sample = {
        "id": "a_t1",
        "source_id": "a",
        "source_format": "openai",
        "turn_index": 1,
        "total_turns": 2,
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}],
    }
    items, problems = read(write_jsonl(tmp_path / "s.jsonl", [sample, sample]))
    assert [i.id for i in items] == ["a_t1", "a_t1~2"]
    assert [p.code for p in problems] == ["duplicate-id"]


# ---------------------------------------------------------------------------------------------
# content parts


def test_every_text_part_shape_is_read(tmp_path: Path) -> None:
    record = {
        "id": "p",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": {"value": "Assistants export", "annotations": []}},
                    {"type": "input_text", "text": "input text"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "I will not"},
                    {"type": "refusal", "refusal": "do that."},
                ],
            },
        ],
    }
    conversation, problems = one(tmp_path, record)
    assert problems == []
    user, reply = conversation.messages
    assert user.content == "Assistants export input text"
    assert reply.content == "I will not do that."
    assert "[text]" not in user.content + reply.content


def test_text_parts_are_joined_without_breaking_sentences(tmp_path: Path) -> None:
    parts = [
        {"type": "text", "text": "The quick brown"},
        {"type": "text", "text": "fox jumps."},
        {"type": "text", "text": "New sentence"},
        {"type": "text", "text": " continues"},
        {"type": "text", "text": "。中文"},
        {"type": "text", "text": "继续"},
    ]
    record = {
        "messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "ok"}]
    }
    conversation, _ = one(tmp_path, record)
    assert conversation.messages[0].content == (
        "The quick brown fox jumps.\nNew sentence continues。中文继续"
    )


def test_media_and_unknown_parts_are_placeholders_with_a_warning(tmp_path: Path) -> None:
    record = {
        "id": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:..."}},
                    {"type": "input_audio", "input_audio": {}},
                    {"type": "hologram", "data": "..."},
                ],
            },
            {"role": "assistant", "content": "A cat."},
        ],
    }
    conversation, problems = one(tmp_path, record)
    assert conversation.messages[0].content == "What is this?\n[image]\n[audio]\n[hologram]"
    assert codes(problems) == ["media-part", "unknown-part"]
    assert "2 media part(s)" in problems[0][1]
    assert "'hologram'" in problems[1][1]


def test_anthropic_messages(tmp_path: Path) -> None:
    record = {
        "id": "an",
        "system": [{"type": "text", "text": "You are a coding agent."}],
        "messages": [
            {"role": "user", "content": "List the files."},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Use the ls tool.", "signature": "x"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "tu1", "name": "ls", "input": {"path": "."}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "tu1",
                        "content": [{"type": "text", "text": "a.py b.py"}],
                    }
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "redacted_thinking", "data": "..."},
                    {"type": "text", "text": "Two files."},
                ],
            },
        ],
    }
    conversation, problems = one(tmp_path, record)
    assert problems == []
    assert conversation.source_format == "anthropic"
    assert conversation.system == "You are a coding agent."
    _, call, result, final = conversation.messages
    assert (call.content, call.reasoning) == ("Let me look.", "Use the ls tool.")
    assert [(c.name, json.loads(c.arguments), c.id) for c in call.tool_calls] == [
        ("ls", {"path": "."}, "tu1")
    ]
    assert (result.role, result.content, result.tool_call_id) == ("tool", "a.py b.py", "tu1")
    assert (final.content, final.reasoning) == ("Two files.", "[redacted thinking]")
    for message in conversation.messages:
        assert "[tool_use]" not in message.content
        assert "[thinking]" not in message.content


# ---------------------------------------------------------------------------------------------
# reasoning, system, tools, weights


def test_pangu_shaped_records_with_think_tags(tmp_path: Path) -> None:
    record = {
        "id": "r1",
        "data": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "<think>Add them.</think>\n\n4"},
        ],
    }
    conversation, _ = one(tmp_path, record)
    reply = conversation.messages[-1]
    assert (reply.content, reply.reasoning) == ("4", "Add them.")
    assert "slow-thinking" in conversation.variants
    assert "think-tags" in conversation.variants
    assert "no-markers" not in conversation.variants


def test_sharegpt_keeps_reasoning_content_tool_call_ids_and_shows_a_call_once(
    tmp_path: Path,
) -> None:
    record = {
        "id": "s",
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {
                "from": "function_call",
                "value": '{"name": "weather", "arguments": {"city": "Paris"}}',
            },
            {"from": "observation", "value": "18C", "tool_call_id": "c1"},
            {"from": "gpt", "value": "It is 18C.", "reasoning_content": "Read the tool."},
        ],
    }
    conversation, _ = one(tmp_path, record)
    _, call, result, reply = conversation.messages
    assert call.content == ""  # the JSON is shown once, as the call
    assert call.tool_calls[0].name == "weather"
    assert result.tool_call_id == "c1"
    assert reply.reasoning == "Read the tool."


def test_a_top_level_system_beside_messages_is_the_system_prompt(tmp_path: Path) -> None:
    record = {
        "system": "Be brief.",
        "messages": [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Salut"},
        ],
    }
    conversation, _ = one(tmp_path, record)
    assert conversation.system == "Be brief.\n\nAnswer in French."
    assert "system" not in conversation.metadata


def test_weight_zero_replies_are_context_not_samples(tmp_path: Path, cli) -> None:
    record = {
        "id": "w",
        "messages": [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "bad answer", "weight": 0},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "good answer", "weight": 1},
        ],
    }
    path = write_jsonl(tmp_path / "w.jsonl", [record])
    samples = samples_of(path)
    assert [s.id for s in samples] == ["w_t2"]
    assert samples[0].messages[1].content == "bad answer"  # still context
    result = cli("detect", path, "--json")
    assert jsonl(result.stdout)[0]["samples"] == 1
    result = cli("slice", path, "-o", tmp_path / "out.jsonl")
    assert "1 replies with weight 0 kept as context only" in result.stderr


# ---------------------------------------------------------------------------------------------
# source priority and fall-back: data > conversations > messages


def test_an_empty_conversations_falls_back_to_messages(tmp_path: Path) -> None:
    records = [
        {
            "id": f"f{i}",
            "conversations": empty,
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a"},
            ],
        }
        for i, empty in enumerate([[], [{"from": "human", "value": None, "x": 1}]])
    ]
    items, problems = read(write_jsonl(tmp_path / "f.jsonl", records))
    assert [(i.id, i.source_format) for i in items] == [("f0", "openai"), ("f1", "openai")]
    assert {p.code for p in problems} <= {"fallback-source", "ambiguous-source"}
    assert "fallback-source" in {p.code for p in problems}


def test_data_wins_over_conversations_with_a_warning(tmp_path: Path) -> None:
    record = {
        "id": "d",
        "data": [{"role": "user", "content": "from data"}, {"role": "assistant", "content": "a"}],
        "conversations": [{"from": "human", "value": "from conversations"}],
    }
    conversation, problems = one(tmp_path, record)
    assert conversation.messages[0].content == "from data"
    assert codes(problems) == ["ambiguous-source"]
    assert "read 'data', which comes first" in problems[0][1]
    assert "conversations" in conversation.metadata


# ---------------------------------------------------------------------------------------------
# more formats


@pytest.mark.parametrize(
    ("record", "fmt", "user", "reply"),
    [
        (
            {"instruction": "Translate", "input": "chat", "output": "cat"},
            "alpaca",
            "Translate\n\nchat",
            "cat",
        ),
        (
            {"instruction": "Sum up", "context": "long text", "response": "short", "category": "x"},
            "alpaca",
            "Sum up\n\nlong text",
            "short",
        ),
        ({"prompt": "2+2=", "completion": " 4"}, "prompt-completion", "2+2=", " 4"),
        (
            {
                "prompt": [{"role": "user", "content": "Hi"}],
                "completion": [{"role": "assistant", "content": "Hello"}],
            },
            "prompt-completion",
            "Hi",
            "Hello",
        ),
        (
            {
                "conversation_id": "c1",
                "model": "vicuna",
                "conversation": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                ],
            },
            "conversation",
            "Hi",
            "Hello",
        ),
        ({"id": "u", "data": ["Hi", "Hello", "More?", "Sure"]}, "ultrachat", "More?", "Sure"),
    ],
)
def test_more_formats(
    tmp_path: Path, record: dict[str, Any], fmt: str, user: str, reply: str
) -> None:
    conversation, problems = one(tmp_path, record)
    assert problems == []
    assert conversation.source_format == fmt
    users = [m for m in conversation.messages if m.role == "user"]
    assert users[-1].content == user
    assert conversation.messages[-1].content == reply


def test_lmsys_and_wildchat_ids(tmp_path: Path) -> None:
    lmsys, _ = one(
        tmp_path, {"conversation_id": "abc", "conversation": [{"role": "user", "content": "x"}]}
    )
    assert lmsys.id == "abc"
    wild, _ = one(
        tmp_path, {"conversation_hash": "h1", "conversation": [{"role": "user", "content": "x"}]}
    )
    assert wild.id == "h1"


def test_glaive_function_calling(tmp_path: Path) -> None:
    record = {
        "system": "SYSTEM: You are a helpful assistant with access to the following "
        'functions. {"name": "get_price"}',
        "chat": (
            "USER: Price of AAPL?\n\n\nASSISTANT: <functioncall> "
            '{"name": "get_price", "arguments": \'{"symbol": "AAPL"}\'} <|endoftext|>\n\n\n'
            'FUNCTION RESPONSE: {"price": 150}\n\n\n'
            "ASSISTANT: AAPL is at $150. <|endoftext|>\n\n\n"
        ),
    }
    conversation, problems = one(tmp_path, record)
    assert problems == []
    assert conversation.source_format == "glaive"
    assert conversation.system.startswith("You are a helpful assistant")
    user, call, result, reply = conversation.messages
    assert user.content == "Price of AAPL?"
    assert call.content == ""
    assert (call.tool_calls[0].name, call.tool_calls[0].arguments) == (
        "get_price",
        '{"symbol": "AAPL"}',
    )
    assert (result.role, result.content) == ("tool", '{"price": 150}')
    assert reply.content == "AAPL is at $150."


def test_xlam_function_calling(tmp_path: Path) -> None:
    record = {
        "id": 7,
        "query": "Weather in Paris and Rome?",
        "answers": json.dumps(
            [
                {"name": "weather", "arguments": {"city": "Paris"}},
                {"name": "weather", "arguments": {"city": "Rome"}},
            ]
        ),
        "tools": json.dumps([{"name": "weather", "parameters": {}}]),
    }
    conversation, problems = one(tmp_path, record)
    assert problems == []
    assert (conversation.id, conversation.source_format) == ("7", "xlam")
    user, reply = conversation.messages
    assert user.content == "Weather in Paris and Rome?"
    assert [json.loads(c.arguments)["city"] for c in reply.tool_calls] == ["Paris", "Rome"]
    assert conversation.tools == [{"name": "weather", "parameters": {}}]


@pytest.mark.parametrize("key", ["data", "train"])
def test_record_wrappers_are_unwrapped_with_a_note(tmp_path: Path, key: str) -> None:
    inner = [
        {
            "id": f"w{i}",
            "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
        }
        for i in range(3)
    ]
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({key: inner, "version": 2}), "utf-8")
    items, problems = read(path)
    assert [i.id for i in items] == ["w0", "w1", "w2"]
    assert [p.code for p in problems] == ["unwrapped-records"]
    assert "3 records" in problems[0].message
    assert [i.location.index for i in items if i.location] == [0, 1, 2]
    if key == "train":
        assert {i.split for i in items if isinstance(i, Conversation)} == {"train"}


# ---------------------------------------------------------------------------------------------
# directory walks skip sftlabel's own outputs


def test_walks_skip_run_directories_and_labeled_folders_with_a_note(tmp_path: Path, cli) -> None:
    root = tmp_path / "parent"
    raw = root / "dataset" / "train"
    raw.mkdir(parents=True)
    write_jsonl(
        raw / "a.jsonl",
        [
            {
                "id": "x",
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ],
            }
        ],
    )
    labeled = root / "LABELED_dataset"
    (labeled / "train").mkdir(parents=True)
    (labeled / "labeling_metadata.json").write_text("{}", "utf-8")
    write_jsonl(labeled / "train" / "a.jsonl", [{"conversationId": "x", "messageId": "m"}])
    run = root / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"format": 1, "sftlabel": "0.1"}), "utf-8")
    write_jsonl(run / "labeled.jsonl", [{"id": "x"}])
    (root / "README.md").write_text("hi", "utf-8")

    items, problems = read(root)
    assert [i.id for i in items] == ["x"]
    assert [(p.code, p.severity, p.record_level) for p in problems] == [
        ("skipped-files", "warning", False)
    ]
    note = problems[0].message
    assert "LABELED_dataset/ (soft labels)" in note
    assert "runs/r1/ (a run)" in note
    assert "README.md" in note

    result = cli("detect", root)
    assert result.exit_code == 0
    assert "skipped" in result.stderr
    # named explicitly, an output folder is read
    items, _ = read(labeled / "train" / "a.jsonl")


# ---------------------------------------------------------------------------------------------
# truncation keeps middle context


def test_an_oversized_message_before_the_reply_is_shortened_not_dropped() -> None:
    from sftlabel.model import Message
    from sftlabel.slicing import truncate

    sample = Sample(
        id="t",
        source_id="t",
        source_format="openai",
        turn_index=1,
        total_turns=1,
        messages=[
            Message(role="user", content="fix the bug " * 20),
            Message(role="assistant", content="running the tests"),
            Message(role="tool", content="x" * 50_000),
            Message(role="assistant", content="the fix " * 100),
        ],
    )
    result = truncate(sample, 20_000)
    assert result.truncation is not None
    kept = result.messages
    assert [m.role for m in kept] == ["user", "tool", "assistant"]
    assert "characters omitted" in kept[1].content
    assert 15_000 < len(kept[1].content) <= 20_000
    assert result.truncation.shortened_messages == 1
    assert result.truncation.omitted_messages == 1


# ---------------------------------------------------------------------------------------------
# the terminal: control characters in the data are shown escaped; a closed pipe is fine


def test_detect_prints_ids_with_control_characters_escaped(tmp_path: Path, cli) -> None:
    hostile = "evil\x1b[2J\x1b]0;pwned\x07\x00\u202eid"
    record = {
        "id": hostile,
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    }
    path = write_jsonl(tmp_path / "h.jsonl", [record, record])
    result = cli("detect", path)
    assert result.exit_code == 0
    for raw in ("\x1b", "\x00", "\x07", "\u202e"):
        assert raw not in result.stdout + result.stderr
    assert "evil\\x1b[2J" in result.stdout
    assert "\\u202eid" in result.stdout


@pytest.mark.parametrize("command", ["detect", "slice"])
def test_a_closed_stdout_pipe_ends_quietly_with_exit_0(tmp_path: Path, command: str) -> None:
    import subprocess
    import sys

    records = [
        {
            "id": f"r{i}",
            "messages": [
                {"role": "user", "content": "q" * 200},
                {"role": "assistant", "content": "a" * 200},
            ],
        }
        for i in range(3000)
    ]
    path = write_jsonl(tmp_path / "many.jsonl", records)
    args = [str(path), "--records"] if command == "detect" else [str(path), "-o", "-"]
    process = subprocess.Popen(
        [sys.executable, "-m", "sftlabel", command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.read(300)  # `| head -c 300`
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err
