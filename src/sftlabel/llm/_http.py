"""Reading answers: completions, error messages, Retry-After, and what a refusal means."""

from __future__ import annotations

import email.utils
import re
import socket
import ssl
import time
from typing import Any

import httpx
import msgspec

from sftlabel.llm._config import ChatResult
from sftlabel.llm._errors import LLMError, RejectionCause
from sftlabel.llm._pricing import PriceTable

MESSAGE_LIMIT = 500
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
CONTENT_REJECTION = re.compile(
    r"content[ _-]?(filter|management|policy)|responsibleaipolicy|safety|moderation|flagged|"
    r"context[ _-]?length|maximum context|context window|too many tokens|prompt is too long|"
    r"input is too long|reduce the length|string_above_max_length|max_tokens.*too large|"
    r"invalid[ _-]?prompt|prompt.*(rejected|blocked)|request.*blocked",
    re.IGNORECASE,
)
"""What a 400 says when the content is the problem (content filter, context length, an
invalid prompt): that request's own failure, not the endpoint's."""


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
    cache_read_input_tokens: int | None = None  # Anthropic (through LiteLLM)


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    usage: _Usage | None = None
    model: str | None = None


_completion_decoder = msgspec.json.Decoder(_Completion)
_any_decoder = msgspec.json.Decoder()


def parse_completion(raw: bytes, model: str, prices: PriceTable) -> ChatResult:
    """A completion body as a ChatResult; LLMError("malformed response ...") otherwise."""
    try:
        completion = _completion_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise LLMError(f"malformed response: {exc}") from None
    if not completion.choices:
        raise LLMError("malformed response: no choices")
    choice = completion.choices[0]
    usage = completion.usage or _Usage()
    prompt = usage.prompt_tokens or 0
    cached = cached_tokens(usage)
    prompt = max(prompt, cached)  # prompt_tokens counts the cached ones (OpenAI, LiteLLM)
    completion_tokens = usage.completion_tokens or 0
    return ChatResult(
        content=choice.message.content or "",
        finish_reason=choice.finish_reason,
        logprobs=choice.logprobs,
        tool_calls=choice.message.tool_calls,
        model=completion.model or model,
        prompt_tokens=prompt,
        completion_tokens=completion_tokens,
        cached_tokens=cached,
        cost=prices.cost(model, prompt, completion_tokens, cached),
    )


def cached_tokens(usage: _Usage) -> int:
    """Prompt tokens served from the provider's prefix cache, whichever way it says so:
    OpenAI (and LiteLLM for every provider) ``prompt_tokens_details.cached_tokens``, DeepSeek
    ``prompt_cache_hit_tokens``, Anthropic through LiteLLM ``cache_read_input_tokens``."""
    details = usage.prompt_tokens_details
    return max(
        (details.cached_tokens or 0) if details is not None else 0,
        usage.prompt_cache_hit_tokens or 0,
        usage.cache_read_input_tokens or 0,
    )


def error_detail(raw: bytes) -> tuple[str, str]:
    """The server's error message and code (OpenAI-style body, or the raw text), not cut."""
    try:
        data = _any_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        text = raw[:4000].decode("utf-8", "replace").strip()
        return " ".join(text.split()), ""
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message")
            code = " ".join(
                str(error[k]) for k in ("code", "type", "param") if error.get(k) is not None
            )
            inner = error.get("innererror")
            if isinstance(inner, dict) and inner.get("code"):
                code += f" {inner['code']}"  # Azure: ResponsibleAIPolicyViolation
            return (message if isinstance(message, str) else ""), code
        if isinstance(error, str):
            return error, ""
    return "", ""


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def rejection_cause(status: int, message: str, code: str) -> RejectionCause:
    """``content`` when the server says this request's content is the problem."""
    if status == 413:
        return "content"
    if status in (400, 403, 422) and CONTENT_REJECTION.search(f"{message} {code}"):
        return "content"
    return "endpoint"


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = number(response.headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = response.headers.get("retry-after")
    if not value:
        return None
    seconds = number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def number(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = float(value)
    except ValueError:
        return None
    return parsed if parsed > 0 else None


def transport_kind(exc: httpx.TransportError) -> str:
    """``connect`` (refused, DNS, TLS, connect timeout), ``timeout`` or ``transport``."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol):
        return "connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "transport"


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def describe_transport(exc: httpx.TransportError) -> str:
    """What went wrong, in words: connection refused, DNS lookup failed, TLS failed ..."""
    chain = _causes(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return f"DNS lookup failed ({exc})"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return f"TLS failed ({exc})"
    text = " ".join(str(e) for e in chain if str(e)) or type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "name or service" in lowered or "nodename" in lowered or "getaddrinfo" in lowered:
        return f"DNS lookup failed ({text})"
    if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
        return f"TLS failed ({text})"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return f"connection failed: {type(exc).__name__}: {text}"
