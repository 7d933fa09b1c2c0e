"""A response cache in SQLite, shared by every command and safe across processes.

Keyed by a hash of the endpoint and the exact request body (model, messages and every
parameter that changes the answer), so a repeated run or a resume pays nothing twice. WAL mode
and a busy timeout let several processes use one cache file.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

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
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the response cache {path}: {exc}",
                hint="pass --cache PATH to a writable place, or --no-cache",
            ) from None
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT body FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return bytes(row[0])

    def put(self, key: str, model: str, body: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, created, model, body) VALUES (?, ?, ?, ?)",
            (key, time.time(), model, body),
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()
