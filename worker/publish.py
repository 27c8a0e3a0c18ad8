"""Render a source's items as RSS 2.0, Atom and JSON Feed 1.1 (pure), and the combined Atom feed
over every source; write the files atomically, only when their bytes changed (files).

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
- Self links are `<self_base_url>/feeds/<id>.<ext>`, where `worker.serve` serves them.
- RSS: `<ttl>` from `FeedMeta.ttl_minutes`; an item's update date is `<dcterms:modified>`
  (RSS 2.0 has no element of its own for it); categories are `<category>` / Atom
  `<category term>` / JSON `tags`.
- JSON Feed: keys in a fixed order, UTF-8 (not ASCII-escaped), RFC 3339 dates; empty optional
  fields are left out rather than sent as "" or [].
- Combined feed (`all.atom`): entries keep their source's GUID as the Atom id. Two sources that
  list the same article URL give one entry (the newest copy, then the first source id), because
  a reader would show the same article twice otherwise and Atom ids must be unique.
- Every string passes through `xml_safe` (JSON too: lone surrogates cannot be UTF-8); naive
  datetimes are taken as UTC.
- Where feeds go is a `FeedSink`: files in `feeds/` (`FeedFolder`, the default), or, in cluster
  mode, the state database (`worker.cluster.FeedTable`), where each write carries a version
  (microseconds of the run's start, or of the read of the combined feed's items) and a stale
  writer never replaces a newer feed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html import unescape
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import quote, urlsplit

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from lxml import etree

from worker.errors import PublishError
from worker.models import Item
from worker.xmlchars import xml_safe

GENERATOR = "feedworker"
FEED_SUFFIXES = (".rss", ".atom", ".json")
COMBINED_ID = "all"  # the combined feed is feeds/all.atom; no source may use this id
COMBINED_LIMIT = 100  # entries in the combined feed unless the caller says otherwise
FEED_PATH = "feeds"  # where `worker.serve` serves the files, below the public base URL
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
DCTERMS_NS = "http://purl.org/dc/terms/"
_MEDIA_TYPES = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".json": "application/feed+json",
}
# Temporary files are hidden and marked, so a crash leaves nothing a server would list and
# `remove_stale_temp_files` knows exactly what is ours.
TEMP_PREFIX = "."
TEMP_SUFFIX = ".feedworker-tmp"
FEED_FILE_MODE = 0o644  # readable by a separate web server; mkstemp would give 0600
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
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What a feed says about itself."""

    source_id: str
    title: str
    link: str  # the site's index URL
    description: str = ""
    language: str | None = None
    self_base_url: str | None = None  # public base URL of `worker.serve`, for self links
    ttl_minutes: int | None = None  # RSS <ttl>: how long a reader may cache, from the schedule


# -- rendering (pure) ------------------------------------------------------------------------


def render_rss(meta: FeedMeta, items: Sequence[Item], now: datetime) -> bytes:
    """The RSS 2.0 document for `items` (newest first); `now` dates an empty feed only."""
    return _render_xml(meta, newest_first(items), now, ".rss")


def render_atom(meta: FeedMeta, items: Sequence[Item], now: datetime) -> bytes:
    """The Atom document for `items` (newest first); `now` dates an empty feed only."""
    return _render_xml(meta, newest_first(items), now, ".atom")


def render_combined(
    meta: FeedMeta, items: Sequence[Item], now: datetime, limit: int = COMBINED_LIMIT
) -> bytes:
    """The Atom document over every source's `items`: the newest `limit`, one entry per GUID."""
    if limit < 1:
        raise PublishError(f"combined feed size must be at least 1, got {limit}")
    entries = _unique_guids(newest_first(items))[:limit]
    return _render_xml(replace(meta, source_id=COMBINED_ID), entries, now, ".atom")


def render_json(meta: FeedMeta, items: Sequence[Item], now: datetime) -> bytes:
    """The JSON Feed 1.1 document for `items` (newest first). `now` is unused (JSON Feed has no
    feed date) and taken only so every renderer has the same signature."""
    del now
    feed: dict[str, object] = {"version": JSON_FEED_VERSION}
    link, title = xml_safe(meta.link), _line(meta.title)
    feed["title"] = title or link
    feed["home_page_url"] = link
    _put(feed, "feed_url", _self_url(meta, ".json"))
    _put(feed, "description", xml_safe(meta.description).strip())
    _put(feed, "language", xml_safe(meta.language or ""))
    feed["items"] = [_json_item(item) for item in newest_first(items)]
    text = json.dumps(feed, ensure_ascii=False, indent=2)
    return (text + "\n").encode("utf-8")


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


