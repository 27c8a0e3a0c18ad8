"""Hot reload against a running scheduler: add, remove, reschedule, a bad edit, then the fix."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from tests.test_e2e import write_config
from worker.cli import LiveApp, main
from worker.config import Config, load_config
from worker.errors import ConfigError
from worker.models import RunReport
from worker.service.reload import ConfigWatcher, folder_stamp, restart_only_changes, watch_config
from worker.service.runner import Service, Worker
from worker.web.serve import build_app

POLL = 0.05  # seconds between looks at the config folder in these tests


def source(source_id: str, schedule: str = 'every = "1h"', extra: str = "") -> str:
    return (
        f'[[source]]\nid = "{source_id}"\nurl = "https://{source_id}.example/"\n'
        f'{schedule}\njitter = "0s"\n{extra}'
    )


class Sites:
    """Every host is a two-post blog; `hold[host]` keeps that host's articles waiting."""

    def __init__(self) -> None:
        self.hold: dict[str, asyncio.Event] = {}
        self.article_requests: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        host, path = request.url.host, request.url.path
        if path == "/robots.txt":
            return httpx.Response(404)
        if path == "/":
            links = "".join(
                f'<article><h2><a href="/posts/{n}.html">Post {n} on {host}</a></h2></article>'
                for n in (1, 2)
            )
            return _html(f"<html><body><main>{links}</main></body></html>")
        self.article_requests.append(f"{host}{path}")
        if host in self.hold:
            await self.hold[host].wait()
        text = " ".join([f"This is a post of some length on {host} at {path}."] * 12)
        return _html(
            f"<html><head><title>{path} on {host}</title></head><body><article>"
            f"<h1>{path} on {host}</h1><p>{text}</p><p>{text}</p></article></body></html>"
        )


def _html(text: str) -> httpx.Response:
    return httpx.Response(200, text=text, headers={"content-type": "text/html; charset=utf-8"})


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """What the `feedworker` logger emits (it does not propagate, so caplog would miss it)."""
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("feedworker")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(level)


def messages(records: list[logging.LogRecord], text: str) -> list[logging.LogRecord]:
    return [r for r in records if r.getMessage().startswith(text)]


