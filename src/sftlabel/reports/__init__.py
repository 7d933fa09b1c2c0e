"""Views of a run: the HTML dashboard, review exports, comparisons, unmapped analysis."""

from sftlabel.reports._review import ExportSummary, ReviewSelection, export_review
from sftlabel.reports._review_apply import ApplySummary, CellProblem, ReviewFileError, apply_review
from sftlabel.reports._runs import RunData, RunKind, TaxonomyRecord, first_user_message, open_run
from sftlabel.reports.dashboard import render_dashboard, write_dashboard

__all__ = [
    "ApplySummary",
    "CellProblem",
    "ExportSummary",
    "ReviewFileError",
    "ReviewSelection",
    "RunData",
    "RunKind",
    "TaxonomyRecord",
    "apply_review",
    "export_review",
    "first_user_message",
    "open_run",
    "render_dashboard",
    "write_dashboard",
]
