"""``sftlabel detect``: what is in the input files."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from sftlabel.cli._common import InputPaths, plural, progress, stderr, stdout
from sftlabel.cli._examples import epilog
from sftlabel.cli._safe import closed_pipe_is_fine, printable
from sftlabel.detect import FileReport, detect_paths
from sftlabel.model import Problem, encode

SHOWN_PROBLEMS = 20
SHOWN_RECORDS = 20


def detect(
    paths: InputPaths,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per file to stdout.")
    ] = False,
    records: Annotated[
        bool,
        typer.Option(
            "--records",
            "-r",
            help="List every record (id, format, variants, turns); "
            f"default: the first {SHOWN_RECORDS} per file.",
        ),
    ] = False,
) -> None:
    """Report the format of every record, turns, replies, samples after slicing and problems.

    Per file: the format(s) found, record counts, Pangu variants (single-turn, multi-turn,
    pseudo-multi-turn, fast/slow thinking, inline tool calls, tool nodes, no markers), user turns,
    assistant replies, samples after slicing, and every problem with file:line (or [index]).
    Exits 0 when every record was readable, 1 when some were not. Values from the data are
    printed with control characters escaped.
    """
    limit = None if records else SHOWN_RECORDS
    all_ok = True
    totals = {"files": 0, "records": 0, "unreadable": 0, "samples": 0}

    def note(problem: Problem) -> None:  # what directory walks left out, and why
        stderr.print(Text(printable(str(problem)), style="dim"))

    with closed_pipe_is_fine(stdout), progress("reading") as update:
        for report in detect_paths(
            paths, records=limit, on_file=lambda p: update(printable(str(p))), on_note=note
        ):
            all_ok &= report.ok
            totals["files"] += 1
            totals["records"] += report.records
            totals["unreadable"] += report.unreadable
            totals["samples"] += report.samples
            if json_output:
                sys.stdout.buffer.write(encode(report) + b"\n")
                sys.stdout.buffer.flush()
            else:
                _render(report, show_all=records)
        if not json_output and totals["files"] > 1:
            stdout.print(
                f"total: {plural(totals['files'], 'file')}, "
                f"{plural(totals['records'], 'record')} ({totals['unreadable']:,} unreadable), "
                f"{plural(totals['samples'], 'sample')}",
                markup=False,
            )
    raise typer.Exit(0 if all_ok else 1)


def _render(report: FileReport, *, show_all: bool) -> None:
    out = stdout
    title = Text(printable(report.path), style="bold")
    out.print(title)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    formats = ", ".join(f"{name} ({count:,})" for name, count in report.formats.items()) or "none"
    grid.add_row("format", formats)
    status = f"{report.readable:,} readable"
    if report.unreadable:
        status += f", [red]{report.unreadable:,} unreadable[/red]"
    if report.file_errors:
        status += f", [red]the file itself could not be read ({report.file_errors:,} errors)[/red]"
    grid.add_row("records", f"{report.records:,} ({status})")
    grid.add_row(
        "turns",
        f"{report.messages:,} messages · {report.user_turns:,} user turns · "
        f"{report.assistant_replies:,} assistant replies · {report.tool_messages:,} tool messages",
    )
    grid.add_row("samples", f"{report.samples:,} after slicing")
    if report.pangu_variants:
        grid.add_row(
            "pangu variants",
            ", ".join(f"{name} {count:,}" for name, count in report.pangu_variants.items()),
        )
    errors = sum(1 for p in report.problems if p.severity == "error")
    grid.add_row(
        "problems",
        "none" if not report.problems else f"{errors:,} errors, {report.warnings:,} warnings",
    )
    out.print(grid)
    for problem in report.problems[:SHOWN_PROBLEMS]:
        style = "red" if problem.severity == "error" else "yellow"
        out.print(Text(f"  {printable(str(problem))}", style=style))
    if len(report.problems) > SHOWN_PROBLEMS:
        out.print(
            f"  … {len(report.problems) - SHOWN_PROBLEMS:,} more problems (--json lists them all)",
            style="dim",
        )
    if report.record_details:
        several = len(report.formats) > 1
        table = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
        table.add_column("record", overflow="fold")
        table.add_column("at", no_wrap=True)
        if several:
            table.add_column("format")
        table.add_column("user turns", justify="right")
        table.add_column("samples", justify="right")
        table.add_column("variants")
        for rec in report.record_details:
            at = rec.where[len(report.path) :] if rec.where.startswith(report.path) else rec.where
            row: list[Text | str] = [
                Text(printable(rec.id)),
                Text(printable(at)),
                *([rec.format] if several else []),
            ]
            row += [str(rec.user_turns), str(rec.samples), Text(printable(", ".join(rec.variants)))]
            table.add_row(*row)
        out.print(table)
        hidden = report.readable - len(report.record_details)
        if hidden > 0 and not show_all:
            out.print(f"  … {hidden:,} more records (--records lists them all)", style="dim")
    out.print()


detect.command_settings = {"epilog": epilog("detect")}  # type: ignore[attr-defined]
