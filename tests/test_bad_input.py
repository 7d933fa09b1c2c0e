"""Bad input never crashes a run and never vanishes.

Every unreadable or damaged record is reported with its file and line (JSONL) or ``[index]`` (JSON
array), reading goes on with the next record, and the count shows in the summary. Checked through
the public surface: the library reader and the ``detect`` / ``slice`` commands.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sftlabel.formats import LONG_MESSAGE_CHARS, Reader
from sftlabel.model import Conversation, Problem

from .conftest import jsonl, write_jsonl

# ---------------------------------------------------------------------------------------------
# helpers


def record(i: int, **extra: Any) -> dict[str, Any]:
    """A good ShareGPT record with one reply."""
    return {
        "id": f"r{i}",
        "conversations": [
            {"from": "human", "value": f"question {i}"},
            {"from": "gpt", "value": f"answer {i}"},
        ],
        **extra,
    }


def line(i: int) -> str:
    return json.dumps(record(i), ensure_ascii=False)


def read(*paths: Path) -> tuple[list[Conversation], list[Problem]]:
    conversations: list[Conversation] = []
    problems: list[Problem] = []
    for item in Reader().read(list(paths)):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            assert isinstance(item, Conversation)
            conversations.append(item)
    return conversations, problems


def ids(conversations: list[Conversation]) -> list[str]:
    return [c.id for c in conversations]


def detect_json(cli, *paths: Path) -> tuple[int, list[dict[str, Any]]]:
    result = cli("detect", *paths, "--json")
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, jsonl(result.stdout)


def slice_to(cli, out: Path, *args: str | Path):
    result = cli("slice", *args, "-o", out)
    assert "Traceback" not in result.stdout + result.stderr
    samples = jsonl(out.read_text("utf-8")) if out.exists() else []
    return result, samples


def assert_one_error(problems: list[Problem], code: str, path: Path, **where: int) -> Problem:
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1, problems
    error = errors[0]
    assert error.code == code
    assert error.location.path == str(path)
    for key, value in where.items():
        assert getattr(error.location, key) == value
    return error


# ---------------------------------------------------------------------------------------------
# truncated JSON


def test_truncated_line_in_the_middle_of_jsonl(tmp_path: Path, cli) -> None:
    path = tmp_path / "mid.jsonl"
    path.write_text(f"{line(1)}\n{line(2)[:-12]}\n{line(3)}\n", "utf-8")

    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r3"]
    assert [c.location.line for c in conversations if c.location] == [1, 3]
    error = assert_one_error(problems, "truncated-json", path, line=2)
    assert str(error).startswith(f"{path}:2: error:")
    assert len(problems) == 1

    code, reports = detect_json(cli, path)
    assert code == 1
    (report,) = reports
    assert (report["records"], report["readable"], report["unreadable"]) == (3, 2, 1)
    assert report["samples"] == 2
    assert [(p["code"], p["location"]["line"]) for p in report["problems"]] == [
        ("truncated-json", 2)
    ]

    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 1
    assert [s["id"] for s in samples] == ["r1", "r3"]
    assert f"{path}:2" in result.stderr
    assert "[truncated-json]" in result.stderr
    assert "2 samples" in result.stderr
    assert "1 unreadable record" in result.stderr


def test_truncated_last_line_without_newline(tmp_path: Path, cli) -> None:
    path = tmp_path / "end.jsonl"
    path.write_text(f"{line(1)}\n{line(2)}\n{line(3)[:-5]}", "utf-8")

    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r2"]
    assert_one_error(problems, "truncated-json", path, line=3)

    code, (report,) = detect_json(cli, path)
    assert code == 1
    assert (report["records"], report["unreadable"], report["samples"]) == (3, 1, 2)

    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 1
    assert [s["id"] for s in samples] == ["r1", "r2"]
    assert f"{path}:3" in result.stderr
    assert "1 unreadable record" in result.stderr


@pytest.mark.parametrize("name", ["first.jsonl", "first.json"])
def test_truncated_first_line_does_not_hide_the_rest(tmp_path: Path, name: str) -> None:
    # A damaged first line must not make the reader give up on the file (nor, for .json, be taken
    # for the start of a pretty-printed document that then swallows the good lines).
    path = tmp_path / name
    path.write_text(f"{line(1)[:-5]}\n{line(2)}\n{line(3)}\n", "utf-8")
    conversations, problems = read(path)
    assert ids(conversations) == ["r2", "r3"]
    assert [c.location.line for c in conversations if c.location] == [2, 3]
    assert_one_error(problems, "truncated-json", path, line=1)


def test_garbage_line_is_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "garbage.jsonl"
    path.write_text(f"{line(1)}\nthis is not json\n{line(3)}\n", "utf-8")
    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r3"]
    assert_one_error(problems, "invalid-json", path, line=2)


DEEP = "[" * 10_000 + "]" * 10_000
"""Valid JSON nested deeper than any recursive decoder goes."""


def test_deeply_nested_line_is_an_error_not_a_crash(tmp_path: Path, cli) -> None:
    path = tmp_path / "deep.jsonl"
    nested = {"id": "deep", "messages": [{"role": "user", "content": "q"}], "meta": "@"}
    deep_record = json.dumps(nested).replace('"@"', DEEP)
    path.write_text(f"{line(1)}\n{DEEP}\n{deep_record}\n{line(4)}\n", "utf-8")

    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r4"]
    errors = [p for p in problems if p.severity == "error"]
    assert [(p.code, p.location.line) for p in errors] == [
        ("invalid-json", 2),
        ("invalid-json", 3),
    ]

    code, (report,) = detect_json(cli, path)
    assert code == 1
    assert (report["readable"], report["unreadable"]) == (2, 2)
    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 1
    assert [s["id"] for s in samples] == ["r1", "r4"]


def test_deeply_nested_array_element_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text(f"[{line(1)}, {DEEP}, {line(3)}]", "utf-8")
    conversations, problems = read(path)
    assert ids(conversations)[:1] == ["r1"]
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1
    assert errors[0].location.index == 1


# ---------------------------------------------------------------------------------------------
# encodings and line endings


def test_utf8_bom_jsonl(tmp_path: Path, cli) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + f"{line(1)}\n{line(2)}\n".encode())
    conversations, problems = read(path)
    assert problems == []
    assert ids(conversations) == ["r1", "r2"]
    assert conversations[0].messages[0].content == "question 1"
    code, (report,) = detect_json(cli, path)
    assert code == 0
    assert (report["readable"], report["unreadable"]) == (2, 0)


def test_utf8_bom_json_array(tmp_path: Path, cli) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([record(1), record(2)]).encode())
    conversations, problems = read(path)
    assert problems == []
    assert ids(conversations) == ["r1", "r2"]
    assert [c.location.index for c in conversations if c.location] == [0, 1]
    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 0
    assert [s["id"] for s in samples] == ["r1", "r2"]


def test_utf8_bom_pretty_printed_object(tmp_path: Path) -> None:
    path = tmp_path / "bom_pretty.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(record(1), indent=2).encode())
    conversations, problems = read(path)
    assert problems == []
    assert ids(conversations) == ["r1"]


def test_crlf_line_endings(tmp_path: Path, cli) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(f"{line(1)}\r\n{line(2)}\r\n\r\n{line(3)}\r\n".encode())
    conversations, problems = read(path)
    assert problems == []
    assert ids(conversations) == ["r1", "r2", "r3"]
    assert [c.location.line for c in conversations if c.location] == [1, 2, 4]
    assert all("\r" not in m.content for c in conversations for m in c.messages)
    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 0
    assert len(samples) == 3


def test_crlf_pretty_printed_object(tmp_path: Path) -> None:
    path = tmp_path / "crlf_pretty.json"
    path.write_bytes(json.dumps(record(7), indent=2).replace("\n", "\r\n").encode())
    conversations, problems = read(path)
    assert problems == []
    assert ids(conversations) == ["r7"]


def _with_bad_bytes(i: int) -> bytes:
    """Record ``i`` with two invalid UTF-8 bytes inside the user's text."""
    raw = line(i).encode()
    marker = f"question {i}".encode()
    assert marker in raw
    return raw.replace(marker, b"question \xff\xfe" + str(i).encode())


