"""Extraction in child processes: the same feeds as inline, a dead child costs only its pages;
and the combined feed, rewritten at most every `COMBINED_INTERVAL` while runs keep finishing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
import respx

from tests.backend import own_state
from tests.blogsite import Blog, sample_posts
from tests.test_e2e import BlogServer, blog_source, write_config
from worker.config import AUTO_EXTRACT_PROCESSES, load_config
from worker.errors import ConfigError
from worker.extract import ExtractOptions
from worker.fetch.decode import html_text
from worker.models import RawHtml
from worker.service import runner
from worker.service.extractpool import (
    EXTRACT_NICENESS,
    Extracted,
    ExtractorCrashed,
    InlineExtractor,
    ProcessExtractor,
    extract_page,
)
from worker.service.runner import Worker

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DEATH_PATH = "/2026/11/saving-bean-seed.html"


DYING_JOB = "tests.test_extractpool:dying_job"


def dying_job(page: str | RawHtml, url: str, options: ExtractOptions) -> Extracted:
    """`extract_page`, except that the process dies outright on one page (as on a parser crash),
    hangs on another, and raises on a third."""
    html = html_text(page)
    if url.endswith(DEATH_PATH) or "die-here" in html:
        os._exit(3)
    if "hang-here" in html:
        time.sleep(3600)
    if "bug-here" in html:
        raise ValueError("a bug in the extractor")
    return extract_page(html, url, options)


def niceness_job(page: str | RawHtml, url: str, options: ExtractOptions) -> Extracted:
    """Answers with the child's scheduling niceness instead of extracting."""
    return Extracted(error=f"niceness {os.nice(0)}")


def blog_site(origin: str = "https://blog.example.test") -> BlogServer:
    posts = sample_posts()
    blog = Blog(origin=origin, posts=posts)
    return BlogServer(blog, [(p.path, p.title) for p in posts], aliases={})


def run_with(config_dir: Path, *sites: BlogServer) -> list:
    async def go() -> list:
        async with Worker(load_config(config_dir), clock=lambda: T0) as worker:
            return await worker.run_once()

    with respx.mock(assert_all_called=False) as mock:
        for site in sites:
            mock.route(host=site.blog.origin.split("//")[1]).mock(side_effect=site)
        return asyncio.run(go())


@pytest.mark.parametrize("processes", [0, 1, 2])
def test_extract_processes_setting_picks_the_extractor(tmp_path: Path, processes: int) -> None:
    sources = blog_source(blog_site().blog)
    config = write_config(tmp_path, sources, f"extract_processes = {processes}\n")
    settings = load_config(config).settings
    assert settings.extract_workers == processes
    extractor = runner.make_extractor(settings.extract_workers)
    assert isinstance(extractor, ProcessExtractor if processes else InlineExtractor)


def test_process_extraction_publishes_the_same_feeds_as_inline(tmp_path: Path) -> None:
    feeds = {}
    for processes in (0, 1):
        root = tmp_path / f"p{processes}"
        site = blog_site()
        config = write_config(root, blog_source(site.blog), f"extract_processes = {processes}\n")
        with own_state():
            (report,) = run_with(config, site)
        assert report.ok and report.items_new == 3, report
        feeds[processes] = {p.name: p.read_bytes() for p in sorted((root / "feeds").iterdir())}
    assert feeds[0].keys() == feeds[1].keys() and "allotment.atom" in feeds[0]
    assert feeds[0] == feeds[1]


