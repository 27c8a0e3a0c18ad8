"""Read a page's metadata: JSON-LD, Open Graph, Twitter cards, `<meta>`, microdata, `<time>`.

One CSS query walks the tree once and collects the raw signals (`_Signals`); small pure helpers
then pick each field from a priority table: JSON-LD first, `<meta>` tags next, visible markup
(`<h1>`, bylines, `<time>`) last. Visible markup is queried lazily, only when the metadata leaves a
field empty, so a page with good metadata costs one walk. Nothing here looks at the clock: dates are
parsed, never judged against "now".
"""

from __future__ import annotations

import html
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.extract.weburl import absolute_url
from worker.publish.xmlchars import xml_safe

# --- Data tables -----------------------------------------------------------------------------

# Keys are lower-cased `property`, `name`, `itemprop` or `http-equiv` values of `<meta>` tags;
# within a field the first key with a usable value wins.
_TITLE_KEYS = ("og:title", "twitter:title")
_SITE_NAME_KEYS = ("og:site_name", "application-name")
_DESCRIPTION_KEYS = ("og:description", "description", "twitter:description", "dc.description")
_IMAGE_KEYS = (
    "og:image",
    "og:image:secure_url",
    "og:image:url",
    "twitter:image",
    "twitter:image:src",
)
_LANGUAGE_KEYS = ("og:locale", "content-language", "language", "dc.language")
_AUTHOR_KEYS = (
    "author",
    "article:author",
    "dc.creator",
    "dcterms.creator",
    "parsely-author",
    "sailthru.author",
)
_PUBLISHED_KEYS = (
    "article:published_time",
    "datepublished",
    "og:published_time",
    "date",
    "pubdate",
    "publishdate",
    "publish-date",
    "publish_date",
    "dc.date.issued",
    "dcterms.issued",
    "dc.date",
    "dcterms.created",
    "sailthru.date",
    "parsely-pub-date",
)
# The article's own tags and section, in this order after JSON-LD `articleSection` and `keywords`.
_CATEGORY_KEYS = ("article:section", "article:tag")
# More categories than this are a keyword-stuffing list, not the article's topics.
_MAX_CATEGORIES = 10
# A JSON-LD `wordCount` above this is a bogus value, not an article (a long novel chapter is
# 20,000 words); it is capped so that it cannot ask the extractor for more than a page holds.
_MAX_WORD_COUNT = 100_000
# A single category longer than this is a sentence, not a tag.
_MAX_CATEGORY_CHARS = 60
_MODIFIED_KEYS = (
    "article:modified_time",
    "datemodified",
    "og:updated_time",
    "dc.date.modified",
    "dcterms.modified",
    "last-modified",
)

# Class names sites put on the visible byline; only read when no metadata names an author.
_BYLINE_SELECTORS = (
    ".byline",
    ".byline__name",
    ".byline-name",
    ".byline__author",
    ".byline-author",
    ".author-name",
    ".author_name",
    ".article-author",
    ".article__author",
    ".post-author",
    ".entry-author",
    ".author",
)

# The attributes whose value names a `<meta>` tag's content.
_META_KEY_ATTRIBUTES = frozenset({"property", "name", "itemprop", "http-equiv"})

# The one walk: every element that can carry page-level metadata.
_SCAN_SELECTOR = ",".join(
    (
        "html[lang]",
        "title",
        "base[href]",
        "meta[content]",
        "link[rel~=canonical i]",
        "link[rel~=image_src i]",
        'script[type*="ld+json" i]',
    )
)
# The part of it found in `<head>` alone (see `_scanned`).
_HEAD_SELECTOR = "title,base[href]"
# Visible markup, queried only when the metadata above leaves a field empty.
_H1_SELECTOR = "article h1,main h1"
_TIME_SELECTOR = "article time[datetime],main time[datetime],time[pubdate]"
_ITEMPROP_PUBLISHED = "datePublished"
_ITEMPROP_MODIFIED = "dateModified"
_REL_AUTHOR_SELECTOR = "a[rel~=author]"
_BYLINE_SELECTOR = ",".join(_BYLINE_SELECTORS)
# What every byline class holds, as one cheap query: lexbor's cost grows with each part of a
# selector list (twelve class selectors walk the page at eight times the cost of one part).
_BYLINE_CLASSES = frozenset(selector[1:] for selector in _BYLINE_SELECTORS)
_BYLINE_SUPERSET = "[class*=byline i],[class*=author i]"
# Class names are split on ASCII whitespace only, as selectors match them.
_ASCII_SPACES = str.maketrans("\t\n\f\r", "    ")