def test_invalid_utf8_in_jsonl_is_repaired_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(line(1).encode() + b"\n" + _with_bad_bytes(2) + b"\n" + line(3).encode())
    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r2", "r3"]
    repaired = conversations[1]
    assert repaired.messages[0].content == "question \ufffd\ufffd2"
    assert [(p.severity, p.code, p.location.line) for p in problems] == [
        ("warning", "invalid-utf8", 2)
    ]


def test_invalid_utf8_in_jsonl_through_the_cli(tmp_path: Path, cli) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(line(1).encode() + b"\n" + _with_bad_bytes(2) + b"\n")
    code, (report,) = detect_json(cli, path)
    assert code == 0  # repaired: a warning, not an unreadable record
    assert (report["readable"], report["unreadable"], report["warnings"]) == (2, 0, 1)
    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 0
    assert [s["id"] for s in samples] == ["r1", "r2"]
    assert samples[1]["messages"][0]["content"] == "question \ufffd\ufffd2"
    assert "[invalid-utf8]" in result.stderr


def test_invalid_utf8_in_json_array_is_repaired_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    body = json.dumps([record(1), record(2)]).encode().replace(b"question 2", b"question \xff2")
    path.write_bytes(body)
    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r2"]
    assert conversations[1].messages[0].content == "question \ufffd2"
    assert [(p.severity, p.code) for p in problems] == [("warning", "invalid-utf8")]
    assert problems[0].location.path == str(path)


