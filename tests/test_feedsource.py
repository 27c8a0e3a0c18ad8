"""worker.listing.feedsource: RSS, Atom and JSON Feed entries; the entry fills what the page lacks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.discover_pages.kinds_site import BARE, PAGE1, atom, json_feed, rss
from worker.errors import ListingError
from worker.listing.feedsource import fill_article, parse_feed
from worker.models import Article, EntryInfo

BASE = "https://news.example.test/feed"


def test_rss_entries() -> None:
    result = parse_feed(rss(PAGE1), BASE)
    assert result.format == "rss20" and result.title == "Harbour News"
    first = result.entries[0]
    assert first.url == PAGE1[0].url + "?utm_source=rss"  # normalised later, by the listing
    assert first.info.title == PAGE1[0].title
    assert first.info.published == datetime(2026, 11, 24, 9, tzinfo=UTC)
    assert first.info.modified is None
    assert first.info.authors == ("Jo Reporter",) and first.info.categories == ("Harbour",)
    assert first.info.summary == "Only a summary of harbour wall repairs begin."


def test_atom_entries_resolve_against_xml_base() -> None:
    result = parse_feed(atom(BARE), BASE)
    assert result.format == "atom10"
    assert [e.url for e in result.entries] == [BARE[0].url]
    assert result.entries[0].info.modified == datetime(2026, 11, 21, 18, tzinfo=UTC)


def test_json_feed_entries() -> None:
    result = parse_feed(json_feed(PAGE1), BASE)
    assert result.format == "json1.1"
    assert [e.url for e in result.entries] == [s.url for s in PAGE1]
    assert result.entries[0].info.categories == ("Town",)


@pytest.mark.parametrize(
    "data", [b"<html><body>hi</body></html>", b'{"items": []}', b"{not json", b"/etc/passwd"]
)
def test_not_a_feed(data: bytes) -> None:
    with pytest.raises(ListingError):
        parse_feed(data, BASE)


def test_fill_article_only_fills_blanks() -> None:
    when = datetime(2026, 1, 2, tzinfo=UTC)
    info = EntryInfo("Entry title", when, when, ("Jo",), ("Town",), "Entry summary")
    blank = Article(url="u", title="", body_html="<p>x</p>", body_text="x")
    filled = fill_article(blank, info)
    assert (filled.title, filled.published, filled.authors, filled.categories, filled.summary) == (
        "Entry title",
        when,
        ("Jo",),
        ("Town",),
        "Entry summary",
    )
    own = Article(url="u", title="Page title", body_html="", body_text="", authors=("Page",))
    assert fill_article(own, info).title == "Page title"
    assert fill_article(own, info).authors == ("Page",)
    assert fill_article(own, None) is own
