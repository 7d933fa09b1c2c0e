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
import math
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from sftlabel.api._select_plan import (
    Light,
    Plan,
    SelectQuery,
    evaluate,
    failed,
    light_decoder,
    values_of,
)
from sftlabel.api._select_write import open_writer
from sftlabel.errors import UsageError
from sftlabel.taxonomy import Taxonomy

if TYPE_CHECKING:  # the reports (and plotly) are imported when select runs
    from sftlabel.reports._runs import RunData

SelectFormat = Literal["source", "samples", "parquet"]
FORMATS = ("source", "samples", "parquet")
_STDOUT = Path("/dev/stdout")


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
    fields: Light
    payload: bytes | dict[str, Any]


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
                        fields = light_decoder.decode(line)
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
            fields = msgspec.convert({k: record.get(k) for k in Light.__struct_fields__}, Light)
            yield _Item(seq, part, fields, record)
            seq += 1


def _key(part: str, fields: Light, seq: int) -> str:
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
    from sftlabel.reports._report import run_taxonomy
    from sftlabel.reports._runs import RunData, open_run

    data = run if isinstance(run, RunData) else open_run(Path(run))
    query = dataclasses.replace(query)  # a mix's total may fill in the limit
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint="use " + ", ".join(FORMATS))
    tax = None if data.kind == "soft" else run_taxonomy(data, _tax_arg(taxonomy))
    plan = Plan(query, data, tax)
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


def _query_dict(query: SelectQuery, plan: Plan) -> dict[str, Any]:
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
    run: RunData, plan: Plan, summary: SelectSummary, path: Path
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
        if failed(fields, plan):
            summary.skipped_failed += 1
            continue
        passed = evaluate(plan, fields, per_expression)
        if not passed:
            continue
        summary.matched += 1
        if plan.soft:
            for dim in plan.dimensions:
                for value in values_of(plan.value(fields, dim)):
                    matched[dim][value] += 1
        else:
            labels = fields.labels
            for dim in plan.dimensions:
                value = labels.get(dim)
                if type(value) is str and value:
                    matched[dim][value] += 1
                else:
                    matched[dim].update(values_of(value))
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


def _quotas(plan: Plan, summary: SelectSummary) -> dict[str, int] | None:
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
    db: sqlite3.Connection | None, plan: Plan, summary: SelectSummary
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


def _chosen_items(run: RunData, plan: Plan, chosen: Iterator[int] | None) -> Iterator[_Item]:
    """Pass 2: the chosen records, in the run's file order."""
    if chosen is None:
        for item in _stream(run):
            if not failed(item.fields, plan) and evaluate(plan, item.fields, Counter()):
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
