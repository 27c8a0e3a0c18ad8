"""The asyncio network backend against real local servers, side by side with httpx's default.

Each scenario that httpcore can tell apart (bodies, keep-alive, a server hanging up, timeouts,
refusals, TLS) runs through both transports where it can, and must end the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from worker.fetch.transport import (
    READ_HIGH_WATER,
    AsyncioBackend,
    AsyncioStream,
    asyncio_transport,
    pool_transport,
)

MAX_CONNECTIONS = 10
LIMITS = httpx.Limits(
    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS, keepalive_expiry=30
)
SMALL = random.Random(1).randbytes(1_000)
BIG = random.Random(2).randbytes(3 * 1024 * 1024)
RECV_MAX = 256 * 1024  # asyncio's selector transport reads at most this much per recv

Conn = socket.socket
Handler = Callable[[Conn, "RawServer"], None]


# -- a scripted server: one thread per connection, counting them -------------------------------


class RawServer:
    """Listens on a loopback address; each accepted connection runs `handler` in a thread."""

    def __init__(
        self, handler: Handler, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.host = host
        self.accepts = 0
        self.stopping = threading.Event()
        self._ended = threading.Condition()
        self.ended = 0  # connections whose handler returned and which were closed
        self.hang_up = threading.Event()  # when `idle_closing_handler` drops its connection
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, 0), family=family)
        self._listener.settimeout(0.05)
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def url(self, path: str = "/", scheme: str = "http") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.accepts += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        # Everything on the socket may fail: the test may end, and `__exit__` close it, before
        # this thread first runs (a timeout set on a closed socket raised in the thread).
        with contextlib.suppress(OSError):  # the client hanging up is often the point
            conn.settimeout(10)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                self._conns.append(conn)
            self.handler(conn, self)
        with contextlib.suppress(OSError):
            conn.close()
        with self._ended:
            self.ended += 1
            self._ended.notify_all()

    def wait_ended(self, count: int = 1) -> None:
        """Until `count` connections were handled and closed (the events a test waits for,
        never a guess of how long a thread takes; the cap only ends a broken test)."""
        with self._ended:
            assert self._ended.wait_for(lambda: self.ended >= count, timeout=60), "never ended"


async def after_hang_up(server: RawServer, count: int = 1) -> None:
    """Once the server closed `count` connections, and this event loop has seen it: the FIN or
    RST is in the client's socket by then, and the selector reports it on its next pass, which
    any sleep longer than zero includes."""
    await asyncio.to_thread(server.wait_ended, count)
    await asyncio.sleep(0.01)


def read_request(conn: Conn) -> str | None:
    """The request head's target (GETs only), or None when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data.split(b" ", 2)[1].decode()


RESPONSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"  # of `respond(conn, SMALL)`


def respond(conn: Conn, body: bytes, *headers: str) -> None:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *headers]
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)


def chunked(body: bytes, seed: int = 3) -> bytes:
    """`body` as a chunked transfer coding, in chunks of random sizes."""
    rng, out, at = random.Random(seed), [], 0
    while at < len(body):
        size = rng.randint(1, 40_000)
        out.append(b"%x\r\n%s\r\n" % (len(body[at : at + size]), body[at : at + size]))
        at += size
    return b"".join(out) + b"0\r\n\r\n"


def keepalive_handler(conn: Conn, server: RawServer) -> None:
    """/small, /big and /chunked, as many as asked on one connection."""
    while (target := read_request(conn)) is not None:
        if target == "/chunked":
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            conn.sendall(head + chunked(BIG))
        else:
            respond(conn, BIG if target == "/big" else SMALL)


def silent_handler(conn: Conn, server: RawServer) -> None:
    """Takes the request and never answers (hangs up after SILENCE, or when the test ends)."""
    read_request(conn)
    server.stopping.wait(SILENCE)


