"""One run in deterministic shards (``--engine ray``): the same engine on each part, one run dir.

A shard is the set of items whose *shard key* hashes to it: the task's own ``shard_key`` if it
has one (with dedup, what an item's duplicates share: a soft-label turn's rendering, a labeled
sample's system prompt, tools and opening exchange, so that duplicates meet in one shard; else
its conversation), else its ``group`` (the slices of one conversation stay together, so their
prefix-cache order holds), else the item key, hashed with BLAKE2b. The split depends neither on
the input order nor on how many workers run; the shard count is recorded in the manifest, so a
resume splits the same way.

Each shard runs the ordinary :class:`~sftlabel.runs.Engine` over its items (``ShardTask`` filters
the task's stream; items keep their run-wide index) and writes its own files below the run's
work directory (``<run>/.shards/NNNN/``, in the layout of the run's own store: a run directory,
or a ``LABELED_`` folder). The layout is a :data:`Layout`, the store class of the run
(:class:`~sftlabel.runs.RunFiles`, :class:`~sftlabel.runs.SoftOutput`). What is done comes from
the run's store and the shard's own files together (``ShardStore``), so a resumed shard, or a
shard Ray retries after its worker died, skips every item it wrote and writes nothing twice.
A finished shard writes ``done.json``; a resume skips it.

When every shard is done, :func:`merge` appends the shards' records to the run's files (all new
files are written aside first, then a ``merging`` marker, then they replace the old ones: a
crash at any point leaves either the old files and the shards, or the marker and a merge a
resume completes) and removes the work directory: the result is an ordinary output.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from sftlabel.model import Problem
from sftlabel.runs._dedup import INDEX as DEDUP_INDEX
from sftlabel.runs._engine import Store, Task, Written
from sftlabel.runs._files import PROBLEMS, WORK, RunFiles

ItemT = TypeVar("ItemT")

DONE = "done.json"
MERGING = "merging"
PARTIAL = ".merge-partial"

_encoder = msgspec.json.Encoder()


def shard_of(key: Hashable, shards: int) -> int:
    """The shard of a shard key: a stable hash (BLAKE2b of its JSON), modulo ``shards``."""
    data = _encoder.encode(msgspec.to_builtins(key))
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") % shards


def shard_key(task: Task[Any], item: Any) -> Hashable:
    """What decides an item's shard: the task's ``shard_key``, else its group, else its key."""
    own = getattr(task, "shard_key", None)
    if own is not None:
        chosen: Hashable = own(item)
        return chosen
    group = getattr(task, "group", None)
    found = group(item) if group is not None else None
    return found if found is not None else task.key(item)


class Records(Store, Protocol):
    """A store of append-only record files in one folder (a run directory, a ``LABELED_``
    folder), which a shard writes in the same layout below the run's work directory."""

    root: Path

    def repair(self) -> int:
        """Cut a partial last line (a crash) off every record file."""
        ...

    def open(self) -> None: ...

    def record_files(self) -> list[str]:
        """The record files that exist, relative to the root."""
        ...


Layout = Callable[[Path], Records]
"""The store of a folder (``RunFiles``, ``SoftOutput``): the run's and each shard's."""


def shard_dir(root: Path, shard: int) -> Path:
    return root / WORK / f"{shard:04d}"


class ShardTask(Generic[ItemT]):
    """A task restricted to one shard of its items (everything else is the task's).

    Input problems are reported by shard 0 only (every shard reads the whole input)."""

    def __init__(self, task: Task[ItemT], shard: int, shards: int) -> None:
        self.inner = task
        self.shard = shard
        self.shards = shards
        self.kind = task.kind
        for name in ("noun", "group", "content", "duplicate"):
            if hasattr(task, name):
                setattr(self, name, getattr(task, name))

    def items(self, on_problem: Callable[[Problem], None]) -> Iterator[ItemT]:
        report = on_problem if self.shard == 0 else _ignore
        for item in self.inner.items(report):
            if shard_of(shard_key(self.inner, item), self.shards) == self.shard:
                yield item

    def key(self, item: ItemT) -> Hashable:
        return self.inner.key(item)

    async def process(self, item: ItemT) -> Written:
        return await self.inner.process(item)

    def failure(self, item: ItemT, exc: Any) -> Written:
        return self.inner.failure(item, exc)


def _ignore(_: Problem) -> None:
    pass