def test_process_extractor_answers_like_inline_and_survives_a_dead_child() -> None:
    post = sample_posts()[0]
    page = Blog(posts=[post]).post_html(post)
    url = "https://blog.example.test" + post.path
    options = ExtractOptions()

    async def go() -> None:
        pool = ProcessExtractor(1, job=DYING_JOB)
        try:
            inline = await InlineExtractor().extract(page, url, options)
            first = await pool.extract(page, url, options)
            assert first == inline and first.article is not None
            assert first.signature is not None and first.article.body_text
            # The dying page fails; the pages queued behind it go to a new child and succeed.
            results = await asyncio.gather(
                pool.extract(page + "<!-- die-here -->", url, options),
                *(pool.extract(page, url, options) for _ in range(3)),
                return_exceptions=True,
            )
            assert isinstance(results[0], ExtractorCrashed)
            assert "extractor process died" in str(results[0])
            assert results[1:] == [inline] * 3
            with pytest.raises(RuntimeError, match="ValueError: a bug in the extractor"):
                await pool.extract(page + "<!-- bug-here -->", url, options)
            assert await pool.extract(page, url, options) == inline  # the child lived on
        finally:
            await pool.aclose()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("codec", "content_type", "head"),
    [
        ("cp1251", "text/html; charset=windows-1251", ""),
        ("koi8-r", "text/html", '<meta charset="koi8-r">'),
        ("utf-8", None, ""),
    ],
)
def test_a_raw_page_is_decoded_where_it_is_extracted(
    codec: str, content_type: str | None, head: str
) -> None:
    """Article pages reach the extractor as bytes (`RawHtml`); a child decodes them by the same
    rules as the fetcher, so the article is the one the decoded text gives inline."""
    words = "Сегодня в саду поспели первые томаты, и мы собрали урожай вместе с соседями. "
    html = (
        f"<html><head>{head}<title>Урожай</title></head><body><article><h1>Урожай</h1>"
        + "".join(f"<p>{words * 3}</p>" for _ in range(4))
        + "</article></body></html>"
    )
    raw = RawHtml(html.encode(codec), content_type)
    url = "https://blog.example.test/harvest.html"
    options = ExtractOptions()

    async def go() -> tuple[Extracted, Extracted]:
        pool = ProcessExtractor(1)
        try:
            return await pool.extract(raw, url, options), await InlineExtractor().extract(
                html, url, options
            )
        finally:
            await pool.aclose()

    in_child, inline = asyncio.run(go())
    assert in_child == inline
    assert in_child.article is not None and words.strip() in in_child.article.body_text


def test_an_extractor_process_imports_no_event_loop_machinery() -> None:
    """Each extractor process pays for what it imports in memory: the child's module must not
    pull in asyncio (and with it ssl and subprocess), which only the event loop's side needs."""
    probe = "import sys, worker.service.extractjob; print(sorted({'asyncio', 'ssl'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_extractor_processes_run_below_the_event_loop_priority() -> None:
    """Extraction is batch work: the children yield a core to the event loop that feeds them."""

    async def go() -> Extracted:
        pool = ProcessExtractor(1, job="tests.test_extractpool:niceness_job")
        try:
            return await pool.extract("<p>x</p>", "https://blog.example.test/", ExtractOptions())
        finally:
            await pool.aclose()

    expected = min(os.nice(0) + EXTRACT_NICENESS, 19)
    assert asyncio.run(go()).error == f"niceness {expected}"


def test_a_page_that_hangs_the_extractor_is_given_up_after_the_timeout() -> None:
    post = sample_posts()[0]
    page = Blog(posts=[post]).post_html(post)
    url = "https://blog.example.test" + post.path

    async def go() -> None:
        # The hung page is given up whether its child was still starting or already hanging
        # (both outlast 1 s): the reason is the timeout's either way.
        pool = ProcessExtractor(1, job=DYING_JOB, timeout=1.0)
        try:
            with pytest.raises(ExtractorCrashed, match="took longer than 1 s"):
                await pool.extract(page + "<!-- hang-here -->", url, ExtractOptions())
            # A new child takes the next page. The timeout counts its start-up too, which on a
            # busy machine can take seconds: the new child gets a generous one.
            pool._timeout = 600.0
            done = await pool.extract(page, url, ExtractOptions())
            assert done.article is not None
        finally:
            await pool.aclose()

    asyncio.run(go())


def test_a_child_that_cannot_start_is_reported_as_such() -> None:
    async def go() -> None:
        pool = ProcessExtractor(1, job="worker.no_such_module:extract_page")
        try:
            with pytest.raises(ExtractorCrashed, match="ended before its first answer"):
                await pool.extract("<p>text</p>", "https://x.test/", ExtractOptions())
        finally:
            await pool.aclose()

    asyncio.run(go())


def test_refusal_crosses_the_process_boundary_as_a_reason() -> None:
    async def go() -> Extracted:
        pool = ProcessExtractor(1)
        try:
            return await pool.extract(
                "<html><body></body></html>", "https://x.test/", ExtractOptions()
            )
        finally:
            await pool.aclose()

    done = asyncio.run(go())
    assert done.article is None and done.signature is None and done.error


