"""Read a sitemap: XML (or text) bytes -> `SitemapResult` (pure).

Handles what sites serve (sitemaps.org protocol and Google's extensions):
- `<urlset>`: page URLs with `<lastmod>`; a Google News sitemap adds `<news:news>` with the
  article's `<news:title>` and `<news:publication_date>`;
- `<sitemapindex>`: child sitemaps, each with its own `<lastmod>`;
- a text sitemap: one URL a line.

Elements are matched by local name, so any namespace spelling (or none) reads the same. A document
type declaration is refused outright: sitemaps never need one, and it is where entity expansion
attacks live. Gzipped files are unpacked by the fetcher (bounded) before they get here.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from worker.errors import ListingError
from worker.extract.meta import parse_date

__all__ = ["SitemapEntry", "SitemapResult", "newest_first", "parse_sitemap"]

_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")
_TEXT_URL = re.compile(r"https?://\S+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    """One `<url>` of a urlset, or one `<sitemap>` of an index (then only `url` and `lastmod`)."""

    url: str  # as written (absolute per the protocol); the caller resolves and normalises
    lastmod: datetime | None = None
    title: str = ""  # news:title
    published: datetime | None = None  # news:publication_date

    @property
    def date(self) -> datetime | None:
        """The date that orders entries: the news publication date, else lastmod."""
        return self.published or self.lastmod


@dataclass(frozen=True, slots=True)
class SitemapResult:
    kind: str  # "urlset" | "index" | "text"
    entries: tuple[SitemapEntry, ...] = ()  # page URLs (urlset, text)
    children: tuple[SitemapEntry, ...] = ()  # child sitemaps (index)


def _prolog_end(data: bytes) -> int:
    """Where the first element starts: declarations can only stand before it."""
    match = _FIRST_ELEMENT.search(data)
    return match.start() if match else len(data)


def parse_sitemap(data: bytes) -> SitemapResult:
    """The entries or child sitemaps in `data`; raises `ListingError` when it is no sitemap."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return SitemapResult("text", entries=tuple(_text_entries(data)))
    if _DOCTYPE.search(data[: _prolog_end(data)]):
        raise ListingError("sitemap with a document type declaration (refused)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ListingError(f"not a readable sitemap: {exc}") from None
    kind = _local(root.tag)
    if kind == "urlset":
        return SitemapResult("urlset", entries=tuple(_entries(root, "url")))
    if kind == "sitemapindex":
        return SitemapResult("index", children=tuple(_entries(root, "sitemap")))
    raise ListingError(f"not a sitemap: root element <{kind}>")


def newest_first(entries: Sequence[SitemapEntry]) -> list[SitemapEntry]:
    """Dated entries newest first, then undated ones in document order (stable)."""
    return sorted(entries, key=lambda e: -e.date.timestamp() if e.date else math.inf)


def _entries(root: ET.Element, tag: str) -> Iterable[SitemapEntry]:
    for element in root:
        if _local(element.tag) != tag:
            continue
        fields = _fields(element)
        if fields.get("loc"):
            yield SitemapEntry(
                url=fields["loc"],
                lastmod=parse_date(fields.get("lastmod", "")),
                title=fields.get("title", ""),
                published=parse_date(fields.get("publication_date", "")),
            )


def _fields(element: ET.Element) -> dict[str, str]:
    """Local name -> stripped text for every descendant (first wins): loc, lastmod, and the news
    extension's title and publication_date (nested in news:news)."""
    fields: dict[str, str] = {}
    for child in element.iter():
        if child is not element and child.text and child.text.strip():
            fields.setdefault(_local(child.tag), " ".join(child.text.split()))
    return fields


def _text_entries(data: bytes) -> Iterable[SitemapEntry]:
    for line in data.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if _TEXT_URL.fullmatch(line):
            yield SitemapEntry(url=line)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2].lower()
