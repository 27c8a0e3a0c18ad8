"""Cluster mode: replicas on one PostgreSQL state share the sources through procrastinate.

`[worker] cluster = true` (with a `postgresql://` state_url) turns `feedworker run` into one
replica of many. How a source's run happens once, on one replica:

1. Every replica's scheduler (`worker.service.slots.SlotScheduler`) fires every source at the
   same instants: interval schedules are aligned to the epoch with a fixed offset per source (a
   hash of its id, spread over the interval), so all replicas agree on each schedule *slot*
   (`slot_of`).
2. The first replica to claim the slot in the store (`Store.claim_slots`, a primary key) defers a
   procrastinate job `run_source(source_id)` with `queueing_lock=source_id` (a source waits in the
   queue at most once) and `lock=source_id` (never runs on two replicas at once). The others'
   claims fail and they do nothing. Slots due together are claimed together (`ClusterNode.claim`:
   one INSERT per `CLAIM_BATCH` slots, and one call deferring the jobs of those won), not one
   round trip per source: at 100,000 sources an hour, three replicas would otherwise make 83
   claims a second.
3. Every replica runs a procrastinate worker in its event loop; whichever picks the job runs the
   source with `Worker.run_source_id`, exactly as a single node would (fetch retries happen inside
   the run: a task-level `retry=` hangs such jobs, procrastinate #1543).
4. A replica killed mid-run leaves its job "doing"; its heartbeat stops. Every replica's
   housekeeping retires jobs whose worker has been silent for `STALL_WINDOW` (marks them failed;
   retrying instead collides with the queueing lock, procrastinate #1446), which frees the
   source's lock; the next slot runs the source again on a live replica. Items are keyed by
   canonical URL and content hash in transactions, so the rerun publishes nothing twice.

Feeds: every publish goes to the `stored_feeds` table (`FeedTable`), with a version that only
grows; every replica serves them from there (`StoredFeeds`, an in-process copy per feed checked
against the stored ETag), so replicas need no shared disk and answer with the same bytes and ETag.

Each replica also records a heartbeat with its config digest; `config_notes` says when live
replicas run different configs (shown by the status page and `feedworker status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from worker.config import Config
from worker.errors import StoreError
from worker.publish.files import GZIP_LEVEL, FeedVersion, feed_digest
from worker.publish.render import feed_file_names
from worker.service.logs import fields, log
from worker.service.slots import Due, slot_of
from worker.store.db import libpq_url, redact
from worker.store.state import Replica, Store, StoredFeed

if TYPE_CHECKING:
    import procrastinate

    from worker.service.websub import SelfHub

TASK_NAME = "run_source"
QUEUE = "sources"
# WebSub deliveries (worker.service.websub), when feedworker is the hub: one job drains what is
# due; `lock` keeps it to one replica at a time, `queueing_lock` to one waiting job.
WEBSUB_TASK = "websub_deliver"
WEBSUB_LOCK = "websub-deliver"
# procrastinate's worker heartbeat; our replica heartbeat and housekeeping use the same period.
HEARTBEAT = 10.0
# A job whose worker has been silent this long is stalled: well above the heartbeat (measured
# with 3 replicas: 6 s wrongly retired 23 of 49 healthy jobs; 30 s retired none and brought
# sources back 33–37 s after a kill).
STALL_WINDOW = 30.0
# Replicas silent longer than this are left out of the status page and the config check.
REPLICA_SILENCE = timedelta(seconds=3 * HEARTBEAT)
# Finished jobs are deleted from procrastinate's table, so it does not grow without bound.
DELETE_JOBS = "successful"
# Any fixed number: replicas starting together take turns creating procrastinate's schema.
_SCHEMA_LOCK = 7_150_902
# Slots claimed (and jobs deferred) per statement: under the databases' parameter limits, and
# a few milliseconds of the database's time.
CLAIM_BATCH = 500

RunSource = Callable[[str], Awaitable[object]]


def replica_name() -> str:
    """This replica's name: its host name (a container's id under Docker) and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


# -- feeds in the database -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedTable:
    """The publisher's sink in cluster mode: feeds go to the `stored_feeds` table."""

    store: Store
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def write(self, name: str, data: bytes, version: int) -> bool:
        stored = StoredFeed(name, version, data, feed_digest(data), self.clock())
        return self.store.save_feed(stored)

    def exists(self, name: str) -> bool:
        return self.store.stored_feed_etag(name) is not None


@dataclass(slots=True)
class _Copy:
    version: FeedVersion
    gzipped: bytes | None = None


