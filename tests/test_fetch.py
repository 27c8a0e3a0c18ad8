"""worker.fetch.client with respx / MockTransport: headers, statuses, retries, redirects, content rules."""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import time
import zlib
from datetime import UTC, datetime
from typing import Any

import brotli
import httpx
import pytest
import respx

from worker.config import Settings
from worker.errors import FetchError
from worker.fetch.client import (
    SNIPPET_BYTES,
    BadStatus,
    Blocked,
    Fetcher,
    FetchOptions,
    NetworkError,
    Timeout,
    TooManyRedirects,
    UnsupportedContent,
    host_key,
    parse_retry_after,
)
from worker.fetch.decode import html_text, page_html, page_text
from worker.models import NotModified, Page, RawHtml, Validators

HTML = b"<!doctype html><html><head><title>Hello</title></head><body><p>Text</p></body></html>"
HTML_TYPE = {"Content-Type": "text/html; charset=utf-8"}


def options(**overrides: Any) -> FetchOptions:
    """Fast defaults for tests: no politeness gap, tiny backoff."""
    values: dict[str, Any] = {"user_agent": "feedworker-test/1", "per_host_delay": 0.0}
    values["retry_backoff"] = 0.01
    return FetchOptions(**(values | overrides))


def fetch(url: str, fetch_options: FetchOptions | None = None, **kwargs: Any) -> Page | NotModified:
    kwargs.setdefault("respect_robots", False)  # robots.txt has its own tests

    async def go() -> Page | NotModified:
        async with Fetcher(fetch_options or options()) as fetcher:
            return await fetcher.fetch_page(url, **kwargs)

    return asyncio.run(go())


def refusal(url: str, fetch_options: FetchOptions | None = None, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, fetch_options, **kwargs)
    return info.value


# -- the happy path -------------------------------------------------------------------------------


@respx.mock
def test_page_with_headers_sent_and_validators_kept():
    route = respx.get("https://example.com/a").respond(
        200,
        headers=HTML_TYPE | {"ETag": '"v1"', "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"},
        content=HTML,
    )
    page = fetch("https://example.com/a")
    assert page == Page(
        url="https://example.com/a",
        final_url="https://example.com/a",
        status=200,
        content_type="text/html",
        text=HTML.decode(),
        encoding="utf-8",
        validators=Validators(etag='"v1"', last_modified="Wed, 01 Jan 2025 00:00:00 GMT"),
        size=len(HTML),
    )
    sent = route.calls.last.request.headers
    assert sent["user-agent"] == "feedworker-test/1"
    assert sent["accept"].startswith("text/html,application/xhtml+xml")
    assert sent["accept-encoding"] == "gzip, deflate, br"
    assert "if-none-match" not in sent


@respx.mock
def test_conditional_get_304_is_not_modified():  # bad input 27
    route = respx.get("https://example.com/feed").respond(304)
    validators = Validators(etag='"abc"', last_modified="Wed, 01 Jan 2025 00:00:00 GMT")
    assert fetch("https://example.com/feed", validators=validators) == NotModified(
        "https://example.com/feed"
    )
    sent = route.calls.last.request.headers
    assert sent["if-none-match"] == '"abc"'
    assert sent["if-modified-since"] == "Wed, 01 Jan 2025 00:00:00 GMT"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", lambda b: gzip.compress(b, mtime=0)),
        ("x-gzip", lambda b: gzip.compress(b, mtime=0)),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
        ("br", lambda b: __import__("brotli").compress(b)),
        ("identity", lambda b: b),
    ],
)
@respx.mock
def test_compressed_bodies_are_decoded(encoding: str, compress: Any):
    wire = compress(HTML * 50)
    respx.get("https://example.com/z").respond(
        200, headers=HTML_TYPE | {"Content-Encoding": encoding}, content=wire
    )
    page = fetch("https://example.com/z")
    assert isinstance(page, Page)
    assert page.text == (HTML * 50).decode()
    assert page.size == len(wire)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=windows-1251", "<p>Привет, мир: статья</p>".encode("cp1251")),
        ("text/html", '<meta charset="koi8-r"><p>Привет</p>'.encode("koi8-r")),
        ("text/html; charset=utf-8", "<p>caf\u00e9 \u201cquoted\u201d</p>".encode()),
    ],
)
@respx.mock
def test_an_undecoded_page_keeps_its_bytes_and_decodes_as_a_decoded_one(
    content_type: str, body: bytes
):
    """`decode=False` (article pages bound for the extractor) leaves the bytes and the charset
    label with the page; decoding them later gives exactly the text `decode=True` gives."""
    respx.get("https://example.com/raw").respond(
        200, headers={"Content-Type": content_type}, content=body
    )
    raw = fetch("https://example.com/raw", decode=False)
    decoded = fetch("https://example.com/raw")
    assert isinstance(raw, Page) and isinstance(decoded, Page)
    assert raw.text == "" and raw.raw == RawHtml(body, content_type)
    assert decoded.raw is None and "\ufffd" not in decoded.text
    assert page_text(raw) == page_text(decoded) == decoded.text
    assert html_text(page_html(raw)) == decoded.text