def test_invalid_utf8_in_pretty_printed_object(tmp_path: Path) -> None:
    path = tmp_path / "latin_pretty.json"
    body = json.dumps(record(5), indent=2).encode().replace(b"answer 5", b"answer \xc35")
    path.write_bytes(body)
    conversations, problems = read(path)
    assert ids(conversations) == ["r5"]
    assert conversations[0].messages[1].content == "answer \ufffd5"
    assert [(p.severity, p.code) for p in problems] == [("warning", "invalid-utf8")]


# ---------------------------------------------------------------------------------------------
# empty input


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.jsonl", b""),
        ("empty.json", b""),
        ("blank.jsonl", b"  \n\n\t \r\n"),
        ("blank.json", b"\n   \n"),
        ("empty_array.json", b"[]"),
        ("empty_array_spaced.json", b" [\n ]\n"),
        ("bom_only.jsonl", b"\xef\xbb\xbf"),
    ],
)
def test_empty_files_are_a_warning(tmp_path: Path, cli, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    conversations, problems = read(path)
    assert conversations == []
    assert [(p.severity, p.code, p.location.path) for p in problems] == [
        ("warning", "empty-file", str(path))
    ]

    code, (report,) = detect_json(cli, path)
    assert code == 0
    assert (report["records"], report["unreadable"], report["warnings"]) == (0, 0, 1)

    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 0
    assert samples == []
    assert (tmp_path / "out.jsonl").exists()
    assert "[empty-file]" in result.stderr
    assert "0 samples" in result.stderr


# ---------------------------------------------------------------------------------------------
# records that are not conversations


def test_object_matching_no_format(tmp_path: Path, cli) -> None:
    path = tmp_path / "odd.jsonl"
    odd = {"id": "odd-1", "question": "hi", "reply": "hello"}
    write_jsonl(path, [record(1), odd, {"conversations": "not a list"}, record(4)])
    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r4"]
    assert [(p.severity, p.code, p.location.line) for p in problems] == [
        ("error", "unknown-format", 2),
        ("error", "unknown-format", 3),
    ]
    first = problems[0]
    assert first.record_id == "odd-1"
    assert "id, question, reply" in first.message  # names the keys it found
    assert "conversations" in problems[1].message

    code, (report,) = detect_json(cli, path)
    assert code == 1
    assert (report["records"], report["readable"], report["unreadable"]) == (4, 2, 2)
    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 1
    assert [s["id"] for s in samples] == ["r1", "r4"]
    assert "2 unreadable records" in result.stderr


def test_non_object_lines(tmp_path: Path, cli) -> None:
    path = tmp_path / "scalars.jsonl"
    path.write_text(f'{line(1)}\n42\n[1, 2]\n"text"\nnull\ntrue\n{line(7)}\n', "utf-8")
    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r7"]
    assert [(p.severity, p.code, p.location.line) for p in problems] == [
        ("error", "not-an-object", n) for n in range(2, 7)
    ]
    kinds = ["number", "array", "string", "null", "boolean"]
    for problem, kind in zip(problems, kinds, strict=True):
        assert f"JSON {kind}" in problem.message

    code, (report,) = detect_json(cli, path)
    assert code == 1
    assert (report["readable"], report["unreadable"]) == (2, 5)
    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 1
    assert len(samples) == 2
    assert "5 unreadable records" in result.stderr


def test_non_object_elements_of_a_json_array(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([record(0), 3, ["x"], record(3)]), "utf-8")
    conversations, problems = read(path)
    assert ids(conversations) == ["r0", "r3"]
    assert [(p.code, p.location.index, p.location.line) for p in problems] == [
        ("not-an-object", 1, None),
        ("not-an-object", 2, None),
    ]
    assert str(problems[0]).startswith(f"{path}[1]: error:")


@pytest.mark.parametrize(
    "empty",
    [
        {"id": "e", "conversations": []},
        {"id": "e", "messages": []},
        {"id": "e", "data": []},
        {"id": "e", "conversations": [{"from": "narrator", "value": "x"}]},
        {"id": "e", "messages": ["not an object"]},
    ],
    ids=["sharegpt", "openai", "pangu", "only-unknown-roles", "only-bad-messages"],
)
def test_empty_conversation(tmp_path: Path, cli, empty: dict[str, Any]) -> None:
    path = tmp_path / "empty_conv.jsonl"
    write_jsonl(path, [record(1), empty, record(3)])
    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r3"]
    error = assert_one_error(problems, "empty-conversation", path, line=2)
    assert error.record_id == "e"

    code, (report,) = detect_json(cli, path)
    assert code == 1
    assert (report["readable"], report["unreadable"], report["samples"]) == (2, 1, 2)


def test_conversation_without_a_reply(tmp_path: Path, cli) -> None:
    path = tmp_path / "no_reply.jsonl"
    lonely = {"id": "lonely", "conversations": [{"from": "human", "value": "anyone there?"}]}
    write_jsonl(path, [lonely, record(2)])

    conversations, problems = read(path)
    assert ids(conversations) == ["lonely", "r2"]  # readable: the reader keeps it
    assert problems == []

    code, (report,) = detect_json(cli, path)
    assert code == 0  # a warning, not an unreadable record
    assert (report["readable"], report["unreadable"], report["samples"]) == (2, 0, 1)
    assert [(p["severity"], p["code"], p["record_id"]) for p in report["problems"]] == [
        ("warning", "no-reply", "lonely")
    ]

    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 0
    assert [s["id"] for s in samples] == ["r2"]
    assert "[no-reply]" in result.stderr
    assert "1 without an assistant reply" in result.stderr


def test_unknown_roles_are_skipped_and_the_rest_kept(tmp_path: Path, cli) -> None:
    path = tmp_path / "roles.jsonl"
    rec = {
        "id": "roles",
        "conversations": [
            {"from": "human", "value": "hi"},
            {"from": "narrator", "value": "meanwhile..."},
            {"from": "gpt", "value": "hello"},
            {"from": 7, "value": "numeric role"},
            {"from": "human", "value": "bye"},
            {"from": "gpt", "value": "see you"},
        ],
    }
    write_jsonl(path, [rec])
    conversations, problems = read(path)
    (conversation,) = conversations
    assert [(m.role, m.content) for m in conversation.messages] == [
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "bye"),
        ("assistant", "see you"),
    ]
    assert [(p.severity, p.code, p.location.line, p.record_id) for p in problems] == [
        ("warning", "unknown-role", 1, "roles"),
        ("warning", "unknown-role", 1, "roles"),
    ]
    assert "message 1" in problems[0].message
    assert "'narrator'" in problems[0].message
    assert "message 3" in problems[1].message

    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 0
    assert [s["id"] for s in samples] == ["roles_t1", "roles_t2"]
    assert "2 warnings" in result.stderr


