"""The compare report renders in a real headless Chromium without a console error
(tests/browser.py); screenshots are kept in test-artifacts/."""

from __future__ import annotations

from pathlib import Path

from .browser import artifact, check_in_browser
from .conftest import shared


def test_compare_html_of_the_baselines_renders(cli, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = cli(
        "compare",
        shared("baselines/labeled_deepseek_v4.json"),
        shared("baselines/labeled_sonnet_v4.json"),
        "-o",
        page,
    )
    assert result.exit_code == 0, result.stderr
    assert check_in_browser(page, artifact("compare-baselines.png"), min_graphs=11) == 11


def test_compare_html_of_three_runs_renders(cli, tmp_path: Path) -> None:
    page = tmp_path / "three.html"
    runs = [
        shared("baselines/labeled_deepseek_v4.json"),
        shared("baselines/labeled_sonnet_v4.json"),
    ]
    result = cli("compare", *runs, runs[0], "-o", page)
    assert result.exit_code == 0, result.stderr
    assert check_in_browser(page, artifact("compare-three-runs.png")) >= 11
