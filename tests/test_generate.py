"""`sftlabel generate` (the gold-set generator) over HTTP against the fake server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import sftlabel
from sftlabel.formats import Reader
from sftlabel.generation import ScenarioError, load_scenarios
from sftlabel.model import Conversation
from sftlabel.taxonomy import load_taxonomy

from .conftest import jsonl
from .llm_server import FakeLLMServer
from .test_label_run import labeler_rules

EXAMPLE = Path(sftlabel.__file__).parent / "data" / "scenarios" / "example.yaml"
AGENT_TOOLS = ["run_shell", "read_file"]


def scenario_lines(count: int = 10) -> list[dict[str, Any]]:
    """``count`` scenarios cycling through the three modes."""
    found: list[dict[str, Any]] = []
    for i in range(count):
        base: dict[str, Any] = {"id": f"s{i}", "query": f"How do I do task {i}?", "category": "c"}
        if i % 3 == 1:
            base["follow_up"] = f"And what about variant {i}?"
        elif i % 3 == 2:
            base.update(tools=AGENT_TOOLS, tool_calls=2, agentic=["test-running"])
        found.append(base)
    return found


def scenario_file(tmp_path: Path, count: int = 10, name: str = "scenarios.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(s) + "\n" for s in scenario_lines(count)), "utf-8")
    return path


def generate_args(server: FakeLLMServer, out: Path, *extra: str | Path) -> list[str | Path]:
    return [
        "generate",
        *extra,
        "--model",
        "gpt-4o",
        "--base-url",
        server.base_url,
        "-o",
        out,
        "--cache",
        out.parent / "cache.sqlite",
    ]


def conversations(out: Path) -> list[dict[str, Any]]:
    path = out / "conversations.jsonl"
    return jsonl(path.read_text("utf-8")) if path.exists() else []


def test_ten_scenarios_become_ten_valid_sharegpt_conversations(
    cli, llm_server, tmp_path: Path
) -> None:
    out = tmp_path / "gold"
    result = cli(*generate_args(llm_server, out, scenario_file(tmp_path)))
    assert result.exit_code == 0, result.stderr
    assert "10 conversations generated, 0 failed" in result.stderr
    records = conversations(out)
    assert [r["id"] for r in records] == [f"s{i}" for i in range(10)]  # scenario order
    for i, record in enumerate(records):
        roles = [t["from"] for t in record["conversations"]]
        mode = record["metadata"]["mode"]
        assert mode == ("single", "multi-turn", "agentic")[i % 3]
        if mode == "single":
            assert roles == ["human", "gpt"]
        elif mode == "multi-turn":
            assert roles == ["human", "gpt", "human", "gpt"]
            assert record["conversations"][2]["value"] == f"And what about variant {i}?"
        else:
            assert roles == ["human", *["function_call", "observation"] * 2, "gpt"]
            tools = json.loads(record["tools"])
            assert [t["name"] for t in tools] == AGENT_TOOLS
            call = json.loads(record["conversations"][1]["value"])
            assert call["name"] in AGENT_TOOLS and isinstance(call["arguments"], dict)
        assert record["metadata"]["generator"]["model"] == "gpt-4o"
    manifest = json.loads((out / "run.json").read_text("utf-8"))
    assert manifest["kind"] == "generate" and manifest["options"]["model"] == "gpt-4o"
    assert manifest["sessions"][-1]["status"] == "completed"
    assert (out / "failures.jsonl").read_text("utf-8") == ""
    # sftlabel's own reader detects them as ShareGPT, with the scenario ids
    read = list(Reader().read([str(out / "conversations.jsonl")]))
    assert all(isinstance(c, Conversation) and c.source_format == "sharegpt" for c in read)
    assert [c.id for c in read if isinstance(c, Conversation)] == [f"s{i}" for i in range(10)]
    assert llm_server.stats()["chat_requests"] == 10
    status = sftlabel.api.status(out)
    assert (status.kind, status.state, status.labeled, status.failed) == (
        "generate",
        "completed",
        10,
        0,
    )
    shown = cli("status", out)
    assert shown.exit_code == 0 and "10 generated, 0 failed" in shown.stdout


def test_label_reads_the_generated_run(cli, llm_server, tmp_path: Path) -> None:
    out = tmp_path / "gold"
    assert cli(*generate_args(llm_server, out, scenario_file(tmp_path, 4))).exit_code == 0
    llm_server.configure(rules=labeler_rules())
    for given, run in ((out, tmp_path / "run-dir"), (out / "conversations.jsonl", tmp_path / "f")):
        result = cli(
            "label", given, "-o", run, "--model", "gpt-4o-mini", "--base-url",
            llm_server.base_url, "--cache", tmp_path / "cache.sqlite", "--no-arbitration",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        labeled = jsonl((run / "labeled.jsonl").read_text("utf-8"))
        sources = {r["source_id"] for r in labeled}
        assert sources == {"s0", "s1", "s2", "s3"}
        assert {r["source_format"] for r in labeled} == {"sharegpt"}
        assert (run / "problems.jsonl").read_text("utf-8") == ""
        # s1 (multi-turn) is sliced into its two replies; s2 (agentic) into every assistant turn
        assert sum(r["source_id"] == "s1" for r in labeled) == 2
        assert sum(r["source_id"] == "s2" for r in labeled) == 3


def test_unusable_answers_are_failures_with_reasons(cli, llm_server, tmp_path: Path) -> None:
    gpt_first = {"conversations": [{"from": "gpt", "value": "hi"}, {"from": "human", "value": "x"}]}
    no_observation = {
        "conversations": [
            {"from": "human", "value": "q"},
            {"from": "function_call", "value": '{"name": "run_shell", "arguments": {}}'},
            {"from": "gpt", "value": "done"},
        ]
    }
    llm_server.configure(
        rules=[
            {
                "match": "How do I do task 0?",
                "response": {"content": "Sure! Here it is: (no JSON)"},
            },
            {"match": "How do I do task 1?", "response": {"content": json.dumps(gpt_first)}},
            {"match": "How do I do task 2?", "response": {"content": json.dumps(no_observation)}},
            {
                "match": "How do I do task 3?",
                "response": {
                    "content": '{"conversations": [{"from": "human", "value": "x',
                    "finish_reason": "length",
                },
            },
        ]
    )
    out = tmp_path / "gold"
    result = cli(*generate_args(llm_server, out, scenario_file(tmp_path, 6)))
    assert result.exit_code == 1, result.stderr
    failures = {r["id"]: r for r in jsonl((out / "failures.jsonl").read_text("utf-8"))}
    assert {k: v["reason"] for k, v in failures.items()} == {
        "s0": "invalid-json",
        "s1": "bad-roles",
        "s2": "bad-tool-turns",
        "s3": "truncated",
    }
    assert "first turn is gpt" in failures["s1"]["error"]
    assert "no observation" in failures["s2"]["error"]
    assert failures["s0"]["answer"] == "Sure! Here it is: (no JSON)"
    assert failures["s0"]["scenario"]["query"] == "How do I do task 0?"
    assert [r["id"] for r in conversations(out)] == ["s4", "s5"]
    assert "invalid-json 1" in result.stderr
    # unusable answers are not cached: a resume asks again for the failed scenarios only
    llm_server.reset()
    again = cli("generate", "--resume", out, "--cache", tmp_path / "cache.sqlite")
    assert again.exit_code == 0, again.stderr
    assert llm_server.stats()["chat_requests"] == 4
    assert sorted(r["id"] for r in conversations(out)) == [f"s{i}" for i in range(6)]
    assert (out / "failures.jsonl").read_text("utf-8") == ""  # compacted: all generated now


def test_a_429_and_500_storm_costs_time_not_scenarios(llm_server, tmp_path: Path) -> None:
    llm_server.configure(fault_rate={"429": 0.2, "500": 0.2}, seed=3)
    out = tmp_path / "gold"
    result = sftlabel.generate(
        scenario_file(tmp_path),
        model="gpt-4o",
        base_url=llm_server.base_url,
        output=out,
        cache=tmp_path / "cache.sqlite",
        concurrency=4,
    )
    assert (result.status, result.labeled, result.failed) == ("completed", 10, 0)
    stats = llm_server.stats()
    assert stats["by_status"].get("429", 0) > 0 and stats["by_status"].get("500", 0) > 0
    assert result.session.retries > 0
    assert len(conversations(out)) == 10


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "sftlabel", *map(str, args)]


def test_resume_after_kill_9_regenerates_nothing_finished(tmp_path: Path) -> None:
    with FakeLLMServer(latency=0.3) as server:
        out = tmp_path / "gold"
        args = generate_args(server, out, scenario_file(tmp_path))
        process = subprocess.Popen(
            _cli(*args, "--no-cache", "--concurrency", "2"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(conversations(out)) < 3:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        finished = {r["id"] for r in conversations(out)}
        assert 3 <= len(finished) < 10
        server.reset()
        resumed = subprocess.run(
            _cli("generate", "--resume", out, "--no-cache"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert resumed.returncode == 0, resumed.stderr
        # only the scenarios that were not written are asked again
        assert server.stats()["chat_requests"] == 10 - len(finished)
        ids = [r["id"] for r in conversations(out)]
        assert ids == [f"s{i}" for i in range(10)]  # each once, in scenario order
        manifest = json.loads((out / "run.json").read_text("utf-8"))
        assert len(manifest["sessions"]) == 2
        assert manifest["sessions"][-1]["status"] == "completed"


def test_a_second_run_is_served_by_the_cache(cli, llm_server, tmp_path: Path) -> None:
    scenarios = scenario_file(tmp_path, 5)
    assert cli(*generate_args(llm_server, tmp_path / "a", scenarios)).exit_code == 0
    llm_server.reset()
    result = cli(*generate_args(llm_server, tmp_path / "b", scenarios))
    assert result.exit_code == 0, result.stderr
    assert llm_server.stats()["chat_requests"] == 0
    assert len(conversations(tmp_path / "b")) == 5


def test_max_cost_stops_the_run_and_a_resume_goes_on(cli, llm_server, tmp_path: Path) -> None:
    out = tmp_path / "gold"
    scenarios = scenario_file(tmp_path)
    result = cli(
        *generate_args(llm_server, out, scenarios, "--max-cost", "0.046", "--concurrency", "1")
    )
    assert result.exit_code == 3, result.stderr
    manifest = json.loads((out / "run.json").read_text("utf-8"))
    assert manifest["sessions"][-1]["status"] == "budget"
    assert sum(s["cost"] for s in manifest["sessions"]) <= 0.046
    done = len(conversations(out))
    assert 0 < done < 10
    assert f"sftlabel generate --resume {out}" in result.stderr
    more = cli("generate", "--resume", out, "--max-cost", "10")
    assert more.exit_code == 0, more.stderr
    assert len(conversations(out)) == 10


def test_dry_run_counts_and_sends_nothing(cli, llm_server, tmp_path: Path) -> None:
    result = cli(
        "generate", scenario_file(tmp_path), "--model", "gpt-4o", "--dry-run", "--json",
        "--base-url", llm_server.base_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    estimate = json.loads(result.stdout)
    assert estimate["samples"] == 10 and estimate["requests"] == 10
    assert estimate["prompt_tokens"] > 10 * 400 and estimate["cost"] > 0
    assert llm_server.stats()["chat_requests"] == 0


def test_the_example_file_covers_every_dimension(cli) -> None:
    taxonomy = load_taxonomy()
    scenarios = load_scenarios(EXAMPLE, taxonomy)
    assert 10 <= len(scenarios) <= 20
    covered = {dimension for s in scenarios for dimension in s.labels}
    assert covered == set(taxonomy.categories)
    assert {s.effective_mode for s in scenarios} == {"single", "multi-turn", "agentic"}
    printed = cli("generate", "--example")
    assert printed.exit_code == 0 and printed.stdout == EXAMPLE.read_text("utf-8")


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ('{"query": "q"}\n', "s.jsonl", "s.jsonl: line 1: missing field category"),
        (
            '{"query": "q", "category": "c"}\n\n{"query": 3, "category": "c"}\n',
            "s.jsonl",
            "s.jsonl: line 3: query: expected str, got int",
        ),
        ("{oops\n", "s.jsonl", "s.jsonl: line 1: not valid JSON"),
        (
            "- query: q\n  category: c\n- query: r\n  category: c\n  colour: red\n",
            "s.yaml",
            "s.yaml: scenario 2 (line 3): unknown field colour",
        ),
        (
            "- query: q\n  category: c\n  labels: {intent: dance}\n",
            "s.yaml",
            "s.yaml: scenario 1 (line 1): labels.intent: 'dance' is not a intent tag",
        ),
        (
            "- query: q\n  category: c\n  labels: {mood: happy}\n",
            "s.yaml",
            "'mood' is not a dimension",
        ),
        (
            "- {id: a, query: q, category: c}\n- {id: a, query: r, category: c}\n",
            "s.yaml",
            "id 'a' is used twice",
        ),
        (
            "- query: q\n  category: c\n  mode: single\n  tools: [x]\n",
            "s.yaml",
            "tools: tools need mode: agentic",
        ),
        (
            "- query: q\n  category: c\n  mode: telepathy\n",
            "s.yaml",
            "mode: invalid enum value 'telepathy' (modes: single",
        ),
        ("scenarios:\n  - query: ''\n    category: c\n", "s.yaml", "query: must not be empty"),
        ("- [q\n", "s.yaml", "s.yaml: line 2: not valid YAML"),
    ],
)
def test_scenario_file_errors_name_file_scenario_and_field(
    cli, tmp_path: Path, text: str, name: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenarios(path, load_taxonomy())
    assert message in str(caught.value), str(caught.value)
    result = cli("generate", path, "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
                 "-o", tmp_path / "out")  # fmt: skip
    assert result.exit_code == 2
    assert message.split(": ", 1)[-1][:30] in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def test_json_mode_auto_asks_without_it_when_the_endpoint_refuses_it(
    llm_server, tmp_path: Path
) -> None:
    refusal = {"status": 400, "content": "response_format is not supported by this model"}
    llm_server.configure(rules=[{"match": '"response_format"', "response": refusal}])
    result = sftlabel.generate(
        scenario_file(tmp_path, 3),
        model="gpt-4o",
        base_url=llm_server.base_url,
        output=tmp_path / "gold",
        cache=tmp_path / "cache.sqlite",
        concurrency=1,
    )
    assert (result.status, result.labeled, result.failed) == ("completed", 3, 0)
    assert llm_server.stats()["by_status"] == {"400": 1, "200": 3}


# --- the answer check (the library function behind every recorded failure) -----------------


def _scenario(**fields: Any) -> Any:
    from sftlabel.generation import Scenario

    return Scenario(query="q", category="c", id="x", **fields)


def _answer(*turns: tuple[str, Any], **extra: Any) -> str:
    return json.dumps({"conversations": [{"from": r, "value": v} for r, v in turns], **extra})


@pytest.mark.parametrize(
    ("scenario", "answer", "reason", "message"),
    [
        ({}, '{"turns": []}', "bad-shape", "no `conversations` list"),
        ({}, _answer(("human", "q"), ("gpt", 3)), "bad-shape", "no text `value`"),
        ({}, _answer(("human", "q"), ("bot", "a")), "bad-roles", "unknown role 'bot'"),
        ({}, _answer(("human", "q"), ("human", "q"), ("gpt", "a")), "bad-roles", "alternate"),
        ({}, _answer(("human", "q"), ("gpt", "a"), ("human", "more?")), "bad-roles", "last turn"),
        (
            {},
            _answer(("human", "q"), ("gpt", "a"), ("human", "b"), ("gpt", "c")),
            "bad-roles",
            "1 human turn",
        ),
        (
            {"follow_up": "f", "turns": 3},
            _answer(("human", "q"), ("gpt", "a"), ("human", "f"), ("gpt", "b")),
            "bad-roles",
            "3 human turns were asked for",
        ),
        (
            {},
            _answer(("human", "q"), ("function_call", '{"name": "x"}'), ("observation", "o"),
                    ("gpt", "a")),
            "bad-tool-turns",
            "tool turns in a single conversation",
        ),
        (
            {"tools": ["run_shell"]},
            _answer(("human", "q"), ("function_call", '{"name": "rm_rf"}'), ("observation", "o"),
                    ("gpt", "a")),
            "bad-tool-turns",
            "calls 'rm_rf', not one of the tools",
        ),
        (
            {"tools": ["run_shell"]},
            _answer(("human", "q"), ("function_call", "run_shell now"), ("observation", "o"),
                    ("gpt", "a")),
            "bad-tool-turns",
            "is a JSON object {name, arguments}",
        ),
        (
            {"tools": ["run_shell"], "tool_calls": 2},
            _answer(("human", "q"), ("function_call", '{"name": "run_shell"}'),
                    ("observation", "o"), ("gpt", "a")),
            "bad-tool-turns",
            "2 tool call(s) were asked for, the trace has 1",
        ),
        (
            {"agentic": ["test-running"]},
            _answer(("human", "q"), ("observation", "o"), ("gpt", "a")),
            "bad-tool-turns",
            "observation without a function_call",
        ),
    ],
)  # fmt: skip
def test_unusable_answers_are_named_by_their_reason(
    scenario: dict[str, Any], answer: str, reason: str, message: str
) -> None:
    from sftlabel.generation import AnswerError, build_record

    with pytest.raises(AnswerError) as caught:
        build_record(answer, _scenario(**scenario))
    assert caught.value.reason == reason
    assert message in caught.value.message, caught.value.message


def test_answers_are_normalized_into_llama_factory_sharegpt() -> None:
    from sftlabel.generation import build_record

    answer = "```json\n" + json.dumps(
        {
            "conversations": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "run the tests"},
                {"role": "function_call", "content": {"name": "run_shell",
                                                      "arguments": '{"command": "pytest"}'}},
                {"role": "tool", "content": {"passed": 3}},
                {"role": "assistant", "content": "All 3 pass."},
            ]
        }
    ) + "\n```"  # fmt: skip
    record = build_record(answer, _scenario(tools=["run_shell"]))
    assert record["system"] == "You are terse."
    assert [t["from"] for t in record["conversations"]] == [
        "human",
        "function_call",
        "observation",
        "gpt",
    ]
    call = json.loads(record["conversations"][1]["value"])
    assert call == {"name": "run_shell", "arguments": {"command": "pytest"}}
    assert json.loads(record["conversations"][2]["value"]) == {"passed": 3}
    assert [t["name"] for t in json.loads(record["tools"])] == ["run_shell"]
