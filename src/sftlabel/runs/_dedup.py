"""Duplicate items labeled once: a disk-backed index of what the model saw.

An item's *content* (what a task renders for the model: the sample part of the labeling prompt,
the text of a turn) is hashed into a 16-byte BLAKE2b digest. The first item with a digest is
labeled; every later one gets a copy of its result (the task's ``share``) with a pointer to it
(``duplicate_of``) and no request.

The index is an SQLite table in the run directory (``dedup.sqlite``): digest -> the original's
key and its share. Memory stays constant whatever the run's size (SQLite's page cache is capped;
only the items in flight are held in memory), and the index survives a resume, so a duplicate
whose original was labeled in an earlier session is still not sent. Writes are committed in
batches: after a crash the index may lack the last few originals, which only means their later
duplicates are sent as their own items (nothing is lost or relabeled).

Concurrency: a duplicate whose original is in flight waits for it. When the original fails (or
the run stops before it finishes), its claim is released and the next waiting duplicate is
processed as its own item, so no duplicate is left unlabeled by another item's failure.
"""

from __future__ import annotations

import errno
import hashlib
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec

INDEX = "dedup.sqlite"
DIGEST_SIZE = 16
COMMIT_EVERY = 256
"""Originals added between two commits (a crash loses at most these from the index)."""
CACHE_KIB = 16 * 1024
"""SQLite's page cache (the index's whole memory, whatever its size)."""

_encoder = msgspec.json.Encoder()


def digest(content: str | bytes) -> bytes:
    """The 16-byte BLAKE2b digest of an item's content (a collision among 10^8 distinct
    items has a probability near 10^-23)."""
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


class ContentIndex:
    """digest -> (the original's key, its share), in an SQLite file (``:memory:`` for none)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS content"
                " (digest BLOB NOT NULL UNIQUE, key BLOB NOT NULL, share BLOB NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise _os_error(exc, self.path) from None
        self._uncommitted = 0

    def get(self, key: bytes) -> tuple[Any, Any] | None:
        """The original's key and share for a digest, or None."""
        row = self._db.execute("SELECT key, share FROM content WHERE digest = ?", (key,)).fetchone()
        if row is None:
            return None
        return msgspec.json.decode(row[0]), msgspec.json.decode(row[1])

    def put(self, key: bytes, original: Any, share: Any) -> None:
        try:
            if not self._uncommitted:
                self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO content VALUES (?, ?, ?)",
                (key, _encoder.encode(original), _encoder.encode(share)),
            )
            self._uncommitted += 1
            if self._uncommitted >= COMMIT_EVERY:
                self.commit()
        except sqlite3.Error as exc:
            raise _os_error(exc, self.path) from None

    def commit(self) -> None:
        if self._uncommitted:
            self._uncommitted = 0
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM content").fetchone()[0])

    def close(self) -> None:
        try:
            self.commit()
        except sqlite3.Error as exc:
            raise _os_error(exc, self.path) from None
        finally:
            self._db.close()


def _os_error(exc: sqlite3.Error, path: str) -> OSError:
    """SQLite's "disk full" / "read-only" as the OSError the engine turns into a clean stop."""
    text = str(exc).lower()
    code = errno.ENOSPC if "full" in text else errno.EROFS if "readonly" in text else errno.EIO
    if "unable to open" in text:
        code = errno.EACCES
    return OSError(code, f"the duplicate index: {exc}", path)


class Dedup:
    """The index plus the originals in flight (at most the run's concurrency of them)."""

    def __init__(self, index: ContentIndex) -> None:
        self.index = index
        self._in_flight: dict[bytes, anyio.Event] = {}

    async def claim(self, key: bytes) -> tuple[Any, Any] | None:
        """The original's ``(key, share)`` for a digest, waiting for an original in flight;
        None when the caller is to process the item as the original (it then calls
        :meth:`done` or :meth:`release`)."""
        while True:
            found = self.index.get(key)
            if found is not None:
                return found
            event = self._in_flight.get(key)
            if event is None:
                self._in_flight[key] = anyio.Event()
                return None
            await event.wait()

    def done(self, key: bytes, original: Any, share: Any) -> None:
        """The original is written: record it, and wake its duplicates."""
        try:
            self.index.put(key, original, share)
        finally:
            self.release(key)

    def release(self, key: bytes) -> None:
        """The original failed (or was abandoned): its next duplicate is processed instead."""
        event = self._in_flight.pop(key, None)
        if event is not None:
            event.set()

    def close(self) -> None:
        self.index.close()


@contextmanager
def first_seen() -> Iterator[Callable[[str | bytes], bool]]:
    """A predicate telling whether a content is seen for the first time (for ``--dry-run``),
    over a temporary index: constant memory whatever the number of items."""
    with tempfile.TemporaryDirectory(prefix="sftlabel-dedup-") as folder:
        index = ContentIndex(Path(folder) / INDEX)

        def first(content: str | bytes) -> bool:
            key = digest(content)
            if index.get(key) is not None:
                return False
            index.put(key, None, None)
            return True

        try:
            yield first
        finally:
            index.close()
