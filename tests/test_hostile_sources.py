"""Hostile servers, on real sockets: each case has a defined outcome, and the good source beside
them still publishes in the same run."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import feedparser
import pytest

from tests.blogsite import Blog, sample_posts
from tests.localserver import Exchange, LocalServer
from worker.config import load_config
from worker.models import RunReport
from worker.service.runner import Worker

HTML = {"Content-Type": "text/html; charset=utf-8"}


def drip(ex: Exchange) -> None:
    ex.head(200, {**HTML, "Content-Length": "100000"})
    for _ in range(20):
        ex.write(b"<p>")
        if not ex.sleep(0.3):
            return


def gzip_bomb(ex: Exchange) -> None:
    body = gzip.compress(b"<p>" + b"A" * (64 * 1024 * 1024), compresslevel=9)
    ex.respond(200, {**HTML, "Content-Encoding": "gzip"}, body)


def robots(ex: Exchange) -> None:
    """127.0.0.1 allows everything; the same server named "localhost" forbids /private/."""
    if ex.request.headers.get("host", "").startswith("localhost"):
        ex.respond(200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n")
    else:
        ex.respond(404)


def too_many(ex: Exchange) -> None:
    ex.respond(429, {**HTML, "Retry-After": "1"}, b"slow down")


def listing(*paths: str) -> bytes:
    items = "".join(
        f'<article><h2><a href="{p}">A long enough headline for article {i}</a></h2></article>'
        for i, p in enumerate(paths)
    )
    return f"<html><body><main>{items}</main></body></html>".encode()


def article(title: str, paragraph: str) -> bytes:
    body = "".join(f"<p>{paragraph} Paragraph {i} goes on a little further.</p>" for i in range(4))
    return (
        f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>{body}"
        "</article></body></html>"
    ).encode()


@pytest.fixture
def server() -> LocalServer:
    with LocalServer() as srv:
        blog = Blog(origin=srv.url("").rstrip("/"), posts=sample_posts())
        srv.route("/robots.txt", robots)
        index = blog.index_html([(p.path, p.title) for p in blog.posts]).encode()
        srv.route("/good/", body=index, headers=HTML)
        for post in blog.posts:
            srv.route(post.path, body=blog.post_html(post).encode(), headers=HTML)
        srv.route("/drip/", drip)
        srv.route("/busy/", too_many)
        srv.route("/private/", body=listing("/private/a.html"), headers=HTML)
        srv.route("/bomb/", gzip_bomb)
        srv.route("/loop/", status=302, headers={"Location": "/loop2/"})
        srv.route("/loop2/", status=302, headers={"Location": "/loop/"})
        srv.route(
            "/mixed/",
            body=listing("/mixed/report.pdf.html", "/mixed/away.html", "/mixed/dirty.html"),
            headers=HTML,
        )
        srv.route(
            "/mixed/report.pdf.html",
            body=b"%PDF-1.7 ...",
            headers={"Content-Type": "application/pdf"},
        )
        srv.route(
            "/mixed/away.html",
            status=302,
            headers={"Location": f"http://127.0.0.2:{srv.port}/secret"},
        )
        srv.route("/secret", body=b"<p>internal</p>", headers=HTML)
        dirty = article(
            "Dirty\x0b title\x1b",
            "Text with a control \x0c character.<script>alert(1)</script>"
            '<a href="javascript:alert(2)">x</a>',
        )
        srv.route("/mixed/dirty.html", body=dirty, headers=HTML)
        yield srv


def run(config_dir: Path) -> dict[str, RunReport]:
    async def go() -> list[RunReport]:
        async with Worker(load_config(config_dir)) as worker:
            return await worker.run_once()

    return {r.source_id: r for r in asyncio.run(go())}


def test_hostile_sources_fail_alone(tmp_path: Path, server: LocalServer) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "feedworker.toml").write_text(
        "[worker]\nper_host_delay = 0\nrequest_deadline = 3\nretries = 0\n"
        "max_page_bytes = 1048576\nconcurrency = 4\n"
    )
    sources = {
        "good": "/good/",
        "drip": "/drip/",
        "bomb": "/bomb/",
        "loop": "/loop/",
        "mixed": "/mixed/",
        "busy": "/busy/",
    }
    (config / "sources.toml").write_text(
        "".join(f'[[source]]\nid = "{i}"\nurl = "{server.url(p)}"\n' for i, p in sources.items())
        + f'[[source]]\nid = "private"\nurl = "{server.url("/private/", host="localhost")}"\n'
    )

    reports = run(config)

    assert reports["good"].ok and reports["good"].items_new == 3
    good = feedparser.parse((tmp_path / "feeds" / "good.rss").read_bytes())
    assert not good.bozo and len(good.entries) == 3
    assert "no response within 3 s" in (reports["drip"].error or "")
    assert "larger than 1048576 bytes" in (reports["bomb"].error or "")
    assert "redirect loop" in (reports["loop"].error or "")
    assert "HTTP 429" in (reports["busy"].error or "")
    assert "disallowed by robots.txt" in (reports["private"].error or "")
    assert server.seen("/private/") == [], "a disallowed page must not be requested"
    for failed in ("drip", "bomb", "loop", "busy", "private"):
        assert not (tmp_path / "feeds" / f"{failed}.rss").exists()

    mixed = reports["mixed"]
    assert mixed.ok and mixed.items_new == 1
    reasons = {s.url.rsplit("/", 1)[-1]: s.reason for s in mixed.skipped}
    assert reasons["report.pdf.html"] == "unsupported content type application/pdf"
    assert reasons["away.html"] == "blocked address 127.0.0.2"
    assert server.seen("/secret") == [], "the blocked redirect target must receive nothing"
    raw = (tmp_path / "feeds" / "mixed.rss").read_bytes()
    feed = feedparser.parse(raw)
    assert not feed.bozo
    (entry,) = feed.entries
    assert entry.title == "Dirty title"
    body = entry.content[0].value
    assert "control  character" in body or "control character" in body
    assert "<script" not in body and "javascript:" not in body and "alert(1)" not in body


def test_a_source_trusts_its_own_origin_not_its_host_on_another_port(
    tmp_path: Path, server: LocalServer
) -> None:
    """A feed on 127.0.0.1:A links to 127.0.0.1:B, and an index page redirects there: B is
    another service of the same host (a database's HTTP port, an admin panel) and hears nothing."""
    with LocalServer() as other:
        other.route("/admin", body=article("Admin", "Internal data of another service."))
        story = article("A story", "A story long enough to publish from the feed source.")
        server.route("/feed/story.html", body=story, headers=HTML)
        entries = "".join(
            f"<item><title>{title}</title><link>{url}</link></item>"
            for title, url in (
                ("Story", server.url("/feed/story.html")),
                ("B", other.url("/admin")),
            )
        )
        rss = f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{entries}</channel></rss>'
        server.route(
            "/feed.xml", body=rss.encode(), headers={"Content-Type": "application/rss+xml"}
        )
        server.route("/moved/", status=302, headers={"Location": other.url("/admin")})
        config = tmp_path / "config"
        config.mkdir()
        (config / "feedworker.toml").write_text("[worker]\nper_host_delay = 0\nretries = 0\n")
        (config / "sources.toml").write_text(
            f'[[source]]\nid = "feed"\nurl = "{server.url("/feed.xml")}"\n'
            f'[[source]]\nid = "moved"\nurl = "{server.url("/moved/")}"\n'
        )
        reports = run(config)
        assert other.requests == []  # neither the feed's link nor the redirect reached B

    feed = reports["feed"]
    assert feed.ok and feed.items_new == 1  # the story on the source's own origin
    (skip,) = feed.skipped
    assert skip.url == other.url("/admin") and skip.reason == "blocked address 127.0.0.1"
    assert skip.kind == "blocked"
    assert (
        reports["moved"].error == f"{server.url('/moved/')}: index page: blocked address 127.0.0.1"
    )
