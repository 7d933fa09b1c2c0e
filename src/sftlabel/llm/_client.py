"""The one OpenAI-compatible chat-completions client every command shares.

Raw httpx (no SDK): explicit timeouts, a connection pool sized to the concurrency, keep-alive.
Retries with stamina on transport errors, timeouts, 408/409/429/5xx, malformed answers and one
403; ``Retry-After``/``retry-after-ms`` are honoured (capped). A request waiting out a backoff
holds no concurrency slot. RPM/TPM token buckets (seeded from ``x-ratelimit-*`` headers when no
limit is given) and an adaptive concurrency limit keep a run at the provider's limit with few
429s. Successful answers are cached in SQLite, so nothing is paid twice.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
import msgspec
import stamina

from sftlabel._version import __version__
from sftlabel.errors import ConfigError
from sftlabel.llm._cache import ResponseCache, cache_key
from sftlabel.llm._errors import (
    AuthenticationError,
    LLMError,
    RequestRejectedError,
    RetriesExhaustedError,
    RetryableError,
)
from sftlabel.llm._limits import AdaptiveLimiter, TokenBucket, parse_duration
from sftlabel.llm._pricing import PriceTable

SHARD_CONNECTIONS = 8
"""Connections per httpx pool (see LLMClient.__init__)."""
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
DEFAULT_AZURE_API_VERSION = "2024-10-21"


class Secret:
    """A secret value whose repr and str never show it (tracebacks, logs, Struct reprs)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('<redacted>')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Where and how to send requests. Build it from settings; see ``sftlabel info``."""

    model: str
    base_url: str | None = None
    api_key: Secret | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold secrets
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str = DEFAULT_AZURE_API_VERSION
    timeout: float = 120.0
    connect_timeout: float = 10.0
    concurrency: int = 50
    adaptive: bool = True
    rpm: float | None = None
    tpm: float | None = None
    max_attempts: int = 8
    retry_after_cap: float = 120.0
    cache_path: Path | None = None
    prices: PriceTable = field(default_factory=PriceTable, repr=False)

    @property
    def azure(self) -> bool:
        return self.azure_deployment is not None

    def endpoint(self) -> str:
        """The chat-completions URL (it never carries a secret)."""
        if self.azure:
            root = (self.azure_endpoint or self.base_url or "").rstrip("/")
            if not root:
                raise ConfigError(
                    "Azure OpenAI needs an endpoint",
                    hint="set AZURE_OPENAI_ENDPOINT or pass --base-url "
                    "https://<resource>.openai.azure.com",
                )
            return (
                f"{root}/openai/deployments/{self.azure_deployment}/chat/completions"
                f"?api-version={self.api_version}"
            )
        if not self.base_url:
            raise ConfigError(
                "no endpoint configured",
                hint="pass --base-url (e.g. https://api.openai.com/v1) or set SFTLABEL_BASE_URL",
            )
        return self.base_url.rstrip("/") + "/chat/completions"

    def auth_headers(self) -> dict[str, str]:
        if not self.api_key:
            return {}
        if self.azure:
            return {"api-key": self.api_key.reveal()}
        return {"Authorization": f"Bearer {self.api_key.reveal()}"}


class ChatRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A chat-completions request body (only answer-changing fields: it is the cache key)."""

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    seed: int | None = None


class ChatResult(msgspec.Struct, kw_only=True):
    """What one chat call gave, with its cost in tokens, money, time and retries."""

    content: str
    finish_reason: str | None = None
    logprobs: Any = None
    tool_calls: list[Any] | None = None
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None
    latency: float = 0.0
    attempts: int = 0
    rate_limited: int = 0
    from_cache: bool = False


class ClientStats(msgspec.Struct, kw_only=True):
    """Totals over the client's life."""

    calls: int = 0
    requests: int = 0
    cache_hits: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True
    latency_total: float = 0.0
    statuses: dict[str, int] = {}
    peak_concurrency: int = 0


# Response shapes (only what we read; unknown fields are ignored).
class _Message(msgspec.Struct):
    content: str | None = None
    tool_calls: list[Any] | None = None


class _Choice(msgspec.Struct):
    message: _Message = msgspec.field(default_factory=_Message)
    finish_reason: str | None = None
    logprobs: Any = None


class _Details(msgspec.Struct):
    cached_tokens: int | None = 0


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    prompt_tokens_details: _Details | None = None
    prompt_cache_hit_tokens: int | None = None  # DeepSeek


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    usage: _Usage | None = None
    model: str | None = None


_request_encoder = msgspec.json.Encoder()
_completion_decoder = msgspec.json.Decoder(_Completion)
_error_decoder = msgspec.json.Decoder()


