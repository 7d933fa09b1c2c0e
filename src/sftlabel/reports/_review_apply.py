"""``review --apply``: read a corrected review file back and write a corrected run.

Two passes over the run, nothing written before both are clean:

1. every row of the review file is matched to its sample (by ``part`` and ``id``, or by ``id``
   when the file has no ``part`` column); every cell that differs from the run's label is
   validated against the taxonomy (ids, aliases, single/multi select). All bad cells are
   collected and reported together (:class:`ReviewFileError`).
2. the run is copied into a new run directory with the changed labels; each change is recorded
   in ``labeling_monitor`` and ``labeled.json``, ``stats.json`` and the dashboard are rebuilt.

Memory holds the review file's label cells (it is written for people: hundreds to thousands of
rows) and the changes, never the run.
"""

from __future__ import annotations

import difflib
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from sftlabel.errors import InputError, UsageError
from sftlabel.reports._review import LIST_SEPARATOR
from sftlabel.reports._runs import RunData, _records
from sftlabel.reports._table import Table, read_back
from sftlabel.taxonomy import Taxonomy

if TYPE_CHECKING:
    from sftlabel.runs import RunManifest

# sftlabel.runs imports this package (for the dashboard): its modules are imported in the
# functions that use them.
LABELED, FAILURES, MONITOR, PROBLEMS, MANIFEST = (
    "labeled.jsonl",
    "failures.jsonl",
    "monitor.jsonl",
    "problems.jsonl",
    "run.json",
)

_SPLIT = re.compile(r"[;,|\n；，、]+")
_QUOTES = " \t\"'“”‘’`"
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class CellProblem:
    """One bad cell (or row) of a review file."""

    row: int
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        if self.row == 0:
            return f"{self.column} {self.value!r}: {self.message}"
        where = f"row {self.row}" + (f", column {self.column}" if self.column else "")
        shown = f" {self.value!r}:" if self.value else ""
        return f"{where}:{shown} {self.message}"


class ReviewFileError(InputError):
    """A review file with bad cells; ``problems`` lists every one of them."""

    def __init__(self, path: Path, problems: list[CellProblem]) -> None:
        count = len(problems)
        super().__init__(
            f"{path}: {count} bad cell{'s' if count != 1 else ''}; nothing was written",
            hint="fix the cells listed above and run `review --apply` again",
        )
        self.path = path
        self.problems = problems


@dataclass
class ApplySummary:
    """What ``apply_review`` changed."""

    target: Path
    rows: int = 0
    """Rows of the review file."""
    samples: int = 0
    """Samples in the run."""
    changed_samples: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    """Changed labels per dimension."""
    noted: int = 0
    """Samples that got a reviewer's note."""
    copies: int = 0
    """Duplicates (``duplicate_of``) whose labels were corrected with their original's."""


@dataclass
class _Row:
    number: int
    cells: tuple[str, ...]
    note: str


@dataclass
class _Edit:
    changes: list[dict[str, Any]]
    note: str


def apply_review(
    run: RunData,
    corrections: Path,
    target: Path,
    *,
    taxonomy: Taxonomy,
    overwrite: bool = False,
) -> ApplySummary:
    """Apply the corrected review file ``corrections`` to ``run``, into the new run directory
    ``target`` (``run`` is never modified). Raises :class:`ReviewFileError` listing every bad
    cell, and writes nothing, when any cell is bad."""
    if run.kind != "taxonomy":
        raise UsageError(
            f"{run.path} holds soft labels: `review --apply` corrects taxonomy runs only",
            hint="the soft-label review file is for reading; relabel turns with `softlabel`",
        )
    _check_target(run, target, overwrite=overwrite)
    dims = taxonomy.dimensions()
    table = Table(corrections)
    columns, has_part, note_column, problems = _columns(table, dims)
    if problems:
        raise ReviewFileError(corrections, problems)
    rows: dict[tuple[str, str], _Row] = {}
    summary = ApplySummary(target=target)
    for number, cells in table.rows():
        summary.rows += 1
        sample_id = cells[columns["id"]]
        if not sample_id:
            problems.append(CellProblem(number, "id", "", "no id: every row needs its sample id"))
            continue
        key = (cells[columns["part"]] if has_part else "", sample_id)
        if key in rows:
            message = f"the same sample is also on row {rows[key].number}"
            problems.append(CellProblem(number, "id", sample_id, message))
            continue
        rows[key] = _Row(
            number=number,
            cells=tuple(sys.intern(cells[columns[d]]) if d in columns else "\x00" for d in dims),
            note=cells[note_column] if note_column is not None else "",
        )

    edits: dict[tuple[str, str], _Edit] = {}
    seen: dict[str, str] = {}
    for record in run.taxonomy_records():
        summary.samples += 1
        # the ids as the review file holds them (control characters cannot survive a cell)
        key = (read_back(record.part) if has_part else "", read_back(record.id))
        row = rows.pop(key, None)
        if row is None:
            if not has_part and record.id in seen:
                problems.append(
                    CellProblem(
                        0,
                        "id",
                        record.id,
                        f"the run has this id in parts {seen[record.id]!r} and {record.part!r}; "
                        "keep the part column of the review file",
                    )
                )
            continue
        if not has_part:
            seen[record.id] = record.part
        changes = _changes(taxonomy, dims, row, record.labels, problems)
        if changes or row.note:
            edits[(record.part, record.id)] = _Edit(changes=changes, note=row.note)
    for (part, sample_id), row in rows.items():
        where = f" in part {part!r}" if part else ""
        message = f"no such sample{where} in {run.path}"
        problems.append(CellProblem(row.number, "id", sample_id, message))
    if problems:
        problems.sort(key=lambda p: (p.row, p.column))
        raise ReviewFileError(corrections, problems)

    _write(
        run,
        target=target,
        taxonomy=taxonomy,
        edits=edits,
        corrections=corrections,
        summary=summary,
    )
    return summary


