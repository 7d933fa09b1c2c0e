"""What the run commands (label, softlabel, arbitrate) share: options, the summary, exit."""

from __future__ import annotations

from typing import Annotated

import msgspec
import typer
from rich.table import Table

from sftlabel.api import RunResult
from sftlabel.cli._common import plural, stderr, stdout
from sftlabel.runs import Estimate

JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print a machine-readable summary (counts, cost, tokens, exit reason) on stdout.",
    ),
]

NoDedupOption = Annotated[
    bool,
    typer.Option(
        "--no-dedup",
        help="Send every item, also those whose content (what the model sees) equals an "
        "earlier one's [default: duplicates are labeled once and copied, with duplicate_of].",
    ),
]

SkipFailedOption = Annotated[
    bool,
    typer.Option(
        "--skip-failed",
        help="With --resume: keep earlier failures as they are instead of retrying them.",
    ),
]


def finish(
    result: RunResult, *, json_output: bool, what: str = "sample", done: str = "labeled"
) -> None:
    """The summary on stderr (and the JSON one on stdout), then exit with the run's status."""
    session = result.session
    lines = [
        f"{plural(result.labeled, what)} {done}, {result.failed:,} failed"
        + (f" ({_reasons(result)})" if result.failures_by_reason else "")
        + (
            f" ({result.duplicates:,} duplicates labeled once and copied)"
            if result.duplicates
            else ""
        )
        + (f"; this session skipped {result.skipped:,} already done" if result.skipped else "")
        + (f", retried {result.retried:,}" if result.retried else "")
        + (
            f", {result.counters['censored']:,} with a censored label token"
            if result.counters.get("censored")
            else ""
        ),
        f"{session.requests:,} requests ({session.cache_hits:,} from cache), "
        f"{session.retries:,} retries, {session.rate_limited:,} rate-limited (429)",
        f"{session.prompt_tokens:,} prompt ({session.cached_tokens:,} cached"
        + (
            f", {session.cached_tokens / session.prompt_tokens:.1%}"
            if session.cached_tokens and session.prompt_tokens
            else ""
        )
        + ") + "
        f"{session.completion_tokens:,} completion tokens"
        + (
            f"; spent ${result.spent:,.4f} over the run"
            + (f" of --max-cost ${result.max_cost:g}" if result.max_cost is not None else "")
            if session.cost_known
            else "; cost unknown for this model (see --prices)"
        ),
    ]
    if result.unreadable:
        codes = ", ".join(
            f"{name.split(':', 1)[1]} {count:,}"
            for name, count in result.counters.items()
            if name.startswith("unreadable:")
        )
        lines.append(
            f"{plural(result.unreadable, 'input record')} could not be read "
            f"(problems.jsonl: {codes})"
        )
    elif result.problems:
        lines.append(f"{result.problems:,} input warnings (problems.jsonl)")
    for line in lines:
        stderr.print(line, markup=False)
    if result.status == "aborted" and result.message:
        stderr.print(f"aborted: {result.message}", style="bold red", markup=False)
    elif result.status == "budget":
        stderr.print(f"stopped: {result.message}", style="yellow", markup=False)
    elif result.status in ("interrupted", "cancelled"):
        stderr.print(f"{result.message or result.status}", style="yellow", markup=False)
    if result.resume_hint:
        stderr.print(f"continue with `{result.resume_hint}`", markup=False)
    stderr.print(f"outputs in {result.path}/", markup=False)
    if json_output:
        stdout.file.write(msgspec.json.encode(result).decode() + "\n")
        stdout.file.flush()
    raise typer.Exit(result.exit_code)


def _reasons(result: RunResult) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in result.failures_by_reason.items())


def render_estimate(
    result: Estimate,
    *,
    model: str | None,
    concurrency: int | None,
    rpm: float | None,
    json_output: bool,
    per_item: str = "2 per sample, before arbitration",
    item: str = "samples",
) -> None:
    """The dry run's table on stdout (or its JSON)."""
    if json_output:
        stdout.file.write(msgspec.json.encode(result).decode() + "\n")
        return
    per_call = 3.0
    in_flight = concurrency or 50
    seconds = result.requests * per_call / in_flight
    if rpm:
        seconds = max(seconds, result.requests / rpm * 60)
    table = Table(title="dry run: nothing was sent", title_justify="left", box=None)
    table.add_column("", style="dim")
    table.add_column("", justify="right")
    table.add_row(item, f"{result.samples:,}")
    if result.duplicates:
        table.add_row("of which duplicates (copied, not sent)", f"{result.duplicates:,}")
    table.add_row(f"requests ({per_item})", f"{result.requests:,}")
    table.add_row("prompt tokens (estimate)", f"{result.prompt_tokens:,}")
    if result.prompt_tokens:
        share = result.cached_tokens / result.prompt_tokens
        table.add_row(
            "of which from the prefix cache (*)", f"{result.cached_tokens:,} ({share:.0%})"
        )
    table.add_row("completion tokens (estimate)", f"{result.completion_tokens:,}")
    table.add_row(
        f"cost ({model or 'model'}, with the cache hits)",
        "unknown model price (see --prices)" if result.cost is None else f"${result.cost:,.2f}",
    )
    if result.cost_without_cache is not None and result.cost_without_cache != result.cost:
        table.add_row("cost without any cache hit", f"${result.cost_without_cache:,.2f}")
    if result.batch_cost is not None:
        table.add_row("cost with --batch (batch prices, within 24 h)", f"${result.batch_cost:,.2f}")
    table.add_row(
        f"time at {in_flight} in flight, ~{per_call:g} s a call", f"{seconds / 60:,.1f} min"
    )
    if result.problems:
        table.add_row("input problems (see `sftlabel detect`)", f"{result.problems:,}")
    stdout.print(table)
    if result.cache_assumption:
        stdout.print(f"(*) assumed: {result.cache_assumption}", markup=False, soft_wrap=True)
    if result.unreadable:
        raise typer.Exit(1)
