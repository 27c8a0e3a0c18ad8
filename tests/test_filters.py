"""Item filters: `keep` and `drop` rules, as config, as a pure judge, and through whole runs."""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.backend import state_env, state_url_of
from tests.sitekit import Site, article_html, prose, run_sites, source_toml, write_config
from tests.test_store import _undo_migrations_after
from worker.config import load_config
from worker.errors import ConfigError
from worker.filters import MAX_FILTER_CHARS, FilterSubject, ItemFilters, parse_rules
from worker.models import Item
from worker.store.state import SCHEMA_VERSION, Store

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def subject(
    title: str = "A title",
    content: str = "Some text.",
    authors: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    url: str = "https://news.example.test/a",
) -> FilterSubject:
    return FilterSubject(title, content, authors, categories, url)


def filters(keep: object = (), drop: object = ()) -> ItemFilters:
    return ItemFilters(parse_rules(keep, "keep"), parse_rules(drop, "drop"))


# -- the judge -----------------------------------------------------------------------------------


def test_words_match_whole_words_in_any_case() -> None:
    rules = filters(drop=[{"title": "sale"}])
    assert rules.judge(subject(title="Summer SALE: 20% off")) == "drop rule 1: title 'sale'"
    assert rules.judge(subject(title="Wholesale prices rise")) is None
    assert rules.judge(subject(title="Salesforce buys a company")) is None


def test_a_phrase_matches_across_any_whitespace_and_unicode_words_have_boundaries() -> None:
    rules = filters(drop=[{"content": ["press release", "Übersicht"]}])
    assert rules.judge(subject(content="This is a PRESS\n  release."))
    assert rules.judge(subject(content="Die ÜBERSICHT der Woche"))
    assert rules.judge(subject(content="Eine Marktübersicht")) is None  # inside a word


def test_a_list_matches_any_of_its_values_and_list_fields_any_of_theirs() -> None:
    rules = filters(drop=[{"category": ["Deals", "Gossip"]}])
    assert rules.judge(subject(categories=("Tech", "Daily deals"))) == (
        "drop rule 1: category 'Deals'"
    )
    assert rules.judge(subject(categories=("Tech",))) is None
    by_author = filters(drop=[{"author": "Ann Smith"}])
    assert by_author.judge(subject(authors=("Bob", "ann  smith")))


def test_regexes_are_case_insensitive_and_a_rule_with_two_fields_needs_both() -> None:
    rules = filters(drop=[{"url": r"re:/sponsored/\d+", "title": "offer"}])
    url = "https://news.example.test/SPONSORED/12"
    assert rules.judge(subject(title="A special offer", url=url)) == (
        "drop rule 1: url 're:/sponsored/\\\\d+' and title 'offer'"
    )
    assert rules.judge(subject(title="A story", url=url)) is None
    assert rules.judge(subject(title="An offer")) is None


def test_keep_rules_let_through_only_what_matches_and_drop_still_applies() -> None:
    rules = filters(
        keep=[{"category": "Python"}, {"title": "re:^release"}], drop=[{"title": "beta"}]
    )
    assert rules.judge(subject(title="Release 3.14", categories=())) is None
    assert rules.judge(subject(title="Hello", categories=("python",))) is None
    assert rules.judge(subject(title="Hello", categories=("Rust",))) == "matches no keep rule"
    assert rules.judge(subject(title="Release 3.14 beta")) == "drop rule 1: title 'beta'"


