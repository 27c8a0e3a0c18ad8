"""The worker's state in SQLite or PostgreSQL; the only module that speaks SQL.

What is kept: HTTP cache validators per source and URL, the article URLs already handled per
source, the published items, per-source run state, and the block fingerprints a source's pages
share (so the extractor can learn a site's template).

Why SQLite: one file, no server, and in WAL mode with `synchronous=NORMAL` it kept every committed
transaction across `kill -9` (measured: 325,300 of 325,300 rows, integrity check ok). One process
owns the file: never on NFS, never shared between replicas. Each mutating method is one
transaction (`BEGIN IMMEDIATE` … commit, or rollback when anything raises), so a crash or an error
leaves the database consistent.

PostgreSQL (`postgresql://…` state URLs) is for several replicas sharing one state (cluster
mode). The SQL below is written once for both: `worker.store.db` runs it on either backend and
translates the little that differs (placeholders, `BEGIN IMMEDIATE`, `INTEGER` in DDL), so keep
it portable: `?`/`:name` placeholders, `ON CONFLICT`, no `rowid`, no `INSERT/UPDATE OR IGNORE`.

Datetimes are stored as ISO 8601 UTC text with a fixed shape (`2024-05-01T08:30:00.000000Z`), so
text order is time order, and come back timezone-aware UTC.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.dedupe.simhash import BANDS, band_probes, bands, hamming
from worker.errors import StoreError
from worker.models import Item, RunHealth, RunReport, Validators
from worker.store.db import Database, Params, open_database

Row = tuple[Any, ...]  # a result row, its columns in the order the query names them

# Rows of (fingerprint, page) kept per source: about 100 recent pages of ~40 blocks, plenty to
# see a template recur, small enough that a source with endless pages cannot grow the file.
MAX_BLOCK_ROWS_PER_SOURCE = 4000

# Migrations by the schema version they produce; `open` applies those above the file's version.
# Never edit a released step: add the next one.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE validators (
            url TEXT PRIMARY KEY,
            etag TEXT,
            last_modified TEXT
        )""",
        """CREATE TABLE known_urls (
            source_id TEXT NOT NULL,
            url TEXT NOT NULL,
            guid TEXT NOT NULL,
            PRIMARY KEY (source_id, url)
        )""",
        """CREATE TABLE items (
            source_id TEXT NOT NULL,
            guid TEXT NOT NULL,
            url TEXT NOT NULL,
            title TEXT NOT NULL,
            content_html TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            published TEXT NOT NULL,
            updated TEXT NOT NULL,
            authors TEXT NOT NULL DEFAULT '[]',
            summary TEXT NOT NULL DEFAULT '',
            image TEXT,
            categories TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (source_id, guid),
            UNIQUE (source_id, content_hash)
        )""",
        """CREATE INDEX items_feed_order
            ON items (source_id, published DESC, first_seen DESC, guid)""",
        """CREATE TABLE source_state (
            source_id TEXT PRIMARY KEY,
            last_run TEXT,
            last_success TEXT,
            last_error TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            items_new_last_run INTEGER NOT NULL DEFAULT 0,
            next_run TEXT
        )""",
        # One row per (fingerprint, page): a page is counted once however often it is recorded.
        # `seen` is a per-source counter, not a clock, so eviction is deterministic.
        """CREATE TABLE block_pages (
            source_id TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            page_url TEXT NOT NULL,
            seen INTEGER NOT NULL,
            PRIMARY KEY (source_id, fingerprint, page_url)
        )""",
        "CREATE INDEX block_pages_seen ON block_pages (source_id, seen)",
    ),
    # Identity outlives content: one row per item ever stored, kept as a tombstone when
    # retention prunes the item, so a pruned article still listed never comes back as new. Its
    # SimHash is kept whole and as four 16-bit bands, each indexed: near-duplicate lookups probe
    # the bands (see worker.dedupe.simhash) instead of scanning. `checked` is the last update check.
    2: (
        """CREATE TABLE identities (
            source_id TEXT NOT NULL,
            guid TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            simhash INTEGER,
            band0 INTEGER,
            band1 INTEGER,
            band2 INTEGER,
            band3 INTEGER,
            first_seen TEXT NOT NULL,
            checked TEXT,
            pruned TEXT,
            PRIMARY KEY (source_id, guid)
        )""",
        "CREATE INDEX identities_hash ON identities (source_id, content_hash)",
        "CREATE INDEX identities_band0 ON identities (band0, source_id)",
        "CREATE INDEX identities_band1 ON identities (band1, source_id)",
        "CREATE INDEX identities_band2 ON identities (band2, source_id)",
        "CREATE INDEX identities_band3 ON identities (band3, source_id)",
        """INSERT INTO identities (source_id, guid, content_hash, first_seen, checked)
            SELECT source_id, guid, content_hash, first_seen, first_seen FROM items""",
    ),
    # Source health (worker.service.health): a rolling history of compact per-run rows (`record` is
    # a JSON object, read and written whole, never queried into), and each source's current state;
    # `since` is when that state began, `checked` the last run that judged it.
    3: (
        """CREATE TABLE run_health (
            source_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            run_at TEXT NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (source_id, seq)
        )""",
        """CREATE TABLE source_health (
            source_id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            reasons TEXT NOT NULL DEFAULT '[]',
            since TEXT NOT NULL,
            checked TEXT NOT NULL
        )""",
    ),
    # Cluster mode (worker.service.cluster); empty on a single node. The rendered feeds every
    # replica serves (`version` only grows, so a stale writer never replaces a newer feed; `etag` is
    # the body's digest), the schedule slots a replica already claimed (one run per source and slot,
    # whichever replica fires first), and each replica's heartbeat and config digest.
    4: (
        """CREATE TABLE stored_feeds (
            name TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            body BLOB NOT NULL,
            etag TEXT NOT NULL,
            modified TEXT NOT NULL
        )""",
        """CREATE TABLE source_slots (
            source_id TEXT NOT NULL,
            slot INTEGER NOT NULL,
            replica TEXT NOT NULL,
            claimed TEXT NOT NULL,
            PRIMARY KEY (source_id, slot)
        )""",
        "CREATE INDEX source_slots_claimed ON source_slots (claimed)",
        """CREATE TABLE replicas (
            name TEXT PRIMARY KEY,
            config_digest TEXT NOT NULL,
            started TEXT NOT NULL,
            heartbeat TEXT NOT NULL
        )""",
    ),
    # Validators belong to the source that fetched the page: shared by URL, a second source on
    # an index page another one had read got a 304 on its first run and published nothing. The
    # old rows cannot be told apart by source, so they go: each URL is fetched once in full.
    # `variant` is what else the answer was read with (the source's listing settings): under
    # another, a 304 would confirm a reading never made, so the validators are not sent.
    5: (
        "DROP TABLE validators",
        """CREATE TABLE validators (
            source_id TEXT NOT NULL,
            url TEXT NOT NULL,
            etag TEXT,
            last_modified TEXT,
            variant TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (source_id, url)
        )""",
    ),
    # Item filters (worker.filters): an item the source's `keep`/`drop` rules leave out is still
    # stored, with the reason in `filtered` (NULL: published), so it never comes back as new and
    # the source page can say why it is missing. `filter_digests` is the rules each source's
    # items were last judged by: when they change, the items still in the feed are judged again.
    6: (
        "ALTER TABLE items ADD COLUMN filtered TEXT",
        """CREATE TABLE filter_digests (
            source_id TEXT PRIMARY KEY,
            digest TEXT NOT NULL
        )""",
    ),
    # WebSub, with feedworker as the hub (worker.service.websub): verified subscriptions with
    # their lease, and the deliveries due, one row per subscription at most (a feed that
    # changes again before its delivery is sent once, as it then is); `due` moves on with each
    # failed attempt (backoff).
    7: (
        """CREATE TABLE websub_subscriptions (
            topic TEXT NOT NULL,
            callback TEXT NOT NULL,
            callback_host TEXT NOT NULL,
            secret TEXT,
            lease_seconds INTEGER NOT NULL,
            expires TEXT NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (topic, callback)
        )""",
        "CREATE INDEX websub_subscriptions_expires ON websub_subscriptions (expires)",
        "CREATE INDEX websub_subscriptions_host ON websub_subscriptions (callback_host)",
        """CREATE TABLE websub_deliveries (
            topic TEXT NOT NULL,
            callback TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            due TEXT NOT NULL,
            last_error TEXT,
            PRIMARY KEY (topic, callback)
        )""",
        "CREATE INDEX websub_deliveries_due ON websub_deliveries (due)",
    ),
    # The combined feed reads the newest items of every source: with thousands of sources, an
    # IN list of every id was past the databases' parameter limits (100,000 sources), and the
    # newest items were found by sorting the whole table. This index walks them in feed order.
    8: (
        """CREATE INDEX IF NOT EXISTS items_recent
            ON items (published DESC, first_seen DESC, guid, source_id)""",
    ),
}
SCHEMA_VERSION = max(_MIGRATIONS)
# Claimed schedule slots are kept this long: far longer than any replica's clock skew.
SLOT_MEMORY = timedelta(days=1)
# Values in one `IN (…)` list: well under SQLite's and PostgreSQL's parameter limits.
IN_LIST_SIZE = 500
# Asked about more sources than this, a method reads the whole (per-source) table once instead.
WHOLE_TABLE_ABOVE = 10 * IN_LIST_SIZE