@respx.mock
def test_missing_content_type_accepted_when_it_looks_like_html():
    respx.get("https://example.com/bare").respond(200, content=b"\n  " + HTML)
    page = fetch("https://example.com/bare")
    assert isinstance(page, Page) and page.content_type == "text/html"


@respx.mock
def test_xhtml_accepted():
    respx.get("https://example.com/x").respond(
        200, headers={"Content-Type": "application/xhtml+xml"}, content=HTML
    )
    assert isinstance(fetch("https://example.com/x"), Page)


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [
        ("application/pdf", "unsupported content type application/pdf"),
        ("image/png", "unsupported content type image/png"),
        ("application/octet-stream", "unsupported content type application/octet-stream"),
        ("text/plain; charset=utf-8", "unsupported content type text/plain"),
        ("", "unsupported content type (empty)"),
    ],
)
@respx.mock
def test_non_html_is_skipped(content_type: str, reason: str):  # bad input 18
    respx.get("https://example.com/f").respond(
        200, headers={"Content-Type": content_type}, content=HTML
    )
    error = refusal("https://example.com/f")
    assert isinstance(error, UnsupportedContent)
    assert error.reason == reason


@respx.mock
def test_missing_content_type_and_not_html_is_skipped():
    respx.get("https://example.com/bin").respond(200, content=b"%PDF-1.7 ...")
    assert refusal("https://example.com/bin").reason == "no content type and not HTML"


@pytest.mark.parametrize("body", [b"", b"  \r\n\t  "])
@respx.mock
def test_empty_body(body: bytes):  # bad input 4
    respx.get("https://example.com/e").respond(200, headers=HTML_TYPE, content=body)
    error = refusal("https://example.com/e")
    assert (type(error), error.reason) == (UnsupportedContent, "empty body")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451])
@respx.mock
def test_other_4xx_fail_at_once(status: int):
    route = respx.get("https://example.com/gone").respond(status)
    error = refusal("https://example.com/gone")
    assert isinstance(error, BadStatus)
    assert (error.status, error.reason, route.call_count) == (status, f"HTTP {status}", 1)
    assert str(error) == f"https://example.com/gone: HTTP {status}"


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "/relative"]
)
def test_only_http_and_https(url: str):
    assert isinstance(refusal(url), Blocked)


