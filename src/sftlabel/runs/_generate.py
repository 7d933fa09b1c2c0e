"""The generate task on the engine: one item is one scenario; one request writes its
conversation.

The run directory (:class:`GenerateFiles`, a :class:`RunFiles` with another results file):
``run.json``, ``conversations.jsonl`` (ShareGPT records, appended as they finish and put in
scenario order when the run completes), ``failures.jsonl`` (the scenario, the reason, a preview
of the answer) and ``problems.jsonl``. ``sftlabel label RUN`` reads the conversations.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from sftlabel.errors import UsageError
from sftlabel.generation import AnswerError, Scenario, build_record, generation_messages
from sftlabel.llm import ChatRequest, ChatResult, LLMClient, RequestRejectedError, estimate_tokens
from sftlabel.model import Problem
from sftlabel.runs._engine import ItemFailed, Written
from sftlabel.runs._files import FAILURES, MANIFEST, PROBLEMS, RunFiles, line_order
from sftlabel.runs._files import OFFSET_MASK as _MASK
from sftlabel.runs._manifest import read_manifest

CONVERSATIONS = "conversations.jsonl"
PREVIEW = 2000
"""Characters of an unusable answer kept in its failure record."""
COMPLETION_ESTIMATE = {"single": 700, "multi-turn": 1500, "agentic": 2200}
"""Completion tokens assumed per conversation for estimates, per mode."""


class GenerateFiles(RunFiles):
    """A generate run directory (always one part: the root)."""

    RESULTS = CONVERSATIONS
    APPENDED = (CONVERSATIONS, FAILURES)

    def sort(self) -> int:
        """Rewrite ``conversations.jsonl`` in scenario order (streamed); returns the count."""
        source = self.path(CONVERSATIONS)
        if not source.exists():
            return 0
        order = line_order(source)
        offsets = (key & _MASK for key in order)
        if all(a <= b for a, b in itertools.pairwise(offsets)):
            return len(order)  # already in scenario order
        partial = source.with_name(source.name + ".partial")
        with source.open("rb") as handle, partial.open("wb") as out:
            for key in order:
                handle.seek(key & _MASK)
                out.write(handle.readline().rstrip(b"\r\n") + b"\n")
        partial.replace(source)
        return len(order)


def conversations_of(path: Path) -> Path:
    """``path``, or the conversations file when ``path`` is a generate run directory (so that
    ``sftlabel label RUN`` reads what ``generate`` wrote, not its manifest and failures)."""
    if not (path / MANIFEST).is_file():
        return path
    try:
        kind = read_manifest(path).kind
    except UsageError:  # a damaged manifest: read the directory as it is
        return path
    return path / CONVERSATIONS if kind == "generate" else path


class GenerateTask:
    """A conversation for every scenario."""

    kind = "generate"
    noun = "scenario"

    def __init__(
        self,
        client: LLMClient,
        scenarios: list[Scenario],
        *,
        temperature: float,
        max_tokens: int,
        json_mode: Literal["auto", "on", "off"],
        seed: int | None,
        limit: int | None = None,
        session: int = 1,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.scenarios = scenarios[:limit] if limit is not None else scenarios
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.json_mode = json_mode
        self.json_active = json_mode != "off"
        """False once the endpoint refused ``response_format`` (JSON mode ``auto``)."""
        self.seed = seed
        self.session = session
        self.metadata = metadata or {}

    def items(self, on_problem: Callable[[Problem], None]) -> Iterator[tuple[int, Scenario]]:
        return iter(enumerate(self.scenarios))

    def key(self, item: tuple[int, Scenario]) -> Hashable:
        return item[1].id

    def request(self, scenario: Scenario) -> ChatRequest:
        return self.client.request(
            generation_messages(scenario),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            response_format={"type": "json_object"} if self.json_active else None,
            seed=self.seed,
        )

    async def _chat(self, scenario: Scenario, accept: Callable[[ChatResult], bool]) -> ChatResult:
        while True:
            request = self.request(scenario)
            try:
                return await self.client.chat(request, accept=accept)
            except RequestRejectedError as exc:
                sent_json = request.response_format is not None
                if sent_json and self.json_mode == "auto" and _json_mode_refused(exc):
                    self.json_active = False  # the endpoint does not do JSON mode
                    continue
                raise ItemFailed(
                    "rejected", exc.message, endpoint_fault=exc.cause != "content"
                ) from None

    async def process(self, item: tuple[int, Scenario]) -> Written:
        index, scenario = item
        built: list[dict[str, Any]] = []
        errors: list[AnswerError] = []

        def usable(result: ChatResult) -> bool:
            """Parse once, here: an unusable answer is not cached (a resume asks again)."""
            try:
                built.append(
                    build_record(result.content, scenario, finish_reason=result.finish_reason)
                )
            except AnswerError as exc:
                errors.append(exc)
                return False
            return True

        result = await self._chat(scenario, usable)
        if not built and not errors:
            usable(result)  # from the cache or an identical request in flight
        if not built:
            error = errors[-1]
            raise ItemFailed(
                error.reason,
                error.message,
                monitor={"answer": result.content[:PREVIEW], "finish_reason": result.finish_reason},
            )
        record = built[-1]
        record["metadata"] = {
            "category": scenario.category,
            "mode": scenario.effective_mode,
            **({"expected_labels": scenario.labels} if scenario.labels else {}),
            **({"agentic_signals": scenario.agentic} if scenario.agentic else {}),
            "generator": {
                **self.metadata,
                "scenario_digest": scenario.digest(),
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "cached_tokens": result.cached_tokens,
                "cost": result.cost,
                "from_cache": result.from_cache,
            },
        }
        record["index"] = index
        turns = record["conversations"]
        return Written(
            [(CONVERSATIONS, record)],
            counters={
                f"mode:{scenario.effective_mode}": 1,
                "turns": len(turns),
                "tool_calls": sum(t["from"] == "function_call" for t in turns),
            },
        )

    def failure(self, item: tuple[int, Scenario], exc: ItemFailed) -> Written:
        index, scenario = item
        record: dict[str, Any] = {
            "id": scenario.id,
            "index": index,
            "reason": exc.reason,
            "error": exc.message,
            "session": self.session,
            "scenario": msgspec.to_builtins(scenario),
            **exc.monitor,
        }
        return Written([(FAILURES, record)])


def _json_mode_refused(exc: RequestRejectedError) -> bool:
    text = str(exc).lower()
    return exc.status in (400, 422) and ("response_format" in text or "json" in text)


def generate_estimate(
    scenarios: list[Scenario], model: str, *, max_tokens: int
) -> tuple[int, int, dict[str, int]]:
    """Prompt and completion tokens a run would use (completion capped at ``max_tokens``), and
    the scenarios per mode."""
    prompt = completion = 0
    modes: dict[str, int] = {}
    for scenario in scenarios:
        mode = scenario.effective_mode
        modes[mode] = modes.get(mode, 0) + 1
        prompt += estimate_tokens(ChatRequest(model=model, messages=generation_messages(scenario)))
        completion += min(COMPLETION_ESTIMATE[mode], max_tokens)
    return prompt, completion, modes


__all__ = [
    "CONVERSATIONS",
    "PROBLEMS",
    "GenerateFiles",
    "GenerateTask",
    "conversations_of",
    "generate_estimate",
]
