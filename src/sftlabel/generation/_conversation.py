"""A model's answer → one validated ShareGPT record (LLaMA-Factory style for tool turns).

Checks, each failing with its own reason: the answer holds a JSON object (``invalid-json``;
``truncated`` when the model stopped at max_tokens), with a ``conversations`` list of
``{"from", "value"}`` turns (``bad-shape``); roles known, alternating between the user side
(human, observation) and the assistant side (gpt, function_call), first human, last gpt, as many
user turns as the mode asks (``bad-roles``); tool turns only in agentic mode, each call a
``{"name", "arguments"}`` object of a known tool followed by its observation, as many calls as
asked (``bad-tool-turns``); and the record is read back by sftlabel's own ShareGPT reader
(``unreadable``).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.formats import RecordContext, RecordError
from sftlabel.formats.sharegpt import FORMAT
from sftlabel.generation._scenarios import Scenario
from sftlabel.labeling import ReplyFormatError, extract_json
from sftlabel.model import Location

ROLES = {
    "human": "human",
    "user": "human",
    "gpt": "gpt",
    "assistant": "gpt",
    "function_call": "function_call",
    "tool_call": "function_call",
    "observation": "observation",
    "tool": "observation",
    "function": "observation",
}
USER_SIDE = frozenset({"human", "observation"})
TOOL_TURNS = frozenset({"function_call", "observation"})
PREVIEW = 300


class AnswerError(Exception):
    """The answer cannot be used: ``reason`` is one of the module's reasons."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW else flat[:PREVIEW] + "…"


def build_record(
    text: str, scenario: Scenario, *, finish_reason: str | None = None
) -> dict[str, Any]:
    """The ShareGPT record (``id``, ``conversations``, ``system``, ``tools``) of an answer;
    raises :class:`AnswerError`."""
    try:
        answer = extract_json(text)
    except ReplyFormatError as exc:
        if finish_reason == "length":
            raise AnswerError(
                "truncated", f"the answer was cut at max_tokens before its JSON ended: {exc}"
            ) from None
        raise AnswerError("invalid-json", str(exc)) from None
    raw_turns = answer.get("conversations")
    if not isinstance(raw_turns, list) or not raw_turns:
        raise AnswerError(
            "bad-shape",
            f"the answer has no `conversations` list of turns: {_preview(text)!r}",
        )
    system = answer.get("system") if isinstance(answer.get("system"), str) else None
    turns: list[dict[str, str]] = []
    for number, turn in enumerate(raw_turns, 1):
        if not isinstance(turn, dict):
            raise AnswerError("bad-shape", f"turn {number} is not an object")
        role = turn.get("from", turn.get("role"))
        value = turn.get("value", turn.get("content"))
        if not isinstance(role, str):
            raise AnswerError("bad-shape", f"turn {number} has no `from` role")
        canonical = ROLES.get(role.strip().lower())
        if canonical is None and role.strip().lower() == "system" and number == 1:
            system = system or (value if isinstance(value, str) else None)
            continue
        if canonical is None:
            known = ", ".join(sorted(set(ROLES.values())))
            raise AnswerError("bad-roles", f"turn {number} has the unknown role {role!r} ({known})")
        turns.append({"from": canonical, "value": _value(canonical, value, number)})
    _check_roles(turns, scenario)
    tools = _check_tools(turns, scenario, answer.get("tools"))
    record: dict[str, Any] = {"id": scenario.id, "conversations": turns}
    if system or scenario.system:
        record["system"] = system or scenario.system
    if tools:
        record["tools"] = msgspec.json.encode(tools).decode()  # LLaMA-Factory: a JSON string
    _read_back(record)
    return record


def _value(role: str, value: Any, number: int) -> str:
    if role == "function_call" and isinstance(value, dict):
        return msgspec.json.encode(value).decode()
    if role == "observation" and isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    if not isinstance(value, str):
        raise AnswerError("bad-shape", f"turn {number} ({role}) has no text `value`")
    if not value.strip() and role in ("human", "gpt"):
        raise AnswerError("bad-shape", f"turn {number} ({role}) is empty")
    return value


