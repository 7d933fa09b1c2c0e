"""The shared OpenAI-compatible LLM client (used by label, softlabel, arbitrate and test)."""

from sftlabel.llm._cache import ResponseCache, cache_key
from sftlabel.llm._client import (
    ChatRequest,
    ChatResult,
    ClientConfig,
    ClientStats,
    LLMClient,
    Secret,
    estimate_tokens,
)
from sftlabel.llm._errors import (
    AuthenticationError,
    LLMError,
    RequestRejectedError,
    RetriesExhaustedError,
)
from sftlabel.llm._limits import AdaptiveLimiter, TokenBucket, parse_duration
from sftlabel.llm._pricing import Price, PriceTable
from sftlabel.llm._tokens import LabelTokens, resolve_label_tokens

__all__ = [
    "AdaptiveLimiter",
    "AuthenticationError",
    "ChatRequest",
    "ChatResult",
    "ClientConfig",
    "ClientStats",
    "LLMClient",
    "LLMError",
    "LabelTokens",
    "Price",
    "PriceTable",
    "RequestRejectedError",
    "ResponseCache",
    "RetriesExhaustedError",
    "Secret",
    "TokenBucket",
    "cache_key",
    "estimate_tokens",
    "parse_duration",
    "resolve_label_tokens",
]
