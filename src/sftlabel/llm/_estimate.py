"""Prompt-token estimates for ``--dry-run``, the budget reservation and the TPM bucket.

- OpenAI model families (gpt-3.5/4/4o/4.1/5, o-series, gpt-oss; see
  :func:`~sftlabel.llm._tokens.openai_encoding_name`): the exact count with tiktoken, offline
  (cl100k/o200k ranks ship in the package), plus the chat format's 3 tokens a message and 3 for
  the reply's priming.
- Every other model: a calibrated estimate from characters and UTF-8 bytes (below), with a
  margin, since the model's tokenizer is unknown.
- Character-based counting is the fallback only: when the shipped ranks are missing, for a text
  longer than :data:`EXACT_UP_TO` characters (its BPE would cost tens of milliseconds), and for
  non-text content.

Cheap enough for every request: one encoder per model (cached), and the token count of each
text cached by its value, so the static system prompt of a run (the same string for every
sample) is encoded once; only the per-sample part is encoded per request (about 0.13 ms a
thousand characters: 0.6 ms for a label request of the shared data, ``bench/token_estimate.py``;
loading o200k's ranks takes 0.5 s once per process).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from sftlabel.errors import ConfigError
from sftlabel.llm._tokens import offline_encoding, openai_encoding_name

if TYPE_CHECKING:
    from sftlabel.llm._config import ChatRequest

CHARS_PER_TOKEN = 4.2
TOKENS_PER_EXTRA_BYTE = 0.43
"""The calibration: tokens = chars / 4.2 + 0.43 x (UTF-8 bytes - chars). Fitted (least squares,
``bench/token_estimate.py``) against o200k_base on the shared data (../shared/data: the 233 label
prompts of raw_samples.json and pangu_test_samples.jsonl, both calls' system prompts, the 158
softlabel prompts of copilot_raw; 1.38 M characters, 395 k o200k tokens): the fit gives 0.99 x
o200k's total, 0.86-1.15 x per text (5th-95th percentile). ``len // 3`` gave 1.16 x, 0.83-1.49 x
per text (over for English and code, under for CJK)."""
MARGIN = 1.15
"""For models whose tokenizer is unknown: cl100k needs 1.05 x o200k's tokens on the same data
(up to 1.22 x per text, on non-English ones), older 32k-vocabulary tokenizers more; and the
budget reservation should err high. With it: 1.14 x o200k's total, 0.99-1.33 x per text."""
EXACT_UP_TO = 262_144
"""Longer texts are estimated (calibrated), not encoded."""
PER_MESSAGE = 3
"""Tokens of the chat format around each message (``<|start|>role ... <|end|>``)."""
PER_REQUEST = 3
"""Tokens priming the reply (``<|start|>assistant<|message|>``)."""

_json = msgspec.json.Encoder()


def calibrated_tokens(text: str) -> int:
    """Tokens of ``text`` for a model whose tokenizer is unknown (see :data:`MARGIN`)."""
    extra = 0 if text.isascii() else len(text.encode("utf-8", "surrogatepass")) - len(text)
    return math.ceil((len(text) / CHARS_PER_TOKEN + extra * TOKENS_PER_EXTRA_BYTE) * MARGIN)


def _exact_counter(encoding_name: str) -> Callable[[str], int] | None:
    try:
        encoding = offline_encoding(encoding_name)
    except ConfigError:
        return None  # ranks missing from this installation: the calibrated fallback

    @functools.lru_cache(maxsize=64)
    def count(text: str) -> int:
        if len(text) > EXACT_UP_TO:
            return calibrated_tokens(text)
        try:
            return len(encoding.encode_ordinary(text))
        except UnicodeEncodeError:  # lone surrogates
            return len(encoding.encode_ordinary(text.encode("utf-8", "replace").decode()))

    return count


@functools.lru_cache(maxsize=64)
def text_counter(model: str) -> Callable[[str], int]:
    """How to count a text's tokens for ``model`` (one encoder per model, cached)."""
    encoding_name = openai_encoding_name(model) if model else None
    if encoding_name is not None:
        exact = _exact_counter(encoding_name)
        if exact is not None:
            return exact
    return calibrated_tokens


def text_tokens(model: str, text: str) -> int:
    """Tokens of ``text`` alone (no chat format) for ``model``."""
    return text_counter(model)(text)


def _content_tokens(count: Callable[[str], int], content: Any) -> int:
    if isinstance(content, str):
        return count(content)
    if isinstance(content, list):  # parts: [{"type": "text", "text": ...}, ...]
        total = 0
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += count(part["text"])
            else:
                total += calibrated_tokens(_json.encode(part).decode())
        return total
    return calibrated_tokens(_json.encode(content).decode())


def estimate_tokens(request: ChatRequest) -> int:
    """The prompt tokens of ``request`` for its model (exact with tiktoken for OpenAI families,
    calibrated for the others; see the module doc)."""
    count = text_counter(request.model)
    total = PER_REQUEST
    for message in request.messages:
        total += PER_MESSAGE
        content = message.get("content")
        if content is not None:
            total += _content_tokens(count, content)
        if message.get("name"):
            total += 1 + count(str(message["name"]))
        if message.get("tool_calls"):
            total += calibrated_tokens(_json.encode(message["tool_calls"]).decode())
    return total
