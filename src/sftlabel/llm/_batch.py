"""A batch transport under the LLM client: requests go into batch files instead of out.

With ``client.batch = BatchTransport(...)``, :meth:`LLMClient.chat` hands every request that
misses the cache to the transport instead of sending it. Tasks run unchanged: the transport
collects the requests of every item in flight, and once no new request came for ``settle``
seconds (every item waits for an answer: one round) it writes them into batch files (split to
the provider's limits), records each in the run's journal before every step, uploads and
submits them, polls, and puts the answers of the output file into the same response cache and
parse path as online answers. The next round (call 2, arbitration, repairs) follows by itself.

A line is answered only when its ``status_code`` is 2xx and its body parses as a completion.
A 4xx line (``"error": null`` with ``status_code`` 400 included) and an error-file line are the
request's failure with the provider's reason (:class:`RequestRejectedError`); lines of an
expired, failed or cancelled batch that got no answer, and 429/5xx lines, are submitted again
(only those), at most ``max_attempts`` times. On a resume, a request whose key is in a batch of
the journal that was not collected yet waits for that batch instead of being submitted again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import msgspec

from sftlabel.llm._batchapi import (
    MAX_FILE_BYTES,
    TERMINAL,
    BatchAPI,
    BatchRecord,
    ExportAPI,
    Journal,
    now,
)
from sftlabel.llm._batchfiles import (
    KEYS,
    REQUESTS,
    parse_line,
    put_all,
    request_tag,
    write_files,
)
from sftlabel.llm._budget import Budget, Reservation
from sftlabel.llm._config import ChatRequest, ChatResult, accepts
from sftlabel.llm._errors import (
    BudgetExceededError,
    LLMError,
    RequestRejectedError,
    RetriesExhaustedError,
)
from sftlabel.llm._estimate import estimate_tokens
from sftlabel.llm._http import cut, error_detail, parse_completion, rejection_cause

if TYPE_CHECKING:
    from sftlabel.llm._client import LLMClient

RETRY_LINE = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
REQUEUE_CODES = frozenset({"batch_expired", "batch_cancelled", "server_error", "rate_limit"})


@dataclass
class BatchOptions:
    directory: Path
    """Where the journal and the batch files live (inside the run directory)."""
    poll_interval: float = 30.0
    settle: float = 2.0
    """Seconds without a new request after which the waiting requests form a batch."""
    max_requests: int | None = None
    """Requests per batch file (default: the provider's limit)."""
    max_bytes: int = MAX_FILE_BYTES
    prefix: str = "b"
    on_event: Callable[[str], None] | None = None
    on_waiting: Callable[[str], None] | None = None
    """Self-hosted export: called once every request waits for an output file to import (the
    run then stops; ``--batch-import`` continues it)."""


@dataclass
class _Pending:
    request: ChatRequest | None
    """None for a request of an earlier session's batch, until it is made again."""
    body: bytes
    custom_id: str
    waiters: list[_Waiter] = field(default_factory=list)
    attempts: int = 0


class _Waiter:
    __slots__ = ("accept", "done", "error", "result")

    def __init__(self, accept: Callable[[ChatResult], bool] | None) -> None:
        self.accept = accept
        self.done = anyio.Event()
        self.result: ChatResult | None = None
        self.error: LLMError | None = None


class BatchTransport:
    """Batches for one client (one model); see the module docstring."""

    def __init__(
        self,
        client: LLMClient,
        options: BatchOptions,
        *,
        budget: Budget | None = None,
        api: BatchAPI | ExportAPI | None = None,
    ) -> None:
        if client.cache is None:
            raise LLMError("batch runs need the response cache (drop --no-cache)")
        self.client = client
        self.options = options
        self.budget = budget
        self.api = api or BatchAPI(client.config, transport=client.transport)
        self.journal = Journal(options.directory)
        limit = self.api.max_requests
        self.max_requests = min(options.max_requests or limit, limit)
        self.queue: dict[str, _Pending] = {}
        self.live: dict[str, _Pending] = {}  # key -> the request, while its batch runs
        self.owner: dict[str, str] = {}  # key -> local id of the batch holding it
        self.reservations: dict[str, Reservation] = {}
        self.last_enqueued = 0.0
        self.next_poll: dict[str, float] = {}
        self.wake = anyio.Event()
        self.error: LLMError | None = None
        for record in self.journal.live():
            self._adopt(record)

    # the client's side ------------------------------------------------------------------

    async def request(
        self,
        request: ChatRequest,
        body: bytes,
        key: str,
        accept: Callable[[ChatResult], bool] | None,
    ) -> ChatResult:
        """The answer of ``request`` from a batch (one of the journal's, or a new one)."""
        if self.error is not None:
            raise self.error
        waiter = _Waiter(accept)
        pending = self.live.get(key) or self.queue.get(key)
        if pending is None:
            tag = request_tag.get()
            custom_id = tag.next_id() if tag is not None else f"req-{len(self.queue) + 1}"
            pending = self.queue[key] = _Pending(request, body, custom_id)
            self.last_enqueued = anyio.current_time()
            self.wake.set()
        elif pending.request is None:  # adopted from the journal: the request is known now
            pending.request, pending.body = request, body
        pending.waiters.append(waiter)
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.result is not None
        return waiter.result

    # the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Submit rounds and collect batches until cancelled (run it beside the engine)."""
        options = self.options
        step = max(min(options.settle, options.poll_interval) / 4, 0.005)
        try:
            await self._loop(step)
        except LLMError as exc:  # the batch endpoints failed: every caller gets the error
            self.error = exc
            for pending in [*self.queue.values(), *self.live.values()]:
                self._fail(pending, exc)
            self.queue.clear()

    async def _loop(self, step: float) -> None:
        options = self.options
        await self._resubmit_unsent()
        while True:
            with anyio.move_on_after(step):
                await self.wake.wait()
            self.wake = anyio.Event()
            clock = anyio.current_time()
            if self.queue and (
                clock - self.last_enqueued >= options.settle or len(self.queue) >= self.max_requests
            ):
                await self._submit_queue()
            for local in list(self.next_poll):
                if self.next_poll.get(local, math.inf) <= anyio.current_time():
                    await self._poll(self.journal.records[local])
            self._check_waiting()

    def _check_waiting(self) -> None:
        """Export mode: every request waits for an import; say which files to run."""
        callback = self.options.on_waiting
        if callback is None or self.queue or not self.live:
            return
        if anyio.current_time() - self.last_enqueued < self.options.settle:
            return
        records = self.journal.live()
        if not records or any(r.status != "exported" for r in records):
            return
        self.options.on_waiting = None  # once
        callback("waiting for the output of " + ", ".join(str(r.file_id) for r in records))

    def snapshot(self) -> list[dict[str, Any]]:
        """Every batch not collected yet: state, counts, seconds in the state, next poll."""
        clock, wall = anyio.current_time(), now()
        return [
            {
                "batch": r.batch_id or r.local,
                "status": r.status,
                "requests": r.requests,
                "counts": dict(r.counts),
                "in_state": round(wall - r.entered, 1) if r.entered else 0.0,
                "next_poll": round(max(self.next_poll.get(r.local, clock) - clock, 0.0), 1),
            }
            for r in self.journal.live()
        ]

    @property
    def waiting(self) -> int:
        """Batches of this run still running at the provider (none for exported files)."""
        if getattr(self.api, "offline", False):
            return 0
        return sum(1 for r in self.journal.live() if r.batch_id is not None)

    async def cancel_all(self) -> int:
        """Cancel every batch of the journal still running; returns how many."""
        count = 0
        for record in self.journal.live():
            if record.batch_id is not None and record.status not in TERMINAL:
                answer = await self.api.cancel(record.batch_id)
                self._state(record, answer)
                count += 1
        return count

    async def aclose(self) -> None:
        await self.api.aclose()

    # submitting -------------------------------------------------------------------------

    def _adopt(self, record: BatchRecord) -> None:
        """A batch of an earlier session: its keys wait for it (nothing is sent again)."""
        for custom_id, key, _model, _logprobs in self._keys(record):
            pending = _Pending(None, b"", custom_id)
            self.live[key] = pending
            self.owner[key] = record.local
        if self.budget is not None and record.reserved:
            self.reservations[record.local] = self.budget.commit(record.reserved)
        if record.batch_id is not None:
            self.next_poll[record.local] = 0.0

    async def _resubmit_unsent(self) -> None:
        """Batches prepared or uploaded by an earlier session but not known as submitted."""
        for record in self.journal.live():
            if record.batch_id is None:
                await self._send(record)

    def _event(self, text: str) -> None:
        if self.options.on_event is not None:
            self.options.on_event(text)

    def _worst(self, request: ChatRequest) -> float:
        prompt = estimate_tokens(request)
        cost = self.client.config.prices.cost(
            request.model, prompt, request.max_tokens or 4096, batch=True
        )
        return cost or 0.0

    async def _submit_queue(self) -> None:
        queue, self.queue = self.queue, {}
        chunk: list[tuple[str, _Pending, bytes]] = []
        size = 0
        reserved = 0.0
        for key, pending in queue.items():
            line = self._line(pending)
            full = len(chunk) >= self.max_requests or size + len(line) > self.options.max_bytes
            if chunk and full:
                await self._prepare(chunk, reserved)
                chunk, size, reserved = [], 0, 0.0
            if self.budget is not None and pending.request is not None:
                worst = self._worst(pending.request)
                if worst > self.budget.remaining - reserved + 1e-12:
                    self._fail(
                        pending,
                        BudgetExceededError(
                            f"budget reached: ${self.budget.spent:.4f} spent and "
                            f"${self.budget.reserved + reserved:.4f} reserved of "
                            f"${self.budget.cap:.4f}; a batch request may cost up to "
                            f"${worst:.4f}",
                            hint="raise --max-cost to go on (a --resume continues)",
                        ),
                    )
                    continue
                reserved += worst
            chunk.append((key, pending, line))
            size += len(line)
        if chunk:
            await self._prepare(chunk, reserved)

    def _line(self, pending: _Pending) -> bytes:
        body = pending.body
        if self.api.azure:  # Azure: the deployment name is the model of every line
            data = msgspec.json.decode(body)
            data["model"] = self.client.config.azure_deployment
            body = msgspec.json.encode(data)
        head = msgspec.json.encode(
            {"custom_id": pending.custom_id, "method": "POST", "url": self.api.endpoint}
        )
        return head[:-1] + b',"body":' + body + b"}\n"

    async def _prepare(self, chunk: list[tuple[str, _Pending, bytes]], reserved: float) -> None:
        journal = self.journal
        local = journal.next_local(self.options.prefix)
        name = f"{local}{REQUESTS}"
        data = b"".join(line for _, _, line in chunk)
        keys = b"".join(
            msgspec.json.encode(
                [
                    p.custom_id,
                    key,
                    p.request.model if p.request else "",
                    bool(p.request and p.request.logprobs),
                ]
            )
            + b"\n"
            for key, p, _ in chunk
        )
        await anyio.to_thread.run_sync(write_files, journal.directory, name, data, keys)
        if self.budget is not None and reserved:
            self.reservations[local] = self.budget.commit(reserved)
        journal.record(
            local,
            event="prepared",
            file=name,
            requests=len(chunk),
            bytes=len(data),
            reserved=reserved,
            status="prepared",
            entered=now(),
        )
        for key, pending, _ in chunk:
            pending.attempts += 1
            self.live[key] = pending
            self.owner[key] = local
        self.client.stats.requests += len(chunk)
        await self._send(journal.records[local])

    async def _send(self, record: BatchRecord) -> None:
        """Upload and create ``record``'s batch, journaling each step before the next."""
        metadata = {"sftlabel_run": self.journal.run_id, "sftlabel_batch": record.local}
        if record.file_id is not None:
            found = await self.api.find(metadata)  # created before a kill, not journaled
            if found is not None:
                self._submitted(record, found)
                return
        else:
            data = (self.journal.directory / record.file).read_bytes()
            file_id = await self.api.upload(f"{record.local}.jsonl", data)
            self.journal.record(record.local, file_id=file_id)
        assert record.file_id is not None
        answer = await self.api.create(record.file_id, metadata)
        self._submitted(record, answer)

    def _submitted(self, record: BatchRecord, answer: dict[str, Any]) -> None:
        self.journal.record(
            record.local,
            batch_id=str(answer["id"]),
            status=str(answer.get("status", "validating")),
            entered=now(),
        )
        self._event(f"batch {record.batch_id}: {record.requests} requests submitted")
        self.next_poll[record.local] = anyio.current_time() + self.options.poll_interval
        self._state(record, answer)

    # polling and collecting -------------------------------------------------------------

    def _state(self, record: BatchRecord, answer: dict[str, Any]) -> None:
        status = str(answer.get("status") or record.status)
        counts = {k: int(v) for k, v in (answer.get("request_counts") or {}).items()}
        if status != record.status or counts != record.counts:
            changes: dict[str, Any] = {"status": status, "counts": counts}
            if status != record.status:
                changes["entered"] = now()
                self._event(f"batch {record.batch_id}: {status} {counts}")
            self.journal.record(record.local, **changes)

    async def _poll(self, record: BatchRecord) -> None:
        assert record.batch_id is not None
        answer = await self.api.get(record.batch_id)
        self._state(record, answer)
        if record.status in TERMINAL:
            self.next_poll.pop(record.local, None)
            await self._collect(record, answer)
        else:
            self.next_poll[record.local] = anyio.current_time() + self.options.poll_interval

    async def _collect(self, record: BatchRecord, answer: dict[str, Any]) -> None:
        keys = {row[0]: row[1:] for row in self._keys(record)}
        seen: set[str] = set()
        answered = failed = 0
        cache = self.client.cache
        assert cache is not None
        puts: list[tuple[str, str, bytes]] = []
        outcomes: list[tuple[str, ChatResult | LLMError, bytes]] = []
        for file_field in ("output_file_id", "error_file_id"):
            file_id = answer.get(file_field)
            if not file_id:
                continue
            for line in (await self.api.content(str(file_id))).splitlines():
                parsed = parse_line(line)
                if parsed is None or parsed[0] not in keys:
                    continue
                custom_id, status, raw, error = parsed
                key, model, logprobs = keys[custom_id]
                outcome = self._outcome(model, status, raw, error, logprobs=logprobs)
                if outcome is None:
                    continue  # to be sent again
                seen.add(key)
                if isinstance(outcome, ChatResult):
                    answered += 1
                    if self._usable(key, outcome):
                        puts.append((key, model, raw))
                    self.client._account(outcome)  # paid now, whoever waits for it
                    if self.budget is not None:
                        self.budget.charge(outcome.cost or 0.0)
                else:
                    failed += 1
                outcomes.append((key, outcome, raw))
        # durable first: every paid answer is in the cache before the batch counts collected
        await anyio.to_thread.run_sync(put_all, cache, puts)
        reservation = self.reservations.pop(record.local, None)
        if reservation is not None and self.budget is not None:
            self.budget.release(reservation)
        for key, outcome, raw in outcomes:
            self._resolve(key, outcome, raw)
        retry: list[tuple[str, _Pending]] = []
        for key, *_ in keys.values():
            if key in seen or self.owner.get(key) != record.local:
                continue
            pending = self.live.pop(key, None)
            self.owner.pop(key, None)
            if pending is not None and pending.waiters and pending.request is not None:
                retry.append((key, pending))
        errors = (answer.get("errors") or {}).get("data") or []
        problems = [str(e.get("message", e)) for e in errors]
        self.journal.record(
            record.local,
            collected=True,
            answered=answered,
            failed=failed,
            retried=len(keys) - answered - failed,
            errors=problems,
        )
        self._event(
            f"batch {record.batch_id} {record.status}: {answered} answered, {failed} failed, "
            f"{len(keys) - answered - failed} to send again"
        )
        for key, pending in retry:
            if pending.attempts >= self.client.config.max_attempts:
                detail = "; ".join(problems) or f"batch {record.status}"
                error = f"no answer after {pending.attempts} batches: {detail}"
                self._fail(pending, RetriesExhaustedError(error))
            else:
                self.queue[key] = pending
                self.last_enqueued = anyio.current_time()

    def _outcome(
        self, model: str, status: int | None, raw: bytes, error: Any, *, logprobs: bool = False
    ) -> ChatResult | LLMError | None:
        """An answer, the request's failure, or None (send it again)."""
        if status is None:  # an error-file line
            code = str(error.get("code") or "") if isinstance(error, dict) else ""
            message = str(error.get("message") or "") if isinstance(error, dict) else str(error)
            if code in REQUEUE_CODES:
                return None
            return RequestRejectedError(
                f"batch line failed: {cut(message)}" + (f" [{code}]" if code else ""),
                cause=rejection_cause(400, message, code),
            )
        if 200 <= status < 300:
            try:
                result = parse_completion(raw, model, self.client.config.prices)
            except LLMError:
                return None  # a 2xx that is not a completion: not an answer
            if logprobs and not result.logprobs:  # never read as a silent 0.5
                return RequestRejectedError(
                    f"batch line {status} answered without the logprobs it asked for",
                    status=status,
                    cause="content",
                )
            result.cost = self.client.config.prices.cost(
                model,
                result.prompt_tokens,
                result.completion_tokens,
                result.cached_tokens,
                batch=True,
            )
            return result
        if status in RETRY_LINE:
            return None
        text, code = error_detail(raw)
        cause = rejection_cause(status, text, code)
        reason = f" [{code}]" if code else ""
        return RequestRejectedError(f"{status} {cut(text)}{reason}", status=status, cause=cause)

    def _resolve(self, key: str, outcome: ChatResult | LLMError, raw: bytes) -> None:
        pending = self.live.pop(key, None)
        self.owner.pop(key, None)
        if pending is None:
            return
        first = True
        for waiter in pending.waiters:
            if isinstance(outcome, LLMError):
                waiter.error = outcome
                self.client.stats.failed += 1
            elif first:
                waiter.result = outcome
                first = False
            else:
                waiter.result = msgspec.structs.replace(outcome, shared=True, cost=0.0)
            waiter.done.set()

    def _usable(self, key: str, result: ChatResult) -> bool:
        """Cache an answer unless every caller waiting for it refuses it (``accept``); an
        answer nobody waits for yet (a batch of an earlier session) is cached: it is paid."""
        pending = self.live.get(key)
        waiters = pending.waiters if pending is not None else []
        return not waiters or any(accepts(w.accept, result) for w in waiters)

    def _fail(self, pending: _Pending, error: LLMError) -> None:
        for waiter in pending.waiters:
            waiter.error = error
            waiter.done.set()
        self.client.stats.failed += len(pending.waiters)

    def _keys(self, record: BatchRecord) -> list[tuple[str, str, str, bool]]:
        """``(custom_id, cache key, model, asks for logprobs)`` of every line of a batch."""
        path = self.journal.directory / (record.file.removesuffix(REQUESTS) + KEYS)
        rows: list[tuple[str, str, str, bool]] = []
        for line in path.read_bytes().splitlines():
            custom_id, key, model, logprobs = msgspec.json.decode(line)
            rows.append((str(custom_id), str(key), str(model), bool(logprobs)))
        return rows
