"""``review`` export: one spreadsheet row per sample (or per soft-labeled turn) for people to check.

Selection streams the run once:

* ``low_confidence``: samples with a dimension below the threshold (soft labels: turns whose
  decision confidence ``max(p, 1 - p)`` is below it);
* ``disagreements_with``: samples whose labels differ from another run's (paired by id; the
  other run is held as one compact tuple of labels per id, this one is streamed);
* ``sample`` (with ``stratify``): a seeded stratified random sample drawn with one reservoir per
  stratum (capacity ``sample``), so memory holds at most ``strata x sample`` rows, never the run.

Filters combine (AND); the sample is drawn from what the filters keep. Rows are written in run
order.
"""

from __future__ import annotations

import gc
import math
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeVar

from msgspec import UNSET

from sftlabel.errors import UsageError
from sftlabel.model import TurnLabel
from sftlabel.reports._runs import RunData, TaxonomyRecord
from sftlabel.reports._table import Cell, TableFormat, table_writer
from sftlabel.taxonomy import Taxonomy

LIST_SEPARATOR = "; "
"""How the tags of a multi-select dimension are joined in a cell."""
QUERY_CHARS = 200
"""The query column is the first user message on one line, cut to about this many characters;
``last_user_message`` (the turn that was labeled) and ``reply`` (the start of the reply the labels
describe) are cut the same way."""
DEFAULT_THRESHOLD = 0.65
NONE_STRATUM = "(none)"

R = TypeVar("R")
Compact = tuple[Any, ...]


@dataclass(frozen=True)
class ReviewSelection:
    """Which samples a review file holds (all of them by default)."""

    low_confidence: bool = False
    threshold: float | None = None
    """Default: the run's ``confidence_threshold`` (run.json), else 0.65."""
    sample: int | None = None
    stratify: str | None = None
    seed: int = 0
    disagreements_with: RunData | None = None


@dataclass
class ExportSummary:
    """What an export wrote."""

    kind: str
    columns: list[str]
    total: int = 0
    """Records in the run."""
    kept: int = 0
    """Records the filters kept (before sampling)."""
    written: int = 0
    threshold: float | None = None
    strata: dict[str, tuple[int, int]] = field(default_factory=dict)
    """With ``sample``: stratum -> (records available, records drawn)."""
    paired: int = 0
    differing: int = 0
    """Paired records whose labels differ."""
    only_here: int = 0
    only_other: int = 0
    duplicate_ids_other: int = 0


def export_review(
    run: RunData,
    out: IO[bytes],
    *,
    taxonomy: Taxonomy,
    fmt: TableFormat = "csv",
    selection: ReviewSelection | None = None,
    bom: bool = True,
) -> ExportSummary:
    """Write the review file of ``run`` to ``out`` (CSV/TSV with a UTF-8 BOM unless ``bom`` is
    false, or xlsx); returns what was written."""
    selection = selection or ReviewSelection()
    other = selection.disagreements_with
    if other is not None and other.kind != run.kind:
        raise UsageError(
            f"cannot compare {run.path} ({run.kind} labels) with {other.path} ({other.kind} labels)"
        )
    if selection.stratify is not None and selection.sample is None:
        raise UsageError("--stratify needs --sample N", hint="e.g. --sample 200 --stratify intent")
    if selection.sample is not None and selection.sample < 1:
        raise UsageError("--sample must be at least 1")
    if run.kind == "taxonomy":
        view: _View[Any] = _TaxonomyView(taxonomy, has_parts=any(part for part, _ in run.files))
    else:
        view = _SoftView()
    if selection.stratify is not None and selection.stratify not in view.strata():
        raise UsageError(
            f"cannot stratify by {selection.stratify!r}",
            hint="choose one of: " + ", ".join(view.strata()),
        )
    threshold = _threshold(run, selection.threshold)
    other_name = _other_name(run, other) if other is not None else None
    header = view.columns(other_name)
    summary = ExportSummary(kind=run.kind, columns=header, threshold=threshold)
    held = _hold(view, other, summary) if other is not None else None

    def selected() -> Iterator[tuple[Any, Compact | None, list[str]]]:
        for record in view.records(run):
            summary.total += 1
            theirs: Compact | None = None
            differs: list[str] = []
            if held is not None:
                theirs = held.pop(view.key(record), None)
                if theirs is None:
                    summary.only_here += 1
                    continue
                summary.paired += 1
                differs = view.differs(view.compact(record), theirs)
                if not differs:
                    continue
                summary.differing += 1
            if selection.low_confidence and not view.is_low(record, threshold):
                continue
            summary.kept += 1
            yield record, theirs, differs

    widths = view.widths(other_name)
    with table_writer(out, fmt, header, bom=bom, widths=widths) as write:
        if selection.sample is None:
            for record, theirs, differs in selected():
                write(view.row(record, theirs, differs))
                summary.written += 1
        else:
            rows = _stratified(
                selected(),
                lambda item: view.stratum(item[0], selection.stratify),
                lambda item: view.row(*item),
                size=selection.sample,
                seed=selection.seed,
                summary=summary,
            )
            for row in rows:
                write(row)
                summary.written += 1
    if held is not None:
        summary.only_other = len(held)
    return summary


