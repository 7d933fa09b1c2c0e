"""Remote inputs and outputs through fsspec (``az://``, ``abfs://``, ``s3://``, ``gs://`` ...).

A remote dataset is *staged*: its ``.json``/``.jsonl`` files are copied into a local staging
folder (under the cache directory), the run reads and appends locally (so ``kill -9`` and resume
behave exactly as for local data), and the output folder is uploaded when the run ends. The
staging folder of an output is kept and preferred on ``--resume``: it is never older than the
remote copy. Credentials are fsspec's: ``AZURE_STORAGE_CONNECTION_STRING`` (or account name/key,
SAS, service principal env vars) for adlfs, the AWS and Google environment for s3fs and gcsfs.

A ``--engine ray`` worker on another machine stages the same inputs into its own node's staging
folder (:func:`localize`: once per node and session, under a lock, however many workers the node
runs), and keeps its shard of a remote output in sync with the store (:mod:`sftlabel.runs._remote`).

Install the extra of your store: ``pip install 'sftlabel[azure]'`` (adlfs), ``sftlabel[s3]``
(s3fs), ``sftlabel[gcs]`` (gcsfs).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.config import default_cache_dir
from sftlabel.errors import ConfigError, InputError, UsageError
from sftlabel.formats._source import SUFFIXES

EXTRAS = {
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
}


def is_remote(location: str) -> bool:
    """True for an fsspec URL other than a local file (``file://``)."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.lower() not in ("file", "local") and scheme.isalnum()


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of a URL and the path within it; a clear error when the extra that
    handles the scheme is not installed."""
    scheme = url.partition("://")[0].lower()
    try:
        import fsspec
    except ImportError:
        raise ConfigError(
            f"{url}: remote storage needs fsspec",
            hint=f"pip install 'sftlabel[{EXTRAS.get(scheme, 'azure')}]'",
        ) from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ConfigError(
            f"{url}: no filesystem for {scheme}:// ({exc})",
            hint=f"pip install 'sftlabel[{EXTRAS.get(scheme, scheme)}]'",
        ) from None
    return fs, path


@dataclass
class Staged:
    """Local paths a run works on, and how to publish the output when it ends."""

    inputs: list[Path]
    output: Path
    display_output: str
    resumed: bool = False
    """The output existed remotely and was brought back into the staging folder."""
    remote_output: str | None = None
    input_urls: list[str] = field(default_factory=list)
    """The remote inputs (in the order of ``inputs``), empty for local ones."""
    staging: Path | None = None
    """The staging folder of this machine (remote inputs or output only)."""
    token: str = ""
    """This staging's identity: a worker on this machine that finds it reuses the copies."""
    _uploads: list[Callable[[], None]] = field(default_factory=list)

    def sync(self) -> None:
        """Upload the output folder to its remote location (no-op for a local output)."""
        for upload in self._uploads:
            upload()


def _key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _name(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1]


def _parent(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[0]


def input_copy(staging: Path, url: str) -> Path:
    """The folder a remote input is staged in, below a machine's ``staging`` folder."""
    return staging / "in" / _key(url)


def output_copy(staging: Path, url: str) -> Path:
    """The local working copy of a remote output folder, below a machine's ``staging``."""
    return staging / "out" / _key(url) / _name(url)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a lock file) among the processes of this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


STAGED = ".staged"
"""The staging a folder holds (its token; for an input, the remote listing it copied), written
once its copy is complete."""


class _Held(msgspec.Struct):
    token: str
    listing: list[tuple[str, int, str]] = []


def localize(urls: list[str], staging: Path, token: str) -> list[Path]:
    """Local copies of remote inputs below ``staging``, under a lock so the workers of one
    machine download each input once: the copy this machine holds if it is staging ``token``'s
    or the remote files are unchanged since (same names, sizes and versions), else a new one,
    downloaded aside and swapped in (a reader of the old copy never sees a half-written file)."""
    local: list[Path] = []
    for url in urls:
        target = input_copy(staging, url)
        with locked(target.with_name(target.name + ".lock")):
            marker = target / STAGED
            held = msgspec.json.decode(marker.read_bytes(), type=_Held) if marker.exists() else None
            if held is None or held.token != token:
                listing = _listing(url)
                if held is None or not listing or held.listing != listing:
                    _replace(url, target)
                marker.write_bytes(msgspec.json.encode(_Held(token, listing)))
        local.append(_staged_root(url, target))
    return local


_VERSIONS = ("etag", "ETag", "version_id", "last_modified", "LastModified", "mtime", "created")


def _listing(url: str) -> list[tuple[str, int, str]]:
    """The data files of a remote input with their sizes and versions (etag, modification
    time); empty when a file has no version to tell a change by (then it is always fetched)."""
    fs, root = filesystem(url)
    if not fs.exists(root):
        raise InputError(f"{url}: no such file or folder")
    infos = {root: fs.info(root)} if fs.isfile(root) else fs.find(root, detail=True)
    rows: list[tuple[str, int, str]] = []
    for path, info in sorted(infos.items()):
        if info.get("type") == "directory" or not _wanted(path):
            continue
        version = next((str(info[k]) for k in _VERSIONS if info.get(k)), "")
        if not version:
            return []
        rows.append((path, int(info.get("size") or 0), version))
    return rows


def _wanted(path: str) -> bool:
    return path.lower().endswith(SUFFIXES) or _name(path) == "metadata.json"


def _replace(url: str, target: Path) -> None:
    """Download ``url`` beside ``target``, then swap it in."""
    fresh, old = target.with_name(target.name + ".new"), target.with_name(target.name + ".old")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    _download_inputs(url, fresh)
    if target.exists():
        target.replace(old)
    fresh.replace(target)
    shutil.rmtree(old, ignore_errors=True)


def _staged_root(url: str, target: Path) -> Path:
    return target / _name(filesystem(url)[1])


def _download_inputs(url: str, target: Path) -> Path:
    fs, root = filesystem(url)
    if not fs.exists(root):
        raise InputError(f"{url}: no such file or folder")
    target.mkdir(parents=True, exist_ok=True)
    if fs.isfile(root):
        local = target / _name(root)
        fs.get(root, str(local))
        return local
    local_root = target / _name(root)
    fetch(url, local_root, skip=lambda relative: not _wanted(relative))
    return local_root


def _download_output(url: str, target: Path) -> bool:
    """Bring an existing remote output into an empty staging folder; True if there was one."""
    return fetch(url, target) > 0


def _upload(local: Path, url: str) -> None:
    """Mirror a local folder to ``url``: upload every file, remove remote files it lacks."""
    fs, root = filesystem(url)
    root = root.rstrip("/")
    wanted = {p.relative_to(local).as_posix(): p for p in local.rglob("*") if p.is_file()}
    if fs.exists(root):
        for remote in fs.find(root):
            if remote[len(root) + 1 :] not in wanted:
                fs.rm(remote)
    for relative, path in wanted.items():
        fs.put_file(str(path), f"{root}/{relative}")


def fetch(url: str, target: Path, *, skip: Callable[[str], bool] = lambda _: False) -> int:
    """Download every file below ``url`` into ``target`` (relative paths kept), except those
    ``skip`` names (by relative path); returns how many files came."""
    fs, root = filesystem(url)
    root = root.rstrip("/")
    if not fs.exists(root):
        return 0
    count = 0
    for remote in fs.find(root):
        relative = remote[len(root) + 1 :]
        if not relative or skip(relative):
            continue
        local = target / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(local))
        count += 1
    return count


