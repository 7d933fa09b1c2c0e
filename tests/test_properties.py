"""Property tests (hypothesis): slicing, truncation, Pangu marker parsing, sparse sampling,
prefix-stable prompts of slices."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from sftlabel.errors import UsageError
from sftlabel.formats import Reader
from sftlabel.formats.pangu import parse_assistant_content
from sftlabel.labeling import build_messages, render_sample
from sftlabel.labeling._prompts import CLOSE
from sftlabel.model import Conversation, Message, Problem, Sample, ToolCall
from sftlabel.slicing import (
    MIN_SHORTENED,
    TRUNCATION_MARK,
    SparsePolicy,
    iter_samples,
    slice_conversation,
    truncate,
)
from sftlabel.taxonomy import load_taxonomy

from .conftest import write_jsonl

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# ---------------------------------------------------------------------------------------------
# text strategies

FRAGMENTS = [
    "[unused16]",
    "[unused17]",
    "[unused11]",
    "<think>",
    "</think>",
    "<thinking>",
    "\n",
    "\r\n",
    " ",
    " /no_think",
    "用户：",
    "助手：",
    "🙂",
    "",
]

texts = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=6).map("".join),
)

ROLE_SPELLINGS = {
    "sharegpt": {
        "user": ["human", "user"],
        "assistant": ["gpt", "assistant"],
        "tool": ["tool", "observation"],
    },
    "openai": {"user": ["user"], "assistant": ["assistant"], "tool": ["tool", "function"]},
}


@st.composite
def raw_conversations(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A ShareGPT or OpenAI record with a random role sequence, and its normalized roles."""
    fmt = draw(st.sampled_from(["sharegpt", "openai"]))
    roles = draw(st.lists(st.sampled_from(["user", "assistant", "tool"]), min_size=1, max_size=9))
    spellings = ROLE_SPELLINGS[fmt]
    turns = []
    for role in roles:
        spelled = draw(st.sampled_from(spellings[role]))
        text = draw(texts)
        if fmt == "sharegpt":
            turns.append({"from": spelled, "value": text})
        else:
            turns.append({"role": spelled, "content": text})
    key = "conversations" if fmt == "sharegpt" else "messages"
    rec: dict[str, Any] = {key: turns}
    conversation_id = draw(st.one_of(st.none(), st.sampled_from(["a", "b", "conv-7", "长"])))
    if conversation_id is not None:
        rec["id"] = conversation_id
    return rec, roles


# ---------------------------------------------------------------------------------------------
# (a) slicing


@SETTINGS
@given(st.lists(raw_conversations(), min_size=1, max_size=4))
def test_slicing_gives_one_prefix_sample_per_reply(
    tmp_path_factory: pytest.TempPathFactory, batch: list[tuple[dict[str, Any], list[str]]]
) -> None:
    path = write_jsonl(tmp_path_factory.getbasetemp() / "batch.jsonl", [r for r, _ in batch])
    items = list(Reader().read([path]))
    conversations = [i for i in items if isinstance(i, Conversation)]
    errors = [i for i in items if isinstance(i, Problem) and i.severity == "error"]
    assert errors == []
    assert len(conversations) == len(batch)
    for conversation, (_, roles) in zip(conversations, batch, strict=True):
        assert [m.role for m in conversation.messages] == roles  # no message lost

    samples = [s for s in iter_samples(conversations) if isinstance(s, Sample)]
    ids = [s.id for s in samples]
    assert len(ids) == len(set(ids))  # unique across the whole run

    by_source: dict[str, list[Sample]] = {}
    for sample in samples:
        by_source.setdefault(sample.source_id, []).append(sample)
    for conversation in conversations:
        replies = [i for i, m in enumerate(conversation.messages) if m.role == "assistant"]
        mine = by_source.get(conversation.id, [])
        assert len(mine) == len(replies)  # exactly one sample per assistant message
        for k, (sample, position) in enumerate(zip(mine, replies, strict=True), 1):
            assert sample.turn_index == k
            assert sample.total_turns == len(replies)
            assert sample.id == (
                conversation.id if len(replies) == 1 else f"{conversation.id}_t{k}"
            )
            assert sample.messages[-1].role == "assistant"
            assert sample.messages == conversation.messages[: position + 1]  # a prefix
            assert sample.system == conversation.system
            assert sample.truncation is None