def _threshold(run: RunData, explicit: float | None) -> float:
    if explicit is not None:
        return explicit
    for source in (
        (run.manifest or {}).get("options"),
        run.stats,
        run.metadata,
    ):
        if isinstance(source, dict):
            value = source.get("confidence_threshold")
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    return DEFAULT_THRESHOLD


def _other_name(run: RunData, other: RunData) -> str:
    return other.name if other.name and other.name != run.name else "RUN2"


def _hold(view: _View[Any], other: RunData, summary: ExportSummary) -> dict[str, Compact]:
    """The labels of the other run: one compact tuple per id (interned strings)."""
    held: dict[str, Compact] = {}
    # a million long-lived tuples make the cyclic collector rescan them again and again (a
    # third of the time); nothing built here forms a cycle
    enabled = gc.isenabled()
    gc.disable()
    try:
        for record in view.records(other):
            key = view.key(record)
            if key in held:
                summary.duplicate_ids_other += 1
                continue
            held[key] = view.compact(record)
    finally:
        if enabled:
            gc.enable()
    return held


def allocate(counts: dict[str, int], size: int) -> dict[str, int]:
    """Proportional allocation of ``size`` draws over strata with ``counts`` records: each
    stratum gets its share (largest remainders round up) but at least one, and never more than it
    has. When there are more strata than ``size``, every stratum still gets one."""
    total = sum(counts.values())
    if total <= size:
        return dict(counts)
    quotas = {s: size * c / total for s, c in counts.items()}
    alloc = {s: min(counts[s], max(1, math.floor(q))) for s, q in quotas.items()}
    by_remainder = sorted(counts, key=lambda s: (-(quotas[s] - math.floor(quotas[s])), s))
    while sum(alloc.values()) < size:
        grew = False
        for stratum in by_remainder:
            if sum(alloc.values()) >= size:
                break
            if alloc[stratum] < counts[stratum]:
                alloc[stratum] += 1
                grew = True
        if not grew:
            break
    while sum(alloc.values()) > size:
        # the minimum of one per stratum overshot: take back from the largest allocations
        shrinkable = [s for s in alloc if alloc[s] > 1]
        if not shrinkable:
            break
        alloc[max(shrinkable, key=lambda s: (alloc[s] - quotas[s], s))] -= 1
    return alloc


def _stratified(
    items: Iterator[R],
    stratum_of: Callable[[R], str],
    row_of: Callable[[R], list[Cell]],
    *,
    size: int,
    seed: int,
    summary: ExportSummary,
) -> list[list[Cell]]:
    """A seeded stratified random sample of ``items`` (one reservoir of ``size`` per stratum;
    rows are built only for items that enter a reservoir), in input order."""
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    reservoirs: dict[str, list[tuple[int, list[Cell]]]] = {}
    for position, item in enumerate(items):
        stratum = stratum_of(item)
        counts[stratum] += 1
        reservoir = reservoirs.setdefault(stratum, [])
        if len(reservoir) < size:
            reservoir.append((position, row_of(item)))
        else:
            slot = rng.randrange(counts[stratum])
            if slot < size:
                reservoir[slot] = (position, row_of(item))
    alloc = allocate(dict(counts), size)
    chosen: list[tuple[int, list[Cell]]] = []
    for stratum in sorted(reservoirs):
        reservoir = reservoirs[stratum]
        take = alloc[stratum]
        draw = rng.sample(reservoir, take) if take < len(reservoir) else reservoir
        chosen.extend(draw)
        summary.strata[stratum] = (counts[stratum], len(draw))
    chosen.sort(key=lambda entry: entry[0])
    return [row for _, row in chosen]


