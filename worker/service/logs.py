"""Logging set-up: one line per event with stable keys, as text on a terminal or JSON lines.

Call sites log a short event name and pass their fields in `extra={"fields": {...}}`; the
formatters below render them as `key=value` pairs or as JSON keys. Keys in use: `source`, `url`,
`status`, `duration_ms`, `items_new`, `items_unchanged`, `skipped`, `reason`, `error`,
`repeated`.

Two guards sit in front of every line written:
- secrets: each line passes `worker.redact.redact_text` with the secret values the loaded config
  named (`remember_secrets`), so a URL's password or token never reaches the log, whoever logged it;
- storms: `RepeatFilter` lets the first record of a kind through, then one per interval with the
  count of those it held back. The server's and asyncio's loggers have one (a client flood once
  wrote 174,000 "Too many open files" lines in 45 s); `throttle(logger)` gives any logger one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from worker.redact import MIN_MASKED_CHARS, redact_text

LOGGER_NAME = "feedworker"
log = logging.getLogger(LOGGER_NAME)
# Other libraries' loggers written through our handler, at WARNING and above, throttled: uvicorn
# (the HTTP server's errors) and asyncio (accept() failures, callbacks that raised).
ROUTED_LOGGERS = ("uvicorn", "asyncio")
THROTTLED_LOGGERS = ("uvicorn.error", "asyncio")  # filters act where a record is made
# One line per kind of record per minute: a storm shows up at once and then once a minute with
# its count, instead of thousands of lines a second.
REPEAT_INTERVAL = 60.0
REPEAT_KINDS = 256  # kinds remembered (the oldest forgotten first): bounded memory
_KEY_CHARS = 200  # of a message's first line, for telling kinds apart

# Secret values masked in every line (`remember_secrets`), longest first; only grows.
_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def fields(**values: Any) -> dict[str, Any]:
    """Wrap structured fields for `extra=`: `log.info("event", extra=fields(source=...))`."""
    return {"fields": values}


def _event_fields(record: logging.LogRecord) -> dict[str, Any]:
    return dict(getattr(record, "fields", {}) or {})


def remember_secrets(values: Iterable[str]) -> None:
    """Mask these values in every log line from now on (the config's passwords and tokens)."""
    global _secrets
    # Also as a JSON string spells them (a quote or backslash escaped), since lines may be JSON
    # and text lines quote values with spaces the same way.
    spellings = {form for value in values for form in (value, json.dumps(value)[1:-1])}
    with _secrets_lock:
        known = {*_secrets, *(v for v in spellings if len(v) >= MIN_MASKED_CHARS)}
        _secrets = tuple(sorted(known, key=len, reverse=True))


# ---------------------------------------------------------------------------------------------
# Repeated records: once per interval, with a count
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Kind:
    since: float  # when the last record of this kind was let through
    held: int = 0  # records of this kind dropped since then


class RepeatFilter(logging.Filter):
    """Lets the first record of a kind through, then drops the same kind for `interval` seconds;
    the first one after that carries `repeated=N`, the number dropped in between.

    A kind is the logger, the level, the first line of the message (asyncio puts the socket's
    details on later lines) and the exception's type and errno. Generic: any logger whose errors
    can come in bursts (a flood of clients, a dead dependency) can have one (`throttle`)."""

    def __init__(
        self,
        interval: float = REPEAT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        kinds: int = REPEAT_KINDS,
    ) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._max_kinds = kinds
        self._kinds: OrderedDict[tuple[object, ...], _Kind] = OrderedDict()
        self._lock = threading.Lock()  # records come from the event loop and worker threads

    def filter(self, record: logging.LogRecord) -> bool:
        key = _kind_of(record)
        now = self._clock()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is not None and now - kind.since < self.interval:
                kind.held += 1
                return False
            self._kinds[key] = _Kind(now)
            self._kinds.move_to_end(key)
            while len(self._kinds) > self._max_kinds:
                self._kinds.popitem(last=False)
        if kind is not None and kind.held:
            record.fields = {**_event_fields(record), "repeated": kind.held}
        return True


def _kind_of(record: logging.LogRecord) -> tuple[object, ...]:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not break the caller; logging reports it later
        message = str(record.msg)
    first_line = message.partition("\n")[0][:_KEY_CHARS]
    error = record.exc_info[1] if record.exc_info else None
    errno = getattr(error, "errno", None)
    return (record.name, record.levelno, first_line, type(error).__name__, errno)


def throttle(logger: logging.Logger, interval: float = REPEAT_INTERVAL) -> None:
    """Give `logger` a `RepeatFilter` (once; calling again changes nothing)."""
    if not any(isinstance(f, RepeatFilter) for f in logger.filters):
        logger.addFilter(RepeatFilter(interval))


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
    for name in ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers[:] = [handler]
        routed.setLevel(max(logging.WARNING, log.level))
        routed.propagate = False
    for name in THROTTLED_LOGGERS:
        throttle(logging.getLogger(name))
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

    @property
    def stream(self) -> TextIO:
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._fixed = value

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record), _secrets)

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
