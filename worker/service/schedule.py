"""APScheduler wiring: one job per source, fired on its interval or cron expression.

Knows nothing about HTML or HTTP: it calls `run(source_id)` and the caller does the rest.
Settings, measured or read upstream (APScheduler 3's `misfire_grace_time` defaults to 1 s, which
silently drops runs on a busy machine; two processes sharing a job store ran every tick twice):
- `max_instances=1`: a source never runs twice at once (a slow run makes the next slot skip);
- `coalesce=True` and a generous `misfire_grace_time`: after a pause (a suspended machine, a
  long run) a source runs once to catch up, not once per missed slot;
- jitter, so that sources with the same interval do not all hit the network at the same second;
- the first run after a start is placed from the stored last-run time, so a restart does not
  fire every source at once;
- each run is its own task, shielded from the job: shutting APScheduler down cancels the jobs it
  is running, but a run in progress is left for the caller to wait for (`Worker.drain`), so
  SIGTERM gives it its grace period.

Aligned (cluster mode, `aligned=True`): every replica must fire a source at the same instants,
so interval schedules count from the epoch plus a fixed per-source offset (`slot_offset`, the
jitter drawn from a hash of the source id instead of at random) and there is no random jitter;
the start-up catch-up is `worker.service.cluster.ClusterNode.catch_up`'s job.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from worker.config import Source, setting_default

# Default jitter: a tenth of the interval, at most five minutes.
JITTER_SHARE = 0.1
JITTER_CAP = timedelta(minutes=5)
# Sources that never ran, or are overdue, start within this window after the worker starts.
START_SPREAD_CAP = timedelta(seconds=30)

# A failing source waits its interval times 2**(failures - 1) between attempts, at most this long
# (or its own interval, when that is longer): a dead site costs little, and a site that comes
# back is noticed within hours.
BACKOFF_CAP = timedelta(hours=6)
# Cron sources have no fixed interval; their backoff grows from this base.
CRON_BACKOFF_BASE = timedelta(hours=1)

RunFn = Callable[[str], Coroutine[Any, Any, Any]]
LastRunFn = Callable[[str], datetime | None]


def jitter_for(source: Source) -> timedelta:
    if source.jitter is not None:
        return source.jitter
    if source.every is not None:
        return min(source.every * JITTER_SHARE, JITTER_CAP)
    return timedelta(0)


def slot_offset(source: Source) -> float:
    """Seconds into its interval where an aligned source's slots sit: within its jitter, the
    same on every replica, so that sources sharing an interval still spread out."""
    span_ms = int(jitter_for(source).total_seconds() * 1000)
    if span_ms <= 0:
        return 0.0
    digest = hashlib.blake2b(source.id.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") % span_ms) / 1000


def aligned_trigger_for(source: Source) -> BaseTrigger:
    """The same instants on every replica: no random jitter, intervals counted from the epoch."""
    if source.cron:
        return CronTrigger(**_cron_fields(source.cron), timezone=UTC)
    assert source.every is not None
    start = datetime.fromtimestamp(slot_offset(source), UTC)
    return IntervalTrigger(seconds=source.every.total_seconds(), start_date=start, timezone=UTC)


def trigger_for(source: Source) -> BaseTrigger:
    jitter = jitter_for(source).total_seconds() or None
    if source.cron:
        return CronTrigger(**_cron_fields(source.cron), timezone=UTC, jitter=jitter)
    assert source.every is not None
    return IntervalTrigger(seconds=source.every.total_seconds(), timezone=UTC, jitter=jitter)


def _cron_fields(expr: str) -> dict[str, str]:
    """A 5-field crontab line as CronTrigger's keywords (`from_crontab` takes no jitter)."""
    minute, hour, day, month, day_of_week = expr.split()
    return {
        "minute": minute,
        "hour": hour,
        "day": day,
        "month": month,
        "day_of_week": day_of_week,
    }


def first_run_at(
    source: Source, last_run: datetime | None, now: datetime, rng: random.Random
) -> datetime | None:
    """When an interval source should first run after a start; None lets a cron trigger decide."""
    if source.every is None:
        return None
    spread = min(jitter_for(source), START_SPREAD_CAP).total_seconds()
    soon = now + timedelta(seconds=rng.uniform(0, spread))
    if last_run is None:
        return soon
    return max(last_run + source.every, soon)


def backoff_until(source: Source, failures: int, last_run: datetime) -> datetime | None:
    """When a source that failed `failures` times in a row may next be tried; None: no backoff.

    The first failure changes nothing (a passing glitch); then the wait doubles with each
    failure, capped, and a success (failures back to 0) ends it.
    """
    if failures < 2:
        return None
    base = source.every or CRON_BACKOFF_BASE
    doubling: int = 2 ** (failures - 1)
    return last_run + min(base * doubling, max(BACKOFF_CAP, base))


class SourceScheduler:
    """Keeps one APScheduler job per source, in step with the config it is given."""

    def __init__(
        self,
        run: RunFn,
        *,
        last_run: LastRunFn = lambda _id: None,
        misfire_grace_time: float = setting_default("misfire_grace_time"),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        aligned: bool = False,
    ) -> None:
        self._run = run
        self._aligned = aligned
        self._last_run = last_run
        self._clock = clock
        self._rng = rng or random.Random()
        self._signatures: dict[str, tuple[Any, ...]] = {}
        self._runs: set[asyncio.Task[Any]] = set()  # strong references to runs in progress
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                # APScheduler wants whole seconds here.
                "misfire_grace_time": max(1, math.ceil(misfire_grace_time)),
            },
        )

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def start(self, sources: Iterable[Source]) -> None:
        """Add a job for each source and start; call from inside the running event loop."""
        self.sync(sources)
        self.scheduler.start()

    def sync(self, sources: Iterable[Source]) -> None:
        """Add jobs for new sources, drop removed ones, reschedule those whose schedule changed."""
        wanted = {s.id: s for s in sources if s.enabled}
        for source_id in set(self._signatures) - set(wanted):
            self.scheduler.remove_job(source_id)
            del self._signatures[source_id]
        for source in wanted.values():
            signature = (source.every, source.cron, source.jitter)
            if self._signatures.get(source.id) == signature:
                continue
            if source.id in self._signatures:
                self.scheduler.remove_job(source.id)
            self._add(source)
            self._signatures[source.id] = signature

    def _add(self, source: Source) -> None:
        options: dict[str, Any] = {}
        start = first_run_at(source, self._last_run(source.id), self._clock(), self._rng)
        if start is not None and not self._aligned:
            options["next_run_time"] = start
        self.scheduler.add_job(
            self._fire,
            aligned_trigger_for(source) if self._aligned else trigger_for(source),
            args=[source.id],
            id=source.id,
            name=f"source {source.id}",
            **options,
        )

    async def _fire(self, source_id: str) -> Any:
        """The job: run the source in its own task and wait for it (so max_instances holds)."""
        run: asyncio.Task[Any] = asyncio.create_task(self._run(source_id), name=f"run {source_id}")
        self._runs.add(run)
        run.add_done_callback(self._runs.discard)
        try:
            return await asyncio.shield(run)
        except asyncio.CancelledError:
            # The scheduler is shutting down (the run goes on, the caller drains it) or the
            # drain cancelled the run; neither is an error of the job.
            return None

    def next_run(self, source_id: str) -> datetime | None:
        job = self.scheduler.get_job(source_id)
        return job.next_run_time if job is not None else None

    def shutdown(self) -> None:
        """Stop firing jobs; runs already started are left to finish (the caller waits for them)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