async def until(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Wait for an event; `timeout` only ends a broken test (a busy machine never reaches it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Running:
    """A `Service` with a short reload interval, running in the test's event loop."""

    def __init__(self, tmp_path: Path, sources: str, sites: Sites) -> None:
        self.tmp_path = tmp_path
        self.config = load_config(write_config(tmp_path, sources))
        self.sites = sites
        self.feeds = tmp_path / "feeds"
        self.reports: list[RunReport] = []

    def edit(self, sources: str, worker: str = "") -> None:
        write_config(self.tmp_path, sources, worker)

    def jobs(self) -> dict[str, object]:
        return {job.id: job for job in self.service.scheduler.scheduler.get_jobs()}

    async def __aenter__(self) -> Running:
        self.worker = Worker(self.config, transport=httpx.MockTransport(self.sites))
        await self.worker.__aenter__()
        self.worker.on_report = self.reports.append
        watcher = ConfigWatcher(self.config)
        self.service = Service(self.worker, watcher=watcher, reload_interval=POLL, grace=5)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.service.run(self.stop))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop.set()
        await self.task
        await self.worker.__aexit__(None, None, None)


def test_add_remove_reschedule_bad_edit_and_fix(
    tmp_path: Path, records: list[logging.LogRecord]
) -> None:
    async def scenario() -> None:
        async with Running(tmp_path, source("a"), Sites()) as run:
            await until((run.feeds / "a.rss").exists, "a's first run")

            run.edit(source("a") + source("b"))  # add
            await until((run.feeds / "b.rss").exists, "the new source's run")
            assert set(run.jobs()) == {"a", "b"}

            run.edit(source("b"))  # remove: unscheduled, its feed stays
            await until(lambda: set(run.jobs()) == {"b"}, "a unscheduled")
            assert (run.feeds / "a.rss").exists()

            run.edit(source("b", 'cron = "0 7 * * *"'))  # reschedule
            await until(lambda: isinstance(run.jobs()["b"].trigger, CronTrigger), "cron")  # type: ignore[attr-defined]
            good = run.worker.config.digest

            bad = source("b", 'cron = "0 7 * * *"', 'evry = "2h"\n') + source("c")
            run.edit(bad)
            await until(lambda: messages(records, "config problem"), "the problem logged")
            run.edit(bad)  # saved again, same mistake: not logged again
            resaved = folder_stamp(run.config.config_dir)
            await until(lambda: run.service.watcher._loaded == resaved, "the re-save read")  # type: ignore[union-attr]
            problems = messages(records, "config problem")
            assert len(problems) == 1
            assert problems[0].fields == {  # type: ignore[attr-defined]
                "problem": "config/sources.toml: source 'b': evry: unknown key; did you mean "
                "'every'?",
                "file": "config/sources.toml",
                "source": "b",
                "field": "evry",
            }
            assert len(messages(records, "config edit not applied")) == 1
            assert run.worker.config.digest == good and set(run.jobs()) == {"b"}

            run.edit(source("b", 'cron = "0 7 * * *"') + source("c"))  # the fix
            await until((run.feeds / "c.rss").exists, "the fixed edit applied")
            assert set(run.jobs()) == {"b", "c"}
            assert isinstance(run.jobs()["c"].trigger, IntervalTrigger)  # type: ignore[attr-defined]

    asyncio.run(scenario())
    reloaded = messages(records, "config reloaded")
    assert [r.fields["added"] for r in reloaded] == ["b", "", "", "c"]  # type: ignore[attr-defined]


def test_a_reload_never_interrupts_a_run(tmp_path: Path) -> None:
    sites = Sites()

    async def scenario() -> None:
        sites.hold["slow.example"] = asyncio.Event()
        async with Running(tmp_path, source("slow") + source("other"), sites) as run:
            await until(lambda: any("slow" in r for r in sites.article_requests), "slow run")
            run.edit(source("other"))
            await until(lambda: set(run.jobs()) == {"other"}, "slow unscheduled")
            sites.hold["slow.example"].set()
            await until(lambda: any(r.source_id == "slow" for r in run.reports), "slow's end")
        (slow,) = [r for r in run.reports if r.source_id == "slow"]
        assert slow.ok and slow.items_new == 2
        assert (run.feeds / "slow.rss").exists()

    asyncio.run(scenario())


def test_settings_apply_from_the_next_run_or_need_a_restart(
    tmp_path: Path, records: list[logging.LogRecord]
) -> None:
    async def scenario() -> None:
        async with Running(tmp_path, source("a"), Sites()) as run:
            await until((run.feeds / "a.rss").exists, "a's first run")
            before = run.worker.config.settings
            run.edit(
                source("a"),
                "max_links_per_run = 7\nconcurrency = 3\nmisfire_grace_time = 60\n",
            )
            await until(lambda: messages(records, "restart needed"), "the restart warning")
            settings = run.worker.config.settings
            assert settings.max_links_per_run == 7  # applies from the next run
            assert settings.concurrency == before.concurrency  # the fetcher was built with it
            assert settings.misfire_grace_time == before.misfire_grace_time
            assert run.worker.ctx.settings is settings
        (warning,) = messages(records, "restart needed")
        assert warning.levelname == "WARNING"
        assert warning.fields == {"settings": "concurrency,misfire_grace_time"}  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_restart_only_changes(tmp_path: Path) -> None:
    old = load_config(write_config(tmp_path, source("a"))).settings
    assert restart_only_changes(old, old) == []
    worker = "read_timeout = 3\nlog_level = 'DEBUG'\nfeeds_dir = 'elsewhere'\n"
    new = load_config(write_config(tmp_path, source("a"), worker)).settings
    assert restart_only_changes(old, new) == ["feeds_dir", "read_timeout"]


def test_watcher_waits_for_the_files_to_settle_and_ignores_same_content(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, source("a")))
    watcher = ConfigWatcher(config)
    assert watcher.poll() is None  # nothing changed
    write_config(tmp_path, source("a"))  # rewritten, same bytes
    assert watcher.poll() is None and watcher.poll() is None
    write_config(tmp_path, source("a") + source("b"))
    assert watcher.poll() is None  # just changed: wait one poll in case it is half-written
    new = watcher.poll()
    assert new is not None and [s.id for s in new.sources] == ["a", "b"]
    assert watcher.poll() is None  # handed over once


