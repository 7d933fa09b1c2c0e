"""Damaged text: invalid UTF-8 bytes, raw surrogate bytes and escaped lone surrogates are
repaired with U+FFFD and a warning, never a lost record (whatever msgspec version raises)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sftlabel.formats import Reader
from sftlabel.formats._normalize import join_text, parse_parts
from sftlabel.model import Conversation, Problem


def _line(user: bytes) -> bytes:
    return (
        b'{"id": "r", "messages": [{"role": "user", "content": "'
        + user
        + b'"}, {"role": "assistant", "content": "ok"}]}\n'
    )


def _read(path: Path) -> tuple[list[Conversation], list[Problem]]:
    conversations: list[Conversation] = []
    problems: list[Problem] = []
    for item in Reader().read([path]):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            assert isinstance(item, Conversation)
            conversations.append(item)
    return conversations, problems


CASES = [
    (b"bad \xff byte", "bad \ufffd byte", ["invalid-utf8"]),
    (b"raw surrogate \xed\xa0\x80", "raw surrogate \ufffd\ufffd\ufffd", ["invalid-utf8"]),
    (b"lone high \\ud800 here", "lone high \ufffd here", ["lone-surrogate"]),
    (b"lone high at the end \\ud83d", "lone high at the end \ufffd", ["lone-surrogate"]),
    (b"lone low \\uDC00", "lone low \ufffd", ["lone-surrogate"]),
    (
        b"pair \\ud83d\\ude00 and lone \\ud800",
        "pair \U0001f600 and lone \ufffd",
        ["lone-surrogate"],
    ),
    (
        b"escaped backslash \\\\ud800 \\ud800",
        "escaped backslash \\ud800 \ufffd",
        ["lone-surrogate"],
    ),
    (b"both \xff and \\udfff", "both \ufffd and \ufffd", ["invalid-utf8", "lone-surrogate"]),
]


def test_damaged_text_is_repaired_with_a_warning_per_record(tmp_path: Path) -> None:
    path = tmp_path / "damaged.jsonl"
    path.write_bytes(b"".join(_line(raw) for raw, _, _ in CASES) + _line(b"fine \\ud83d\\ude00"))
    conversations, problems = _read(path)
    assert [c.messages[0].content for c in conversations] == [
        *(text for _, text, _ in CASES),
        "fine \U0001f600",
    ]
    expected = [(code, number) for number, (_, _, found) in enumerate(CASES, 1) for code in found]
    assert [(p.code, p.location.line) for p in problems if p.code != "duplicate-id"] == expected
    assert all(p.severity == "warning" for p in problems)


def test_damaged_text_in_a_json_array_and_a_document(tmp_path: Path) -> None:
    array = tmp_path / "array.json"
    array.write_bytes(b"[" + _line(b"a \\udc01").strip() + b"]")
    conversations, problems = _read(array)
    assert conversations[0].messages[0].content == "a \ufffd"
    assert [p.code for p in problems] == ["lone-surrogate"]
    document = tmp_path / "doc.json"
    document.write_bytes(json.dumps({"messages": []}, indent=2).encode()[:-1] + b', "x": "\xff"}')
    _, problems = _read(document)
    assert "invalid-utf8" in [p.code for p in problems]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=["Cc"]), max_size=40))
@example("\ud800x\udc00\ud83d\ude00\\ud800")
def test_any_escaped_string_reads_back_with_lone_surrogates_replaced(text: str) -> None:
    from sftlabel.formats._source import _decode

    encoded = json.dumps(text).encode("ascii")  # \\u escapes, lone surrogates included
    value, repairs = _decode(encoded)
    # Python's json pairs a high and a low surrogate that follow each other; what stays lone
    # is what sftlabel replaces.
    paired = json.loads(encoded)
    expected = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in paired)
    assert value == expected
    assert bool(repairs) == (expected != paired)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=6))
def test_text_parts_keep_every_piece_in_order(pieces: list[str]) -> None:
    joined = join_text(pieces)
    position = 0
    for piece in pieces:
        found = joined.find(piece, position)
        assert found >= 0
        position = found + len(piece)
    assert len(joined) <= sum(map(len, pieces)) + max(len(pieces) - 1, 0)
    parts = parse_parts([{"type": "text", "text": p} for p in pieces])
    assert parts.text == joined
    assert not parts.unknown and not parts.coerced


KEYS = [
    "id", "messages", "conversations", "data", "conversation", "chat", "query", "answers",
    "prompt", "completion", "instruction", "input", "output", "response", "system", "tools",
    "role", "content", "from", "value", "type", "text", "tool_calls", "weight", "turnsArray",
    "source_id", "turn_index", "total_turns", "train", "reasoning_content", "tool_use_id",
    "input_text", "refusal", "thinking", "name", "arguments", "function",
]  # fmt: skip
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(KEYS),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), _json, max_size=6))
def test_any_record_is_read_or_refused_never_a_reader_failure(record: dict[str, object]) -> None:
    import tempfile

    from sftlabel.model import Sample
    from sftlabel.slicing import iter_samples

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "one.jsonl"
        path.write_text(json.dumps(record) + "\n", "utf-8")
        items = list(Reader().read([path]))
    assert not any(isinstance(i, Problem) and i.code == "reader-failed" for i in items), items
    for item in iter_samples(items):
        if isinstance(item, Sample):
            assert item.messages
            assert item.messages[-1].role == "assistant" or item.source_format == "sample"


def test_a_streamed_array_repairs_escaped_lone_surrogates(tmp_path: Path, monkeypatch) -> None:
    from sftlabel.formats import _source

    monkeypatch.setattr(_source, "WHOLE_FILE_LIMIT", 10)  # stream even a small array (ijson)
    path = tmp_path / "big.json"
    lines = [_line(raw).strip() for raw, _, _ in CASES]
    path.write_bytes(b"[" + b",".join(lines) + b"]")
    conversations, problems = _read(path)
    assert [c.messages[0].content for c in conversations] == [text for _, text, _ in CASES]
    assert sorted({p.code for p in problems} - {"duplicate-id"}) == [
        "invalid-utf8",
        "lone-surrogate",
    ]


class _Chunks:
    def __init__(self, data: bytes, cuts: list[int]) -> None:
        self._pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]

    def read(self, size: int = -1) -> bytes:
        return self._pieces.pop(0) if self._pieces else b""


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(codec=None, exclude_categories=["Cc"]), max_size=30),
    st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_streaming_repairs_do_not_depend_on_where_reads_are_cut(text: str, cuts: list[int]) -> None:
    from sftlabel.formats._source import _CleanReader

    data = json.dumps([text]).encode("ascii")
    whole = _CleanReader(_Chunks(data, []))
    expected = b"".join(iter(lambda: whole.read(65536), b""))
    pieces = sorted({c for c in cuts if 0 < c < len(data)})
    cut = _CleanReader(_Chunks(data, pieces))
    got = b"".join(iter(lambda: cut.read(65536), b""))
    assert got == expected
    assert json.loads(got) == [json.loads(expected)[0]]
    assert cut.surrogates == whole.surrogates
