"""OpenAI chat messages.

``{"id"?, "messages": [{"role", "content", "tool_calls"?, ...}], "tools"?}``.

``content`` may be a string or a list of content parts; ``reasoning_content`` (or ``reasoning``)
and ``<think>`` blocks become the message's ``reasoning``.
"""

from __future__ import annotations

from typing import Any

from sftlabel.formats._base import RecordContext
from sftlabel.formats._normalize import (
    extra_metadata,
    pop_system,
    raw_messages,
    record_id,
    require_messages,
    split_reasoning,
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
        messages: list[Message] = []
        for raw in raw_messages(record["messages"], ctx):
            content, reasoning = raw.content, None
            fields = raw.fields
            if raw.role == "assistant":
                content, reasoning = split_reasoning(content)
                explicit = fields.get("reasoning_content", fields.get("reasoning"))
                if isinstance(explicit, str) and explicit.strip():
                    reasoning = explicit if reasoning is None else f"{explicit}\n\n{reasoning}"
            name = fields.get("name")
            call_id = fields.get("tool_call_id")
            messages.append(
                Message(
                    role=raw.role,
                    content=content,
                    reasoning=reasoning,
                    tool_calls=tool_calls_of(
                        fields.get("tool_calls") or fields.get("function_call")
                    ),
                    tool_call_id=call_id if isinstance(call_id, str) else None,
                    name=name if isinstance(name, str) and raw.role == "tool" else None,
                )
            )
        require_messages(messages)
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
