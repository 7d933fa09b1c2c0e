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
    chat_messages,
    extra_metadata,
    join_system,
    pop_system,
    raw_messages,
    record_id,
    require_messages,
    split_reasoning,
    system_text,
    tool_calls_of,
    tool_definitions,
)
from sftlabel.model import Conversation, Message

_KNOWN = frozenset({"id", "conversations", "system", "tools"})


class ShareGPTFormat:
    name = "sharegpt"
    description = 'ShareGPT: {"conversations": [{"from": "human"|"gpt"|..., "value": ...}]}'
    priority = 20
    source_key = "conversations"

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
            if raw.raw_role == "function_call" and not raw.fields.get("tool_calls"):
                # LLaMA-Factory: the turn's text *is* the call; show it once, as the call.
                content, reasoning = split_reasoning(raw.content)
                calls = tool_calls_of(_parse_call(content))
                messages.append(
                    Message(
                        role="assistant",
                        content="" if calls else content,
                        reasoning=reasoning,
                        tool_calls=calls,
                    )
                )
                continue
            messages.extend(chat_messages(raw, ctx))
        require_messages(messages)
        system, messages = pop_system(messages)
        system = join_system(system_text(record.get("system"), ctx), system)
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
