"""Read one listing document: an index page, a feed or a sitemap -> what the listing needs (pure).

`worker.listing.lister` fetches a source's documents on the event loop; reading them is CPU work
whose cost the site chooses (a page of 50,000 links, a 2 MB feed of 20,000 items, a 244 KiB tag that
never closes), so it runs beside the loop, where article extraction runs: in an extractor
process, or in a worker thread when there is none (`worker.service.extractpool`), under the same
time cap. A document over the cap costs its source that document, with the reason, and nothing else.

The requests and answers are plain values that pickle: `read_listing` takes an `IndexRequest`,
`FeedRequest` or `SitemapRequest` and answers an `IndexPage`, `FeedResult` or `SitemapResult`,
or `Unreadable` with the `ListingError`'s reason (a refusal is an answer, not a crash).

An index page is decoded here (it travels as bytes, like article pages) and parsed once, for its
links, its next page, the feeds it advertises and, for the source's own page, the fingerprints
of its text blocks (the pipeline's template learning) and its anti-bot challenge marker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from worker.errors import ListingError
from worker.extract import page_fingerprints
from worker.extract.htmlparse import parse_html
from worker.fetch.decode import html_text
from worker.listing.discover import Discovery, advertised_feeds, discover_links, next_page_url
from worker.listing.feedsource import FeedResult, parse_feed
from worker.listing.sitemap import SitemapResult, newest_first, parse_sitemap
from worker.models import RawHtml
from worker.service.health import challenge_marker, script_shell
from worker.urlpattern import UrlMatcher

__all__ = [
    "FeedRequest",
    "IndexPage",
    "IndexRequest",
    "ListingAnswer",
    "ListingReader",
    "ListingRequest",
    "SitemapRequest",
    "Unreadable",
    "read_listing",
]


@dataclass(frozen=True, slots=True)
class IndexRequest:
    """An index page to read, with the source's link rules."""

    html: str | RawHtml
    url: str  # where it was fetched from, after redirects
    selector: str | None = None
    include: Sequence[UrlMatcher] = ()
    exclude: Sequence[UrlMatcher] = ()
    drop_params: Callable[[str], bool] | None = None
    links: bool = True  # discover its article links (not for a page read for its feed only)
    page_number: int = 1
    next_page: bool = False  # also find the listing's next page
    first: bool = False  # the source's own page: also its fingerprints and challenge marker


@dataclass(frozen=True, slots=True)
class IndexPage:
    discovery: Discovery | None  # None when not asked for (`links=False`)
    next_page: str | None = None
    feeds: tuple[str, ...] = ()  # the feeds it advertises, in page order
    fingerprints: tuple[str, ...] = ()  # `first` only
    challenge: str | None = None  # `first` only: the anti-bot marker the page carries
    # `first` only, when it lists nothing: an empty shell its scripts fill in (needs JavaScript)
    script_shell: bool = False


@dataclass(frozen=True, slots=True)
class FeedRequest:
    data: bytes
    url: str


@dataclass(frozen=True, slots=True)
class SitemapRequest:
    data: bytes


@dataclass(frozen=True, slots=True)
class Unreadable:
    """The document is no listing (a `ListingError`): why."""

    reason: str


ListingRequest = IndexRequest | FeedRequest | SitemapRequest
ListingAnswer = IndexPage | FeedResult | SitemapResult | Unreadable


class ListingReader(Protocol):
    """Where documents are read: `worker.service.extractpool`'s extractors."""

    async def read_listing(self, request: ListingRequest) -> ListingAnswer: ...


def read_listing(request: ListingRequest) -> ListingAnswer:
    """Read one listing document (see the module docstring)."""
    try:
        if isinstance(request, IndexRequest):
            return _read_index(request)
        if isinstance(request, FeedRequest):
            return parse_feed(request.data, request.url)
        result = parse_sitemap(request.data)
        # Newest first here, so the loop merges documents' entries without sorting them again.
        return SitemapResult(
            result.kind,
            entries=tuple(newest_first(result.entries)),
            children=tuple(newest_first(result.children)),
            too_long=result.too_long,
            unread=result.unread,
        )
    except ListingError as exc:
        return Unreadable(str(exc))


def _read_index(request: IndexRequest) -> IndexPage:
    text = html_text(request.html)
    tree = parse_html(text)
    discovery = None
    if request.links:
        discovery = discover_links(
            tree,
            request.url,
            selector=request.selector,
            include=request.include,
            exclude=request.exclude,
            drop_params=request.drop_params,
        )
    following = next_page_url(tree, request.url, request.page_number) if request.next_page else None
    return IndexPage(
        discovery=discovery,
        next_page=following,
        feeds=advertised_feeds(tree, request.url) if text else (),
        fingerprints=page_fingerprints(text) if request.first else (),
        challenge=challenge_marker(text) if request.first else None,
        script_shell=request.first and not (discovery and discovery.links) and script_shell(text),
    )
