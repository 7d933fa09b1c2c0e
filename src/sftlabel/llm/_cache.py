"""A response cache in SQLite, shared by every command and safe across processes.

Keyed by a hash of the endpoint and the exact request body (model, messages and every
parameter that changes the answer), so a repeated run or a resume pays nothing twice. WAL mode
and a busy timeout let several processes use one cache file. ``aget`` reads in a worker thread;
``aput`` hands the answer to a writer thread and returns at once (until it is written, ``get``
finds it in memory): a database locked by another process delays only the writer, never the
event loop, the reads or the requests.
"""

from __future__ import annotations

import hashlib
import queue
import sqlite3
import threading
import time
from pathlib import Path

import anyio
import anyio.to_thread

from sftlabel.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    model TEXT NOT NULL,
    body BLOB NOT NULL
)
"""


def cache_key(endpoint: str, body: bytes) -> str:
    """The cache key of a request: endpoint (without secrets) and the JSON body."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(endpoint.encode())
    digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


class ResponseCache:
    """Successful response bodies by request key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
            self._reader = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the response cache {path}: {exc}",
                hint="pass --cache PATH to a writable place, or --no-cache",
            ) from None
        self.hits = 0
        self.misses = 0
        self.write_errors = 0
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._readers = anyio.CapacityLimiter(1)
        self._pending: dict[str, bytes] = {}
        self._queue: queue.SimpleQueue[tuple[str, str, bytes] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None

    def get(self, key: str) -> bytes | None:
        pending = self._pending.get(key)
        if pending is not None:
            self.hits += 1
            return pending
        with self._read_lock:
            row = self._reader.execute(
                "SELECT body FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return bytes(row[0])

    def put(self, key: str, model: str, body: bytes) -> None:
        with self._write_lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, created, model, body) VALUES (?, ?, ?, ?)",
                (key, time.time(), model, body),
            )

    async def aget(self, key: str) -> bytes | None:
        """``get`` in a worker thread."""
        return await anyio.to_thread.run_sync(self.get, key, limiter=self._readers)

    async def aput(self, key: str, model: str, body: bytes) -> None:
        """Store an answer through the writer thread, without waiting for the database. A
        write that fails (a database locked for longer than the busy timeout) is counted in
        ``write_errors`` and dropped: the answer is used, only a later run pays for it again."""
        self._pending[key] = body
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_loop, name="sftlabel-cache-writer", daemon=True
            )
            self._writer.start()
        self._queue.put((key, model, body))

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            key, model, body = item
            try:
                self.put(key, model, body)
            except sqlite3.Error:
                self.write_errors += 1
            finally:
                if self._pending.get(key) is body:
                    del self._pending[key]

    def flush(self) -> None:
        """Wait until every answer handed to ``aput`` is written (or dropped)."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None

    def __len__(self) -> int:
        with self._read_lock:
            return int(self._reader.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self.flush()
        with self._write_lock:
            self._db.close()
        with self._read_lock:
            self._reader.close()


class ShardCache(ResponseCache):
    """A worker's own cache file in front of a shared one it only reads (``--engine ray``).

    Each shard of a run writes the answers it gets to its own SQLite file (``own``): SQLite
    must not be written by several machines over a network file system. It reads its own file
    first, then ``base`` (the run's usual cache, opened read-only, if it exists). The run's
    driver copies the shard files into ``base`` at the end (:func:`merge_cache`).
    """

    def __init__(self, own: Path, base: Path | None) -> None:
        super().__init__(own)
        self._base: sqlite3.Connection | None = None
        if base is not None and base.exists() and base.resolve() != own.resolve():
            try:
                self._base = sqlite3.connect(
                    f"{base.resolve().as_uri()}?mode=ro",
                    uri=True,
                    timeout=30.0,
                    check_same_thread=False,
                )
            except sqlite3.Error:
                self._base = None  # an unreadable shared cache only costs requests

    def get(self, key: str) -> bytes | None:
        found = super().get(key)
        if found is not None or self._base is None:
            return found
        with self._read_lock:
            try:
                row = self._base.execute(
                    "SELECT body FROM responses WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.Error:
                row = None
        if row is None:
            return None
        self.misses -= 1
        self.hits += 1
        return bytes(row[0])

    def close(self) -> None:
        super().close()
        if self._base is not None:
            with self._read_lock:
                self._base.close()


def merge_cache(base: Path, shards: list[Path]) -> None:
    """Copy the answers of shard cache files into ``base`` (then remove the shard files)."""
    found = [s for s in shards if s.exists()]
    if not found:
        return
    target = ResponseCache(base)  # creates the table
    target.close()
    db = sqlite3.connect(base, timeout=60.0, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        for source in found:
            db.execute("ATTACH DATABASE ? AS shard", (str(source),))
            try:
                db.execute("INSERT OR IGNORE INTO main.responses SELECT * FROM shard.responses")
            finally:
                db.execute("DETACH DATABASE shard")
    finally:
        db.close()
    for source in found:
        for suffix in ("", "-wal", "-shm"):
            Path(str(source) + suffix).unlink(missing_ok=True)
