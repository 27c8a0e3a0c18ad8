"""Multi-page articles: which link leads to an article's next page, and how pages are merged.

Pure: `follow_pages` is handed the way to load a page (`load(url, page_number)`: fetch and
extract, by the pipeline or the CLI) and decides only what to load next and when to stop.

Where the next page comes from: a site rule's `next_page_link` (any URL on the web the rule
names), or, when a source sets `paginated_articles = true`, a pagination link of the page
itself (`pagination_link`). Without a rule, only a link that continues this very article
counts: the same URL with a page marker one higher ("/story/" -> "/story/2/", "?page=2",
"/story/page/2"). A "next post" link (`rel="next"` on many blogs' single posts) names another
article's URL and is never followed. A rule's `single_page_link` (the print or "view as one
page" version) replaces the article's body with that page's.

Following stops at `max_pages` pages, at a URL seen already (a loop), at a page whose text is
one seen already (a site that ignores the page marker), and at a page that cannot be loaded;
the pages read so far make the article.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode, urlsplit

from selectolax.lexbor import LexborHTMLParser

from worker.models import Article
from worker.urls import host_key, normalise_url, resolve

__all__ = [
    "Followed",
    "follow_pages",
    "is_next_page",
    "merge_pages",
    "page_marker",
    "pagination_link",
]

# Query parameters that number an article's pages, by priority ("?p=123&page=2": `page`).
PAGE_PARAMS = ("page", "paged", "pg", "seite", "pagina", "pagenum", "pageno", "page_num", "p")
# A page number at the end of the path: "/2", "/2/", "/page/2", "/page-2".
_PATH_PAGE = re.compile(r"(?:/page[/-]?|/)(\d{1,3})/?$", re.IGNORECASE)
# Page numbers above this are an article's id, not a page ("/news/12345").
MAX_PAGE_NUMBER = 200
# Links asked about, in document order: `<link rel=next>` first, `<a rel=next>`, then any link.
_LINK_SELECTOR = "link[rel][href], a[href]"


@dataclass(frozen=True, slots=True)
class PageMarker:
    """An URL split into the article it belongs to (`key`) and its page number (1: none)."""

    key: str
    number: int


def page_marker(url: str) -> PageMarker:
    """The page number `url` carries, and the URL without it (normalised, no trailing "/")."""
    parts = urlsplit(normalise_url(url))
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for name in PAGE_PARAMS:
        found = [i for i, (key, value) in enumerate(pairs) if key.lower() == name]
        if len(found) == 1 and pairs[found[0]][1].isdigit():
            number = int(pairs[found[0]][1])
            rest = [pair for i, pair in enumerate(pairs) if i != found[0]]
            if 0 < number <= MAX_PAGE_NUMBER:
                return PageMarker(
                    _key(parts.scheme, parts.netloc, parts.path, urlencode(rest)), number
                )
    match = _PATH_PAGE.search(parts.path)
    if match is not None and 0 < int(match.group(1)) <= MAX_PAGE_NUMBER:
        path = parts.path[: match.start()]
        return PageMarker(_key(parts.scheme, parts.netloc, path, parts.query), int(match.group(1)))
    return PageMarker(_key(parts.scheme, parts.netloc, parts.path, parts.query), 1)


def _key(scheme: str, netloc: str, path: str, query: str) -> str:
    return f"{scheme}://{netloc}{path.rstrip('/')}" + (f"?{query}" if query else "")


def is_next_page(candidate: str, current: str, page_number: int = 1) -> bool:
    """True when `candidate` is page `page_number + 1` of the article whose page `page_number`
    is `current`: same host, same URL but for a page marker one higher.

    On the first page the URL is taken whole ("/comics/5" is an article, not its page 5), or
    without a marker that says 1 ("?page=1")."""
    if host_key(candidate) != host_key(current):
        return False
    there = page_marker(candidate)
    if there.number != page_number + 1:
        return False
    here = page_marker(current)
    if page_number > 1:
        return here.number == page_number and there.key == here.key
    parts = urlsplit(normalise_url(current))
    whole = _key(parts.scheme, parts.netloc, parts.path, parts.query)
    return there.key == whole or (here.number == 1 and there.key == here.key)


def pagination_link(tree: LexborHTMLParser, url: str, page_number: int = 1) -> str | None:
    """The link on page `page_number` of an article (at `url`) to its next page, or None."""
    base_node = tree.css_first("base[href]")
    base = resolve(url, base_node.attributes.get("href") or "") if base_node else None
    ranked: list[tuple[int, str]] = []
    for node in tree.css(_LINK_SELECTOR):
        rel = (node.attributes.get("rel") or "").lower().split()
        if node.tag == "link" and "next" not in rel:
            continue
        target = resolve(base or url, node.attributes.get("href") or "")
        if target is not None and is_next_page(target, url, page_number):
            rank = 0 if node.tag == "link" else 1 if "next" in rel else 2
            ranked.append((rank, target))
    return min(ranked, key=lambda r: r[0])[1] if ranked else None


@dataclass(frozen=True, slots=True)
class Followed:
    """An article with its further pages merged in."""

    article: Article
    pages: int = 1  # pages merged into the article (the single-page version counts as one)
    single_page: bool = False  # the body is the single-page version's
    stopped: str = ""  # why following stopped before the pages ran out ("loop", "limit"...)


Load = Callable[[str, int], Awaitable[Article | None]]


async def follow_pages(first: Article, load: Load, max_pages: int) -> Followed:
    """`first` with its single-page version's body, or with its next pages merged in.
    `load(url, page_number)` fetches and extracts a page (None when it cannot)."""
    if first.single_page is not None and _norm(first.single_page) not in _urls(first):
        single = await load(first.single_page, 1)
        if single is not None and single.body_text.strip():
            return Followed(as_single_page(first, single), single_page=True)
    pages, seen = [first], _urls(first)
    texts = {first.body_text}
    stopped = ""
    while (url := pages[-1].next_page) is not None:
        if _norm(url) in seen:
            stopped = f"loop: {url} was read already"
            break
        if len(pages) >= max_pages:
            stopped = f"limit: {max_pages} pages"
            break
        seen.add(_norm(url))
        page = await load(url, len(pages) + 1)
        if page is None:
            stopped = f"page {len(pages) + 1} could not be read"
            break
        if page.body_text in texts:
            stopped = f"loop: {url} repeats an earlier page"
            break
        texts.add(page.body_text)
        pages.append(page)
    return Followed(merge_pages(pages), len(pages), stopped=stopped)


def _norm(url: str) -> str:
    return normalise_url(url)


def _urls(article: Article) -> set[str]:
    return {_norm(u) for u in (article.url, article.canonical_url) if u}


def merge_pages(pages: Sequence[Article]) -> Article:
    """One article: the first page's metadata, every page's body in order."""
    first = pages[0]
    if len(pages) == 1:
        return first
    return replace(
        first,
        body_html="\n".join(p.body_html for p in pages),
        body_text="\n".join(p.body_text for p in pages),
        block_fingerprints=tuple(dict.fromkeys(fp for p in pages for fp in p.block_fingerprints)),
        template_checked=tuple(sorted({fp for p in pages for fp in p.template_checked})),
        next_page=None,
    )


def as_single_page(first: Article, single: Article) -> Article:
    """`first` (its URL, identity and metadata) with the single-page version's body."""
    return replace(
        first,
        body_html=single.body_html,
        body_text=single.body_text,
        block_fingerprints=single.block_fingerprints,
        template_checked=single.template_checked,
        method=single.method,
        image=first.image or single.image,
        next_page=None,
        single_page=None,
    )
