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
    parts: Parts
    """Everything the content held (reasoning, tool calls and results of content blocks)."""


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
        parts = parse_parts(next((item[k] for k in content_keys if k in item), None))
        warn_parts(parts, index, ctx)
        yield RawMessage(index, item, role, str(raw_role).strip().lower(), parts.text, parts)


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


MEDIA_PARTS = frozenset(
    {
        "image",
        "image_url",
        "input_image",
        "audio",
        "input_audio",
        "video",
        "video_url",
        "file",
        "input_file",
        "document",
    }
)
"""Content part types that carry media: shown as a short placeholder, with a ``media-part``
warning (the labeler cannot see them)."""

TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
_SENTENCE_END = frozenset(".!?:;。！？：；)]}>\"'`")


class Parts(msgspec.Struct, kw_only=True):
    """A message content flattened: what the labeler sees and what else the parts held."""

    text: str = ""
    reasoning: list[str] = []
    tool_calls: list[ToolCall] = []
    tool_results: list[tuple[str | None, str]] = []
    """Anthropic ``tool_result`` blocks: (the ``tool_use_id`` answered, the result text)."""
    media: list[str] = []
    unknown: list[str] = []
    coerced: bool = False


def join_text(pieces: list[str]) -> str:
    """Join text parts without breaking sentences.

    Parts are often cut mid-sentence: they are joined as they are when either side of the
    boundary already has white space, or is CJK text; with a line break after the end of a
    sentence (or before a placeholder such as ``[image]``); with a space otherwise.
    """
    out = ""
    for piece in pieces:
        if not piece:
            continue
        if not out:
            out = piece
            continue
        last, first = out[-1], piece[0]
        if last.isspace() or first.isspace() or _cjk(last) or _cjk(first):
            out += piece
        elif last in _SENTENCE_END or first == "[":
            out += "\n" + piece
        else:
            out += " " + piece
    return out


def _cjk(char: str) -> bool:
    return (
        "\u2e80" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af" or "\uff00" <= char <= "\uffef"
    )


def parse_parts(content: object) -> Parts:
    """Flatten a message content (a string, ``None``, a list of content parts, or another JSON
    value) into what the labeler sees.

    Text comes from every part shape: ``{"type": "text", "text": str}``, the Assistants export's
    ``{"text": {"value": str}}``, ``input_text``/``output_text``, ``refusal``. Anthropic blocks
    keep their meaning: ``thinking``/``redacted_thinking`` go to ``reasoning``, ``tool_use`` to
    ``tool_calls``, ``tool_result`` to ``tool_results``. Media parts become ``[image]``-style
    placeholders (listed in ``media``), any other part type ``[type]`` (listed in ``unknown``):
    the caller warns about both.
    """
    if isinstance(content, str):
        return Parts(text=content)
    if content is None:
        return Parts()
    if isinstance(content, dict) and ("type" in content or "text" in content):
        content = [content]
    if not isinstance(content, list):
        return Parts(text=to_json_text(content), coerced=True)
    parts = Parts()
    pieces: list[str] = []
    for part in content:
        if isinstance(part, str):
            pieces.append(part)
            continue
        if not isinstance(part, dict):
            pieces.append(to_json_text(part))
            parts.coerced = True
            continue
        kind = part.get("type")
        if not isinstance(kind, str):
            kind = "text" if "text" in part else "untyped"
        text = _part_text(part)
        if kind in TEXT_PARTS:
            if text is not None:
                pieces.append(text)
            else:
                pieces.append(to_json_text(part.get("text")))
                parts.coerced = True
        elif kind == "refusal":
            refusal = part.get("refusal", text)
            pieces.append(refusal if isinstance(refusal, str) else to_json_text(refusal))
        elif kind == "thinking":
            thought = part.get("thinking", text)
            if isinstance(thought, str) and thought.strip():
                parts.reasoning.append(thought)
        elif kind == "redacted_thinking":
            parts.reasoning.append("[redacted thinking]")
        elif kind == "tool_use":
            name = part.get("name")
            call_id = part.get("id")
            parts.tool_calls.append(
                ToolCall(
                    name=name if isinstance(name, str) else "",
                    arguments=to_json_text(part.get("input", {})),
                    id=call_id if isinstance(call_id, str) else None,
                )
            )
        elif kind == "tool_result":
            result = parse_parts(part.get("content"))
            answered = part.get("tool_use_id")
            shown = result.text
            if part.get("is_error") is True:
                shown = f"[error] {shown}"
            parts.tool_results.append((answered if isinstance(answered, str) else None, shown))
            parts.media.extend(result.media)
            parts.unknown.extend(result.unknown)
        elif kind in MEDIA_PARTS:
            parts.media.append(kind)
            pieces.append(f"[{_media_name(kind)}]")
        else:
            parts.unknown.append(kind)
            pieces.append(text if text is not None else f"[{kind}]")
    parts.text = join_text(pieces)
    return parts