def truncating_handler(conn: Conn, server: RawServer) -> None:
    """Promises 100,000 bytes, sends 1,000, hangs up."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + SMALL)
    time.sleep(0.05)
    conn.shutdown(socket.SHUT_RDWR)  # over TLS too: SSLSocket.shutdown sends no close_notify


def idle_closing_handler(conn: Conn, server: RawServer) -> None:
    """Answers one request keep-alive, then drops the idle connection (a keep-alive timeout)
    once the test says so (`server.hang_up`)."""
    read_request(conn)
    respond(conn, SMALL)
    server.hang_up.wait(60)
    conn.shutdown(socket.SHUT_RDWR)


def deaf_handler(conn: Conn, server: RawServer) -> None:
    """Reads nothing at all: the client's writes fill the kernel's buffers, then stall."""
    server.stopping.wait(10)


def resetting_handler(conn: Conn, server: RawServer) -> None:
    """Takes the request and resets the connection (SO_LINGER 0: RST, not FIN)."""
    read_request(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@contextlib.contextmanager
def serving(
    handler: Handler, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> Iterator[RawServer]:
    with RawServer(handler, tls, host) as server:
        yield server


# -- both transports ---------------------------------------------------------------------------


Make = Callable[..., httpx.AsyncBaseTransport]


def default_transport(limits: httpx.Limits, *, verify: ssl.SSLContext | bool = True) -> Any:
    return httpx.AsyncHTTPTransport(limits=limits, verify=verify, trust_env=False)


def anyio_pool_transport(limits: httpx.Limits, *, verify: ssl.SSLContext | bool = True) -> Any:
    """Our own transport (`PoolTransport`) on httpcore's own backend: what it adds to httpx's
    transport, its translation of requests, responses and errors, is checked alone."""
    return pool_transport(limits, None, verify=verify)


TRANSPORTS = pytest.mark.parametrize(
    "make",
    [default_transport, anyio_pool_transport, asyncio_transport],
    ids=["httpx", "pool", "asyncio"],
)


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro

    return asyncio.run(main())


async def get_all(
    make: Make, urls: list[str], verify: ssl.SSLContext | bool = True, **kwargs: Any
) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=make(LIMITS, verify=verify), **kwargs) as client:
        return [await client.get(url) for url in urls]


def outcome(make: Make, url: str, **kwargs: Any) -> type[BaseException] | bytes:
    """The body, or the class of what the request raised."""
    try:
        return run(get_all(make, [url], **kwargs))[0].content
    except httpx.HTTPError as exc:
        return type(exc)


# -- bodies and connections ------------------------------------------------------------------


def test_the_transport_runs_on_the_asyncio_backend():
    transport = asyncio_transport(LIMITS)
    assert isinstance(transport.network_backend, AsyncioBackend)


def test_the_fetcher_connects_through_the_asyncio_backend_guarded_or_not():
    """Both kinds of connection pool the worker's fetcher opens: a guarded one (the SSRF check
    around the asyncio backend) and one for trusted origins (only link-local and metadata
    addresses refused, around the same backend)."""
    from worker.fetch.client import _PolicyTransport
    from worker.fetch.guard import GuardedBackend, blocked_address, never_fetched

    policy = _PolicyTransport(LIMITS, max_pools=4)
    guarded = policy._transport(guarded=True).network_backend
    assert isinstance(guarded, GuardedBackend) and guarded._judge is blocked_address
    assert isinstance(guarded._inner, AsyncioBackend)
    trusted = policy._transport(guarded=False).network_backend
    assert isinstance(trusted, GuardedBackend) and trusted._judge is never_fetched
    assert isinstance(trusted._inner, AsyncioBackend)


@pytest.mark.parametrize(("path", "body"), [("/small", SMALL), ("/big", BIG), ("/chunked", BIG)])
def test_bodies_are_byte_identical_to_the_default_transport(path: str, body: bytes):
    with serving(keepalive_handler) as server:
        default = outcome(default_transport, server.url(path))
        pool = outcome(anyio_pool_transport, server.url(path))
        ours = outcome(asyncio_transport, server.url(path))
    assert ours == pool == default == body


def test_keep_alive_reuses_one_connection():
    with serving(keepalive_handler) as server:
        paths = ["/small", "/big", "/chunked", "/small", "/small"]
        responses = run(get_all(asyncio_transport, [server.url(p) for p in paths]))
        assert [r.status_code for r in responses] == [200] * 5
        assert responses[1].content == BIG and responses[4].content == SMALL
        assert server.accepts == 1


def test_concurrent_requests_each_get_their_own_body():
    async def go(url: str) -> list[bytes]:
        async with httpx.AsyncClient(transport=asyncio_transport(LIMITS)) as client:
            paths = ["/small", "/big", "/chunked"] * 4
            responses = await asyncio.gather(*(client.get(url + p) for p in paths))
            return [r.content for r in responses]

    with serving(keepalive_handler) as server:
        bodies = run(go(server.url("")))
    assert bodies == [SMALL, BIG, BIG] * 4
    assert 1 < server.accepts <= MAX_CONNECTIONS


def test_a_connection_the_server_dropped_while_idle_is_not_reused():
    async def go(url: str, server: RawServer) -> list[int]:
        async with httpx.AsyncClient(transport=asyncio_transport(LIMITS)) as client:
            first = await client.get(url)
            server.hang_up.set()
            await after_hang_up(server)  # the server hung up meanwhile
            second = await client.get(url)
            return [first.status_code, second.status_code]

    with serving(idle_closing_handler) as server:
        assert run(go(server.url("/"), server)) == [200, 200]
        assert server.accepts == 2


def test_is_readable_turns_true_when_the_server_hangs_up():
    async def go(server: RawServer) -> list[bool]:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.port)
        await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = b""
        while len(response) < len(RESPONSE_HEAD) + len(SMALL):
            response += await stream.read(65536)
        before = stream.get_extra_info("is_readable")
        server.hang_up.set()
        await after_hang_up(server)
        after = stream.get_extra_info("is_readable")
        eof = await stream.read(65536)
        await stream.aclose()
        return [before, after, eof == b""]

    with serving(idle_closing_handler) as server:
        assert run(go(server)) == [False, True, True]


# -- failures: the same exception as the default transport -------------------------------------


# The timeout under test is 0.3 s and every other one LONG, so no clock needs reading: what is
# checked is the exception each transport raises. (Were the short timeout ignored, a silent
# server would hang up after SILENCE, another exception; a connect would wait LONG.)
LONG = 300.0
SILENCE = 10.0


@TRANSPORTS
def test_a_silent_server_is_a_read_timeout(make: Make):
    with serving(silent_handler) as server:
        result = outcome(make, server.url("/"), timeout=httpx.Timeout(LONG, read=0.3))
        assert result is httpx.ReadTimeout


@TRANSPORTS
def test_a_refused_connection_is_a_connect_error(make: Make):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: refused
        assert outcome(make, f"http://127.0.0.1:{port}/") is httpx.ConnectError


@TRANSPORTS
def test_a_full_backlog_is_a_connect_timeout(make: Make):
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):  # never accepted: the queue fills and later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        try:
            timeout = httpx.Timeout(LONG, connect=0.3)
            assert outcome(make, f"http://127.0.0.1:{port}/", timeout=timeout) is (
                httpx.ConnectTimeout
            )
        finally:
            for filler in fillers:
                filler.close()


def test_a_body_cut_short_fails_as_with_the_default_transport():
    with serving(truncating_handler) as server:
        default = outcome(default_transport, server.url("/"))
        pool = outcome(anyio_pool_transport, server.url("/"))
        ours = outcome(asyncio_transport, server.url("/"))
    assert default is httpx.RemoteProtocolError
    assert ours is pool is default


def test_a_reset_connection_fails_as_with_the_default_transport():
    with serving(resetting_handler) as server:
        default = outcome(default_transport, server.url("/"))
        pool = outcome(anyio_pool_transport, server.url("/"))
        ours = outcome(asyncio_transport, server.url("/"))
    assert default in (httpx.ReadError, httpx.RemoteProtocolError)
    assert ours is pool is default


def test_every_httpcore_error_is_raised_as_the_httpx_error_of_its_name():
    """The table behind `PoolTransport`: each of httpcore's errors becomes httpx's error of the
    same name (as httpx's own transport maps them), and anything else (`ConnectionNotAvailable`,
    which httpx leaves alone too; the SSRF guard's refusal) passes unchanged."""
    from worker.fetch.transport import httpx_errors

    kinds = [
        getattr(httpcore, name)
        for name in httpcore.__all__
        if isinstance(getattr(httpcore, name), type)
        and issubclass(getattr(httpcore, name), Exception)
    ]
    assert len(kinds) >= 14
    for kind in kinds:
        with pytest.raises(Exception) as raised, httpx_errors():
            raise kind("boom")
        if not hasattr(httpx, kind.__name__):  # httpcore's own signal to its pool
            assert type(raised.value) is kind
            continue
        assert type(raised.value) is getattr(httpx, kind.__name__)
        assert str(raised.value) == "boom" and raised.value.__cause__ is not None
    with pytest.raises(ValueError), httpx_errors():
        raise ValueError("not httpcore's")


# -- TLS ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA and a certificate it signed for 127.0.0.1 and localhost, made by the openssl CLI
    (neither trustme nor cryptography is among the project's packages)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the TLS tests need the openssl command (apt-get install openssl)")
    folder = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (folder / "ext.cnf").write_text(
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    ca = ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]
    ca += ["-subj", "/CN=aionet test CA", "-addext", "basicConstraints=critical,CA:TRUE"]
    ca += ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    request = ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]
    sign = ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"]
    sign += ["-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"]
    steps = [ca, request, sign]
    for step in steps:
        subprocess.run([openssl, *step], cwd=folder, check=True, capture_output=True)
    return Certs(folder / "ca.pem", folder / "server.pem", folder / "server.key")


@pytest.mark.parametrize("path", ["/small", "/big", "/chunked"])
def test_https_bodies_are_byte_identical(certs: Certs, path: str):
    with serving(keepalive_handler, certs.server_context()) as server:
        url = server.url(path, scheme="https")
        default = outcome(default_transport, url, verify=certs.client_context())
        ours = outcome(asyncio_transport, url, verify=certs.client_context())
    assert ours == default == (SMALL if path == "/small" else BIG)


def test_https_keeps_the_connection_and_exposes_the_ssl_object(certs: Certs):
    async def go(url: str) -> list[Any]:
        transport = asyncio_transport(LIMITS, verify=certs.client_context())
        async with httpx.AsyncClient(transport=transport) as client:
            responses = [await client.get(url) for _ in range(3)]
            stream = responses[-1].extensions["network_stream"]
            ssl_object = stream.get_extra_info("ssl_object")
            return [[r.content == SMALL for r in responses], type(ssl_object), stream]

    with serving(keepalive_handler, certs.server_context()) as server:
        bodies_ok, ssl_type, stream = run(go(server.url("/small", scheme="https")))
        assert bodies_ok == [True, True, True]
        assert ssl_type is ssl.SSLObject
        assert isinstance(stream, AsyncioStream)
        assert server.accepts == 1


@TRANSPORTS
def test_https_to_the_wrong_host_name_is_a_connect_error(make: Make, certs: Certs):
    async def go(url: str) -> BaseException | None:
        transport = make(LIMITS, verify=certs.client_context())
        async with httpx.AsyncClient(transport=transport) as client:
            try:
                await client.get(url, extensions={"sni_hostname": "wrong.example"})
            except httpx.HTTPError as exc:
                return exc
            return None

    with serving(keepalive_handler, certs.server_context()) as server:
        error = run(go(server.url("/small", scheme="https")))
    assert type(error) is httpx.ConnectError
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)  # what worker.fetch.client calls a TLS error


