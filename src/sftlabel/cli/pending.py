"""Commands whose implementation lands in later releases.

They exist so that ``sftlabel --help`` shows the whole suite; each one exits with code 2 and
"not implemented yet", whatever its arguments.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from sftlabel.cli._common import not_implemented

_ANY_ARGS: dict[str, Any] = {
    "context_settings": {"allow_extra_args": True, "ignore_unknown_options": True}
}
Args = Annotated[list[str] | None, typer.Argument(help="Arguments (not implemented yet).")]


def compare(args: Args = None) -> None:
    """Measure agreement between runs or models (not implemented yet)."""
    not_implemented("compare")


for _command in (compare,):
    _command.command_settings = _ANY_ARGS  # type: ignore[attr-defined]
