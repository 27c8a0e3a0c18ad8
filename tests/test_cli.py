"""The operator's commands: `status` (table and JSON), `serve` and `run --serve` as processes.

Also the helpers other operational tests share: a sample blog on a real 127.0.0.1 server, and a
`feedworker` subprocess with deadlines instead of sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.blogsite import Blog, sample_posts
from tests.localserver import Exchange, LocalServer
from tests.test_e2e import write_config
from worker.cli import main, render_status_table
from worker.config import load_config
from worker.models import RunReport
from worker.service.logs import render_progress
from worker.store.state import Store

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def serve_blog(server: LocalServer, *, article_delay: float = 0.0) -> Blog:
    """Route a three-post sample blog on `server`; articles answer after `article_delay` s."""
    blog = Blog(origin=server.url("").rstrip("/"), posts=sample_posts())
    html = {"Content-Type": "text/html; charset=utf-8"}
    server.route("/", body=blog.index_html([(p.path, p.title) for p in blog.posts]).encode())
    server.route("/robots.txt", headers={"Content-Type": "text/plain"}, body=b"User-agent: *\n")
    for post in blog.posts:
        page = blog.post_html(post).encode()

        def article(ex: Exchange, page: bytes = page) -> None:
            if article_delay and not ex.sleep(article_delay):
                return
            ex.respond(200, html, page)

        server.route(post.path, article)
    return blog


def blog_source(server: LocalServer, source_id: str = "blog", every: str = "1h") -> str:
    return (
        f'[[source]]\nid = "{source_id}"\nurl = "{server.url("/")}"\nevery = "{every}"\n'
        'jitter = "0s"\n'
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], object], timeout: float = 90.0, what: str = "condition") -> object:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds (a cap that
    only ends a broken test: a busy machine must never reach it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def get_or_none(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


class Process:
    """A `feedworker` subprocess whose stderr is collected; stopped at the end of the test."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        environment.pop("FEEDWORKER_CONFIG", None)
        self.log_path = cwd / "feedworker.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=self._log
        )

    @classmethod
    def feedworker(cls, *args: str, cwd: Path, env: dict[str, str] | None = None) -> Process:
        return cls(
            [sys.executable, "-m", "worker", *args], cwd, {"PYTHONPATH": str(REPO), **(env or {})}
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 90.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
def blog_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        serve_blog(server)
        yield server


# ---------------------------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------------------------


def recorded_config(tmp_path: Path) -> Path:
    sources = (
        '[[source]]\nid = "good"\nurl = "https://good.example/"\n'
        '[[source]]\nid = "bad"\nurl = "https://bad.example/"\n'
        '[[source]]\nid = "new"\nurl = "https://new.example/"\n'
        '[[source]]\nid = "off"\nurl = "https://off.example/"\nenabled = false\n'
    )
    config_dir = write_config(tmp_path, sources)
    store = Store.open(load_config(config_dir).settings.state_url)
    try:
        store.record_run(
            RunReport("good", started=T0, finished=T0 + timedelta(seconds=2), items_new=2),
            next_run=T0 + timedelta(hours=1),
        )
        for n in range(2):
            failed = RunReport("bad", started=T0 + timedelta(minutes=n), error="index page: 503")
            store.record_run(failed, next_run=T0 + timedelta(hours=2))
    finally:
        store.close()
    return config_dir


def test_status_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_dir = recorded_config(tmp_path)
    assert main(["status", "--config", str(config_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["source", "outcome", "items", "fails"]
    assert "next run" in lines[0] and "last success" in lines[0] and "last error" in lines[0]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"good", "bad", "new", "off"}
    assert rows["good"].split()[1:3] == ["ok", "0"]  # items come from the items table
    assert "2026-11-25 13:00:00" in rows["good"]  # next run
    assert rows["bad"].split()[1] == "failing" and rows["bad"].split()[3] == "2"
    assert rows["bad"].endswith("index page: 503")
    assert rows["new"].split()[1] == "never"
    assert rows["off"].split()[1] == "disabled"


def test_status_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_dir = recorded_config(tmp_path)
    assert main(["status", "--json", "--config", str(config_dir)]) == 0
    rows = {row["source"]: row for row in json.loads(capsys.readouterr().out)}
    good, bad, new = rows["good"], rows["bad"], rows["new"]
    assert good["outcome"] == "ok" and good["consecutive_failures"] == 0
    assert datetime.fromisoformat(good["last_run"]) == T0 + timedelta(seconds=2)
    assert datetime.fromisoformat(good["last_success"]) == T0 + timedelta(seconds=2)
    assert datetime.fromisoformat(good["next_run"]) == T0 + timedelta(hours=1)
    assert bad["outcome"] == "failing" and bad["consecutive_failures"] == 2
    assert bad["last_error"] == "index page: 503" and bad["last_success"] is None
    assert new == {
        "source": "new",
        "enabled": True,
        "outcome": "never",
        "last_run": None,
        "last_success": None,
        "items": 0,
        "consecutive_failures": 0,
        "next_run": None,
        "last_error": None,
        "health": "-",
        "health_reasons": [],
        "health_since": None,
    }


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        (  # a TOML syntax error: none of the file's sources is known from the config
            '[[source]]\nid = "good"\nurl = "https://good.example/"\n[[source]\n',
            "config/sources.toml: TOML syntax error",
        ),
        (  # one source's mistake: the others are still read from the config
            '[[source]]\nid = "good"\nurl = "https://good.example/"\n'
            '[[source]]\nid = "bad"\nurl = "https://bad.example/"\nevry = "2h"\n'
            '[[source]]\nid = "off"\nurl = "https://off.example/"\nenabled = false\n',
            "config/sources.toml: source 'bad': evry: unknown key",
        ),
    ],
    ids=["toml-syntax-error", "one-source-broken"],
)
def test_status_shows_the_state_when_the_config_has_a_broken_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: str, problem: str
) -> None:
    config_dir = recorded_config(tmp_path)
    (config_dir / "feedworker.toml").write_text(
        "[worker]\nper_host_delay = 0\nlog_level = 'LOUD'\n"  # a bad setting too
    )
    (config_dir / "sources.toml").write_text(broken)
    assert main(["status", "--json", "--config", str(config_dir)]) == 0
    out, err = capsys.readouterr()
    rows = {row["source"]: row for row in json.loads(out)}
    assert rows["good"]["outcome"] == "ok" and rows["good"]["items"] == 0
    assert rows["bad"]["outcome"] == "failing" and rows["bad"]["last_error"] == "index page: 503"
    assert err.startswith("warning: the config is not valid (2 problem(s));")
    assert f"  {problem}" in err and "config/feedworker.toml: log_level: expected one of" in err
    if "off" in broken:
        assert rows["off"]["outcome"] == "disabled" and "new" not in rows


