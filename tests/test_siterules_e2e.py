"""Site rules through the whole worker, on a real site served on 127.0.0.1: multi-page
articles merged into one item (a 3-page article, a loop, the page limit, a single-page
version, pagination without rules), the rules' headers only when allowed, sponsored and
unmatched pages skipped with their reasons, and a rule that stops matching as drift."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.backend import own_state, state_env
from tests.localserver import Exchange, LocalServer
from tests.sitekit import prose
from worker.config import Config, load_config
from worker.models import Item, RunReport
from worker.service.runner import Worker
from worker.store.state import Store

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
HTML = {"Content-Type": "text/html; charset=utf-8"}


def text_of(seed: int) -> list[str]:
    lines = prose(seed, sentences=12)
    return [" ".join(lines[i : i + 3]) for i in range(0, len(lines), 3)]


def article_html(title: str, paragraphs: list[str], extra: str = "", head: str = "") -> bytes:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><title>{html.escape(title)}</title>{head}</head><body>"
        '<nav><a href="/">Home</a> <a href="/about">About</a></nav>'
        f'<main><article><h1>{html.escape(title)}</h1><div class="story-body">{body}</div>{extra}'
        "</article></main><footer>Copyright</footer></body></html>"
    ).encode()


class Site:
    """A local news site: an index listing `listed`, pages by path, every request logged."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.listed: list[str] = []
        server.route("/", self._index)
        server.route("/robots.txt", headers={"Content-Type": "text/plain"}, body=b"User-agent: *\n")

    def _index(self, ex: Exchange) -> None:
        links = "".join(
            f'<li><a class="story" href="{p}">Story at {p}</a></li>' for p in self.listed
        )
        ex.respond(200, HTML, f"<html><body><main><ul>{links}</ul></main></body></html>".encode())

    def page(self, path: str, body: bytes, *, listed: bool = False) -> None:
        self.server.route(path, body=body)
        if listed:
            self.listed.append(path)

    def hits(self, path: str) -> int:
        return len(self.server.seen(path))


@pytest.fixture
def site() -> Iterator[Site]:
    with LocalServer() as server:
        yield Site(server)


def setup(
    root: Path,
    site: Site,
    rules: str | None,
    *,
    source: str = "",
    worker: str = "",
    processes: int = 0,
) -> Config:
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    folder = root / "rules"
    folder.mkdir(exist_ok=True)
    if rules is not None:
        (folder / "127.0.0.1.txt").write_text(rules)
    (config / "feedworker.toml").write_text(
        f"[worker]\nper_host_delay = 0\nrequest_deadline = 5\nextract_processes = {processes}\n"
        f'site_rules = ["rules"]\n{worker}'
    )
    (config / "sources.toml").write_text(
        f'[[source]]\nid = "news"\nurl = "{site.server.url("/")}"\nlinks = "a.story"\n'
        f"max_items = 20\n{source}"
    )
    return load_config(config, env=state_env())


def run(config: Config, at: datetime = T0) -> RunReport:
    async def go() -> list[RunReport]:
        async with Worker(config, clock=lambda: at) as worker:
            return await worker.run_once()

    (report,) = asyncio.run(go())
    assert report.ok, report.error
    return report


def items(config: Config) -> dict[str, Item]:
    store = Store.open(config.settings.state_url)
    try:
        return {
            item.url.split(":", 2)[-1].split("/", 1)[-1]: item
            for item in store.feed_items("news", 50)
        }
    finally:
        store.close()


def paged(
    site: Site, stem: str, pages: int, *, seed: int, last_links_to: str | None = None
) -> list[list[str]]:
    """A `pages`-page article at /stem/, /stem/2/ ...; each page links to the next."""
    texts = [text_of(seed + n) for n in range(pages)]
    for n in range(1, pages + 1):
        path = f"/{stem}/" if n == 1 else f"/{stem}/{n}/"
        target = f"/{stem}/{n + 1}/" if n < pages else last_links_to
        link = (
            f'<div class="pager"><a class="next-page" href="{target}">Next page</a></div>'
            if target
            else ""
        )
        site.page(path, article_html(f"{stem} title", texts[n - 1], link), listed=n == 1)
    return texts


