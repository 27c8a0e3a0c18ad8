"""Connection pools for the fetcher, on an asyncio-native network backend for httpcore: the same
contract as httpcore's anyio backend, cheaper.

httpx's default transport runs httpcore over anyio, and anyio pays on every read and write: a
cancel scope per call (`anyio.fail_after`), a checkpoint, `resume_reading`/`pause_reading` around
each receive (a selector registration each time), and a `poll()` of the socket each time the pool
asks whether an idle connection is still usable. Here a plain `asyncio.Protocol` buffers what
arrives; a read of buffered bytes returns them without awaiting anything, a read that must wait
awaits one future with a `call_later` timer, and "is this idle connection dead?" is a flag.

What it is worth, measured by `python -m bench.transport` (the worker's own `Fetcher`, 60 KB
pages from a local server in another process, the client's CPU per fetch, median of 9 rounds
interleaved with httpcore's anyio backend in one run, on a shared 2-core machine): at the default
politeness (one request per host at a time, 1 s apart; 16 hosts) 783 µs a fetch against 936, 16 %
less, every round below every anyio round; with 32 hosts, where the fetcher's 16 pools turn over
and connecting weighs more, 7 % less. Flat out (8 in flight, no delay) 598 µs against 681, 12 %.
That is 0.1-0.15 ms of the roughly 6 ms of CPU an article page costs the worker in all
(docs/benchmarks.md): small, and kept because it is steady, and because the backend reaches
httpcore only through `httpcore.AsyncConnectionPool(network_backend=...)`, a public parameter
(`pool_transport`), so it ties the worker to no httpx internals. `None` there gives httpcore's own.

The pool itself is ours (`PoolTransport`): httpx's transport has no parameter for a network
backend, so the pool is built with httpcore's public constructor and wrapped as httpx's transport
wraps its own (requests and responses translated, httpcore's errors raised as httpx's).

What httpcore sees is the anyio backend's behaviour: the same exception classes for the same
failures (timeouts → `ConnectTimeout`/`ReadTimeout`/`WriteTimeout`, `OSError` → `ConnectError`,
a broken or locally closed connection → `ReadError`/`WriteError`, EOF → `b""`), the peer's
half-close keeps our write side open, TCP_NODELAY is set, `aclose` aborts (no TLS close_notify).
Differences, all deliberate:
- `is_readable` reports what the event loop has delivered (buffered data, EOF, connection lost),
  not a fresh `poll()`: a server's FIN is seen on the loop turn after it arrives. A connection
  closed by the server in the very turn it is picked for reuse fails with
  `RemoteProtocolError` ("Server disconnected without sending a response") where a `poll()` would
  have retired it first.
- A write returns once asyncio has buffered the bytes (up to its 64 KiB high-water mark), not
  once the kernel took them, so a stalled peer is noticed by the write timeout only past 64 KiB.
- A TLS error in the middle of a response is a `ReadError` (anyio lets a bare `ssl.SSLError`
  through httpx); `get_extra_info("socket")` is asyncio's `TransportSocket` wrapper.
- The TLS handshake is bounded by asyncio's default 60 s when httpx passes no connect timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, cast

import httpcore
import httpx

__all__ = [
    "AsyncioBackend",
    "AsyncioStream",
    "PoolTransport",
    "asyncio_transport",
    "pool_transport",
]

# Received bytes held per connection before the socket stops being read: four of httpcore's
# 64 KiB reads. A slow consumer of a large body thus holds at most this plus one recv (256 KiB).
READ_HIGH_WATER = 256 * 1024
READ_LOW_WATER = 64 * 1024
# anyio's delay before racing the next address of a name (RFC 8305 suggests 250 ms).
HAPPY_EYEBALLS_DELAY = 0.25


# httpcore's errors and the httpx errors they are raised as, as httpx maps them for its own pools.
_HTTPX_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
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


def asyncio_transport(
    limits: httpx.Limits, *, verify: ssl.SSLContext | bool = True
) -> PoolTransport:
    """A transport whose connections run on `AsyncioBackend`."""
    return pool_transport(limits, AsyncioBackend(), verify=verify)


def pool_transport(
    limits: httpx.Limits,
    backend: httpcore.AsyncNetworkBackend | None,
    *,
    verify: ssl.SSLContext | bool = True,
) -> PoolTransport:
    """A transport over an HTTP/1.1 connection pool whose connections `backend` opens (None:
    httpcore's own); `verify` as for httpx (a shared `ssl.SSLContext` spares building one per
    pool: about 15 ms each)."""
    if not isinstance(verify, ssl.SSLContext):
        verify = httpx.create_ssl_context(verify=verify, trust_env=False)
    pool = httpcore.AsyncConnectionPool(
        ssl_context=verify,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )
    return PoolTransport(pool, backend)


class PoolTransport(httpx.AsyncBaseTransport):
    """An httpx transport around an httpcore connection pool we build ourselves, through
    httpcore's public constructor: that is how the pool gets our network backend (httpx's own
    transport has no parameter for one). Does what `httpx.AsyncHTTPTransport` does around its
    pool: an httpx request in, an httpx response out, httpcore's errors raised as httpx's."""

    def __init__(
        self, pool: httpcore.AsyncConnectionPool, backend: httpcore.AsyncNetworkBackend | None
    ) -> None:
        self.pool = pool
        self.network_backend = backend  # what opens the pool's connections (None: httpcore's)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise TypeError("Attempted to send a sync request with an async transport.")
        url = request.url
        sent = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with httpx_errors():
            response = await self.pool.handle_async_request(sent)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseBody(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


class _ResponseBody(httpx.AsyncByteStream):
    """A response's body as the pool streams it, its errors raised as httpx's."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with httpx_errors():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


