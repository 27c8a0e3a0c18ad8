"""SIGTERM during a run: runs in progress get their grace period, then are cancelled; exit 0;
never a partial feed or a temporary file left behind. A restart resumes from stored run times."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser

from tests.localserver import LocalServer
from tests.test_cli import Process, blog_source, processes, serve_blog, wait_for
from tests.test_e2e import write_config
from worker.config import Source, load_config
from worker.models import RunReport
from worker.service.runner import Service, Worker
from worker.service.schedule import SourceScheduler
from worker.store.state import Store

__all__ = ["processes"]  # the fixture, imported for its side effect


def leftovers(feeds: Path) -> list[str]:
    return sorted(p.name for p in feeds.iterdir() if p.name.startswith("."))


def test_sigterm_lets_a_run_in_progress_finish(tmp_path: Path, processes: list[Process]) -> None:
    with LocalServer() as server:
        serve_blog(server, article_delay=1.0)
        config_dir = write_config(tmp_path, blog_source(server))
        process = Process.feedworker(
            "run", "--grace", "60", "--config", str(config_dir), cwd=tmp_path
        )
        processes.append(process)
        wait_for(lambda: len(server.requests) >= 3, what="article requests")  # robots, index, ...
        assert process.terminate(timeout=90) == 0, process.log()

    feeds = tmp_path / "feeds"
    feed = feedparser.parse((feeds / "blog.rss").read_bytes())
    assert not feed.bozo and len(feed.entries) == 3  # the run finished inside its grace period
    assert leftovers(feeds) == []
    log = process.log()
    assert "waiting for runs in progress" in log and "run finished" in log
    assert log.index("stopping") < log.index("run finished") < log.index("worker stopped")


def test_sigterm_cancels_a_run_after_the_grace_period(
    tmp_path: Path, processes: list[Process]
) -> None:
    with LocalServer() as server:
        serve_blog(server, article_delay=30.0)  # never within the test: the server's stop ends it
        config_dir = write_config(tmp_path, blog_source(server))
        process = Process.feedworker(
            "run", "--grace", "0.5", "--config", str(config_dir), cwd=tmp_path
        )
        processes.append(process)
        wait_for(lambda: len(server.requests) >= 3, what="article requests")
        assert process.terminate(timeout=60) == 0, process.log()

    feeds = tmp_path / "feeds"
    assert sorted(p.name for p in feeds.iterdir()) == []  # no feed at all, let alone a partial one
    assert "run finished" not in process.log() and "worker stopped" in process.log()
    state = Store.open(load_config(config_dir).settings.state_url)
    try:
        assert state.source_state("blog") is None  # a cancelled run records nothing
    finally:
        state.close()


def test_shutting_the_scheduler_down_does_not_cancel_a_run() -> None:
    started, go_on, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def run(source_id: str) -> None:
        started.set()
        await go_on.wait()
        finished.set()

    async def scenario() -> None:
        scheduler = SourceScheduler(run)
        scheduler.start([Source(id="s", url="https://s.example/", every="1h", jitter="0s")])
        await asyncio.wait_for(started.wait(), timeout=60)  # the caps only end a broken test
        scheduler.shutdown()
        go_on.set()  # the run goes on after the shutdown, to its end
        await asyncio.wait_for(finished.wait(), timeout=60)

    asyncio.run(scenario())


def test_restart_resumes_from_the_stored_last_run(tmp_path: Path) -> None:
    """After a restart, a source that ran 10 minutes ago runs again 50 minutes later, not now."""
    sources = "".join(
        f'[[source]]\nid = "s{n}"\nurl = "https://s{n}.example/"\nevery = "1h"\njitter = "2m"\n'
        for n in range(3)
    )
    sources += '[[source]]\nid = "fresh"\nurl = "https://fresh.example/"\nevery = "1h"\n'
    config = load_config(write_config(tmp_path, sources))
    now = datetime.now(UTC)
    store = Store.open(config.settings.state_url)
    for n in range(3):
        ran = now - timedelta(minutes=10 + n)
        store.record_run(RunReport(f"s{n}", started=ran, finished=ran))
    store.close()

    async def scenario() -> dict[str, datetime | None]:
        async with Worker(config) as worker:
            service = Service(worker)
            service.scheduler.start(config.sources)
            try:
                return {s.id: service.next_run(s.id) for s in config.sources}
            finally:
                service.scheduler.shutdown()

    next_runs = asyncio.run(scenario())
    for n in range(3):
        expected = now - timedelta(minutes=10 + n) + timedelta(hours=1)
        got = next_runs[f"s{n}"]
        assert got is not None and abs(got - expected) < timedelta(seconds=5), (n, got)
    fresh = next_runs["fresh"]
    assert fresh is not None and fresh - now < timedelta(seconds=31)  # never ran: soon


def test_first_runs_after_a_restart_are_spread_by_jitter() -> None:
    from worker.service.schedule import RunTimes, first_run_at

    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    overdue = RunTimes(now - timedelta(hours=3))
    source = Source(id="s", url="https://s.example/", every="1h")  # default jitter: 6 minutes
    rng = random.Random(7)
    starts = {first_run_at(source, overdue, now, rng) for _ in range(20)}
    assert len(starts) > 15  # overdue sources do not all fire in the same second
    assert all(now <= s <= now + timedelta(seconds=30) for s in starts if s is not None)
