"""worker.listing.sitemap: urlsets, indexes, news sitemaps, text sitemaps; hostile input refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.discover_pages.kinds_site import NEWS, PAGE1, sitemap_index, urlset
from worker.errors import ListingError
from worker.listing.sitemap import SitemapEntry, newest_first, parse_sitemap


def test_urlset_with_lastmod() -> None:
    result = parse_sitemap(urlset(PAGE1))
    assert result.kind == "urlset" and not result.children
    assert [e.url for e in result.entries] == [s.url for s in PAGE1]
    assert result.entries[0].lastmod == datetime(2026, 11, 24, 9, tzinfo=UTC)


def test_news_sitemap_gives_title_and_publication_date() -> None:
    (first, _second) = parse_sitemap(urlset(NEWS, news=True)).entries
    assert first.title == "Council votes on parking"
    assert first.published == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert first.date == first.published


def test_index_lists_children() -> None:
    result = parse_sitemap(sitemap_index({"/a.xml": "2026-01-01", "/b.xml.gz": "2026-02-01"}))
    assert result.kind == "index" and not result.entries
    assert [c.url for c in newest_first(result.children)] == [
        "https://news.example.test/b.xml.gz",
        "https://news.example.test/a.xml",
    ]


def test_no_namespace_and_whitespace_are_read() -> None:
    data = b"<urlset>\n <url>\n  <loc>\n   https://a.test/x\n  </loc>\n </url>\n</urlset>"
    assert [e.url for e in parse_sitemap(data).entries] == ["https://a.test/x"]


def test_text_sitemap() -> None:
    data = b"https://a.test/one\n\nnot a url\nhttps://a.test/two\n"
    result = parse_sitemap(data)
    assert result.kind == "text"
    assert [e.url for e in result.entries] == ["https://a.test/one", "https://a.test/two"]


def test_newest_first_keeps_undated_in_order_at_the_end() -> None:
    old, new = datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    entries = [
        SitemapEntry("u1"),
        SitemapEntry("d1", old),
        SitemapEntry("u2"),
        SitemapEntry("d2", new),
    ]
    assert [e.url for e in newest_first(entries)] == ["d2", "d1", "u1", "u2"]


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><urlset><url><loc>&lol;</loc></url></urlset>',
        b"<urlset><url><loc>https://a.test/",
        b"<html><body>not a sitemap</body></html>",
    ],
    ids=["doctype", "truncated", "html"],
)
def test_refused(data: bytes) -> None:
    with pytest.raises(ListingError):
        parse_sitemap(data)