# schema.org types whose object describes the article itself (matched on the type's last segment).
_ARTICLE_TYPE_SUFFIXES = ("Article", "Posting", "Report")

# Separators between a page title and the site name in `<title>`.
_TITLE_SEPARATORS = (" | ", " - ", " — ", " – ", " :: ", " · ", " • ", " « ", " » ")
# A `<title>` tail this short (in words) next to a head at least twice as long is a site name.
_MAX_SUFFIX_WORDS = 4

# An author longer than this is a sentence or a bio, not a name.
_MAX_AUTHOR_CHARS = 100
# A visible byline (class-matched) longer than this many words is not just a name.
_MAX_BYLINE_WORDS = 6
_BYLINE_PREFIX = re.compile(r"^(?:by|written by|posted by|von|par|por|door|di)\s*:?\s+", re.I)

_WHITESPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^<>]*>")  # `[^<>]`: linear on a `<` never closed
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
# Comment or CDATA markers some sites wrap a JSON-LD block in.
_JSONLD_OPENERS = ("<!--", "<![CDATA[")
_JSONLD_CLOSERS = ("-->", "]]>")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
# JSON-LD documents nest little; this bounds the walk on hostile ones.
_MAX_JSONLD_NODES = 2000

# Date formats seen in the wild that neither ISO 8601 nor RFC 822 parsing accepts.
_DATE_FORMATS = (
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%B %d, %Y %I:%M %p",
    "%B %d, %Y %H:%M",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y %H:%M",
    "%d %B %Y",
    "%d %b %Y",
)
# `(?<!\s)`: whitespace is tried from its start only, not again from each of its characters.
_DATE_ZONE_SUFFIX = re.compile(r"(?<!\s)\s*(?:Z|UTC|GMT)$", re.I)
_DATE_SPACED_OFFSET = re.compile(r"(?<!\s)\s+([+-]\d{2}:?\d{2})$")
_DIGIT = re.compile(r"\d")
_EPOCH = re.compile(r"^\d{10}(?:\d{3})?$")
_MAX_DATE_CHARS = 64


# --- Public API --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metadata:
    """What a page says about itself; empty fields mean the page did not say."""

    title: str = ""
    authors: tuple[str, ...] = ()
    published: datetime | None = None  # timezone-aware UTC
    modified: datetime | None = None  # timezone-aware UTC
    image: str | None = None  # absolute URL of the lead image
    language: str | None = None  # e.g. "en", "pt-BR"
    canonical_url: str | None = None  # absolute
    description: str = ""
    site_name: str = ""
    jsonld_body: str | None = None  # JSON-LD articleBody text, when present
    categories: tuple[str, ...] = ()  # the article's section and tags, as the site names them
    word_count: int = 0  # the article's length in words as JSON-LD states it (0: not stated)