def test_dead_extractor_child_skips_its_pages_and_the_next_run_catches_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = blog_site()
    config = write_config(tmp_path, blog_source(site.blog), "extract_processes = 1\n")
    monkeypatch.setattr(runner, "make_extractor", lambda n: ProcessExtractor(n, job=DYING_JOB))
    (first,) = run_with(config, site)

    assert first.ok, first.error  # one source's run goes on; the pages are skipped with a reason
    died = [s for s in first.skipped if "extractor process" in s.reason]
    assert any(s.url.endswith(DEATH_PATH) for s in died)
    assert all(s.kind == "error" for s in died)
    assert first.items_new == 3 - len(died)

    monkeypatch.setattr(runner, "make_extractor", lambda n: ProcessExtractor(n))
    (second,) = run_with(config, site)
    assert second.ok and second.items_new == len(died)  # skipped pages were not marked as seen
    feed = feedparser.parse((tmp_path / "feeds" / "allotment.atom").read_bytes())
    assert len(feed.entries) == 3


class SteppedLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock a test moves on (`skipped`): timers come due without waiting."""

    skipped = 0.0

    def time(self) -> float:
        return super().time() + self.skipped


def combined_titles(feeds: Path) -> set[str]:
    feed = feedparser.parse((feeds / "all.atom").read_bytes())
    return {e.link.split("/")[2] for e in feed.entries}


def test_combined_feed_is_rewritten_at_most_every_interval_and_flushed_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = blog_site("https://one.example.test"), blog_site("https://two.example.test")
    sources = blog_source(one.blog, "one") + "\n" + blog_source(two.blog, "two")
    config = write_config(tmp_path, sources, "extract_processes = 0\n")
    feeds = tmp_path / "feeds"
    monkeypatch.setattr(runner, "COMBINED_INTERVAL", 3600.0)  # however long the runs take

    async def go() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SteppedLoop)
        async with Worker(load_config(config), clock=lambda: T0) as worker:
            await worker.run_source(worker.config.source("one"))
            assert combined_titles(feeds) == {"one.example.test"}  # the first run: at once
            await worker.run_source(worker.config.source("two"))
            assert combined_titles(feeds) == {"one.example.test"}  # within the interval: later
            loop.skipped += 3600.0  # the interval has passed
            for _ in range(3):  # a few turns of the loop: the due timer runs
                await asyncio.sleep(0)
            assert combined_titles(feeds) == {"one.example.test", "two.example.test"}

    with respx.mock(assert_all_called=False) as mock:
        for site in (one, two):
            mock.route(host=site.blog.origin.split("//")[1]).mock(side_effect=site)
        with asyncio.Runner(loop_factory=SteppedLoop) as loop_runner:
            loop_runner.run(go())

    # `run --once` writes what is pending when its runs are over, without waiting.
    monkeypatch.setattr(runner, "COMBINED_INTERVAL", 3600.0)
    other = tmp_path / "second"
    config = write_config(other, sources, "extract_processes = 0\n")
    run_with(config, blog_site("https://one.example.test"), blog_site("https://two.example.test"))
    assert combined_titles(other / "feeds") == {"one.example.test", "two.example.test"}


@pytest.mark.parametrize("value", ["-1", "65", '"two"', "1.5", "true"])
def test_a_bad_extract_processes_names_the_file_and_field(tmp_path: Path, value: str) -> None:
    sources = blog_source(blog_site().blog)
    config = write_config(tmp_path, sources, f"extract_processes = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert "feedworker.toml" in message and "extract_processes" in message
    assert 'expected "auto" or a number of processes from 0 to 64' in message


def test_extract_processes_auto_follows_the_cpu_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, blog_source(blog_site().blog))
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # the machine's count decides
    for cpus, expected in ((1, 0), (2, 2), (3, 3), (16, AUTO_EXTRACT_PROCESSES), (None, 0)):
        monkeypatch.setattr(os, "cpu_count", lambda cpus=cpus: cpus)
        assert load_config(config).settings.extract_workers == expected


def test_extract_processes_auto_counts_only_the_cpus_the_worker_may_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container pinned to some CPUs (`--cpuset-cpus`) gets a process per CPU it may use."""
    config = write_config(tmp_path, blog_source(blog_site().blog))
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    for allowed, expected in (({0}, 0), ({0, 5}, 2), (set(range(8)), AUTO_EXTRACT_PROCESSES)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, allowed=allowed: allowed)
        assert load_config(config).settings.extract_workers == expected
