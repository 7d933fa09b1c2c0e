"""Scenario files of the gold-set generator: YAML (a list, or ``scenarios:`` holding one) or
JSONL (one scenario per line).

A scenario says what conversation to write: the user's ``query`` and a ``category``; a
``follow_up`` (or several) for a multi-turn conversation; ``tools`` and ``agentic`` hints for an
agent trace with tool turns; the labels it is meant to exhibit (``labels``, on the taxonomy's
dimensions). Every error names the file, the scenario (line or index) and the field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from sftlabel.errors import UsageError
from sftlabel.taxonomy import Taxonomy

Mode = Literal["single", "multi-turn", "agentic"]
MODES: tuple[Mode, ...] = ("single", "multi-turn", "agentic")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ToolSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A tool the agent may call (a bare name in the file is a tool with no description)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = {}


class Scenario(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One conversation to generate."""

    query: str
    """What the user asks first (the model may rephrase it naturally, never change it)."""
    category: str
    """What kind of request this is (free text, e.g. a taxonomy intent or task)."""
    id: str = ""
    """Stable id of the conversation [default: ``scenario-<n>``, n its 1-based position]."""
    mode: Mode | None = None
    """single | multi-turn | agentic [default: agentic with tools or agentic hints, multi-turn
    with a follow-up or turns > 1, else single]."""
    follow_up: str | list[str] | None = None
    """The user's next message(s) of a multi-turn conversation."""
    turns: int | None = None
    """User turns of a multi-turn conversation [default: 1 + the follow-ups, at least 2]."""
    tools: list[str | ToolSpec] = []
    """Tools the agent can call (names or {name, description, parameters})."""
    tool_calls: int | None = None
    """At least this many tool calls in an agentic trace [default: 1]."""
    agentic: list[str] = []
    """Agentic signals the trace should show (taxonomy agentic tags, e.g. test-running)."""
    system: str | None = None
    """A system prompt for the conversation."""
    labels: dict[str, str | list[str]] = {}
    """The labels the conversation is meant to exhibit, per taxonomy dimension."""
    notes: str | None = None
    """Anything else the generator should know."""

    @property
    def effective_mode(self) -> Mode:
        if self.mode is not None:
            return self.mode
        if self.tools or self.agentic or self.tool_calls:
            return "agentic"
        if self.follow_up or (self.turns or 1) > 1:
            return "multi-turn"
        return "single"

    @property
    def follow_ups(self) -> list[str]:
        if self.follow_up is None:
            return []
        return [self.follow_up] if isinstance(self.follow_up, str) else list(self.follow_up)

    @property
    def user_turns(self) -> int:
        """User turns a multi-turn conversation must have (1 otherwise)."""
        if self.effective_mode != "multi-turn":
            return 1
        return self.turns or max(2, len(self.follow_ups) + 1)

    @property
    def tool_specs(self) -> list[ToolSpec]:
        return [ToolSpec(name=t) if isinstance(t, str) else t for t in self.tools]

    def digest(self) -> str:
        """A hash of what the scenario asks (recorded with the conversation)."""
        return hashlib.blake2b(msgspec.json.encode(self), digest_size=8).hexdigest()


class ScenarioError(UsageError):
    """A scenario file that cannot be used (exit status 2), naming file, scenario and field."""


def load_scenarios(path: str | Path, taxonomy: Taxonomy | None = None) -> list[Scenario]:
    """The scenarios of a YAML or JSONL file, validated; raises :class:`ScenarioError`."""
    file = Path(path)
    if not file.is_file():
        raise ScenarioError(
            f"{file}: no such scenario file",
            hint="pass a .yaml or .jsonl file (an example: sftlabel generate --example)",
        )
    text = _read(file)
    if file.suffix.lower() in (".jsonl", ".ndjson"):
        raw = list(_jsonl(file, text))
    else:
        raw = _yaml(file, text)
    if not raw:
        raise ScenarioError(f"{file}: no scenarios in the file")
    scenarios: list[Scenario] = []
    seen: dict[str, str] = {}
    for position, (where, value) in enumerate(raw):
        scenario = _convert(file, where, value)
        if not scenario.id:
            scenario = msgspec.structs.replace(scenario, id=f"scenario-{position + 1:04d}")
        _check(file, where, scenario, taxonomy)
        if scenario.id in seen:
            raise ScenarioError(
                f"{file}: {where}: id {scenario.id!r} is used twice (first at {seen[scenario.id]})",
                hint="every scenario needs its own id (it names the conversation)",
            )
        seen[scenario.id] = where
        scenarios.append(scenario)
    return scenarios


