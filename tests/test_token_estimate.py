"""Prompt-token estimates (issue 17 item 5): tiktoken for OpenAI families, calibrated elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftlabel import api
from sftlabel.llm import ChatRequest, estimate_tokens, text_tokens
from sftlabel.llm._estimate import (
    EXACT_UP_TO,
    PER_MESSAGE,
    PER_REQUEST,
    calibrated_tokens,
    text_counter,
)
from sftlabel.llm._tokens import offline_encoding

ENGLISH = "Why does my asyncio worker deadlock only when two jobs share a lock? " * 20
CODE = "def f(x: int) -> int:\n    return {k: v for k, v in zip(range(x), range(x))}\n" * 20
CJK = "我的 Go 服务在高并发下偶尔 panic: concurrent map writes，帮我修一下。" * 20


def _request(model: str, *texts: str) -> ChatRequest:
    roles = ["system", "user", "assistant"]
    return ChatRequest(
        model=model,
        messages=[{"role": roles[i % 3], "content": t} for i, t in enumerate(texts)],
    )


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("openai/gpt-4.1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
    ],
)
def test_openai_families_are_counted_exactly_with_tiktoken(model: str, encoding: str) -> None:
    enc = offline_encoding(encoding)
    texts = (ENGLISH, CODE, CJK)
    exact = sum(len(enc.encode_ordinary(t)) for t in texts)
    assert estimate_tokens(_request(model, *texts)) == exact + 3 * PER_MESSAGE + PER_REQUEST
    assert text_tokens(model, "<|endoftext|> is text here") == len(
        enc.encode_ordinary("<|endoftext|> is text here")
    )


@pytest.mark.parametrize("text", [ENGLISH, CODE, CJK])
def test_other_models_get_the_calibrated_estimate_close_to_o200k_and_erring_high(
    text: str,
) -> None:
    o200k = len(offline_encoding("o200k_base").encode_ordinary(text))
    estimate = text_tokens("llama-3.1-70b-instruct", text)
    assert estimate == calibrated_tokens(text)
    # 0.99-1.33 x o200k per text on the shared data; dense indented code is the low end
    assert 0.75 * o200k <= estimate <= 1.6 * o200k


def test_cjk_counts_more_tokens_per_character_than_ascii() -> None:
    assert calibrated_tokens("字" * 1000) > 3 * calibrated_tokens("a" * 1000)
    assert calibrated_tokens("") == 0


def test_one_encoder_per_model_and_repeated_texts_are_encoded_once() -> None:
    assert text_counter("gpt-4o-mini") is text_counter("gpt-4o-mini")
    count = text_counter("gpt-4o")
    system = "a static system prompt " * 500
    before = count.cache_info().hits  # type: ignore[attr-defined]
    for user in ("one", "two", "three"):
        estimate_tokens(_request("gpt-4o", system, user))
    assert count.cache_info().hits - before >= 2  # type: ignore[attr-defined]


def test_fallbacks_long_texts_parts_names_and_tool_calls() -> None:
    long = "x " * (EXACT_UP_TO // 2 + 10)
    assert text_tokens("gpt-4o", long) == calibrated_tokens(long)
    parts = ChatRequest(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": ENGLISH}, {"type": "image_url", "x": 1}],
            },
            {
                "role": "assistant",
                "content": None,
                "name": "bot",
                "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
            },
        ],
    )
    assert estimate_tokens(parts) > text_tokens("gpt-4o", ENGLISH) + 2 * PER_MESSAGE
    assert text_tokens("gpt-4o", "\ud800 lone surrogate") > 0
    assert text_tokens("", ENGLISH) == calibrated_tokens(ENGLISH)


def test_label_dry_run_counts_the_prompts_with_the_models_tokenizer(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    rows = [
        {
            "id": f"r{i}",
            "messages": [
                {"role": "user", "content": f"How do I sort a list in Python? {i}"},
                {"role": "assistant", "content": "Use sorted(items)."},
            ],
        }
        for i in range(3)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    openai = api.label_estimate([data], model="gpt-4o-mini")
    other = api.label_estimate([data], model="some-local-model")
    assert openai.samples == other.samples == 3
    assert openai.prompt_tokens != other.prompt_tokens
    # calibrated (with its margin) errs high against o200k, by less than the margin plus slack
    assert openai.prompt_tokens < other.prompt_tokens < 1.35 * openai.prompt_tokens