@pytest.mark.parametrize("key", ["messages", "data"])
def test_unknown_roles_in_openai_and_pangu(tmp_path: Path, key: str) -> None:
    path = tmp_path / "roles.jsonl"
    rec = {
        key: [
            {"role": "user", "content": "q"},
            {"role": "critic", "content": "meh"},
            {"role": "assistant", "content": "a"},
        ]
    }
    write_jsonl(path, [rec])
    conversations, problems = read(path)
    (conversation,) = conversations
    assert [m.role for m in conversation.messages] == ["user", "assistant"]
    assert [(p.code, p.location.line) for p in problems] == [("unknown-role", 1)]


# ---------------------------------------------------------------------------------------------
# big input


def test_ten_megabyte_message(tmp_path: Path, cli) -> None:
    path = tmp_path / "big.jsonl"
    huge = "lorem ipsum " * 900_000  # 10.8 MB
    big = {
        "id": "big",
        "messages": [
            {"role": "user", "content": "summarise: " + huge},
            {"role": "assistant", "content": "It repeats lorem ipsum."},
        ],
    }
    write_jsonl(path, [record(0), big, record(2)])

    conversations, problems = read(path)
    assert ids(conversations) == ["r0", "big", "r2"]
    assert len(conversations[1].messages[0].content) == len(huge) + len("summarise: ")
    assert len(huge) > LONG_MESSAGE_CHARS
    assert [(p.severity, p.code, p.location.line, p.record_id) for p in problems] == [
        ("warning", "long-message", 2, "big")
    ]

    code, (report,) = detect_json(cli, path)
    assert code == 0
    assert (report["readable"], report["samples"], report["warnings"]) == (3, 3, 1)

    result, samples = slice_to(cli, tmp_path / "out.jsonl", path, "--max-chars", "2000")
    assert result.exit_code == 0
    assert [s["id"] for s in samples] == ["r0", "big", "r2"]
    cut = samples[1]
    truncation = cut["truncation"]
    assert truncation["original_chars"] > 10_000_000
    assert truncation["kept_chars"] <= 2000 + 100  # plus the "[N characters omitted]" mark
    assert truncation["shortened_messages"] == 1
    user, reply = cut["messages"]
    assert user["content"].startswith("summarise: lorem ipsum")
    assert "characters omitted]" in user["content"]
    assert reply["content"] == "It repeats lorem ipsum."  # the reply is kept whole
    assert "truncation" not in samples[0]
    assert "truncation" not in samples[2]
    assert "1 truncated" in result.stderr


# ---------------------------------------------------------------------------------------------
# JSON arrays, compressed files, pretty-printed documents


def test_json_array_damaged_in_the_middle(tmp_path: Path, cli) -> None:
    path = tmp_path / "damaged.json"
    good = ", ".join(line(i) for i in range(3))
    path.write_text(f"[{good}, {line(3)[:-20]}, {line(4)}, {line(5)}]", "utf-8")

    conversations, problems = read(path)
    assert ids(conversations) == ["r0", "r1", "r2"]
    assert [c.location.index for c in conversations if c.location] == [0, 1, 2]
    error = assert_one_error(problems, "invalid-json", path, index=3)
    assert "3" in error.message
    assert len(problems) == 1

    code, (report,) = detect_json(cli, path)
    assert code == 1
    assert (report["readable"], report["unreadable"], report["samples"]) == (3, 1, 3)
    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 1
    assert [s["id"] for s in samples] == ["r0", "r1", "r2"]
    assert f"{path}[3]" in result.stderr


