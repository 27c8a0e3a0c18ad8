"""The scheduler fires each source on its schedule and never runs one source twice at once."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from worker.config import Source
from worker.service.schedule import (
    SPREAD_NEW_ABOVE,
    RunTimes,
    SourceScheduler,
    backoff_until,
    first_run_at,
    jitter_for,
    trigger_for,
)


def source(**fields: object) -> Source:
    return Source.model_validate({"id": "s", "url": "https://example.test/", **fields})


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait for an event of the scheduler's; the cap only ends a broken test."""
    try:
        async with asyncio.timeout(60):
            while not check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"never saw {what}") from None


def test_interval_job_fires_repeatedly_without_overlap() -> None:
    starts: list[float] = []
    active = 0
    overlaps = 0

    async def slow_run(source_id: str) -> None:
        nonlocal active, overlaps
        assert source_id == "s"
        active += 1
        overlaps += active > 1
        starts.append(asyncio.get_running_loop().time())
        await asyncio.sleep(1.3)  # longer than the interval: the next slot must be skipped
        active -= 1

    async def scenario() -> None:
        scheduler = SourceScheduler(slow_run, misfire_grace_time=1)
        scheduler.start([source(every="1s", jitter="0s")])
        await until(lambda: len(starts) >= 2 and not active, "a second run")
        scheduler.shutdown()

    asyncio.run(scenario())
    assert overlaps == 0
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 1.3 for gap in gaps), gaps  # the slot during a run was skipped


def test_fast_job_fires_on_each_interval() -> None:
    starts: list[float] = []
    slots: list[datetime] = []  # the job's next slot, as each run starts

    async def quick(source_id: str) -> None:
        starts.append(asyncio.get_running_loop().time())
        slots.append(scheduler.scheduler.get_job(source_id).next_run_time)

    async def scenario() -> None:
        nonlocal scheduler
        scheduler = SourceScheduler(quick)
        scheduler.start([source(every="1s", jitter="0s")])
        await until(lambda: len(starts) >= 3, "three runs")
        scheduler.shutdown()

    scheduler: SourceScheduler
    asyncio.run(scenario())
    # One slot after the other, none skipped (the trigger's times: no clock read here)...
    assert [b - a for a, b in itertools.pairwise(slots[:3])] == [timedelta(seconds=1)] * 2
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # ...and none fired early


def test_sync_adds_removes_and_reschedules() -> None:
    async def noop(source_id: str) -> None:
        return None

    async def scenario() -> None:
        scheduler = SourceScheduler(noop)
        scheduler.start([source(id="a", every="1h"), source(id="b", every="1h")])
        assert {j.id for j in scheduler.scheduler.get_jobs()} == {"a", "b"}
        scheduler.sync([source(id="a", cron="0 * * * *"), source(id="c", every="2h")])
        jobs = {j.id: j for j in scheduler.scheduler.get_jobs()}
        assert set(jobs) == {"a", "c"}
        assert isinstance(jobs["a"].trigger, CronTrigger)
        scheduler.shutdown()

    asyncio.run(scenario())


