"""`feedworker try SOURCE_ID`: one source end to end, writing nothing.

The run is the real pipeline (`run_source`) over two stand-ins:
- `DryRunStore`, a `Store` whose every write transaction is rolled back (so no write method, even
  one added later, can change the database), which remembers the items it was asked to add or
  update, answers with no cache validators (so nothing is a 304), and with `fresh` forgets which
  article URLs are known (so every listed article is fetched and extracted);
- a `RunContext` with `dry_run=True`: no feed files are written, no health transition is logged.

What the run found is in its `RunReport` (statuses, per-article traces, health verdict) and the
listing it read; `TryResult` holds them for the CLI to print.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from worker.config import Config, Source
from worker.fetch import Fetcher, FetchOptions
from worker.listing import Listing
from worker.models import Item, RunReport, Validators
from worker.pipeline import RunContext, run_source
from worker.store import Store

__all__ = ["DryRunStore", "TryResult", "try_source"]

MEMORY_STATE = ":memory:"  # a source never run, with no state database yet: start from nothing


class _RolledBack(Exception):
    """Raised inside a dry run's write transaction so that `Store._write` rolls it back."""


class DryRunStore(Store):
    """A read-only view of the state: reads as usual, every write rolled back and noted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Off while `open` creates or checks the schema (a database of an older feedworker is
        # upgraded, as by any command); `dry_store` turns it on before anything else happens.
        self.dry = False
        self.fresh = False
        self.added: list[Item] = []
        self.updated: list[Item] = []
        self.writes = 0  # write transactions attempted (and rolled back)

    @classmethod
    def dry_store(cls, state_url: str, *, fresh: bool = False) -> DryRunStore:
        store = cls.open(state_url)
        assert isinstance(store, DryRunStore)
        store.dry, store.fresh = True, fresh
        return store

    @contextmanager
    def _write(self, doing: str) -> Iterator[Any]:
        if not self.dry:
            with super()._write(doing) as conn:
                yield conn
            return
        try:
            with super()._write(doing) as conn:
                yield conn
                self.writes += 1
                raise _RolledBack
        except _RolledBack:
            pass

    def get_validators(self, url: str) -> Validators | None:
        return None  # a dry run wants to see the pages, not a 304

    def known_url(self, source_id: str, url: str) -> str | None:
        return None if self.fresh else super().known_url(source_id, url)

    def add_item(self, item: Item) -> bool:
        added = super().add_item(item)
        if added:
            self.added.append(item)
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


async def try_source(
    config: Config,
    source: Source,
    *,
    fresh: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TryResult:
    """Run `source` once against a read-only view of the state; nothing is written."""
    settings = config.settings
    path = settings.sqlite_path
    state_url = MEMORY_STATE if path is not None and not path.exists() else settings.state_url
    store = DryRunStore.dry_store(state_url, fresh=fresh)
    try:
        before = store.source_health(source.id)
        listings: list[Listing] = []
        async with Fetcher(FetchOptions.from_settings(settings), transport=transport) as fetcher:
            ctx = RunContext(settings, fetcher, store, dry_run=True, on_listing=listings.append)
            report = await run_source(source, ctx)
    finally:
        store.close()
    return TryResult(
        source,
        report,
        listings,
        store.added,
        store.updated,
        before.state if before is not None else "ok",
    )