def test_json_array_cut_off_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text(json.dumps([record(0), record(1), record(2)])[:-30], "utf-8")
    conversations, problems = read(path)
    assert ids(conversations) == ["r0", "r1"]
    assert_one_error(problems, "invalid-json", path, index=2)


def _normalized(conversations: list[Conversation]) -> list[tuple[str, list[tuple[str, str]]]]:
    return [(c.id, [(m.role, m.content) for m in c.messages]) for c in conversations]


def test_gzip_files_read_like_plain_ones(tmp_path: Path, cli) -> None:
    records = [record(1), record(2, metadata={"source": "gz"})]
    plain_lines = write_jsonl(tmp_path / "plain.jsonl", records)
    plain_array = tmp_path / "plain.json"
    plain_array.write_text(json.dumps(records), "utf-8")
    gz_lines = tmp_path / "packed.jsonl.gz"
    gz_lines.write_bytes(gzip.compress(plain_lines.read_bytes()))
    gz_array = tmp_path / "packed.json.gz"
    gz_array.write_bytes(gzip.compress(plain_array.read_bytes()))

    for plain, packed, key in [(plain_lines, gz_lines, "line"), (plain_array, gz_array, "index")]:
        expected, expected_problems = read(plain)
        got, problems = read(packed)
        assert problems == expected_problems == []
        assert _normalized(got) == _normalized(expected)
        where = [1, 2] if key == "line" else [0, 1]
        assert [getattr(c.location, key) for c in expected] == where
        assert [getattr(c.location, key) for c in got] == where
        assert all(c.location is not None and c.location.path == str(packed) for c in got)
        assert got[1].metadata == {"source": "gz"}

        result, samples = slice_to(cli, tmp_path / f"{packed.name}.out.jsonl", packed)
        assert result.exit_code == 0
        assert [s["id"] for s in samples] == ["r1", "r2"]


def test_gzip_jsonl_with_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(gzip.compress(f"{line(1)}\n{{broken\n{line(3)}\n".encode()))
    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r3"]
    assert_one_error(problems, "invalid-json", path, line=2)


def test_gzip_json_array_with_bom_bad_bytes_and_damage(tmp_path: Path) -> None:
    # A compressed array is streamed (its size is unknown): the same repairs must apply.
    body = json.dumps([record(1), record(2), record(3)]).encode()
    bom = tmp_path / "bom.json.gz"
    bom.write_bytes(gzip.compress(b"\xef\xbb\xbf" + body))
    conversations, problems = read(bom)
    assert (ids(conversations), problems) == (["r1", "r2", "r3"], [])

    latin = tmp_path / "latin.json.gz"
    latin.write_bytes(gzip.compress(body.replace(b"question 2", b"question \xff2")))
    conversations, problems = read(latin)
    assert ids(conversations) == ["r1", "r2", "r3"]
    assert conversations[1].messages[0].content == "question \ufffd2"
    assert [(p.severity, p.code) for p in problems] == [("warning", "invalid-utf8")]

    damaged = tmp_path / "damaged.json.gz"
    damaged.write_bytes(gzip.compress(f"[{line(1)}, {line(2)[:-20]}, {line(3)}]".encode()))
    conversations, problems = read(damaged)
    assert ids(conversations) == ["r1"]
    assert_one_error(problems, "invalid-json", damaged, index=1)

    empty = tmp_path / "empty.json.gz"
    empty.write_bytes(gzip.compress(b"[]"))
    conversations, problems = read(empty)
    assert conversations == []
    assert [(p.severity, p.code) for p in problems] == [("warning", "empty-file")]


def test_json_array_with_bad_bytes_and_damage(tmp_path: Path) -> None:
    path = tmp_path / "both.json"
    body = f"[{line(1)}, {line(2)}, {line(3)[:-20]}, {line(4)}]".encode()
    path.write_bytes(body.replace(b"question 2", b"question \xff2"))
    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r2"]
    assert conversations[1].messages[0].content == "question \ufffd2"
    assert sorted((p.severity, p.code) for p in problems) == [
        ("error", "invalid-json"),
        ("warning", "invalid-utf8"),
    ]
    assert_one_error(problems, "invalid-json", path, index=2)


