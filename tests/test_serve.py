"""The HTTP server: feed files by HTTP's caching rules, status page, health, metrics, OPML."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import socket
import sqlite3
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from tests.backend import ON_POSTGRES, state_env
from tests.test_metrics import report
from worker.config import Config, load_config
from worker.errors import StoreError
from worker.models import Item, RunReport
from worker.service.metrics import Metrics
from worker.store.state import Store
from worker.web.serve import (
    SourceStatus,
    StatusReader,
    accepts_gzip,
    build_app,
    listen,
    serve,
    serve_socket,
    store_status_reader,
)

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>{title}</title><link>https://example.com/</link>
<description>test</description>
<item><title>{item}</title><link>https://example.com/1</link><guid>https://example.com/1</guid>
</item></channel></rss>
"""
ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:test</id><title>{title}</title>
<updated>2026-01-01T00:00:00Z</updated></feed>
"""
JSON_FEED = '{"version": "https://jsonfeed.org/version/1.1", "title": "%s", "items": []}\n'


# ---------------------------------------------------------------------------------------------
# Helpers, also used by test_reader_newsboat.py
# ---------------------------------------------------------------------------------------------


def write_config(root: Path, sources: str, worker: str = "") -> Config:
    """A config folder under `root` (feeds in root/feeds, state in root/state.db), loaded."""
    config_dir = root / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "feedworker.toml").write_text(
        f'[worker]\nfeeds_dir = "feeds"\nstate_url = "sqlite:///state.db"\n{worker}'
    )
    (config_dir / "sources.toml").write_text(sources)
    (root / "feeds").mkdir(exist_ok=True)
    return load_config(config_dir, env=state_env())


def publish(path: Path, text: str) -> None:
    """Write a feed the way the publisher does: a temporary file renamed over the old one."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


class AppTransport(httpx.BaseTransport):
    """Calls an ASGI app in-process from a sync `httpx.Client`, leaving bodies encoded as sent.

    (Starlette's TestClient now wants the `httpx2` package; httpx's own ASGI transport does.)
    """

    def __init__(self, app: Starlette) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return asyncio.run(self._call(request))

    async def _call(self, request: httpx.Request) -> httpx.Response:
        response = await self._asgi.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        if request.method == "HEAD":  # as a server would: headers only
            raw = b""
        return httpx.Response(
            response.status_code, headers=response.headers, stream=httpx.ByteStream(raw)
        )


def app_client(app: Starlette) -> httpx.Client:
    return httpx.Client(transport=AppTransport(app), base_url="http://testserver")


@contextlib.contextmanager
def running_server(app: Starlette) -> Iterator[str]:
    """`app` under a real uvicorn on 127.0.0.1 and a free port, in a thread; yields its base URL."""
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve_socket(app, sock, stop),), daemon=True
    )
    thread.start()
    try:
        # The socket already listens, so requests queue until uvicorn accepts them.
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
        assert not thread.is_alive(), "server did not stop"
        loop.close()


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

SOURCES = """
[[source]]
id = "blog"
url = "https://blog.example.com/"
title = "The <b>Blog</b> & Co"
description = "Posts"
every = "1h"

[[source]]
id = "news"
url = "https://news.example.com/latest/"
title = "News"
every = "30m"

[[source]]
id = "old"
url = "https://old.example.com/"
title = "Old site"
enabled = false
"""

EVIL_ERROR = "index page: <script>alert('x')</script> & more"


@dataclass
class Site:
    root: Path
    config: Config
    feeds: Path
    metrics: Metrics
    healthy: bool = True

    def app(self, status_reader: StatusReader | None = None) -> Starlette:
        now = datetime.now(UTC)
        statuses = {
            "blog": SourceStatus(
                last_run=now - timedelta(minutes=5),
                last_success=now - timedelta(hours=2),
                last_error=EVIL_ERROR,
                consecutive_failures=3,
                items=17,
            ),
            "news": SourceStatus(
                last_run=now - timedelta(minutes=1), last_success=now - timedelta(minutes=1)
            ),
        }
        return build_app(
            self.config,
            health=lambda: self.healthy,
            next_runs=lambda source_id: (
                now + timedelta(minutes=25) if source_id == "news" else None
            ),
            metrics=self.metrics,
            status_reader=status_reader or (lambda: statuses),
        )