class StoredFeeds:
    """The server's feeds in cluster mode: read from the database, cached while the ETag holds.

    Each request costs one indexed look-up of the ETag; the body is read again only when another
    replica (or this one) published a new version.
    """

    def __init__(self, store: Store, names: Iterable[str]) -> None:
        self.store = store
        self.names = frozenset(names)
        self._copies: dict[str, _Copy] = {}

    def for_names(self, names: Iterable[str]) -> StoredFeeds:
        """The same cache, serving another set of names (after a config reload)."""
        other = StoredFeeds(self.store, names)
        other._copies = self._copies
        return other

    def exists(self, name: str) -> bool:
        return name in self.names and self.store.stored_feed_etag(name) is not None

    def read(self, name: str, *, want_gzip: bool = False) -> FeedVersion | None:
        if name not in self.names:
            return None
        etag = self.store.stored_feed_etag(name)
        if etag is None:
            return None
        copy = self._copies.get(name)
        if copy is None or copy.version.digest != etag:
            stored = self.store.stored_feed(name)
            if stored is None:
                return None
            copy = _Copy(FeedVersion(stored.body, stored.etag, stored.modified.timestamp()))
            self._copies[name] = copy
        if not want_gzip:
            return copy.version
        if copy.gzipped is None:
            copy.gzipped = gzip.compress(copy.version.body, GZIP_LEVEL, mtime=0)
        version = copy.version
        return FeedVersion(version.body, version.digest, version.mtime, copy.gzipped)


# -- replicas and their configs ----------------------------------------------------------------


def config_notes(replicas: Sequence[Replica]) -> list[str]:
    """One line when live replicas run different configs (by digest), naming who runs which."""
    by_digest: dict[str, list[str]] = {}
    for replica in replicas:
        by_digest.setdefault(replica.config_digest, []).append(replica.name)
    if len(by_digest) < 2:
        return []
    groups = "; ".join(
        f"{digest[:12]} on {', '.join(sorted(names))}"
        for digest, names in sorted(by_digest.items())
    )
    return [f"config differs between replicas: {groups}"]


def live_replicas(store: Store, now: datetime) -> list[Replica]:
    return store.replicas(alive_since=now - REPLICA_SILENCE)


# -- the replica -------------------------------------------------------------------------------


