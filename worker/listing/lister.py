"""A source's URL -> the article links to follow (`Listing`): the one loop that fetches listings.

Step by step:
1. a URL list (`kind = "urls"`) is read from the config, nothing fetched;
2. otherwise the source's URL is fetched (a conditional GET; 304 ends the listing) accepting HTML,
   XML, feeds and gzip files, and its kind is the config's `kind` or what `worker.listing.kinds`
   detects;
3. an **index** page goes through `discover_links`; with `pages = N` its "next page" links are
   followed up to N pages. When automatic detection finds no listing on it, the first feed it
   advertises is read instead, else (for a site root) the sitemaps its robots.txt names;
4. a **feed** (or a page advertising one, with `kind = "feed"`) gives its entries with their
   title, dates, authors and categories;
5. a **sitemap** (or a site whose robots.txt names sitemaps, or `/sitemap.xml`, with
   `kind = "sitemap"`) is read with its children, newest first, at most `MAX_SITEMAPS` documents;
6. every link is normalised (with the operator's extra tracking parameters), an unambiguous AMP
   URL becomes its regular page, duplicates are dropped and `limit` applies: sitemap, feed and
   URL-list entries past it (best first) are only counted, in one decision. Each candidate gets a
   `LinkDecision` for `feedworker discover`, up to `MAX_DECISIONS` of those not taken.

Every document is read (decoded, parsed, an index page's links discovered and screened) off the
event loop, in an extractor process or a worker thread (`worker.listing.read`), under the
extractor's time cap: a document over it fails the listing when it is the source's own URL and
is skipped with the reason when the listing was led to it. An index page is parsed once there,
for its links, its next page and its feeds. What comes back is bounded (links read per page,
entries per feed and sitemap), and entries are offered to the listing in slices, letting the
loop answer in between.

URLs the worker is led to (next pages, feeds, sitemaps named elsewhere) are fetched with the
source's `allow_private` and the source's host as the trusted one, like article pages.

With a `render` function (a source with `render = "browser"`), every HTML page fetched for the
listing goes through it before it is read: the page's text is then the DOM the browser built
(`worker.render`); feeds and sitemaps are read as fetched.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlsplit

from worker.config import Settings, Source, setting_default, source_default
from worker.errors import FetchError, ListingError
from worker.fetch.client import DOCUMENT_TYPES, HTML_TYPES, Fetcher
from worker.listing.discover import MAX_PAGE_LINKS, NOT_WEB, TOO_LONG, LinkDecision, UrlScreen
from worker.listing.feedsource import MAX_FEED_ENTRIES, FeedResult
from worker.listing.kinds import detect_kind
from worker.listing.read import (
    FeedRequest,
    IndexPage,
    IndexRequest,
    ListingReader,
    ListingRequest,
    SitemapRequest,
    Unreadable,
)
from worker.listing.sitemap import MAX_ENTRIES, SitemapEntry, SitemapResult
from worker.models import EntryInfo, Link, NotModified, Page, Validators
from worker.service.extractpool import ExtractorCrashed, InlineExtractor
from worker.urlpattern import UrlMatcher
from worker.urls import (
    MAX_URL_LENGTH,
    amp_to_regular,
    normalise_url,
    param_dropper,
    resolve,
)

__all__ = ["MAX_SITEMAPS", "Document", "Listing", "ListingOptions", "PageRender", "list_articles"]

# Sitemap documents read per run (an index and its newest children). News sites keep one child
# per day or month; the newest few hold every article a run can take (`max_items`).
MAX_SITEMAPS = 8
MAX_SITEMAP_DEPTH = 2  # an index of indexes of urlsets, no deeper
SNIFF_BYTES = 2048
# Decisions on links not taken kept for `feedworker discover`; a summary line counts the rest.
MAX_DECISIONS = 1000
# Entries screened between two yields to the event loop (each takes tens of microseconds).
OFFER_SLICE = 250

_Answer = TypeVar("_Answer", IndexPage, FeedResult, SitemapResult)
PageRender = Callable[[Page], Awaitable[Page]]  # a fetched HTML page -> the page rendered


@dataclass(frozen=True, slots=True)
class ListingOptions:
    """What to list and how; `ListingOptions.for_source` builds it from the config."""

    url: str
    kind: str = source_default("kind")  # "auto" | "index" | "sitemap" | "feed" | "urls"
    pages: int = source_default("pages")
    urls: tuple[str, ...] = ()
    selector: str | None = None
    include: Sequence[UrlMatcher] = ()
    exclude: Sequence[UrlMatcher] = ()
    limit: int = setting_default("max_links_per_run")
    validators: Validators | None = None  # for the conditional GET of `url`
    respect_robots: bool = source_default("respect_robots")
    # For URLs the worker is led to; `url` itself is trusted.
    allow_private: bool = source_default("allow_private_networks")
    drop_params: Callable[[str], bool] | None = None

    @classmethod
    def for_source(
        cls, source: Source, settings: Settings, validators: Validators | None = None
    ) -> ListingOptions:
        return cls(
            url=source.url,
            kind=source.kind,
            pages=source.pages,
            urls=source.urls,
            selector=source.links,
            include=source.include,
            exclude=source.exclude,
            limit=settings.max_links_per_run,
            validators=validators,
            respect_robots=source.respect_robots,
            allow_private=source.allow_private_networks,
            drop_params=param_dropper(settings.tracking_params),
        )


@dataclass(frozen=True, slots=True)
class Document:
    """One document read for the listing, and why."""

    url: str
    kind: str  # "index" | "sitemap" | "feed" | "robots.txt"
    note: str = ""


@dataclass(frozen=True, slots=True)
class Listing:
    kind: str  # what the links came from: "index" | "sitemap" | "feed" | "urls"
    links: tuple[Link, ...]  # unique, normalised, at most `limit`; newest first when dated
    decisions: tuple[LinkDecision, ...]
    documents: tuple[Document, ...]
    # The source URL's document, for the pipeline (template learning, validators). Its validators
    # are blanked when the listing took more than that one document, so a 304 on it never hides a
    # change elsewhere. A stand-in without text for a URL list; None when `not_modified`.
    page: Page | None
    not_modified: bool = False
    pages_fetched: int = 0
    bytes_received: int = 0
    selector_matched: int | None = None  # elements the `selector` matched; None without one
    # The source URL's page, when an index page: its text blocks' fingerprints (template
    # learning) and the anti-bot challenge marker it carries, read beside the loop with its links.
    fingerprints: tuple[str, ...] = ()
    challenge: str | None = None
    script_shell: bool = False  # it lists nothing: an empty shell its scripts fill in


async def list_articles(
    options: ListingOptions,
    fetcher: Fetcher,
    reader: ListingReader | None = None,
    render: PageRender | None = None,
) -> Listing:
    """The article links of a source, its documents read by `reader` (the worker's extractor;
    by default a worker thread), its HTML pages first rendered by `render` when given. Raises
    `FetchError` when the source's URL cannot be fetched (or rendered) and `ListingError` when it
    leads to no listing."""
    return await _Lister(options, fetcher, reader or InlineExtractor(), render).run()


@dataclass(slots=True)
class _Lister:
    options: ListingOptions
    fetcher: Fetcher
    reader: ListingReader
    render: PageRender | None = None
    links: list[Link] = field(default_factory=list)
    decisions: list[LinkDecision] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    pages_fetched: int = 0
    bytes_received: int = 0
    selector_matched: int | None = None
    not_taken: int = 0  # decisions on links not taken, recorded or not
    unrecorded: int = 0  # ...of which past MAX_DECISIONS, only counted
    first_page: IndexPage | None = None  # the source URL's page read as an index page

    async def run(self) -> Listing:
        options = self.options
        if options.kind == "urls":
            await self._take_urls()
            return self._result("urls", _stand_in(options.url))
        first = await self._fetch(options.url, validators=options.validators)
        if isinstance(first, NotModified):
            return Listing(options.kind, (), (), (), None, not_modified=True)
        detected = detect_kind(first.content_type, _head(first))
        kind = detected if options.kind == "auto" else options.kind
        if kind is None:
            raise ListingError(
                f"{first.final_url}: neither an HTML page, a sitemap nor a feed "
                f"({first.content_type or 'no content type'})"
            )
        kind = await self._list(kind, first, detected)
        multiple = len(self.documents) > 1
        page = replace(first, validators=Validators()) if multiple else first
        return self._result(kind, page)

    async def _list(self, kind: str, first: Page, detected: str | None) -> str:
        """Read the listing from `first` as `kind`; the kind the links finally came from."""
        if kind == "sitemap":
            if detected == "sitemap":
                await self._sitemaps([first])
            else:
                await self._site_sitemaps(first, required=True)
            return "sitemap"
        if kind == "feed" or detected == "feed":
            if detected == "feed":
                await self._feed(first)
            else:
                page = await self._read_index(first, links=False)
                await self._advertised_feed(first, page, required=True)
            return "feed"
        if detected == "sitemap":
            raise ListingError(f'{first.final_url}: a sitemap, not an index page (kind = "index")')
        page = await self._read_index(first)  # once, for the listing and the feeds it advertises
        await self._index(first, page)
        if self.links or self.options.kind == "index" or self.options.selector:
            return "index"
        # No usable listing on the page: its own feed, else the site's sitemaps.
        if await self._advertised_feed(first, page, required=False):
            return "feed"
        if _is_site_root(first.final_url) and await self._site_sitemaps(first, required=False):
            return "sitemap"
        return "index"

    # -- reading documents, beside the event loop ------------------------------------------------

    async def _read(self, request: ListingRequest, url: str, answer: type[_Answer]) -> _Answer:
        """`request` read by the reader; `ListingError` when it is no listing or took too long."""
        try:
            read = await self.reader.read_listing(request)
        except ExtractorCrashed as exc:
            raise ListingError(f"{url}: {exc}") from None
        if isinstance(read, Unreadable):
            raise ListingError(read.reason)
        if not isinstance(read, answer):
            raise RuntimeError(f"{url}: a {type(read).__name__} where a {answer.__name__} was due")
        return read

    async def _read_index(self, page: Page, *, links: bool = True) -> IndexPage:
        """The source's own page read as an index page: its links (when `links`), next page and
        advertised feeds, and its fingerprints and challenge marker (kept for the `Listing`)."""
        request = self._index_request(page, 1, links=links)
        self.first_page = await self._read(request, page.final_url, IndexPage)
        return self.first_page

    def _index_request(self, page: Page, number: int, *, links: bool = True) -> IndexRequest:
        options = self.options
        return IndexRequest(
            html=page.raw if page.raw is not None else page.text,
            url=page.final_url,
            selector=options.selector,
            include=options.include,
            exclude=options.exclude,
            drop_params=options.drop_params,
            links=links,
            page_number=number,
            next_page=links and number < options.pages,
            first=number == 1,
        )

    async def _read_led(
        self, request: ListingRequest, document: Page, kind: str, answer: type[_Answer]
    ) -> _Answer | None:
        """A document the listing was led to: one that cannot be read is noted, not raised."""
        try:
            return await self._read(request, document.final_url, answer)
        except ListingError as exc:
            self._decide(LinkDecision(document.final_url, "", False, f"{kind} not read: {exc}"))
            return None

    # -- index pages ---------------------------------------------------------------------------

    async def _index(self, first: Page, read: IndexPage) -> None:
        """Take the links of `first` (read as `read`) and of its next pages."""
        options = self.options
        self.documents.append(Document(first.final_url, "index"))
        number = 1
        visited = {normalise_url(first.final_url)}
        while True:
            await self._take_discovery(read)
            following = read.next_page
            if number >= options.pages or following is None or following in visited:
                return
            visited.add(following)
            fetched = await self._fetch_led(following, "index", f"page {number + 1}", HTML_TYPES)
            if fetched is None:
                return
            number += 1
            request = self._index_request(fetched, number)
            led = await self._read_led(request, fetched, "index", IndexPage)
            if led is None:
                return
            read = led

    async def _take_discovery(self, read: IndexPage) -> None:
        """Take an index page's links and note its decisions, in slices (up to 10,000 each)."""
        found = read.discovery
        if found is None:
            return
        if found.selector_matched is not None:
            self.selector_matched = (self.selector_matched or 0) + found.selector_matched
        for n, (link, decision) in enumerate(_kept_pairs(found.links, found.decisions)):
            if n and n % OFFER_SLICE == 0:
                await asyncio.sleep(0)
            if link is None:
                self._decide(decision)
            else:
                self._take(link, decision.reason, decision.date)
        if found.unread:
            note = f"{found.unread} more links on the page not read (over {MAX_PAGE_LINKS})"
            self._note(note)

    # -- feeds ---------------------------------------------------------------------------------

    async def _advertised_feed(self, page: Page, read: IndexPage, *, required: bool) -> bool:
        """Read the first feed `page` (read as `read`) advertises; whether there was one."""
        if not read.feeds:
            if required:
                raise ListingError(f"{page.final_url}: the page advertises no feed")
            return False
        note = "advertised by the page" + ("" if required else ", which has no listing")
        document = await self._fetch_led(read.feeds[0], "feed", note, DOCUMENT_TYPES)
        if document is None:
            return False
        await self._feed(document, note_document=False)
        return True

    async def _feed(self, document: Page, *, note_document: bool = True) -> None:
        if note_document:
            self.documents.append(Document(document.final_url, "feed"))
        request = FeedRequest(document.body or document.text.encode(), document.final_url)
        result = await self._read(request, document.final_url, FeedResult)
        entries = sorted(result.entries, key=lambda e: _newest(e.info.published or e.info.modified))
        if result.unread:
            note = f"{result.unread} more entries in the feed not read (over {MAX_FEED_ENTRIES})"
            self._note(note, document.final_url)
        offers = ((document.final_url, entry.url, entry.info) for entry in entries)
        await self._offer_all(offers, len(entries), "in feed", same_site_only=False)

    # -- sitemaps ------------------------------------------------------------------------------

    async def _site_sitemaps(self, page: Page, *, required: bool) -> bool:
        """The sitemaps named by the site's robots.txt, else (when `required`) /sitemap.xml."""
        options = self.options
        named = await self.fetcher.robots_sitemaps(
            page.final_url,
            allow_private=options.allow_private,
            trusted_origin=options.url,
        )
        note = "named by robots.txt"
        if named:
            self.documents.append(Document(_robots_url(page.final_url), "robots.txt"))
        elif required:
            named, note = (resolve(page.final_url, "/sitemap.xml") or "",), "the usual place"
        else:
            return False
        fetched = []
        for url in named[:MAX_SITEMAPS]:
            document = await self._fetch_led(url, "sitemap", note, DOCUMENT_TYPES)
            if document is not None:
                fetched.append(document)
        if not fetched and required:
            raise ListingError(f"{page.final_url}: no sitemap could be read")
        await self._sitemaps(fetched, noted=True)
        return bool(fetched)

    async def _sitemaps(self, roots: list[Page], *, noted: bool = False) -> None:
        """Read sitemap documents, following index children newest first, within the bounds;
        the roots must be readable, a child that is not is noted."""
        lists: list[list[tuple[str, SitemapEntry]]] = []  # each document's entries, newest first
        queue: list[tuple[Page, int]] = [(page, 0) for page in roots]
        if not noted:
            self.documents.extend(Document(p.final_url, "sitemap") for p in roots)
        read = len(roots)
        while queue:
            document, depth = queue.pop(0)
            request = SitemapRequest(document.body or document.text.encode())
            result = (
                await self._read(request, document.final_url, SitemapResult)
                if depth == 0
                else await self._read_led(request, document, "sitemap", SitemapResult)
            )
            if result is None:
                continue
            self._note_sitemap_limits(document.final_url, result)
            lists.append([(document.final_url, e) for e in result.entries])
            for child in result.children:  # newest first
                url = resolve(document.final_url, child.url)
                if url is None:
                    continue
                if read >= MAX_SITEMAPS or depth + 1 > MAX_SITEMAP_DEPTH:
                    reason = f"sitemap not read (over the limit of {MAX_SITEMAPS} sitemaps)"
                    self._decide(LinkDecision(url, "", False, reason, child.lastmod))
                    continue
                fetched = await self._fetch_led(url, "sitemap", "child", DOCUMENT_TYPES)
                read += 1
                if fetched is not None:
                    queue.append((fetched, depth + 1))
        # One order over every document, newest first (stable: documents in the order read).
        entries = heapq.merge(*lists, key=lambda pair: _newest(pair[1].date))
        offers = ((base, entry.url, _entry_info(entry)) for base, entry in entries)
        count = sum(map(len, lists))
        await self._offer_all(offers, count, "in sitemap", same_site_only=True)

    def _note_sitemap_limits(self, url: str, result: SitemapResult) -> None:
        if result.too_long:
            note = f"{result.too_long} entries skipped: URL over {MAX_URL_LENGTH} characters"
            self._note(note, url)
        if result.unread:
            note = f"entries past the first {MAX_ENTRIES} not read"
            self._note(note, url)

    # -- URL lists -----------------------------------------------------------------------------

    async def _take_urls(self) -> None:
        urls = self.options.urls
        offers = ((self.options.url, url, None) for url in urls)
        await self._offer_all(offers, len(urls), "in URL list", same_site_only=False)

    # -- candidates ----------------------------------------------------------------------------

    async def _offer_all(
        self,
        offers: Iterable[tuple[str, str, EntryInfo | None]],
        count: int,
        reason: str,
        *,
        same_site_only: bool,
    ) -> None:
        """Offer `count` (base, raw URL, info) entries, best first, until `limit` links are
        taken; the rest are only counted: a news sitemap holds 50,000 entries for 100 links.
        The event loop gets a turn every `OFFER_SLICE` entries."""
        for offered, (base, raw, info) in enumerate(offers):
            if len(self.links) >= self.options.limit:
                rest = count - offered
                note = f"{rest} more entries over the limit of {self.options.limit} links"
                self._note(note)
                return
            if offered and offered % OFFER_SLICE == 0:
                await asyncio.sleep(0)
            self._offer(base, raw, info, reason, same_site_only=same_site_only)

    def _offer(
        self, base: str, raw: str, info: EntryInfo | None, reason: str, *, same_site_only: bool
    ) -> None:
        """Screen a sitemap, feed or URL-list entry and take it, or note why not."""
        options = self.options
        title = info.title if info else ""
        date = (info.published or info.modified) if info else None
        if len(raw) > 2 * MAX_URL_LENGTH:  # not worth normalising: far over the limit
            self._decide(LinkDecision(raw[:100] + "…", title, False, TOO_LONG, date))
            return
        absolute = resolve(base, raw)
        if absolute is None:
            self._decide(LinkDecision(raw, title, False, NOT_WEB, date))
            return
        url = normalise_url(absolute, drop_params=options.drop_params)
        screen = UrlScreen(options.url, same_site_only, options.include, options.exclude)
        refusal = screen.reason(url)
        if refusal:
            self._decide(LinkDecision(url, title, False, refusal, date))
            return
        self._take(Link(url, title, info), reason, date)

    def _take(self, link: Link, reason: str, date: datetime | None = None) -> None:
        url = amp_to_regular(link.url)
        if url != link.url:
            link, reason = replace(link, url=url), f"{reason} (AMP page -> regular page)"
        kept = url not in self.seen and len(self.links) < self.options.limit
        if url in self.seen:
            reason = "duplicate"
        elif not kept:
            reason = f"over the limit of {self.options.limit} links"
        else:
            self.seen.add(url)
            self.links.append(link)
        self._decide(LinkDecision(url, link.title, kept, reason, date))

    def _note(self, note: str, url: str = "") -> None:
        """A summary line for `feedworker discover` (what was not read, and why): always kept."""
        self.decisions.append(LinkDecision(url, "", False, note))

    def _decide(self, decision: LinkDecision) -> None:
        """Record a decision for `feedworker discover`; past MAX_DECISIONS links not taken are
        only counted (every taken one is recorded: there are at most `limit`)."""
        if decision.kept or self.not_taken < MAX_DECISIONS:
            self.decisions.append(decision)
        else:
            self.unrecorded += 1
        self.not_taken += not decision.kept

    # -- fetching ------------------------------------------------------------------------------

    async def _fetch(
        self,
        url: str,
        *,
        validators: Validators | None = None,
        accept: frozenset[str] = DOCUMENT_TYPES,
    ) -> Page | NotModified:
        options = self.options
        result = await self.fetcher.fetch_page(
            url,
            validators=validators,
            # The source's own origin is trusted; any other it redirects to (another port of
            # its host included) is judged like every other URL the worker is led to.
            allow_private=options.allow_private,
            trusted_origin=options.url,
            respect_robots=options.respect_robots,
            accept=accept,
            decode=False,  # an HTML page is decoded where it is read, beside the event loop
        )
        if isinstance(result, Page):
            self.pages_fetched += 1
            self.bytes_received += result.size
            if self.render is not None and result.raw is not None:  # an HTML page
                result = await self.render(result)
        return result

    async def _fetch_led(
        self, url: str, kind: str, note: str, accept: frozenset[str]
    ) -> Page | None:
        """A document the listing leads to; a failure is noted as a decision, not raised."""
        try:
            result = await self._fetch(url, accept=accept)
        except FetchError as exc:
            self._decide(LinkDecision(url, "", False, f"{kind} not read: {exc.reason}"))
            return None
        if isinstance(result, NotModified):  # no validators were sent
            self._decide(LinkDecision(url, "", False, f"{kind} answered 304"))
            return None
        self.documents.append(Document(result.final_url, kind, note))
        return result

    def _result(self, kind: str, page: Page) -> Listing:
        decisions = self.decisions
        if self.unrecorded:
            note = f"{self.unrecorded} more links not taken (not listed)"
            decisions = [*decisions, LinkDecision("", "", False, note)]
        first = self.first_page
        return Listing(
            kind=kind,
            links=tuple(self.links),
            decisions=tuple(decisions),
            documents=tuple(self.documents),
            page=page,
            pages_fetched=self.pages_fetched,
            bytes_received=self.bytes_received,
            selector_matched=self.selector_matched,
            fingerprints=first.fingerprints if first is not None else (),
            challenge=first.challenge if first is not None else None,
            script_shell=first.script_shell if first is not None else False,
        )


