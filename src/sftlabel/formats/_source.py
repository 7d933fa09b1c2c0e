"""Finding input files and streaming raw JSON records out of them.

A file is JSON Lines, a JSON array or a single JSON object, optionally gzip-compressed; the layout
is sniffed from the content, not trusted from the extension. Everything streams: JSONL line by
line, large arrays element by element (ijson), so memory stays flat however big the input is.
Damaged input becomes a :class:`~sftlabel.model.Problem` with the file and line (or array index),
and reading goes on with the next record.
"""

from __future__ import annotations

import codecs
import gzip
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

import ijson
import msgspec

from sftlabel.formats._columnar import columnar_kind, iter_columnar
from sftlabel.formats._discover import SKIPPED_NAMES, SUFFIXES, Scan, discover, scan

__all__ = [
    "SKIPPED_NAMES",
    "SUFFIXES",
    "RawRecord",
    "Scan",
    "discover",
    "iter_raw",
    "scan",
]
from sftlabel.model import Location, Problem

WHOLE_FILE_LIMIT = 16 * 1024 * 1024
"""JSON arrays up to this size are decoded in one go (fastest); larger ones are streamed."""

_BOM = b"\xef\xbb\xbf"
_decoder = msgspec.json.Decoder()


class RawRecord(NamedTuple):
    """One decoded JSON value and where it came from."""

    data: Any
    location: Location


def _open(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return cast("IO[bytes]", gzip.open(path, "rb"))
    return path.open("rb", buffering=1024 * 1024)


def iter_raw(path: Path) -> Iterator[RawRecord | Problem]:
    """Yield every record of one file, or a Problem where a record (or the file) is unreadable."""
    try:
        with _open(path) as handle:
            # peek() returns the read buffer (up to 1 MiB here, several KiB for gzip).
            head = handle.peek(1) if hasattr(handle, "peek") else b""
            kind = columnar_kind(path, head)
            if kind is not None:
                for item in iter_columnar(path, kind):
                    yield item if isinstance(item, Problem) else RawRecord(*item)
            elif _first_significant(head) == ord("["):
                yield from _iter_array(handle, path)
            else:
                yield from _iter_lines_or_document(handle, path)
    except (OSError, EOFError, zlib.error) as exc:
        yield Problem(
            severity="error",
            code="unreadable-file",
            message=f"cannot read file: {exc}",
            location=Location(path=str(path)),
        )
    except Exception as exc:  # never let one file stop a run over many
        yield Problem(
            severity="error",
            code="reader-failed",
            message=f"reading stopped: {type(exc).__name__}: {exc}",
            location=Location(path=str(path)),
        )


def _first_significant(head: bytes) -> int | None:
    stripped = head.removeprefix(_BOM).lstrip()
    return stripped[0] if stripped else None


def _chain_lines(prefix: bytes, handle: IO[bytes]) -> Iterator[bytes]:
    """The lines of ``prefix`` (already read) followed by the rest of ``handle``."""
    lines = prefix.splitlines(keepends=True)
    tail = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
    yield from lines
    for line in handle:
        yield tail + line
        tail = b""
    if tail:
        yield tail


def _empty_file(path: Path) -> Problem:
    return Problem(
        severity="warning",
        code="empty-file",
        message="file is empty (no records)",
        location=Location(path=str(path)),
    )


def _iter_lines_or_document(handle: IO[bytes], path: Path) -> Iterator[RawRecord | Problem]:
    """JSONL, or one (pretty-printed) JSON object spread over several lines."""
    first_line = handle.readline()
    stripped = first_line.removeprefix(_BOM).strip()
    complete = True
    try:
        _decode(stripped)
    except msgspec.DecodeError:
        complete = False
    if complete:
        yield from _iter_jsonl(_prepend(first_line, handle), path)
        return
    # The first line is not a whole value: a pretty-printed document, or JSONL with a damaged
    # first line. Try the document reading (bounded); if it fails, read line by line instead.
    rest = handle.read(WHOLE_FILE_LIMIT)
    more = handle.read(1)
    data = first_line + rest + more
    if not more and not data.removeprefix(_BOM).strip():
        yield _empty_file(path)
        return
    if not more:
        try:
            value, repaired = _decode_document(data)
        except msgspec.DecodeError as exc:
            if not _has_complete_line(data):
                # One damaged document, not JSON Lines: one error, not one per line.
                yield _json_problem(exc, _document_location(path, data, exc), len(data))
                return
        else:
            location = Location(path=str(path), line=1)
            yield from _repaired(location, repaired)
            yield RawRecord(value, location)
            return
    yield from _iter_jsonl(_chain_lines(data, handle), path)


def _has_complete_line(data: bytes, probe: int = 200) -> bool:
    """Whether any of the first non-blank lines is a JSON value on its own (JSON Lines)."""
    checked = 0
    for line in data.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        try:
            _decode(stripped.removeprefix(_BOM))
        except msgspec.DecodeError:
            pass
        else:
            return True
        checked += 1
        if checked >= probe:
            break
    return False


def _document_location(path: Path, data: bytes, exc: msgspec.DecodeError) -> Location:
    """The line of a decode error in a whole document (msgspec reports a byte offset)."""
    found = re.search(r"\(byte (\d+)\)", str(exc))
    offset = int(found.group(1)) if found else len(data)
    return Location(path=str(path), line=data.count(b"\n", 0, offset) + 1)


def _prepend(first: bytes, handle: IO[bytes]) -> Iterator[bytes]:
    yield first
    yield from handle


def _decode(data: bytes) -> tuple[Any, tuple[str, ...]]:
    """Decode one JSON value, repairing what can be repaired; returns the value and the codes of
    the repairs made (``invalid-utf8``: invalid UTF-8 bytes replaced with U+FFFD;
    ``lone-surrogate``: escaped lone surrogates such as ``"\\ud800"`` replaced with U+FFFD).

    Raises ``msgspec.DecodeError`` when the JSON itself is invalid.
    """
    try:
        try:
            return _decoder.decode(data), ()
        except (UnicodeDecodeError, msgspec.DecodeError):
            # msgspec < 0.23 raises UnicodeDecodeError for invalid UTF-8, 0.23 and newer a
            # DecodeError ("Invalid UTF-8 encoded string"); a lone surrogate escape gives
            # "invalid utf-16 surrogate pair", or "truncated" at the end of a string. Repair
            # only those (this is the failure path: the checks cost nothing on good input).
            repairs: list[str] = []
            fixed = data
            if not _is_utf8(fixed):
                fixed = fixed.decode("utf-8", "replace").encode("utf-8")
                repairs.append("invalid-utf8")
            if b"\\u" in fixed:
                unpaired = _SURROGATE.sub(_replace_surrogate, fixed)
                if unpaired != fixed:
                    fixed = unpaired
                    repairs.append("lone-surrogate")
            if not repairs:
                raise
            return _decoder.decode(fixed), tuple(repairs)
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deeply to be read") from None


# A \\u escape of a high surrogate (and the low one that may follow it), or of a low surrogate;
# the run of backslashes before the `u` tells an escape (odd) from an escaped backslash (even).
_SURROGATE = re.compile(
    rb"(\\+)u([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
    rb"|(\\+)u([dD][c-fC-F][0-9a-fA-F]{2})"
)


_HIGH_BEFORE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}$")


