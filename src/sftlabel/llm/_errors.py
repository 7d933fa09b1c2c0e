"""Errors of the LLM client."""

from __future__ import annotations

from typing import Literal

from sftlabel.errors import SftlabelError

RejectionCause = Literal["content", "endpoint"]


class LLMError(SftlabelError):
    """Base class of the client's errors."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class AuthenticationError(LLMError):
    """401/402: the key is wrong, expired or out of credit. Stops a run at once."""

    exit_code = 3


class RequestRejectedError(LLMError):
    """The server refused this request for good (400 and other non-retryable 4xx).

    ``cause`` is ``"content"`` when the server says the content is the problem (content
    filter, context length exceeded, invalid prompt ...): that request's own failure, with the
    provider's reason in the message. ``"endpoint"`` otherwise (unknown model, unsupported
    parameter, wrong path ...): every request will fail the same way."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        hint: str | None = None,
        cause: RejectionCause = "endpoint",
    ) -> None:
        super().__init__(message, status=status, hint=hint)
        self.cause: RejectionCause = cause


class RetriesExhaustedError(LLMError):
    """A failure of this request's own (5xx, timeouts, resets, malformed answers while other
    requests got answers) persisted through every attempt."""


class EndpointUnavailableError(LLMError):
    """The endpoint is dead from the start (connection refused, DNS, TLS, non-JSON answers) or
    gave no successful answer for ``max_unavailable`` seconds. Raised to every waiting caller;
    the run stops and no sample is failed for it."""

    exit_code = 3


class BudgetExceededError(LLMError):
    """The next request's worst-case cost does not fit the budget: nothing was sent."""

    exit_code = 3


class RetryableError(LLMError):
    """One failed attempt that is worth another (internal to the retry loop).

    ``kind``: ``rate`` (429), ``connect`` (refused, DNS, TLS, connect timeout), ``not-json``
    (a 200 that is not a completion), ``timeout``, ``transport`` or ``server`` (5xx, 408 ...),
    ``forbidden`` (one 403)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        kind: str = "server",
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.kind = kind
