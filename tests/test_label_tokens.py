"""Label token ids per model, and reading the first token's logprobs."""

from __future__ import annotations

import json
import math

import anyio
import httpx
import pytest
import tiktoken.load

from sftlabel.errors import ConfigError, UsageError
from sftlabel.llm import ClientConfig, LLMClient
from sftlabel.llm._tokens import (
    offline_encoding,
    openai_encoding_name,
    parse_label_token_ids,
    resolve_label_tokens,
)
from sftlabel.softlabel import first_token, read_labels


@pytest.fixture
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken must never fetch an encoding: the network reaches package registries only."""

    def refuse(*_args: object, **_kwargs: object) -> bytes:
        raise AssertionError("tiktoken tried to download an encoding")

    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", refuse)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("deepseek-v3.2", None),
        ("llama-3.1-8b", None),
        ("smol", None),
    ],
)
def test_openai_families(model: str, encoding: str | None) -> None:
    assert openai_encoding_name(model) == encoding


@pytest.mark.usefixtures("no_downloads")
def test_offline_encodings_match_tiktoken() -> None:
    cl100k = offline_encoding("cl100k_base")
    o200k = offline_encoding("o200k_base")
    # reference ids published for these encodings
    assert cl100k.encode("hello world") == [15339, 1917]
    assert o200k.encode("hello world") == [24912, 2375]
    for encoding in (cl100k, o200k):
        assert encoding.encode("0") == [15] and encoding.encode("1") == [16]
        text = "def f(x):\n    return x * 2  # 数字"
        assert encoding.decode(encoding.encode(text)) == text
    assert cl100k.n_vocab == 100277 and o200k.n_vocab == 200019


def test_parse_label_token_ids() -> None:
    assert parse_label_token_ids("0=32, 1=33").ids == {"0": 32, "1": 33}
    for bad in ("0=32", "0=a,1=2", "x=1,1=2", "0=5,1=5"):
        with pytest.raises(UsageError):
            parse_label_token_ids(bad)


def client_with(handler: httpx.MockTransport, model: str) -> LLMClient:
    config = ClientConfig(model=model, base_url="http://server/v1", cache_path=None)
    return LLMClient(config, transport=handler)


def resolve(handler: httpx.MockTransport, model: str) -> object:
    async def run() -> object:
        async with client_with(handler, model) as client:
            return await resolve_label_tokens(client)

    return anyio.run(run)


@pytest.mark.usefixtures("no_downloads")
def test_openai_model_without_tokenize_endpoint_uses_tiktoken() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(404, json={"error": "not found"})

    tokens = resolve(httpx.MockTransport(handle), "gpt-4o")
    assert tokens.ids == {"0": 15, "1": 16}  # type: ignore[attr-defined]
    assert tokens.source == "tiktoken:o200k_base"  # type: ignore[attr-defined]
    assert "/v1/tokenize" in seen and "/extras/tokenize" in seen


def test_server_tokenizer_wins_and_is_verified() -> None:
    vocab = {"0": 32, "1": 33}

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/extras/tokenize":
            return httpx.Response(200, json={"tokens": [vocab[body["input"]]]})
        if request.url.path == "/extras/detokenize":
            text = {v: k for k, v in vocab.items()}[body["tokens"][0]]
            return httpx.Response(200, json={"text": text})
        return httpx.Response(404)

    tokens = resolve(httpx.MockTransport(handle), "gpt-4o")  # a proxy's name; its own tokenizer
    assert tokens.ids == vocab and tokens.verified  # type: ignore[attr-defined]
    assert tokens.source == "tokenize:/extras/tokenize"  # type: ignore[attr-defined]


def test_a_label_that_is_not_one_token_is_refused() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"tokens": [1, 2]})
        return httpx.Response(404)

    with pytest.raises(ConfigError, match="splits '0' into 2 tokens"):
        resolve(httpx.MockTransport(handle), "qwen")


def test_unknown_tokenizer_asks_for_explicit_ids() -> None:
    with pytest.raises(ConfigError, match="not an OpenAI model family") as caught:
        resolve(httpx.MockTransport(lambda _r: httpx.Response(404)), "deepseek-v3.2")
    assert "--label-token-ids" in (caught.value.hint or "")


def test_first_token_reads_the_legacy_completions_shape() -> None:
    legacy = {
        "tokens": ["0"],
        "token_logprobs": [-0.5],
        "top_logprobs": [{"0": -0.5, "1": -1.0, " ": -3.0}],
    }
    first = first_token(legacy)
    assert first is not None and first.token == "0"
    reading = read_labels(first)
    assert reading is not None
    assert reading.soft == pytest.approx(math.exp(-1.0) / (math.exp(-0.5) + math.exp(-1.0)))
    assert first_token(None) is None and first_token({"content": None}) is None


def one_position(top: dict[str, float]) -> dict[str, object]:
    first = max(top, key=lambda t: top[t])
    entries = [{"token": t, "logprob": lp} for t, lp in top.items()]
    return {"content": [{"token": first, "logprob": top[first], "top_logprobs": entries}]}


def test_equal_bias_keeps_the_ratio() -> None:
    """The soft label of both tokens biased by the same amount equals the unbiased one."""
    p0, p1 = math.log(0.2), math.log(0.1)
    shift = 5.0 - math.log(0.7 + 0.3 * math.exp(5.0))  # +5 on both, renormalized
    plain = read_labels(first_token(one_position({"0": p0, "1": p1})))  # type: ignore[arg-type]
    biased = read_labels(first_token(one_position({"0": p0 + shift, "1": p1 + shift})))  # type: ignore[arg-type]
    assert plain is not None and biased is not None
    assert plain.soft == pytest.approx(biased.soft) == pytest.approx(1 / 3)
