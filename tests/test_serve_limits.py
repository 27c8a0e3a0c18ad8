"""The server holds up against slow and idle clients: raw sockets against a real uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from tests.test_cli import REPO
from tests.test_serve import RSS, publish, write_config
from worker.web.serve import (
    MAX_CONNECTIONS,
    MIN_CONNECTIONS,
    ServeLimits,
    build_app,
    connection_limit,
    listen,
    serve_socket,
)

SOURCES = '[[source]]\nid = "blog"\nurl = "https://blog.example.com/"\n'


@pytest.fixture
def app(tmp_path: Path) -> Starlette:
    config = write_config(tmp_path, SOURCES)
    publish(tmp_path / "feeds" / "blog.rss", RSS.format(title="Blog", item="x" * 4_000_000))
    return build_app(config, status_reader=dict)


@contextlib.contextmanager
def running(app: Starlette, limits: ServeLimits) -> Iterator[tuple[str, int]]:
    """`app` under a real uvicorn with `limits`, in a thread; yields (host, port)."""
    sock = listen("127.0.0.1", 0)
    address = sock.getsockname()[:2]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(serve_socket(app, sock, stop, limits),),
        daemon=True,
    )
    thread.start()
    try:
        yield address
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
        assert not thread.is_alive(), "server did not stop"
        loop.close()


def closed_by_server(conn: socket.socket, within: float) -> bool:
    """True when the server closes `conn` (EOF or reset) before `within` seconds pass."""
    conn.settimeout(within)
    try:
        while conn.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def healthz(address: tuple[str, int]) -> int:
    with httpx.Client(timeout=10) as http:
        return http.get(f"http://{address[0]}:{address[1]}/healthz").status_code


def test_an_idle_connection_is_closed(app: Starlette) -> None:
    """A client that connects and never sends a byte: closed after the head deadline (before,
    it was held until the client gave up)."""
    with running(app, ServeLimits(header_timeout=0.5)) as address:
        conn = socket.create_connection(address)
        with conn:
            assert closed_by_server(conn, within=20)


def test_a_head_sent_a_byte_at_a_time_is_cut_off(app: Starlette) -> None:
    """Slowloris: bytes keep coming, but the head is never complete; dripping does not extend
    the deadline. The client gets a 408 and the connection is closed."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    with running(app, ServeLimits(header_timeout=0.5)) as address:
        conn = socket.create_connection(address)
        conn.settimeout(0.05)
        sent, answer = 0, b""
        with conn:
            for byte in head:  # 1,000 bytes at 0.05 s: 50 s if nobody stops it
                try:
                    conn.sendall(bytes([byte]))
                    sent += 1
                    answer += conn.recv(65536)
                except TimeoutError:
                    continue
                except ConnectionError:
                    break
                if answer:
                    break
            assert closed_by_server(conn, within=20)
    assert answer.startswith(b"HTTP/1.1 408")
    assert sent < 400  # cut off well before the end (about 10 bytes a 0.5 s deadline)


def test_a_keep_alive_connection_is_closed_after_its_response(app: Starlette) -> None:
    with running(app, ServeLimits(keep_alive=1, header_timeout=30)) as address:
        conn = socket.create_connection(address)
        with conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.settimeout(10)
            assert conn.recv(65536).startswith(b"HTTP/1.1 200")
            assert closed_by_server(conn, within=20)


def test_a_client_that_never_reads_is_let_go(app: Starlette) -> None:
    """A 4 MB feed asked for and never read: the server drops the connection and the bytes
    it was holding for it, instead of keeping both for as long as the client likes (uvicorn's
    keep-alive timer only starts a graceful close, which waits for the client to read)."""
    with running(app, ServeLimits(header_timeout=1.5, keep_alive=1)) as address:
        conn = socket.socket()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect(address)
        with conn:
            conn.sendall(
                b"GET /feeds/blog.rss HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n"
            )
            time.sleep(4)  # both timers pass while we read nothing
            received, reset = 0, False
            conn.settimeout(10)
            try:
                while chunk := conn.recv(65536):
                    received += len(chunk)
            except ConnectionError:
                reset = True
            except TimeoutError:
                pytest.fail(f"the server still holds the connection after {received} bytes")
    assert reset or received < 4_000_000


def test_idle_connections_past_the_limit_make_room_for_healthz(app: Starlette) -> None:
    """At the limit a new connection closes the one idle the longest, so 5x the limit of idle
    connections neither keep /healthz out nor stay open themselves."""
    limit = 10
    with running(app, ServeLimits(max_connections=limit, header_timeout=60)) as address:
        idle = [socket.create_connection(address) for _ in range(5 * limit)]
        try:
            time.sleep(0.5)  # let the server accept them all
            assert healthz(address) == 200
            assert healthz(address) == 200
            closed = sum(closed_by_server(conn, within=0.2) for conn in idle)
        finally:
            for conn in idle:
                conn.close()
    assert closed >= 4 * limit  # the oldest ones made way; the server never held more


def test_connection_limit_follows_the_descriptor_limit() -> None:
    assert connection_limit(1024) == MAX_CONNECTIONS  # 1/4 of 1,024 is above the cap
    assert connection_limit(256) == 64  # three quarters stay with the worker
    assert connection_limit(16) == MIN_CONNECTIONS
    assert connection_limit(resource.RLIM_INFINITY) == MAX_CONNECTIONS


FD_LIMIT = 128  # the server subprocess's RLIMIT_NOFILE: reached by 200 idle clients before


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.mark.slow
def test_healthz_answers_while_idle_clients_exceed_the_fd_limit(tmp_path: Path) -> None:
    """The reported failure, reproduced: `feedworker serve` with 128 file descriptors and 200
    idle clients. Before, the server accepted until "Too many open files", /healthz went
    unanswered and the log filled with that error; now it holds 32 connections, /healthz
    answers, and the log stays short."""
    config = write_config(tmp_path, SOURCES)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["serve", "--config", str(config.config_dir), "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", "worker", *command],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_low_fd_limit,
    )
    idle: list[socket.socket] = []
    try:
        address = ("127.0.0.1", port)
        for _ in range(300):  # wait for the server to listen
            with contextlib.suppress(httpx.TransportError):
                if healthz(address) == 200:
                    break
            time.sleep(0.1)
        for _ in range(200):
            with contextlib.suppress(OSError):
                idle.append(socket.create_connection(address, timeout=5))
        time.sleep(1)
        answers = [healthz(address) for _ in range(3)]
    finally:
        for conn in idle:
            conn.close()
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert answers == [200, 200, 200]
    assert "Too many open files" not in err, err
    assert len(err.splitlines()) < 20, err[-2000:]