def test_cut_off_gzip_file_is_reported_and_earlier_records_kept(tmp_path: Path, cli) -> None:
    path = tmp_path / "cut.jsonl.gz"
    packed = gzip.compress("".join(f"{line(i)}\n" for i in range(50)).encode())
    path.write_bytes(packed[: len(packed) * 2 // 3])
    conversations, problems = read(path)
    assert conversations  # what could be decompressed is kept
    assert ids(conversations) == [f"r{i}" for i in range(len(conversations))]
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) >= 1
    assert errors[-1].code in {"unreadable-file", "truncated-json"}
    assert all(p.location.path == str(path) for p in problems)

    code, (report,) = detect_json(cli, path)
    assert code == 1
    assert report["readable"] == len(conversations)
    assert errors[-1].code in {p["code"] for p in report["problems"] if p["severity"] == "error"}
    file_level = errors[-1].code == "unreadable-file"
    assert report["file_errors"] == (1 if file_level else 0)
    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 1
    assert len(samples) == len(conversations)
    assert ("1 unreadable file" if file_level else "1 unreadable record") in result.stderr


def test_not_gzip_despite_the_name(tmp_path: Path, cli) -> None:
    path = tmp_path / "liar.jsonl.gz"
    path.write_text(f"{line(1)}\n", "utf-8")
    conversations, problems = read(path)
    assert conversations == []
    assert [(p.severity, p.code, p.location.path) for p in problems] == [
        ("error", "unreadable-file", str(path))
    ]
    code, _ = detect_json(cli, path)
    assert code == 1


def test_pretty_printed_single_object(tmp_path: Path, cli) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(record(9, metadata={"k": [1, 2]}), indent=2), "utf-8")
    conversations, problems = read(path)
    assert problems == []
    (conversation,) = conversations
    assert conversation.id == "r9"
    assert conversation.metadata == {"k": [1, 2]}
    assert conversation.location is not None
    assert conversation.location.line == 1

    code, (report,) = detect_json(cli, path)
    assert code == 0
    assert (report["records"], report["samples"]) == (1, 1)
    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 0
    assert [s["id"] for s in samples] == ["r9"]


def test_pretty_printed_object_cut_off(tmp_path: Path, cli) -> None:
    path = tmp_path / "cut_pretty.json"
    text = json.dumps(record(9), indent=2)[:-3]
    path.write_text(text, "utf-8")
    conversations, problems = read(path)
    assert conversations == []
    # One damaged document is one error (not one per line), pointing into the file.
    error = assert_one_error(problems, "truncated-json", path)
    assert len(problems) == 1
    assert error.location.line is not None
    assert 1 <= error.location.line <= text.count("\n") + 1
    code, (report,) = detect_json(cli, path)
    assert code == 1
    assert (report["records"], report["unreadable"]) == (1, 1)


def test_pretty_printed_object_damaged_inside(tmp_path: Path) -> None:
    path = tmp_path / "bad_pretty.json"
    text = json.dumps(record(9), indent=2).replace('"gpt"', '"gpt" oops')
    path.write_text(text, "utf-8")
    conversations, problems = read(path)
    assert conversations == []
    damaged_line = next(n for n, t in enumerate(text.splitlines(), 1) if "oops" in t)
    assert_one_error(problems, "invalid-json", path, line=damaged_line)
    assert len(problems) == 1


def test_pretty_printed_object_in_a_jsonl_file(tmp_path: Path) -> None:
    # The layout is sniffed from the content, not trusted from the extension: a single
    # pretty-printed object saved as .jsonl is still one record, not one error per line.
    path = tmp_path / "pretty.jsonl"
    path.write_text(json.dumps(record(4), indent=2), "utf-8")
    conversations, problems = read(path)
    assert [p.code for p in problems] == []
    assert ids(conversations) == ["r4"]


def test_pretty_printed_object_gzipped(tmp_path: Path) -> None:
    path = tmp_path / "pretty.json.gz"
    path.write_bytes(gzip.compress(json.dumps(record(4), indent=2).encode()))
    conversations, problems = read(path)
    assert problems == []
    assert ids(conversations) == ["r4"]


def test_jsonl_content_in_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "actually_lines.json"
    path.write_text(f"{line(1)}\n{line(2)}\n", "utf-8")
    conversations, problems = read(path)
    assert problems == []
    assert ids(conversations) == ["r1", "r2"]
    assert [c.location.line for c in conversations if c.location] == [1, 2]


# ---------------------------------------------------------------------------------------------
# directories


def _mixed_directory(root: Path) -> dict[str, Path]:
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    files = {
        "good": write_jsonl(root / "a_good.jsonl", [record(1), record(2)]),
        "bad": root / "b_bad.jsonl",
        "array": root / "sub" / "c_array.json",
        "empty": root / "sub" / "d_empty.json",
    }
    files["bad"].write_text(f"{line(3)}\n{{nope\n{line(5)}\n", "utf-8")
    files["array"].write_text(json.dumps([record(6), 17]), "utf-8")
    files["empty"].write_text("[]", "utf-8")
    # Not picked up by a directory walk:
    (root / "notes.txt").write_text("not data", "utf-8")
    (root / ".hidden" / "x.jsonl").write_text(f"{line(99)}\n", "utf-8")
    (root / ".dot.jsonl").write_text(f"{line(98)}\n", "utf-8")
    (root / "metadata.json").write_text('{"name": "dataset"}', "utf-8")
    return files