@contextlib.contextmanager
def httpx_errors() -> Iterator[None]:
    """httpcore's exceptions raised as the httpx exception for the most specific class they are;
    anything else (the SSRF guard's `AddressBlocked`) as it is."""
    try:
        yield
    except Exception as exc:
        mapped = next((_HTTPX_ERRORS[k] for k in type(exc).__mro__ if k in _HTTPX_ERRORS), None)
        if mapped is None:
            raise
        raise mapped(str(exc)) from exc


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens `AsyncioStream`s; errors and timeouts map as in httpcore's anyio backend."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        options = list(socket_options or ())
        local = None if local_address is None else (local_address, 0)
        with _connect_errors():
            async with asyncio.timeout(timeout):
                if options:
                    sock = await _connected_socket(loop, host, port, local, options)
                    connecting = loop.create_connection(_protocol_factory(loop), sock=sock)
                else:
                    connecting = loop.create_connection(
                        _protocol_factory(loop),
                        host,
                        port,
                        local_addr=local,
                        happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                    )
                transport, protocol = await connecting
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        with _connect_errors():
            async with asyncio.timeout(timeout):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    for option in socket_options or ():
                        sock.setsockopt(*option)
                    sock.setblocking(False)
                    await loop.sock_connect(sock, path)
                except BaseException:
                    sock.close()
                    raise
                connecting = loop.create_unix_connection(_protocol_factory(loop), sock=sock)
                transport, protocol = await connecting
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@contextlib.contextmanager
def _connect_errors() -> Iterator[None]:
    """Connect-time mapping, as httpcore's anyio backend: timeouts (a kernel ETIMEDOUT too, which
    Python raises as `TimeoutError`) → `ConnectTimeout`, any other `OSError` → `ConnectError`."""
    try:
        yield
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(exc) from exc
    except OSError as exc:
        raise httpcore.ConnectError(exc) from exc


def _protocol_factory(loop: asyncio.AbstractEventLoop) -> Callable[[], _StreamProtocol]:
    return lambda: _StreamProtocol(loop)


async def _connected_socket(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    local: tuple[str, int] | None,
    options: list[httpcore.SOCKET_OPTION],
) -> socket.socket:
    """A socket connected to the first address of `host` that answers, its options set before
    connecting (SO_KEEPALIVE, buffer sizes, ... must be in place for the handshake)."""
    errors: list[OSError] = []
    for family, kind, proto, _, address in await loop.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in options:
                sock.setsockopt(*option)
            sock.setblocking(False)
            if local is not None:
                sock.bind(local)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if len(errors) == 1:
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(exc) for exc in errors)}")


