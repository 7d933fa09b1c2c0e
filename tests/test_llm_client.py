"""The shared LLM client, through httpx.MockTransport (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from sftlabel.errors import ConfigError
from sftlabel.llm import (
    AdaptiveLimiter,
    AuthenticationError,
    ClientConfig,
    EndpointUnavailableError,
    LLMClient,
    PriceTable,
    RequestRejectedError,
    Secret,
    TokenBucket,
    parse_duration,
)
from tests.fake_clock import FakeClock

KEY = "sk-test-secret-0123456789"


def completion(content: str = "ok", **usage: int) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "choices": [
            {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": usage.get("prompt", 10),
            "completion_tokens": usage.get("completion", 2),
        },
    }


def run(
    responses: list[httpx.Response | Exception] | Callable[[httpx.Request], httpx.Response],
    *,
    config: ClientConfig | None = None,
    calls: int = 1,
    **params: Any,
) -> tuple[list[Any], list[httpx.Request], LLMClient]:
    """Send ``calls`` numbered requests; return the results (or errors), requests and client."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if callable(responses):
            return responses(request)
        item = responses[min(len(seen), len(responses)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    config = config or ClientConfig(
        model="gpt-4o-mini", base_url="http://llm.test/v1", api_key=Secret(KEY), max_attempts=4
    )
    outcomes: list[Any] = []

    async def main() -> LLMClient:
        transport = httpx.MockTransport(handler)
        async with LLMClient(config, transport=transport, clock=FakeClock()) as client:
            for i in range(calls):
                try:
                    outcomes.append(
                        await client.chat(
                            client.request([{"role": "user", "content": f"q{i}"}], **params)
                        )
                    )
                except Exception as exc:
                    outcomes.append(exc)
            return client

    client = anyio.run(main)
    return outcomes, seen, client


def test_request_shape_url_and_auth() -> None:
    [result], [request], client = run(
        [httpx.Response(200, json=completion("hello"))], temperature=0.0
    )
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "q0"}],
        "temperature": 0.0,
    }
    assert result.content == "hello"
    assert (result.prompt_tokens, result.completion_tokens, result.attempts) == (10, 2, 1)
    assert result.cost == pytest.approx((10 * 0.15 + 2 * 0.60) / 1e6)
    assert client.stats.succeeded == 1 and client.stats.requests == 1


@pytest.mark.parametrize("base", ["http://h/v1", "http://h/v1/"])
def test_base_url_joining(base: str) -> None:
    assert ClientConfig(model="m", base_url=base).endpoint() == "http://h/v1/chat/completions"


def test_azure_url_and_api_key_header() -> None:
    config = ClientConfig(
        model="gpt-4o",
        azure_endpoint="https://res.openai.azure.com/",
        azure_deployment="labeler",
        api_version="2024-10-21",
        api_key=Secret(KEY),
    )
    _, [request], _ = run([httpx.Response(200, json=completion())], config=config)
    assert str(request.url) == (
        "https://res.openai.azure.com/openai/deployments/labeler/chat/completions?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == KEY
    assert "authorization" not in request.headers


def test_missing_endpoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no endpoint"):
        ClientConfig(model="m").endpoint()


def test_retries_429_5xx_timeouts_and_resets_then_succeeds() -> None:
    responses: list[httpx.Response | Exception] = [
        httpx.Response(
            429, headers={"retry-after-ms": "5"}, json={"error": {"message": "slow down"}}
        ),
        httpx.Response(503, text="upstream unavailable"),
        httpx.ReadTimeout("read timed out"),
        httpx.Response(200, json=completion("finally")),
    ]
    [result], requests, client = run(responses)
    assert result.content == "finally"
    assert len(requests) == 4
    assert (result.attempts, result.rate_limited) == (4, 1)
    assert client.stats.retries == 3
    assert client.stats.statuses == {"429": 1, "503": 1, "timeout": 1, "200": 1}


def test_400_is_not_retried_and_carries_the_server_message() -> None:
    error = {"error": {"message": "This model's maximum context length is 8192 tokens"}}
    [outcome], requests, client = run([httpx.Response(400, json=error)])
    assert isinstance(outcome, RequestRejectedError)
    assert "maximum context length" in str(outcome)
    assert len(requests) == 1
    assert client.stats.failed == 1


@pytest.mark.parametrize("status", [401, 402])
def test_auth_failures_are_fatal_and_never_show_the_key(status: int) -> None:
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    [outcome], requests, _ = run([httpx.Response(status, json=echo)])
    assert isinstance(outcome, AuthenticationError)
    assert outcome.exit_code == 3
    assert len(requests) == 1
    assert KEY not in str(outcome) and "<redacted>" in str(outcome)


def test_403_is_retried_once() -> None:
    [outcome], requests, _ = run([httpx.Response(403, text="forbidden")] * 3)
    assert isinstance(outcome, RequestRejectedError)
    assert len(requests) == 2
    [result], requests, _ = run(
        [httpx.Response(403, text="busy"), httpx.Response(200, json=completion())]
    )
    assert result.content == "ok" and len(requests) == 2


@pytest.mark.parametrize(
    "bad",
    [
        httpx.Response(200, text='{"choices": [{"message": {"content": "cut'),
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json={"choices": []}),
    ],
)
def test_malformed_answers_are_retried(bad: httpx.Response) -> None:
    [result], requests, _ = run([bad, bad, httpx.Response(200, json=completion("good"))])
    assert result.content == "good" and len(requests) == 3


