"""The shared OpenAI-compatible LLM client (used by label, softlabel, arbitrate and test)."""

from sftlabel.llm._batch import BatchOptions, BatchTransport
from sftlabel.llm._batchapi import BatchAPI, BatchAPIError, ExportAPI
from sftlabel.llm._batchfiles import RequestTag, request_tag
from sftlabel.llm._budget import Budget, Reservation
from sftlabel.llm._cache import ResponseCache, ShardCache, cache_key, merge_cache
from sftlabel.llm._client import LLMClient
from sftlabel.llm._config import (
    ChatRequest,
    ChatResult,
    ClientConfig,
    ClientStats,
    Secret,
    redact_url,
)
from sftlabel.llm._errors import (
    AuthenticationError,
    BudgetExceededError,
    EndpointUnavailableError,
    LLMError,
    RequestRejectedError,
    RetriesExhaustedError,
)
from sftlabel.llm._estimate import estimate_tokens, text_tokens
from sftlabel.llm._limits import (
    AdaptiveLimiter,
    Clock,
    RateLearner,
    SystemClock,
    TokenBucket,
    parse_duration,
)
from sftlabel.llm._pricing import Price, PriceTable
from sftlabel.llm._tokens import LabelTokens, resolve_label_tokens

__all__ = [
    "AdaptiveLimiter",
    "AuthenticationError",
    "BatchAPI",
    "BatchAPIError",
    "BatchOptions",
    "BatchTransport",
    "Budget",
    "BudgetExceededError",
    "ChatRequest",
    "ChatResult",
    "ClientConfig",
    "ClientStats",
    "Clock",
    "EndpointUnavailableError",
    "ExportAPI",
    "LLMClient",
    "LLMError",
    "LabelTokens",
    "Price",
    "PriceTable",
    "RateLearner",
    "RequestRejectedError",
    "RequestTag",
    "Reservation",
    "ResponseCache",
    "RetriesExhaustedError",
    "Secret",
    "ShardCache",
    "SystemClock",
    "TokenBucket",
    "cache_key",
    "estimate_tokens",
    "merge_cache",
    "parse_duration",
    "redact_url",
    "request_tag",
    "resolve_label_tokens",
    "text_tokens",
]