class RawStream(httpx.AsyncByteStream):
    """A body httpx has not read yet (with `content=`, httpx decodes it on creation)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self):  # type: ignore[override]
        yield self._data


@respx.mock
def test_corrupt_gzip_is_refused():
    respx.get("https://example.com/c").respond(
        200, headers=HTML_TYPE | {"Content-Encoding": "gzip"}, stream=RawStream(b"not gzip")
    )
    assert refusal("https://example.com/c").reason == "corrupt compressed body"


@pytest.mark.parametrize("coding", ["gzip", "br"])
@respx.mock
def test_a_compressed_refusal_over_the_snippet_size_keeps_its_start(coding: str):
    page = b"<html><title>Just a moment...</title>" + b"<p>challenge</p>" * 4096  # 65 KiB
    packed = gzip.compress(page) if coding == "gzip" else brotli.compress(page)
    respx.get("https://example.com/wall").respond(
        403, headers=HTML_TYPE | {"Content-Encoding": coding}, stream=RawStream(packed)
    )
    error = refusal("https://example.com/wall")
    assert isinstance(error, BadStatus)
    assert error.snippet == page[:SNIPPET_BYTES].decode()  # was "": the whole chunk was dropped


# -- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
@respx.mock
def test_retryable_statuses_are_retried_twice(status: int):  # bad input 10
    route = respx.get("https://example.com/busy").respond(status)
    error = refusal("https://example.com/busy")
    assert (error.reason, route.call_count) == (f"HTTP {status}", 3)


@respx.mock
def test_a_retry_that_succeeds():
    route = respx.get("https://example.com/flaky")
    route.side_effect = [httpx.Response(503), httpx.Response(200, headers=HTML_TYPE, content=HTML)]
    assert isinstance(fetch("https://example.com/flaky"), Page)
    assert route.call_count == 2


@respx.mock
def test_connect_errors_are_retried():
    route = respx.get("https://example.com/down").mock(side_effect=httpx.ConnectError("refused"))
    error = refusal("https://example.com/down")
    assert isinstance(error, NetworkError)
    assert (error.reason, route.call_count) == ("could not connect", 3)


@respx.mock
def test_connect_timeouts_are_retried():
    route = respx.get("https://example.com/far").mock(side_effect=httpx.ConnectTimeout("slow"))
    error = refusal("https://example.com/far")
    assert (type(error), error.reason) == (Timeout, "no connection within 10 s")
    assert route.call_count == 3


@respx.mock
def test_tls_errors_fail_closed_without_retry():  # bad input 33
    route = respx.get("https://example.com/tls").mock(
        side_effect=httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    )
    assert refusal("https://example.com/tls").reason == "TLS error"
    assert route.call_count == 1


@respx.mock
def test_retry_after_seconds_is_honoured():  # bad input 11
    route = respx.get("https://example.com/slow-down")
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.Response(200, headers=HTML_TYPE, content=HTML),
    ]
    started = time.monotonic()
    assert isinstance(fetch("https://example.com/slow-down"), Page)
    assert time.monotonic() - started >= 1.0


@respx.mock
def test_retry_after_beyond_the_cap_gives_up_and_the_host_waits():
    respx.get("https://example.com/later").respond(429, headers={"Retry-After": "3600"})
    other = respx.get("https://example.com/other").respond(200, headers=HTML_TYPE, content=HTML)

    async def go() -> float:
        async with Fetcher(options(max_retry_after=0.5)) as fetcher:
            with pytest.raises(BadStatus):
                await fetcher.fetch_page("https://example.com/later", respect_robots=False)
            started = time.monotonic()
            await fetcher.fetch_page("https://example.com/other", respect_robots=False)
            return time.monotonic() - started

    assert asyncio.run(go()) >= 0.45
    assert other.call_count == 1


NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 01 Jan 2025 12:01:30 GMT", 90.0),
        ("Wed, 01 Jan 2025 11:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None):
    assert parse_retry_after(value, NOW) == seconds


@respx.mock
def test_garbage_retry_after_uses_default_backoff(caplog: pytest.LogCaptureFixture):
    route = respx.get("https://example.com/g").respond(503, headers={"Retry-After": "whenever"})
    caplog.set_level(logging.INFO, logger="worker.fetch.client")
    refusal("https://example.com/g", options(retry_backoff=0.05))
    assert route.call_count == 3
    waits = [r.wait_s for r in caplog.records if r.getMessage() == "retrying"]
    assert len(waits) == 2  # the backoff, doubling, with up to 50 % jitter
    assert 0.05 <= waits[0] <= 0.075 and 0.1 <= waits[1] <= 0.15


# -- redirects ------------------------------------------------------------------------------------


@respx.mock
def test_relative_redirect_resolved_against_the_previous_url():
    respx.get("https://example.com/a/b").respond(301, headers={"Location": "../c?x=1#frag"})
    respx.get("https://example.com/c?x=1").respond(200, headers=HTML_TYPE, content=HTML)
    page = fetch("https://example.com/a/b")
    assert isinstance(page, Page)
    assert (page.url, page.final_url) == ("https://example.com/a/b", "https://example.com/c?x=1")


@respx.mock
def test_redirect_to_another_scheme_is_blocked():  # bad input 14
    respx.get("https://example.com/r").respond(302, headers={"Location": "file:///etc/passwd"})
    error = refusal("https://example.com/r")
    assert (type(error), error.reason) == (Blocked, "unsupported scheme file")


@respx.mock
def test_redirect_without_location():
    respx.get("https://example.com/r").respond(302)
    assert refusal("https://example.com/r").reason == "HTTP 302 without Location"


@respx.mock
def test_redirect_loop_through_fragments_and_hosts():
    respx.get("https://example.com/a").respond(302, headers={"Location": "https://EXAMPLE.com/b"})
    respx.get("https://example.com/b").respond(302, headers={"Location": "/a#again"})
    error = refusal("https://example.com/a")
    assert (type(error), error.reason) == (TooManyRedirects, "redirect loop")


@respx.mock
def test_the_last_redirect_allowed_is_not_followed_at_all():
    """Past `max_redirects` hops the chain stops, whatever the last redirect says (here
    nothing: no Location), with the reason that counts the hops."""
    for n in range(5):
        respx.get(f"https://example.com/{n}").respond(
            302, headers={"Location": f"https://example.com/{n + 1}"}
        )
    respx.get("https://example.com/5").respond(302)
    error = refusal("https://example.com/0")
    assert (type(error), error.reason) == (TooManyRedirects, "more than 5 redirects")


@respx.mock
def test_credentials_used_for_basic_auth_never_shown_and_dropped_cross_origin():  # bad input 16
    first = respx.get("https://example.com/private").respond(
        302, headers={"Location": "https://other.example/next"}
    )
    second = respx.get("https://other.example/next").respond(404)
    error = refusal("https://user:s3cret@example.com/private")
    expected = "Basic " + base64.b64encode(b"user:s3cret").decode()
    assert first.calls.last.request.headers["authorization"] == expected
    assert "authorization" not in second.calls.last.request.headers
    assert "s3cret" not in str(error) and "s3cret" not in error.url


# -- the client seam ------------------------------------------------------------------------------


def test_respx_mock_using_httpx_also_intercepts():
    with respx.mock(using="httpx") as router:
        router.get("https://example.com/").respond(200, headers=HTML_TYPE, content=HTML)
        assert isinstance(fetch("https://example.com/"), Page)


def test_an_injected_transport_is_used():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers=HTML_TYPE, content=HTML)

    async def go() -> Page | NotModified:
        transport = httpx.MockTransport(handler)
        async with Fetcher(options(), transport=transport) as fetcher:
            return await fetcher.fetch_page("https://example.com/t", respect_robots=False)

    assert isinstance(asyncio.run(go()), Page)
    assert seen[0].headers["user-agent"] == "feedworker-test/1"


def test_global_concurrency_is_bounded():
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return httpx.Response(200, headers=HTML_TYPE, content=HTML)

    async def go() -> None:
        transport = httpx.MockTransport(handler)
        async with Fetcher(options(concurrency=3), transport=transport) as fetcher:
            urls = [f"https://host{i}.example/" for i in range(10)]
            await asyncio.gather(*(fetcher.fetch_page(u, respect_robots=False) for u in urls))

    asyncio.run(go())
    assert peak == 3


# -- options and host keys ------------------------------------------------------------------------


def test_options_from_settings_reads_same_named_settings():
    settings = Settings(user_agent="ua", max_redirects=3, log_level="DEBUG")
    assert FetchOptions.from_settings(settings) == FetchOptions(user_agent="ua", max_redirects=3)


def test_default_options_are_what_trusted_crawlers_agree_on():
    defaults = FetchOptions(user_agent="ua")
    assert (defaults.connect_timeout, defaults.read_timeout, defaults.request_deadline) == (
        10,
        20,
        30,
    )
    assert (defaults.max_redirects, defaults.max_page_bytes, defaults.retries) == (5, 10 << 20, 2)
    assert (defaults.per_host_concurrency, defaults.per_host_delay) == (1, 1.0)


@pytest.mark.parametrize(
    "url",
    [
        "https://bücher.example/a",
        "https://BÜCHER.Example./b",
        "http://xn--bcher-kva.example/c",
        "https://XN--BCHER-KVA.EXAMPLE:443/d",
        "http://bücher.example:80/e",
    ],
)
def test_host_key_is_one_per_server(url: str):  # bad input 17
    assert host_key(url) == "xn--bcher-kva.example"


def test_host_key_keeps_other_ports():
    assert host_key("http://example.com:8080/") == "example.com:8080"