_ITEM_COLUMNS = (
    "source_id, guid, url, title, content_html, content_hash,"
    " first_seen, published, updated, authors, summary, image, categories, filtered"
)
_FEED_ORDER = "published DESC, first_seen DESC, guid ASC"
_ITEM_COLUMN_NAMES = tuple(_ITEM_COLUMNS.replace(" ", "").split(","))
_ITEM_MARKS = ", ".join("?" * len(_ITEM_COLUMN_NAMES))
# What an edit replaces: everything but the item's identity and when it was first seen.
_UPDATED_COLUMNS = tuple(
    c for c in _ITEM_COLUMN_NAMES if c not in ("source_id", "guid", "first_seen")
)

# An edit must not give an item the text another item of its source already has (that one
# wins); portable where SQLite alone has UPDATE OR IGNORE. Parameters: source_id, hash, guid.
_NO_OTHER_ITEM_WITH_HASH = """
    AND NOT EXISTS (SELECT 1 FROM items AS other
                    WHERE other.source_id = ? AND other.content_hash = ? AND other.guid != ?)"""

_SUBSCRIPTION_COLUMNS = "topic, callback, callback_host, secret, lease_seconds, expires, created"

_STATE_COLUMNS = (
    "source_id, last_run, last_success, last_error,"
    " consecutive_failures, items_new_last_run, next_run"
)


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store remembers about a source's runs, for scheduling and the status page."""

    source_id: str
    last_run: datetime | None
    last_success: datetime | None
    last_error: str | None  # cleared by a successful run
    consecutive_failures: int
    items_new_last_run: int
    next_run: datetime | None


@dataclass(frozen=True, slots=True)
class SourceOverview:
    """Just enough of a source's stored state to sort and filter thousands of them (the status
    page's list), read without parsing a date or a JSON column."""

    ran: bool  # it has run (or at least succeeded once)
    failing: bool  # its last run failed
    degraded: bool


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """A source's health state (worker.service.health): "ok" or "degraded", why, and since when."""

    source_id: str
    state: str
    reasons: tuple[str, ...]
    since: datetime  # when the source entered this state
    checked: datetime  # the last run that judged it


@dataclass(frozen=True, slots=True)
class Identity:
    """What the store keeps of an item for ever: enough to recognise it, even once pruned."""

    source_id: str
    guid: str
    content_hash: str
    simhash: int | None  # None for items stored before SimHashes were kept
    pruned: bool  # a tombstone: the item's content is gone, its identity stays


@dataclass(frozen=True, slots=True)
class StoredFeed:
    """A rendered feed kept in the database (cluster mode), as every replica serves it."""

    name: str  # the file name it would have: "blog.rss", "all.atom"
    version: int  # grows with each publish; an older one never replaces a newer
    body: bytes
    etag: str  # digest of `body`, the same on every replica
    modified: datetime  # when `body` last changed (Last-Modified)


@dataclass(frozen=True, slots=True)
class Replica:
    """A cluster replica as its last heartbeat described it."""

    name: str
    config_digest: str
    started: datetime
    heartbeat: datetime


@dataclass(frozen=True, slots=True)
class Subscription:
    """A verified WebSub subscription: `callback` gets `topic`'s new content until `expires`."""

    topic: str
    callback: str
    callback_host: str  # for the per-host limits
    secret: str | None = field(repr=False)  # signs deliveries (hub.secret); None: unsigned
    lease_seconds: int
    expires: datetime
    created: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """A pending delivery of `topic` to a subscription's `callback`."""

    topic: str
    callback: str
    attempts: int  # failed so far
    due: datetime
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class NearMatch:
    """A stored item whose SimHash is within the asked distance of a new text's."""

    source_id: str
    guid: str
    distance: int