# -- pure helpers ------------------------------------------------------------------------------


def _kept_pairs(
    links: Sequence[Link], decisions: Sequence[LinkDecision]
) -> Iterable[tuple[Link | None, LinkDecision]]:
    """An index page's decisions, each with its `Link` when kept (same order, same URLs)."""
    by_url = {link.url: link for link in links}
    for decision in decisions:
        link = by_url.pop(decision.url, None) if decision.kept else None
        yield link, decision


def _entry_info(entry: SitemapEntry) -> EntryInfo:
    return EntryInfo(title=entry.title, published=entry.published, modified=entry.lastmod)


def _newest(date: datetime | None) -> float:
    """Sort key: dated entries newest first, undated ones after them in their order."""
    return -date.timestamp() if date else float("inf")


def _head(page: Page) -> bytes:
    """The first bytes of a fetched document, for telling its kind."""
    if page.body:
        return page.body[:SNIFF_BYTES]
    if page.raw is not None:
        return page.raw.body[:SNIFF_BYTES]
    return page.text[:SNIFF_BYTES].encode("utf-8", errors="replace")


def _is_site_root(url: str) -> bool:
    return urlsplit(url).path in ("", "/")


def _robots_url(url: str) -> str:
    return resolve(url, "/robots.txt") or url


def _stand_in(url: str) -> Page:
    """The pipeline's index page for a URL list: nothing fetched, nothing to learn or revalidate."""
    return Page(
        url=url, final_url=url, status=200, content_type="text/uri-list", text="", encoding=""
    )
