"""Retention: items past keep_days beyond max_items are pruned; their tombstones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.backend import state_url_of
from tests.sitekit import Site, article_html, prose, run_sites, source_toml, write_config
from worker.models import Item
from worker.store.state import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def item(n: int, first_seen: datetime) -> Item:
    return Item(
        source_id="news",
        guid=f"https://news.example.test/{n}",
        url=f"https://news.example.test/{n}",
        title=f"Story {n}",
        content_html=f"<p>{n}</p>",
        content_hash=f"v2:{n:064x}",
        first_seen=first_seen,
        published=first_seen,
        updated=first_seen,
        simhash=n,
    )


def test_prune_keeps_the_newest_and_the_young_and_leaves_tombstones(state_url: str) -> None:
    store = Store.open(state_url)
    for n in range(5):
        store.add_item(item(n, T0 + timedelta(days=n)))
    now = T0 + timedelta(days=100)
    # keep the newest 2; of the rest, those first seen within 97 days (day 3 is the newest 2)
    assert store.prune("news", 2, now - timedelta(days=98), now) == 2
    assert [i.title for i in store.feed_items("news", 10)] == ["Story 4", "Story 3", "Story 2"]
    tombstone = store.identity("news", item(0, T0).guid)
    assert tombstone is not None and tombstone.pruned
    assert store.guid_for_hash("news", item(0, T0).content_hash) == item(0, T0).guid
    assert store.prune("news", 2, now - timedelta(days=98), now) == 0  # idempotent


def test_a_pruned_article_still_listed_does_not_come_back(tmp_path: Path) -> None:
    site = Site()
    for n in range(3):
        site.pages[f"/{n}.html"] = article_html(f"Story {n}", prose(10 + n, 20))
    site.listed = ["/0.html", "/1.html", "/2.html"]
    config = write_config(tmp_path, source_toml("news", site, "max_items = 2\nkeep_days = 1"))
    (first,) = run_sites(config, [site], T0)
    assert first.items_new == 2  # max_items new ones per run
    (second,) = run_sites(config, [site], T0 + timedelta(days=2))
    assert (second.items_new, second.items_pruned) == (1, 1)
    # the pruned article is still listed, and also reachable under a new URL variant
    site.listed = ["/0.html", "/1.html", "/2.html", "/0.html?from=home"]
    (third,) = run_sites(config, [site], T0 + timedelta(days=4))
    assert third.items_new == 0
    store = Store.open(state_url_of(tmp_path / "state.db"))
    assert store.count_items("news") == 2
    store.close()
