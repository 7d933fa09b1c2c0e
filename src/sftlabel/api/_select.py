"""``sftlabel select``: choose labeled samples by tag expressions and export them.

Streams: pass 1 reads the run's records once (only their labels decoded) and counts; with a
quota (``limit``, ``balance``, ``mix``) every match's ``(position, priority, value)`` goes to a
temporary SQLite table (on disk, page cache capped), where the quotas are taken by priority;
pass 2 reads the run again and writes the chosen records. The priority of a sample is a
BLAKE2b hash of the seed and its id, so the same query on the same labels chooses the same
samples whatever the order of the files or lines. See docs/select.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from sftlabel.api._select_query import (
    NONE,
    SOFT_TEXTS,
    parse_min_confidence,
    parse_where,
)
from sftlabel.api._select_write import open_writer
from sftlabel.errors import UsageError
from sftlabel.reports._report import run_taxonomy
from sftlabel.reports._runs import RunData, open_run
from sftlabel.taxonomy import Taxonomy

SelectFormat = Literal["source", "samples", "parquet"]
FORMATS = ("source", "samples", "parquet")
_STDOUT = Path("/dev/stdout")


class _Light(msgspec.Struct):
    """The fields of a labeled record that selection needs (messages left undecoded)."""

    id: Any = None
    labels: Any = None
    conversationId: Any = None
    messageId: Any = None
    soft_label: Any = None
    hard_label: Any = None
    p0: Any = None
    p1: Any = None
    method: Any = None
    split: Any = None
    bucket: Any = None
    strategy: Any = None
    error: Any = None


_light = msgspec.json.Decoder(_Light)


@dataclass
class SelectQuery:
    """What to choose (the options of ``sftlabel select``)."""

    where: list[str] = field(default_factory=list)
    min_confidence: list[str] = field(default_factory=list)
    balance: str | None = None
    per_value: int | None = None
    mix: str | os.PathLike[str] | dict[str, Any] | None = None
    limit: int | None = None
    seed: int = 0


@dataclass
class SelectSummary:
    """What ``select`` read, matched and wrote (also the manifest's content)."""

    run: str
    kind: str
    query: dict[str, Any]
    records: int = 0
    skipped_failed: int = 0
    unreadable: int = 0
    """Lines of the run that are not JSON (none is ever chosen)."""
    matched: int = 0
    chosen: int = 0
    per_expression: dict[str, int] = field(default_factory=dict)
    per_value: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """``{dimension: {value: {"matched": n, "chosen": n, "quota": n?}}}``."""
    output: str | None = None
    manifest: str | None = None
    format: str = "source"
    rebuilt: int = 0
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "sftlabel.select/1",
            "run": self.run,
            "kind": self.kind,
            "query": self.query,
            "format": self.format,
            "output": self.output,
            "dry_run": self.dry_run,
            "counts": {
                "records": self.records,
                "skipped_failed": self.skipped_failed,
                "unreadable": self.unreadable,
                "matched": self.matched,
                "chosen": self.chosen,
                "rebuilt": self.rebuilt,
                "per_expression": self.per_expression,
                "per_value": self.per_value,
            },
        }


@dataclass(slots=True)
class _Item:
    seq: int
    part: str
    fields: _Light
    payload: bytes | dict[str, Any]