def test_sample_ids_stay_unique_when_a_record_id_looks_like_a_slice_id(tmp_path: Path) -> None:
    # "a" has two replies (slices a_t1, a_t2); another record is literally called "a_t1".
    def record(rid: str, replies: int) -> dict[str, Any]:
        messages = []
        for k in range(replies):
            messages += [
                {"role": "user", "content": f"{rid} q{k}"},
                {"role": "assistant", "content": f"{rid} a{k}"},
            ]
        return {"id": rid, "messages": messages}

    path = write_jsonl(tmp_path / "ids.jsonl", [record("a", 2), record("a_t1", 1)])
    samples = [s for s in iter_samples(Reader().read([path])) if isinstance(s, Sample)]
    assert len(samples) == 3
    ids = [s.id for s in samples]
    assert len(set(ids)) == 3, f"sample ids collide: {ids}"


# ---------------------------------------------------------------------------------------------
# (b) truncation

_MARK = re.compile(r"\n…\[([\d,]+) characters omitted\]…\n")


def _chars(message: Message) -> int:
    return len(message.content) + sum(len(c.name) + len(c.arguments) for c in message.tool_calls)


def _mark_length(message: Message) -> int:
    found = _MARK.search(message.content)
    return len(found.group(0)) if found else 0


def _shortened_from(new: Message, old: Message) -> bool:
    """``new`` is ``old`` or ``old`` with the middle of its text cut out and a mark put in."""
    if new == old:
        return True
    found = _MARK.search(new.content)
    if not found or new.role != old.role:
        return False
    head, tail = new.content[: found.start()], new.content[found.end() :]
    omitted = int(found.group(1).replace(",", ""))
    return (
        old.content.startswith(head)
        and old.content.endswith(tail)
        and len(head) + len(tail) + omitted == len(old.content)
    )


def _sample(messages: list[Message]) -> Sample:
    return Sample(
        id="s",
        source_id="s",
        source_format="openai",
        turn_index=1,
        total_turns=1,
        messages=messages,
    )