def test_directory_mixing_good_and_bad_files(tmp_path: Path, cli) -> None:
    root = tmp_path / "dataset"
    files = _mixed_directory(root)

    conversations, problems = read(root)
    assert ids(conversations) == ["r1", "r2", "r3", "r5", "r6"]
    problems = [p for p in problems if p.code != "skipped-files"]
    assert sorted((p.location.path, p.code) for p in problems) == sorted(
        [
            (str(files["bad"]), "invalid-json"),
            (str(files["array"]), "not-an-object"),
            (str(files["empty"]), "empty-file"),
        ]
    )

    code, reports = detect_json(cli, root)
    assert code == 1
    by_path = {r["path"]: r for r in reports}
    assert set(by_path) == {str(p) for p in files.values()}
    assert (by_path[str(files["good"])]["readable"], by_path[str(files["good"])]["unreadable"]) == (
        2,
        0,
    )
    assert by_path[str(files["good"])]["problems"] == []
    assert by_path[str(files["bad"])]["unreadable"] == 1
    assert by_path[str(files["bad"])]["problems"][0]["location"]["line"] == 2
    assert by_path[str(files["array"])]["problems"][0]["location"]["index"] == 1
    assert by_path[str(files["empty"])]["problems"][0]["code"] == "empty-file"
    assert sum(r["samples"] for r in reports) == 5

    human = cli("detect", root)
    assert human.exit_code == 1
    assert "Traceback" not in human.stdout + human.stderr
    assert "total:" in human.stdout

    result, samples = slice_to(cli, tmp_path / "out.jsonl", root)
    assert result.exit_code == 1
    assert sorted(s["id"] for s in samples) == ["r1", "r2", "r3", "r5", "r6"]
    assert "2 unreadable records" in result.stderr
    assert "1 warning" in result.stderr


def test_directory_of_good_files_exits_zero(tmp_path: Path, cli) -> None:
    root = tmp_path / "clean"
    root.mkdir()
    write_jsonl(root / "one.jsonl", [record(1)])
    (root / "two.json").write_text(json.dumps([record(2)]), "utf-8")
    code, reports = detect_json(cli, root)
    assert code == 0
    assert len(reports) == 2
    result, samples = slice_to(cli, tmp_path / "out.jsonl", root)
    assert result.exit_code == 0
    assert len(samples) == 2


def test_warnings_alone_do_not_fail_detect(tmp_path: Path, cli) -> None:
    path = write_jsonl(tmp_path / "warn.jsonl", [record(1), record(1)])  # duplicate id
    code, (report,) = detect_json(cli, path)
    assert code == 0
    assert report["warnings"] == 1


# ---------------------------------------------------------------------------------------------
# paths that cannot be read


@pytest.mark.parametrize("command", ["detect", "slice"])
def test_missing_path_is_one_error_line(tmp_path: Path, cli, command: str) -> None:
    missing = tmp_path / "nowhere" / "data.jsonl"
    out = tmp_path / "out.jsonl"
    args = [command, missing] + (["-o", out] if command == "slice" else [])
    result = cli(*args)
    assert result.exit_code != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    lines = [text for text in result.stderr.splitlines() if text.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert str(missing) in lines[0]
    assert result.stdout.strip() == ""
    assert not out.exists()
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_missing_path_among_good_ones_stops_before_reading(tmp_path: Path, cli) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [record(1)])
    result = cli("detect", good, tmp_path / "missing.jsonl")
    assert result.exit_code != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "error:" in result.stderr
    assert "missing.jsonl" in result.stderr


def test_missing_path_from_the_real_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sftlabel", "detect", str(tmp_path / "missing.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().startswith("error:")
    assert len(done.stderr.strip().splitlines()) == 1


def test_directory_without_data_files(tmp_path: Path, cli) -> None:
    (tmp_path / "readme.txt").write_text("nothing here", "utf-8")
    result = cli("detect", tmp_path)
    assert result.exit_code != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().startswith("error:")


# ---------------------------------------------------------------------------------------------
# ids


def test_duplicate_ids_get_a_suffix_and_a_warning(tmp_path: Path, cli) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl", [record(1), record(1), record(2), record(1)])
    conversations, problems = read(path)
    assert ids(conversations) == ["r1", "r1~2", "r2", "r1~3"]
    assert [(p.severity, p.code, p.location.line, p.record_id) for p in problems] == [
        ("warning", "duplicate-id", 2, "r1~2"),
        ("warning", "duplicate-id", 4, "r1~3"),
    ]
    assert "'r1'" in problems[0].message
    assert "'r1~2'" in problems[0].message

    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 0
    assert [s["id"] for s in samples] == ["r1", "r1~2", "r2", "r1~3"]
    assert "[duplicate-id]" in result.stderr