class _Plan:
    """The parsed query: conditions, the value a record is balanced on, the quotas."""

    def __init__(self, query: SelectQuery, run: RunData, taxonomy: Taxonomy | None) -> None:
        self.soft = run.kind == "soft"
        self.taxonomy = taxonomy
        self.conditions = [parse_where(w, taxonomy, soft=self.soft) for w in query.where]
        self.overall: float | None = None
        self.per_dimension: dict[str, float] = {}
        if query.min_confidence:
            if self.soft or taxonomy is None:
                raise UsageError(
                    "--min-confidence needs taxonomy labels",
                    hint='soft labels: use a range such as --where "p_no_reasoning>=0.8"',
                )
            self.overall, self.per_dimension = parse_min_confidence(query.min_confidence, taxonomy)
        self.dimensions = self._dimensions()
        self.balance = self._balance(query)
        self.shares = self._shares(query)
        self.per_value = query.per_value
        self.limit = query.limit
        self.seed = query.seed
        if self.per_value is not None and self.balance is None:
            raise UsageError("--per-value goes with --balance DIM")
        unbounded = self.per_value is None and self.limit is None and self.shares is None
        if self.balance is not None and unbounded:
            raise UsageError("--balance needs --per-value N or --limit N")
        if self.shares is not None and self.limit is None:
            raise UsageError("--mix needs a total: --limit N or `total` in the mix file")

    def _dimensions(self) -> list[str]:
        if self.soft:
            return ["hard_label", "method", "bucket"]
        assert self.taxonomy is not None
        return self.taxonomy.dimensions()

    def _balance(self, query: SelectQuery) -> str | None:
        name = query.balance
        if isinstance(query.mix, dict | str | os.PathLike):
            mix = _mix_file(query.mix)
            name = str(mix.get("dimension") or name or "")
            total = mix.get("total")
            if query.limit is None and isinstance(total, int):
                query.limit = total
        if not name:
            return None
        if self.soft:
            allowed = ["hard_label", *SOFT_TEXTS]
            if name not in allowed:
                raise UsageError(f"cannot balance on {name!r}", hint="use " + ", ".join(allowed))
            return name
        assert self.taxonomy is not None
        if name not in self.taxonomy.dimensions():
            dims = self.taxonomy.dimensions()
            raise UsageError(f"--balance: unknown dimension {name!r}", hint=", ".join(dims))
        if self.taxonomy.category(name).select != "single":
            raise UsageError(
                f"--balance {name}: a multi-select dimension has no single value per sample",
                hint="balance on intent, difficulty or context; filter the others with --where",
            )
        return name

    def _shares(self, query: SelectQuery) -> dict[str, float] | None:
        if query.mix is None:
            return None
        mix = _mix_file(query.mix)
        raw = mix.get("shares")
        if not isinstance(raw, dict) or not raw:
            raise UsageError("the mix file needs `shares`: {value: share, ...}")
        shares: dict[str, float] = {}
        for value, share in raw.items():
            tag = str(value)
            if self.taxonomy is not None and not self.soft and self.balance and tag != NONE:
                resolved = self.taxonomy.resolve(self.balance, tag)
                if resolved is None:
                    ids = self.taxonomy.category(self.balance).ids
                    raise UsageError(
                        f"mix: {tag!r} is not a tag of {self.balance}", hint=", ".join(ids)
                    )
                tag = resolved
            if not isinstance(share, int | float) or share < 0:
                raise UsageError(f"mix: the share of {tag!r} must be a number >= 0")
            shares[tag] = float(share)
        if sum(shares.values()) <= 0:
            raise UsageError("mix: the shares add up to 0")
        return shares

    # -- per record ------------------------------------------------------------------------

    def value(self, fields: _Light, name: str) -> Any:
        if self.soft:
            if name in ("soft_label", "p_no_reasoning"):
                return fields.soft_label
            if name == "p_reasoning":
                s = fields.soft_label
                return 1 - s if isinstance(s, int | float) else None
            return getattr(fields, name, None)
        labels = fields.labels if isinstance(fields.labels, dict) else {}
        return _label(labels, name)

    def confident(self, fields: _Light) -> bool:
        if self.overall is None and not self.per_dimension:
            return True
        labels = fields.labels if isinstance(fields.labels, dict) else {}
        confidence = labels.get("confidence")
        if not isinstance(confidence, dict):
            return False
        for dim, bound in self.per_dimension.items():
            value = confidence.get(dim)
            if not isinstance(value, int | float) or value < bound:
                return False
        if self.overall is not None:
            values = [v for d, v in confidence.items() if isinstance(v, int | float)]
            if not values or min(values) < self.overall:
                return False
        return True

    def group(self, fields: _Light) -> str:
        value = self.value(fields, self.balance) if self.balance else None
        if value is None or value == "":
            return NONE
        return str(value)

    def priority(self, key: str) -> int:
        digest = hashlib.blake2b(f"{self.seed}\0{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1


def _label(labels: dict[str, Any], name: str) -> Any:
    if name == "unmapped":
        return [u.get("dimension") for u in labels.get("unmapped") or [] if isinstance(u, dict)]
    value = labels.get(name)
    if value is None and name.startswith("confidence."):
        confidence = labels.get("confidence")
        return confidence.get(name[11:]) if isinstance(confidence, dict) else None
    return value


def _mix_file(mix: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(mix, dict):
        return mix
    path = Path(mix)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))  # YAML is a superset of JSON
    except OSError as exc:
        raise UsageError(f"--mix {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--mix {path}: not YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--mix {path}: expected a mapping with `dimension` and `shares`")
    return data


