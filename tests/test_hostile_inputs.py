"""Hostile inputs found in review, each with its defined outcome: SSRF through the source's own
redirects and through robots.txt redirects, entity bombs in feeds, codec names as charsets, and
rate-limited robots.txt."""

from __future__ import annotations

import asyncio

import pytest
import respx

from worker.errors import FetchError, ListingError
from worker.fetch.client import Fetcher, FetchOptions, RobotsDisallowed
from worker.fetch.decode import decode_html
from worker.fetch.robots import parse_robots
from worker.listing.feedsource import parse_feed
from worker.listing.lister import ListingOptions, list_articles

METADATA = "http://169.254.169.254/latest/meta-data/"
OPTIONS = FetchOptions(user_agent="feedworker-test/1", per_host_delay=0, retries=0)


def test_source_url_redirect_to_metadata_address_is_blocked() -> None:
    async def go() -> None:
        async with Fetcher(OPTIONS) as fetcher:
            await list_articles(ListingOptions(url="http://site.example.test/"), fetcher)

    with respx.mock(assert_all_called=False) as mock:
        mock.get("http://site.example.test/robots.txt").respond(404)
        mock.get("http://site.example.test/").respond(302, headers={"Location": METADATA})
        metadata = mock.route(host="169.254.169.254").respond(200, text="<p>secret</p>")
        with pytest.raises(FetchError) as caught:
            asyncio.run(go())
    assert "blocked address 169.254.169.254" in caught.value.reason
    assert not metadata.called


def test_robots_redirect_off_the_trusted_host_is_blocked() -> None:
    async def go() -> None:
        async with Fetcher(OPTIONS) as fetcher:
            await fetcher.fetch_page(
                "http://site.example.test/a",
                allow_private=False,
                trusted_origin="http://site.example.test/",
            )

    with respx.mock(assert_all_called=False) as mock:
        mock.get("http://site.example.test/robots.txt").respond(302, headers={"Location": METADATA})
        page = mock.get("http://site.example.test/a").respond(200, text="<p>article</p>")
        metadata = mock.route(host="169.254.169.254").respond(200, text="Sitemap: http://10.0.0.1/")
        with pytest.raises(FetchError) as caught:
            asyncio.run(go())
    assert "blocked address 169.254.169.254" in caught.value.reason
    assert not metadata.called and not page.called


def test_feed_declaring_entities_is_refused_before_parsing() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<rss version="2.0"><channel><title>&b;</title>'
        b"<item><link>https://x.test/1</link></item></channel></rss>"
    )
    with pytest.raises(ListingError, match="DTD of its own"):
        parse_feed(bomb, "https://x.test/")
    # A document type without entities (old RSS 0.91 feeds carry one) is still read.
    plain = bomb.replace(
        b' [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]', b""
    )
    plain = plain.replace(b"&b;", b"Title")
    assert len(parse_feed(plain, "https://x.test/").entries) == 1


@pytest.mark.parametrize(
    "label", ["base64", "zlib", "rot13", "undefined", "cp037", "unicode_escape"]
)
def test_codec_names_that_are_no_web_charset_are_ignored(label: str) -> None:
    body = "<html><p>Grüße aus Köln</p></html>".encode()
    text, encoding = decode_html(body, f"text/html; charset={label}")
    assert encoding == "utf-8" and "Grüße aus Köln" in text
    text, encoding = decode_html(f'<meta charset="{label}">'.encode() + body, None)
    assert encoding == "utf-8" and "Grüße aus Köln" in text


def test_rate_limited_robots_txt_disallows_for_now() -> None:
    assert parse_robots(429, b"", "feedworker", 512 * 1024).is_error
    assert not parse_robots(404, b"", "feedworker", 512 * 1024).is_error

    async def go() -> None:
        async with Fetcher(OPTIONS) as fetcher:
            await fetcher.fetch_page("http://busy.example.test/a")

    with respx.mock(assert_all_called=False) as mock:
        mock.get("http://busy.example.test/robots.txt").respond(429)
        page = mock.get("http://busy.example.test/a").respond(200, text="<p>article</p>")
        with pytest.raises(RobotsDisallowed, match=r"robots\.txt unavailable"):
            asyncio.run(go())
    assert not page.called


def test_respx_sees_the_fetchers_requests() -> None:
    """The cases above mean something only if respx intercepts the fetcher's client."""
    with respx.mock() as mock:
        route = mock.get("http://seen.example.test/robots.txt").respond(404)
        mock.get("http://seen.example.test/").respond(200, html="<html><p>x</p></html>")

        async def go() -> None:
            async with Fetcher(OPTIONS) as fetcher:
                await fetcher.fetch_page("http://seen.example.test/")

        asyncio.run(go())
    assert route.called