# --- what a row is, per kind of run ----------------------------------------------------------


class _View(Generic[R]):
    def records(self, run: RunData) -> Iterator[R]:
        raise NotImplementedError

    def columns(self, other: str | None) -> list[str]:
        raise NotImplementedError

    def widths(self, other: str | None) -> list[int]:
        raise NotImplementedError

    def key(self, record: R) -> str:
        raise NotImplementedError

    def compact(self, record: R) -> Compact:
        raise NotImplementedError

    def differs(self, mine: Compact, theirs: Compact) -> list[str]:
        raise NotImplementedError

    def is_low(self, record: R, threshold: float) -> bool:
        raise NotImplementedError

    def strata(self) -> list[str]:
        raise NotImplementedError

    def stratum(self, record: R, by: str | None) -> str:
        raise NotImplementedError

    def row(self, record: R, theirs: Compact | None, differs: list[str]) -> list[Cell]:
        raise NotImplementedError


class _TaxonomyView(_View[TaxonomyRecord]):
    def __init__(self, taxonomy: Taxonomy, *, has_parts: bool) -> None:
        self.dims = taxonomy.dimensions()
        self.multi = {d for d in self.dims if taxonomy.categories[d].select == "multi"}
        self.has_parts = has_parts
        self._shared: dict[tuple[str, ...], tuple[str, ...]] = {}
        """Interned tag tuples (a held run repeats the same few combinations a lot)."""

    def records(self, run: RunData) -> Iterator[TaxonomyRecord]:
        return run.taxonomy_records()

    def columns(self, other: str | None) -> list[str]:
        dims: list[str] = []
        for dim in self.dims:
            dims.append(dim)
            if other is not None:
                dims.append(f"{dim} ({other})")
        return [
            "id",
            *(["part"] if self.has_parts else []),
            "query",
            "last_user_message",
            "reply",
            *dims,
            *(["differs"] if other is not None else []),
            "min_confidence",
            "min_confidence_dim",
            "calls",
            "elapsed_s",
            "tokens",
            "note",
        ]

    def widths(self, other: str | None) -> list[int]:
        dims = [16] * (len(self.dims) * (2 if other is not None else 1))
        return [
            18,
            *([16] if self.has_parts else []),
            60,
            60,
            60,
            *dims,
            *([16] if other is not None else []),
            10,
            14,
            6,
            8,
            8,
            30,
        ]

    def key(self, record: TaxonomyRecord) -> str:
        return record.id

    def compact(self, record: TaxonomyRecord) -> Compact:
        labels = record.labels
        values: list[Any] = []
        for dim in self.dims:
            value = labels.get(dim)
            if dim in self.multi:
                items = value if isinstance(value, list) else ([] if value is None else [value])
                tags = tuple(sys.intern(str(v)) for v in items)
                values.append(self._shared.setdefault(tags, tags))
            else:
                values.append(None if value is None else sys.intern(str(value)))
        return tuple(values)

    def differs(self, mine: Compact, theirs: Compact) -> list[str]:
        return [
            dim
            for dim, a, b in zip(self.dims, mine, theirs, strict=True)
            if (set(a) != set(b) if dim in self.multi else a != b)
        ]

    def is_low(self, record: TaxonomyRecord, threshold: float) -> bool:
        lowest = _lowest(record.labels, self.dims)
        return lowest is not None and lowest[1] < threshold

    def strata(self) -> list[str]:
        return [*self.dims, "part"]

    def stratum(self, record: TaxonomyRecord, by: str | None) -> str:
        if by is None:
            return ""
        if by == "part":
            return record.part or NONE_STRATUM
        value = record.labels.get(by)
        if isinstance(value, list):
            value = value[0] if value else None  # multi-select: the first (main) tag
        return NONE_STRATUM if value in (None, "") else str(value)

    def row(self, record: TaxonomyRecord, theirs: Compact | None, differs: list[str]) -> list[Cell]:
        mine = self.compact(record)
        cells: list[Cell] = []
        for number, value in enumerate(mine):
            cells.append(_joined(value))
            if theirs is not None:
                cells.append(_joined(theirs[number]))
        lowest = _lowest(record.labels, self.dims)
        monitor = record.monitor
        tokens = [monitor.get(k) for k in ("prompt_tokens", "completion_tokens")]
        numbers = [t for t in tokens if isinstance(t, int)]
        elapsed = monitor.get("elapsed")
        calls = monitor.get("llm_calls")
        last_user, reply = record.labeled_turn()
        return [
            record.id,
            *([record.part] if self.has_parts else []),
            one_line(record.query),
            one_line(last_user),
            one_line(reply),
            *cells,
            *([LIST_SEPARATOR.join(differs)] if theirs is not None else []),
            round(lowest[1], 4) if lowest else None,
            lowest[0] if lowest else None,
            calls if isinstance(calls, int) else None,
            round(elapsed, 3) if isinstance(elapsed, int | float) else None,
            sum(numbers) if numbers else None,
            None,
        ]


