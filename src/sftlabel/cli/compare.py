"""``sftlabel compare``: agreement between two or more runs of the same samples."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sftlabel.cli._common import JobsOption, fit_tables, output_stream, stderr, stdout
from sftlabel.cli._examples import epilog
from sftlabel.config import resolve_settings
from sftlabel.errors import UsageError
from sftlabel.reports._calibration import DEFAULT_CATCH
from sftlabel.reports._compare_render import Section, render_html, render_markdown, sections
from sftlabel.reports._safe import visible
from sftlabel.reports.compare import CompareResult, compare_runs, encode_result

FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
}


def _format_of(target: Path) -> str:
    kind = FORMATS.get(target.suffix.lower())
    if kind is None:
        raise UsageError(
            f"-o {target}: unknown report format {target.suffix or '(no suffix)'!r}",
            hint="name the file .md, .html or .json",
        )
    return kind


def _render(result: CompareResult, kind: str) -> bytes:
    if kind == "markdown":
        return render_markdown(result).encode("utf-8")
    if kind == "html":
        return render_html(result).encode("utf-8")
    return encode_result(result)


def _print(section: Section, first: bool) -> None:
    stdout.print(("" if first else "\n") + visible(section.title), style="bold", markup=False)
    for line in section.lines:
        stdout.print(visible(line), markup=False)
    for table in section.tables:
        for part in fit_tables(
            table.title, table.header, table.rows, table.alignment(), stdout.width
        ):
            stdout.print(part)


def compare(
    runs: Annotated[
        list[str],
        typer.Argument(
            help="Runs: run directories, labeled.json/.jsonl files, soft-label outputs "
            "(LABELED_ folders or their .jsonl files).",
            metavar="RUN_A RUN_B [RUN_C...]",
            show_default=False,
        ),
    ],
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            "-r",
            help="The run taken as truth for precision/recall and calibration: a run's name "
            "or path (a path not among the runs is added) [default: RUN_B].",
            show_default=False,
        ),
    ] = None,
    taxonomy: Annotated[
        Path | None,
        typer.Option(
            help="Taxonomy directory giving the dimensions and their select mode "
            "(env SFTLABEL_TAXONOMY) [default: the run's own, else the built-in one].",
            show_default=False,
        ),
    ] = None,
    gold: Annotated[
        Path | None,
        typer.Option(
            help="Gold labels to calibrate against. Taxonomy runs: a gold run (directory or "
            "labeled JSON/JSONL; added to the runs, the reference unless --reference): per "
            "dimension a confidence reliability table, ECE and arbitration thresholds. "
            "Soft-label runs: gold hard labels to score every run against: a soft-label "
            "output folder, or JSONL/JSON/CSV with conversationId, messageId, hard_label.",
            show_default=False,
        ),
    ] = None,
    catch: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=1.0,
            help="With --gold (taxonomy): share of the errors the recommended arbitration "
            "threshold must catch.",
        ),
    ] = DEFAULT_CATCH,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON instead of tables.")
    ] = False,
    output: Annotated[
        list[Path] | None,
        typer.Option(
            "--output",
            "-o",
            help="Also write a report: .md, .html (plotly, self-contained) or .json; repeatable.",
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int, typer.Option(min=1, help="Most frequent disagreements kept per dimension.")
    ] = 10,
    examples: Annotated[int, typer.Option(min=1, help="Example ids kept per disagreement.")] = 3,
    jobs: JobsOption = None,
) -> None:
    """Measure agreement between runs (or models) labeling the same samples.

    Pairs samples by id (soft labels by conversationId + messageId), never by position, and
    reports the unpaired ones. Taxonomy runs: per dimension the exact match rate, partial match
    and mean Jaccard (multi-select), Cohen's kappa (single-select), per-tag precision / recall /
    F1 against the reference, confidence means side by side, the overall agreement, cost ratios
    and the most frequent disagreements with example ids; with three runs or more a pairwise
    matrix, and Krippendorff's alpha per dimension. Soft-label runs: hard-label agreement and
    kappa, Pearson / Spearman correlation of the soft labels, Brier score and expected
    calibration error against the reference's hard labels or `--gold`.

    With `--gold GOLD` (taxonomy runs) every run's self-reported confidence is checked against
    agreement with the gold run: per dimension a reliability table (confidence bins: samples,
    mean confidence, agreement, gap), ECE, and the arbitration thresholds with their cost and
    the share of errors they catch (the smallest catching `--catch` of them is recommended).
    """
    targets = [(path, _format_of(path)) for path in output or []]
    settings = resolve_settings({"taxonomy": taxonomy})
    result = compare_runs(
        runs,
        reference=reference,
        taxonomy=settings.get("taxonomy"),
        gold=gold,
        top=top,
        examples=examples,
        catch=catch,
        jobs=jobs,
    )
    for path, kind in targets:
        with output_stream(str(path)) as handle:
            handle.write(_render(result, kind))
        if str(path) != "-":
            stderr.print(f"wrote {path}", markup=False)
    if json_output:
        sys.stdout.buffer.write(encode_result(result))
        sys.stdout.buffer.flush()
        return
    for position, section in enumerate(sections(result, detail=False)):
        _print(section, position == 0)


compare.command_settings = {"epilog": epilog("compare")}  # type: ignore[attr-defined]