def later() -> datetime:
    """A fake clock's fixed moment, a day ahead: the jobs it places lie in the future, so the
    real scheduler leaves them where they were put while the test looks."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


def test_restart_resumes_from_last_run() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    rng = random.Random(1)
    hourly = source(every="1h", jitter="0s")
    assert first_run_at(hourly, RunTimes(), now, rng) == now  # added by a reload: soon
    ran = now - timedelta(minutes=20)
    assert first_run_at(hourly, RunTimes(ran), now, rng) == now + timedelta(minutes=40)
    overdue = RunTimes(now - timedelta(hours=5))
    assert first_run_at(hourly, overdue, now, rng) == now  # overdue: once, now
    assert first_run_at(source(cron="0 * * * *"), RunTimes(), now, rng) is None


def test_restart_resumes_at_the_stored_next_run_when_it_fits_the_schedule() -> None:
    """The next run stored with the last run keeps its drawn jitter and the slot's phase (a run
    that took 10 minutes ended 10 minutes after its slot); one from another schedule does not."""
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    rng = random.Random(1)
    hourly = source(every="1h", jitter="2m")
    ran = now - timedelta(minutes=20)
    stored = now + timedelta(minutes=31)  # slot at 11:30, run until 11:40; next 12:30 + 1 min
    assert first_run_at(hourly, RunTimes(ran, stored), now, rng) == stored
    too_late = now + timedelta(hours=3)  # stored under a 4-hour interval since shortened
    assert first_run_at(hourly, RunTimes(ran, too_late), now, rng) == ran + timedelta(hours=1)
    before = ran - timedelta(minutes=1)  # not after the last run: not a next run of it
    assert first_run_at(hourly, RunTimes(ran, before), now, rng) == ran + timedelta(hours=1)


def test_a_first_start_spreads_new_sources_over_their_first_interval() -> None:
    """1,000 hourly sources that never ran, started with a fake clock: their first runs fall
    at random points within the hour after the start (about 100 in each 6-minute tenth), not
    all within seconds; a source added later by a reload still starts soon."""
    assert SPREAD_NEW_ABOVE < 1000
    now = later()
    sources = [source(id=f"s{n}", every="1h") for n in range(1000)]

    async def noop(source_id: str) -> None:
        return None

    async def scenario() -> tuple[list[datetime], datetime | None]:
        scheduler = SourceScheduler(noop, clock=lambda: now, rng=random.Random(5))
        scheduler.start(sources)
        try:
            firsts = [scheduler.next_run(s.id) for s in sources]
            scheduler.sync([*sources, source(id="late", every="1h")])
            return [f for f in firsts if f is not None], scheduler.next_run("late")
        finally:
            scheduler.shutdown()

    firsts, late = asyncio.run(scenario())
    assert len(firsts) == 1000
    assert all(now <= first < now + timedelta(hours=1) for first in firsts)
    tenths = [0] * 10
    for first in firsts:
        tenths[int((first - now) / timedelta(minutes=6))] += 1
    assert all(60 <= count <= 140 for count in tenths), tenths  # 100 ± 4 standard deviations
    within_a_minute = sum(1 for first in firsts if first - now < timedelta(minutes=1))
    assert within_a_minute < 40  # before: all 1,000 within 30 seconds
    assert late is not None and late - now <= timedelta(seconds=30)


def test_a_few_new_sources_start_soon() -> None:
    """A small first start (as many as SPREAD_NEW_ABOVE sources that never ran) starts each
    within 30 s, as before: a new config is one to see working."""
    now = later()
    sources = [source(id=f"s{n}", every="1h") for n in range(SPREAD_NEW_ABOVE)]

    async def noop(source_id: str) -> None:
        return None

    async def scenario() -> list[datetime | None]:
        scheduler = SourceScheduler(noop, clock=lambda: now, rng=random.Random(5))
        scheduler.start(sources)
        try:
            return [scheduler.next_run(s.id) for s in sources]
        finally:
            scheduler.shutdown()

    firsts = asyncio.run(scenario())
    assert all(f is not None and now <= f <= now + timedelta(seconds=30) for f in firsts)


def test_a_first_start_resumes_sources_that_ran_from_their_stored_times() -> None:
    """One read of the stored run times for every source (not one each), and sources that ran
    resume from them while the new ones spread."""
    now = later()
    sources = [source(id=f"s{n}", every="1h", jitter="0s") for n in range(50)]
    stored = {f"s{n}": RunTimes(now - timedelta(minutes=n)) for n in range(0, 50, 2)}
    reads: list[int] = []

    def run_times(ids: Collection[str]) -> dict[str, RunTimes]:
        reads.append(len(ids))
        return {i: stored[i] for i in ids if i in stored}

    async def noop(source_id: str) -> None:
        return None

    async def scenario() -> dict[str, datetime | None]:
        scheduler = SourceScheduler(noop, run_times=run_times, clock=lambda: now)
        scheduler.start(sources)
        try:
            return {s.id: scheduler.next_run(s.id) for s in sources}
        finally:
            scheduler.shutdown()

    firsts = asyncio.run(scenario())
    assert reads == [50]
    for n in range(0, 50, 2):
        assert firsts[f"s{n}"] == now - timedelta(minutes=n) + timedelta(hours=1)


def test_triggers_and_default_jitter() -> None:
    hourly = source(every="2h")
    assert jitter_for(hourly) == timedelta(minutes=5)  # a tenth of 2 h is capped at 5 min
    assert jitter_for(source(every="10m")) == timedelta(minutes=1)
    assert isinstance(trigger_for(hourly), IntervalTrigger)
    cron = trigger_for(source(cron="*/15 * * * *"))
    assert isinstance(cron, CronTrigger)
    fire = cron.get_next_fire_time(None, datetime(2026, 1, 1, 0, 7, tzinfo=UTC))
    assert fire == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)


def test_backoff_grows_with_failures_and_is_capped() -> None:
    last = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    quarter = source(every="15m")
    assert backoff_until(quarter, 0, last) is None
    assert backoff_until(quarter, 1, last) is None  # one failure: a glitch, keep the schedule
    assert backoff_until(quarter, 2, last) == last + timedelta(minutes=30)
    assert backoff_until(quarter, 3, last) == last + timedelta(hours=1)
    assert backoff_until(quarter, 20, last) == last + timedelta(hours=6)  # capped
    daily = source(every="1d")
    assert backoff_until(daily, 5, last) == last + timedelta(days=1)  # never below the interval
    assert backoff_until(source(cron="0 * * * *"), 2, last) == last + timedelta(hours=2)