@st.composite
def samples_to_truncate(draw: st.DrawFn) -> Sample:
    """A slice: starts with a user turn, ends with an assistant reply, any roles between."""
    sizes = st.integers(min_value=0, max_value=400)
    middle = draw(st.lists(st.sampled_from(["user", "assistant", "tool"]), max_size=8))
    roles = ["user", *middle, "assistant"]
    if draw(st.booleans()):
        roles = ["assistant"]  # a lone reply
    messages = []
    for index, role in enumerate(roles):
        size = draw(sizes)
        # Distinct, position-revealing text so reordering or mixing up messages shows.
        body = (f"<{index}>" + "abcdefghij" * (size // 10 + 1))[:size]
        messages.append(Message(role=role, content=body))  # type: ignore[arg-type]
    return _sample(messages)


@SETTINGS
@given(samples_to_truncate(), st.integers(min_value=1, max_value=1500))
def test_truncate_keeps_first_user_last_reply_and_recent_middle(
    sample: Sample, max_chars: int
) -> None:
    original = sample.messages
    total = sum(_chars(m) for m in original)
    result = truncate(sample, max_chars)
    if total <= max_chars:
        event("fits")
        assert result is sample or result == sample  # a no-op when it fits
        assert result.truncation is None
        return

    info = result.truncation
    assert info is not None
    assert result.truncated
    kept = result.messages
    assert info.original_chars == total
    assert info.kept_chars == sum(_chars(m) for m in kept)
    marks = sum(_mark_length(m) for m in kept)
    assert info.kept_chars - marks <= max_chars  # about max_chars, plus the marks
    assert info.omitted_messages == len(original) - len(kept)

    if len(original) == 1:
        (only,) = kept
        assert _shortened_from(only, original[0])
        assert info.shortened_messages == 1
        return

    # The first user turn (index 0 here) and the last reply are always there.
    assert len(kept) >= 2
    assert _shortened_from(kept[0], original[0])
    assert _shortened_from(kept[-1], original[-1])
    middle = kept[1:-1]
    last = len(original) - 1
    start = last - len(middle)
    # The middle is a contiguous run of the most recent messages before the reply; the oldest
    # of them may be shortened (it did not fit whole, but enough budget was left for it).
    middle_cut = bool(middle) and middle[0] != original[start]
    if middle_cut:
        assert _shortened_from(middle[0], original[start])
        assert max_chars - (info.kept_chars - _chars(middle[0])) >= MIN_SHORTENED
    assert middle[middle_cut:] == original[start + middle_cut : last]
    shortened = (kept[0] != original[0]) + (kept[-1] != original[-1]) + middle_cut
    event(f"shortened={shortened} omitted={bool(info.omitted_messages)} middle={len(kept) > 2}")
    assert info.shortened_messages == shortened
    if info.omitted_messages:
        assert info.gap_at == 1
    else:
        assert info.gap_at is None
    if not middle_cut and info.omitted_messages and start - 1 > 0:
        # As many recent messages as fit: the next older one would not have, and too little
        # budget was left to shorten it.
        next_older = original[start - 1]
        assert info.kept_chars + _chars(next_older) > max_chars
        assert max_chars - info.kept_chars < MIN_SHORTENED


def test_truncate_mark_format() -> None:
    assert TRUNCATION_MARK.format(count=12345) == "\n…[12,345 characters omitted]…\n"
    assert _MARK.fullmatch(TRUNCATION_MARK.format(count=7))


def test_truncate_keeps_a_short_first_user_turn_after_a_long_preamble() -> None:
    # A slice may start with a non-user message (an assistant greeting, a tool dump ...). The
    # first user turn is short and must survive; the long preamble must not blow the budget.
    preamble = Message(role="assistant", content="P" * 5000)
    question = Message(role="user", content="hi")
    reply = Message(role="assistant", content="ok")
    result = truncate(_sample([preamble, question, reply]), 100)
    assert result.truncation is not None
    assert question in result.messages, [m.content[:40] for m in result.messages]
    assert result.messages[-1] == reply
    assert result.truncation.kept_chars <= 100 + len(TRUNCATION_MARK.format(count=5000))


def test_truncate_bounds_a_reply_made_of_a_huge_tool_call() -> None:
    # The size of a message counts its tool-call arguments; a reply that is one big tool call
    # (writing a file, say) must still end up about max_chars long.
    call = ToolCall(name="write_file", arguments=json.dumps({"text": "y" * 10_000}))
    reply = Message(role="assistant", content="", tool_calls=[call])
    result = truncate(_sample([Message(role="user", content="write it"), reply]), 2000)
    assert result.truncation is not None
    assert result.truncation.kept_chars <= 2000 + 100


# ---------------------------------------------------------------------------------------------
# (c) Pangu markers

CALL_CLOSERS = {"[unused11]": "[unused12]", "[unused13]": "[unused14]", "[unused15]": "[unused16]"}
STRAY = ["[unused12]", "[unused14]", "[unused17]", "[unused9]", "[unused10]", "[unused99]"]
_ANY_MARKER = re.compile(r"\[(?:unused\d+|unordered\d+)\]")

NEAR_MARKERS = [
    "[unused",
    "16]",
    "[unused16",
    "unused17]",
    "[",
    "]",
    "\n",
    " ",
    "<think>",
    "工具：",
]
"""Pieces that look like markers (or glue into one: those draws are rejected)."""

segments = st.one_of(
    st.text(max_size=20),
    st.lists(
        st.one_of(
            st.sampled_from(NEAR_MARKERS),
            st.text(max_size=6),
        ),
        max_size=5,
    ).map("".join),
)

blocks = st.one_of(
    st.tuples(st.just("text"), segments),
    st.tuples(st.just("think"), st.one_of(st.just(""), st.just(" \n"), segments)),
    st.tuples(st.sampled_from(list(CALL_CLOSERS)), segments),
    st.tuples(st.just("stray"), st.sampled_from(STRAY)),
)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@SETTINGS
@given(
    st.lists(blocks, max_size=10),
    st.one_of(
        st.none(),
        st.tuples(st.sampled_from(list(CALL_CLOSERS)), segments),  # open call at the very end
        st.tuples(st.just("open-think"), segments),  # reasoning never closed
    ),
)
def test_pangu_parsing_never_loses_text_outside_markers(
    body: list[tuple[str, str]], ending: tuple[str, str] | None
) -> None:
    content: list[str] = []
    shown: list[str] = []
    thoughts: list[str] = []
    fast = calls = markers = 0
    stray = False
    for kind, text in body:
        if kind == "text":
            content.append(text)
            shown.append(text)
        elif kind == "think":
            content.append(f"[unused16]{text}[unused17]")
            markers += 2
            if text.strip():
                thoughts.append(text.strip())
            else:
                fast += 1
        elif kind == "stray":
            content.append(text)
            shown.append(text)
            markers += 1
            stray = True
        else:  # an inline tool call and its closer
            content.append(f"{kind}{text}{CALL_CLOSERS[kind]}")
            shown.append(f"<tool_call>{text.strip()}</tool_call>")
            markers += 2
            calls += 1
    unclosed = False
    if ending is not None:
        kind, text = ending
        markers += 1
        if kind == "open-think":
            content.append(f"[unused16]{text}")
            unclosed = True
            if text.strip():
                thoughts.append(text.strip())
        else:
            content.append(f"{kind}{text}")
            shown.append(f"<tool_call>{text.strip()}</tool_call>")
            calls += 1
    joined = "".join(content)
    # Segments glued together must not form extra markers by accident.
    assume(len(_ANY_MARKER.findall(joined)) == markers)

    parsed = parse_assistant_content(joined)
    # Every character outside markers and reasoning blocks is in the text, in order.
    assert _squash(parsed.text) == _squash("".join(shown))
    assert parsed.reasoning == thoughts
    assert parsed.tool_calls == calls
    assert parsed.fast_blocks == fast
    assert parsed.slow_blocks == len(thoughts)
    assert bool(parsed.issues) == (stray or unclosed)


def test_pangu_trap_third_call_closer_is_not_a_reasoning_opener() -> None:
    parsed = parse_assistant_content(
        "[unused15]call[unused16]tool output[unused16]thought[unused17]answer"
    )
    assert parsed.text == "<tool_call>call</tool_call>tool outputanswer"
    assert parsed.reasoning == ["thought"]
    assert (parsed.tool_calls, parsed.slow_blocks, parsed.fast_blocks) == (1, 1, 0)
    assert parsed.issues == []


def test_pangu_text_without_markers_is_returned_unchanged() -> None:
    text = "plain [unused text] with <think>tags</think> kept"
    parsed = parse_assistant_content(text)
    assert parsed.text == text
    assert parsed.reasoning == []


# ---------------------------------------------------------------------------------------------
# (d) sparse slicing


@pytest.mark.parametrize(("threshold", "ratio"), [(0, 2.0), (5, 1.0), (5, 0.5)])
def test_sparse_policy_rejects_settings_that_cannot_work(threshold: int, ratio: float) -> None:
    with pytest.raises(UsageError):
        SparsePolicy(threshold=threshold, ratio=ratio)


def _conversation(replies: int) -> Conversation:
    messages: list[Message] = []
    for k in range(1, replies + 1):
        messages += [Message(role="user", content=f"q{k}"), Message(role="assistant", content="a")]
    return Conversation(id="c", source_format="openai", messages=messages)


@SETTINGS
@given(
    st.integers(min_value=1, max_value=30),
    st.floats(min_value=1.01, max_value=4.0, allow_nan=False),
    st.integers(min_value=1, max_value=400),
)
def test_sparse_policy_labels_the_start_and_the_end(threshold: int, ratio: float, n: int) -> None:
    labeled = SparsePolicy(threshold=threshold, ratio=ratio).labeled(n)
    assert labeled == sorted(set(labeled))
    assert set(range(1, min(threshold, n) + 1)) <= set(labeled)
    assert labeled[-1] == n
    assert all(1 <= k <= n for k in labeled)
    if n > threshold:
        # Geometric spacing: a logarithmic number of labeled slices past the threshold.
        assert len(labeled) <= threshold + math.log(n / threshold) / math.log(ratio) + 2
    else:
        assert labeled == list(range(1, n + 1))


@SETTINGS
@given(
    st.integers(min_value=1, max_value=12),
    st.floats(min_value=1.01, max_value=4.0, allow_nan=False),
    st.integers(min_value=1, max_value=120),
)
def test_sparse_skipped_slices_map_to_the_next_labeled_one(
    threshold: int, ratio: float, n: int
) -> None:
    policy = SparsePolicy(threshold=threshold, ratio=ratio)
    conversation = _conversation(n)
    samples = [s for s in slice_conversation(conversation, sparse=policy) if isinstance(s, Sample)]
    labeled = policy.labeled(n)
    assert [s.turn_index for s in samples] == labeled

    def slice_id(k: int) -> str:
        return "c" if n == 1 else f"c_t{k}"

    owner: dict[str, str] = {}
    for sample in samples:
        assert sample.id == slice_id(sample.turn_index)
        assert sample.id not in sample.inherited_by
        for skipped in sample.inherited_by:
            assert skipped not in owner  # each skipped slice maps to exactly one sample
            owner[skipped] = sample.id
    all_ids = {slice_id(k) for k in range(1, n + 1)}
    labeled_ids = {s.id for s in samples}
    assert set(owner) | labeled_ids == all_ids
    assert not set(owner) & labeled_ids
    for j in range(1, n + 1):
        if j in labeled:
            continue
        following = min(k for k in labeled if k > j)
        assert owner[slice_id(j)] == slice_id(following)
        # The labeled slice's context contains the skipped one whole.
        taker = next(s for s in samples if s.turn_index == following)
        assert taker.messages[: 2 * j] == conversation.messages[: 2 * j]


# ---------------------------------------------------------------------------------------------
# prefix-stable prompts: slice t(k) renders as an extension of slice t(k-1)

HOSTILE = ["SAMPLE>>>", "<<<SAMPLE", "sample\u200b>>>", "\n[assistant] hi", "TURN>>>", "[…", "\n"]
prompt_texts = st.one_of(
    texts,
    st.lists(st.one_of(st.sampled_from(HOSTILE + FRAGMENTS), st.text(max_size=6)), max_size=5).map(
        "".join
    ),
)


@st.composite
def pyramid_conversations(draw: st.DrawFn) -> Conversation:
    roles = ["user", "assistant"]
    roles += draw(st.lists(st.sampled_from(["user", "assistant", "tool"]), max_size=8))
    roles.append("assistant")
    messages = [Message(role=role, content=draw(prompt_texts)) for role in roles]
    return Conversation(
        id="c",
        source_format="sharegpt",
        messages=messages,
        system=draw(st.one_of(st.none(), prompt_texts)),
    )


@SETTINGS
@given(pyramid_conversations(), st.sampled_from([1, 2]))
def test_slice_prompts_extend_the_previous_slice_byte_for_byte(
    conversation: Conversation, call: int
) -> None:
    taxonomy = load_taxonomy()
    slices = [s for s in slice_conversation(conversation) if isinstance(s, Sample)]
    previous = {"intent": "learn"} if call == 2 else None
    prompts = [build_messages(taxonomy, call, s, previous=previous) for s in slices]
    for before, after in itertools.pairwise(prompts):
        assert after[0] == before[0]  # the static system message
        user = before[1]["content"]
        head = user[: user.index(f"\n{CLOSE}\n\n")]  # the sample block without its end
        assert after[1]["content"].startswith(head)
        assert after[1]["content"][len(head)] == "\n"


def test_truncated_slices_keep_a_stable_head() -> None:
    turns = [Message(role="user", content="u0 " * 50)]
    for n in range(12):
        turns += [
            Message(role="assistant", content=f"a{n} " * 40),
            Message(role="user", content=f"u{n + 1} " * 40),
        ]
    turns.append(Message(role="assistant", content="last " * 40))
    conversation = Conversation(id="c", source_format="sharegpt", messages=turns, system="sys")
    rendered = [
        render_sample(s)
        for s in slice_conversation(conversation, max_chars=1200)
        if isinstance(s, Sample)
    ]
    head = rendered[0][: rendered[0].index("[assistant]")]
    assert head.endswith(" u0\n") and head.count("[user]") == 1
    assert all(r.startswith(head) for r in rendered)  # system prompt and first user turn
    # a first user turn too long for half the budget is cut alike in every slice after t1
    # (replies of varying size)
    turns = [Message(role="user", content="q " * 1000)]
    for n in range(8):
        turns += [
            Message(role="assistant", content=f"a{n} " * (20 + 30 * (n % 3))),
            Message(role="user", content=f"u{n + 1} " * 10),
        ]
    turns.append(Message(role="assistant", content="last " * 40))
    conversation = Conversation(id="d", source_format="sharegpt", messages=turns)
    rendered = [
        render_sample(s)
        for s in slice_conversation(conversation, max_chars=1200)
        if isinstance(s, Sample)
    ][1:]
    head = rendered[0][: rendered[0].index("\n[", len("<<<SAMPLE\n[user]"))]
    assert "characters omitted" in head
    assert all(r.startswith(head) for r in rendered)
