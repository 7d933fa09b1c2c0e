"""``--help`` at 80 columns: nothing cut, defaults as written, no type on flags, examples."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sftlabel.cli import build_app
from sftlabel.cli._examples import EXAMPLES

COMMANDS = ["detect", "slice", "report", "review", "compare", "info", "test", "cache"]


def help_text(*args: str) -> str:
    result = CliRunner().invoke(build_app(), [*args, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_with_examples(command: str) -> None:
    text = help_text(command)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # no option name or default cut short
    assert "<bool>" not in text
    assert "Examples" in text
    for _, line in EXAMPLES[command]:
        assert line.split()[1] == command


def test_defaults_are_shown_as_written() -> None:
    text = " ".join(help_text("label").replace("│", " ").split())
    assert "[default: <cache dir>/responses.sqlite]" in text
    assert "--no-cache Do not read" in text  # a flag takes no value: no type beside it


def test_compare_shows_every_agreement_figure_at_80_columns() -> None:
    import json

    from .conftest import shared

    a = shared("baselines/labeled_deepseek_v4.json")
    b = shared("baselines/labeled_sonnet_v4.json")
    app = build_app()
    out = CliRunner().invoke(app, ["compare", str(a), str(b)], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert max(len(line) for line in out.stdout.splitlines()) <= 80
    assert "…" not in out.stdout
    result = json.loads(CliRunner().invoke(app, ["compare", str(a), str(b), "--json"]).stdout)
    for dim in result["comparisons"][0]["dimensions"]:
        assert f"{dim['exact'] * 100:.1f}%" in out.stdout
        for key in ("jaccard", "kappa", "micro_f1", "macro_f1", "confidence_a"):
            if dim[key] is not None:
                assert f"{dim[key]:.3f}" in out.stdout, (dim["name"], key)
