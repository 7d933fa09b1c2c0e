"""File layouts: the streaming array path, damaged documents, sniffing over extensions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftlabel import Conversation, Problem, Reader
from sftlabel.formats import _source


def items(path: Path) -> tuple[list[Conversation], list[Problem]]:
    good: list[Conversation] = []
    bad: list[Problem] = []
    for item in Reader().read_file(path):
        (bad if isinstance(item, Problem) else good).append(item)  # type: ignore[arg-type]
    return good, bad


def record(i: int) -> dict[str, object]:
    return {
        "id": f"r{i}",
        "messages": [{"role": "user", "content": f"q{i} ü"}, {"role": "assistant", "content": "a"}],
    }


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every array 'large', so the streaming (ijson) reader is used."""
    monkeypatch.setattr(_source, "WHOLE_FILE_LIMIT", 10)


@pytest.mark.parametrize("streaming", [False, True])
def test_arrays_read_the_same_whole_or_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streaming: bool
) -> None:
    if streaming:
        monkeypatch.setattr(_source, "WHOLE_FILE_LIMIT", 10)
    path = tmp_path / "a.json"
    path.write_text(json.dumps([record(i) for i in range(50)], indent=2), "utf-8")
    good, bad = items(path)
    assert bad == []
    assert [c.id for c in good] == [f"r{i}" for i in range(50)]
    assert [c.location.index for c in good if c.location] == list(range(50))


@pytest.mark.usefixtures("small_limit")
def test_streamed_array_damaged_in_the_middle_keeps_what_came_before(tmp_path: Path) -> None:
    text = json.dumps([record(i) for i in range(10)])
    cut = text.index('{"id": "r6"')
    path = tmp_path / "a.json"
    path.write_text(text[:cut] + '{"id": "r6", "messages": [}' + text[cut:], "utf-8")
    good, bad = items(path)
    assert [c.id for c in good] == [f"r{i}" for i in range(6)]
    assert [(p.code, p.location.index) for p in bad] == [("invalid-json", 6)]


@pytest.mark.usefixtures("small_limit")
def test_streamed_array_with_invalid_utf8_is_repaired_not_cut(tmp_path: Path) -> None:
    data = json.dumps([record(i) for i in range(5)], ensure_ascii=False).encode("utf-8")
    data = data.replace("q2 ü".encode(), b"q2 \xff\xfe")
    path = tmp_path / "a.json"
    path.write_bytes(b"\xef\xbb\xbf" + data)
    good, bad = items(path)
    assert len(good) == 5
    assert good[2].messages[0].content == "q2 \ufffd\ufffd"
    assert [p.code for p in bad] == ["invalid-utf8"]


def test_whole_array_with_invalid_utf8_is_repaired(tmp_path: Path) -> None:
    data = json.dumps([record(i) for i in range(3)], ensure_ascii=False).encode("utf-8")
    path = tmp_path / "a.json"
    path.write_bytes(data.replace("q1 ü".encode(), b"q1 \xc3"))
    good, bad = items(path)
    assert len(good) == 3
    assert [p.code for p in bad] == ["invalid-utf8"]


def test_damaged_pretty_printed_document_is_one_error_with_its_line(tmp_path: Path) -> None:
    text = json.dumps(record(1), indent=2).replace('"assistant"', '"assistant",,')
    path = tmp_path / "one.json"
    path.write_text(text, "utf-8")
    good, bad = items(path)
    assert good == []
    assert len(bad) == 1
    assert bad[0].code == "invalid-json"
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ",," in ln)
    assert bad[0].location.line == line


def test_jsonl_with_a_damaged_first_line_still_reads_the_rest(tmp_path: Path) -> None:
    lines = ['{"id": "x", "messages": [', *(json.dumps(record(i)) for i in range(3))]
    path = tmp_path / "data.json"  # .json extension, JSON Lines content
    path.write_text("\n".join(lines) + "\n", "utf-8")
    good, bad = items(path)
    assert [c.id for c in good] == ["r0", "r1", "r2"]
    assert [(p.code, p.location.line) for p in bad] == [("truncated-json", 1)]


def test_layout_is_sniffed_not_taken_from_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(record(1), indent=2), "utf-8")
    good, bad = items(path)
    assert ([c.id for c in good], bad) == (["r1"], [])
    cut = json.dumps(record(1), indent=2)[:-5]
    path.write_text(cut, "utf-8")
    good, bad = items(path)
    assert good == []  # one error where the text stops, not one per line
    assert [(p.code, p.location.line) for p in bad] == [("truncated-json", cut.count("\n") + 1)]


def test_limit_stops_reading_early_without_errors(tmp_path: Path, small_limit: None) -> None:
    from sftlabel import iter_samples

    path = tmp_path / "a.json"
    path.write_text(json.dumps([record(i) for i in range(100)]), "utf-8")
    samples = list(iter_samples(Reader().read([path]), limit=3))
    assert [s.id for s in samples] == ["r0", "r1", "r2"]  # type: ignore[union-attr]
