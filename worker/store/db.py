"""The state database connection and its dialect: SQLite (one process) or PostgreSQL (replicas).

`worker.store.state` writes one portable SQL text for both: `?` or `:name` placeholders, `ON
CONFLICT`,
`excluded.`, TEXT datetimes, no `rowid`, no `INSERT/UPDATE OR IGNORE`. A `Database` runs that text
on its backend, translating the few things that differ:

- placeholders: `?` and `:name` on SQLite; `%s` and `%(name)s` on PostgreSQL (`%` → `%%`);
- a write transaction: `BEGIN IMMEDIATE` on SQLite (takes the write lock up front); `BEGIN`;
- DDL: `INTEGER` is 64-bit on SQLite, `BIGINT` on PostgreSQL (simhashes are signed 64-bit);
  `INTEGER PRIMARY KEY` (SQLite's rowid alias) becomes an identity column; `BLOB` is `BYTEA`;
- connection set-up: WAL, `synchronous=NORMAL`, busy timeout on SQLite; nothing on PostgreSQL;
- concurrent migrations: one process owns a SQLite file; on PostgreSQL an advisory lock held by
  the migration transaction makes replicas starting together take turns.

Why a small adapter and not SQLAlchemy Core: the store's SQL already is portable apart from the
rows above, it stays readable as SQL, and one dependency fewer on the single-node path. psycopg 3
is imported only when a PostgreSQL URL is opened (the `postgres` extra). A URL is opened as it
is written: libpq's own parameters pick the rest (`?options=-csearch_path%3Dname` a schema).
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from worker.errors import StoreError
from worker.redact import redact_url

# How long a writer waits for a lock held by another connection before giving up.
BUSY_TIMEOUT_MS = 5000
# PostgreSQL: how long to wait for the server on connect.
CONNECT_TIMEOUT_S = 10
# Any fixed number: replicas starting together take turns migrating the schema.
_MIGRATION_LOCK = 7_150_901

MEMORY = ":memory:"

Params = Sequence[object] | dict[str, object]


class Cursor(Protocol):
    """What the store reads from a statement, on either backend's cursor."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


def is_postgres_url(state_url: str) -> bool:
    return state_url.startswith(("postgresql:", "postgres:", "postgresql+"))


class Database:
    """One connection, its dialect, and the errors it raises (callers turn them into StoreError)."""

    kind = ""
    errors: tuple[type[BaseException], ...] = ()

    def __init__(self, where: str) -> None:
        self.where = where

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        raise NotImplementedError

    def lock_schema(self) -> None:
        """Inside a transaction: wait until no other process is migrating this database."""

    def close(self) -> None:
        raise NotImplementedError


class SqliteDatabase(Database):
    kind = "sqlite"
    errors = (sqlite3.Error,)

    def __init__(self, conn: sqlite3.Connection, where: str) -> None:
        super().__init__(where)
        self._conn = conn

    @classmethod
    def open(cls, path: str) -> SqliteDatabase:
        try:
            if path != MEMORY:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open state database {path}: {exc}") from exc
        db = cls(conn, path)
        try:
            db._configure()
        except BaseException:
            conn.close()
            raise
        return db

    def _configure(self) -> None:
        try:
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() not in ("wal", "memory"):
                raise StoreError(f"state database {self.where}: WAL mode refused ({mode})")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise StoreError(f"state database {self.where}: configuring: {exc}") from exc

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._conn.executemany(sql, rows)

    def begin(self) -> None:
        # Takes the write lock up front, so a read-then-write method never meets a lock
        # upgrade failure halfway.
        self._conn.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.rollback()

    def close(self) -> None:
        self._conn.close()


