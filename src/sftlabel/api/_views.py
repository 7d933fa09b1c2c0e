"""The views of a run, for library callers: report, review, apply_review, compare, open_run.

Thin wrappers over :mod:`sftlabel.reports` that accept paths as well as opened runs and take
keyword options that mirror the CLI flags.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the reports (and plotly) are imported when a view is asked for
    from sftlabel.reports import (
        ApplySummary,
        ExportSummary,
        ReportResult,
        ReviewSelection,
        RunData,
    )
    from sftlabel.reports.compare import CompareResult
    from sftlabel.taxonomy import Taxonomy

PathLike = str | os.PathLike[str]


def open_run(path: PathLike) -> RunData:
    """Open a run directory, a labeled file or a soft-label output for reading."""
    from sftlabel.reports import open_run as _open

    return _open(Path(path))


def _opened(run: RunData | PathLike) -> RunData:
    from sftlabel.reports import RunData

    return run if isinstance(run, RunData) else open_run(run)


def _taxonomy(data: RunData, taxonomy: Taxonomy | PathLike | None) -> Taxonomy:
    from sftlabel.reports._report import run_taxonomy
    from sftlabel.taxonomy import Taxonomy

    if taxonomy is None or isinstance(taxonomy, Taxonomy):
        return run_taxonomy(data, taxonomy)
    return run_taxonomy(data, Path(taxonomy))


def report(
    run: RunData | PathLike,
    output: PathLike | None = None,
    *,
    taxonomy: Taxonomy | PathLike | None = None,
    threshold: float | None = None,
    unmapped: bool = False,
) -> ReportResult:
    """Write ``dashboard.html`` and ``report.md`` of a run (``sftlabel report``)."""
    from sftlabel.reports import build_report
    from sftlabel.taxonomy import Taxonomy

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
    from sftlabel.reports import export_review

    data = _opened(run)
    tax = _taxonomy(data, taxonomy)
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
    from sftlabel.reports import apply_review as _apply_review

    data = _opened(run)
    tax = _taxonomy(data, taxonomy)
    return _apply_review(data, Path(corrections), Path(output), taxonomy=tax, overwrite=overwrite)


def compare(*runs: PathLike, **options: Any) -> CompareResult:
    """Agreement between runs or models (``sftlabel compare``); options: ``reference``,
    ``taxonomy``, ``gold``, ``top``, ``examples``, ``catch``, ``jobs``."""
    from sftlabel.reports.compare import compare_runs

    return compare_runs([os.fspath(r) for r in runs], **options)


__all__ = ["apply_review", "compare", "open_run", "report", "review"]