def _stream(run: RunData, unreadable: list[int] | None = None) -> Iterator[_Item]:
    """Every record of the run, in file order, with its labels decoded (payload: the line's
    bytes for a .jsonl file, the decoded record for a .json array)."""
    from sftlabel.reports._runs import _records

    seq = 0
    for part, path in run.files:
        if path.suffix.lower() == ".jsonl":
            with path.open("rb") as handle:
                for number, raw in enumerate(handle, 1):
                    line = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw
                    if not line or line.isspace():
                        continue
                    try:
                        fields = _light.decode(line)
                    except msgspec.DecodeError:  # not JSON (a line cut by kill -9): counted
                        if unreadable is not None:
                            unreadable.append(number)
                        continue
                    yield _Item(seq, part, fields, line)
                    seq += 1
            continue
        for record in _records(path):
            if not isinstance(record, dict):
                continue
            fields = msgspec.convert({k: record.get(k) for k in _Light.__struct_fields__}, _Light)
            yield _Item(seq, part, fields, record)
            seq += 1


def _key(part: str, fields: _Light, seq: int) -> str:
    if fields.conversationId is not None:
        ident = f"{fields.conversationId}\0{fields.messageId}"
    else:
        ident = str(fields.id) if fields.id is not None else f"#{seq}"
    return f"{part}\0{ident}"


def select(
    run: RunData | str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    query: SelectQuery,
    *,
    fmt: SelectFormat = "source",
    taxonomy: Taxonomy | str | os.PathLike[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    manifest: str | os.PathLike[str] | None = None,
) -> SelectSummary:
    """Choose a run's samples by ``query`` and write them to ``output`` in ``fmt`` (``source``:
    the format they came in; ``samples``: Sample JSONL; ``parquet``: labels as columns), with a
    manifest beside it. ``output`` ``"-"`` is stdout (no manifest unless one is named)."""
    data = run if isinstance(run, RunData) else open_run(Path(run))
    query = dataclasses.replace(query)  # a mix's total may fill in the limit
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint="use " + ", ".join(FORMATS))
    tax = None if data.kind == "soft" else run_taxonomy(data, _tax_arg(taxonomy))
    plan = _Plan(query, data, tax)
    summary = SelectSummary(
        run=str(data.path), kind=data.kind, query=_query_dict(query, plan), format=fmt
    )
    summary.dry_run = dry_run
    target, manifest_path = _targets(data, output, manifest, fmt, force=force, dry_run=dry_run)
    scratch = target.parent if target is not None and target != _STDOUT else None
    with tempfile.TemporaryDirectory(prefix=".sftlabel-select-", dir=scratch) as tmp:
        db = _candidates(data, plan, summary, Path(tmp) / "select.sqlite")
        try:
            chosen = _choose(db, plan, summary)
            if not dry_run and target is not None:
                summary.output = str(target)
                roots = [data.root, data.root.parent, Path.cwd()]
                with open_writer(
                    target, fmt, data.kind, tax, roots=roots, scratch=Path(tmp)
                ) as writer:
                    for item in _chosen_items(data, plan, chosen):
                        writer.write(item.fields, item.payload, item.part)
                    summary.rebuilt = writer.finish()
        finally:
            if db is not None:
                db.close()
    if manifest_path is not None and not dry_run:
        summary.manifest = str(manifest_path)
        manifest_path.write_bytes(msgspec.json.format(msgspec.json.encode(summary.to_dict())))
    return summary


def _tax_arg(taxonomy: Taxonomy | str | os.PathLike[str] | None) -> Taxonomy | Path | None:
    if taxonomy is None or isinstance(taxonomy, Taxonomy):
        return taxonomy
    return Path(taxonomy)