class _SoftView(_View[tuple[str, TurnLabel]]):
    COLUMNS = (
        "conversationId",
        "messageId",
        "split",
        "bucket",
        "turnIndex",
        "hard_label",
        "soft_label",
        "confidence",
        "rationale",
        "error",
    )

    def records(self, run: RunData) -> Iterator[tuple[str, TurnLabel]]:
        return run.soft_records()

    def columns(self, other: str | None) -> list[str]:
        theirs = [f"hard_label ({other})", f"soft_label ({other})"] if other is not None else []
        return [*self.COLUMNS[:7], *theirs, *self.COLUMNS[7:], "note"]

    def widths(self, other: str | None) -> list[int]:
        return [18, 18, 8, 16, 6, 6, 8, *([6, 8] if other is not None else []), 8, 60, 20, 30]

    def key(self, record: tuple[str, TurnLabel]) -> str:
        turn = record[1]
        return f"{turn.conversationId}\x00{turn.messageId}"

    def compact(self, record: tuple[str, TurnLabel]) -> Compact:
        turn = record[1]
        return (_opt(turn.hard_label), _opt(turn.soft_label))

    def differs(self, mine: Compact, theirs: Compact) -> list[str]:
        return ["hard_label"] if mine[0] != theirs[0] else []

    def is_low(self, record: tuple[str, TurnLabel], threshold: float) -> bool:
        confidence = _decision_confidence(record[1])
        return confidence is not None and confidence < threshold

    def strata(self) -> list[str]:
        return ["split", "bucket", "hard_label", "part"]

    def stratum(self, record: tuple[str, TurnLabel], by: str | None) -> str:
        part, turn = record
        value: object = {
            None: "",
            "split": turn.split,
            "bucket": turn.bucket,
            "part": part,
            "hard_label": _opt(turn.hard_label),
        }[by]
        return NONE_STRATUM if value in (None, "") else str(value)

    def row(
        self, record: tuple[str, TurnLabel], theirs: Compact | None, differs: list[str]
    ) -> list[Cell]:
        turn = record[1]
        confidence = _decision_confidence(turn)
        rationale = _opt(turn.rationale)
        return [
            turn.conversationId,
            turn.messageId,
            turn.split,
            turn.bucket,
            turn.turnIndex or None,
            _opt(turn.hard_label),
            _opt(turn.soft_label),
            *(list(theirs) if theirs is not None else []),
            round(confidence, 4) if confidence is not None else None,
            one_line(rationale, 1000) if isinstance(rationale, str) else None,
            one_line(turn.error, 300) if turn.error else None,
            None,
        ]


def one_line(text: str, limit: int = QUERY_CHARS) -> str:
    """``text`` on one line (runs of whitespace become one space), cut to ``limit`` characters
    with an ellipsis."""
    flat = " ".join(text[: limit * 4].split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _joined(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return LIST_SEPARATOR.join(value)
    return str(value)


def _lowest(labels: dict[str, Any], dims: Sequence[str]) -> tuple[str, float] | None:
    confidence = labels.get("confidence")
    if not isinstance(confidence, dict):
        return None
    lowest: tuple[str, float] | None = None
    for dim in dims:
        score = confidence.get(dim)
        if isinstance(score, bool) or not isinstance(score, int | float):
            continue
        if lowest is None or score < lowest[1]:
            lowest = (dim, float(score))
    return lowest


def _opt(value: Any) -> Any:
    return None if value is UNSET else value


def _decision_confidence(turn: TurnLabel) -> float | None:
    soft = _opt(turn.soft_label)
    if turn.failed or not isinstance(soft, int | float):
        return None
    return max(float(soft), 1.0 - float(soft))
