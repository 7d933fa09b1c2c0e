"""The streaming label run: read → slice → label → write, in a bounded window, resumable.

Samples flow from the reader through a bounded channel to ``concurrency`` workers; each result
is appended to the run files the moment it is known (out of order: no head-of-line blocking by a
slow sample). Memory stays bounded by the window, whatever the input size. A resumed run skips
every sample id already in ``labeled.jsonl``/``failures.jsonl``; the response cache makes the
requests of interrupted samples free.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import anyio
import msgspec

from sftlabel.formats import Reader
from sftlabel.labeling import Labeler, LabelingFailed
from sftlabel.llm import AuthenticationError, ClientConfig, ClientStats, LLMClient
from sftlabel.model import Failure, LabeledSample, Problem, Sample
from sftlabel.runs._files import FAILURES, LABELED, MONITOR, PROBLEMS, PartMap, RunFiles
from sftlabel.runs._manifest import LabelOptions
from sftlabel.runs._pool import for_each
from sftlabel.slicing import SparsePolicy, iter_samples
from sftlabel.taxonomy import Taxonomy

Status = Literal["completed", "budget", "aborted"]

SYSTEMATIC_REJECTIONS = 5
"""Rejected requests before any success that stop a run: a wrong model name or endpoint, not
bad samples. Those samples are not written as failures, so a resume relabels them."""


@dataclass
class RunState:
    """Live counters of a session, for progress displays."""

    done_before: int = 0
    labeled: int = 0
    failed: int = 0
    skipped: int = 0
    problems: int = 0
    started: float = field(default_factory=time.monotonic)
    client: ClientStats = field(default_factory=ClientStats)


@dataclass
class Outcome:
    status: Status
    state: RunState
    message: str | None = None


def sample_stream(
    inputs: list[str], options: LabelOptions, on_problem: Callable[[Problem], None] | None = None
) -> Iterator[tuple[int, Sample]]:
    """``(index, sample)`` in input order, exactly as the run sees them (deterministic)."""
    policy = (
        SparsePolicy(threshold=options.sparse_threshold, ratio=options.sparse_ratio)
        if options.sparse
        else None
    )
    index = 0
    for item in iter_samples(
        Reader().read(inputs),
        sparse=policy,
        max_chars=options.max_chars,
        limit=options.limit,
        shuffle=options.shuffle,
        seed=options.seed,
    ):
        if isinstance(item, Problem):
            if on_problem is not None:
                on_problem(item)
            continue
        yield index, item
        index += 1


async def run_label(
    *,
    files: RunFiles,
    inputs: list[str],
    options: LabelOptions,
    taxonomy: Taxonomy,
    client_config: ClientConfig,
    concurrency: int,
    max_cost: float | None = None,
    arbitration_config: ClientConfig | None = None,
    state: RunState | None = None,
    on_update: Callable[[RunState], None] | None = None,
) -> Outcome:
    """Label every sample not yet done; append results to ``files`` (opened by the caller)."""
    state = state or RunState()
    done = files.done_ids()
    state.done_before = len(done)
    stop = anyio.Event()
    outcome: Outcome = Outcome(status="completed", state=state)

    held: list[tuple[Failure, dict[str, object]]] = []  # rejections before any success
    succeeded = False
    part_of = PartMap(inputs)

    def part(sample: Sample) -> str:
        return part_of(sample.location.path) if sample.location is not None else ""

    def fail(failure: Failure, trace: dict[str, object]) -> None:
        files.append(FAILURES, failure, part(failure.sample))
        files.append(MONITOR, trace, part(failure.sample))
        state.failed += 1

    def problem(item: Problem) -> None:
        state.problems += 1
        files.append(PROBLEMS, item)

    async with LLMClient(client_config) as client:
        arbiter = LLMClient(arbitration_config) if arbitration_config is not None else None
        labeler = Labeler(
            client,
            taxonomy,
            confidence_threshold=options.confidence_threshold,
            arbitration=options.arbitration,
            arbitration_client=arbiter,
            json_mode=options.json_mode,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
        )

        def pending() -> Iterator[tuple[int, Sample]]:
            for index, sample in sample_stream(inputs, options, problem):
                if sample.id in done:
                    state.skipped += 1
                else:
                    yield index, sample

        async def handle(item: tuple[int, Sample]) -> None:
            nonlocal outcome, succeeded
            index, sample = item
            try:
                result = await labeler.label(sample)
            except LabelingFailed as exc:
                failure = Failure(
                    id=sample.id, index=index, reason=exc.reason, error=str(exc), sample=sample
                )
                trace: dict[str, object] = {
                    "id": sample.id,
                    "index": index,
                    "status": "failed",
                    "error": str(exc),
                }
                if exc.reason == "rejected" and not succeeded:
                    held.append((failure, trace))
                    if len(held) >= SYSTEMATIC_REJECTIONS:
                        outcome = Outcome(
                            status="aborted",
                            state=state,
                            message=f"the first {len(held)} samples were all rejected by the "
                            f"endpoint ({exc}); check --model and --base-url",
                        )
                        held.clear()  # not the samples' fault: a resume labels them again
                        stop.set()
                        scope.cancel()
                        return
                else:
                    fail(failure, trace)
            except AuthenticationError as exc:
                message = exc.message + (f" — {exc.hint}" if exc.hint else "")
                outcome = Outcome(status="aborted", state=state, message=message)
                stop.set()
                scope.cancel()
                return
            else:
                record = LabeledSample(
                    **msgspec.structs.asdict(sample),
                    index=index,
                    labels=result.labels,
                    labeling_monitor=result.monitor,
                )
                files.append(LABELED, record, part(sample))
                if not succeeded:
                    succeeded = True
                    for failure, trace in held:  # the endpoint works: these are real failures
                        fail(failure, trace)
                    held.clear()
                trace = {"id": sample.id, "index": index, "status": "labeled", **result.monitor}
                files.append(MONITOR, trace, part(sample))
                state.labeled += 1
            state.client = client.stats
            spent = client.stats.cost + (arbiter.stats.cost if arbiter is not None else 0.0)
            if max_cost is not None and spent >= max_cost and not stop.is_set():
                outcome = Outcome(
                    status="budget",
                    state=state,
                    message=f"spent ${spent:.4f}, reaching --max-cost ${max_cost:g}",
                )
                stop.set()
            if on_update is not None:
                on_update(state)

        try:
            with anyio.CancelScope() as scope:
                await for_each(pending(), handle, concurrency=concurrency, stop=stop)
            if outcome.status != "aborted":
                for failure, trace in held:  # the run ended before any success: still failures
                    fail(failure, trace)
        finally:
            state.client = client.stats
            if arbiter is not None:
                await arbiter.aclose()
    return outcome
