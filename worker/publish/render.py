"""Render a source's items as RSS 2.0, Atom and JSON Feed 1.1, and the combined Atom feed over
every source. Pure: items and `now` in, bytes out; `worker.publish.files` writes them.

Rendering is deterministic: the same items give the same bytes, so an unchanged feed is never
rewritten and HTTP caches can answer 304. feedgen would otherwise stamp the current time into the
feed's and every Atom entry's date and prepend entries; every date and the order are set here.

Choices worth knowing:
- GUID / Atom id is the item's canonical URL (`Item.guid`), RSS `isPermaLink="true"`.
- RSS: `<description>` is the summary, or a plain-text excerpt of the body when there is none;
  `<content:encoded>` always holds the full body (CDATA). Authors go to `<dc:creator>`, because
  RSS `<author>` must be an e-mail address and we only know names.
- Atom: full body in `<content type="html">`, `<summary>` only when the item has one.
- Lead image: an RSS `<enclosure>` with length 0 ("unknown", as the RSS Best Practices Profile
  advises) / an Atom `<link rel="enclosure">`, typed from the URL's extension. When the extension
  names no image type the enclosure is left out rather than guessed; no `media:` namespace.
- Self links are `<self_base_url>/feeds/<id>.<ext>`, where `worker.web.serve` serves them.
- WebSub: with `FeedMeta.hub`, every format names the hub: Atom `<link rel="hub">`, RSS
  `<atom:link rel="hub">` in the channel, JSON Feed `"hubs": [{"type": "WebSub", ...}]`.
- RSS: `<ttl>` from `FeedMeta.ttl_minutes`; an item's update date is `<dcterms:modified>`
  (RSS 2.0 has no element of its own for it); categories are `<category>` / Atom
  `<category term>` / JSON `tags`.
- JSON Feed: keys in a fixed order, UTF-8 (not ASCII-escaped), RFC 3339 dates; empty optional
  fields are left out rather than sent as "" or [].
- Combined feed (`all.atom`): entries keep their source's GUID as the Atom id. Two sources that
  list the same article URL give one entry (the newest copy, then the first source id), because
  a reader would show the same article twice otherwise and Atom ids must be unique.
- Links are published without userinfo and with the operator's secret values (`FeedMeta.secrets`:
  a source URL's token that a site repeats in its article links) masked (`worker.redact`).
- Every string passes through `xml_safe` (JSON too: lone surrogates cannot be UTF-8); naive
  datetimes are taken as UTC.
- Feed file names: `<source id>` plus one of `FEED_SUFFIXES`, and `all.atom` (`feed_file_names`).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from html import unescape
from urllib.parse import quote, urlsplit

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from lxml import etree

from worker.errors import PublishError
from worker.models import Item
from worker.publish.xmlchars import xml_safe
from worker.redact import mask_values, strip_userinfo

GENERATOR = "feedworker"
FEED_SUFFIXES = (".rss", ".atom", ".json")  # a source's feed files: <id>.rss, <id>.atom, <id>.json
# The media type each feed file is served with (by its suffix), by the server and in WebSub
# deliveries.
FEED_MEDIA_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json",
}
COMBINED_ID = "all"  # the combined feed is feeds/all.atom; no source may use this id
FEED_PATH = "feeds"  # where `worker.web.serve` serves the files, below the public base URL
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
DC_NS = "http://purl.org/dc/elements/1.1/"
DCTERMS_NS = "http://purl.org/dc/terms/"
ATOM_NS = "http://www.w3.org/2005/Atom"
_MEDIA_TYPES = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".json": "application/feed+json",
}
EXCERPT_CHARS = 300  # RSS description when an item has no summary

_IMAGE_TYPES = {
    ".avif": "image/avif",
    ".gif": "image/gif",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
_TAG = re.compile(r"<[^<>]*>")  # `[^<>]`: linear on a `<` never closed


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What a feed says about itself."""

    source_id: str
    title: str
    link: str  # the site's index URL
    description: str = ""
    language: str | None = None
    self_base_url: str | None = None  # public base URL of `worker.web.serve`, for self links
    ttl_minutes: int | None = None  # RSS <ttl>: how long a reader may cache, from the schedule
    # Secret values never to publish (the source's tokens and passwords), masked in links.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    hub: str | None = None  # the WebSub hub readers may subscribe at (`websub_hub`)


# -- rendering (pure) ------------------------------------------------------------------------


def render_rss(meta: FeedMeta, items: Sequence[Item], now: datetime) -> bytes:
    """The RSS 2.0 document for `items` (newest first); `now` dates an empty feed only."""
    return _render_xml(meta, _entries(meta, newest_first(items), ".rss"), now, ".rss")