def test_only_the_start_of_a_long_field_is_read() -> None:
    rules = filters(drop=[{"content": "needle"}, {"content": "re:needle2"}])
    late = "hay " * (MAX_FILTER_CHARS // 4) + "needle needle2"
    assert rules.judge(subject(content=late)) is None
    assert rules.judge(subject(content="needle " + late))


def test_a_regex_over_a_hostile_text_takes_linear_time() -> None:
    # (a+)+$ takes exponential time in a backtracking engine on "aaaa...!"; RE2 does not care.
    rules = filters(drop=[{"content": "re:(a+)+$"}])
    hostile = "a" * 50_000 + "!"
    started = time.process_time()
    for _ in range(20):
        assert rules.judge(subject(content=hostile)) is None
    assert time.process_time() - started < 5  # Python's re would not finish 30 characters


def test_digest_changes_with_the_rules_and_is_empty_without() -> None:
    assert filters().digest == ""
    one = filters(drop=[{"title": "a"}])
    assert one.digest == filters(drop={"title": "a"}).digest  # one table or an array of one
    assert one.digest != filters(drop=[{"title": "b"}]).digest
    assert one.digest != filters(keep=[{"title": "a"}]).digest


# -- the config ----------------------------------------------------------------------------------


def config_problem(tmp_path: Path, rule: str) -> str:
    site = Site()
    config = write_config(tmp_path, source_toml("news", site, rule))
    with pytest.raises(ConfigError) as caught:
        load_config(config, env=state_env())
    (problem,) = caught.value.problems
    assert (problem.file, problem.source) == ("config/sources.toml", "news")
    return str(problem)


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        (
            'drop = [{ titel = "x" }]',
            "drop: drop rule 1: unknown field 'titel'; did you mean 'title'?",
        ),
        ("keep = [{ title = 3 }]", "keep: keep rule 1: title: expected a word"),
        ('drop = "sponsored"', "drop: expected an array of rules"),
        ('drop = [{ title = "re:(?=x)" }]', "lookahead and lookbehind are not supported"),
        ('drop = [{ title = "re:(" }]', "bad regular expression '('"),
        ("drop = [{ title = [] }]", "expected a word, a list of words or 're:<regex>'"),
        ("drop = [{}]", "expected a table naming a field"),
    ],
)
def test_bad_rules_are_config_problems_naming_the_field(
    tmp_path: Path, rule: str, says: str
) -> None:
    assert says in config_problem(tmp_path, rule)


def test_rules_load_from_toml(tmp_path: Path) -> None:
    site = Site()
    extra = 'drop = [{ title = "sponsored" }, { category = ["Deals", "Gossip"] }]\n'
    source = load_config(
        write_config(tmp_path, source_toml("news", site, extra)), env=state_env()
    ).source("news")
    assert len(source.drop) == 2 and not source.keep
    assert source.filters.judge(subject(title="SPONSORED: buy now")) is not None


# -- through whole runs --------------------------------------------------------------------------


def story(site: Site, slug: str, title: str, *, category: str = "") -> None:
    page = article_html(title, prose(hash(slug) % 1000))
    if category:
        tag = f'<meta property="article:section" content="{html.escape(category)}">'
        page = page.replace("</head>", tag + "</head>")
    site.pages[f"/{slug}"] = page
    site.listed.append(f"/{slug}")


def feed_titles(store: Store) -> list[str]:
    return sorted(item.title for item in store.feed_items("news", 50))