def _render_xml(meta: FeedMeta, ordered: Sequence[Item], now: datetime, suffix: str) -> bytes:
    is_rss = suffix == ".rss"
    try:
        fg = _feed(meta, ordered, now, suffix)
        if is_rss:
            fg.load_extension("dc", atom=False, rss=True)
            fg.register_extension("extras", _RssNamespaces, _EntryExtras, atom=False, rss=True)
        else:
            fg.register_extension("extras", _AtomNamespaces, _EntryExtras, atom=True, rss=False)
        for item in ordered:
            _add_entry(fg.add_entry(order="append"), item, is_rss)
        if is_rss:
            return fg.rss_str(pretty=True)
        return fg.atom_str(pretty=True)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise PublishError(f"feed {meta.source_id}{suffix} cannot be rendered: {exc}") from exc


def _feed(meta: FeedMeta, items: Sequence[Item], now: datetime, suffix: str) -> FeedGenerator:
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
    # After the self link: feedgen takes the last link as the RSS channel's <link>.
    fg.link(href=link, rel="alternate")
    if meta.language:
        fg.language(xml_safe(meta.language))
    fg.generator(GENERATOR)
    fg.updated(max((_utc(item.updated) for item in items), default=_utc(now)))
    return fg


def _add_entry(fe: FeedEntry, item: Item, is_rss: bool) -> None:
    url = xml_safe(item.guid)
    fe.guid(url, permalink=_is_web_url(url))  # also the Atom id
    fe.title(_line(item.title) or url)
    fe.link(href=xml_safe(item.url) or url, rel="alternate")
    fe.published(_utc(item.published))
    fe.updated(_utc(item.updated))
    body = xml_safe(item.content_html)
    summary = xml_safe(item.summary).strip()
    authors = _clean_list(item.authors)
    categories = _clean_list(item.categories)
    if categories:
        fe.category([{"term": term} for term in categories])
    if is_rss:
        # A description set before the content makes feedgen emit <content:encoded> as well.
        fe.description(summary or _excerpt(body) or fe.title())
        # lxml refuses "]]>" inside CDATA; such a body is escaped instead, to the same effect.
        fe.content(body, type=None if "]]>" in body else "CDATA")
        if authors:
            fe.dc.dc_creator(authors)
        fe.extras.modified = _utc(item.updated)
        image = _lead_image(item.image)
        if image is not None:
            fe.enclosure(image[0], 0, image[1])
    else:
        fe.content(body, type="html")
        if summary:
            fe.summary(summary)  # plain text
        if authors:
            fe.author([{"name": name} for name in authors])
        fe.extras.image = _lead_image(item.image)


def _json_item(item: Item) -> dict[str, object]:
    url = xml_safe(item.guid)
    entry: dict[str, object] = {
        "id": url,
        "url": xml_safe(item.url) or url,
        "title": _line(item.title) or url,
        "content_html": xml_safe(item.content_html),
    }
    _put(entry, "summary", xml_safe(item.summary).strip())
    image = xml_safe(item.image or "")
    _put(entry, "image", image if _is_web_url(image) else "")
    entry["date_published"] = _rfc3339(item.published)
    entry["date_modified"] = _rfc3339(item.updated)
    _put(entry, "authors", [{"name": name} for name in _clean_list(item.authors)])
    _put(entry, "tags", _clean_list(item.categories))
    return entry


def _put(target: dict[str, object], key: str, value: object) -> None:
    """Set an optional JSON Feed field, leaving it out when empty."""
    if value:
        target[key] = value


def _clean_list(values: Sequence[str]) -> list[str]:
    """Non-blank single lines, without repeats, in the given order."""
    return list(dict.fromkeys(line for line in map(_line, values) if line))


def _line(text: str) -> str:
    """`text` as one XML-safe line: a title or name spread over lines, or blank, reads badly
    in every reader, and a blank title or author breaks Atom."""
    return " ".join(xml_safe(text).split())


def _lead_image(image: str | None) -> tuple[str, str] | None:
    """(URL, media type) for an enclosure; None when the URL names no known image type."""
    url = xml_safe(image or "")
    if not _is_web_url(url):
        return None
    media_type = _IMAGE_TYPES.get(PurePosixPath(urlsplit(url).path).suffix.lower())
    return None if media_type is None else (url, media_type)


class _RssNamespaces(BaseExtension):
    def extend_ns(self) -> dict[str, str]:
        return {"dcterms": DCTERMS_NS}


class _AtomNamespaces(BaseExtension):
    def extend_ns(self) -> dict[str, str]:
        return {}