def _check_roles(turns: list[dict[str, str]], scenario: Scenario) -> None:
    mode = scenario.effective_mode
    roles = [t["from"] for t in turns]
    shown = " → ".join(roles)
    if roles[0] != "human":
        raise AnswerError("bad-roles", f"the first turn is {roles[0]}, not human: {shown}")
    if roles[-1] != "gpt":
        raise AnswerError("bad-roles", f"the last turn is {roles[-1]}, not gpt: {shown}")
    if mode != "agentic" and TOOL_TURNS & set(roles):
        raise AnswerError(
            "bad-tool-turns", f"tool turns in a {mode} conversation (tools need mode agentic)"
        )
    for number, (before, after) in enumerate(itertools.pairwise(roles), 2):
        if (before in USER_SIDE) != (after in USER_SIDE):
            continue
        if before == "function_call":
            raise AnswerError(
                "bad-tool-turns",
                f"the function_call of turn {number - 1} has no observation after it",
            )
        if after == "observation":
            raise AnswerError(
                "bad-tool-turns", f"turn {number} is an observation without a function_call"
            )
        raise AnswerError(
            "bad-roles", f"turn {number} ({after}) follows {before}: turns must alternate"
        )
    users = roles.count("human")
    if mode == "single" and users != 1:
        raise AnswerError("bad-roles", f"a single answer has 1 human turn, this one {users}")
    if mode == "multi-turn" and users != scenario.user_turns:
        raise AnswerError(
            "bad-roles",
            f"{scenario.user_turns} human turns were asked for, the conversation has {users}",
        )


def _check_tools(
    turns: list[dict[str, str]], scenario: Scenario, offered: Any
) -> list[dict[str, Any]]:
    """The tool definitions of the record (the answer's, else the scenario's, else the names
    called); every call checked."""
    if scenario.effective_mode != "agentic":
        return []
    tools: list[dict[str, Any]] = []
    if isinstance(offered, list) and all(
        isinstance(t, dict) and isinstance(t.get("name"), str) for t in offered
    ):
        tools = [dict(t) for t in offered]
    names = {t["name"] for t in tools}
    for spec in scenario.tool_specs:
        if spec.name not in names:
            tools.append(msgspec.to_builtins(spec))
            names.add(spec.name)
    calls = 0
    for number, turn in enumerate(turns, 1):
        if turn["from"] == "observation" and turns[number - 2]["from"] != "function_call":
            raise AnswerError(
                "bad-tool-turns", f"turn {number} is an observation without a function_call"
            )
        if turn["from"] != "function_call":
            continue
        calls += 1
        if number == len(turns) or turns[number]["from"] != "observation":
            raise AnswerError(
                "bad-tool-turns", f"the function_call of turn {number} has no observation after it"
            )
        try:
            call = msgspec.json.decode(turn["value"])
        except msgspec.DecodeError:
            call = None
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise AnswerError(
                "bad-tool-turns",
                f"turn {number}: a function_call is a JSON object {{name, arguments}}, got "
                f"{_preview(turn['value'])!r}",
            )
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = msgspec.json.decode(arguments)
            except msgspec.DecodeError:
                raise AnswerError(
                    "bad-tool-turns", f"turn {number}: the arguments are not JSON"
                ) from None
        if not isinstance(arguments, dict):
            raise AnswerError("bad-tool-turns", f"turn {number}: the arguments are not an object")
        if scenario.tools and call["name"] not in names:
            raise AnswerError(
                "bad-tool-turns",
                f"turn {number} calls {call['name']!r}, not one of the tools "
                f"({', '.join(sorted(names))})",
            )
        if call["name"] not in names:
            tools.append({"name": call["name"], "description": "", "parameters": {}})
            names.add(call["name"])
        turn["value"] = msgspec.json.encode({"name": call["name"], "arguments": arguments}).decode()
    wanted = scenario.tool_calls or 1
    if calls < wanted:
        raise AnswerError(
            "bad-tool-turns", f"{wanted} tool call(s) were asked for, the trace has {calls}"
        )
    return tools


def _read_back(record: dict[str, Any]) -> None:
    """The record must be what `sftlabel label` reads: parse it with the ShareGPT reader."""
    where = Location(path="<generated>", index=0)
    try:
        FORMAT.parse(record, RecordContext(Path("<generated>"), where))
    except RecordError as exc:
        raise AnswerError("unreadable", f"the ShareGPT reader rejects it: {exc}") from None
