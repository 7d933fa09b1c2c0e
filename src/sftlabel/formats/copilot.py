"""Copilot turn records, the RAW layout of the soft-label job.

A dataset folder ``<dataset>/{train,val,test}/<bucket>.json``; each file is an array of
``{"conversationId", "userName", "bucket", "turnCount", "turnsArray": [{"turnIndex", "messageId",
"userMessage", "modelMessage", "llmCalls", "tools"}]}``. ``split`` comes from the folder name and
``bucket`` from the record (or the file name); neither is ever shown to a model.
"""

from __future__ import annotations

from typing import Any

from sftlabel.formats._base import RecordContext
from sftlabel.formats._normalize import (
    RecordError,
    extra_metadata,
    record_id,
    split_reasoning,
    text_of,
)
from sftlabel.model import Conversation, Message

SPLITS = frozenset({"train", "val", "valid", "validation", "dev", "test"})
_KNOWN = frozenset({"conversationId", "turnsArray", "bucket"})


class CopilotFormat:
    name = "copilot"
    description = 'Copilot turn records: {"conversationId", "turnsArray": [{"userMessage", ...}]}'
    priority = 10
    source_key = "turnsArray"

    def matches(self, record: dict[str, Any]) -> bool:
        return isinstance(record.get("turnsArray"), list)

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        turns = record["turnsArray"]
        if not turns:
            raise RecordError("empty-conversation", "conversation has no turns")
        messages: list[Message] = []
        turn_meta: list[dict[str, Any]] = []
        for position, turn in enumerate(turns):
            if not isinstance(turn, dict):
                ctx.warn("bad-message", f"turn {position} is not a JSON object; skipped")
                continue
            message_id = turn.get("messageId")
            message_id = str(message_id) if message_id is not None else None
            user, coerced_user = text_of(turn.get("userMessage"))
            reply, coerced_reply = text_of(turn.get("modelMessage"))
            if coerced_user or coerced_reply:
                ctx.warn("coerced-content", f"turn {position}: non-text content rendered as JSON")
            reply, reasoning = split_reasoning(reply)
            messages.append(Message(role="user", content=user, id=message_id))
            if "modelMessage" in turn:
                messages.append(Message(role="assistant", content=reply, reasoning=reasoning))
            else:
                ctx.warn("missing-reply", f"turn {position} has no modelMessage")
            extras = {
                key: value
                for key, value in turn.items()
                if key not in ("userMessage", "modelMessage") and value not in (None, [], {})
            }
            turn_meta.append(extras)
        if not messages:
            raise RecordError("empty-conversation", "conversation has no usable turns")
        metadata = extra_metadata(record, _KNOWN)
        metadata["turns"] = turn_meta
        split = ctx.path.parent.name if ctx.path.parent.name.lower() in SPLITS else ""
        bucket = record.get("bucket")
        if not isinstance(bucket, str) or not bucket:
            bucket = ctx.path.name.split(".", 1)[0]
        return Conversation(
            id=record_id(record, "conversationId", "id"),
            source_format=self.name,
            messages=messages,
            metadata=metadata,
            split=split,
            bucket=bucket,
        )


FORMAT = CopilotFormat()
