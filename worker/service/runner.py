"""The worker's long-lived objects (config, HTTP client, store) and how sources are run with them.

`Worker` is used as an async context manager by the CLI (`run`, `run --once`, `demo`) and the
scheduler calls `Worker.run_source_id` for each due source. It enforces the two run-level rules:
at most `source_concurrency` sources at once, and never the same source twice at once. After each
run it counts the run in `Metrics` and the store records when the scheduler runs the source next.

`Service` is `feedworker run`: the scheduler over a worker, hot reload of the config folder, and
a clean stop (runs in progress get a grace period, then are cancelled). In cluster mode
(`[worker] cluster = true`) the scheduler queues each run for whichever replica takes it, and
feeds are published to the state database (see `worker.service.cluster`).

A SQLite state file belongs to one running worker: a second `feedworker run` on the same file is
refused (a lock file beside it), because two schedulers on one state run every source twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from types import TracebackType

import httpx

from worker.config import Config, Source
from worker.errors import FeedworkerError
from worker.fetch.client import Fetcher, FetchOptions
from worker.models import RunReport
from worker.pipeline import RunContext, run_source, utc_now
from worker.publish.files import FeedFolder, publish_combined, remove_stale_temp_files
from worker.publish.render import COMBINED_ID, FEED_MEDIA_TYPES, FEED_SUFFIXES, FeedMeta
from worker.render import Renderer, RendererOptions
from worker.service.cluster import ClusterNode, FeedTable
from worker.service.extractpool import make_extractor
from worker.service.logs import fields, log
from worker.service.memory import release_free_memory
from worker.service.metrics import Metrics
from worker.service.reload import (
    RESTART_ONLY_SETTINGS,
    ConfigWatcher,
    restart_only_changes,
    watch_config,
)
from worker.service.schedule import RunTimes, Scheduler, SourceScheduler, backoff_until
from worker.service.slots import SlotScheduler
from worker.service.webhook import notify_transition
from worker.service.websub import (
    SelfHub,
    WebSub,
    feed_file_reader,
    make_websub,
    stored_feed_reader,
)
from worker.store.db import SingleWriterLock
from worker.store.state import Store

RELOAD_INTERVAL = 1.0  # seconds between two looks at the config folder
# feeds/all.atom is rewritten at most this often while runs keep finishing (each rewrite reads
# and renders every source's newest items); `run --once` and a stop write the last changes.
COMBINED_INTERVAL = 5.0
TRIM_INTERVAL = 1.0  # seconds between two hand-backs of free memory while runs overlap

NextRunFn = Callable[[str], datetime | None]


def feed_media_type(name: str) -> str:
    """A feed file's media type, as the server sends it ("blog.atom" -> Atom's)."""
    return FEED_MEDIA_TYPES[name.rpartition(".")[2]]


ReportFn = Callable[[RunReport], None]


class Worker:
    def __init__(
        self,
        config: Config,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = utc_now,
        metrics: Metrics | None = None,
        websub_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        # WebSub (`websub_hub`): our own hub, or a ping of another, told when feeds change.
        self.websub: WebSub | None = None
        self._websub_transport = websub_transport
        self._notifying: set[asyncio.Task[object]] = set()
        self.on_report: ReportFn | None = None  # e.g. a progress bar
        self._transport = transport
        self._clock = clock
        self._ctx: RunContext | None = None
        self._next_run: NextRunFn = lambda _id: None
        self._slots = asyncio.Semaphore(config.settings.source_concurrency)
        self._running: dict[str, asyncio.Lock] = {}
        self._active: set[asyncio.Task[object]] = set()
        self._stopping = False  # set by `drain`: runs still waiting for a slot do not start
        self._writer_lock: SingleWriterLock | None = None
        self._combined_due: RunReport | None = None  # the last changing run not yet in all.atom
        self._combined_written = -math.inf  # loop time of the last all.atom rewrite
        self._combined_later: asyncio.TimerHandle | None = None
        self._trimmed = time.monotonic()  # when free memory was last handed back

    async def __aenter__(self) -> Worker:
        settings = self.config.settings
        settings.feeds_dir.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_temp_files(settings.feeds_dir)
        if removed:
            log.info("removed stale temporary files", extra=fields(count=removed))
        if settings.sqlite_path is not None:
            self._writer_lock = SingleWriterLock.take(settings.sqlite_path)
        try:
            store = Store.open(settings.state_url)
        except BaseException:
            self._release_writer_lock()
            raise
        fetcher = Fetcher(
            FetchOptions.from_settings(settings),
            transport=self._transport,
            credentials=self.config.credentials,
        )
        self._ctx = RunContext(
            settings,
            fetcher,
            store,
            self._clock,
            next_run=lambda sid: self._next_run(sid),
            feeds=FeedTable(store) if settings.cluster else None,
            extractor=make_extractor(settings.extract_workers),
            site_rules=self.config.site_rules,
            # The browser starts with the first page to render, not here.
            renderer=Renderer(RendererOptions.from_settings(settings)),
        )
        read = (
            stored_feed_reader(store) if settings.cluster else feed_file_reader(settings.feeds_dir)
        )
        self.websub = make_websub(
            settings, store, read, feed_media_type, transport=self._websub_transport
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ctx is not None:
            self.flush_combined()
            await self._close_websub()
            await self._ctx.extractor.aclose()
            if self._ctx.renderer is not None:
                await self._ctx.renderer.aclose()
            await self._ctx.fetcher.aclose()
            self._ctx.store.close()
            self._ctx = None
        self._release_writer_lock()

    async def websub_settled(self) -> None:
        """Wait until WebSub has been told of every feed changed so far."""
        while self._notifying:
            await asyncio.gather(*list(self._notifying), return_exceptions=True)

    async def _close_websub(self) -> None:
        """Let the notifications under way finish (they are short), then close."""
        await self.websub_settled()
        if self.websub is not None:
            await self.websub.aclose()
            self.websub = None

    def _notify(self, names: list[str]) -> None:
        """Tell WebSub that these feeds' bytes changed (in the background)."""
        if self.websub is None or not names:
            return
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            self._tell_websub(self.websub, names)
        )
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    @staticmethod
    async def _tell_websub(websub: WebSub, names: list[str]) -> int:
        try:
            return await websub.feeds_changed(names)
        except Exception as exc:  # the database or the job queue away: the feeds are written
            log.warning("websub not told of changed feeds", extra=fields(error=repr(exc)))
            return 0

    def _release_writer_lock(self) -> None:
        if self._writer_lock is not None:
            self._writer_lock.release()
            self._writer_lock = None

    @property
    def ctx(self) -> RunContext:
        if self._ctx is None:
            raise RuntimeError("Worker used outside 'async with'")
        return self._ctx

    def sources(self, ids: Iterable[str] | None = None) -> list[Source]:
        """The enabled sources, or the named ones (`Config.source` raises for an unknown id)."""
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
                if self._stopping:
                    log.info("run skipped: shutting down", extra=fields(source=source.id))
                    return None
                report = await run_source(source, self.ctx)
        finally:
            self._active.discard(task)
            self._release_memory()
        self._observe(report)
        if report.feeds_written:
            self._notify([f"{source.id}{suffix}" for suffix in FEED_SUFFIXES])
        self._publish_combined(report)
        webhook = self.config.settings.webhook_url
        if report.health_changed and webhook:
            await notify_transition(webhook, report, secrets=self.config.secret_values)
        return report

    def _release_memory(self) -> None:
        """Hand the runs' freed buffers back to the OS (`worker.service.memory`) when no run is left
        in progress, and every `TRIM_INTERVAL` seconds while runs keep overlapping."""
        now = time.monotonic()
        if not self._active or now - self._trimmed >= TRIM_INTERVAL:
            self._trimmed = now
            release_free_memory()

    def _publish_combined(self, report: RunReport) -> None:
        """Refresh `feeds/all.atom` after a run that changed items (or when it is missing): now,
        unless it was rewritten less than `COMBINED_INTERVAL` ago; then once that has passed."""
        feeds = self.ctx.feeds or FeedFolder(self.ctx.settings.feeds_dir)
        changed = any(
            (report.items_new, report.items_updated, report.items_pruned, report.items_refiltered)
        )
        if not changed and feeds.exists(f"{COMBINED_ID}.atom"):
            return
        self._combined_due = report
        if self._combined_later is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._combined_written + COMBINED_INTERVAL - loop.time()
        if wait <= 0:
            self.flush_combined()
        else:
            self._combined_later = loop.call_later(wait, self.flush_combined)

    def flush_combined(self) -> None:
        """Write `feeds/all.atom` now if runs changed items since it was last written: every
        source's newest items, rewritten only when that changes the file."""
        report, self._combined_due = self._combined_due, None
        if self._combined_later is not None:
            self._combined_later.cancel()
            self._combined_later = None
        if report is None or self._ctx is None:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: at exit, nothing to space out
            self._combined_written = asyncio.get_running_loop().time()
        settings, store = self.ctx.settings, self.ctx.store
        feeds = self.ctx.feeds or FeedFolder(settings.feeds_dir)
        size = settings.combined_feed_size
        home = settings.public_url or f"http://{settings.serve_host}:{settings.serve_port}"
        meta = FeedMeta(
            source_id=COMBINED_ID,
            title="All feeds",
            link=home + "/",
            description="The newest items of every source",
            self_base_url=settings.public_url,
            secrets=tuple(self.config.secret_values),
            hub=settings.websub_hub_url,
        )
        try:
            read_at = self._clock()  # the version of the combined feed: when its items were read
            # Twice the size: entries one article has in two sources collapse into one.
            active = [s.id for s in self.config.sources if s.enabled]
            items = store.recent_items(2 * size, active)
            if publish_combined(feeds, meta, items, report.started, size, read_at=read_at):
                with contextlib.suppress(RuntimeError):  # no running loop: at exit, untold
                    self._notify([f"{COMBINED_ID}.atom"])
        except FeedworkerError as exc:
            log.warning("combined feed not written", extra=fields(error=str(exc)))

    def _observe(self, report: RunReport) -> None:
        if self.metrics is not None:
            self.metrics.observe_run(report)
        if self.on_report is not None:
            self.on_report(report)

    def use_scheduler(self, next_run: NextRunFn) -> None:
        """Record `next_run(source_id)` with each run, for `feedworker status`."""
        self._next_run = next_run

    def apply_config(self, new: Config) -> list[str]:
        """Use `new` from the next run on; runs in progress keep the config they started with.

        Restart-only settings keep their current value; their names are returned when `new`
        changes them, so the caller can say that a restart is needed.
        """
        old = self.config.settings
        held = restart_only_changes(old, new.settings)
        kept = {name: getattr(old, name) for name in RESTART_ONLY_SETTINGS}
        settings = new.settings.model_copy(update=kept)
        self.config = dataclasses.replace(new, settings=settings)
        if self._ctx is not None:  # a new context: a run in progress holds on to its own
            self._ctx = dataclasses.replace(self._ctx, settings=settings, site_rules=new.site_rules)
            self._ctx.fetcher.use_credentials(new.credentials)
        return held

    async def run_source_id(self, source_id: str) -> RunReport | None:
        """Run a source by id from the current config (the scheduler's entry point)."""
        source = self.config.active_source(source_id)
        if source is None:
            log.info("run skipped: source no longer configured", extra=fields(source=source_id))
            return None
        state = self.ctx.store.source_state(source_id)
        if state is not None and state.last_run is not None:
            until = backoff_until(source, state.consecutive_failures, state.last_run)
            if until is not None and self._clock() < until:
                # DEBUG: a failing source warned once, when it started failing (pipeline).
                log.debug(
                    "run skipped: backing off",
                    extra=fields(
                        source=source_id,
                        failures=state.consecutive_failures,
                        next_attempt=until.isoformat(timespec="seconds"),
                        error=state.last_error,
                    ),
                )
                return None
        return await self.run_source(source)

    def run_times(self, source_ids: Collection[str]) -> dict[str, RunTimes]:
        """The stored run times of these sources, for the scheduler's start (one read)."""
        return {
            state.source_id: RunTimes(state.last_run, state.next_run)
            for state in self.ctx.store.source_states(source_ids)
        }

    async def drain(self, grace: float) -> None:
        """Let runs in progress finish for up to `grace` seconds, then cancel what is left.
        Runs still waiting for a slot end without starting."""
        self._stopping = True
        await asyncio.sleep(0)  # a run the scheduler has just fired gets to register itself
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
        sources = self.sources(ids)
        results = await asyncio.gather(
            *(self.run_source(s) for s in sources), return_exceptions=True
        )
        self.flush_combined()
        reports = []
        for source, result in zip(sources, results, strict=True):
            if isinstance(result, BaseException):  # e.g. the store failed: that source only
                if isinstance(result, asyncio.CancelledError):
                    raise result
                log.error("run crashed", extra=fields(source=source.id, error=repr(result)))
                result = RunReport(source.id, started=self._clock(), error=f"crashed: {result}")
            if result is not None:
                reports.append(result)
        return reports