def extract_metadata(
    tree: LexborHTMLParser, url: str, elements: list[LexborNode] | None = None
) -> Metadata:
    """Read the metadata of the page `tree`, fetched from `url` (used to make URLs absolute).

    `elements`, when given, are the page's `<meta>`, `<link>` and `<script>` elements (among
    others) in document order, found by a walk the caller makes anyway: this one is then saved.
    """
    signals = _collect_signals(tree, elements)
    props = _ItemProps(tree)
    base = absolute_url(url, _clean_text(signals.base_href)) or url
    article = _jsonld_article(signals.jsonld)
    site_name = _first_text(_meta_values(signals, _SITE_NAME_KEYS), [article.site_name])
    return Metadata(
        title=_pick_title(tree, signals, article, site_name),
        authors=_pick_authors(tree, signals, article, props),
        published=_first_date(
            [article.published],
            _meta_values(signals, _PUBLISHED_KEYS),
            props.values(_ITEMPROP_PUBLISHED),
            _markup_values(tree, _TIME_SELECTOR),
        ),
        modified=_first_date(
            [article.modified],
            _meta_values(signals, _MODIFIED_KEYS),
            props.values(_ITEMPROP_MODIFIED),
        ),
        image=_first_url(
            base, [article.image], _meta_values(signals, _IMAGE_KEYS), [signals.image_src]
        ),
        language=_pick_language(signals, article),
        canonical_url=_pick_canonical(signals, base, url),
        description=_first_text(
            _meta_values(signals, _DESCRIPTION_KEYS[:1]),
            [article.description],
            _meta_values(signals, _DESCRIPTION_KEYS[1:]),
        ),
        site_name=site_name,
        jsonld_body=_clean_body(article.body),
        categories=_pick_categories(signals, article),
        word_count=article.word_count,
    )


def parse_date(value: str) -> datetime | None:
    """Parse ISO 8601 (and common variants), RFC 822, epoch seconds and a few written formats.

    Returns a timezone-aware UTC datetime; a value without a zone is taken as UTC. Anything that
    does not parse gives None.
    """
    text = _WHITESPACE.sub(" ", value).strip()
    if len(text) > _MAX_DATE_CHARS or not _DIGIT.search(text):
        return None
    for parser in (_parse_epoch, _parse_iso, _parse_rfc822, _parse_written):
        parsed = parser(text)
        if parsed is not None:
            return _to_utc(parsed)
    return None


# --- One pass over the tree --------------------------------------------------------------------


@dataclass(slots=True)
class _Signals:
    """Raw values found in the one walk over the page's metadata elements, in document order."""

    meta: dict[str, list[str]] = field(default_factory=dict)
    jsonld: list[Any] = field(default_factory=list)
    language: str = ""
    title: str = ""
    base_href: str = ""
    canonical: str = ""
    image_src: str = ""


def _collect_signals(tree: LexborHTMLParser, elements: list[LexborNode] | None) -> _Signals:
    signals = _Signals()
    if elements is None:
        for node in tree.css(_SCAN_SELECTOR):
            _read_node(node, node.tag, signals)
    else:
        for node, tag in _scanned(tree, elements):
            _read_node(node, tag, signals)
    return signals


def _scanned(
    tree: LexborHTMLParser, elements: list[LexborNode]
) -> Iterator[tuple[LexborNode, str | None]]:
    """What `_SCAN_SELECTOR` would select, from `elements` and the small `<head>`, with each
    element's tag (read once: a call into lexbor). The order differs only between kinds of
    element, which fill different signals."""
    if tree.root is not None and tree.root.attributes.get("lang"):
        yield tree.root, "html"
    if tree.head is not None:
        for node in tree.head.css(_HEAD_SELECTOR):
            yield node, node.tag
    for node in elements:
        tag = node.tag
        if tag in ("meta", "link") or (
            tag == "script" and "ld+json" in (node.attributes.get("type") or "").lower()
        ):
            yield node, tag


def _read_node(node: LexborNode, tag: str | None, signals: _Signals) -> None:
    if tag == "script":
        _read_script(node, signals)
        return
    attrs = node.attributes
    if tag == "meta":
        _read_meta(attrs, signals)
    elif tag == "link":
        _read_link(attrs, signals)
    elif tag == "html":
        signals.language = signals.language or (attrs.get("lang") or "")
    elif tag == "title":
        signals.title = signals.title or _clean_text(node.text())
    elif tag == "base":
        signals.base_href = signals.base_href or (attrs.get("href") or "")