class _EntryExtras(BaseEntryExtension):
    """What feedgen 1.0 cannot write: an RSS item's update date, and an Atom entry's
    `<link rel="enclosure">` (its entry links lose `rel` and `type`, a loop variable being
    reused, and a bare `<link>` means "alternate")."""

    def __init__(self) -> None:
        self.image: tuple[str, str] | None = None
        self.modified: datetime | None = None

    def extend_rss(self, item: etree._Element) -> etree._Element:
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


# -- writing (files) -------------------------------------------------------------------------


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically make `path` hold `data`; False (file untouched) when it already does.

    A temporary file in the same folder is written, fsynced and renamed over `path`, then the
    folder is fsynced, so a crash leaves either the old or the new file, never a truncated one.
    On any error the temporary file is removed, the old file is intact and PublishError is raised.
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PublishError(f"cannot read {path}: {exc}") from exc
    temp: str | None = None
    try:
        fd, temp = tempfile.mkstemp(
            dir=path.parent, prefix=TEMP_PREFIX + path.name + ".", suffix=TEMP_SUFFIX
        )
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), FEED_FILE_MODE)
            os.fsync(handle.fileno())
        os.replace(temp, path)
        temp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc}") from exc
    finally:
        if temp is not None:
            _remove_quietly(Path(temp))
    return True


class FeedSink(Protocol):
    """Where rendered feeds go. `write` returns True when the stored bytes changed; a write
    whose `version` is older than the stored one changes nothing."""

    def write(self, name: str, data: bytes, version: int) -> bool: ...

    def exists(self, name: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class FeedFolder:
    """Feeds as files in one folder (a single node: one writer, so `version` is not needed)."""

    folder: Path

    def write(self, name: str, data: bytes, version: int) -> bool:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PublishError(f"cannot create feeds folder {self.folder}: {exc}") from exc
        return write_if_changed(self.folder / name, data)

    def exists(self, name: str) -> bool:
        return (self.folder / name).is_file()


def feed_version(moment: datetime) -> int:
    """A publish's version: microseconds since the epoch of the state it rendered."""
    return int(_utc(moment).timestamp() * 1_000_000)


def publish_feeds(
    feeds_dir: Path | FeedSink, meta: FeedMeta, items: Sequence[Item], now: datetime
) -> int:
    """Write `<source_id>.rss`, `.atom` and `.json`; the number of files actually rewritten.
    `now` is the run's start: the version of what is written."""
    if not _is_plain_name(meta.source_id) or meta.source_id == COMBINED_ID:
        raise PublishError(f"source id {meta.source_id!r} cannot be used as a file name")
    renderers: dict[str, Callable[[FeedMeta, Sequence[Item], datetime], bytes]] = {
        ".rss": render_rss,
        ".atom": render_atom,
        ".json": render_json,
    }
    documents = {suffix: render(meta, items, now) for suffix, render in renderers.items()}
    return _write_all(feeds_dir, meta.source_id, documents, now)


def publish_combined(
    feeds_dir: Path | FeedSink,
    meta: FeedMeta,
    items: Sequence[Item],
    now: datetime,
    limit: int = COMBINED_LIMIT,
    read_at: datetime | None = None,
) -> int:
    """Write `all.atom`, the newest `limit` of every source's `items`; 1 if rewritten, else 0.
    `meta.source_id` is ignored: the combined feed is always `all`. `read_at`, when the items
    were read (default `now`), is the version of what is written."""
    document = render_combined(meta, items, now, limit)
    return _write_all(feeds_dir, COMBINED_ID, {".atom": document}, read_at or now)


def _write_all(
    target: Path | FeedSink, name: str, documents: dict[str, bytes], now: datetime
) -> int:
    sink = FeedFolder(target) if isinstance(target, Path) else target
    version = feed_version(now)
    return sum(sink.write(f"{name}{suffix}", data, version) for suffix, data in documents.items())


def remove_stale_temp_files(feeds_dir: Path) -> int:
    """Delete temporary files a crash left behind; call at start, before any publishing."""
    if not feeds_dir.is_dir():
        return 0
    removed = 0
    for temp in feeds_dir.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        if temp.is_file() and _remove_quietly(temp):
            removed += 1
    return removed


def orphaned_feed_files(feeds_dir: Path, source_ids: Collection[str]) -> list[Path]:
    """Feed files of sources that are no longer configured (`all.atom` is never one)."""
    if not feeds_dir.is_dir():
        return []
    return sorted(
        path
        for path in feeds_dir.iterdir()
        if path.is_file()
        and path.suffix in (".rss", ".atom", ".json")
        and path.stem not in source_ids
        and path.stem != COMBINED_ID
    )


def _is_plain_name(source_id: str) -> bool:
    return (
        bool(source_id) and source_id not in (".", "..") and not re.search(r"[/\\\x00]", source_id)
    )


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> bool:
    try:
        path.unlink()
    except OSError:
        return False
    return True