ConfigListener = Callable[[Config], None]


class Service:
    """Runs a worker's sources on their schedules, following edits of the config folder.

    `healthy` and `next_run` are what the HTTP server asks; `on_reload` listeners (the server's
    app) hear about each config swapped in.
    """

    def __init__(
        self,
        worker: Worker,
        *,
        grace: float | None = None,
        watcher: ConfigWatcher | None = None,
        reload_interval: float = RELOAD_INTERVAL,
    ) -> None:
        """`grace`: seconds runs in progress get to finish once stopped (default: the config's
        `shutdown_grace`)."""
        self.worker = worker
        settings = worker.config.settings
        self.grace = settings.shutdown_grace if grace is None else grace
        self.watcher = watcher
        self.reload_interval = reload_interval
        self.on_reload: list[ConfigListener] = []
        self.cluster: ClusterNode | None = None
        self.scheduler: Scheduler
        if settings.cluster:  # the scheduler claims slots and queues runs; the cluster runs them
            self.cluster = ClusterNode(
                worker.config,
                worker.ctx.store,
                worker.run_source_id,
                concurrency=settings.source_concurrency,
                grace=self.grace,
            )
            self.scheduler = SlotScheduler(
                self.cluster.claim,
                run_times=worker.run_times,
                misfire_grace_time=settings.misfire_grace_time,
            )
        else:
            self.scheduler = SourceScheduler(
                worker.run_source_id,
                run_times=worker.run_times,
                misfire_grace_time=settings.misfire_grace_time,
            )
        # Our own WebSub hub delivers from here: in cluster mode through the job queue.
        self.hub = worker.websub if isinstance(worker.websub, SelfHub) else None
        if self.hub is not None and self.cluster is not None:
            self.cluster.use_websub(self.hub)
        worker.use_scheduler(self.scheduler.next_run)

    def healthy(self) -> bool:
        return self.scheduler.running

    def next_run(self, source_id: str) -> datetime | None:
        return self.scheduler.next_run(source_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; then stop scheduling, let runs finish for `grace` s, cancel."""
        if self.cluster is None:
            await self._run(stop)
            return
        async with self.cluster:
            await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> None:
        self.scheduler.start(self.worker.config.sources)
        cluster_stop = asyncio.Event()
        background: list[asyncio.Task[None]] = []
        if self.cluster is not None:
            background.append(asyncio.create_task(self.cluster.run(cluster_stop)))
        deliverer = None
        if self.hub is not None and self.cluster is None:
            deliverer = asyncio.create_task(self.hub.run(cluster_stop), name="websub deliveries")
        log.info(
            "worker started",
            extra=fields(sources=len(self.worker.sources()), cluster=self.cluster is not None),
        )
        watching = None
        if self.watcher is not None:
            watching = asyncio.create_task(
                watch_config(self.watcher, stop, self.apply, self.reload_interval)
            )
        try:
            await stop.wait()
        finally:
            if watching is not None:
                watching.cancel()  # it never fails (`watch_config`); whatever it did, drain below
                await asyncio.gather(watching, return_exceptions=True)
            self.scheduler.shutdown()
            cluster_stop.set()  # the job worker takes no new job; its runs get the grace period
            await asyncio.gather(*background, return_exceptions=True)
            await self.worker.drain(self.grace)
            if deliverer is not None:  # after the runs, whose changes it may still send
                await asyncio.gather(deliverer, return_exceptions=True)
            log.info("worker stopped")

    def apply(self, new: Config) -> None:
        """Swap in a new valid config: re-sync the jobs, tell the listeners."""
        before = {s.id for s in self.worker.config.active_sources}
        held = self.worker.apply_config(new)
        config = self.worker.config
        if self.cluster is not None:
            self.cluster.use_config(config)
        self.scheduler.sync(config.sources)
        after = {s.id for s in config.active_sources}
        log.info(
            "config reloaded",
            extra=fields(
                sources=len(after),
                added=_some(after - before),
                removed=_some(before - after),
            ),
        )
        if held:
            log.warning(
                "restart needed for changed settings; they keep their old values until then",
                extra=fields(settings=",".join(held)),
            )
        for listener in self.on_reload:
            listener(config)


# Source ids named in one log line; a reload adding thousands says how many more.
LOGGED_IDS = 20


def _some(ids: set[str]) -> str:
    """Up to `LOGGED_IDS` ids, sorted, then "+N more"."""
    shown = sorted(ids)[:LOGGED_IDS]
    more = len(ids) - len(shown)
    return ",".join(shown) + (f",+{more} more" if more else "")