def _read_meta(attrs: dict[str, str | None], signals: _Signals) -> None:
    content = attrs.get("content")
    if not content:
        return
    # One pass over the attributes, not a lookup per name: each name a `<meta>` carries adds the
    # same content, so the order they come in does not matter.
    for name, key in attrs.items():
        if key and name in _META_KEY_ATTRIBUTES:
            signals.meta.setdefault(key.strip().lower(), []).append(content)


def _read_script(node: LexborNode, signals: _Signals) -> None:
    parsed = _parse_json(node.text())
    if parsed is not None:
        signals.jsonld.append(parsed)


def _read_link(attrs: dict[str, str | None], signals: _Signals) -> None:
    rels = (attrs.get("rel") or "").lower().split()
    href = attrs.get("href") or ""
    if "canonical" in rels:
        signals.canonical = signals.canonical or href
    if "image_src" in rels:
        signals.image_src = signals.image_src or href


# --- Visible markup, read lazily -----------------------------------------------------------------


def _markup_values(tree: LexborHTMLParser, selector: str) -> Iterator[str]:
    """Values of the elements matching `selector`; the query runs only if a caller iterates.

    Pickers stop at the first usable value, so pages with good metadata never pay for these.
    """
    yield from _node_values(tree.css(selector))


def _byline_values(tree: LexborHTMLParser) -> Iterator[str]:
    """`_markup_values(tree, _BYLINE_SELECTOR)`, from a cheaper query: the elements whose class
    holds "byline" or "author" in any case, kept when a class word is a byline class. A word
    matching only in another case ("ByLine") is a byline in quirks mode and not in standards
    mode: lexbor, which knows the page's mode, then answers the full query."""
    kept: list[LexborNode] = []
    for node in tree.css(_BYLINE_SUPERSET):
        words = (node.attributes.get("class") or "").translate(_ASCII_SPACES).split(" ")
        if not _BYLINE_CLASSES.isdisjoint(words):
            kept.append(node)
        elif not _BYLINE_CLASSES.isdisjoint(word.lower() for word in words):
            yield from _markup_values(tree, _BYLINE_SELECTOR)
            return
    yield from _node_values(kept)


def _node_values(nodes: Iterable[LexborNode]) -> Iterator[str]:
    for node in nodes:
        attrs = node.attributes
        yield attrs.get("datetime") or attrs.get("content") or node.text()


class _ItemProps:
    """The page's microdata properties (`itemprop` elements) by name, found in one walk of the
    page the first time one is asked for (the dates and the author each walked it)."""

    __slots__ = ("_by_name", "_tree")

    def __init__(self, tree: LexborHTMLParser) -> None:
        self._tree = tree
        self._by_name: dict[str, list[LexborNode]] | None = None

    def nodes(self, name: str) -> list[LexborNode]:
        """What `[itemprop=name]` selects: the value is the name exactly, case and all."""
        if self._by_name is None:
            self._by_name = {}
            for node in self._tree.css("[itemprop]"):
                value = node.attributes.get("itemprop") or ""
                self._by_name.setdefault(value, []).append(node)
        return self._by_name.get(name, [])

    def values(self, name: str) -> Iterator[str]:
        """`_markup_values` of `[itemprop=name]`, asked for only if a caller iterates."""
        yield from _node_values(self.nodes(name))

    def authors(self) -> Iterator[str]:
        """`itemprop=author`, or the `itemprop=name` inside it (a schema.org Person)."""
        for node in self.nodes("author"):
            name = node.css_first("[itemprop=name]") or node
            yield name.attributes.get("content") or name.text()


# --- JSON-LD -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _JsonLdArticle:
    """The fields we read from the page's article object in JSON-LD."""

    headline: str = ""
    authors: tuple[str, ...] = ()
    published: str = ""
    modified: str = ""
    image: str = ""
    language: str = ""
    description: str = ""
    site_name: str = ""
    body: str = ""
    categories: tuple[str, ...] = ()  # `articleSection`, then `keywords`
    word_count: int = 0  # `wordCount`