def _check_target(run: RunData, target: Path, *, overwrite: bool) -> None:
    source = run.path.resolve()
    resolved = target.resolve()
    inside = run.path.is_dir() and resolved.is_relative_to(source)
    if inside or source.is_relative_to(resolved):
        raise UsageError(
            f"output {target} would overwrite or sit inside the run being corrected",
            hint="the source run is never modified: choose another -o",
        )
    if not target.exists():
        return
    if not overwrite:
        raise UsageError(f"output {target} already exists", hint="add --overwrite to replace it")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST).is_file():
        raise UsageError(
            f"refusing to replace {target}: it is not a run directory (no run.json)",
            hint="choose a new -o",
        )


def _columns(
    table: Table, dims: list[str]
) -> tuple[dict[str, int], bool, int | None, list[CellProblem]]:
    columns: dict[str, int] = {}
    problems: list[CellProblem] = []
    editable = {"id", "part", "note", *dims}
    for number, name in enumerate(table.header):
        key = name.lower()
        if key not in editable:
            continue  # query, reference columns `dim (RUN2)`, confidence, calls ...
        if key in columns:
            problems.append(CellProblem(1, name, "", "this column appears twice"))
            continue
        columns[key] = number
    if "id" not in columns:
        problems.append(
            CellProblem(1, "", "", "no `id` column: keep the header row `review` wrote")
        )
    return columns, "part" in columns, columns.get("note"), problems


def _items(cell: str) -> list[str]:
    items: list[str] = []
    for raw in _SPLIT.split(cell):
        item = raw.strip(_QUOTES)
        if item and item not in items:
            items.append(item)
    return items


