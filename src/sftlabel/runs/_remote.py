"""The shards of a run whose output is in remote storage (``--engine ray`` with an fsspec URL).

No machine of the cluster needs to see another's disk. Each worker works on a copy of the run
in its own machine's staging folder (:func:`~sftlabel.storage.output_copy`), as a local run
does, and keeps its shard's folder in sync with the store: ``<output>/.shards/NNNN/``, uploaded
every :data:`SYNC_EVERY` seconds while it runs and once more when it ends, ``done.json`` last.

Each upload of a shard counts one *generation* (``sync.json``). Whoever starts on a shard (a
worker, Ray's retry of it on another machine, the driver before it merges) takes the store's
copy when its generation is higher than the local one, else keeps its own (the same lineage,
maybe further on). Either way a shard's records are one lineage, so a record is never written
twice; a worker killed between two uploads on another machine costs the requests it sent since
the last one, never a sample. SQLite files (the shard's dedup index, its response cache) are
uploaded from a consistent snapshot (SQLite's backup API), since they are open while it runs.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import msgspec

from sftlabel.runs._files import WORK
from sftlabel.runs._shards import DONE, shard_dir
from sftlabel.storage import STAGED, fetch, locked, output_copy, put, read_text

SYNC = "sync.json"
"""A shard folder's generation: how many times it was uploaded."""
SYNC_EVERY = 60.0
"""Seconds between two uploads of a running shard."""
_SNAPSHOT = ".snapshot"
_SKIP = (".lock", "-wal", "-shm", "-journal", ".partial", _SNAPSHOT)


class _Sync(msgspec.Struct):
    generation: int = 0


def shard_url(output: str, shard: int) -> str:
    return f"{output.rstrip('/')}/{WORK}/{shard:04d}"


def generation(folder: Path) -> int:
    path = folder / SYNC
    if not path.exists():
        return 0
    return msgspec.json.decode(path.read_bytes(), type=_Sync).generation


def _remote_generation(url: str) -> int:
    text = read_text(f"{url}/{SYNC}")
    return 0 if text is None else msgspec.json.decode(text, type=_Sync).generation


def pull_shard(output: str, root: Path, shard: int) -> bool:
    """Take the store's copy of a shard when it is newer than the one below ``root``; True if
    it was taken."""
    url = shard_url(output, shard)
    local = shard_dir(root, shard)
    if _remote_generation(url) <= generation(local):
        return False
    shutil.rmtree(local, ignore_errors=True)
    fetch(url, local)
    return True


def push_shard(output: str, root: Path, shard: int, *, done: bool = False) -> None:
    """Upload a shard's folder as its next generation (``done.json`` last when ``done``)."""
    local = shard_dir(root, shard)
    if not local.exists():
        return
    files: list[tuple[Path, str]] = []
    snapshots: list[Path] = []
    try:
        for path in sorted(local.rglob("*")):
            relative = path.relative_to(local).as_posix()
            if not path.is_file() or relative in (SYNC, DONE) or path.name.endswith(_SKIP):
                continue
            if path.suffix == ".sqlite":
                snapshots.append(_snapshot(path))
            files.append((snapshots[-1] if path.suffix == ".sqlite" else path, relative))
        url = shard_url(output, shard)
        put(files, url)
        sync = local / SYNC
        partial = sync.with_name(SYNC + ".partial")
        partial.write_bytes(msgspec.json.encode(_Sync(generation(local) + 1)))
        partial.replace(sync)
        put([(local / name, name) for name in ([SYNC, DONE] if done else [SYNC])], url)
    finally:
        for path in snapshots:
            path.unlink(missing_ok=True)


def _snapshot(path: Path) -> Path:
    """A consistent copy of an open SQLite file beside it (SQLite's backup API)."""
    target = path.with_name(path.name + _SNAPSHOT)
    target.unlink(missing_ok=True)
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    return target


def pull_run(output: str, staging: Path, token: str) -> Path:
    """This machine's copy of a remote run (everything but the shards, which each worker pulls
    itself: :func:`pull_shard`), fetched once per staging ``token`` under a lock; its local
    root."""
    root = output_copy(staging, output)
    marker = root.parent / STAGED
    with locked(root.parent.with_name(root.parent.name + ".lock")):
        if not (marker.exists() and marker.read_text("utf-8") == token):
            root.mkdir(parents=True, exist_ok=True)
            for path in root.iterdir():  # the shards stay: this machine's may be further on
                if path.name == WORK:
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            fetch(output, root, skip=lambda relative: relative.split("/", 1)[0] == WORK)
            marker.write_text(token, "utf-8")
    return root


def mark_staged(root: Path, token: str) -> None:
    """Say that ``root`` (the driver's working copy of a remote run) is this staging's copy: a
    worker on the driver's machine works on it as it is."""
    (root.parent / STAGED).write_text(token, "utf-8")