def _parse_json(text: str) -> Any | None:
    """Parse a JSON-LD block; tolerates comment wrappers, control characters, trailing commas."""
    text = _unwrap_jsonld(text.strip())
    for candidate in (text, _TRAILING_COMMA.sub(r"\1", text)):
        try:
            return json.loads(candidate, strict=False)
        except (ValueError, RecursionError):
            continue
    return None


def _unwrap_jsonld(text: str) -> str:
    """`text` (stripped) without a comment or CDATA wrapper. Prefix and suffix tests, not a regex:
    one anchored at the end is tried at every character of the block, and blocks are long."""
    for opener in _JSONLD_OPENERS:
        if text.startswith(opener):
            text = text[len(opener) :]
            break
    for closer in _JSONLD_CLOSERS:
        if text.endswith(closer):
            return text[: -len(closer)]
    return text


def _jsonld_article(blocks: list[Any]) -> _JsonLdArticle:
    objects = list(_jsonld_objects(blocks))
    by_id = {obj["@id"]: obj for obj in objects if isinstance(obj.get("@id"), str) and len(obj) > 1}
    article = next((obj for obj in objects if _is_article(obj)), None)
    if article is None:
        return _JsonLdArticle()
    publisher = _resolve(article.get("publisher"), by_id)
    return _JsonLdArticle(
        headline=_jsonld_text(article.get("headline")) or _jsonld_text(article.get("name")),
        authors=tuple(_jsonld_names(article.get("author"), by_id)),
        published=_jsonld_text(article.get("datePublished") or article.get("dateCreated")),
        modified=_jsonld_text(article.get("dateModified")),
        image=_jsonld_image(article.get("image") or article.get("thumbnailUrl"), by_id),
        language=_jsonld_text(article.get("inLanguage")),
        description=_jsonld_text(article.get("description")),
        site_name=_jsonld_text(publisher.get("name")) if isinstance(publisher, dict) else "",
        body=_jsonld_raw_text(article.get("articleBody")),
        categories=(
            *_jsonld_terms(article.get("articleSection")),
            *_jsonld_terms(article.get("keywords")),
        ),
        word_count=_jsonld_count(article.get("wordCount")),
    )


def _jsonld_objects(blocks: list[Any]) -> Iterator[dict[str, Any]]:
    """Every JSON object in the blocks, breadth first: top-level and `@graph` items come before
    the objects nested in them (an article's `isPartOf`, a page's list of related articles)."""
    pending: deque[Any] = deque(blocks)
    seen = 0
    while pending and seen < _MAX_JSONLD_NODES:
        item = pending.popleft()
        seen += 1
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            yield item
            pending.extend(v for v in item.values() if isinstance(v, dict | list))


def _is_article(obj: dict[str, Any]) -> bool:
    types = obj.get("@type")
    names = types if isinstance(types, list) else [types]
    for name in names:
        if isinstance(name, str) and name.rsplit("/", 1)[-1].rsplit(":", 1)[-1].endswith(
            _ARTICLE_TYPE_SUFFIXES
        ):
            return True
    return False