def test_filtered_items_are_stored_with_reasons_and_rejudged_when_the_rules_change(
    tmp_path: Path,
) -> None:
    site = Site()
    story(site, "a", "Garden news of the week")
    story(site, "b", "Sponsored: the best hoses money can buy")
    story(site, "c", "Seed swap on Saturday", category="Gossip")
    config = write_config(
        tmp_path,
        source_toml("news", site, 'drop = [{ title = "sponsored" }, { category = "Gossip" }]'),
    )
    (report,) = run_sites(config, [site], T0)
    assert (report.items_new, report.items_filtered) == (1, 2)
    store = Store.open(state_url_of(tmp_path / "state.db"))
    try:
        assert feed_titles(store) == ["Garden news of the week"]
        reasons = {item.title: item.filtered for item in store.filtered_items("news", 10)}
        assert reasons == {
            "Sponsored: the best hoses money can buy": "drop rule 1: title 'sponsored'",
            "Seed swap on Saturday": "drop rule 2: category 'Gossip'",
        }
        assert store.count_items("news") == 1 and store.count_items("news", filtered=True) == 2
    finally:
        store.close()
    rss = (tmp_path / "feeds" / "news.rss").read_text()
    assert "Garden news" in rss and "hoses" not in rss and "Seed swap" not in rss

    # Seen again: neither comes back as new, and nothing is fetched again.
    hits = dict(site.hits)
    (again,) = run_sites(config, [site], T0 + timedelta(hours=1))
    assert (again.items_new, again.items_filtered) == (0, 0)
    assert site.hits["/b"] == hits["/b"] and site.hits["/c"] == hits["/c"]

    # The rules change: the sponsored story is published now, the garden news leaves the feed.
    write_config(
        tmp_path,
        source_toml("news", site, 'drop = [{ title = "garden" }, { category = "Gossip" }]'),
    )
    (changed,) = run_sites(config, [site], T0 + timedelta(hours=2))
    assert changed.items_refiltered == 2 and changed.items_new == 0
    store = Store.open(state_url_of(tmp_path / "state.db"))
    try:
        assert feed_titles(store) == ["Sponsored: the best hoses money can buy"]
    finally:
        store.close()
    rss = (tmp_path / "feeds" / "news.rss").read_text()
    assert "hoses" in rss and "Garden news" not in rss and "Seed swap" not in rss
    all_feed = (tmp_path / "feeds" / "all.atom").read_text()
    assert "hoses" in all_feed and "Garden news" not in all_feed

    # No rules at all: everything in the window is published.
    write_config(tmp_path, source_toml("news", site))
    (cleared,) = run_sites(config, [site], T0 + timedelta(hours=3))
    assert cleared.items_refiltered == 2
    store = Store.open(state_url_of(tmp_path / "state.db"))
    try:
        assert len(feed_titles(store)) == 3
    finally:
        store.close()


def test_filtered_items_do_not_shorten_the_feed_under_retention(tmp_path: Path) -> None:
    store = Store.open(state_url_of(tmp_path / "state.db"))
    try:
        for n in range(6):
            reason = "drop rule 1: title 'x'" if n % 2 else None
            store.add_item(make_item(n, filtered=reason))
        pruned = store.prune("news", 2, T0 + timedelta(days=1), T0 + timedelta(days=1))
        # Published 4, 2, 0: the newest two (4, 2) stay. Filtered 5, 3, 1: only 5 is among the
        # newest two of all (5, 4), so it stays (the filters may change); 3, 1 and 0 go.
        assert sorted(i.guid[-1] for i in store.feed_items("news", 10)) == ["2", "4"]
        assert [i.guid[-1] for i in store.filtered_items("news", 10)] == ["5"]
        assert pruned == 3
    finally:
        store.close()


def make_item(n: int, filtered: str | None = None) -> Item:
    when = T0 - timedelta(days=30) + timedelta(hours=n)
    return Item(
        source_id="news",
        guid=f"https://news.example.test/{n}",
        url=f"https://news.example.test/{n}",
        title=f"Story {n}",
        content_html=f"<p>Story {n}</p>",
        content_hash=f"v3:{n}",
        first_seen=when,
        published=when,
        updated=when,
        filtered=filtered,
    )


def test_a_database_from_before_filters_is_migrated_with_its_items_published(
    tmp_path: Path,
) -> None:
    """On either backend: a version-5 database's items are published after the migration."""
    state_url = state_url_of(tmp_path / "state.db")
    old = Store.open(state_url)
    try:
        old.add_item(make_item(1))
        with old._write("making it a version-5 database") as conn:
            _undo_migrations_after(conn, 5)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (5,))
    finally:
        old.close()
    store = Store.open(state_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        (item,) = store.feed_items("news", 10)
        assert item.title == "Story 1" and item.filtered is None
        assert store.filter_digest("news") == ""
    finally:
        store.close()
