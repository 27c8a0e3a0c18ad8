"""Read an existing feed: RSS, Atom or JSON Feed bytes -> `FeedResult` (pure).

RSS and Atom are read by feedparser (every dialect and date format sites use); JSON Feed, which
feedparser 6 does not read, by the small reader below. An XML feed passes the one XML-bomb
guard (`worker.listing.xmldoc.guard_xml`: decoded as its bytes say, no DTD of its own) first, and
feedparser reads the UTF-8 text that guard checked. An entry becomes a link to fetch and extract,
with what the feed says about it (`EntryInfo`: title, dates, authors, categories, summary), which
`fill_article` uses where the article page itself is silent. A summary-only feed so turns into a
full-text one.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from worker.errors import ListingError
from worker.extract.meta import parse_date
from worker.listing.xmldoc import guard_xml
from worker.models import Article, EntryInfo

__all__ = ["MAX_FEED_ENTRIES", "FeedEntry", "FeedResult", "fill_article", "parse_feed"]

JSON_FEED_VERSION = "https://jsonfeed.org/version/"
SUMMARY_MAX_LENGTH = 1000  # characters of plain text kept from an entry's summary
# Entries kept from one feed, in feed order (feeds carry tens; a 2 MB feed can carry 20,000).
MAX_FEED_ENTRIES = 10_000
# A tag ends at its `>`, or where another `<` starts: `[^>]*` alone would scan to the end of the
# text from every `<` that is never closed (quadratic on a summary of 120,000 `&lt;`).
_TAG = re.compile(r"<[^<>]*>")


@dataclass(frozen=True, slots=True)
class FeedEntry:
    url: str  # absolute (resolved against the feed's URL), not yet normalised
    info: EntryInfo


@dataclass(frozen=True, slots=True)
class FeedResult:
    format: str  # feedparser's version ("rss20", "atom10", ...) or "json"
    title: str
    entries: tuple[FeedEntry, ...]
    unread: int = 0  # entries past MAX_FEED_ENTRIES, not kept


def parse_feed(data: bytes, base_url: str) -> FeedResult:
    """The entries of the feed `data` fetched from `base_url`, in feed order; raises
    `ListingError` when `data` is no feed."""
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return _parse_json_feed(data, base_url)
    document = guard_xml(data, "feed")
    # Imported here: it pulls in ssl and http, which an extractor process needs for nothing else.
    import feedparser

    # A stream, never the bytes themselves: feedparser would take a bytes "path" for a file name.
    parsed = feedparser.parse(
        io.BytesIO(document),
        response_headers={"content-location": base_url},
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    entries = tuple(e for e in map(_feedparser_entry, parsed.entries) if e is not None)
    # Broken XML is "bozo"; feedparser still reads what it can, which is fine when it found some.
    if not parsed.get("version") or (parsed.get("bozo") and not entries):
        reason = parsed.get("bozo_exception") or "no RSS, Atom or RDF root element"
        raise ListingError(f"not a readable feed: {reason}")
    return _result(parsed.version, _text(parsed.feed.get("title", "")), entries)


def _result(version: str, title: str, entries: tuple[FeedEntry, ...]) -> FeedResult:
    unread = max(len(entries) - MAX_FEED_ENTRIES, 0)
    return FeedResult(version, title, entries[:MAX_FEED_ENTRIES], unread)


def fill_article(article: Article, info: EntryInfo | None) -> Article:
    """`article` with the blanks the page left filled from its feed or sitemap entry."""
    if info is None:
        return article
    return replace(
        article,
        title=article.title or info.title,
        published=article.published or info.published,
        modified=article.modified or info.modified,
        authors=article.authors or info.authors,
        categories=article.categories or info.categories,
        summary=article.summary or info.summary,
    )


# -- RSS and Atom, through feedparser ------------------------------------------------------------


def _feedparser_entry(entry: Mapping[str, Any]) -> FeedEntry | None:
    url = entry.get("link") or (entry.get("id") if entry.get("guidislink") else None)
    if not url:
        return None
    authors = [a.get("name", "") for a in entry.get("authors", []) if isinstance(a, Mapping)]
    info = EntryInfo(
        title=_text(entry.get("title", "")),
        published=_struct_time(entry.get("published_parsed")),
        # `in` first: feedparser's get() maps a missing updated_parsed to published (with a warning)
        modified=_struct_time(entry["updated_parsed"]) if "updated_parsed" in entry else None,
        authors=_names(authors or [entry.get("author", "")]),
        categories=_names(t.get("term", "") for t in entry.get("tags", []) or []),
        summary=_summary(entry.get("summary", "")),
    )
    return FeedEntry(url, info)


def _struct_time(value: Sequence[int] | None) -> datetime | None:
    """feedparser's dates are UTC `struct_time`s."""
    if value is None:
        return None
    try:
        year, month, day, hour, minute, second = value[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


# -- JSON Feed (https://jsonfeed.org/version/1.1) ------------------------------------------------


def _parse_json_feed(data: bytes, base_url: str) -> FeedResult:
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ListingError(f"not a readable JSON Feed: {exc}") from None
    except RecursionError:  # arrays or objects nested thousands deep
        raise ListingError("not a readable JSON Feed: nested too deeply") from None
    if not isinstance(document, dict) or not str(document.get("version", "")).startswith(
        JSON_FEED_VERSION
    ):
        raise ListingError("JSON without a JSON Feed version")
    items = document.get("items")
    entries = (
        [_json_entry(item) for item in items if isinstance(item, dict)]
        if isinstance(items, list)
        else []
    )
    version = str(document["version"]).removeprefix(JSON_FEED_VERSION)
    title = _text(str(document.get("title") or ""))
    return _result(f"json{version}", title, tuple(e for e in entries if e is not None))


def _json_entry(item: Mapping[str, Any]) -> FeedEntry | None:
    url = item.get("url") or item.get("external_url")
    if not isinstance(url, str) or not url.strip():
        return None
    authors = item.get("authors") or (
        [item["author"]] if isinstance(item.get("author"), dict) else []
    )
    info = EntryInfo(
        title=_text(str(item.get("title") or "")),
        published=parse_date(str(item.get("date_published") or "")),
        modified=parse_date(str(item.get("date_modified") or "")),
        authors=_names(a.get("name", "") for a in authors if isinstance(a, dict)),
        categories=_names(t for t in item.get("tags") or [] if isinstance(t, str)),
        summary=_summary(str(item.get("summary") or item.get("content_text") or "")),
    )
    return FeedEntry(url.strip(), info)


# -- small helpers -------------------------------------------------------------------------------


def _text(value: str) -> str:
    """Plain text of a title that may hold markup or entities."""
    return " ".join(html.unescape(_TAG.sub(" ", value)).split())


def _summary(value: str) -> str:
    return _text(value)[:SUMMARY_MAX_LENGTH]


def _names(values: Iterable[object]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        name = _text(value) if isinstance(value, str) else ""
        if name and name not in out:
            out.append(name)
    return tuple(out)