def _read(file: Path) -> str:
    try:
        return file.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _jsonl(file: Path, text: str) -> Iterable[tuple[str, Any]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            yield f"line {number}", msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            raise ScenarioError(f"{file}: line {number}: not valid JSON ({exc})") from None


class _LineLoader(yaml.SafeLoader):
    """Records the line of each mapping (``__line__``) so errors can point at a scenario."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def _yaml(file: Path, text: str) -> list[tuple[str, Any]]:
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{file}: {where}not valid YAML ({problem})") from None
    if isinstance(data, dict):
        data.pop("__line__", None)
        if set(data) != {"scenarios"}:
            extra = ", ".join(sorted(str(k) for k in data if k != "scenarios"))
            raise ScenarioError(
                f"{file}: expected a list of scenarios or one `scenarios:` key"
                + (f" (unknown keys: {extra})" if extra else "")
            )
        data = data["scenarios"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise ScenarioError(f"{file}: expected a list of scenarios, got {type(data).__name__}")
    found: list[tuple[str, Any]] = []
    for index, item in enumerate(data):
        line = item.pop("__line__", None) if isinstance(item, dict) else None
        found.append((f"scenario {index + 1}" + (f" (line {line})" if line else ""), item))
    return found


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _convert(file: Path, where: str, value: Any) -> Scenario:
    if not isinstance(value, dict):
        raise ScenarioError(
            f"{file}: {where}: a scenario is a mapping with at least query and category, got "
            f"{type(value).__name__}"
        )
    value = _strip_lines(value)
    try:
        return msgspec.convert(value, Scenario)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{file}: {where}: {_field_message(str(exc))}") from None


def _field_message(message: str) -> str:
    """msgspec's ``Expected `str`, got `int` - at `$.query``` as ``query: expected str, got
    int``."""
    text, _, at = message.partition(" - at `$")
    field = at.rstrip("`").lstrip(".")
    text = text.replace("`", "")
    if text.startswith("Object missing required field"):
        return f"missing field {text.rsplit(' ', 1)[-1]}"
    if text.startswith("Object contains unknown field"):
        known = ", ".join(Scenario.__struct_fields__)
        name = text.rsplit(" ", 1)[-1]
        return f"unknown field {(field + '.') if field else ''}{name} (fields: {known})"
    text = text[:1].lower() + text[1:]
    if field == "mode":
        text += f" (modes: {', '.join(MODES)})"
    return f"{field}: {text}" if field else text


def _check(file: Path, where: str, scenario: Scenario, taxonomy: Taxonomy | None) -> None:
    def fail(field: str, message: str) -> None:
        raise ScenarioError(f"{file}: {where}: {field}: {message}")

    if not scenario.query.strip():
        fail("query", "must not be empty")
    if not scenario.category.strip():
        fail("category", "must not be empty")
    if not _ID.match(scenario.id):
        fail("id", f"{scenario.id!r} is not an id (letters, digits, . _ : -; at most 128)")
    mode = scenario.effective_mode
    if scenario.turns is not None and scenario.turns < 1:
        fail("turns", "must be at least 1")
    if mode == "multi-turn" and scenario.user_turns < 2:
        fail("turns", "a multi-turn conversation has at least 2 user turns")
    if mode == "multi-turn" and scenario.user_turns < len(scenario.follow_ups) + 1:
        fail("turns", f"{scenario.user_turns} is fewer than the query and its follow-ups")
    if mode == "single" and (scenario.follow_up or (scenario.turns or 1) > 1):
        fail("mode", "a single answer has no follow-up (use mode: multi-turn)")
    if mode != "agentic" and (scenario.tools or scenario.tool_calls):
        fail("tools", f"tools need mode: agentic (this scenario is {mode})")
    if scenario.tool_calls is not None and scenario.tool_calls < 1:
        fail("tool_calls", "must be at least 1")
    names = [t.name for t in scenario.tool_specs]
    if any(not n.strip() for n in names):
        fail("tools", "a tool needs a name")
    if len(set(names)) != len(names):
        fail("tools", "a tool name is given twice")
    if taxonomy is None:
        return
    dimensions = list(taxonomy.categories)
    for signal in scenario.agentic:
        if "agentic" in taxonomy.categories and taxonomy.resolve("agentic", signal) is None:
            fail("agentic", f"{signal!r} is not an agentic tag of the taxonomy")
    for dimension, value in scenario.labels.items():
        if dimension not in taxonomy.categories:
            fail(
                "labels", f"{dimension!r} is not a dimension (dimensions: {', '.join(dimensions)})"
            )
        for tag in [value] if isinstance(value, str) else value:
            if taxonomy.resolve(dimension, tag) is None:
                fail(f"labels.{dimension}", f"{tag!r} is not a {dimension} tag of the taxonomy")