def test_watcher_sees_new_files_in_sources_d(tmp_path: Path) -> None:
    config_dir = write_config(tmp_path, source("a"))
    watcher = ConfigWatcher(load_config(config_dir))
    (config_dir / "sources.d").mkdir()
    (config_dir / "sources.d" / "b.toml").write_text(source("b"))
    watcher.poll()
    new = watcher.poll()
    assert new is not None and [s.id for s in new.sources] == ["a", "b"]


def test_a_different_bad_edit_is_logged_again(
    tmp_path: Path, records: list[logging.LogRecord]
) -> None:
    config_dir = write_config(tmp_path, source("a"))
    watcher = ConfigWatcher(load_config(config_dir))
    (config_dir / "sources.toml").write_text(source("a", 'every = "soon"'))
    assert watcher.check() is None and watcher.check() is None
    (config_dir / "sources.toml").write_text(source("a", 'every = "1h"', "max_items = 0\n"))
    assert watcher.check() is None
    problems = [r.fields["field"] for r in messages(records, "config problem")]  # type: ignore[attr-defined]
    assert problems == ["every", "max_items"]


def test_live_app_serves_a_source_added_by_a_reload(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, source("a")))
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "b.rss").write_text("<rss/>")
    app = LiveApp(lambda c: build_app(c, status_reader=dict), config)

    async def get(path: str) -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.get(path)).status_code

    assert asyncio.run(get("/feeds/b.rss")) == 404
    app.load(load_config(write_config(tmp_path, source("a") + source("b"))))
    assert asyncio.run(get("/feeds/b.rss")) == 200


def test_restart_only_names_are_settings() -> None:
    from worker.config import Settings
    from worker.service.reload import RESTART_ONLY_SETTINGS

    assert Settings.model_fields.keys() >= RESTART_ONLY_SETTINGS
    assert {"serve_host", "serve_port", "shutdown_grace", "state_url"} <= RESTART_ONLY_SETTINGS


# -- hostile edits: whatever fails while loading is a config problem; the watcher never dies -----

DEEP = 2000  # levels: beyond the interpreter's recursion limit (1,000)
# Each edit below once escaped the reload as a RecursionError or a RuntimeError, and stopped the
# watcher for good. (A regex nested 2,000 groups deep did too, under Python's `re`; RE2 parses it
# without recursing: see test_a_deeply_nested_pattern_is_applied.) (sources.toml, feedworker.toml additions, file and field of the problem)
HOSTILE_EDITS = {
    "toml nested 2,000 tables deep": (
        source("b", extra="title = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n"),
        "",
        "config/sources.toml",
        None,
    ),
    "a path under an unknown user's home": (
        source("b"),
        'feeds_dir = "~nosuchuser-feedworker/feeds"\n',
        "config/feedworker.toml",
        "feeds_dir",
    ),
}


def test_a_deeply_nested_pattern_is_applied(tmp_path: Path) -> None:
    config_dir = write_config(tmp_path, source("a"))
    watcher = ConfigWatcher(load_config(config_dir))
    pattern = "(" * DEEP + "a" + ")" * DEEP
    write_config(tmp_path, source("a") + source("b", extra=f"include = '{pattern}'\n"))
    applied = watcher.check()
    assert applied is not None
    (b,) = [s for s in applied.sources if s.id == "b"]
    assert b.include[0].search("https://b.example/a") and not b.include[0].search("https://b.x/")


