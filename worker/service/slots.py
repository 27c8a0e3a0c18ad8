"""Cluster mode's scheduler: every source's aligned schedule slots in one heap, claimed in batches.

Every replica fires every source at the same instants (`worker.service.cluster.slot_of`), and the
first to claim a slot queues its run. With APScheduler that was one job per source on every
replica (60 MB and 6 s of CPU to start at 100,000 sources) and one database round trip per
source and slot on every replica. Here the next slot of each source sits in a heap; the loop
sleeps until the earliest is due, takes every slot due by then, and hands them to `claim` in
one call (`ClusterNode.claim`: one INSERT per `CLAIM_BATCH` slots, one batch of deferred jobs).

As APScheduler did (`coalesce=True`, `misfire_grace_time`): a slot taken up later than the
grace time (a suspended machine, a stalled loop) is not claimed; the source's next slot is.

At start (`start`), a source whose current slot may have been missed (its next slot more than
half an interval away) claims the current slot too, within seconds, so a source added while
the cluster was down, or a slot missed by a cluster that was down, runs now. Sources that never
ran are left to their next slot when there are more than `SPREAD_NEW_ABOVE` of them: their
slots are spread over the interval already (`slot_offset`), and claiming every current slot
at once would queue them all together.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from worker.config import Source
from worker.service.logs import fields, log
from worker.service.schedule import (
    SPREAD_NEW_ABOVE,
    START_SPREAD_CAP,
    RunTimes,
    RunTimesFn,
    cron_fields,
    jitter_for,
    schedule_signature,
    slot_offset,
)

__all__ = ["ClaimFn", "Due", "SlotScheduler", "next_slot_at", "slot_of"]

# Seconds a cron slot is wide: cron fires at minute boundaries.
CRON_SLOT = 60.0


@dataclass(frozen=True, slots=True)
class Due:
    """One schedule slot of one source to claim: `slot` is the epoch second it starts at."""

    source_id: str
    slot: int


ClaimFn = Callable[[Sequence[Due]], Awaitable[object]]


def slot_of(source: Source, moment: datetime, *, on_schedule: bool = True) -> int:
    """The schedule slot `moment` belongs to, as the epoch second it starts at.

    A scheduled fire is a little late (or, by clock skew, early), so it is rounded to the nearest
    slot; an unscheduled one (the catch-up at start) belongs to the slot it falls in.
    """
    every = source.every.total_seconds() if source.every is not None else CRON_SLOT
    offset = slot_offset(source) if source.every is not None else 0.0
    position = (moment.timestamp() - offset) / every
    index = round(position) if on_schedule else math.floor(position)
    return int(offset + index * every)


def next_slot_at(source: Source, after: float) -> float | None:
    """The epoch second of the source's first slot strictly after `after` (None: no more)."""
    if source.every is not None:
        every = source.every.total_seconds()
        offset = slot_offset(source)
        return offset + (math.floor((after - offset) / every) + 1) * every
    assert source.cron is not None
    trigger = CronTrigger(**cron_fields(source.cron), timezone=UTC)
    moment = datetime.fromtimestamp(after, UTC) + timedelta(microseconds=1)
    fire = trigger.get_next_fire_time(None, moment)
    return fire.timestamp() if fire is not None else None


def slot_is_near(source: Source, moment: float) -> bool:
    """Whether the source's next slot is less than half an interval after `moment`."""
    assert source.every is not None
    every = source.every.total_seconds()
    into = (moment - slot_offset(source)) % every
    return every - into < every / 2


@dataclass(order=True, slots=True)
class _Entry:
    at: float  # epoch seconds: when to claim
    source_id: str = field(compare=False)
    slot: int = field(compare=False)
    generation: int = field(compare=False)  # stale once the source was rescheduled or removed


