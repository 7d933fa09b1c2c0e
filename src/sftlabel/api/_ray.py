"""``--engine ray``: one run in shards over the cores of a machine or the nodes of a cluster.

The driver (this process) plans the run as usual (manifest, session, budget), then starts one
Ray task per unfinished shard; each task runs the ordinary engine over its shard
(:mod:`sftlabel.runs._shards`) with its own clients, its own response-cache file and the run's
files on a shared path. When every shard is done, the driver merges the shards into one ordinary
run directory and the shards' caches into the run's cache, then finalizes as a local run does.

Ray is an optional dependency (``pip install 'sftlabel[ray]'``): it is imported only here, and
only when ``--engine ray`` is asked for.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from sftlabel.api._ledger import BUDGET_SLICES, LeasedBucket, LeasedBudget, Ledger
from sftlabel.api._session import with_signals
from sftlabel.errors import SftlabelError, UsageError
from sftlabel.llm import Budget, ClientConfig, ClientStats, LLMClient, ShardCache, merge_cache
from sftlabel.runs import (
    DEDUP_INDEX,
    WORK,
    ContentIndex,
    Dedup,
    Engine,
    Outcome,
    RateOptions,
    RunControl,
    RunFiles,
    RunManifest,
    RunState,
    ShardTask,
    Status,
    Task,
    finished,
    mark_finished,
    merge,
    prepare,
    recover,
    shard_dir,
    sum_stats,
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
class Cluster:
    """A connection to a Ray cluster: a local one this process started, or an existing one."""

    ray: Any
    started: bool
    cpus: int

    def shutdown(self) -> None:
        if self.started:
            self.ray.shutdown()


def connect(address: str | None) -> Cluster:
    """Join the cluster at ``address`` (``auto``, ``ray://...``, ``HOST:PORT``; default
    ``RAY_ADDRESS``), or start a local one sized to this machine's cores."""
    ray = import_ray()
    if ray.is_initialized():
        started = False
    else:
        address = address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        if address is None:
            kwargs.update(num_cpus=os.cpu_count() or 1, include_dashboard=False)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(
                f"cannot connect to the Ray cluster at {address}: {exc}",
                hint="start one with `ray start --head`, or leave --ray-address out",
            ) from None
        started = True
    cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
    return Cluster(ray=ray, started=started, cpus=cpus)


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
    store = prepare(job.root, job.shard)
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


@dataclass
class ShardedRun:
    """The driver's side of one session of a sharded run."""

    cluster: Cluster
    root: Path
    shards: int
    make_task: TaskFactory
    config: ClientConfig
    arbiter_config: ClientConfig | None
    concurrency: int
    retry_failed: bool = True
    dedup: bool = True
    budget: Budget | None = None
    control: RunControl = field(default_factory=RunControl)
    state: RunState = field(default_factory=RunState)
    on_progress: Callable[[RunState], None] | None = None
    progress: Any = None

    async def run(self) -> Outcome:
        """Run every unfinished shard, then merge them into the run directory."""
        recover(self.root)
        todo = [s for s in range(self.shards) if finished(self.root, s) is None]
        parallel = max(1, min(len(todo), self.cluster.cpus))
        per_shard = max(1, math.ceil(self.concurrency / parallel))
        tag = hashlib.blake2b(str(self.root.resolve()).encode(), digest_size=6).hexdigest()
        ray = self.cluster.ray
        remote = ray.remote(num_cpus=1, max_retries=3)(run_shard)
        self.progress = ray.remote(num_cpus=0)(Progress).remote()
        self.state.done_before = len(done_before(self.root, self.shards))
        ledger = None
        budget_slice = None
        rpm, tpm = self.config.rpm, self.config.tpm
        if self.budget is not None or rpm or tpm:
            cap = self.budget.cap if self.budget is not None else None
            spent = self.budget.spent if self.budget is not None else 0.0
            ledger = ray.remote(num_cpus=0)(Ledger).remote(cap, spent, rpm, tpm)
            if cap is not None:
                budget_slice = max(cap / (BUDGET_SLICES * parallel), 1e-6)
        refs = {
            remote.remote(
                ShardJob(
                    root=self.root.resolve(),
                    shard=shard,
                    shards=self.shards,
                    make_task=self.make_task,
                    config=self.config,
                    arbiter_config=self.arbiter_config,
                    concurrency=per_shard,
                    retry_failed=self.retry_failed,
                    dedup=self.dedup,
                    ledger=ledger,
                    budget_slice=budget_slice,
                    workers=parallel,
                    run_tag=tag,
                    progress=self.progress,
                )
            ): shard
            for shard in todo
        }
        summaries, errors = await self._wait(refs)
        self._merge_caches(tag)
        status, message = _status(summaries, errors, self.control.reason)
        self._apply(await self._figures())
        if self.control.reason is None:
            # every task has ended: its records join the run (an unfinished shard resumes
            # per sample from them); an interrupted session leaves the shards to its resume
            merge(self.root, self.shards)
        return Outcome(status=status, state=self.state, message=message)

    async def _wait(self, refs: dict[Any, int]) -> tuple[list[dict[str, Any]], list[str]]:
        ray = self.cluster.ray
        pending = list(refs)
        summaries: list[dict[str, Any]] = []
        errors: list[str] = []
        cancelled = False
        while pending:
            done, pending = await anyio.to_thread.run_sync(
                partial(ray.wait, pending, num_returns=1, timeout=0.5)
            )
            if self.on_progress is not None:
                self._apply(await self._figures())
                self.on_progress(self.state)
            for ref in done:
                try:
                    summaries.append(ray.get(ref))
                except ray.exceptions.TaskCancelledError:
                    pass  # interrupted: the shard resumes per sample
                except Exception as exc:  # a shard that raised, or whose workers all died
                    errors.append(f"shard {refs[ref]}: {_describe(exc)}")
            if self.control.reason is not None and not cancelled:
                cancelled = True
                for ref in pending:
                    ray.cancel(ref)
        return summaries, errors

    def _merge_caches(self, tag: str) -> None:
        for config in (self.config, self.arbiter_config):
            if config is None or config.cache_path is None:
                continue
            files = [cache_file(config, tag, s) for s in range(self.shards)]
            merge_cache(Path(config.cache_path), [f for f in files if f is not None])

    async def _figures(self) -> list[dict[str, Any]]:
        ref = self.progress.figures.remote()
        figures: list[dict[str, Any]] = await anyio.to_thread.run_sync(self.cluster.ray.get, ref)
        return figures

    def _apply(self, figures: list[dict[str, Any]]) -> None:
        """The session's figures: the sum over every attempt of every shard."""
        state = self.state
        state.succeeded = state.failed = state.skipped = state.retried = 0
        state.problems = state.unreadable = state.in_flight = 0
        state.counters = {}
        for each in figures:
            state.kind = each["kind"] or state.kind
            state.succeeded += each["succeeded"]
            state.failed += each["failed"]
            state.skipped += each["skipped"]
            state.retried += each["retried"]
            state.problems += each["problems"]
            state.unreadable += each["unreadable"]
            state.in_flight += each["in_flight"]
            for name, count in each["counters"].items():
                state.counters[name] = state.counters.get(name, 0) + count
        state.client = sum_stats([each["client"] for each in figures] or [ClientStats()])


