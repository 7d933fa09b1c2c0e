"""Cached prompt tokens: parsed from every provider's usage shape, priced at the cached price,
shown in the summary, stats, metadata and dashboards, and expected by --dry-run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from sftlabel.llm import ClientConfig, LLMClient, Price, PriceTable

from .conftest import shared, write_jsonl
from .test_label_run import labeler_rules
from .test_llm_client import run


def answer_with(usage: dict[str, Any]) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "model": "m",
            "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 10, **usage},
        },
    )


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens_details": {"cached_tokens": 768}},  # OpenAI, and LiteLLM for all
        {"prompt_cache_hit_tokens": 768, "prompt_cache_miss_tokens": 232},  # DeepSeek
        {"cache_read_input_tokens": 768, "cache_creation_input_tokens": 0},  # Anthropic/LiteLLM
    ],
    ids=["openai", "deepseek", "anthropic-litellm"],
)
def test_cached_tokens_of_every_provider_are_read_and_priced(usage: dict[str, Any]) -> None:
    [result], _, client = run([answer_with(usage)])
    assert (result.prompt_tokens, result.cached_tokens) == (1000, 768)
    # gpt-4o-mini: input 0.15, cached input 0.075, output 0.60 per million
    assert result.cost == pytest.approx((232 * 0.15 + 768 * 0.075 + 10 * 0.60) / 1e6)
    assert client.stats.cached_tokens == 768


def test_a_price_without_a_cached_price_gets_its_familys_discount() -> None:
    table = PriceTable(
        {
            "deepseek-v9": Price(input=1.0, output=2.0),
            "claude-x": Price(input=1.0, output=2.0),
            "gpt-4o-new": Price(input=1.0, output=2.0),
            "mystery": Price(input=1.0, output=2.0),
        }
    )
    assert table.cost("deepseek-v9", 1_000_000, 0, cached=1_000_000) == pytest.approx(0.1)
    assert table.cost("anthropic/claude-x", 1_000_000, 0, cached=1_000_000) == pytest.approx(0.1)
    assert table.cost("gpt-4o-new", 1_000_000, 0, cached=1_000_000) == pytest.approx(0.5)
    assert table.cost("mystery", 1_000_000, 0, cached=1_000_000) == pytest.approx(1.0)
    explicit = PriceTable({"deepseek-v9": Price(input=1.0, output=2.0, cached_input=0.3)})
    assert explicit.cost("deepseek-v9", 1_000_000, 0, cached=1_000_000) == pytest.approx(0.3)


def test_a_run_shows_the_cached_share_everywhere(cli, llm_server, tmp_path: Path) -> None:
    usage = {"prompt_tokens": 1000, "prompt_tokens_details": {"cached_tokens": 800}}
    rules = labeler_rules()
    for rule in rules:
        rule["response"]["usage"] = usage
    llm_server.configure(rules=rules)
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "id": f"r{i}",
                "conversations": [
                    {"from": "human", "value": f"q{i}"},
                    {"from": "gpt", "value": "a"},
                ],
            }
            for i in range(3)
        ],
    )
    run_dir = tmp_path / "run"
    model = ("--model", "gpt-4o-mini", "--base-url", llm_server.base_url, "--no-cache")
    result = cli("label", data, *model, "-o", run_dir, "--json")
    assert result.exit_code == 0, result.stderr
    assert "6,000 prompt (4,800 cached, 80.0%)" in result.stderr
    stats = json.loads((run_dir / "stats.json").read_text("utf-8"))
    assert (stats["total_prompt_tokens"], stats["total_cached_tokens"]) == (6000, 4800)
    assert stats["cached_share"] == 0.8
    completion = stats["total_completion_tokens"]
    expected = (1200 * 0.15 + 4800 * 0.075 + completion * 0.60) / 1e6
    assert stats["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert json.loads(result.stdout)["session"]["cached_tokens"] == 4800
    page = (run_dir / "dashboard.html").read_text("utf-8")
    assert "cached prompt share" in page and "80.0%" in page


def test_softlabel_records_cached_tokens(cli, llm_server, tmp_path: Path) -> None:
    llm_server.configure(
        rules=[
            {
                "match": "TURN",
                "response": {"usage": {"prompt_tokens_details": {"cached_tokens": 5}}},
            }
        ]
    )
    data = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {
                "id": "c",
                "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}],
            }
        ],
    )
    out = tmp_path / "out"
    model = ("--model", "smol", "--base-url", llm_server.base_url, "--no-cache")
    result = cli("softlabel", data, *model, "-o", out, "--no-rationales")
    assert result.exit_code == 0, result.stderr
    meta = json.loads((out / "labeling_metadata.json").read_text("utf-8"))
    assert meta["counts"]["cached_tokens"] == 5
    assert meta["sessions"][0]["cached_tokens"] == 5


def test_dry_run_expects_the_static_prefix_from_the_cache(cli, tmp_path: Path) -> None:
    data = shared("pangu_test_samples.jsonl")
    result = cli("label", data, "--model", "deepseek-v3.2", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    estimate = json.loads(result.stdout)
    assert 0 < estimate["cached_tokens"] < estimate["prompt_tokens"]
    assert estimate["cost"] < estimate["cost_without_cache"]
    assert "prefix cache" in estimate["cache_assumption"]
    table = cli("label", data, "--model", "deepseek-v3.2", "--dry-run")
    assert "(*) assumed: the static prompt prefix" in table.stdout
    assert "cost without any cache hit" in table.stdout


@pytest.mark.parametrize(
    ("model", "setting", "marked"),
    [
        ("anthropic/claude-sonnet-4", None, True),
        ("claude-haiku-4", None, True),
        ("gpt-4o-mini", None, False),
        ("anthropic/claude-sonnet-4", False, False),
        ("deepseek-v3.2", True, True),
    ],
)
def test_anthropic_models_get_a_cache_control_breakpoint_on_the_static_prefix(
    model: str, setting: bool | None, marked: bool
) -> None:
    messages = [
        {"role": "system", "content": "static instructions"},
        {"role": "user", "content": "the sample"},
    ]

    async def build() -> Any:
        config = ClientConfig(model=model, base_url="http://llm.test/v1", cache_control=setting)
        async with LLMClient(config) as client:
            return client.request(messages, max_tokens=5)

    request = anyio.run(build)
    system, user = request.messages
    assert user == messages[1] and messages[0]["content"] == "static instructions"
    if marked:
        assert system["content"] == [
            {"type": "text", "text": "static instructions", "cache_control": {"type": "ephemeral"}}
        ]
    else:
        assert system == messages[0]


def test_a_claude_run_through_a_gateway_labels_with_the_breakpoint(
    cli, llm_server, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "id": "r",
                "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
            }
        ],
    )
    model = ("--model", "anthropic/claude-haiku-4", "--base-url", llm_server.base_url, "--no-cache")
    result = cli("label", data, *model, "-o", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    bodies = [r["body"] for r in llm_server.stats()["recent"] if isinstance(r.get("body"), dict)]
    system = bodies[-1]["messages"][0]
    assert system["role"] == "system" and system["content"][0]["cache_control"] == {
        "type": "ephemeral"
    }
