"""The scheduler fires each source on its schedule and never runs one source twice at once."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from worker.config import Source
from worker.service.schedule import (
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


def test_restart_resumes_from_last_run() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    rng = random.Random(1)
    hourly = source(every="1h", jitter="0s")
    assert first_run_at(hourly, None, now, rng) == now
    assert first_run_at(hourly, now - timedelta(minutes=20), now, rng) == now + timedelta(
        minutes=40
    )
    assert first_run_at(hourly, now - timedelta(hours=5), now, rng) == now  # overdue: once, now
    assert first_run_at(source(cron="0 * * * *"), None, now, rng) is None


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
