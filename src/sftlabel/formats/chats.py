"""Chat datasets with their own shapes.

* lmsys-chat-1m / WildChat: ``{"conversation_id" | "conversation_hash", "model",
  "conversation": [{"role", "content", ...}], ...}``.
* UltraChat: ``{"id", "data": [user, assistant, user, assistant, ...]}`` (plain strings).
* glaive function calling: ``{"system": "SYSTEM: ...", "chat": "USER: ... ASSISTANT: ...
  <|endoftext|> FUNCTION RESPONSE: ..."}``; ``<functioncall> {...}`` becomes a tool call.
* xlam function calling: ``{"id", "query", "answers": "<JSON list of calls>", "tools": "<JSON>"}``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from sftlabel.formats._base import RecordContext
from sftlabel.formats._normalize import (
    RecordError,
    extra_metadata,
    record_id,
    split_reasoning,
    system_text,
    to_json_text,
    tool_calls_of,
    tool_definitions,
)
from sftlabel.formats.openai import parse_chat
from sftlabel.model import Conversation, Message, Role, ToolCall


class ConversationFormat:
    name = "conversation"
    description = 'lmsys-chat / WildChat: {"conversation": [{"role", "content"}], ...}'
    priority = 35
    source_key = "conversation"

    def matches(self, record: dict[str, Any]) -> bool:
        return isinstance(record.get("conversation"), list)

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        return parse_chat(
            record,
            record["conversation"],
            ctx,
            name=self.name,
            known=frozenset({"id", "conversation_id", "conversation_hash", "conversation"}),
            id_keys=("id", "conversation_id", "conversation_hash"),
        )


class UltraChatFormat:
    name = "ultrachat"
    description = 'UltraChat: {"id", "data": [user, assistant, ...]} (strings)'
    priority = 16
    source_key = "data"

    def matches(self, record: dict[str, Any]) -> bool:
        data = record.get("data")
        return isinstance(data, list) and bool(data) and isinstance(data[0], str)

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        messages: list[Message] = []
        for index, text in enumerate(record["data"]):
            if not isinstance(text, str):
                ctx.warn("bad-message", f"message {index} is not a string; skipped")
                continue
            if index % 2 == 0:
                messages.append(Message(role="user", content=text))
            else:
                content, reasoning = split_reasoning(text)
                messages.append(Message(role="assistant", content=content, reasoning=reasoning))
        return Conversation(
            id=record_id(record, "id"),
            source_format=self.name,
            messages=messages,
            metadata=extra_metadata(record, frozenset({"id", "data"})),
        )


_GLAIVE_TURN = re.compile(r"(?:^|\n)\s*(USER|ASSISTANT|FUNCTION RESPONSE|SYSTEM):\s?")
_GLAIVE_ROLES: dict[str, Role] = {
    "USER": "user",
    "ASSISTANT": "assistant",
    "FUNCTION RESPONSE": "tool",
    "SYSTEM": "system",
}
_END = "<|endoftext|>"
_CALL = "<functioncall>"
_CALL_NAME = re.compile(r'"name"\s*:\s*"([^"]*)"')
_CALL_ARGUMENTS = re.compile(r"\"arguments\"\s*:\s*'(.*)'\s*}\s*$", re.DOTALL)


def _glaive_call(text: str) -> ToolCall:
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        value = None
    if isinstance(value, dict):
        calls = tool_calls_of(value)
        if calls:
            return calls[0]
    # glaive writes the arguments as a single-quoted JSON string: '{"a": 1}'
    name = _CALL_NAME.search(text)
    arguments = _CALL_ARGUMENTS.search(text)
    return ToolCall(
        name=name.group(1) if name else "",
        arguments=arguments.group(1) if arguments else text,
    )


class GlaiveFormat:
    name = "glaive"
    description = 'glaive function calling: {"system": "SYSTEM: ...", "chat": "USER: ..."}'
    priority = 50
    source_key = "chat"

    def matches(self, record: dict[str, Any]) -> bool:
        return isinstance(record.get("chat"), str)

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        chat = record["chat"]
        pieces = _GLAIVE_TURN.split(chat)
        if pieces[0].strip():
            ctx.warn("bad-message", "text before the first 'USER:' turn ignored")
        messages: list[Message] = []
        system: str | None = None
        for marker, body in zip(pieces[1::2], pieces[2::2], strict=True):
            role = _GLAIVE_ROLES[marker]
            text = body.replace(_END, "").strip()
            if role == "system":
                system = text
                continue
            if role == "assistant" and _CALL in text:
                before, _, call = text.partition(_CALL)
                content, reasoning = split_reasoning(before.strip())
                messages.append(
                    Message(
                        role="assistant",
                        content=content,
                        reasoning=reasoning,
                        tool_calls=[_glaive_call(call.strip())],
                    )
                )
            elif role == "assistant":
                content, reasoning = split_reasoning(text)
                messages.append(Message(role="assistant", content=content, reasoning=reasoning))
            else:
                messages.append(Message(role=role, content=text))
        if not messages:
            raise RecordError("empty-conversation", "'chat' has no USER:/ASSISTANT: turns")
        prompt = system_text(record.get("system"), ctx)
        if prompt is not None:
            prompt = re.sub(r"^\s*SYSTEM:\s*", "", prompt)
        return Conversation(
            id=record_id(record, "id"),
            source_format=self.name,
            messages=messages,
            system=prompt or system,
            metadata=extra_metadata(record, frozenset({"id", "system", "chat"})),
        )


class XlamFormat:
    name = "xlam"
    description = 'xlam function calling: {"query", "answers": "<JSON calls>", "tools": "<JSON>"}'
    priority = 55
    source_key = "query"

    def matches(self, record: dict[str, Any]) -> bool:
        return isinstance(record.get("query"), str) and "answers" in record

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        answers: Any = record.get("answers")
        if isinstance(answers, str):
            try:
                answers = msgspec.json.decode(answers)
            except msgspec.DecodeError:
                ctx.warn("bad-tools", "'answers' is a string but not valid JSON; kept as text")
        calls = tool_calls_of(answers) if not isinstance(answers, str) else []
        reply = Message(
            role="assistant",
            content="" if calls else to_json_text(answers),
            tool_calls=calls,
        )
        return Conversation(
            id=record_id(record, "id"),
            source_format=self.name,
            messages=[Message(role="user", content=record["query"]), reply],
            tools=tool_definitions(record.get("tools"), ctx),
            metadata=extra_metadata(record, frozenset({"id", "query", "answers", "tools"})),
        )


CONVERSATION = ConversationFormat()
ULTRACHAT = UltraChatFormat()
GLAIVE = GlaiveFormat()
XLAM = XlamFormat()