def _resolve(value: Any, by_id: dict[str, dict[str, Any]]) -> Any:
    """Follow an `{"@id": ...}` reference to the full object elsewhere in the graph."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("@id"), str):
        return by_id.get(value["@id"], value)
    return value


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _jsonld_text(value: Any) -> str:
    """JSON-LD strings carry entities and sometimes markup ("<p>...") as well."""
    text = _jsonld_raw_text(value)
    if "&" in text:
        text = html.unescape(text)
    return _clean_text(_TAG.sub(" ", text) if "<" in text else text)


def _jsonld_raw_text(value: Any) -> str:
    value = _first(value)
    return value if isinstance(value, str) else ""


def _jsonld_names(value: Any, by_id: dict[str, dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        item = _resolve(item, by_id)
        if isinstance(item, dict):
            item = item.get("name")
        text = _jsonld_text(item)
        if text:
            names.append(text)
    return names


def _jsonld_terms(value: Any) -> list[str]:
    """A list of terms, or one string of comma-separated terms ("keywords": "a, b")."""
    items = value if isinstance(value, list) else [value]
    terms: list[str] = []
    for item in items:
        if isinstance(item, str):
            terms.extend(item.split(",") if isinstance(value, str) else [item])
    return terms


def _jsonld_image(value: Any, by_id: dict[str, dict[str, Any]]) -> str:
    value = _resolve(_first(value), by_id)
    if isinstance(value, dict):
        value = value.get("url") or value.get("contentUrl")
    return _jsonld_text(value)


def _jsonld_count(value: Any) -> int:
    """A count stated as a number or a numeric string ("1,204" too); 0 when absent or odd."""
    value = _first(value)
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return max(0, min(int(value), _MAX_WORD_COUNT))
    if isinstance(value, str) and value.strip().replace(",", "").isdigit():
        return min(int(value.strip().replace(",", "")), _MAX_WORD_COUNT)
    return 0


def _clean_body(body: str) -> str | None:
    if "&" in body:
        body = html.unescape(body)
    body = xml_safe(body).strip()
    return body or None


# --- Picking each field ------------------------------------------------------------------------


def _meta_values(signals: _Signals, keys: Iterable[str]) -> list[str]:
    return [value for key in keys for value in signals.meta.get(key, ())]


def _first_text(*sources: Iterable[str]) -> str:
    for source in sources:
        for value in source:
            text = _clean_text(value)
            if text:
                return text
    return ""


def _pick_title(
    tree: LexborHTMLParser, signals: _Signals, article: _JsonLdArticle, site_name: str
) -> str:
    title = _first_text(
        [article.headline], _meta_values(signals, _TITLE_KEYS), _markup_values(tree, _H1_SELECTOR)
    )
    if title:
        return _strip_site_name(title, site_name)
    title = _strip_site_name(signals.title, site_name)
    return _strip_title_suffix(title) if title == signals.title else title


def _strip_site_name(title: str, site_name: str) -> str:
    """Drop " | Site" (or "Site | ") when Site is the page's declared site name."""
    if not site_name:
        return title
    lowered, site = title.lower(), site_name.lower()
    for separator in _TITLE_SEPARATORS:
        if lowered.endswith(separator + site):
            return title[: -len(separator + site)].strip() or title
        if lowered.startswith(site + separator):
            return title[len(site + separator) :].strip() or title
    return title


def _strip_title_suffix(title: str) -> str:
    """Drop a trailing " - Site" that is clearly a suffix: short, after a much longer headline."""
    for separator in _TITLE_SEPARATORS:
        head, found, tail = title.rpartition(separator)
        if found and len(tail.split()) <= _MAX_SUFFIX_WORDS and len(head) >= 2 * len(tail):
            return head.strip()
    return title


def _pick_authors(
    tree: LexborHTMLParser, signals: _Signals, article: _JsonLdArticle, props: _ItemProps
) -> tuple[str, ...]:
    """The first source that names anyone wins; its names are cleaned and deduplicated."""
    sources: list[tuple[Iterable[str], int]] = [
        (article.authors, 0),
        (_meta_values(signals, _AUTHOR_KEYS), 0),
        (props.authors(), 0),
        (_markup_values(tree, _REL_AUTHOR_SELECTOR), 0),
        (_byline_values(tree), _MAX_BYLINE_WORDS),
    ]
    for values, max_words in sources:
        names = _dedupe(filter(None, (_author_name(value, max_words) for value in values)))
        if names:
            return names
    return ()


def _author_name(value: str, max_words: int) -> str:
    """A cleaned name ("By Jane Doe" -> "Jane Doe"), or "" when `value` is not a person's name.

    `max_words` (0: no limit) keeps visible bylines like "By Jane Doe | 3 May 2024, 10:00" out.
    """
    name = _BYLINE_PREFIX.sub("", _clean_text(value))
    too_long = len(name) > _MAX_AUTHOR_CHARS or bool(max_words and len(name.split()) > max_words)
    return "" if too_long or _looks_like_url(name) else name