def _replace_surrogate(match: re.Match[bytes]) -> bytes:
    slashes = match.group(1) if match.group(1) is not None else match.group(4)
    if len(slashes) % 2 == 0:  # an escaped backslash followed by the letters "ud8..."
        return match.group(0)
    if match.group(1) is not None and match.group(3) is not None:  # a valid pair
        return match.group(0)
    return slashes[:-1] + b"\\ufffd"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode_document(data: bytes) -> tuple[Any, tuple[str, ...]]:
    """Decode a whole JSON document (a leading BOM is dropped)."""
    return _decode(data.removeprefix(_BOM))


_REPAIRS = {
    "invalid-utf8": "invalid UTF-8 bytes replaced with U+FFFD",
    "lone-surrogate": "escaped lone UTF-16 surrogates (such as \\ud800) replaced with U+FFFD",
}


def _utf8_repaired(location: Location, code: str = "invalid-utf8") -> Problem:
    return Problem(severity="warning", code=code, message=_REPAIRS[code], location=location)


def _repaired(location: Location, codes: tuple[str, ...]) -> Iterator[Problem]:
    for code in codes:
        yield _utf8_repaired(location, code)


def _iter_jsonl(lines: Iterable[bytes], path: Path) -> Iterator[RawRecord | Problem]:
    where = str(path)
    seen_any = False
    for number, line in enumerate(lines, 1):
        stripped = (line.removeprefix(_BOM) if number == 1 else line).strip()
        if not stripped:
            continue
        seen_any = True
        location = Location(path=where, line=number)
        try:
            value, repaired = _decode(stripped)
        except msgspec.DecodeError as exc:
            yield _json_problem(exc, location, len(stripped))
            continue
        yield from _repaired(location, repaired)
        yield RawRecord(value, location)
    if not seen_any:
        yield _empty_file(path)


