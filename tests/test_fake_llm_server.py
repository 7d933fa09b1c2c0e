"""The fake OpenAI-compatible server that integration tests and benchmarks use, over HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .llm_server import SERVER_SCRIPT, FakeLLMServer

KEY = "sk-fake-secret-9f8e7d6c5b4a"
DEFAULT_CONTENT = '{"ok": true}'


def chat_body(text: str = "x" * 40, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture
def client(llm_server: FakeLLMServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=llm_server.url, timeout=5, trust_env=False) as http:
        yield http


def chat(client: httpx.Client, text: str = "x" * 40, **extra: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json=chat_body(text, **extra))


def content_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def test_default_reply_has_the_openai_shape_and_estimated_usage(client: httpx.Client) -> None:
    response = chat(client, "x" * 40)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert isinstance(data["created"], int)
    assert data["model"] == "gpt-test"
    (choice,) = data["choices"]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": DEFAULT_CONTENT},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert data["usage"] == {
        "prompt_tokens": 10,  # 40 characters / 4
        "completion_tokens": 3,  # 12 characters / 4
        "total_tokens": 13,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_one_token_logprobs_request_gets_a_1_with_top_logprobs(client: httpx.Client) -> None:
    data = chat(client, "Is it?", logprobs=True, top_logprobs=2, max_tokens=1).json()

    choice = data["choices"][0]
    assert choice["message"]["content"] == "1"
    (token,) = choice["logprobs"]["content"]
    assert token["token"] == "1"
    assert token["logprob"] == -0.2
    assert token["top_logprobs"] == [
        {"token": "1", "logprob": -0.2},
        {"token": "0", "logprob": -1.7},
    ]
    assert data["usage"]["prompt_tokens"] == 1  # at least 1


def test_scripted_answers_are_consumed_in_order(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    assert llm_server.script({"content": "first"}, {"content": {"label": "second"}}) == 2
    llm_server.script(
        {"content": "third", "finish_reason": "length", "usage": {"prompt_tokens": 7}}
    )

    assert content_of(chat(client)) == "first"
    assert json.loads(content_of(chat(client))) == {"label": "second"}
    third = chat(client).json()
    assert third["choices"][0]["message"]["content"] == "third"
    assert third["choices"][0]["finish_reason"] == "length"
    assert third["usage"]["prompt_tokens"] == 7
    assert third["usage"]["total_tokens"] == 7 + third["usage"]["completion_tokens"]
    assert content_of(chat(client)) == DEFAULT_CONTENT
    assert llm_server.stats()["script_remaining"] == 0


def test_scripted_logprobs_and_tool_calls(llm_server: FakeLLMServer, client: httpx.Client) -> None:
    logprobs = {"content": [{"token": "0", "logprob": -0.1, "top_logprobs": []}]}
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    llm_server.script({"content": "0", "logprobs": logprobs}, {"tool_calls": [call]})

    assert chat(client).json()["choices"][0]["logprobs"] == logprobs
    choice = chat(client).json()["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert choice["finish_reason"] == "tool_calls"


def test_scripted_status_with_retry_headers(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    llm_server.script(
        {"status": 429, "headers": {"Retry-After": "2"}},
        {"status": 503, "headers": {"retry-after-ms": "300"}, "content": "overloaded"},
    )

    first = chat(client)
    assert first.status_code == 429
    assert first.headers["retry-after"] == "2"
    assert "message" in first.json()["error"]
    second = chat(client)
    assert second.status_code == 503
    assert second.headers["retry-after-ms"] == "300"
    assert second.json()["error"]["message"] == "overloaded"
    assert chat(client).status_code == 200


def test_raw_body_is_sent_as_is(llm_server: FakeLLMServer, client: httpx.Client) -> None:
    llm_server.script(
        {"body": '{"choices": [{"message": {"content": "trunc'},
        {
            "status": 502,
            "body": "<html>Bad Gateway</html>",
            "headers": {"Content-Type": "text/html"},
        },
    )

    truncated = chat(client)
    assert truncated.status_code == 200
    assert truncated.text == '{"choices": [{"message": {"content": "trunc'
    gateway = chat(client)
    assert gateway.status_code == 502
    assert gateway.headers["content-type"] == "text/html"
    assert gateway.text == "<html>Bad Gateway</html>"


@pytest.mark.parametrize("close", [True, "fin"])
def test_close_drops_the_connection_without_an_answer(
    llm_server: FakeLLMServer, client: httpx.Client, close: bool | str
) -> None:
    llm_server.script({"close": close})

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        chat(client)
    assert content_of(chat(client)) == DEFAULT_CONTENT  # a new connection works
    stats = llm_server.stats()
    assert stats["closed"] == 1
    assert stats["recent"][0]["status"] == "closed"


def test_delay_outlasts_a_short_client_timeout(llm_server: FakeLLMServer) -> None:
    llm_server.script({"delay": 30})

    with httpx.Client(base_url=llm_server.url, timeout=0.3, trust_env=False) as client:
        with pytest.raises(httpx.ReadTimeout):
            chat(client)
        assert content_of(chat(client)) == DEFAULT_CONTENT
    # the server notices the client gave up and stops waiting
    deadline = time.monotonic() + 3
    while (stats := llm_server.stats())["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats["in_flight"] == 0
    assert stats["abandoned"] == 1


def test_latency_applies_to_every_answer(llm_server: FakeLLMServer, client: httpx.Client) -> None:
    # (how long answers take is measured in bench/, not asserted here)
    assert llm_server.configure(latency=0.3)["latency"] == 0.3
    llm_server.script({"content": "quick", "delay": 0})
    assert content_of(chat(client)) == "quick"
    assert content_of(chat(client)) == DEFAULT_CONTENT


def test_rules_answer_matching_requests_when_the_script_is_empty(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    llm_server.configure(
        rules=[
            {"match": "banana", "response": {"content": "yellow"}},
            {"match": "ü-key", "response": {"status": 500}},
            {"match": "fruit", "response": {"content": "generic fruit"}},
        ],
        default_content="plain",
    )
    llm_server.script({"content": "scripted"})

    assert content_of(chat(client, "a banana, a fruit")) == "scripted"
    assert content_of(chat(client, "a banana, a fruit")) == "yellow"
    assert content_of(chat(client, "some fruit")) == "generic fruit"
    assert chat(client, "the ü-key").status_code == 500  # sent as \\u00fc-key by httpx
    assert content_of(chat(client, "nothing")) == "plain"


def test_invalid_settings_and_specs_are_refused(llm_server: FakeLLMServer) -> None:
    with pytest.raises(RuntimeError, match="unknown keys"):
        llm_server.script({"contnet": "typo"})
    with pytest.raises(RuntimeError, match="unknown config keys"):
        llm_server.configure(latancy=1)
    with pytest.raises(RuntimeError, match="fault rate"):
        llm_server.configure(fault_rate="429=lots")


def test_rpm_limit_from_the_command_line() -> None:
    with (
        FakeLLMServer(rpm=5, fault_rate="429=0.0,500=0.0") as server,
        httpx.Client(base_url=server.url, timeout=5, trust_env=False) as client,
    ):
        answers = [chat(client) for _ in range(6)]

        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == [
            "4",
            "3",
            "2",
            "1",
            "0",
            "0",
        ]
        assert all(a.headers["x-ratelimit-limit-requests"] == "5" for a in answers)
        assert answers[0].headers["x-ratelimit-reset-requests"].endswith("s")
        limited = answers[-1]
        assert 55 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert server.stats()["rate_limited"] == 1

        server.reset()  # the window is emptied, the command-line settings stay
        settings = server.configure()
        assert settings["rpm"] == 5
        assert settings["fault_rate"] == {"429": 0.0, "500": 0.0}
        assert chat(client).status_code == 200


def test_tpm_limit_counts_prompt_and_max_tokens(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    llm_server.configure(tpm=100)

    first = chat(client, "x" * 40, max_tokens=60)  # 10 + 60 tokens
    assert first.status_code == 200
    assert first.headers["x-ratelimit-remaining-tokens"] == "30"
    second = chat(client, "x" * 40, max_tokens=60)
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1
    assert chat(client, "x" * 40, max_tokens=20).status_code == 200  # 30 still fit


def test_fault_rate_is_roughly_honoured(llm_server: FakeLLMServer, client: httpx.Client) -> None:
    llm_server.configure(fault_rate={"500": 0.2, "429": 0.1}, seed=7)

    statuses = Counter(chat(client).status_code for _ in range(300))

    assert 30 <= statuses[500] <= 90
    assert 12 <= statuses[429] <= 50
    assert statuses[200] == 300 - statuses[500] - statuses[429]
    assert llm_server.stats()["faults"] == statuses[500] + statuses[429]


def test_fault_draws_are_reproducible_with_a_seed(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    runs = []
    for _ in range(2):
        llm_server.configure(fault_rate="500=0.5", seed=3)
        runs.append([chat(client).status_code for _ in range(20)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}


def test_tokenize_endpoints(client: httpx.Client) -> None:
    for path, key in [("/tokenize", "content"), ("/extras/tokenize", "prompt")]:
        assert client.post(path, json={key: "0"}).json()["tokens"] == [32]
        assert client.post(path, json={key: "1"}).json()["tokens"] == [33]
    tokens = client.post("/tokenize", json={"content": "Answer: 10"}).json()["tokens"]
    assert tokens[-2:] == [33, 32]
    assert all(t >= 1000 for t in tokens[:-2])
    assert tokens == client.post("/tokenize", json={"content": "Answer: 10"}).json()["tokens"]
    assert client.post("/tokenize", json={"text": 1}).status_code == 400


def test_models_and_unknown_routes(client: httpx.Client) -> None:
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert models["data"][0]["id"] == "fake-model"
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/chat/completions").status_code == 405


def test_bad_requests(client: httpx.Client) -> None:
    not_json = client.post("/v1/chat/completions", content=b"{nope")
    assert not_json.status_code == 400
    assert "error" in not_json.json()
    assert client.post("/v1/chat/completions", json={"prompt": "x"}).status_code == 400

    def chunks() -> Iterator[bytes]:
        yield json.dumps(chat_body()).encode()

    chunked = client.post("/v1/chat/completions", content=chunks())
    assert chunked.status_code == 411
    assert chat(client).status_code == 200


def test_azure_deployment_path(llm_server: FakeLLMServer, client: httpx.Client) -> None:
    path = "/openai/deployments/my-gpt4o/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]}

    answer = client.post(path, params={"api-version": "2024-10-21"}, json=body)
    assert answer.status_code == 200
    assert answer.json()["model"] == "my-gpt4o"
    assert client.post(path, json=body).status_code == 404  # Azure wants an api-version
    stats = llm_server.stats()
    assert stats["by_path"] == {path: 2}
    assert stats["recent"][0]["query"] == {"api-version": "2024-10-21"}


def test_require_api_key(llm_server: FakeLLMServer, client: httpx.Client) -> None:
    llm_server.configure(require_api_key=KEY)

    missing = chat(client)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    wrong = client.post(
        "/v1/chat/completions", json=chat_body(), headers={"Authorization": "Bearer sk-wrong"}
    )
    assert wrong.status_code == 401
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert client.post("/v1/chat/completions", json=chat_body(), headers=bearer).is_success
    azure = client.post(
        "/openai/deployments/d/chat/completions",
        params={"api-version": "2024-10-21", "api-key": KEY},
        json=chat_body(),
        headers={"api-key": KEY},
    )
    assert azure.is_success

    stats = llm_server.stats()
    assert KEY not in json.dumps(stats)
    assert KEY not in json.dumps(llm_server.configure())
    assert stats["recent"][2]["headers"]["authorization"] == len(f"Bearer {KEY}")
    assert stats["recent"][3]["headers"]["api-key"] == len(KEY)
    assert stats["by_status"] == {"401": 2, "200": 2}


def test_stats_count_requests_and_keep_the_last_100(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    for index in range(105):
        chat(client, f"request {index}")
    client.post("/tokenize", json={"content": "0"})

    stats = llm_server.stats()
    assert stats["chat_requests"] == 105
    assert stats["requests"] == 106
    assert stats["by_status"] == {"200": 106}
    assert stats["by_path"] == {"/v1/chat/completions": 105, "/tokenize": 1}
    assert stats["connections"] == 1  # keep-alive
    recent = stats["recent"]
    assert len(recent) == 100
    assert recent[-2]["body"]["messages"][0]["content"] == "request 104"
    assert {"method", "path", "headers", "body", "status"} <= set(recent[-1])

    llm_server.reset()
    assert llm_server.stats()["requests"] == 0


def test_100_concurrent_requests_are_answered_together(llm_server: FakeLLMServer) -> None:
    llm_server.configure(latency=0.2)

    async def run() -> list[int]:
        # One round only: httpcore 1.0.9's pool bookkeeping is quadratic in its connection
        # count, so a client pool of 100 connections is CPU-bound, not this server.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(
            base_url=llm_server.url, limits=limits, timeout=10, trust_env=False
        ) as client:
            answers = await asyncio.gather(
                *(client.post("/v1/chat/completions", json=chat_body(f"q{i}")) for i in range(100))
            )
            return [a.status_code for a in answers]

    codes = asyncio.run(run())

    assert codes == [200] * 100
    stats = llm_server.stats()
    assert stats["max_in_flight"] >= 50  # answered together, not one after another
    assert stats["duplicates_in_flight"] == 0
    assert stats["connections"] <= 100


def test_standalone_run_prints_the_port() -> None:
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PORT ")
        port = int(line.split()[1])
        with httpx.Client(trust_env=False) as client:
            assert client.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=5)
    assert process.returncode == 0, stderr


def test_a_server_that_cannot_start_is_reported() -> None:
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 2:\n.*fault rate 'oops'"):
        FakeLLMServer(fault_rate="oops").start()


def test_token_bucket_answers_429_with_retry_after_only(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    llm_server.configure(bucket_rpm=60, bucket_burst=3.0)  # 1/s, 3 saved up
    answers = [chat(client, f"q{i}") for i in range(5)]
    assert [a.status_code for a in answers[:3]] == [200] * 3
    limited = answers[3]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert not any(name.startswith("x-ratelimit") for name in limited.headers)
    assert llm_server.stats()["rate_limited"] >= 1


def test_token_bucket_with_rate_limit_headers(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    llm_server.configure(bucket_rpm=120, bucket_headers=True)
    answer = chat(client)
    assert answer.headers["x-ratelimit-limit-requests"] == "120"
    assert int(answer.headers["x-ratelimit-remaining-requests"]) >= 0


def test_storm_answers_429_during_its_window(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    llm_server.configure(storm={"every": 3600, "duration": 3599, "retry_after": 2})
    answer = chat(client)
    assert answer.status_code == 429 and answer.headers["retry-after"] == "2"
    llm_server.configure(storm=None)
    assert chat(client).status_code == 200
    assert llm_server.stats()["storm_429"] == 1


def test_outage_503_then_back(llm_server: FakeLLMServer, client: httpx.Client) -> None:
    llm_server.outage(3600, mode="503")
    assert chat(client).status_code == 503
    llm_server.reset()
    assert chat(client).status_code == 200


def test_outage_refuse_closes_the_port_then_reopens_it(llm_server: FakeLLMServer) -> None:
    llm_server.outage(1.0, mode="refuse", after=0.05)
    deadline = time.monotonic() + 5
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            with httpx.Client(base_url=llm_server.url, timeout=1, trust_env=False) as http:
                chat(http)
        except httpx.ConnectError:
            refused = True
        except httpx.RemoteProtocolError:
            pass  # a connection made just before the port closed: cut without an answer
        time.sleep(0.05)
    assert refused
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with httpx.Client(base_url=llm_server.url, timeout=1, trust_env=False) as http:
                assert chat(http).status_code == 200
                break
        except (httpx.ConnectError, httpx.RemoteProtocolError):
            time.sleep(0.1)
    else:
        raise AssertionError("the port did not open again")


def test_hang_rate_leaves_requests_unanswered(llm_server: FakeLLMServer) -> None:
    llm_server.configure(hang_rate=1.0)
    with (
        httpx.Client(base_url=llm_server.url, timeout=0.3, trust_env=False) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        chat(http)
    assert llm_server.stats()["hung"] == 1


def test_content_filter_rule_with_a_code(llm_server: FakeLLMServer, client: httpx.Client) -> None:
    rejected = {"status": 400, "content": "The prompt was filtered", "code": "content_filter"}
    llm_server.configure(rules=[{"match": "forbidden topic", "response": rejected}])
    answer = chat(client, "a forbidden topic")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "content_filter"


def test_duplicate_bodies_in_flight_are_counted(llm_server: FakeLLMServer) -> None:
    llm_server.configure(latency=0.3)

    async def run() -> None:
        async with httpx.AsyncClient(base_url=llm_server.url, timeout=10, trust_env=False) as c:
            await asyncio.gather(
                *(c.post("/v1/chat/completions", json=chat_body("same")) for _ in range(3))
            )

    asyncio.run(run())
    assert llm_server.stats()["duplicates_in_flight"] == 2


def test_prefix_cache_serves_whole_blocks_already_answered(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    llm_server.configure(prefix_cache_block=8)
    # "<|user|>" is 8 characters: the serialized prompt is 8 + len(text)
    first = chat(client, "a" * 20).json()["usage"]
    assert first["prompt_tokens_details"] == {"cached_tokens": 0}
    # shares "<|user|>" + 16 a's (3 whole blocks of 8) with the first request
    second = chat(client, "a" * 18 + "b" * 10).json()["usage"]
    assert second["prompt_tokens"] == 7
    assert second["prompt_tokens_details"] == {"cached_tokens": round(7 * 24 / 36)}
    # a shorter prompt that is a prefix of an earlier one is served up to its last whole block
    third = chat(client, "a" * 9).json()["usage"]
    assert third["prompt_tokens_details"]["cached_tokens"] == round(2 * 16 / 17)
    stats = llm_server.stats()
    assert (stats["prompt_chars"], stats["cached_chars"]) == (28 + 36 + 17, 24 + 16)
    # roles count: the same text as the system message shares nothing
    llm_server.configure(prefix_cache_block=8)  # a new block size starts an empty cache
    body = {"model": "m", "messages": [{"role": "system", "content": "a" * 20}]}
    client.post("/v1/chat/completions", json=body)
    assert chat(client, "a" * 20).json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert llm_server.configure()["prefix_cache_block"] == 8


def test_prefix_cache_is_off_by_default_and_refuses_bad_settings(
    llm_server: FakeLLMServer, client: httpx.Client
) -> None:
    chat(client)
    assert chat(client).json()["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert llm_server.stats()["prompt_chars"] == 0
    answer = client.post("/_admin/config", json={"prefix_cache_block": -1})
    assert answer.status_code == 400


def test_prefix_cache_counts_a_request_once_it_is_answered(llm_server: FakeLLMServer) -> None:
    # requests in flight together find nothing of each other: a provider caches what it computed
    llm_server.configure(prefix_cache_block=8, latency=0.3)

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=llm_server.url, timeout=10, trust_env=False) as c:
            answers = await asyncio.gather(
                *(c.post("/v1/chat/completions", json=chat_body("b" * 40)) for _ in range(3))
            )
        return [a.json()["usage"]["prompt_tokens_details"]["cached_tokens"] for a in answers]

    assert asyncio.run(run()) == [0, 0, 0]
    assert asyncio.run(run()) == [10, 10, 10]  # 48 characters, all whole blocks: all cached
