"""Views of a run: the HTML dashboard, review exports, comparisons, unmapped analysis."""

from sftlabel.reports._aggregate import SoftSummary, TaxonomySummary
from sftlabel.reports._html import RunFacts
from sftlabel.reports._report import ReportResult, build_report, default_output
from sftlabel.reports._review import ExportSummary, ReviewSelection, export_review
from sftlabel.reports._review_apply import ApplySummary, CellProblem, ReviewFileError, apply_review
from sftlabel.reports._runs import RunData, RunKind, TaxonomyRecord, first_user_message, open_run
from sftlabel.reports._unmapped import UnmappedFinding, analyse_unmapped

__all__ = [
    "ApplySummary",
    "CellProblem",
    "ExportSummary",
    "ReportResult",
    "ReviewFileError",
    "ReviewSelection",
    "RunData",
    "RunFacts",
    "RunKind",
    "SoftSummary",
    "TaxonomyRecord",
    "TaxonomySummary",
    "UnmappedFinding",
    "analyse_unmapped",
    "apply_review",
    "build_report",
    "default_output",
    "export_review",
    "first_user_message",
    "open_run",
]
