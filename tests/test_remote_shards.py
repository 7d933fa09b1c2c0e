"""The shards of a run in remote storage (``--engine ray``, sftlabel.runs._remote) and the
per-machine copies of remote inputs (sftlabel.storage.localize), on fsspec's in-memory store:
what another machine of a cluster sees is only what went through the store."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from sftlabel.runs import finished, mark_finished, pull_run, pull_shard, push_shard, shard_dir
from sftlabel.storage import localize

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def store() -> str:
    """A fresh folder on fsspec's in-memory filesystem (shared by this process only)."""
    return f"memory://runs/{uuid.uuid4().hex}/LABELED_data"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text("utf-8", errors="replace")
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != ".sqlite"
    }


def test_a_shard_goes_to_another_machine_through_the_store(store: str, tmp_path: Path) -> None:
    here, there = tmp_path / "a" / "run", tmp_path / "b" / "run"
    own = shard_dir(here, 1)
    write(own / "train" / "x.jsonl", '{"id": 1}\n{"id": 2}\n')
    index = sqlite3.connect(own / "dedup.sqlite")
    index.execute("CREATE TABLE content (key BLOB PRIMARY KEY, original TEXT)")
    index.execute("INSERT INTO content VALUES (x'01', 's1')")
    index.commit()  # still open, as a running shard's index is
    push_shard(store, here, 1)
    assert pull_shard(store, there, 1)
    theirs = shard_dir(there, 1)
    assert (theirs / "train" / "x.jsonl").read_text() == '{"id": 1}\n{"id": 2}\n'
    copy = sqlite3.connect(theirs / "dedup.sqlite")
    assert copy.execute("SELECT original FROM content").fetchall() == [("s1",)]
    copy.close()
    index.close()
    assert finished(there, 1) is None  # not done yet
    assert not list(own.glob("*.snapshot"))  # the snapshot it uploaded is gone


def test_the_further_copy_of_a_shard_wins(store: str, tmp_path: Path) -> None:
    """A copy is taken only when the store's generation is higher: a machine that went on
    after its last upload keeps its own; a machine behind the store takes the store's."""
    here, there = tmp_path / "a" / "run", tmp_path / "b" / "run"
    lines = shard_dir(here, 0) / "x.jsonl"
    write(lines, "1\n")
    push_shard(store, here, 0)  # generation 1
    with lines.open("a") as handle:
        handle.write("2\n")  # written after the upload
    assert not pull_shard(store, here, 0)
    assert lines.read_text() == "1\n2\n"
    assert pull_shard(store, there, 0)  # another machine (Ray's retry there) goes on from 1
    with (shard_dir(there, 0) / "x.jsonl").open("a") as handle:
        handle.write("3\n")
    mark_finished(there, 0, {"status": "completed"})
    push_shard(store, there, 0, done=True)  # generation 2, done
    assert pull_shard(store, here, 0)  # the first machine is behind now: one lineage
    assert lines.read_text() == "1\n3\n"
    assert finished(here, 0) == {"status": "completed"}
    assert not pull_shard(store, here, 0)


def test_a_machine_fetches_the_run_once_per_session_without_the_shards(
    store: str, tmp_path: Path
) -> None:
    fs, path = fsspec.core.url_to_fs(store)
    fs.pipe(f"{path}/run.json", b"{}")
    fs.pipe(f"{path}/a.jsonl", b"1\n")
    fs.pipe(f"{path}/.shards/0000/a.jsonl", b"x\n")
    staging = tmp_path / "staging"
    root = pull_run(store, staging, "session-1")
    assert tree(root) == {"a.jsonl": "1\n", "run.json": "{}"}
    fs.pipe(f"{path}/a.jsonl", b"1\n2\n")
    assert tree(pull_run(store, staging, "session-1"))["a.jsonl"] == "1\n"  # this session's copy
    write(shard_dir(root, 0) / "a.jsonl", "mine\n")  # a worker here went on with shard 0
    assert tree(pull_run(store, staging, "session-2")) == {
        "a.jsonl": "1\n2\n",
        "run.json": "{}",
        ".shards/0000/a.jsonl": "mine\n",  # kept: pull_shard decides
    }


def test_remote_inputs_are_staged_once_per_machine_and_session(tmp_path: Path) -> None:
    url = f"memory://raw/{uuid.uuid4().hex}/dataset"
    fs, path = fsspec.core.url_to_fs(url)
    fs.pipe(f"{path}/part/a.jsonl", b'{"id": 1}\n')
    fs.pipe(f"{path}/notes.txt", b"not data")
    staging = tmp_path / "staging"
    [local] = localize([url], staging, "t1")
    assert local.name == "dataset"
    assert tree(local) == {"part/a.jsonl": '{"id": 1}\n'}  # data files only
    fs.pipe(f"{path}/part/a.jsonl", b'{"id": 2}\n')
    assert localize([url], staging, "t1") == [local]
    assert tree(local) == {"part/a.jsonl": '{"id": 1}\n'}  # the same session: not fetched again
    localize([url], staging, "t2")
    assert tree(local) == {"part/a.jsonl": '{"id": 2}\n'}
    write(local / "part" / "mine.txt", "kept")  # a mark on this machine's copy
    localize([url], staging, "t3")  # a new session, the remote files unchanged: no download
    assert (local / "part" / "mine.txt").exists()
    fs.pipe(f"{path}/part/b.jsonl", b'{"id": 3}\n')
    localize([url], staging, "t4")  # changed: a new copy, swapped in whole
    assert tree(local) == {"part/a.jsonl": '{"id": 2}\n', "part/b.jsonl": '{"id": 3}\n'}
