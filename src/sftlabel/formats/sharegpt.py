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
from sftlabel.model import Conversation, Message, ToolCall

_KNOWN = frozenset({"id", "conversations", "system", "tools"})


class ShareGPTFormat:
    name = "sharegpt"
    description = 'ShareGPT: {"conversations": [{"from": "human"|"gpt"|..., "value": ...}]}'
    priority = 20

    def matches(self, record: dict[str, Any]) -> bool:
        return isinstance(record.get("conversations"), list)

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        turns = record["conversations"]
        if not turns:
            raise RecordError("empty-conversation", "conversation has no messages")
        messages: list[Message] = []
        for index, turn in enumerate(turns):
            if not isinstance(turn, dict):
                ctx.warn("bad-message", f"message {index} is not a JSON object; skipped")
                continue
            raw_role = turn.get("from", turn.get("role"))
            role = map_role(raw_role)
            if role is None:
                ctx.warn(
                    "unknown-role",
                    f"message {index} has unknown role {raw_role!r}; skipped "
                    f"(known roles: {KNOWN_ROLES})",
                )
                continue
            content, coerced = text_of(turn.get("value", turn.get("content")))
            if coerced:
                ctx.warn("coerced-content", f"message {index}: non-text content rendered as JSON")
            reasoning = None
            calls: list[ToolCall] = []
            if role == "assistant":
                content, reasoning = split_reasoning(content)
                if str(raw_role).lower() == "function_call":
                    calls = tool_calls_of(_parse_call(content))
                elif "tool_calls" in turn:
                    calls = tool_calls_of(turn["tool_calls"])
            messages.append(
                Message(role=role, content=content, reasoning=reasoning, tool_calls=calls)
            )
        if not messages:
            raise RecordError("empty-conversation", "conversation has no usable messages")
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
