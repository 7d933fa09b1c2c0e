"""Getting one JSON object out of a model's reply: plain, fenced, or wrapped in chatter."""

from __future__ import annotations

import re
from typing import Any

import msgspec

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_decoder = msgspec.json.Decoder()


class ReplyFormatError(ValueError):
    """The reply holds no JSON object."""


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``.

    Tries, in order: the whole text, each fenced code block, then every balanced ``{...}`` span
    (string-aware, so braces inside strings do not confuse it). Raises ReplyFormatError.
    """
    stripped = text.strip()
    if not stripped:
        raise ReplyFormatError("the reply is empty")
    candidates = [stripped, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in candidates:
        value = _try(candidate)
        if value is not None:
            return value
    for start, end in _object_spans(text):
        value = _try(text[start:end])
        if value is not None:
            return value
    preview = " ".join(stripped.split())[:120]
    raise ReplyFormatError(f"no JSON object in the reply: {preview!r}")


def _try(candidate: str) -> dict[str, Any] | None:
    try:
        value = _decoder.decode(candidate)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _object_spans(text: str) -> list[tuple[int, int]]:
    """Spans of balanced top-level ``{...}`` in ``text``."""
    spans: list[tuple[int, int]] = []
    depth = 0
    start = -1
    in_string = False
    escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"' and depth:
            in_string = True
        elif char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, index + 1))
    return spans
