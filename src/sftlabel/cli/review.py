"""``sftlabel review``: export samples for human review, and apply the corrections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from sftlabel.cli._common import output_stream, plural, stderr
from sftlabel.cli._examples import epilog
from sftlabel.errors import UsageError
from sftlabel.reports import (
    ExportSummary,
    ReviewFileError,
    ReviewSelection,
    RunData,
    apply_review,
    export_review,
    open_run,
)
from sftlabel.reports._table import FORMATS, format_for
from sftlabel.taxonomy import Taxonomy, load_taxonomy


def review(
    run: Annotated[
        Path,
        typer.Argument(
            help="Run directory, labeled.json/labeled.jsonl, or a soft-label output.",
            show_default=False,
            metavar="RUN",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Review file (.csv, .tsv, .xlsx; `-` for stdout); with --apply: the new run "
            "directory.",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="csv, tsv or xlsx [default: from the -o name, else csv]",
            show_default=False,
            metavar="FORMAT",
        ),
    ] = None,
    low_confidence: Annotated[
        bool,
        typer.Option("--low-confidence", help="Only samples with a dimension below --threshold."),
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=1,
            help="Confidence threshold [default: the run's, else 0.65]",
            show_default=False,
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            min=1, help="A random sample of N (of what the filters keep).", show_default=False
        ),
    ] = None,
    stratify: Annotated[
        str | None,
        typer.Option(
            help="With --sample: stratify by this dimension (or `part`).", show_default=False
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --sample.")] = 0,
    disagreements_with: Annotated[
        Path | None,
        typer.Option(
            "--disagreements-with",
            help="Only samples whose labels differ in this other run (paired by id); both side by "
            "side.",
            show_default=False,
            metavar="RUN2",
        ),
    ] = None,
    apply: Annotated[
        Path | None,
        typer.Option(
            "--apply",
            help="Read this corrected review file back and write a corrected run to -o.",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="With --apply: replace an existing -o run.")
    ] = False,
    taxonomy: Annotated[
        Path | None,
        typer.Option(
            help="Taxonomy [default: the run's (run.json), else the built-in one]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export samples for human review as CSV/TSV/xlsx, and apply the corrections.

    One row per sample: id, query (the first request), last_user_message and reply (the turn
    the labels describe), the nine dimensions (tags joined with `; `), the lowest confidence
    and its dimension, calls, elapsed, tokens and an empty `note` column. Edit the
    dimension cells, then `review --apply FILE RUN -o RUN_FIXED` validates every edited cell
    against the taxonomy and writes a corrected run (RUN is never modified).
    """
    opened = open_run(run)
    tax = _taxonomy(opened, taxonomy)
    if apply is not None:
        selection_given = low_confidence or sample or stratify or disagreements_with or fmt
        if selection_given or threshold is not None:
            raise UsageError(
                "--apply takes no selection or format options",
                hint="run `review --apply FILE RUN -o NEW_RUN` alone",
            )
        _apply(opened, apply, Path(output), tax, overwrite=overwrite)
        return
    if overwrite:
        raise UsageError("--overwrite goes with --apply", hint="an export replaces its file")
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint="use csv, tsv or xlsx")
    table_format = format_for(output, fmt)
    if output == "-" and table_format == "xlsx":
        raise UsageError("xlsx cannot go to stdout", hint="give a file name: -o review.xlsx")
    other = open_run(disagreements_with) if disagreements_with is not None else None
    selection = ReviewSelection(
        low_confidence=low_confidence,
        threshold=threshold,
        sample=sample,
        stratify=stratify,
        seed=seed,
        disagreements_with=other,
    )
    with output_stream(output) as out:
        summary = export_review(
            opened, out, taxonomy=tax, fmt=table_format, selection=selection, bom=output != "-"
        )
    _export_report(summary, opened, other, output, selection)


def _taxonomy(run: RunData, explicit: Path | None) -> Taxonomy:
    if explicit is not None:
        return load_taxonomy(explicit)
    recorded = ((run.manifest or {}).get("taxonomy") or {}).get("path")
    if isinstance(recorded, str) and Path(recorded).is_dir():
        return load_taxonomy(recorded)
    return load_taxonomy()


def _export_report(
    summary: ExportSummary,
    run: RunData,
    other: RunData | None,
    output: str,
    selection: ReviewSelection,
) -> None:
    unit = "sample" if summary.kind == "taxonomy" else "turn"
    where = "stdout" if output == "-" else output
    stderr.print(
        f"{plural(summary.written, unit)} of {summary.total:,} from {run.path} → {where}",
        markup=False,
    )
    if other is not None:
        stderr.print(
            f"  paired by id with {other.path}: {summary.paired:,} "
            f"({summary.only_here:,} only in {run.name}, {summary.only_other:,} only in "
            f"{other.name}); {summary.differing:,} differ",
            markup=False,
        )
    if selection.low_confidence:
        stderr.print(
            f"  below the confidence threshold {summary.threshold}: {summary.kept:,}", markup=False
        )
    if summary.strata:
        parts = ", ".join(f"{s} {drawn}/{n:,}" for s, (n, drawn) in summary.strata.items())
        stderr.print(f"  drawn per {selection.stratify or 'sample'}: {parts}", markup=False)
        if summary.written > (selection.sample or 0):
            stderr.print(
                f"  (more than --sample {selection.sample}: every stratum gets at least one)",
                markup=False,
            )


def _apply(
    run: RunData, corrections: Path, target: Path, tax: Taxonomy, *, overwrite: bool
) -> None:
    try:
        summary = apply_review(run, corrections, target, taxonomy=tax, overwrite=overwrite)
    except ReviewFileError as exc:
        for problem in exc.problems:
            stderr.print(f"{exc.path}: {problem}", style="red", markup=False)
        raise
    table = Table(
        title=Text(f"review {corrections} applied to {run.path} → {target}"),
        title_justify="left",
        box=None,
    )
    table.add_column("", style="dim")
    table.add_column("", justify="right")
    table.add_row("rows in the review file", f"{summary.rows:,}")
    table.add_row("samples changed", f"{summary.changed_samples:,} of {summary.samples:,}")
    for dim, count in sorted(summary.changes.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(f"  {dim}", f"{count:,}")
    table.add_row("labels changed", f"{sum(summary.changes.values()):,}")
    if summary.copies:
        table.add_row("duplicates corrected with their original", f"{summary.copies:,}")
    table.add_row("notes recorded", f"{summary.noted:,}")
    stderr.print(table)


review.command_settings = {"epilog": epilog("review")}  # type: ignore[attr-defined]
