"""Listing documents are read beside the event loop, bounded and under a time cap (issue 16).

Index pages, feeds and sitemaps are read by `worker.listing.read.read_listing`, in an extractor
process or (with `extract_processes = 0`) a worker thread, never in the event loop's own thread;
what comes back is bounded (links per page, entries per feed and sitemap); a document over the
cap costs its source that run, with the reason, and no other source anything.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
import respx

from tests.test_e2e import write_config
from tests.test_extractpool import T0, blog_site
from worker.config import load_config
from worker.errors import ListingError
from worker.fetch.client import Fetcher, FetchOptions
from worker.listing import read as listread
from worker.listing.discover import MAX_PAGE_LINKS, discover_links
from worker.listing.feedsource import MAX_FEED_ENTRIES, FeedResult
from worker.listing.lister import Listing, ListingOptions, list_articles
from worker.listing.read import (
    FeedRequest,
    IndexPage,
    IndexRequest,
    SitemapRequest,
    Unreadable,
    read_listing,
)
from worker.listing.sitemap import SitemapResult
from worker.models import RawHtml
from worker.service import runner
from worker.service.extractpool import ExtractorCrashed, InlineExtractor, ProcessExtractor
from worker.service.runner import Worker

ORIGIN = "https://slow.example.test"
# A child's cap in these tests, and a feed that takes it several times over (about 10 s of CPU):
# the cap counts a new child's start too, a second or so on a loaded machine.
CHILD_CAP = 3.0
SLOW_FEED_ITEMS = 50_000  # 8.5 MB, under max_page_bytes


def big_feed(items: int) -> bytes:
    """An RSS feed of `items` entries, about 100 bytes each (20,000: 2 MB)."""
    entries = b"".join(
        b"<item><title>Item %d, a headline</title><link>%s/p/%d</link>"
        b"<description>Summary of item %d.</description>"
        b"<pubDate>Mon, 06 Sep 2021 16:45:00 +0000</pubDate></item>" % (n, ORIGIN.encode(), n, n)
        for n in range(items)
    )
    return (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>'
        + entries
        + (b"</channel></rss>")
    )


def many_links(count: int) -> str:
    items = "".join(
        f'<li><a href="/2024/05/story-number-{n}-here">Story number {n} here</a></li>'
        for n in range(count)
    )
    return f"<html><body><main><ul>{items}</ul></main></body></html>"


def cpu(call: object) -> float:
    start = time.process_time()
    call()  # type: ignore[operator]
    return time.process_time() - start


# -- what a reader answers ---------------------------------------------------------------------


def test_an_index_page_is_decoded_and_read_once_for_everything_the_listing_needs() -> None:
    html = (
        '<html><head><meta charset="windows-1252">'
        '<link rel="alternate" type="application/rss+xml" href="/feed.xml"></head><body><main>'
        + "".join(
            f'<h2><a href="/2024/05/caf\xe9-story-{n}">Caf\xe9 story {n}</a></h2>' for n in range(3)
        )
        + "<p>"
        + "A paragraph of the page's own text, long enough to be a block. " * 5
        + "</p>"
        + '</main><a rel="next" href="/page/2/">Older posts</a></body></html>'
    ).encode("cp1252")
    request = IndexRequest(RawHtml(html, "text/html"), f"{ORIGIN}/", next_page=True, first=True)
    read = read_listing(request)
    assert isinstance(read, IndexPage) and read.discovery is not None
    assert [link.title for link in read.discovery.links] == [f"Café story {n}" for n in range(3)]
    assert read.next_page == f"{ORIGIN}/page/2/"
    assert read.feeds == (f"{ORIGIN}/feed.xml",)
    assert read.fingerprints and read.challenge is None


def test_refusals_come_back_as_answers_with_their_reason() -> None:
    assert read_listing(SitemapRequest(b"<html><body>no</body></html>")) == Unreadable(
        "not a sitemap: root element <html>"
    )
    unreadable = read_listing(FeedRequest(b"<nothing", ORIGIN))
    assert isinstance(unreadable, Unreadable) and "not a readable feed" in unreadable.reason


def test_a_page_of_50000_links_reads_the_first_10000_in_bounded_time() -> None:
    html = many_links(50_000)
    found = discover_links(html, f"{ORIGIN}/")
    assert found.unread == 50_000 - MAX_PAGE_LINKS
    assert len(found.links) == MAX_PAGE_LINKS
    assert cpu(lambda: discover_links(html, f"{ORIGIN}/")) < 8.0  # 17 s for all 50,000 before


def test_a_feed_of_20000_items_keeps_the_first_10000() -> None:
    result = read_listing(FeedRequest(big_feed(20_000), f"{ORIGIN}/feed.xml"))
    assert isinstance(result, FeedResult)
    assert len(result.entries) == MAX_FEED_ENTRIES and result.unread == 10_000


def listing(url: str, routes: dict[str, tuple[str, bytes]], reader: object = None) -> Listing:
    async def go() -> Listing:
        async with Fetcher(FetchOptions(user_agent="test", per_host_delay=0)) as fetcher:
            return await list_articles(ListingOptions(url=url), fetcher, reader)  # type: ignore[arg-type]

    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{ORIGIN}/robots.txt").respond(404)
        for path, (media_type, body) in routes.items():
            mock.get(f"{ORIGIN}{path}").respond(
                200, content=body, headers={"Content-Type": media_type}
            )
        return asyncio.run(go())


def test_the_listing_says_what_it_did_not_read() -> None:
    result = listing(f"{ORIGIN}/", {"/": ("text/html", many_links(12_000).encode())})
    assert len(result.links) == 100  # max_links_per_run
    notes = [d.reason for d in result.decisions if not d.url]
    assert "2000 more links on the page not read (over 10000)" in notes
    feed = listing(f"{ORIGIN}/feed.xml", {"/feed.xml": ("application/rss+xml", big_feed(10_005))})
    assert any(
        d.reason == "5 more entries in the feed not read (over 10000)" for d in feed.decisions
    )


def test_the_loop_thread_never_reads_a_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    original = listread.parse_html

    def recording(html: str) -> object:
        threads.append(threading.current_thread().name)
        return original(html)

    monkeypatch.setattr(listread, "parse_html", recording)
    loop_thread = threading.current_thread().name  # asyncio.run runs the loop in this thread
    listing(f"{ORIGIN}/", {"/": ("text/html", many_links(30).encode())})
    assert threads and loop_thread not in threads


def test_the_loop_keeps_running_while_a_thread_reads_a_big_feed() -> None:
    ticks = 0

    async def go() -> None:
        nonlocal ticks
        reading = asyncio.ensure_future(
            InlineExtractor().read_listing(FeedRequest(big_feed(10_000), f"{ORIGIN}/feed.xml"))
        )
        while not reading.done():
            ticks += 1
            await asyncio.sleep(0.01)
        assert isinstance(reading.result(), FeedResult)

    asyncio.run(go())
    assert ticks > 5  # read in the loop's own thread, there would be none at all


# -- the time cap ------------------------------------------------------------------------------


def test_a_child_reading_past_the_cap_is_stopped_and_the_next_read_works() -> None:
    async def go() -> tuple[str, object]:
        pool = ProcessExtractor(1, timeout=CHILD_CAP)
        try:
            with pytest.raises(ExtractorCrashed) as caught:
                feed = big_feed(SLOW_FEED_ITEMS)
                await pool.read_listing(FeedRequest(feed, f"{ORIGIN}/feed.xml"))
            after = await pool.read_listing(SitemapRequest(b"https://slow.example.test/a\n"))
            return str(caught.value), after
        finally:
            await pool.aclose()

    reason, after = asyncio.run(go())
    assert reason == "took longer than 3 s to read; the extractor process was stopped"
    assert isinstance(after, SitemapResult) and [e.url for e in after.entries] == [f"{ORIGIN}/a"]


def test_a_thread_reading_past_the_cap_is_given_up_on() -> None:
    reader = InlineExtractor(timeout=0.3)
    with pytest.raises(ListingError) as caught:
        listing(
            f"{ORIGIN}/feed.xml", {"/feed.xml": ("application/rss+xml", big_feed(20_000))}, reader
        )
    assert str(caught.value) == f"{ORIGIN}/feed.xml: took longer than 0.3 s to read (skipped)"


@pytest.mark.parametrize("processes", [0, 1])
def test_a_source_over_the_cap_fails_with_the_reason_and_others_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    cap = CHILD_CAP if processes else 0.3
    monkeypatch.setattr(
        runner,
        "make_extractor",
        lambda n: ProcessExtractor(n, timeout=cap) if n else InlineExtractor(timeout=cap),
    )
    site = blog_site()
    sources = (
        f'[[source]]\nid = "slow"\nurl = "{ORIGIN}/feed.xml"\nevery = "1h"\n'
        f'[[source]]\nid = "blog"\nurl = "{site.blog.origin}/"\nevery = "1h"\n'
    )
    config = write_config(tmp_path, sources, f"extract_processes = {processes}\n")
    feed = big_feed(SLOW_FEED_ITEMS if processes else 20_000)

    async def go() -> list:
        async with Worker(load_config(config), clock=lambda: T0) as worker:
            return await worker.run_once()

    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{ORIGIN}/robots.txt").respond(404)
        mock.get(f"{ORIGIN}/feed.xml").respond(
            200, content=feed, headers={"Content-Type": "application/rss+xml"}
        )
        mock.route(host=site.blog.origin.split("//")[1]).mock(side_effect=site)
        reports = {report.source_id: report for report in asyncio.run(go())}

    slow, blog = reports["slow"], reports["blog"]
    assert not slow.ok and slow.error.startswith(f"{ORIGIN}/feed.xml: took longer than {cap:g} s")
    assert blog.ok and blog.items_new == 3
