from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from worker.errors import StoreError
from worker.models import Item, RunReport, Validators
from worker.store.state import MAX_BLOCK_ROWS_PER_SOURCE, SCHEMA_VERSION, SourceState, Store

T0 = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)


def make_item(n: int, *, source_id: str = "blog", published: datetime | None = None) -> Item:
    when = published or T0 + timedelta(hours=n)
    return Item(
        source_id=source_id,
        guid=f"https://example.org/post/{n}",
        url=f"https://example.org/post/{n}",
        title=f"Post {n}",
        content_html=f"<p>Body {n}</p>",
        content_hash=f"v1:{n:064x}",
        first_seen=when,
        published=when,
        updated=when,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "feedworker.db"


# -- opening ---------------------------------------------------------------------------------


def test_open_creates_folder_schema_and_wal(db_path: Path, store: Store) -> None:
    assert db_path.exists()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_open_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Store.open("sqlite:///data/state.db").close()
    assert (tmp_path / "data" / "state.db").exists()


@pytest.mark.sqlite_file
def test_open_in_memory() -> None:
    store = Store.open(":memory:")
    assert store.add_item(make_item(1))
    assert store.count_items("blog") == 1
    store.close()


@pytest.mark.parametrize(
    "url", ["postgresql://fw:secret@127.0.0.1:1/feedworker", "postgres://127.0.0.1:1/feedworker"]
)
def test_unreachable_postgresql_is_a_clear_store_error(url: str) -> None:
    with pytest.raises(StoreError, match=r"cannot open state database postgresql://") as caught:
        Store.open(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("url", ["mysql://db", "sqlite:///", "/var/state.db"])
def test_unknown_state_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreError, match="not understood"):
        Store.open(url)


def test_newer_schema_is_refused(db_path: Path) -> None:
    Store.open(f"sqlite:///{db_path}").close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer"):
        Store.open(f"sqlite:///{db_path}")


def test_unusable_file_raises_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"not-a-db\.db"):
        Store.open(f"sqlite:///{bad}")


# -- validators and known URLs ---------------------------------------------------------------


def test_validators_round_trip(store: Store) -> None:
    url = "https://example.org/"
    assert store.get_validators("blog", url) is None
    store.save_validators("blog", url, Validators(etag='W/"abc"', last_modified="Wed, 01 May 2024"))
    assert store.get_validators("blog", url) == Validators(
        etag='W/"abc"', last_modified="Wed, 01 May 2024"
    )
    store.save_validators("blog", url, Validators(etag=None, last_modified="Thu, 02 May 2024"))
    assert store.get_validators("blog", url) == Validators(last_modified="Thu, 02 May 2024")


def test_validators_belong_to_the_source_that_saved_them(store: Store) -> None:
    url = "https://example.org/"
    store.save_validators("blog", url, Validators(etag='"1"'))
    assert store.get_validators("newcomer", url) is None  # a first run sends none
    store.save_validators("newcomer", url, Validators(etag='"2"'))
    assert store.get_validators("blog", url) == Validators(etag='"1"')
    assert store.get_validators("newcomer", url) == Validators(etag='"2"')
    # Saved with other listing settings: not sent (the page must be read with the new ones).
    store.save_validators("blog", url, Validators(etag='"3"'), variant="links=h2 a")
    assert store.get_validators("blog", url) is None
    assert store.get_validators("blog", url, "links=h2 a") == Validators(etag='"3"')


