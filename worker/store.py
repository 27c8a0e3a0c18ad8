"""The worker's state in SQLite; the only module that speaks SQL.

What is kept: HTTP cache validators per URL, the article URLs already handled per source, the
published items, per-source run state, and the block fingerprints a source's pages share (so the
extractor can learn a site's template).

Why SQLite: one file, no server, and in WAL mode with `synchronous=NORMAL` it kept every committed
transaction across `kill -9` (see FIELD-NOTES). One process owns the file: never on NFS, never
shared between replicas. Each mutating method is one transaction (`BEGIN IMMEDIATE` … commit, or
rollback when anything raises), so a crash or an error leaves the database consistent.

Datetimes are stored as ISO 8601 UTC text with a fixed shape (`2024-05-01T08:30:00.000000Z`), so
text order is time order, and come back timezone-aware UTC.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from worker.errors import StoreError
from worker.models import Item, RunReport, Validators
from worker.simhash import BANDS, band_probes, bands, hamming

# How long a writer waits for a lock held by another connection before giving up.
BUSY_TIMEOUT_MS = 5000
# Rows of (fingerprint, page) kept per source: about 100 recent pages of ~40 blocks, plenty to
# see a template recur, small enough that a source with endless pages cannot grow the file.
MAX_BLOCK_ROWS_PER_SOURCE = 4000

_MEMORY = ":memory:"

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
    # the bands (see worker.simhash) instead of scanning. `checked` is the last update check.
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
}
SCHEMA_VERSION = max(_MIGRATIONS)

_ITEM_COLUMNS = (
    "source_id, guid, url, title, content_html, content_hash,"
    " first_seen, published, updated, authors, summary, image, categories"
)

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
class Identity:
    """What the store keeps of an item for ever: enough to recognise it, even once pruned."""

    source_id: str
    guid: str
    content_hash: str
    simhash: int | None  # None for items stored before SimHashes were kept
    pruned: bool  # a tombstone: the item's content is gone, its identity stays


@dataclass(frozen=True, slots=True)
class NearMatch:
    """A stored item whose SimHash is within the asked distance of a new text's."""

    source_id: str
    guid: str
    distance: int


