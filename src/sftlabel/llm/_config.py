"""The client's data: where to send (ClientConfig), what (ChatRequest), what came back
(ChatResult) and totals (ClientStats); secrets and URL redaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import msgspec

from sftlabel.errors import ConfigError
from sftlabel.llm._pricing import PriceTable

DEFAULT_AZURE_API_VERSION = "2024-10-21"
REDACTED = "<redacted>"
SECRET_PARAM_WORDS = ("key", "token", "secret", "password", "passwd", "sig", "auth", "credential")
"""A query parameter whose name contains one of these is a secret (api-key, access_token,
sig of an Azure SAS, subscription-key ...)."""


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


def redact_url(url: str) -> str:
    """``url`` with userinfo credentials and secret-looking query values replaced by
    ``<redacted>`` (a URL without secrets comes back unchanged)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_param(name) for name, _ in pairs):
            query = "&".join(
                f"{quote(name, safe='-_.~')}="
                + (REDACTED if _secret_param(name) else quote(value, safe="-_.~:/"))
                for name, value in pairs
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secret_param(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_PARAM_WORDS)


def url_secrets(url: str) -> list[str]:
    """The secret pieces of a URL (userinfo, secret query values), to scrub from messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if parts.password:
        found.append(parts.password)
    if parts.username and "@" in parts.netloc:
        found.append(parts.username)
    found += [v for n, v in parse_qsl(parts.query) if _secret_param(n) and v]
    return [s for s in found if len(s) >= 4]


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
    """The longest wait for one answer (read timeout); the first attempt's is shorter for small
    ``max_tokens``, doubling after each timeout."""
    connect_timeout: float = 10.0
    concurrency: int = 50
    adaptive: bool = True
    rpm: float | None = None
    tpm: float | None = None
    max_attempts: int = 8
    """Attempts of a request whose failures are its own (others get answers meanwhile); 429s
    and failures during an outage never count."""
    retry_after_cap: float = 120.0
    cache_path: Path | None = None
    prices: PriceTable = field(default_factory=PriceTable, repr=False)
    max_unavailable: float = 600.0
    """Seconds without any successful answer (429s, an outage) before the client gives up with
    :class:`EndpointUnavailableError`; never less than ``timeout`` (a request may take that
    long)."""
    dead_after: float = 30.0
    """Seconds of connection failures (or non-JSON answers) with no success yet before the
    endpoint is declared dead (:class:`EndpointUnavailableError`)."""
    adaptive_timeout: bool = True
    """Cut a request that takes far longer than the recent ones (4 x their 95th percentile,
    at least 3 s) and send it again, doubling the cut each time up to ``timeout``."""
    cache_control: bool | None = None
    """Mark the static prefix (the first system message) with an Anthropic ``cache_control``
    breakpoint, as LiteLLM and other gateways pass it on; None: for Anthropic-family models
    (a name with ``claude``) only."""
    api_key_source: str | None = None
    """Where the key came from (``LITELLM_KEY``, ``--api-key`` ...), named by the 401 hint."""

    @property
    def azure(self) -> bool:
        return self.azure_deployment is not None

    def endpoint(self) -> str:
        """The chat-completions URL (it may carry userinfo: show it through redact_url)."""
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
        base, sep, query = self.base_url.partition("?")
        return base.rstrip("/") + "/chat/completions" + (f"?{query}" if sep else "")

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
    shared: bool = False
    """The answer of an identical request in flight at the same time (paid once, cost 0)."""


def accepts(accept: Callable[[ChatResult], bool] | None, result: ChatResult) -> bool:
    """Whether a caller's ``accept`` check takes this answer (no check: it does; a check that
    raises: it does not)."""
    if accept is None:
        return True
    try:
        return bool(accept(result))
    except Exception:
        return False


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
    coalesced: int = 0
    """Calls answered by an identical request already in flight."""
    not_cached: int = 0
    """Answers kept out of the cache because ``accept`` refused them."""
    unavailable_seconds: float = 0.0
    """Time the endpoint was unavailable (circuit open)."""
