"""What the generator asks the model: a static system prompt (first, so provider prefix caches
serve it) and the scenario as a JSON object."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from sftlabel.generation._scenarios import Scenario

MARKER = "sftlabel-generate/v1"
"""Names the prompt (and lets test servers recognize a generation request)."""

SYSTEM = f"""\
You write one realistic training conversation between a user and an AI coding assistant, for a
supervised fine-tuning gold set ({MARKER}). The user message gives the scenario as JSON:

- "mode": "single" (one user request, one assistant answer), "multi-turn" (the user asks,
  the assistant answers, the user follows up ... exactly "user_turns" user messages, each
  answered), or "agentic" (the assistant works as an agent: it calls tools, reads their results
  and ends with a final answer).
- "query": the user's first message; keep its meaning, you may make it sound natural.
- "category": what kind of request it is. "follow_ups": the user's later messages, in order
  (write the missing ones yourself when there are fewer than user_turns - 1).
- "tools": tools the agent may call; "min_tool_calls": at least that many calls;
  "agentic_signals": behaviours the trace must show (e.g. test-running: it runs the tests).
- "system": the system prompt of the conversation, if any. "labels": what the conversation
  must exhibit (intent, language, domain, task, difficulty, concept, agentic, constraint,
  context). "notes": anything else.

The assistant's answers must be correct, complete and of expert quality: they are the
reference answers other models are judged by.

Answer with ONE JSON object and nothing else:
{{"system": "<the system prompt, or omit>",
 "tools": [{{"name": "...", "description": "...", "parameters": {{<JSON schema>}}}}],
 "conversations": [{{"from": "human", "value": "..."}}, {{"from": "gpt", "value": "..."}}]}}

Turns ("from"): "human" (the user), "gpt" (the assistant), and in agentic mode only
"function_call" (the assistant calls a tool; "value" is a JSON object {{"name": "<tool>",
"arguments": {{...}}}}) and "observation" (the tool's result, as text). The turns alternate
between the user side (human, observation) and the assistant side (gpt, function_call): the
first turn is human, the last is gpt, every function_call is followed by its observation.
"tools" lists every tool called (agentic mode only; omit it otherwise)."""


def scenario_payload(scenario: Scenario) -> dict[str, Any]:
    """The scenario as the model sees it (only what it asks for)."""
    mode = scenario.effective_mode
    payload: dict[str, Any] = {"mode": mode, "query": scenario.query, "category": scenario.category}
    if mode == "multi-turn":
        payload["user_turns"] = scenario.user_turns
        if scenario.follow_ups:
            payload["follow_ups"] = scenario.follow_ups
    if mode == "agentic":
        payload["tools"] = [msgspec.to_builtins(t) for t in scenario.tool_specs]
        payload["min_tool_calls"] = scenario.tool_calls or 1
        if scenario.agentic:
            payload["agentic_signals"] = scenario.agentic
    for name in ("system", "notes"):
        value = getattr(scenario, name)
        if value:
            payload[name] = value
    if scenario.labels:
        payload["labels"] = scenario.labels
    return payload


def generation_messages(scenario: Scenario) -> list[dict[str, Any]]:
    user = msgspec.json.encode(scenario_payload(scenario)).decode()
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def generation_prompt_version() -> str:
    """A hash of the prompt text (recorded in the run's manifest)."""
    return hashlib.blake2b(SYSTEM.encode(), digest_size=6).hexdigest()
