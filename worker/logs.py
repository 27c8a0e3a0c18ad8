"""Logging set-up: one line per event with stable keys, as text on a terminal or JSON lines.

Call sites log a short event name and pass their fields in `extra={"fields": {...}}`; the
formatters below render them as `key=value` pairs or as JSON keys. Keys in use: `source`, `url`,
`status`, `duration_ms`, `items_new`, `items_unchanged`, `skipped`, `reason`, `error`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

LOGGER_NAME = "feedworker"
log = logging.getLogger(LOGGER_NAME)


def fields(**values: Any) -> dict[str, Any]:
    """Wrap structured fields for `extra=`: `log.info("event", extra=fields(source=...))`."""
    return {"fields": values}


def _event_fields(record: logging.LogRecord) -> dict[str, Any]:
    return dict(getattr(record, "fields", {}) or {})


class TextFormatter(logging.Formatter):
    """`2026-11-25 10:00:00 INFO  run finished source=blog items_new=3 duration_ms=812`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        parts = [stamp, f"{record.levelname:<5}", record.getMessage()]
        for key, value in _event_fields(record).items():
            text = str(value)
            if not text or any(c.isspace() for c in text) or '"' in text:
                text = json.dumps(text, ensure_ascii=False)
            parts.append(f"{key}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        event.update(_event_fields(record))
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False, default=str)


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def check_level(name: str) -> str:
    """A level name as `setup_logging` takes it ("debug" -> "DEBUG"); a ValueError with the
    choices for anything else (never logging's own "Unknown level" from deep inside)."""
    level = name.strip().upper()
    if level not in LEVELS:
        raise ValueError(f"expected one of {', '.join(LEVELS)}, got {name!r}")
    return level


def setup_logging(level: str = "INFO", fmt: str | None = None) -> None:
    """Configure the `feedworker` logger; `fmt` is "text" or "json" (env FEEDWORKER_LOG_FORMAT).
    `level` must be one of `LEVELS` (`check_level`)."""
    fmt = (fmt or os.environ.get("FEEDWORKER_LOG_FORMAT") or "text").lower()
    handler = _ProgressAwareHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False
    # APScheduler logs every job start at INFO; keep only its warnings (missed runs, errors).
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------------
# A progress line for `run --once` on a terminal
# ---------------------------------------------------------------------------------------------

BAR_WIDTH = 24


def render_progress(done: int, total: int, label: str = "", width: int = BAR_WIDTH) -> str:
    """`[#########...............]  3/8 sources  blog ok` (pure, for tests)."""
    filled = width * done // total if total else width
    bar = "#" * filled + "." * (width - filled)
    text = f"[{bar}] {done:>{len(str(total))}}/{total} sources"
    return f"{text}  {label}" if label else text


class ProgressLine:
    """One line at the bottom of a terminal, redrawn below each log line as work advances."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.done = 0
        self.label = ""
        self._stream = stream

    def advance(self, label: str) -> None:
        self.done += 1
        self.label = label
        self.draw()

    def draw(self) -> None:
        columns = shutil.get_terminal_size().columns - 1
        line = render_progress(self.done, self.total, self.label)[:columns]
        self._stream.write("\r\x1b[K" + line)
        self._stream.flush()

    def clear(self) -> None:
        self._stream.write("\r\x1b[K")
        self._stream.flush()


class _ProgressAwareHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes log lines above the progress line, when one is shown.

    The stream is whatever `sys.stderr` is at the time of writing, not when logging was set up,
    so a replaced stderr (a test's capture, a daemon's redirect) never leaves us a closed file.
    """

    progress: ProgressLine | None = None

    def __init__(self, stream: TextIO | None = None) -> None:
        logging.Handler.__init__(self)
        self._fixed = stream  # None: follow sys.stderr

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._fixed = value

    def emit(self, record: logging.LogRecord) -> None:
        if self.progress is None:
            super().emit(record)
            return
        self.progress.clear()
        super().emit(record)
        self.progress.draw()


@contextlib.contextmanager
def progress_line(total: int) -> Iterator[ProgressLine | None]:
    """A progress line on stderr while the block runs, when stderr is a terminal; else None."""
    handler = next((h for h in log.handlers if isinstance(h, _ProgressAwareHandler)), None)
    if handler is None or not total or not sys.stderr.isatty():
        yield None
        return
    progress = ProgressLine(total, sys.stderr)
    handler.progress = progress
    progress.draw()
    try:
        yield progress
    finally:
        handler.progress = None
        progress.clear()
