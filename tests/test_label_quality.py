"""Label quality: the taxonomy's decision rules reach the prompts, local signals reach the model
and the monitor, and answers that contradict the signals are flagged."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from sftlabel import Message, Sample, load_taxonomy
from sftlabel.labeling import (
    Labeler,
    build_messages,
    compute_signals,
    prompt_version,
    signal_warnings,
    static_prompt,
    validate,
)
from sftlabel.labeling._examples import EXAMPLES
from sftlabel.labeling._prompts import PROMPT_FORMAT
from sftlabel.llm import ClientConfig, LLMClient
from sftlabel.llm._tokens import offline_encoding
from sftlabel.model import ToolCall, Truncation

TAXONOMY = load_taxonomy()

# Every disagreement pattern of LABELING.md ("The disagreement patterns that the rules
# addressed") and where the taxonomy carries its rule: (dimension, decision rule id) or
# (dimension, tag id) for a tag's use_when / not_when note; plus words the rule must contain.
PATTERNS: list[tuple[str, str, str, list[str]]] = [
    ("agentic: tool actions need evidence", "agentic", "agentic-tool-evidence", ["evidence"]),
    (
        "agentic: behavioural patterns only when the agent does them",
        "agentic",
        "agentic-behaviour-shown",
        ["plan", "fails", "not agent behaviour"],
    ),
    ("agentic: plain Q&A is empty", "agentic", "agentic-empty-for-plain-answers", ["[]"]),
    ("agentic: an explanation is not planning", "agentic", "planning", ["for the user"]),
    ("concept: data-structures threshold", "concept", "data-structures", ["container"]),
    ("concept: design-patterns only named ones", "concept", "design-patterns", ["SOLID"]),
    ("concept: error-handling only as the focus", "concept", "error-handling", ["try/except"]),
    ("concept: algorithms not sort()", "concept", "algorithms", ["sort()", "complexity"]),
    ("concept: catch-all thresholds", "concept", "concept-catch-all-thresholds", ["threshold"]),
    ("concept: framework APIs", "concept", "concept-not-framework-apis", ["React hooks"]),
    ("concept: infrastructure configuration", "concept", "concept-not-infrastructure", ["YAML"]),
    ("concept: 1-3 typical, none often right", "concept", "concept-few-or-none", ["[]"]),
    ("task: code-optimization explicit", "task", "task-optimization-explicit", ["best practices"]),
    ("task: feature-implementation default", "task", "task-default", ["default"]),
    ("domain: scenario, not technology", "domain", "domain-scenario", ["not the technology"]),
    ("domain: algorithm practice has none", "domain", "domain-none", ["algorithm"]),
    ("domain: most specific, several", "domain", "domain-specific-and-several", ["SaaS"]),
    ("language: fences and frameworks", "language", "language-evidence", ["Django"]),
    ("language: configuration formats", "language", "language-config-formats", ["Terraform"]),
    ("language: none for architecture talk", "language", "language-none", ["architecture"]),
    ("difficulty: level anchors", "difficulty", "difficulty-anchors", ["JIT compilers"]),
    (
        "difficulty: intermediate vs advanced",
        "difficulty",
        "difficulty-intermediate-or-advanced",
        ["advanced"],
    ),
    ("context: scope ladder", "context", "context-scope-ladder", ["SQL statement", "CI workflow"]),
    ("context: greenfield and legacy", "context", "context-greenfield-legacy", ["legacy-code"]),
    ("constraint: stated or implied", "constraint", "constraint-stated-only", ["make it fast"]),
    ("task: best practices not optimization", "task", "code-optimization", ["best practices"]),
]


def _texts(dimension: str, key: str) -> list[str]:
    category = TAXONOMY.categories[dimension]
    for rule in category.decision_rules:
        if rule.id == key:
            return [" ".join(rule.text.split())]
    for tag in category.tags:
        if tag.id == key:
            return [" ".join(t.split()) for t in (tag.use_when, tag.not_when) if t]
    raise AssertionError(f"{dimension} has no decision rule or tag {key!r}")


@pytest.mark.parametrize(("pattern", "dimension", "key", "words"), PATTERNS)
def test_every_labeling_pattern_has_a_rule_in_the_rendered_prompt(
    pattern: str, dimension: str, key: str, words: list[str]
) -> None:
    texts = _texts(dimension, key)
    assert texts, pattern
    joined = " ".join(texts)
    assert all(w in joined for w in words), (pattern, texts)
    prompt = static_prompt(TAXONOMY, TAXONOMY.categories[dimension].call)
    for text in texts:
        assert text in prompt, (pattern, text)


def test_both_prompts_carry_every_rule_and_note_of_their_dimensions() -> None:
    for call in (1, 2):
        prompt = static_prompt(TAXONOMY, call)
        for dimension in TAXONOMY.dimensions(call):
            category = TAXONOMY.categories[dimension]
            for rule in category.decision_rules:
                assert " ".join(rule.text.split()) in prompt, rule.id
            for tag in category.tags:
                for note in (tag.use_when, tag.not_when):
                    assert " ".join(note.split()) in prompt, tag.id
                for other in tag.confusable:
                    assert other in prompt
        # condensed descriptions end at a sentence end (not at "e.g.") or at a word with " …"
        assert "(e.g. a model, its controller" in prompt or call == 1
        # the pool constraint is stated at the start and repeated at the end
        assert prompt.count("only ids from the pools") == 1
        assert "Use ONLY the tag ids" in prompt


def test_prompts_stay_well_below_the_old_token_budget() -> None:
    encoding = offline_encoding("o200k_base")
    sizes = {call: len(encoding.encode(static_prompt(TAXONOMY, call))) for call in (1, 2)}
    assert all(2000 < size < 7000 for size in sizes.values()), sizes


def test_worked_examples_are_valid_answers_and_hit_the_hard_cases() -> None:
    for call, examples in EXAMPLES.items():
        dims = TAXONOMY.dimensions(call)
        for _, answer in examples:
            checked = validate(TAXONOMY, dims, answer)
            assert checked.issues == [], checked.issues
    call2 = [answer for _, answer in EXAMPLES[2]]
    assert any(a["agentic"] == [] and "step by step" in t for t, a in EXAMPLES[2])
    assert any(a["context"] == "single-file" and "GitHub Actions" in t for t, a in EXAMPLES[2])
    assert any("Counter" in t and "data-structures" not in a["concept"] for t, a in EXAMPLES[2])
    assert any("best practices" in t and a["task"] == ["code-refactoring"] for t, a in EXAMPLES[1])
    assert len(call2) >= 4


def _sample(messages: list[Message], **extra: Any) -> Sample:
    return Sample(
        id="s1",
        source_id="s1",
        source_format="sharegpt",
        turn_index=1,
        total_turns=1,
        messages=messages,
        **extra,
    )


AGENT = _sample(
    [
        Message(role="user", content="The build fails, fix it"),
        Message(
            role="assistant",
            content="Let me look.",
            tool_calls=[ToolCall(name="read_file", arguments='{"path": "src/app/main.rs"}')],
        ),
        Message(role="tool", name="read_file", content="fn main() {}\n# see Cargo.toml"),
        Message(role="assistant", content="Fixed:\n```rust\nfn main() {}\n```\n```sh\nls\n```"),
    ],
    truncation=Truncation(original_chars=900, kept_chars=400, omitted_messages=3, gap_at=1),
)
PLAIN = _sample(
    [
        Message(role="user", content="How do closures work in JavaScript?"),
        Message(role="assistant", content="A closure captures ...\n```js\nconst f = () => x\n```"),
    ]
)


def test_signals_are_computed_from_the_sample() -> None:
    signals = compute_signals(AGENT, TAXONOMY)
    assert signals.fence_languages == ["rust", "shell"]
    assert signals.file_languages == ["rust", "toml"]
    assert signals.extensions == [".rs", ".toml"]
    assert (signals.tool_messages, signals.tool_calls, signals.tool_names) == (1, 1, ["read_file"])
    assert (signals.code_blocks, signals.user_turns, signals.messages) == (2, 1, 4)
    assert signals.truncated and signals.omitted_messages == 3
    plain = compute_signals(PLAIN, TAXONOMY)
    assert plain.fence_languages == ["javascript"] and not plain.has_tool_use
    inline = _sample(
        [
            Message(role="user", content="搜索 Python 3.12 的新特性"),
            Message(
                role="assistant",
                content='<tool_call>{"name":"search","query":"x"}</tool_call>Python 3.12 ...',
            ),
        ]
    )
    found = compute_signals(inline, TAXONOMY)  # Pangu's inline calls, as its reader shows them
    assert (found.tool_calls, found.tool_names, found.has_tool_use) == (1, ["search"], True)


def test_signals_follow_the_static_part_and_the_sample() -> None:
    for call in (1, 2):
        messages = build_messages(TAXONOMY, call, AGENT, previous={"intent": "debug"})
        assert messages[0]["content"] == static_prompt(TAXONOMY, call)
        user = messages[1]["content"]
        assert user.index("SAMPLE>>>") < user.index("Local signals")
        assert "code-fence languages: rust, shell" in user
        assert "tool messages: 1; tool calls: 1 (read_file)" in user
        assert "truncated: yes, 3 messages omitted" in user
        other = build_messages(TAXONOMY, call, PLAIN, previous={"intent": "learn"})
        assert other[0] == messages[0]  # the static part is the same for every sample


def test_prompt_version_changes_with_the_taxonomy_text(tmp_path) -> None:
    import shutil

    version = prompt_version(TAXONOMY)
    assert version.startswith(f"{PROMPT_FORMAT}-") and len(version) == 14
    assert prompt_version(TAXONOMY) == version
    copy = tmp_path / "tax"
    shutil.copytree(TAXONOMY.path, copy)
    assert prompt_version(load_taxonomy(copy)) == version
    edited = tmp_path / "edited"  # load_taxonomy caches per directory
    shutil.copytree(TAXONOMY.path, edited)
    text = (edited / "taxonomy.yaml").read_text("utf-8")
    (edited / "taxonomy.yaml").write_text(text.replace("(`planning`)", "(`planning`, say)"))
    assert prompt_version(load_taxonomy(edited)) != version


def test_signal_contradictions_are_warnings() -> None:
    plain = compute_signals(PLAIN, TAXONOMY)
    values = {"agentic": ["bash-execution", "planning"], "language": ["javascript", "rust"]}
    warnings = signal_warnings(TAXONOMY, PLAIN, plain, values)
    assert warnings == [
        "Agentic tool actions (bash-execution) but the sample has no tool calls or tool messages",
        "Language rust has no evidence in the sample (no code fence, file, mention or framework)",
    ]
    # behavioural patterns alone, a language named in the text: no warning
    mentioned = {"agentic": ["planning"], "language": ["javascript"]}
    assert signal_warnings(TAXONOMY, PLAIN, plain, mentioned) == []
    agent = compute_signals(AGENT, TAXONOMY)
    rust = {"agentic": ["bash-execution", "planning"], "language": ["rust", "toml"]}
    assert signal_warnings(TAXONOMY, AGENT, agent, rust) == []


def _answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    answer = {
        "intent": "learn",
        "language": ["javascript"],
        "domain": [],
        "task": ["code-explanation"],
        "difficulty": "beginner",
        "concept": ["functions"],
        "agentic": ["bash-execution", "file-operations"],
        "constraint": [],
        "context": "snippet",
        "confidence": dict.fromkeys(TAXONOMY.dimensions(), 0.9),
        "unmapped": [],
    }
    assert "Local signals" in body["messages"][-1]["content"]
    return httpx.Response(
        200,
        json={
            "model": "m",
            "choices": [{"message": {"role": "assistant", "content": json.dumps(answer)}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        },
    )


def test_labeled_samples_carry_signals_and_the_tool_action_warning() -> None:
    async def main() -> Any:
        config = ClientConfig(model="m", base_url="http://llm.test/v1")
        async with LLMClient(config, transport=httpx.MockTransport(_answer)) as client:
            labeler = Labeler(client, TAXONOMY)
            return await labeler.label(PLAIN), await labeler.label(AGENT)

    plain, agent = anyio.run(main)
    assert plain.monitor["signals"]["fence_languages"] == ["javascript"]
    assert plain.monitor["signals"]["tool_messages"] == 0
    assert any("no tool calls or tool messages" in w for w in plain.monitor["consistency_warnings"])
    assert agent.monitor["signals"]["tool_names"] == ["read_file"]
    assert not any("tool messages" in w for w in agent.monitor["consistency_warnings"])
