"""``sftlabel select --format source``: the chosen samples in the format they came in.

A record of a baseline file (a raw ShareGPT/OpenAI/Pangu record with ``labels``) comes out as
it is, without ``labels``/``labeling_monitor``. A sample of a ``label`` run (normalized
messages) is read back from its raw input record (``location``: path and line/index) and cut
after its ``turn_index``-th reply, so everything the reader normalized (Pangu markers,
``/no_think``, tool-call spellings, extra keys) is exactly as it was; the cut is checked by
reading it again (same number of replies, same last reply). When the input is gone or changed,
the sample is rebuilt from its normalized messages instead (counted as ``rebuilt``; Pangu
reasoning goes back between ``[unused16]``/``[unused17]``, inline tool-call markers and
``/no_think`` cannot be restored; a Copilot turn record is rebuilt as OpenAI messages).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from sftlabel.formats import RecordContext, RecordError, detect_format
from sftlabel.model import Conversation, Location, Sample

STRIP = ("labels", "labeling_monitor")


def raw_record(record: dict[str, Any]) -> dict[str, Any]:
    """A labeled raw record (baseline shape) without its labels."""
    return {k: v for k, v in record.items() if k not in STRIP}


def is_sample(record: dict[str, Any]) -> bool:
    """A ``label`` run's sample (normalized messages), not a raw record with labels."""
    return "source_format" in record and isinstance(record.get("messages"), list)


def _replies(conversation: Conversation | Sample) -> int:
    return sum(1 for m in conversation.messages if m.role == "assistant")


def cut(raw: dict[str, Any], sample: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The raw record cut after the sample's reply, or None when it does not hold the sample."""
    fmt = detect_format(raw)
    key = getattr(fmt, "source_key", None)
    if fmt is None or not isinstance(key, str) or not isinstance(raw.get(key), list):
        return None
    items: list[Any] = raw[key]
    turn = int(sample.get("turn_index") or 0)
    if turn < 1:
        return None
    location = Location(path=str(path))

    def parsed(count: int) -> Conversation | Sample | None:
        try:
            return fmt.parse({**raw, key: items[:count]}, RecordContext(path, location))
        except (RecordError, Exception):
            return None

    def replies(count: int) -> int:
        conversation = parsed(count)
        return _replies(conversation) if conversation is not None else 0

    low, high = 1, len(items)
    if replies(high) < turn:
        return None
    while low < high:  # the shortest prefix holding `turn` replies
        middle = (low + high) // 2
        if replies(middle) >= turn:
            high = middle
        else:
            low = middle + 1
    check = parsed(low)
    if check is None or _replies(check) != turn or not _same_reply(check, sample):
        return None
    out = copy.copy(raw)
    out[key] = items[:low]
    total = int(sample.get("total_turns") or 0)
    if isinstance(sample.get("id"), str) and total > 1:
        for name in ("id", "conversationId"):  # the key the record's id came from
            if name in out:
                out[name] = sample["id"]
                break
    return out


def _same_reply(conversation: Conversation | Sample, sample: dict[str, Any]) -> bool:
    messages = sample.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    if sample.get("truncation"):
        return True  # the labeler saw a shortened copy: the reply count decides
    last = messages[-1]
    wanted = last.get("content", "") if isinstance(last, dict) else ""
    return conversation.messages[-1].content == wanted


def rebuild(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample in its source format, from its normalized messages (when the raw record is
    not available)."""
    fmt = str(sample.get("source_format") or "openai")
    messages = [m for m in sample.get("messages") or [] if isinstance(m, dict)]
    system = sample.get("system")
    out: dict[str, Any] = {"id": sample.get("id")}
    if fmt == "sharegpt":
        names = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}
        turns = [{"from": "system", "value": system}] if system else []
        turns += [
            {"from": names.get(m.get("role", ""), "human"), "value": _with_think(m)}
            for m in messages
        ]
        out["conversations"] = turns
    elif fmt == "pangu":
        if system:
            out["meta_prompt"] = [system]
        data = []
        for m in messages:
            content = str(m.get("content", ""))
            if m.get("role") == "assistant" and m.get("reasoning"):
                content = f"[unused16]{m['reasoning']}[unused17]{content}"
            data.append({"role": m.get("role", "user"), "content": content})
        out["data"] = data
    else:
        chat = [{"role": "system", "content": system}] if system else []
        for m in messages:
            item = {k: v for k, v in m.items() if k not in ("weight",)}
            if item.get("reasoning"):
                item["reasoning_content"] = item.pop("reasoning")
            if item.get("tool_calls"):
                item["tool_calls"] = [_openai_call(c) for c in item["tool_calls"]]
            chat.append(item)
        out["messages"] = chat
    if sample.get("tools"):
        out["tools"] = sample["tools"]
    if isinstance(sample.get("metadata"), dict) and sample["metadata"]:
        out["metadata"] = sample["metadata"]
    return out


def _with_think(message: dict[str, Any]) -> str:
    content = str(message.get("content", ""))
    if message.get("role") == "assistant" and message.get("reasoning"):
        return f"<think>{message['reasoning']}</think>{content}"
    return content


def _openai_call(call: Any) -> Any:
    if not isinstance(call, dict):
        return call
    out: dict[str, Any] = {
        "type": "function",
        "function": {"name": call.get("name", ""), "arguments": call.get("arguments", "")},
    }
    if call.get("id"):
        out["id"] = call["id"]
    return out


def location_of(sample: dict[str, Any]) -> tuple[str, int] | None:
    """``(path, position)`` of a sample's raw record: the 1-based line or the 0-based index."""
    location = sample.get("location")
    if not isinstance(location, dict) or not isinstance(location.get("path"), str):
        return None
    for key in ("line", "index"):
        value = location.get(key)
        if type(value) is int:
            return location["path"], value
    return None


def raw_position(location: Location) -> int | None:
    return location.line if location.line is not None else location.index
