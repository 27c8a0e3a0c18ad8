"""Logs: one line per event with stable keys; JSON lines parse; the level is configurable; a
progress line on a terminal that log lines do not garble."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.localserver import LocalServer
from tests.test_cli import REPO, blog_source, serve_blog
from tests.test_e2e import write_config
from worker.logs import JsonFormatter, ProgressLine, _ProgressAwareHandler, fields, progress_line


def run_once(config_dir: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """stderr lines of `feedworker run --once`, which must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "worker", "run", "--once", "--config", str(config_dir), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


@pytest.fixture
def config_dir(tmp_path: Path) -> Iterator[tuple[Path, LocalServer]]:
    with LocalServer() as server:
        serve_blog(server)
        yield write_config(tmp_path, blog_source(server)), server


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_json_logs_parse_line_by_line(config_dir: tuple[Path, LocalServer], how: str) -> None:
    folder, _server = config_dir
    if how == "flag":
        lines = run_once(folder, "--log-format", "json", "--log-level", "DEBUG")
    else:
        lines = run_once(
            folder, env={"FEEDWORKER_LOG_FORMAT": "json", "FEEDWORKER_LOG_LEVEL": "DEBUG"}
        )
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "event"} <= set(e) for e in events)
    (summary,) = [e for e in events if e["event"] == "run finished"]
    assert summary["source"] == "blog" and summary["outcome"] == "ok"
    assert isinstance(summary["duration_ms"], int) and summary["items_new"] == 3


def test_text_logs_and_level(config_dir: tuple[Path, LocalServer]) -> None:
    folder, _server = config_dir
    lines = run_once(folder)
    (summary,) = [line for line in lines if " run finished " in line]
    assert (
        " INFO  run finished source=blog url=" in summary
        and " outcome=ok " in summary
        and "duration_ms=" in summary
    )
    assert run_once(folder, "--log-level", "WARNING") == []  # a good run says nothing then


def test_json_formatter_keeps_fields_and_exceptions() -> None:
    logger = logging.getLogger("test-json")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord(
            "x",
            logging.ERROR,
            __file__,
            1,
            "run crashed",
            (),
            sys.exc_info(),
            extra=fields(source="blog", url="https://b.example/ü"),
        )
    event = json.loads(JsonFormatter().format(record))
    assert event["event"] == "run crashed" and event["source"] == "blog"
    assert event["url"] == "https://b.example/ü" and "ValueError: boom" in event["exception"]


def test_no_progress_line_when_stderr_is_not_a_terminal() -> None:
    with progress_line(3) as progress:
        assert progress is None


def test_progress_line_is_redrawn_below_log_lines() -> None:
    stream = io.StringIO()
    handler = _ProgressAwareHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress = ProgressLine(2, stream)
    handler.progress = progress
    progress.advance("a: 3 new")
    handler.emit(logging.makeLogRecord({"msg": "run finished"}))
    out = stream.getvalue()
    # the bar, cleared, the log line on its own line, the bar again
    assert out.count("1/2 sources  a: 3 new") == 2
    assert "\r\x1b[Krun finished\n\r\x1b[K[" in out


@pytest.mark.parametrize("command", [["check"], ["run", "--once"], ["status"], ["db", "upgrade"]])
def test_an_unknown_log_level_is_a_one_line_usage_error(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli import main

    assert main([*command, "--log-level", "foo"]) == 2
    assert capsys.readouterr().err == (
        "feedworker: --log-level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL,"
        " got 'foo'\n"
    )


def test_the_log_level_flag_takes_any_case(tmp_path: Path) -> None:
    from worker.logs import check_level

    assert check_level("debug") == "DEBUG" and check_level(" Warning ") == "WARNING"
    with pytest.raises(ValueError, match="got 'loud'"):
        check_level("loud")