def _looks_like_url(text: str) -> bool:
    return "/" in text or text.lower().startswith("www.") or "@" in text


def _dedupe(names: Iterable[str], most: int = 0) -> tuple[str, ...]:
    """The names without repeats (in any case), first seen first; at most `most` (0: all), read
    no further than that."""
    seen: set[str] = set()
    kept: list[str] = []
    for name in names:
        if name.casefold() not in seen:
            seen.add(name.casefold())
            kept.append(name)
            if len(kept) == most:
                break
    return tuple(kept)


def _pick_categories(signals: _Signals, article: _JsonLdArticle) -> tuple[str, ...]:
    """JSON-LD section and keywords, then `article:section` and `article:tag`; deduplicated."""
    values = (*article.categories, *_meta_values(signals, _CATEGORY_KEYS))
    names = (_clean_text(value) for value in values)
    usable = (name for name in names if name and len(name) <= _MAX_CATEGORY_CHARS)
    return _dedupe(usable, _MAX_CATEGORIES)  # stops there: keyword lists run to hundreds


def _first_date(*sources: Iterable[str]) -> datetime | None:
    for source in sources:
        for value in source:
            parsed = parse_date(value) if value else None
            if parsed is not None:
                return parsed
    return None


def _first_url(base: str, *sources: Iterable[str]) -> str | None:
    for source in sources:
        for value in source:
            absolute = absolute_url(base, _clean_text(value))
            if absolute:
                return absolute
    return None


def _pick_language(signals: _Signals, article: _JsonLdArticle) -> str | None:
    candidates = [signals.language, article.language, *_meta_values(signals, _LANGUAGE_KEYS)]
    for value in candidates:
        language = _normalise_language(value)
        if language:
            return language
    return None


def _normalise_language(value: str) -> str | None:
    """A BCP 47 tag in its usual case: en_us -> en-US, zh-hant-tw -> zh-Hant-TW; junk -> None."""
    tag = re.split(r"[,;]", value, maxsplit=1)[0].strip().replace("_", "-")
    if not _LANGUAGE.match(tag):
        return None
    primary, *rest = tag.split("-")
    parts = [primary.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            parts.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())
        else:
            parts.append(part.lower())
    return "-".join(parts)


def _pick_canonical(signals: _Signals, base: str, url: str) -> str | None:
    for value in (signals.canonical, *_meta_values(signals, ("og:url",))):
        absolute = absolute_url(base, _clean_text(value))
        if absolute and not _is_bogus_canonical(absolute, url):
            return absolute
    return None


def _is_bogus_canonical(canonical: str, url: str) -> bool:
    """A canonical pointing at the site's home page from an article page is a template bug.

    Trusting it would give every article of the site the same identity (the item GUID).
    """
    return urlsplit(canonical).path in ("", "/") and urlsplit(url).path not in ("", "/")


# --- Small shared helpers ----------------------------------------------------------------------


def _clean_text(value: str) -> str:
    """Entities decoded (once more: sites double-encode), whitespace collapsed, XML-safe."""
    if "&" in value:
        value = html.unescape(value)
    return _WHITESPACE.sub(" ", xml_safe(value)).strip()


# --- Date parsers, tried in order by parse_date ------------------------------------------------


def _parse_iso(text: str) -> datetime | None:
    text = _DATE_ZONE_SUFFIX.sub("+00:00", text) if text[:1].isdigit() else text
    text = _DATE_SPACED_OFFSET.sub(r"\1", text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _parse_rfc822(text: str) -> datetime | None:
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _parse_epoch(text: str) -> datetime | None:
    if not _EPOCH.match(text):
        return None
    seconds = int(text) / 1000 if len(text) == 13 else int(text)
    return datetime.fromtimestamp(seconds, UTC)


def _parse_written(text: str) -> datetime | None:
    text = _DATE_ZONE_SUFFIX.sub("", text)
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def _to_utc(value: datetime) -> datetime | None:
    try:
        if value.tzinfo is None or value.utcoffset() is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
