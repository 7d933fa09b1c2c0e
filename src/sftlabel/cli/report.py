"""``sftlabel report``: a run's dashboards and report.md, regenerated from its data alone."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from sftlabel.cli._common import JobsOption, stderr, stdout, warn
from sftlabel.cli._examples import epilog
from sftlabel.reports import UnmappedFinding, build_report, open_run
from sftlabel.reports._safe import visible


def report(
    run: Annotated[
        Path,
        typer.Argument(
            help="A run directory, labeled.json/labeled.jsonl, or a softlabel output "
            "(LABELED_ folder or one of its .jsonl files).",
            show_default=False,
            metavar="RUN",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Directory to write into [default: the run directory; for another file "
            "`./<name>_report/`]",
            show_default=False,
        ),
    ] = None,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the dashboard in the web browser.")
    ] = False,
    unmapped: Annotated[
        bool,
        typer.Option(
            "--unmapped",
            help="Print every unmapped value with a recommendation; also write unmapped.json.",
        ),
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
    taxonomy: Annotated[
        Path | None,
        typer.Option(help="Taxonomy directory [default: the run's, else the built-in one]"),
    ] = None,
    jobs: JobsOption = None,
) -> None:
    """Regenerate dashboard.html (per input file and global for a directory run) and report.md.

    Reads the run's records once (no stats.json needed) and writes offline dashboards and a
    Markdown report with observations. A one-file run's dashboard embeds plotly.js; the pages of
    a directory run load one shared `plotly.min.js` from the output directory, and the global
    page links every part and compares their tag distributions (and splits', for
    `train/`, `val/`, `test/` folders). A run directory gets the files in place; any other
    labeled file (such as a baseline run) gets them in `./<name>_report/` unless `-o` says
    where.
    """
    data = open_run(run)
    result = build_report(
        data, output, taxonomy=taxonomy, threshold=threshold, unmapped_json=unmapped, jobs=jobs
    )
    if unmapped:
        if data.kind != "taxonomy":
            warn("--unmapped: a soft-label run has no taxonomy tags; nothing to analyse")
        elif not result.unmapped:
            stderr.print("no unmapped values", markup=False)
        else:
            _print_unmapped(result.unmapped, data.name)
    for note in result.observations:
        stderr.print(f"• {visible(note)}", markup=False)
    for path in result.written:
        stderr.print(f"wrote {path}", markup=False)
    if open_:
        dashboard = result.output / "dashboard.html"
        if not webbrowser.open(dashboard.resolve().as_uri()):
            warn(f"no web browser found; open {dashboard} yourself")


RICH_ROWS = 500
"""Up to this many unmapped values are drawn as rich tables; more (tens of thousands on a big
run: rich would take minutes) are written as plain lines."""


def _print_unmapped(findings: list[UnmappedFinding], name: str) -> None:
    """One table per dimension; each value with its two example queries under it."""
    by_dimension: dict[str, list[UnmappedFinding]] = {}
    for finding in findings:
        by_dimension.setdefault(finding.dimension, []).append(finding)
    if len(findings) > RICH_ROWS:
        _write_unmapped(by_dimension, name)
        return
    for dimension, items in by_dimension.items():
        title = f"unmapped {dimension or '(no dimension given)'} values of {name}"
        table = Table(title=Text(visible(title)), title_justify="left", box=box.SIMPLE_HEAD)
        table.add_column("value and example queries", ratio=3, overflow="fold")
        table.add_column("samples", justify="right", no_wrap=True)
        table.add_column("share", justify="right", no_wrap=True)
        table.add_column("recommendation", ratio=1, overflow="fold")
        for finding in items:
            value = Text(visible(finding.value), style="bold")
            for example in finding.examples:
                value.append(f"\n  “{visible(example[:100])}”", style="dim")
            table.add_row(
                value,
                f"{finding.count:,}",
                f"{finding.share:.2%}",
                Text(f"{visible(finding.recommendation)}\n")
                + Text(visible(finding.reason), style="dim"),
            )
        stdout.print(table)


def _write_unmapped(by_dimension: dict[str, list[UnmappedFinding]], name: str) -> None:
    """The same content as plain lines: value, samples, share and recommendation, then the
    reason and the example queries indented under it."""
    out: list[str] = []
    for dimension, items in by_dimension.items():
        out.append(f"unmapped {dimension or '(no dimension given)'} values of {name}")
        out.append(f"{'samples':>9}  {'share':>7}  value: recommendation")
        for f in items:
            out.append(
                f"{f.count:>9,}  {f.share:>7.2%}  {f.value}: {f.recommendation} ({f.reason})"
            )
            out += [f"{'':20}“{example[:100]}”" for example in f.examples]
        out.append("")
    stdout.file.write(visible("\n".join(out)) + "\n")
    stdout.file.flush()


report.command_settings = {"epilog": epilog("report")}  # type: ignore[attr-defined]
