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

from tests.backend import state_env
from tests.localserver import LocalServer
from tests.test_cli import REPO, blog_source, serve_blog
from tests.test_e2e import write_config
from worker.service.logs import (
    JsonFormatter,
    ProgressLine,
    RepeatFilter,
    _ProgressAwareHandler,
    fields,
    log,
    progress_line,
    remember_secrets,
    setup_logging,
)


def run_once(config_dir: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """stderr lines of `feedworker run --once`, which must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "worker", "run", "--once", "--config", str(config_dir), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **state_env(), **(env or {})},
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
    from worker.service.logs import check_level

    assert check_level("debug") == "DEBUG" and check_level(" Warning ") == "WARNING"
    with pytest.raises(ValueError, match="got 'loud'"):
        check_level("loud")


# -- storms: once per interval, with a count ----------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def accept_failure(logger: logging.Logger, fd: int) -> None:
    """What asyncio logs when accept() hits the file-descriptor limit (details vary per socket)."""
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        logger.error(
            "socket.accept() out of system resource\nsocket: <socket fd=%d>", fd, exc_info=True
        )


def collecting_logger(name: str, repeat: RepeatFilter) -> tuple[logging.Logger, list[str]]:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(  # type: ignore[method-assign]
        f"{record.getMessage().splitlines()[0]} {getattr(record, 'fields', {})}"
    )
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.filters[:] = [repeat]
    return logger, lines


def test_a_storm_is_logged_once_per_interval_with_its_count() -> None:
    clock = FakeClock()
    logger, lines = collecting_logger("test-storm", RepeatFilter(60, clock=clock))
    for fd in range(5000):
        accept_failure(logger, fd)
        clock.now += 0.001  # 5 s of errors
    assert lines == ["socket.accept() out of system resource {}"]
    clock.now += 60
    accept_failure(logger, 1)
    assert lines[1] == "socket.accept() out of system resource {'repeated': 4999}"
    accept_failure(logger, 2)
    assert len(lines) == 2  # a new interval started with that line


def test_other_kinds_of_records_are_not_held_back() -> None:
    clock = FakeClock()
    logger, lines = collecting_logger("test-kinds", RepeatFilter(60, clock=clock))
    accept_failure(logger, 1)
    logger.error("another error")
    logger.warning("another error")  # another level, another kind
    accept_failure(logger, 2)
    assert len(lines) == 3


def test_remembered_kinds_are_bounded() -> None:
    repeat = RepeatFilter(60, clock=FakeClock(), kinds=10)
    logger, lines = collecting_logger("test-bounded", repeat)
    for n in range(1000):
        logger.error("error %d", n)
    assert len(lines) == 1000 and len(repeat._kinds) == 10


def test_setup_logging_throttles_asyncio_and_the_server(capfd: pytest.CaptureFixture[str]) -> None:
    """The loggers that wrote 174,000 lines in 45 s under a flood now write one."""
    setup_logging("INFO")
    for fd in range(2000):
        accept_failure(logging.getLogger("asyncio"), fd)
        logging.getLogger("uvicorn.error").error("Exception in ASGI application")
    err = capfd.readouterr().err
    assert err.count("socket.accept() out of system resource") == 1
    assert err.count("Exception in ASGI application") == 1


def test_known_secrets_never_reach_a_log_line(capfd: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO")
    remember_secrets(["s3cret-Pa55", "x"])
    log.warning(
        "fetch failed",
        extra=fields(url="https://u:pw@a.test/?token=T0KEN-1&p=1", error="said s3cret-Pa55"),
    )
    logging.getLogger("asyncio").warning("callback for https://a.test/?api_key=K3Y failed")
    err = capfd.readouterr().err
    assert "url=https://a.test/?token=***&p=1" in err and 'error="said ***"' in err
    for secret in ("s3cret-Pa55", "T0KEN-1", "K3Y", ":pw@"):
        assert secret not in err


def test_secrets_are_masked_in_json_lines_too(capfd: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", "json")
    remember_secrets(['pa"ss\\word-1'])
    log.warning("login failed", extra=fields(error='server said pa"ss\\word-1 is wrong'))
    (line,) = capfd.readouterr().err.splitlines()
    assert json.loads(line)["error"] == "server said *** is wrong"