def put(files: list[tuple[Path, str]], url: str) -> None:
    """Upload local files to the folder ``url`` under the given relative names, in order."""
    fs, root = filesystem(url)
    root = root.rstrip("/")
    for path, name in files:
        fs.put_file(str(path), f"{root}/{name}")


def read_text(url: str) -> str | None:
    """A small remote file's text, None if it does not exist."""
    fs, path = filesystem(url)
    try:
        with fs.open(path, "rb") as handle:
            data: bytes = handle.read()
    except FileNotFoundError:
        return None
    return data.decode("utf-8")


def remove(url: str) -> None:
    """Remove a remote folder (nothing if it does not exist)."""
    fs, path = filesystem(url)
    with contextlib.suppress(FileNotFoundError):
        if fs.exists(path):
            fs.rm(path, recursive=True)


@contextmanager
def stage(
    inputs: list[str],
    output: str | None,
    default_output: Callable[[list[Path]], Path],
    *,
    cache_dir: Path | None = None,
    token: str | None = None,
) -> Iterator[Staged]:
    """Local inputs and output folder for a run over local or remote locations (``token``: the
    staging's identity, new unless given: :func:`stage_output`'s for the same session)."""
    remote = [i for i in inputs if is_remote(i)]
    if not remote and (output is None or not is_remote(output)):
        paths = [Path(i) for i in inputs]
        for path in paths:
            if not path.exists():
                raise UsageError(f"{path}: no such file or directory")
        out = Path(output) if output else default_output(paths)
        yield Staged(inputs=paths, output=out, display_output=str(out))
        return
    if remote and len(remote) != len(inputs):
        raise UsageError("mix of local and remote inputs", hint="give one kind at a time")
    staging = (cache_dir or Path(default_cache_dir())) / "staging"
    token = token or uuid.uuid4().hex
    if remote:
        local_inputs = localize(remote, staging, token)
    else:
        local_inputs = []
        for item in inputs:
            path = Path(item)
            if not path.exists():
                raise UsageError(f"{path}: no such file or directory")
            local_inputs.append(path)
    if output is None:
        first = inputs[0]
        output = f"{_parent(first)}/{default_output([local_inputs[0]]).name}"
    if remote:
        for item in inputs:
            prefix = item.rstrip("/") + "/"
            if output.rstrip("/") == item.rstrip("/") or output.startswith(prefix):
                raise UsageError(
                    f"refusing to write into the raw dataset {item}",
                    hint="pass -o outside of it (the default is LABELED_<dataset> beside it)",
                )
    if not is_remote(output):
        yield Staged(
            inputs=local_inputs,
            output=Path(output),
            display_output=output,
            input_urls=remote,
            staging=staging,
            token=token,
        )
        return
    local_out, resumed = _working_copy(output, staging)
    staged = Staged(
        inputs=local_inputs,
        output=local_out,
        display_output=output,
        resumed=resumed,
        remote_output=output,
        input_urls=remote,
        staging=staging,
        token=token,
    )
    target = output
    staged._uploads.append(lambda: _upload(local_out, target))
    yield staged