def _current(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _changes(
    taxonomy: Taxonomy,
    dims: list[str],
    row: _Row,
    labels: dict[str, Any],
    problems: list[CellProblem],
) -> list[dict[str, Any]]:
    """The label changes a row asks for (validated; problems are appended)."""
    changes: list[dict[str, Any]] = []
    for dim, cell in zip(dims, row.cells, strict=True):
        if cell == "\x00":
            continue  # no column for this dimension
        before = _current(labels.get(dim))
        if cell == read_back(LIST_SEPARATOR.join(before)):
            continue  # as exported: not edited
        items = _items(cell)
        if set(items) == set(before):
            continue  # not edited
        canonical: list[str] = []
        unknown: list[str] = []
        for item in items:
            tag = taxonomy.resolve(dim, item)
            if tag is None:
                unknown.append(_unknown(taxonomy, dim, item))
            elif tag not in canonical:
                canonical.append(tag)
        bad = bool(unknown)
        if bad:
            problems.append(CellProblem(row.number, dim, cell, "; ".join(unknown)))
        category = taxonomy.categories[dim]
        if category.select == "single" and not bad and len(canonical) != 1:
            got = "nothing" if not canonical else LIST_SEPARATOR.join(canonical)
            choices = ", ".join(category.ids)
            problems.append(
                CellProblem(
                    row.number,
                    dim,
                    cell,
                    f"{dim} is single-select: give exactly one tag (got {got}); one of {choices}",
                )
            )
            bad = True
        if bad or set(canonical) == set(before):
            continue  # an alias of the same tag(s) is no change
        confidence = labels.get("confidence")
        change: dict[str, Any] = {
            "dimension": dim,
            "before": labels.get(dim),
            "after": canonical[0] if category.select == "single" else canonical,
        }
        if isinstance(confidence, dict) and dim in confidence:
            change["confidence_before"] = confidence[dim]
        changes.append(change)
    return changes


def _unknown(taxonomy: Taxonomy, dim: str, item: str) -> str:
    message = f"{item!r} is not {_a(dim)} tag"
    elsewhere = next(
        (o for o in taxonomy.dimensions() if o != dim and taxonomy.resolve(o, item) is not None),
        None,
    )
    if elsewhere is not None:
        message += f" (it is {_a(elsewhere)} tag)"
    category = taxonomy.categories[dim]
    names: dict[str, str] = {}
    for tag in category.tags:
        names[tag.id] = tag.id
        for alias in tag.aliases:
            names[alias.lower()] = tag.id
    close = difflib.get_close_matches(item.lower().replace(" ", "-"), list(names), n=5, cutoff=0.6)
    suggestions = list(dict.fromkeys(names[c] for c in close))[:3]
    if suggestions:
        return message + " (did you mean " + " or ".join(suggestions) + "?)"
    if elsewhere is not None:
        return message
    if len(category.tags) <= 12:
        return message + " (one of " + ", ".join(category.ids) + ")"
    return message + " (see docs/taxonomy.md or `sftlabel info` for the tag ids)"


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _write(
    run: RunData,
    *,
    target: Path,
    taxonomy: Taxonomy,
    edits: dict[tuple[str, str], _Edit],
    corrections: Path,
    summary: ApplySummary,
) -> None:
    from sftlabel.runs import Session, finalize, now, write_manifest

    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        _write_records(
            run,
            root=partial,
            taxonomy=taxonomy,
            edits=edits,
            source_name=corrections.name,
            summary=summary,
        )
        _copy_side_files(run, partial)
        manifest = _manifest(run, taxonomy)
        manifest.sessions.append(
            Session(
                started=now(),
                finished=now(),
                status="completed",
                labeled=summary.samples,
                message=f"review --apply {corrections} to {run.path}: "
                f"{summary.changed_samples} samples changed",
            )
        )
        write_manifest(partial, manifest)
        finalize(partial, taxonomy)
        from sftlabel.reports._report import build_report

        build_report(partial, partial, taxonomy=taxonomy)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    partial.replace(target)


def _write_records(
    run: RunData,
    *,
    root: Path,
    taxonomy: Taxonomy,
    edits: dict[tuple[str, str], _Edit],
    source_name: str,
    summary: ApplySummary,
) -> None:
    # a duplicate was labeled as a copy of its original: it gets the original's corrections
    # (not its note) unless it has its own row of changes
    originals = {sample_id: edit for (_, sample_id), edit in edits.items() if edit.changes}
    position = 0
    for part, path in run.files:
        folder = root / part
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / LABELED).open("ab") as out:
            for record in _records(path):
                if isinstance(record, dict) and isinstance(record.get("labels"), dict):
                    edit = edits.get((part, str(record.get("id", position))))
                    position += 1
                    if edit is not None and (edit.changes or not _copy_of(record, originals)):
                        _apply(record, edit, taxonomy, source_name, summary)
                    elif (original := _copy_of(record, originals)) is not None:
                        copied = _Edit(changes=originals[original].changes, note="")
                        _apply(record, copied, taxonomy, source_name, summary)
                        record["labeling_monitor"]["review_copied_from"] = original
                        summary.copies += 1
                        if edit is not None and edit.note:
                            summary.noted += 1
                            record["labeling_monitor"]["review_note"] = edit.note
                out.write(_encoder.encode(record) + b"\n")


def _copy_of(record: dict[str, Any], originals: dict[str, _Edit]) -> str | None:
    """The corrected original this record is a duplicate of, if any."""
    monitor = record.get("labeling_monitor")
    original = monitor.get("duplicate_of") if isinstance(monitor, dict) else None
    return str(original) if original is not None and str(original) in originals else None


def _apply(
    record: dict[str, Any], edit: _Edit, taxonomy: Taxonomy, source: str, summary: ApplySummary
) -> None:
    labels: dict[str, Any] = record["labels"]
    monitor = record.get("labeling_monitor")
    monitor = dict(monitor) if isinstance(monitor, dict) else {}
    confidence = labels.get("confidence")
    for change in edit.changes:
        labels[change["dimension"]] = change["after"]
        if isinstance(confidence, dict):
            confidence[change["dimension"]] = 1.0
        summary.changes[change["dimension"]] += 1
    if edit.changes:
        summary.changed_samples += 1
        monitor["review_changes"] = [*monitor.get("review_changes", []), *edit.changes]
        values = {d: labels.get(d) for d in taxonomy.dimensions()}
        monitor["consistency_warnings"] = taxonomy.consistency_warnings(values)
    if edit.note:
        summary.noted += 1
        monitor["review_note"] = edit.note
    monitor["human_reviewed"] = True
    monitor["review_file"] = source
    record["labeling_monitor"] = monitor


def _copy_side_files(run: RunData, root: Path) -> None:
    for part, path in run.failure_files:
        (root / part).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / part / FAILURES)
    if run.manifest is None:
        return
    for part, path in run.files:
        monitor = path.parent / MONITOR
        if monitor.is_file():
            shutil.copyfile(monitor, root / part / MONITOR)
    problems = run.root / PROBLEMS
    if problems.is_file():
        shutil.copyfile(problems, root / PROBLEMS)


def _manifest(run: RunData, taxonomy: Taxonomy) -> RunManifest:
    from sftlabel.runs import LabelOptions, RunManifest, now, read_manifest, taxonomy_ref

    if run.manifest is not None:
        return read_manifest(run.root)
    model = run.model or str((run.stats or {}).get("model") or run.name)
    return RunManifest(
        created=now(),
        inputs=[str(run.path)],
        endpoint="",
        options=msgspec.structs.asdict(LabelOptions(model=model)),
        taxonomy=taxonomy_ref(taxonomy),
    )