def _query_dict(query: SelectQuery, plan: _Plan) -> dict[str, Any]:
    return {
        "where": [c.text for c in plan.conditions],
        "min_confidence": list(query.min_confidence),
        "balance": plan.balance,
        "per_value": query.per_value,
        "mix": plan.shares,
        "limit": query.limit,
        "seed": query.seed,
    }


def _targets(
    run: RunData,
    output: str | os.PathLike[str] | None,
    manifest: str | os.PathLike[str] | None,
    fmt: str,
    *,
    force: bool,
    dry_run: bool,
) -> tuple[Path | None, Path | None]:
    if dry_run:
        return None, None
    if output is None:
        raise UsageError("give the output file with -o FILE (or --dry-run)")
    if os.fspath(output) == "-":
        if fmt == "parquet":
            raise UsageError("parquet cannot go to stdout", hint="-o chosen.parquet")
        return Path("/dev/stdout"), Path(manifest) if manifest is not None else None
    target = Path(output)
    manifest_path = Path(manifest) if manifest is not None else _manifest_for(target)
    reading = {p.resolve() for _, p in run.files}
    for path in (target, manifest_path):
        if path.resolve() in reading:
            raise UsageError(f"{path} is a file of the run being read", hint="choose another -o")
        if path.exists() and not force:
            raise UsageError(f"{path} exists", hint="pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target, manifest_path


def _manifest_for(target: Path) -> Path:
    stem = target.name.split(".")[0] or target.name
    return target.with_name(f"{stem}.manifest.json")


def _candidates(
    run: RunData, plan: _Plan, summary: SelectSummary, path: Path
) -> sqlite3.Connection | None:
    """Pass 1: count, and keep the matches in SQLite when a quota needs them."""
    quota = plan.limit is not None or plan.balance is not None
    db: sqlite3.Connection | None = None
    if quota:
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-16384")
        db.execute("PRAGMA temp_store=FILE")
        db.execute("CREATE TABLE cand (seq INTEGER PRIMARY KEY, prio INTEGER, grp TEXT)")
    per_expression = Counter[str]()
    matched = {d: Counter[str]() for d in plan.dimensions}
    batch: list[tuple[int, int, str]] = []
    unreadable: list[int] = []
    for item in _stream(run, unreadable):
        summary.records += 1
        fields = item.fields
        if _failed(fields, plan):
            summary.skipped_failed += 1
            continue
        passed = _evaluate(plan, fields, per_expression)
        if not passed:
            continue
        summary.matched += 1
        if plan.soft:
            for dim in plan.dimensions:
                for value in _values(plan.value(fields, dim)):
                    matched[dim][value] += 1
        else:
            labels = fields.labels
            for dim in plan.dimensions:
                value = labels.get(dim)
                if type(value) is str and value:
                    matched[dim][value] += 1
                else:
                    matched[dim].update(_values(value))
        if db is not None:
            key = _key(item.part, fields, item.seq)
            batch.append((item.seq, plan.priority(key), plan.group(fields)))
            if len(batch) >= 10_000:
                db.executemany("INSERT INTO cand VALUES (?, ?, ?)", batch)
                batch.clear()
    if db is not None and batch:
        db.executemany("INSERT INTO cand VALUES (?, ?, ?)", batch)
    summary.unreadable = len(unreadable)
    summary.per_expression = {c.text: per_expression[c.text] for c in plan.conditions}
    if plan.overall is not None or plan.per_dimension:
        summary.per_expression["min-confidence"] = per_expression["min-confidence"]
    summary.per_value = {
        dim: {v: {"matched": n} for v, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))}
        for dim, counts in matched.items()
    }
    return db


def _failed(fields: _Light, plan: _Plan) -> bool:
    if plan.soft:
        return fields.error is not None or fields.soft_label is None
    return not isinstance(fields.labels, dict)


def _evaluate(plan: _Plan, fields: _Light, counts: Counter[str]) -> bool:
    passed = True
    if plan.soft:
        for condition in plan.conditions:
            if condition.test(plan.value(fields, condition.field)):
                counts[condition.text] += 1
            else:
                passed = False
    else:
        labels = fields.labels
        for condition in plan.conditions:
            if condition.test(_label(labels, condition.field)):
                counts[condition.text] += 1
            else:
                passed = False
    if plan.overall is not None or plan.per_dimension:
        if plan.confident(fields):
            counts["min-confidence"] += 1
        else:
            passed = False
    return passed