NEXT_RULE = "body: //div[@class='story-body']\nnext_page_link: //a[@class='next-page']\n"


def test_three_page_article_is_one_item_with_every_page(tmp_path: Path, site: Site) -> None:
    texts = paged(site, "long-read", 3, seed=10)
    config = setup(tmp_path, site, NEXT_RULE, processes=1)  # the rules travel to a child
    report = run(config)
    assert report.items_new == 1 and report.pages_fetched == 1 + 3  # index + three pages
    item = items(config)["long-read/"]
    for page_text in texts:
        for paragraph in page_text:
            assert html.escape(paragraph, quote=False) in item.content_html
    positions = [item.content_html.index(html.escape(t[0], quote=False)) for t in texts]
    assert positions == sorted(positions)
    assert "Next page" not in item.content_html
    assert [site.hits(p) for p in ("/long-read/", "/long-read/2/", "/long-read/3/")] == [1, 1, 1]
    assert report.rule_pages == {"127.0.0.1": 1} and report.rule_missed == {}


def test_a_loop_of_pages_is_read_once(tmp_path: Path, site: Site) -> None:
    texts = paged(site, "loop", 2, seed=20, last_links_to="/loop/")
    config = setup(tmp_path, site, NEXT_RULE)
    run(config)
    item = items(config)["loop/"]
    assert html.escape(texts[1][0], quote=False) in item.content_html
    assert item.content_html.count(html.escape(texts[0][0], quote=False)) == 1
    assert site.hits("/loop/") == 1 and site.hits("/loop/2/") == 1


def test_the_page_limit_stops_an_endless_article(tmp_path: Path, site: Site) -> None:
    def endless(ex: Exchange) -> None:
        n = int(re.search(r"/endless/(\d+)/", ex.request.path).group(1))  # type: ignore[union-attr]
        link = f'<a class="next-page" href="/endless/{n + 1}/">Next page</a>'
        ex.respond(200, HTML, article_html("Endless", text_of(100 + n), link))

    for n in range(1, 40):
        site.server.route(f"/endless/{n}/", endless)
    site.listed.append("/endless/1/")
    config = setup(tmp_path, site, NEXT_RULE, worker="max_article_pages = 4\n")
    run(config)
    assert [site.hits(f"/endless/{n}/") for n in range(1, 7)] == [1, 1, 1, 1, 0, 0]
    content = items(config)["endless/1/"].content_html
    assert html.escape(text_of(104)[0], quote=False) in content
    assert html.escape(text_of(105)[0], quote=False) not in content


def test_single_page_version_is_fetched_instead(tmp_path: Path, site: Site) -> None:
    teaser = text_of(30)[:1]
    whole = text_of(31)
    link = '<a class="print" href="/print/story-one">Read it on one page</a>'
    site.page("/story-one/", article_html("Story one", teaser, link), listed=True)
    site.page("/print/story-one", article_html("Story one (print)", whole))
    rules = "body: //div[@class='story-body']\nsingle_page_link: //a[@class='print']\n"
    config = setup(tmp_path, site, rules)
    run(config)
    item = items(config)["story-one/"]
    assert item.guid.endswith("/story-one/") and item.title == "Story one"
    assert all(html.escape(p, quote=False) in item.content_html for p in whole)
    assert html.escape(teaser[0], quote=False) not in item.content_html
    assert site.hits("/print/story-one") == 1


def test_pagination_without_rules_when_the_source_asks(tmp_path: Path, site: Site) -> None:
    texts = paged(site, "series", 3, seed=40)
    other = text_of(49)
    site.page("/unrelated/", article_html("Unrelated", other))
    config = setup(tmp_path, site, None, source="paginated_articles = true\n")
    run(config)
    content = items(config)["series/"].content_html
    assert all(html.escape(t[0], quote=False) in content for t in texts)
    with own_state():
        plain = setup(tmp_path / "plain", site, None)
    run(plain)
    assert html.escape(texts[1][0], quote=False) not in items(plain)["series/"].content_html


