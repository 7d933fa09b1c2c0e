"""Views of a run: the HTML dashboard, review exports, comparisons, unmapped analysis."""

from sftlabel.reports._runs import RunData, RunKind, TaxonomyRecord, first_user_message, open_run
from sftlabel.reports.dashboard import render_dashboard, write_dashboard

__all__ = [
    "RunData",
    "RunKind",
    "TaxonomyRecord",
    "first_user_message",
    "open_run",
    "render_dashboard",
    "write_dashboard",
]
