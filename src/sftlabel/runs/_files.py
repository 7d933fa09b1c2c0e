"""A run directory on disk: append-only JSONL files that survive ``kill -9``.

Every record is one ``write()`` of a complete line followed by a flush, so after a crash a file
ends with whole lines and at most one partial line, which :meth:`RunFiles.repair` cuts off. The
set of sample ids in ``labeled.jsonl`` and ``failures.jsonl`` is the truth about what is done.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from sftlabel.runs._paths import inside

LABELED = "labeled.jsonl"
LABELED_ARRAY = "labeled.json"
FAILURES = "failures.jsonl"
MONITOR = "monitor.jsonl"
PROBLEMS = "problems.jsonl"
MANIFEST = "run.json"
STATS = "stats.json"
SUMMARY_STATS = "summary_stats.json"
DASHBOARD = "dashboard.html"
APPENDED = (LABELED, FAILURES, MONITOR)
WORK = ".shards"
"""A sharded run's work directory (``--engine ray``): never a part of the run."""


class _Id(msgspec.Struct):
    id: str


class _Indexed(msgspec.Struct):
    index: int = -1


_id_decoder = msgspec.json.Decoder(_Id)
_index_decoder = msgspec.json.Decoder(_Indexed)
_any_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


class RunFiles:
    """Paths and writers of one run directory.

    A run over a directory (or several inputs) mirrors its inputs: each input file gets a
    *part*, a sub-directory (``train/short_3_to_5_turns``) with its own ``labeled.jsonl``,
    ``failures.jsonl`` and ``monitor.jsonl``; a single input file uses the root (part ``""``).
    ``run.json`` and ``problems.jsonl`` always live at the root.
    """

    MAX_OPEN = 128
    """Open part files at most (the least recently used are closed and reopened on demand)."""
    RESULTS = LABELED
    """The file of the succeeded items (another kind of run may name it otherwise)."""
    APPENDED: tuple[str, ...] = APPENDED

    def __init__(self, root: Path) -> None:
        self.root = root
        self._handles: OrderedDict[tuple[str, str], IO[bytes]] = OrderedDict()

    def path(self, name: str, part: str = "") -> Path:
        return self.root / part / name

    def parts(self) -> list[str]:
        """The parts that hold results (``""`` is the root)."""
        found: set[str] = set()
        for name in (self.RESULTS, FAILURES):
            for path in self.root.rglob(name):
                relative = path.parent.relative_to(self.root).as_posix()
                if relative.split("/", 1)[0].startswith(WORK):
                    continue
                found.add("" if relative == "." else relative)
        return sorted(found)

    def record_files(self) -> list[str]:
        """The append-only record files that exist, relative to the root (what a sharded run
        merges: :func:`~sftlabel.runs._shards.merge`)."""
        return [
            f"{part}/{name}" if part else name
            for part in self.parts()
            for name in self.APPENDED
            if self.path(name, part).exists()
        ]

    def repair(self) -> int:
        """Cut a partial last line (left by a crash) off every append-only file; returns how
        many files needed it."""
        repaired = 0
        for part in self.parts():
            for name in self.APPENDED:
                path = self.path(name, part)
                if not path.exists() or path.stat().st_size == 0:
                    continue
                with path.open("rb+") as handle:
                    handle.seek(0, os.SEEK_END)
                    size = handle.tell()
                    handle.seek(max(size - 1, 0))
                    if handle.read(1) == b"\n":
                        continue
                    handle.truncate(last_newline(handle, size))
                    repaired += 1
        return repaired

    def done_ids(self) -> set[str]:
        """Ids of the samples already labeled or failed, in every part."""
        labeled, failed = self.done()
        return {str(k) for k in labeled | failed}

    def done(self) -> tuple[set[Hashable], set[Hashable]]:
        """Ids of the samples labeled, and of those with a failure record (in every part)."""
        labeled: set[Hashable] = {_id_decoder.decode(line).id for line in self.lines(self.RESULTS)}
        failed: set[Hashable] = {_id_decoder.decode(line).id for line in self.lines(FAILURES)}
        return labeled, failed

    def problem(self, problem: Any) -> None:
        self.append(PROBLEMS, problem)

    def compact_failures(self) -> int:
        """Rewrite every ``failures.jsonl`` with one record per sample that is still failed:
        samples labeled by a later session are dropped, and a sample that failed in several
        sessions keeps its latest failure with the earlier ones in ``history``. Returns the
        number of failed samples."""
        labeled, _ = self.done()
        total = 0
        for part in self.parts():
            path = self.path(FAILURES, part)
            if not path.exists():
                continue
            latest: dict[str, dict[str, Any]] = {}
            changed = False
            for line in self.lines(FAILURES, part):
                record = _any_decoder.decode(line)
                key = str(record.get("id"))
                if key in labeled:
                    changed = True
                    continue
                earlier = latest.pop(key, None)
                if earlier is not None:
                    changed = True
                    history = [*earlier.pop("history", []), _attempt(earlier)]
                    record["history"] = [*history, *record.get("history", [])]
                    record["attempts"] = len(record["history"]) + 1
                latest[key] = record
            total += len(latest)
            if not changed:
                continue  # one record per failed sample already: the file stays as it is
            partial = path.with_name(path.name + ".partial")
            with partial.open("wb") as out:
                for record in latest.values():
                    out.write(_encoder.encode(record) + b"\n")
            partial.replace(path)
        return total

    def lines(self, name: str, part: str | None = None) -> Iterator[bytes]:
        """The non-blank lines of a file in one part, or in every part (``part=None``)."""
        parts = [part] if part is not None else ([""] if name == PROBLEMS else self.parts())
        for each in parts:
            path = self.path(name, each)
            if not path.exists():
                continue
            with path.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        yield line

    def open(self, *, truncate_problems: bool = True) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        mode = "wb" if truncate_problems else "ab"
        self._handles[("", PROBLEMS)] = self.path(PROBLEMS).open(mode)

    def append(self, name: str, record: Any, part: str = "") -> None:
        key = (part, name)
        handle = self._handles.get(key)
        if handle is None:
            if len(self._handles) >= self.MAX_OPEN:
                oldest = next(k for k in self._handles if k[1] != PROBLEMS)
                self._handles.pop(oldest).close()
            folder = inside(self.root, self.root / part) if part else self.root
            folder.mkdir(parents=True, exist_ok=True)
            handle = self._handles[key] = inside(self.root, folder / name).open("ab")
        else:
            self._handles.move_to_end(key)
        handle.write(_encoder.encode(record) + b"\n")
        handle.flush()

    def touch(self) -> None:
        """Create the empty result files a part is missing (an empty failures.jsonl says "no
        failures" better than none)."""
        for part in self.parts() or [""]:
            for name in self.APPENDED:
                self.path(name, part).touch()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def write_ordered_array(self, part: str = "") -> int:
        """``labeled.json`` of a part: its labeled samples as one JSON array, in input order
        (streamed: memory holds one packed int per sample)."""
        source = self.path(LABELED, part)
        target = self.path(LABELED_ARRAY, part)
        order = line_order(source) if source.exists() else []
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            out.write(b"[")
            if order:
                with source.open("rb") as handle:
                    for position, key in enumerate(order):
                        handle.seek(key & OFFSET_MASK)
                        line = handle.readline().rstrip(b"\r\n")
                        out.write((b",\n" if position else b"\n") + line)
            out.write(b"\n]\n")
        partial.replace(target)
        return len(order)


_OFFSET_BITS = 48
OFFSET_MASK = (1 << _OFFSET_BITS) - 1


def line_order(path: Path) -> list[int]:
    """The byte offsets of a JSONL file's records sorted by their ``index`` field, each packed
    with its index into one int (``index << 48 | offset``): a third of the memory of tuples,
    which matters at 10^6 records."""
    order: list[int] = []
    with path.open("rb") as handle:
        offset = 0
        for line in handle:
            if line.strip():
                index = max(_index_decoder.decode(line).index, 0)
                order.append(index << _OFFSET_BITS | offset)
            offset += len(line)
    order.sort()
    return order


def last_newline(handle: IO[bytes], size: int) -> int:
    """The length of the file up to and including its last newline (0 if none)."""
    block = 64 * 1024
    position = size
    while position > 0:
        start = max(position - block, 0)
        handle.seek(start)
        chunk = handle.read(position - start)
        found = chunk.rfind(b"\n")
        if found != -1:
            return start + found + 1
        position = start
    return 0


def _attempt(record: dict[str, Any]) -> dict[str, Any]:
    """What the history of a failed sample keeps of one earlier attempt."""
    return {k: record[k] for k in ("reason", "error", "session") if k in record}
