"""APScheduler wiring: one job per source, fired on its interval or cron expression.

Knows nothing about HTML or HTTP: it calls `run(source_id)` and the caller does the rest.
Settings, measured or read upstream (APScheduler 3's `misfire_grace_time` defaults to 1 s, which
silently drops runs on a busy machine; two processes sharing a job store ran every tick twice):
- `max_instances=1`: a source never runs twice at once (a slow run makes the next slot skip);
- `coalesce=True` and a generous `misfire_grace_time`: after a pause (a suspended machine, a
  long run) a source runs once to catch up, not once per missed slot;
- jitter, so that sources with the same interval do not all hit the network at the same second;
- the first run after a start is placed from the stored run times, so a restart does not fire
  every source at once: a source resumes at the next run stored with its last run (or its last
  run plus its interval). Sources that never ran start within 30 s, unless there are more than
  `SPREAD_NEW_ABOVE` of them at once (a first start of a large config, or a reload adding
  many): then each starts at a random point within its first interval, so that thousands of
  new sources do not all run, and then keep running, in the same minute (`first_run_at`);
- each run is its own task, shielded from the job: shutting APScheduler down cancels the jobs it
  is running, but a run in progress is left for the caller to wait for (`Worker.drain`), so
  SIGTERM gives it its grace period.

Cluster mode schedules with `worker.service.slots.SlotScheduler` instead (the same face,
`Scheduler`): every replica fires a source at the same instants, so interval schedules count
from the epoch plus a fixed per-source offset (`slot_offset`).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

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
# More sources that never ran than this, scheduled at once, are spread over their first
# interval instead. A hundred first runs at once are a few minutes of work at the default
# source_concurrency, and each its own site; ten thousand are 10,000 warnings in 45 s when the
# sites are down, and, started together, they would stay together in every interval after.
SPREAD_NEW_ABOVE = 100

# A failing source waits its interval times 2**(failures - 1) between attempts, at most this long
# (or its own interval, when that is longer): a dead site costs little, and a site that comes
# back is noticed within hours.
BACKOFF_CAP = timedelta(hours=6)
# Cron sources have no fixed interval; their backoff grows from this base.
CRON_BACKOFF_BASE = timedelta(hours=1)

RunFn = Callable[[str], Coroutine[Any, Any, Any]]


@dataclass(frozen=True, slots=True)
class RunTimes:
    """A source's stored run times: when it last ran, and the next run recorded with that."""

    last_run: datetime | None = None
    next_run: datetime | None = None


# The stored run times of the sources asked about (those missing never ran): one read for
# thousands of sources, not one each.
RunTimesFn = Callable[[Collection[str]], Mapping[str, RunTimes]]


def jitter_for(source: Source) -> timedelta:
    if source.jitter is not None:
        return source.jitter
    if source.every is not None:
        return min(source.every * JITTER_SHARE, JITTER_CAP)
    return timedelta(0)


def slot_offset(source: Source) -> float:
    """Seconds into its interval where a cluster's slots of the source sit, the same on every
    replica (a hash of the id): within its jitter when one is set, else anywhere in the
    interval, so that thousands of sources with one interval run at an even rate, not all in
    the first minutes of each hour (the default jitter is at most 5 minutes)."""
    span = source.jitter if source.jitter is not None else source.every
    span_ms = int(span.total_seconds() * 1000) if span is not None else 0
    if span_ms <= 0:
        return 0.0
    digest = hashlib.blake2b(source.id.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") % span_ms) / 1000


def trigger_for(source: Source) -> BaseTrigger:
    jitter = jitter_for(source).total_seconds() or None
    if source.cron:
        return CronTrigger(**cron_fields(source.cron), timezone=UTC, jitter=jitter)
    assert source.every is not None
    return IntervalTrigger(seconds=source.every.total_seconds(), timezone=UTC, jitter=jitter)


def cron_fields(expr: str) -> dict[str, str]:
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
    source: Source,
    times: RunTimes,
    now: datetime,
    rng: random.Random,
    *,
    spread_new: bool = False,
) -> datetime | None:
    """When an interval source should first run after a start; None lets a cron trigger decide.

    - It ran before: at the next run stored with its last run, when that agrees with its current
      schedule (else its last run plus its interval); overdue: soon, within its jitter (at most
      `START_SPREAD_CAP`), once.
    - It never ran: soon, within its jitter (a source just written is one to see working); with
      `spread_new` (many new sources at once, `SPREAD_NEW_ABOVE`), at a random point within its
      first interval instead, so that they run at the rate of their schedule, not all at once,
      and their runs stay spread in every interval after.
    """
    if source.every is None:
        return None
    spread = min(jitter_for(source), START_SPREAD_CAP).total_seconds()
    soon = now + timedelta(seconds=rng.uniform(0, spread))
    if times.last_run is None:
        if spread_new:
            return now + timedelta(seconds=rng.uniform(0, source.every.total_seconds()))
        return soon
    return max(_resume_at(source, times.last_run, times.next_run), soon)


def _resume_at(source: Source, last_run: datetime, stored_next: datetime | None) -> datetime:
    """The stored next run, when it fits the source's current schedule (it keeps the jitter
    drawn and the slot's phase, which a long run's end would shift); else last run + interval.
    A changed interval, or a next run from another schedule, falls back to the latter."""
    assert source.every is not None
    due = last_run + source.every
    if stored_next is not None and last_run < stored_next <= due + jitter_for(source):
        return stored_next
    return due


def schedule_signature(source: Source) -> tuple[Any, ...]:
    """What a source's job is made of: a change reschedules it."""
    return (source.every, source.cron, source.jitter)


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


class Scheduler(Protocol):
    """What the service asks of a scheduler: `SourceScheduler`, or in cluster mode
    `worker.service.slots.SlotScheduler`."""

    @property
    def running(self) -> bool: ...

    def start(self, sources: Iterable[Source]) -> None: ...

    def sync(self, sources: Iterable[Source]) -> None: ...

    def next_run(self, source_id: str) -> datetime | None: ...

    def shutdown(self) -> None: ...


class SourceScheduler:
    """Keeps one APScheduler job per source, in step with the config it is given."""

    def __init__(
        self,
        run: RunFn,
        *,
        run_times: RunTimesFn = lambda _ids: {},
        misfire_grace_time: float = setting_default("misfire_grace_time"),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self._run = run
        self._run_times = run_times
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
        """Add jobs for new sources, drop removed ones, reschedule those whose schedule changed.
        Each placed from its stored run times (`first_run_at`); many that never ran at once are
        spread over their first interval."""
        wanted = {s.id: s for s in sources if s.enabled}
        for source_id in set(self._signatures) - set(wanted):
            self.scheduler.remove_job(source_id)
            del self._signatures[source_id]
        changed = [
            source
            for source in wanted.values()
            if self._signatures.get(source.id) != schedule_signature(source)
        ]
        if not changed:
            return
        times = self._run_times([source.id for source in changed])  # one read for them all
        now = self._clock()
        new = sum(1 for source in changed if times.get(source.id, RunTimes()).last_run is None)
        for source in changed:
            if source.id in self._signatures:
                self.scheduler.remove_job(source.id)
            stored = times.get(source.id, RunTimes())
            spread = new > SPREAD_NEW_ABOVE
            start = first_run_at(source, stored, now, self._rng, spread_new=spread)
            self._add(source, start)
            self._signatures[source.id] = schedule_signature(source)

    def _add(self, source: Source, start: datetime | None) -> None:
        options: dict[str, Any] = {}
        if start is not None:
            options["next_run_time"] = start
        self.scheduler.add_job(
            self._fire,
            trigger_for(source),
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