class ShardStore:
    """A shard's own store; what is done also counts what the run's store holds."""

    def __init__(self, own: Records, run: Records) -> None:
        self.own = own
        self.run = run
        self.root = own.root

    def done(self) -> tuple[set[Hashable], set[Hashable]]:
        labeled, failed = self.own.done()
        run_labeled, run_failed = self.run.done()
        return labeled | run_labeled, failed | run_failed

    def append(self, name: str, record: Any, part: str = "") -> None:
        self.own.append(name, record, part)

    def problem(self, problem: Problem) -> None:
        self.own.problem(problem)

    def open(self) -> None:
        self.own.open()

    def close(self) -> None:
        self.own.close()


def prepare(root: Path, shard: int, layout: Layout = RunFiles) -> ShardStore:
    """The store of a shard about to run: a partial last line cut off (a worker killed while
    writing), and the run's dedup index copied in (duplicates of earlier sessions' originals)."""
    own = layout(shard_dir(root, shard))
    own.root.mkdir(parents=True, exist_ok=True)
    own.repair()
    index = root / DEDUP_INDEX
    mine = own.root / DEDUP_INDEX
    if index.exists() and not mine.exists():
        shutil.copyfile(index, mine)
    return ShardStore(own, layout(root))


def finished(root: Path, shard: int) -> dict[str, Any] | None:
    """A shard's completion record, or None if it has not finished."""
    path = shard_dir(root, shard) / DONE
    return msgspec.json.decode(path.read_bytes()) if path.exists() else None


def mark_finished(root: Path, shard: int, summary: dict[str, Any]) -> None:
    path = shard_dir(root, shard) / DONE
    partial = path.with_name(DONE + ".partial")
    partial.write_bytes(_encoder.encode(summary))
    partial.replace(path)


def recover(root: Path) -> None:
    """Complete a merge a crash interrupted (its marker was written), or drop its leftovers."""
    work = root / WORK
    if not work.exists():
        return
    if (work / MERGING).exists():
        _swap(root)
        _remove(work)
        return
    for leftover in root.rglob("*" + PARTIAL):
        leftover.unlink()


def merge(root: Path, shards: int, layout: Layout = RunFiles) -> None:
    """Append every shard's records to the run's files, then remove the work directory."""
    work = root / WORK
    if not work.exists():
        return
    recover(root)  # leftovers of an earlier attempt
    if not work.exists():
        return
    run = layout(root)
    stores = [layout(shard_dir(root, s)) for s in range(shards)]
    names: set[str] = set(run.record_files())
    for store in stores:
        if store.root.exists():
            store.repair()  # a worker killed while writing (the driver died before a retry)
        names.update(store.record_files())
    for name in sorted(names):
        sources = [root / name, *(s.root / name for s in stores)]
        if not any(p.exists() for p in sources[1:]):
            continue
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.with_name(target.name + PARTIAL).open("wb") as out:
            for source in sources:
                if source.exists():
                    with source.open("rb") as handle:
                        shutil.copyfileobj(handle, out)
    first = stores[0].root / PROBLEMS if stores else None
    if first is not None and first.exists() and first.stat().st_size:
        # the session's input problems (shard 0 reads them); none: the run's stay
        shutil.copyfile(first, root / (PROBLEMS + PARTIAL))
    _merge_indexes(root / DEDUP_INDEX, [s.root / DEDUP_INDEX for s in stores])
    (work / MERGING).touch()
    _swap(root)
    _remove(work)


def _swap(root: Path) -> None:
    for partial in sorted(root.rglob("*" + PARTIAL)):
        if WORK in partial.relative_to(root).parts:
            continue
        partial.replace(partial.with_name(partial.name[: -len(PARTIAL)]))


def _remove(work: Path) -> None:
    """Remove the work directory in one step a crash cannot leave half-done."""
    gone = work.with_name(work.name + ".removed")
    if gone.exists():
        shutil.rmtree(gone)
    work.replace(gone)
    shutil.rmtree(gone)


def _merge_indexes(target: Path, sources: list[Path]) -> None:
    """Copy the rows of SQLite files into ``target`` (written aside, swapped with the rest)."""
    found = [s for s in sources if s.exists()]
    if not found:
        return
    aside = target.with_name(target.name + PARTIAL)
    if target.exists():
        shutil.copyfile(target, aside)
    elif found:
        shutil.copyfile(found[0], aside)
    merge_sqlite(aside, found)


def merge_sqlite(target: Path, sources: list[Path]) -> None:
    """``INSERT OR IGNORE`` every row of the dedup indexes ``sources`` into ``target``."""
    db = sqlite3.connect(target, isolation_level=None)
    try:
        for source in sources:
            if source.resolve() == target.resolve():
                continue
            db.execute("ATTACH DATABASE ? AS shard", (str(source),))
            try:
                db.execute("INSERT OR IGNORE INTO main.content SELECT * FROM shard.content")
            finally:
                db.execute("DETACH DATABASE shard")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode=DELETE")
    finally:
        db.close()
