"""Cluster mode's scheduler: aligned slots spread over the interval, taken from one heap and
claimed in batches (one claim call for all the slots due together), with the misfire grace and
the start-up catch-up; and the store's batched claims."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path

from worker.config import Source
from worker.service.schedule import SPREAD_NEW_ABOVE, RunTimes
from worker.service.slots import Due, SlotScheduler, next_slot_at, slot_of
from worker.store.state import IN_LIST_SIZE, Store

HOUR = 3600.0


def source(number: int, **fields: object) -> Source:
    return Source.model_validate(
        {"id": f"s{number}", "url": f"https://s{number}.example/", "every": "1h", **fields}
    )


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def no_claim(due: Sequence[Due]) -> None:
    return None


def scheduler(clock: FakeClock, run_times: dict[str, RunTimes] | None = None) -> SlotScheduler:
    stored = run_times or {}

    def times(ids: Collection[str]) -> dict[str, RunTimes]:
        return {i: stored[i] for i in ids if i in stored}

    return SlotScheduler(no_claim, run_times=times, clock=clock, rng=random.Random(3))


def test_slots_of_thousands_of_sources_spread_over_the_interval() -> None:
    """Without a jitter of their own, 1,000 hourly sources have their slots all over the hour
    (about 100 in each tenth), not within the default jitter's first 5 minutes."""
    start = 1_800_000_000.0  # an hour boundary
    tenths = [0] * 10
    for n in range(1000):
        at = next_slot_at(source(n), start)
        assert at is not None and start < at <= start + HOUR
        assert slot_of(source(n), datetime.fromtimestamp(at, UTC)) == int(at)
        tenths[min(9, int((at - start) / 360))] += 1
    assert all(60 <= count <= 140 for count in tenths), tenths
    pinned = source(1, jitter="0s")  # an explicit jitter keeps the slot within it
    assert next_slot_at(pinned, start) == start + HOUR


def test_slots_due_together_are_taken_together_and_the_next_ones_placed() -> None:
    clock = FakeClock(1_800_000_000.0 + 10)
    slots = scheduler(clock)
    sources = [source(n, every="1m", jitter="0s") for n in range(300)]
    slots.sync(sources)
    assert slots._take_due(clock.now) == []
    clock.now = 1_800_000_060.0  # the next minute: every source's slot at once
    due = slots._take_due(clock.now)
    assert len(due) == 300 and {d.slot for d in due} == {1_800_000_060}
    assert slots.next_run("s0") == datetime.fromtimestamp(1_800_000_120, UTC)
    assert slots._take_due(clock.now) == []  # each slot once


def test_a_slot_taken_up_after_the_grace_time_is_missed_and_the_next_one_kept() -> None:
    clock = FakeClock(1_800_000_000.0 + 10)
    slots = scheduler(clock)
    slots.sync([source(1, every="1m", jitter="0s")])
    clock.now += 3 * HOUR  # a suspended machine: 180 slots late
    assert slots._take_due(clock.now) == []  # not claimed so late, and not 180 times
    assert slots.missed == 1
    next_run = slots.next_run("s1")
    assert next_run is not None and 0 < next_run.timestamp() - clock.now <= 60


def test_the_loop_hands_each_instants_slots_over_in_one_claim() -> None:
    """Real time, short intervals: 200 sources due each second reach `claim` as one batch per
    second, not 200 calls."""
    calls: list[int] = []

    async def claim(due: Sequence[Due]) -> None:
        calls.append(len(due))

    async def scenario() -> None:
        slots = SlotScheduler(claim)
        slots.start([source(n, every="1s", jitter="0s") for n in range(200)])
        try:
            async with asyncio.timeout(60):  # only ends a broken test
                while len(calls) < 3:
                    await asyncio.sleep(0.05)
        finally:
            slots.shutdown()
            await slots.wait_closed()

    asyncio.run(scenario())
    assert calls[:3] == [200, 200, 200]