@TRANSPORTS
def test_https_to_an_untrusted_certificate_is_a_connect_error(make: Make, certs: Certs):
    with serving(keepalive_handler, certs.server_context()) as server:
        assert outcome(make, server.url("/small", scheme="https")) is httpx.ConnectError


@TRANSPORTS
def test_a_silent_tls_handshake_is_a_connect_timeout(make: Make, certs: Certs):
    with serving(silent_handler) as server:  # plain TCP: accepts, never answers the hello
        url, timeout = server.url("/", scheme="https"), httpx.Timeout(LONG, connect=0.3)
        result = outcome(make, url, verify=certs.client_context(), timeout=timeout)
        assert result is httpx.ConnectTimeout


def test_an_https_body_cut_short_fails_as_with_the_default_transport(certs: Certs):
    with serving(truncating_handler, certs.server_context()) as server:
        url = server.url("/", scheme="https")
        default = outcome(default_transport, url, verify=certs.client_context())
        ours = outcome(asyncio_transport, url, verify=certs.client_context())
    assert default is httpx.RemoteProtocolError
    assert ours is default


# -- the backend itself --------------------------------------------------------------------------


def test_socket_options_are_applied_and_nodelay_is_set():
    async def go(port: int) -> list[int]:
        backend = AsyncioBackend()
        keepalive = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        with_options = await backend.connect_tcp("127.0.0.1", port, socket_options=keepalive)
        plain = await backend.connect_tcp("127.0.0.1", port)
        values = []
        for stream in (with_options, plain):
            sock = stream.get_extra_info("socket")
            values.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
            values.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            await stream.aclose()
        return values

    with serving(silent_handler) as server:
        assert run(go(server.port)) == [1, 1, 0, 1]