def estimate_tokens(request: ChatRequest) -> int:
    """A cheap upper-ish estimate of a request's prompt tokens (about 4 characters a token)."""
    chars = 0
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif content is not None:
            chars += len(_request_encoder.encode(content))
    return chars // 3 + 4 * len(request.messages) + 8


class LLMClient:
    """Async OpenAI-compatible client. Use as ``async with LLMClient(config) as client``."""

    def __init__(
        self, config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self.url = config.endpoint()
        self.stats = ClientStats()
        self._statuses: Counter[str] = Counter()
        self.limiter = AdaptiveLimiter(config.concurrency, adaptive=config.adaptive)
        self.rpm = TokenBucket(config.rpm) if config.rpm else None
        self.tpm = TokenBucket(config.tpm) if config.tpm else None
        self._paused_until = 0.0
        self._rpm_from_headers = config.rpm is None
        self._tpm_from_headers = config.tpm is None
        self.cache = ResponseCache(config.cache_path) if config.cache_path else None
        headers = {
            "User-Agent": f"sftlabel/{__version__}",
            "Content-Type": "application/json",
            **config.headers,
            **config.auth_headers(),
        }
        # Several small pools instead of one big one: httpcore's pool does work quadratic in
        # its connection count on every request (encode/httpcore#1035), which makes a single
        # pool of 100 connections CPU-bound at ~50 requests/s. Shards of <= 8 stay cheap.
        shards = max(1, math.ceil(config.concurrency / SHARD_CONNECTIONS))
        per_shard = math.ceil(config.concurrency / shards)
        # httpx's own default context (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), built once for
        # every shard instead of once per shard (~50 ms each)
        tls = httpx.create_ssl_context()
        self._shards = [
            httpx.AsyncClient(
                verify=tls,
                headers=headers,
                timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
                limits=httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard),
                follow_redirects=False,  # never carry the key to another host
                transport=transport,
            )
            for _ in range(shards)
        ]
        self._shard_load = [0] * shards
        stamina.instrumentation.set_on_retry_hooks([])  # we count retries ourselves

    @property
    def http(self) -> httpx.AsyncClient:
        """An httpx client with this endpoint's headers (for side endpoints such as tokenize)."""
        return self._shards[0]

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
            self.cache.close()

    def request(self, messages: list[dict[str, Any]], **params: Any) -> ChatRequest:
        """A request for this client's model (``params``: temperature, max_tokens ...)."""
        return ChatRequest(
            model=params.pop("model", None) or self.config.model, messages=messages, **params
        )

    async def chat(self, request: ChatRequest, *, use_cache: bool = True) -> ChatResult:
        """Send one chat completion, retrying what is worth retrying; answers may come from the
        cache. Raises :class:`RequestRejectedError`, :class:`AuthenticationError` or
        :class:`RetriesExhaustedError`."""
        self.stats.calls += 1
        body = _request_encoder.encode(request)
        key = cache_key(self.url, body)
        if use_cache and self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                result = self._parse(cached, request.model)
                result.from_cache = True
                result.cost = 0.0
                self.stats.cache_hits += 1
                self.stats.succeeded += 1
                return result
        state = _CallState()
        try:
            result, raw = await self._send_with_retries(request, body, state)
        except LLMError:
            self.stats.failed += 1
            raise
        finally:
            self.stats.retries += max(state.attempts - 1, 0)
            self.stats.rate_limited += state.rate_limited
            self.stats.peak_concurrency = self.limiter.peak
            self.stats.statuses = dict(self._statuses)
        if use_cache and self.cache is not None:
            self.cache.put(key, request.model, raw)
        self._account(result)
        return result

    async def _send_with_retries(
        self, request: ChatRequest, body: bytes, state: _CallState
    ) -> tuple[ChatResult, bytes]:
        estimate = estimate_tokens(request) + (request.max_tokens or 0)
        try:
            async for attempt in stamina.retry_context(
                on=self._backoff,
                attempts=self.config.max_attempts,
                timeout=None,
                wait_initial=0.5,
                wait_max=30.0,
                wait_jitter=1.0,
            ):
                with attempt:
                    return await self._attempt(request, body, estimate, state)
        except RetryableError as exc:
            raise RetriesExhaustedError(
                f"gave up after {state.attempts} attempts: {exc.message}", status=exc.status
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, exc: Exception) -> bool | float:
        if not isinstance(exc, RetryableError):
            return False
        if exc.retry_after is None:
            return True
        wait = min(exc.retry_after, self.config.retry_after_cap)
        return wait + random.uniform(0, min(1.0, wait * 0.1))

    async def _attempt(
        self, request: ChatRequest, body: bytes, estimate: int, state: _CallState
    ) -> tuple[ChatResult, bytes]:
        state.attempts += 1
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            await anyio.sleep(pause)
        if self.rpm is not None:
            await self.rpm.acquire(1)
        if self.tpm is not None:
            await self.tpm.acquire(estimate)
        async with self.limiter:
            self.stats.requests += 1
            started = time.monotonic()
            try:
                shard = self._shard_load.index(min(self._shard_load))
                self._shard_load[shard] += 1
                try:
                    response = await self._shards[shard].post(self.url, content=body)
                    raw = response.content
                finally:
                    self._shard_load[shard] -= 1
            except httpx.TimeoutException as exc:
                self._statuses["timeout"] += 1
                raise RetryableError(f"timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                self._statuses["transport"] += 1
                raise RetryableError(f"connection failed: {type(exc).__name__}: {exc}") from None
            latency = time.monotonic() - started
        status = response.status_code
        self._statuses[str(status)] += 1
        self._learn_limits(response.headers)
        if status == 200:
            try:
                result = self._parse(raw, request.model)
            except LLMError as exc:
                raise RetryableError(str(exc), status=status) from None
            self.limiter.on_success()
            result.latency = latency
            result.attempts = state.attempts
            result.rate_limited = state.rate_limited
            return result, raw
        message = self._scrub(_error_message(raw) or response.reason_phrase)
        if status == 429:
            state.rate_limited += 1
            self.limiter.on_rate_limited()
            raise RetryableError(
                f"429 rate limited: {message}", status=status, retry_after=_retry_after(response)
            )
        if status in RETRY_STATUSES:
            raise RetryableError(
                f"{status} {message}", status=status, retry_after=_retry_after(response)
            )
        if status == 403 and not state.forbidden:
            state.forbidden = True  # proxies answer 403 under load or for content filters
            raise RetryableError(f"403 {message}", status=status)
        if status in (401, 402):
            raise AuthenticationError(
                f"the endpoint refused the credentials ({status}): {message}",
                status=status,
                hint="check --api-key / SFTLABEL_API_KEY (or AZURE_OPENAI_API_KEY) and the "
                "account's credit",
            )
        raise RequestRejectedError(f"{status} {message}", status=status)

    def _scrub(self, text: str) -> str:
        """Remove the key (and any extra header value) from text a server sent back."""
        secrets = [v for v in self.config.headers.values() if len(v) >= 8]
        if self.config.api_key:
            secrets.append(self.config.api_key.reveal())
        for secret in secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def _parse(self, raw: bytes, model: str) -> ChatResult:
        try:
            completion = _completion_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise LLMError(f"malformed response: {exc}") from None
        if not completion.choices:
            raise LLMError("malformed response: no choices")
        choice = completion.choices[0]
        usage = completion.usage or _Usage()
        cached = 0
        if usage.prompt_tokens_details is not None:
            cached = usage.prompt_tokens_details.cached_tokens or 0
        if usage.prompt_cache_hit_tokens:
            cached = usage.prompt_cache_hit_tokens
        prompt = usage.prompt_tokens or 0
        completion_tokens = usage.completion_tokens or 0
        name = completion.model or model
        return ChatResult(
            content=choice.message.content or "",
            finish_reason=choice.finish_reason,
            logprobs=choice.logprobs,
            tool_calls=choice.message.tool_calls,
            model=name,
            prompt_tokens=prompt,
            completion_tokens=completion_tokens,
            cached_tokens=cached,
            cost=self.config.prices.cost(model, prompt, completion_tokens, cached),
        )

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

    def _learn_limits(self, headers: httpx.Headers) -> None:
        """Seed the RPM/TPM buckets from ``x-ratelimit-limit-*`` when no limit was given."""
        if self._rpm_from_headers:
            limit = _number(headers.get("x-ratelimit-limit-requests"))
            if limit:
                self._rpm_from_headers = False
                self.rpm = TokenBucket(limit * 0.97)
        if self._tpm_from_headers:
            limit = _number(headers.get("x-ratelimit-limit-tokens"))
            if limit:
                self._tpm_from_headers = False
                self.tpm = TokenBucket(limit * 0.97)
        # An exhausted window: hold new requests until the endpoint says it resets.
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            if remaining is not None and remaining.strip() in ("0", "0.0"):
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
                if reset:
                    wait = min(reset, self.config.retry_after_cap)
                    self._paused_until = max(self._paused_until, time.monotonic() + wait)


class _CallState:
    __slots__ = ("attempts", "forbidden", "rate_limited")

    def __init__(self) -> None:
        self.attempts = 0
        self.rate_limited = 0
        self.forbidden = False


def _number(value: str | None) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number > 0 else None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = _number(response.headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = response.headers.get("retry-after")
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _error_message(raw: bytes) -> str:
    """The server's error message, from an OpenAI-style error body or the raw text (short)."""
    try:
        data = _error_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        text = raw[:300].decode("utf-8", "replace").strip()
        return " ".join(text.split())
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
    return ""