class Store:
    """The state database. Safe to call from several threads (calls are serialised)."""

    def __init__(self, conn: sqlite3.Connection, where: str) -> None:
        self._conn = conn
        self._where = where
        self._lock = threading.RLock()

    @classmethod
    def open(cls, state_url: str) -> Store:
        """Open (creating folder, file and schema as needed) the database `state_url` names."""
        path = _sqlite_path(state_url)
        try:
            if path != _MEMORY:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open state database {path}: {exc}") from exc
        store = cls(conn, path)
        try:
            store._configure()
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- HTTP cache validators ------------------------------------------------------------

    def get_validators(self, url: str) -> Validators | None:
        row = self._one("SELECT etag, last_modified FROM validators WHERE url = ?", (url,))
        return None if row is None else Validators(etag=row[0], last_modified=row[1])

    def save_validators(self, url: str, validators: Validators) -> None:
        with self._write("saving validators") as conn:
            conn.execute(
                """INSERT INTO validators (url, etag, last_modified) VALUES (?, ?, ?)
                   ON CONFLICT (url) DO UPDATE
                   SET etag = excluded.etag, last_modified = excluded.last_modified""",
                (url, validators.etag, validators.last_modified),
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

    def has_item(self, source_id: str, guid: str) -> bool:
        sql = "SELECT 1 FROM items WHERE source_id = ? AND guid = ?"
        return self._one(sql, (source_id, guid)) is not None

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

    def add_item(self, item: Item) -> bool:
        """Insert `item`; False (and nothing written) when its GUID or its text is already there.

        Idempotent, so a re-run, a retry after a crash or a second replica never makes a second
        item of one article.
        """
        with self._write("adding an item") as conn:
            cursor = conn.execute(
                f"INSERT INTO items ({_ITEM_COLUMNS}) VALUES ({', '.join('?' * 13)})"
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
        with self._write("updating an item") as conn:
            cursor = conn.execute(
                """UPDATE OR IGNORE items
                   SET url = ?, title = ?, content_html = ?, content_hash = ?, published = ?,
                       updated = ?, authors = ?, summary = ?, image = ?, categories = ?
                   WHERE source_id = ? AND guid = ? AND content_hash != ?""",
                (
                    item.url,
                    item.title,
                    item.content_html,
                    item.content_hash,
                    _to_text(item.published),
                    _to_text(item.updated),
                    json.dumps(list(item.authors)),
                    item.summary,
                    item.image,
                    json.dumps(list(item.categories)),
                    item.source_id,
                    item.guid,
                    item.content_hash,
                ),
            )
            if cursor.rowcount != 1:
                return False
            self._set_signature(conn, item.source_id, item.guid, item.content_hash, item.simhash)
            return True

    def rehash(self, source_id: str, guid: str, content_hash: str, simhash: int | None) -> None:
        """Store a new hash of unchanged text (after a change of hash version); no republish."""
        with self._write("rehashing an item") as conn:
            conn.execute(
                "UPDATE OR IGNORE items SET content_hash = ? WHERE source_id = ? AND guid = ?",
                (content_hash, source_id, guid),
            )
            self._set_signature(conn, source_id, guid, content_hash, simhash)

    @staticmethod
    def _set_signature(
        conn: sqlite3.Connection, source_id: str, guid: str, content_hash: str, simhash: int | None
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
        `older_than`; their identities stay as tombstones. Returns how many were pruned."""
        with self._write("pruning items") as conn:
            doomed = [
                row[0]
                for row in conn.execute(
                    """SELECT guid FROM items WHERE source_id = ? AND first_seen < ?
                         AND guid NOT IN (
                           SELECT guid FROM items WHERE source_id = ?
                           ORDER BY published DESC, first_seen DESC, guid ASC LIMIT ?)""",
                    (source_id, _to_text(older_than), source_id, keep_newest),
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
        """The newest `limit` items: by published, then first seen, newest first; then GUID."""
        rows = self._all(
            f"""SELECT {_ITEM_COLUMNS} FROM items WHERE source_id = ?
                ORDER BY published DESC, first_seen DESC, guid ASC LIMIT ?""",
            (source_id, limit),
        )
        return [_item_from_row(row) for row in rows]

    def recent_items(self, limit: int) -> list[Item]:
        """The newest `limit` items over all sources, in feed order (for the combined feed)."""
        rows = self._all(
            f"""SELECT {_ITEM_COLUMNS} FROM items
                ORDER BY published DESC, first_seen DESC, guid ASC, source_id ASC LIMIT ?""",
            (limit,),
        )
        return [_item_from_row(row) for row in rows]

    def count_items(self, source_id: str) -> int:
        row = self._one("SELECT COUNT(*) FROM items WHERE source_id = ?", (source_id,))
        return 0 if row is None else int(row[0])

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
                       last_success = COALESCE(excluded.last_success, last_success),
                       last_error = excluded.last_error,
                       consecutive_failures = CASE WHEN excluded.consecutive_failures = 0
                           THEN 0 ELSE consecutive_failures + 1 END,
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

    def source_states(self) -> list[SourceState]:
        rows = self._all(f"SELECT {_STATE_COLUMNS} FROM source_state ORDER BY source_id", ())
        return [_state_from_row(row) for row in rows]

    # -- site template learning -----------------------------------------------------------

    def record_blocks(self, source_id: str, page_url: str, fingerprints: Iterable[str]) -> None:
        """Note that `page_url` holds these blocks; keeps the most recently seen rows only."""
        unique = sorted(set(fingerprints))
        if not unique:
            return
        with self._write("recording block fingerprints") as conn:
            (seen,) = conn.execute(
                "SELECT COALESCE(MAX(seen), 0) + 1 FROM block_pages WHERE source_id = ?",
                (source_id,),
            ).fetchone()
            conn.executemany(
                """INSERT INTO block_pages (source_id, fingerprint, page_url, seen)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT (source_id, fingerprint, page_url)
                   DO UPDATE SET seen = excluded.seen""",
                [(source_id, fingerprint, page_url, seen) for fingerprint in unique],
            )
            conn.execute(
                """DELETE FROM block_pages WHERE rowid IN (
                       SELECT rowid FROM block_pages WHERE source_id = ?
                       ORDER BY seen DESC, fingerprint, page_url LIMIT -1 OFFSET ?)""",
                (source_id, MAX_BLOCK_ROWS_PER_SOURCE),
            )

    def boilerplate_blocks(self, source_id: str, min_pages: int = 2) -> frozenset[str]:
        """Fingerprints seen on at least `min_pages` distinct pages of the source."""
        rows = self._all(
            """SELECT fingerprint FROM block_pages WHERE source_id = ?
               GROUP BY fingerprint HAVING COUNT(*) >= ?""",
            (source_id, min_pages),
        )
        return frozenset(row[0] for row in rows)

    # -- plumbing -------------------------------------------------------------------------

    def _configure(self) -> None:
        with self._guard("configuring"):
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() not in ("wal", "memory"):
                raise StoreError(f"state database {self._where}: WAL mode refused ({mode})")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _migrate(self) -> None:
        with self._write("creating the schema") as conn:
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
        """Serialise access and turn sqlite3's errors into a StoreError that says where."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StoreError(f"state database {self._where}: {doing}: {exc}") from exc

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back when anything raises.

        Explicit BEGIN IMMEDIATE (the connection is in autocommit mode) takes the write lock up
        front, so a read-then-write method never meets a lock upgrade failure halfway."""
        with self._guard(doing):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.commit()
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.rollback()
                raise

    def _one(self, sql: str, params: tuple[object, ...]) -> tuple | None:
        with self._guard("reading"):
            return self._conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: tuple[object, ...] | dict[str, object]) -> list[tuple]:
        with self._guard("reading"):
            return self._conn.execute(sql, params).fetchall()


def _sqlite_path(state_url: str) -> str:
    """The file path (or ":memory:") a state URL names; refuse what we cannot open."""
    if state_url in (_MEMORY, "sqlite://", "sqlite:///:memory:"):
        return _MEMORY
    if state_url.startswith(("postgresql:", "postgres:")):
        raise StoreError(
            "PostgreSQL state is not supported yet; use a SQLite URL such as"
            " sqlite:////var/lib/feedworker/state.db"
        )
    prefix = "sqlite:///"
    if not state_url.startswith(prefix) or len(state_url) == len(prefix):
        raise StoreError(
            f"state URL {state_url!r} is not understood; use sqlite:////absolute/path.db,"
            " sqlite:///relative/path.db or :memory:"
        )
    # sqlite:////abs/path.db -> /abs/path.db; sqlite:///rel.db -> rel.db (as SQLAlchemy reads them)
    return state_url[len(prefix) :]


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


def _identity_from_row(row: tuple) -> Identity:
    source_id, guid, digest, simhash, pruned = row
    return Identity(
        source_id=source_id,
        guid=guid,
        content_hash=digest,
        simhash=None if simhash is None else _unsigned(simhash),
        pruned=pruned is not None,
    )


def _item_from_row(row: tuple) -> Item:
    (source_id, guid, url, title, html, digest, first_seen, published, updated) = row[:9]
    authors, summary, image, categories = row[9:]
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
    )


def _state_from_row(row: tuple) -> SourceState:
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
