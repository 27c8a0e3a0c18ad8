"""`feedworker add URL`: discovery, the proposal, the file it writes, its errors, hot reload."""

from __future__ import annotations

import asyncio
import io
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.backend import state_env
from tests.blogsite import Blog, Post, sample_posts
from tests.localserver import LocalServer
from tests.test_cli import serve_blog
from tests.test_e2e import write_config
from tests.test_reload import Running, Sites, source, until
from worker.cli import main
from worker.commands.add import AddError, AddOptions, propose_id, propose_source, write_source
from worker.config import load_config
from worker.listing.discover import discover_links
from worker.listing.selector import judge_listing, propose_selector

EXISTING = '[[source]]\nid = "other"\nurl = "https://other.example/"\n'


def config_dir(tmp_path: Path) -> Path:
    return write_config(tmp_path, EXISTING)


def add(tmp_path: Path, *args: str) -> int:
    return main(["add", *args, "--config", str(tmp_path / "config")])


def keys_with_comments(text: str) -> list[str]:
    """The keys of a written file, each checked to have a comment line right above it."""
    lines = text.splitlines()
    keys = []
    for n, line in enumerate(lines):
        if " = " in line and not line.startswith("#"):
            assert lines[n - 1].startswith("# "), f"no comment above {line!r}"
            keys.append(line.split(" = ", 1)[0])
    return keys


def many_posts(n: int) -> list[Post]:
    base = sample_posts()
    return [
        Post(f"/2026/0{1 + i % 9}/post-{i}.html", f"{p.title} ({i})", p.paragraphs)
        for i, p in ((i, base[i % len(base)]) for i in range(n))
    ]


def serve(server: LocalServer, blog: Blog) -> None:
    server.route("/", body=blog.index_html([(p.path, p.title) for p in blog.posts]).encode())
    server.route("/robots.txt", body=b"User-agent: *\n")
    for post in blog.posts:
        server.route(
            post.path,
            headers={"Content-Type": "text/html; charset=utf-8"},
            body=blog.post_html(post).encode(),
        )


# -- the command ---------------------------------------------------------------------------------


def test_add_tries_the_source_then_writes_a_commented_file_check_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_dir(tmp_path)
    with LocalServer() as server:
        blog = serve_blog(server)
        assert add(tmp_path, server.url("/"), "--yes", "--every", "90 minutes") == 0
    out = capsys.readouterr().out
    assert "kind:     index (detected), 3 article link(s)" in out
    for post in blog.posts:  # what the first run would publish: titles and first lines
        assert f"  + {post.title}" in out
        assert post.paragraphs[0][:60] in out
    (written,) = (config / "sources.d").glob("*.toml")
    text = written.read_text()
    assert keys_with_comments(text) == ["id", "url", "title", "kind", "every", "links"]
    comments = " ".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert "automatic detection is unsure: only 3 article link(s) found" in comments
    source = load_config(config, env=state_env()).source(written.stem)
    assert (source.url, source.title, source.kind) == (server.url("/"), blog.name, "index")
    assert source.links == "#main h2 a"
    assert main(["check", "--config", str(config)]) == 0
    assert f"{source.id:<24} every 90 minutes" in capsys.readouterr().out


def test_no_selector_is_written_when_detection_is_sure(tmp_path: Path) -> None:
    config_dir(tmp_path)
    with LocalServer() as server:
        blog = Blog(origin=server.url("").rstrip("/"), posts=many_posts(8))
        serve(server, blog)
        assert add(tmp_path, server.url("/"), "--yes", "--id", "garden") == 0
    text = (tmp_path / "config" / "sources.d" / "garden.toml").read_text()
    assert "links" not in tomllib.loads(text)["source"][0]


def test_dry_run_prints_only_the_toml_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_dir(tmp_path)
    with LocalServer() as server:
        serve_blog(server)
        assert add(tmp_path, server.url("/"), "--dry-run", "--id", "garden") == 0
    captured = capsys.readouterr()
    (table,) = tomllib.loads(captured.out)["source"]
    assert table["id"] == "garden" and table["url"] == server.url("/")
    assert "Frost and the late leeks" in captured.err  # the report goes to stderr
    assert not (config / "sources.d").exists()


