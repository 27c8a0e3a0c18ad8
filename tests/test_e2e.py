"""The whole path on a mocked site: config -> fetch -> discover -> extract -> dedupe -> publish."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
import respx

from tests.blogsite import COMMENT, POPULAR, POPULAR_HEADING, Blog, Post, sample_posts
from worker.cli import main
from worker.config import load_config
from worker.service.runner import Worker
from worker.store.state import Store

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOISE = [POPULAR_HEADING, COMMENT, "Share on Twitter", "Copyright 2026", "Older posts"] + [
    title for _path, title in POPULAR
]


def write_config(root: Path, sources: str, worker: str = "") -> Path:
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "feedworker.toml").write_text(
        "[worker]\nper_host_delay = 0\nrequest_deadline = 5\n" + worker
    )
    (config / "sources.toml").write_text(sources)
    return config


def blog_source(blog: Blog, source_id: str = "allotment") -> str:
    return f'[[source]]\nid = "{source_id}"\nurl = "{blog.origin}/"\ntitle = "{blog.name}"\nevery = "1h"\n'


class BlogServer:
    """Serves a `Blog` through respx and counts the requests each path receives."""

    def __init__(self, blog: Blog, listed: list[tuple[str, str]], aliases: dict[str, Post]) -> None:
        self.blog = blog
        self.listed = listed
        self.by_path = {p.path: p for p in blog.posts}
        self.aliases = aliases  # raw path+query -> post served there
        self.hits: Counter[str] = Counter()
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode()
        self.hits[target] += 1
        if self.down:
            return httpx.Response(503, text="maintenance")
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        if target == "/":
            return _html(self.blog.index_html(self.listed))
        post = self.aliases.get(target) or self.by_path.get(request.url.path)
        if post is None:
            return httpx.Response(404, text="not found")
        return _html(self.blog.post_html(post))

    def total_hits(self) -> int:
        return sum(self.hits.values())

    def article_hits(self) -> int:
        return sum(n for path, n in self.hits.items() if path not in ("/", "/robots.txt"))


def _html(text: str) -> httpx.Response:
    return httpx.Response(200, text=text, headers={"content-type": "text/html; charset=utf-8"})


@pytest.fixture
def site() -> BlogServer:
    posts = sample_posts()
    frost, beans, compost = posts
    copy = Post("/2026/11/frost-copy.html", "Frost (copy)", frost.paragraphs)
    blog = Blog(posts=[*posts, copy])
    listed = [
        (frost.path, frost.title),
        (beans.path + "?utm_source=feed&utm_medium=rss", beans.title),
        (beans.path + "?m=1", beans.title + " (mobile)"),
        (compost.path, compost.title),
        (copy.path, copy.title),
    ]
    return BlogServer(blog, listed, aliases={beans.path + "?m=1": beans})


def run_once(config_dir: Path, clock: datetime) -> list:
    async def go() -> list:
        async with Worker(load_config(config_dir), clock=lambda: clock) as worker:
            return await worker.run_once()

    return asyncio.run(go())


def parse(path: Path) -> feedparser.FeedParserDict:
    feed = feedparser.parse(path.read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    return feed


def test_run_once_publishes_full_text_once_and_is_stable(tmp_path: Path, site: BlogServer) -> None:
    config = write_config(tmp_path, blog_source(site.blog))
    rss, atom = tmp_path / "feeds" / "allotment.rss", tmp_path / "feeds" / "allotment.atom"
    frost, beans, compost = sample_posts()

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="blog.example.test").mock(side_effect=site)
        (report,) = run_once(config, T0)

    assert report.ok, report.error
    assert report.items_new == 3
    assert any("same text as" in s.reason for s in report.skipped)
    for feed in (parse(rss), parse(atom)):
        links = [e.link for e in feed.entries]
        # Undated posts take their first-seen time, so the compost post (no date) is newest.
        assert links == [site.blog.url(p.path) for p in (compost, frost, beans)]
        assert len({e.id for e in feed.entries}) == 3
        for entry, post in zip(feed.entries, (compost, frost, beans), strict=True):
            body = entry.content[0].value
            assert entry.title == post.title
            for paragraph in post.paragraphs:
                assert paragraph in body.replace("&#39;", "'").replace("&amp;", "&")
            for noise in NOISE:
                assert noise not in body
    dated = parse(rss).entries
    assert dated[1].published_parsed[:3] == (2026, 11, 20)
    first_seen = datetime(*dated[0].published_parsed[:6], tzinfo=UTC)
    assert T0 - timedelta(seconds=1) <= first_seen <= T0  # undated: when it was first seen

    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (rss, atom)}
    article_hits = site.article_hits()
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="blog.example.test").mock(side_effect=site)
        (again,) = run_once(config, T0 + timedelta(hours=1))

    assert again.ok and again.items_new == 0
    assert site.article_hits() == article_hits, "known articles must not be fetched again"
    assert site.hits["/"] == 2
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (rss, atom)} == before


def test_index_etag_gives_304_and_no_work(tmp_path: Path, site: BlogServer) -> None:
    config = write_config(tmp_path, blog_source(site.blog))
    seen_validators: list[str | None] = []

    def with_etag(request: httpx.Request) -> httpx.Response:
        if request.url.raw_path == b"/":
            seen_validators.append(request.headers.get("if-none-match"))
            if request.headers.get("if-none-match") == '"v1"':
                return httpx.Response(304, headers={"etag": '"v1"'})
            response = site(request)
            response.headers["etag"] = '"v1"'
            return response
        return site(request)

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="blog.example.test").mock(side_effect=with_etag)
        run_once(config, T0)
        (second,) = run_once(config, T0 + timedelta(hours=1))

    assert seen_validators == [None, '"v1"']
    assert second.ok and second.index_not_modified and second.items_new == 0
    assert len(parse(tmp_path / "feeds" / "allotment.rss").entries) == 3


def test_a_source_added_on_a_page_another_source_reads_publishes_on_its_first_run(
    tmp_path: Path, site: BlogServer
) -> None:
    seen_validators: list[str | None] = []

    def with_etag(request: httpx.Request) -> httpx.Response:
        if request.url.raw_path == b"/":
            seen_validators.append(request.headers.get("if-none-match"))
            if request.headers.get("if-none-match") == '"v1"':
                return httpx.Response(304, headers={"etag": '"v1"'})
            response = site(request)
            response.headers["etag"] = '"v1"'
            return response
        return site(request)

    config = write_config(tmp_path, blog_source(site.blog))
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="blog.example.test").mock(side_effect=with_etag)
        run_once(config, T0)
        write_config(tmp_path, blog_source(site.blog) + blog_source(site.blog, "second"))
        reports = {r.source_id: r for r in run_once(config, T0 + timedelta(hours=1))}

    # The first source's validators are its own: the newcomer asks without them, and reads.
    assert sorted(seen_validators, key=lambda v: v or "") == [None, None, '"v1"']
    assert reports["allotment"].index_not_modified
    assert not reports["second"].index_not_modified and reports["second"].items_new == 3
    assert len(parse(tmp_path / "feeds" / "second.rss").entries) == 3


def test_dead_site_fails_its_source_only_and_keeps_published_items(
    tmp_path: Path, site: BlogServer
) -> None:
    sources = blog_source(site.blog) + (
        '[[source]]\nid = "gone"\nurl = "https://gone.example.test/"\nevery = "1h"\n'
    )
    config = write_config(tmp_path, sources)
    rss = tmp_path / "feeds" / "allotment.rss"

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="blog.example.test").mock(side_effect=site)
        mock.route(host="gone.example.test").mock(side_effect=httpx.ConnectError("refused"))
        reports = {r.source_id: r for r in run_once(config, T0)}
        assert reports["allotment"].ok and reports["allotment"].items_new == 3
        assert not reports["gone"].ok and "index page" in reports["gone"].error
        published = rss.read_bytes()

        site.down = True  # the blog now fails too: its feed must stay as it was
        reports = {r.source_id: r for r in run_once(config, T0 + timedelta(hours=1))}
        assert not reports["allotment"].ok
        assert rss.read_bytes() == published
        assert not (tmp_path / "feeds" / "gone.rss").exists()

    store = Store.open(load_config(config).settings.state_url)
    try:
        state = store.source_state("allotment")
        assert state is not None and state.consecutive_failures == 1
        assert state.last_success is not None
        assert "503" in (state.last_error or "")
    finally:
        store.close()


def test_cli_run_once_exit_codes(tmp_path: Path, site: BlogServer, capsys) -> None:
    config = write_config(tmp_path, blog_source(site.blog))
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="blog.example.test").mock(side_effect=site)
        assert main(["run", "--once", "--config", str(config)]) == 0
        site.down = True
        assert main(["run", "--once", "--config", str(config)]) == 1
    assert "allotment" in capsys.readouterr().err
    assert main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "allotment" in out and "failing" in out


def test_cli_check(tmp_path: Path, capsys) -> None:
    good = write_config(tmp_path / "good", '[[source]]\nid = "a"\nurl = "https://a.example/"\n')
    assert main(["check", "--config", str(good)]) == 0
    bad = write_config(
        tmp_path / "bad", '[[source]]\nid = "a"\nurl = "ftp://a.example/"\nevry = "1h"\n'
    )
    assert main(["check", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "sources.toml" in err and "url" in err and "evry" in err


def test_failing_source_backs_off_then_recovers(tmp_path: Path, site: BlogServer) -> None:
    config = write_config(tmp_path, blog_source(site.blog), worker="retries = 0\n")
    now = [T0]
    slot_hits: list[int] = []

    async def scheduled_runs(count: int, step: timedelta) -> list:
        results = []
        async with Worker(load_config(config), clock=lambda: now[0]) as worker:
            for _ in range(count):
                before = site.total_hits()
                results.append(await worker.run_source_id("allotment"))
                slot_hits.append(site.total_hits() - before)
                now[0] += step
        return results

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="blog.example.test").mock(side_effect=site)
        site.down = True
        # Hourly source: failures 1 and 2 run on schedule; after the second, the next attempt
        # waits two hours, so the slot one hour later is skipped without a request.
        runs = asyncio.run(scheduled_runs(3, timedelta(hours=1)))
        assert [r is None for r in runs] == [False, False, True]
        assert all("503" in (r.error or "") for r in runs[:2])
        assert slot_hits[0] > 0 and slot_hits[2] == 0, slot_hits
        site.down = False
        (recovered,) = asyncio.run(scheduled_runs(1, timedelta(0)))
    assert recovered is not None and recovered.ok and recovered.items_new == 3
    store = Store.open(load_config(config).settings.state_url)
    try:
        state = store.source_state("allotment")
        assert state is not None and state.consecutive_failures == 0 and state.last_error is None
    finally:
        store.close()


def test_drain_lets_running_runs_finish_and_starts_no_waiting_ones(
    tmp_path: Path, site: BlogServer
) -> None:
    sources = blog_source(site.blog) + (
        '[[source]]\nid = "second"\nurl = "https://second.example.test/"\nevery = "1h"\n'
    )
    config = write_config(tmp_path, sources, worker="source_concurrency = 1\n")

    async def slow_site(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)
        return site(request)

    async def scenario() -> tuple:
        async with Worker(load_config(config), clock=lambda: T0) as worker:
            first = asyncio.create_task(worker.run_source(worker.config.source("allotment")))
            await asyncio.sleep(0.05)  # the first run holds the only slot
            second = asyncio.create_task(worker.run_source(worker.config.source("second")))
            await asyncio.sleep(0.05)
            await worker.drain(grace=120)  # the first run finishes well within; a cap only
            return await first, await second

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="blog.example.test").mock(side_effect=slow_site)
        other = mock.route(host="second.example.test").respond(200, html="<p>x</p>")
        first, second = asyncio.run(scenario())
    assert first is not None and first.ok and first.items_new == 3
    assert second is None and not other.called
