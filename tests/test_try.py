"""`feedworker try SOURCE_ID`: every stage of one run is shown, and nothing at all is written."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import httpx
import pytest
import respx

from tests.test_drift_e2e import ORIGIN, T0, DriftSite, Harness
from worker.cli import main
from worker.config import load_config
from worker.dryrun import DryRunStore, try_source
from worker.store import Store


class NoHook:
    url = "http://127.0.0.1:9/hook"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` (state database, its WAL, feeds) by its bytes' digest."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.parent.name != "config"
    }


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    site = DriftSite()
    for n in (1, 2):
        site.add(n)
    h = Harness(tmp_path, site, NoHook())  # type: ignore[arg-type]
    h.run()
    return h


def test_try_writes_nothing_and_shows_what_it_would_publish(harness: Harness) -> None:
    before = snapshot(harness.root)
    assert "state.db" in before and "feeds/drift.rss" in before
    harness.site.add(3)
    config = load_config(harness.config_dir, env={})
    transport = httpx.MockTransport(harness.site.handle)
    result = asyncio.run(try_source(config, config.source("drift"), transport=transport))
    assert snapshot(harness.root) == before  # byte-identical state and feeds
    report = result.report
    assert report.listing_kind == "index" and report.links_found == 3
    assert report.selector_matched == 3 and report.items_unchanged == 2
    assert [(t.decision, t.method, t.status) for t in report.articles] == [("new", "selector", 200)]
    assert [item.guid for item in result.would_add] == [f"{ORIGIN}/2026/03/story-3.html"]
    assert report.health_state == "ok"
    # The real run afterwards still sees the article as new: the dry run remembered nothing.
    assert harness.run().items_new == 1


def test_try_fresh_fetches_known_articles_and_decides_unchanged(harness: Harness) -> None:
    before = snapshot(harness.root)
    config = load_config(harness.config_dir, env={})
    transport = httpx.MockTransport(harness.site.handle)
    result = asyncio.run(
        try_source(config, config.source("drift"), fresh=True, transport=transport)
    )
    assert [t.decision for t in result.report.articles] == ["unchanged", "unchanged"]
    assert result.would_add == []
    assert snapshot(harness.root) == before


def test_try_on_a_degraded_source_prints_its_verdict(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.site.listing_class = "stories"
    harness.run()
    harness.run()
    assert harness.stored()[0] == "degraded"
    before = snapshot(harness.root)
    with respx.mock(assert_all_called=False) as router:
        router.route(host="drift.example.test").mock(side_effect=harness.site.handle)
        assert main(["try", "drift", "--config", str(harness.config_dir), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["dry_run"] is True
    assert payload["listing"]["kind"] == "index" and payload["listing"]["selector_matched"] == 0
    assert payload["health"]["state"] == "degraded" and payload["health"]["before"] == "degraded"
    assert payload["health"]["reasons"][0].startswith("the listing selector 'ul.posts h2 a'")
    assert payload["statuses"] == {"200": 1}
    assert snapshot(harness.root) == before

    harness.site.listing_class = "posts"
    harness.site.add(3)
    with respx.mock(assert_all_called=False) as router:
        router.route(host="drift.example.test").mock(side_effect=harness.site.handle)
        assert main(["try", "drift", "--config", str(harness.config_dir)]) == 0
    text = capsys.readouterr().out
    assert "(dry run: nothing is written)" in text
    assert "listing:  index, 3 link(s) kept; selector 'ul.posts h2 a' matched 3" in text
    assert "fetch:    200 ×2" in text
    assert "new            selector" in text and "story-3.html" in text
    assert "would publish: 1 new item(s), 0 update(s)" in text
    assert "health:   ok (stored state: degraded)" in text
    assert snapshot(harness.root) == before
    assert harness.stored()[0] == "degraded"  # only a real run changes the state


def test_try_without_a_state_database_creates_none(tmp_path: Path) -> None:
    site = DriftSite()
    site.add(1)
    h = Harness(tmp_path, site, NoHook())  # type: ignore[arg-type]
    config = load_config(h.config_dir, env={})
    transport = httpx.MockTransport(site.handle)
    result = asyncio.run(try_source(config, config.source("drift"), transport=transport))
    assert len(result.would_add) == 1
    assert snapshot(tmp_path) == {}


def test_try_an_unknown_source_says_which_exist(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", "nope", "--config", str(harness.config_dir)]) == 1
    assert "known: drift" in capsys.readouterr().err


def test_the_dry_run_store_rolls_back_every_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    Store.open(url).close()
    before = snapshot(tmp_path)
    store = DryRunStore.dry_store(url)
    try:
        store.set_health("blog", "degraded", ["why"], T0)
        store.remember_url("blog", "https://example.org/a", "https://example.org/a")
        assert store.source_health("blog") is None
        assert store.known_url("blog", "https://example.org/a") is None
        assert store.writes == 2
    finally:
        store.close()
    assert snapshot(tmp_path) == before
