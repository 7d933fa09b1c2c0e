"""Inspect and prune the response cache (``sftlabel cache``), beside the cache itself.

The cache file is opened directly (schema as in :mod:`sftlabel.llm._cache`: one ``responses``
table of ``key``, ``created`` (epoch seconds), ``model`` and the response ``body``), with the
same WAL mode and busy timeout, so a labeling run may use the file at the same time. Reading
never creates a missing cache file.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.errors import ConfigError, InputError, UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
PREVIEW_CHARS = 120


@dataclass
class ModelUse:
    model: str
    entries: int
    bytes: int


@dataclass
class CacheStats:
    path: Path
    file_bytes: int
    """The database file and its WAL."""
    entries: int = 0
    body_bytes: int = 0
    oldest: float | None = None
    newest: float | None = None
    models: list[ModelUse] = field(default_factory=list)


@dataclass
class CacheEntry:
    key: str
    created: float
    model: str
    size: int
    preview: str
    """The start of the answer's text (``choices[0].message.content``), on one line."""


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or plain seconds, as seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(
            f"--older-than {text!r} is not a duration", hint="e.g. 30d, 12h, 90m, 2w or 3600"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


@contextmanager
def _open(path: Path, *, write: bool = False) -> Iterator[sqlite3.Connection]:
    if not path.is_file():
        raise InputError(
            f"no response cache at {path}",
            hint="pass --cache PATH (the file a run used), or run a command that calls a model",
        )
    try:
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        if not write:
            db.execute("PRAGMA query_only=ON")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise InputError(f"{path}: not a readable response cache: {exc}") from None
    if "responses" not in tables:
        db.close()
        raise InputError(f"{path}: not a response cache (no responses table)")
    try:
        yield db
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: {exc}", hint="is another process holding a lock?") from None
    finally:
        db.close()


def _file_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.is_file():
            total += part.stat().st_size
    return total


def cache_stats(path: Path) -> CacheStats:
    """Entries, sizes, ages and models of the cache at ``path``."""
    with _open(path) as db:
        stats = CacheStats(path=path, file_bytes=_file_bytes(path))
        row = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0), MIN(created), MAX(created) "
            "FROM responses"
        ).fetchone()
        stats.entries, stats.body_bytes, stats.oldest, stats.newest = row
        stats.models = [
            ModelUse(model=m, entries=n, bytes=b)
            for m, n, b in db.execute(
                "SELECT model, COUNT(*), SUM(LENGTH(body)) FROM responses GROUP BY model "
                "ORDER BY COUNT(*) DESC, model"
            )
        ]
    return stats


def clear_cache(
    path: Path,
    *,
    older_than: float | None = None,
    model: str | None = None,
    now: float | None = None,
) -> int:
    """Delete the entries older than ``older_than`` seconds (all without it), of ``model`` only
    when given; returns how many were deleted. The file is compacted afterwards when no other
    process holds it."""
    clauses: list[str] = []
    params: list[Any] = []
    if older_than is not None:
        clauses.append("created < ?")
        params.append((time.time() if now is None else now) - older_than)
    if model is not None:
        clauses.append("model = ?")
        params.append(model)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    with _open(path, write=True) as db:
        deleted = db.execute(f"DELETE FROM responses{where}", params).rowcount  # noqa: S608
        if deleted:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                db.execute("VACUUM")
            except sqlite3.OperationalError:
                pass  # in use by a running command: the space is reused, the file not shrunk
    return int(deleted)


def _preview(body: bytes) -> str:
    try:
        data: Any = msgspec.json.decode(body)
        content = data["choices"][0]["message"].get("content") or ""
    except (msgspec.DecodeError, KeyError, IndexError, TypeError, AttributeError):
        return ""
    flat = " ".join(str(content).split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def cache_entry(path: Path, key: str) -> tuple[CacheEntry, bytes]:
    """The entry whose key is ``key`` or starts with it (unique), and its response body."""
    if not re.fullmatch(r"[0-9a-fA-F]{4,}", key):
        raise UsageError(f"{key!r} is not a cache key", hint="give 4 or more hex digits of a key")
    with _open(path) as db:
        rows = db.execute(
            "SELECT key, created, model, body FROM responses WHERE key >= ? AND key < ? LIMIT 2",
            (key.lower(), key.lower() + "g"),
        ).fetchall()
    if not rows:
        raise InputError(f"no cache entry {key} in {path}")
    if len(rows) > 1:
        raise UsageError(f"{key} matches several cache entries", hint="give more of the key")
    found, created, model, body = rows[0]
    body = bytes(body)
    return CacheEntry(found, created, model, len(body), _preview(body)), body


def run_window(run: Path) -> tuple[list[str], list[tuple[float, float]]]:
    """The models and the session time windows of a run (``run.json`` of a label/arbitrate run,
    ``labeling_metadata.json`` of a soft-label output)."""
    folder = run if run.is_dir() else run.parent
    for name in ("run.json", "labeling_metadata.json"):
        candidate = folder / name
        if candidate.is_file():
            try:
                data = msgspec.json.decode(candidate.read_bytes())
            except msgspec.DecodeError as exc:
                raise InputError(f"{candidate}: not valid JSON: {exc}") from None
            if isinstance(data, dict):
                return _models(data), _windows(data)
    raise InputError(
        f"{run}: no run.json or labeling_metadata.json",
        hint="pass a run directory written by label/arbitrate or a LABELED_ folder",
    )


def _models(data: dict[str, Any]) -> list[str]:
    models: list[str] = []
    found = data.get("options")
    options: dict[str, Any] = found if isinstance(found, dict) else {}
    for value in (
        data.get("model"),
        options.get("model"),
        options.get("arbitration_model"),
    ):
        if isinstance(value, str) and value and value not in models:
            models.append(value)
    return models


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _windows(data: dict[str, Any]) -> list[tuple[float, float]]:
    windows = []
    sessions = data.get("sessions")
    for session in sessions if isinstance(sessions, list) else [data]:
        if not isinstance(session, dict):
            continue
        start = _time(session.get("started", session.get("created")))
        end = _time(session.get("finished", session.get("updated")))
        if start is not None:
            windows.append((start - 1.0, (end if end is not None else time.time()) + 1.0))
    return windows


def run_entries(path: Path, run: Path, *, limit: int | None = None) -> list[CacheEntry]:
    """The answers cached while ``run`` was running (its sessions' time windows) for its
    models: what the run paid for. Answers it took from the cache were written before; another
    run of the same model at the same time would be listed too (the cache does not record which
    run asked)."""
    models, windows = run_window(run)
    if not windows:
        raise InputError(f"{run}: no session times recorded", hint="is this run finished?")
    clauses = " OR ".join("(created BETWEEN ? AND ?)" for _ in windows)
    params: list[Any] = [t for window in windows for t in window]
    query = f"SELECT key, created, model, body FROM responses WHERE ({clauses})"  # noqa: S608
    if models:
        query += f" AND model IN ({', '.join('?' for _ in models)})"
        params += models
    query += " ORDER BY created"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    with _open(path) as db:
        return [
            CacheEntry(k, c, m, len(b), _preview(bytes(b)))
            for k, c, m, b in db.execute(query, params)
        ]
