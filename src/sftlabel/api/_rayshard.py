"""The worker's side of ``--engine ray``: one Ray task runs the ordinary engine over one shard.

Each task makes its own clients (its own response-cache file; the run-wide buckets and budget
leased from the :class:`~sftlabel.api._ledger.Ledger` actor), builds the run's task with the
run's ``make_task``, writes into the shard's folder in the run's store layout
(:func:`~sftlabel.runs.prepare`), and marks the shard done when its engine completes. The
driver's side is :mod:`sftlabel.api._ray`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from sftlabel.api._ledger import LeasedBucket, LeasedBudget
from sftlabel.errors import UsageError
from sftlabel.llm import ClientConfig, LLMClient, ShardCache
from sftlabel.runs import (
    DEDUP_INDEX,
    ContentIndex,
    Dedup,
    Engine,
    Layout,
    RunControl,
    RunFiles,
    RunState,
    ShardTask,
    Task,
    mark_finished,
    prepare,
)

INSTALL_HINT = "pip install 'sftlabel[ray]'"
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}
"""Set before Ray starts: no usage statistics are sent, nothing is fetched at run time."""

TaskFactory = Callable[[LLMClient, LLMClient | None], Task[Any]]
"""Builds a run's task from its clients (called in each worker)."""


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`UsageError` with the install hint."""
    for name, value in ENV.items():
        os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError:
        raise UsageError(
            "--engine ray needs Ray, which is not installed", hint=INSTALL_HINT
        ) from None
    return ray


@dataclass
class ShardJob:
    """Everything a worker needs to run one shard (sent to it by Ray)."""

    root: Path
    shard: int
    shards: int
    make_task: TaskFactory
    config: ClientConfig
    arbiter_config: ClientConfig | None
    concurrency: int
    retry_failed: bool
    dedup: bool
    layout: Layout = RunFiles
    """The run's store (``RunFiles``, ``SoftOutput``): the shard writes in its layout."""
    ledger: Any = None
    """The run-wide :class:`~sftlabel.api._ledger.Ledger` actor (budget, RPM/TPM), if any."""
    budget_slice: float | None = None
    """With ``--max-cost``: USD leased at a time."""
    workers: int = 1
    run_tag: str = ""
    progress: Any = None
    """The run's :class:`Progress` actor: each attempt reports its figures there."""


def cache_file(config: ClientConfig, tag: str, shard: int) -> Path | None:
    """A shard's own response cache: next to the run's cache, one file per run and shard."""
    if config.cache_path is None:
        return None
    base = Path(config.cache_path)
    return base.with_name(base.name + ".shards") / f"{tag}-{shard:04d}.sqlite"


def run_shard(job: ShardJob) -> dict[str, Any]:
    """A Ray task: the engine over one shard (synchronous: a worker runs its own loop)."""
    return anyio.run(_run_shard, job)


async def _run_shard(job: ShardJob) -> dict[str, Any]:
    store = prepare(job.root, job.shard, job.layout)
    clients: list[LLMClient] = []
    budget = None
    if job.ledger is not None and job.budget_slice is not None:
        budget = LeasedBudget(job.ledger, import_ray(), slice_=job.budget_slice)
    try:
        for config in (job.config, job.arbiter_config):
            if config is None:
                continue
            own = cache_file(config, job.run_tag, job.shard)
            shard_config = replace(config, cache_path=None, concurrency=job.concurrency)
            client = LLMClient(shard_config, budget=budget)
            if own is not None and config.cache_path is not None:
                client.cache = ShardCache(own, Path(config.cache_path))
            if job.ledger is not None:
                # the run-wide buckets: every client of every worker draws from them
                if config.rpm:
                    client.pacer.rpm = LeasedBucket(
                        job.ledger, "rpm", config.rpm, workers=job.workers
                    )
                if config.tpm:
                    client.pacer.tpm = LeasedBucket(
                        job.ledger, "tpm", config.tpm, workers=job.workers
                    )
            clients.append(client)
        task = ShardTask(
            job.make_task(clients[0], clients[1] if len(clients) > 1 else None),
            job.shard,
            job.shards,
        )
        dedup = Dedup(ContentIndex(store.root / DEDUP_INDEX)) if job.dedup else None
        state = RunState()
        attempt = f"{job.shard}:{uuid.uuid4().hex}"
        engine = Engine(
            task=task,
            store=store,
            dedup=dedup,
            clients=clients,
            concurrency=job.concurrency,
            retry_failed=job.retry_failed,
            state=state,
            control=RunControl(),
            on_progress=_reporter(job.progress, attempt),
        )
        store.open()
        outcome = await engine.run()
    finally:
        for client in clients:
            await client.aclose()
        if budget is not None:
            budget.close()
    summary = {**_figures(outcome.state), "status": outcome.status, "message": outcome.message}
    if job.progress is not None:
        import_ray().get(job.progress.report.remote(attempt, summary))
    if outcome.status == "completed":
        mark_finished(job.root, job.shard, summary)
    return summary


class Progress:
    """The figures of every attempt of every shard (a Ray actor): the driver shows their sum,
    and an attempt whose worker died still counts what it had sent and spent."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}

    def report(self, attempt: str, figures: dict[str, Any]) -> None:
        self.latest[attempt] = figures

    def figures(self) -> list[dict[str, Any]]:
        return list(self.latest.values())


REPORT_EVERY = 1.0
"""Seconds between two progress reports of a worker."""


def _reporter(progress: Any, attempt: str) -> Callable[[RunState], None] | None:
    if progress is None:
        return None
    last = [0.0]

    def report(state: RunState) -> None:
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY:
            last[0] = now
            progress.report.remote(attempt, _figures(state))

    return report


def _figures(state: RunState) -> dict[str, Any]:
    return {
        "kind": state.kind,
        "in_flight": state.in_flight,
        "succeeded": state.succeeded,
        "failed": state.failed,
        "skipped": state.skipped,
        "retried": state.retried,
        "problems": state.problems,
        "unreadable": state.unreadable,
        "counters": dict(state.counters),
        "client": state.client,
    }