def done_before(root: Path, shards: int) -> set[Hashable]:
    """What earlier sessions did: the run's records and its unmerged shards'."""
    labeled, failed = RunFiles(root).done()
    done = labeled | failed
    for shard in range(shards):
        own_labeled, own_failed = RunFiles(shard_dir(root, shard)).done()
        done |= own_labeled | own_failed
    return done


_RANK: dict[str, int] = {"completed": 0, "budget": 1, "interrupted": 2, "aborted": 3}


def _status(
    summaries: list[dict[str, Any]], errors: list[str], interrupted: str | None
) -> tuple[Status, str | None]:
    """The session's status: the worst of its shards'."""
    if errors:
        return "aborted", "; ".join(errors[:3]) + (" ..." if len(errors) > 3 else "")
    worst: Status = "completed"
    message: str | None = None
    for summary in summaries:
        if _RANK[summary["status"]] > _RANK[worst]:
            worst, message = summary["status"], summary["message"]
    if interrupted is not None and worst == "completed":
        return "interrupted", interrupted
    return worst, message


def _describe(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, SftlabelError):
        return cause.message
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


ENGINES = ("local", "ray")


@dataclass
class Sharding:
    """A session that runs on Ray: the cluster and the run's shard count."""

    cluster: Cluster
    shards: int


def check_engine(opts: dict[str, Any]) -> None:
    """Refuse a wrong engine option (or a missing Ray) before the run directory exists."""
    engine = opts.get("engine") or "local"
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}", hint="use --engine local or --engine ray")
    if engine == "local" and opts.get("shards") is not None:
        raise UsageError("--shards needs --engine ray")
    if engine == "ray":
        import_ray()


def sharding(root: Path, manifest: RunManifest, opts: dict[str, Any]) -> Sharding | None:
    """Whether this session runs on Ray (``engine="ray"``); records the shard count.

    A run whose shards were not merged (its driver died) is merged first when it resumes on
    the local engine: the shards' records are records of the run."""
    check_engine(opts)
    given = opts.get("shards")
    if (opts.get("engine") or "local") == "local":
        if manifest.shards is not None:
            recover(root)
            merge(root, manifest.shards)
        return None
    if given is not None and given < 1:
        raise UsageError("--shards must be at least 1")
    recorded = manifest.shards
    if recorded is not None and given is not None and given != recorded:
        raise UsageError(
            f"this run is split in {recorded} shards; it cannot resume with --shards {given}",
            hint=f"leave --shards out (or pass --shards {recorded})",
        )
    cluster = connect(opts.get("ray_address"))
    shards = recorded or given or cluster.cpus
    if recorded is None and (root / WORK).exists():
        merge(root, shards)  # never happens for a run made here; kept for a hand-made one
    manifest.shards = shards
    return Sharding(cluster=cluster, shards=shards)


async def run_sharded(
    sharded: Sharding,
    root: Path,
    *,
    make_task: TaskFactory,
    config: ClientConfig,
    arbiter_config: ClientConfig | None,
    rate: RateOptions,
    retry_failed: bool,
    dedup: bool,
    budget: Budget | None,
    on_progress: Callable[[RunState], None] | None,
    state: RunState,
    control: RunControl,
) -> Outcome:
    """One session of a run on Ray (the driver's side); stops the cluster it started."""
    run = ShardedRun(
        cluster=sharded.cluster,
        root=root,
        shards=sharded.shards,
        make_task=make_task,
        config=config,
        arbiter_config=arbiter_config,
        concurrency=rate.concurrency,
        retry_failed=retry_failed,
        dedup=dedup,
        budget=budget,
        control=control,
        state=state,
        on_progress=on_progress,
    )
    try:
        outcome = await with_signals(control, run.run)
    finally:
        sharded.cluster.shutdown()
    if on_progress is not None:
        on_progress(state)
    return outcome
