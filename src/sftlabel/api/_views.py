"""The views of a run, for library callers: report, review, apply_review, compare, open_run.

Thin wrappers over :mod:`sftlabel.reports` that accept paths as well as opened runs and take
keyword options that mirror the CLI flags.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sftlabel.reports import (
    ApplySummary,
    ExportSummary,
    ReportResult,
    ReviewSelection,
    RunData,
    build_report,
    export_review,
    open_run,
)
from sftlabel.reports import apply_review as _apply_review
from sftlabel.reports._report import run_taxonomy
from sftlabel.reports.compare import CompareResult, compare_runs
from sftlabel.taxonomy import Taxonomy

PathLike = str | os.PathLike[str]


def _opened(run: RunData | PathLike) -> RunData:
    return run if isinstance(run, RunData) else open_run(Path(run))


def report(
    run: RunData | PathLike,
    output: PathLike | None = None,
    *,
    taxonomy: Taxonomy | PathLike | None = None,
    threshold: float | None = None,
    unmapped: bool = False,
) -> ReportResult:
    """Write ``dashboard.html`` and ``report.md`` of a run (``sftlabel report``)."""
    return build_report(
        _opened(run),
        Path(output) if output is not None else None,
        taxonomy=taxonomy if isinstance(taxonomy, Taxonomy) or taxonomy is None else Path(taxonomy),
        threshold=threshold,
        unmapped_json=unmapped,
    )


def review(
    run: RunData | PathLike,
    output: PathLike,
    *,
    taxonomy: Taxonomy | PathLike | None = None,
    fmt: Any = "csv",
    selection: ReviewSelection | None = None,
) -> ExportSummary:
    """Export a run for human review into ``output`` (``sftlabel review``)."""
    data = _opened(run)
    tax = run_taxonomy(data, taxonomy if not isinstance(taxonomy, os.PathLike) else Path(taxonomy))
    with Path(output).open("wb") as handle:
        return export_review(data, handle, taxonomy=tax, fmt=fmt, selection=selection)


def apply_review(
    run: RunData | PathLike,
    corrections: PathLike,
    output: PathLike,
    *,
    taxonomy: Taxonomy | PathLike | None = None,
    overwrite: bool = False,
) -> ApplySummary:
    """Apply a corrected review file to ``run`` into the new run ``output`` (``review
    --apply``)."""
    data = _opened(run)
    tax = run_taxonomy(data, taxonomy if not isinstance(taxonomy, os.PathLike) else Path(taxonomy))
    return _apply_review(data, Path(corrections), Path(output), taxonomy=tax, overwrite=overwrite)


def compare(*runs: PathLike, **options: Any) -> CompareResult:
    """Agreement between runs or models (``sftlabel compare``); options: ``reference``,
    ``taxonomy``, ``gold``, ``top``, ``examples``."""
    return compare_runs([os.fspath(r) for r in runs], **options)


__all__ = ["apply_review", "compare", "open_run", "report", "review"]
