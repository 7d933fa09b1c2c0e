"""Views of a run: the HTML dashboard, review exports, comparisons, unmapped analysis."""

from sftlabel.reports._aggregate import SoftSummary, TaxonomySummary
from sftlabel.reports._html import RunFacts
from sftlabel.reports._report import ReportResult, build_report, default_output
from sftlabel.reports._runs import RunData, RunKind, TaxonomyRecord, first_user_message, open_run
from sftlabel.reports._unmapped import UnmappedFinding, analyse_unmapped
from sftlabel.reports.dashboard import render_dashboard, write_dashboard

__all__ = [
    "ReportResult",
    "RunData",
    "RunFacts",
    "RunKind",
    "SoftSummary",
    "TaxonomyRecord",
    "TaxonomySummary",
    "UnmappedFinding",
    "analyse_unmapped",
    "build_report",
    "default_output",
    "first_user_message",
    "open_run",
    "render_dashboard",
    "write_dashboard",
]
