"""THE run engine: one loop for every long-running command (label, softlabel, arbitrate, ...).

A :class:`Task` says what an item is (its stable key, its part of the output), how one item is
processed with the shared client, and what its success and failure records look like. A
:class:`Store` keeps those records (append-only files that survive ``kill -9``) and says which
keys are done. The engine owns everything else, once:

* a bounded window of items in flight, pulled lazily from the task's stream (constant memory);
  for a task with ``group``, the slices of one conversation in a cache-friendly order (the
  longest first, the others once it is answered) while other items fill the window;
* skipping what is done, retrying what failed before (unless ``retry_failed=False``);
* holding rejections before the first success and stopping the run when the first calls all fail
  for a reason that is the endpoint's (a wrong model or path), without marking those items failed;
* run-level errors (authentication, a dead endpoint, a spent budget, a model without logprobs):
  stop at once, mark nothing failed (a resume picks the items up again);
* the budget: spend over earlier sessions counts, and the run stops when the cap is reached;
* write errors of the store (disk full, read-only, permissions) stop the run with one clear error;
* progress snapshots for a renderer, after each item and on a ticker while nothing finishes;
* cancellation (signals are turned into :meth:`RunControl.interrupt` by the API layer);
* duplicates (:mod:`sftlabel.runs._dedup`): with a ``dedup`` index and a task that says what the
  model sees of an item (:class:`DedupTask`), an item whose content was labeled before gets a
  copy of that result instead of requests.

The engine imports no presentation code and knows nothing of labels or soft labels.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

import anyio
import msgspec

from sftlabel.errors import SftlabelError
from sftlabel.llm import (
    AuthenticationError,
    BudgetExceededError,
    ClientStats,
    LLMClient,
    LLMError,
    RequestTag,
    request_tag,
)
from sftlabel.model import Problem
from sftlabel.runs._dedup import Dedup, digest
from sftlabel.runs._pool import for_each

Status = Literal["completed", "budget", "aborted", "interrupted"]
ItemT = TypeVar("ItemT")
ItemT_contra = TypeVar("ItemT_contra", contravariant=True)

SYSTEMATIC_REJECTIONS = 5
"""Rejections for a reason of the endpoint's before any success that stop a run: a wrong model
name or path, not bad samples. Those items are not written as failures, so a resume retries
them."""

OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT})


class ItemFailed(Exception):
    """An item that could not be processed, for a reason that is its own (its answer is
    unusable, its content was rejected, it is too long): written as a failure with ``reason``.

    ``endpoint_fault`` marks a rejection that may be the endpoint's (unknown model, unsupported
    parameter): those are held until a first success proves the endpoint works.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        endpoint_fault: bool = False,
        monitor: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.endpoint_fault = endpoint_fault
        self.monitor = monitor or {}


class OutputError(SftlabelError):
    """The run's output cannot be written (disk full, read-only file system, permissions)."""

    exit_code = 3


class BudgetReached(SftlabelError):
    """Raised by a task (or the client) when a request would pass ``--max-cost``."""

    exit_code = 3


@dataclass
class Written:
    """What a task made of one item: the records to append, per file name, in its part."""

    records: list[tuple[str, Any]]
    part: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    """Extra counts for the progress display (e.g. ``censored``)."""
    share: Any = None
    """What a duplicate of this item copies (JSON-able; :meth:`DedupTask.duplicate`)."""
    after: Callable[[], None] | None = field(default=None, repr=False)
    """Called by the engine once the records are written."""


class Task(Protocol[ItemT]):
    """What one kind of run does with one item."""

    kind: str

    def items(self, on_problem: Callable[[Problem], None]) -> Iterator[ItemT]:
        """Every item of the run in a deterministic order (input problems go to
        ``on_problem``)."""
        ...

    def key(self, item: ItemT) -> Hashable:
        """The item's stable key (what the store records as done)."""
        ...

    async def process(self, item: ItemT) -> Written:
        """Process one item; raise :class:`ItemFailed` for the item's own failure."""
        ...

    def failure(self, item: ItemT, exc: ItemFailed) -> Written:
        """The records that say the item failed (with its reason)."""
        ...

    # Optional: ``group(item) -> Hashable | None``. Consecutive items with the same key share a
    # prompt prefix (the slices of one conversation): the engine then sends the group's last
    # item first and the others once it is answered, so they find the prefix in the provider's
    # cache (:func:`~sftlabel.runs._pool.for_each`).
    # Optional: ``shard_key(item) -> Hashable``: what decides the item's shard with --engine ray
    # (default: its group, else its key; :mod:`sftlabel.runs._shards`).


