"""Edited articles: same GUID, new content and date; trivial changes change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.backend import state_url_of
from tests.sitekit import Site, article_html, prose, run_sites, source_toml, write_config
from worker.dedupe.content import Change, compare_texts, content_hash
from worker.store.state import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEXT = prose(3, 24)


def stored_items(root: Path) -> list:
    store = Store.open(state_url_of(root / "state.db"))
    try:
        return store.feed_items("news", 50)
    finally:
        store.close()


def setup(tmp_path: Path, extra: str = 'recheck = "1h"') -> tuple[Site, Path]:
    site = Site()
    site.pages["/a.html"] = article_html("Budget day", TEXT)
    site.listed = ["/a.html"]
    config = write_config(tmp_path, source_toml("news", site, extra))
    (report,) = run_sites(config, [site], T0)
    assert report.items_new == 1
    return site, config


def test_an_edited_article_updates_its_item(tmp_path: Path) -> None:
    site, config = setup(tmp_path)
    (before,) = stored_items(tmp_path)
    edited = [*TEXT[:10], "The council later corrected the figures it gave.", *TEXT[10:]]
    site.pages["/a.html"] = article_html("Budget day (corrected)", edited)
    (report,) = run_sites(config, [site], T0 + timedelta(hours=2))
    assert (report.items_new, report.items_updated) == (0, 1)
    (after,) = stored_items(tmp_path)
    assert after.guid == before.guid and after.first_seen == before.first_seen
    assert after.published == before.published
    assert after.updated == T0 + timedelta(hours=2)
    assert "corrected the figures" in after.content_html and after.title.endswith("(corrected)")


def test_trivial_changes_change_nothing(tmp_path: Path) -> None:
    site, config = setup(tmp_path)
    (before,) = stored_items(tmp_path)
    noisy = ["Updated 10:42 am GMT", *TEXT[:5], "1,204 views", *TEXT[5:], "  12 comments  "]
    site.pages["/a.html"] = article_html("Budget day", noisy)
    (report,) = run_sites(config, [site], T0 + timedelta(hours=2))
    assert (report.items_new, report.items_updated) == (0, 0)
    assert stored_items(tmp_path) == [before]


def test_rechecks_are_conditional_and_spaced(tmp_path: Path) -> None:
    site, config = setup(tmp_path)
    run_sites(config, [site], T0 + timedelta(minutes=30))  # not due yet
    assert site.hits["/a.html"] == 1
    run_sites(config, [site], T0 + timedelta(hours=2))  # due: answered 304
    assert (site.hits["/a.html"], site.not_modified) == (2, 1)


def test_without_recheck_known_articles_are_not_fetched_again(tmp_path: Path) -> None:
    site, config = setup(tmp_path, extra="")
    site.pages["/a.html"] = article_html("Budget day", prose(4, 24))
    (report,) = run_sites(config, [site], T0 + timedelta(days=2))
    assert site.hits["/a.html"] == 1 and report.items_updated == 0


def test_same_canonical_url_with_changed_text_updates_on_a_normal_run(tmp_path: Path) -> None:
    site = Site()
    canonical = f"{site.origin}/a.html"
    site.pages["/a.html"] = article_html("Budget day", TEXT, canonical=canonical)
    site.listed = ["/a.html"]
    config = write_config(tmp_path, source_toml("news", site))
    run_sites(config, [site], T0)
    edited = [*TEXT, "A late amendment passed with a narrow majority of the council."]
    site.pages["/a-amp.html"] = article_html("Budget day", edited, canonical=canonical)
    site.listed = ["/a-amp.html"]
    (report,) = run_sites(config, [site], T0 + timedelta(hours=1))
    assert (report.items_new, report.items_updated) == (0, 1)
    (item,) = stored_items(tmp_path)
    assert item.guid == canonical and "late amendment" in item.content_html


def test_a_hash_of_another_version_is_rebaselined_not_an_edit() -> None:
    new = content_hash("Budget passes.")
    assert compare_texts("v1:" + "0" * 64, new) is Change.REHASHED
    assert compare_texts(new, new) is Change.UNCHANGED
    assert compare_texts(content_hash("Budget fails."), new) is Change.EDITED
