"""The store's reads for thousands of sources: past the databases' parameter limits, in a
bounded number of statements, with the same answers as for a few."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.test_serve import item
from worker.models import RunReport
from worker.store.state import IN_LIST_SIZE, WHOLE_TABLE_ABOVE, Store

T0 = datetime(2026, 2, 1, tzinfo=UTC)


def test_recent_items_of_more_sources_than_an_in_list_holds(store: Store) -> None:
    """The combined feed of 1,200 sources (an IN list of 100,000 ids broke PostgreSQL's
    65,535-parameter limit): the newest items of the given sources only, in feed order."""
    ids = [f"s{n}" for n in range(2 * IN_LIST_SIZE + 200)]
    for n, source_id in enumerate(ids):
        store.add_item(item(source_id, f"https://x.example/{n}", T0 + timedelta(minutes=n)))
    store.add_item(item("removed", "https://x.example/new", T0 + timedelta(days=1)))
    recent = store.recent_items(150, ids)
    assert [i.source_id for i in recent] == ids[::-1][:150]  # "removed" is newest, left out
    few = ids[-3:]
    assert [i.source_id for i in store.recent_items(2, few)] == few[::-1][:2]
    everything = store.recent_items(10_000, ids)
    assert len(everything) == len(ids)


def test_per_source_reads_chunk_their_in_lists(store: Store) -> None:
    ids = [f"s{n}" for n in range(WHOLE_TABLE_ABOVE + 10)]
    for source_id in ids[::7]:
        store.record_run(RunReport(source_id, T0, T0, error="boom"))
        store.add_item(item(source_id, f"https://x.example/{source_id}", T0))
    states = store.source_states(ids)  # more than WHOLE_TABLE_ABOVE: one read of the table
    assert [s.source_id for s in states] == sorted(ids[::7])
    some = ids[: 2 * IN_LIST_SIZE + 1]  # three IN lists
    assert [s.source_id for s in store.source_states(some)] == sorted(some[::7])
    assert store.item_counts(some) == dict.fromkeys(some[::7], 1)
    overview = store.source_overviews()
    assert len(overview) == len(ids[::7]) and all(o.failing and o.ran for o in overview.values())
