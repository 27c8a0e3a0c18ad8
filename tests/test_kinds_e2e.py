"""Feed and sitemap sources through `Worker.run_once`: the published items hold the full text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import respx

from tests.discover_pages.kinds_site import (
    BARE,
    HTML,
    NEWS,
    ORIGIN,
    PAGE1,
    PAGE2,
    KindsSite,
    atom,
    gz,
    rss,
    sitemap_index,
    splash_html,
    urls,
    urlset,
)
from tests.test_e2e import parse, run_once, write_config

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def source(url: str, extra: str = "") -> str:
    return f'[[source]]\nid = "harbour"\nurl = "{url}"\ntitle = "Harbour News"\n{extra}'


def run(tmp_path: Path, site: KindsSite, config: Path, when: datetime = T0) -> list:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="news.example.test").mock(side_effect=site)
        return run_once(config, when)


def test_summary_only_rss_becomes_full_text(tmp_path: Path) -> None:
    stories = (*PAGE1, *BARE)
    site = KindsSite({"/feed.rss": ("application/rss+xml", rss(stories, amp=True))})
    config = write_config(tmp_path, source(f"{ORIGIN}/feed.rss"))

    (report,) = run(tmp_path, site, config)

    assert report.ok, report.error
    assert report.items_new == 4
    feed = parse(tmp_path / "feeds" / "harbour.atom")
    by_link = {e.link: e for e in feed.entries}
    assert set(by_link) == set(urls(stories))  # AMP links and utm_source gone: canonical URLs
    for story in stories:
        entry = by_link[story.url]
        body = entry.content[0].value
        assert all(p in body for p in story.paragraphs), story.path
        assert "Only a summary" not in body
        assert "Popular posts" not in body
    bare = by_link[BARE[0].url]  # the page has no title or date: the feed entry's are kept
    assert bare.title == "Pier lights restored"
    assert bare.published_parsed[:5] == (2026, 11, 21, 18, 0)
    assert bare.author == "Jo Reporter"

    (again,) = run(tmp_path, site, config, T0 + timedelta(hours=1))
    assert again.ok and again.items_new == 0
    assert all(site.hits[p] == 1 for p in (s.path for s in stories)), site.hits


def test_atom_feed_advertised_by_a_page(tmp_path: Path) -> None:
    routes = {
        "/": (
            HTML,
            splash_html()
            .replace(
                "</head>",
                '<link rel="alternate" type="application/atom+xml" href="/atom.xml"></head>',
            )
            .encode(),
        ),
        "/atom.xml": ("application/atom+xml", atom((*PAGE2, *BARE))),
    }
    config = write_config(tmp_path, source(f"{ORIGIN}/"))
    (report,) = run(tmp_path, KindsSite(routes), config)
    assert report.ok, report.error
    feed = parse(tmp_path / "feeds" / "harbour.rss")
    assert {e.link for e in feed.entries} == set(urls((*PAGE2, *BARE)))
    bare = next(e for e in feed.entries if e.link == BARE[0].url)
    assert bare.title == "Pier lights restored"
    assert BARE[0].paragraphs[0] in bare.content[0].value


def test_sitemap_source_newest_first_capped_by_max_items(tmp_path: Path) -> None:
    routes = {
        "/sitemap_index.xml": (
            "application/xml",
            sitemap_index(
                {"/posts.xml.gz": "2026-11-24T09:00:00Z", "/news.xml": "2026-11-25T11:30:00Z"}
            ),
        ),
        "/posts.xml.gz": ("application/x-gzip", gz(urlset((*PAGE2, *PAGE1)))),
        "/news.xml": ("text/xml", urlset(NEWS, news=True)),
        "/": (HTML, splash_html().encode()),
    }
    robots = f"User-agent: *\nSitemap: {ORIGIN}/sitemap_index.xml\n"
    config = write_config(tmp_path, source(f"{ORIGIN}/", "max_items = 3\n"))
    site = KindsSite(routes, robots=robots)

    (report,) = run(tmp_path, site, config)

    assert report.ok, report.error
    assert report.items_new == 3
    feed = parse(tmp_path / "feeds" / "harbour.rss")
    newest = [NEWS[1], NEWS[0], PAGE1[0]]
    assert [e.link for e in feed.entries] == [s.url for s in newest]
    for entry, story in zip(feed.entries, newest, strict=True):
        assert story.paragraphs[1] in entry.content[0].value

    (again,) = run(tmp_path, site, config, T0 + timedelta(hours=1))
    assert again.ok and again.items_new == 3  # the next three, newest first
    assert site.hits["/sitemap_index.xml"] == 2  # a listing of several documents is re-read


def test_url_list_source(tmp_path: Path) -> None:
    extra = f'urls = ["{PAGE1[0].url}", "{PAGE2[0].url}?utm_campaign=x"]\n'
    config = write_config(tmp_path, source(f"{ORIGIN}/", extra))
    site = KindsSite({})
    (report,) = run(tmp_path, site, config)
    assert report.ok, report.error
    feed = parse(tmp_path / "feeds" / "harbour.rss")
    assert {e.link for e in feed.entries} == {PAGE1[0].url, PAGE2[0].url}
    assert site.hits["/"] == 0


def test_amp_page_maps_to_its_canonical_url(tmp_path: Path) -> None:
    # "/amp/<path>" is no spelling worker.urls rewrites; the AMP page's rel=canonical decides.
    data = rss(PAGE2).replace(f"<link>{ORIGIN}/".encode(), f"<link>{ORIGIN}/amp/".encode())
    site = KindsSite({"/feed.rss": ("application/rss+xml", data)})
    config = write_config(tmp_path, source(f"{ORIGIN}/feed.rss"))
    (report,) = run(tmp_path, site, config)
    assert report.ok and report.items_new == 2, report
    feed = parse(tmp_path / "feeds" / "harbour.rss")
    assert {e.link for e in feed.entries} == set(urls(PAGE2))
    assert {e.id for e in feed.entries} == set(urls(PAGE2))
    assert all(site.hits["/amp" + s.path] == 1 for s in PAGE2)