def ipv6_loopback() -> str:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    return "::1"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_addresses_are_reported_as_the_default_backend_does(host: str):
    async def go(make: Make, url: str) -> list[Any]:
        async with httpx.AsyncClient(transport=make(LIMITS)) as client:
            stream = (await client.get(url)).extensions["network_stream"]
            client_addr = stream.get_extra_info("client_addr")
            return [stream.get_extra_info("server_addr"), client_addr[0], len(client_addr)]

    if host == "::1":
        ipv6_loopback()
    with serving(keepalive_handler, host=host) as server:
        default = run(go(default_transport, server.url("/small")))
        ours = run(go(asyncio_transport, server.url("/small")))
        assert ours == default == [(host, server.port), host, 2]


def test_buffered_bytes_are_read_without_awaiting():
    async def go(port: int) -> list[bytes]:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port)
        await stream.write(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
        while not stream.get_extra_info("is_readable"):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the whole response is in
        read = stream.read(10)
        try:
            read.send(None)  # completes at once: raises StopIteration with the bytes
        except StopIteration as done:
            first = done.value
        else:
            read.close()
            raise AssertionError("read() awaited although bytes were buffered")
        rest = await stream.read(65536)
        await stream.aclose()
        return [first, rest]

    with serving(keepalive_handler) as server:
        first, rest = run(go(server.port))
    assert first == b"HTTP/1.1 2"
    assert (first + rest).endswith(SMALL)


def test_a_slow_reader_pauses_the_socket_and_buffers_a_bounded_amount():
    async def go(url: str) -> tuple[bytes, int, int]:
        client = httpx.AsyncClient(transport=asyncio_transport(LIMITS))
        async with client, client.stream("GET", url) as response:
            protocol = response.extensions["network_stream"]._protocol
            async with asyncio.timeout(60):  # the cap only ends a broken test
                while not protocol.pauses:  # a slow consumer: reads nothing until the socket
                    await asyncio.sleep(0.01)  # is paused (the server sends 3 MiB meanwhile)
            body, most = b"", protocol.size
            async for chunk in response.aiter_raw():
                body += chunk
                most = max(most, protocol.size)
            return body, most, protocol.pauses

    with serving(keepalive_handler) as server:
        body, most, pauses = run(go(server.url("/big")))
    assert body == BIG
    assert pauses >= 1
    assert most <= READ_HIGH_WATER + RECV_MAX


def test_close_wakes_a_pending_read_with_a_read_error():
    async def go(port: int) -> BaseException:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port)
        reader = asyncio.create_task(stream.read(65536))
        await asyncio.sleep(0.05)
        assert not reader.done()
        await stream.aclose()
        done, _ = await asyncio.wait([reader], timeout=60)  # at once; the cap ends a broken test
        assert done, "the reader still waits after aclose"
        return reader.exception() or AssertionError("read returned")

    with serving(silent_handler) as server:
        assert isinstance(run(go(server.port)), httpcore.ReadError)