@pytest.mark.parametrize(("answer", "written"), [("y\n", True), ("n\n", False), ("", False)])
def test_it_asks_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str, written: bool
) -> None:
    config = config_dir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    with LocalServer() as server:
        serve_blog(server)
        code = add(tmp_path, server.url("/"), "--id", "garden")
    assert code == (0 if written else 1)
    assert (config / "sources.d" / "garden.toml").exists() == written


# With no config yet there is no state database: `add` tries the source on a throwaway SQLite
# state in memory, whatever backend the suite runs on.
@pytest.mark.sqlite_file
def test_a_config_folder_that_does_not_exist_yet_gets_its_first_source(tmp_path: Path) -> None:
    with LocalServer() as server:
        serve_blog(server)
        assert add(tmp_path, server.url("/"), "--yes", "--id", "first") == 0
    config = load_config(tmp_path / "config", env=state_env())
    assert [s.id for s in config.sources] == ["first"]


def test_a_feed_url_proposes_kind_feed_and_the_feed_title(tmp_path: Path) -> None:
    config_dir(tmp_path)
    with LocalServer() as server:
        blog = serve_blog(server)
        items = "".join(
            f"<item><title>{p.title}</title><link>{server.url(p.path)}</link></item>"
            for p in blog.posts
        )
        feed = (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>The Allotment Feed</title>'
            f"<link>{server.url('/')}</link>{items}</channel></rss>"
        )
        server.route(
            "/feed.xml", headers={"Content-Type": "application/rss+xml"}, body=feed.encode()
        )
        assert add(tmp_path, server.url("/feed.xml"), "--yes", "--id", "allotment") == 0
    source = load_config(tmp_path / "config", env=state_env()).source("allotment")
    assert (source.kind, source.title, source.links) == ("feed", "The Allotment Feed", None)


# -- errors: one sentence each, naming what would fix it -----------------------------------------


