"""Per-host politeness and retries, judged on request start times seen by a real local server."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from worker.fetch.client import BadStatus, Fetcher, FetchOptions, Timeout
from worker.models import Page

try:
    from tests.localserver import Exchange, LocalServer
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    from localserver import Exchange, LocalServer  # type: ignore[no-redef]

HTML = b"<!doctype html><html><head><title>Local</title></head><body><p>ok</p></body></html>"
HTML_TYPE = ("Content-Type", "text/html; charset=utf-8")
# Timer and scheduling jitter between the client's clock and the server's log. Only lower bounds
# are checked against the clock (a request may come later on a busy machine, never sooner).
SLACK = 0.05


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def options(**overrides: Any) -> FetchOptions:
    values: dict[str, Any] = {"user_agent": "feedworker-test/1", "retry_backoff": 0.01}
    return FetchOptions(**(values | overrides))


def fetch_all(urls: list[str], fetch_options: FetchOptions) -> list[Any]:
    async def go() -> list[Any]:
        async with Fetcher(fetch_options) as fetcher:
            jobs = (fetcher.fetch_page(url, respect_robots=False) for url in urls)
            return await asyncio.gather(*jobs, return_exceptions=True)

    return asyncio.run(go())


def gaps(starts: list[float]) -> list[float]:
    return [b - a for a, b in pairwise(sorted(starts))]


def test_requests_to_one_host_start_at_least_the_delay_apart(server: LocalServer):
    server.route("/p", body=HTML)
    results = fetch_all([server.url(f"/p?{i}") for i in range(4)], options(per_host_delay=0.3))
    assert all(isinstance(r, Page) for r in results)
    assert min(gaps([r.started for r in server.requests])) >= 0.3 - SLACK


def test_per_host_concurrency_is_bounded(server: LocalServer):
    lock = threading.Lock()
    in_flight = peak = 0

    def slow(ex: Exchange) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        ex.sleep(0.3)
        with lock:
            in_flight -= 1
        ex.respond(200, [HTML_TYPE], HTML)

    server.route("/slow", slow)
    urls = [server.url(f"/slow?{i}") for i in range(6)]
    fetch_all(urls, options(per_host_delay=0.0, per_host_concurrency=2, concurrency=8))
    assert peak == 2


def test_the_default_is_one_request_in_flight_per_host(server: LocalServer):
    lock = threading.Lock()
    in_flight = peak = 0

    def slow(ex: Exchange) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        ex.sleep(0.1)
        with lock:
            in_flight -= 1
        ex.respond(200, [HTML_TYPE], HTML)

    server.route("/slow", slow)
    fetch_all([server.url(f"/slow?{i}") for i in range(3)], options(per_host_delay=0.0))
    assert peak == 1


def test_other_hosts_are_not_held_back(server: LocalServer):
    # The first host's page is answered only once the other host's request has arrived: were
    # hosts held back by each other's delay (an hour here), it never would (the wait's cap).
    other_arrived = threading.Event()

    def answer_after_the_other(ex: Exchange) -> None:
        ex.respond(200 if other_arrived.wait(60) else 504, [HTML_TYPE], HTML)

    server.route("/p", answer_after_the_other)
    with LocalServer() as other:
        other.route("/p", lambda ex: other_arrived.set() or ex.respond(200, [HTML_TYPE], HTML))
        results = fetch_all([server.url("/p"), other.url("/p")], options(per_host_delay=3600))
        assert all(isinstance(r, Page) for r in results)
        assert len(other.requests) == 1


def test_retry_after_holds_back_the_next_request_to_that_host(server: LocalServer):  # input 11
    calls = 0

    def busy_once(ex: Exchange) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            ex.respond(503, [("Retry-After", "1")])
        else:
            ex.respond(200, [HTML_TYPE], HTML)

    server.route("/busy", busy_once)
    [page] = fetch_all([server.url("/busy")], options(per_host_delay=0.0))
    assert isinstance(page, Page)
    assert gaps([r.started for r in server.requests]) >= [1.0 - SLACK]


def test_retries_back_off_exponentially(
    server: LocalServer, caplog: pytest.LogCaptureFixture
):  # bad input 10
    server.route("/down", status=502)
    caplog.set_level(logging.INFO, logger="worker.fetch.client")
    [error] = fetch_all([server.url("/down")], options(per_host_delay=0.0, retry_backoff=0.2))
    assert isinstance(error, BadStatus) and error.reason == "HTTP 502"
    waits = [r.wait_s for r in caplog.records if r.getMessage() == "retrying"]
    assert 0.2 <= waits[0] <= 0.3 and 0.4 <= waits[1] <= 0.6  # doubling, up to 50 % jitter
    first, second = gaps([r.started for r in server.requests])
    assert first >= waits[0] - SLACK and second >= waits[1] - SLACK  # and waited for


def test_a_server_that_accepts_and_never_answers_is_retried_then_fails(server: LocalServer):
    def silent(ex: Exchange) -> None:
        ex.sleep(30)

    server.route("/silent", silent)
    fetch_options = options(per_host_delay=0.0, read_timeout=0.3, request_deadline=5, retries=1)
    [error] = fetch_all([server.url("/silent")], fetch_options)
    assert error.reason == "no data for 0.3 s"  # silence may pass: the read timeout is retried
    assert len(server.requests) == 2


def test_a_drip_cut_off_by_the_deadline_is_not_retried(server: LocalServer):
    def drip(ex: Exchange) -> None:
        ex.head(200, [HTML_TYPE, ("Content-Length", "1000")])
        while ex.sleep(0.1):
            ex.write(b"<")

    server.route("/drip", drip)
    [error] = fetch_all([server.url("/drip")], options(per_host_delay=0.0, request_deadline=0.5))
    assert isinstance(error, Timeout) and error.reason == "no response within 0.5 s"
    assert len(server.requests) == 1  # a drip is not a passing fault: it would drip again
