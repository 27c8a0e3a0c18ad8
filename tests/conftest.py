"""The state backend the suite runs on: SQLite by default, PostgreSQL when a server is given.

    .venv/bin/python -m pytest                            # SQLite
    .ci/postgres.sh .venv/bin/python -m pytest            # the same suite on PostgreSQL
    FEEDWORKER_TEST_POSTGRES_URL=postgresql://… pytest    # on a server of your own

With `FEEDWORKER_TEST_POSTGRES_URL` set, the session creates a database of its own on that server
(dropped at the end) and points the variable at it; `worker.store.db` then opens every SQLite state URL
as a schema of that database (one per SQLite path), in this process and in the `feedworker`
subprocesses the tests start. So no test needs to know which backend it runs on.

Tests about the SQLite file itself (WAL mode, paths, a file edited with sqlite3) run on SQLite in
both passes: they are listed in SQLITE_FILE_TESTS. Tests that need PostgreSQL whatever the pass
(tests/test_postgres*.py, tests/test_cluster*.py) take the `postgres_server` fixture: without a
server they are skipped with the reason shown in the summary. `make test` runs the suite a second
time through .ci/postgres.sh, and fails when PostgreSQL is missing and
`FEEDWORKER_REQUIRE_POSTGRES=1` (CI sets it), so CI never passes without them.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from worker.store.db import TEST_POSTGRES_ENV
from worker.store.state import Store

# Property tests draw the same examples on every run ("ci", the default): a rare example found by
# chance must not fail a landing at random; it becomes an @example once found. No example
# database (nothing carried between runs or machines), no deadline and no too-slow health check
# (both wall-clock limits, which a busy machine breaks). HYPOTHESIS_PROFILE=explore draws new
# random examples, for looking for such cases on purpose.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NO_SERVER = (
    f"no PostgreSQL server: set {TEST_POSTGRES_ENV}, or run"
    " `.ci/postgres.sh .venv/bin/python -m pytest` (make test does)"
)

# Tests that inspect or damage the SQLite file with sqlite3 directly.
SQLITE_FILE_TESTS = {
    "tests/test_store.py::test_open_creates_folder_schema_and_wal",
    "tests/test_store.py::test_open_relative_path",
    "tests/test_store.py::test_newer_schema_is_refused",
    "tests/test_store.py::test_unusable_file_raises_store_error",
    "tests/test_store.py::test_blocks_are_bounded_dropping_least_recently_seen",
    "tests/test_store.py::test_migration_2_keeps_items_of_a_version_1_file_as_identities",
}

_server_url: str | None = os.environ.get(TEST_POSTGRES_ENV) or None
_session_db: str | None = None


def _admin_connect(url: str):  # psycopg is optional: imported here, untyped
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def create_database(server_url: str, prefix: str = "fwtest") -> str:
    """A new empty database on the server; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin_connect(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _database_url(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    with _admin_connect(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database_url(server_url: str, name: str) -> str:
    base, _, query = server_url.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name
    return f"{url}?{query}" if query else url


def pytest_configure(config: pytest.Config) -> None:
    global _session_db
    config.addinivalue_line("markers", "sqlite_file: runs on SQLite whatever the pass")
    if _server_url and not hasattr(config, "workerinput"):
        _session_db = create_database(_server_url)
        os.environ[TEST_POSTGRES_ENV] = _session_db


def pytest_unconfigure(config: pytest.Config) -> None:
    if _server_url and _session_db:
        os.environ[TEST_POSTGRES_ENV] = _server_url
        drop_database(_server_url, _session_db)


def pytest_report_header(config: pytest.Config) -> str:
    if _server_url:
        return f"state backend: PostgreSQL ({_session_db}); SQLite-file tests stay on SQLite"
    return "state backend: SQLite (PostgreSQL-only tests skip: no FEEDWORKER_TEST_POSTGRES_URL)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("[", 1)[0] in SQLITE_FILE_TESTS:
            item.add_marker(pytest.mark.sqlite_file)


@pytest.fixture(autouse=True)
def _state_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """On PostgreSQL: SQLite-file tests go back to SQLite; stores left open are closed."""
    if not _server_url:
        yield
        return
    if request.node.get_closest_marker("sqlite_file"):
        monkeypatch.delenv(TEST_POSTGRES_ENV)
        yield
        return
    opened: list[Store] = []
    real_open = Store.open.__func__  # type: ignore[attr-defined]

    def tracked_open(cls: type[Store], state_url: str) -> Store:
        store = real_open(cls, state_url)
        opened.append(store)
        return store

    monkeypatch.setattr(Store, "open", classmethod(tracked_open))
    yield
    for store in opened:  # a test that forgets to close must not exhaust the server's slots
        store.close()


@pytest.fixture
def postgres_server() -> str:
    """The PostgreSQL server URL; the test is skipped, with the reason, without one."""
    if not _server_url:
        pytest.skip(NO_SERVER)
    return _server_url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database of its own for one test, dropped afterwards."""
    url = create_database(postgres_server)
    try:
        yield url
    finally:
        drop_database(postgres_server, url)


@pytest.fixture(autouse=True)
def _restore_feedworker_logger() -> Iterator[None]:
    """`setup_logging` (every in-process `main()` call) stops the `feedworker` logger (and the
    loggers it routes: uvicorn, asyncio) from propagating; put them back after each test, so
    caplog sees their records whatever ran before."""
    loggers = [logging.getLogger(name) for name in ("feedworker", "uvicorn", "asyncio")]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


@pytest.fixture
def lexbor_inputs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text lexbor parses through `worker.extract.htmlparse` (all of feedworker's HTML parsing),
    recorded: a test bounds that work (its nesting, which lexbor's time is quadratic in) instead
    of timing it."""
    import worker.extract.htmlparse

    seen: list[str] = []
    real = worker.extract.htmlparse.LexborHTMLParser

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, html: str, *args: object, **kwargs: object) -> None:
            seen.append(html)
            super().__init__(html, *args, **kwargs)

    monkeypatch.setattr(worker.extract.htmlparse, "LexborHTMLParser", Recording)
    return seen
