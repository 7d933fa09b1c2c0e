"""Hostile ids, tags, names and content are inert in every output format.

The values: spreadsheet formulas (``=HYPERLINK``, ``+cmd|…``), HTML (``<script>``, an ``<img>``
with ``onerror``), Markdown table syntax (``|``), rich markup (``[red]``) and ANSI escapes.
Outputs: the dashboard (HTML), report.md and compare's .md (rendered with a CommonMark parser
that lets raw HTML through, as many viewers do), compare's .html, review's CSV/TSV/xlsx and
the terminal.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from sftlabel.reports import build_report

from .conftest import write_jsonl

SCRIPT = "<script>window.pwned=1</script>"
IMG = "<img src=x onerror=window.pwned=2>"
ANSI = "\x1b[31mred\x1b[0m"
FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]
DIMS = ("intent", "language", "domain", "task", "difficulty", "concept", "agentic", "constraint")


def hostile_records(count: int = 6, task: str = f"[bold]{ANSI}") -> list[dict[str, Any]]:
    ids = [*FORMULAS, f"a|b{SCRIPT}", f"[red]{ANSI}"]
    records = []
    for i in range(count):
        labels: dict[str, Any] = {
            "intent": SCRIPT if i % 2 else "build",
            "language": ["python", f"x|y{IMG}"],
            "domain": [FORMULAS[i % len(FORMULAS)]],
            "task": [task],
            "difficulty": "beginner",
            "concept": [],
            "agentic": [],
            "constraint": [],
            "context": "snippet",
            "confidence": dict.fromkeys((*DIMS, "context"), 0.5 + i / 20),
            "unmapped": [{"dimension": "domain", "value": f"{IMG}|{ANSI}"}],
        }
        records.append(
            {
                "id": ids[i % len(ids)],
                "index": i,
                "messages": [
                    {"role": "user", "content": f"{FORMULAS[0]} {SCRIPT} first"},
                    {"role": "assistant", "content": f"{IMG} reply"},
                    {"role": "user", "content": f"=1+1 {ANSI} last | turn"},
                    {"role": "assistant", "content": f"+{SCRIPT} labeled reply"},
                ],
                "labels": labels,
                "labeling_monitor": {"llm_calls": 2, "prompt_tokens": 10, "cost": 0.0},
            }
        )
    return records


def hostile_run(root: Path, model: str = f"m{SCRIPT}|{ANSI}", task: str = f"[bold]{ANSI}") -> Path:
    part = root / f"p|{IMG[:4]}b"  # a part (input file) name with a pipe and a '<img'
    part.mkdir(parents=True)
    write_jsonl(part / "labeled.jsonl", hostile_records(task=task))
    other = root / "other"
    other.mkdir()
    write_jsonl(other / "labeled.jsonl", hostile_records(3, task=task))
    (root / "run.json").write_text(json.dumps({"options": {"model": model}, "inputs": [SCRIPT]}))
    return root


def rendered_markdown(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


def assert_inert_html(page: str) -> None:
    for bad in ("<script>window.pwned", "<img src=x", "\x1b"):
        assert bad not in page, bad


def assert_markdown_inert(text: str) -> None:
    assert "\x1b" not in text
    html = rendered_markdown(text)
    assert_inert_html(html)
    # every table row has as many cells as its header: no value broke out of its cell
    for table in html.split("<table>")[1:]:
        body = table.split("</table>")[0]
        rows = body.split("<tr>")[1:]
        widths = {row.count("<td") + row.count("<th") for row in rows}
        assert len(widths) == 1, body[:500]


def test_dashboards_and_report_md(tmp_path: Path) -> None:
    run = hostile_run(tmp_path / "run")
    result = build_report(run)
    pages = [p for p in result.written if p.name == "dashboard.html"]
    assert len(pages) == 3
    for page in pages:
        assert_inert_html(page.read_text("utf-8"))
    assert_markdown_inert((run / "report.md").read_text("utf-8"))


def test_dashboard_runs_no_injected_script_in_a_browser(tmp_path: Path) -> None:
    from .browser import require_browser

    executable = require_browser()
    from playwright.sync_api import sync_playwright

    run = hostile_run(tmp_path / "run")
    build_report(run)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            page.goto((run / "dashboard.html").resolve().as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('.main-svg').length >= 10")
            assert page.evaluate("window.pwned === undefined")
            assert page.evaluate("document.querySelectorAll('img').length") == 0
        finally:
            browser.close()


def test_compare_markdown_html_and_terminal(cli, tmp_path: Path) -> None:
    a = hostile_run(tmp_path / "a")
    b = hostile_run(tmp_path / "b", task=f"[link=http://x]{ANSI}")
    md, page = tmp_path / "c.md", tmp_path / "c.html"
    result = cli("compare", a, b, "-o", md, "-o", page)
    assert result.exit_code == 0, result.stderr
    assert_markdown_inert(md.read_text("utf-8"))
    assert_inert_html(page.read_text("utf-8"))
    assert "\x1b" not in result.stdout and "\\x1b[31mred" in result.stdout
    assert "[link=http://x]" in result.stdout  # shown as text, not taken as rich markup


def test_report_terminal(cli, tmp_path: Path) -> None:
    run = hostile_run(tmp_path / "run")
    result = cli("report", run, "--unmapped")
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr


@pytest.mark.parametrize("fmt", ["csv", "tsv", "xlsx"])
def test_review_exports_and_apply_round_trip(cli, tmp_path: Path, fmt: str) -> None:
    run = tmp_path / "labeled.jsonl"
    write_jsonl(run, hostile_records())
    out = tmp_path / f"review.{fmt}"
    result = cli("review", run, "-o", out)
    assert result.exit_code == 0, result.stderr
    if fmt == "xlsx":
        openpyxl = pytest.importorskip("openpyxl")
        sheet = openpyxl.load_workbook(out)["review"]
        cells = [c for row in sheet.iter_rows() for c in row]
        assert all(c.data_type != "f" for c in cells)
        values = [c.value for c in cells if isinstance(c.value, str)]
    else:
        text = out.read_text("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text), delimiter="\t" if fmt == "tsv" else ","))
        values = [cell for row in rows for cell in row]
    assert values
    for value in values:
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
        assert "\x1b" not in value
    # every id, the labeled turn and the reply are there, quoted
    assert "'" + FORMULAS[0] in values and "'+cmd|' /C calc'!A0" in values
    assert any(v.startswith("'=1+1") and "last | turn" in v for v in values)
    assert any(v.startswith("'+<script>") and "labeled reply" in v for v in values)
    # read back, the quote is gone: ids match and nothing changed
    fixed = tmp_path / "fixed"
    applied = cli("review", "--apply", out, run, "-o", fixed)
    assert applied.exit_code == 0, applied.stderr
    assert "samples changed" in applied.stderr
    assert "0 of 6" in applied.stderr