class DedupTask(Task[ItemT], Protocol[ItemT]):
    """A task whose duplicate items (same content for the model) are processed once."""

    def content(self, item: ItemT) -> str | bytes:
        """What the model sees of the item (everything of the prompt that is not the same for
        every item of the run), or what it is rendered from: equal contents must mean equal
        prompts."""
        ...

    def duplicate(self, item: ItemT, original: Any, share: Any) -> Written:
        """The records of an item whose content was processed as ``original`` (the key, as
        JSON: a tuple is a list), from that item's ``Written.share``."""
        ...


DUPLICATES = "duplicates"
"""The counter of items written as a copy of an earlier one."""


class Store(Protocol):
    """Where a run's records live."""

    def done(self) -> tuple[set[Hashable], set[Hashable]]:
        """Keys written as succeeded, and keys whose latest record is a failure."""
        ...

    def append(self, name: str, record: Any, part: str = "") -> None: ...

    def problem(self, problem: Problem) -> None: ...

    def close(self) -> None: ...


@dataclass
class RunState:
    """Live counters of a session, for progress displays (``done_before`` and ``spent_before``
    are what earlier sessions did)."""

    kind: str = ""
    total: int | None = None
    done_before: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    """Items that had failed in an earlier session and were tried again."""
    problems: int = 0
    unreadable: int = 0
    """Input problems of severity ``error`` (records that could not be read)."""
    spent_before: float = 0.0
    started: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    client: ClientStats = field(default_factory=ClientStats)
    unavailable_since: float | None = None
    batches: list[dict[str, Any]] = field(default_factory=list)
    """Batch runs: every batch not collected yet (``batch``, ``status``, ``requests``,
    ``counts``, ``in_state`` and ``next_poll`` seconds), set before each progress snapshot."""

    @property
    def done(self) -> int:
        return self.done_before + self.succeeded + self.failed

    @property
    def spent(self) -> float:
        return self.spent_before + self.client.cost

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class Outcome:
    status: Status
    state: RunState
    message: str | None = None


@dataclass
class RunControl:
    """A handle to stop a run from outside (a signal handler, a notebook)."""

    _stop: anyio.Event | None = None
    _scope: anyio.CancelScope | None = None
    reason: str | None = None

    def interrupt(self, reason: str = "interrupted") -> None:
        self.reason = reason
        if self._scope is not None:
            self._scope.cancel()


@dataclass
class Engine(Generic[ItemT]):
    """Runs one task over its items, writing into one store."""

    task: Task[ItemT]
    store: Store
    clients: Sequence[LLMClient]
    concurrency: int
    max_cost: float | None = None
    retry_failed: bool = True
    on_progress: Callable[[RunState], None] | None = None
    tick: float = 1.0
    """Seconds between progress snapshots while nothing finishes."""
    state: RunState = field(default_factory=RunState)
    control: RunControl = field(default_factory=RunControl)
    dedup: Dedup | None = None
    """Duplicates labeled once (for tasks with ``content``/``duplicate``); closed by the run."""
    grouped: bool = True
    """Order a task's prefix groups (see ``Task.group``); off for batch runs, where every
    item of a round is sent together and holding a group's followers back only adds rounds."""

    async def run(self) -> Outcome:
        state = self.state
        state.kind = self.task.kind
        succeeded_keys, failed_keys = self.store.done()
        retry = failed_keys - succeeded_keys if self.retry_failed else set()
        skip = succeeded_keys | (failed_keys - retry)
        state.done_before = len(skip)
        runner = _Runner(self, skip, retry)
        return await runner.run()


