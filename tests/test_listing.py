"""Every source kind through `list_articles`, on a mocked site: the exact article URLs found."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import respx
from selectolax.lexbor import LexborHTMLParser

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
    index_html,
    json_feed,
    landing_html,
    rss,
    sitemap_index,
    splash_html,
    urls,
    urlset,
)
from tests.test_layering import PACKAGE, imported_modules
from worker.cli import main
from worker.errors import ListingError
from worker.extract import htmlparse
from worker.extract.htmlparse import parse_html
from worker.fetch.client import (
    DOCUMENT_TYPES,
    HTML_TYPES,
    Fetcher,
    FetchOptions,
    TooLarge,
    UnsupportedContent,
)
from worker.listing import lister as listing_module
from worker.listing import read as listread
from worker.listing.discover import discover_links
from worker.listing.kinds import detect_kind
from worker.listing.lister import MAX_DECISIONS, Listing, ListingOptions, list_articles
from worker.models import Page
from worker.urls import param_dropper

BLOG = {
    "/blog/": (HTML, index_html(PAGE1, older="/blog/page/2/").encode()),
    "/blog/page/2/": (HTML, index_html(PAGE2, older="/blog/page/3/").encode()),
    "/blog/page/3/": (HTML, index_html(BARE, older=None).encode()),
}
SITEMAPS = {
    "/sitemap_index.xml": (
        "application/xml",
        sitemap_index(
            {
                "/sitemap-posts.xml.gz": "2026-11-24T09:00:00Z",
                "/news-sitemap.xml": "2026-11-25T11:30:00Z",
            }
        ),
    ),
    "/sitemap-posts.xml.gz": ("application/x-gzip", gz(urlset((*PAGE2, *PAGE1)))),
    "/news-sitemap.xml": ("text/xml", urlset(NEWS, news=True)),
}
NEWEST_FIRST = [
    f"{ORIGIN}/news/storm-warning-for-weekend/",
    f"{ORIGIN}/news/council-votes-on-parking/",
    *urls(PAGE1),
    *urls(PAGE2),
]


def listing(site: KindsSite, url: str, **options: object) -> Listing:
    async def go() -> Listing:
        async with Fetcher(FetchOptions(user_agent="test", per_host_delay=0)) as fetcher:
            return await list_articles(ListingOptions(url=url, **options), fetcher)  # type: ignore[arg-type]

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="news.example.test").mock(side_effect=site)
        return asyncio.run(go())


def found(result: Listing) -> list[str]:
    return [link.url for link in result.links]


# -- index pages ---------------------------------------------------------------------------------


def test_index_page_finds_exactly_the_listing() -> None:
    result = listing(KindsSite(BLOG), f"{ORIGIN}/blog/")
    assert result.kind == "index"
    assert found(result) == urls(PAGE1)  # no navigation, footer, popular posts or pagination
    reasons = {d.url: d.reason for d in result.decisions if not d.kept}
    assert reasons[f"{ORIGIN}/blog/page/2/"] == "pagination"
    assert reasons[f"{ORIGIN}/blog/2024/06/the-great-storm-remembered/"].startswith(
        "sidebar widget"
    )
    assert result.page is not None and result.page.validators == result.page.validators  # kept


def test_pages_2_follows_one_next_page() -> None:
    site = KindsSite(BLOG)
    result = listing(site, f"{ORIGIN}/blog/", pages=2)
    assert found(result) == [*urls(PAGE1), *urls(PAGE2)]
    assert [d.url for d in result.documents] == [f"{ORIGIN}/blog/", f"{ORIGIN}/blog/page/2/"]
    assert site.hits["/blog/page/3/"] == 0


def test_pagination_stops_at_the_last_page() -> None:
    result = listing(KindsSite(BLOG), f"{ORIGIN}/blog/", pages=10)
    assert found(result) == [*urls(PAGE1), *urls(PAGE2), BARE[0].url]
    assert len(result.documents) == 3


def test_limit_caps_links_over_pages() -> None:
    result = listing(KindsSite(BLOG), f"{ORIGIN}/blog/", pages=2, limit=4)
    assert found(result) == [*urls(PAGE1), urls(PAGE2)[0]]
    assert any(d.reason == "over the limit of 4 links" for d in result.decisions)


def test_tracking_params_setting_is_applied_to_listing_links() -> None:
    page = index_html(PAGE1, older=None).replace('/">', '/?via=home">').encode()
    site = KindsSite({"/blog/": (HTML, page)})
    plain = listing(site, f"{ORIGIN}/blog/")
    assert all(u.endswith("?via=home") for u in found(plain))
    cleaned = listing(site, f"{ORIGIN}/blog/", drop_params=param_dropper(["via"]))
    assert found(cleaned) == urls(PAGE1)


# -- sitemaps ------------------------------------------------------------------------------------


def test_sitemap_index_with_gzipped_child_and_news_sitemap_newest_first() -> None:
    result = listing(KindsSite(SITEMAPS), f"{ORIGIN}/sitemap_index.xml")
    assert result.kind == "sitemap"
    assert found(result) == NEWEST_FIRST
    news = result.links[0]
    assert news.entry is not None and news.entry.title == "Storm warning for the weekend"
    assert news.entry.published is not None and news.entry.published.hour == 11
    dated = [d for d in result.decisions if d.kept]
    assert all(d.date is not None for d in dated)


def test_sitemap_capped_by_limit_keeps_the_newest() -> None:
    result = listing(KindsSite(SITEMAPS), f"{ORIGIN}/sitemap_index.xml", limit=3)
    assert found(result) == NEWEST_FIRST[:3]


def test_big_sitemap_stops_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = "".join(
        f"<url><loc>{ORIGIN}/news/story-{i}/</loc>"
        f"<lastmod>{start + timedelta(minutes=i):%Y-%m-%dT%H:%M:%SZ}</lastmod></url>"
        for i in range(20_000)
    )
    xml = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{rows}</urlset>'
    site = KindsSite({"/sitemap.xml": ("application/xml", xml.encode())})
    offered: list[str] = []
    offer = listing_module._Lister._offer
    monkeypatch.setattr(
        listing_module._Lister,
        "_offer",
        lambda self, *a, **k: offered.append(a[1]) or offer(self, *a, **k),
    )
    result = listing(site, f"{ORIGIN}/sitemap.xml", limit=10)
    assert len(offered) == 10  # the sitemap is parsed, but only 10 of its 20,000 entries offered
    assert found(result) == [f"{ORIGIN}/news/story-{i}/" for i in range(19_999, 19_989, -1)]
    assert len(result.decisions) == 11
    assert result.decisions[-1].reason == "19990 more entries over the limit of 10 links"


def test_decisions_not_taken_are_capped() -> None:
    given = tuple(f"{ORIGIN}/market/stall-{i}/" for i in range(MAX_DECISIONS + 500))
    given += (urls(PAGE1)[0],)
    result = listing(
        KindsSite({}), f"{ORIGIN}/", kind="urls", urls=given, exclude=(re.compile("market"),)
    )
    assert found(result) == [urls(PAGE1)[0]]
    assert len(result.decisions) == MAX_DECISIONS + 2
    assert [d.kept for d in result.decisions[-2:]] == [True, False]
    assert result.decisions[-1].reason == "500 more links not taken (not listed)"


def test_sitemap_entries_on_other_sites_are_skipped() -> None:
    data = urlset(PAGE1).replace(
        b"https://news.example.test/blog/2026/11/ferry", b"https://evil.test/ferry"
    )
    result = listing(
        KindsSite({"/sitemap.xml": ("application/xml", data)}), f"{ORIGIN}/sitemap.xml"
    )
    assert found(result) == [urls(PAGE1)[0], urls(PAGE1)[2]]
    assert [d.reason for d in result.decisions if not d.kept] == ["other site"]


def test_site_root_without_listing_uses_robots_sitemaps() -> None:
    routes = {"/": (HTML, splash_html().encode()), **SITEMAPS}
    site = KindsSite(
        routes, robots=f"User-agent: *\nAllow: /\nSitemap: {ORIGIN}/sitemap_index.xml\n"
    )
    result = listing(site, f"{ORIGIN}/")
    assert result.kind == "sitemap"
    assert found(result) == NEWEST_FIRST
    assert [d.kind for d in result.documents][:3] == ["index", "robots.txt", "sitemap"]
    assert result.page is not None and result.page.validators.etag is None  # several documents


def test_kind_sitemap_with_a_root_url_falls_back_to_sitemap_xml() -> None:
    routes = {
        "/": (HTML, index_html(PAGE1, older=None).encode()),
        "/sitemap.xml": ("text/xml", urlset(NEWS)),
    }
    result = listing(KindsSite(routes), f"{ORIGIN}/", kind="sitemap")
    assert found(result) == [
        f"{ORIGIN}/news/storm-warning-for-weekend/",
        f"{ORIGIN}/news/council-votes-on-parking/",
    ]


# -- feeds ---------------------------------------------------------------------------------------


def test_rss_feed_entries_with_their_metadata() -> None:
    site = KindsSite({"/feed.rss": ("application/rss+xml", rss((*PAGE1, *BARE)))})
    result = listing(site, f"{ORIGIN}/feed.rss")
    assert result.kind == "feed"
    assert found(result) == [*urls(PAGE1), BARE[0].url]  # utm_source dropped; newest first
    entry = result.links[-1].entry
    assert entry is not None
    assert (entry.title, entry.authors, entry.categories) == (
        "Pier lights restored",
        ("Jo Reporter",),
        ("Harbour",),
    )
    assert (
        entry.published is not None and entry.published.isoformat() == "2026-11-21T18:00:00+00:00"
    )


def test_atom_feed_relative_links_resolved() -> None:
    site = KindsSite({"/atom.xml": ("application/atom+xml", atom((*PAGE2, *BARE)))})
    result = listing(site, f"{ORIGIN}/atom.xml")
    assert set(found(result)) == {*urls(PAGE2), BARE[0].url}
    assert result.links[0].entry is not None and result.links[0].entry.authors == ("Sam Editor",)


def test_json_feed() -> None:
    site = KindsSite({"/feed.json": ("application/feed+json", json_feed(PAGE1))})
    result = listing(site, f"{ORIGIN}/feed.json")
    assert result.kind == "feed" and found(result) == urls(PAGE1)


def test_feed_amp_links_become_regular_pages() -> None:
    site = KindsSite({"/feed.rss": ("application/rss+xml", rss(PAGE1, amp=True))})
    result = listing(site, f"{ORIGIN}/feed.rss")
    assert found(result) == urls(PAGE1)
    assert all("AMP" in d.reason for d in result.decisions if d.kept)


def test_page_without_listing_uses_the_feed_it_advertises() -> None:
    routes = {
        "/welcome/": (HTML, landing_html().encode()),
        "/atom.xml": ("application/atom+xml", atom(PAGE2)),
    }
    result = listing(KindsSite(routes), f"{ORIGIN}/welcome/")
    assert result.kind == "feed"
    assert set(found(result)) == set(urls(PAGE2))
    assert result.documents[-1].url == f"{ORIGIN}/atom.xml"


def test_each_index_page_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []

    def counting(html: str) -> LexborHTMLParser:
        parsed.append(html)
        return parse_html(html)

    monkeypatch.setattr(listread, "parse_html", counting)  # where listing documents are read
    monkeypatch.setattr(htmlparse, "parse_html", counting)  # what discover's str path calls
    routes = {
        "/welcome/": (HTML, landing_html().encode()),
        "/atom.xml": ("application/atom+xml", atom(PAGE2)),
    }
    assert listing(KindsSite(routes), f"{ORIGIN}/welcome/").kind == "feed"
    assert len(parsed) == 1  # its links, then the feed it advertises
    parsed.clear()
    assert found(listing(KindsSite(BLOG), f"{ORIGIN}/blog/", pages=3))
    assert len(parsed) == 3  # links and next page of each


def test_kind_feed_on_a_page_reads_its_advertised_feed_not_the_comments_feed() -> None:
    routes = {**BLOG, "/feed.rss": ("application/rss+xml", rss(NEWS))}
    result = listing(KindsSite(routes), f"{ORIGIN}/blog/", kind="feed")
    assert result.kind == "feed"
    assert found(result) == [
        f"{ORIGIN}/news/storm-warning-for-weekend/",
        f"{ORIGIN}/news/council-votes-on-parking/",
    ]


def test_kind_feed_on_a_page_without_feed_is_an_error() -> None:
    routes = {"/": (HTML, splash_html().encode())}
    with pytest.raises(ListingError, match="advertises no feed"):
        listing(KindsSite(routes), f"{ORIGIN}/", kind="feed")


def test_broken_feed_is_an_error() -> None:
    routes = {"/feed.rss": ("application/rss+xml", b"<rss><channel><item>")}
    with pytest.raises(ListingError):
        listing(KindsSite(routes), f"{ORIGIN}/feed.rss")


# -- URL lists -----------------------------------------------------------------------------------


def test_url_list_fetches_nothing() -> None:
    site = KindsSite({})
    given = (urls(PAGE1)[0] + "?utm_medium=email", urls(PAGE2)[1], urls(PAGE1)[0])
    result = listing(site, f"{ORIGIN}/", kind="urls", urls=given, exclude=(re.compile("market"),))
    assert result.kind == "urls"
    assert found(result) == [urls(PAGE1)[0]]
    assert [d.reason for d in result.decisions] == [
        "in URL list",
        "excluded by pattern 'market'",
        "duplicate",
    ]
    assert sum(site.hits.values()) == 0


def test_a_link_gets_the_same_reason_from_a_sitemap_as_from_an_index_page() -> None:
    """One screen (`worker.listing.discover.UrlScreen`) for every kind: the same URL is refused
    with the same words whether an index page or a sitemap lists it."""
    refused = [
        f"{ORIGIN}/market/fish-prices/",
        "https://elsewhere.example/story/",
        f"{ORIGIN}/news/storm-warning-for-weekend/",
    ]
    rows = "".join(f"<url><loc>{url}</loc></url>" for url in refused)
    sitemap = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{rows}</urlset>'
    site = KindsSite({"/sitemap.xml": ("application/xml", sitemap.encode())})
    patterns = {"exclude": (re.compile("market"),), "include": (re.compile("story"),)}
    from_sitemap = listing(site, f"{ORIGIN}/sitemap.xml", **patterns)
    anchors = "".join(f'<a href="{url}">Story {n}</a>' for n, url in enumerate(refused))
    from_index = discover_links(f"<main>{anchors}</main>", f"{ORIGIN}/", selector="a", **patterns)
    by_sitemap = {d.url: d.reason for d in from_sitemap.decisions}
    by_index = {d.url: d.reason for d in from_index.decisions if not d.kept}
    assert by_sitemap == by_index
    assert sorted(by_sitemap.values()) == [
        "excluded by pattern 'market'",
        "not included by pattern",
        "other site",
    ]


# -- detection (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "head", "kind"),
    [
        ("text/html", b"<!DOCTYPE html><html>", "index"),
        ("text/xml", b'<?xml version="1.0"?>\n<!-- generator --><urlset xmlns="x">', "sitemap"),
        ("application/octet-stream", b"<sitemapindex>", "sitemap"),
        ("text/html", b'<?xml version="1.0"?><rss version="2.0">', "feed"),  # mislabelled
        ("application/xml", b'<feed xmlns="http://www.w3.org/2005/Atom">', "feed"),
        ("application/rdf+xml", b"<rdf:RDF>", "feed"),
        ("application/json", b'{"version": "https://jsonfeed.org/version/1"}', "feed"),
        ("application/json", b'{"data": []}', None),
        ("text/plain", b"https://a.test/one\nhttps://a.test/two\n", "sitemap"),
        ("text/plain", b"hello", None),
    ],
)
def test_detect_kind(content_type: str, head: bytes, kind: str | None) -> None:
    assert detect_kind(content_type, head) == kind


@pytest.mark.parametrize("name", ["sitemap.py", "feedsource.py", "kinds.py"])
def test_parsers_are_pure(name: str) -> None:
    forbidden = {
        "httpx",
        "sqlite3",
        "asyncio",
        "worker.fetch.client",
        "worker.store.state",
        "worker.pipeline",
    }
    assert not imported_modules(PACKAGE / "listing" / name) & forbidden


def test_fixture_folder_exists() -> None:
    assert Path(__file__).with_name("discover_pages").is_dir()


# -- the fetcher's document mode -----------------------------------------------------------------


def fetch(site: KindsSite, url: str, accept: frozenset[str]) -> object:
    async def go() -> object:
        async with Fetcher(
            FetchOptions(user_agent="test", per_host_delay=0, max_page_bytes=100_000)
        ) as fetcher:
            return await fetcher.fetch_page(url, accept=accept)

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="news.example.test").mock(side_effect=site)
        return asyncio.run(go())


def test_html_only_by_default_documents_on_request() -> None:
    site = KindsSite({"/s.xml": ("application/xml", urlset(PAGE1))})
    with pytest.raises(UnsupportedContent):
        fetch(site, f"{ORIGIN}/s.xml", HTML_TYPES)
    page = fetch(site, f"{ORIGIN}/s.xml", DOCUMENT_TYPES)
    assert isinstance(page, Page) and page.body == urlset(PAGE1) and page.text == ""


def test_gzip_file_is_unpacked_within_the_page_limit() -> None:
    bomb = gz(b"<urlset>" + b" " * 5_000_000 + b"</urlset>")  # 5 MB from a few kB
    site = KindsSite(
        {
            "/ok.xml.gz": ("application/x-gzip", gz(urlset(PAGE1))),
            "/bomb.xml.gz": ("application/gzip", bomb),
        }
    )
    page = fetch(site, f"{ORIGIN}/ok.xml.gz", DOCUMENT_TYPES)
    assert (
        isinstance(page, Page)
        and page.body == urlset(PAGE1)
        and page.content_type == "application/xml"
    )
    with pytest.raises(TooLarge):
        fetch(site, f"{ORIGIN}/bomb.xml.gz", DOCUMENT_TYPES)


# -- feedworker discover ---------------------------------------------------------------------------


def test_cli_discover_prints_kind_documents_and_dates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    site = KindsSite(SITEMAPS)
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="news.example.test").mock(side_effect=site)
        code = main(["discover", f"{ORIGIN}/sitemap_index.xml", "--config", str(tmp_path / "none")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{ORIGIN}/sitemap_index.xml: 7 article link(s), kind sitemap" in out
    assert f"read sitemap: {ORIGIN}/sitemap-posts.xml.gz (child)" in out
    assert f" + {ORIGIN}/news/storm-warning-for-weekend/  [in sitemap]  2026-11-25 11:30" in out
    assert "     Storm warning for the weekend" in out


def test_cli_discover_json_with_kind(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    routes = {**BLOG, "/feed.rss": ("application/rss+xml", rss(NEWS))}
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="news.example.test").mock(side_effect=KindsSite(routes))
        code = main(
            [
                "discover",
                f"{ORIGIN}/blog/",
                "--kind",
                "feed",
                "--json",
                "--config",
                str(tmp_path / "none"),
            ]
        )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["kind"] == "feed"
    assert [d["url"] for d in payload["decisions"] if d["kept"]] == [
        f"{ORIGIN}/news/storm-warning-for-weekend/",
        f"{ORIGIN}/news/council-votes-on-parking/",
    ]
    assert payload["decisions"][0]["date"] == "2026-11-25T11:30:00+00:00"