class SlotScheduler:
    """The schedule of every source in one heap; due slots go to `claim` in batches.

    The same face as `worker.service.schedule.SourceScheduler` (`start`, `sync`, `next_run`,
    `shutdown`, `running`), so the service runs either."""

    def __init__(
        self,
        claim: ClaimFn,
        *,
        run_times: RunTimesFn = lambda _ids: {},
        misfire_grace_time: float = 300,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._claim = claim
        self._run_times = run_times
        self.grace = misfire_grace_time
        self._clock = clock or (lambda: datetime.now(UTC).timestamp())
        self._rng = rng or random.Random()
        self._heap: list[_Entry] = []
        self._sources: dict[str, Source] = {}
        self._generation: dict[str, int] = {}
        self._next: dict[str, float] = {}  # source id -> its next regular slot
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.claimed_batches = 0  # calls of `claim`, for tests and the benchmark
        self.missed = 0  # slots not claimed: taken up later than the grace time

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, sources: Iterable[Source]) -> None:
        """Schedule every enabled source, with the start-up catch-up, and start the loop; call
        from inside the running event loop."""
        self._place(sources, catch_up=True)
        self._task = asyncio.create_task(self._loop(), name="schedule slots")

    def sync(self, sources: Iterable[Source]) -> None:
        """After a config reload: new sources join, removed ones leave, changed schedules are
        placed again (without a catch-up: a changed source runs at its next slot)."""
        self._place(sources, catch_up=False)

    def next_run(self, source_id: str) -> datetime | None:
        at = self._next.get(source_id)
        return datetime.fromtimestamp(at, UTC) if at is not None else None

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def wait_closed(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- placing -----------------------------------------------------------------------------

    def _place(self, sources: Iterable[Source], *, catch_up: bool) -> None:
        wanted = {s.id: s for s in sources if s.enabled}
        for source_id in set(self._sources) - set(wanted):
            self._forget(source_id)
        changed = []
        for source in wanted.values():
            known = self._sources.get(source.id)
            if known is None or schedule_signature(known) != schedule_signature(source):
                changed.append(source)
            else:
                self._sources[source.id] = source  # the same slots; other settings may differ
        if not changed:
            return
        now = self._clock()
        late = self._catch_ups(changed, now) if catch_up else {}
        for source in changed:
            self._forget(source.id)
            self._sources[source.id] = source
            generation = self._generation.get(source.id, 0) + 1
            self._generation[source.id] = generation
            if source.id in late:
                at = now + late[source.id]
                slot = slot_of(source, datetime.fromtimestamp(at, UTC), on_schedule=False)
                heapq.heappush(self._heap, _Entry(at, source.id, slot, generation))
            self._push_next(source, now, generation)
        self._wake.set()

    def _catch_ups(self, sources: Sequence[Source], now: float) -> dict[str, float]:
        """The sources whose current slot to claim at start, each with its delay in seconds."""
        candidates = [s for s in sources if s.every is not None and not slot_is_near(s, now)]
        times: Mapping[str, RunTimes] = self._run_times([s.id for s in candidates])
        new = [s for s in candidates if times.get(s.id, RunTimes()).last_run is None]
        if len(new) > SPREAD_NEW_ABOVE:
            candidates = [s for s in candidates if s.id in times]  # the new ones wait
        delays = {}
        for source in candidates:
            spread = min(jitter_for(source), START_SPREAD_CAP).total_seconds()
            delays[source.id] = self._rng.uniform(0, spread)
        return delays

    def _push_next(self, source: Source, after: float, generation: int) -> None:
        at = next_slot_at(source, after)
        if at is None:
            self._next.pop(source.id, None)
            return
        self._next[source.id] = at
        slot = slot_of(source, datetime.fromtimestamp(at, UTC))
        heapq.heappush(self._heap, _Entry(at, source.id, slot, generation))

    def _forget(self, source_id: str) -> None:
        """Leave the source's heap entries to go stale (skipped when they come up)."""
        if self._sources.pop(source_id, None) is not None:
            self._generation[source_id] = self._generation.get(source_id, 0) + 1
            self._next.pop(source_id, None)

    # -- the loop ----------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            due = self._take_due(self._clock())
            if due:
                await self._hand_over(due)
                continue
            self._wake.clear()
            wait = self._heap[0].at - self._clock() if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def _take_due(self, now: float) -> list[Due]:
        """Every valid entry due by `now`, in time order; each regular slot taken schedules the
        source's next one. Entries later than the grace time are dropped (counted, logged)."""
        due: list[Due] = []
        while self._heap and self._heap[0].at <= now:
            entry = heapq.heappop(self._heap)
            source = self._sources.get(entry.source_id)
            if source is None or self._generation.get(entry.source_id) != entry.generation:
                continue
            if self._next.get(entry.source_id) == entry.at:  # a regular slot: place the next
                self._push_next(source, now, entry.generation)
            if now - entry.at > self.grace:
                self.missed += 1
                log.warning(
                    "schedule slot missed",
                    extra=fields(source=entry.source_id, late_s=round(now - entry.at)),
                )
                continue
            due.append(Due(entry.source_id, entry.slot))
        return due

    async def _hand_over(self, due: list[Due]) -> None:
        """`claim` the due slots; its failure (the database away) costs these slots, not the
        loop. Shielded: a shutdown does not cut a claimed batch off before it is queued."""
        self.claimed_batches += 1
        try:
            await asyncio.shield(self._claim(due))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("schedule slots not claimed", extra=fields(slots=len(due), error=str(exc)))
