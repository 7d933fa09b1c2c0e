"""OpenAI chat messages.

``{"id"?, "messages": [{"role", "content", "tool_calls"?, ...}], "tools"?}``.

``content`` may be a string or a list of content parts; ``reasoning_content`` (or ``reasoning``)
and ``<think>`` blocks become the message's ``reasoning``.
"""

from __future__ import annotations

from typing import Any

from sftlabel.formats._base import RecordContext
from sftlabel.formats._normalize import (
    KNOWN_ROLES,
    RecordError,
    extra_metadata,
    map_role,
    pop_system,
    record_id,
    split_reasoning,
    text_of,
    tool_calls_of,
    tool_definitions,
)
from sftlabel.model import Conversation, Message

_KNOWN = frozenset({"id", "messages", "tools"})


class OpenAIFormat:
    name = "openai"
    description = 'OpenAI chat messages: {"messages": [{"role": ..., "content": ...}]}'
    priority = 30

    def matches(self, record: dict[str, Any]) -> bool:
        return isinstance(record.get("messages"), list)

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        raw_messages = record["messages"]
        if not raw_messages:
            raise RecordError("empty-conversation", "conversation has no messages")
        messages: list[Message] = []
        for index, raw in enumerate(raw_messages):
            if not isinstance(raw, dict):
                ctx.warn("bad-message", f"message {index} is not a JSON object; skipped")
                continue
            role = map_role(raw.get("role"))
            if role is None:
                ctx.warn(
                    "unknown-role",
                    f"message {index} has unknown role {raw.get('role')!r}; skipped "
                    f"(known roles: {KNOWN_ROLES})",
                )
                continue
            content, coerced = text_of(raw.get("content"))
            if coerced:
                ctx.warn("coerced-content", f"message {index}: non-text content rendered as JSON")
            reasoning = None
            if role == "assistant":
                content, reasoning = split_reasoning(content)
                explicit = raw.get("reasoning_content", raw.get("reasoning"))
                if isinstance(explicit, str) and explicit.strip():
                    reasoning = explicit if reasoning is None else f"{explicit}\n\n{reasoning}"
            name = raw.get("name")
            call_id = raw.get("tool_call_id")
            messages.append(
                Message(
                    role=role,
                    content=content,
                    reasoning=reasoning,
                    tool_calls=tool_calls_of(raw.get("tool_calls") or raw.get("function_call")),
                    tool_call_id=call_id if isinstance(call_id, str) else None,
                    name=name if isinstance(name, str) and role == "tool" else None,
                )
            )
        if not messages:
            raise RecordError("empty-conversation", "conversation has no usable messages")
        system, messages = pop_system(messages)
        return Conversation(
            id=record_id(record, "id"),
            source_format=self.name,
            messages=messages,
            system=system,
            tools=tool_definitions(record.get("tools"), ctx),
            metadata=extra_metadata(record, _KNOWN),
        )


FORMAT = OpenAIFormat()