def _part_text(part: dict[str, Any]) -> str | None:
    text = part.get("text")
    if isinstance(text, str):
        return text
    if isinstance(text, dict) and isinstance(text.get("value"), str):
        return str(text["value"])  # OpenAI Assistants: {"type": "text", "text": {"value": ...}}
    return None


def _media_name(kind: str) -> str:
    for media in ("image", "audio", "video", "file", "document"):
        if media in kind:
            return media
    return kind


def warn_parts(parts: Parts, index: int, ctx: RecordContext) -> None:
    """The warnings :func:`parse_parts` leaves to the caller."""
    if parts.coerced:
        ctx.warn("coerced-content", f"message {index}: non-text content rendered as JSON")
    if parts.media:
        kinds = ", ".join(sorted(set(parts.media)))
        ctx.warn(
            "media-part",
            f"message {index}: {len(parts.media)} media part(s) ({kinds}) shown as a placeholder; "
            "the labeler cannot see them",
        )
    for kind in sorted(set(parts.unknown)):
        ctx.warn(
            "unknown-part",
            f"message {index}: content part of unknown type {kind!r} shown as [{kind}]",
        )


def text_of(content: object) -> tuple[str, bool]:
    """Flatten a message content into text (see :func:`parse_parts`).

    Returns the text and whether anything had to be coerced (a non-text value) so the caller
    can warn.
    """
    parts = parse_parts(content)
    return parts.text, parts.coerced or bool(parts.unknown)


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


def _explicit_reasoning(fields: dict[str, Any]) -> str | None:
    for key in ("reasoning_content", "reasoning", "thinking"):
        value = fields.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def chat_messages(raw: RawMessage, ctx: RecordContext) -> list[Message]:
    """The normalized message(s) of one chat message (OpenAI, Anthropic, ShareGPT-with-roles).

    Reasoning comes from ``reasoning_content``/``reasoning``, thinking blocks and ``<think>``
    tags (in that order); tool calls from ``tool_calls``/``function_call`` and ``tool_use``
    blocks; Anthropic ``tool_result`` blocks become ``tool`` messages before what is left of
    the message. ``weight`` (0 or 1, OpenAI fine-tuning) is kept.
    """
    fields, parts = raw.fields, raw.parts
    content = raw.content
    reasoning: list[str] = []
    if raw.role == "assistant":
        content, think = split_reasoning(content)
        explicit = _explicit_reasoning(fields)
        reasoning = [r for r in (explicit, *parts.reasoning, think) if r]
    calls = [
        *parts.tool_calls,
        *tool_calls_of(fields.get("tool_calls") or fields.get("function_call")),
    ]
    call_id = fields.get("tool_call_id", fields.get("tool_use_id"))
    name = fields.get("name")
    weight = fields.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        if weight is not None:
            ctx.warn(
                "bad-weight", f"message {raw.position}: weight {weight!r} is not a number; ignored"
            )
        weight = None
    messages = [
        Message(role="tool", content=text, tool_call_id=answered)
        for answered, text in parts.tool_results
    ]
    if parts.tool_results and not content.strip() and not calls and not reasoning:
        return messages
    messages.append(
        Message(
            role=raw.role,
            content=content,
            reasoning="\n\n".join(reasoning) or None,
            tool_calls=calls,
            tool_call_id=call_id if isinstance(call_id, str) else None,
            name=name if isinstance(name, str) and raw.role == "tool" else None,
            weight=float(weight) if weight is not None else None,
        )
    )
    return messages


def system_text(raw: object, ctx: RecordContext, key: str = "system") -> str | None:
    """A top-level system prompt: a string, a list of strings or of text blocks (Anthropic)."""
    if raw is None or raw in ("", []):
        return None
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        text = "\n".join(item for item in raw if item)
        return text or None
    parts = parse_parts(raw)
    if parts.coerced or parts.unknown or parts.media:
        ctx.warn("coerced-content", f"top-level {key!r}: non-text content rendered as text")
    return parts.text or None


def join_system(*prompts: str | None) -> str | None:
    """System prompts joined by blank lines (``None`` when there is none)."""
    text = "\n\n".join(p for p in prompts if p)
    return text or None
