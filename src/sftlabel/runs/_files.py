"""A run directory on disk: append-only JSONL files that survive ``kill -9``.

Every record is one ``write()`` of a complete line followed by a flush, so after a crash a file
ends with whole lines and at most one partial line, which :meth:`RunFiles.repair` cuts off. The
set of sample ids in ``labeled.jsonl`` and ``failures.jsonl`` is the truth about what is done.
"""

from __future__ import annotations

import os
from collections import OrderedDict
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
SUMMARY_STATS = "summary_stats.json"
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
    """Paths and writers of one run directory.

    A run over a directory (or several inputs) mirrors its inputs: each input file gets a
    *part*, a sub-directory (``train/short_3_to_5_turns``) with its own ``labeled.jsonl``,
    ``failures.jsonl`` and ``monitor.jsonl``; a single input file uses the root (part ``""``).
    ``run.json`` and ``problems.jsonl`` always live at the root.
    """

    MAX_OPEN = 128
    """Open part files at most (the least recently used are closed and reopened on demand)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._handles: OrderedDict[tuple[str, str], IO[bytes]] = OrderedDict()

    def path(self, name: str, part: str = "") -> Path:
        return self.root / part / name

    def parts(self) -> list[str]:
        """The parts that hold results (``""`` is the root)."""
        found: set[str] = set()
        for name in (LABELED, FAILURES):
            for path in self.root.rglob(name):
                relative = path.parent.relative_to(self.root).as_posix()
                found.add("" if relative == "." else relative)
        return sorted(found)

    def repair(self) -> int:
        """Cut a partial last line (left by a crash) off every append-only file; returns how
        many files needed it."""
        repaired = 0
        for part in self.parts():
            for name in APPENDED:
                path = self.path(name, part)
                if not path.exists() or path.stat().st_size == 0:
                    continue
                with path.open("rb+") as handle:
                    handle.seek(0, os.SEEK_END)
                    size = handle.tell()
                    handle.seek(max(size - 1, 0))
                    if handle.read(1) == b"\n":
                        continue
                    handle.truncate(_last_newline(handle, size))
                    repaired += 1
        return repaired

    def done_ids(self) -> set[str]:
        """Ids of the samples already labeled or failed, in every part."""
        done: set[str] = set()
        for name in (LABELED, FAILURES):
            for line in self.lines(name):
                done.add(_id_decoder.decode(line).id)
        return done

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
            folder = self.root / part
            folder.mkdir(parents=True, exist_ok=True)
            handle = self._handles[key] = (folder / name).open("ab")
        else:
            self._handles.move_to_end(key)
        handle.write(_encoder.encode(record) + b"\n")
        handle.flush()

    def touch(self) -> None:
        """Create the empty result files a part is missing (an empty failures.jsonl says "no
        failures" better than none)."""
        for part in self.parts() or [""]:
            for name in APPENDED:
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
        order = _line_order(source) if source.exists() else []
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            out.write(b"[")
            if order:
                with source.open("rb") as handle:
                    for position, key in enumerate(order):
                        handle.seek(key & _OFFSET_MASK)
                        line = handle.readline().rstrip(b"\r\n")
                        out.write((b",\n" if position else b"\n") + line)
            out.write(b"\n]\n")
        partial.replace(target)
        return len(order)


class PartMap:
    """Which part (sub-directory of the run) the samples of an input file go to."""

    def __init__(self, inputs: list[str]) -> None:
        self.inputs = [Path(i) for i in inputs]
        self.mirror = len(self.inputs) > 1 or any(p.is_dir() for p in self.inputs)

    def __call__(self, path: str) -> str:
        if not self.mirror:
            return ""
        file = Path(path)
        for source in self.inputs:
            prefix = [source.name] if len(self.inputs) > 1 else []
            if file == source:
                return _bare(source.name)
            if file.is_relative_to(source):
                relative = file.relative_to(source)
                return "/".join([*prefix, *relative.parent.parts, _bare(relative.name)])
        return _bare(file.name)


def _bare(name: str) -> str:
    """A file name without its data suffixes (``a.jsonl.gz`` -> ``a``)."""
    lowered = name.lower()
    for suffix in (".json.gz", ".jsonl.gz", ".jsonl", ".json", ".gz"):
        if lowered.endswith(suffix):
            return name[: -len(suffix)] or "data"
    return name


_OFFSET_BITS = 48
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1


def _line_order(path: Path) -> list[int]:
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