class SimhashIndex:
    """One source's SimHashes as stored (GUID -> hash, first seen), answering as
    `Store.near_duplicate` does for that source; the caller keeps it in step with its writes."""

    def __init__(self, source_id: str, entries: dict[str, tuple[int, str]]) -> None:
        self.source_id = source_id
        self._entries = entries

    def closest(self, simhash: int, max_distance: int) -> NearMatch | None:
        """The nearest within `max_distance` bits; ties go to the oldest, as in the store."""
        found = [
            (distance, seen, guid)
            for guid, (stored, seen) in self._entries.items()
            if (distance := hamming(simhash, stored)) <= max_distance
        ]
        if not found:
            return None
        distance, _, guid = min(found)
        return NearMatch(self.source_id, guid, distance)

    def added(self, item: Item) -> None:
        if item.simhash is not None:
            self._entries[item.guid] = (item.simhash, _to_text(item.first_seen))

    def changed(self, guid: str, simhash: int | None) -> None:
        """An item's text changed (edited, or rehashed): its new SimHash, same first seen."""
        entry = self._entries.get(guid)
        if entry is not None:
            if simhash is None:
                del self._entries[guid]
            else:
                self._entries[guid] = (simhash, entry[1])


class Store:
    """The state database. Safe to call from several threads (calls are serialised)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._where = db.where
        self._lock = threading.RLock()
        self._joined = 0  # > 0 inside `transaction`: writes join its transaction

    @classmethod
    def open(cls, state_url: str) -> Store:
        """Open (creating folder, file and schema as needed) the database `state_url` names."""
        db = open_database(state_url)
        store = cls(db)
        try:
            store._migrate()
        except BaseException:
            db.close()
            raise
        return store

    @property
    def backend(self) -> str:
        """The backend: "sqlite" or "postgresql"."""
        return self._db.kind

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- HTTP cache validators ------------------------------------------------------------

    def get_validators(self, source_id: str, url: str, variant: str = "") -> Validators | None:
        """What `source_id` last saved for `url` with the same `variant`: only its own, never
        another source's, nor those of a reading with other settings."""
        row = self._one(
            """SELECT etag, last_modified FROM validators
               WHERE source_id = ? AND url = ? AND variant = ?""",
            (source_id, url, variant),
        )
        return None if row is None else Validators(etag=row[0], last_modified=row[1])

    def save_validators(
        self, source_id: str, url: str, validators: Validators, variant: str = ""
    ) -> None:
        with self._write("saving validators") as conn:
            conn.execute(
                """INSERT INTO validators (source_id, url, etag, last_modified, variant)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (source_id, url) DO UPDATE
                   SET etag = excluded.etag, last_modified = excluded.last_modified,
                       variant = excluded.variant""",
                (source_id, url, validators.etag, validators.last_modified, variant),
            )

    # -- article URLs already handled -----------------------------------------------------

    def known_url(self, source_id: str, url: str) -> str | None:
        """The GUID an article URL was stored under, or None when it was never handled."""
        row = self._one(
            "SELECT guid FROM known_urls WHERE source_id = ? AND url = ?", (source_id, url)
        )
        return None if row is None else row[0]

    def remember_url(self, source_id: str, url: str, guid: str) -> None:
        with self._write("remembering a URL") as conn:
            conn.execute(
                """INSERT INTO known_urls (source_id, url, guid) VALUES (?, ?, ?)
                   ON CONFLICT (source_id, url) DO UPDATE SET guid = excluded.guid""",
                (source_id, url, guid),
            )

    # -- items ----------------------------------------------------------------------------

    def item(self, source_id: str, guid: str) -> Item | None:
        row = self._one(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE source_id = ? AND guid = ?",
            (source_id, guid),
        )
        return None if row is None else _item_from_row(row)

    def identity(self, source_id: str, guid: str) -> Identity | None:
        """The item with this GUID as stored, or its tombstone; None when never stored."""
        row = self._one(
            """SELECT source_id, guid, content_hash, simhash, pruned FROM identities
               WHERE source_id = ? AND guid = ?""",
            (source_id, guid),
        )
        return None if row is None else _identity_from_row(row)

    def guid_for_hash(self, source_id: str, content_hash: str) -> str | None:
        """The GUID of the item (or tombstone) with this text: the same article, another URL."""
        row = self._one(
            "SELECT guid FROM identities WHERE source_id = ? AND content_hash = ?",
            (source_id, content_hash),
        )
        return None if row is None else row[0]

    def near_duplicate(
        self, simhash: int, max_distance: int, source_id: str | None = None
    ) -> NearMatch | None:
        """The closest item (or tombstone) within `max_distance` bits, of `source_id` or of any
        source when None; ties go to the oldest. Band probes, so a few index seeks, no scan."""
        probes = band_probes(simhash, max_distance)
        same_source = "" if source_id is None else " AND source_id = :source"
        sql = " UNION ".join(
            f"SELECT source_id, guid, simhash, first_seen FROM identities"
            f" WHERE band{n} IN ({', '.join(map(str, values))}){same_source}"
            for n, values in enumerate(probes)
        )
        rows = self._all(sql, {"source": source_id})
        found = []
        for other_source, guid, stored, first_seen in rows:
            distance = hamming(simhash, _unsigned(stored))
            if distance <= max_distance:
                found.append((distance, first_seen, other_source, guid))
        if not found:
            return None
        distance, _, other_source, guid = min(found)
        return NearMatch(other_source, guid, distance)

    def simhash_index(self, source_id: str, limit: int) -> SimhashIndex | None:
        """A source's SimHashes (items and tombstones) in memory, to compare a run's articles
        without a query each; None when the source has more than `limit` of them (then
        `near_duplicate`'s indexed probes are cheaper than a scan)."""
        rows = self._all(
            """SELECT guid, simhash, first_seen FROM identities
               WHERE source_id = ? AND simhash IS NOT NULL LIMIT ?""",
            (source_id, limit + 1),
        )
        if len(rows) > limit:
            return None
        return SimhashIndex(source_id, {g: (_unsigned(h), seen) for g, h, seen in rows})

    def add_item(self, item: Item) -> bool:
        """Insert `item`; False (and nothing written) when its GUID or its text is already there.

        Idempotent, so a re-run, a retry after a crash or a second replica never makes a second
        item of one article.
        """
        with self._write("adding an item") as conn:
            cursor = conn.execute(
                f"INSERT INTO items ({_ITEM_COLUMNS}) VALUES ({_ITEM_MARKS})"
                " ON CONFLICT DO NOTHING",
                _item_row(item),
            )
            if cursor.rowcount != 1:
                return False
            conn.execute(
                """INSERT INTO identities (source_id, guid, content_hash, simhash,
                       band0, band1, band2, band3, first_seen, checked)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (source_id, guid) DO UPDATE SET
                       content_hash = excluded.content_hash, simhash = excluded.simhash,
                       band0 = excluded.band0, band1 = excluded.band1,
                       band2 = excluded.band2, band3 = excluded.band3,
                       checked = excluded.checked, pruned = NULL""",
                (
                    item.source_id,
                    item.guid,
                    item.content_hash,
                    *_simhash_columns(item.simhash),
                    _to_text(item.first_seen),
                    _to_text(item.first_seen),
                ),
            )
            return True

    def update_item(self, item: Item) -> bool:
        """Replace the stored item with `item`'s GUID when its text changed (edited in place).

        `first_seen` is kept. False when there is no such item, the hash is unchanged, or another
        item of the source already has this text.
        """
        row = dict(zip(_ITEM_COLUMN_NAMES, _item_row(item), strict=True))
        with self._write("updating an item") as conn:
            cursor = conn.execute(
                f"""UPDATE items SET {", ".join(f"{c} = ?" for c in _UPDATED_COLUMNS)}
                   WHERE source_id = ? AND guid = ? AND content_hash != ?"""
                + _NO_OTHER_ITEM_WITH_HASH,
                (
                    *(row[c] for c in _UPDATED_COLUMNS),
                    item.source_id,
                    item.guid,
                    item.content_hash,
                    item.source_id,
                    item.content_hash,
                    item.guid,
                ),
            )
            if cursor.rowcount != 1:
                return False
            self._set_signature(conn, item.source_id, item.guid, item.content_hash, item.simhash)
            return True

    def rehash(self, source_id: str, guid: str, content_hash: str, simhash: int | None) -> bool:
        """Store a new hash of unchanged text (after a change of hash version); no republish.
        False when nothing changed (another item has that text)."""
        with self._write("rehashing an item") as conn:
            cursor = conn.execute(
                "UPDATE items SET content_hash = ? WHERE source_id = ? AND guid = ?"
                + _NO_OTHER_ITEM_WITH_HASH,
                (content_hash, source_id, guid, source_id, content_hash, guid),
            )
            if cursor.rowcount != 1:  # else the item and its identity would disagree
                return False
            self._set_signature(conn, source_id, guid, content_hash, simhash)
            return True

    @staticmethod
    def _set_signature(
        conn: Database, source_id: str, guid: str, content_hash: str, simhash: int | None
    ) -> None:
        conn.execute(
            """UPDATE identities SET content_hash = ?, simhash = ?,
                   band0 = ?, band1 = ?, band2 = ?, band3 = ?
               WHERE source_id = ? AND guid = ?""",
            (content_hash, *_simhash_columns(simhash), source_id, guid),
        )

    # -- update checks and retention ------------------------------------------------------

    def recheck_due(self, source_id: str, checked_before: datetime, limit: int) -> list[str]:
        """URLs of the source's live items not checked for edits since `checked_before`,
        newest first."""
        rows = self._all(
            """SELECT items.url FROM items JOIN identities USING (source_id, guid)
               WHERE items.source_id = ? AND identities.pruned IS NULL
                 AND (identities.checked IS NULL OR identities.checked < ?)
               ORDER BY items.first_seen DESC, items.guid LIMIT ?""",
            (source_id, _to_text(checked_before), limit),
        )
        return [row[0] for row in rows]

    def mark_checked(self, source_id: str, guid: str, when: datetime) -> None:
        with self._write("marking an item checked") as conn:
            conn.execute(
                "UPDATE identities SET checked = ? WHERE source_id = ? AND guid = ?",
                (_to_text(when), source_id, guid),
            )

    def prune(self, source_id: str, keep_newest: int, older_than: datetime, now: datetime) -> int:
        """Delete the items beyond the newest `keep_newest` (feed order) first seen before
        `older_than`; their identities stay as tombstones. Returns how many were pruned.

        Published items count towards `keep_newest` among themselves, so filtered ones never
        shorten the feed; a filtered item is kept while it is among the newest `keep_newest` of
        all (a change of the filters may publish it)."""
        with self._write("pruning items") as conn:
            doomed = [
                row[0]
                for row in conn.execute(
                    f"""SELECT guid FROM items WHERE source_id = ? AND first_seen < ?
                         AND guid NOT IN (
                           SELECT guid FROM items WHERE source_id = ? AND filtered IS NULL
                           ORDER BY {_FEED_ORDER} LIMIT ?)
                         AND guid NOT IN (
                           SELECT guid FROM items WHERE source_id = ?
                           ORDER BY {_FEED_ORDER} LIMIT ?)""",
                    (
                        source_id,
                        _to_text(older_than),
                        source_id,
                        keep_newest,
                        source_id,
                        keep_newest,
                    ),
                )
            ]
            conn.executemany(
                "DELETE FROM items WHERE source_id = ? AND guid = ?",
                [(source_id, guid) for guid in doomed],
            )
            conn.executemany(
                "UPDATE identities SET pruned = ? WHERE source_id = ? AND guid = ?",
                [(_to_text(now), source_id, guid) for guid in doomed],
            )
            return len(doomed)

    def feed_items(self, source_id: str, limit: int) -> list[Item]:
        """The newest `limit` published items: by published, then first seen, newest first;
        then GUID. Filtered items are left out."""
        rows = self._all(
            f"""SELECT {_ITEM_COLUMNS} FROM items WHERE source_id = ? AND filtered IS NULL
                ORDER BY {_FEED_ORDER} LIMIT ?""",
            (source_id, limit),
        )
        return [_item_from_row(row) for row in rows]

    def window_items(self, source_id: str, limit: int) -> list[Item]:
        """The newest `limit` items, filtered or not, in feed order: what a change of the
        source's filters judges again."""
        rows = self._all(
            f"""SELECT {_ITEM_COLUMNS} FROM items WHERE source_id = ?
                ORDER BY {_FEED_ORDER} LIMIT ?""",
            (source_id, limit),
        )
        return [_item_from_row(row) for row in rows]

    def filtered_items(self, source_id: str, limit: int) -> list[Item]:
        """The newest `limit` items the source's filters left out, with their reasons."""
        rows = self._all(
            f"""SELECT {_ITEM_COLUMNS} FROM items WHERE source_id = ? AND filtered IS NOT NULL
                ORDER BY {_FEED_ORDER} LIMIT ?""",
            (source_id, limit),
        )
        return [_item_from_row(row) for row in rows]

    def set_filtered(self, source_id: str, verdicts: Iterable[tuple[str, str | None]]) -> None:
        """Store new verdicts (GUID, reason or None to publish) of the source's items."""
        with self._write("filtering items") as conn:
            conn.executemany(
                "UPDATE items SET filtered = ? WHERE source_id = ? AND guid = ?",
                [(reason, source_id, guid) for guid, reason in verdicts],
            )

    def filter_digest(self, source_id: str) -> str:
        """The digest of the filters the source's items were last judged by ("" for none)."""
        row = self._one("SELECT digest FROM filter_digests WHERE source_id = ?", (source_id,))
        return "" if row is None else str(row[0])

    def set_filter_digest(self, source_id: str, digest: str) -> None:
        with self._write("recording the filters") as conn:
            conn.execute(
                """INSERT INTO filter_digests (source_id, digest) VALUES (?, ?)
                   ON CONFLICT (source_id) DO UPDATE SET digest = excluded.digest""",
                (source_id, digest),
            )

    def recent_items(self, limit: int, source_ids: Sequence[str]) -> list[Item]:
        """The newest `limit` published items of the given sources, in feed order (for the
        combined feed)."""
        if not source_ids:
            return []
        order = f"ORDER BY {_FEED_ORDER}, source_id ASC"
        published = "filtered IS NULL"  # items kept out by the source's filters never are
        if len(source_ids) <= IN_LIST_SIZE:
            marks = ", ".join("?" * len(source_ids))
            rows = self._all(
                f"""SELECT {_ITEM_COLUMNS} FROM items
                    WHERE source_id IN ({marks}) AND {published} {order} LIMIT ?""",
                (*source_ids, limit),
            )
            return [_item_from_row(row) for row in rows]
        # Many sources: the newest items of all, in pages along `items_recent`, keeping those of
        # the given sources (the others, disabled or removed sources', are few).
        wanted, offset = set(source_ids), 0
        found: list[tuple[object, ...]] = []
        while len(found) < limit:
            page = self._all(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE {published} {order} LIMIT ? OFFSET ?",
                (limit, offset),
            )
            found += [row for row in page if row[0] in wanted]
            if len(page) < limit:
                break
            offset += limit
        return [_item_from_row(row) for row in found[:limit]]

    def count_items(self, source_id: str, *, filtered: bool = False) -> int:
        """The source's published items (or, with `filtered`, those its filters left out)."""
        condition = "IS NOT NULL" if filtered else "IS NULL"
        row = self._one(
            f"SELECT COUNT(*) FROM items WHERE source_id = ? AND filtered {condition}",
            (source_id,),
        )
        return 0 if row is None else int(row[0])

    def item_counts(self, source_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Items per source, for these sources (None: every source), in one query per
        `IN_LIST_SIZE` ids; a source without items is left out."""
        if source_ids is None:
            rows = self._all("SELECT source_id, COUNT(*) FROM items GROUP BY source_id", ())
            return {source_id: int(count) for source_id, count in rows}
        counts: dict[str, int] = {}
        for marks, chunk in _in_lists(source_ids):
            rows = self._all(
                f"SELECT source_id, COUNT(*) FROM items WHERE source_id IN ({marks})"
                " GROUP BY source_id",
                chunk,
            )
            counts.update((source_id, int(count)) for source_id, count in rows)
        return counts

    # -- per-source run state -------------------------------------------------------------

    def record_run(self, report: RunReport, next_run: datetime | None = None) -> None:
        """Remember a run's outcome: failures count up until a success resets them."""
        ran_at = _to_text(report.finished or report.started)
        with self._write("recording a run") as conn:
            conn.execute(
                """INSERT INTO source_state (source_id, last_run, last_success, last_error,
                       consecutive_failures, items_new_last_run, next_run)
                   VALUES (:source, :ran, :success, :error, :failures, :new, :next)
                   ON CONFLICT (source_id) DO UPDATE SET
                       last_run = excluded.last_run,
                       last_success = COALESCE(excluded.last_success, source_state.last_success),
                       last_error = excluded.last_error,
                       consecutive_failures = CASE WHEN excluded.consecutive_failures = 0
                           THEN 0 ELSE source_state.consecutive_failures + 1 END,
                       items_new_last_run = excluded.items_new_last_run,
                       next_run = excluded.next_run""",
                {
                    "source": report.source_id,
                    "ran": ran_at,
                    "success": ran_at if report.ok else None,
                    "error": report.error,
                    "failures": 0 if report.ok else 1,
                    "new": report.items_new,
                    "next": None if next_run is None else _to_text(next_run),
                },
            )

    def source_state(self, source_id: str) -> SourceState | None:
        row = self._one(
            f"SELECT {_STATE_COLUMNS} FROM source_state WHERE source_id = ?", (source_id,)
        )
        return None if row is None else _state_from_row(row)

    def source_states(self, source_ids: Iterable[str] | None = None) -> list[SourceState]:
        """The stored run state of these sources (None: of every source), by id."""
        rows = self._rows_by_source("source_state", _STATE_COLUMNS, source_ids)
        return [_state_from_row(row) for row in rows]

    def source_overviews(self) -> dict[str, SourceOverview]:
        """Every source with a stored state or health: whether it ran, fails, is degraded. Two
        queries of small columns, however many sources (the status page sorts with them)."""
        rows = self._all(
            """SELECT source_id, last_run IS NOT NULL OR last_success IS NOT NULL,
                      consecutive_failures > 0
               FROM source_state""",
            (),
        )
        ran = {source_id: (bool(did_run), bool(failing)) for source_id, did_run, failing in rows}
        degraded = {
            row[0]
            for row in self._all("SELECT source_id FROM source_health WHERE state = 'degraded'", ())
        }
        return {
            source_id: SourceOverview(*ran.get(source_id, (False, False)), source_id in degraded)
            for source_id in ran.keys() | degraded
        }

    # -- source health --------------------------------------------------------------------

    def record_health(self, source_id: str, health: RunHealth, keep: int) -> None:
        """Append a run to the source's health history, keeping its newest `keep` runs."""
        with self._write("recording run health") as conn:
            (seq,) = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM run_health WHERE source_id = ?",
                (source_id,),
            ).fetchone()
            conn.execute(
                "INSERT INTO run_health (source_id, seq, run_at, record) VALUES (?, ?, ?, ?)",
                (source_id, seq, _to_text(health.at), _health_json(health)),
            )
            conn.execute(
                "DELETE FROM run_health WHERE source_id = ? AND seq <= ?",
                (source_id, seq - keep),
            )

    def health_history(self, source_id: str, limit: int) -> list[RunHealth]:
        """The source's newest `limit` runs, oldest first."""
        rows = self._all(
            "SELECT record FROM run_health WHERE source_id = ? ORDER BY seq DESC LIMIT ?",
            (source_id, limit),
        )
        return [_health_from_json(row[0]) for row in reversed(rows)]

    def set_health(
        self, source_id: str, state: str, reasons: Iterable[str], when: datetime
    ) -> None:
        """Store the source's state after a run; `since` moves only when the state changes."""
        with self._write("recording source health") as conn:
            conn.execute(
                """INSERT INTO source_health (source_id, state, reasons, since, checked)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (source_id) DO UPDATE SET
                       since = CASE WHEN source_health.state = excluded.state
                           THEN source_health.since ELSE excluded.since END,
                       state = excluded.state,
                       reasons = excluded.reasons,
                       checked = excluded.checked""",
                (source_id, state, json.dumps(list(reasons)), _to_text(when), _to_text(when)),
            )

    def source_health(self, source_id: str) -> SourceHealth | None:
        row = self._one(
            "SELECT source_id, state, reasons, since, checked FROM source_health"
            " WHERE source_id = ?",
            (source_id,),
        )
        return None if row is None else _source_health_from_row(row)

    def source_healths(self, source_ids: Iterable[str] | None = None) -> list[SourceHealth]:
        """The health of these sources (None: of every source), by id."""
        columns = "source_id, state, reasons, since, checked"
        rows = self._rows_by_source("source_health", columns, source_ids)
        return [_source_health_from_row(row) for row in rows]

    # -- site template learning -----------------------------------------------------------

    def record_blocks(self, source_id: str, page_url: str, fingerprints: Iterable[str]) -> None:
        """Note that `page_url` holds these blocks; keeps the most recently seen rows only."""
        self.record_pages_blocks(source_id, [(page_url, fingerprints)])

    def record_pages_blocks(
        self, source_id: str, pages: Iterable[tuple[str, Iterable[str]]]
    ) -> None:
        """`record_blocks` for several pages, seen in the given order, in three statements and
        one trim (the rows kept are the same as page by page: the newest pages' rows)."""
        rows: list[tuple[str, str, str, int]] = []
        with self._write("recording block fingerprints") as conn:
            (seen,) = conn.execute(
                "SELECT COALESCE(MAX(seen), 0) + 1 FROM block_pages WHERE source_id = ?",
                (source_id,),
            ).fetchone()
            for page_url, fingerprints in pages:
                unique = sorted(set(fingerprints))
                if unique:
                    rows.extend((source_id, fp, page_url, seen) for fp in unique)
                    seen += 1
            if not rows:
                return
            conn.executemany(
                """INSERT INTO block_pages (source_id, fingerprint, page_url, seen)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT (source_id, fingerprint, page_url)
                   DO UPDATE SET seen = excluded.seen""",
                rows,
            )
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM block_pages WHERE source_id = ?", (source_id,)
            ).fetchone()
            if count > MAX_BLOCK_ROWS_PER_SOURCE:
                oldest = conn.execute(  # the tail of (seen DESC, fingerprint, page_url) order
                    """SELECT fingerprint, page_url FROM block_pages WHERE source_id = ?
                       ORDER BY seen ASC, fingerprint DESC, page_url DESC LIMIT ?""",
                    (source_id, count - MAX_BLOCK_ROWS_PER_SOURCE),
                ).fetchall()
                conn.executemany(
                    """DELETE FROM block_pages
                       WHERE source_id = ? AND fingerprint = ? AND page_url = ?""",
                    [(source_id, fingerprint, page) for fingerprint, page in oldest],
                )

    def boilerplate_blocks(self, source_id: str, min_pages: int = 2) -> frozenset[str]:
        """Fingerprints seen on at least `min_pages` distinct pages of the source."""
        rows = self._all(
            """SELECT fingerprint FROM block_pages WHERE source_id = ?
               GROUP BY fingerprint HAVING COUNT(*) >= ?""",
            (source_id, min_pages),
        )
        return frozenset(row[0] for row in rows)

    def schema_version(self) -> int:
        row = self._one("SELECT MAX(version) FROM schema_version", ())
        return 0 if row is None or row[0] is None else int(row[0])

    # -- cluster mode ---------------------------------------------------------------------

    def save_feed(self, feed: StoredFeed) -> bool:
        """Store a rendered feed unless the stored version is as new or newer; True when the
        bytes changed. Unchanged bytes keep their Last-Modified and take the new version."""
        with self._write("storing a feed") as conn:
            before = conn.execute(
                "SELECT etag FROM stored_feeds WHERE name = ?", (feed.name,)
            ).fetchone()
            cursor = conn.execute(
                """INSERT INTO stored_feeds (name, version, body, etag, modified)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET
                       version = excluded.version,
                       body = excluded.body,
                       modified = CASE WHEN stored_feeds.etag = excluded.etag
                           THEN stored_feeds.modified ELSE excluded.modified END,
                       etag = excluded.etag
                   WHERE stored_feeds.version < excluded.version""",
                (feed.name, feed.version, feed.body, feed.etag, _to_text(feed.modified)),
            )
            return cursor.rowcount == 1 and (before is None or before[0] != feed.etag)

    def stored_feed(self, name: str) -> StoredFeed | None:
        row = self._one(
            "SELECT name, version, body, etag, modified FROM stored_feeds WHERE name = ?", (name,)
        )
        if row is None:
            return None
        return StoredFeed(row[0], row[1], bytes(row[2]), row[3], _from_text(row[4]))

    def stored_feed_etag(self, name: str) -> str | None:
        """The stored feed's ETag alone: a cheap check of a cached copy."""
        row = self._one("SELECT etag FROM stored_feeds WHERE name = ?", (name,))
        return None if row is None else row[0]

    def claim_slot(self, source_id: str, slot: int, replica: str, now: datetime) -> bool:
        """True for the first replica to claim this schedule slot of the source, else False."""
        with self._write("claiming a schedule slot") as conn:
            forgotten = _to_text(now - SLOT_MEMORY)
            conn.execute("DELETE FROM source_slots WHERE claimed < ?", (forgotten,))
            cursor = conn.execute(
                """INSERT INTO source_slots (source_id, slot, replica, claimed) VALUES (?, ?, ?, ?)
                   ON CONFLICT DO NOTHING""",
                (source_id, slot, replica, _to_text(now)),
            )
            return cursor.rowcount == 1

    def claim_slots(
        self, slots: Sequence[tuple[str, int]], replica: str, now: datetime
    ) -> list[tuple[str, int]]:
        """`claim_slot` for many (source, slot) pairs in one transaction, one INSERT per
        `IN_LIST_SIZE` of them: the pairs this replica claimed first, in the order given."""
        slots = list(dict.fromkeys(slots))
        if not slots:
            return []
        won: set[tuple[str, int]] = set()
        claimed = _to_text(now)
        with self._write("claiming schedule slots") as conn:
            conn.execute(
                "DELETE FROM source_slots WHERE claimed < ?", (_to_text(now - SLOT_MEMORY),)
            )
            for start in range(0, len(slots), IN_LIST_SIZE):
                chunk = slots[start : start + IN_LIST_SIZE]
                rows = conn.execute(
                    "INSERT INTO source_slots (source_id, slot, replica, claimed) VALUES "
                    + ", ".join(["(?, ?, ?, ?)"] * len(chunk))
                    + " ON CONFLICT DO NOTHING RETURNING source_id, slot",
                    [value for pair in chunk for value in (*pair, replica, claimed)],
                ).fetchall()
                won.update((source_id, int(slot)) for source_id, slot in rows)
        return [pair for pair in slots if pair in won]

    def beat(self, replica: str, config_digest: str, started: datetime, now: datetime) -> None:
        """A replica's heartbeat, with the digest of the config it runs."""
        with self._write("recording a heartbeat") as conn:
            conn.execute(
                """INSERT INTO replicas (name, config_digest, started, heartbeat)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET config_digest = excluded.config_digest,
                       started = excluded.started, heartbeat = excluded.heartbeat""",
                (replica, config_digest, _to_text(started), _to_text(now)),
            )

    def forget_replica(self, replica: str) -> None:
        with self._write("removing a replica") as conn:
            conn.execute("DELETE FROM replicas WHERE name = ?", (replica,))

    def replicas(self, alive_since: datetime) -> list[Replica]:
        """Replicas whose last heartbeat is not older than `alive_since`, by name."""
        rows = self._all(
            """SELECT name, config_digest, started, heartbeat FROM replicas
               WHERE heartbeat >= ? ORDER BY name""",
            (_to_text(alive_since),),
        )
        return [Replica(r[0], r[1], _from_text(r[2]), _from_text(r[3])) for r in rows]

    # -- WebSub (feedworker as the hub) ---------------------------------------------------

    def save_subscription(self, subscription: Subscription) -> None:
        """Store a verified subscription, or renew it (its lease and secret)."""
        with self._write("storing a WebSub subscription") as conn:
            conn.execute(
                """INSERT INTO websub_subscriptions (topic, callback, callback_host, secret,
                       lease_seconds, expires, created)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (topic, callback) DO UPDATE SET
                       secret = excluded.secret, lease_seconds = excluded.lease_seconds,
                       expires = excluded.expires""",
                (
                    subscription.topic,
                    subscription.callback,
                    subscription.callback_host,
                    subscription.secret,
                    subscription.lease_seconds,
                    _to_text(subscription.expires),
                    _to_text(subscription.created),
                ),
            )

    def delete_subscription(self, topic: str, callback: str) -> bool:
        """Remove a subscription and its pending delivery; False when there was none."""
        with self._write("removing a WebSub subscription") as conn:
            cursor = conn.execute(
                "DELETE FROM websub_subscriptions WHERE topic = ? AND callback = ?",
                (topic, callback),
            )
            conn.execute(
                "DELETE FROM websub_deliveries WHERE topic = ? AND callback = ?",
                (topic, callback),
            )
            return cursor.rowcount == 1

    def subscription(self, topic: str, callback: str) -> Subscription | None:
        row = self._one(
            f"SELECT {_SUBSCRIPTION_COLUMNS} FROM websub_subscriptions"
            " WHERE topic = ? AND callback = ?",
            (topic, callback),
        )
        return None if row is None else _subscription_from_row(row)

    def subscriptions(self, now: datetime, topic: str | None = None) -> list[Subscription]:
        """The subscriptions whose lease runs at `now` (of `topic`, or all), oldest first."""
        same_topic = "" if topic is None else " AND topic = :topic"
        rows = self._all(
            f"SELECT {_SUBSCRIPTION_COLUMNS} FROM websub_subscriptions"
            f" WHERE expires > :now{same_topic} ORDER BY created, topic, callback",
            {"now": _to_text(now), "topic": topic},
        )
        return [_subscription_from_row(row) for row in rows]

    def count_subscriptions(self, callback_host: str | None = None) -> int:
        """All subscriptions kept (expired ones until `expire_subscriptions`), or one host's."""
        if callback_host is None:
            row = self._one("SELECT COUNT(*) FROM websub_subscriptions", ())
        else:
            row = self._one(
                "SELECT COUNT(*) FROM websub_subscriptions WHERE callback_host = ?",
                (callback_host,),
            )
        return 0 if row is None else int(row[0])

    def expire_subscriptions(self, now: datetime) -> int:
        """Remove the subscriptions whose lease ran out (and their deliveries); how many."""
        with self._write("expiring WebSub subscriptions") as conn:
            moment = _to_text(now)
            conn.execute(
                """DELETE FROM websub_deliveries WHERE EXISTS (
                       SELECT 1 FROM websub_subscriptions AS s
                       WHERE s.topic = websub_deliveries.topic
                         AND s.callback = websub_deliveries.callback AND s.expires <= ?)""",
                (moment,),
            )
            cursor = conn.execute("DELETE FROM websub_subscriptions WHERE expires <= ?", (moment,))
            return max(cursor.rowcount, 0)

    def queue_deliveries(self, topic: str, now: datetime) -> int:
        """A delivery of `topic` for each of its live subscriptions, due now; one already
        waiting (retrying, say) stays as it is and will send the feed as it is then."""
        with self._write("queueing WebSub deliveries") as conn:
            cursor = conn.execute(
                """INSERT INTO websub_deliveries (topic, callback, attempts, due)
                   SELECT topic, callback, 0, ? FROM websub_subscriptions
                   WHERE topic = ? AND expires > ?
                   ON CONFLICT (topic, callback) DO NOTHING""",
                (_to_text(now), topic, _to_text(now)),
            )
            return max(cursor.rowcount, 0)

    def due_deliveries(self, now: datetime, limit: int) -> list[Delivery]:
        """Deliveries due at `now`, of live subscriptions, the longest waiting first."""
        rows = self._all(
            """SELECT d.topic, d.callback, d.attempts, d.due, s.secret
               FROM websub_deliveries AS d JOIN websub_subscriptions AS s
                 ON s.topic = d.topic AND s.callback = d.callback
               WHERE d.due <= ? AND s.expires > ?
               ORDER BY d.due, d.topic, d.callback LIMIT ?""",
            (_to_text(now), _to_text(now), limit),
        )
        return [Delivery(r[0], r[1], int(r[2]), _from_text(r[3]), r[4]) for r in rows]

    def next_delivery_due(self) -> datetime | None:
        row = self._one("SELECT MIN(due) FROM websub_deliveries", ())
        return None if row is None or row[0] is None else _from_text(row[0])

    def delivery_done(self, topic: str, callback: str) -> None:
        with self._write("finishing a WebSub delivery") as conn:
            conn.execute(
                "DELETE FROM websub_deliveries WHERE topic = ? AND callback = ?",
                (topic, callback),
            )

    def delivery_failed(
        self, topic: str, callback: str, attempts: int, due: datetime, error: str
    ) -> None:
        """Count a failed attempt; the next is due at `due`."""
        with self._write("rescheduling a WebSub delivery") as conn:
            conn.execute(
                """UPDATE websub_deliveries SET attempts = ?, due = ?, last_error = ?
                   WHERE topic = ? AND callback = ?""",
                (attempts, _to_text(due), error, topic, callback),
            )

    # -- plumbing -------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._write("creating the schema") as conn:
            conn.lock_schema()  # replicas starting together migrate one after the other
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"state database {self._where} has schema version {current}, newer than this"
                    f" feedworker knows ({SCHEMA_VERSION}); upgrade feedworker"
                )
            for version in sorted(v for v in _MIGRATIONS if v > current):
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Serialise access and turn the driver's errors into a StoreError that says where."""
        with self._lock:
            try:
                yield
            except self._db.errors as exc:
                raise StoreError(f"state database {self._where}: {doing}: {exc}") from exc

    @contextmanager
    def transaction(self, doing: str) -> Iterator[None]:
        """The writes made inside as one transaction: all committed at the end, or none when
        anything raises (one commit instead of one a write: a run stores its articles so).
        Holds the store's lock throughout, so other threads wait; keep it free of awaits."""
        with self._write(doing):
            self._joined += 1
            try:
                yield
            finally:
                self._joined -= 1

    @contextmanager
    def _write(self, doing: str) -> Iterator[Database]:
        """One write transaction: committed on success, rolled back when anything raises;
        inside `transaction`, part of that one instead.

        The connection is in autocommit mode; the explicit begin (BEGIN IMMEDIATE on SQLite)
        takes the write lock up front, so a read-then-write method never meets a lock upgrade
        failure halfway."""
        with self._guard(doing):
            if self._joined:  # this thread holds the lock: the transaction is its own
                yield self._db
                return
            self._db.begin()
            try:
                yield self._db
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise

    def _one(self, sql: str, params: Params) -> Row | None:
        with self._guard("reading"):
            row: Row | None = self._db.execute(sql, params).fetchone()
            return row

    def _rows_by_source(
        self, table: str, columns: str, source_ids: Iterable[str] | None
    ) -> list[Row]:
        """`columns` (the first: source_id) of the rows of `table` for these sources (None: for
        every source), ordered by id: one query per `IN_LIST_SIZE` ids, or for more than
        `WHOLE_TABLE_ABOVE` of them one read of the table (it beats hundreds of IN lists)."""
        if source_ids is not None and not isinstance(source_ids, Collection):
            source_ids = list(source_ids)
        if source_ids is None or len(source_ids) > WHOLE_TABLE_ABOVE:
            rows = self._all(f"SELECT {columns} FROM {table} ORDER BY source_id", ())
            if source_ids is None:
                return rows
            wanted = set(source_ids)
            return [row for row in rows if row[0] in wanted]
        found = [
            row
            for marks, chunk in _in_lists(source_ids)
            for row in self._all(
                f"SELECT {columns} FROM {table} WHERE source_id IN ({marks})", chunk
            )
        ]
        return sorted(found, key=lambda row: str(row[0]))

    def _all(self, sql: str, params: Params) -> list[Row]:
        with self._guard("reading"):
            return self._db.execute(sql, params).fetchall()