def test_writing_to_a_closed_or_reset_stream_is_a_write_error():
    async def go(server: RawServer) -> list[type[BaseException]]:
        backend, errors = AsyncioBackend(), list[type[BaseException]]()
        closed = await backend.connect_tcp("127.0.0.1", server.port)
        await closed.aclose()
        reset = await backend.connect_tcp("127.0.0.1", server.port)
        await reset.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await after_hang_up(server, 2)  # the server resets the connection
        for stream in (closed, reset):
            try:
                await stream.write(b"more")
            except Exception as exc:
                errors.append(type(exc))
        await reset.aclose()
        return errors

    with serving(resetting_handler) as server:
        assert run(go(server)) == [httpcore.WriteError, httpcore.WriteError]


def test_a_stalled_peer_is_a_write_timeout():
    async def go(port: int) -> type[BaseException] | None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port)
        try:
            for _ in range(1000):  # 64 MiB at most: far past the kernel's buffers
                await stream.write(b"x" * 65536, timeout=0.3)
        except Exception as exc:
            return type(exc)
        finally:
            await stream.aclose()
        return None

    with serving(deaf_handler) as server:
        assert run(go(server.port)) is httpcore.WriteTimeout


def test_reads_and_writes_leave_no_timer_behind():
    async def go(url: str) -> list[Any]:
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(transport=asyncio_transport(LIMITS), timeout=30) as client:
            bodies = [(await client.get(url)).content for _ in range(3)]
            timers = [t for t in loop._scheduled if not t.cancelled()]  # type: ignore[attr-defined]
        return [bodies, timers]

    with serving(keepalive_handler) as server:
        bodies, timers = run(go(server.url("/big")))
    assert bodies == [BIG] * 3
    assert timers == []  # each read's 30 s timer was cancelled when its bytes came


def test_unix_sockets_connect_and_a_missing_one_is_a_connect_error(tmp_path: Path):
    async def go(path: str) -> list[Any]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(5))
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(answer, path)
        backend = AsyncioBackend()
        stream = await backend.connect_unix_socket(path)
        await stream.write(b"hello")
        echoed = await stream.read(100, timeout=60)
        await stream.aclose()
        server.close()
        try:
            await backend.connect_unix_socket(path + ".missing")
        except httpcore.ConnectError as exc:
            return [echoed, type(exc)]
        return [echoed, None]

    assert run(go(str(tmp_path / "s"))) == [b"hello", httpcore.ConnectError]
