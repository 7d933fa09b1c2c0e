"""What the classifier sees of a turn: strategies, plugins of the group ``sftlabel.strategies``.

A strategy is any object with ``name``, ``description``, ``instructions`` (a sentence added to the
task description, or ``""``) and ``render(turn, options) -> str`` (the text shown to the model
between the data delimiters). The built-ins are registered through the same entry-point group as
third-party strategies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sftlabel.errors import UsageError
from sftlabel.labeling._defuse import Defuser
from sftlabel.plugins import STRATEGIES_GROUP, load_group
from sftlabel.softlabel._turns import Turn

DEFAULT_STRATEGY = "user_message_only"
ROLE_MARKERS = (
    r"(?:user|assistant|system|tool)(?:[ \t]+message(?:[ \t]+to[ \t]+label)?|[ \t]+reply)?[ \t]*:"
)
"""The strategies' own line-start markers (``USER:``, ``ASSISTANT REPLY:``, ``USER MESSAGE TO
LABEL:``), over the case-folded NFKC skeleton."""
defuse = Defuser(("TURN", "SAMPLE"), ROLE_MARKERS, edges=True)
"""Escapes delimiter and role-marker look-alikes in a message (for strategies with markers)."""


@dataclass(frozen=True, kw_only=True)
class StrategyOptions:
    context_turns: int = 2
    """``with_context``: how many previous user turns (with their replies) to show."""
    max_chars: int = 12_000
    """Longer texts are cut in the middle (the model needs the gist, not every line)."""


@runtime_checkable
class Strategy(Protocol):
    name: str
    description: str
    instructions: str

    def render(self, turn: Turn, options: StrategyOptions) -> str: ...


def shorten(text: str, limit: int) -> str:
    """``text`` cut in the middle to at most about ``limit`` characters."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    omitted = len(text) - 2 * half
    return f"{text[:half]}\n[... {omitted} characters omitted ...]\n{text[-half:]}"


class UserMessageOnly:
    name = "user_message_only"
    description = "The user message alone (default)."
    instructions = ""

    def render(self, turn: Turn, options: StrategyOptions) -> str:
        return shorten(turn.message, options.max_chars)


class WithContext:
    name = "with_context"
    description = "The previous N turns (--context-turns) before the user message."
    instructions = (
        "Earlier turns of the conversation are shown for context; label only the LAST user "
        "message (after 'USER MESSAGE TO LABEL')."
    )

    def render(self, turn: Turn, options: StrategyOptions) -> str:
        users = [i for i, m in enumerate(turn.history) if m.role == "user"]
        start = users[-options.context_turns] if 0 < options.context_turns <= len(users) else 0
        if options.context_turns == 0:
            start = len(turn.history)
        shown = [m for m in turn.history[start:] if m.role in ("user", "assistant")]
        budget = max(options.max_chars // (2 * max(len(shown), 1)), 200)
        lines = [f"{m.role.upper()}: {defuse(shorten(m.content, budget))}" for m in shown]
        message = defuse(shorten(turn.message, options.max_chars // 2))
        lines.append("USER MESSAGE TO LABEL: " + message)
        return "\n\n".join(lines)


class WithResponse:
    name = "with_response"
    description = "The user message and the model's reply to it."
    instructions = (
        "The assistant's reply is shown after the message; use it to judge how much reasoning "
        "the message needed, but label the USER MESSAGE."
    )

    def render(self, turn: Turn, options: StrategyOptions) -> str:
        half = options.max_chars // 2
        reply = turn.response if turn.response is not None else "(no reply)"
        message = defuse(shorten(turn.message, half))
        return f"USER MESSAGE: {message}\n\nASSISTANT REPLY: {defuse(shorten(reply, half))}"


USER_MESSAGE_ONLY = UserMessageOnly()
WITH_CONTEXT = WithContext()
WITH_RESPONSE = WithResponse()


def load_strategies() -> dict[str, Strategy]:
    """Every strategy registered in the ``sftlabel.strategies`` group, by name."""
    found: dict[str, Strategy] = {}
    for obj in load_group(STRATEGIES_GROUP).objects.values():
        if isinstance(obj, Strategy):
            found[obj.name] = obj
    return found


def get_strategy(name: str) -> Strategy:
    strategies = load_strategies()
    if name not in strategies:
        known = ", ".join(sorted(strategies)) or "none"
        raise UsageError(f"unknown strategy {name!r}", hint=f"choose one of: {known}")
    return strategies[name]
