"""The worker's long-lived objects (config, HTTP client, store) and how sources are run with them.

`Worker` is used as an async context manager by the CLI (`run`, `run --once`) and the scheduler
calls `Worker.run_source` for each due source. It enforces the two run-level rules: at most
`source_concurrency` sources at once, and never the same source twice at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType

import httpx

from worker.config import Config, Source
from worker.fetch import Fetcher, FetchOptions
from worker.logs import fields, log
from worker.models import RunReport
from worker.pipeline import RunContext, run_source, utc_now
from worker.publish import remove_stale_temp_files
from worker.schedule import SourceScheduler
from worker.store import Store


class Worker:
    def __init__(
        self,
        config: Config,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self._transport = transport
        self._clock = clock
        self._ctx: RunContext | None = None
        self._slots = asyncio.Semaphore(config.settings.source_concurrency)
        self._running: dict[str, asyncio.Lock] = {}
        self._active: set[asyncio.Task[object]] = set()

    async def __aenter__(self) -> Worker:
        settings = self.config.settings
        settings.feeds_dir.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_temp_files(settings.feeds_dir)
        if removed:
            log.info("removed stale temporary files", extra=fields(count=removed))
        store = Store.open(settings.state_url)
        fetcher = Fetcher(FetchOptions.from_settings(settings), transport=self._transport)
        self._ctx = RunContext(settings, fetcher, store, self._clock)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ctx is not None:
            await self._ctx.fetcher.aclose()
            self._ctx.store.close()
            self._ctx = None

    @property
    def ctx(self) -> RunContext:
        if self._ctx is None:
            raise RuntimeError("Worker used outside 'async with'")
        return self._ctx

    def sources(self, ids: Iterable[str] | None = None) -> list[Source]:
        """The enabled sources, or the named ones (which must exist: `Config.source` says if not)."""
        if ids is None:
            return [s for s in self.config.sources if s.enabled]
        return [self.config.source(i) for i in ids]

    async def run_source(self, source: Source) -> RunReport | None:
        """Run one source now; None when that source is already running (never twice at once)."""
        lock = self._running.setdefault(source.id, asyncio.Lock())
        if lock.locked():
            log.info("run skipped: still running", extra=fields(source=source.id))
            return None
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        try:
            async with lock, self._slots:
                return await run_source(source, self.ctx)
        finally:
            self._active.discard(task)  # type: ignore[arg-type]

    async def run_source_id(self, source_id: str) -> RunReport | None:
        """Run a source by id from the current config (the scheduler's entry point)."""
        source = next((s for s in self.config.sources if s.id == source_id), None)
        if source is None or not source.enabled:
            log.info("run skipped: source no longer configured", extra=fields(source=source_id))
            return None
        return await self.run_source(source)

    def last_run(self, source_id: str) -> datetime | None:
        state = self.ctx.store.source_state(source_id)
        return state.last_run if state is not None else None

    async def drain(self, grace: float) -> None:
        """Let runs in progress finish for up to `grace` seconds, then cancel what is left."""
        tasks = {t for t in self._active if not t.done()}
        if not tasks:
            return
        log.info("waiting for runs in progress", extra=fields(runs=len(tasks), grace_s=grace))
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def run_once(self, ids: Iterable[str] | None = None) -> list[RunReport]:
        """Run the chosen sources (default: every enabled one) once, concurrently."""
        reports = await asyncio.gather(*(self.run_source(s) for s in self.sources(ids)))
        return [r for r in reports if r is not None]


async def run_forever(worker: Worker, stop: asyncio.Event, *, grace: float = 30.0) -> None:
    """Run every enabled source on its schedule until `stop` is set, then wind down cleanly."""
    settings = worker.config.settings
    scheduler = SourceScheduler(
        worker.run_source_id,
        last_run=worker.last_run,
        misfire_grace_time=settings.misfire_grace_time,
    )
    scheduler.start(worker.config.sources)
    log.info("worker started", extra=fields(sources=len(worker.sources())))
    try:
        await stop.wait()
    finally:
        scheduler.shutdown()
        await worker.drain(grace)
        log.info("worker stopped")
