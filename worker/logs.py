"""Logging set-up: one line per event with stable keys, as text on a terminal or JSON lines.

Call sites log a short event name and pass their fields in `extra={"fields": {...}}`; the
formatters below render them as `key=value` pairs or as JSON keys. Keys in use: `source`, `url`,
`status`, `duration_ms`, `items_new`, `items_unchanged`, `skipped`, `reason`, `error`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

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


def setup_logging(level: str = "INFO", fmt: str | None = None) -> None:
    """Configure the `feedworker` logger; `fmt` is "text" or "json" (env FEEDWORKER_LOG_FORMAT)."""
    fmt = (fmt or os.environ.get("FEEDWORKER_LOG_FORMAT") or "text").lower()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False
    # APScheduler logs every job start at INFO; keep only its warnings (missed runs, errors).
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
