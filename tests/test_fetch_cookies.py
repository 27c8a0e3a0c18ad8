"""Cookies: a capped jar per source and run, never shared between sources or kept across runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.test_e2e import write_config
from worker.config import load_config
from worker.fetch.client import (
    MAX_COOKIE_BYTES,
    MAX_COOKIE_SIZE,
    MAX_COOKIES,
    CappedCookieJar,
    Fetcher,
    FetchOptions,
)
from worker.service.runner import Worker

OPTIONS = FetchOptions(user_agent="feedworker-test/1", per_host_delay=0, retries=0)
HTML_TYPE = {"content-type": "text/html; charset=utf-8"}


def cookie_response(request: httpx.Request, *cookies: str) -> httpx.Response:
    return page("<html><body><p>page</p></body></html>", *cookies)


def jar_of(fetcher: Fetcher) -> CappedCookieJar:
    jar = fetcher._cookies.jar
    assert isinstance(jar, CappedCookieJar)
    return jar


def test_the_jar_keeps_at_most_its_count_and_bytes() -> None:
    sent: list[str] = []

    def site(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie", ""))
        n = len(sent)  # every page sets 15 cookies of its own, as the trackers did
        return cookie_response(request, *(f"t{n}_{i}={'v' * 200}" for i in range(15)))

    async def go() -> Fetcher:
        async with Fetcher(OPTIONS, transport=httpx.MockTransport(site)) as fetcher:
            session = fetcher.session()
            for n in range(300):
                await session.fetch_page(f"https://tracked.example/p{n}", respect_robots=False)
            return session

    session = asyncio.run(go())
    jar = jar_of(session)
    kept = list(jar)
    assert len(kept) <= MAX_COOKIES
    assert sum(len(c.name) + len(c.value or "") for c in kept) <= MAX_COOKIE_BYTES
    assert jar.refused >= 300 * 15 - MAX_COOKIES
    assert max(len(header) for header in sent) <= MAX_COOKIE_BYTES + 2 * MAX_COOKIES  # "; "


def test_a_cookie_replacing_a_kept_one_is_kept_and_an_oversized_one_is_not() -> None:
    def site(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/fill":
            return cookie_response(request, *(f"c{i}=x" for i in range(MAX_COOKIES)))
        if path == "/renew":
            return cookie_response(request, "c0=renewed", "extra=refused")
        return cookie_response(request, "huge=" + "h" * MAX_COOKIE_SIZE)

    async def go() -> dict[str, str]:
        async with Fetcher(OPTIONS, transport=httpx.MockTransport(site)) as fetcher:
            for path in ("/fill", "/renew", "/huge"):
                await fetcher.fetch_page(f"https://site.example{path}", respect_robots=False)
            return {c.name: c.value or "" for c in jar_of(fetcher)}

    kept = asyncio.run(go())
    assert len(kept) == MAX_COOKIES and kept["c0"] == "renewed"
    assert "extra" not in kept and "huge" not in kept


def test_each_session_has_its_own_cookies() -> None:
    seen: dict[str, str] = {}

    def site(request: httpx.Request) -> httpx.Response:
        seen[request.url.path] = request.headers.get("cookie", "")
        if request.url.path == "/login":
            return cookie_response(request, "session=alice")
        return cookie_response(request)

    async def go() -> None:
        async with Fetcher(OPTIONS, transport=httpx.MockTransport(site)) as fetcher:
            first, second = fetcher.session(), fetcher.session()
            await first.fetch_page("https://shared.example/login", respect_robots=False)
            await first.fetch_page("https://shared.example/first", respect_robots=False)
            await second.fetch_page("https://shared.example/second", respect_robots=False)
            await fetcher.session().fetch_page("https://shared.example/later", respect_robots=False)
            await fetcher.fetch_page("https://shared.example/plain", respect_robots=False)

    asyncio.run(go())
    assert seen["/first"] == "session=alice"  # a session keeps what its site set
    assert seen["/second"] == seen["/later"] == seen["/plain"] == ""  # and nobody else gets it


def test_a_source_run_never_sends_another_sources_or_an_earlier_runs_cookies(
    tmp_path: Path,
) -> None:
    sent: list[tuple[str, str]] = []  # (path, Cookie header) of every request

    def site(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        sent.append((path, request.headers.get("cookie", "")))
        if path == "/robots.txt":
            return httpx.Response(404)
        section = path.split("/")[1]  # "a" or "b": each source reads its own section
        if path == f"/{section}/":
            links = "".join(
                f'<article><h2><a href="/{section}/post-{n}.html">A headline for post {n} in'
                f" section {section}</a></h2></article>"
                for n in (1, 2)
            )
            body = f"<html><body><main>{links}</main></body></html>"
            return page(body, f"visitor={section}")  # set for the whole site (Path=/)
        text = " ".join([f"A long enough paragraph about {path}."] * 15)
        return page(f"<html><body><article><h1>{path}</h1><p>{text}</p><p>{text}</p></article>")

    # Two sources on one site: one jar would hand each the other's cookie (same domain, path /).
    sources = "".join(
        f'[[source]]\nid = "{section}"\nurl = "https://shared.example/{section}/"\n'
        for section in ("a", "b")
    )
    config = load_config(write_config(tmp_path, sources))

    async def go() -> None:
        async with Worker(config, transport=httpx.MockTransport(site)) as worker:
            for _ in range(2):
                await worker.run_once()

    asyncio.run(go())
    articles = [(path, cookie) for path, cookie in sent if path.endswith(".html")]
    assert len(articles) == 4
    for path, cookie in articles:  # a run sends back its own site's cookie, and only that
        assert cookie == f"visitor={path.split('/')[1]}", (path, cookie)
    # Each run starts with an empty jar: no index request carries a cookie.
    assert [cookie for path, cookie in sent if path in ("/a/", "/b/")] == [""] * 4


def page(text: str, *cookies: str) -> httpx.Response:
    headers = [*HTML_TYPE.items(), *(("set-cookie", f"{c}; Path=/") for c in cookies)]
    return httpx.Response(200, headers=headers, text=text)
