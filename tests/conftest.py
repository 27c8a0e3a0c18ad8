"""The state backend the suite runs on (`tests/backend.py` says how it is chosen), and fixtures.

Tests about the SQLite file itself (WAL mode, paths, a file edited with sqlite3) run on SQLite in
both passes: they are listed in SQLITE_FILE_TESTS, or marked `sqlite_file`. Every other test runs
on the pass's backend: on the PostgreSQL pass each test gets a fresh schema (`state_url`, and
`FEEDWORKER_STATE_URL` in its environment), and a store opened on SQLite fails the test, so no
test runs on SQLite there unnoticed. Tests that need PostgreSQL whatever the pass
(tests/test_postgres*.py, tests/test_cluster*.py) take the `postgres_server` fixture: without a
server they are skipped with the reason shown in the summary. `make test` runs the suite a second
time through .ci/postgres.sh, and fails when PostgreSQL is missing and
`FEEDWORKER_REQUIRE_POSTGRES=1` (CI sets it), so CI never passes without them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.backend import (
    SERVER_ENV,
    SERVER_URL,
    SESSION,
    STATE_ENV,
    admin_connect,
    create_database,
    drop_database,
    new_state_url,
)
from worker.store.db import is_postgres_url
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
    f"no PostgreSQL server: set {SERVER_ENV}, or run"
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_file: runs on SQLite whatever the pass")
    if SERVER_URL and not hasattr(config, "workerinput"):
        SESSION.database = create_database(SERVER_URL)
        SESSION.admin = admin_connect(SESSION.database)


def pytest_unconfigure(config: pytest.Config) -> None:
    if SERVER_URL and SESSION.database:
        SESSION.admin.close()
        drop_database(SERVER_URL, SESSION.database)


def pytest_report_header(config: pytest.Config) -> str:
    if SERVER_URL:
        return f"state backend: PostgreSQL ({SESSION.database}); SQLite-file tests stay on SQLite"
    return f"state backend: SQLite (PostgreSQL-only tests skip: no {SERVER_ENV})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("[", 1)[0] in SQLITE_FILE_TESTS:
            item.add_marker(pytest.mark.sqlite_file)


@pytest.fixture(autouse=True)
def _state_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The test's state: its configs' own (SQLite) on the SQLite pass; on the PostgreSQL pass a
    fresh schema named by FEEDWORKER_STATE_URL, every store closed afterwards, and a store
    opened on SQLite a failure (unless the test is about the SQLite file)."""
    monkeypatch.delenv(STATE_ENV, raising=False)  # the developer's own never leaks in
    if not SERVER_URL or request.node.get_closest_marker("sqlite_file"):
        yield
        return
    monkeypatch.setenv(STATE_ENV, new_state_url())
    opened: list[Store] = []
    on_sqlite: list[str] = []
    real_open = Store.open.__func__  # type: ignore[attr-defined]

    def tracked_open(cls: type[Store], state_url: str) -> Store:
        store = real_open(cls, state_url)
        opened.append(store)
        if not is_postgres_url(state_url):
            on_sqlite.append(state_url)
        return store

    monkeypatch.setattr(Store, "open", classmethod(tracked_open))
    yield
    for store in opened:  # a test that forgets to close must not exhaust the server's slots
        store.close()
    if on_sqlite:
        pytest.fail(
            f"opened a SQLite state on the PostgreSQL pass: {on_sqlite}; take the `state_url`"
            " fixture (or `state_env()`), or mark the test sqlite_file"
        )


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    """The test's state database: a SQLite file in `tmp_path`, or on the PostgreSQL pass the
    test's own schema."""
    return os.environ.get(STATE_ENV) or f"sqlite:///{tmp_path}/state/feedworker.db"


@pytest.fixture
def store(state_url: str) -> Iterator[Store]:
    """The test's state database, open (`state_url`), closed after the test."""
    opened = Store.open(state_url)
    yield opened
    opened.close()


@pytest.fixture
def postgres_server() -> str:
    """The PostgreSQL server URL; the test is skipped, with the reason, without one."""
    if not SERVER_URL:
        pytest.skip(NO_SERVER)
    return SERVER_URL


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
