"""What every kind of run shares around the engine: one session of a run.

Signals (SIGINT, SIGTERM) end the session cleanly; the session's figures go into the manifest
(first as ``finalizing``, and the final status only once the outputs are written, so a run that
died while finalizing is still resumable); the result says what the whole run holds.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec

from sftlabel.runs import (
    Outcome,
    RunControl,
    RunManifest,
    RunState,
    Session,
    now,
    write_manifest,
)

T = TypeVar("T")
ProgressCallback = Callable[[RunState], None]


class SessionFigures(msgspec.Struct, kw_only=True):
    """What one session sent and spent."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True
    elapsed: float = 0.0


class RunResult(msgspec.Struct, kw_only=True):
    """The outcome of a run (label, softlabel or arbitrate), over every session so far.

    ``exit_code``: 0 everything done and every input record read, 1 some items failed or some
    input records were unreadable, 3 aborted, interrupted or stopped by the budget.
    """

    kind: str
    path: str
    status: str
    exit_code: int
    message: str | None = None
    labeled: int = 0
    """Items with a label in the run (all sessions)."""
    duplicates: int = 0
    """Of those, items whose content equals an earlier item's: labeled once, copied with
    ``duplicate_of`` (all sessions)."""
    failed: int = 0
    """Items whose latest attempt failed (all sessions)."""
    skipped: int = 0
    """Items this session found already done."""
    retried: int = 0
    """Items that had failed before and were tried again this session."""
    unreadable: int = 0
    """Input records that could not be read (see problems.jsonl)."""
    problems: int = 0
    spent: float = 0.0
    """USD spent over every session of the run."""
    max_cost: float | None = None
    session: SessionFigures = msgspec.field(default_factory=SessionFigures)
    counters: dict[str, int] = {}
    failures_by_reason: dict[str, int] = {}
    resume_hint: str | None = None


def exit_code(status: str, failed: int, unreadable: int) -> int:
    if status != "completed":
        return 3
    return 1 if failed or unreadable else 0


async def with_signals(control: RunControl, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` with SIGINT/SIGTERM turned into a clean interruption of the run (only in
    the main thread, where signal handlers can be installed)."""
    if threading.current_thread() is not threading.main_thread():
        return await work()
    result: list[T] = []
    async with anyio.create_task_group() as group:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

            async def watch() -> None:
                async for signum in signals:
                    control.interrupt(f"interrupted by {signal.Signals(signum).name}")

            group.start_soon(watch)
            result.append(await work())
            group.cancel_scope.cancel()
    return result[0]


def record_session(
    root: Path, manifest: RunManifest, outcome: Outcome, started: float, *, status: str
) -> Session:
    """Put the session's figures into the manifest and write it."""
    state = outcome.state
    stats = state.client
    session = manifest.sessions[-1]
    session.finished = now()
    session.status = status
    session.message = outcome.message
    session.labeled, session.failed, session.retried = state.succeeded, state.failed, state.retried
    session.requests, session.cache_hits = stats.requests, stats.cache_hits
    session.retries, session.rate_limited = stats.retries, stats.rate_limited
    session.prompt_tokens, session.completion_tokens = stats.prompt_tokens, stats.completion_tokens
    session.cached_tokens = stats.cached_tokens
    session.cost = stats.cost
    session.elapsed = round(time.monotonic() - started, 3)
    write_manifest(root, manifest)
    return session


def figures(state: RunState, started: float) -> SessionFigures:
    stats = state.client
    return SessionFigures(
        requests=stats.requests,
        cache_hits=stats.cache_hits,
        retries=stats.retries,
        rate_limited=stats.rate_limited,
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
        cached_tokens=stats.cached_tokens,
        cost=stats.cost,
        cost_known=stats.cost_known,
        elapsed=round(time.monotonic() - started, 3),
    )


def run_sync(work: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run`` for the synchronous API (a notebook already in an event loop should call
    the ``a...`` variant and ``await`` it)."""
    return anyio.run(work)


def new_session(manifest: RunManifest) -> int:
    manifest.sessions.append(Session(started=now()))
    return len(manifest.sessions)


def counters_of(state: RunState) -> dict[str, Any]:
    return dict(sorted(state.counters.items()))
