"""Readers on the shared sample data and on small hand-written records."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from sftlabel import Conversation, Problem, Reader
from sftlabel.formats import detect_format, load_formats
from sftlabel.formats._normalize import split_reasoning
from sftlabel.slicing import iter_samples

from .conftest import shared, write_jsonl


def read_all(*paths: Path) -> tuple[list[Conversation], list[Problem]]:
    conversations: list[Conversation] = []
    problems: list[Problem] = []
    for item in Reader().read(paths):
        (problems if isinstance(item, Problem) else conversations).append(item)  # type: ignore[arg-type]
    return conversations, problems


def test_builtin_formats_are_loaded_through_entry_points_in_priority_order() -> None:
    assert [f.name for f in load_formats()] == [
        "sample",
        "copilot",
        "pangu",
        "ultrachat",
        "sharegpt",
        "anthropic",
        "openai",
        "conversation",
        "glaive",
        "xlam",
        "prompt-completion",
        "alpaca",
    ]


def test_sharegpt_sample_file() -> None:
    conversations, problems = read_all(shared("raw_samples.json"))
    assert len(conversations) == 108
    assert {c.source_format for c in conversations} == {"sharegpt"}
    assert problems == []
    roles = Counter(m.role for c in conversations for m in c.messages)
    assert roles["assistant"] == 215
    assert roles["tool"] == 121
    first = conversations[0]
    assert first.id == "gen-0000"
    assert first.metadata["category"] == "learn-beginner"
    assert first.location is not None and first.location.index == 0


def test_pangu_sample_file_variants_and_normalization() -> None:
    conversations, problems = read_all(shared("pangu_test_samples.jsonl"))
    assert problems == []
    by_id = {c.id: c for c in conversations}
    assert len(by_id) == 12
    assert by_id["pangu-001"].variants == ["single-turn", "slow-thinking"]
    assert by_id["pangu-002"].variants == ["single-turn", "fast-thinking"]
    assert by_id["pangu-004"].variants[0] == "pseudo-multi-turn"
    assert "multi-turn" in by_id["pangu-006"].variants
    assert by_id["pangu-007"].variants == ["single-turn", "no-markers"]
    assert "inline-tool-calls" in by_id["pangu-003"].variants
    for conversation in conversations:
        for message in conversation.messages:
            assert "[unused" not in message.content
            assert "/no_think" not in message.content
    slow = by_id["pangu-001"].messages[1]
    assert slow.reasoning == "快速排序是一种分治算法，需要选择pivot然后分区。"
    assert slow.content.startswith("以下是Python实现的快速排序")
    assert by_id["pangu-001"].system == "你是一个有用的编程助手"
    assert by_id["pangu-003"].tools == [{"name": "search", "description": "搜索互联网信息"}]
    call = by_id["pangu-003"].messages[1].content
    assert call.startswith(
        '<tool_call>{"name":"search","query":"Python 3.12 new features"}</tool_call>'
    )
    assert "Python 3.12 引入了多项改进" in call


def test_pangu_pseudo_multi_turn_is_one_readable_user_message() -> None:
    conversations, _ = read_all(shared("pangu_test_samples.jsonl"))
    record = next(c for c in conversations if c.id == "pangu-004")
    assert [m.role for m in record.messages] == ["user", "assistant"]
    assert record.messages[0].content == (
        "什么是 Docker？\n\n助手：Docker 是一个容器化平台，可以将应用及其依赖打包到容器中运行。"
        "\n\n用户：Docker 和虚拟机有什么区别？"
    )


def test_copilot_dataset_split_and_bucket_come_from_the_path() -> None:
    dataset = shared("copilot_raw/vscodedata_demo_20260101")
    conversations, problems = read_all(dataset)
    assert problems == []  # metadata.json is skipped (a known layout: no note), not read
    assert {c.split for c in conversations} == {"train", "val", "test"}
    assert {c.bucket for c in conversations} == {
        "short_3_to_5_turns",
        "medium_6_to_10_turns",
        "long_11_to_20_turns",
    }
    users = [m for c in conversations for m in c.messages if m.role == "user"]
    assert len(users) == 158
    assert all(m.id for m in users)  # messageId kept for the soft-label output


def test_samples_of_the_shared_files() -> None:
    samples = [
        s
        for s in iter_samples(Reader().read([shared("raw_samples.json")]))
        if not isinstance(s, Problem)
    ]
    assert len(samples) == 215
    ids = [s.id for s in samples]
    assert len(set(ids)) == 215
    agentic = [s for s in samples if s.source_id == "gen-0077"]
    assert [s.id for s in agentic][:2] == ["gen-0077_t1", "gen-0077_t2"]
    assert all(s.messages[-1].role == "assistant" for s in samples)
    pangu = [
        s
        for s in iter_samples(Reader().read([shared("pangu_test_samples.jsonl")]))
        if not isinstance(s, Problem)
    ]
    assert len(pangu) == 18


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"conversations": []}, "sharegpt"),
        ({"messages": []}, "openai"),
        ({"data": [{"role": "user", "content": "x"}]}, "pangu"),
        ({"turnsArray": []}, "copilot"),
        ({"conversationId": "x", "turnsArray": [], "conversations": []}, "copilot"),
        ({"data": "not a list"}, None),
        ({"prompt": "x", "completion": "y"}, "prompt-completion"),
        ({"question": "x", "reply": "y"}, None),
    ],
)
def test_detection_is_per_record(record: dict[str, object], expected: str | None) -> None:
    fmt = detect_format(record)
    assert (fmt.name if fmt else None) == expected


def test_one_file_may_mix_formats(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {
                "id": "a",
                "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}],
            },
            {
                "id": "b",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "yo"},
                ],
            },
            {
                "id": "c",
                "data": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
            },
        ],
    )
    conversations, problems = read_all(path)
    assert [c.source_format for c in conversations] == ["sharegpt", "openai", "pangu"]
    assert conversations[2].variants == ["single-turn", "no-markers"]
    assert problems == []


def test_openai_messages_with_parts_tools_and_reasoning(tmp_path: Path) -> None:
    record = {
        "id": "oa-1",
        "tools": [{"type": "function", "function": {"name": "read_file"}}],
        "source": "public-set",
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Fix it"},
                    {"type": "image_url", "image_url": {}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "Look at the file first.",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"p": "a.py"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "print(1)"},
            {"role": "assistant", "content": "<think>easy</think>Done."},
        ],
    }
    [conversation], problems = read_all(write_jsonl(tmp_path / "oa.jsonl", [record]))
    assert [(p.code, p.record_id) for p in problems] == [("media-part", "oa-1")]
    assert "image_url" in problems[0].message
    assert conversation.system == "You are a coding agent."
    assert conversation.metadata == {"source": "public-set"}
    user, call, result, final = conversation.messages
    assert user.content == "Fix it\n[image]"
    assert call.reasoning == "Look at the file first."
    assert call.tool_calls[0].name == "read_file"
    assert call.tool_calls[0].arguments == '{"p": "a.py"}'
    assert (result.role, result.tool_call_id, result.name) == ("tool", "c1", "read_file")
    assert (final.content, final.reasoning) == ("Done.", "easy")


@pytest.mark.parametrize(
    ("text", "visible", "reasoning"),
    [
        ("plain answer", "plain answer", None),
        ("<think>step 1</think>\n\nAnswer", "Answer", "step 1"),
        ("<thinking>a</thinking>B<think>c</think>D", "BD", "a\n\nc"),
        ("hidden part</think>shown", "shown", "hidden part"),
        ("<think>cut off before the end", "", "cut off before the end"),
        ("We think this works", "We think this works", None),
    ],
)
def test_split_reasoning(text: str, visible: str, reasoning: str | None) -> None:
    assert split_reasoning(text) == (visible, reasoning)


def test_sharegpt_role_spellings_and_think_blocks(tmp_path: Path) -> None:
    record = {
        "conversations": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "q"},
            {"from": "function_call", "value": '{"name": "run", "arguments": {"cmd": "ls"}}'},
            {"from": "observation", "value": "a.py"},
            {"from": "assistant", "value": "<think>ok</think>There is a.py"},
        ]
    }
    [conversation], problems = read_all(write_jsonl(tmp_path / "s.jsonl", [record]))
    assert problems == []
    assert conversation.system == "be brief"
    assert [m.role for m in conversation.messages] == ["user", "assistant", "tool", "assistant"]
    assert conversation.messages[1].tool_calls[0].name == "run"
    assert json.loads(conversation.messages[1].tool_calls[0].arguments) == {"cmd": "ls"}
    assert conversation.messages[3].content == "There is a.py"
    assert conversation.id_generated and conversation.id.startswith("rec-")