@pytest.fixture
def site(tmp_path: Path) -> Site:
    config = write_config(tmp_path, SOURCES)
    feeds = tmp_path / "feeds"
    publish(feeds / "blog.rss", RSS.format(title="Blog", item="First post"))
    publish(feeds / "blog.atom", ATOM.format(title="Blog"))
    publish(feeds / "blog.json", JSON_FEED % "Blog")
    publish(feeds / "news.rss", RSS.format(title="News", item="Headline"))
    publish(feeds / "all.atom", ATOM.format(title="All"))
    (tmp_path / "secret.txt").write_text("do not serve me")
    return Site(tmp_path, config, feeds, Metrics())


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    with app_client(site.app()) as test_client:
        yield test_client


IDENTITY = {"Accept-Encoding": "identity"}


# ---------------------------------------------------------------------------------------------
# Feed files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/feeds/blog.rss", "application/rss+xml; charset=utf-8"),
        ("/feeds/blog.atom", "application/atom+xml; charset=utf-8"),
        ("/feeds/blog.json", "application/feed+json"),
        ("/feeds/all.atom", "application/atom+xml; charset=utf-8"),
    ],
)
def test_feed_media_types(client: httpx.Client, site: Site, path: str, media_type: str) -> None:
    response = client.get(path, headers=IDENTITY)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == (site.feeds / path.rpartition("/")[2]).read_bytes()


def test_feed_has_validators_and_cache_control(client: httpx.Client, site: Site) -> None:
    response = client.get("/feeds/blog.rss", headers=IDENTITY)
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')  # strong, not W/
    mtime = (site.feeds / "blog.rss").stat().st_mtime
    assert response.headers["last-modified"] == formatdate(mtime, usegmt=True)
    assert response.headers["cache-control"] == "public, max-age=300"
    assert "accept-encoding" in response.headers["vary"].lower()
    assert "content-encoding" not in response.headers


def test_same_file_same_etag(client: httpx.Client) -> None:
    first = client.get("/feeds/blog.rss", headers=IDENTITY).headers["etag"]
    assert client.get("/feeds/blog.rss", headers=IDENTITY).headers["etag"] == first
    assert client.get("/feeds/blog.atom", headers=IDENTITY).headers["etag"] != first


