"""The one OpenAI-compatible chat-completions client every command shares.

Raw httpx (no SDK): a connect timeout, a read timeout sized to the request, a connection pool
sized to the concurrency, keep-alive. The retry loop is our own (see docs/performance.md):

* a 429 never uses up an attempt: the request waits the server's ``Retry-After`` /
  ``retry-after-ms`` (else its own backoff), with jitter, holding no concurrency slot, and the
  request rate is learned from the 429s (or set from ``x-ratelimit-*`` headers / ``--rpm``);
* failures of the endpoint's across requests (an outage) open a run-wide circuit: one probe at
  a time, with backoff, until it answers, and they never count against a request; a request
  fails only for reasons of its own (it keeps failing while others get answers, or it is
  rejected);
* a dead endpoint, or no progress for ``max_unavailable`` seconds, raises
  :class:`EndpointUnavailableError` to every caller.

Identical requests in flight together are sent once (single flight); answers are cached in
SQLite (off the event loop) when the caller's ``accept`` says they are usable.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.to_thread
import httpx
import msgspec

from sftlabel._version import __version__
from sftlabel.errors import ConfigError
from sftlabel.llm._budget import Budget, Reservation
from sftlabel.llm._cache import ResponseCache, cache_key
from sftlabel.llm._circuit import Health, backoff
from sftlabel.llm._config import (
    ChatRequest,
    ChatResult,
    ClientConfig,
    ClientStats,
    accepts,
    redact_url,
    url_secrets,
)
from sftlabel.llm._errors import (
    AuthenticationError,
    LLMError,
    RequestRejectedError,
    RetriesExhaustedError,
    RetryableError,
)
from sftlabel.llm._estimate import estimate_tokens
from sftlabel.llm._http import (
    RETRY_STATUSES,
    cut,
    describe_transport,
    error_detail,
    parse_completion,
    rejection_cause,
    retry_after,
    transport_kind,
)
from sftlabel.llm._limits import SYSTEM_CLOCK, AdaptiveLimiter, Clock, RateLearner, TokenBucket
from sftlabel.llm._pacing import Pacer
from sftlabel.llm._transport import AsyncioTransport, env_proxy, post

if TYPE_CHECKING:
    from sftlabel.llm._batch import BatchTransport

RECHECK = 0.05
"""A request that waited longer than this (seconds) for its turn looks in the cache again."""
SLOW_START = 8
"""Concurrency a client opens with; it doubles every round trip until a 429 or --concurrency."""
SHARD_CONNECTIONS = 2
"""Connections per httpx pool (see LLMClient.__init__)."""

_request_encoder = msgspec.json.Encoder()


class _Flight:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: ChatResult | None = None
        self.error: LLMError | None = None


class _CallState:
    __slots__ = ("attempts", "checked", "forbidden", "id", "rate_limited")

    def __init__(self, ident: int, checked: float) -> None:
        self.id = ident
        self.checked = checked  # when the cache was last looked at
        self.attempts = 0
        self.rate_limited = 0
        self.forbidden = False


class LLMClient:
    """Async OpenAI-compatible client. Use as ``async with LLMClient(config) as client``.

    ``budget``: a :class:`Budget` (it may be shared by several clients) that every HTTP
    attempt reserves its worst-case cost from; ``clock``: monotonic time and sleep (tests).
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        budget: Budget | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.batch: BatchTransport | None = None
        """With a batch transport, requests that miss the cache go into batches
        (:mod:`sftlabel.llm._batch`) instead of being sent one by one."""
        self.clock = clock or SYSTEM_CLOCK
        self.url = config.endpoint()
        self._url = httpx.URL(self.url)  # parsed once: httpx parses a str on every request
        self.display_url = redact_url(self.url)
        """The endpoint without credentials: what to show and record."""
        if budget is not None and config.prices.lookup(config.model) is None:
            raise ConfigError(
                f"a budget needs the price of model {config.model!r}",
                hint="pass --prices FILE with its input/output USD per million tokens",
            )
        self.budget = budget
        self.stats = ClientStats()
        self._statuses: Counter[str] = Counter()
        self.limiter = AdaptiveLimiter(
            config.concurrency, adaptive=config.adaptive, initial=SLOW_START, clock=self.clock
        )
        self.health = Health(
            clock=self.clock,
            concurrency=config.concurrency,
            dead_after=config.dead_after,
            # a request may take `timeout`: no lack of progress before that
            max_unavailable=max(config.max_unavailable, config.timeout),
            describe=self.display_url.split("?", 1)[0],
        )
        self.pacer = Pacer(config, self.clock, self.health)
        self.cache = ResponseCache(config.cache_path) if config.cache_path else None
        self._flights: dict[str, _Flight] = {}
        self._ids = itertools.count()
        self._secrets = [v for v in config.headers.values() if len(v) >= 8]
        if config.api_key:
            self._secrets.append(config.api_key.reveal())
        self._secrets += url_secrets(self.url)
        headers = {
            "User-Agent": f"sftlabel/{__version__}",
            "Content-Type": "application/json",
            **config.headers,
            **config.auth_headers(),
        }
        # Many small pools instead of one big one: httpcore's pool does work quadratic in its
        # connection count on every request (encode/httpcore#1035), which makes a single pool
        # of 100 connections CPU-bound at ~50 requests/s. Pools of 2 connections are the
        # cheapest per request (at --concurrency 400: 8 connections per pool cost ~25% more
        # CPU per sample; 1 is no cheaper than 2; bench/label_cpu.py).
        shards = max(1, math.ceil(config.concurrency / SHARD_CONNECTIONS))
        per_shard = math.ceil(config.concurrency / shards)
        # httpx's own default context (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), built once for
        # every shard instead of once per shard (~50 ms each)
        tls = httpx.create_ssl_context()
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        # httpcore on asyncio sockets (sftlabel.llm._transport): ~20% less CPU per sample;
        # not with a proxy from the environment (httpx honours those only with its own)
        own = transport is None and not env_proxy(self._url)
        self._transports: list[httpx.AsyncBaseTransport | None] = [
            AsyncioTransport(verify=tls, limits=limits) if own else transport for _ in range(shards)
        ]
        self._shards = [
            httpx.AsyncClient(
                verify=tls,
                headers=headers,
                timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
                limits=limits,
                follow_redirects=False,  # never carry the key to another host
                transport=shard_transport,
            )
            for shard_transport in self._transports
        ]
        self._plain = self._transports[0] is not None and not self._url.userinfo
        """No proxy, no URL credentials: chat requests skip httpx's client layer (post)."""
        self._shard_load = [0] * shards

    @property
    def http(self) -> httpx.AsyncClient:
        """An httpx client with this endpoint's headers (for side endpoints such as tokenize)."""
        return self._shards[0]

    @property
    def rpm(self) -> TokenBucket | None:
        """The request bucket (``--rpm`` or ``x-ratelimit-limit-requests``), if any."""
        return self.pacer.rpm

    @property
    def tpm(self) -> TokenBucket | None:
        return self.pacer.tpm

    @property
    def learner(self) -> RateLearner | None:
        """The request rate learned from 429s (when no limit is known)."""
        return self.pacer.learner

    @property
    def unavailable_since(self) -> float | None:
        """Wall-clock epoch seconds since when the endpoint is unavailable (the circuit is
        open), None when it answers."""
        return self.health.unavailable_since

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()
        if self.cache is not None:
            await anyio.to_thread.run_sync(self.cache.close)  # flushes the writer thread

    def request(self, messages: list[dict[str, Any]], **params: Any) -> ChatRequest:
        """A request for this client's model (``params``: temperature, max_tokens ...); for an
        Anthropic-family model the static prefix gets a ``cache_control`` breakpoint."""
        model = params.pop("model", None) or self.config.model
        if wants_cache_control(model, self.config.cache_control):
            messages = with_cache_control(messages)
        return ChatRequest(model=model, messages=messages, **params)

    async def chat(
        self,
        request: ChatRequest,
        *,
        use_cache: bool = True,
        accept: Callable[[ChatResult], bool] | None = None,
    ) -> ChatResult:
        """Send one chat completion, retrying what is worth retrying; answers may come from the
        cache or from an identical request in flight. The answer is cached only when
        ``accept(result)`` is true (default: always). Raises :class:`RequestRejectedError`,
        :class:`AuthenticationError`, :class:`RetriesExhaustedError`,
        :class:`EndpointUnavailableError` or :class:`BudgetExceededError`."""
        self.stats.calls += 1
        body = _request_encoder.encode(request)
        key = cache_key(self.display_url, body)
        caching = use_cache and self.cache is not None
        if caching:
            cached = await self._cached(key, request)
            if cached is not None:
                return cached
        if self.batch is not None:
            return await self.batch.request(request, body, key, accept)
        if not use_cache:
            return await self._call(request, body, None, accept)
        while (flight := self._flights.get(key)) is not None:
            await flight.done.wait()
            if flight.result is not None:
                self.stats.coalesced += 1
                self.stats.succeeded += 1
                return msgspec.structs.replace(
                    flight.result,
                    shared=True,
                    cost=None if flight.result.cost is None else 0.0,
                    attempts=0,
                    rate_limited=0,
                )
            if flight.error is not None:
                self.stats.failed += 1
                raise flight.error
        flight = self._flights[key] = _Flight()
        try:
            flight.result = await self._call(request, body, key if caching else None, accept)
        except LLMError as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.set()
        return flight.result

    async def _cached(self, key: str, request: ChatRequest) -> ChatResult | None:
        assert self.cache is not None
        # a batch run asks for every request of a round at once: a point read in the event loop
        # (tens of microseconds) instead of a thread hop each (milliseconds on a busy machine)
        raw = self.cache.get(key) if self.batch is not None else await self.cache.aget(key)
        if raw is None:
            return None
        try:
            result = parse_completion(raw, request.model, self.config.prices)
        except LLMError:
            return None  # an unusable entry of an older version: ask again
        result.from_cache = True
        result.cost = 0.0
        self.stats.cache_hits += 1
        self.stats.succeeded += 1
        return result

    async def _call(
        self,
        request: ChatRequest,
        body: bytes,
        key: str | None,
        accept: Callable[[ChatResult], bool] | None,
    ) -> ChatResult:
        state = _CallState(next(self._ids), self.clock.now())
        self.health.enter()
        try:
            answer = await self._send(request, body, key, state)
        except LLMError:
            self.stats.failed += 1
            raise
        finally:
            self.health.leave()
            self.stats.retries += max(state.attempts - 1, 0)
            self.stats.rate_limited += state.rate_limited
            self.stats.peak_concurrency = self.limiter.peak
            self.stats.statuses = dict(self._statuses)
            self.stats.unavailable_seconds = self.health.unavailable_total
        if isinstance(answer, ChatResult):
            return answer  # the cache, checked again right before sending
        result, raw = answer
        if key is not None and self.cache is not None:
            if accepts(accept, result):
                await self.cache.aput(key, request.model, raw)
            else:
                self.stats.not_cached += 1
        self._account(result)
        return result

    async def _send(
        self, request: ChatRequest, body: bytes, key: str | None, state: _CallState
    ) -> tuple[ChatResult, bytes] | ChatResult:
        estimated: list[int] = []

        def tokens() -> int:
            """The request's token estimate, counted once and only when a TPM bucket or a
            budget needs it (counting a long prompt with tiktoken is the costliest step)."""
            if not estimated:
                estimated.append(estimate_tokens(request) + (request.max_tokens or 0))
            return estimated[0]

        own_failures = 0
        rate_steps = 0
        timeouts = 0
        while True:
            probe = await self.health.admit()
            try:
                return await self._try_once(
                    request, body, key, state, tokens=tokens, timeouts=timeouts, probe=probe
                )
            except RetryableError as exc:
                if exc.kind == "rate":
                    self.health.on_rate_limited(probe)
                    state.rate_limited += 1
                    self.pacer.on_rate_limited()
                    self.limiter.slow_start = False  # the rate is learned, not the concurrency
                    # the server's Retry-After when it gives one (growing our own wait past
                    # it would idle the run long after a storm ends), else our own backoff
                    if exc.retry_after:
                        wait = min(exc.retry_after, self.config.retry_after_cap)
                    else:
                        wait = backoff(rate_steps, initial=0.25, maximum=10.0)
                    rate_steps += 1
                    await self.health.sleep(wait * random.uniform(1.0, 1.2))
                    continue
                if exc.kind == "forbidden":
                    own_failures += 1
                else:
                    self.health.on_failure(state.id, exc.kind, exc.message, probe)
                    if not self.health.open:
                        own_failures += 1  # no outage (the circuit is closed): its own
                if exc.kind == "timeout":
                    timeouts += 1
                    self.pacer.on_timeout(timeouts)
                if own_failures >= self.config.max_attempts:
                    raise RetriesExhaustedError(
                        f"gave up after {state.attempts} attempts: {exc.message}",
                        status=exc.status,
                    ) from None
                if self.health.open:
                    continue  # admit() waits for the circuit
                wait = backoff(state.attempts - 1)
                if exc.retry_after is not None:
                    wait = max(wait, min(exc.retry_after, self.config.retry_after_cap))
                await self.health.sleep(wait * random.uniform(1.0, 1.25))
            finally:
                if probe:
                    self.health.end_probe()

    async def _try_once(
        self,
        request: ChatRequest,
        body: bytes,
        key: str | None,
        state: _CallState,
        *,
        tokens: Callable[[], int],
        timeouts: int,
        probe: bool,
    ) -> tuple[ChatResult, bytes] | ChatResult:
        # The slot first, then the rate: a request that got its slot is paced by the rate
        # known *now* (waiting for a bucket token in a slot is not a backoff)
        async with self.limiter:
            await self.pacer.wait(tokens() if self.pacer.tpm is not None else 0)
            if key is not None and (state.attempts or self.clock.now() - state.checked > RECHECK):
                # another process may have stored it while this one waited: look again
                hit = await self._cached(key, request)
                if hit is not None:
                    return hit
            reservation = self._reserve(request, tokens()) if self.budget is not None else None
            self.health.started()
            state.attempts += 1
            try:
                result, raw = await self._attempt(request, body, state, timeouts)
            except BaseException:
                if reservation is not None and self.budget is not None:
                    self.budget.release(reservation)
                raise
        if reservation is not None and self.budget is not None:
            self.budget.settle(reservation, result.cost or 0.0)
        self.health.on_success(probe)
        self.limiter.on_success()
        self.pacer.observe(request.max_tokens, result.latency)
        return result, raw

    def _reserve(self, request: ChatRequest, tokens: int) -> Reservation | None:
        if self.budget is None:
            return None
        prompt = tokens - (request.max_tokens or 0)
        worst = self.config.prices.cost(request.model, prompt, request.max_tokens or 4096)
        return self.budget.reserve(worst or 0.0)

    async def _attempt(
        self, request: ChatRequest, body: bytes, state: _CallState, timeouts: int
    ) -> tuple[ChatResult, bytes]:
        config = self.config
        read = self.pacer.read_timeout(request.max_tokens, timeouts)
        timeout = httpx.Timeout(read, connect=config.connect_timeout, pool=config.timeout)
        self.stats.requests += 1
        started = self.clock.now()
        shard = self._shard_load.index(min(self._shard_load))
        self._shard_load[shard] += 1
        try:
            client, url = self._shards[shard], self._url
            own = self._transports[shard]
            if self._plain and own is not None:
                response = await post(client, own, url, body, timeout)
            else:
                response = await client.post(url, content=body, timeout=timeout)
            raw = response.content
        except httpx.TransportError as exc:
            kind = transport_kind(exc)
            self._statuses["timeout" if kind == "timeout" else "transport"] += 1
            raise RetryableError(self._scrub(describe_transport(exc)), kind=kind) from None
        finally:
            self._shard_load[shard] -= 1
        latency = self.clock.now() - started
        status = response.status_code
        self._statuses[str(status)] += 1
        self.pacer.learn(response.headers)
        if status == 200:
            try:
                result = parse_completion(raw, request.model, config.prices)
            except LLMError as exc:
                raise RetryableError(str(exc), status=status, kind="not-json") from None
            result.latency = latency
            result.attempts = state.attempts
            result.rate_limited = state.rate_limited
            return result, raw
        text, code = error_detail(raw)
        message = cut(self._scrub(text or response.reason_phrase))
        if status == 429:
            raise RetryableError(
                f"429 rate limited: {message}",
                status=status,
                retry_after=retry_after(response),
                kind="rate",
            )
        if status in RETRY_STATUSES:
            raise RetryableError(
                f"{status} {message}", status=status, retry_after=retry_after(response)
            )
        if status == 403 and not state.forbidden:
            state.forbidden = True  # proxies answer 403 under load or for content filters
            raise RetryableError(f"403 {message}", status=status, kind="forbidden")
        if status in (401, 402):
            source = config.api_key_source
            raise AuthenticationError(
                f"the endpoint refused the credentials ({status}): {message}",
                status=status,
                hint=f"the key sent comes from {source}: check it and the account's credit"
                if source
                else "check --api-key / SFTLABEL_API_KEY (or AZURE_OPENAI_API_KEY) and the "
                "account's credit",
            )
        cause = rejection_cause(status, text, code)
        reason = f" [{self._scrub(code)}]" if code and cause == "content" else ""
        raise RequestRejectedError(f"{status} {message}{reason}", status=status, cause=cause)

    def _scrub(self, text: str) -> str:
        """Remove the key (and any extra header value, URL credential) from text a server
        sent back; before the text is cut, so no prefix of a secret is left."""
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def _account(self, result: ChatResult) -> None:
        stats = self.stats
        stats.succeeded += 1
        stats.prompt_tokens += result.prompt_tokens
        stats.completion_tokens += result.completion_tokens
        stats.cached_tokens += result.cached_tokens
        stats.latency_total += result.latency
        if result.cost is None:
            stats.cost_known = False
        else:
            stats.cost += result.cost


def wants_cache_control(model: str, setting: bool | None) -> bool:
    """Whether requests to ``model`` mark their static prefix for Anthropic's prompt cache."""
    if setting is not None:
        return setting
    return "claude" in model.lower()


def with_cache_control(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with the first system message's text as one part carrying an ephemeral
    ``cache_control`` breakpoint (Anthropic caches the prefix up to it; the others are as
    they were)."""
    marked = list(messages)
    for position, message in enumerate(marked):
        if message.get("role") == "system" and isinstance(message.get("content"), str):
            part = {"type": "text", "text": message["content"], "cache_control": EPHEMERAL}
            marked[position] = {**message, "content": [part]}
            break
    return marked


EPHEMERAL = {"type": "ephemeral"}
