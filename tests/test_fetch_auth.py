"""HTTP Basic credentials go to their own origin only (scheme, host and port), on every hop."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests.localserver import Exchange, LocalServer
from worker.errors import FetchError
from worker.fetch.client import Fetcher, FetchOptions
from worker.models import Credentials, NotModified, Page
from worker.urls import origin_key

HTML = b"<!doctype html><html><head><title>ok</title></head><body><p>ok</p></body></html>"
HTML_TYPE = {"Content-Type": "text/html; charset=utf-8"}
PASSWORD = "pa55-w0rd-for-the-site"
EXPECTED = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()


@pytest.fixture
def sites() -> Iterator[tuple[LocalServer, LocalServer]]:
    """Two origins on one host name: 127.0.0.1 on two ports."""
    with LocalServer() as site, LocalServer() as other:
        for server in (site, other):
            server.route("/page", body=HTML, headers=HTML_TYPE)
            server.route("/robots.txt", body=b"User-agent: *\nAllow: /\n", headers={})
        yield site, other


def fetch(url: str, credentials: dict[str, Credentials], **kwargs: Any) -> Page | NotModified:
    options = FetchOptions(user_agent="test/1", per_host_delay=0.0, retries=0)

    async def go() -> Page | NotModified:
        async with Fetcher(options, credentials=credentials) as fetcher:
            return await fetcher.fetch_page(url, **kwargs)

    return asyncio.run(go())


def for_origin(server: LocalServer) -> dict[str, Credentials]:
    return {origin_key(server.url("/")): Credentials("alice", PASSWORD)}


def authorization(server: LocalServer, path: str) -> str | None:
    (seen,) = server.seen(path)
    return seen.headers.get("authorization")


def test_the_origin_gets_its_credentials_robots_txt_included(
    sites: tuple[LocalServer, LocalServer],
) -> None:
    site, _other = sites
    fetch(site.url("/page"), for_origin(site), respect_robots=True)
    assert authorization(site, "/page") == EXPECTED
    assert authorization(site, "/robots.txt") == EXPECTED


def test_a_redirect_to_another_origin_carries_no_credentials(
    sites: tuple[LocalServer, LocalServer],
) -> None:
    site, other = sites
    site.route("/moved", status=302, headers={"Location": other.url("/page")})
    page = fetch(site.url("/moved"), for_origin(site))
    assert isinstance(page, Page) and page.final_url == other.url("/page")
    assert authorization(site, "/moved") == EXPECTED
    assert authorization(other, "/page") is None  # same host, other port: another origin


def test_a_redirect_within_the_origin_keeps_them(sites: tuple[LocalServer, LocalServer]) -> None:
    site, _other = sites
    site.route("/moved", status=301, headers={"Location": site.url("/page")})  # absolute
    fetch(site.url("/moved"), for_origin(site))
    assert authorization(site, "/page") == EXPECTED


def test_other_origins_never_get_them(sites: tuple[LocalServer, LocalServer]) -> None:
    site, other = sites
    fetch(other.url("/page"), for_origin(site))
    fetch(site.url("/page").replace("127.0.0.1", "localhost"), for_origin(site))  # another name
    assert authorization(other, "/page") is None
    assert authorization(site, "/page") is None


def test_credentials_can_be_replaced(sites: tuple[LocalServer, LocalServer]) -> None:
    site, _other = sites
    options = FetchOptions(user_agent="test/1", per_host_delay=0.0, retries=0)

    async def go() -> None:
        async with Fetcher(options, credentials=for_origin(site)) as fetcher:
            fetcher.use_credentials({})
            await fetcher.fetch_page(site.url("/page"), respect_robots=False)

    asyncio.run(go())
    assert authorization(site, "/page") is None


def test_a_refusal_names_the_url_without_its_secrets(
    sites: tuple[LocalServer, LocalServer],
) -> None:
    site, _other = sites

    def missing(ex: Exchange) -> None:
        ex.respond(404, HTML_TYPE, b"no")

    site.route("/gone", missing)
    with pytest.raises(FetchError) as caught:
        fetch(site.url("/gone?token=QUERY-T0KEN-1").replace("//", f"//bob:{PASSWORD}@"), {})
    assert authorization(site, "/gone") is not None  # the URL's own userinfo, as before
    message = str(caught.value)
    assert "token=***" in message
    assert PASSWORD not in message and "QUERY-T0KEN-1" not in message