def test_migration_5_moves_an_existing_database_to_validators_per_source(state_url: str) -> None:
    """On either backend: a version-4 database with shared validators is migrated in place."""
    from worker.store.state import _MIGRATIONS

    old = Store.open(state_url)
    try:
        old.add_item(make_item(1))
        with old._write("making it a version-4 database") as conn:
            conn.execute("DROP TABLE validators")
            conn.execute(_MIGRATIONS[1][0])  # validators as version 1 made them: one row a URL
            conn.execute(
                "INSERT INTO validators (url, etag) VALUES (?, ?)", ("https://example.org/", '"x"')
            )
            _undo_migrations_after(conn, 5)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (4,))
    finally:
        old.close()
    migrated = Store.open(state_url)
    try:
        assert migrated.schema_version() == SCHEMA_VERSION
        assert migrated.get_validators("blog", "https://example.org/") is None  # nobody's
        migrated.save_validators("blog", "https://example.org/", Validators(etag='"y"'))
        assert migrated.get_validators("blog", "https://example.org/") == Validators(etag='"y"')
        assert migrated.feed_items("blog", 10) == [make_item(1)]  # the rest is kept
    finally:
        migrated.close()


def test_known_urls_per_source(store: Store) -> None:
    assert store.known_url("blog", "https://example.org/a?utm=1") is None
    store.remember_url("blog", "https://example.org/a?utm=1", "https://example.org/a")
    assert store.known_url("blog", "https://example.org/a?utm=1") == "https://example.org/a"
    assert store.known_url("other", "https://example.org/a?utm=1") is None
    store.remember_url("blog", "https://example.org/a?utm=1", "https://example.org/a2")
    assert store.known_url("blog", "https://example.org/a?utm=1") == "https://example.org/a2"


# -- items -----------------------------------------------------------------------------------


def test_add_item_round_trips_every_field(store: Store) -> None:
    item = replace(
        make_item(1),
        authors=("Ada Lovelace", "Grace Hopper"),
        summary="Short.",
        image="https://example.org/a.jpg",
        updated=T0 + timedelta(days=2, microseconds=5),
    )
    assert store.add_item(item)
    assert store.item("blog", item.guid) is not None
    assert store.feed_items("blog", 10) == [item]


def test_duplicate_guid_is_refused(store: Store) -> None:
    item = make_item(1)
    assert store.add_item(item)
    assert not store.add_item(replace(item, title="Other title", content_hash="v1:" + "f" * 64))
    assert store.count_items("blog") == 1
    assert store.feed_items("blog", 10)[0].title == "Post 1"


def test_duplicate_hash_is_refused(store: Store) -> None:
    item = make_item(1)
    assert store.add_item(item)
    moved = replace(item, guid="https://example.org/moved", url="https://example.org/moved")
    assert not store.add_item(moved)
    assert store.count_items("blog") == 1
    assert store.guid_for_hash("blog", item.content_hash) == item.guid
    assert store.guid_for_hash("blog", "v1:" + "0" * 63 + "9") is None


def test_same_article_in_two_sources_is_two_items(store: Store) -> None:
    assert store.add_item(make_item(1, source_id="a"))
    assert store.add_item(make_item(1, source_id="b"))
    assert store.count_items("a") == store.count_items("b") == 1
    assert store.item("c", make_item(1).guid) is None


def test_update_item_replaces_edited_text_and_keeps_first_seen(store: Store) -> None:
    item = make_item(1)
    store.add_item(item)
    edited = replace(
        item,
        content_html="<p>Body 1, corrected</p>",
        content_hash="v1:" + "e" * 64,
        first_seen=T0 + timedelta(days=9),
        updated=T0 + timedelta(days=3),
    )
    assert store.update_item(edited)
    (stored,) = store.feed_items("blog", 10)
    assert stored == replace(edited, first_seen=item.first_seen)
    assert not store.update_item(edited)  # unchanged hash
    assert not store.update_item(replace(edited, guid="https://example.org/unknown"))


def test_update_item_never_takes_another_items_text(store: Store) -> None:
    first, second = make_item(1), make_item(2)
    store.add_item(first)
    store.add_item(second)
    assert not store.update_item(replace(second, content_hash=first.content_hash))
    assert store.guid_for_hash("blog", second.content_hash) == second.guid


