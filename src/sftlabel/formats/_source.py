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

from sftlabel.errors import InputError
from sftlabel.model import Location, Problem

SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
"""File names a directory walk picks up."""

SKIPPED_NAMES = frozenset({"metadata.json", "labeling_metadata.json"})
"""Dataset-level metadata files next to the data; skipped by directory walks (never by name)."""

WHOLE_FILE_LIMIT = 16 * 1024 * 1024
"""JSON arrays up to this size are decoded in one go (fastest); larger ones are streamed."""

_BOM = b"\xef\xbb\xbf"
_decoder = msgspec.json.Decoder()


class RawRecord(NamedTuple):
    """One decoded JSON value and where it came from."""

    data: Any
    location: Location


def discover(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and directories into the list of input files, in a stable order.

    Directories are searched recursively for ``*.json``/``*.jsonl`` (optionally ``.gz``), skipping
    hidden entries and dataset metadata files. Raises :class:`InputError` for a path that does not
    exist or when nothing readable is found.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(_walk(path))
        elif path.is_file() or (path.exists() and not path.is_dir()):
            found.append(path)
        else:
            raise InputError(
                f"no such file or directory: {path}",
                hint="check the path; inputs are files or directories of .json/.jsonl files",
            )
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise InputError(
            f"no .json or .jsonl files found in {shown}",
            hint="point at a file or a directory tree containing *.json / *.jsonl (optionally .gz)",
        )
    return found


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name in SKIPPED_NAMES:
                continue
            if name.lower().endswith(SUFFIXES):
                yield Path(dirpath) / name


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
            if _first_significant(head) == ord("["):
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
            if repaired:
                yield _utf8_repaired(location)
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


def _decode(data: bytes) -> tuple[Any, bool]:
    """Decode one JSON value; the flag says invalid UTF-8 had to be replaced with U+FFFD.

    Raises ``msgspec.DecodeError`` when the JSON itself is invalid.
    """
    try:
        try:
            return _decoder.decode(data), False
        except (UnicodeDecodeError, msgspec.DecodeError):
            # msgspec < 0.23 raises UnicodeDecodeError for invalid UTF-8, 0.23 and newer a
            # DecodeError ("Invalid UTF-8 encoded string"): tell the two apart by decoding the
            # bytes ourselves (only on this failure path), and repair only invalid UTF-8.
            if _is_utf8(data):
                raise
            return _decoder.decode(data.decode("utf-8", "replace")), True
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deeply to be read") from None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode_document(data: bytes) -> tuple[Any, bool]:
    """Decode a whole JSON document (a leading BOM is dropped)."""
    return _decode(data.removeprefix(_BOM))


def _utf8_repaired(location: Location) -> Problem:
    return Problem(
        severity="warning",
        code="invalid-utf8",
        message="invalid UTF-8 bytes replaced with U+FFFD",
        location=location,
    )


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
        if repaired:
            yield _utf8_repaired(location)
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
    if repaired:
        yield _utf8_repaired(Location(path=where))
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
        if reader.repaired:
            yield _utf8_repaired(Location(path=where))
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
    if reader.repaired:
        yield _utf8_repaired(Location(path=where))
    if not produced:
        yield _empty_array(path)


class _CleanReader:
    """Wraps a binary file for ijson: drops a leading BOM and replaces invalid UTF-8 bytes with
    U+FFFD (so one bad byte does not end the stream), remembering whether it had to."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._started = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.repaired = False

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
            if text or not chunk:  # a chunk holding only part of a character: read on
                return text.encode("utf-8")