def test_if_none_match_gives_304(client: httpx.Client) -> None:
    etag = client.get("/feeds/blog.rss", headers=IDENTITY).headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get("/feeds/blog.rss", headers={**IDENTITY, "If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert "last-modified" in response.headers


def test_if_modified_since_gives_304(client: httpx.Client) -> None:
    last_modified = client.get("/feeds/blog.rss").headers["last-modified"]
    response = client.get("/feeds/blog.rss", headers={"If-Modified-Since": last_modified})
    assert response.status_code == 304
    earlier = formatdate(0, usegmt=True)
    assert client.get("/feeds/blog.rss", headers={"If-Modified-Since": earlier}).status_code == 200
    garbage = client.get("/feeds/blog.rss", headers={"If-Modified-Since": "yesterday-ish"})
    assert garbage.status_code == 200


def test_if_none_match_takes_precedence(client: httpx.Client) -> None:
    last_modified = client.get("/feeds/blog.rss").headers["last-modified"]
    headers = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert client.get("/feeds/blog.rss", headers=headers).status_code == 200


def test_replaced_file_gets_a_new_etag(client: httpx.Client, site: Site) -> None:
    old = client.get("/feeds/blog.rss", headers=IDENTITY)
    new_text = RSS.format(title="Blog", item="Second post")
    publish(site.feeds / "blog.rss", new_text)
    response = client.get(
        "/feeds/blog.rss",
        headers={
            **IDENTITY,
            "If-None-Match": old.headers["etag"],
            "If-Modified-Since": old.headers["last-modified"],
        },
    )
    assert response.status_code == 200
    assert response.headers["etag"] != old.headers["etag"]
    assert response.text == new_text
    again = {**IDENTITY, "If-None-Match": response.headers["etag"]}
    assert client.get("/feeds/blog.rss", headers=again).status_code == 304


def test_same_size_rewrite_in_the_same_tick_still_changes_etag(
    client: httpx.Client, site: Site
) -> None:
    path = site.feeds / "blog.rss"
    old = client.get("/feeds/blog.rss", headers=IDENTITY)
    stat = path.stat()
    publish(path, RSS.format(title="Blog", item="First pOst"))  # same length
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    response = client.get("/feeds/blog.rss", headers=IDENTITY)
    assert response.text.count("pOst") == 1
    assert response.headers["etag"] != old.headers["etag"]  # the rename gave a new inode


def test_gzip_when_asked(client: httpx.Client, site: Site) -> None:
    plain = client.get("/feeds/blog.rss", headers=IDENTITY)
    with client.stream("GET", "/feeds/blog.rss", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == (site.feeds / "blog.rss").read_bytes()
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    gz_etag = response.headers["etag"]
    assert gz_etag != plain.headers["etag"]  # another representation, another strong tag
    # Either tag names the same content, so either revalidates.
    for etag in (gz_etag, plain.headers["etag"]):
        again = client.get("/feeds/blog.rss", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.headers["etag"] == gz_etag


def test_no_gzip_when_refused(client: httpx.Client) -> None:
    response = client.get("/feeds/blog.rss", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in response.headers
    assert response.text.startswith("<?xml")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("GZIP;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, identity", False),
        ("deflate, br", False),
        ("", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accepts_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_head_sends_headers_only(client: httpx.Client, site: Site) -> None:
    response = client.head("/feeds/blog.rss", headers=IDENTITY)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert int(response.headers["content-length"]) == (site.feeds / "blog.rss").stat().st_size
    assert "etag" in response.headers
    head_304 = client.head("/feeds/blog.rss", headers={"If-None-Match": response.headers["etag"]})
    assert head_304.status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/feeds/nope.rss",  # not a configured id
        "/feeds/news.atom",  # configured, not written yet
        "/feeds/blog.xml",  # not a feed format
        "/feeds/blog.RSS",
        "/feeds/all.rss",  # the combined feed is Atom only
        "/feeds/blog.rss.tmp",
        "/feeds/.blog.rss.tmp",
        "/feeds/",
        "/feeds/..%2Fsecret.txt",
        "/feeds/..%2F..%2Fsecret.txt",
        "/feeds/%2e%2e%2fsecret.txt",
        "/feeds/%2E%2E/secret.txt",
        "/feeds/..%5Csecret.txt",
        "/feeds/%2e%2e%2fconfig%2fsources.toml",
        "/feeds/..%252Fsecret.txt",
        "/feeds/blog.rss%00.txt",
    ],
)
def test_unknown_feeds_and_traversal_are_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, path
    assert b"do not serve me" not in response.content
    assert b"[[source]]" not in response.content


def test_unknown_names_are_not_counted(client: httpx.Client, site: Site) -> None:
    client.get("/feeds/nope.rss")
    client.get("/feeds/news.atom")
    text = site.metrics.render().decode()
    assert 'feed="nope.rss"' not in text
    assert 'feedworker_feed_responses_total{feed="news.atom",status="404"} 1.0' in text


def raw_get(base_url: str, target: str) -> bytes:
    """Send a request line exactly as given (no client normalising the path) and read it all."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "target",
    [
        "/feeds/../secret.txt",
        "/feeds/../config/sources.toml",
        "/feeds/..%2Fsecret.txt",
        "/feeds/%2e%2e/config/sources.toml",
        "/feeds/..%2f..%2fconfig%2fsources.toml",
        "/feeds/blog.rss/../../secret.txt",
    ],
)
def test_traversal_over_a_real_socket_is_404(site: Site, target: str) -> None:
    with running_server(site.app()) as base_url:
        answer = raw_get(base_url, target)
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
    assert b"do not serve me" not in answer
    assert b"[[source]]" not in answer


def test_real_server_serves_feeds_conditionally(site: Site) -> None:
    with running_server(site.app()) as base_url, httpx.Client(base_url=base_url) as http:
        first = http.get("/feeds/blog.rss")
        assert first.status_code == 200
        assert first.headers["content-encoding"] == "gzip"  # httpx asks for it by default
        assert first.text == (site.feeds / "blog.rss").read_text()
        second = http.get("/feeds/blog.rss", headers={"If-None-Match": first.headers["etag"]})
        assert second.status_code == 304
        head = http.head("/feeds/blog.rss")
        assert head.status_code == 200
        assert head.content == b""
    text = site.metrics.render().decode()
    assert 'feedworker_feed_responses_total{feed="blog.rss",status="200"} 2.0' in text
    assert 'feedworker_feed_responses_total{feed="blog.rss",status="304"} 1.0' in text


# ---------------------------------------------------------------------------------------------
# Status page
# ---------------------------------------------------------------------------------------------


def test_status_page_lists_every_source(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<script" not in page  # no JS at all
    assert "The &lt;b&gt;Blog&lt;/b&gt; &amp; Co" in page
    assert "<b>Blog</b>" not in page
    assert "News" in page
    assert "Old site" in page
    for source_id in ("blog", "news", "old"):
        assert f'id="source-{source_id}"' in page


def test_status_page_escapes_errors(client: httpx.Client) -> None:
    page = client.get("/").text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "<script>" not in page


def test_status_page_feed_links_for_files_present(client: httpx.Client) -> None:
    page = client.get("/").text
    blog = section(page, "blog")
    assert '<a href="feeds/blog.rss">RSS</a>' in blog
    assert '<a href="feeds/blog.atom">Atom</a>' in blog
    assert '<a href="feeds/blog.json">JSON</a>' in blog
    news = section(page, "news")
    assert '<a href="feeds/news.rss">RSS</a>' in news
    assert "news.atom" not in news  # not written yet
    assert "no feed written yet" in section(page, "old")
    assert '<a href="feeds/all.atom">' in page
    assert '<a href="opml">OPML</a>' in page


def test_status_page_shows_run_state(client: httpx.Client) -> None:
    page = client.get("/").text
    blog = section(page, "blog")
    assert "<dt>Items</dt><dd>17</dd>" in blog
    assert "<dt>Failures in a row</dt><dd>3</dd>" in blog
    assert "(2 h ago)" in blog  # last success
    assert 'class="src failing"' in blog
    news = section(page, "news")
    assert "<dt>Last error</dt><dd>none</dd>" in news
    assert "(in 2" in news  # next run, from the scheduler: in 24-25 min
    assert 'class="src ok"' in news
    old = section(page, "old")
    assert "<dt>Next run</dt><dd>disabled</dd>" in old
    assert "<dt>Last success</dt><dd>never</dd>" in old


def test_status_page_survives_a_store_error(site: Site) -> None:
    def broken() -> dict[str, SourceStatus]:
        raise StoreError("database is locked")

    with app_client(site.app(status_reader=broken)) as client:
        response = client.get("/")
    assert response.status_code == 200
    assert "run state unavailable: database is locked" in response.text
    assert "News" in response.text


def section(page: str, source_id: str) -> str:
    start = page.index(f'id="source-{source_id}"')
    return page[page.rindex("<section", 0, start) : page.index("</section>", start)]


def test_store_status_reader_reads_the_store(site: Site) -> None:
    ran = datetime(2026, 1, 1, 12, tzinfo=UTC)
    store = Store.open(site.config.settings.state_url)
    try:
        store.record_run(
            RunReport("news", ran, ran + timedelta(seconds=2)), ran + timedelta(hours=1)
        )
        failed = RunReport("blog", ran, ran, error="<b>boom</b>")
        store.record_run(failed)
        store.record_run(failed)
        store.add_item(item("news", "https://news.example.com/1", ran))
        store.add_item(item("news", "https://news.example.com/2", ran))
    finally:
        store.close()

    store = Store.open(site.config.settings.state_url)
    try:
        reader = store_status_reader(site.config, store)
        statuses = reader()
        assert set(statuses) == {"blog", "news", "old"}
        assert statuses["old"] == SourceStatus()  # never ran
        end = ran + timedelta(seconds=2)
        assert statuses["news"] == SourceStatus(end, end, None, 0, 2, ran + timedelta(hours=1))
        assert statuses["blog"] == SourceStatus(ran, None, "<b>boom</b>", 2, 0, None)
        page = app_client(build_app(site.config, status_reader=reader)).get("/").text
    finally:
        store.close()
    assert "&lt;b&gt;boom&lt;/b&gt;" in section(page, "blog")
    assert "<dt>Items</dt><dd>2</dd>" in section(page, "news")


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
def test_a_status_page_view_never_waits_for_the_write_lock(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page reads the store it is given: while the worker holds the write lock (here another
    connection in BEGIN IMMEDIATE), a view neither opens the database nor migrates it, nor
    writes (any of which would wait out the busy timeout, then fail)."""
    path = site.config.settings.sqlite_path
    assert path is not None
    store = Store.open(site.config.settings.state_url)
    writes: list[str] = []
    monkeypatch.setattr(Store, "open", lambda *a: writes.append("open"))
    real_write = Store._write
    monkeypatch.setattr(
        Store, "_write", lambda self, doing: writes.append(doing) or real_write(self, doing)
    )
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the running worker, mid-transaction
        with app_client(
            build_app(site.config, status_reader=store_status_reader(site.config, store))
        ) as client:
            response = client.get("/")
        assert writes == []
        assert response.status_code == 200
        assert "run state unavailable" not in response.text
    finally:
        writer.rollback()
        writer.close()
        store.close()


def item(source_id: str, url: str, when: datetime) -> Item:
    return Item(source_id, url, url, "Title", "<p>x</p>", f"v1:{url}", when, when, when)


# ---------------------------------------------------------------------------------------------
# Health, metrics, OPML
# ---------------------------------------------------------------------------------------------


def test_healthz_flips_to_503(site: Site) -> None:
    with app_client(site.app()) as client:
        ok = client.get("/healthz")
        assert (ok.status_code, ok.text) == (200, "ok\n")
        site.healthy = False
        assert client.get("/healthz").status_code == 503
        site.healthy = True
        assert client.get("/healthz").status_code == 200


def test_metrics_endpoint_counts_a_run(client: httpx.Client, site: Site) -> None:
    before = client.get("/metrics")
    assert before.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'feedworker_runs_total{source="news"} 0.0' in before.text  # configured, never run
    site.metrics.observe_run(report("news", items_new=4))
    text = client.get("/metrics").text
    assert 'feedworker_runs_total{source="news"} 1.0' in text
    assert 'feedworker_items_published_total{source="news"} 4.0' in text
    assert 'feedworker_run_duration_seconds_count{source="news"} 1.0' in text


def test_apps_without_metrics_get_their_own(site: Site) -> None:
    first = app_client(build_app(site.config, status_reader=dict))
    second = app_client(build_app(site.config, status_reader=dict))
    first.get("/feeds/blog.rss")
    assert 'feed="blog.rss"' in first.get("/metrics").text
    assert 'feed="blog.rss"' not in second.get("/metrics").text


def opml_outlines(content: bytes) -> list[dict[str, str]]:
    root = ET.fromstring(content)
    assert root.tag == "opml"
    assert root.get("version") == "2.0"
    assert root.findtext("head/title")
    return [dict(outline.attrib) for outline in root.iter("outline")]


def test_opml_lists_every_feed(client: httpx.Client) -> None:
    response = client.get("/opml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/x-opml; charset=utf-8"
    outlines = opml_outlines(response.content)
    # "old" is disabled and never wrote a feed, so subscribing to it would only 404. Without a
    # public_url, links use the configured serve_host:serve_port, never the request's Host.
    assert outlines == [
        {
            "type": "rss",
            "text": "The <b>Blog</b> & Co",
            "title": "The <b>Blog</b> & Co",
            "xmlUrl": "http://127.0.0.1:8080/feeds/blog.rss",
            "htmlUrl": "https://blog.example.com/",
            "description": "Posts",
        },
        {
            "type": "rss",
            "text": "News",
            "title": "News",
            "xmlUrl": "http://127.0.0.1:8080/feeds/news.rss",
            "htmlUrl": "https://news.example.com/latest/",
        },
    ]


def test_opml_uses_the_public_url(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, SOURCES, worker='public_url = "https://feeds.example.org/sub/"\n'
    )
    publish(tmp_path / "feeds" / "old.rss", RSS.format(title="Old", item="x"))
    with app_client(build_app(config, status_reader=dict)) as client:
        outlines = opml_outlines(client.get("/opml").content)
    assert [o["xmlUrl"] for o in outlines] == [
        "https://feeds.example.org/sub/feeds/blog.rss",
        "https://feeds.example.org/sub/feeds/news.rss",
        "https://feeds.example.org/sub/feeds/old.rss",  # disabled, but its feed is there
    ]


def test_gzip_for_pages(client: httpx.Client) -> None:
    with client.stream("GET", "/", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert b"feedworker" in gzip.decompress(raw)


# ---------------------------------------------------------------------------------------------
# Running the server
# ---------------------------------------------------------------------------------------------


def test_serve_stops_when_told(site: Site) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        task = asyncio.create_task(serve(site.app(), "127.0.0.1", port, stop))
        async with httpx.AsyncClient() as http, asyncio.timeout(60):  # ends a broken test only
            while True:  # until the server listens
                try:
                    response = await http.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert response.status_code == 200
        stop.set()
        await asyncio.wait_for(task, timeout=60)

    asyncio.run(main())


def test_listen_reports_a_port_in_use() -> None:
    with listen("127.0.0.1", 0) as taken, pytest.raises(OSError):
        listen("127.0.0.1", taken.getsockname()[1])