def test_feed_order_newest_first_then_first_seen_then_guid(store: Store) -> None:
    same_time = T0 + timedelta(days=1)
    items = [
        make_item(1),
        make_item(3),
        make_item(2),
        replace(make_item(10, published=same_time), first_seen=T0),
        replace(make_item(11, published=same_time), first_seen=T0 + timedelta(seconds=1)),
        make_item(12, published=same_time - timedelta(seconds=1)),
        make_item(13, published=same_time - timedelta(seconds=1)),
    ]
    for item in items:
        store.add_item(item)
    guids = [item.guid.rsplit("/", 1)[1] for item in store.feed_items("blog", 100)]
    assert guids == ["11", "10", "12", "13", "3", "2", "1"]
    assert len(store.feed_items("blog", 3)) == 3


def test_sub_second_order_is_time_order(store: Store) -> None:
    # Fixed-width timestamps: a whole second must not sort after a fraction of the same second.
    store.add_item(make_item(1, published=T0))
    store.add_item(make_item(2, published=T0 + timedelta(microseconds=500_000)))
    assert [i.guid[-1] for i in store.feed_items("blog", 10)] == ["2", "1"]


def test_datetimes_come_back_aware_utc(store: Store) -> None:
    paris = datetime(2024, 5, 1, 10, 30, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    store.add_item(make_item(1, published=paris))
    (item,) = store.feed_items("blog", 1)
    assert item.published == paris
    assert item.published.tzinfo is UTC
    assert item.first_seen.utcoffset() == timedelta(0)


def test_naive_datetimes_are_taken_as_utc(store: Store) -> None:
    store.add_item(make_item(1, published=datetime(2024, 5, 1, 8, 30)))
    assert store.feed_items("blog", 1)[0].published == T0


# -- run state -------------------------------------------------------------------------------


def report(source_id: str, at: datetime, error: str | None = None, new: int = 0) -> RunReport:
    finished = at + timedelta(seconds=3)
    return RunReport(source_id, started=at, finished=finished, error=error, items_new=new)


def test_record_run_counts_failures_and_resets_on_success(store: Store) -> None:
    assert store.source_state("blog") is None
    store.record_run(report("blog", T0, new=4), next_run=T0 + timedelta(hours=1))
    state = store.source_state("blog")
    assert state == SourceState(
        source_id="blog",
        last_run=T0 + timedelta(seconds=3),
        last_success=T0 + timedelta(seconds=3),
        last_error=None,
        consecutive_failures=0,
        items_new_last_run=4,
        next_run=T0 + timedelta(hours=1),
    )

    later = T0 + timedelta(hours=1)
    store.record_run(report("blog", later, error="index: 503"))
    store.record_run(report("blog", later + timedelta(hours=1), error="index: timeout"))
    state = store.source_state("blog")
    assert state is not None
    assert state.consecutive_failures == 2
    assert state.last_error == "index: timeout"
    assert state.last_success == T0 + timedelta(seconds=3)
    assert state.last_run == later + timedelta(hours=1, seconds=3)
    assert state.items_new_last_run == 0
    assert state.next_run is None

    store.record_run(report("blog", later + timedelta(hours=2), new=1))
    state = store.source_state("blog")
    assert state is not None
    assert state.consecutive_failures == 0
    assert state.last_error is None
    assert state.last_success == later + timedelta(hours=2, seconds=3)


def test_first_run_failing_counts_one(store: Store) -> None:
    store.record_run(report("blog", T0, error="boom"))
    state = store.source_state("blog")
    assert state is not None
    assert (state.consecutive_failures, state.last_success) == (1, None)


def test_unfinished_report_uses_start_time(store: Store) -> None:
    store.record_run(RunReport(source_id="blog", started=T0))
    state = store.source_state("blog")
    assert state is not None and state.last_run == T0


def test_source_states_lists_all_sorted(store: Store) -> None:
    store.record_run(report("zeta", T0))
    store.record_run(report("alpha", T0, error="x"))
    assert [s.source_id for s in store.source_states()] == ["alpha", "zeta"]


# -- template learning -----------------------------------------------------------------------


def test_blocks_count_distinct_pages(store: Store) -> None:
    store.record_blocks("blog", "https://example.org/1", ["nav", "footer", "a1"])
    store.record_blocks("blog", "https://example.org/1", ["nav", "footer", "a1", "a1"])
    assert store.boilerplate_blocks("blog") == frozenset()
    store.record_blocks("blog", "https://example.org/2", ["nav", "footer", "a2"])
    assert store.boilerplate_blocks("blog") == {"nav", "footer"}
    assert store.boilerplate_blocks("blog", min_pages=3) == frozenset()
    store.record_blocks("blog", "https://example.org/3", iter(["nav"]))
    assert store.boilerplate_blocks("blog", min_pages=3) == {"nav"}
    assert store.boilerplate_blocks("other") == frozenset()


def test_blocks_are_bounded_dropping_least_recently_seen(store: Store, db_path: Path) -> None:
    per_page = 100
    pages = MAX_BLOCK_ROWS_PER_SOURCE // per_page + 5
    for page in range(pages):
        unique = [f"p{page}-{i}" for i in range(per_page - 1)]
        store.record_blocks("blog", f"https://example.org/{page}", ["header", *unique])
    store.record_blocks("blog", "https://example.org/0", ["header"])  # seen again: kept
    store.record_blocks("other", "https://example.org/x", ["header"])
    store.close()
    with sqlite3.connect(db_path) as conn:
        (rows,) = conn.execute(
            "SELECT COUNT(*) FROM block_pages WHERE source_id = 'blog'"
        ).fetchone()
        kept = {
            r[0]
            for r in conn.execute("SELECT page_url FROM block_pages WHERE fingerprint = 'header'")
        }
    assert rows == MAX_BLOCK_ROWS_PER_SOURCE
    assert "https://example.org/0" in kept  # refreshed
    assert "https://example.org/1" not in kept  # least recently seen, dropped
    assert f"https://example.org/{pages - 1}" in kept


def test_recording_pages_at_once_keeps_the_rows_page_by_page_would(store: Store) -> None:
    """A run records its pages' blocks in one batch; the rows kept (with their order of being
    seen, which decides what a trim drops) are those of recording the pages one by one, also
    across a trim and with a page seen again. Two sources of one store, one recorded each way."""
    per_page = 90
    earlier = [
        (f"https://example.org/{n}", [f"p{n}-{i}" for i in range(per_page)]) for n in range(30)
    ]
    run = [
        (f"https://example.org/{n}", ["header", *(f"q{n}-{i}" for i in range(per_page))])
        for n in range(20, 50)  # pages 20-29 seen again
    ] + [("https://example.org/empty", [])]
    for source in ("single", "batch"):
        for url, prints in earlier:
            store.record_blocks(source, url, prints)
    for url, prints in run:
        store.record_blocks("single", url, prints)
    store.record_pages_blocks("batch", run)

    def rows(source: str) -> list[tuple[str, str, int]]:
        found = store._all(
            "SELECT fingerprint, page_url, seen FROM block_pages WHERE source_id = ?", (source,)
        )
        return sorted((str(fp), str(url), int(seen)) for fp, url, seen in found)

    single = rows("single")
    assert len(single) == MAX_BLOCK_ROWS_PER_SOURCE  # the trim ran
    assert rows("batch") == single


# -- durability ------------------------------------------------------------------------------


def test_reopening_keeps_everything(state_url: str) -> None:
    url = state_url
    store = Store.open(url)
    store.add_item(replace(make_item(1), authors=("Ada",)))
    store.save_validators("blog", "https://example.org/", Validators(etag='"1"'))
    store.remember_url("blog", "https://example.org/1?ref=x", make_item(1).guid)
    store.record_run(report("blog", T0, error="boom"))
    store.record_blocks("blog", "https://example.org/1", ["nav"])
    store.record_blocks("blog", "https://example.org/2", ["nav"])
    store.close()

    again = Store.open(url)
    try:
        assert again.feed_items("blog", 10) == [replace(make_item(1), authors=("Ada",))]
        assert again.get_validators("blog", "https://example.org/") == Validators(etag='"1"')
        assert again.known_url("blog", "https://example.org/1?ref=x") == make_item(1).guid
        state = again.source_state("blog")
        assert state is not None and state.consecutive_failures == 1
        assert again.boilerplate_blocks("blog") == {"nav"}
    finally:
        again.close()


def test_failing_method_leaves_database_consistent(store: Store) -> None:
    store.add_item(make_item(1))

    def boom(*_args: object) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError), store._write("testing") as conn:
        conn.execute("DELETE FROM items")
        boom()
    assert store.count_items("blog") == 1
    assert store.add_item(make_item(2))  # the connection is usable again