@pytest.mark.sqlite_file  # about where the state URL comes from: the file, or the environment
def test_status_without_the_state_database_it_needs_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir = recorded_config(tmp_path)
    (config_dir / "feedworker.toml").write_text("[worker]\nstate_url = 'sqlite:///x.db\n")
    assert main(["status", "--config", str(config_dir)]) == 1
    assert "config/feedworker.toml: TOML syntax error" in capsys.readouterr().err
    env = {"FEEDWORKER_STATE_URL": f"sqlite:///{tmp_path / 'state' / 'feedworker.db'}"}
    with pytest.MonkeyPatch.context() as patch:  # the environment names it: shown
        for key, value in env.items():
            patch.setenv(key, value)
        assert main(["status", "--json", "--config", str(config_dir)]) == 0
    assert {row["source"] for row in json.loads(capsys.readouterr().out)} >= {"good", "bad"}


def test_status_table_keeps_an_error_on_one_line() -> None:
    row = {
        "source": "s",
        "outcome": "failing",
        "items": 0,
        "consecutive_failures": 1,
        "last_run": T0,
        "last_success": None,
        "next_run": None,
        "last_error": "line one\nline two",
    }
    table = render_status_table([row]).splitlines()
    assert len(table) == 2 and table[1].endswith("line one line two")


def test_progress_bar_rendering() -> None:
    assert render_progress(0, 4) == "[........................] 0/4 sources"
    assert render_progress(2, 4, "blog: 3 new").startswith("[############............] 2/4")
    assert render_progress(10, 10).startswith("[" + "#" * 24 + "] 10/10")


def test_run_records_next_run_for_status(
    tmp_path: Path, blog_server: LocalServer, processes: list[Process]
) -> None:
    config_dir = write_config(tmp_path, blog_source(blog_server))
    process = Process.feedworker("run", "--config", str(config_dir), cwd=tmp_path)
    processes.append(process)
    feed = tmp_path / "feeds" / "blog.rss"
    wait_for(feed.exists, what="the first run's feed")
    assert process.terminate() == 0, process.log()
    rows = {r["source"]: r for r in _status_json(config_dir)}
    next_run = datetime.fromisoformat(rows["blog"]["next_run"])
    last_run = datetime.fromisoformat(rows["blog"]["last_run"])
    assert rows["blog"]["outcome"] == "ok" and rows["blog"]["items"] == 3
    assert timedelta(minutes=59) < next_run - last_run <= timedelta(hours=1, seconds=5)