def test_rule_headers_are_sent_only_when_allowed_and_only_to_their_origin(
    tmp_path: Path, site: Site
) -> None:
    site.page("/story-h/", article_html("Headers", text_of(50)), listed=True)
    site.server.route(
        "/hop/",
        lambda ex: ex.respond(302, {"Location": site.server.url("/landed/", host="localhost")}),
    )
    site.page("/landed/", article_html("Landed", text_of(51)))
    site.listed.append("/hop/")
    rules = (
        "body: //div[@class='story-body']\nhttp_header(referer): https://ref.example/\n"
        "http_header(user-agent): Mozilla/5.0 (rule)\nhttp_header(accept-encoding): zstd\n"
    )
    source = "allow_private_networks = true\n"
    run(setup(tmp_path / "off", site, rules, source=source))
    (plain,) = site.server.seen("/story-h/")
    assert "referer" not in plain.headers and "(rule)" not in plain.headers["user-agent"]
    with own_state():
        on = setup(
            tmp_path / "on", site, rules, source=source, worker="site_rules_headers = true\n"
        )
    run(on)
    sent = site.server.seen("/story-h/")[-1]
    assert sent.headers["referer"] == "https://ref.example/"
    assert sent.headers["user-agent"] == "Mozilla/5.0 (rule)"
    assert "zstd" not in sent.headers.get("accept-encoding", "")
    landed = site.server.seen("/landed/")[-1]  # another origin after the redirect
    assert "referer" not in landed.headers and "(rule)" not in landed.headers["user-agent"]


def test_sponsored_and_unmatched_pages_are_skipped_with_reasons(tmp_path: Path, site: Site) -> None:
    site.page("/good/", article_html("Good", text_of(60)), listed=True)
    site.page(
        "/advert/",
        article_html("Advert", text_of(61), head='<meta name="sponsored" content="1">'),
        listed=True,
    )
    odd = article_html("Odd", text_of(62)).replace(b"story-body", b"other-body")
    site.page("/odd/", odd, listed=True)
    rules = (
        "body: //div[@class='story-body']\nnative_ad_clue: //meta[@name='sponsored']\n"
        "autodetect_on_failure: no\n"
    )
    config = setup(tmp_path, site, rules)
    report = run(config)
    assert report.items_new == 1 and list(items(config)) == ["good/"]
    reasons = {skip.url.rsplit("/", 2)[-2]: (skip.kind, skip.reason) for skip in report.skipped}
    assert reasons["advert"][0] == "native_ad" and "native_ad_clue" in reasons["advert"][1]
    assert reasons["odd"][0] == "no_text" and "body matched nothing" in reasons["odd"][1]
    assert report.rule_missed == {"127.0.0.1: body": 1}


def test_a_rule_that_stops_matching_degrades_the_source(tmp_path: Path, site: Site) -> None:
    rules = "body: //div[@class='story-body']\n"
    config = setup(tmp_path, site, rules, source="health = { bad_runs = 2 }\n")
    for n in range(4):  # two healthy runs, then the site renames its container
        for k in range(2):
            body = article_html(f"Run {n} story {k}", text_of(70 + 2 * n + k))
            if n >= 2:
                body = body.replace(b"story-body", b"article-content")
            site.page(f"/r{n}-{k}/", body, listed=True)
        report = run(config, T0 + timedelta(hours=n))
        assert report.items_new == 2  # automatic extraction still reads them
    assert report.health_state == "degraded"
    (reason,) = [r for r in report.health_reasons if "site rule" in r]
    assert reason.startswith("site rule for 127.0.0.1 no longer matches: body")
    assert "4 of 4 pages" in reason