def test_refused_write_is_a_store_error_and_changes_nothing(store: Store) -> None:
    store.add_item(make_item(1))
    with pytest.raises(StoreError, match="adding an item"):
        store.add_item(replace(make_item(2), title=None))  # type: ignore[arg-type]
    assert store.count_items("blog") == 1
    assert store.add_item(make_item(3))


def test_errors_after_close_are_store_errors(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError):
        store.count_items("blog")


def test_migration_2_keeps_items_of_a_version_1_file_as_identities(db_path: Path) -> None:
    from worker.store.state import _MIGRATIONS

    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in _MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1)")
    old = Store.open(f"sqlite:///{db_path}")
    try:
        old.add_item(make_item(1))
    finally:
        old.close()
    with sqlite3.connect(db_path) as conn:  # as a version-1 worker would have left it
        conn.execute("DELETE FROM identities")
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        later = ("identities", "run_health", "source_health")
        for table in (*later, "stored_feeds", "source_slots", "replicas"):
            conn.execute(f"DROP TABLE {table}")
        _undo_migrations_after(conn, 5)
    reopened = Store.open(f"sqlite:///{db_path}")
    try:
        identity = reopened.identity("blog", make_item(1).guid)
        assert identity is not None and identity.simhash is None and not identity.pruned
        assert reopened.guid_for_hash("blog", make_item(1).content_hash) == make_item(1).guid
    finally:
        reopened.close()


