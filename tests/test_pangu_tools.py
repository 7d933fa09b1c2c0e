"""Pangu tool use: ``role: tool`` nodes, three kinds of inline calls, ``工具：`` pseudo rounds.

The shared sample has none of these; ``fixtures/pangu_tools.jsonl`` is hand-written for them.
"""

from __future__ import annotations

from typing import Any

import pytest

from sftlabel.formats import Reader
from sftlabel.model import Conversation, Problem, Sample
from sftlabel.slicing import iter_samples

from .conftest import FIXTURES, jsonl

FIXTURE = FIXTURES / "pangu_tools.jsonl"


def _read() -> tuple[dict[str, Conversation], list[Problem]]:
    conversations: dict[str, Conversation] = {}
    problems: list[Problem] = []
    for item in Reader().read([FIXTURE]):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            conversations[item.id] = item
    return conversations, problems


@pytest.fixture(scope="module")
def records() -> dict[str, Conversation]:
    conversations, problems = _read()
    assert problems == []
    return conversations


def _shape(conversation: Conversation) -> list[tuple[str, str, str | None]]:
    return [(m.role, m.content, m.reasoning) for m in conversation.messages]


def test_fixture_is_read_whole(records: dict[str, Conversation]) -> None:
    assert list(records) == [
        "pt-tool-node",
        "pt-tool-rounds",
        "pt-three-calls",
        "pt-pseudo-tool",
        "pt-plain-tool",
    ]
    assert {c.source_format for c in records.values()} == {"pangu"}


def test_open_call_answered_by_a_tool_node(records: dict[str, Conversation]) -> None:
    conversation = records["pt-tool-node"]
    assert _shape(conversation) == [
        ("user", "北京今天天气怎么样？", None),
        (
            "assistant",
            '<tool_call>{"name":"get_weather","arguments":{"city":"北京"}}</tool_call>',
            "用户想知道北京的天气，需要调用天气工具。",
        ),
        # " /no_think" at the end of the tool content is the fast-thinking switch, not output.
        ("tool", '{"city":"北京","weather":"晴","temp":25}', None),
        ("assistant", "北京今天晴，气温 25°C，适合出行。", None),
    ]
    assert conversation.system == "你是一个智能助手，可以调用工具"
    assert conversation.tools == [{"name": "get_weather", "description": "查询城市天气"}]
    assert conversation.variants == [
        "single-turn",
        "fast-thinking",
        "slow-thinking",
        "inline-tool-calls",
        "tool-role",
    ]


def test_several_tool_rounds_and_a_second_user_turn(records: dict[str, Conversation]) -> None:
    conversation = records["pt-tool-rounds"]
    assert _shape(conversation) == [
        ("user", "main.py 跑不起来，帮我看看", None),
        (
            "assistant",
            '我先看一下代码。<tool_call>{"name":"read_file","path":"main.py"}</tool_call>',
            "先读文件。",
        ),
        ("tool", "print(undefined_name)", None),
        ("assistant", '<tool_call>{"name":"run_code","code":"python main.py"}</tool_call>', None),
        ("tool", "NameError: name 'undefined_name' is not defined", None),
        ("assistant", "`undefined_name` 没有定义，先给它赋值再打印。", "变量未定义。"),
        ("user", "改好了，还要注意什么？", None),
        ("assistant", "建议开启 pyflakes 之类的静态检查，提前发现未定义的名字。", None),
    ]
    assert [t["name"] for t in conversation.tools or []] == ["read_file", "run_code"]
    assert conversation.variants == [
        "multi-turn",
        "fast-thinking",
        "slow-thinking",
        "inline-tool-calls",
        "tool-role",
    ]


def test_three_inline_calls_then_a_new_reasoning_block(records: dict[str, Conversation]) -> None:
    conversation = records["pt-three-calls"]
    (user, reply) = conversation.messages
    assert (user.role, user.content) == ("user", "某国 GDP 是多少美元，折合人民币多少？")
    assert reply.role == "assistant"
    assert reply.content == (
        '<tool_call>{"name":"search","q":"GDP"}</tool_call>搜索结果：1.2 万亿美元。'
        '<tool_call>{"name":"fx","pair":"USDCNY"}</tool_call>汇率 7.1。'
        '<tool_call>{"name":"calculator","expr":"1.2*7.1"}</tool_call>计算结果 8.52。'
        "综上：GDP 约 1.2 万亿美元，折合约 8.52 万亿元人民币。"
    )
    # The trap: the [unused16] closing the third call is not a reasoning opener, so the tool
    # output after it ("计算结果 8.52。") survives, and only the real block becomes reasoning.
    assert "计算结果 8.52。" in reply.content
    assert reply.reasoning == "先搜索 GDP，再查汇率，最后计算。\n\n三个结果都有了，可以汇总。"
    assert "[unused" not in reply.content
    assert conversation.variants == ["single-turn", "slow-thinking", "inline-tool-calls"]