def test_a_dead_endpoint_stops_within_dead_after_with_one_clear_message() -> None:
    config = ClientConfig(model="m", base_url=f"http://user:{KEY}@llm.test/v1?api-key={KEY}")
    clock = FakeClock()
    outcomes: list[BaseException] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    async def main() -> None:
        async with LLMClient(config, transport=httpx.MockTransport(refuse), clock=clock) as c:

            async def ask(i: int) -> None:
                try:
                    await c.chat(c.request([{"role": "user", "content": f"q{i}"}]))
                except EndpointUnavailableError as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as group:
                for i in range(20):
                    group.start_soon(ask, i)

    started = clock.now()
    anyio.run(main)
    assert len(outcomes) == 20 and len({id(o) for o in outcomes}) == 1
    error = outcomes[0]
    assert error.exit_code == 3
    assert 29 <= clock.now() - started <= 32
    text = f"{error} {error.hint}"
    assert "connection refused" in text and "--base-url" in text
    assert "http://<redacted>@llm.test/v1/chat/completions" in text and KEY not in text


@pytest.mark.parametrize("body", ["<html><body>Sign in</body></html>", "not json"])
def test_html_answers_from_the_start_are_a_dead_endpoint_and_never_cached(
    tmp_path: Path, body: str
) -> None:
    config = ClientConfig(model="m", base_url="http://llm.test/v1", cache_path=tmp_path / "c")
    [outcome], requests, _ = run([httpx.Response(200, text=body)], config=config)
    assert isinstance(outcome, EndpointUnavailableError)
    assert "not a chat completion" in str(outcome) and "/v1" in str(outcome.hint)
    assert 3 <= len(requests) <= 20
    from sftlabel.llm import ResponseCache

    assert len(ResponseCache(tmp_path / "c")) == 0


def test_response_cache_answers_repeats_without_a_request(tmp_path: Path) -> None:
    config = ClientConfig(
        model="gpt-4o-mini", base_url="http://llm.test/v1", cache_path=tmp_path / "c.sqlite"
    )
    [first], requests, _ = run([httpx.Response(200, json=completion("cached"))], config=config)
    assert len(requests) == 1 and not first.from_cache
    [again], requests, client = run([httpx.Response(500)], config=config)
    assert requests == []
    assert again.from_cache and again.content == "cached" and again.cost == 0.0
    assert client.stats.cache_hits == 1
    _, requests, _ = run([httpx.Response(200, json=completion())], config=config, temperature=0.3)
    assert len(requests) == 1  # another parameter, another key


def test_rate_limit_headers_seed_the_request_bucket() -> None:
    headers = {"x-ratelimit-limit-requests": "600", "x-ratelimit-limit-tokens": "90000"}
    _, _, client = run([httpx.Response(200, json=completion(), headers=headers)])
    assert client.rpm is not None and client.rpm.per_minute == pytest.approx(600 * 0.98)
    assert client.tpm is not None and client.tpm.per_minute == pytest.approx(90000 * 0.98)


def test_explicit_rpm_is_not_overridden_by_headers() -> None:
    config = ClientConfig(model="m", base_url="http://llm.test/v1", rpm=100)
    headers = {"x-ratelimit-limit-requests": "600"}
    _, _, client = run([httpx.Response(200, json=completion(), headers=headers)], config=config)
    assert client.rpm is not None and client.rpm.per_minute == 100