def _json_problem(exc: msgspec.DecodeError, location: Location, size: int) -> Problem:
    text = str(exc)
    if "truncated" in text.lower():
        message = f"truncated JSON: the record ends after {size} bytes before the value is complete"
        code = "truncated-json"
    else:
        message = f"invalid JSON: {text}"
        code = "invalid-json"
    return Problem(severity="error", code=code, message=message, location=location)


def _iter_array(handle: IO[bytes], path: Path) -> Iterator[RawRecord | Problem]:
    size = _size_of(handle, path)
    if size is not None and size <= WHOLE_FILE_LIMIT:
        yield from _decode_array_bytes(handle.read(), path)
    else:
        yield from _stream_array(handle, path)


def _size_of(handle: IO[bytes], path: Path) -> int | None:
    if path.name.lower().endswith(".gz"):
        return None
    try:
        return os.fstat(handle.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        return None


def _decode_array_bytes(data: bytes, path: Path) -> Iterator[RawRecord | Problem]:
    where = str(path)
    try:
        value, repaired = _decode_document(data)
    except msgspec.DecodeError:
        # Damaged somewhere: stream it to keep every record before the damage.
        yield from _stream_array(_BytesReader(data), path)
        return
    if not isinstance(value, list):  # pragma: no cover - guarded by the '[' sniff
        yield RawRecord(value, Location(path=where, line=1))
        return
    yield from _repaired(Location(path=where), repaired)
    if not value:
        yield _empty_array(path)
    for index, item in enumerate(value):
        yield RawRecord(item, Location(path=where, index=index))


def _empty_array(path: Path) -> Problem:
    return Problem(
        severity="warning",
        code="empty-file",
        message="file holds an empty JSON array (no records)",
        location=Location(path=str(path)),
    )


class _BytesReader:
    """A minimal binary file over bytes, for ijson."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = bytes(self._data[self._pos : end])
        self._pos += len(chunk)
        return chunk


def _stream_array(handle: Any, path: Path) -> Iterator[RawRecord | Problem]:
    where = str(path)
    produced = 0
    reader = _CleanReader(handle)
    try:
        for item in ijson.items(reader, "item", use_float=True):
            yield RawRecord(item, Location(path=where, index=produced))
            produced += 1
    except ijson.JSONError as exc:
        yield from _stream_repairs(reader, where)
        yield Problem(
            severity="error",
            code="invalid-json",
            message=(
                f"invalid JSON in array element {produced}: {exc}; "
                "the elements after this point cannot be read"
            ),
            location=Location(path=where, index=produced),
        )
        return
    yield from _stream_repairs(reader, where)
    if not produced:
        yield _empty_array(path)


def _stream_repairs(reader: _CleanReader, where: str) -> Iterator[Problem]:
    if reader.repaired:
        yield _utf8_repaired(Location(path=where))
    if reader.surrogates:
        yield _utf8_repaired(Location(path=where), "lone-surrogate")


class _CleanReader:
    """Wraps a binary file for ijson: drops a leading BOM and replaces invalid UTF-8 bytes and
    escaped lone surrogates with U+FFFD (so one bad byte or escape does not end the stream),
    remembering whether it had to."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._started = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = b""
        self.repaired = False
        self.surrogates = False

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes the stream type with read(0)
            return b""
        while True:
            chunk: bytes = self._handle.read(size)
            if not self._started and chunk:
                self._started = True
                chunk = chunk.removeprefix(_BOM)
            text = self._decoder.decode(chunk, final=not chunk)
            if "\ufffd" in text and b"\xef\xbf\xbd" not in chunk:
                self.repaired = True
            data = self._pending + text.encode("utf-8")
            if chunk:  # hold back a tail that may be the start of an escape sequence
                cut = _escape_safe_cut(data)
                data, self._pending = data[:cut], data[cut:]
            else:
                self._pending = b""
            if b"\\u" in data:
                fixed = _SURROGATE.sub(_replace_surrogate, data)
                if fixed != data:
                    self.surrogates = True
                    data = fixed
            if data or not chunk:  # a chunk holding only part of a character: read on
                return data


def _escape_safe_cut(data: bytes) -> int:
    """Where ``data`` can be cut without splitting an escape, a surrogate pair or the run of
    backslashes before one: before the first backslash run reaching into the last 6 bytes (an
    escape may be incomplete there), and before the high surrogate it may be the low half of."""
    slash = data.find(b"\\", max(len(data) - 6, 0))
    if slash < 0:
        return len(data)
    while slash > 0 and data[slash - 1] == 0x5C:  # the whole run of backslashes
        slash -= 1
    if _HIGH_BEFORE.search(data, max(slash - 6, 0), slash):
        slash -= 6
        while slash > 0 and data[slash - 1] == 0x5C:
            slash -= 1
    return slash
