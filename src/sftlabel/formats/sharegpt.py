"""ShareGPT: ``{"id", "conversations": [{"from", "value"}], "metadata"}``.

Also accepted: ``role``/``content`` inside ``conversations``, ``user``/``assistant`` role names,
LLaMA-Factory extras (``system``, ``tools``, ``function_call``/``observation`` turns), and
``<think>``/``<thinking>`` blocks in replies (moved to ``reasoning``).
"""

from __future__ import annotations

from typing import Any

import msgspec

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
from sftlabel.model import Conversation, Message, ToolCall

_KNOWN = frozenset({"id", "conversations", "system", "tools"})


class ShareGPTFormat:
    name = "sharegpt"
    description = 'ShareGPT: {"conversations": [{"from": "human"|"gpt"|..., "value": ...}]}'
    priority = 20

    def matches(self, record: dict[str, Any]) -> bool:
        return isinstance(record.get("conversations"), list)

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        messages: list[Message] = []
        for raw in raw_messages(
            record["conversations"],
            ctx,
            role_keys=("from", "role"),
            content_keys=("value", "content"),
        ):
            content, reasoning = raw.content, None
            calls: list[ToolCall] = []
            if raw.role == "assistant":
                content, reasoning = split_reasoning(content)
                if raw.raw_role == "function_call":
                    calls = tool_calls_of(_parse_call(content))
                elif "tool_calls" in raw.fields:
                    calls = tool_calls_of(raw.fields["tool_calls"])
            messages.append(
                Message(role=raw.role, content=content, reasoning=reasoning, tool_calls=calls)
            )
        require_messages(messages)
        system, messages = pop_system(messages)
        extra_system = record.get("system")
        if isinstance(extra_system, str) and extra_system.strip():
            system = extra_system if system is None else f"{extra_system}\n\n{system}"
        return Conversation(
            id=record_id(record, "id"),
            source_format=self.name,
            messages=messages,
            system=system,
            tools=tool_definitions(record.get("tools"), ctx),
            metadata=extra_metadata(record, _KNOWN),
        )


def _parse_call(text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return {"name": "", "arguments": text}


FORMAT = ShareGPTFormat()