class _StreamProtocol(asyncio.Protocol):
    """Buffers what arrives, remembers EOF and loss, and wakes the one waiting reader or writer.

    Reading is paused past `READ_HIGH_WATER` buffered bytes and resumed below `READ_LOW_WATER`.
    The same object serves the plain transport and, after `start_tls`, the TLS one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.offset = 0  # bytes of chunks[0] already read
        self.size = 0  # unread bytes in chunks
        self.eof = False
        self.lost = False
        self.error: Exception | None = None  # what connection_lost said
        self.closed = False  # by us
        self.tls = False
        self.reading_paused = False
        self.writing_paused = False
        self.pauses = 0  # times reading was paused: for tests
        self._read_waiter: asyncio.Future[bool] | None = None
        self._write_waiter: asyncio.Future[bool] | None = None

    # -- asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > READ_HIGH_WATER and not self.reading_paused and self.transport:
            self.reading_paused = True
            self.pauses += 1
            self.transport.pause_reading()
        _wake(self._read_waiter)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self._read_waiter)
        # Keep our half open, as anyio does (a server may half-close and still read); asyncio's
        # TLS transport closes itself whatever we say, and warns when told True.
        return not self.tls

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        _wake(self._read_waiter)
        _wake(self._write_waiter)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        _wake(self._write_waiter)

    # -- the stream's side

    @property
    def readable(self) -> bool:
        return bool(self.size) or self.eof or self.lost or self.closed

    def take(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` of the first buffered chunk (one chunk per read, as anyio)."""
        chunk = self.chunks[0]
        start = self.offset
        if not start and len(chunk) <= max_bytes:
            self.chunks.popleft()
            data = chunk
        else:
            end = start + max_bytes
            data = chunk[start:end]
            if end >= len(chunk):
                self.chunks.popleft()
                self.offset = 0
            else:
                self.offset = end
        self.size -= len(data)
        if self.reading_paused and self.size <= READ_LOW_WATER and self.transport:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    async def wait_readable(self, timeout: float | None) -> bool:
        """Until data, EOF or loss (True) or `timeout` seconds (False)."""
        if self._read_waiter is not None:
            raise RuntimeError("another task is already reading this stream")
        self._read_waiter = waiter = self.loop.create_future()
        try:
            return await _wait(self.loop, waiter, timeout)
        finally:
            self._read_waiter = None

    async def wait_writable(self, timeout: float | None) -> bool:
        """Until asyncio's write buffer drains or the connection is gone (True), or `timeout`."""
        if self._write_waiter is not None:
            raise RuntimeError("another task is already writing this stream")
        self._write_waiter = waiter = self.loop.create_future()
        try:
            return await _wait(self.loop, waiter, timeout)
        finally:
            self._write_waiter = None

    def attach(self, transport: asyncio.Transport | None) -> None:
        """Serve `transport` from now on (None while a TLS handshake owns the socket)."""
        self.transport = transport
        self.reading_paused = False
        if transport is not None and self.size > READ_HIGH_WATER:
            self.reading_paused = True
            self.pauses += 1
            transport.pause_reading()

    def close(self) -> None:
        self.closed = True
        self.chunks.clear()
        self.size = self.offset = 0
        _wake(self._read_waiter)
        _wake(self._write_waiter)


def _wake(waiter: asyncio.Future[bool] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(True)


def _time_out(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


async def _wait(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[bool], timeout: float | None
) -> bool:
    # A timer handle, not asyncio.wait_for or asyncio.timeout: no Task, no cancellation, and
    # nothing at all when no timeout is given.
    if timeout is None:
        return await waiter
    timer = loop.call_later(timeout, _time_out, waiter)
    try:
        return await waiter
    finally:
        timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: an asyncio transport and the `_StreamProtocol` that buffers for it."""

    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.readable and not await protocol.wait_readable(timeout):
            raise httpcore.ReadTimeout("timed out")
        if protocol.size:
            return protocol.take(max_bytes)
        if protocol.closed:
            raise httpcore.ReadError("the stream was closed")
        if protocol.error is not None:
            raise httpcore.ReadError(protocol.error) from protocol.error
        return b""  # EOF, or the peer closed cleanly

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        self._check_writable()
        try:
            self._transport.write(buffer)
        except (OSError, RuntimeError) as exc:  # RuntimeError: write after write_eof
            raise httpcore.WriteError(exc) from exc
        if protocol.writing_paused:
            if not await protocol.wait_writable(timeout):
                raise httpcore.WriteTimeout("timed out")
            self._check_writable()

    def _check_writable(self) -> None:
        """asyncio drops writes to a lost connection without a word; say so instead."""
        protocol = self._protocol
        if protocol.closed:
            raise httpcore.WriteError("the stream was closed")
        if protocol.lost or self._transport.is_closing():
            error = protocol.error
            raise httpcore.WriteError(error or "the connection was closed") from error

    async def aclose(self) -> None:
        self._protocol.close()
        self._transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        protocol = self._protocol
        loop = protocol.loop
        protocol.attach(None)
        protocol.tls = True
        try:
            with _connect_errors():
                # asyncio.timeout, not only ssl_handshake_timeout: on expiry asyncio aborts with
                # ConnectionAbortedError, which would read as ConnectError; this fires first.
                async with asyncio.timeout(timeout):
                    transport = await loop.start_tls(
                        self._transport,
                        protocol,
                        ssl_context,
                        server_hostname=server_hostname,
                        ssl_handshake_timeout=timeout,
                    )
                if transport is None:  # typeshed allows it; asyncio's implementation never
                    raise ConnectionResetError("the connection closed during the TLS handshake")
        except BaseException:
            await self.aclose()
            raise
        protocol.attach(transport)
        return AsyncioStream(transport, protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # True when data, EOF or a loss has been delivered to us: httpcore asks this of an
            # idle keep-alive connection, where any of them means "do not reuse". As fresh as
            # the event loop's last turn (see the module docstring).
            return self._protocol.readable
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return _address(self._transport.get_extra_info("sockname"))
        if info == "server_addr":
            return _address(self._transport.get_extra_info("peername"))
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


def _address(address: Any) -> Any:
    """(host, port) as anyio gives it: an IPv6 4-tuple shortened, a scope kept as `host%scope`."""
    if isinstance(address, tuple) and len(address) == 4:
        host, port, _, scope = address
        return (f"{host}%{scope}" if scope else host, port)
    return address
