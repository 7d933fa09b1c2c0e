"""The client under rate limits, outages, dead endpoints, rejections, budgets and secrets
(httpx.MockTransport and a virtual clock: no network, no wall-clock timing)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from sftlabel.llm import (
    AuthenticationError,
    Budget,
    BudgetExceededError,
    ChatResult,
    ClientConfig,
    EndpointUnavailableError,
    LLMClient,
    RequestRejectedError,
    ResponseCache,
    RetriesExhaustedError,
    Secret,
    redact_url,
)
from tests.fake_clock import FakeClock

KEY = "sk-test-secret-0123456789"
Handler = Callable[[httpx.Request], httpx.Response]


def completion(content: str = "ok") -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2},
    }


def config(**changes: Any) -> ClientConfig:
    return ClientConfig(
        model="gpt-4o-mini", base_url="http://llm.test/v1", api_key=Secret(KEY), **changes
    )


def question(request: httpx.Request) -> str:
    return str(json.loads(request.content)["messages"][0]["content"])


def many(
    handler: Any,
    calls: int,
    *,
    cfg: ClientConfig | None = None,
    clock: FakeClock | None = None,
    budget: Budget | None = None,
    same: bool = False,
    **chat: Any,
) -> tuple[list[Any], LLMClient]:
    """``calls`` concurrent chats; their results (or errors) and the client."""
    outcomes: list[Any] = [None] * calls
    clock = clock or FakeClock()

    async def main() -> LLMClient:
        transport = httpx.MockTransport(handler)
        async with LLMClient(cfg or config(), transport=transport, clock=clock, budget=budget) as c:

            async def ask(i: int) -> None:
                text = "same" if same else f"q{i}"
                try:
                    outcomes[i] = await c.chat(
                        c.request([{"role": "user", "content": text}]), **chat
                    )
                except Exception as exc:
                    outcomes[i] = exc

            async with anyio.create_task_group() as group:
                for i in range(calls):
                    group.start_soon(ask, i)
            return c

    return outcomes, anyio.run(main)


def test_429s_never_use_up_attempts_and_wait_retry_after() -> None:
    clock = FakeClock()
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        if len(seen) <= 20:
            return httpx.Response(429, headers={"Retry-After": "2"})
        return httpx.Response(200, json=completion())

    [result], client = many(handler, 1, cfg=config(max_attempts=2), clock=clock)
    assert isinstance(result, ChatResult) and result.rate_limited == 20
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert min(gaps) >= 2.0  # never sooner than Retry-After
    assert client.stats.rate_limited == 20


def test_a_429_waits_the_retry_after_given_not_a_grown_backoff() -> None:
    """A storm of `Retry-After: 1`: each retry comes about a second later, however many 429s
    came before (a backoff grown to 10 s would idle the run long after the storm)."""
    clock = FakeClock()
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        if len(seen) <= 15:
            return httpx.Response(429, headers={"Retry-After": "1"})
        return httpx.Response(200, json=completion())

    [result], _ = many(handler, 1, clock=clock)
    assert isinstance(result, ChatResult) and result.rate_limited == 15
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert all(1.0 <= gap <= 1.25 for gap in gaps), gaps


def test_no_progress_budget_ends_an_endless_429() -> None:
    clock = FakeClock()
    started = clock.now()
    outcomes, _ = many(
        lambda r: httpx.Response(429, headers={"Retry-After": "5"}),
        3,
        cfg=config(max_unavailable=60.0, timeout=30.0),
        clock=clock,
    )
    assert all(isinstance(o, EndpointUnavailableError) for o in outcomes)
    assert "no successful answer" in str(outcomes[0])
    assert 60 <= clock.now() - started <= 75


def test_learned_rate_converges_below_a_limit_without_headers() -> None:
    """A server admitting 10 requests/s (token bucket, burst 10) answering 429 with
    Retry-After only; 400 requests at concurrency 20."""
    clock = FakeClock()
    bucket = {"tokens": 10.0, "at": clock.now()}
    counts = {"429": 0, "200": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        now = clock.now()
        bucket["tokens"] = min(10.0, bucket["tokens"] + (now - bucket["at"]) * 10.0)
        bucket["at"] = now
        if bucket["tokens"] < 1:
            counts["429"] += 1
            return httpx.Response(429, headers={"Retry-After": "1"})
        bucket["tokens"] -= 1
        counts["200"] += 1
        return httpx.Response(200, json=completion())

    started = clock.now()
    outcomes, client = many(handler, 400, cfg=config(concurrency=20), clock=clock)
    assert all(isinstance(o, ChatResult) for o in outcomes)
    elapsed = clock.now() - started
    assert 400 / elapsed >= 0.85 * 10  # close to the limit
    assert counts["429"] <= 0.1 * 400
    assert client.learner is not None and client.learner.per_minute is not None
    assert client.learner.per_minute <= 660


def test_a_rate_limit_without_headers_costs_few_429s_from_the_first_second_on() -> None:
    """A provider's token bucket of 3,000 RPM (burst 1 s) answering 429 with Retry-After only,
    200 ms answers, 1,000 requests at concurrency 100: the slow start's overshoot, the first
    measure (inflated by the bucket's saved-up burst) and the probing above the learned rate
    together stay under 2% of the requests, at the limit's throughput."""
    clock = FakeClock()
    rate = 50.0
    bucket = {"tokens": rate, "at": clock.now()}
    counts = {"429": 0, "200": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        now = clock.now()
        bucket["tokens"] = min(rate, bucket["tokens"] + (now - bucket["at"]) * rate)
        bucket["at"] = now
        if bucket["tokens"] < 1:
            counts["429"] += 1
            return httpx.Response(429, headers={"Retry-After": "1"})
        bucket["tokens"] -= 1
        counts["200"] += 1
        await clock.sleep(0.2)
        return httpx.Response(200, json=completion())

    started = clock.now()
    outcomes, client = many(handler, 1000, cfg=config(concurrency=100), clock=clock)
    assert all(isinstance(o, ChatResult) for o in outcomes)
    assert 1000 / (clock.now() - started) >= 0.95 * rate
    assert counts["429"] <= 0.02 * (counts["429"] + counts["200"]), counts
    assert client.learner is not None and client.learner.ceiling is not None
    assert 0.9 * 3000 <= client.learner.ceiling <= 1.1 * 3000  # it found the limit


def test_an_outage_costs_time_not_requests_and_opens_the_circuit() -> None:
    clock = FakeClock()
    down = {"until": clock.now() + 300.0, "during": 0}
    seen_unavailable: list[float | None] = []
    holder: dict[str, LLMClient] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if clock.now() < down["until"]:
            down["during"] += 1
            if "client" in holder:
                seen_unavailable.append(holder["client"].unavailable_since)
            if down["during"] % 2:
                raise httpx.ConnectError("[Errno 111] Connection refused")
            return httpx.Response(503, text="upstream down")
        return httpx.Response(200, json=completion())

    # one success first, so this is an outage, not a dead endpoint
    outcomes: list[Any] = []

    async def main() -> LLMClient:
        transport = httpx.MockTransport(
            lambda r: (
                httpx.Response(200, json=completion()) if question(r) == "warm" else handler(r)
            )
        )
        async with LLMClient(config(concurrency=20), transport=transport, clock=clock) as c:
            holder["client"] = c
            await c.chat(c.request([{"role": "user", "content": "warm"}]))

            async def ask(i: int) -> None:
                try:
                    outcomes.append(await c.chat(c.request([{"role": "user", "content": f"{i}"}])))
                except Exception as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as group:
                for i in range(50):
                    group.start_soon(ask, i)
            assert c.unavailable_since is None
            return c

    client = anyio.run(main)
    assert len(outcomes) == 50 and all(isinstance(o, ChatResult) for o in outcomes)
    assert down["during"] < 60  # probes, not 50 requests hammering for 300 s
    assert any(s is not None for s in seen_unavailable)
    assert client.stats.unavailable_seconds >= 250


def test_a_request_failing_alone_while_others_succeed_fails_after_max_attempts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if question(request) == "q0":
            return httpx.Response(500, text="boom")
        return httpx.Response(200, json=completion())

    outcomes, _ = many(handler, 40, cfg=config(max_attempts=3, concurrency=4))
    assert isinstance(outcomes[0], RetriesExhaustedError)
    assert all(isinstance(o, ChatResult) for o in outcomes[1:])


@pytest.mark.parametrize(
    ("status", "error", "cause"),
    [
        (400, {"message": "The response was filtered", "code": "content_filter"}, "content"),
        (400, {"message": "This model's maximum context length is 8192 tokens"}, "content"),
        (400, {"message": "Invalid prompt: flagged as potentially violating"}, "content"),
        (
            404,
            {"message": "The model `gpt-9` does not exist", "code": "model_not_found"},
            "endpoint",
        ),
        (400, {"message": "Unsupported parameter: 'logit_bias'"}, "endpoint"),
    ],
)
def test_rejections_say_whether_the_content_or_the_endpoint_is_the_cause(
    status: int, error: dict[str, str], cause: str
) -> None:
    [outcome], _ = many(lambda r: httpx.Response(status, json={"error": error}), 1)
    assert isinstance(outcome, RequestRejectedError)
    assert outcome.cause == cause
    assert error["message"] in str(outcome)


def test_answers_refused_by_accept_are_not_cached(tmp_path: Path) -> None:
    cfg = config(cache_path=tmp_path / "c.sqlite")
    replies = iter(["not usable", "usable"])
    handler: Handler = lambda r: httpx.Response(200, json=completion(next(replies)))  # noqa: E731
    [first], client = many(handler, 1, cfg=cfg, accept=lambda res: res.content == "usable")
    assert first.content == "not usable" and client.stats.not_cached == 1
    [second], _ = many(handler, 1, cfg=cfg, accept=lambda res: res.content == "usable")
    assert second.content == "usable" and not second.from_cache
    [third], _ = many(lambda r: httpx.Response(500), 1, cfg=cfg)
    assert third.from_cache and third.content == "usable"


def test_identical_requests_in_flight_are_sent_once(tmp_path: Path) -> None:
    clock = FakeClock()
    sent: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(question(request))
        await clock.sleep(1.0)
        return httpx.Response(200, json=completion("shared"))

    outcomes, client = many(handler, 10, same=True, clock=clock)  # type: ignore[arg-type]
    assert len(sent) == 1
    assert all(o.content == "shared" for o in outcomes)
    assert sum(o.shared for o in outcomes) == 9 and client.stats.coalesced == 9
    assert sum(o.cost for o in outcomes) == pytest.approx(max(o.cost for o in outcomes))


def test_the_cache_is_checked_again_right_before_sending(tmp_path: Path) -> None:
    """Another process stores the answer while this request waits for the rate bucket."""
    clock = FakeClock()
    path = tmp_path / "c.sqlite"
    cfg = config(cache_path=path, rpm=60)  # 1 request a second, a burst of one
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(question(request))
        return httpx.Response(200, json=completion(question(request)))

    async def main() -> list[ChatResult]:
        async with LLMClient(cfg, transport=httpx.MockTransport(handler), clock=clock) as c:
            first = c.request([{"role": "user", "content": "a"}])
            second = c.request([{"role": "user", "content": "b"}])
            from sftlabel.llm import cache_key
            from sftlabel.llm._client import _request_encoder

            other = ResponseCache(path)
            results: list[ChatResult] = []

            async def other_process() -> None:
                await clock.sleep(0.5)
                body = json.dumps(completion("from the other process")).encode()
                other.put(cache_key(c.display_url, _request_encoder.encode(second)), "m", body)

            async def ask(request: Any) -> None:
                results.append(await c.chat(request))

            async with anyio.create_task_group() as group:
                group.start_soon(ask, first)
                group.start_soon(other_process)
                await clock.sleep(0.1)
                group.start_soon(ask, second)
            other.close()
            return results

    results = anyio.run(main)
    assert sent == ["a"]
    assert {r.content for r in results} == {"a", "from the other process"}


def test_budget_reserves_the_worst_case_and_refuses_without_sending() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(question(request))
        return httpx.Response(200, json=completion())

    budget = Budget(cap=0.01)
    outcomes, _ = many(handler, 1, budget=budget)
    assert isinstance(outcomes[0], ChatResult) and budget.reserved == 0
    assert budget.spent == pytest.approx(outcomes[0].cost)
    # max_tokens=4096 by default in the worst case: 4096 x $0.60/M = $0.0025 > what is left
    tight = Budget(cap=0.002, spent=0.0)
    outcomes, _ = many(handler, 1, budget=tight)
    assert isinstance(outcomes[0], BudgetExceededError) and outcomes[0].exit_code == 3
    assert len(sent) == 1 and tight.spent == 0 and tight.reserved == 0


def test_one_budget_shared_by_two_clients() -> None:
    budget = Budget(cap=1.0, spent=0.25)
    handler: Handler = lambda r: httpx.Response(200, json=completion())  # noqa: E731
    many(handler, 3, budget=budget)
    many(handler, 2, budget=budget)
    assert budget.spent == pytest.approx(0.25 + 5 * (10 * 0.15 + 2 * 0.60) / 1e6)
    assert budget.remaining == pytest.approx(1.0 - budget.spent)


def test_a_budget_needs_a_known_price() -> None:
    from sftlabel.errors import ConfigError

    with pytest.raises(ConfigError, match="price"):
        LLMClient(ClientConfig(model="my-local", base_url="http://h/v1"), budget=Budget(1.0))


def test_read_timeout_fits_max_tokens_and_the_connect_timeout_is_separate() -> None:
    timeouts: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(200, json=completion())

    async def main() -> None:
        async with LLMClient(config(), transport=httpx.MockTransport(handler)) as c:
            await c.chat(c.request([{"role": "user", "content": "a"}], max_tokens=1))
            await c.chat(c.request([{"role": "user", "content": "b"}], max_tokens=1000))
            await c.chat(c.request([{"role": "user", "content": "c"}]))

    anyio.run(main)
    assert [t["read"] for t in timeouts] == [pytest.approx(15.05), 65.0, 120.0]
    assert all(t["connect"] == 10.0 for t in timeouts)


def test_a_slow_server_gets_a_longer_wait_after_each_timeout() -> None:
    """A CPU model server taking minutes over a long prompt: the cut sized to max_tokens
    (15 s + 200 / 20) doubles after each timeout, up to --timeout, so the request gets its answer
    instead of timing out forever (the e2e quality harness failed on this)."""
    reads: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        reads.append(request.extensions["timeout"]["read"])
        if reads[-1] < 90:  # the server needs 90 s
            raise httpx.ReadTimeout("timed out")
        return httpx.Response(200, json=completion())

    async def main() -> ChatResult:
        async with LLMClient(
            config(timeout=1800), transport=httpx.MockTransport(handler), clock=FakeClock()
        ) as c:
            return await c.chat(c.request([{"role": "user", "content": "slow"}], max_tokens=200))

    result = anyio.run(main)
    assert reads == [25.0, 50.0, 100.0]
    assert result.attempts == 3


def test_a_timeout_lengthens_the_first_wait_of_every_later_request() -> None:
    """A server slower than the max_tokens estimate for one request is slower for the others:
    after the first request needed 50 s, the next ones wait 50 s at once instead of each
    timing out at 25 s while the server computes its abandoned attempt."""
    reads: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        reads.append(request.extensions["timeout"]["read"])
        if reads[-1] < 40:  # the server needs 40 s
            raise httpx.ReadTimeout("timed out")
        return httpx.Response(200, json=completion())

    async def main() -> None:
        async with LLMClient(
            config(timeout=900), transport=httpx.MockTransport(handler), clock=FakeClock()
        ) as c:
            for text in ("first", "second", "third"):
                await c.chat(c.request([{"role": "user", "content": text}], max_tokens=200))

    anyio.run(main)
    assert reads == [25.0, 50.0, 50.0, 50.0]


def test_the_no_progress_budget_is_never_shorter_than_the_timeout() -> None:
    """`sftlabel test --timeout 900` (a 60 s budget) against a CPU model server that needs
    90 s for a long prompt: the cuts sized to max_tokens time out (25 s, 50 s) before the
    100 s one gets the answer; the run is not declared unavailable at 60 s, as a request may
    take --timeout."""
    clock = FakeClock()
    reads: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        read = request.extensions["timeout"]["read"]
        reads.append(read)
        clock.t += min(read, 90.0)  # the server computes for 90 s
        if read < 90:
            raise httpx.ReadTimeout("timed out")
        return httpx.Response(200, json=completion())

    async def main() -> ChatResult:
        cfg = config(timeout=900, max_unavailable=60.0)
        async with LLMClient(cfg, transport=httpx.MockTransport(handler), clock=clock) as c:
            return await c.chat(c.request([{"role": "user", "content": "slow"}], max_tokens=200))

    result = anyio.run(main)
    assert reads == [25.0, 50.0, 100.0] and result.attempts == 3


def test_hung_requests_are_cut_at_a_multiple_of_the_usual_latency() -> None:
    clock = FakeClock()
    reads: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        reads.append(request.extensions["timeout"]["read"])
        if question(request) == "hang" and reads[-1] < 10:
            raise httpx.ReadTimeout("timed out")
        return httpx.Response(200, json=completion())

    async def main() -> ChatResult:
        async with LLMClient(config(), transport=httpx.MockTransport(handler), clock=clock) as c:
            for i in range(30):
                await c.chat(c.request([{"role": "user", "content": f"q{i}"}], max_tokens=64))
            return await c.chat(c.request([{"role": "user", "content": "hang"}], max_tokens=64))

    result = anyio.run(main)
    assert reads[30:] == [3.0, 6.0, 12.0]  # the floor (answers came at once), then doubled
    assert result.attempts == 3


def test_401_hint_names_the_key_source() -> None:
    [outcome], _ = many(
        lambda r: httpx.Response(401, json={"error": {"message": "bad key"}}),
        1,
        cfg=config(api_key_source="LITELLM_KEY"),
    )
    assert isinstance(outcome, AuthenticationError) and "LITELLM_KEY" in str(outcome.hint)


def test_server_messages_are_scrubbed_before_they_are_cut() -> None:
    message = "x" * 490 + KEY + " and more"
    [outcome], _ = many(lambda r: httpx.Response(400, json={"error": {"message": message}}), 1)
    assert KEY[:8] not in str(outcome)


def test_userinfo_credentials_are_used_but_never_shown() -> None:
    secret_url = f"http://user:{KEY}@llm.test/v1"
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(400, json={"error": {"message": f"bad url {secret_url}"}})

    [outcome], client = many(handler, 1, cfg=ClientConfig(model="m", base_url=secret_url))
    assert "authorization" in sent[0].headers  # httpx sends the userinfo as basic auth
    assert KEY not in str(outcome) and KEY not in client.display_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:KEY@host/v1", "http://<redacted>@host/v1"),
        ("https://host/v1?api-key=KEY&x=1", "https://host/v1?api-key=<redacted>&x=1"),
        ("https://a.blob/c?sv=1&sig=KEY", "https://a.blob/c?sv=1&sig=<redacted>"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_creating_a_client_changes_no_global_state() -> None:
    import stamina

    hooks = stamina.instrumentation.get_on_retry_hooks()
    LLMClient(config())
    assert stamina.instrumentation.get_on_retry_hooks() == hooks


def test_the_cli_config_names_where_the_key_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    from sftlabel.cli._endpoint import build_client_config
    from sftlabel.config import resolve_settings

    monkeypatch.setenv("SFTLABEL_API_KEY", KEY)
    monkeypatch.setenv("SFTLABEL_BASE_URL", f"http://u:{KEY}@llm.test/v1")
    settings = resolve_settings({})
    config = build_client_config(
        "gpt-4o-mini", settings, headers=None, azure_deployment=None, api_version="x",
        timeout=10, concurrency=2, rpm=None, tpm=None, cache=None, no_cache=True, prices=None,
    )  # fmt: skip
    assert config.api_key_source == "SFTLABEL_API_KEY"
    shown = settings.redacted()["base_url"]["value"]
    assert shown == "http://<redacted>@llm.test/v1"


def test_idle_time_between_requests_is_no_lack_of_progress() -> None:
    clock = FakeClock()
    replies = iter([200, 429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(replies)
        if status == 429:
            return httpx.Response(429, headers={"Retry-After": "1"})
        return httpx.Response(200, json=completion())

    async def main() -> ChatResult:
        cfg = config(max_unavailable=60.0)
        async with LLMClient(cfg, transport=httpx.MockTransport(handler), clock=clock) as c:
            await c.chat(c.request([{"role": "user", "content": "a"}]))
            await clock.sleep(3600)  # the caller had nothing to ask for an hour
            return await c.chat(c.request([{"role": "user", "content": "b"}]))

    assert anyio.run(main).rate_limited == 1


def test_a_locked_cache_database_blocks_no_request(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "c.sqlite"
    ResponseCache(path).close()  # create it
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    outcomes: list[ChatResult] = []

    async def main() -> None:
        cfg = config(cache_path=path)
        handler = httpx.MockTransport(lambda r: httpx.Response(200, json=completion("x")))
        client = LLMClient(cfg, transport=handler, clock=FakeClock())
        for i in range(5):
            outcomes.append(
                await client.chat(client.request([{"role": "user", "content": f"{i}"}]))
            )
        # answered while the database is locked; the same question again comes from memory
        again = await client.chat(client.request([{"role": "user", "content": "0"}]))
        assert again.from_cache
        other.execute("COMMIT")  # the lock goes: the writer thread stores the answers
        await client.aclose()

    anyio.run(main)
    other.close()
    assert len(outcomes) == 5
    assert len(ResponseCache(path)) == 5