def test_duplicate_ids_across_files_of_one_run(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [record(1)])
    second = write_jsonl(tmp_path / "b.jsonl", [record(1), record(1), record(2)])
    conversations, problems = read(first, second)
    # Disambiguated by the file, not by a counter over the run: b's ids do not depend on how
    # many other files had them, and a file's repeats are numbered within the file.
    assert ids(conversations) == ["r1", "r1@b.jsonl", "r1@b.jsonl~2", "r2"]
    assert [(p.code, p.location.path) for p in problems] == [("duplicate-id", str(second))] * 2
    assert "another file" in problems[0].message
    alone, _ = read(second)
    assert ids(alone) == ["r1", "r1~2", "r2"]


def test_ids_do_not_depend_on_the_other_files_of_the_run(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    write_jsonl(root / "train" / "a.jsonl", [record(1), record(2)])
    write_jsonl(root / "val" / "a.jsonl", [record(1), record(3)])
    write_jsonl(root / "val" / "b.jsonl", [record(1), record(4)])
    both, _ = read(root)
    assert ids(both) == ["r1", "r2", "r1@val/a.jsonl", "r3", "r1@val/b.jsonl", "r4"]
    (root / "train" / "a.jsonl").unlink()
    (root / "train" / "c.jsonl").write_text("", "utf-8")
    fewer, _ = read(root)
    # val/b.jsonl keeps its ids when a file before it goes away (it still clashes with val/a)
    assert ids(fewer) == ["r1", "r3", "r1@val/b.jsonl", "r4"]


def test_an_id_that_looks_like_a_suffix_is_not_reused(tmp_path: Path) -> None:
    records = [record(1), {**record(1), "id": "r1~2"}, record(1)]
    conversations, _ = read(write_jsonl(tmp_path / "tilde.jsonl", records))
    assert ids(conversations) == ["r1", "r1~2", "r1~3"]


def _anonymous(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": text},
            {"role": "assistant", "content": f"reply to {text}"},
        ],
        **extra,
    }


def test_records_without_an_id_get_a_stable_one(tmp_path: Path, cli) -> None:
    path = write_jsonl(tmp_path / "anon.jsonl", [_anonymous("a"), _anonymous("b")])
    first, problems = read(path)
    second, _ = read(path)
    assert problems == []
    assert ids(first) == ids(second)
    assert all(c.id.startswith("rec-") and c.id_generated for c in first)
    assert len(set(ids(first))) == 2

    run1, samples1 = slice_to(cli, tmp_path / "one.jsonl", path)
    run2, samples2 = slice_to(cli, tmp_path / "two.jsonl", path)
    assert run1.exit_code == run2.exit_code == 0
    assert [s["id"] for s in samples1] == [s["id"] for s in samples2] == ids(first)


def test_generated_id_depends_on_content_not_on_key_order_or_position(tmp_path: Path) -> None:
    rec = _anonymous("same", source="x")
    reordered = dict(reversed(list(rec.items())))
    one, _ = read(write_jsonl(tmp_path / "one.jsonl", [_anonymous("other"), rec]))
    two, _ = read(write_jsonl(tmp_path / "two.jsonl", [reordered]))
    assert one[1].id == two[0].id
    assert one[0].id != one[1].id


def test_identical_records_without_an_id_do_not_collide(tmp_path: Path, cli) -> None:
    path = write_jsonl(tmp_path / "twins.jsonl", [_anonymous("twin"), _anonymous("twin")])
    conversations, problems = read(path)
    base = conversations[0].id
    assert base.startswith("rec-")
    assert ids(conversations) == [base, f"{base}~2"]
    assert [(p.severity, p.code, p.location.line) for p in problems] == [
        ("warning", "duplicate-id", 2)
    ]
    assert "identical content" in problems[0].message

    result, samples = slice_to(cli, tmp_path / "out.jsonl", path)
    assert result.exit_code == 0
    assert len({s["id"] for s in samples}) == 2


def test_ids_stay_unique_over_many_records(tmp_path: Path) -> None:
    records = [record(i % 3000) for i in range(6000)]
    conversations, problems = read(write_jsonl(tmp_path / "many.jsonl", records))
    assert len({c.id for c in conversations}) == 6000
    assert ids(conversations)[:2] == ["r0", "r1"]
    assert ids(conversations)[3000:3002] == ["r0~2", "r1~2"]
    assert len(problems) == 3000


def test_the_id_table_keeps_large_values_and_grows() -> None:
    from sftlabel.formats._ids import IdTable

    table = IdTable(capacity=4)
    for i in range(5000):
        table.put(f"id{i}", i % 7, i % 3)
    table.put("long", 5_000_000, 2000)  # past the packed 32-bit value
    assert len(table) == 5001
    assert table.get("id4999") == (4999 % 7, 4999 % 3)
    assert table.get("long") == (5_000_000, 2000)
    assert table.get("missing") is None