def _values(value: Any) -> list[str]:
    if value is None or value in ("", []):
        return [NONE]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _quotas(plan: _Plan, summary: SelectSummary) -> dict[str, int] | None:
    if plan.balance is None:
        return None
    present = summary.per_value.get(plan.balance, {})
    if plan.shares is not None:
        assert plan.limit is not None
        return _largest_remainder(plan.shares, plan.limit)
    if plan.per_value is not None:
        return dict.fromkeys(present, plan.per_value)
    assert plan.limit is not None
    share = math.ceil(plan.limit / max(1, len(present)))
    return dict.fromkeys(present, share)


def _largest_remainder(shares: dict[str, float], total: int) -> dict[str, int]:
    whole = sum(shares.values())
    exact = {v: s / whole * total for v, s in shares.items()}
    counts = {v: math.floor(x) for v, x in exact.items()}
    rest = total - sum(counts.values())
    for v in sorted(exact, key=lambda v: (-(exact[v] - counts[v]), v))[:rest]:
        counts[v] += 1
    return counts


def _choose(
    db: sqlite3.Connection | None, plan: _Plan, summary: SelectSummary
) -> Iterator[int] | None:
    """Take the quotas by priority; None when every match is chosen."""
    quotas = _quotas(plan, summary)
    if db is None:
        summary.chosen = summary.matched
        for entries in summary.per_value.values():
            for counts in entries.values():
                counts["chosen"] = counts["matched"]
        return None
    # Every step reads an index in order (no sort in memory, no IN-set): memory stays flat.
    db.execute("CREATE TABLE chosen (seq INTEGER PRIMARY KEY, grp TEXT, prio INTEGER)")
    if quotas is None:
        db.execute("CREATE INDEX cand_prio ON cand (prio, seq)")
        db.execute(
            "INSERT INTO chosen SELECT seq, grp, prio FROM cand ORDER BY prio, seq LIMIT ?",
            (plan.limit,),
        )
    else:
        db.execute("CREATE INDEX cand_grp ON cand (grp, prio, seq)")
        for value, count in sorted(quotas.items()):
            db.execute(
                "INSERT INTO chosen SELECT seq, grp, prio FROM cand WHERE grp = ?"
                " ORDER BY prio, seq LIMIT ?",
                (value, count),
            )
        if plan.limit is not None:
            db.execute("CREATE INDEX chosen_prio ON chosen (prio, seq)")
            cut = db.execute(
                "SELECT prio, seq FROM chosen ORDER BY prio, seq LIMIT 1 OFFSET ?",
                (plan.limit,),
            ).fetchone()
            if cut is not None:  # more than --limit: drop from the first one past it
                db.execute("DELETE FROM chosen WHERE (prio, seq) >= (?, ?)", cut)
    summary.chosen = db.execute("SELECT COUNT(*) FROM chosen").fetchone()[0]
    if plan.balance is not None:
        rows = db.execute("SELECT grp, COUNT(*) FROM chosen GROUP BY grp").fetchall()
        got = dict(rows)
        values = summary.per_value.setdefault(plan.balance, {})
        for value in sorted({*values, *(quotas or {})}):
            entry = values.setdefault(value, {"matched": 0})
            entry["chosen"] = int(got.get(value, 0))
            if quotas is not None:
                entry["quota"] = int(quotas.get(value, 0))

    def seqs() -> Iterator[int]:
        cursor = db.execute("SELECT seq FROM chosen ORDER BY seq")
        while rows := cursor.fetchmany(10_000):
            for (seq,) in rows:
                yield seq

    return seqs()


def _chosen_items(run: RunData, plan: _Plan, chosen: Iterator[int] | None) -> Iterator[_Item]:
    """Pass 2: the chosen records, in the run's file order."""
    if chosen is None:
        for item in _stream(run):
            if not _failed(item.fields, plan) and _evaluate(plan, item.fields, Counter()):
                yield item
        return
    wanted = next(chosen, None)
    if wanted is None:
        return
    for item in _stream(run):
        if item.seq == wanted:
            yield item
            wanted = next(chosen, None)
            if wanted is None:
                return
