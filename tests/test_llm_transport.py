"""The client's own httpx transport (httpcore on asyncio sockets, sftlabel.llm._transport) over
real HTTP and TLS: answers, keep-alive, resets, clean closes, hangs, connections the server
closed while idle, refused ports and certificates, as the client sees them."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sftlabel.llm import ChatResult, ClientConfig, LLMClient
from tests.llm_server import FakeLLMServer


def ask(config: ClientConfig, count: int = 1, *, pause: float = 0.0) -> tuple[list[Any], Any]:
    """``count`` concurrent chats (``pause`` > 0: one after another, ``pause`` s apart): the
    results or errors, and the client's stats."""
    outcomes: list[Any] = [None] * count
    stats: list[Any] = []

    async def main() -> None:
        async with LLMClient(config) as client:

            async def one(i: int) -> None:
                try:
                    request = client.request([{"role": "user", "content": f"question {i}"}])
                    outcomes[i] = await client.chat(request, use_cache=False)
                except Exception as exc:
                    outcomes[i] = exc

            if pause:
                for i in range(count):
                    await one(i)
                    await anyio.sleep(pause)
            else:
                async with anyio.create_task_group() as group:
                    for i in range(count):
                        group.start_soon(one, i)
            stats.append(client.stats)

    anyio.run(main)
    return outcomes, stats[0]


def cfg(base_url: str, **changes: Any) -> ClientConfig:
    return ClientConfig(model="gpt-4o-mini", base_url=base_url, **changes)


def test_concurrent_requests_share_kept_alive_connections(llm_server: FakeLLMServer) -> None:
    llm_server.configure(latency=0.01)
    outcomes, stats = ask(cfg(llm_server.base_url, concurrency=6), 120)
    assert all(isinstance(o, ChatResult) for o in outcomes), outcomes
    assert stats.statuses == {"200": 120}
    assert llm_server.stats()["connections"] <= 6  # 3 pools of 2 connections, reused


def test_a_request_larger_than_the_socket_buffers_is_sent_whole(
    llm_server: FakeLLMServer,
) -> None:
    text = "long context " * 300_000  # 3.9 MB: written in parts, waiting for the socket

    async def main() -> ChatResult:
        async with LLMClient(cfg(llm_server.base_url, concurrency=1)) as client:
            request = client.request([{"role": "user", "content": text}])
            return await client.chat(request, use_cache=False)

    result = anyio.run(main)
    assert result.attempts == 1 and result.prompt_tokens > 100_000  # the server read it all
    assert llm_server.stats()["by_status"] == {"200": 1}


def test_resets_and_clean_closes_mid_request_are_retried(llm_server: FakeLLMServer) -> None:
    llm_server.script({"close": "reset"}, {"close": "fin"}, {"content": "at last"})
    [result], stats = ask(cfg(llm_server.base_url, concurrency=1))
    assert isinstance(result, ChatResult) and result.content == "at last"
    assert result.attempts == 3
    assert stats.statuses == {"transport": 2, "200": 1}


def test_a_hang_is_a_read_timeout_then_retried(llm_server: FakeLLMServer) -> None:
    llm_server.script({"delay": 30}, {"content": "awake"})
    [result], stats = ask(cfg(llm_server.base_url, concurrency=1, timeout=0.5))
    assert isinstance(result, ChatResult) and result.content == "awake"
    assert stats.statuses == {"timeout": 1, "200": 1}


def test_a_refused_port_is_a_transport_error() -> None:
    config = cfg(
        f"http://127.0.0.1:{_closed_port()}/v1", concurrency=1, max_attempts=2, dead_after=0.2
    )
    [outcome], stats = ask(config)
    assert not isinstance(outcome, ChatResult)
    assert set(stats.statuses) == {"transport"}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nothing listens there


def test_a_proxy_from_the_environment_is_used(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    # the fake server as a forward proxy for an endpoint nothing listens on: only the proxy
    # can answer (httpx's own transport, not the plain route)
    monkeypatch.setenv("HTTP_PROXY", llm_server.base_url.removesuffix("/v1"))
    config = cfg(f"http://127.0.0.1:{_closed_port()}/v1", concurrency=2)
    outcomes, stats = ask(config, 4)
    assert all(isinstance(o, ChatResult) for o in outcomes), outcomes
    assert stats.statuses == {"200": 4}


def test_credentials_in_the_url_are_sent_as_basic_auth(llm_server: FakeLLMServer) -> None:
    host = llm_server.base_url.removeprefix("http://")
    [result], _ = ask(cfg(f"http://user:secret-password@{host}", concurrency=1))
    assert isinstance(result, ChatResult)
    [seen] = [
        r for r in llm_server.stats()["recent"] if r.get("path", "").endswith("/chat/completions")
    ]
    assert "authorization" in seen["headers"]


def test_cookies_the_server_sets_are_sent_back() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, json=ANSWER, headers={"set-cookie": "affinity=node-7; Path=/"})

    async def main() -> None:
        config = cfg("http://127.0.0.1:9/v1", concurrency=1)
        async with LLMClient(config, transport=httpx.MockTransport(handler)) as client:
            for i in range(2):
                request = client.request([{"role": "user", "content": f"q{i}"}])
                await client.chat(request, use_cache=False)

    anyio.run(main)
    assert seen == [None, "affinity=node-7"]


# --- TLS, and a server that closes idle connections -----------------------------------------

ANSWER = {
    "id": "x",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "over tls"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TLSServer:
    """An HTTPS server on 127.0.0.1 answering one completion per connection, then closing it
    while the client keeps it alive (as a server's keep-alive timeout does)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.content = "over tls"
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.connections = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            answer = json.loads(json.dumps(ANSWER))
            answer["choices"][0]["message"]["content"] = self.content
            body = json.dumps(answer).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            await asyncio.sleep(0.05)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()  # no "connection: close" header: the client must notice by itself

    def __enter__(self) -> TLSServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[TLSServer, Path]]:
    cert, key = _certificate(tmp_path)
    with TLSServer(cert, key) as server:
        yield server, cert


def test_https_with_connections_the_server_closed_while_idle(
    tls_server: tuple[TLSServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx's default context trusts it
    config = cfg(f"https://127.0.0.1:{server.port}/v1", concurrency=1)
    outcomes, stats = ask(config, 3, pause=0.3)
    assert [o.content for o in outcomes] == ["over tls"] * 3
    # each idle connection was seen closed and replaced before the next request: no retry
    assert stats.statuses == {"200": 3}
    assert server.connections == 3


def test_an_untrusted_certificate_is_refused(tls_server: tuple[TLSServer, Path]) -> None:
    server, _ = tls_server
    config = cfg(
        f"https://127.0.0.1:{server.port}/v1", concurrency=1, max_attempts=2, dead_after=0.2
    )
    [outcome], stats = ask(config)
    assert not isinstance(outcome, ChatResult)
    assert "CERTIFICATE_VERIFY_FAILED" in str(outcome)
    assert set(stats.statuses) == {"transport"}


def test_a_large_answer_over_tls(
    tls_server: tuple[TLSServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    server.content = "many tokens " * 400_000  # 4.8 MB: many TLS records and reads
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    [result], stats = ask(cfg(f"https://127.0.0.1:{server.port}/v1", concurrency=1))
    assert isinstance(result, ChatResult) and result.content == server.content
    assert stats.statuses == {"200": 1}