class _Runner(Generic[ItemT]):
    def __init__(self, engine: Engine[ItemT], skip: set[Hashable], retry: set[Hashable]) -> None:
        self.engine = engine
        self.task = engine.task
        self.store = engine.store
        self.state = engine.state
        self.skip = skip
        self.retry = retry
        self.stop = anyio.Event()
        self.held: list[tuple[ItemT, ItemFailed]] = []
        self.succeeded_once = False
        self.outcome: Outcome | None = None
        self.output_error: OutputError | None = None
        self._noun = str(getattr(self.task, "noun", "item"))
        self.dedup = engine.dedup if hasattr(self.task, "content") else None

    def _end(self, status: Status, message: str | None) -> None:
        if self.outcome is None:
            self.outcome = Outcome(status=status, state=self.state, message=message)
        self.stop.set()

    def _problem(self, item: Problem) -> None:
        self.state.problems += 1
        if item.severity == "error":
            self.state.unreadable += 1
            name = f"unreadable:{item.code}"
            self.state.counters[name] = self.state.counters.get(name, 0) + 1
        self._write(lambda: self.store.problem(item))

    def _write(self, action: Callable[[], None]) -> None:
        try:
            action()
        except OSError as exc:
            if exc.errno not in OUTPUT_ERRNOS:
                raise
            where = exc.filename or "the output directory"
            self.output_error = OutputError(
                f"cannot write {where}: {exc.strerror or exc}",
                hint="free space or fix the permissions, then continue with --resume",
            )
            self._end("aborted", self.output_error.message)
            self._cancel()

    def _cancel(self) -> None:
        if self.engine.control._scope is not None:
            self.engine.control._scope.cancel()

    def pending(self) -> Iterator[ItemT]:
        for item in self.task.items(self._problem):
            if self.stop.is_set():
                return
            key = self.task.key(item)
            if key in self.skip:
                self.state.skipped += 1
                continue
            if self._over_budget():
                return
            if key in self.retry:
                self.state.retried += 1
            yield item

    def _commit(self, written: Written) -> None:
        for name, record in written.records:
            self.store.append(name, record, written.part)
        if written.after is not None:
            written.after()  # the original is on disk: its duplicates may copy it

    def _fail(self, item: ItemT, exc: ItemFailed) -> None:
        self._write(lambda: self._commit(self.task.failure(item, exc)))
        self.state.failed += 1

    async def handle(self, item: ItemT) -> None:
        state = self.state
        state.in_flight += 1
        # the item's key names its requests (a batch line's custom_id: "<key>#<call>")
        request_tag.set(RequestTag(_tag(self.task.key(item))))
        try:
            written = await self._process(item)
        except ItemFailed as exc:
            if exc.endpoint_fault and not self.succeeded_once:
                self.held.append((item, exc))
                if len(self.held) >= SYSTEMATIC_REJECTIONS:
                    self.held.clear()  # not the items' fault: a resume tries them again
                    self._end(
                        "aborted",
                        f"the first {SYSTEMATIC_REJECTIONS} {self._noun}s were all rejected by "
                        f"the endpoint ({exc.message}); check --model and --base-url",
                    )
                    self._cancel()
            else:
                self._fail(item, exc)
        except SftlabelError as exc:
            if _is_budget(exc):
                self._refresh()
                cap = self.engine.max_cost
                self._end(
                    "budget",
                    f"spent ${self.state.spent:.4f} of --max-cost ${cap:g}: {exc.message}"
                    if cap is not None
                    else exc.message,
                )
            elif isinstance(exc, LLMError) and not _aborts_run(exc):
                # a request error the task did not classify: the item's own failure
                self._fail(item, ItemFailed("request-failed", exc.message))
            else:
                self._end("aborted", exc.message + (f" — {exc.hint}" if exc.hint else ""))
                self._cancel()
        else:
            self._write(lambda: self._commit(written))
            state.succeeded += 1
            for name, count in written.counters.items():
                state.counters[name] = state.counters.get(name, 0) + count
            if not self.succeeded_once:
                self.succeeded_once = True
                held, self.held = self.held, []
                for earlier, failure in held:  # the endpoint works: these are real failures
                    self._fail(earlier, failure)
        finally:
            state.in_flight -= 1
        self._refresh()
        self._over_budget()
        if self.engine.on_progress is not None:
            self.engine.on_progress(state)

    async def _process(self, item: ItemT) -> Written:
        """The task's result for an item, or a copy of its original's (no request) when the
        same content was processed before; the original is recorded once it is written."""
        dedup = self.dedup
        if dedup is None:
            return await self.task.process(item)
        task = cast(DedupTask[ItemT], self.task)
        key = digest(task.content(item))
        found = await dedup.claim(key)
        own = msgspec.to_builtins(task.key(item))
        if found is not None and found[0] != own:
            written = task.duplicate(item, found[0], found[1])
            written.counters[DUPLICATES] = written.counters.get(DUPLICATES, 0) + 1
            return written
        try:
            written = await task.process(item)
        except BaseException:
            dedup.release(key)  # a waiting duplicate is processed as its own item
            raise
        if written.share is None:
            dedup.release(key)
        else:
            share = written.share
            written.after = lambda: dedup.done(key, own, share)
        return written

    def _over_budget(self) -> bool:
        """Whether the run's spend (every session) reached the cap; ends the run if so."""
        cap = self.engine.max_cost
        if cap is None:
            return False
        self._refresh()
        spent = self.state.spent
        if spent >= cap and not self.stop.is_set():
            self._end("budget", f"spent ${spent:.4f}, reaching --max-cost ${cap:g}")
        return spent >= cap

    def _refresh(self) -> None:
        clients = self.engine.clients
        self.state.client = sum_stats([c.stats for c in clients])
        since = [
            s for s in (getattr(c, "unavailable_since", None) for c in clients) if s is not None
        ]
        self.state.unavailable_since = min(since) if since else None

    async def ticker(self) -> None:
        callback = self.engine.on_progress
        if callback is None:
            return
        while True:
            await anyio.sleep(self.engine.tick)
            self._refresh()
            callback(self.state)

    async def run(self) -> Outcome:
        control = self.engine.control
        try:
            with anyio.CancelScope() as scope:
                control._scope = scope
                if control.reason is not None:  # interrupted before it started
                    scope.cancel()
                async with anyio.create_task_group() as group:
                    group.start_soon(self.ticker)
                    await for_each(
                        self.pending(),
                        self.handle,
                        concurrency=self.engine.concurrency,
                        group=getattr(self.task, "group", None) if self.engine.grouped else None,
                        stop=self.stop,
                    )
                    group.cancel_scope.cancel()
            ended = self.outcome is None and control.reason is None
            if ended or (self.outcome is not None and self.outcome.status == "budget"):
                held, self.held = self.held, []
                for item, failure in held:  # ended before any success: still failures
                    self._fail(item, failure)
        finally:
            control._scope = None
            self._refresh()
            if self.engine.dedup is not None:
                self._write(self.engine.dedup.close)
            self._write(self.store.close)
        if self.output_error is not None:
            raise self.output_error
        if self.outcome is None and control.reason is not None:
            self.outcome = Outcome(status="interrupted", state=self.state, message=control.reason)
        if self.outcome is None:
            self.outcome = Outcome(status="completed", state=self.state)
        if self.engine.on_progress is not None:
            self.engine.on_progress(self.state)
        return self.outcome


