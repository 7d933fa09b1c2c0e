"""``sftlabel status RUN``: the state of a run of any kind, from its files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.table import Table
from rich.text import Text

from sftlabel.api import status as run_status
from sftlabel.cli._common import stdout
from sftlabel.cli._examples import epilog


def status(
    run: Annotated[
        Path, typer.Argument(help="A run directory or a softlabel output.", show_default=False)
    ],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object to stdout.")
    ] = False,
) -> None:
    """Show a run's kind, state, counts, failures by reason, spend and sessions.

    Works on running and finished runs of every kind (label, softlabel, arbitrate): it reads
    `run.json` and the records, and sends nothing. A session still `running` is either running
    now or was killed (`--resume` continues it).
    """
    result = run_status(run)
    if json_output:
        stdout.file.write(msgspec.json.encode(result).decode() + "\n")
        return
    budget = f" of ${result.max_cost:g}" if result.max_cost is not None else ""
    done = "generated" if result.kind == "generate" else "labeled"
    stdout.print(Text(f"{result.kind} run {result.path}: {result.state}", style="bold"))
    stdout.print(
        Text(
            f"model {result.model}; {result.labeled:,} {done}, {result.failed:,} failed"
            + (f", {result.unreadable:,} unreadable input records" if result.unreadable else "")
            + f"; spent ${result.spent:,.4f}{budget}"
        )
    )
    for reason, count in result.failures_by_reason.items():
        stdout.print(Text(f"  failed {reason}: {count:,}"))
    table = Table(title="sessions", title_justify="left", box=None, header_style="dim")
    for column in ("started", "status", done, "failed", "requests", "429s", "cost"):
        table.add_column(column, justify="left" if column in ("started", "status") else "right")
    for s in result.sessions:
        table.add_row(
            Text(s.started),
            Text(s.status),
            f"{s.labeled:,}",
            f"{s.failed:,}",
            f"{s.requests:,}",
            f"{s.rate_limited:,}",
            f"${s.cost:,.4f}",
        )
    stdout.print(table)


status.command_settings = {"epilog": epilog("status")}  # type: ignore[attr-defined]
