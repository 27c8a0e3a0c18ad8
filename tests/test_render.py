"""Browser rendering (`render = "browser"`, worker.render) against local sites on 127.0.0.1.

These tests need headless Chromium from Debian (`chromium-headless-shell`, or `chromium`).
Without it they are skipped with that reason, loudly, unless FEEDWORKER_REQUIRE_BROWSER is set
(.ci/run sets it after installing the package): then a missing browser fails them.

Few and sturdy: generous timeouts, no assertion on how long anything took.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backend import state_env
from tests.jsblog import COMMENT, POPULAR_HEADING, JsBlog
from tests.localserver import LocalServer
from tests.test_config import make_config
from worker.config import load_config
from worker.errors import RenderError
from worker.fetch.client import Fetcher, FetchOptions
from worker.models import Page, RunReport
from worker.render import Renderer, RendererOptions, RenderPolicy, find_browser
from worker.render.browser import INSTALL_HINT, BrowserOptions
from worker.service.runner import Worker
from worker.store.state import Store

REQUIRE_ENV = "FEEDWORKER_REQUIRE_BROWSER"
MIB = 1024 * 1024
SLOW = 30.0  # seconds a page may take on a busy machine: generous on purpose


@pytest.fixture(autouse=True)
def chromium() -> str:
    found = find_browser()
    if found is None:
        message = f"no headless Chromium here ({INSTALL_HINT}): browser tests SKIPPED"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{message}, but {REQUIRE_ENV} is set")
        pytest.skip(message)
    return found


@pytest.fixture
def site() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def run_config(tmp_path: Path, source: str, worker: str = "") -> Path:
    return make_config(
        tmp_path,
        source,
        worker=f'[worker]\nper_host_delay = 0\nstate_url = "sqlite:///{tmp_path}/state.db"\n'
        f'feeds_dir = "{tmp_path}/feeds"\n{worker}',
    )


def run_once(config_dir: Path) -> RunReport:
    async def go() -> RunReport:
        async with Worker(load_config(config_dir, env=state_env())) as worker:
            (report,) = await worker.run_once()
            return report

    return asyncio.run(go())


def render_one(page_url: str, policy: RenderPolicy, **options: Any) -> Any:
    """Fetch `page_url` and render it; the `Rendered`, or the `RenderError`."""

    async def go() -> Any:
        renderer = Renderer(RendererOptions(**options))
        fetch = FetchOptions(user_agent="feedworker-test/1", per_host_delay=0, retries=0)
        try:
            async with Fetcher(fetch) as fetcher:
                page = await fetcher.fetch_page(page_url, decode=False, respect_robots=False)
                assert isinstance(page, Page)
                try:
                    return await renderer.render(page, fetcher.session(), policy)
                except RenderError as exc:
                    return exc
        finally:
            await renderer.aclose()

    return asyncio.run(go())


# -- a blog rendered by a script from JSON -----------------------------------------------------


def test_a_script_rendered_blog_is_published_in_full_only_when_rendered(
    tmp_path: Path, site: LocalServer
) -> None:
    blog = JsBlog()
    blog.serve(site)
    plain = f'[[source]]\nid = "garden"\nurl = "{site.url("/")}"\n'
    report = run_once(run_config(tmp_path / "plain", plain))
    assert report.links_found == 0 and report.needs_javascript  # plain fetching finds nothing
    assert any('render = "browser"' in reason for reason in report.health_reasons)

    config_dir = run_config(
        tmp_path / "rendered", plain + f'render = "browser"\nrender_timeout = {SLOW}\n'
    )
    report = run_once(config_dir)
    assert report.ok and report.items_new == len(blog.posts), report
    assert report.pages_rendered == 1 + len(blog.posts) and not report.needs_javascript
    store = Store.open(load_config(config_dir, env=state_env()).settings.state_url)
    try:
        items = {item.title: item for item in store.feed_items("garden", 50)}
    finally:
        store.close()
    for post in blog.posts:
        item = items[post["title"]]
        for paragraph in post["paragraphs"]:
            assert paragraph in item.content_html  # the full text
        for noise in (POPULAR_HEADING, COMMENT, "Share on Facebook"):
            assert noise not in item.content_html
    feed = (tmp_path / "rendered" / "feeds" / "garden.rss").read_text()
    assert all(post["title"] in feed for post in blog.posts)


# -- every request the page makes is judged ----------------------------------------------------

PROBE = """<!doctype html><html><head><title>probe</title>
<link rel="preconnect" href="{other}"><link rel="dns-prefetch" href="{other}">
<script src="{other}/evil.js"></script>
</head><body><main><p id="mark">own script has not run</p>
<img src="{other}/pixel.gif"><iframe src="{other}/frame.html"></iframe>
<script src="/own.js"></script>
<script>
  fetch("{second}/x").catch(() => {{}});
  fetch("http://169.254.169.254/latest/meta-data/").catch(() => {{}});
  try {{ new WebSocket("{ws}/socket"); }} catch (e) {{}}
  try {{ navigator.sendBeacon("{other}/beacon", "x"); }} catch (e) {{}}
  const s = document.createElement("script"); s.src = "{other}/late.js"; document.head.appendChild(s);
