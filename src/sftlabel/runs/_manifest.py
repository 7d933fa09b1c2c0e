"""``run.json``: what a run was asked to do, so ``--resume`` can finish it the same way."""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
from pathlib import Path
from typing import Literal

import msgspec

from sftlabel import __version__
from sftlabel.errors import UsageError
from sftlabel.taxonomy import Taxonomy

FORMAT_VERSION = 1


class LabelOptions(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Every option that changes which samples a run labels or how (resume reuses them)."""

    model: str
    sparse: bool = False
    sparse_threshold: int = 5
    sparse_ratio: float = 2.0
    max_chars: int | None = 60_000
    limit: int | None = None
    shuffle: bool = False
    seed: int = 0
    confidence_threshold: float = 0.65
    arbitration: bool = True
    arbitration_model: str | None = None
    json_mode: Literal["auto", "on", "off"] = "auto"
    max_tokens: int = 1024
    temperature: float = 0.0


class TaxonomyRef(msgspec.Struct, kw_only=True):
    name: str
    version: str
    path: str
    hash: str


class Session(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One invocation of the run (the first, then every resume)."""

    started: str
    finished: str | None = None
    status: str = "running"
    labeled: int = 0
    failed: int = 0
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    elapsed: float = 0.0
    message: str | None = None


class RunManifest(msgspec.Struct, kw_only=True):
    format: int = FORMAT_VERSION
    sftlabel: str = __version__
    python: str = platform.python_version()
    created: str
    inputs: list[str]
    endpoint: str
    options: LabelOptions
    taxonomy: TaxonomyRef
    sessions: list[Session] = []


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def taxonomy_ref(taxonomy: Taxonomy) -> TaxonomyRef:
    """The taxonomy's identity: a hash over its YAML files, to refuse mixing taxonomies."""
    digest = hashlib.blake2b(digest_size=12)
    for path in sorted(taxonomy.path.rglob("*.yaml")):
        digest.update(path.relative_to(taxonomy.path).as_posix().encode())
        digest.update(path.read_bytes())
    return TaxonomyRef(
        name=taxonomy.name,
        version=taxonomy.version,
        path=str(taxonomy.path),
        hash=digest.hexdigest(),
    )


def read_manifest(root: Path) -> RunManifest:
    path = root / "run.json"
    if not path.is_file():
        raise UsageError(
            f"{root} is not a run directory (no run.json)",
            hint="pass the directory a previous `sftlabel label` run wrote",
        )
    try:
        return msgspec.json.decode(path.read_bytes(), type=RunManifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"{path} is damaged: {exc}") from None


def write_manifest(root: Path, manifest: RunManifest) -> None:
    path = root / "run.json"
    partial = path.with_name("run.json.partial")
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
    partial.replace(path)
