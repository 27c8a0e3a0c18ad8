"""One home per default: every default is written once, in `worker.config`, and the value objects
other stages build from the settings take it from there; a changed setting reaches each of them."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import feedparser

from tests.sitekit import Site, article_html, prose, run_sites, source_toml, write_config
from worker.config import Settings, Source, load_config
from worker.fetch.client import FetchOptions
from worker.listing.lister import ListingOptions
from worker.service.runner import Service, Worker

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SOURCE = '[[source]]\nid = "blog"\nurl = "https://example.org/"\n'
# Every setting the fetcher reads, each set away from its default.
FETCH_SETTINGS = """\
user_agent = "tester/9 (+https://example.org/contact)"
connect_timeout = 3
read_timeout = 4
request_deadline = 11
max_redirects = 2
max_page_bytes = 12345
concurrency = 3
per_host_concurrency = 2
per_host_delay = 0.25
retries = 5
retry_backoff = 0.5
proxy = "http://127.0.0.1:3128"
"""
CHANGED = {
    "user_agent": "tester/9 (+https://example.org/contact)",
    "connect_timeout": 3,
    "read_timeout": 4,
    "request_deadline": 11,
    "max_redirects": 2,
    "max_page_bytes": 12345,
    "concurrency": 3,
    "per_host_concurrency": 2,
    "per_host_delay": 0.25,
    "retries": 5,
    "retry_backoff": 0.5,
    "proxy": "http://127.0.0.1:3128",
}


def write_settings(root: Path, settings: str) -> Path:
    config = root / "config"
    config.mkdir(parents=True)
    (config / "feedworker.toml").write_text(
        f'[worker]\nstate_url = "sqlite:///{root}/state.db"\n{settings}'
    )
    (config / "sources.toml").write_text(SOURCE)
    return config


def test_fetch_options_take_their_defaults_from_the_settings() -> None:
    shared = [f.name for f in fields(FetchOptions) if f.name in Settings.model_fields]
    assert set(shared) == set(CHANGED)  # a new fetch setting needs a line in CHANGED
    defaults, settings = FetchOptions(user_agent=Settings().user_agent), Settings()
    assert {name: getattr(defaults, name) for name in shared} == {
        name: getattr(settings, name) for name in shared
    }


def test_each_changed_fetch_setting_reaches_the_workers_fetcher(tmp_path: Path) -> None:
    config = load_config(write_settings(tmp_path, FETCH_SETTINGS))
    assert all(getattr(config.settings, name) != getattr(Settings(), name) for name in CHANGED)

    async def fetch_options() -> FetchOptions:
        async with Worker(config) as worker:
            return worker.ctx.fetcher.options

    options = asyncio.run(fetch_options())
    assert {name: getattr(options, name) for name in CHANGED} == CHANGED


def test_listing_options_take_their_defaults_from_the_config() -> None:
    source = Source(id="blog", url="https://example.org/")
    defaults = ListingOptions(url=source.url)
    assert (defaults.kind, defaults.pages, defaults.respect_robots, defaults.allow_private) == (
        source.kind,
        source.pages,
        source.respect_robots,
        source.allow_private_networks,
    )
    assert defaults.limit == Settings().max_links_per_run
    changed = Settings(max_links_per_run=7)
    assert ListingOptions.for_source(source, changed).limit == 7


def test_shutdown_and_misfire_grace_reach_the_service(tmp_path: Path) -> None:
    extra = "shutdown_grace = 12\nmisfire_grace_time = 77\n"
    config = load_config(write_settings(tmp_path, extra))
    assert Service(Worker(config)).grace == 12
    assert Service(Worker(config), grace=3).grace == 3  # `--grace` wins

    async def misfire() -> int:
        async with Worker(config) as worker:
            scheduler = Service(worker).scheduler
            scheduler.start(config.sources)
            try:
                (job,) = scheduler.scheduler.get_jobs()
                return int(job.misfire_grace_time)
            finally:
                scheduler.scheduler.shutdown(wait=False)

    assert asyncio.run(misfire()) == 77


def test_combined_feed_size_reaches_all_atom(tmp_path: Path) -> None:
    site = Site()
    for n in range(3):
        site.pages[f"/story-{n}.html"] = article_html(f"Story {n}", prose(n, 20))
    site.listed = list(site.pages)
    config = write_config(tmp_path, source_toml("news", site), "combined_feed_size = 2\n")
    (report,) = run_sites(config, [site], T0)
    assert report.items_new == 3
    feeds = load_config(config).settings.feeds_dir
    assert len(feedparser.parse((feeds / "news.atom").read_bytes()).entries) == 3
    assert len(feedparser.parse((feeds / "all.atom").read_bytes()).entries) == 2
