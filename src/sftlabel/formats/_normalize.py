"""Normalization helpers shared by the readers: roles, content parts, hidden reasoning."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import msgspec

from sftlabel.formats._base import RecordContext
from sftlabel.model import Message, Role, ToolCall

ROLE_ALIASES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "function_call": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "ipython": "tool",
    "tool_response": "tool",
}
"""Source role spellings mapped onto the four normalized roles (lookups are case-insensitive)."""

KNOWN_ROLES = ", ".join(sorted(ROLE_ALIASES))

_THINK_BLOCK = re.compile(r"<(think|thinking)>(.*?)</\1>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(think|thinking)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(think|thinking)>", re.IGNORECASE)

_json_encoder = msgspec.json.Encoder()


class RecordError(Exception):
    """Raised by a reader when a record cannot be turned into a conversation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RawMessage(NamedTuple):
    """A source message that passed the checks every reader makes."""

    position: int
    """0-based index of the message in the source record."""
    fields: dict[str, Any]
    role: Role
    raw_role: str
    content: str


def raw_messages(
    items: list[Any],
    ctx: RecordContext,
    *,
    role_keys: tuple[str, ...] = ("role",),
    content_keys: tuple[str, ...] = ("content",),
) -> Iterator[RawMessage]:
    """The usable messages of a record, with warnings for the others.

    A message that is not an object, or has an unknown role, is skipped with a warning; content
    that is not text is rendered as JSON with a warning. Raises :class:`RecordError` when the
    record has no messages at all.
    """
    if not items:
        raise RecordError("empty-conversation", "conversation has no messages")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            ctx.warn("bad-message", f"message {index} is not a JSON object; skipped")
            continue
        raw_role = next((item[k] for k in role_keys if k in item), None)
        role = map_role(raw_role)
        if role is None:
            ctx.warn(
                "unknown-role",
                f"message {index} has unknown role {raw_role!r}; skipped "
                f"(known roles: {KNOWN_ROLES})",
            )
            continue
        content, coerced = text_of(next((item[k] for k in content_keys if k in item), None))
        if coerced:
            ctx.warn("coerced-content", f"message {index}: non-text content rendered as JSON")
        yield RawMessage(index, item, role, str(raw_role).strip().lower(), content)


def require_messages(messages: list[Message]) -> list[Message]:
    """``messages``, or a :class:`RecordError` when none was usable."""
    if not messages:
        raise RecordError("empty-conversation", "conversation has no usable messages")
    return messages


def map_role(raw: object) -> Role | None:
    """The normalized role for a source role name, or None when it is unknown."""
    if not isinstance(raw, str):
        return None
    return ROLE_ALIASES.get(raw.strip().lower())


def split_reasoning(text: str) -> tuple[str, str | None]:
    """Remove ``<think>``/``<thinking>`` blocks from ``text``.

    Returns the visible text and the removed reasoning (``None`` when there was none). An opening
    tag that is never closed turns the rest of the text into reasoning (a cut-off generation); a
    closing tag with no opening one makes everything before it reasoning (models that emit the
    opening tag in the prompt template).
    """
    if "hink" not in text and "HINK" not in text:  # fast path: no tag can be present
        return text, None
    parts: list[str] = []

    def _keep(match: re.Match[str]) -> str:
        parts.append(match.group(2).strip())
        return ""

    visible = _THINK_BLOCK.sub(_keep, text)
    opened = _THINK_OPEN.search(visible)
    if opened:
        parts.append(visible[opened.end() :].strip())
        visible = visible[: opened.start()]
    else:
        closed = _THINK_CLOSE.search(visible)
        if closed:
            parts.append(visible[: closed.start()].strip())
            visible = visible[closed.end() :]
    if not parts:
        return text, None
    reasoning = "\n\n".join(p for p in parts if p)
    return visible.strip(), reasoning or None


def text_of(content: object) -> tuple[str, bool]:
    """Flatten a message content into text.

    Accepts a string, ``None``, or a list of OpenAI-style content parts. Returns the text and
    whether anything had to be coerced (a non-text value) so the caller can warn.
    """
    if isinstance(content, str):
        return content, False
    if content is None:
        return "", False
    if isinstance(content, list):
        pieces: list[str] = []
        coerced = False
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict):
                kind = part.get("type", "text")
                if kind in ("text", "input_text", "output_text") and isinstance(
                    part.get("text"), str
                ):
                    pieces.append(part["text"])
                else:
                    pieces.append(f"[{kind}]")
            else:
                pieces.append(str(part))
                coerced = True
        return "\n".join(pieces), coerced
    return to_json_text(content), True


def to_json_text(value: Any) -> str:
    """A compact JSON rendering of any JSON value (strings are returned unchanged)."""
    if isinstance(value, str):
        return value
    return _json_encoder.encode(value).decode()


def tool_calls_of(raw: object) -> list[ToolCall]:
    """Normalize OpenAI ``tool_calls`` (or a legacy ``function_call`` object) into ToolCalls."""
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        return []
    calls: list[ToolCall] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        function = item.get("function")
        spec = function if isinstance(function, dict) else item
        name = spec.get("name")
        call_id = item.get("id")
        calls.append(
            ToolCall(
                name=name if isinstance(name, str) else "",
                arguments=to_json_text(spec.get("arguments", "")),
                id=call_id if isinstance(call_id, str) else None,
            )
        )
    return calls


def pop_system(messages: list[Message]) -> tuple[str | None, list[Message]]:
    """Move the leading system messages out of ``messages`` into one system prompt."""
    count = 0
    while count < len(messages) and messages[count].role == "system":
        count += 1
    if not count:
        return None, messages
    system = "\n\n".join(m.content for m in messages[:count] if m.content)
    return system or None, messages[count:]


def record_id(record: dict[str, Any], *keys: str) -> str:
    """The record's own id under the first of ``keys`` it has, or ``""``."""
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return ""


def extra_metadata(record: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """``record["metadata"]`` (when a dict) plus every top-level key a reader does not consume."""
    meta = record.get("metadata")
    result: dict[str, Any] = dict(meta) if isinstance(meta, dict) else {}
    if meta is not None and not isinstance(meta, dict):
        result["metadata"] = meta
    for key, value in record.items():
        if key not in known and key != "metadata" and key not in result:
            result[key] = value
    return result


def tool_definitions(raw: object, ctx: RecordContext) -> list[Any] | None:
    """Tool definitions offered to the model: a list, or a JSON string holding one."""
    if raw is None or raw in ("", []):
        return None
    if isinstance(raw, str):
        try:
            raw = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            ctx.warn("bad-tools", "'tools' is a string but not valid JSON; kept as text")
            return [raw]
    if isinstance(raw, list):
        return raw or None
    return [raw]
