"""`feedworker try SOURCE_ID`: every stage of one run is shown, and nothing at all is written."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import httpx
import pytest
import respx

from tests.backend import ON_POSTGRES, state_env
from tests.blogsite import Blog, Post, sample_posts
from tests.sitekit import prose
from tests.test_drift_e2e import ORIGIN, T0, DriftSite, Harness
from tests.test_e2e import write_config
from tests.test_template_learning import with_recurring_block
from worker.cli import main
from worker.commands.dryrun import DryRunStore, try_source
from worker.config import load_config
from worker.models import RunReport
from worker.service.runner import Worker
from worker.store.state import Store


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
    assert "feeds/drift.rss" in before and (ON_POSTGRES or "state.db" in before)
    harness.site.add(3)
    config = load_config(harness.config_dir, env=state_env())
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
    config = load_config(harness.config_dir, env=state_env())
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
    config = load_config(h.config_dir, env=state_env())
    transport = httpx.MockTransport(site.handle)
    result = asyncio.run(try_source(config, config.source("drift"), transport=transport))
    assert len(result.would_add) == 1
    assert snapshot(tmp_path) == {}


def test_try_an_unknown_source_says_which_exist(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", "nope", "--config", str(harness.config_dir)]) == 1
    assert "known: drift" in capsys.readouterr().err


@pytest.mark.skipif(
    ON_POSTGRES, reason="PostgreSQL rolls back each write (see worker.commands.dryrun)"
)
def test_the_dry_run_store_reads_its_own_writes_on_a_private_copy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    Store.open(url).close()
    before = snapshot(tmp_path)
    store = DryRunStore.dry_store(url, tmp_path / "state.db")
    copy_dir = store._copy_dir
    try:
        store.set_health("blog", "degraded", ["why"], T0)
        store.remember_url("blog", "https://example.org/a", "https://example.org/a")
        health = store.source_health("blog")
        assert health is not None and health.state == "degraded"
        assert store.known_url("blog", "https://example.org/a") == "https://example.org/a"
    finally:
        store.close()
    assert snapshot(tmp_path) == before
    assert copy_dir is not None and not copy_dir.exists()  # the copy is thrown away


# ---------------------------------------------------------------------------------------------
# A dry run decides as a real run would
# ---------------------------------------------------------------------------------------------

PLOT = '[[source]]\nid = "plot"\nurl = "https://blog.example.test/"\nlinks = "h2 a"\n'


def blog_transport(posts: list[Post]) -> httpx.MockTransport:
    blog = Blog(posts=posts)
    pages = {post.path: post for post in posts}

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/":
            text = blog.index_html([(p.path, p.title) for p in posts])
        elif path in pages:
            text = blog.post_html(pages[path])
        else:
            return httpx.Response(404)
        return httpx.Response(200, text=text, headers={"content-type": "text/html"})

    return httpx.MockTransport(handle)


def real_run(config_dir: Path, transport: httpx.MockTransport) -> RunReport:
    async def main() -> RunReport:
        async with Worker(load_config(config_dir, env=state_env()), transport=transport) as worker:
            (report,) = await worker.run_once()
            return report

    return asyncio.run(main())


def dry_run(config_dir: Path, transport: httpx.MockTransport) -> RunReport:
    config = load_config(config_dir, env=state_env())
    return asyncio.run(try_source(config, config.source("plot"), transport=transport)).report


def traces(report: RunReport) -> list[tuple[str, str, int]]:
    return [(t.url, t.decision, t.body_chars) for t in report.articles]


@pytest.mark.skipif(
    ON_POSTGRES, reason="PostgreSQL rolls back each write (see worker.commands.dryrun)"
)
def test_try_learns_the_template_on_a_first_run_as_a_real_run_does(tmp_path: Path) -> None:
    """A never-run source: the block recurring on all three pages is dropped from each body
    because the run reads back the blocks it recorded a moment earlier."""
    config_dir = write_config(tmp_path, PLOT)
    transport = blog_transport([with_recurring_block(p) for p in sample_posts()])
    tried = dry_run(config_dir, transport)
    assert snapshot(tmp_path) == {}  # still nothing written
    real = real_run(config_dir, transport)
    assert [t[1] for t in traces(real)] == ["new", "new", "new"]
    assert traces(tried) == traces(real)


@pytest.mark.skipif(
    ON_POSTGRES, reason="PostgreSQL rolls back each write (see worker.commands.dryrun)"
)
def test_try_finds_a_duplicate_among_the_pages_it_lists(tmp_path: Path) -> None:
    """Two new pages with the same text: the second duplicates the first, which the dry run
    only knows because it sees its own write (here on a copy of an existing state)."""
    config_dir = write_config(tmp_path, PLOT)
    posts = sample_posts()
    assert real_run(config_dir, blog_transport(posts)).items_new == 3
    text = tuple(prose(7, 12))
    twins = [Post(f"/2026/12/twin-{n}.html", "Twins", text) for n in (1, 2)]
    transport = blog_transport([*twins, *posts])
    before = snapshot(tmp_path)
    tried = dry_run(config_dir, transport)
    assert snapshot(tmp_path) == before
    assert sorted(t[1] for t in traces(tried)) == ["duplicate", "new"]
    assert traces(tried) == traces(real_run(config_dir, transport))
