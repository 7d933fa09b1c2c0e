"""The dashboards render in a real headless Chromium without a console error (tests/browser.py).

Screenshots are kept in test-artifacts/ (see tests/browser.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sftlabel.reports import build_report

from .browser import artifact, check_in_browser
from .test_report import DEEPSEEK, SONNET, baseline, run_dir, soft_output


def test_baseline_dashboards_render(tmp_path: Path) -> None:
    for name, path in (("deepseek", DEEPSEEK), ("sonnet", SONNET)):
        result = build_report(baseline(path), tmp_path / name)
        graphs = check_in_browser(
            result.output / "dashboard.html", artifact(f"report-baseline-{name}.png"), min_graphs=15
        )
        assert graphs >= 15


def test_directory_run_dashboards_render(tmp_path: Path) -> None:
    run = run_dir(tmp_path / "run")
    build_report(run)
    assert check_in_browser(run / "dashboard.html", artifact("report-run-global.png")) >= 10
    page = run / "train" / "b" / "dashboard.html"
    assert check_in_browser(page, artifact("report-run-part-b.png")) >= 10


def test_soft_label_dashboard_renders(tmp_path: Path) -> None:
    out = soft_output(tmp_path / "LABELED_demo")
    build_report(out)
    assert check_in_browser(out / "dashboard.html", artifact("report-soft.png"), min_graphs=6) >= 6


def test_the_check_catches_a_console_error(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><div class='plotly-graph-div js-plotly-plot'><svg class='main-svg'></svg>"
        "</div><script>console.error('boom')</script></body></html>"
    )
    with pytest.raises(AssertionError, match=r"console\.error: boom"):
        check_in_browser(page, tmp_path / "broken.png")
