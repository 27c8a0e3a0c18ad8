"""Feeds as stored: rendered documents written atomically, only when their bytes changed, and
read back whole.

- `publish_feeds` / `publish_combined`: render (`worker.publish.render`) and write a source's
  three documents, or `all.atom`, to a `FeedSink`: files in `feeds/` (`FeedFolder`, the
  default), or, in cluster mode, the state database (`worker.service.cluster.FeedTable`), where
  each write carries a version (microseconds of the run's start, or of the read of the combined
  feed's items) and a stale writer never replaces a newer feed.
- `write_if_changed`: a temporary file in the same folder, fsynced, renamed over the feed, then
  the folder fsynced: a crash (`kill -9` during a plain write left a truncated file and no old
  feed) leaves the old file or the new one, never a torn one. Unchanged bytes are not rewritten,
  so the mtime, and readers' 304s, stay.
- `FeedVersion`: one complete version of a feed as read back for serving, with its digest (the
  ETag) and, when asked, its gzip bytes (`GZIP_LEVEL`); files and the cluster's table alike.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import formatdate
from pathlib import Path
from typing import Protocol

from worker.errors import PublishError
from worker.models import Item
from worker.publish.render import (
    COMBINED_ID,
    FEED_SUFFIXES,
    FeedMeta,
    feed_version,
    render_combined,
    render_feeds,
)

# Temporary files are hidden and marked, so a crash leaves nothing a server would list and
# `remove_stale_temp_files` knows exactly what is ours.
TEMP_PREFIX = "."
TEMP_SUFFIX = ".feedworker-tmp"
FEED_FILE_MODE = 0o644  # readable by a separate web server; mkstemp would give 0600
GZIP_LEVEL = 6  # most of level 9's gain on XML at a fraction of the CPU


@dataclass(frozen=True, slots=True)
class FeedVersion:
    """One complete version of a feed, as read back in one piece (one open handle, one row)."""

    body: bytes
    digest: str  # content hash (`feed_digest`); the ETag is built from it
    mtime: float  # seconds since the epoch
    gzipped: bytes | None = None  # `body` gzip-compressed, when the client accepts gzip

    @property
    def etag(self) -> str:
        # The gzip bytes are another representation, so they get their own strong tag.
        return f'"{self.digest}-gz"' if self.gzipped is not None else f'"{self.digest}"'

    @property
    def last_modified(self) -> str:
        return formatdate(self.mtime, usegmt=True)


def feed_digest(data: bytes) -> str:
    """A feed's content hash, the ETag's body: the same bytes give the same tag on every replica."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


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


def publish_feeds(
    feeds_dir: Path | FeedSink, meta: FeedMeta, items: Sequence[Item], now: datetime
) -> int:
    """Write `<source_id>.rss`, `.atom` and `.json`; the number of files actually rewritten.
    `now` is the run's start: the version of what is written."""
    if not _is_plain_name(meta.source_id) or meta.source_id == COMBINED_ID:
        raise PublishError(f"source id {meta.source_id!r} cannot be used as a file name")
    return _write_all(feeds_dir, meta.source_id, render_feeds(meta, items, now), now)


def publish_combined(
    feeds_dir: Path | FeedSink,
    meta: FeedMeta,
    items: Sequence[Item],
    now: datetime,
    limit: int,
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
        and path.suffix in FEED_SUFFIXES
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
