"""Find the article links on an index page: html + url -> `Discovery` (pure).

Two ways, one result:

- **selector** (the operator's `links` setting): the elements the CSS selector matches; each is an
  `<a href>`, sits inside one, or contains one (the first). The operator is trusted about *which*
  links: only the hard screens below apply, none of the heuristics.
- **auto**, the default, in steps:
  1. collect every `<a href>` in page order, made absolute (honouring `<base href>`) and normalised;
  2. hard screens: not a web link, the index page itself, another site (`same_site_only`),
     a file type, then the operator's exclude/include patterns;
  3. URL screens: pagination, tag/category/author/archive, search, login/account, feed and share
     links, by `rel`, anchor text, path and query (the tables below);
  4. locate each remaining link: its region (navigation, site header/footer, sidebar, widget,
     pagination block, share bar) and its DOM "path signature" (the ancestors' tag.class chain,
     digits and per-item classes left out, so every item of a repeated list shares one);
  5. group links by signature and score each group: distinct URLs x article-likeness of the URLs x
     anchor text length, boosted inside a content area, crushed inside a region;
  6. the best group is the main listing; other groups join it when they are outside every region
     and either repeat its structure (same last three signature steps) or are plainly articles
     (a featured story beside the list);
  7. dedupe by normalised URL in page order (a headline and its "Read more" become one link, with
     the better title), then apply `limit`.

Every candidate gets a `LinkDecision` with its reason, for `feedworker discover URL`.

The entry points take the page's text or its tree from `worker.extract.htmlparse.parse_html` (read,
never changed), so a caller that needs several of them parses an index page once.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from worker.extract.htmlparse import as_tree
from worker.models import Link
from worker.urlpattern import UrlMatcher
from worker.urls import MAX_URL_LENGTH, normalise_url, resolve, same_site

__all__ = [
    "MAX_PAGE_LINKS",
    "Discovery",
    "LinkDecision",
    "advertised_feeds",
    "discover_links",
    "next_page_url",
]

# ==================================================================================================
# Heuristics, as data. Words are matched against class/id/aria-label split into lower-case words
# ("PopularPosts", "popular-posts" and "popular_posts" all give "popular", "posts"); phrases against
# the words joined by "-". Each group is tested in tests/test_discover.py.
# ==================================================================================================

# --- Navigation: menus, breadcrumbs, the site header ----------------------------------------------
NAVIGATION_TAGS = frozenset({"nav", "menu"})
NAVIGATION_ROLES = frozenset({"navigation", "menu", "menubar", "banner"})
NAVIGATION_WORDS = frozenset(
    {"nav", "navbar", "navigation", "menu", "menubar", "submenu", "breadcrumb", "breadcrumbs"}
)
# Phrases over the class/id words in order: Blogger's "PageList" widget is its page menu.
NAVIGATION_PHRASES = ("page-list", "skip-link", "top-links", "quick-links")
# A site header by class/id must be named so whole: "card-header" or "entry-header" hold headlines.
HEADER_TOKENS = frozenset(
    {"header", "site-header", "masthead", "global-header", "top-header", "topbar", "top-bar"}
)

# --- Footer ---------------------------------------------------------------------------------------
FOOTER_ROLES = frozenset({"contentinfo"})
# Whole tokens or a "footer-" prefix; "card-footer" and "entry-footer" hold "Read more" links.
FOOTER_TOKENS = frozenset({"footer", "site-footer", "global-footer", "page-footer", "colophon"})
FOOTER_TOKEN_PREFIXES = ("footer-", "footer_", "site-info")

# --- Sidebars -------------------------------------------------------------------------------------
SIDEBAR_ROLES = frozenset({"complementary"})
SIDEBAR_WORDS = frozenset({"sidebar", "sidebars", "rail", "aside"})
SIDEBAR_TOKENS = frozenset({"secondary", "widget-area", "right-column", "left-column"})

# --- Widgets: popular / recent / related / archive / taxonomy boxes -------------------------------
# Class/id words ("widget" alone is no sign: Blogger wraps its main post list in one).
WIDGET_WORDS = frozenset(
    {
        "popular", "recent", "related", "trending", "mostread", "archive", "archives",
        "tags", "tagcloud", "categories", "blogroll", "labels", "label", "recommended",
        "toplist", "promo", "sponsored", "newsletter",
    }
)  # fmt: skip
WIDGET_PHRASES = ("most-read", "most-popular", "most-viewed", "tag-cloud", "you-may-like")
# Box headings (h2-h6, aria-label), lower-cased. A heading *starting* with a phrase marks its box;
# single words must be the whole heading ("Trending", not "Trending: the news story").
WIDGET_HEADING_PREFIXES = (
    # English
    "popular posts", "popular articles", "popular stories", "most popular", "most read",
    "most viewed", "most shared", "recent posts", "recent articles", "recent entries",
    "recent comments", "related posts", "related articles", "related stories", "trending now",
    "you may also like", "you might also like", "blog archive", "tag cloud", "editor's picks",
    # German
    "beliebte beiträge", "meistgelesen", "am meisten gelesen", "neueste beiträge",
    "ähnliche beiträge", "verwandte artikel", "blog-archiv",
    # French
    "articles populaires", "les plus lus", "articles récents", "articles similaires",
    "à lire aussi",
    # Spanish / Portuguese / Italian / Dutch
    "entradas populares", "lo más leído", "más leídos", "entradas recientes",
    "artículos relacionados", "mais lidos", "posts populares", "artigos relacionados",
    "più letti", "articoli correlati", "meest gelezen", "populaire berichten",
)  # fmt: skip
WIDGET_HEADINGS = frozenset(
    {
        "popular", "recent", "related", "trending", "archive", "archives", "tags", "labels",
        "categories", "blogroll", "links", "beliebt", "archiv", "kategorien", "schlagwörter",
        "populaires", "catégories", "étiquettes", "populares", "archivo", "categorías",
        "etiquetas", "arquivo", "categorias", "archivio", "categorie", "archief", "categorieën",
    }
)  # fmt: skip

# --- Pagination blocks and links ------------------------------------------------------------------
PAGINATION_WORDS = frozenset({"pagination", "pager", "paging", "pagenav", "pagenavi"})
PAGINATION_TOKENS = frozenset({"page-numbers", "nav-links", "nav-previous", "nav-next"})
PAGINATION_RELS = frozenset({"next", "prev", "previous", "first", "last"})
PAGINATION_TEXT = frozenset(
    {
        "older posts", "newer posts", "older entries", "newer entries", "older", "newer",
        "next", "previous", "prev", "next page", "previous page", "load more", "more posts",
        "more stories", "show more", "home", "ältere beiträge", "neuere beiträge",
        "nächste seite", "vorherige seite", "weitere beiträge", "articles plus anciens",
        "articles plus récents", "page suivante", "page précédente", "entradas antiguas",
        "entradas más recientes", "página siguiente", "postagens mais antigas",
        "articoli meno recenti", "oudere berichten",
    }
)  # fmt: skip
# The subset that leads *on* through a listing (to older posts), for `pages = N`.
NEXT_PAGE_TEXT = frozenset(
    {
        "older posts", "older entries", "older", "next", "next page", "more posts",
        "more stories", "ältere beiträge", "nächste seite", "weitere beiträge",
        "articles plus anciens", "page suivante", "entradas antiguas", "página siguiente",
        "postagens mais antigas", "articoli meno recenti", "oudere berichten",
    }
)  # fmt: skip
PAGINATION_PATH = re.compile(r"/page/\d+/?$|/page\d+(?:\.html?)?$", re.IGNORECASE)
PAGINATION_QUERY_KEYS = frozenset(
    {"page", "paged", "pg", "updated-max", "updated-min", "max-results", "offset", "start"}
)

# --- Tag / category / author / archive pages ------------------------------------------------------
TAXONOMY_RELS = frozenset({"tag", "category", "author"})
# A taxonomy segment followed by at most one more ("/tag/python/", "/search/label/Recipes"); a
# longer path is an article filed under it ("/topics/climate/sea-levels-rise-123").
TAXONOMY_PATH = re.compile(
    r"(?:^|/)(?:tags?|labels?|category|categories|topics?|authors?|archives?|"
    r"kategorie|schlagwort|autor|auteur|etiqueta|categoria|categoria|archiv|archivo)"
    r"(?:/[^/]+)?/?$",
    re.IGNORECASE,
)
# Date-only paths are archives: /2024/, /2024/05/, /2024/05/17/.
DATE_ARCHIVE_PATH = re.compile(r"^/(?:19|20)\d\d(?:/[01]?\d(?:/[0-3]?\d)?)?/?$")
TAXONOMY_QUERY_KEYS = frozenset({"cat", "tag", "author", "label", "category"})

# --- Search, login/account, feeds, sharing, site machinery ----------------------------------------
SEARCH_PATH = re.compile(r"(?:^|/)search(?:/|$)", re.IGNORECASE)
SEARCH_QUERY_KEYS = frozenset({"s", "q", "query", "search", "keyword", "keywords"})
ACCOUNT_PATH = re.compile(
    r"(?:^|/)(?:log-?in|log-?out|sign-?in|sign-?up|sign-?out|register|account|my-account|"
    r"wp-login\.php|wp-admin|user/login|profile/edit)(?:/|$)",
    re.IGNORECASE,
)
FEED_PATH = re.compile(
    r"(?:^|/)(?:feed|feeds|rss|atom)(?:/|$)|\.(?:rss|atom|xml)$|/rss\.xml$", re.IGNORECASE
)
FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/feed+json"})
# An advertised feed titled so is a comments feed, never the listing's articles.
COMMENT_FEED_TITLE = re.compile(r"\bcomments?\b|\bkommentare\b|\bcommentaires\b", re.IGNORECASE)
SHARE_PATH = re.compile(
    r"(?:^|/)(?:share|sharer(?:\.php)?|sharearticle|intent/tweet|pin/create)(?:/|$)",
    re.IGNORECASE,
)
SHARE_QUERY_KEYS = frozenset({"share", "replytocom", "shareurl"})
SHARE_WORDS = frozenset({"share", "sharing", "sharedaddy", "addtoany", "social"})
MACHINERY_PATH = re.compile(r"(?:^|/)(?:wp-json|xmlrpc\.php|cdn-cgi|wp-content)(?:/|$)", re.I)

# --- File types that are never articles -----------------------------------------------------------
FILE_EXTENSIONS = frozenset(
    {
        "pdf", "jpg", "jpeg", "png", "gif", "webp", "avif", "svg", "bmp", "ico", "tif", "tiff",
        "zip", "gz", "tgz", "bz2", "xz", "7z", "rar", "tar", "mp3", "mp4", "m4a", "m4v", "ogg",
        "oga", "ogv", "wav", "flac", "webm", "mov", "avi", "mkv", "wmv", "doc", "docx", "odt",
        "xls", "xlsx", "ods", "ppt", "pptx", "odp", "rtf", "csv", "epub", "mobi", "exe", "msi",
        "dmg", "apk", "deb", "rpm", "iso", "ics", "vcf", "css", "js", "json", "woff", "woff2",
        "ttf", "otf", "torrent",
    }
)  # fmt: skip

# --- Article-likeness of a URL --------------------------------------------------------------------
# Single-segment pages every site has; never articles.
SITE_PAGE_WORDS = frozenset(
    {
        "about", "about-us", "contact", "contact-us", "privacy", "privacy-policy", "terms",
        "terms-of-service", "imprint", "impressum", "datenschutz", "legal", "cookies",
        "cookie-policy", "faq", "help", "jobs", "careers", "advertise", "subscribe", "newsletter",
        "donate", "shop", "store", "sitemap", "index", "home", "team", "press", "support",
    }
)  # fmt: skip
DATE_IN_URL = re.compile(r"/(?:19|20)\d\d/[01]?\d/|(?:19|20)\d\d-[01]\d-[0-3]\d|/(?:19|20)\d{6}/")
LONG_NUMBER = re.compile(r"\d{4,}")
ARTICLE_EXTENSIONS = (".html", ".htm", ".shtml", ".php", ".asp", ".aspx")
ARTICLE_QUERY_KEYS = frozenset({"p", "id", "article", "story", "post", "itemid", "articleid"})

# --- Link text that is no title -------------------------------------------------------------------
READ_MORE_TEXT = frozenset(
    {
        "read more", "more", "continue reading", "read the rest", "read full story",
        "read article", "full story", "weiterlesen", "mehr", "lire la suite", "la suite",
        "leer más", "seguir leyendo", "leia mais", "continue lendo", "leggi tutto",
        "continua a leggere", "lees meer", "verder lezen",
    }
)  # fmt: skip

# --- Content areas (a bonus when scoring listing candidates) --------------------------------------
CONTENT_ROLES = frozenset({"main", "feed"})
CONTENT_WORDS = frozenset(
    {"content", "main", "primary", "posts", "articles", "stories", "listing", "river", "stream"}
)

# --- Path signatures ------------------------------------------------------------------------------
# Per-item class prefixes (WordPress puts "category-news tag-python" on each post); left out of
# signatures so all items of one list share one.
VOLATILE_CLASS_PREFIXES = (
    "category-", "tag-", "status-", "format-", "type-", "author-", "post-", "postid-", "label-",
)  # fmt: skip
SECTIONING_TAGS = frozenset({"article", "aside", "main", "nav", "section"})
NEVER_A_REGION = frozenset({"html", "body", "main", "article"})

# --- Scoring --------------------------------------------------------------------------------------
REGION_PENALTY = 0.05  # a group in nav/footer/sidebar/widget needs 20x the evidence to win
CONTENT_BONUS = 1.5
TEXT_FULL_LENGTH = 60  # characters; a headline this long counts fully (typical headline 40-90)
MIN_ARTICLENESS = 0.1  # floor, so a listing of opaque URLs ("/p/x7k") still competes on structure
# Thresholds for a second group to join the main listing without repeating its structure.
JOIN_MIN_ARTICLENESS = 0.5
JOIN_MIN_TEXT = 20
PATTERN_DEPTH = 3  # signature steps compared for "same structure"
# Links read on one page (in page order); the rest are counted. Listings hold tens to hundreds,
# archive pages a few thousand; each link read costs about 70 µs, so 50,000 took seconds.
MAX_PAGE_LINKS = 10_000
HEADING_MAX_LENGTH = 40  # longer headings are story headlines, not box titles
TITLE_MAX_LENGTH = 300


# ==================================================================================================
# Results
# ==================================================================================================


@dataclass(frozen=True, slots=True)
class LinkDecision:
    """One candidate link and what became of it."""

    url: str
    title: str
    kept: bool
    reason: str
    date: datetime | None = None  # a sitemap's or feed's date for the entry; None on index pages


@dataclass(frozen=True, slots=True)
class Discovery:
    """The article links of an index page, and every decision that led to them."""

    links: tuple[Link, ...]  # kept, in page order, unique by normalised URL, capped at `limit`
    decisions: tuple[LinkDecision, ...]  # every candidate with its reason
    method: str  # "selector" | "auto"
    selector_matched: int | None  # elements the selector matched; None when auto
    unread: int = 0  # links past MAX_PAGE_LINKS, not read


# ==================================================================================================
# Entry point
# ==================================================================================================


def discover_links(
    html: str | LexborHTMLParser,
    base_url: str,
    *,
    selector: str | None = None,
    include: Sequence[UrlMatcher] = (),
    exclude: Sequence[UrlMatcher] = (),
    same_site_only: bool = True,
    limit: int | None = None,
    drop_params: Callable[[str], bool] | None = None,
) -> Discovery:
    """The article links of the index page `html` (its text, or its tree from `parse_html`, which
    is read, never changed) fetched from `base_url`.

    `drop_params` names extra query parameters to drop (see `normalise_url`).
    Raises ValueError for an invalid CSS `selector` (config validation normally catches it first).
    """
    tree = as_tree(html)
    page_url = normalise_url(base_url, drop_params=drop_params)
    screen = _Screen(UrlScreen(base_url, same_site_only, include, exclude, index_page=page_url))
    link_base = _link_base(tree, base_url)
    urls: dict[str, str | None] = {}
    if selector is not None:
        anchors, matched = _selected_anchors(tree, selector)
        read = anchors[:MAX_PAGE_LINKS]
        candidates = [_candidate(anchor, link_base, urls, drop_params) for anchor in read]
        verdicts = [screen.hard(c) or "matched selector" for c in candidates]
    else:
        matched = None
        anchors = tree.css("body a[href]")
        read = anchors[:MAX_PAGE_LINKS]
        candidates = [_candidate(a, link_base, urls, drop_params) for a in read]
        verdicts = [screen.hard(c) or _url_kind(c) for c in candidates]
        _locate(tree, candidates, verdicts, urlsplit(page_url).path)
        _choose_listing(candidates, verdicts)
    method = "auto" if selector is None else "selector"
    found = _finish(candidates, verdicts, method, matched, limit)
    return replace(found, unread=len(anchors) - len(read))


def next_page_url(html: str | LexborHTMLParser, base_url: str, page_number: int = 1) -> str | None:
    """The listing's next page (older posts) from page `page_number`, or None: `rel=next`, then a
    "Next"/"Older posts" link, then a pagination link numbered `page_number + 1`. Same site only."""
    tree = as_tree(html)
    link_base = _link_base(tree, base_url)
    here = _page_key(normalise_url(base_url))
    number = str(page_number + 1)
    best: tuple[int, str] | None = None
    for node in tree.css("link[rel][href], a[href]"):
        rank = _next_page_rank(node, number)
        if rank is None or (best is not None and rank >= best[0]):
            continue  # only a better kind of link can win: an earlier one wins ties
        absolute = resolve(link_base, node.attributes.get("href") or "")
        if absolute is None:
            continue
        url = normalise_url(absolute)
        if _page_key(url) == here or not same_site(url, base_url):
            continue
        if rank == 2 and not _is_pagination_url(url):
            continue
        best = (rank, url)
        if rank == 0:
            break
    return best[1] if best else None


def _next_page_rank(node: LexborNode, number: str) -> int | None:
    """How surely a link leads to the next page, from its markup alone: 0 `rel=next`, 1 a
    "Next"/"Older posts" text or label, 2 the next page's number (if its URL says pagination)."""
    attrs = node.attributes
    if "next" in (attrs.get("rel") or "").lower().split():
        return 0
    if node.tag != "a":
        return None
    text = _plain_text(_collapse(node.text(deep=True)))
    label = _plain_text(attrs.get("aria-label") or attrs.get("title") or "")
    if text in NEXT_PAGE_TEXT or label in NEXT_PAGE_TEXT:
        return 1
    return 2 if text == number else None