def test_start_catches_up_sources_that_ran_and_a_few_new_ones() -> None:
    """At start, a source that ran and whose next slot is more than half an interval away
    claims its current slot within 30 s; new sources do too while they are few, and wait for
    their slot when they are many (their slots are spread over the interval already)."""
    origin = 1_800_000_000.0
    many = [source(n) for n in range(3 * SPREAD_NEW_ABOVE)]  # about half of them far
    ran = {s.id: RunTimes(datetime.fromtimestamp(origin - HOUR, UTC)) for s in many[:20]}

    def catch_ups(sources: list[Source], stored: dict[str, RunTimes]) -> dict[str, float]:
        clock = FakeClock(origin)
        return scheduler(clock, stored)._catch_ups(sources, clock.now)

    far = [s for s in many if next_slot_at(s, origin) - origin > HOUR / 2]  # type: ignore[operator]
    caught = catch_ups(many, ran)
    assert set(caught) == {s.id for s in far if s.id in ran}  # the many new ones wait
    assert all(0 <= delay <= 30 for delay in caught.values())
    few = many[: SPREAD_NEW_ABOVE // 2]
    assert set(catch_ups(few, {})) == {s.id for s in far if s in few}


def test_a_reload_drops_removed_sources_and_moves_changed_ones() -> None:
    clock = FakeClock(1_800_000_000.0 + 10)
    slots = scheduler(clock)
    slots.sync([source(1, every="1m", jitter="0s"), source(2, every="1m", jitter="0s")])
    slots.sync([source(1, every="2m", jitter="0s")])  # 2 removed, 1 every two minutes
    assert slots.next_run("s2") is None
    clock.now = 1_800_000_060.0
    assert slots._take_due(clock.now) == []  # neither the removed nor the old 1-minute slot
    clock.now = 1_800_000_120.0
    assert slots._take_due(clock.now) == [Due("s1", 1_800_000_120)]


def test_the_store_claims_many_slots_in_a_few_statements(store: Store) -> None:
    pairs = [(f"s{n}", 600) for n in range(2 * IN_LIST_SIZE + 200)]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    statements: list[str] = []
    real = store._db.execute

    def counted(sql: str, params: object = ()) -> object:
        statements.append(sql)
        return real(sql, params)  # type: ignore[arg-type]

    store._db.execute = counted  # type: ignore[method-assign]
    assert store.claim_slots(pairs, "a", now) == pairs
    assert len([s for s in statements if s.startswith("INSERT")]) == 3  # not one per slot
    assert store.claim_slots(pairs, "b", now) == []  # claimed by a already
    more = [("s1", 1200), ("s1", 600), ("new", 600)]
    assert store.claim_slots(more, "b", now) == [("s1", 1200), ("new", 600)]
    assert store.claim_slot("new", 600, "c", now) is False


def test_a_replica_queues_the_slots_it_won_in_batches(postgres_url: str, tmp_path: Path) -> None:
    """600 slots due together: one claim (two INSERTs), two calls deferring jobs (500 + 100),
    not 600 of each; the same slots again win nothing; a source still queued from its last
    slot is skipped without losing the others of its batch."""
    from worker.config import load_config
    from worker.service.cluster import ClusterNode

    (tmp_path / "feedworker.toml").write_text(
        f'[worker]\nstate_url = "{postgres_url}"\ncluster = true\n'
    )
    (tmp_path / "sources.toml").write_text(
        "".join(f'[[source]]\nid = "s{n}"\nurl = "https://s{n}.example/"\n' for n in range(601))
    )
    config = load_config(tmp_path, env={})
    store = Store.open(postgres_url)

    async def no_run(source_id: str) -> None:
        return None

    async def scenario() -> tuple[list[str], list[str], list[str], list[int]]:
        node = ClusterNode(config, store, no_run, concurrency=1, grace=0)
        async with node:
            batches: list[int] = []
            manager = node.app.job_manager
            real = manager.batch_defer_jobs_async

            async def counted(jobs: list[object], connection: object = None) -> object:
                batches.append(len(jobs))
                return await real(jobs, connection)  # type: ignore[arg-type]

            manager.batch_defer_jobs_async = counted  # type: ignore[method-assign]
            first = await node.claim([Due(f"s{n}", 600) for n in range(600)])
            again = await node.claim([Due(f"s{n}", 600) for n in range(600)])
            later = await node.claim([Due("s0", 1200), Due("s600", 1200)])  # s0 still queued
            return first, again, later, batches

    try:
        first, again, later, batches = asyncio.run(scenario())
    finally:
        store.close()
    assert len(first) == 600 and again == [] and later == ["s600"]
    assert batches[:2] == [500, 100]