def _status_json(config_dir: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "worker", "status", "--json", "--config", str(config_dir)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    return json.loads(out)


# ---------------------------------------------------------------------------------------------
# serve and run --serve
# ---------------------------------------------------------------------------------------------


def test_run_serve_health_status_metrics_and_sigterm(
    tmp_path: Path, blog_server: LocalServer, processes: list[Process]
) -> None:
    config_dir = write_config(tmp_path, blog_source(blog_server))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = Process.feedworker(
        "run", "--serve", "--port", str(port), "--config", str(config_dir), cwd=tmp_path
    )
    processes.append(process)
    health = wait_for(lambda: get_or_none(f"{base}/healthz"), what="/healthz")
    assert health.status_code == 200  # type: ignore[attr-defined]
    wait_for(lambda: (tmp_path / "feeds" / "blog.rss").exists(), what="the first run")
    metrics = wait_for(
        lambda: 'feedworker_runs_total{source="blog"} 1.0' in httpx.get(f"{base}/metrics").text,
        what="the run counted in /metrics",
    )
    assert metrics
    page = httpx.get(f"{base}/").text
    assert "blog" in page and "Next run" in page and "not scheduled" not in page
    feed = httpx.get(f"{base}/feeds/blog.rss")
    assert feed.status_code == 200 and "Frost and the late leeks" in feed.text
    assert process.terminate() == 0, process.log()
    assert "worker stopped" in process.log()


def test_serve_command_serves_feeds_written_by_a_run(
    tmp_path: Path, blog_server: LocalServer, processes: list[Process]
) -> None:
    config_dir = write_config(tmp_path, blog_source(blog_server))
    assert main(["run", "--once", "--config", str(config_dir)]) == 0
    store = Store.open(load_config(config_dir).settings.state_url)
    try:
        store.set_health("blog", "degraded", ["the listing matched nothing"], T0)
    finally:
        store.close()
    port = free_port()
    process = Process.feedworker(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(config_dir),
        cwd=tmp_path,
    )
    processes.append(process)
    base = f"http://127.0.0.1:{port}"
    health = wait_for(lambda: get_or_none(f"{base}/healthz"), what="/healthz")
    assert health.status_code == 200  # type: ignore[attr-defined]
    assert "Frost and the late leeks" in httpx.get(f"{base}/feeds/blog.atom").text
    metrics = httpx.get(f"{base}/metrics").text  # a fresh process, seeded from the store
    assert 'feedworker_source_degraded{source="blog"} 1.0' in metrics
    assert 'feedworker_last_success_timestamp_seconds{source="blog"}' in metrics
    assert "1 degraded" in httpx.get(f"{base}/").text
    assert process.terminate() == 0, process.log()


def test_port_in_use_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_dir = write_config(tmp_path, '[[source]]\nid = "a"\nurl = "https://a.example/"\n')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", "--port", str(port), "--config", str(config_dir)])
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_serve_does_not_go_with_once(tmp_path: Path) -> None:
    config_dir = write_config(tmp_path, '[[source]]\nid = "a"\nurl = "https://a.example/"\n')
    assert main(["run", "--once", "--serve", "--config", str(config_dir)]) == 2


def test_healthz_turns_503_once_the_scheduler_stopped(
    tmp_path: Path, processes: list[Process]
) -> None:
    with LocalServer() as server:
        serve_blog(server, article_delay=1.5)
        config_dir = write_config(tmp_path, blog_source(server))
        port = free_port()
        process = Process.feedworker(
            "run",
            "--serve",
            "--port",
            str(port),
            "--grace",
            "10",
            "--config",
            str(config_dir),
            cwd=tmp_path,
        )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: len(server.requests) >= 3, what="a run in progress")
        assert httpx.get(f"{base}/healthz").status_code == 200
        process.proc.send_signal(signal.SIGTERM)
        # The server stays up while the run in progress drains, and says the worker is stopping.
        drained = wait_for(lambda: (r := get_or_none(f"{base}/healthz")) and r.status_code == 503)
        assert drained
        assert process.proc.wait(timeout=90) == 0, process.log()
    assert (tmp_path / "feeds" / "blog.rss").exists()


def test_prune_deletes_only_orphaned_feed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "sources.toml").write_text('[[source]]\nid = "kept"\nurl = "https://kept.example/"\n')
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    for name in (
        "kept.rss",
        "kept.atom",
        "gone.rss",
        "gone.atom",
        "gone.json",
        "all.atom",
        "notes.txt",
    ):
        (feeds / name).write_text("x")

    assert main(["prune", "--dry-run", "--config", str(config)]) == 0
    assert "would delete" in capsys.readouterr().out
    assert (feeds / "gone.rss").exists()

    assert main(["prune", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in feeds.iterdir()) == [
        "all.atom",
        "kept.atom",
        "kept.rss",
        "notes.txt",
    ]
    assert out.count("deleted") == 3