class ClusterNode:
    """One replica's part in the cluster: defers slots, runs jobs, retires stalled ones, beats.

    Use as `async with ClusterNode(...) as node:` around the service; `fire` is the scheduler's
    run function; `run(stop)` works until `stop` is set.
    """

    app: procrastinate.App

    def __init__(
        self,
        config: Config,
        store: Store,
        run_source: RunSource,
        *,
        concurrency: int,
        grace: float,
        name: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        procrastinate = _procrastinate()
        self.config = config
        self.store = store
        self.name = name or replica_name()
        self.concurrency = concurrency
        self.grace = grace
        self._run_source = run_source
        self._clock = clock
        self._started = clock()
        self._url = libpq_url(config.settings.state_url)
        connector = procrastinate.PsycopgConnector(conninfo=self._url)
        self.app = procrastinate.App(connector=connector)
        self.task = self.app.task(name=TASK_NAME, queue=QUEUE, pass_context=False)(self._job)
        self.retired = 0  # stalled jobs this replica retired
        self._hub: SelfHub | None = None
        self.websub_task: Any = None

    async def __aenter__(self) -> ClusterNode:
        await self.app.open_async()
        try:
            await self._ensure_schema()
        except BaseException:
            await self.app.close_async()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(StoreError):
            self.store.forget_replica(self.name)
        await self.app.close_async()

    async def _ensure_schema(self) -> None:
        """Create procrastinate's tables once, whichever replica gets there first."""
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            async with conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                cursor = await conn.execute("SELECT to_regclass('procrastinate_jobs')")
                row = await cursor.fetchone()
                if row is None or row[0] is None:
                    await conn.execute(self.app.schema_manager.get_schema())
                    log.info("created the job queue schema")
        except psycopg.Error as exc:
            where = redact(self._url)
            raise StoreError(f"state database {where}: creating the job queue: {exc}") from exc

    # -- deferring -----------------------------------------------------------------------------

    def use_config(self, config: Config) -> None:
        self.config = config

    async def fire(self, source_id: str, *, on_schedule: bool = True) -> bool:
        """Claim the slot of the source that now falls in and queue its run (`claim` for one).
        False when another replica claimed the slot first or the source is already queued."""
        source = self.config.active_source(source_id)
        if source is None:
            return False
        slot = slot_of(source, self._clock(), on_schedule=on_schedule)
        return bool(await self.claim([Due(source_id, slot)]))

    async def claim(self, due: Sequence[Due]) -> list[str]:
        """The scheduler's claim function: claim these slots in the store, in batches, and
        queue a run for each slot this replica won. Returns the sources queued."""
        active = [d for d in due if self.config.active_source(d.source_id) is not None]
        if not active:
            return []
        won = self.store.claim_slots(
            [(d.source_id, d.slot) for d in active], self.name, self._clock()
        )
        log.debug("schedule slots claimed", extra=fields(slots=len(active), won=len(won)))
        queued = []
        for start in range(0, len(won), CLAIM_BATCH):
            queued += await self._defer(
                [source for source, _slot in won[start : start + CLAIM_BATCH]]
            )
        return queued

    async def _defer(self, source_ids: Sequence[str]) -> list[str]:
        """One job per source, deferred in one call; a source still queued (its previous run
        not started yet) stops such a batch, which is then deferred one job at a time."""
        procrastinate = _procrastinate()
        jobs = [
            self.task.configure(lock=sid, queueing_lock=sid).make_new_job(source_id=sid)
            for sid in source_ids
        ]
        try:
            await self.app.job_manager.batch_defer_jobs_async(jobs)
            return list(source_ids)
        except procrastinate.exceptions.AlreadyEnqueued:
            pass
        queued = []
        for source_id, job in zip(source_ids, jobs, strict=True):
            try:
                await self.app.job_manager.defer_job_async(job)
            except procrastinate.exceptions.AlreadyEnqueued:
                log.info("run already queued", extra=fields(source=source_id))
                continue
            queued.append(source_id)
        return queued

    async def _job(self, source_id: str) -> None:
        await self._run_source(source_id)

    # -- WebSub deliveries ---------------------------------------------------------------------

    def use_websub(self, hub: SelfHub) -> None:
        """Send `hub`'s deliveries through the job queue: one replica drains them at a time."""
        self._hub = hub
        self.websub_task = self.app.task(name=WEBSUB_TASK, queue=QUEUE, pass_context=False)(
            self._websub_job
        )
        hub.on_queued = self.defer_websub

    async def defer_websub(self) -> bool:
        """Queue the delivery job; False when one is already waiting (it will send these too)."""
        procrastinate = _procrastinate()
        deferrer = self.websub_task.configure(lock=WEBSUB_LOCK, queueing_lock=WEBSUB_LOCK)
        try:
            await deferrer.defer_async()
        except procrastinate.exceptions.AlreadyEnqueued:
            return False
        return True

    async def _websub_job(self) -> None:
        assert self._hub is not None
        report = await self._hub.drain()
        log.debug(
            "websub deliveries sent",
            extra=fields(delivered=report.delivered, failed=report.failed, replica=self.name),
        )

    async def _websub_due(self) -> None:
        """Housekeeping: queue the delivery job when a retry (or a lost wake-up) is due."""
        if self._hub is None:
            return
        due = self.store.next_delivery_due()
        if due is not None and due <= self._clock():
            await self.defer_websub()

    # -- working -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run jobs and housekeeping until `stop` is set; runs in progress get `grace` seconds."""
        jobs = asyncio.create_task(
            self.app.run_worker_async(
                name=self.name,
                queues=[QUEUE],
                concurrency=self.concurrency,
                install_signal_handlers=False,
                update_heartbeat_interval=HEARTBEAT,
                stalled_worker_timeout=STALL_WINDOW,
                shutdown_graceful_timeout=self.grace,
                delete_jobs=DELETE_JOBS,
            ),
            name="procrastinate worker",
        )
        housekeeping = asyncio.create_task(self._housekeeping(stop), name="cluster housekeeping")
        try:
            await stop.wait()
        finally:
            housekeeping.cancel()
            jobs.cancel()
            await asyncio.gather(housekeeping, jobs, return_exceptions=True)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.store.beat(self.name, self.config.digest, self._started, self._clock())
                await self.retire_stalled()
                await self._websub_due()
            except Exception as exc:  # the database may be away for a while; keep trying
                log.warning("cluster housekeeping failed", extra=fields(error=str(exc)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=HEARTBEAT)

    async def retire_stalled(self) -> int:
        """Mark failed the jobs whose worker fell silent (a killed replica); their sources run
        again at their next slot. Returns how many this call retired."""
        procrastinate = _procrastinate()
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=STALL_WINDOW)
        retired = 0
        for job in stalled:
            try:
                failed = procrastinate.jobs.Status.FAILED
                await manager.finish_job(job, status=failed, delete_job=False)
            except procrastinate.exceptions.ConnectorException:
                continue  # another replica retired it first
            retired += 1
            log.warning(
                "stalled run retired",
                extra=fields(source=job.task_kwargs.get("source_id"), job=job.id),
            )
        self.retired += retired
        return retired


def _procrastinate() -> Any:
    try:
        import procrastinate
        import procrastinate.exceptions
        import procrastinate.jobs
    except ImportError as exc:
        raise StoreError(
            "cluster mode needs procrastinate: pip install 'feedworker[cluster]'"
        ) from exc
    return procrastinate


class ClusterView:
    """What a replica's HTTP server needs in cluster mode: feeds from the database, and a note
    when the live replicas run different configs. Pass `app_options(config)` to `build_app`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._feeds = StoredFeeds(store, ())

    def app_options(self, config: Config) -> dict[str, Any]:
        files = self._feeds.for_names(feed_file_names(source.id for source in config.sources))
        return {"files": files, "notes": self.notes}

    def notes(self) -> list[str]:
        return config_notes(live_replicas(self.store, datetime.now(UTC)))


async def upgrade_schema(config: Config) -> int:
    """`feedworker db upgrade`: migrate the state database, and in cluster mode create the job
    queue's tables; returns the schema version."""
    store = Store.open(config.settings.state_url)  # opening migrates
    try:
        if config.settings.cluster:
            node = ClusterNode(config, store, _no_run, concurrency=1, grace=0)
            async with node:
                pass
        return store.schema_version()
    finally:
        store.close()


async def _no_run(_source_id: str) -> None:
    return None