def _working_copy(output: str, staging: Path, *, fresh: bool = False) -> tuple[Path, bool]:
    """The local copy of a remote output folder, and whether it holds an earlier run: this
    machine's copy if it has one (never older than the store's), else the store's. ``fresh``
    (a new run): a copy whose remote folder is gone is stale, and removed."""
    local = output_copy(staging, output)
    if fresh and local.exists() and not _has_files(output):
        shutil.rmtree(local)
    if not local.exists() or not any(local.iterdir()):
        local.mkdir(parents=True, exist_ok=True)
        return local, _download_output(output, local)
    return local, True


def _has_files(url: str) -> bool:
    fs, root = filesystem(url)
    return bool(fs.exists(root) and any(not fs.isdir(f) for f in fs.find(root)))


@contextmanager
def stage_output(url: str, *, cache_dir: Path | None = None, fresh: bool) -> Iterator[Staged]:
    """A local working copy of a remote run directory (``fresh``: a new run, else a resume),
    uploaded by ``sync()``; its ``token`` names the session's staging (pass it to
    :func:`stage` for the same session's inputs)."""
    staging = (cache_dir or Path(default_cache_dir())) / "staging"
    local, resumed = _working_copy(url, staging, fresh=fresh)
    if not fresh and not resumed:
        raise UsageError(f"{url} is not a run directory (it is empty or does not exist)")
    staged = Staged(
        inputs=[],
        output=local,
        display_output=url,
        resumed=resumed,
        remote_output=url,
        staging=staging,
        token=uuid.uuid4().hex,
    )
    staged._uploads.append(lambda: _upload(local, url))
    yield staged


def clear_staging(cache_dir: Path | None = None) -> None:
    """Remove every staged copy (they are caches: the remote store is the truth)."""
    shutil.rmtree((cache_dir or Path(default_cache_dir())) / "staging", ignore_errors=True)