def render_atom(meta: FeedMeta, items: Sequence[Item], now: datetime) -> bytes:
    """The Atom document for `items` (newest first); `now` dates an empty feed only."""
    return _render_xml(meta, _entries(meta, newest_first(items), ".atom"), now, ".atom")


def render_combined(meta: FeedMeta, items: Sequence[Item], now: datetime, limit: int) -> bytes:
    """The Atom document over every source's `items`: the newest `limit`, one entry per GUID."""
    if limit < 1:
        raise PublishError(f"combined feed size must be at least 1, got {limit}")
    combined = replace(meta, source_id=COMBINED_ID)
    newest = _unique_guids(newest_first(items))[:limit]
    return _render_xml(combined, _entries(combined, newest, ".atom"), now, ".atom")


def render_json(meta: FeedMeta, items: Sequence[Item], now: datetime) -> bytes:
    """The JSON Feed 1.1 document for `items` (newest first). `now` is unused (JSON Feed has no
    feed date) and taken only so every renderer has the same signature."""
    del now
    return _render_json(meta, [_entry(item, meta.secrets) for item in newest_first(items)])


def render_feeds(meta: FeedMeta, items: Sequence[Item], now: datetime) -> dict[str, bytes]:
    """A source's three documents by suffix: what `render_rss`, `render_atom` and `render_json`
    give, with each item prepared (made XML-safe, its dates and image worked out) once for all
    three rather than once per format."""
    # An item that cannot be prepared fails the RSS document, the one rendered first.
    entries = _entries(meta, newest_first(items), ".rss")
    return {
        ".rss": _render_xml(meta, entries, now, ".rss"),
        ".atom": _render_xml(meta, entries, now, ".atom"),
        ".json": _render_json(meta, entries),
    }


def newest_first(items: Sequence[Item]) -> list[Item]:
    """Feed order, the same as `Store.feed_items`: published, then first seen, newest first;
    then GUID and source, so that ties never depend on the order items arrived in."""
    by_guid = sorted(items, key=lambda item: (item.guid, item.source_id))
    return sorted(
        by_guid, key=lambda item: (_utc(item.published), _utc(item.first_seen)), reverse=True
    )


def _unique_guids(ordered: Sequence[Item]) -> list[Item]:
    seen: set[str] = set()
    unique = []
    for item in ordered:
        if item.guid not in seen:
            seen.add(item.guid)
            unique.append(item)
    return unique


@dataclass(frozen=True, slots=True)
class _Entry:
    """An item as every format shows it: strings XML-safe (titles and names on one line), dates
    in UTC, the lead image checked and typed. Bodies are long, and cleaning them is most of the
    work of preparing an entry, so a source's three documents share one `_Entry` per item."""

    id: str  # the GUID
    url: str
    title: str
    body: str
    summary: str  # plain text; "" when the item has none
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    image: str  # the lead image's URL; "" unless it is a web URL
    enclosure: tuple[str, str] | None  # (URL, media type) when the image's type is known
    published: datetime
    updated: datetime


def _entries(meta: FeedMeta, ordered: Sequence[Item], suffix: str) -> list[_Entry]:
    """`_entry` for each item, a failure reported as the document `suffix` failing."""
    try:
        return [_entry(item, meta.secrets) for item in ordered]
    except (ValueError, TypeError, UnicodeError) as exc:
        raise _unrenderable(meta, suffix, exc) from exc


def _entry(item: Item, secrets: Sequence[str] = ()) -> _Entry:
    url = _public_link(item.guid, secrets)
    image = _public_link(item.image or "", secrets)
    if not _is_web_url(image):
        image = ""
    return _Entry(
        id=url,
        url=_public_link(item.url, secrets) or url,
        title=_line(item.title) or url,
        body=xml_safe(item.content_html),
        summary=xml_safe(item.summary).strip(),
        authors=_clean_list(item.authors),
        categories=_clean_list(item.categories),
        image=image,
        enclosure=_enclosure(image),
        published=_utc(item.published),
        updated=_utc(item.updated),
    )


def _unrenderable(meta: FeedMeta, suffix: str, exc: Exception) -> PublishError:
    return PublishError(f"feed {meta.source_id}{suffix} cannot be rendered: {exc}")