def _in_lists(values: Iterable[str]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """("?, ?, …", chunk) for `IN (…)` lists of at most `IN_LIST_SIZE` values each (SQLite and
    PostgreSQL cap the parameters of one statement)."""
    pending = list(dict.fromkeys(values))
    for start in range(0, len(pending), IN_LIST_SIZE):
        chunk = tuple(pending[start : start + IN_LIST_SIZE])
        yield ", ".join("?" * len(chunk)), chunk


def _to_text(moment: datetime) -> str:
    """ISO 8601 UTC with a fixed shape; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def _from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _maybe_from_text(text: str | None) -> datetime | None:
    return None if text is None else _from_text(text)


def _item_row(item: Item) -> tuple[object, ...]:
    return (
        item.source_id,
        item.guid,
        item.url,
        item.title,
        item.content_html,
        item.content_hash,
        _to_text(item.first_seen),
        _to_text(item.published),
        _to_text(item.updated),
        json.dumps(list(item.authors)),
        item.summary,
        item.image,
        json.dumps(list(item.categories)),
        item.filtered,
    )


_SIGN_BIT = 1 << 63


def _signed(value: int) -> int:
    """SQLite integers are signed 64-bit: a SimHash is stored in two's complement."""
    return value - (1 << 64) if value >= _SIGN_BIT else value


def _unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def _simhash_columns(simhash: int | None) -> tuple[int | None, ...]:
    """simhash, band0..band3 as stored; all NULL when there is no SimHash."""
    if simhash is None:
        return (None,) * (BANDS + 1)
    return (_signed(simhash), *bands(simhash))


def _identity_from_row(row: Row) -> Identity:
    source_id, guid, digest, simhash, pruned = row
    return Identity(
        source_id=source_id,
        guid=guid,
        content_hash=digest,
        simhash=None if simhash is None else _unsigned(simhash),
        pruned=pruned is not None,
    )


def _item_from_row(row: Row) -> Item:
    (source_id, guid, url, title, html, digest, first_seen, published, updated) = row[:9]
    authors, summary, image, categories, filtered = row[9:]
    return Item(
        source_id=source_id,
        guid=guid,
        url=url,
        title=title,
        content_html=html,
        content_hash=digest,
        first_seen=_from_text(first_seen),
        published=_from_text(published),
        updated=_from_text(updated),
        authors=tuple(json.loads(authors)),
        summary=summary,
        image=image,
        categories=tuple(json.loads(categories)),
        filtered=filtered,
    )


def _subscription_from_row(row: Sequence[Any]) -> Subscription:
    topic, callback, host, secret, lease, expires, created = row
    return Subscription(
        topic, callback, host, secret, int(lease), _from_text(expires), _from_text(created)
    )


def _state_from_row(row: Row) -> SourceState:
    source_id, last_run, last_success, last_error, failures, items_new, next_run = row
    return SourceState(
        source_id=source_id,
        last_run=_maybe_from_text(last_run),
        last_success=_maybe_from_text(last_success),
        last_error=last_error,
        consecutive_failures=failures,
        items_new_last_run=items_new,
        next_run=_maybe_from_text(next_run),
    )


def _health_json(health: RunHealth) -> str:
    """A compact JSON object: the run's time, and every field that differs from its default (a 0
    where the default is None, "the selector matched nothing", must survive the round trip)."""
    record = {
        f.name: getattr(health, f.name)
        for f in dataclasses.fields(health)
        if f.name != "at" and getattr(health, f.name) != _field_default(f)
    }
    record["at"] = _to_text(health.at)
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def _field_default(f: dataclasses.Field[object]) -> object:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _health_from_json(text: str) -> RunHealth:
    """A stored row back; keys this version does not know (a newer writer's) are ignored."""
    record = json.loads(text)
    known = {f.name for f in dataclasses.fields(RunHealth)}
    values = {key: value for key, value in record.items() if key in known and key != "at"}
    return RunHealth(at=_from_text(record["at"]), **values)


def _source_health_from_row(row: Row) -> SourceHealth:
    source_id, state, reasons, since, checked = row
    return SourceHealth(
        source_id=source_id,
        state=state,
        reasons=tuple(json.loads(reasons)),
        since=_from_text(since),
        checked=_from_text(checked),
    )
