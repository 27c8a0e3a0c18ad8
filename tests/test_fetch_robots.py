"""robots.txt: parsed rules (pure), the cache, and the fetcher obeying it on a real local server."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from worker.fetch.client import Fetcher, FetchOptions, NetworkError, RobotsDisallowed
from worker.fetch.robots import RobotsCache, RobotsRules, parse_robots, unavailable

try:
    from tests.localserver import LocalServer
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    from localserver import LocalServer  # type: ignore[no-redef]

UA = "feedworker/0.1 (+https://example.org/bot)"
HTML = b"<!doctype html><html><head><title>Local</title></head><body><p>ok</p></body></html>"
TEXT = [("Content-Type", "text/plain")]
KIB = 1024


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        running.route("/page", body=HTML)
        running.route("/private/page", body=HTML)
        yield running


def options(**overrides: Any) -> FetchOptions:
    values: dict[str, Any] = {"user_agent": UA, "per_host_delay": 0.0, "retries": 0}
    return FetchOptions(**(values | overrides))


def fetch_each(urls: list[str], fetch_options: FetchOptions | None = None) -> list[Any]:
    """Fetch one after the other with one fetcher; exceptions are returned, not raised."""

    async def go() -> list[Any]:
        results = []
        async with Fetcher(fetch_options or options()) as fetcher:
            for url in urls:
                try:
                    results.append(await fetcher.fetch_page(url))
                except (RobotsDisallowed, NetworkError) as exc:
                    results.append(exc)
        return results

    return asyncio.run(go())


def reasons(results: list[Any]) -> list[str]:
    return [r.reason if isinstance(r, RobotsDisallowed) else "fetched" for r in results]


# -- what an answer means -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451])
def test_4xx_means_no_robots_txt(status: int):
    assert parse_robots(status, b"Disallow: /", UA, 512 * KIB).allows("https://a/x", UA)


@pytest.mark.parametrize("status", [500, 503, 300, 100])
def test_5xx_means_disallow_for_now(status: int):
    rules = parse_robots(status, b"", UA, 512 * KIB)
    assert rules.is_error and not rules.allows("https://a/x", UA)
    assert rules.reason == f"robots.txt unavailable (HTTP {status})"


def test_rules_for_our_agent_and_crawl_delay():
    body = (
        b"User-agent: feedworker\nDisallow: /private\nCrawl-delay: 45\n\nUser-agent: *\nDisallow: /"
    )
    rules = parse_robots(200, body, UA, 512 * KIB)
    assert rules.allows("https://a/page", UA)
    assert not rules.allows("https://a/private/x", UA)
    assert rules.crawl_delay == 45.0


def test_only_the_first_max_bytes_are_parsed_and_a_cut_line_is_dropped():
    body = b"User-agent: *\nDisallow: /private\n" + b"# filler\n" * 200 + b"Disallow: /pub"
    rules = parse_robots(200, body, UA, len(body) - 1)  # cut inside the last line
    assert not rules.allows("https://a/private/x", UA)
    assert rules.allows("https://a/public", UA)  # "Disallow: /pu" would have blocked it


def test_html_served_as_robots_txt_has_no_rules():
    assert parse_robots(200, HTML * 100, UA, 512 * KIB).allows("https://a/x", UA)


def test_cache_expiry_and_shorter_life_for_errors():
    now = [0.0]
    cache = RobotsCache(ttl=100, error_ttl=10, clock=lambda: now[0])
    cache.put("https://a", RobotsRules())
    cache.put("https://b", unavailable("HTTP 503"))
    now[0] = 50
    assert cache.get("https://a") is not None and cache.get("https://b") is None
    now[0] = 100
    assert cache.get("https://a") is None


# -- the fetcher obeying it -----------------------------------------------------------------------


def test_503_for_robots_txt_means_nothing_is_fetched_for_now(server: LocalServer):  # input 12
    server.route("/robots.txt", status=503, headers=TEXT)
    results = fetch_each([server.url("/page"), server.url("/private/page")])
    assert reasons(results) == ["robots.txt unavailable (HTTP 503)"] * 2
    assert [r.path for r in server.requests] == ["/robots.txt"]  # asked once, then cached


def test_unreachable_robots_txt_means_nothing_is_fetched():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: connection refused
    [result] = fetch_each([f"http://127.0.0.1:{port}/page"])
    # A site that does not answer is a network failure of the page, said as such.
    assert isinstance(result, NetworkError)
    assert result.reason == "the site could not be reached (could not connect)"


def test_404_for_robots_txt_allows_everything(server: LocalServer):  # bad input 12
    results = fetch_each([server.url("/page"), server.url("/private/page")])
    assert reasons(results) == ["fetched", "fetched"]
    assert [r.path for r in server.requests] == ["/robots.txt", "/page", "/private/page"]


def test_disallow_all_means_no_page_requests(server: LocalServer):  # bad input 12
    server.route("/robots.txt", headers=TEXT, body=b"User-agent: *\nDisallow: /\n")
    results = fetch_each([server.url("/page")])
    assert reasons(results) == ["disallowed by robots.txt"]
    assert [r.path for r in server.requests] == ["/robots.txt"]


def test_a_redirect_to_a_disallowed_page_is_not_followed(server: LocalServer):
    server.route("/robots.txt", headers=TEXT, body=b"User-agent: *\nDisallow: /private\n")
    server.route("/moved", status=301, headers=[("Location", "/private/page")])
    assert reasons(fetch_each([server.url("/moved")])) == ["disallowed by robots.txt"]
    assert [r.path for r in server.requests] == ["/robots.txt", "/moved"]


def test_redirected_robots_txt_is_followed(server: LocalServer):
    server.route("/robots.txt", status=301, headers=[("Location", "/real-robots.txt")])
    server.route("/real-robots.txt", headers=TEXT, body=b"User-agent: *\nDisallow: /private\n")
    results = fetch_each([server.url("/page"), server.url("/private/page")])
    assert reasons(results) == ["fetched", "disallowed by robots.txt"]


def test_crawl_delay_is_honoured_up_to_the_cap(server: LocalServer):  # bad input 12
    server.route("/robots.txt", headers=TEXT, body=b"User-agent: *\nCrawl-delay: 45\n")
    urls = [server.url(f"/page?{i}") for i in range(3)]
    assert reasons(fetch_each(urls, options(max_crawl_delay=0.4))) == ["fetched"] * 3
    starts = [r.started for r in server.requests]
    assert all(gap >= 0.4 - 0.05 for gap in [b - a for a, b in pairwise(starts)])


def test_a_2_mib_robots_txt_is_read_up_to_512_kib(server: LocalServer):  # bad input 12
    body = b"User-agent: *\nDisallow: /private\n" + b"# " + b"x" * (2 * 1024 * KIB) + b"\n"
    body += b"Disallow: /\n"  # beyond the cap: never seen
    server.route("/robots.txt", headers=TEXT, body=body)
    results = fetch_each([server.url("/page"), server.url("/private/page")])
    assert reasons(results) == ["fetched", "disallowed by robots.txt"]


def test_a_gzipped_robots_txt_over_the_cap_keeps_the_rules_that_fit(server: LocalServer):
    # 700 KB of rules, gzipped to a few KiB: all of it arrives in the first chunk on the wire,
    # which unpacks past 512 KiB. Before: that chunk was dropped whole and b"" meant allow all.
    body = b"User-agent: *\nDisallow: /private\n" + b"# filler line\n" * 50_000
    headers = [*TEXT, ("Content-Encoding", "gzip")]
    server.route("/robots.txt", headers=headers, body=gzip.compress(body))
    results = fetch_each([server.url("/page"), server.url("/private/page")])
    assert reasons(results) == ["fetched", "disallowed by robots.txt"]
    assert [r.path for r in server.requests] == ["/robots.txt", "/page"]


def test_a_cut_rule_at_the_cap_is_dropped_on_the_wire_too(server: LocalServer):
    # The cap falls inside "Disallow: /pub": kept whole it would block /public; cut, it is dropped.
    head = b"User-agent: *\nDisallow: /private\n"
    head += b"#" * (100_000 - len(head) - 20) + b"\n"
    body = head + b"Disallow: /pub\n" + b"# after\n" * 10_000
    cap = len(head) + len(b"Disallow: /pu")
    server.route(
        "/robots.txt", headers=[*TEXT, ("Content-Encoding", "gzip")], body=gzip.compress(body)
    )
    server.route("/public", body=HTML)
    results = fetch_each(
        [server.url("/public"), server.url("/private/page")], options(max_robots_bytes=cap)
    )
    assert reasons(results) == ["fetched", "disallowed by robots.txt"]


def test_plain_robots_txt_keeps_the_part_of_the_chunk_that_crosses_the_cap(server: LocalServer):
    # A rule just below a cap that is not a multiple of the 64 KiB socket reads: it sits in the
    # chunk that crosses the cap, which used to be dropped whole.
    cap = 100_000
    head = b"User-agent: *\n" + b"#" * (cap - 2_000) + b"\n"
    body = head + b"Disallow: /private\n" + b"# after\n" * 50_000
    server.route("/robots.txt", headers=TEXT, body=body)
    results = fetch_each(
        [server.url("/page"), server.url("/private/page")], options(max_robots_bytes=cap)
    )
    assert reasons(results) == ["fetched", "disallowed by robots.txt"]