def advertised_feeds(html: str | LexborHTMLParser, base_url: str) -> tuple[str, ...]:
    """The feeds a page advertises (`<link rel=alternate type=application/rss+xml|atom+xml|
    feed+json>`), absolute and normalised, in page order with comment feeds left out."""
    tree = as_tree(html)
    link_base = _link_base(tree, base_url)
    found: list[str] = []
    for node in tree.css("link[rel][href][type]"):
        attrs = node.attributes
        rel = (attrs.get("rel") or "").lower().split()
        if "alternate" not in rel or (attrs.get("type") or "").lower().strip() not in FEED_TYPES:
            continue
        if COMMENT_FEED_TITLE.search(attrs.get("title") or ""):
            continue
        absolute = resolve(link_base, attrs.get("href") or "")
        if absolute and (url := normalise_url(absolute)) not in found:
            found.append(url)
    return tuple(found)


def _is_pagination_url(url: str) -> bool:
    parts = urlsplit(url)
    keys = {key.lower() for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    return bool(PAGINATION_PATH.search(parts.path) or keys & PAGINATION_QUERY_KEYS)


# ==================================================================================================
# Candidates
# ==================================================================================================

_KEEP = ("matched selector", "in main listing")
_UNDECIDED = ""  # passed every screen; the listing choice decides


@dataclass(slots=True)
class _Candidate:
    """One `<a href>` and what we know about it."""

    node: LexborNode
    href: str
    url: str  # normalised absolute URL, or the raw href when it is no web link
    is_web: bool
    title: str
    title_source: int  # 2 a heading inside the anchor, 1 its text, 0 its title/aria-label/img alt
    rel: frozenset[str]
    link_type: str
    region: str | None = None  # reason text of the region it sits in
    signature: tuple[str, ...] = ()
    in_content: bool = False
    articleness: float = 0.0


def _link_base(tree: LexborHTMLParser, base_url: str) -> str:
    """The URL relative links resolve against: `<base href>` (itself relative to the page) or the
    page URL."""
    base = tree.css_first("base[href]")
    if base is None:
        return base_url
    return resolve(base_url, base.attributes.get("href") or "") or base_url


def _selected_anchors(tree: LexborHTMLParser, selector: str) -> tuple[list[LexborNode], int]:
    try:
        elements = tree.css(selector)
    except SelectolaxError as exc:
        raise ValueError(f"invalid CSS selector {selector!r}: {exc}") from None
    anchors = [a for a in map(_anchor_for, elements) if a is not None]
    return anchors, len(elements)


def _anchor_for(element: LexborNode) -> LexborNode | None:
    """The link an element selected by the operator stands for: itself, the `<a>` around it, or
    the first `<a href>` inside it."""
    node: LexborNode | None = element
    while node is not None and node.tag not in ("body", "-document"):
        if node.tag == "a" and "href" in node.attributes:
            return node
        node = node.parent
    return element.css_first("a[href]")


def _candidate(
    anchor: LexborNode,
    link_base: str,
    urls: dict[str, str | None],
    drop_params: Callable[[str], bool] | None = None,
) -> _Candidate:
    """`urls` memoises href -> normalised URL (None: no web link) across one page's anchors."""
    attrs = anchor.attributes
    href = attrs.get("href") or ""
    if href not in urls:
        absolute = resolve(link_base, href)
        urls[href] = normalise_url(absolute, drop_params=drop_params) if absolute else None
    url = urls[href]
    title, title_source = _title(anchor)
    return _Candidate(
        node=anchor,
        href=href,
        url=url or href,
        is_web=url is not None,
        title=title,
        title_source=title_source,
        rel=frozenset((attrs.get("rel") or "").lower().split()),
        link_type=(attrs.get("type") or "").lower(),
    )


def _title(anchor: LexborNode) -> tuple[str, int]:
    """The link's title and where it came from (see `_Candidate.title_source`): a heading inside
    the anchor (a card wrapping a headline and a summary), else the anchor text, else its
    title, aria-label or image alt."""
    heading = anchor.css_first("h1, h2, h3, h4, h5, h6")
    if heading is not None and (text := _collapse(heading.text(deep=True))):
        return text[:TITLE_MAX_LENGTH], 2
    if text := _collapse(anchor.text(deep=True)):
        return text[:TITLE_MAX_LENGTH], 1
    attrs = anchor.attributes
    text = _collapse(attrs.get("title") or attrs.get("aria-label") or "")
    if not text and (image := anchor.css_first("img[alt]")) is not None:
        text = _collapse(image.attributes.get("alt") or "")
    return text[:TITLE_MAX_LENGTH], 0


def _collapse(text: str) -> str:
    return " ".join(text.split())


# ==================================================================================================
# Screens: reasons a link is no article, from the URL and the anchor alone
# ==================================================================================================


NOT_WEB = "not a web link"
TOO_LONG = f"URL too long (over {MAX_URL_LENGTH} characters)"


@dataclass(frozen=True, slots=True)
class UrlScreen:
    """The screens a link's URL alone decides, with one vocabulary of reasons wherever links come
    from: an index page's anchors (here), a sitemap's or feed's entries and a URL list
    (`worker.listing.lister`)."""

    site_url: str  # the source's URL: "other site" is judged against it
    same_site_only: bool = True
    include: Sequence[UrlMatcher] = ()
    exclude: Sequence[UrlMatcher] = ()
    # On an index page: the page itself, whose own link is no article, and links to files are
    # screened too. Sitemaps and feeds list pages, whatever their names end in.
    index_page: str | None = None

    def reason(self, url: str) -> str:
        """Why `url` (absolute and normalised) is no article link, or "" when it passes."""
        if len(url) > MAX_URL_LENGTH:  # before any pattern runs over it
            return TOO_LONG
        if self.index_page is not None and _page_key(url) == _page_key(self.index_page):
            return "same as index page"
        if self.same_site_only and not same_site(url, self.site_url):
            return "other site"
        if self.index_page is not None and _file_extension(url) in FILE_EXTENSIONS:
            return "not an article URL (file type)"
        for pattern in self.exclude:
            if pattern.search(url):
                return f"excluded by pattern {pattern.pattern!r}"
        if self.include and not any(pattern.search(url) for pattern in self.include):
            return "not included by pattern"
        return _UNDECIDED


@dataclass(slots=True)
class _Screen:
    """An index page's hard screens, with a memo per distinct URL (pages repeat their links)."""

    screen: UrlScreen
    _memo: dict[str, str] = field(default_factory=dict)

    def hard(self, c: _Candidate) -> str:
        """The reason to drop `c` whatever the mode, or "" when it passes."""
        if not c.is_web:
            return NOT_WEB
        verdict = self._memo.get(c.url)
        if verdict is None:
            verdict = self._memo[c.url] = self.screen.reason(c.url)
        return verdict


def _page_key(url: str) -> str:
    """Scheme and a trailing slash do not make another page: http://x/blog == https://x/blog/."""
    return url.partition("://")[2].rstrip("/")


def _file_extension(url: str) -> str:
    last = urlsplit(url).path.rpartition("/")[2]
    return last.rpartition(".")[2].lower() if "." in last else ""


def _url_kind(c: _Candidate) -> str:
    """The reason `c` is a site-machinery link rather than an article, or "" (auto mode only)."""
    parts = urlsplit(c.url)
    path = parts.path
    keys = (
        {k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        if parts.query
        else {}
    )
    text = _plain_text(c.title)
    if (
        c.rel & TAXONOMY_RELS
        or TAXONOMY_PATH.search(path)
        or DATE_ARCHIVE_PATH.match(path)
        or keys.keys() & TAXONOMY_QUERY_KEYS
        or re.fullmatch(r"\d{6,8}", keys.get("m", ""))  # WordPress month archive "?m=202405"
    ):
        return "tag/category/author/archive page"
    if (
        c.rel & PAGINATION_RELS
        or text in PAGINATION_TEXT
        or (text.isdigit() and len(text) <= 4)
        or PAGINATION_PATH.search(path)
        or keys.keys() & PAGINATION_QUERY_KEYS
    ):
        return "pagination"
    if SEARCH_PATH.search(path) or keys.keys() & SEARCH_QUERY_KEYS:
        return "search page"
    if ACCOUNT_PATH.search(path):
        return "login/account page"
    if FEED_PATH.search(path) or ("alternate" in c.rel and c.link_type in FEED_TYPES):
        return "feed"
    if SHARE_PATH.search(path) or keys.keys() & SHARE_QUERY_KEYS:
        return "share link"
    if MACHINERY_PATH.search(path):
        return "not an article URL (site machinery)"
    return _UNDECIDED


def _is_generic_title(title: str) -> bool:
    """ "Read more", "Continue reading “Some title”", "": link text that names no article."""
    plain = _plain_text(title)
    return not plain or _READ_MORE.match(plain) is not None


# A READ_MORE_TEXT phrase as the whole text; a multi-word one may be followed by the title.
_READ_MORE = re.compile(
    "|".join(
        re.escape(t) + ("(?: .*)?$" if " " in t else "$")
        for t in sorted(READ_MORE_TEXT, key=len, reverse=True)
    )
)


def _plain_text(title: str) -> str:
    """Lower-cased letters, digits and spaces only: "Older Posts »" -> "older posts"."""
    return " ".join(re.sub(r"[^\w\s']", " ", title.lower()).split())


def _articleness(url: str, index_path: str) -> float:
    """How much a URL looks like one article's (0..1): dates, slugs, ids, page extensions."""
    parts = urlsplit(url)
    path = parts.path
    score = 0.0
    if parts.query:
        keys = {key.lower() for key, value in parse_qsl(parts.query) if value.isdigit()}
        if keys & ARTICLE_QUERY_KEYS:
            score += 0.3  # "?p=123", "?id=42"
    segments = [s for s in path.split("/") if s]
    if not segments:
        return score
    last = segments[-1].lower()
    if len(segments) <= 2 and last in SITE_PAGE_WORDS:
        return 0.0
    stem = last.removesuffix(next((e for e in ARTICLE_EXTENSIONS if last.endswith(e)), ""))
    words = len([w for w in re.split(r"[-_+]", stem) if w])
    if DATE_IN_URL.search(path):
        score += 0.35
    if words >= 3:
        score += 0.45
    elif words == 2 or len(stem) >= 16:
        score += 0.25
    if LONG_NUMBER.search(path):
        score += 0.25
    if stem != last:
        score += 0.15
    if len(segments) >= 2:
        score += 0.1
    if path.startswith(index_path) and len(path) > len(index_path):
        score += 0.1
    return min(score, 1.0)


# ==================================================================================================
# Location: region and path signature of each anchor, one cached walk up the tree
# ==================================================================================================


@dataclass(frozen=True, slots=True)
class _Place:
    """What an element's ancestors (and the element) say about the links inside it."""

    signature: tuple[str, ...] = ()
    region: str | None = None
    in_article: bool = False
    sectioned: bool = False  # inside article/aside/main/nav/section (HTML's header/footer scoping)
    in_content: bool = False


_ROOT = _Place()


def _locate(
    tree: LexborHTMLParser, candidates: list[_Candidate], verdicts: list[str], index_path: str
) -> None:
    """Fill in region, signature and articleness of the candidates that passed the screens."""
    boxes = _heading_boxes(tree)
    cache: dict[int, _Place] = {}
    for c, verdict in zip(candidates, verdicts, strict=True):
        if verdict:
            continue
        place = _place(c.node, cache, boxes)
        c.region, c.signature, c.in_content = place.region, place.signature, place.in_content
        c.articleness = _articleness(c.url, index_path)


def _place(node: LexborNode, cache: dict[int, _Place], boxes: dict[int, str]) -> _Place:
    """The `_Place` of `node`, computed top-down from the nearest cached ancestor."""
    chain: list[LexborNode] = []
    current: LexborNode | None = node
    place = _ROOT
    while current is not None and current.is_element_node:
        hit = cache.get(current.mem_id)
        if hit is not None:
            place = hit
            break
        chain.append(current)
        current = current.parent
    for element in reversed(chain):
        place = _extend(place, element, boxes)
        cache[element.mem_id] = place
    return place


@dataclass(frozen=True, slots=True)
class _Names:
    """What an element's class and id say, read once per distinct (class, id) pair."""

    tokens: frozenset[str]  # lower-cased class and id values
    words: frozenset[str]  # their words: "PopularPosts2 recent_entries" -> popular, posts, ...
    spelled: str  # the words in order, "-"-joined, for phrases: "popular-posts-recent-entries"
    step: str  # the signature step, with the tag: "li.entry.post"


@functools.lru_cache(maxsize=4096)  # a memo of a pure function: pages repeat their class strings
def _names(tag: str, class_attr: str, id_attr: str) -> _Names:
    classes = class_attr.split()
    names = [*classes, id_attr] if id_attr else classes
    words = _words(names)
    return _Names(
        tokens=frozenset(name.lower() for name in names),
        words=frozenset(words),
        spelled="-".join(words),
        step=_step(tag, classes),
    )


@dataclass(frozen=True, slots=True)
class _Element:
    """An element as the region rules see it."""

    node: LexborNode
    tag: str
    role: str
    label: str  # aria-label, whitespace-collapsed
    tokens: frozenset[str]
    words: frozenset[str]
    spelled: str

    @classmethod
    def read(cls, node: LexborNode, names: _Names) -> _Element:
        attrs = node.attributes
        return cls(
            node=node,
            tag=node.tag or "",
            role=(attrs.get("role") or "").lower(),
            label=_collapse(attrs.get("aria-label") or ""),
            tokens=names.tokens,
            words=names.words,
            spelled=names.spelled,
        )


def _extend(parent: _Place, node: LexborNode, boxes: dict[int, str]) -> _Place:
    attrs = node.attributes
    names = _names(node.tag or "", attrs.get("class") or "", attrs.get("id") or "")
    el = _Element.read(node, names)
    region = parent.region
    if el.tag not in NEVER_A_REGION and not (region or "").startswith("sidebar widget"):
        # The innermost region names the links best ("sidebar" < "sidebar widget 'Most read'"),
        # but once inside a widget, its inner blocks do not rename it.
        region = boxes.get(node.mem_id) or _region(el, parent) or region
    return _Place(
        signature=(*parent.signature, names.step),
        region=region,
        in_article=parent.in_article or el.tag == "article",
        sectioned=parent.sectioned or el.tag in SECTIONING_TAGS,
        in_content=parent.in_content or el.tag == "main" or el.role in CONTENT_ROLES
        or bool(el.words & CONTENT_WORDS),
    )  # fmt: skip


def _region(el: _Element, parent: _Place) -> str | None:
    """The reason text of the region `el` opens, or None."""
    found = el.words & WIDGET_WORDS or {p for p in WIDGET_PHRASES if p in el.spelled}
    if parent.in_article:
        found = set()  # a listing item's own "related" links or tag list are no sidebar widget
    if found or _is_widget_heading(el.label):
        return _widget_reason(el.label or _box_heading(el.node) or min(found))
    if el.tag == "aside" and parent.in_article:
        return None  # a pull quote or note inside a story
    if el.tag == "aside" or el.role in SIDEBAR_ROLES or el.words & SIDEBAR_WORDS:
        return _widget_reason(el.label) if el.label else "sidebar"
    if el.tokens & SIDEBAR_TOKENS:
        return "sidebar"
    if el.words & PAGINATION_WORDS or el.tokens & PAGINATION_TOKENS:
        return "pagination"
    if el.words & SHARE_WORDS:
        return "share links"
    if parent.in_article:
        return None  # an article's own header, footer or tag list is not the site's
    if (
        el.tag in NAVIGATION_TAGS
        or el.role in NAVIGATION_ROLES
        or el.words & NAVIGATION_WORDS
        or any(phrase in el.spelled for phrase in NAVIGATION_PHRASES)
        or (el.tag == "header" and not parent.sectioned)
        or el.tokens & HEADER_TOKENS
    ):
        return "navigation"
    if (
        (el.tag == "footer" and not parent.sectioned)
        or el.role in FOOTER_ROLES
        or any(t in FOOTER_TOKENS or t.startswith(FOOTER_TOKEN_PREFIXES) for t in el.tokens)
    ):
        return "footer"
    return None


def _widget_reason(label: str) -> str:
    return f"sidebar widget {label!r}" if label else "sidebar widget"


def _box_heading(node: LexborNode) -> str:
    """The title of a widget box: its first heading, when short enough to be one."""
    heading = node.css_first("h2, h3, h4, h5, h6, .title, .widget-title, .widgettitle")
    text = _collapse(heading.text(deep=True)) if heading is not None else ""
    return text if len(text) <= HEADING_MAX_LENGTH else ""


def _words(names: Iterable[str]) -> list[str]:
    """Lower-case words of class/id names, in order: "PopularPosts2 widget_recent-entries" ->
    ["popular", "posts", "widget", "recent", "entries"]."""
    out: list[str] = []
    for name in names:
        spaced = _CAMEL_HUMP.sub(r"\1 \2", name)
        out.extend(word for word in _NON_LETTERS.split(spaced.lower()) if word)
    return out


_CAMEL_HUMP = re.compile(r"([a-z])([A-Z])")
_NON_LETTERS = re.compile(r"[^a-z]+")


def _step(tag: str, classes: list[str]) -> str:
    """One signature step: "li.entry.post" from `<li class="post-123 post entry category-x">`."""
    kept = {
        re.sub(r"\d+", "", cls.lower())
        for cls in classes
        if not cls.lower().startswith(VOLATILE_CLASS_PREFIXES)
    }
    kept.discard("")
    return ".".join([tag, *sorted(kept)])


def _heading_boxes(tree: LexborHTMLParser) -> dict[int, str]:
    """Boxes titled like widgets ("Most read", "Popular posts from this blog"): element id ->
    region reason. The box is the heading's parent, or its grandparent when the parent only
    wraps the heading (`<div class="title"><h3>Most read</h3></div>`)."""
    boxes: dict[int, str] = {}
    for heading in tree.css("h2, h3, h4, h5, h6"):
        text = _collapse(heading.text(deep=True))
        if not _is_widget_heading(text):
            continue
        box = heading.parent
        for _ in range(2):
            if box is None or _element_children(box) > 1:
                break
            box = box.parent
        if box is not None and box.tag not in NEVER_A_REGION:
            boxes[box.mem_id] = _widget_reason(text)
    return boxes


def _is_widget_heading(text: str) -> bool:
    if not text or len(text) > HEADING_MAX_LENGTH:
        return False
    lowered = text.lower().rstrip(":")
    return lowered in WIDGET_HEADINGS or lowered.startswith(WIDGET_HEADING_PREFIXES)


def _element_children(node: LexborNode) -> int:
    return sum(1 for _ in node.iter(include_text=False))


# ==================================================================================================
# The main listing: group, score, choose
# ==================================================================================================


@dataclass(frozen=True, slots=True)
class _Group:
    signature: tuple[str, ...]
    members: tuple[int, ...]  # candidate positions
    score: float
    region: str | None
    articleness: float
    text: float  # mean title length


def _choose_listing(candidates: list[_Candidate], verdicts: list[str]) -> None:
    """Fill in the verdict of every candidate that passed the screens."""
    by_signature: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, (c, verdict) in enumerate(zip(candidates, verdicts, strict=True)):
        if not verdict:
            by_signature[c.signature].append(i)
    groups = [_group(sig, members, candidates) for sig, members in by_signature.items()]
    if not groups:
        return
    best = max(groups, key=lambda g: g.score)  # max keeps the first on ties: page order
    # Only menu, footer, pagination or share links left: the page has no listing (a landing
    # page), so the caller may read the site's feed or sitemap instead. A lone sidebar list still
    # counts: on some blogs it is the only list of posts.
    usable = best.region is None or best.region.startswith("sidebar")
    for group in groups:
        joins = usable and (group is best or _joins(group, best))
        for i in group.members:
            verdicts[i] = (
                "in main listing" if joins else candidates[i].region or "not in main listing"
            )


def _group(signature: tuple[str, ...], members: list[int], cands: list[_Candidate]) -> _Group:
    links = [cands[i] for i in members]
    distinct = len({c.url for c in links})
    articleness = sum(max(c.articleness, MIN_ARTICLENESS) for c in links) / len(links)
    text = sum(0 if _is_generic_title(c.title) else len(c.title) for c in links) / len(links)
    region = next((c.region for c in links if c.region), None)
    score = distinct * articleness * max(min(text / TEXT_FULL_LENGTH, 1.0), 0.05)
    if region:
        score *= REGION_PENALTY
    if any(c.in_content for c in links):
        score *= CONTENT_BONUS
    return _Group(signature, tuple(members), score, region, articleness, text)


def _joins(group: _Group, best: _Group) -> bool:
    """Whether a second group belongs to the main listing (a featured block, a second list)."""
    if group.region:
        return False
    if group.signature[-PATTERN_DEPTH:] == best.signature[-PATTERN_DEPTH:]:
        return True
    return group.articleness >= JOIN_MIN_ARTICLENESS and group.text >= JOIN_MIN_TEXT


# ==================================================================================================
# Dedupe, limit, decisions
# ==================================================================================================


def _finish(
    candidates: list[_Candidate],
    verdicts: list[str],
    method: str,
    matched: int | None,
    limit: int | None,
) -> Discovery:
    kept_at: dict[str, int] = {}  # url -> position in `links`
    titles: dict[str, list[_Candidate]] = defaultdict(list)
    for c, verdict in zip(candidates, verdicts, strict=True):
        if verdict in _KEEP:
            titles[c.url].append(c)
    decisions: list[LinkDecision] = []
    order: list[str] = []
    for c, verdict in zip(candidates, verdicts, strict=True):
        kept, reason = verdict in _KEEP, verdict
        if c.is_web and (c.url in kept_at or (not kept and c.url in titles)):
            kept, reason = False, "duplicate"
        elif kept and limit is not None and len(order) >= limit:
            kept, reason = False, f"over the limit of {limit} links"
        elif kept:
            kept_at[c.url] = len(order)
            order.append(c.url)
        decisions.append(LinkDecision(c.url, c.title, kept, reason))
    links = tuple(Link(url, _best_title(titles[url])) for url in order)
    return Discovery(links, tuple(decisions), method, matched)


def _best_title(occurrences: list[_Candidate]) -> str:
    """The best of the titles a URL was linked with: a real headline over "Read more", a heading
    over loose anchor text, then the longer."""

    def rank(c: _Candidate) -> tuple[bool, int, int]:
        return (not _is_generic_title(c.title), c.title_source, len(c.title))

    return max(occurrences, key=rank).title
