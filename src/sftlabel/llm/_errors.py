"""Errors of the LLM client."""

from __future__ import annotations

from sftlabel.errors import SftlabelError


class LLMError(SftlabelError):
    """Base class of the client's errors."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class AuthenticationError(LLMError):
    """401/402: the key is wrong, expired or out of credit. Stops a run at once."""

    exit_code = 3


class RequestRejectedError(LLMError):
    """The server refused this request for good (400 and other non-retryable 4xx): the request
    (and so its sample) fails with the server's message; other requests go on."""


class RetriesExhaustedError(LLMError):
    """A retryable failure (429, 5xx, timeouts, resets, malformed answers) persisted through
    every attempt."""


class RetryableError(LLMError):
    """One failed attempt that is worth another (internal to the retry loop)."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
