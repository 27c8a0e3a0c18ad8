"""The webhook: one overall deadline whatever the receiver drips, and no secret in what it logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from worker.models import RunReport
from worker.service.webhook import notify_transition

TOKEN = "hook-T0KEN-123456"


class Receiver:
    """A raw HTTP receiver on 127.0.0.1: records each request's bytes, answers with `answer`."""

    def __init__(self, answer: Callable[[socket.socket, threading.Event], None]) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook?token={TOKEN}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                self.requests.append(_read_request(conn))
                with contextlib.suppress(OSError):
                    self.answer(conn, self.stop)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def _read_request(conn: socket.socket) -> bytes:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def drip(conn: socket.socket, stop: threading.Event) -> None:
    """Headers at once, then a byte of the promised body every 0.3 s: never a read timeout."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    while not stop.wait(0.3):
        conn.sendall(b"x")


def refuse(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def report() -> RunReport:
    report = RunReport("blog", started=datetime(2026, 1, 1, tzinfo=UTC))
    report.health_state = "degraded"
    report.health_reasons = (f"listing https://site.test/feed?apikey={TOKEN} found nothing",)
    return report


@contextlib.contextmanager
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    lines: list[str] = []
    with caplog.at_level(logging.WARNING, logger="feedworker"):
        yield lines
    lines.extend(f"{r.getMessage()} {getattr(r, 'fields', {})}" for r in caplog.records)


def test_a_dripping_receiver_costs_one_deadline(
    report: RunReport, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx's timeouts are per phase: each byte resets the read timeout, so without one overall
    deadline this call would last as long as the receiver drips (here: until the test ends)."""
    deadline = 1.0
    with Receiver(drip) as receiver, warnings(caplog) as lines:
        started = time.monotonic()
        sent = asyncio.run(
            asyncio.wait_for(
                notify_transition(receiver.url, report, timeout=deadline), timeout=20 * deadline
            )
        )
        took = time.monotonic() - started
    assert sent is False
    assert took < 20 * deadline  # bounded by the outer guard; the drip alone would never end
    (line,) = lines
    assert line.startswith("webhook failed") and f"no answer within {deadline:g} s" in line
    assert TOKEN not in line and "token=***" in line


def test_a_refusal_is_logged_without_the_token(
    report: RunReport, caplog: pytest.LogCaptureFixture
) -> None:
    with Receiver(refuse) as receiver, warnings(caplog) as lines:
        sent = asyncio.run(notify_transition(receiver.url, report, secrets={TOKEN}))
    assert sent is False
    (line,) = lines
    assert "403" in line and TOKEN not in line  # httpx's message quotes the whole URL
    body = json.loads(receiver.requests[0].partition(b"\r\n\r\n")[2])
    assert body["reasons"] == ["listing https://site.test/feed?apikey=*** found nothing"]
