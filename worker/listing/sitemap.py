"""Read a sitemap: XML (or text) bytes -> `SitemapResult` (pure).

Handles what sites serve (sitemaps.org protocol and Google's extensions):
- `<urlset>`: page URLs with `<lastmod>`; a Google News sitemap adds `<news:news>` with the
  article's `<news:title>` and `<news:publication_date>`;
- `<sitemapindex>`: child sitemaps, each with its own `<lastmod>`;
- a text sitemap: one URL a line.

Elements are matched by local name, so any namespace spelling (or none) reads the same. The
document passes `worker.listing.xmldoc.guard_xml` (decoded in whatever encoding it is written in, no
DTD of its own), and is read by expat as a stream with that guard in force: no tree is built, a
field's text is kept up to `MAX_URL_LENGTH` characters (an entry whose URL is longer is skipped
and counted), and reading stops after `MAX_ENTRIES` entries, the protocol's limit for one file.
Gzipped files are unpacked by the fetcher (bounded) before they get here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.parsers import expat

from worker.errors import ListingError
from worker.extract.meta import parse_date
from worker.listing.xmldoc import decode_xml, guard_xml_text, refuse_dtd
from worker.urls import MAX_URL_LENGTH

__all__ = ["MAX_ENTRIES", "SitemapEntry", "SitemapResult", "newest_first", "parse_sitemap"]

MAX_ENTRIES = 50_000  # URLs (or child sitemaps) in one sitemap file, per sitemaps.org
_ROOTS = {"urlset": "url", "sitemapindex": "sitemap"}  # root element -> its entries' element
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
    too_long: int = 0  # entries skipped: a URL over MAX_URL_LENGTH characters
    unread: bool = False  # the file held more than MAX_ENTRIES entries; the rest were not read


def parse_sitemap(data: bytes) -> SitemapResult:
    """The entries or child sitemaps in `data`; raises `ListingError` when it is no sitemap."""
    text = decode_xml(data)
    if not text.lstrip("\ufeff \t\r\n").startswith("<"):
        return _text_sitemap(text)
    reader = _Reader()
    parser = expat.ParserCreate("utf-8")
    refuse_dtd(parser, "sitemap")
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.characters
    parser.buffer_text = True  # one call per run of text, not one per line
    try:
        parser.Parse(guard_xml_text(text, "sitemap"), True)
    except _Full:
        pass
    except expat.ExpatError as exc:
        raise ListingError(f"not a readable sitemap: {exc}") from None
    if reader.kind is None:
        raise ListingError("not a readable sitemap: no root element")
    found = tuple(reader.entries)
    index = reader.kind == "sitemapindex"
    return SitemapResult(
        "index" if index else "urlset",
        entries=() if index else found,
        children=found if index else (),
        too_long=reader.too_long,
        unread=reader.full,
    )


def newest_first(entries: Sequence[SitemapEntry]) -> list[SitemapEntry]:
    """Dated entries newest first, then undated ones in document order (stable)."""
    return sorted(entries, key=lambda e: -e.date.timestamp() if e.date else math.inf)


class _Full(Exception):
    """MAX_ENTRIES entries read: the parse stops."""


class _Reader:
    """expat handlers that collect the entries of a urlset or sitemap index, as a stream.

    An entry's fields are the text of the elements inside it, by local name (first wins): loc,
    lastmod, and the news extension's title and publication_date (nested in news:news)."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.entries: list[SitemapEntry] = []
        self.too_long = 0
        self.full = False
        self._depth = 0
        self._fields: dict[str, str] | None = None  # the entry being read
        self._too_long: set[str] = set()  # its fields over MAX_URL_LENGTH characters
        self._open: list[tuple[str, list[str], int]] = []  # elements inside it: name, text, size

    def start(self, name: str, attributes: object) -> None:
        local = _local(name)
        self._depth += 1
        if self._depth == 1:
            if local not in _ROOTS:
                raise ListingError(f"not a sitemap: root element <{local}>")
            self.kind = local
        elif self._depth == 2 and local == _ROOTS[self.kind or ""]:
            self._fields, self._too_long = {}, set()
        elif self._fields is not None:
            self._open.append((local, [], 0))

    def characters(self, data: str) -> None:
        if not self._open:
            return
        local, parts, size = self._open[-1]
        if size <= MAX_URL_LENGTH:  # past it the field is over-long anyway: keep no more
            parts.append(data[: MAX_URL_LENGTH + 1 - size])
        self._open[-1] = (local, parts, size + len(data))

    def end(self, name: str) -> None:
        self._depth -= 1
        if self._open and self._depth >= 2:
            local, parts, size = self._open.pop()
            text = " ".join("".join(parts).split())
            if size > MAX_URL_LENGTH:
                self._too_long.add(local)
            elif self._fields is not None and text:
                self._fields.setdefault(local, text)
        elif self._depth == 1 and self._fields is not None:
            self._finish(self._fields)
            self._fields = None

    def _finish(self, fields: dict[str, str]) -> None:
        url = fields.get("loc", "")
        if not url and "loc" in self._too_long:
            self.too_long += 1
        elif url:
            if len(self.entries) >= MAX_ENTRIES:
                self.full = True
                raise _Full
            self.entries.append(
                SitemapEntry(
                    url=url,
                    lastmod=parse_date(fields.get("lastmod", "")),
                    title=fields.get("title", ""),
                    published=parse_date(fields.get("publication_date", "")),
                )
            )


def _text_sitemap(text: str) -> SitemapResult:
    entries: list[SitemapEntry] = []
    too_long = 0
    for line in text.splitlines():
        line = line.strip()
        if len(line) > MAX_URL_LENGTH:
            too_long += line.lower().startswith(("http://", "https://"))
        elif _TEXT_URL.fullmatch(line):
            if len(entries) >= MAX_ENTRIES:
                return SitemapResult("text", entries=tuple(entries), too_long=too_long, unread=True)
            entries.append(SitemapEntry(url=line))
    return SitemapResult("text", entries=tuple(entries), too_long=too_long)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2].rpartition(":")[2].lower()