def _render_xml(meta: FeedMeta, entries: Sequence[_Entry], now: datetime, suffix: str) -> bytes:
    is_rss = suffix == ".rss"
    try:
        fg = _feed(meta, entries, now, suffix)
        if is_rss:
            fg.register_extension("extras", _RssNamespaces, _EntryExtras, atom=False, rss=True)
            fg.extras.hub = xml_safe(meta.hub or "")  # feedgen writes rel="hub" in Atom only
        else:
            fg.register_extension("extras", _AtomNamespaces, _EntryExtras, atom=True, rss=False)
        for entry in entries:
            _add_entry(fg.add_entry(order="append"), entry, is_rss)
        document: bytes = fg.rss_str(pretty=True) if is_rss else fg.atom_str(pretty=True)
        return document
    except (ValueError, TypeError, UnicodeError) as exc:
        raise _unrenderable(meta, suffix, exc) from exc


def _feed(meta: FeedMeta, entries: Sequence[_Entry], now: datetime, suffix: str) -> FeedGenerator:
    fg = FeedGenerator()
    link, title, description = xml_safe(meta.link), _line(meta.title), _line(meta.description)
    fg.id(link)
    fg.title(title or link)
    if suffix == ".rss":
        fg.description(description or title or link)  # required in RSS
        if meta.ttl_minutes is not None and meta.ttl_minutes > 0:
            fg.ttl(meta.ttl_minutes)
    else:
        # RFC 4287 wants a feed-level author unless every entry has one; the site stands in.
        fg.author({"name": title or link})
        if description:
            fg.subtitle(description)  # optional in Atom
    self_url = _self_url(meta, suffix)
    if self_url:
        fg.link(href=self_url, rel="self", type=_MEDIA_TYPES[suffix])
    if meta.hub and suffix == ".atom":
        fg.link(href=xml_safe(meta.hub), rel="hub")
    # After the self link: feedgen takes the last link as the RSS channel's <link>.
    fg.link(href=link, rel="alternate")
    if meta.language:
        fg.language(xml_safe(meta.language))
    fg.generator(GENERATOR)
    fg.updated(max((entry.updated for entry in entries), default=_utc(now)))
    return fg


def _add_entry(fe: FeedEntry, entry: _Entry, is_rss: bool) -> None:
    fe.guid(entry.id, permalink=_is_web_url(entry.id))  # also the Atom id
    fe.title(entry.title)
    fe.link(href=entry.url, rel="alternate")
    fe.published(entry.published)
    fe.updated(entry.updated)
    if entry.categories:
        fe.category([{"term": term} for term in entry.categories])
    if is_rss:
        # A description set before the content makes feedgen emit <content:encoded> as well.
        fe.description(entry.summary or _excerpt(entry.body) or entry.title)
        # lxml refuses "]]>" inside CDATA; such a body is escaped instead, to the same effect.
        fe.content(entry.body, type=None if "]]>" in entry.body else "CDATA")
        fe.extras.creators = entry.authors
        fe.extras.modified = entry.updated
        if entry.enclosure is not None:
            fe.enclosure(entry.enclosure[0], 0, entry.enclosure[1])
    else:
        fe.content(entry.body, type="html")
        if entry.summary:
            fe.summary(entry.summary)  # plain text
        if entry.authors:
            fe.author([{"name": name} for name in entry.authors])
        fe.extras.image = entry.enclosure


def _render_json(meta: FeedMeta, entries: Sequence[_Entry]) -> bytes:
    feed: dict[str, object] = {"version": JSON_FEED_VERSION}
    link, title = xml_safe(meta.link), _line(meta.title)
    feed["title"] = title or link
    feed["home_page_url"] = link
    _put(feed, "feed_url", _self_url(meta, ".json"))
    _put(feed, "description", xml_safe(meta.description).strip())
    _put(feed, "language", xml_safe(meta.language or ""))
    if meta.hub:  # JSON Feed 1.1: "hubs", each with a type and a URL
        feed["hubs"] = [{"type": "WebSub", "url": xml_safe(meta.hub)}]
    feed["items"] = [_json_item(entry) for entry in entries]
    text = json.dumps(feed, ensure_ascii=False, indent=2)
    return (text + "\n").encode("utf-8")


def _json_item(entry: _Entry) -> dict[str, object]:
    item: dict[str, object] = {
        "id": entry.id,
        "url": entry.url,
        "title": entry.title,
        "content_html": entry.body,
    }
    _put(item, "summary", entry.summary)
    _put(item, "image", entry.image)
    item["date_published"] = _rfc3339(entry.published)
    item["date_modified"] = _rfc3339(entry.updated)
    _put(item, "authors", [{"name": name} for name in entry.authors])
    _put(item, "tags", entry.categories)
    return item


def _put(target: dict[str, object], key: str, value: object) -> None:
    """Set an optional JSON Feed field, leaving it out when empty."""
    if value:
        target[key] = value


def _clean_list(values: Sequence[str]) -> tuple[str, ...]:
    """Non-blank single lines, without repeats, in the given order."""
    return tuple(dict.fromkeys(line for line in map(_line, values) if line))


