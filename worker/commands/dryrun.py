"""`feedworker try SOURCE_ID`: one source end to end, writing nothing.

The run is the real pipeline (`run_source`) over two stand-ins:
- `DryRunStore`, a `Store` over a private copy of the state, so the run reads its own writes as a
  real run does (first-run template learning, a second page with the same text is a duplicate)
  and no write method, even one added later, can reach the real database. It remembers the items
  it was asked to add or update, answers with no cache validators (so nothing is a 304), and with
  `fresh` forgets which article URLs are known (so every listed article is fetched and extracted);
- a `RunContext` with `dry_run=True`: no feed files are written, no health transition is logged.

The private copy, by backend:
- SQLite: `sqlite3.Connection.backup` copies the state file into a temporary file (deleted at
  close); a source never run, with no state file yet, starts from an empty in-memory database;
- PostgreSQL: there is no cheap private copy, so each write transaction is rolled back as it
  happens, and later reads in the run do not see earlier writes (a `try` of a never-run source
  can then differ from a real run). One outer transaction rolled back at the end would fix that,
  but it would hold the rows it wrote locked for the whole run (minutes of fetching), and the
  replicas' own writes to that source, made on their event loops, would wait for it.

What the run found is in its `RunReport` (statuses, per-article traces, health verdict) and the
listing it read; `TryResult` holds them for the CLI to print.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from worker.config import Config, Source
from worker.errors import StoreError
from worker.fetch.client import Fetcher, FetchOptions
from worker.listing.lister import Listing
from worker.models import Item, RunReport, Validators
from worker.pipeline import RunContext, run_source
from worker.render import Renderer, RendererOptions
from worker.store.db import BUSY_TIMEOUT_MS
from worker.store.state import Store

__all__ = ["DryRunStore", "TryResult", "try_source"]

MEMORY_STATE = ":memory:"  # a source never run, with no state database yet: start from nothing


class _RolledBack(Exception):
    """Raised inside a dry run's write transaction so that `Store._write` rolls it back."""


class DryRunStore(Store):
    """The state as a real run would see it, on a copy that is thrown away at `close`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # PostgreSQL only (see the module notes). Off while `open` creates or checks the schema
        # (a database of an older feedworker is upgraded, as by any command).
        self.roll_back_writes = False
        self.fresh = False
        self.added: list[Item] = []
        self.updated: list[Item] = []
        self.filtered: list[Item] = []  # added, and left out of the feed by the source's filters
        self._copy_dir: Path | None = None  # the temporary folder holding a SQLite copy

    @classmethod
    def dry_store(
        cls, state_url: str, sqlite_file: Path | None, *, fresh: bool = False
    ) -> DryRunStore:
        """A store for one dry run over `state_url`, whose SQLite file (if any) is `sqlite_file`."""
        if sqlite_file is not None and not sqlite_file.exists():
            store = cls._open(MEMORY_STATE)  # never run, no state yet: start from nothing
        elif sqlite_file is not None:
            store = cls._open_copy(sqlite_file)
        else:
            store = cls._open(state_url)
            store.roll_back_writes = True
        store.fresh = fresh
        return store

    @classmethod
    def _open(cls, state_url: str) -> DryRunStore:
        store = cls.open(state_url)
        assert isinstance(store, DryRunStore)
        return store

    @classmethod
    def _open_copy(cls, sqlite_file: Path) -> DryRunStore:
        folder = Path(tempfile.mkdtemp(prefix="feedworker-try-"))
        try:
            copy = folder / "state.db"
            _copy_sqlite(sqlite_file, copy)
            store = cls._open(f"sqlite:///{copy}")  # an older schema is upgraded on the copy only
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        store._copy_dir = folder
        return store

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._copy_dir is not None:
                shutil.rmtree(self._copy_dir, ignore_errors=True)
                self._copy_dir = None

    @contextmanager
    def _write(self, doing: str) -> Iterator[Any]:
        if not self.roll_back_writes:
            with super()._write(doing) as conn:
                yield conn
            return
        try:
            with super()._write(doing) as conn:
                yield conn
                raise _RolledBack
        except _RolledBack:
            pass

    def get_validators(self, source_id: str, url: str, variant: str = "") -> Validators | None:
        return None  # a dry run wants to see the pages, not a 304

    def known_url(self, source_id: str, url: str) -> str | None:
        return None if self.fresh else super().known_url(source_id, url)

    def add_item(self, item: Item) -> bool:
        added = super().add_item(item)
        if added:
            (self.added if item.filtered is None else self.filtered).append(item)
        return added

    def update_item(self, item: Item) -> bool:
        updated = super().update_item(item)
        if updated:
            self.updated.append(item)
        return updated


@dataclass(slots=True)
class TryResult:
    source: Source
    report: RunReport
    listings: list[Listing] = field(default_factory=list)
    would_add: list[Item] = field(default_factory=list)
    would_update: list[Item] = field(default_factory=list)
    health_before: str = "ok"
    would_filter: list[Item] = field(default_factory=list)  # stored unpublished, with reasons


async def try_source(
    config: Config,
    source: Source,
    *,
    fresh: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    fetcher: Fetcher | None = None,
) -> TryResult:
    """Run `source` once against a private copy of the state; nothing is written. `fetcher`:
    one the caller already fetches with (its politeness and robots.txt cache carry over; it is
    not closed), else one of its own over `transport`."""
    settings = config.settings
    store = DryRunStore.dry_store(settings.state_url, settings.sqlite_path, fresh=fresh)
    try:
        before = store.source_health(source.id)
        listings: list[Listing] = []
        renderer = Renderer(RendererOptions.from_settings(settings))  # started if needed
        async with contextlib.AsyncExitStack() as stack:
            if fetcher is None:
                options = FetchOptions.from_settings(settings)
                own = Fetcher(options, transport=transport, credentials=config.credentials)
                fetcher = await stack.enter_async_context(own)
            ctx = RunContext(settings, fetcher, store, dry_run=True, on_listing=listings.append)
            ctx.site_rules = config.site_rules
            ctx.renderer = renderer
            try:
                report = await run_source(source, ctx)
            finally:
                await renderer.aclose()
    finally:
        store.close()
    return TryResult(
        source,
        report,
        listings,
        store.added,
        store.updated,
        before.state if before is not None else "ok",
        store.filtered,
    )


def _copy_sqlite(source: Path, target: Path) -> None:
    """Copy the SQLite database `source` (WAL included) into `target`, a consistent snapshot.

    A plain connection, not a read-only one: closing it as the last one removes the -wal and
    -shm files it created, so the state folder is left byte-identical."""
    try:
        src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise StoreError(f"state database {source}: copying it for a dry run: {exc}") from exc