def add_error(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> str:
    config_dir(tmp_path)
    assert add(tmp_path, url, "--yes") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("feedworker: ")
    assert not (tmp_path / "config" / "sources.d").exists()
    return err


def test_a_url_without_scheme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = add_error(tmp_path, "example.com/blog", capsys)
    assert err.endswith('has no scheme; did you mean "https://example.com/blog"?')


def test_an_unreachable_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with LocalServer() as server:
        url = server.url("/")  # closed once the block ends: the port refuses
    err = add_error(tmp_path, url, capsys)
    assert "cannot be reached" in err and "connect_timeout" in err


def test_not_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with LocalServer() as server:
        server.route("/report.pdf", headers={"Content-Type": "application/pdf"}, body=b"%PDF-1.7")
        err = add_error(tmp_path, server.url("/report.pdf"), capsys)
    assert "is not an HTML page, feed or sitemap" in err and 'kind = "urls"' in err


def test_robots_txt_forbids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with LocalServer() as server:
        server.route("/robots.txt", body=b"User-agent: *\nDisallow: /\n")
        server.route("/", body=b"<html><body>hi</body></html>")
        err = add_error(tmp_path, server.url("/"), capsys)
    assert "robots.txt" in err and "respect_robots = false" in err
    assert not server.seen("/")  # the page itself was never asked for


def test_a_page_that_needs_javascript(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell = (
        b'<!doctype html><html><head><script src="/app.js"></script></head>'
        b'<body><div id="root"></div><noscript>Enable JavaScript</noscript></body></html>'
    )
    with LocalServer() as server:
        server.route("/", headers={"Content-Type": "text/html"}, body=shell)
        err = add_error(tmp_path, server.url("/"), capsys)
    assert "it needs JavaScript" in err
    assert 'render = "browser"' in err or 'kind = "feed"' in err


def test_a_missing_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with LocalServer() as server:
        err = add_error(tmp_path, server.url("/gone"), capsys)
    assert "is not there (HTTP 404); check the URL" in err


def test_a_page_without_article_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with LocalServer() as server:
        server.route(
            "/",
            headers={"Content-Type": "text/html"},
            body=b"<html><body><p>Hello.</p></body></html>",
        )
        err = add_error(tmp_path, server.url("/"), capsys)
    assert "no article links found" in err and '--links "CSS"' in err


def test_an_id_that_is_taken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_dir(tmp_path)
    with LocalServer() as server:
        serve_blog(server)
        assert add(tmp_path, server.url("/"), "--yes", "--id", "other") == 1
    assert "a source with id 'other' exists already" in capsys.readouterr().err


# -- the parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "taken", "expected"),
    [
        ("https://www.example.com/blog/", set(), "example"),
        ("https://example.com/recipes/feed.xml", set(), "example-recipes"),
        ("https://blog.python.org/", set(), "blog-python"),
        ("https://example.com/", {"example", "example-2"}, "example-3"),
        ("http://127.0.0.1:8080/", set(), "notes-from-the-allotment"),
    ],
)
def test_proposed_ids(url: str, taken: set[str], expected: str) -> None:
    assert propose_id(url, taken, "Notes from the Allotment") == expected


def page_with_two_lists(stories: int, reviews: int) -> str:
    a = "".join(
        f'<article class="story"><h2><a href="/2026/05/story-{i}.html">Story number {i} about'
        f" the harbour</a></h2><p>Teaser {i}.</p></article>"
        for i in range(stories)
    )
    b = "".join(f'<li><a href="/reviews/{i}">Review {i}</a></li>' for i in range(reviews))
    return (
        f'<html><body><main><div class="stories">{a}</div><div class="reviews"><ul>{b}</ul>'
        "</div></main></body></html>"
    )


def test_detection_is_unsure_of_a_rival_list_and_the_selector_keeps_the_chosen_one() -> None:
    html = page_with_two_lists(8, 8)
    verdict = judge_listing(discover_links(html, "https://news.example/").decisions)
    assert not verdict.sure
    assert verdict.reasons == (
        "8 other links that look like articles are outside the listing it chose",
    )
    proposal = propose_selector(html, "https://news.example/")
    assert proposal is not None and proposal.selector == ".story a" and proposal.f1 == 1.0
    assert judge_listing(
        discover_links(page_with_two_lists(8, 0), "https://n.example/").decisions
    ).sure


def test_a_source_added_to_a_running_worker_runs_after_hot_reload(tmp_path: Path) -> None:
    sites = Sites()

    async def scenario() -> None:
        async with Running(tmp_path, source("a"), sites) as run:
            await until((run.feeds / "a.rss").exists, "a's first run")
            proposal = await propose_source(
                AddOptions("https://news.example/"),
                run.worker.config,
                transport=httpx.MockTransport(sites),
            )
            assert proposal.source_id == "news" and proposal.kind == "index"  # news.example
            write_source(proposal, run.config.config_dir)
            await until((run.feeds / "news.rss").exists, "the added source's first run")
            assert set(run.jobs()) == {"a", "news"}
            assert "/posts/2.html on news.example" in (run.feeds / "news.rss").read_text()

    asyncio.run(scenario())


def test_a_file_that_would_not_validate_is_never_left_behind(tmp_path: Path) -> None:
    sites = Sites()

    async def scenario() -> None:
        config = load_config(config_dir(tmp_path), env=state_env())
        proposal = await propose_source(
            AddOptions("https://news.example/", source_id="fine"),
            config,
            transport=httpx.MockTransport(sites),
        )
        (tmp_path / "config" / "sources.d").mkdir()
        (tmp_path / "config" / "sources.d" / "clash.toml").write_text(
            '[[source]]\nid = "fine"\nurl = "https://x.example/"\n'
        )
        with pytest.raises(AddError, match="does not validate, not written"):
            write_source(proposal, config.config_dir)
        assert not (tmp_path / "config" / "sources.d" / "fine.toml").exists()

    asyncio.run(scenario())