class PostgresDatabase(Database):
    kind = "postgresql"

    def __init__(self, conninfo: str, where: str) -> None:
        import psycopg

        super().__init__(where)
        self.errors = (psycopg.Error,)
        self._psycopg = psycopg
        self._conninfo = conninfo
        self._conn = self._connect()
        self._in_transaction = False

    @classmethod
    def open(cls, state_url: str) -> PostgresDatabase:
        try:
            import psycopg  # only to say clearly when it is missing
        except ImportError as exc:
            raise StoreError(
                "PostgreSQL state needs psycopg: pip install 'feedworker[postgres]'"
            ) from exc
        conninfo = libpq_url(state_url)
        try:
            return cls(conninfo, redact(conninfo))
        except psycopg.Error as exc:
            raise StoreError(f"cannot open state database {redact(conninfo)}: {exc}") from exc

    def _connect(self) -> Any:
        return self._psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        )

    def _live(self) -> Any:
        """The connection, opened again when the server dropped it between transactions."""
        if self._conn.closed and not self._in_transaction and self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        cursor: Cursor = self._live().execute(to_pyformat(sql), params)
        return cursor

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        with self._live().cursor() as cursor:
            cursor.executemany(to_pyformat(sql), list(rows))

    def begin(self) -> None:
        self.execute("BEGIN")
        self._in_transaction = True

    def commit(self) -> None:
        self._in_transaction = False
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        self._in_transaction = False
        if not self._conn.closed:
            self._conn.execute("ROLLBACK")

    def lock_schema(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def close(self) -> None:
        self._conn.close()


def open_database(state_url: str) -> Database:
    """Open the database `state_url` names: sqlite:///…, :memory: or postgresql://…"""
    if is_postgres_url(state_url):
        return PostgresDatabase.open(state_url)
    return SqliteDatabase.open(sqlite_path(state_url))


class SingleWriterLock:
    """An exclusive lock on `<state file>.lock`, held by the one process that runs sources.

    Two workers on one SQLite file would both schedule every source (measured with APScheduler:
    every tick ran twice), so the second is refused. The lock is the kernel's (flock): a killed
    worker's goes with its process, no stale file to clean up. Readers (`status`, `serve`) take
    no lock.
    """

    def __init__(self, handle: int, path: Path) -> None:
        self._handle = handle
        self.path = path

    @classmethod
    def take(cls, database: Path) -> SingleWriterLock:
        path = database.with_name(database.name + ".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open lock file {path}: {exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(handle)
            raise StoreError(
                f"state database {database} is in use by another feedworker ({holder}): a SQLite"
                " state belongs to one worker; to run several replicas, use a PostgreSQL"
                " state_url with [worker] cluster = true"
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"pid {os.getpid()}\n".encode(), 0)
        return cls(handle, path)

    def release(self) -> None:
        if self._handle >= 0:
            os.close(self._handle)  # closing drops the lock
            self._handle = -1


def sqlite_path(state_url: str) -> str:
    """The file path (or ":memory:") a SQLite state URL names; refuse what we cannot open."""
    if state_url in (MEMORY, "sqlite://", "sqlite:///:memory:"):
        return MEMORY
    prefix = "sqlite:///"
    if not state_url.startswith(prefix) or len(state_url) == len(prefix):
        raise StoreError(
            f"state URL {state_url!r} is not understood; use sqlite:////absolute/path.db,"
            " sqlite:///relative/path.db, :memory: or postgresql://user@host/database"
        )
    # sqlite:////abs/path.db -> /abs/path.db; sqlite:///rel.db -> rel.db (as SQLAlchemy reads them)
    return state_url[len(prefix) :]


def libpq_url(state_url: str) -> str:
    """A URL libpq accepts: `postgres://` and SQLAlchemy's `postgresql+psycopg://` spellings too."""
    scheme, rest = state_url.split(":", 1)
    return "postgresql:" + rest if scheme != "postgresql" else state_url


def redact(url: str) -> str:
    """The URL for messages and logs: `worker.redact.redact_url` (no user:password, and no
    `?password=`, which libpq reads too)."""
    return redact_url(url)


# -- dialect -----------------------------------------------------------------------------------

# A quoted string, a placeholder, a literal percent sign, or a `:name` (never `::cast`).
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|%|(?<![:\w]):([A-Za-z_]\w*)")
_DDL = re.compile(r"\s*(CREATE|ALTER)\s+TABLE\b", re.IGNORECASE)
_ROWID_KEY = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", re.IGNORECASE)
_INTEGER = re.compile(r"\bINTEGER\b", re.IGNORECASE)
_BLOB = re.compile(r"\bBLOB\b", re.IGNORECASE)


def to_pyformat(sql: str) -> str:
    """The store's portable SQL as psycopg wants it (see the table at the top)."""
    if _DDL.match(sql):
        sql = _ROWID_KEY.sub("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", sql)
        sql = _BLOB.sub("BYTEA", _INTEGER.sub("BIGINT", sql))
    return _TOKEN.sub(_pyformat_token, sql)


def _pyformat_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if token == "?":
        return "%s"
    if token == "%":
        return "%%"
    if match.group(1) is not None:
        return f"%({match.group(1)})s"
    return token.replace("%", "%%")  # a string literal: placeholders stay, % is escaped
