"""The browser view: `/sources/<id>`, `/preview`, the status page's links, and screenshots of all
three taken with headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.backend import state_env
from tests.blogsite import Blog, Post, sample_posts
from tests.localserver import LocalServer
from tests.test_cli import (
    Process,
    free_port,
    get_or_none,
    wait_for,
)
from tests.test_serve import app_client, running_server
from worker.config import Config, load_config
from worker.fetch.client import Fetcher, FetchOptions
from worker.models import RunHealth
from worker.service.runner import Worker
from worker.store.state import Store
from worker.web.serve import build_app, store_status_reader
from worker.web.sourcepage import RUNS_SHOWN, runs_chart

TOKEN = "preview-token-0123456789abcdef"
SOURCE_TOKEN = "s3cr3t-value-123"
PASSWORD = "hunter2-password"
NASTY_TITLE = '<script>alert("x")</script> & friends'
BROWSER_ENV = "FEEDWORKER_REQUIRE_BROWSER"


def blog_posts() -> list[Post]:
    posts = sample_posts()
    nasty = Post("/2026/02/nasty.html", NASTY_TITLE, posts[0].paragraphs[1:] + posts[1].paragraphs)
    return [*posts, nasty]


def serve(server: LocalServer, blog: Blog) -> None:
    server.route("/", body=blog.index_html([(p.path, p.title) for p in blog.posts]).encode())
    server.route("/robots.txt", headers={"Content-Type": "text/plain"}, body=b"User-agent: *\n")
    for post in blog.posts:
        server.route(post.path, body=blog.post_html(post).encode())


@dataclass
class Site:
    server: LocalServer
    blog: Blog
    config: Config
    root: Path


def write_site(root: Path, server: LocalServer, worker: str = "") -> Path:
    config_dir = root / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "feedworker.toml").write_text(
        f'[worker]\nper_host_delay = 0\nstate_url = "sqlite:///{root}/state.db"\n'
        f'feeds_dir = "{root}/feeds"\n{worker}'
    )
    (config_dir / "sources.toml").write_text(
        f'[[source]]\nid = "garden"\nurl = "{server.url("/")}?token={SOURCE_TOKEN}"\n'
        'title = "Notes from the Allotment"\nevery = "6h"\n'
        'auth = { user = "ann", password_env = "GARDEN_PW" }\n'
        'drop = [{ title = "compost" }]\n'
    )
    return config_dir


@contextlib.contextmanager
def site(tmp_path: Path, worker: str = "") -> Iterator[Site]:
    with LocalServer() as server:
        blog = Blog(origin=server.url("").rstrip("/"), posts=blog_posts())
        serve(server, blog)
        config_dir = write_site(tmp_path, server, worker)
        config = load_config(config_dir, env={**state_env(), "GARDEN_PW": PASSWORD})

        async def two_runs() -> None:
            for _ in range(2):
                async with Worker(config) as w:
                    await w.run_once()

        asyncio.run(two_runs())
        yield Site(server, blog, config, tmp_path)


def source_page(found: Site) -> httpx.Response:
    store = Store.open(found.config.settings.state_url)
    fetcher = Fetcher(FetchOptions.from_settings(found.config.settings))  # never used here
    try:
        app = build_app(
            found.config,
            status_reader=store_status_reader(found.config, store),
            store=store,
            preview_fetcher=fetcher,  # with a token, the page links to the preview
        )
        with app_client(app) as client:
            return client.get("/sources/garden", params={"token": TOKEN})
    finally:
        asyncio.run(fetcher.aclose())
        store.close()


# -- the source page -----------------------------------------------------------------------------


def test_the_source_page_shows_settings_health_runs_items_and_filtered(tmp_path: Path) -> None:
    with site(tmp_path, f'serve_token = "{TOKEN}"\n') as found:
        response = source_page(found)
    assert response.status_code == 200
    page = response.text
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "<script" not in page  # the nasty title is escaped, never markup
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; friends" in page
    # settings, secrets masked
    assert SOURCE_TOKEN not in page and PASSWORD not in page
    assert "token=***" in page and "user ann, password from $GARDEN_PW" in page
    assert "try its selectors in the preview" in page  # without the URL that holds a token
    assert "<dt>every</dt><dd><code>6h</code>" in page
    assert "title ~ [&#x27;compost&#x27;]" in page
    # health and runs: two runs, a chart bar each
    assert '<strong class="ok">ok</strong>' in page
    runs = re.findall(r"<tr><td>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td>", page)
    assert len(runs) == 2
    assert page.count("<rect ") == 2 and "<polyline" in page
    # items as a reader sees them: the lead, the full body behind a click, link, GUID, hash
    frost = found.blog.posts[0]
    assert frost.title in page and frost.paragraphs[0][:50] in page
    assert page.count("<details><summary>Full article") == 3  # the compost post is filtered
    assert frost.paragraphs[-1][:50] in page
    assert f"<dt>GUID</dt><dd><code>{found.blog.url(frost.path)}</code>" in page
    assert re.search(r"<dt>Content hash</dt><dd><code>v\d+:[0-9a-f]{64}</code>", page)
    # the filtered item, with its reason
    assert "Compost in three bays" in page
    assert "drop rule 1: title &#x27;compost&#x27;" in page


def test_the_status_page_links_each_source_to_its_page(tmp_path: Path) -> None:
    with site(tmp_path) as found:
        store = Store.open(found.config.settings.state_url)
        try:
            app = build_app(
                found.config, status_reader=store_status_reader(found.config, store), store=store
            )
            with app_client(app) as client:
                status = client.get("/")
                missing = client.get("/sources/nope")
        finally:
            store.close()
    assert '<a href="sources/garden">Notes from the Allotment</a>' in status.text
    assert "default-src 'none'" in status.headers["content-security-policy"]
    assert missing.status_code == 404


def test_health_reasons_over_time(tmp_path: Path) -> None:
    with site(tmp_path) as found:
        store = Store.open(found.config.settings.state_url)
        try:
            at = datetime.now(UTC)
            reason = "the listing selector 'h2 a' matched nothing on the last 2 runs"
            for n, degraded in enumerate([True, True, False]):
                row = RunHealth(
                    at=at + timedelta(minutes=n),
                    degraded=degraded,
                    reasons=[reason] if degraded else [],
                    error=f"index page: HTTP 503 at {found.server.url('/')}?token={SOURCE_TOKEN}",
                    failed=True,
                )
                store.record_health("garden", row, 50)
        finally:
            store.close()
        page = source_page(found).text
    history = page.split("Over the runs kept", 1)[1].split("</details>", 1)[0]
    # Newest first: the recovery, then the degradation with its reason.
    assert history.index("<strong>ok</strong>") < history.index("<strong>degraded</strong>")
    assert reason.replace("'", "&#x27;") in history
    assert SOURCE_TOKEN not in page and "index page: HTTP 503" in page


def test_the_chart_draws_one_bar_per_run_scaled_to_the_largest() -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    runs = [
        RunHealth(at=at + timedelta(hours=n), items_new=n, duration_ms=1000 * (n + 1))
        for n in range(RUNS_SHOWN)
    ]
    svg = runs_chart(runs)
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert len(heights) == RUNS_SHOWN
    assert heights[-1] == max(heights) and heights[0] == 1.0  # 0 new: a 1-pixel stub
    assert "up to 19)" in svg and "up to 20.0 s)" in svg


# -- the preview ---------------------------------------------------------------------------------


@contextlib.contextmanager
def preview_server(found: Site) -> Iterator[str]:
    store = Store.open(found.config.settings.state_url)
    fetcher = Fetcher(FetchOptions.from_settings(found.config.settings))
    try:
        app = build_app(
            found.config,
            status_reader=store_status_reader(found.config, store),
            store=store,
            preview_fetcher=fetcher,
        )
        with running_server(app) as base:
            yield base
    finally:
        with contextlib.suppress(Exception):  # its loop is gone with the server's thread
            asyncio.run(fetcher.aclose())
        store.close()


def preview(base: str, **params: str) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=60) as client:
        return client.get("/preview", params={"token": TOKEN, **params})


def test_the_preview_needs_a_token(tmp_path: Path) -> None:
    with site(tmp_path) as found, preview_server(found) as base:
        response = httpx.get(f"{base}/preview", params={"url": found.server.url("/")})
    assert response.status_code == 404
    assert "needs a serve_token" in response.text


def test_the_preview_shows_each_link_with_its_reason_and_the_article(tmp_path: Path) -> None:
    worker = f'serve_token = "{TOKEN}"\npreview_allow_private = true\n'
    with site(tmp_path, worker) as found, preview_server(found) as base:
        before = len(found.server.seen("/robots.txt"))
        automatic = preview(base, url=found.server.url("/"))
        selected = preview(
            base, url=found.server.url("/"), links="h2.post-title a", remove="p:nth-of-type(2)"
        )
        robots = len(found.server.seen("/robots.txt"))
    assert automatic.status_code == 200
    assert "default-src 'none'" in automatic.headers["content-security-policy"]
    page = automatic.text
    assert "Links: 4 kept of" in page
    assert "(in main listing)" in page
    assert "sidebar widget &#x27;Popular posts from this blog&#x27;" in page  # dropped, and why
    assert "page title: <strong>Notes from the Allotment</strong>" in page
    frost = found.blog.posts[0]
    assert f"<strong>{frost.title}</strong>" in page  # the extracted title beside the page's
    assert f"{frost.title} | Notes from the Allotment" in page
    assert frost.paragraphs[0][:50] in page and frost.paragraphs[1][:50] in page
    assert "<script" not in page
    selected_page = selected.text
    assert "the selector matched 4 element(s)" in selected_page
    assert "(matched selector)" in selected_page
    article = selected_page.split("<h2>Article</h2>", 1)[1]
    assert frost.paragraphs[0][:50] in article and frost.paragraphs[1][:50] not in article
    assert robots - before == 1  # asked once, then kept: the fetcher's politeness


def test_the_preview_keeps_the_guard_and_robots_txt(tmp_path: Path) -> None:
    with site(tmp_path, f'serve_token = "{TOKEN}"\n') as found, preview_server(found) as base:
        blocked = preview(base, url=found.server.url("/")).text
        found.server.route("/robots.txt", body=b"User-agent: *\nDisallow: /private/\n")
        bad = preview(base, url="example.com/blog", links="h2[").text
    assert "blocked address 127.0.0.1" in blocked
    assert "preview_allow_private = true lets the preview reach private networks" in blocked
    assert not found.server.seen("/") or all(
        r.headers.get("user-agent", "").startswith("feedworker") for r in found.server.seen("/")
    )
    assert "did you mean &quot;https://example.com/blog&quot;?" in bad
    assert "links: invalid CSS selector" in bad


# -- screenshots with headless Chromium ----------------------------------------------------------


def browser() -> str:
    """The headless browser; a loud skip without one (a failure where it must be there)."""
    found = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if found:
        return found
    message = (
        "NO HEADLESS CHROMIUM: the browser screenshots of the status, source and preview pages"
        " were NOT taken (apt-get install chromium-headless-shell; .ci/run installs it)"
    )
    if os.environ.get(BROWSER_ENV):
        pytest.fail(f"{message}, and {BROWSER_ENV} is set")
    pytest.skip(message)


def chromium(binary: str, profile: Path, *args: str) -> str:
    result = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def png_summary(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values of the pixel data) of a PNG; fails on a bad file."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, width, height, idat = 8, 0, 0, b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, chunk = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        at += 12 + length
    pixels = zlib.decompress(idat)
    return width, height, len(set(pixels))


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def test_screenshots_of_the_status_source_and_preview_pages(
    tmp_path: Path, processes: list[Process]
) -> None:
    binary = browser()
    with site(tmp_path, "preview_allow_private = true\n") as found:
        port = free_port()
        env = {"FEEDWORKER_SERVE_TOKEN": TOKEN, "GARDEN_PW": PASSWORD}
        config = str(found.root / "config")
        process = Process.feedworker(
            "serve", "--port", str(port), "--config", config, cwd=tmp_path, env=env
        )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_or_none(f"{base}/healthz"), what="/healthz")
        pages = {
            "status": f"{base}/?token={TOKEN}",
            "source": f"{base}/sources/garden?token={TOKEN}",
            "preview": f"{base}/preview?token={TOKEN}&url={found.server.url('/')}",
        }
        expected = {
            "status": ["Notes from the Allotment", "Failures in a row", 'href="sources/garden"'],
            "source": ["Last runs", "Latest items", "Frost and the late leeks", "Settings"],
            "preview": ["Links: 4 kept of", "extracted title", "Frost and the late leeks"],
        }
        for name, url in pages.items():
            dom = chromium(binary, tmp_path / f"profile-{name}", "--dump-dom", url)
            for text in expected[name]:
                assert text in dom, f"{name}: {text!r} not in the page Chromium rendered"
            assert "<script" not in dom.lower()
            shot = tmp_path / f"{name}.png"
            chromium(
                binary,
                tmp_path / f"profile-{name}-shot",
                f"--screenshot={shot}",
                "--window-size=1200,2000",
                url,
            )
            width, height, distinct = png_summary(shot)
            assert (width, height) == (1200, 2000)
            assert distinct > 20, f"{name}: the screenshot is blank"
        assert process.terminate() == 0, process.log()
