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
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from sftlabel.api._ledger import LeasedBucket, LeasedBudget
from sftlabel.config import default_cache_dir
from sftlabel.errors import UsageError
from sftlabel.llm import ClientConfig, LLMClient, ShardCache
from sftlabel.runs import (
    DEDUP_INDEX,
    SYNC_EVERY,
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
    pull_run,
    pull_shard,
    push_shard,
    shard_dir,
)
from sftlabel.storage import localize

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


Relocate = Callable[[list[Path] | None, Path], dict[str, Any]]
"""A run's task factory keywords for a worker's own copies: (inputs, run root) -> keywords."""


@dataclass(frozen=True)
class Placement:
    """Where a run's data lives when it is in remote storage (fsspec URLs): each worker makes
    its own machine's copies of it (:func:`~sftlabel.storage.localize`,
    :mod:`sftlabel.runs._remote`), so no machine needs to see another's disk."""

    relocate: Relocate
    input_urls: list[str] = field(default_factory=list)
    output_url: str | None = None
    token: str = ""
    """The driver's staging of this session: a worker on its machine reuses its copies."""
    cache_dir: str | None = None
    """The driver's cache directory (a worker's ``SFTLABEL_CACHE_DIR`` comes first)."""

    def staging(self) -> Path:
        """This machine's staging folder."""
        base = os.environ.get("SFTLABEL_CACHE_DIR") or self.cache_dir or default_cache_dir()
        return Path(base) / "staging"


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
    placement: Placement | None = None
    """Remote inputs or output: where this worker makes its own copies."""


def cache_file(config: ClientConfig, tag: str, shard: int) -> Path | None:
    """A shard's own response cache: next to the run's cache, one file per run and shard."""
    if config.cache_path is None:
        return None
    base = Path(config.cache_path)
    return base.with_name(base.name + ".shards") / f"{tag}-{shard:04d}.sqlite"


def carried_cache(root: Path, shard: int, index: int) -> Path:
    """The response cache of a shard of a remote run: in the shard's folder, which goes to the
    store with it (client ``index``: 0 the labeler, 1 the arbiter)."""
    return shard_dir(root, shard) / f"responses-{index}.sqlite"


def run_shard(job: ShardJob) -> dict[str, Any]:
    """A Ray task: the engine over one shard (synchronous: a worker runs its own loop)."""
    return anyio.run(_run_shard, job)


async def _run_shard(job: ShardJob) -> dict[str, Any]:
    root, make_task, output = job.root, job.make_task, None
    place = job.placement
    if place is not None:
        root, inputs, output = await anyio.to_thread.run_sync(_copies, job, place)
        make_task = partial(make_task, **place.relocate(inputs, root))
    store = prepare(root, job.shard, job.layout)
    clients: list[LLMClient] = []
    budget = None
    if job.ledger is not None and job.budget_slice is not None:
        budget = LeasedBudget(job.ledger, import_ray(), slice_=job.budget_slice)
    try:
        for index, config in enumerate((job.config, job.arbiter_config)):
            if config is None:
                continue
            own = cache_file(config, job.run_tag, job.shard)
            if output is not None and own is not None:
                own = carried_cache(root, job.shard, index)
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
            make_task(clients[0], clients[1] if len(clients) > 1 else None),
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
        async with anyio.create_task_group() as group:
            if output is not None:
                group.start_soon(_keep_synced, output, root, job.shard)
            outcome = await engine.run()
            group.cancel_scope.cancel()
    finally:
        for client in clients:
            await client.aclose()
        if budget is not None:
            budget.close()
    summary = {**_figures(outcome.state), "status": outcome.status, "message": outcome.message}
    if job.progress is not None:
        import_ray().get(job.progress.report.remote(attempt, summary))
    done = outcome.status == "completed"
    if done:
        mark_finished(root, job.shard, summary)
    if output is not None:
        await anyio.to_thread.run_sync(partial(push_shard, output, root, job.shard, done=done))
    return summary


def _copies(job: ShardJob, place: Placement) -> tuple[Path, list[Path] | None, str | None]:
    """This machine's copies of a remote run and inputs: (run root, inputs, output URL)."""
    staging = place.staging()
    root = job.root
    if place.output_url is not None:
        root = pull_run(place.output_url, staging, place.token)
        pull_shard(place.output_url, root, job.shard)
    inputs = localize(place.input_urls, staging, place.token) if place.input_urls else None
    return root, inputs, place.output_url


async def _keep_synced(output: str, root: Path, shard: int) -> None:
    """Upload a running shard's folder every SYNC_EVERY seconds (until cancelled)."""
    while True:
        await anyio.sleep(SYNC_EVERY)
        await anyio.to_thread.run_sync(partial(push_shard, output, root, shard))


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
