"""One progress renderer for every long command (label, softlabel, arbitrate).

In a terminal: a bar with done/total, rate, ETA, cost, 429s and failures, readable at 80 columns
(the bar is dropped first, never the numbers). Elsewhere (nohup, CI, cluster logs): one plain
line every ``interval`` seconds with the same figures.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, Progress, TextColumn

from sftlabel.cli._common import stderr
from sftlabel.runs import RunState

PLAIN_INTERVAL = 10.0


def figures(state: RunState, *, verb: str = "done") -> str:
    """The figures of a progress line: ``1,200/5,000 done · 31.2/s · eta 2m · $0.41 · 429s 3 ·
    failed 1``."""
    stats = state.client
    session = state.succeeded + state.failed
    elapsed = max(state.elapsed, 1e-9)
    rate = session / elapsed
    total = state.total
    parts = [f"{state.done:,}/{total:,} {verb}" if total is not None else f"{state.done:,} {verb}"]
    parts.append(f"{rate:,.1f}/s")
    if total is not None and rate > 0 and total > state.done:
        parts.append(f"eta {_duration((total - state.done) / rate)}")
    if stats.cost_known and (state.spent or stats.requests):
        parts.append(f"${state.spent:,.4f}")
    if stats.cache_hits:
        parts.append(f"cache {stats.cache_hits:,}")
    if stats.cached_tokens and stats.prompt_tokens:
        parts.append(f"cached prompt {stats.cached_tokens / stats.prompt_tokens:.0%}")
    duplicates = state.counters.get("duplicates", 0)
    if duplicates:
        parts.append(f"dup {duplicates:,}")
    parts.append(f"429s {stats.rate_limited:,}")
    parts.append(f"failed {state.failed:,}")
    if state.unavailable_since is not None:
        since = dt.datetime.fromtimestamp(state.unavailable_since).strftime("%H:%M:%S")
        parts.append(f"endpoint unavailable since {since}")
    parts += batch_figures(state)
    return " · ".join(parts)


SHOWN_BATCHES = 3


def batch_figures(state: RunState) -> list[str]:
    """``batch-1 in_progress 340/2,000 for 2m, poll in 28s`` per running batch (the first
    few): the provider's own state and counts, never a guess."""
    parts = []
    for row in state.batches[:SHOWN_BATCHES]:
        counts = row.get("counts") or {}
        done = counts.get("completed", 0) + counts.get("failed", 0)
        total = counts.get("total") or row.get("requests", 0)
        text = f"{row['batch']} {row['status']} {done:,}/{total:,}"
        if counts.get("failed"):
            text += f" ({counts['failed']:,} failed)"
        text += f" for {_duration(row.get('in_state', 0))}"
        if row.get("status") not in ("prepared", "completed", "expired", "failed", "cancelled"):
            text += f", poll in {_duration(row.get('next_poll', 0))}"
        parts.append(text)
    if len(state.batches) > SHOWN_BATCHES:
        parts.append(f"+{len(state.batches) - SHOWN_BATCHES} batches")
    return parts


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@contextmanager
def progress(
    label: str, *, interval: float = PLAIN_INTERVAL, clock: Callable[[], float] = time.monotonic
) -> Iterator[Callable[[RunState], None]]:
    """Yields the ``on_progress`` callback of a run."""
    if not stderr.is_terminal:
        last = [clock()]

        def plain(state: RunState) -> None:
            now = clock()
            if now - last[0] >= interval:
                last[0] = now
                stderr.print(f"{label}: {figures(state)}", markup=False, soft_wrap=True)

        yield plain
        return
    bar_column = BarColumn(bar_width=None)
    columns = (TextColumn(f"[bold]{label}"), bar_column, TextColumn("{task.fields[figures]}"))
    with Progress(*columns, console=stderr, transient=False, expand=False) as bar:
        task = bar.add_task(label, total=None, figures="starting")

        def update(state: RunState) -> None:
            text = figures(state)
            # drop the bar before the numbers when the terminal is narrow
            room = stderr.width - len(label) - len(text) - 4
            bar_column.bar_width = min(room, 40) if room >= 10 else 0
            bar.update(task, total=state.total, completed=state.done, figures=text)

        yield update