def _line(text: str) -> str:
    """`text` as one XML-safe line: a title or name spread over lines, or blank, reads badly
    in every reader, and a blank title or author breaks Atom."""
    return " ".join(xml_safe(text).split())


def _enclosure(url: str) -> tuple[str, str] | None:
    """(URL, media type) for an enclosure of a web URL; None when it names no known image type."""
    if not url:
        return None
    media_type = _IMAGE_TYPES.get(posixpath.splitext(urlsplit(url).path)[1].lower())
    return None if media_type is None else (url, media_type)


class _RssNamespaces(BaseExtension):  # type: ignore[misc]  # feedgen has no type hints
    """The namespaces of our RSS extras, and the channel's `<atom:link rel="hub">` (WebSub's
    discovery for RSS; feedgen writes a hub link in Atom only)."""

    def __init__(self) -> None:
        self.hub = ""

    def extend_ns(self) -> dict[str, str]:
        spaces = {"dc": DC_NS, "dcterms": DCTERMS_NS}
        return (
            {**spaces, "atom": ATOM_NS} if self.hub else spaces
        )  # feeds without stay as they were

    def extend_rss(self, rss_feed: etree._Element) -> etree._Element:
        channel = rss_feed.find("channel")
        if not self.hub or channel is None:
            return rss_feed
        hub = etree.Element(f"{{{ATOM_NS}}}link", href=self.hub, rel="hub")
        # Beside the self link, before the items (where readers look for channel elements).
        links = channel.findall(f"{{{ATOM_NS}}}link")
        at = channel.index(links[-1]) + 1 if links else 0
        channel.insert(at, hub)
        return rss_feed


class _AtomNamespaces(BaseExtension):  # type: ignore[misc]
    def extend_ns(self) -> dict[str, str]:
        return {}


class _EntryExtras(BaseEntryExtension):  # type: ignore[misc]
    """What feedgen 1.0 cannot write: an RSS item's update date, and an Atom entry's
    `<link rel="enclosure">` (its entry links lose `rel` and `type`, a loop variable being
    reused, and a bare `<link>` means "alternate").

    Also an RSS item's `<dc:creator>`s, which feedgen's `dc` extension could write, at the
    same place, but at the cost of one more extension object per item and a walk over its
    fifteen Dublin Core fields: a sixth of the time an RSS document took."""

    def __init__(self) -> None:
        self.image: tuple[str, str] | None = None
        self.creators: Sequence[str] = ()
        self.modified: datetime | None = None

    def extend_rss(self, item: etree._Element) -> etree._Element:
        for name in self.creators:
            xml_elem(f"{{{DC_NS}}}creator", item).text = name
        if self.modified is not None:
            modified = xml_elem(f"{{{DCTERMS_NS}}}modified", item)
            modified.text = _rfc3339(self.modified)
        return item

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        if self.image is not None:
            url, media_type = self.image
            xml_elem("link", entry, href=url, rel="enclosure", type=media_type)
        return entry


def _self_url(meta: FeedMeta, suffix: str) -> str | None:
    if not meta.self_base_url:
        return None
    base = xml_safe(meta.self_base_url).rstrip("/")
    return f"{base}/{FEED_PATH}/{quote(meta.source_id + suffix)}"


def _public_link(url: str, secrets: Sequence[str]) -> str:
    """A link as published: XML-safe, no userinfo, no known secret value. The rest is the site's
    own address and stays as it is (masking "?key=" by name would break public links and GUIDs)."""
    return xml_safe(mask_values(strip_userinfo(url), secrets) if url else url)


def _is_web_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _excerpt(html: str) -> str:
    text = " ".join(unescape(_TAG.sub(" ", html)).split())
    if len(text) <= EXCERPT_CHARS:
        return xml_safe(text)
    return xml_safe(text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …")


def _rfc3339(moment: datetime) -> str:
    """UTC with a `Z`, e.g. 2024-05-01T08:30:00Z (fractions of a second only when present)."""
    return _utc(moment).isoformat().replace("+00:00", "Z")


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC (feedgen refuses naive ones)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def feed_version(moment: datetime) -> int:
    """A publish's version: microseconds since the epoch of the state it rendered."""
    return int(_utc(moment).timestamp() * 1_000_000)


def feed_file_names(source_ids: Iterable[str]) -> list[str]:
    """Every feed file name of these sources, in each format, plus the combined feed's."""
    names = [f"{source_id}{suffix}" for source_id in source_ids for suffix in FEED_SUFFIXES]
    return [*names, f"{COMBINED_ID}.atom"]
