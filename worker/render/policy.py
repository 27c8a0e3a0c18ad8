"""Which requests a rendered page may make: pure decisions, as data.

Every request the browser would send is paused and judged here first (`request_refusal`), then,
when allowed, made by feedworker's fetcher under the SSRF guard (`worker.render.page`):

- only http(s), and only the methods a page uses to read (`METHODS`);
- never the kinds of resource that change nothing in the text (`BLOCKED_TYPES`: images, media,
  fonts, beacons...), which also makes rendering much cheaper;
- only the page's own site, the source's, and the hosts the operator allows
  (`render_allow_hosts`: "cdn.example.net", or "*.example.net" for it and its subdomains):
  third-party hosts (analytics, ads, trackers, embeds) are refused by default;
- at most `MAX_REQUESTS` per page.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from worker.urls import host_key, same_site

__all__ = [
    "BLOCKED_TYPES",
    "MAX_REQUESTS",
    "METHODS",
    "RenderPolicy",
    "host_allowed",
    "request_refusal",
]

# Resource types (CDP's `Network.ResourceType`) never loaded: none adds text to the page.
# EventSource streams and WebSockets never end, so a page using them would never settle.
BLOCKED_TYPES = frozenset(
    {
        "Image", "Media", "Font", "Ping", "CSPViolationReport", "Manifest", "Prefetch",
        "SignedExchange", "TextTrack", "EventSource", "WebSocket",
    }
)  # fmt: skip
METHODS = frozenset({"GET", "HEAD", "POST"})  # reading; POST for GraphQL and search APIs
# Requests answered for one page, over all its frames: a heavy news page makes about 100 to
# its own hosts; 300 stops a script that loops on requests.
MAX_REQUESTS = 300


@dataclass(frozen=True, slots=True)
class RenderPolicy:
    """How one source's pages are rendered (`Source.render_*`) and what they may load."""

    wait: str | None = None  # CSS selector to wait for; None: the network to go quiet
    timeout: float = 20.0  # seconds for the whole page: loading, scripts, waiting
    allow_hosts: tuple[str, ...] = ()  # third-party hosts allowed ("cdn.x.net", "*.x.net")
    allow_private: bool = False  # as the source's `allow_private_networks`
    trusted_origin: str | None = None  # the source's URL: its origin passes the SSRF guard
    respect_robots: bool = True  # for the page's own requests (navigations)


def host_allowed(url: str, page_url: str, policy: RenderPolicy) -> bool:
    """Whether `url` is on the page's site, the source's, or a host the operator allows."""
    if same_site(url, page_url) or (
        policy.trusted_origin and same_site(url, policy.trusted_origin)
    ):
        return True
    host = host_key(url, port=False)
    for allowed in policy.allow_hosts:
        if allowed.startswith("*."):
            domain = allowed[2:]
            if host == domain or host.endswith("." + domain):
                return True
        elif host == allowed:
            return True
    return False


def request_refusal(
    url: str, method: str, resource_type: str, page_url: str, policy: RenderPolicy, count: int
) -> str | None:
    """Why a request the page makes is refused, or None to make it (judged again by the SSRF
    guard when it is made). `count`: requests already made for the page."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        return f"scheme {scheme or '(none)'}"
    if resource_type in BLOCKED_TYPES:
        return f"{resource_type.lower()} not loaded"
    if method.upper() not in METHODS:
        return f"method {method.upper()}"
    if not host_allowed(url, page_url, policy):
        return "third-party host (render_allow_hosts)"
    if count >= MAX_REQUESTS:
        return f"over {MAX_REQUESTS} requests for one page"
    return None
