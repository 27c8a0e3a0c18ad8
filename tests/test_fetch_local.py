"""worker.fetch.client against a real local server: drips, bombs, huge bodies, redirects, 304s."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
from collections.abc import Iterator
from typing import Any

import brotli
import pytest

from worker.errors import FetchError
from worker.fetch.client import (
    Fetcher,
    FetchOptions,
    Timeout,
    TooLarge,
    TooManyRedirects,
    UnsupportedContent,
)
from worker.models import NotModified, Page, Validators

try:
    from tests.localserver import Exchange, LocalServer
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    from localserver import Exchange, LocalServer  # type: ignore[no-redef]

MIB = 1024 * 1024
HTML = b"<!doctype html><html><head><title>Local</title></head><body><p>ok</p></body></html>"
HTML_TYPE = ("Content-Type", "text/html; charset=utf-8")
BOMB_SIZE = 64 * MIB
LIMIT = 1 * MIB


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def options(**overrides: Any) -> FetchOptions:
    values: dict[str, Any] = {"user_agent": "feedworker-test/1", "per_host_delay": 0.0}
    values |= {"retries": 0, "max_page_bytes": LIMIT}
    return FetchOptions(**(values | overrides))


def fetch(url: str, fetch_options: FetchOptions | None = None, **kwargs: Any) -> Page | NotModified:
    kwargs.setdefault("respect_robots", False)  # robots.txt has its own tests

    async def go() -> Page | NotModified:
        async with Fetcher(fetch_options or options()) as fetcher:
            return await fetcher.fetch_page(url, **kwargs)

    return asyncio.run(go())


def refusal(url: str, fetch_options: FetchOptions | None = None) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, fetch_options)
    return info.value


def peak_memory_of_refusal(url: str) -> tuple[FetchError, int]:
    """The refusal, and the peak of Python allocations while fetching."""
    tracemalloc.start()
    try:
        error = refusal(url)
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_plain_page(server: LocalServer):
    server.route("/", body=HTML)
    page = fetch(server.url("/"))
    assert isinstance(page, Page) and page.text == HTML.decode()
    assert server.requests[0].headers["user-agent"] == "feedworker-test/1"


# -- time: the overall deadline -------------------------------------------------------------------


def drip(ex: Exchange) -> None:
    ex.head(200, [HTML_TYPE, ("Content-Length", "1000")])
    while ex.sleep(0.2):
        ex.write(b"<")


def silent(ex: Exchange) -> None:
    ex.sleep(30)


@pytest.mark.parametrize("handler", [drip, silent])
def test_a_slow_drip_or_silence_never_outlives_the_deadline(server: LocalServer, handler: Any):
    server.route("/slow", handler)  # bad input 9: the 20 s read timeout never trips on a drip
    error = refusal(server.url("/slow"), options(request_deadline=1.0))
    # Only the deadline says this (the drip outlasts it, silence would reach the read timeout).
    assert (type(error), error.reason) == (Timeout, "no response within 1 s")
    assert not error.transient  # and a drip is not tried again
    assert len(server.requests) == 1


def slow_redirect_chain(server: LocalServer, hops: int, pause: float) -> None:
    """/hop0 -> /hop1 -> ... -> a page, each answer `pause` seconds late (under the deadline)."""

    def hop(n: int) -> Any:
        def handler(ex: Exchange) -> None:
            if ex.sleep(pause):
                ex.respond(302, [("Location", f"/hop{n + 1}")] if n < hops else [HTML_TYPE], HTML)

        return handler

    for n in range(hops + 1):
        server.route(f"/hop{n}", hop(n))


def test_one_budget_for_all_hops_and_robots_txt(server: LocalServer):
    # Each answer comes 1 s late, well under the 3 s deadline: without a budget for the whole
    # fetch, robots.txt plus 6 hops went on for 7 s (at real settings, hours with retries). The
    # budget (3.5 s) runs out on the fourth answer, whatever the machine's load adds to each.
    slow_redirect_chain(server, hops=5, pause=1.0)
    server.route("/robots.txt", lambda ex: ex.sleep(1.0) and ex.respond(404))
    fetch_options = options(request_deadline=3.0, retries=0, max_retry_after=0.5)
    assert fetch_options.fetch_budget == pytest.approx(3.5)
    with pytest.raises(Timeout) as info:
        fetch(server.url("/hop0"), fetch_options, respect_robots=True)
    assert info.value.reason == "not done within 3.5 s in all"
    assert info.value.url == server.url("/hop0")
    assert len(server.requests) <= 4  # robots.txt and three hops at most


def test_waiting_for_the_host_is_not_spent_from_the_budget(server: LocalServer):
    # Politeness queues pages of one host for longer than a fetch's budget: none may fail for it.
    server.route("/p", body=HTML)
    # A budget of 2.1 s, and the fifth page waits 2.4 s for its turn; each exchange may take
    # up to 2 s (a local answer, however busy the machine).
    fetch_options = options(
        request_deadline=2.0, retries=0, max_retry_after=0.1, per_host_delay=0.6
    )
    assert fetch_options.fetch_budget < 4 * fetch_options.per_host_delay

    async def go() -> list[Any]:
        async with Fetcher(fetch_options) as fetcher:
            jobs = (
                fetcher.fetch_page(server.url(f"/p?{i}"), respect_robots=False) for i in range(5)
            )
            return await asyncio.gather(*jobs, return_exceptions=True)

    assert all(isinstance(result, Page) for result in asyncio.run(go()))


# -- size: refusing early, stopping early, decoding within bounds ---------------------------------


def test_content_length_of_1_gb_is_refused_before_reading(server: LocalServer):  # bad input 5
    def huge(ex: Exchange) -> None:
        ex.head(200, [HTML_TYPE, ("Content-Length", str(1 << 30))])
        for _ in range(16):
            ex.write(b"x" * 65536)

    server.route("/huge", huge)
    error = refusal(server.url("/huge"))
    assert (type(error), error.reason) == (TooLarge, f"body larger than {LIMIT} bytes")


def test_endless_chunked_body_stops_at_the_limit(server: LocalServer):  # bad input 6
    def endless(ex: Exchange) -> None:
        ex.head(200, [HTML_TYPE, ("Transfer-Encoding", "chunked")])
        chunk = b"<p>" + b"x" * 65533
        for _ in range(1 << 14):  # 1 GiB if nobody stops it
            ex.write_chunk(chunk)

    server.route("/endless", endless)
    error, peak = peak_memory_of_refusal(server.url("/endless"))
    assert isinstance(error, TooLarge)
    assert peak < 4 * LIMIT


def test_gzip_bomb_is_stopped_with_bounded_memory(server: LocalServer):  # bad input 7
    bomb = gzip.compress(b"\0" * BOMB_SIZE, compresslevel=9, mtime=0)
    headers = [HTML_TYPE, ("Content-Encoding", "gzip")]
    server.route("/bomb.gz", headers=headers, body=bomb)
    error, peak = peak_memory_of_refusal(server.url("/bomb.gz"))
    assert (type(error), error.reason) == (TooLarge, f"body larger than {LIMIT} bytes")
    assert peak < 4 * LIMIT  # the bomb expands to 64 × LIMIT


def test_brotli_bomb_is_stopped_with_bounded_memory(server: LocalServer):  # bad input 7
    bomb = brotli.compress(b"\0" * BOMB_SIZE, quality=5)
    server.route("/bomb.br", headers=[HTML_TYPE, ("Content-Encoding", "br")], body=bomb)
    error, peak = peak_memory_of_refusal(server.url("/bomb.br"))
    assert (type(error), error.reason) == (TooLarge, f"body larger than {LIMIT} bytes")
    assert peak < 4 * LIMIT  # the bomb expands to 64 × LIMIT


@pytest.mark.parametrize(
    ("encodings", "reason"),
    [
        (["gzip, gzip"], "unsupported content encoding 'gzip, gzip'"),
        (["gzip", "br"], "unsupported content encoding 'gzip, br'"),
        (["zstd"], "unsupported content encoding 'zstd'"),
        (["compress"], "unsupported content encoding 'compress'"),
    ],
)
def test_stacked_or_unknown_encodings_are_refused(  # bad input 8
    server: LocalServer, encodings: list[str], reason: str
):
    body = gzip.compress(gzip.compress(HTML))
    headers = [HTML_TYPE] + [("Content-Encoding", value) for value in encodings]
    server.route("/enc", headers=headers, body=body)
    error = refusal(server.url("/enc"))
    assert (type(error), error.reason) == (UnsupportedContent, reason)


# -- redirects ------------------------------------------------------------------------------------


def redirect_to(location: str) -> Any:
    def handler(ex: Exchange) -> None:
        ex.respond(302, [("Location", location)])

    return handler


def test_redirect_loop(server: LocalServer):  # bad input 13
    server.route("/a", redirect_to("/b"))
    server.route("/b", redirect_to(server.url("/a")))
    error = refusal(server.url("/a"))
    assert (type(error), error.reason) == (TooManyRedirects, "redirect loop")
    assert [r.path for r in server.requests] == ["/a", "/b"]


@pytest.mark.parametrize(("hops", "ok"), [(5, True), (6, False)])
def test_redirect_chain_stops_after_5(server: LocalServer, hops: int, ok: bool):  # bad input 13
    for i in range(hops):
        server.route(f"/hop{i}", redirect_to(f"/hop{i + 1}"))
    server.route(f"/hop{hops}", headers=[HTML_TYPE], body=HTML)
    if ok:
        page = fetch(server.url("/hop0"))
        assert isinstance(page, Page) and page.final_url == server.url(f"/hop{hops}")
    else:
        error = refusal(server.url("/hop0"))
        assert (type(error), error.reason) == (TooManyRedirects, "more than 5 redirects")
        assert len(server.requests) == 6  # the target of the 6th redirect is never asked


# -- content type and conditional GET -------------------------------------------------------------


def test_pdf_is_skipped(server: LocalServer):  # bad input 18
    server.route("/doc.pdf", headers=[("Content-Type", "application/pdf")], body=b"%PDF-1.7")
    error = refusal(server.url("/doc.pdf"))
    assert (type(error), error.reason) == (
        UnsupportedContent,
        "unsupported content type application/pdf",
    )


def test_304_is_not_modified_and_validators_are_sent(server: LocalServer):  # bad input 27
    server.route("/feed", status=304, headers=[("ETag", '"v2"')])
    validators = Validators(etag='"v2"', last_modified="Tue, 31 Dec 2024 10:00:00 GMT")
    assert fetch(server.url("/feed"), validators=validators) == NotModified(server.url("/feed"))
    sent = server.requests[0].headers
    assert sent["if-none-match"] == '"v2"'
    assert sent["if-modified-since"] == "Tue, 31 Dec 2024 10:00:00 GMT"


def test_validators_and_wire_size_come_from_the_response(server: LocalServer):
    body = gzip.compress(HTML * 100, mtime=0)
    headers = [
        HTML_TYPE,
        ("Content-Encoding", "gzip"),
        ("ETag", 'W/"abc"'),
        ("Last-Modified", "Tue, 31 Dec 2024 10:00:00 GMT"),
    ]
    server.route("/page", headers=headers, body=body)
    page = fetch(server.url("/page"))
    assert isinstance(page, Page)
    assert page.validators == Validators('W/"abc"', "Tue, 31 Dec 2024 10:00:00 GMT")
    assert (page.size, len(page.text)) == (len(body), len(HTML) * 100)