</script></main></body></html>"""


@pytest.mark.parametrize(
    ("allow_hosts", "allow_private", "refused_by"),
    [
        ((), False, "third-party host"),  # the default: other hosts are third parties
        (("127.0.0.1", "127.0.0.2", "169.254.169.254"), False, "blocked address"),  # the guard
    ],
)
def test_requests_to_other_local_hosts_ports_and_metadata_reach_nothing(
    site: LocalServer, allow_hosts: tuple[str, ...], allow_private: bool, refused_by: str
) -> None:
    with LocalServer() as other, LocalServer("127.0.0.2") as second:
        for server in (other, second):
            server.route("/evil.js", headers={"Content-Type": "text/javascript"}, body=b"1")
        site.route(
            "/own.js",
            headers={"Content-Type": "text/javascript"},
            body=b'document.getElementById("mark").textContent = "own script ran";',
        )
        ws = other.url("").replace("http://", "ws://")
        page = PROBE.format(
            other=other.url("").rstrip("/"), second=second.url("").rstrip("/"), ws=ws
        )
        site.route("/probe.html", body=page.encode())
        policy = RenderPolicy(
            timeout=SLOW,
            allow_hosts=allow_hosts,
            allow_private=allow_private,
            trusted_origin=site.url("/"),
        )
        rendered = render_one(site.url("/probe.html"), policy)
        assert not isinstance(rendered, RenderError), rendered
        assert other.requests == [] and second.requests == []  # the targets received nothing
    assert "own script ran" in rendered.page.text
    reasons = {blocked.url: blocked.reason for blocked in rendered.blocked}
    assert refused_by in reasons[other.url("/evil.js")]
    assert refused_by in reasons[second.url("/x")] or "third-party" in reasons[second.url("/x")]
    metadata = reasons["http://169.254.169.254/latest/meta-data/"]
    assert "third-party" in metadata or "blocked address 169.254.169.254" in metadata


def test_an_allowed_host_is_loaded_and_metadata_never_is(site: LocalServer) -> None:
    """render_allow_hosts with allow_private_networks: the other port serves its script; the
    metadata address stays refused (never fetched, whatever is allowed)."""
    with LocalServer() as other:
        other.route(
            "/cdn.js",
            headers={"Content-Type": "text/javascript"},
            body=b'document.getElementById("mark").textContent = "cdn script ran";',
        )
        site.route(
            "/page.html",
            body=(
                f'<html><body><p id="mark">no</p><script src="{other.url("/cdn.js")}"></script>'
                '<script>fetch("http://169.254.169.254/latest/").catch(() => {});</script>'
                "</body></html>"
            ).encode(),
        )
        policy = RenderPolicy(
            timeout=SLOW,
            allow_hosts=("127.0.0.1", "169.254.169.254"),
            allow_private=True,
            trusted_origin=site.url("/"),
        )
        rendered = render_one(site.url("/page.html"), policy)
        assert [r.path for r in other.requests] == ["/cdn.js"]
    assert "cdn script ran" in rendered.page.text
    (blocked,) = rendered.blocked
    assert "cloud metadata" in blocked.reason


# -- pages that misbehave ----------------------------------------------------------------------


def test_pages_that_never_settle_time_out_and_the_run_goes_on(
    tmp_path: Path, site: LocalServer
) -> None:
    site.route(
        "/",
        body=b"""<html><body><main><h1>Posts</h1>
      <article><h2><a href="/busy.html">Busy</a></h2></article>
      <article><h2><a href="/spin.html">Spin</a></h2></article>
      <article><h2><a href="/calm.html">Calm</a></h2></article></main></body></html>""",
    )
    site.route("/tick", body=b"tick")
    site.route(
        "/busy.html",
        body=b"<html><body><p>busy</p><script>"
        b"setInterval(() => fetch('/tick'), 50);</script></body></html>",
    )
    site.route(
        "/spin.html",
        body=b"<html><body><p>spin</p><script>"
        b"setTimeout(() => { while (true) {} }, 0);</script></body></html>",
    )
    calm = " ".join(f"Calm sentence number {n} about the quiet garden." for n in range(40))
    site.route(
        "/calm.html",
        body=f"<html><head><title>Calm</title></head><body><article>"
        f"<h1>Calm</h1><p>{calm}</p></article></body></html>".encode(),
    )
    source = (
        f'[[source]]\nid = "misc"\nurl = "{site.url("/")}"\nrespect_robots = false\n'
        'links = "article h2 a"\nrender = "browser"\nrender_timeout = 12\n'
    )
    report = run_once(run_config(tmp_path, source))
    assert report.ok and report.items_new == 1  # the calm page; the run went on
    skipped = {skip.url.rsplit("/", 1)[1]: skip for skip in report.skipped}
    assert set(skipped) == {"busy.html", "spin.html"}
    assert "not rendered within 12 s" in skipped["busy.html"].reason
    assert "render_wait" in skipped["busy.html"].reason  # says what would fix it
    assert skipped["spin.html"].kind == "render"


def test_a_page_that_eats_memory_gets_the_browser_killed_and_restarted(site: LocalServer) -> None:
    """16 MiB every 50 ms: past the 400 MiB cap within seconds, and far from the renderer's own
    limits, so it is the watch (once a second) that stops it, at well under a GiB."""
    site.route(
        "/hog.html",
        body=b"""<html><body><p>hog</p><script>
      const keep = [];
      (function grow() { const a = new Uint8Array(16 << 20); a.fill(7); keep.push(a);
        setTimeout(grow, 50); })();</script></body></html>""",
    )
    site.route("/fine.html", body=b"<html><body><p id=x>fine</p></body></html>")
    # The hog would settle at once: waiting for an element it never shows keeps it rendering.
    hog_policy = RenderPolicy(timeout=SLOW * 2, wait="#never", trusted_origin=site.url("/"))
    fine_policy = RenderPolicy(timeout=SLOW, trusted_origin=site.url("/"))

    async def go() -> tuple[Any, Any, Renderer]:
        renderer = Renderer(RendererOptions(browser=BrowserOptions(memory_limit=400 * MIB)))
        fetch = FetchOptions(user_agent="feedworker-test/1", per_host_delay=0, retries=0)
        try:
            async with Fetcher(fetch) as fetcher:
                results = []
                for path, policy in (("/hog.html", hog_policy), ("/fine.html", fine_policy)):
                    page = await fetcher.fetch_page(
                        site.url(path), decode=False, respect_robots=False
                    )
                    assert isinstance(page, Page)
                    try:
                        results.append(await renderer.render(page, fetcher, policy))
                    except RenderError as exc:
                        results.append(exc)
                return results[0], results[1], renderer
        finally:
            await renderer.aclose()

    hog, fine, renderer = asyncio.run(go())
    assert isinstance(hog, RenderError) and "memory over 400 MiB" in hog.reason
    assert renderer.browser.kills == ["memory over 400 MiB"] and renderer.browser.starts == 2
    assert not isinstance(fine, RenderError) and "fine" in fine.page.text


def test_dialogs_popups_downloads_and_service_workers_come_to_nothing(site: LocalServer) -> None:
    with LocalServer() as other:
        site.route(
            "/report.bin",
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": "attachment; filename=report.bin",
            },
            body=b"\0" * 64,
        )
        site.route(
            "/nasty.html",
            body=f"""<html><body><main><p id="out">before</p>
          <a id="dl" href="/report.bin" download>report</a><script>
          alert("one"); confirm("two?"); prompt("three?"); print();
          const w = window.open("{other.url("/popup")}");
          document.getElementById("dl").click();
          const sw = navigator.serviceWorker ? "sw available" : "sw none";
          navigator.geolocation.getCurrentPosition(
            () => {{}}, (e) => {{ document.body.dataset.geo = "denied " + e.code; }});
          document.getElementById("out").textContent = "after dialogs, popup " + w + ", " + sw;
          setTimeout(() => {{ location.href = "/report.bin"; }}, 10);
        </script></main></body></html>""".encode(),
        )
        policy = RenderPolicy(timeout=SLOW, trusted_origin=site.url("/"))
        rendered = render_one(site.url("/nasty.html"), policy)
        assert other.requests == []  # the pop-up opened nothing
    assert not isinstance(rendered, RenderError), rendered
    text = rendered.page.text
    assert "after dialogs, popup null, sw none" in text  # dialogs did not block the script
    assert 'data-geo="denied 1"' in text  # permissions denied
    assert rendered.page.final_url == site.url("/nasty.html")  # the download was no navigation
    refused = {blocked.url: blocked.reason for blocked in rendered.blocked}
    assert "unsupported content type" in refused[site.url("/report.bin")]
    downloads = Path.home() / "Downloads"
    assert not (downloads / "report.bin").exists()


# -- the commands ------------------------------------------------------------------------------


def test_extract_discover_and_try_render_when_asked(
    tmp_path: Path, site: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli import main

    blog = JsBlog(2)
    blog.serve(site)
    post = blog.posts[0]
    assert (
        main(
            [
                "extract",
                site.url(f"/posts/{post['slug']}.html"),
                "--config",
                str(tmp_path / "none"),
                "--render",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert post["paragraphs"][-1] in out and POPULAR_HEADING not in out
    assert main(["discover", site.url("/"), "--config", str(tmp_path / "none"), "--render"]) == 0
    out = capsys.readouterr().out
    assert "2 article link(s)" in out and all(p["slug"] in out for p in blog.posts)
    source = f'[[source]]\nid = "garden"\nurl = "{site.url("/")}"\nrender = "browser"\nrender_timeout = {SLOW}\n'
    config_dir = run_config(tmp_path, source)
    assert main(["try", "garden", "--config", str(config_dir)]) == 0
    out = capsys.readouterr().out
    assert "render:   browser: 3 page(s) rendered" in out and "would publish: 2 new item(s)" in out


def test_a_rendered_dom_over_max_page_bytes_is_refused(site: LocalServer) -> None:
    """A small page whose script builds a DOM far over the limit: refused, not read."""
    site.route(
        "/big.html",
        body=b"""<html><body><div id=x></div><script>
      document.getElementById("x").textContent = "word ".repeat(400000);</script></body></html>""",
    )
    rendered = render_one(
        site.url("/big.html"),
        RenderPolicy(timeout=SLOW, trusted_origin=site.url("/")),
        max_page_bytes=1024 * 1024,
    )
    assert isinstance(rendered, RenderError)
    assert rendered.reason == f"rendered page larger than {1024 * 1024} bytes"
