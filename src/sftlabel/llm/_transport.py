"""The client's httpx transport: httpcore's connection pool on plain asyncio sockets.

httpx's own transport runs httpcore over anyio, which costs a cancel scope per socket read and
write and a dict of attributes per idle connection per request (``has_expired``): at hundreds
of requests a second that is a large part of a label run's CPU. This transport is httpx's
``AsyncHTTPTransport`` (same pool, same HTTP/1.1 code, same exceptions) with a network backend
of asyncio protocols instead, through httpcore's public API
(``AsyncConnectionPool(network_backend=...)``, :class:`httpcore.AsyncNetworkBackend`). It is
only used without a proxy from the environment (with one, httpx's own transports, as before).

Behaviour kept from httpcore's anyio backend: a read returns ``b""`` at the peer's end of
stream and raises ``ReadError`` on a reset; a timeout is ``ReadTimeout`` / ``WriteTimeout`` /
``ConnectTimeout``; a failed connect or TLS handshake is ``ConnectError``; a connection is
"readable" (expired, for the pool) once data or the end of stream arrived while it was idle.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.request
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

_EXCEPTIONS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}
"""httpcore's exceptions as httpx raises them (the table of httpx's own transport)."""

_READ_LIMIT = 1 << 20
"""Bytes received but not yet read beyond which the socket stops reading (flow control)."""


_COALESCE = 64 * 1024
"""Bytes of small writes held back to go out together (see AsyncioStream.write)."""


def _httpx_error(exc: Exception) -> httpx.HTTPError | None:
    """The httpx exception for an httpcore one (its closest class in the table), else None."""
    for cls in type(exc).__mro__:
        mapped = _EXCEPTIONS.get(cls)
        if mapped is not None:
            return mapped(str(exc))
    return None


class _Protocol(asyncio.Protocol):
    """Buffers what a socket receives and wakes the one reader or writer waiting on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.lost: Exception | None = None
        self.closed = False
        self.paused = False  # writing paused by the transport (its buffer is full)
        self.reading_paused = False
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _READ_LIMIT and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        self._wake()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None, error: type[Exception]) -> None:
        """Until ``_wake``; ``error`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter, error)
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()


def _expire(waiter: asyncio.Future[None], error: type[Exception]) -> None:
    if not waiter.done():
        waiter.set_exception(error("timed out"))


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection (TCP, or TLS over it) as httpcore reads and writes it."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._pending: list[bytes] = []
        self._pending_size = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if self._pending:  # the rest of the request, before waiting for its answer
            self._send_pending()
        while not protocol.chunks:
            if protocol.lost is not None:
                raise httpcore.ReadError(str(protocol.lost) or type(protocol.lost).__name__)
            if protocol.eof or protocol.closed:
                return b""
            await protocol.wait(timeout, httpcore.ReadTimeout)
        data = protocol.chunks.popleft()
        if len(data) > max_bytes:
            protocol.chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        protocol.buffered -= len(data)
        if protocol.reading_paused and protocol.buffered <= _READ_LIMIT // 2:
            protocol.reading_paused = False
            self._transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Small writes wait for the next one or the next read: a request's head and body go
        out in one send (one packet, one wake-up of the server instead of two)."""
        if not buffer:
            return
        protocol = self._protocol
        if protocol.closed or self._transport.is_closing():
            raise httpcore.WriteError(str(protocol.lost or "the connection is closed"))
        self._pending.append(buffer)
        self._pending_size += len(buffer)
        if self._pending_size < _COALESCE:
            return
        self._send_pending()
        while protocol.paused:  # the buffer is full: wait until the socket takes it
            if protocol.closed:
                raise httpcore.WriteError(str(protocol.lost or "the connection is closed"))
            await protocol.wait(timeout, httpcore.WriteTimeout)

    def _send_pending(self) -> None:
        pending = self._pending
        self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
        self._pending = []
        self._pending_size = 0

    async def aclose(self) -> None:
        self._pending = []  # a request cut short: nothing more of it is sent
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(
                    self._transport,
                    self._protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=timeout,
                )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except (OSError, EOFError) as exc:  # ssl.SSLError is an OSError
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        assert tls is not None and isinstance(tls, asyncio.Transport)
        self._protocol.transport = tls  # flow control on the TLS transport from now on
        return AsyncioStream(tls, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "is_readable":  # data or the end of stream while idle: expired
            protocol = self._protocol
            return bool(protocol.chunks) or protocol.eof or protocol.closed
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio's event loop (no anyio in between)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = None if local_address is None else (local_address, 0)

        async def connect() -> tuple[asyncio.Transport, _Protocol]:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = {info[4][:2] for info in infos}
            if len(addresses) == 1:  # one address (127.0.0.1, most hosts): just connect
                return await loop.create_connection(_Protocol, *addresses.pop(), local_addr=local)
            return await _happy_eyeballs(loop, host, port, local)  # as anyio.connect_tcp

        return await _connected(connect, timeout, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - the client never uses a socket path
        loop = asyncio.get_running_loop()

        async def connect() -> tuple[asyncio.Transport, _Protocol]:
            return await loop.create_unix_connection(_Protocol, path)

        return await _connected(connect, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connected(
    connect: Callable[[], Awaitable[tuple[asyncio.Transport, _Protocol]]],
    timeout: float | None,
    options: Iterable[Any] | None,
) -> AsyncioStream:
    """The stream of ``connect()``, within ``timeout``, as httpcore's errors."""
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await connect()
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(str(exc) or "connect timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from exc
    _set_options(transport, options)
    return AsyncioStream(transport, protocol)


async def _happy_eyeballs(
    loop: asyncio.AbstractEventLoop, host: str, port: int, local: tuple[str, int] | None
) -> tuple[asyncio.Transport, _Protocol]:
    """``create_connection`` racing the addresses 250 ms apart. Cancelled, it lets the race
    finish and closes what it connected: cancelling asyncio's race itself can leak the socket
    that had just won (CPython 3.11)."""
    race = loop.create_task(
        loop.create_connection(_Protocol, host, port, local_addr=local, happy_eyeballs_delay=0.25)
    )
    try:
        return await asyncio.shield(race)
    except asyncio.CancelledError:
        race.add_done_callback(_close_won)
        raise


def _close_won(race: asyncio.Task[tuple[asyncio.Transport, _Protocol]]) -> None:
    if not race.cancelled() and race.exception() is None:
        race.result()[0].close()


def _set_options(transport: asyncio.Transport, options: Iterable[Any] | None) -> None:
    sock: socket.socket | None = transport.get_extra_info("socket")
    for option in options or ():  # pragma: no cover - the client sets none
        assert sock is not None
        sock.setsockopt(*option)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as exc:
            mapped = _httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class AsyncioTransport(httpx.AsyncBaseTransport):
    """httpx's ``AsyncHTTPTransport`` (HTTP/1.1, no proxy) on :class:`AsyncioBackend`."""

    def __init__(self, *, verify: ssl.SSLContext, limits: httpx.Limits) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core)
        except Exception as exc:
            mapped = _httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def env_proxy(url: httpx.URL) -> bool:
    """Whether the environment may name a proxy for ``url`` (httpx reads them with urllib's
    ``getproxies``, as here; ``NO_PROXY`` is not looked at: a proxy might apply). An
    ``httpx.AsyncClient`` honours them only when it makes its own transport."""
    proxies = urllib.request.getproxies()
    return bool(proxies.get(url.scheme) or proxies.get("all"))


async def post(
    client: httpx.AsyncClient,
    transport: httpx.AsyncBaseTransport,
    url: httpx.URL,
    body: bytes,
    timeout: httpx.Timeout,
) -> httpx.Response:
    """``await client.post(url, content=body, timeout=timeout)`` for a client whose transport
    for ``url`` is ``transport`` (no proxy mounts), with no auth (no credentials in ``url``:
    httpx would make them Basic auth) and no redirects followed: the same
    request (the client's headers and cookies) and the same response (read, its cookies kept
    in the client), without the auth flow, redirect loop and URL merging httpx runs for every
    request (~0.2 ms each)."""
    cookies = client.cookies
    request = httpx.Request(
        "POST",
        url,
        headers=client.headers,
        cookies=cookies or None,
        content=body,
        extensions={"timeout": timeout.as_dict()},
    )
    response = await transport.handle_async_request(request)
    response.request = request
    try:
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            cookies.extract_cookies(response)  # (without either it does nothing)
        await response.aread()
    except BaseException:
        await response.aclose()
        raise
    return response
