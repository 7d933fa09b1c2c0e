"""Instruction records: Alpaca/Dolly and prompt/completion.

Alpaca: ``{"instruction", "input"?, "output", "system"?, "history"?: [[q, a], ...]}``; Dolly:
``{"instruction", "context", "response", "category"}``. The user message is the instruction,
then the input (or context) after a blank line; the reply is ``output`` (or ``response``).
LLaMA-Factory's ``history`` pairs come first, as earlier turns.

Prompt/completion: ``{"prompt", "completion", "system"?}``, with strings (the OpenAI legacy
fine-tuning format) or lists of chat messages (TRL's conversational prompt-completion).
"""

from __future__ import annotations

from typing import Any

from sftlabel.formats._base import RecordContext
from sftlabel.formats._normalize import (
    RecordError,
    chat_messages,
    extra_metadata,
    join_system,
    pop_system,
    raw_messages,
    record_id,
    require_messages,
    split_reasoning,
    system_text,
    text_of,
)
from sftlabel.model import Conversation, Message


def _reply(text: str) -> Message:
    content, reasoning = split_reasoning(text)
    return Message(role="assistant", content=content, reasoning=reasoning)


def _text(record: dict[str, Any], key: str, ctx: RecordContext) -> str:
    text, coerced = text_of(record.get(key))
    if coerced:
        ctx.warn("coerced-content", f"{key!r}: non-text content rendered as JSON")
    return text


class AlpacaFormat:
    name = "alpaca"
    description = 'Alpaca/Dolly: {"instruction", "input"|"context", "output"|"response"}'
    priority = 65
    source_key = "instruction"

    def matches(self, record: dict[str, Any]) -> bool:
        return isinstance(record.get("instruction"), str) and (
            "output" in record or "response" in record
        )

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        reply_key = "output" if "output" in record else "response"
        input_key = "input" if "input" in record else "context"
        messages: list[Message] = []
        history = record.get("history")
        if isinstance(history, list):
            for index, pair in enumerate(history):
                if (
                    isinstance(pair, list)
                    and len(pair) == 2
                    and all(isinstance(x, str) for x in pair)
                ):
                    messages += [Message(role="user", content=pair[0]), _reply(pair[1])]
                else:
                    ctx.warn("bad-message", f"history entry {index} is not a [query, reply] pair")
        instruction = _text(record, "instruction", ctx)
        extra = _text(record, input_key, ctx)
        prompt = "\n\n".join(part for part in (instruction, extra) if part.strip())
        if not prompt.strip():
            raise RecordError("empty-conversation", "'instruction' and 'input' are empty")
        messages += [Message(role="user", content=prompt), _reply(_text(record, reply_key, ctx))]
        return Conversation(
            id=record_id(record, "id"),
            source_format=self.name,
            messages=messages,
            system=system_text(record.get("system"), ctx),
            metadata=extra_metadata(
                record,
                frozenset({"id", "instruction", input_key, reply_key, "system", "history"}),
            ),
        )


class PromptCompletionFormat:
    name = "prompt-completion"
    description = 'Prompt/completion: {"prompt", "completion", "system"?} (strings or messages)'
    priority = 60
    source_key = "prompt"

    def matches(self, record: dict[str, Any]) -> bool:
        return "prompt" in record and "completion" in record

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        messages: list[Message] = []
        for key, role in (("prompt", "user"), ("completion", "assistant")):
            value = record[key]
            if isinstance(value, list) and value and isinstance(value[0], dict):
                for raw in raw_messages(value, ctx):
                    messages.extend(chat_messages(raw, ctx))
            elif role == "user":
                messages.append(Message(role="user", content=_text(record, key, ctx)))
            else:
                messages.append(_reply(_text(record, key, ctx)))
        require_messages(messages)
        system, messages = pop_system(messages)
        return Conversation(
            id=record_id(record, "id"),
            source_format=self.name,
            messages=messages,
            system=join_system(system_text(record.get("system"), ctx), system),
            metadata=extra_metadata(record, frozenset({"id", "prompt", "completion", "system"})),
        )


ALPACA = AlpacaFormat()
PROMPT_COMPLETION = PromptCompletionFormat()
