"""The README and docs/ stay true to the code: every command and every option is documented."""

from __future__ import annotations

import re

import pytest
import typer

from sftlabel.cli import build_app
from sftlabel.config import FIELDS

from .conftest import ROOT

DOCS = "\n".join(
    [(ROOT / "README.md").read_text("utf-8")]
    + [path.read_text("utf-8") for path in sorted((ROOT / "docs").glob("*.md"))]
)
COMMANDS = typer.main.get_command(build_app()).commands  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_in_the_readme(name: str) -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert re.search(rf"`(sftlabel )?{name}[ `]", readme), name


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (name, opt)
        for name, command in sorted(COMMANDS.items())
        for param in command.params
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    ],
)
def test_every_option_is_documented(command: str, option: str) -> None:
    assert option in DOCS, f"sftlabel {command} {option} is not documented"


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_every_setting_is_documented(key: str) -> None:
    assert f"`{key}`" in DOCS
    for env in FIELDS[key].env:
        assert env in DOCS


def test_the_cli_reference_is_generated_from_the_current_help() -> None:
    from sftlabel.cli._reference import render

    current = (ROOT / "docs" / "reference.md").read_text("utf-8")
    assert current == render(), (
        "docs/reference.md is stale: run `nox -s docs` (python -m sftlabel.cli._reference "
        "docs/reference.md) and commit it"
    )
