"""The state backend the suite runs on: the tests choose it, the product never looks.

    .venv/bin/python -m pytest                            # SQLite
    .ci/postgres.sh .venv/bin/python -m pytest            # the same suite on PostgreSQL
    FEEDWORKER_TEST_POSTGRES_URL=postgresql://… pytest    # on a server of your own

With `FEEDWORKER_TEST_POSTGRES_URL` set (`SERVER_ENV`), `tests/conftest.py` creates a database of
its own on that server for the session, and gives every test a fresh schema of it, named in a
state URL (`?options=-csearch_path%3D<schema>`) that the test's worker reads the way an
operator's does: from `FEEDWORKER_STATE_URL`, which wins over the config's `state_url`. The
variable is in the test's environment, so the `feedworker` subprocesses a test starts read it
too; tests that hand a process or `load_config` an environment of their own add `state_env()`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_ENV = "FEEDWORKER_TEST_POSTGRES_URL"  # the harness's variable; worker/ never reads it
STATE_ENV = "FEEDWORKER_STATE_URL"  # the product's own override of [worker] state_url
SERVER_URL: str | None = os.environ.get(SERVER_ENV) or None
ON_POSTGRES = SERVER_URL is not None


@dataclass
class Session:
    """The PostgreSQL pass's database (conftest creates it and drops it at the end)."""

    database: str | None = None  # its URL
    admin: Any = None  # a connection to it, for each test's schema


SESSION = Session()


def new_state_url() -> str:
    """A fresh, empty schema of the session's database, as a state URL (PostgreSQL pass only)."""
    assert SESSION.database is not None and SESSION.admin is not None
    schema = f"t_{uuid.uuid4().hex[:16]}"
    SESSION.admin.execute(f'CREATE SCHEMA "{schema}"')
    return schema_url(SESSION.database, schema)


@contextlib.contextmanager
def own_state() -> Iterator[None]:
    """Within: a state of its own for the workers a test starts and the configs it loads, for a
    test that compares runs on separate states (on SQLite each config's own file is separate
    already; on PostgreSQL the test's schema is swapped for a fresh one, and back)."""
    if not ON_POSTGRES or STATE_ENV not in os.environ:
        yield
        return
    before = os.environ[STATE_ENV]
    os.environ[STATE_ENV] = new_state_url()
    try:
        yield
    finally:
        os.environ[STATE_ENV] = before


def state_env() -> dict[str, str]:
    """The backend's part of an environment built from scratch: the test's state URL on the
    PostgreSQL pass, nothing on SQLite."""
    url = os.environ.get(STATE_ENV)
    return {STATE_ENV: url} if ON_POSTGRES and url else {}


def admin_connect(url: str) -> Any:  # psycopg is optional: imported here, untyped
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def create_database(server_url: str, prefix: str = "fwtest") -> str:
    """A new empty database on the server; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin_connect(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    with admin_connect(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(server_url: str, name: str) -> str:
    base, _, query = server_url.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name
    return f"{url}?{query}" if query else url


def schema_url(database: str, schema: str) -> str:
    """A state URL naming one schema of `database`, through libpq's `options` parameter."""
    joiner = "&" if "?" in database else "?"
    return f"{database}{joiner}options=-csearch_path%3D{schema}"


def state_url_of(sqlite_file: Path) -> str:
    """The state a test's worker used when its config names `sqlite_file`: that file, or on the
    PostgreSQL pass the test's schema (`FEEDWORKER_STATE_URL` wins over the config)."""
    return os.environ.get(STATE_ENV) or f"sqlite:///{sqlite_file}"
