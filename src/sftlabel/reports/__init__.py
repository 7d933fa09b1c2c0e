"""Views of a run: the HTML dashboard (and, later, review exports and comparisons)."""

from sftlabel.reports.dashboard import render_dashboard, write_dashboard

__all__ = ["render_dashboard", "write_dashboard"]
