"""The client against a fake server behaving like real providers and proxies (one test per row
of issue 12's table): rate limits, storms, outages, dead endpoints, HTML answers, content
filters, hangs and duplicate requests. Many concurrent ``chat()`` calls over real HTTP; the
assertions are about outcomes (nothing failed, nothing sent twice), never about timing."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import anyio
import pytest

from sftlabel import Message, Sample, load_taxonomy
from sftlabel.labeling import Labeler, LabelingFailed
from sftlabel.llm import (
    ChatResult,
    ClientConfig,
    EndpointUnavailableError,
    LLMClient,
    ResponseCache,
)
from tests.llm_server import FakeLLMServer

from .test_label_run import labeler_rules


def cfg(server: FakeLLMServer | str, **changes: Any) -> ClientConfig:
    base = server if isinstance(server, str) else server.base_url
    return ClientConfig(model="gpt-4o-mini", base_url=base, **changes)


def load(config: ClientConfig, count: int, *, distinct: int | None = None) -> list[Any]:
    """``count`` concurrent chats (``distinct`` different bodies); results or errors."""
    outcomes: list[Any] = [None] * count

    async def main() -> None:
        async with LLMClient(config) as client:

            async def ask(i: int) -> None:
                text = f"question {i % (distinct or count)}"
                try:
                    outcomes[i] = await client.chat(
                        client.request([{"role": "user", "content": text}])
                    )
                except Exception as exc:
                    outcomes[i] = exc

            async with anyio.create_task_group() as group:
                for i in range(count):
                    group.start_soon(ask, i)

    anyio.run(main)
    return outcomes


def failures(outcomes: list[Any]) -> list[Any]:
    return [o for o in outcomes if not isinstance(o, ChatResult)]


@pytest.mark.parametrize("headers", [False, True])
def test_token_bucket_with_retry_after_only_loses_nothing(
    llm_server: FakeLLMServer, headers: bool
) -> None:
    llm_server.configure(latency=0.02, bucket_rpm=1200, bucket_burst=1.0, bucket_headers=headers)
    outcomes = load(cfg(llm_server, concurrency=50), 150)
    assert failures(outcomes) == []
    stats = llm_server.stats()
    share = stats["by_status"].get("429", 0) / stats["chat_requests"]
    assert share <= (0.05 if headers else 0.25), stats["by_status"]


def test_a_429_storm_costs_time_not_requests(llm_server: FakeLLMServer) -> None:
    llm_server.configure(latency=0.02, storm={"every": 3, "duration": 1.5, "retry_after": 1})
    outcomes = load(cfg(llm_server, concurrency=20), 150)
    assert failures(outcomes) == []
    assert llm_server.stats()["storm_429"] > 0


@pytest.mark.parametrize("mode", ["refuse", "503"])
def test_an_outage_mid_run_costs_time_not_requests(llm_server: FakeLLMServer, mode: str) -> None:
    llm_server.configure(latency=0.05)
    llm_server.outage(3.0, mode=mode, after=0.5)
    outcomes = load(cfg(llm_server, concurrency=20), 250)
    assert failures(outcomes) == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_endpoint_down_from_the_start_stops_every_caller_with_one_error() -> None:
    url = f"http://user:sk-live-secret-77@127.0.0.1:{closed_port()}/v1"
    outcomes = load(cfg(url, concurrency=10, dead_after=2.0), 30)
    assert all(isinstance(o, EndpointUnavailableError) for o in outcomes)
    error = outcomes[0]
    assert error.exit_code == 3 and "connection refused" in str(error)
    assert "sk-live-secret-77" not in f"{error} {error.hint}"


def test_html_answers_from_the_start_stop_early_and_are_never_cached(
    llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    page = {"body": "<!doctype html><html><body>Sign in to the proxy</body></html>"}
    llm_server.configure(rules=[{"match": "question", "response": page}])
    cache = tmp_path / "c.sqlite"
    outcomes = load(cfg(llm_server, concurrency=5, dead_after=2.0, cache_path=cache), 10)
    assert all(isinstance(o, EndpointUnavailableError) for o in outcomes)
    assert "not a chat completion" in str(outcomes[0])
    assert len(ResponseCache(cache)) == 0


def samples(count: int) -> list[Sample]:
    return [
        Sample(
            id=f"s{i}",
            source_id=f"s{i}",
            source_format="test",
            turn_index=1,
            total_turns=1,
            messages=[
                Message(role="user", content=f"What does list.append do? (variant {i})"),
                Message(role="assistant", content="It adds one item to the end of the list."),
            ],
        )
        for i in range(count)
    ]


def label_all(config: ClientConfig, items: list[Sample]) -> list[Any]:
    outcomes: list[Any] = [None] * len(items)

    async def main() -> None:
        async with LLMClient(config) as client:
            labeler = Labeler(client, load_taxonomy(None), arbitration=False)

            async def one(i: int) -> None:
                try:
                    outcomes[i] = await labeler.label(items[i])
                except LabelingFailed as exc:
                    outcomes[i] = exc

            async with anyio.create_task_group() as group:
                for i in range(len(items)):
                    group.start_soon(one, i)

    anyio.run(main)
    return outcomes


def test_a_content_filter_fails_only_its_samples_with_the_providers_reason(
    llm_server: FakeLLMServer,
) -> None:
    filtered = {
        "status": 400,
        "content": "The response was filtered due to the prompt triggering content management "
        "policy",
        "code": "content_filter",
    }
    rules = [{"match": f"(variant {i})", "response": filtered} for i in range(6)]
    llm_server.configure(rules=[*rules, *labeler_rules()])
    outcomes = label_all(cfg(llm_server, concurrency=20), samples(60))
    failed = [o for o in outcomes if isinstance(o, LabelingFailed)]
    assert len(failed) == 6 and len(outcomes) - len(failed) == 54
    assert all(f.reason == "rejected" and f.cause == "content" for f in failed)
    assert all("content management policy" in str(f) for f in failed)


def test_an_answer_that_is_not_json_is_not_cached(
    llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    llm_server.script({"content": "Sure! Here are the labels you asked for."})
    config = cfg(llm_server, concurrency=1, cache_path=tmp_path / "c.sqlite")
    [first] = label_all(config, samples(1))
    assert not isinstance(first, LabelingFailed)
    sent = llm_server.stats()["chat_requests"]
    assert sent == 3  # call 1, its repair turn, call 2
    llm_server.reset()
    llm_server.configure(rules=labeler_rules())
    [again] = label_all(config, samples(1))
    assert not isinstance(again, LabelingFailed)
    # the unusable first answer was not cached: call 1 is asked again (and now answers JSON)
    assert llm_server.stats()["chat_requests"] == 1


def test_hung_requests_are_cut_and_sent_again(llm_server: FakeLLMServer) -> None:
    llm_server.configure(latency=0.01, hang_rate=0.03, seed=3)
    outcomes = load(cfg(llm_server, concurrency=20, timeout=6.0), 300)
    assert failures(outcomes) == []
    assert llm_server.stats()["hung"] > 0


def test_identical_requests_in_flight_are_sent_once(llm_server: FakeLLMServer) -> None:
    llm_server.configure(latency=0.2)
    outcomes = load(cfg(llm_server, concurrency=50), 200, distinct=40)
    assert failures(outcomes) == []
    stats = llm_server.stats()
    assert stats["duplicates_in_flight"] == 0
    assert stats["chat_requests"] == 40


def test_runs_sharing_a_cache_file_send_each_body_once(
    llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    llm_server.configure(latency=0.05)
    config = cfg(llm_server, concurrency=20, cache_path=tmp_path / "shared.sqlite")
    for _ in range(3):
        assert failures(load(config, 60, distinct=30)) == []
    assert llm_server.stats()["chat_requests"] == 30