def test_a_request_waiting_out_its_backoff_holds_no_slot() -> None:
    """Concurrency 1: A gets a 429 asking for 0.4 s; B must be served during A's wait."""
    clock = FakeClock()
    order: list[str] = []
    state = {"a_tries": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        who = json.loads(request.content)["messages"][0]["content"]
        if who == "A":
            state["a_tries"] += 1
            if state["a_tries"] == 1:
                return httpx.Response(429, headers={"retry-after-ms": "400"})
        order.append(who)
        return httpx.Response(200, json=completion(who))

    config = ClientConfig(model="m", base_url="http://llm.test/v1", concurrency=1, adaptive=False)

    async def main() -> None:
        transport = httpx.MockTransport(handler)
        async with LLMClient(config, transport=transport, clock=clock) as client:

            async def ask(who: str, delay: float) -> None:
                await clock.sleep(delay)
                await client.chat(client.request([{"role": "user", "content": who}]))

            async with anyio.create_task_group() as group:
                group.start_soon(ask, "A", 0.0)
                group.start_soon(ask, "B", 0.05)

    anyio.run(main)
    assert order == ["B", "A"]


def test_adaptive_limiter_backs_off_and_climbs_back() -> None:
    limiter = AdaptiveLimiter(40, cooldown=0.0)
    limiter.on_rate_limited()
    assert limiter.capacity == 28
    limiter.on_rate_limited()
    assert limiter.capacity == 19
    for _ in range(200):
        limiter.on_success()
    assert limiter.capacity == 28
    for _ in range(2000):
        limiter.on_success()
    assert limiter.capacity == 40


def test_adaptive_limiter_counts_one_burst_of_429s_once() -> None:
    limiter = AdaptiveLimiter(50, cooldown=60.0)
    for _ in range(30):
        limiter.on_rate_limited()
    assert limiter.capacity == 35


def test_limiter_survives_cancelled_waiters() -> None:
    async def main() -> int:
        limiter = AdaptiveLimiter(1, adaptive=False)
        await limiter.acquire()
        with anyio.move_on_after(0.05):
            await limiter.acquire()  # cancelled while waiting
        limiter.release()
        with anyio.fail_after(1):
            await limiter.acquire()  # the slot is free again
        return limiter.in_flight

    assert anyio.run(main) == 1


def test_token_bucket_spaces_requests() -> None:
    clock = FakeClock()

    async def main() -> float:
        bucket = TokenBucket(1200, clock=clock)  # 20/s, burst 20
        started = clock.now()
        for _ in range(40):
            await bucket.acquire()
        return clock.now() - started

    assert anyio.run(main) == pytest.approx(1.0, abs=0.01)  # the second 20 waited a second


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20ms", 0.02),
        ("1.5s", 1.5),
        ("6m0s", 360.0),
        ("1h2m", 3720.0),
        ("3", 3.0),
        ("", None),
        ("soon", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_price_table_longest_prefix_and_overrides(tmp_path: Path) -> None:
    table = PriceTable()
    assert table.lookup("gpt-4o-mini-2024-07-18") == table.prices["gpt-4o-mini"]
    assert table.lookup("openai/gpt-4o") == table.prices["gpt-4o"]
    assert table.cost("my-local-model", 1000, 1000) is None
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"my-local": {"input": 1.0, "output": 2.0}}), "utf-8")
    table = PriceTable.with_overrides(prices)
    assert table.cost("my-local-model", 1_000_000, 500_000) == pytest.approx(2.0)


def test_secret_never_shows_in_reprs() -> None:
    config = ClientConfig(
        model="m", base_url="http://h/v1", api_key=Secret(KEY), headers={"X-Key": KEY}
    )
    assert KEY not in repr(config) and KEY not in str(config.api_key)


def test_an_exhausted_rate_window_holds_new_requests_until_its_reset() -> None:
    clock = FakeClock()
    exhausted = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"}
    responses = [
        httpx.Response(200, json=completion(), headers=exhausted),
        httpx.Response(200, json=completion()),
    ]
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        return responses[len(seen) - 1]

    async def main() -> None:
        config = ClientConfig(model="m", base_url="http://llm.test/v1")
        transport = httpx.MockTransport(handler)
        async with LLMClient(config, transport=transport, clock=clock) as client:
            for i in range(2):
                await client.chat(client.request([{"role": "user", "content": f"q{i}"}]))

    anyio.run(main)
    assert seen[1] - seen[0] == pytest.approx(0.3)  # the second request waited for the reset