@pytest.mark.parametrize("name", HOSTILE_EDITS)
def test_a_hostile_edit_is_a_config_problem(
    name: str, tmp_path: Path, records: list[logging.LogRecord]
) -> None:
    sources, worker, file, field = HOSTILE_EDITS[name]
    config_dir = write_config(tmp_path, source("a"))
    watcher = ConfigWatcher(load_config(config_dir))
    write_config(tmp_path, sources, worker)
    with pytest.raises(ConfigError) as info:
        load_config(config_dir)
    (problem,) = info.value.problems
    assert (problem.file, problem.field) == (file, field)
    assert watcher.check() is None
    (logged,) = messages(records, "config problem")
    assert logged.fields["file"] == file  # type: ignore[attr-defined]
    assert logged.fields.get("field") == field  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", HOSTILE_EDITS)
def test_check_reports_a_hostile_edit_as_a_config_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources, worker, file, field = HOSTILE_EDITS[name]
    config_dir = write_config(tmp_path, sources, worker)
    assert main(["check", "--config", str(config_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("config is not valid (1 problem(s)):\n")
    assert f"  {file}: " in err and (field is None or f": {field}: " in err)
    assert "Traceback" not in err and len(err.splitlines()) == 2


def test_the_watcher_outlives_hostile_edits_and_shutdown_drains(
    tmp_path: Path, records: list[logging.LogRecord]
) -> None:
    sites = Sites()

    async def scenario() -> None:
        async with Running(tmp_path, source("a"), sites) as run:
            await until((run.feeds / "a.rss").exists, "a's first run")
            for n, (sources, worker, _file, _field) in enumerate(HOSTILE_EDITS.values(), 1):
                run.edit(source("a") + sources, worker)
                await until(lambda n=n: len(messages(records, "config problem")) == n, "problem")
            assert not run.task.done()  # still watching
            sites.hold["c.example"] = asyncio.Event()
            run.edit(source("a") + source("c"))  # a later good edit is applied
            await until(lambda: any("c.example" in r for r in sites.article_requests), "c runs")
            assert set(run.jobs()) == {"a", "c"}
            run.stop.set()  # a run is in progress: the stop waits for it (the grace is 5 s)
            await asyncio.sleep(0)
            sites.hold["c.example"].set()
            await run.task  # ends without an error
            assert (run.feeds / "c.rss").exists()
        assert [r.source_id for r in run.reports if r.source_id == "c"] == ["c"]

    asyncio.run(scenario())
    assert not messages(records, "config edit not applied: reloading failed")


def test_watch_config_logs_an_error_once_and_keeps_watching(
    tmp_path: Path, records: list[logging.LogRecord]
) -> None:
    good = load_config(write_config(tmp_path, source("a")))
    answers: list[object] = [RuntimeError("disk gone"), RuntimeError("disk gone"), good]
    applied: list[Config] = []

    class Flaky:
        def poll(self) -> Config | None:
            answer = answers.pop(0) if answers else None
            if isinstance(answer, Exception):
                raise answer
            return answer  # type: ignore[return-value]

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(watch_config(Flaky(), stop, applied.append, POLL))  # type: ignore[arg-type]
        await until(lambda: applied, "the good config applied")
        stop.set()
        await task

    asyncio.run(scenario())
    assert applied == [good]
    (failed,) = messages(records, "config edit not applied: reloading failed")
    assert failed.fields == {"error": "RuntimeError: disk gone"}  # type: ignore[attr-defined]


def test_an_unforeseen_error_while_loading_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.config

    config_dir = write_config(tmp_path, source("a"))

    def broken(text: str) -> object:
        if "[[source]]" in text:
            raise LookupError("a parser bug")
        return {"worker": {}}

    monkeypatch.setattr(worker.config.tomllib, "loads", broken)
    with pytest.raises(ConfigError) as info:
        load_config(config_dir)
    (problem,) = info.value.problems
    assert str(problem) == "config/sources.toml: could not be read: LookupError: a parser bug"
