"""Source health end to end: a redesign, an anti-bot wall and a recovery, on a mocked site.

Each scenario runs the real worker (fetch, listing, extraction, store, feeds, metrics) over an
`httpx.MockTransport` site whose pages change between runs, and checks the degraded state, its
reason, one log line per transition, the webhook message (a receiver on 127.0.0.1), the metrics
and that the items published before the breakage stay in the feed.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import httpx
import pytest

from tests.backend import state_env, state_url_of
from tests.sitekit import prose
from worker.config import load_config
from worker.models import RunReport
from worker.service.metrics import Metrics
from worker.service.runner import Worker
from worker.store.state import Store

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ORIGIN = "https://drift.example.test"
CHALLENGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    '<div id="cf-chl-widget">Checking your browser before accessing the site.</div>'
    '<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1"></script>'
    "</body></html>"
)


# The index page after a move to client-side rendering (create-react-app's shell).
SCRIPT_SHELL = (
    "<!doctype html><html><head><title>Drift</title>"
    '<script defer="defer" src="/static/js/main.3f2a.js"></script></head><body>'
    "<noscript>You need to enable JavaScript to run this app.</noscript>"
    '<div id="root"></div></body></html>'
)
JAVASCRIPT_REASON = (
    "the page is an empty shell that its scripts fill in (it needs JavaScript): set"
    ' render = "browser" on the source to render its pages in headless Chromium'
    " (docs/rendering.md), or point it at the site's feed or sitemap"
)


class DriftSite:
    """A small blog whose layout, article template and manners can change between runs."""

    def __init__(self) -> None:
        self.articles: list[str] = []  # paths, newest first
        self.listing_class = "posts"  # the container the operator's `links` selector names
        self.body_class = "post-body"  # the container the operator's `body` selector names
        self.wall = False  # every request answered with 403 and a challenge page
        self.shell = False  # the index moved to client-side rendering: an empty script shell
        self.etags = False  # the index answers If-None-Match with 304 while unchanged
        self.conditional: list[str | None] = []  # If-None-Match of each index request
        self.requests = 0

    def add(self, n: int) -> None:
        self.articles.insert(0, f"/{2026}/{n:02d}/story-{n}.html")

    def index(self) -> str:
        if self.shell:
            return SCRIPT_SHELL
        items = "".join(
            f'<li><h2><a href="{path}">Story {path[-7:-5]}</a></h2><p>A short teaser.</p></li>'
            for path in self.articles
        )
        return (
            "<!doctype html><html><head><title>Drift</title></head><body>"
            '<nav><a href="/">Home</a> <a href="/about">About</a></nav>'
            f'<main><ul class="{self.listing_class}">{items}</ul></main></body></html>'
        )

    def article(self, path: str) -> str:
        seed = sum(map(ord, path))
        paragraphs = "".join(f"<p>{html.escape(s)}</p>" for s in prose(seed, 24))
        return (
            f"<!doctype html><html><head><title>{path}</title></head><body>"
            f'<main><article><h1>{path}</h1><div class="{self.body_class}">{paragraphs}</div>'
            "</article></main><footer>Copyright 2026</footer></body></html>"
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        path = request.url.path
        if self.wall:
            return httpx.Response(403, text=CHALLENGE, headers={"content-type": "text/html"})
        if path == "/robots.txt":
            return httpx.Response(404)
        if path == "/" and self.etags:
            asked = request.headers.get("if-none-match")
            self.conditional.append(asked)
            etag = f'"{hash(self.index()) & 0xFFFFFFFF:x}"'
            if asked == etag:
                return httpx.Response(304, headers={"etag": etag})
            response = _html(self.index())
            response.headers["etag"] = etag
            return response
        if path == "/":
            return _html(self.index())
        if path in self.articles:
            return _html(self.article(path))
        return httpx.Response(404)


def _html(text: str) -> httpx.Response:
    return httpx.Response(200, text=text, headers={"content-type": "text/html; charset=utf-8"})


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                receiver.messages.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


class Harness:
    def __init__(self, root: Path, site: DriftSite, receiver: Receiver, source_extra: str = ""):
        self.root = root
        self.site = site
        self.metrics = Metrics()
        self.config_dir = root / "config"
        self.config_dir.mkdir()
        (self.config_dir / "feedworker.toml").write_text(
            "[worker]\nper_host_delay = 0\nretries = 0\n"
            f'state_url = "sqlite:///{root}/state.db"\nfeeds_dir = "{root}/feeds"\n'
            f'webhook_url = "{receiver.url}"\n'
        )
        (self.config_dir / "sources.toml").write_text(
            f'[[source]]\nid = "drift"\nurl = "{ORIGIN}/"\nlinks = "ul.posts h2 a"\n'
            f'body = "div.post-body"\nrespect_robots = false\n{source_extra}\n'
        )
        self.runs = 0

    def run(self) -> RunReport:
        at = T0 + timedelta(hours=self.runs)
        self.runs += 1
        transport = httpx.MockTransport(self.site.handle)
        config = load_config(self.config_dir, env=state_env())

        async def main() -> list[RunReport]:
            async with Worker(
                config, transport=transport, clock=lambda: at, metrics=self.metrics
            ) as worker:
                return await worker.run_once()

        (report,) = asyncio.run(main())
        return report

    def feed_guids(self) -> list[str]:
        parsed = feedparser.parse((self.root / "feeds" / "drift.rss").read_bytes())
        assert not parsed.bozo
        return [entry.id for entry in parsed.entries]

    def stored(self) -> tuple[str, tuple[str, ...]]:
        store = Store.open(state_url_of(self.root / "state.db"))
        try:
            health = store.source_health("drift")
        finally:
            store.close()
        assert health is not None
        return health.state, health.reasons

    def metric(self, name: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, {"source": "drift"})


def transitions(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int]]:
    return [
        (r.getMessage(), r.levelno)
        for r in caplog.records
        if r.getMessage() in ("source degraded", "source recovered")
    ]


def test_redesigned_listing_degrades_once_keeps_the_feed_and_recovers(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    site = DriftSite()
    for n in (1, 2, 3):
        site.add(n)
    h = Harness(tmp_path, site, receiver)
    assert h.run().items_new == 3
    site.add(4)
    assert h.run().items_new == 1
    published = h.feed_guids()
    assert len(published) == 4

    site.listing_class = "stories"  # the redesign: the operator's selector now matches nothing
    first = h.run()
    assert first.ok and first.selector_matched == 0 and first.health_state == "ok"
    assert transitions(caplog) == []  # one odd run raises no alarm (bad_runs = 2)
    second = h.run()
    assert second.health_state == "degraded" and second.health_changed
    (reason,) = second.health_reasons
    assert reason == (
        "the listing selector 'ul.posts h2 a' matched nothing on the last 2 runs;"
        " the 2 runs before found 3–4 links"
    )
    assert h.stored() == ("degraded", (reason,))
    assert h.metric("feedworker_source_degraded") == 1
    assert h.metric("feedworker_links_found") == 0
    assert h.run().health_state == "degraded"  # still broken: no second log line, no message
    assert transitions(caplog) == [("source degraded", logging.WARNING)]
    degraded_line = next(r for r in caplog.records if r.getMessage() == "source degraded")
    assert degraded_line.fields == {"source": "drift", "reason": reason}  # type: ignore[attr-defined]
    assert h.feed_guids() == published  # a degraded source keeps what it published

    site.listing_class = "posts"  # fixed
    site.add(5)
    recovered = h.run()
    assert recovered.health_state == "ok" and recovered.health_changed
    assert recovered.items_new == 1
    assert transitions(caplog) == [
        ("source degraded", logging.WARNING),
        ("source recovered", logging.WARNING),
    ]
    assert h.stored() == ("ok", ())
    assert h.metric("feedworker_source_degraded") == 0
    assert [(m["source"], m["state"], m["reasons"]) for m in receiver.messages] == [
        ("drift", "degraded", [reason]),
        ("drift", "ok", []),
    ]
    assert datetime.fromisoformat(receiver.messages[0]["at"]) == T0 + timedelta(hours=3)


def test_body_moved_to_a_new_container_degrades_on_extraction(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    site = DriftSite()
    for n in (1, 2, 3):
        site.add(n)
    h = Harness(tmp_path, site, receiver)
    h.run()
    site.add(4)
    assert h.run().methods == {"selector": 1}
    site.body_class = "entry-content"  # the body selector misses; automatic extraction stands in
    for n in (5, 6):
        site.add(n)
        report = h.run()
        assert report.methods == {"auto": 1} and report.items_new == 1
    assert report.health_state == "degraded"
    assert report.health_reasons == (
        "the body selector 'div.post-body' matched nothing on 2 of 2 pages on the last 2 runs;"
        " before: 0 of 4",
    )
    assert [m["state"] for m in receiver.messages] == ["degraded"]
    assert h.metric("feedworker_median_body_chars") is not None


def test_bodies_that_collapse_are_not_published_and_degrade_the_source(
    tmp_path: Path, receiver: Receiver
) -> None:
    site = DriftSite()
    for n in (1, 2, 3):
        site.add(n)
    h = Harness(tmp_path, site, receiver)
    h.config_dir.joinpath("sources.toml").write_text(  # no body selector: automatic extraction
        f'[[source]]\nid = "drift"\nurl = "{ORIGIN}/"\nlinks = "ul.posts h2 a"\n'
        "respect_robots = false\n"
    )
    h.run()
    published = h.feed_guids()
    real_article = site.article
    site.article = lambda path: (  # type: ignore[method-assign]
        "<!doctype html><html><body><main><article><h1>Story</h1>"
        "<p>Read the full story in our app.</p></article></main></body></html>"
    )
    for n in (4, 5):  # a skipped article is fetched again on the next run
        site.add(n)
        report = h.run()
        assert report.items_new == 0 and len(report.skipped) == n - 3
        skip = report.skipped[0]
        assert skip.kind in ("too_short", "no_text")
    assert report.health_state == "degraded"
    assert any("could not be read as articles" in r for r in report.health_reasons)
    assert h.feed_guids() == published  # no junk item was added
    assert (
        h.metrics.registry.get_sample_value(
            "feedworker_articles_skipped_total", {"source": "drift", "reason": skip.kind}
        )
        == 3
    )
    site.article = real_article  # type: ignore[method-assign]
    site.add(6)
    report = h.run()
    assert report.health_state == "ok" and report.items_new == 3  # the skipped ones come back


def test_anti_bot_wall_degrades_with_the_challenge_named_and_recovers(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    site = DriftSite()
    for n in (1, 2):
        site.add(n)
    h = Harness(tmp_path, site, receiver)
    h.run()
    published = h.feed_guids()
    site.wall = True
    first = h.run()
    assert not first.ok and first.statuses == {403: 1} and first.health_state == "ok"
    second = h.run()
    assert second.health_state == "degraded"
    assert second.health_reasons == (
        "the site is refusing the worker: HTTP 403 with challenge pages ('cf-chl') for 2 of 2"
        " requests on the last 2 runs (an anti-bot wall or a rate limit)",
    )
    h.run()
    assert transitions(caplog) == [("source degraded", logging.WARNING)]
    assert h.feed_guids() == published
    site.wall = False
    assert h.run().health_state == "ok"
    assert transitions(caplog)[-1] == ("source recovered", logging.WARNING)
    assert [m["state"] for m in receiver.messages] == ["degraded", "ok"]


def test_a_dead_webhook_is_logged_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Nowhere:
        url = "http://127.0.0.1:9/hook"  # discard port: connection refused

    site = DriftSite()
    site.add(1)
    h = Harness(tmp_path, site, Nowhere())  # type: ignore[arg-type]
    h.run()
    site.wall = True
    h.run()
    report = h.run()
    assert report.health_changed
    assert any(r.getMessage() == "webhook failed" for r in caplog.records)


def test_a_feed_sources_junk_page_is_published_as_the_feeds_summary(
    tmp_path: Path, receiver: Receiver
) -> None:
    summary = "The council opened the new harbour bridge after a decade of planning and votes."
    rss = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Drift</title>'
        f"<link>{ORIGIN}/</link><description>d</description>"
        f"<item><title>Bridge opens</title><link>{ORIGIN}/bridge.html</link>"
        f"<description>{summary}</description></item></channel></rss>"
    )
    app_only = "<!doctype html><html><body><div id='app'>Loading...</div></body></html>"

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/feed.xml":
            return httpx.Response(200, text=rss, headers={"content-type": "application/rss+xml"})
        if request.url.path == "/bridge.html":
            return _html(app_only)
        return httpx.Response(404)

    h = Harness(tmp_path, DriftSite(), receiver)
    h.config_dir.joinpath("sources.toml").write_text(
        f'[[source]]\nid = "drift"\nurl = "{ORIGIN}/feed.xml"\nrespect_robots = false\n'
    )
    h.site.handle = handle  # type: ignore[method-assign]
    report = h.run()
    assert report.items_new == 1 and report.methods == {"feed-summary": 1}
    assert report.skipped == []
    (entry,) = feedparser.parse((tmp_path / "feeds" / "drift.rss").read_bytes()).entries
    assert summary in entry.content[0].value
    assert "Summary from the site's feed" in entry.content[0].value


def test_a_move_to_client_side_rendering_degrades_at_once_and_304s_keep_it_degraded(
    tmp_path: Path, receiver: Receiver
) -> None:
    site = DriftSite()
    site.etags = True
    for n in (1, 2, 3):
        site.add(n)
    h = Harness(tmp_path, site, receiver)
    assert h.run().items_new == 3
    assert h.run().index_not_modified  # unchanged: a 304, as before

    site.shell = True
    moved = h.run()
    assert not moved.index_not_modified and moved.links_found == 0
    assert moved.health_state == "degraded" and moved.health_changed  # on the first run
    assert moved.health_reasons == (JAVASCRIPT_REASON,)
    for _ in range(3):  # the same shell, confirmed by 304s: the verdict stands
        again = h.run()
        assert again.index_not_modified and again.health_state == "degraded"
        assert JAVASCRIPT_REASON in again.health_reasons
    assert [m["state"] for m in receiver.messages] == ["degraded"]
    assert len(h.feed_guids()) == 3  # what was published stays


def test_a_listing_that_went_empty_stays_judged_through_304s_and_a_new_selector_is_tried(
    tmp_path: Path, receiver: Receiver
) -> None:
    site = DriftSite()
    site.etags = True
    for n in (1, 2, 3):
        site.add(n)
    h = Harness(tmp_path, site, receiver)
    h.run()
    h.run()
    site.listing_class = "stories"  # the operator's selector matches nothing from now on
    first = h.run()
    assert first.selector_matched == 0 and first.health_state == "ok"  # one odd run
    unchanged = h.run()
    assert unchanged.index_not_modified  # the empty page confirmed: the second bad run
    assert unchanged.health_state == "degraded"
    assert unchanged.health_reasons == (
        "the listing selector 'ul.posts h2 a' matched nothing on the last 2 runs;"
        " the 2 runs before found 3 links",
    )
    assert h.run().health_state == "degraded"  # and so on while the page stays the same

    # The operator fixes the selector: the unchanged page is read again with it at once.
    sources = h.config_dir / "sources.toml"
    sources.write_text(sources.read_text().replace("ul.posts h2 a", "ul.stories h2 a"))
    asked_before = len(site.conditional)
    fixed = h.run()
    assert site.conditional[asked_before:] == [None]  # no validators: they were another reading
    assert not fixed.index_not_modified and fixed.links_found == 3
    assert fixed.health_state == "ok"
    assert h.run().index_not_modified and h.run().health_state == "ok"
