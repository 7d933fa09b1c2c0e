"""``sftlabel select RUN``: choose samples by tag expressions and export them as training data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from sftlabel.api import SelectQuery, SelectSummary
from sftlabel.api import select as run_select
from sftlabel.cli._common import stderr, stdout
from sftlabel.cli._examples import epilog
from sftlabel.cli._safe import printable
from sftlabel.errors import UsageError


def select(
    run: Annotated[
        Path,
        typer.Argument(
            help="Run directory, labeled.json/labeled.jsonl, or a soft-label output.",
            show_default=False,
            metavar="RUN",
        ),
    ],
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            "-w",
            help='A condition; repeat for AND: "intent=debug", "difficulty in advanced,expert", '
            '"agentic has test-running", "language lacks python", "domain=none", '
            '"unmapped has any", "confidence.intent>=0.8"; soft labels: "p_no_reasoning>=0.8".',
            show_default=False,
        ),
    ] = None,
    min_confidence: Annotated[
        list[str] | None,
        typer.Option(
            "--min-confidence",
            help="X: every dimension's confidence >= X; DIM=X: that dimension's (repeatable).",
            show_default=False,
        ),
    ] = None,
    balance: Annotated[
        str | None,
        typer.Option(
            help="Take the same number of samples per value of this single-select dimension.",
            show_default=False,
            metavar="DIM",
        ),
    ] = None,
    per_value: Annotated[
        int | None,
        typer.Option(min=0, help="With --balance: samples per value.", show_default=False),
    ] = None,
    mix: Annotated[
        Path | None,
        typer.Option(
            help="YAML/JSON mix: {dimension: intent, shares: {debug: 0.3, build: 0.7}, total: N}.",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=0, help="At most N samples (by seeded priority).", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the priority that quotas take.")] = 0,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Output file (.jsonl, .json array, .parquet; `-` for stdout).",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="source (as the samples came in), samples (Sample JSONL) or parquet.",
            metavar="FORMAT",
        ),
    ] = "source",
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="Manifest file [default: <output name>.manifest.json beside the output]",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing output files.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count (per expression and per value).")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object to stdout.")
    ] = False,
    taxonomy: Annotated[
        Path | None,
        typer.Option(
            help="Taxonomy [default: the run's (run.json), else the built-in one]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Choose samples by tag expressions and export them as training data.

    Repeated `--where` conditions must all hold. Quotas (`--limit`, `--balance DIM
    --per-value N`, `--mix FILE`) take the samples with the lowest seeded hash of their id,
    so the same query gives the same samples whatever the order of the files. Output: the
    samples in the format they came in (a slice `_tK` as the conversation up to its K-th
    reply, read back from the raw input), Sample JSONL or parquet, and a manifest of the query
    and the counts beside it. The run and its inputs are only read.
    """
    if json_output and output == "-" and not dry_run:
        raise UsageError("--json and -o - both write to stdout", hint="give -o a file name")
    query = SelectQuery(
        where=list(where or []),
        min_confidence=list(min_confidence or []),
        balance=balance,
        per_value=per_value,
        mix=mix,
        limit=limit,
        seed=seed,
    )
    summary = run_select(
        run,
        output,
        query,
        fmt=fmt,  # type: ignore[arg-type]
        taxonomy=taxonomy,
        force=force,
        dry_run=dry_run,
        manifest=manifest,
    )
    if json_output:
        stdout.file.write(json.dumps(summary.to_dict(), ensure_ascii=False) + "\n")
    elif dry_run:
        _counts(summary, stdout)
    _summary(summary)


def _counts(summary: SelectSummary, console: object) -> None:
    table = Table(title=Text("matches per expression"), title_justify="left", box=None)
    table.add_column("expression")
    table.add_column("records", justify="right")
    for text, count in summary.per_expression.items():
        table.add_row(Text(printable(text)), f"{count:,}")
    table.add_row(Text("all of them", style="bold"), f"{summary.matched:,}")
    stdout.print(table)
    values = Table(title=Text("per value (of the matches)"), title_justify="left", box=None)
    for column in ("dimension", "value", "matched", "chosen", "quota"):
        values.add_column(column, justify="left" if column in ("dimension", "value") else "right")
    for dim, entries in summary.per_value.items():
        for value, counts in entries.items():
            values.add_row(
                Text(printable(dim)),
                Text(printable(value)),
                f"{counts.get('matched', 0):,}",
                f"{counts['chosen']:,}" if "chosen" in counts else "",
                f"{counts['quota']:,}" if "quota" in counts else "",
            )
    stdout.print(values)


def _summary(summary: SelectSummary) -> None:
    where = summary.output or "nothing written (--dry-run)"
    if summary.output == "/dev/stdout":
        where = "stdout"
    line = (
        f"{summary.chosen:,} chosen of {summary.matched:,} matching "
        f"({summary.records:,} records read) from {summary.run} → {where}"
    )
    stderr.print(Text(printable(line)))
    if summary.unreadable:
        stderr.print(Text(f"  {summary.unreadable:,} unreadable lines skipped", style="yellow"))
    if summary.skipped_failed:
        stderr.print(Text(f"  {summary.skipped_failed:,} failed records skipped"))
    if summary.rebuilt:
        stderr.print(
            Text(
                f"  {summary.rebuilt:,} rebuilt from normalized messages "
                "(raw input record not found or changed)"
            )
        )
    if summary.manifest:
        stderr.print(Text(printable(f"  manifest: {summary.manifest}")))


select.command_settings = {"epilog": epilog("select")}  # type: ignore[attr-defined]