def test_rehash_never_lets_item_and_identity_disagree(store: Store) -> None:
    first, second = make_item(1), make_item(2)
    assert store.add_item(first) and store.add_item(second)
    # Rehashing item 1 to item 2's hash must change nothing: two items may not share a text.
    store.rehash("blog", first.guid, second.content_hash, None)
    assert store.item("blog", first.guid).content_hash == first.content_hash  # type: ignore[union-attr]
    assert store.identity("blog", first.guid).content_hash == first.content_hash  # type: ignore[union-attr]
    assert store.guid_for_hash("blog", second.content_hash) == second.guid
    store.rehash("blog", first.guid, "v9:new", None)
    assert store.item("blog", first.guid).content_hash == "v9:new"  # type: ignore[union-attr]
    assert store.identity("blog", first.guid).content_hash == "v9:new"  # type: ignore[union-attr]


def test_health_history_keeps_zeros_apart_from_unset(store: Store) -> None:
    from worker.models import RunHealth

    at = datetime(2026, 11, 1, tzinfo=UTC)
    zero = RunHealth(at=at, selector="h2 a", selector_matched=0, median_body_chars=0)
    unset = RunHealth(at=at + timedelta(hours=1))
    store.record_health("blog", zero, 10)
    store.record_health("blog", unset, 10)
    history = store.health_history("blog", 10)
    by_time = {h.at: h for h in history}
    assert by_time[at].selector_matched == 0 and by_time[at].median_body_chars == 0
    assert by_time[at + timedelta(hours=1)].selector_matched is None


