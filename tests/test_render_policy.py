"""worker.render.policy: which requests a rendered page may make (pure; no browser needed)."""

from __future__ import annotations

import pytest

from worker.render.policy import MAX_REQUESTS, RenderPolicy, host_allowed, request_refusal

PAGE = "https://news.example/2026/story.html"
POLICY = RenderPolicy(
    trusted_origin="https://news.example/", allow_hosts=("cdn.jsdelivr.net", "*.cloudfront.net")
)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://news.example/static/app.js", True),  # the page's own site
        ("https://www.news.example/api/posts", True),  # its www twin
        ("https://cdn.jsdelivr.net/npm/x.js", True),  # allowed by name
        ("https://d111.cloudfront.net/app.js", True),  # allowed with its subdomains
        ("https://cloudfront.net/app.js", True),
        ("https://www.google-analytics.com/analytics.js", False),  # a third party
        ("https://evilcloudfront.net/x.js", False),  # not a subdomain
        ("https://news.example:8443/x.js", False),  # another port is another site
        ("https://cdn.jsdelivr.net.evil.example/x.js", False),
    ],
)
def test_third_party_hosts_are_refused_unless_allowed(url: str, allowed: bool) -> None:
    assert host_allowed(url, PAGE, POLICY) is allowed


@pytest.mark.parametrize(
    ("url", "method", "kind", "reason"),
    [
        ("https://news.example/a.png", "GET", "Image", "image not loaded"),
        ("https://news.example/f.woff2", "GET", "Font", "font not loaded"),
        ("https://news.example/beacon", "POST", "Ping", "ping not loaded"),
        ("https://news.example/stream", "GET", "EventSource", "eventsource not loaded"),
        ("https://news.example/api", "DELETE", "Fetch", "method DELETE"),
        ("ftp://news.example/x", "GET", "Other", "scheme ftp"),
        ("https://tracker.example/t.js", "GET", "Script", "third-party host"),
    ],
)
def test_requests_refused_and_why(url: str, method: str, kind: str, reason: str) -> None:
    assert reason in (request_refusal(url, method, kind, PAGE, POLICY, 0) or "")


def test_the_pages_own_scripts_and_data_are_made_up_to_the_cap() -> None:
    for kind, method in (
        ("Script", "GET"),
        ("XHR", "GET"),
        ("Fetch", "POST"),
        ("Stylesheet", "GET"),
    ):
        assert request_refusal("https://news.example/x", method, kind, PAGE, POLICY, 0) is None
    capped = request_refusal("https://news.example/x", "GET", "XHR", PAGE, POLICY, MAX_REQUESTS)
    assert capped is not None and str(MAX_REQUESTS) in capped


def test_without_a_browser_a_rendered_page_fails_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    import worker.render.browser
    from worker.errors import RenderError
    from worker.fetch.client import Fetcher, FetchOptions
    from worker.models import Page
    from worker.render import BrowserMissing, Renderer, RendererOptions

    monkeypatch.setattr(worker.render.browser.shutil, "which", lambda name: None)
    page = Page(
        url=PAGE,
        final_url=PAGE,
        status=200,
        content_type="text/html",
        text="<p>x</p>",
        encoding="utf-8",
    )

    async def go() -> RenderError:
        renderer = Renderer(RendererOptions())
        async with Fetcher(FetchOptions(user_agent="t")) as fetcher:
            with pytest.raises(RenderError) as caught:
                await renderer.render(page, fetcher, POLICY)
        await renderer.aclose()
        return caught.value

    error = asyncio.run(go())
    assert isinstance(error, BrowserMissing)
    assert "apt-get install chromium-headless-shell" in str(error)
