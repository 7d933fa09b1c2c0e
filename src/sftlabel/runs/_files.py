"""A run directory on disk: append-only JSONL files that survive ``kill -9``.

Every record is one ``write()`` of a complete line followed by a flush, so after a crash a file
ends with whole lines and at most one partial line, which :meth:`RunFiles.repair` cuts off. The
set of sample ids in ``labeled.jsonl`` and ``failures.jsonl`` is the truth about what is done.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

LABELED = "labeled.jsonl"
LABELED_ARRAY = "labeled.json"
FAILURES = "failures.jsonl"
MONITOR = "monitor.jsonl"
PROBLEMS = "problems.jsonl"
MANIFEST = "run.json"
STATS = "stats.json"
DASHBOARD = "dashboard.html"
APPENDED = (LABELED, FAILURES, MONITOR)


class _Id(msgspec.Struct):
    id: str


class _Indexed(msgspec.Struct):
    index: int = -1


_id_decoder = msgspec.json.Decoder(_Id)
_index_decoder = msgspec.json.Decoder(_Indexed)
_encoder = msgspec.json.Encoder()


class RunFiles:
    """Paths and writers of one run directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._handles: dict[str, IO[bytes]] = {}

    def path(self, name: str) -> Path:
        return self.root / name

    def repair(self) -> int:
        """Cut a partial last line (left by a crash) off every append-only file; returns how
        many files needed it."""
        repaired = 0
        for name in APPENDED:
            path = self.path(name)
            if not path.exists() or path.stat().st_size == 0:
                continue
            with path.open("rb+") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(size - 1, 0))
                if handle.read(1) == b"\n":
                    continue
                keep = _last_newline(handle, size)
                handle.truncate(keep)
                repaired += 1
        return repaired

    def done_ids(self) -> set[str]:
        """Ids of the samples already labeled or failed."""
        done: set[str] = set()
        for name in (LABELED, FAILURES):
            for line in self.lines(name):
                done.add(_id_decoder.decode(line).id)
        return done

    def lines(self, name: str) -> Iterator[bytes]:
        path = self.path(name)
        if not path.exists():
            return
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    yield line

    def open(self, *, truncate_problems: bool = True) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for name in APPENDED:
            self._handles[name] = self.path(name).open("ab")
        self._handles[PROBLEMS] = self.path(PROBLEMS).open("wb" if truncate_problems else "ab")

    def append(self, name: str, record: Any) -> None:
        handle = self._handles[name]
        handle.write(_encoder.encode(record) + b"\n")
        handle.flush()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def write_ordered_array(self) -> int:
        """``labeled.json``: the labeled samples as one JSON array, in input order (streamed:
        memory holds one (index, offset) pair per sample)."""
        source = self.path(LABELED)
        target = self.path(LABELED_ARRAY)
        order: list[tuple[int, int]] = []
        if source.exists():
            with source.open("rb") as handle:
                offset = 0
                for line in handle:
                    if line.strip():
                        order.append((_index_decoder.decode(line).index, offset))
                    offset += len(line)
        order.sort()
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            out.write(b"[")
            if order:
                with source.open("rb") as handle:
                    for position, (_, offset) in enumerate(order):
                        handle.seek(offset)
                        out.write(
                            (b",\n" if position else b"\n") + handle.readline().rstrip(b"\r\n")
                        )
            out.write(b"\n]\n")
        partial.replace(target)
        return len(order)


def _last_newline(handle: IO[bytes], size: int) -> int:
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
