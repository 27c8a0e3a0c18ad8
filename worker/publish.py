"""Render a source's items as RSS 2.0 and Atom (pure) and write the files atomically (files).

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
- Every string passes through `xml_safe`; naive datetimes are taken as UTC.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from lxml import etree

from worker.errors import PublishError
from worker.models import Item
from worker.xmlchars import xml_safe

GENERATOR = "feedworker"
FEED_SUFFIXES = (".rss", ".atom")
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
    self_base_url: str | None = None  # public base URL where feeds are served, for self links


# -- rendering (pure) ------------------------------------------------------------------------


def render_rss(meta: FeedMeta, items: Sequence[Item], now: datetime) -> bytes:
    """The RSS 2.0 document for `items` (newest first); `now` dates an empty feed only."""
    return _render(meta, items, now, ".rss")


def render_atom(meta: FeedMeta, items: Sequence[Item], now: datetime) -> bytes:
    """The Atom document for `items` (newest first); `now` dates an empty feed only."""
    return _render(meta, items, now, ".atom")


def _render(meta: FeedMeta, items: Sequence[Item], now: datetime, suffix: str) -> bytes:
    is_rss = suffix == ".rss"
    ordered = newest_first(items)
    try:
        fg = _feed(meta, ordered, now, suffix)
        if is_rss:
            fg.load_extension("dc", atom=False, rss=True)
        for item in ordered:
            _add_entry(fg.add_entry(order="append"), item, is_rss)
        if is_rss:
            return fg.rss_str(pretty=True)
        return fg.atom_str(pretty=True)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise PublishError(f"feed {meta.source_id}{suffix} cannot be rendered: {exc}") from exc


def newest_first(items: Sequence[Item]) -> list[Item]:
    """Feed order, the same as `Store.feed_items`: published, then first seen, newest first;
    then GUID, so that ties never depend on the order items arrived in."""
    by_guid = sorted(items, key=lambda item: item.guid)
    return sorted(
        by_guid, key=lambda item: (_utc(item.published), _utc(item.first_seen)), reverse=True
    )


def _feed(meta: FeedMeta, items: Sequence[Item], now: datetime, suffix: str) -> FeedGenerator:
    fg = FeedGenerator()
    link, title, description = xml_safe(meta.link), xml_safe(meta.title), xml_safe(meta.description)
    fg.id(link)
    fg.title(title or link)
    if suffix == ".rss":
        fg.description(description or title or link)  # required in RSS
    else:
        # RFC 4287 wants a feed-level author unless every entry has one; the site stands in.
        fg.author({"name": title or link})
        if description:
            fg.subtitle(description)  # optional in Atom
    self_url = _self_url(meta, suffix)
    if self_url:
        media_type = "application/rss+xml" if suffix == ".rss" else "application/atom+xml"
        fg.link(href=self_url, rel="self", type=media_type)
    # After the self link: feedgen takes the last link as the RSS channel's <link>.
    fg.link(href=link, rel="alternate")
    if meta.language:
        fg.language(xml_safe(meta.language))
    fg.generator(GENERATOR)
    fg.updated(max((_utc(item.updated) for item in items), default=_utc(now)))
    return fg


def _add_entry(fe: FeedEntry, item: Item, is_rss: bool) -> None:
    url = xml_safe(item.guid)
    fe.guid(url, permalink=True)  # also the Atom id
    fe.title(xml_safe(item.title) or url)
    fe.link(href=xml_safe(item.url) or url, rel="alternate")
    fe.published(_utc(item.published))
    fe.updated(_utc(item.updated))
    body = xml_safe(item.content_html)
    summary = xml_safe(item.summary)
    authors = [name for name in map(xml_safe, item.authors) if name.strip()]
    if is_rss:
        # A description set before the content makes feedgen emit <content:encoded> as well.
        fe.description(summary or _excerpt(body) or fe.title())
        # lxml refuses "]]>" inside CDATA; such a body is escaped instead, to the same effect.
        fe.content(body, type=None if "]]>" in body else "CDATA")
        if authors:
            fe.dc.dc_creator(authors)
    else:
        fe.content(body, type="html")
        if summary:
            fe.summary(summary)  # plain text
        if authors:
            fe.author([{"name": name} for name in authors])
    _add_image(fe, item.image, is_rss)


def _add_image(fe: FeedEntry, image: str | None, is_rss: bool) -> None:
    url = xml_safe(image or "")
    if not url.startswith(("http://", "https://")):
        return
    media_type = _IMAGE_TYPES.get(PurePosixPath(urlsplit(url).path).suffix.lower())
    if media_type is None:
        return
    if is_rss:
        fe.enclosure(url, 0, media_type)
    else:
        fe.register_extension("lead_image", _AtomEnclosure, atom=True, rss=False)
        fe.lead_image.image = (url, media_type)


class _AtomEnclosure(BaseEntryExtension):
    """An Atom entry's `<link rel="enclosure">`. feedgen 1.0 cannot write it: its entry links
    lose `rel` and `type` (a loop variable is reused), and a bare `<link>` means "alternate"."""

    def __init__(self) -> None:
        self.image: tuple[str, str] | None = None

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        if self.image is not None:
            url, media_type = self.image
            xml_elem("link", entry, href=url, rel="enclosure", type=media_type)
        return entry


def _self_url(meta: FeedMeta, suffix: str) -> str | None:
    if not meta.self_base_url:
        return None
    return f"{xml_safe(meta.self_base_url).rstrip('/')}/{quote(meta.source_id + suffix)}"


def _excerpt(html: str) -> str:
    text = " ".join(unescape(_TAG.sub(" ", html)).split())
    if len(text) <= EXCERPT_CHARS:
        return xml_safe(text)
    return xml_safe(text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …")


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


def publish_feeds(feeds_dir: Path, meta: FeedMeta, items: Sequence[Item], now: datetime) -> int:
    """Write `<source_id>.rss` and `<source_id>.atom`; the number of files actually rewritten."""
    if not _is_plain_name(meta.source_id):
        raise PublishError(f"source id {meta.source_id!r} cannot be used as a file name")
    try:
        feeds_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(f"cannot create feeds folder {feeds_dir}: {exc}") from exc
    renderers: dict[str, Callable[[FeedMeta, Sequence[Item], datetime], bytes]] = {
        ".rss": render_rss,
        ".atom": render_atom,
    }
    written = 0
    for suffix, render in renderers.items():
        written += write_if_changed(
            feeds_dir / f"{meta.source_id}{suffix}", render(meta, items, now)
        )
    return written


def remove_stale_temp_files(feeds_dir: Path) -> int:
    """Delete temporary files a crash left behind; call at start, before any publishing."""
    if not feeds_dir.is_dir():
        return 0
    removed = 0
    for temp in feeds_dir.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        if temp.is_file() and _remove_quietly(temp):
            removed += 1
    return removed


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
