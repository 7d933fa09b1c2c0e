"""The gold-set generator's task logic: scenario files, the generation prompt, and the check that
turns a model's answer into one ShareGPT conversation (the engine runs it: runs/_generate.py)."""

from sftlabel.generation._conversation import AnswerError, build_record
from sftlabel.generation._prompts import (
    MARKER,
    generation_messages,
    generation_prompt_version,
    scenario_payload,
)
from sftlabel.generation._scenarios import (
    MODES,
    Mode,
    Scenario,
    ScenarioError,
    ToolSpec,
    load_scenarios,
)

__all__ = [
    "MARKER",
    "MODES",
    "AnswerError",
    "Mode",
    "Scenario",
    "ScenarioError",
    "ToolSpec",
    "build_record",
    "generation_messages",
    "generation_prompt_version",
    "load_scenarios",
    "scenario_payload",
]
