"""Check an HTML report in a real headless Chromium (Debian's ``chromium`` package).

``check_in_browser(html, screenshot)`` loads the file over ``file://``, waits for every plotly
graph to render, fails on any console error, page error or request that leaves the file system
(the reports must work offline), and saves a full-page screenshot.

Screenshots go to ``test-artifacts/`` at the repo root (git-ignored; CI keeps it) unless the
caller gives another path: :func:`artifact` names one. Tests that use it are skipped when no
Chromium is installed (``SFTLABEL_CHROMIUM`` overrides where it is looked for); in CI
(``CI`` set) a missing Chromium is an error, not a skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
RENDER_TIMEOUT_MS = 30_000


def chromium() -> str | None:
    """The Chromium executable, or None."""
    explicit = os.environ.get("SFTLABEL_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    """The Chromium executable; skips the test when there is none (fails in CI)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    executable = chromium()
    if executable is None:
        _missing("no chromium executable (apt-get install chromium)")
    return str(executable)


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need a browser in CI: {why}")
    pytest.skip(why)


def artifact(name: str) -> Path:
    """A stable path for a screenshot under ``test-artifacts/``."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def check_in_browser(html: Path, screenshot: Path, *, min_graphs: int = 1) -> int:
    """Render ``html`` in headless Chromium; returns the number of plotly graphs drawn.

    Fails the test on a console error, an uncaught page error, a request to anything but a
    ``file:``/``data:``/``blob:`` URL, or fewer than ``min_graphs`` rendered graphs.
    """
    executable = require_browser()
    from playwright.sync_api import Route, sync_playwright

    errors: list[str] = []
    requests: list[str] = []

    def block(route: Route) -> None:
        url = route.request.url
        if url.split(":", 1)[0] in ("file", "data", "blob", "about"):
            route.continue_()
        else:
            requests.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on(
                "console",
                lambda msg: (
                    errors.append(f"console.{msg.type}: {msg.text}")
                    if msg.type == "error"
                    else None
                ),
            )
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.route("**/*", block)
            page.goto(html.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n",
                arg=min_graphs,
                timeout=RENDER_TIMEOUT_MS,
            )
            graphs = int(page.evaluate("document.querySelectorAll('.js-plotly-plot').length"))
            declared = int(page.evaluate("document.querySelectorAll('.plotly-graph-div').length"))
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert not errors, f"{html}: " + "; ".join(errors)
    assert not requests, f"{html} tried to load {requests}"
    assert graphs == declared, f"{html}: {graphs} of {declared} graphs rendered"
    assert graphs >= min_graphs
    return graphs
