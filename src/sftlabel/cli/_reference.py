"""The CLI reference (docs/reference.md), generated from the commands' own ``--help``.

    python -m sftlabel.cli._reference docs/reference.md     # or: nox -s docs

``tests/test_docs.py`` fails when docs/reference.md differs from what this renders, so the
reference cannot go stale. The Markdown comes from Typer's own docs generator (``typer ...
utils docs``), applied to the app with every command registered through the entry points.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
import typer.main
from typer.cli import get_docs_for_click

from sftlabel.cli import build_app

HEADER = """<!-- Generated from `sftlabel --help` by `nox -s docs`
(python -m sftlabel.cli._reference docs/reference.md); tests/test_docs.py checks that it is
current. Do not edit by hand. -->

"""


def render() -> str:
    """The reference of every command, as Markdown."""
    command = typer.main.get_command(build_app())
    ctx = typer.Context(command, info_name="sftlabel")
    return HEADER + get_docs_for_click(obj=command, ctx=ctx, name="sftlabel").rstrip() + "\n"


def main(argv: list[str]) -> None:
    text = render()
    if argv:
        Path(argv[0]).write_text(text, "utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
