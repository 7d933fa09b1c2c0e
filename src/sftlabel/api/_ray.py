"""``--engine ray``: one run in shards over the cores of a machine or the nodes of a cluster.

The driver (this process) plans the run as usual (manifest, session, budget), then starts one
Ray task per unfinished shard; each task (:mod:`sftlabel.api._rayshard`) runs the ordinary
engine over its shard (:mod:`sftlabel.runs._shards`) with its own clients, its own
response-cache file and the run's files on a shared path. When every shard is done, the driver
merges the shards into the run's output (a run directory, a ``LABELED_`` folder: the run's
store ``layout``) and the shards' caches into the run's cache, then finalizes as a local run
does. ``label``, ``arbitrate`` and ``softlabel`` share all of it.

Ray is an optional dependency (``pip install 'sftlabel[ray]'``): it is imported only here and in
:mod:`sftlabel.api._rayshard`, and only when ``--engine ray`` is asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from sftlabel.api._ledger import BUDGET_SLICES, Ledger
from sftlabel.api._rayshard import (
    INSTALL_HINT,
    Placement,
    Progress,
    ShardJob,
    TaskFactory,
    cache_file,
    carried_cache,
    import_ray,
    run_shard,
)
from sftlabel.api._session import with_signals
from sftlabel.errors import SftlabelError, UsageError
from sftlabel.llm import Budget, ClientConfig, ClientStats, merge_cache
from sftlabel.runs import (
    WORK,
    Layout,
    Outcome,
    RateOptions,
    RunControl,
    RunFiles,
    RunManifest,
    RunState,
    Status,
    finished,
    mark_staged,
    merge,
    pull_shard,
    recover,
    shard_dir,
    sum_stats,
)

__all__ = [
    "INSTALL_HINT",
    "Placement",
    "check_engine",
    "connect",
    "import_ray",
    "run_sharded",
    "sharding",
]


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
    layout: Layout = RunFiles
    """The run's store: shards write in its layout and are merged into it."""
    budget: Budget | None = None
    control: RunControl = field(default_factory=RunControl)
    state: RunState = field(default_factory=RunState)
    on_progress: Callable[[RunState], None] | None = None
    progress: Any = None
    placement: Placement | None = None
    """Remote inputs or output (fsspec URLs): the workers make their own copies."""
    publish: Callable[[], None] | None = None
    """Upload the run's working copy to its remote output (before the workers start)."""

    async def run(self) -> Outcome:
        """Run every unfinished shard, then merge them into the run's output."""
        recover(self.root)
        output = self.placement.output_url if self.placement is not None else None
        if output is not None:
            # the store's shards may be further on than this machine's (other machines ran
            # them); then the workers elsewhere fetch the run as this machine has it
            await anyio.to_thread.run_sync(self._pull, output)
            if self.placement is not None:
                mark_staged(self.root, self.placement.token)
            if self.publish is not None:
                await anyio.to_thread.run_sync(self.publish)
        todo = [s for s in range(self.shards) if finished(self.root, s) is None]
        parallel = max(1, min(len(todo), self.cluster.cpus))
        per_shard = max(1, math.ceil(self.concurrency / parallel))
        tag = hashlib.blake2b(str(self.root.resolve()).encode(), digest_size=6).hexdigest()
        ray = self.cluster.ray
        remote = ray.remote(num_cpus=1, max_retries=3)(run_shard)
        self.progress = ray.remote(num_cpus=0)(Progress).remote()
        self.state.done_before = len(done_before(self.root, self.shards, self.layout))
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
                    layout=self.layout,
                    ledger=ledger,
                    budget_slice=budget_slice,
                    workers=parallel,
                    run_tag=tag,
                    progress=self.progress,
                    placement=self.placement,
                )
            ): shard
            for shard in todo
        }
        summaries, errors = await self._wait(refs)
        if output is not None:
            await anyio.to_thread.run_sync(self._pull, output)
        self._merge_caches(tag)
        status, message = _status(summaries, errors, self.control.reason)
        self._apply(await self._figures())
        if self.control.reason is None:
            # every task has ended: its records join the run (an unfinished shard resumes
            # per sample from them); an interrupted session leaves the shards to its resume
            merge(self.root, self.shards, self.layout)
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

    def _pull(self, output: str) -> None:
        for shard in range(self.shards):
            pull_shard(output, self.root, shard)

    def _merge_caches(self, tag: str) -> None:
        for index, config in enumerate((self.config, self.arbiter_config)):
            if config is None or config.cache_path is None:
                continue
            files = [f for s in range(self.shards) if (f := cache_file(config, tag, s))]
            carried = [carried_cache(self.root, s, index) for s in range(self.shards)]
            merge_cache(Path(config.cache_path), files + [f for f in carried if f.exists()])
            if files:
                with contextlib.suppress(OSError):  # another run's shards may still be there
                    files[0].parent.rmdir()

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


def done_before(root: Path, shards: int, layout: Layout = RunFiles) -> set[Hashable]:
    """What earlier sessions did: the run's records and its unmerged shards'."""
    labeled, failed = layout(root).done()
    done = labeled | failed
    for shard in range(shards):
        own_labeled, own_failed = layout(shard_dir(root, shard)).done()
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


def sharding(
    root: Path, manifest: RunManifest, opts: dict[str, Any], layout: Layout = RunFiles
) -> Sharding | None:
    """Whether this session runs on Ray (``engine="ray"``); records the shard count.

    A run whose shards were not merged (its driver died) is merged first when it resumes on
    the local engine: the shards' records are records of the run (``layout``: its store)."""
    check_engine(opts)
    given = opts.get("shards")
    if (opts.get("engine") or "local") == "local":
        if manifest.shards is not None:
            recover(root)
            merge(root, manifest.shards, layout)
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
        merge(root, shards, layout)  # never happens for a run made here; kept for a hand-made one
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
    layout: Layout = RunFiles,
    placement: Placement | None = None,
    publish: Callable[[], None] | None = None,
) -> Outcome:
    """One session of a run on Ray (the driver's side); stops the cluster it started.

    With ``placement`` (remote inputs or output), the workers make their own copies of them on
    their machines; ``publish`` uploads the run's working copy before they start."""
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
        layout=layout,
        budget=budget,
        control=control,
        state=state,
        on_progress=on_progress,
        placement=placement,
        publish=publish,
    )
    try:
        outcome = await with_signals(control, run.run)
    finally:
        sharded.cluster.shutdown()
    if on_progress is not None:
        on_progress(state)
    return outcome
