"""OpenAI chat messages, and Anthropic-style messages.

``{"id"?, "system"?, "messages": [{"role", "content", "tool_calls"?, ...}], "tools"?}``.

``content`` may be a string or a list of content parts (see
:func:`~sftlabel.formats._normalize.parse_parts`); ``reasoning_content`` (or ``reasoning``),
thinking blocks and ``<think>`` blocks become the message's ``reasoning``. A top-level ``system``
(OpenAI-style records exported from Anthropic, or Anthropic's own) is the system prompt, before
any leading system message. ``weight: 0`` assistant messages (the fine-tuning format) are kept as
context and give no sample.

Anthropic-style messages (``tool_use``/``tool_result``/``thinking`` content blocks) are their
own format, ``anthropic``: ``tool_use`` becomes a tool call with its name and input,
``tool_result`` a ``tool`` message answering the call, ``thinking`` the reasoning.
"""

from __future__ import annotations

from typing import Any

from sftlabel.formats._base import RecordContext
from sftlabel.formats._normalize import (
    chat_messages,
    extra_metadata,
    join_system,
    pop_system,
    raw_messages,
    record_id,
    require_messages,
    system_text,
    tool_definitions,
)
from sftlabel.model import Conversation, Message

_KNOWN = frozenset({"id", "messages", "tools", "system"})
ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking"})


class OpenAIFormat:
    name = "openai"
    description = 'OpenAI chat messages: {"messages": [{"role": ..., "content": ...}]}'
    priority = 30
    source_key = "messages"

    def matches(self, record: dict[str, Any]) -> bool:
        return isinstance(record.get("messages"), list)

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        return parse_chat(record, record["messages"], ctx, name=self.name, known=_KNOWN)


def parse_chat(
    record: dict[str, Any],
    items: list[Any],
    ctx: RecordContext,
    *,
    name: str,
    known: frozenset[str],
    id_keys: tuple[str, ...] = ("id",),
) -> Conversation:
    """A conversation out of a list of role/content chat messages (OpenAI, Anthropic, lmsys)."""
    messages: list[Message] = []
    for raw in raw_messages(items, ctx):
        messages.extend(chat_messages(raw, ctx))
    require_messages(messages)
    system, messages = pop_system(messages)
    system = join_system(system_text(record.get("system"), ctx), system)
    return Conversation(
        id=record_id(record, *id_keys),
        source_format=name,
        messages=messages,
        system=system,
        tools=tool_definitions(record.get("tools"), ctx),
        metadata=extra_metadata(record, known),
    )


def _has_anthropic_blocks(messages: list[Any]) -> bool:
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") in ANTHROPIC_BLOCKS:
                    return True
    return False


class AnthropicFormat:
    name = "anthropic"
    description = (
        'Anthropic messages: {"system"?, "messages": [{"role", "content": [{"type": '
        '"text"|"tool_use"|"tool_result"|"thinking", ...}]}]}'
    )
    priority = 29
    source_key = "messages"

    def matches(self, record: dict[str, Any]) -> bool:
        messages = record.get("messages")
        return isinstance(messages, list) and _has_anthropic_blocks(messages)

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        return parse_chat(record, record["messages"], ctx, name=self.name, known=_KNOWN)


FORMAT = OpenAIFormat()
ANTHROPIC = AnthropicFormat()
