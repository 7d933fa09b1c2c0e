"""A softlabel session's pieces: its options, its task (built in this process or in each Ray
worker from the run's clients) and a session on the local engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from sftlabel.api import _batch
from sftlabel.api._session import ProgressCallback, with_signals
from sftlabel.llm import LabelTokens, LLMClient
from sftlabel.runs import (
    DEDUP_INDEX,
    ContentIndex,
    Dedup,
    Engine,
    Outcome,
    RateOptions,
    RunControl,
    RunState,
    SoftLabelTask,
    SoftOutput,
)
from sftlabel.softlabel import (
    DEFAULT_STRATEGY,
    SoftLabeler,
    SoftLabelSettings,
    StrategyOptions,
    get_strategy,
)


class SoftOptions(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Every option that changes a soft label (a resume must use the same)."""

    model: str
    strategy: str = DEFAULT_STRATEGY
    context_turns: int = 2
    top_logprobs: int = 5
    logit_bias: float = 5.0
    temperature: float = 1.0
    rationales: bool = True
    rationale_max_tokens: int = 128
    rationale_temperature: float = 0.7
    resolve_missing: bool = False
    limit: int | None = None
    label_token_ids: str | None = None
    dedup: bool = True
    """Turns whose rendering equals an earlier turn's are labeled once (``--no-dedup``)."""


async def run_local(
    task: SoftLabelTask,
    out: SoftOutput,
    client: LLMClient,
    *,
    transports: list[Any],
    rate: RateOptions,
    opts: dict[str, Any],
    state: RunState,
    control: RunControl,
    dedup: bool,
    on_progress: ProgressCallback | None,
) -> Outcome:
    """A session in this process (batches included)."""
    engine = Engine(
        task=task,
        dedup=Dedup(ContentIndex(out.root / DEDUP_INDEX)) if dedup else None,
        store=out,
        clients=[client],
        concurrency=_batch.BATCH_WINDOW if transports else rate.concurrency,
        grouped=not transports,
        max_cost=rate.max_cost,
        retry_failed=bool(opts.get("retry_failed", True)),
        on_progress=_batch.with_batches(on_progress, transports),
        state=state,
        control=control,
    )
    outcome = await with_signals(engine.control, lambda: _batch.run_with(transports, engine.run))
    running = _batch.still_running(transports, "the same softlabel command with --resume")
    if running and outcome.status != "completed":
        outcome.message = f"{outcome.message or outcome.status}; {running}"
    return outcome


def relocate(inputs: list[Path] | None, root: Path) -> dict[str, Any]:
    """soft_task's keywords for a Ray worker's own copies of a remote dataset and output."""
    return {"root": root} if inputs is None else {"inputs": inputs, "root": root}


def soft_task(
    client: LLMClient,
    _arbiter: LLMClient | None,
    *,
    tokens: LabelTokens,
    soft: SoftOptions,
    inputs: list[Path],
    root: Path,
) -> SoftLabelTask:
    """The soft-label task of a run with its client (in this process, or in each Ray worker)."""
    labeler = SoftLabeler(
        client,
        tokens,
        get_strategy(soft.strategy),
        options=StrategyOptions(context_turns=soft.context_turns),
        settings=SoftLabelSettings(
            top_logprobs=soft.top_logprobs,
            logit_bias=soft.logit_bias,
            temperature=soft.temperature,
            rationales=soft.rationales,
            rationale_max_tokens=soft.rationale_max_tokens,
            rationale_temperature=soft.rationale_temperature,
            resolve_missing=soft.resolve_missing,
        ),
    )
    return SoftLabelTask(
        labeler, inputs, SoftOutput(root, inputs), limit=soft.limit, dedup=soft.dedup
    )
