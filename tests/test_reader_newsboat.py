"""End to end with a real feed reader: newsboat subscribes to a feed served on 127.0.0.1.

What newsboat 2.21 (Debian 12) does, seen in its debug log and asserted below:
- it always sends ``Accept-Encoding: gzip, deflate``, so it gets the gzip representation;
- it stores the ETag and Last-Modified in its cache (table ``rss_feed``) and sends both back as
  ``If-None-Match`` / ``If-Modified-Since`` (plus ``A-IM: feed``) on later reloads;
- but for a feed it has never seen, it saves them before the feed's row exists, so they are lost:
  the second reload is a plain GET again (200, no new items) and only then are they kept. Later
  reloads are conditional and answered 304. A newsboat without that quirk sends them on the
  second reload already; the test accepts both and requires 304 once validators are stored.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.test_serve import publish, running_server, write_config
from worker.service.metrics import Metrics
from worker.web.serve import SourceStatus, build_app

NEWSBOAT = shutil.which("newsboat")
pytestmark = pytest.mark.skipif(
    NEWSBOAT is None,
    reason="newsboat is not installed (Debian: apt-get install newsboat); "
    "the real-reader test needs it",
)

SOURCES = """
[[source]]
id = "news"
url = "https://news.example.com/"
title = "Example News"
every = "1h"
"""

ARTICLES = [
    ("Harbour reopens after storm", "The harbour reopened on Monday after three days of gales."),
    ("Library extends opening hours", "From March the central library stays open until nine."),
    ("Bakery wins regional prize", "A family bakery took first place for its rye sourdough."),
]


def rss_feed() -> str:
    items = []
    for number, (title, text) in enumerate(ARTICLES, start=1):
        body = f"<p>{text}</p><p>Second paragraph of story {number}, with <em>markup</em>.</p>"
        items.append(
            f"<item><title>{title}</title>"
            f"<link>https://news.example.com/{number}</link>"
            f"<guid isPermaLink='true'>https://news.example.com/{number}</guid>"
            f"<pubDate>Mon, 0{number} Jun 2026 08:00:00 GMT</pubDate>"
            f"<description>{text[:20]}</description>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        "<channel><title>Example News</title><link>https://news.example.com/</link>"
        "<description>Full-text feed</description>" + "".join(items) + "</channel></rss>\n"
    )


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    request: dict[str, str]
    status: int
    response: dict[str, str]


@dataclass
class Recorder:
    """ASGI wrapper keeping every request's headers and the response's status and headers."""

    app: ASGIApp
    exchanges: list[Exchange] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.exchanges.append(
                    Exchange(
                        scope["method"],
                        scope["path"],
                        _headers(scope["headers"]),
                        message["status"],
                        _headers(message.get("headers", [])),
                    )
                )
            await send(message)

        await self.app(scope, receive, keep)

    def take(self) -> list[Exchange]:
        taken, self.exchanges = self.exchanges, []
        return taken


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in raw}


@dataclass
class Reader:
    """One newsboat with its own urls, config and cache files, and HOME, under a tmp folder."""

    home: Path

    @property
    def cache(self) -> Path:
        return self.home / "cache.db"

    def run(self, *commands: str) -> str:
        assert NEWSBOAT is not None
        env = {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
        }
        args = ["-u", "urls", "-c", str(self.cache), "-C", "config", "-x", *commands]
        done = subprocess.run(
            [NEWSBOAT, *args],
            cwd=self.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        errors = (self.home / "error.log").read_text() if (self.home / "error.log").exists() else ""
        assert done.returncode == 0, f"newsboat failed: {done.stderr}{errors}"
        return done.stdout

    def items(self) -> dict[str, str]:
        """Title -> content of every article in newsboat's cache."""
        with sqlite3.connect(self.cache) as db:
            return dict(db.execute("SELECT title, content FROM rss_item"))

    def validators(self) -> tuple[str, int]:
        """The (etag, lastmodified) newsboat keeps for the one feed."""
        with sqlite3.connect(self.cache) as db:
            (row,) = db.execute("SELECT etag, lastmodified FROM rss_feed").fetchall()
        return row


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[Reader]:
    home = tmp_path / "newsboat"
    home.mkdir()
    (home / "config").write_text(
        "download-retries 1\ndownload-timeout 20\nreload-threads 1\n"
        f"error-log {home / 'error.log'}\n"
    )
    yield Reader(home)


def test_newsboat_reads_full_text_and_revalidates_with_304(tmp_path: Path, reader: Reader) -> None:
    config = write_config(tmp_path / "site", SOURCES)
    feed_path = config.settings.feeds_dir / "news.rss"
    publish(feed_path, rss_feed())
    metrics = Metrics()
    app = Recorder(
        build_app(config, metrics=metrics, status_reader=lambda: {"news": SourceStatus()})
    )

    with running_server(app) as base_url:  # type: ignore[arg-type]
        url = f"{base_url}/feeds/news.rss"
        (reader.home / "urls").write_text(url + "\n")

        # 1. First reload: every article, with its title and its full text.
        reader.run("reload")
        (first,) = app.take()
        assert (first.method, first.path, first.status) == ("GET", "/feeds/news.rss", 200)
        assert first.request["user-agent"].startswith("newsboat/")
        assert first.response["content-encoding"] == "gzip"  # newsboat asks for gzip
        served_etag = first.response["etag"]
        items = reader.items()
        assert set(items) == {title for title, _ in ARTICLES}
        for number, (title, text) in enumerate(ARTICLES, start=1):
            assert text in items[title]  # the full content, not the 20-character description
            assert f"Second paragraph of story {number}, with <em>markup</em>." in items[title]
        assert "3 unread articles" in reader.run("print-unread")
        etag_kept = reader.validators()[0] == served_etag

        # 2. Nothing changed: no new items; a 304 as soon as newsboat sends what it stored.
        reader.run("reload")
        (second,) = app.take()
        assert second.status == (304 if etag_kept else 200)
        assert len(reader.items()) == 3
        stored_etag, stored_mtime = reader.validators()
        assert stored_etag == served_etag
        assert stored_mtime == int(feed_path.stat().st_mtime)

        # 3. A run that rewrote the same bytes (new file, newer mtime): If-None-Match wins, 304.
        stat = feed_path.stat()
        publish(feed_path, rss_feed())
        os.utime(feed_path, (stat.st_atime + 60, stat.st_mtime + 60))
        reader.run("reload")
        (third,) = app.take()
        assert third.request["if-none-match"] == served_etag
        assert "if-modified-since" in third.request
        assert third.status == 304
        assert reader.items() == items
        assert "3 unread articles" in reader.run("print-unread")
        assert not app.take()  # print-unread reads the cache only

    counted = metrics.render().decode()
    not_modified = sum(1 for exchange in (second, third) if exchange.status == 304)
    assert f'feedworker_feed_responses_total{{feed="news.rss",status="304"}} {not_modified}.0' in (
        counted
    )
