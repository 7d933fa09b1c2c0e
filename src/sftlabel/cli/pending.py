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


def softlabel(args: Args = None) -> None:
    """Soft-label every user turn with P(does not require reasoning) (not implemented yet).

    One one-token "0"/"1" classification per user turn, read from the logprobs, with an optional
    rationale, written into a LABELED_<dataset> folder beside the raw one.
    """
    not_implemented("softlabel")


def report(args: Args = None) -> None:
    """Build the HTML dashboard and report.md of a run (not implemented yet)."""
    not_implemented("report")


def review(args: Args = None) -> None:
    """Export samples for human review as CSV and apply the corrections (not implemented yet)."""
    not_implemented("review")


def test(args: Args = None) -> None:
    """Check that an endpoint can serve both labeling jobs (not implemented yet)."""
    not_implemented("test")


for _command in (softlabel, report, review, test):
    _command.command_settings = _ANY_ARGS  # type: ignore[attr-defined]