def test_pseudo_multi_turn_with_a_tool_round(records: dict[str, Conversation]) -> None:
    conversation = records["pt-pseudo-tool"]
    (user, reply) = conversation.messages
    assert user.role == "user"
    assert user.content == (
        "帮我查一下上海的天气\n\n"
        '助手：<tool_call>{"name":"get_weather","city":"上海"}</tool_call>\n\n'
        '工具：{"weather":"小雨","temp":18}\n\n'
        "助手：上海今天小雨，18°C。\n\n"
        "用户：那明天呢？"
    )
    assert user.reasoning is None  # both packed assistant rounds think fast (empty blocks)
    assert reply.role == "assistant"
    assert reply.content == (
        '<tool_call>{"name":"get_weather","city":"上海","day":"tomorrow"}</tool_call>'
        "明天上海多云，20°C。"
    )
    assert reply.reasoning == "用户问明天，需要再查一次。"
    assert conversation.variants == [
        "pseudo-multi-turn",
        "fast-thinking",
        "slow-thinking",
        "inline-tool-calls",
        "tool-role",
    ]


def test_tool_nodes_without_any_marker(records: dict[str, Conversation]) -> None:
    conversation = records["pt-plain-tool"]
    assert _shape(conversation) == [
        ("user", "What is 17 * 23?", None),
        ("assistant", "Let me use the calculator.", None),
        ("tool", "391", None),
        ("assistant", "17 * 23 = 391.", None),
    ]
    assert conversation.system is None
    assert conversation.tools is None
    assert conversation.variants == ["single-turn", "tool-role", "no-markers"]


def test_no_tool_output_is_lost(records: dict[str, Conversation]) -> None:
    visible = "\n".join(m.content for c in records.values() for m in c.messages)
    for output in [
        '{"city":"北京","weather":"晴","temp":25}',
        "print(undefined_name)",
        "NameError: name 'undefined_name' is not defined",
        "搜索结果：1.2 万亿美元。",
        "汇率 7.1。",
        "计算结果 8.52。",
        '{"weather":"小雨","temp":18}',
        "明天上海多云，20°C。",
        "391",
    ]:
        assert output in visible
    assert "[unused" not in visible
    assert "/no_think" not in visible


def test_samples_after_slicing(records: dict[str, Conversation]) -> None:
    samples = [s for s in iter_samples(records.values()) if isinstance(s, Sample)]
    assert [s.id for s in samples] == [
        "pt-tool-node_t1",
        "pt-tool-node_t2",
        "pt-tool-rounds_t1",
        "pt-tool-rounds_t2",
        "pt-tool-rounds_t3",
        "pt-tool-rounds_t4",
        "pt-three-calls",
        "pt-pseudo-tool",
        "pt-plain-tool_t1",
        "pt-plain-tool_t2",
    ]
    first = samples[0]
    assert [m.role for m in first.messages] == ["user", "assistant"]
    assert first.messages[-1].content.startswith("<tool_call>")
    assert [m.role for m in samples[5].messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]


def test_detect_reports_the_variants(cli) -> None:
    result = cli("detect", FIXTURE, "--json", "--records")
    assert result.exit_code == 0
    (report,) = jsonl(result.stdout)
    expected: dict[str, Any] = {
        "formats": {"pangu": 5},
        "records": 5,
        "readable": 5,
        "unreadable": 0,
        "warnings": 0,
        "user_turns": 6,
        "assistant_replies": 10,
        "tool_messages": 4,
        "samples": 10,
    }
    assert {key: report[key] for key in expected} == expected
    assert report["pangu_variants"] == {
        "single-turn": 3,
        "multi-turn": 1,
        "pseudo-multi-turn": 1,
        "fast-thinking": 3,
        "slow-thinking": 4,
        "inline-tool-calls": 4,
        "tool-role": 4,
        "no-markers": 1,
    }
    details = {d["id"]: d for d in report["record_details"]}
    assert details["pt-tool-rounds"]["samples"] == 4
    assert details["pt-pseudo-tool"]["samples"] == 1


def test_slice_writes_one_sample_per_reply(cli, tmp_path) -> None:
    out = tmp_path / "tools.jsonl"
    result = cli("slice", FIXTURE, "-o", out)
    assert result.exit_code == 0
    samples = jsonl(out.read_text("utf-8"))
    assert len(samples) == 10
    three = next(s for s in samples if s["id"] == "pt-three-calls")
    assert three["variants"] == ["single-turn", "slow-thinking", "inline-tool-calls"]
    assert three["messages"][-1]["reasoning"].endswith("三个结果都有了，可以汇总。")
    assert "5 conversations" in result.stderr
    assert "10 samples" in result.stderr
