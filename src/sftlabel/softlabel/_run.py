"""The streaming soft-label run: read → turns → classify (→ rationale) → append, resumable.

The same shape as the label run: turns flow from the reader through a bounded window to
``concurrency`` workers, each record is appended the moment it is known, memory stays flat in the
number of turns, and a resumed run skips every turn already in the output (the response cache
makes the interrupted ones free).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio

from sftlabel import __version__
from sftlabel.formats import Reader
from sftlabel.llm import AuthenticationError, ClientConfig, ClientStats, LLMClient
from sftlabel.llm._tokens import LabelTokens, resolve_label_tokens
from sftlabel.model import Problem, TurnLabel
from sftlabel.runs._manifest import now
from sftlabel.runs._pool import for_each
from sftlabel.softlabel._classify import (
    LogprobsUnsupportedError,
    SoftLabeler,
    SoftLabelSettings,
    TurnFailed,
)
from sftlabel.softlabel._output import SoftOutput, summarize
from sftlabel.softlabel._strategies import Strategy, StrategyOptions
from sftlabel.softlabel._turns import Turn, iter_turns

Status = Literal["completed", "budget", "aborted"]

SYSTEMATIC_REJECTIONS = 5
"""Rejections before any success that stop a run (a wrong model or endpoint, not bad turns)."""


@dataclass
class SoftRunState:
    """Live counters of a session, for progress displays."""

    done_before: int = 0
    labeled: int = 0
    failed: int = 0
    skipped: int = 0
    problems: int = 0
    censored: int = 0
    started: float = field(default_factory=time.monotonic)
    client: ClientStats = field(default_factory=ClientStats)
    tokens: LabelTokens | None = None


@dataclass
class SoftOutcome:
    status: Status
    state: SoftRunState
    message: str | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class SoftLabelJob:
    """Everything a soft-label run needs."""

    inputs: list[Path]
    output: SoftOutput
    client_config: ClientConfig
    strategy: Strategy
    options: StrategyOptions = field(default_factory=StrategyOptions)
    settings: SoftLabelSettings = field(default_factory=SoftLabelSettings)
    label_token_ids: str | None = None
    concurrency: int = 50
    limit: int | None = None
    max_cost: float | None = None
    sources: list[str] = field(default_factory=list)
    """The inputs as the user gave them (URLs of remote datasets, which ``inputs`` stages)."""


def turn_stream(
    inputs: list[Path],
    limit: int | None = None,
    on_problem: Callable[[Problem], None] | None = None,
) -> Iterator[tuple[int, Turn]]:
    """``(index, turn)`` in input order (deterministic, so a resume sees the same turns)."""
    index = 0
    for item in iter_turns(Reader().read([str(p) for p in inputs])):
        if isinstance(item, Problem):
            if on_problem is not None:
                on_problem(item)
            continue
        if limit is not None and index >= limit:
            return
        yield index, item
        index += 1


async def run_softlabel(
    job: SoftLabelJob,
    *,
    state: SoftRunState | None = None,
    on_update: Callable[[SoftRunState], None] | None = None,
) -> SoftOutcome:
    """Label every turn not yet in the output; append results as they come."""
    state = state or SoftRunState()
    output = job.output
    output.repair()
    done = output.done_keys()
    state.done_before = len(done)
    outcome = SoftOutcome(status="completed", state=state)
    stop = anyio.Event()
    held: list[tuple[TurnLabel, Turn]] = []  # rejections before any success
    succeeded = False

    def problem(item: Problem) -> None:
        state.problems += 1
        outcome.problems.append(item)

    async with LLMClient(job.client_config) as client:
        tokens = await resolve_label_tokens(client, job.label_token_ids)
        state.tokens = tokens
        labeler = SoftLabeler(
            client, tokens, job.strategy, options=job.options, settings=job.settings
        )

        def pending() -> Iterator[tuple[int, Turn]]:
            for index, turn in turn_stream(job.inputs, job.limit, problem):
                if turn.key in done:
                    state.skipped += 1
                else:
                    yield index, turn

        def write(record: TurnLabel, turn: Turn) -> None:
            output.append(record, output.relative(turn.location.path if turn.location else None))

        async def handle(item: tuple[int, Turn]) -> None:
            nonlocal outcome, succeeded
            index, turn = item
            try:
                record = await labeler.label(turn, index=index)
            except TurnFailed as exc:
                failed = TurnLabel(
                    conversationId=turn.conversation_id,
                    messageId=turn.message_id,
                    split=turn.split,
                    bucket=turn.bucket,
                    turnIndex=turn.turn_index,
                    strategy=job.strategy.name,
                    model=client.config.model,
                    error=str(exc),
                    reason=exc.reason,
                    index=index,
                    monitor=exc.monitor,
                )
                if exc.reason == "rejected" and not succeeded:
                    held.append((failed, turn))
                    if len(held) >= SYSTEMATIC_REJECTIONS:
                        outcome = SoftOutcome(
                            status="aborted",
                            state=state,
                            message=f"the first {len(held)} turns were all rejected by the "
                            f"endpoint ({exc}); check --model and --base-url",
                            problems=outcome.problems,
                        )
                        held.clear()  # not the turns' fault: a resume labels them again
                        stop.set()
                        scope.cancel()
                        return
                else:
                    write(failed, turn)
                    state.failed += 1
            except (AuthenticationError, LogprobsUnsupportedError) as exc:
                message = exc.message + (f" — {exc.hint}" if exc.hint else "")
                outcome = SoftOutcome(
                    status="aborted", state=state, message=message, problems=outcome.problems
                )
                stop.set()
                scope.cancel()
                return
            else:
                write(record, turn)
                state.labeled += 1
                state.censored += bool(record.censored)
                if not succeeded:
                    succeeded = True
                    for failed, earlier in held:  # the endpoint works: real failures
                        write(failed, earlier)
                        state.failed += 1
                    held.clear()
            state.client = client.stats
            spent = client.stats.cost
            if job.max_cost is not None and spent >= job.max_cost and not stop.is_set():
                outcome = SoftOutcome(
                    status="budget",
                    state=state,
                    message=f"spent ${spent:.4f}, reaching --max-cost ${job.max_cost:g}",
                    problems=outcome.problems,
                )
                stop.set()
            if on_update is not None:
                on_update(state)

        try:
            with anyio.CancelScope() as scope:
                await for_each(pending(), handle, concurrency=job.concurrency, stop=stop)
            if outcome.status != "aborted":
                for failed, turn in held:  # the run ended before any success: still failures
                    write(failed, turn)
                    state.failed += 1
        finally:
            state.client = client.stats
            output.close()
    if outcome.status == "completed":
        output.sort_files()
    return outcome


def build_metadata(
    job: SoftLabelJob,
    outcome: SoftOutcome,
    *,
    previous: dict[str, Any] | None,
    started_at: str,
) -> dict[str, Any]:
    """``labeling_metadata.json``: model, options, token ids, counts, cost and time."""
    state = outcome.state
    stats = state.client
    session = {
        "started": started_at,
        "finished": now(),
        "status": outcome.status,
        "message": outcome.message,
        "elapsed_seconds": round(time.monotonic() - state.started, 3),
        "turns_labeled": state.labeled,
        "turns_failed": state.failed,
        "turns_skipped_as_done": state.skipped,
        "input_problems": state.problems,
        "requests": stats.requests,
        "cache_hits": stats.cache_hits,
        "retries": stats.retries,
        "rate_limited_429": stats.rate_limited,
        "cost_usd": round(stats.cost, 6) if stats.cost_known else None,
    }
    sessions = [*list((previous or {}).get("sessions", [])), session]
    tokens = state.tokens
    config = job.client_config
    settings = job.settings
    return {
        "sftlabel_version": __version__,
        "task": "reasoning soft labels: 0 = requires reasoning, 1 = does not",
        "model": config.model,
        "endpoint": config.endpoint().split("?", 1)[0],
        "inputs": job.sources or [str(p) for p in job.inputs],
        "strategy": job.strategy.name,
        "options": {
            "context_turns": job.options.context_turns,
            "top_logprobs": settings.top_logprobs,
            "logit_bias": settings.logit_bias,
            "temperature": settings.temperature,
            "rationales": settings.rationales,
            "rationale_max_tokens": settings.rationale_max_tokens,
            "rationale_temperature": settings.rationale_temperature,
            "resolve_missing": settings.resolve_missing,
            "limit": job.limit,
            "concurrency": job.concurrency,
        },
        "label_token_ids": tokens.ids if tokens else None,
        "label_token_source": tokens.source if tokens else None,
        "label_token_verified": tokens.verified if tokens else None,
        "counts": summarize(job.output),
        "elapsed_seconds": round(sum(s["elapsed_seconds"] for s in sessions), 3),
        "sessions": sessions,
    }
