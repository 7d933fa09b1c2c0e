"""Pangu JSONL.

``{"id"?, "meta_prompt"?: [str], "tools"?: "<JSON string>", "data": [{"role", "content"}]}``.

Training markers inside ``content`` are parsed with a small state machine, never with a
"delete ``[unused16]`` ... ``[unused17]``" regex: ``[unused16]`` both *opens* a reasoning block and
*closes* a third inline tool call (``[unused15]`` ... ``[unused16]``), so a regex eats tool output.

========================  ====================================================================
``[unused16]..[unused17]``  reasoning block of an assistant reply (empty: fast thinking)
``[unused11]..[unused12]``  inline tool call; the text after it is the tool's result / answer
``[unused13]..[unused14]``  second inline tool call
``[unused15]..[unused16]``  third and further inline tool calls
``[unused10][unused9]``     round separator of a *pseudo multi-turn* user message
`` /no_think``              fast-thinking switch at the end of user/tool content
========================  ====================================================================

What the labeler sees: reasoning removed (kept in ``Message.reasoning``), inline tool calls shown
as ``<tool_call>...</tool_call>``, ``/no_think`` removed, pseudo multi-turn rounds separated by
blank lines with their ``用户：``/``助手：`` prefixes kept.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from sftlabel.formats._base import RecordContext
from sftlabel.formats._normalize import (
    extra_metadata,
    join_system,
    raw_messages,
    record_id,
    require_messages,
    split_reasoning,
    tool_definitions,
)
from sftlabel.model import Conversation, Message

_KNOWN = frozenset({"id", "meta_prompt", "tools", "data"})

_MARKER = re.compile(r"\[(?:unused\d+|unordered\d+)\]")
_NO_THINK = re.compile(r" ?/no_think\b")
_ROUND_SEPARATOR = re.compile(r"\[unused10\]\s*\[unused9\]|\[unused10\]|\[unused9\]")
_ASSISTANT_PREFIX = re.compile(r"^\s*(助手|assistant|Assistant)\s*[：:]")
_TOOL_PREFIX = re.compile(r"^\s*(工具|tool|Tool|observation|Observation)\s*[：:]")

REASONING_OPEN = "[unused16]"
REASONING_CLOSE = "[unused17]"
TOOL_CALL_CLOSERS = {
    "[unused11]": "[unused12]",
    "[unused13]": "[unused14]",
    "[unused15]": "[unused16]",
}

VARIANTS = (
    "single-turn",
    "multi-turn",
    "pseudo-multi-turn",
    "fast-thinking",
    "slow-thinking",
    "inline-tool-calls",
    "tool-role",
    "think-tags",
    "no-markers",
)
"""Pangu variants ``detect`` recognises and counts (a record can show several)."""


class ParsedContent(msgspec.Struct, kw_only=True):
    """An assistant content with its markers interpreted."""

    text: str
    reasoning: list[str]
    fast_blocks: int = 0
    slow_blocks: int = 0
    tool_calls: int = 0
    issues: list[str] = []


def parse_assistant_content(content: str) -> ParsedContent:
    """Interpret the markers of one assistant content (see the module docs).

    A tool call left open at the very end is normal (its result follows in a ``role: tool``
    node); any other unbalanced or unknown marker is reported in ``issues`` and kept as text.
    """
    if "[un" not in content:
        return ParsedContent(text=content, reasoning=[])
    out: list[str] = []
    reasoning: list[str] = []
    issues: list[str] = []
    fast = slow = calls = 0
    state = "text"  # "text" | "reasoning" | "call"
    closer = ""
    buffer: list[str] = []
    position = 0
    for match in _MARKER.finditer(content):
        piece = content[position : match.start()]
        position = match.end()
        marker = match.group(0)
        if state == "reasoning":
            if marker == REASONING_CLOSE:
                thought = "".join([*buffer, piece]).strip()
                buffer = []
                if thought:
                    slow += 1
                    reasoning.append(thought)
                else:
                    fast += 1
                state = "text"
            else:
                buffer.extend((piece, marker))
                issues.append(f"marker {marker} inside a reasoning block kept as text")
            continue
        if state == "call":
            if marker == closer:
                call = "".join([*buffer, piece]).strip()
                buffer = []
                out.append(f"<tool_call>{call}</tool_call>")
                calls += 1
                state = "text"
            else:
                buffer.extend((piece, marker))
                issues.append(f"marker {marker} inside a tool call kept as text")
            continue
        out.append(piece)
        if marker == REASONING_OPEN:
            state = "reasoning"
        elif marker in TOOL_CALL_CLOSERS:
            state, closer = "call", TOOL_CALL_CLOSERS[marker]
        else:
            issues.append(f"unexpected marker {marker} kept as text")
            out.append(marker)
    tail = content[position:]
    if state == "reasoning":
        issues.append(f"reasoning block opened by {REASONING_OPEN} is never closed")
        thought = "".join([*buffer, tail]).strip()
        if thought:
            slow += 1
            reasoning.append(thought)
    elif state == "call":
        out.append(f"<tool_call>{''.join([*buffer, tail]).strip()}</tool_call>")
        calls += 1
    else:
        out.append(tail)
    return ParsedContent(
        text="".join(out).strip(),
        reasoning=reasoning,
        fast_blocks=fast,
        slow_blocks=slow,
        tool_calls=calls,
        issues=issues,
    )


class _Features:
    __slots__ = ("fast", "inline_calls", "markers", "pseudo", "slow", "think_tags", "tool_role")

    def __init__(self) -> None:
        self.fast = self.slow = self.inline_calls = self.think_tags = False
        self.pseudo = self.tool_role = self.markers = False


class PanguFormat:
    name = "pangu"
    description = 'Pangu: {"meta_prompt": [...], "tools": "<json>", "data": [{"role", "content"}]}'
    priority = 15
    source_key = "data"

    def matches(self, record: dict[str, Any]) -> bool:
        data = record.get("data")
        return isinstance(data, list) and (not data or isinstance(data[0], dict))

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation:
        features = _Features()
        messages: list[Message] = []
        for raw in raw_messages(record["data"], ctx):
            if raw.role == "assistant":
                message = self._assistant(raw.content, raw.position, ctx, features)
                explicit = raw.fields.get("reasoning_content", raw.fields.get("reasoning"))
                if isinstance(explicit, str) and explicit.strip():
                    message.reasoning = join_system(explicit, message.reasoning)
                weight = raw.fields.get("weight")
                if isinstance(weight, int | float) and not isinstance(weight, bool):
                    message.weight = float(weight)
                messages.append(message)
            elif raw.role == "user":
                messages.append(self._user(raw.content, raw.position, ctx, features))
            else:
                if raw.role == "tool":
                    features.tool_role = True
                messages.append(
                    Message(role=raw.role, content=self._no_think(raw.content, features))
                )
        require_messages(messages)
        system = _system(record.get("meta_prompt"))
        if messages[0].role == "system":
            lead = messages.pop(0).content
            system = lead if system is None else f"{system}\n\n{lead}"
        return Conversation(
            id=record_id(record, "id"),
            source_format=self.name,
            messages=messages,
            system=system,
            tools=tool_definitions(record.get("tools"), ctx),
            metadata=extra_metadata(record, _KNOWN),
            variants=_variants(messages, features),
        )

    @staticmethod
    def _no_think(content: str, features: _Features) -> str:
        if "/no_think" not in content:
            return content
        features.fast = features.markers = True
        return _NO_THINK.sub("", content)

    def _assistant(
        self, content: str, index: int, ctx: RecordContext, features: _Features
    ) -> Message:
        parsed = parse_assistant_content(content)
        self._note(parsed, index, ctx, features)
        text, think = split_reasoning(parsed.text)
        if text != parsed.text:  # <think> tags (R1-distill data): reasoning as well
            features.think_tags = features.markers = True
            if think:
                features.slow = True
                parsed.reasoning.append(think)
            else:
                features.fast = True
        return Message(
            role="assistant",
            content=text,
            reasoning="\n\n".join(parsed.reasoning) or None,
        )

    def _note(
        self, parsed: ParsedContent, index: int, ctx: RecordContext, features: _Features
    ) -> None:
        if parsed.fast_blocks:
            features.fast = features.markers = True
        if parsed.slow_blocks:
            features.slow = features.markers = True
        if parsed.tool_calls:
            features.inline_calls = features.markers = True
        for issue in parsed.issues:
            features.markers = True
            ctx.warn("pangu-marker", f"message {index}: {issue}")

    @staticmethod
    def _stray_markers(text: str, index: int, ctx: RecordContext, features: _Features) -> None:
        if "[un" not in text:
            return
        for marker in sorted(set(_MARKER.findall(text))):
            features.markers = True
            ctx.warn("pangu-marker", f"message {index}: unexpected marker {marker} kept as text")

    def _user(self, content: str, index: int, ctx: RecordContext, features: _Features) -> Message:
        if "[unused10]" not in content and "[unused9]" not in content:
            self._stray_markers(content, index, ctx, features)
            return Message(role="user", content=self._no_think(content, features))
        # Pseudo multi-turn: earlier rounds packed into this user message.
        features.pseudo = features.markers = True
        rounds = _ROUND_SEPARATOR.split(self._no_think(content, features))
        shown: list[str] = []
        reasoning: list[str] = []
        for piece in rounds:
            if _ASSISTANT_PREFIX.match(piece):
                parsed = parse_assistant_content(piece)
                self._note(parsed, index, ctx, features)
                reasoning.extend(parsed.reasoning)
                shown.append(parsed.text)
            else:
                if _TOOL_PREFIX.match(piece):
                    features.tool_role = True
                self._stray_markers(piece, index, ctx, features)
                shown.append(piece.strip())
        return Message(
            role="user",
            content="\n\n".join(p for p in shown if p),
            reasoning="\n\n".join(reasoning) or None,
        )


def _system(raw: object) -> str | None:
    if isinstance(raw, str):
        return raw or None
    if isinstance(raw, list):
        text = "\n".join(str(part) for part in raw if part)
        return text or None
    return None


def _variants(messages: list[Message], features: _Features) -> list[str]:
    users = sum(1 for m in messages if m.role == "user")
    replies = sum(1 for m in messages if m.role == "assistant")
    found: list[str] = []
    if features.pseudo:
        found.append("pseudo-multi-turn")
    elif users > 1 and replies > 1:
        found.append("multi-turn")
    else:
        found.append("single-turn")
    if features.fast:
        found.append("fast-thinking")
    if features.slow:
        found.append("slow-thinking")
    if features.inline_calls:
        found.append("inline-tool-calls")
    if features.tool_role:
        found.append("tool-role")
    if features.think_tags:
        found.append("think-tags")
    if not features.markers:
        found.append("no-markers")
    return found


FORMAT = PanguFormat()