def _tag(key: Hashable) -> str:
    if isinstance(key, tuple):
        return ":".join(str(part) for part in key)
    return str(key)


def _is_budget(exc: SftlabelError) -> bool:
    """The cap is reached: the client refused to send a request whose worst-case cost does not
    fit what is left (nothing was sent; the item stays pending for a resume)."""
    return isinstance(exc, BudgetReached | BudgetExceededError)


def _aborts_run(exc: LLMError) -> bool:
    """Run-level errors of the client (authentication, a dead endpoint, a spent budget, no
    logprobs) stop the run; they carry exit code 3."""
    return isinstance(exc, AuthenticationError) or exc.exit_code == 3


def sum_stats(stats: list[ClientStats]) -> ClientStats:
    """The totals of several clients (or of the shards of a run)."""
    if len(stats) == 1:
        return stats[0]
    total = ClientStats()
    for each in stats:
        for name in (
            "calls",
            "requests",
            "cache_hits",
            "succeeded",
            "failed",
            "retries",
            "rate_limited",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
        ):
            setattr(total, name, getattr(total, name) + getattr(each, name))
        total.cost += each.cost
        total.cost_known = total.cost_known and each.cost_known
        total.latency_total += each.latency_total
        total.peak_concurrency = max(total.peak_concurrency, each.peak_concurrency)
        for status, count in each.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + count
    return total