def test_recent_items_of_the_given_sources_only(store: Store) -> None:
    for n, source_id in ((1, "blog"), (2, "news"), (3, "gone")):
        assert store.add_item(make_item(n, source_id=source_id))
    recent = store.recent_items(10, ["blog", "news"])
    assert [(i.source_id, i.guid) for i in recent] == [
        ("news", "https://example.org/post/2"),
        ("blog", "https://example.org/post/1"),
    ]
    assert store.recent_items(1, ["blog", "news"])[0].source_id == "news"
    assert store.recent_items(10, []) == []


# -- transactions ------------------------------------------------------------------------------


def test_transaction_commits_its_writes_together(state_url: str, store: Store) -> None:
    other = Store.open(state_url)  # a second connection to the same state
    guid = make_item(1).guid
    try:
        with store.transaction("test"):
            assert store.add_item(make_item(1))
            store.remember_url("blog", "https://example.org/p1", guid)
            assert other.item("blog", guid) is None  # nothing committed yet
            assert other.known_url("blog", "https://example.org/p1") is None
            assert store.item("blog", guid) is not None  # this connection sees its own writes
        assert other.item("blog", guid) is not None
        assert other.known_url("blog", "https://example.org/p1") == guid
    finally:
        other.close()


def test_transaction_rolls_back_every_write_when_anything_raises(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction("test"):
        assert store.add_item(make_item(1))
        store.remember_url("blog", "https://example.org/p1", make_item(1).guid)
        raise RuntimeError("the run broke halfway")
    assert store.item("blog", make_item(1).guid) is None
    assert store.known_url("blog", "https://example.org/p1") is None
    assert store.add_item(make_item(2))  # and the store goes on as usual afterwards
    assert store.item("blog", make_item(2).guid) is not None


# -- near-duplicates in memory -----------------------------------------------------------------


def test_simhash_index_answers_as_the_store_does(store: Store) -> None:
    import random

    rng = random.Random(7)
    centre = rng.getrandbits(64)

    def near(bits: int) -> int:
        value = centre
        for bit in rng.sample(range(64), bits):
            value ^= 1 << bit
        return value

    for n in range(60):  # two sources, hashes at every distance from the centre, shared times
        seen = T0 + timedelta(hours=n % 7)
        item = replace(make_item(n, source_id=f"s{n % 2}"), first_seen=seen, simhash=near(n % 14))
        assert store.add_item(replace(item, content_hash=f"v2:{n}"))
    index = store.simhash_index("s0", limit=100)
    assert index is not None
    queries = [near(rng.randrange(0, 12)) for _ in range(150)] + [rng.getrandbits(64)]
    for query in queries:
        for distance in (0, 3, 7, 10):
            assert index.closest(query, distance) == store.near_duplicate(query, distance, "s0")

    fresh = replace(make_item(99, source_id="s0"), simhash=centre, content_hash="v2:99")
    assert store.add_item(fresh)
    index.added(fresh)
    assert index.closest(centre, 0) == store.near_duplicate(centre, 0, "s0")
    assert store.update_item(replace(fresh, simhash=~centre & (2**64 - 1), content_hash="v2:x"))
    index.changed(fresh.guid, ~centre & (2**64 - 1))
    for query in [*queries[:40], centre]:
        assert index.closest(query, 10) == store.near_duplicate(query, 10, "s0")


def test_simhash_index_is_refused_for_a_source_over_the_limit(store: Store) -> None:
    for n in range(5):
        assert store.add_item(replace(make_item(n), simhash=n, content_hash=f"v2:{n}"))
    assert store.simhash_index("blog", limit=4) is None
    assert store.simhash_index("blog", limit=5) is not None


def _undo_migrations_after(conn: Any, version: int) -> None:
    """Take back what the migrations after `version` added, so that a test can make a database
    of that version from a current one (on either backend)."""
    if version < 7:
        conn.execute("DROP TABLE websub_deliveries")
        conn.execute("DROP TABLE websub_subscriptions")
    if version < 6:
        conn.execute("DROP TABLE filter_digests")
        conn.execute("ALTER TABLE items DROP COLUMN filtered")
