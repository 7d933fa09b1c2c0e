"""``run.json``: one manifest for every kind of run (label, softlabel, arbitrate).

It records what the run was asked to do, so that ``--resume`` finishes it the same way: the kind,
the inputs as absolute paths (and as given, for URLs), every option that changes an answer, the
endpoint without credentials, the taxonomy and prompt versions, the rate options, the budget, and
one entry per session with what it did and spent.

One resume rule for every kind (:func:`merge_options`): an answer-changing option given again
with another value than the recorded one is refused, naming it and its recorded value; rate
options are kept unless given again; the endpoint and the key may be given again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from sftlabel._version import __version__
from sftlabel.errors import UsageError
from sftlabel.taxonomy import Taxonomy

FORMAT_VERSION = 2
MANIFEST = "run.json"
RunKind = Literal["label", "softlabel", "arbitrate", "generate"]


class LabelOptions(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Every option that changes which samples a label run labels or how."""

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
    dedup: bool = True
    """Samples whose rendering equals an earlier one's are labeled once (``--no-dedup``)."""


class RateOptions(msgspec.Struct, kw_only=True, omit_defaults=False):
    """How fast and how much: kept by a resume unless given again."""

    concurrency: int = 50
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    max_cost: float | None = None
    batch: bool = False
    """Requests go through the provider's Batch API (``--batch``); a resume keeps it."""
    poll_interval: float | None = None
    """Seconds between polls of a running batch (default 30)."""
    batch_export: str | None = None
    """Self-hosted batches: the directory the request files are written to
    (``--batch-export``; ``--batch-import`` reads the outputs back)."""


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
    retried: int = 0
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    elapsed: float = 0.0
    message: str | None = None


class Endpoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where the requests went (never a credential)."""

    url: str
    base_url: str | None = None
    azure_deployment: str | None = None
    api_version: str | None = None


class RunManifest(msgspec.Struct, kw_only=True):
    format: int = FORMAT_VERSION
    kind: RunKind = "label"
    sftlabel: str = __version__
    python: str = platform.python_version()
    created: str
    inputs: list[str]
    """Absolute paths (or URLs) of the inputs."""
    given_inputs: list[str] = []
    """The inputs as the user typed them (for display only)."""
    endpoint: Endpoint | str
    options: dict[str, Any]
    """Every option that changes an answer, by name (``LabelOptions`` for label runs)."""
    rate: RateOptions = msgspec.field(default_factory=RateOptions)
    taxonomy: TaxonomyRef | None = None
    prompt_version: str | None = None
    origin: str | None = None
    """The run an ``arbitrate`` run was made from."""
    shards: int | None = None
    """The shard count of a run made with ``--engine ray`` (a resume splits the same way)."""
    sessions: list[Session] = []

    @property
    def model(self) -> str:
        return str(self.options.get("model") or "")

    @property
    def spent(self) -> float:
        """USD spent over every session of the run."""
        return sum(s.cost for s in self.sessions)

    def label_options(self) -> LabelOptions:
        return msgspec.convert(self.options, LabelOptions)

    def endpoint_url(self) -> str:
        return self.endpoint if isinstance(self.endpoint, str) else self.endpoint.url

    def recorded_base_url(self) -> str | None:
        return None if isinstance(self.endpoint, str) else self.endpoint.base_url


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


def manifest_path(root: Path) -> Path:
    return root / MANIFEST


def has_manifest(root: Path) -> bool:
    return manifest_path(root).is_file()


def read_manifest(root: Path) -> RunManifest:
    path = manifest_path(root)
    if not path.is_file():
        raise UsageError(
            f"{root} is not a run directory (no {MANIFEST})",
            hint="pass the directory a previous `sftlabel label` run wrote",
        )
    try:
        return msgspec.json.decode(path.read_bytes(), type=RunManifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"{path} is damaged: {exc}") from None


def write_manifest(root: Path, manifest: RunManifest) -> None:
    path = manifest_path(root)
    partial = path.with_name(MANIFEST + ".partial")
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
    partial.replace(path)


SCOPE_OPTIONS = frozenset({"limit", "dedup"})
"""Options that change how many items a run covers or sends, not the answers: a resume may
change them (like rate options, they are kept unless given again)."""


def merge_options(
    recorded: Mapping[str, Any], given: Mapping[str, Any], *, flag_names: Mapping[str, str]
) -> dict[str, Any]:
    """The options of a resumed run: the recorded ones, checked against those given again.

    ``given`` holds only what the caller set explicitly (``None`` means "not given"); an
    answer-changing option given with another value than the recorded one is refused with its
    flag name and recorded value.
    """
    merged = dict(recorded)
    for name, value in given.items():
        if value is None:
            continue
        if name not in recorded:
            if name in SCOPE_OPTIONS:
                merged[name] = value  # an option newer than the run
            continue
        if _same(recorded[name], value):
            continue
        if name in SCOPE_OPTIONS:
            merged[name] = value  # how many items, not how they are labeled
            continue
        flag = flag_names.get(name, "--" + name.replace("_", "-"))
        raise UsageError(
            f"{flag} {_show(value)} differs from this run's {_show(recorded[name])}: resuming "
            "would mix answers made two ways in one run",
            hint=f"resume with {flag} {_show(recorded[name])} (or without it), or start a new "
            "run in another directory",
        )
    return merged


def merge_rate(recorded: RateOptions, given: Mapping[str, Any]) -> RateOptions:
    """Rate options of a resumed run: recorded values unless given again."""
    values = msgspec.structs.asdict(recorded)
    values.update({k: v for k, v in given.items() if v is not None and k in values})
    return RateOptions(**values)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return float(a) == float(b)
    return bool(a == b)


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)
