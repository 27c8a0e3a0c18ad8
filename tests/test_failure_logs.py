"""Repeated failures are logged once per source per change of state, with a count: a source
that starts failing warns once, its next failed runs are DEBUG lines, its recovery warns once
with how many runs failed."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.test_serve import write_config
from worker.config import Config
from worker.service.logs import LOGGER_NAME
from worker.service.runner import Worker

INDEX = b"<html><body><main><p>Nothing listed today.</p></main></body></html>"


def events(caplog: pytest.LogCaptureFixture, source: str) -> list[tuple[str, str, object]]:
    """(level, event, failures) of the run lines about `source`."""
    found = []
    for record in caplog.records:
        fields = getattr(record, "fields", {}) or {}
        if fields.get("source") == source and record.getMessage() != "article skipped":
            found.append((record.levelname, record.getMessage(), fields.get("failures")))
    return found


class Sites:
    """Each host answers 404 while it is in `down`, else an index page with no links."""

    def __init__(self) -> None:
        self.down: set[str] = set()

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in self.down:
            return httpx.Response(404, text="gone")
        return httpx.Response(200, content=INDEX, headers={"content-type": "text/html"})


def run_all(config: Config, sites: Sites, hour: int) -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC) + timedelta(hours=hour)

    async def main() -> None:
        transport = httpx.MockTransport(sites.handle)
        async with Worker(config, transport=transport, clock=lambda: at) as worker:
            await worker.run_once()

    asyncio.run(main())


def test_one_warning_when_failing_starts_and_one_when_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(
        tmp_path,
        '[[source]]\nid = "a"\nurl = "https://a.example/"\nrespect_robots = false\n'
        '[[source]]\nid = "b"\nurl = "https://b.example/"\nrespect_robots = false\n',
        "retries = 0\nper_host_delay = 0\n",
    )
    sites = Sites()
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    run_all(config, sites, 0)  # both fine
    sites.down = {"a.example"}
    for hour in range(1, 6):
        run_all(config, sites, hour)  # a fails five times in a row
    sites.down = set()
    run_all(config, sites, 6)  # a is back
    sites.down = {"a.example"}
    run_all(config, sites, 7)  # and fails again: a new change of state

    a = [e for e in events(caplog, "a") if e[0] != "INFO"]
    assert a == [
        ("WARNING", "run failed", 1),
        ("DEBUG", "run failed again", 2),
        ("DEBUG", "run failed again", 3),
        ("DEBUG", "run failed again", 4),
        ("DEBUG", "run failed again", 5),
        ("WARNING", "source failing no more", 5),
        ("WARNING", "run failed", 1),
    ]
    assert [e for e in events(caplog, "b") if e[0] == "WARNING"] == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 3  # eight runs of a failing source, three lines worth a look
