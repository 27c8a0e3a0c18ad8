"""The network edge: URL -> `Page` or `NotModified`, politely and within hard limits.

One fetch, step by step:
1. the URL is checked (scheme; with `allow_private=False`, the SSRF rules of `worker.fetch.guard`);
2. robots.txt is consulted for that host (`worker.fetch.robots`, cached), unless told not to;
3. a turn is taken: a per-host slot, the per-host spacing between request starts, a global slot;
4. one GET is sent under an overall deadline (`asyncio.timeout`), with conditional headers;
5. 408/429/5xx, connection errors and silent reads are retried (`retries` times, backoff + jitter,
   Retry-After); a response still unfinished at the deadline (a drip) is not;
6. a redirect is followed by hand, back to step 1, at most `max_redirects` times, loops refused;
7. the body of a 2xx HTML response is read raw and decoded by bounded decoders (never more than
   `max_page_bytes` on the wire or in memory), then decoded to text by `worker.fetch.decode`.

All of it, every hop, retry and robots.txt request, shares one budget per `fetch_page` call
(`FetchOptions.fetch_budget`, see `_Budget`); past it the fetch stops with `Timeout`.

Cookies a site sets are kept in a small capped jar (`CappedCookieJar`) and sent back as a browser
would; each source's run has a jar of its own (`Fetcher.session`), so one site's cookies never
reach another source's requests, and a run's cookies end with it.

A source's own request settings (`RequestProfile`: extra headers, its User-Agent, the cookies of
its `cookies_file` or `cookie_env`, its proxy) come with its session. Its headers go to its own
site only (`worker.urls.same_site` of its URL); its cookies where their domains say. Through a
proxy (http, https or socks5), the SSRF guard still judges the destination: its name is resolved
here and every address judged before the request goes to the proxy (`guard.judge_destination`).

`fetch_resource` is one exchange for the browser (`worker.render`): any method a page's script
uses, no redirect followed (the browser asks again for the target, judged again), within the
same guard, size limit and deadline, taking a host slot and a global slot but not the per-host
gap (a page's scripts and data load together, as in a browser).

HTTP Basic credentials (`Fetcher.use_credentials`, from the sources' `auth`) are sent to their own
origin only (scheme, host and port): every hop is judged by its own URL, so a redirect or link to
another origin never carries them. URLs in messages and logs pass `worker.redact.redact_url`.

Every refusal is a `FetchError` subclass whose `reason` is short and stable ("HTTP 404").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import email.utils
import http.cookiejar
import logging
import random
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Protocol, cast

import brotli
import httpx

from worker.config import Settings, setting_default
from worker.errors import FetchError
from worker.fetch.cookies import CookieSpec, to_cookie
from worker.fetch.decode import decode_html
from worker.fetch.guard import (
    AddressBlocked,
    Judge,
    blocked_address,
    check_trusted_url,
    check_url,
    guarded_transport,
    judge_destination,
    never_fetched,
    proxied_transport,
    same_origin,
)
from worker.fetch.robots import (
    ALLOW_ALL,
    RobotsCache,
    RobotsRules,
    parse_robots,
    unavailable,
    unreachable,
)
from worker.fetch.transport import PoolTransport
from worker.models import Credentials, NotModified, Page, RawHtml, Validators
from worker.redact import redact_url, strip_userinfo
from worker.urls import (
    host_key,  # re-exported: the one host key (IDNA 2008, UTS #46)
    origin_key,
    same_site,
)

__all__ = [
    "DOCUMENT_TYPES",
    "HTML_TYPES",
    "BadStatus",
    "Blocked",
    "CappedCookieJar",
    "FetchOptions",
    "Fetcher",
    "NetworkError",
    "RequestProfile",
    "Resource",
    "RobotsDisallowed",
    "Timeout",
    "TooLarge",
    "TooManyRedirects",
    "UnsupportedContent",
    "host_key",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ACCEPT_ENCODING = "gzip, deflate, br"  # zstd: no decoder among our dependencies
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
GZIP_TYPES = frozenset({"application/gzip", "application/x-gzip", "application/octet-stream"})
# What a listing may be besides HTML: sitemaps, RSS/Atom/JSON feeds, gzipped sitemap files, and
# text sitemaps (fetch_page(accept=DOCUMENT_TYPES) keeps the raw bytes for their parsers).
DOCUMENT_TYPES = HTML_TYPES | GZIP_TYPES | frozenset(
    {
        "application/xml", "text/xml", "application/rss+xml", "application/atom+xml",
        "application/rdf+xml", "application/feed+json", "application/json", "text/plain",
    }
)  # fmt: skip
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Refusals whose body is kept (its start, as `BadStatus.snippet`): anti-bot walls answer with
# these, and their challenge page says who refused (worker.service.health.challenge_marker).
SNIPPET_STATUSES = frozenset({403, 429, 503})
SNIPPET_BYTES = 16 * 1024
# A page without Content-Type is accepted when it starts like HTML (after whitespace).
HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<meta", b"<title")
GUARD_EXTENSION = "feedworker.guarded"  # request extension: send through the SSRF-guarded pool
PROXY_EXTENSION = "feedworker.proxy"  # request extension: the proxy URL to send through, or None
GZIP_MAGIC = b"\x1f\x8b"
# Cookies kept per jar (one source's run): what a site needs for a session, a consent choice and
# a load balancer's pin, a tenth of the 4,500 a shared jar held after 300 pages. A cookie larger
# than RFC 6265's 4,096 bytes is not kept, nor one past either limit; in all, a Cookie header
# stays within the 16 KiB servers commonly accept.
MAX_COOKIES = 50
MAX_COOKIE_BYTES = 16 * 1024
MAX_COOKIE_SIZE = 4096
_BROTLI_STEP = 64 * 1024  # brotli overshoots its output limit by up to one buffer: keep it small


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """How the fetch stage behaves. The operator's settings keep the defaults of their
    `[worker]` setting (`worker.config.Settings`, where each is written and explained); the rest
    are the fetcher's own limits."""

    user_agent: str
    connect_timeout: float = setting_default("connect_timeout")
    read_timeout: float = setting_default("read_timeout")
    request_deadline: float = setting_default("request_deadline")  # per request, whatever drips
    max_redirects: int = setting_default("max_redirects")
    max_page_bytes: int = setting_default("max_page_bytes")  # on the wire and decompressed
    concurrency: int = setting_default("concurrency")
    per_host_concurrency: int = setting_default("per_host_concurrency")
    per_host_delay: float = setting_default("per_host_delay")  # between request starts to a host
    retries: int = setting_default("retries")  # connection errors, timeouts, 408, 429, 5xx
    retry_backoff: float = setting_default("retry_backoff")  # first wait; doubles, plus jitter
    max_retry_after: float = 60.0  # a longer Retry-After gives up instead of waiting
    max_crawl_delay: float = 30.0  # robots.txt Crawl-delay honoured up to this
    robots_ttl: float = 24 * 3600.0  # a good robots.txt is kept this long (RFC 9309: at most 24 h)
    robots_error_ttl: float = (
        600.0  # an unreadable one blocks the host this long, then is asked again
    )
    max_robots_bytes: int = 512 * 1024
    proxy: str | None = setting_default("proxy")  # http(s):// or socks5:// proxy; None: direct

    @property
    def fetch_budget(self) -> float:
        """Seconds one `fetch_page` call may spend in HTTP exchanges and retry waits, over all its
        redirect hops, retries and robots.txt requests: every attempt of one request at the full
        deadline plus one longest Retry-After (150 s by default). A well-behaved chain needs a
        fraction of it; without it a server making each hop or retry take nearly the deadline
        held one fetch for about an hour. Queueing for politeness is not counted (`_Budget`)."""
        return self.request_deadline * (self.retries + 1) + self.max_retry_after

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchOptions:
        """The options a worker with these settings fetches with: every field named like a
        setting takes the setting's value."""
        values = {
            f.name: getattr(settings, f.name)
            for f in fields(cls)
            if f.name in Settings.model_fields
        }
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RequestProfile:
    """One source's own request settings (`worker.config.Source`), for its session."""

    site: str = ""  # the source's URL: `headers` go to its site (`same_site`) only
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str | None = None  # instead of the worker's, on every request of the session
    cookies: tuple[CookieSpec, ...] = ()  # sent where their domain and path say
    proxy: str | None = None  # the proxy for every request of the session; None: direct


@dataclass(frozen=True, slots=True)
class Resource:
    """One exchange for the browser (`Fetcher.fetch_resource`): the body decoded, within
    `max_page_bytes`; empty for a status other than 2xx (but for a refusal's first bytes)."""

    url: str
    status: int
    headers: tuple[tuple[str, str], ...]  # as received, Content-Encoding and framing left out
    body: bytes
    wire_bytes: int


# -- errors: the pipeline catches FetchError; subclasses say which kind -----------------------


class TooLarge(FetchError):
    """Content-Length, raw or decoded bytes over `max_page_bytes`."""


class Timeout(FetchError):
    """No connection, no data, or no complete response in time (per request, or for the whole
    fetch: `FetchOptions.fetch_budget`). `transient` when a retry may help: not for a deadline,
    since a server dripping bytes will drip again."""

    def __init__(self, url: str, reason: str, *, transient: bool = True) -> None:
        self.transient = transient
        super().__init__(url, reason)


class NetworkError(FetchError):
    """Connection refused or broken, DNS failure, TLS failure."""


class BadStatus(FetchError):
    """An HTTP status we do not turn into a page (after retries, when retryable)."""

    def __init__(self, url: str, status: int, reason: str | None = None, snippet: str = "") -> None:
        self.status = status
        self.snippet = snippet  # the body's start for SNIPPET_STATUSES, else ""
        super().__init__(url, reason or f"HTTP {status}")


class UnsupportedContent(FetchError):
    """Not HTML, an unknown or stacked Content-Encoding, an empty body."""


class TooManyRedirects(FetchError):
    """A redirect chain longer than `max_redirects`, a loop, or a redirect without a target."""


class RobotsDisallowed(FetchError):
    """robots.txt does not let us fetch this URL (or could not be read: RFC 9309 says wait)."""


class Blocked(FetchError):
    """Refused by the URL rules or the SSRF guard: bad scheme, private address, credentials."""


# -- the fetcher ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    url: httpx.URL
    status: int
    headers: httpx.Headers
    body: bytes = b""
    wire_bytes: int = 0


@dataclass(frozen=True, slots=True)
class _BodyRule:
    limit: int
    html_only: bool = True
    accept: frozenset[str] = HTML_TYPES  # media types taken when `html_only`
    truncate: bool = False  # keep the first `limit` bytes instead of refusing
    decode: bool = True  # HTML decoded to `Page.text`, else left raw in `Page.raw`


@dataclass(frozen=True, slots=True)
class _Request:
    """One GET as `_send` retries it."""

    url: httpx.URL
    shown: str  # the URL for messages and logs
    headers: dict[str, str]
    rule: _BodyRule
    guarded: bool  # through the SSRF-guarded pool
    method: str = "GET"
    content: bytes | None = None
    polite: bool = True  # wait for the host's gap between starts (a page), or not (a resource)


class _Budget:
    """The time one `fetch_page` call has left (`FetchOptions.fetch_budget`).

    Spent by HTTP exchanges (each bounded by `asyncio.timeout` of at most what is left) and by
    retry waits. Not spent while queued for our own politeness (a host's turn, its gap or
    Crawl-delay, a global slot, another fetch reading the host's robots.txt): that grows with the
    number of pages waiting for the host, not with anything the server does.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.left = seconds
        self.exhausted = False  # a request was cut short or refused for want of time

    def spend(self, seconds: float) -> None:
        self.left -= seconds

    def timeout(self, shown: str) -> Timeout:
        self.exhausted = True
        return Timeout(shown, f"not done within {self.seconds:g} s in all", transient=False)


class _HostGate:
    """Politeness for one host: a few requests in flight and a minimum gap between starts."""

    def __init__(self, slots: int, delay: float) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.delay = delay
        self._next_start = 0.0

    def wait_time(self) -> float:
        return max(0.0, self._next_start - time.monotonic())

    def claim(self) -> bool:
        """Start now if the gap allows; the next start is then `delay` away."""
        now = time.monotonic()
        if now < self._next_start:
            return False
        self._next_start = now + self.delay
        return True

    def slow_down(self, delay: float) -> None:
        """A longer gap from now on, counting from the last start (robots.txt Crawl-delay)."""
        if delay > self.delay:
            self._next_start += delay - self.delay
            self.delay = delay

    def defer(self, seconds: float) -> None:
        """No request to this host sooner than `seconds` from now (Retry-After, backoff)."""
        self._next_start = max(self._next_start, time.monotonic() + seconds)


@dataclass(frozen=True, slots=True)
class _Guard:
    """Whether a URL must pass the SSRF guard: not when private networks are allowed, nor on
    the source's own (trusted) origin: its scheme, host and port, not its host on any port.
    Either way some addresses are never fetched (`worker.fetch.guard.never_fetched`)."""

    allow_private: bool
    trusted_origin: str | None

    def applies(self, url: httpx.URL) -> bool:
        return not self.allow_private and not same_origin(url, self.trusted_origin)

    def refusal(self, url: httpx.URL) -> tuple[bool, str | None]:
        """Whether `url` goes through the guarded pool, and why it is refused outright."""
        if self.applies(url):
            return True, check_url(url)
        return False, check_trusted_url(url)


class CappedCookieJar(http.cookiejar.CookieJar):
    """A cookie jar holding at most `max_count` cookies and `max_bytes` of names and values that
    sites set; a cookie over `MAX_COOKIE_SIZE`, or past either limit, is not kept (one replacing
    a kept cookie of the same domain, path and name always is, within the size). The operator's
    own cookies (`seed`) are kept beside the limits.

    A cookie without a Domain attribute goes back to its own host only, as in browsers (Python's
    default policy also sent it to the host's subdomains)."""

    def __init__(self, max_count: int = MAX_COOKIES, max_bytes: int = MAX_COOKIE_BYTES) -> None:
        super().__init__(
            http.cookiejar.DefaultCookiePolicy(
                strict_ns_domain=http.cookiejar.DefaultCookiePolicy.DomainStrictNonDomain
            )
        )
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.refused = 0  # cookies not kept, for the log
        self._seeded: set[tuple[str, str, str]] = set()

    def seed(self, cookies: tuple[CookieSpec, ...]) -> None:
        """The operator's cookies (a source's `cookies_file`, `cookie_env`), past the limits."""
        for spec in cookies:
            cookie = to_cookie(spec)
            self._seeded.add(_cookie_key(cookie))
            super().set_cookie(cookie)

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        size = _cookie_size(cookie)
        with self._cookies_lock:  # type: ignore[attr-defined]  # CookieJar's own lock
            others = [
                c
                for c in self
                if _cookie_key(c) != _cookie_key(cookie) and _cookie_key(c) not in self._seeded
            ]
            room = self.max_bytes - sum(map(_cookie_size, others))
            if size > MAX_COOKIE_SIZE or len(others) >= self.max_count or size > room:
                self.refused += 1
                return
            super().set_cookie(cookie)


def _cookie_key(cookie: http.cookiejar.Cookie) -> tuple[str, str, str]:
    return (cookie.domain, cookie.path, cookie.name)


def _cookie_size(cookie: http.cookiejar.Cookie) -> int:
    return len(cookie.name) + len(cookie.value or "")


class Fetcher:
    """Fetches pages through one shared `httpx.AsyncClient`; use as an async context manager.
    `session()` gives a view with a cookie jar of its own, for one source's run."""

    def __init__(
        self,
        options: FetchOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        credentials: Mapping[str, Credentials] | None = None,
    ) -> None:
        self._options = options
        self._credentials: dict[str, Credentials] = dict(credentials or {})
        self._client = httpx.AsyncClient(
            transport=transport or _default_transport(options),
            headers={
                "User-Agent": options.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            timeout=httpx.Timeout(
                connect=options.connect_timeout,
                read=options.read_timeout,
                write=options.read_timeout,
                pool=options.request_deadline,
            ),
            follow_redirects=False,
            trust_env=False,  # no proxies or .netrc picked up from the environment
        )
        self._slots = asyncio.Semaphore(options.concurrency)
        self._hosts: dict[str, _HostGate] = {}
        self._robots = RobotsCache(options.robots_ttl, options.robots_error_ttl)
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self._cookies = httpx.Cookies(CappedCookieJar())
        self._profile = RequestProfile(proxy=options.proxy)

    @property
    def options(self) -> FetchOptions:
        return self._options

    def session(self, profile: RequestProfile | None = None) -> Fetcher:
        """This fetcher for one source's run: the same client, connection pools, politeness and
        robots.txt cache, and a cookie jar of its own that ends with the run, holding the
        source's own cookies to begin with. `profile`: the source's request settings (default:
        none, and the worker's proxy). Close the fetcher it came from, never the session."""
        view = copy.copy(self)
        jar = CappedCookieJar()
        view._profile = profile or RequestProfile(proxy=self._options.proxy)
        jar.seed(view._profile.cookies)
        view._cookies = httpx.Cookies(jar)
        return view

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def user_agent(self) -> str:
        """The User-Agent this fetcher (or session) sends."""
        return self._profile.user_agent or self._options.user_agent

    def use_credentials(self, credentials: Mapping[str, Credentials]) -> None:
        """Basic credentials by origin (`worker.config.Config.credentials`), from now on."""
        self._credentials = dict(credentials)

    async def fetch_page(
        self,
        url: str,
        *,
        validators: Validators | None = None,
        allow_private: bool = True,
        trusted_origin: str | None = None,
        respect_robots: bool = True,
        accept: frozenset[str] = HTML_TYPES,
        decode: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Page | NotModified:
        """GET an HTML page, following redirects; raises a `FetchError` subclass when refused.

        With `allow_private=False`, every hop not on the origin (scheme, host, port) of the URL
        `trusted_origin` (the source's `url`) passes the SSRF guard.
        `accept` widens the media types taken (e.g. `DOCUMENT_TYPES` for sitemaps and feeds);
        a page that is not HTML then comes with its raw bytes in `Page.body` (a gzipped file
        unpacked, within `max_page_bytes`) and no `text`. With `decode=False` an HTML page is
        left as bytes too (`Page.raw`), for a caller that hands it on (see `RawHtml`).
        `headers` (a site rule's) go to `url`'s origin only, never to another after a redirect.
        """
        shown = _redact(url)
        current = _parse_url(url, shown)
        conditional = _conditional_headers(validators)
        own = {**(headers or {}), **conditional}
        origin = (current.scheme, current.host, current.port)
        rule = _BodyRule(limit=self._options.max_page_bytes, accept=accept, decode=decode)
        seen = {current}
        guard = _Guard(allow_private, trusted_origin)
        budget = _Budget(self._options.fetch_budget)
        for hop in range(self._options.max_redirects + 1):
            guarded, reason = guard.refusal(current)
            if reason:
                raise Blocked(shown, reason)
            if respect_robots:
                await self._check_robots(current, shown, guard, budget)
            same = (current.scheme, current.host, current.port) == origin
            request = _Request(current, shown, own if same else conditional, rule, guarded)
            reply = await self._send(request, budget)
            if reply.status not in REDIRECT_STATUSES:
                return _to_page(url, shown, reply, rule)
            if hop == self._options.max_redirects:
                break
            current = _redirect_target(reply, shown)
            if current in seen:
                raise TooManyRedirects(shown, "redirect loop")
            seen.add(current)
        raise TooManyRedirects(shown, f"more than {self._options.max_redirects} redirects")

    async def robots_sitemaps(
        self, url: str, *, allow_private: bool = True, trusted_origin: str | None = None
    ) -> tuple[str, ...]:
        """The `Sitemap:` URLs of the robots.txt of `url`'s origin (read through the cache)."""
        shown = _redact(url)
        current = _parse_url(url, shown)
        budget = _Budget(self._options.fetch_budget)
        try:
            rules = await self._robots_for(current, _Guard(allow_private, trusted_origin), budget)
        except Blocked as exc:
            raise Blocked(shown, exc.reason) from None
        except Timeout:
            return ()  # out of time: no rules known, as when robots.txt cannot be read
        return tuple(rules.parser.sitemaps) if rules.parser is not None else ()

    async def fetch_resource(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        allow_private: bool = True,
        trusted_origin: str | None = None,
    ) -> Resource:
        """One exchange for a page rendered in the browser (see the module docstring): no
        redirect followed, no retry, no robots.txt; the SSRF guard as for `fetch_page`."""
        shown = _redact(url)
        current = _parse_url(url, shown)
        guarded, reason = _Guard(allow_private, trusted_origin).refusal(current)
        if reason:
            raise Blocked(shown, reason)
        rule = _BodyRule(limit=self._options.max_page_bytes, html_only=False)
        request = _Request(
            current, shown, dict(headers or {}), rule, guarded, method, content, polite=False
        )
        budget = _Budget(self._options.request_deadline)
        reply = await self._attempt(request, budget)
        kept = tuple(
            (name, value)
            for name, value in reply.headers.multi_items()
            if name.lower() not in _NOT_PASSED_ON
        )
        return Resource(str(reply.url), reply.status, kept, reply.body, reply.wire_bytes)

    # -- one request, retried ------------------------------------------------------------------

    async def _send(self, request: _Request, budget: _Budget) -> _Reply:
        options = self._options
        for attempt in range(options.retries + 1):
            last = attempt == options.retries
            try:
                reply = await self._attempt(request, budget)
            except (Timeout, NetworkError) as exc:
                wait = self._backoff(attempt)
                if last or not _retryable(exc) or wait >= budget.left:
                    raise
                self._gate(request.url).defer(wait)
            else:
                if reply.status not in RETRY_STATUSES:
                    return reply
                wait = self._retry_wait(reply, attempt)
                # Retried or not, the next request to this host waits that long (capped).
                self._gate(request.url).defer(min(wait, options.max_retry_after))
                if last or wait > options.max_retry_after or wait >= budget.left:
                    return reply
            budget.spend(wait)
            log.info(
                "retrying", extra={"url": request.shown, "attempt": attempt + 1, "wait_s": wait}
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        base: float = self._options.retry_backoff * 2**attempt
        return min(base * random.uniform(1.0, 1.5), self._options.max_retry_after)

    def _retry_wait(self, reply: _Reply, attempt: int) -> float:
        """The server's Retry-After when usable, else our backoff."""
        asked = parse_retry_after(reply.headers.get("retry-after"), datetime.now(UTC))
        return self._backoff(attempt) if asked is None else asked

    async def _attempt(self, request: _Request, budget: _Budget) -> _Reply:
        options, shown = self._options, request.shown
        if budget.left <= 0:
            raise budget.timeout(shown)
        turn = self._turn(request.url) if request.polite else self._slot(request.url)
        async with turn:
            deadline = min(options.request_deadline, budget.left)
            started = time.monotonic()
            try:
                async with asyncio.timeout(deadline):
                    reply = await self._exchange(request)
            except TimeoutError:
                if deadline < options.request_deadline:
                    raise budget.timeout(shown) from None
                reason = f"no response within {options.request_deadline:g} s"
                raise Timeout(shown, reason, transient=False) from None
            except httpx.ConnectTimeout:
                raise Timeout(
                    shown, f"no connection within {options.connect_timeout:g} s"
                ) from None
            except httpx.TimeoutException:
                raise Timeout(shown, f"no data for {options.read_timeout:g} s") from None
            except httpx.TransportError as exc:
                raise _network_error(shown, exc) from exc
            except AddressBlocked as exc:
                raise Blocked(shown, exc.reason) from None
            finally:
                budget.spend(time.monotonic() - started)
        log.debug(
            "fetched",
            extra={
                "url": shown,
                "status": reply.status,
                "bytes": reply.wire_bytes,
                "duration_ms": round((time.monotonic() - started) * 1000),
            },
        )
        return reply

    async def _exchange(self, request: _Request) -> _Reply:
        sent = self._client.build_request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.content,
            extensions={GUARD_EXTENSION: request.guarded, PROXY_EXTENSION: self._profile.proxy},
        )
        self._apply_profile(sent)
        _add_basic_auth(sent, self._credentials)
        self._cookies.set_cookie_header(sent)  # the client has none: they are ours, per session
        response = await self._transmit(sent)
        try:
            if "set-cookie" in response.headers:
                self._cookies.extract_cookies(response)  # as `AsyncClient.send` does
            return await _read_reply(response, request.shown, request.rule)
        finally:
            await response.aclose()

    def _apply_profile(self, sent: httpx.Request) -> None:
        """The source's User-Agent on every request, its headers on its own site's."""
        profile = self._profile
        if profile.user_agent:
            sent.headers["User-Agent"] = profile.user_agent
        if profile.headers and same_site(str(sent.url), profile.site):
            for name, value in profile.headers:
                sent.headers[name] = value

    async def _transmit(self, sent: httpx.Request) -> httpx.Response:
        """`AsyncClient.send(sent, stream=True)` without the layers this client never uses.

        Straight to the client's transport, which is safe because of how `__init__` builds the
        client: no auth (credentials are sent by `_add_basic_auth`),
        no event hooks, `follow_redirects=False` (`fetch_page` follows them, judging each hop),
        no proxies or mounts (`trust_env=False`). What remains of `send` is done here (the
        closed check, the stream check) and in `_exchange` (the session's cookie jar). The SSRF
        guard lives in the transport and its connections, so it applies as before;
        `_transport_for_url` (private) is the seam respx's httpx mocker patches.
        """
        if self._client.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        transport = self._client._transport_for_url(sent.url)
        response = await transport.handle_async_request(sent)
        if not isinstance(response.stream, httpx.AsyncByteStream):
            raise TypeError("Attempted to send a sync request with an AsyncClient instance.")
        response.request = sent
        return response

    # -- robots.txt ----------------------------------------------------------------------------

    async def _check_robots(
        self, url: httpx.URL, shown: str, guard: _Guard, budget: _Budget
    ) -> None:
        try:
            rules = await self._robots_for(url, guard, budget)
        except Blocked as exc:
            raise Blocked(shown, exc.reason) from None
        except Timeout as exc:  # only when the budget ran out (`_fetch_robots`)
            raise Timeout(shown, exc.reason, transient=False) from None
        if rules.is_error and rules.unreachable:
            raise NetworkError(shown, rules.reason)
        if rules.is_error:
            raise RobotsDisallowed(shown, rules.reason)
        if not rules.allows(str(url), self._options.user_agent):
            raise RobotsDisallowed(shown, "disallowed by robots.txt")

    async def _robots_for(self, url: httpx.URL, guard: _Guard, budget: _Budget) -> RobotsRules:
        """The origin's rules, fetched once per `robots_ttl` (one fetch at a time per origin)."""
        origin = f"{url.scheme}://{host_key(str(url))}"
        async with self._robots_locks.setdefault(origin, asyncio.Lock()):
            rules = self._robots.get(origin)
            if rules is None:
                robots_url = url.copy_with(path="/robots.txt", query=None)
                rules = await self._fetch_robots(robots_url, guard, budget)
                self._robots.put(origin, rules)
                if rules.crawl_delay is not None:
                    delay = min(rules.crawl_delay, self._options.max_crawl_delay)
                    self._gate(url).slow_down(delay)
        return rules

    async def _fetch_robots(
        self, robots_url: httpx.URL, guard: _Guard, budget: _Budget
    ) -> RobotsRules:
        options = self._options
        rule = _BodyRule(limit=options.max_robots_bytes, html_only=False, truncate=True)
        shown = _redact(str(robots_url))
        current = robots_url
        try:
            for _ in range(options.max_redirects + 1):
                # Judged on every hop: a trusted origin's robots.txt may redirect anywhere.
                guarded, reason = guard.refusal(current)
                if reason:
                    raise Blocked(shown, reason)
                reply = await self._send(_Request(current, shown, {}, rule, guarded), budget)
                if reply.status not in REDIRECT_STATUSES:
                    return parse_robots(
                        reply.status, reply.body, options.user_agent, options.max_robots_bytes
                    )
                current = _redirect_target(reply, shown)
        except Blocked:
            raise  # the page is refused for that reason, not for robots.txt
        except FetchError as exc:
            if budget.exhausted:
                raise  # this fetch ran out of time, maybe on earlier hops: nothing to cache
            if isinstance(exc, NetworkError | Timeout):
                return unreachable(exc.reason)
            return unavailable(exc.reason)
        return ALLOW_ALL  # RFC 9309: after five redirects, treat robots.txt as absent (a 4xx)

    # -- politeness ----------------------------------------------------------------------------

    def _gate(self, url: httpx.URL) -> _HostGate:
        key = host_key(str(url))
        gate = self._hosts.get(key)
        if gate is None:
            options = self._options
            gate = _HostGate(options.per_host_concurrency, options.per_host_delay)
            self._hosts[key] = gate
        return gate

    @contextlib.asynccontextmanager
    async def _slot(self, url: httpx.URL) -> AsyncIterator[None]:
        """A host slot and a global slot, without the host's gap (a resource of a page)."""
        async with self._gate(url).slots, self._slots:
            yield

    @contextlib.asynccontextmanager
    async def _turn(self, url: httpx.URL) -> AsyncIterator[None]:
        """A host slot, then the host's gap, then a global slot (never sleeping on a global one)."""
        gate = self._gate(url)
        async with gate.slots:
            while True:
                await asyncio.sleep(gate.wait_time())
                await self._slots.acquire()
                if gate.claim():
                    break
                self._slots.release()  # another start to this host won the race: wait again
            try:
                yield
            finally:
                self._slots.release()


class _PolicyTransport(httpx.AsyncBaseTransport):
    """A connection pool per origin and policy: guarded or not (so a guarded request never reuses
    a connection opened unchecked), the proxy (or none), and scheme, host and port.

    Through a proxy the destination is judged here, before the request is handed to the proxy:
    its name resolved and every address judged (`guard.judge_destination`), since the connection
    is then to the proxy (the operator's, not judged) and the proxy resolves the name itself.

    One pool per origin because httpcore's pool looks at every connection it holds, a socket poll
    each, twice per request: shared by a dozen hosts, that cost more CPU than the rest of the
    request. Connections to one origin are reused as before. At most `max_pools` are kept: a new
    one first closes those unused for longer than the keep-alive expiry (their connections have
    expired), then the least recently used, never one with a response still open.
    """

    def __init__(self, limits: httpx.Limits, max_pools: int) -> None:
        self._limits = limits
        self._max_pools = max_pools
        self._ssl_context = httpx.create_ssl_context(trust_env=False)  # ~15 ms each: one for all
        self._pools: dict[tuple[bool, str | None, str, str, int | None], _Pool] = {}  # LRU first

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = request.extensions.get(PROXY_EXTENSION)
        if proxy:
            url = request.url
            judge: Judge = (
                blocked_address if request.extensions.get(GUARD_EXTENSION) else never_fetched
            )
            await judge_destination(url.host, url.port or _DEFAULT_PORT[url.scheme], judge)
        pool, unused = self._checkout(request)
        try:
            for old in unused:  # out of `_pools` already: no other request can pick them
                await old.transport.aclose()
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            pool.open_responses -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CountedStream(response.stream, pool)
        return response

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.transport.aclose()

    def _checkout(self, request: httpx.Request) -> tuple[_Pool, list[_Pool]]:
        """The pool for `request`, counted in use before anything is awaited (so never taken
        as unused), and the pools to close to make room when it is a new one."""
        url = request.url
        guarded = bool(request.extensions.get(GUARD_EXTENSION))
        proxy = request.extensions.get(PROXY_EXTENSION) or None
        key = (guarded, proxy, url.scheme, url.host, url.port)
        pool = self._pools.pop(key, None)
        unused: list[_Pool] = []
        if pool is None:
            unused = self._take_unused()
            pool = _Pool(self._transport(guarded, proxy))
        pool.open_responses += 1
        pool.last_used = time.monotonic()
        self._pools[key] = pool  # at the end: the most recently used
        return pool, unused

    def _transport(self, guarded: bool, proxy: str | None = None) -> PoolTransport:
        if proxy:  # the destination is judged before sending (`handle_async_request`)
            return proxied_transport(self._limits, proxy, verify=self._ssl_context)
        if guarded:
            return guarded_transport(self._limits, verify=self._ssl_context)
        # Trusted (the source's origin, or private networks allowed): still never link-local or
        # metadata addresses, whatever a trusted name resolves to.
        return guarded_transport(self._limits, verify=self._ssl_context, judge=never_fetched)

    def _take_unused(self) -> list[_Pool]:
        """Room for one more pool: the idle pools whose connections have expired, then idle ones
        by age while there are `max_pools` or more; taken out of `_pools`, to be closed."""
        expired_before = time.monotonic() - (self._limits.keepalive_expiry or 0.0)
        surplus = len(self._pools) + 1 - self._max_pools
        idle = [key for key, pool in self._pools.items() if not pool.open_responses]
        unused: list[_Pool] = []
        for key in idle:  # least recently sent to first
            if len(unused) < surplus or self._pools[key].last_used < expired_before:
                unused.append(self._pools.pop(key))
        return unused


@dataclass(slots=True, eq=False)
class _Pool:
    transport: PoolTransport
    open_responses: int = 0  # sent and not yet closed: the pool may not be closed
    last_used: float = 0.0


class _CountedStream(httpx.AsyncByteStream):
    """A response body that tells its `_Pool` when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, pool: _Pool) -> None:
        self._stream = stream
        self._pool: _Pool | None = pool

    def __aiter__(self) -> AsyncIterator[bytes]:
        return aiter(self._stream)  # the transport's own iterator: no layer added per chunk

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.open_responses -= 1
            self._pool.last_used = time.monotonic()
            self._pool = None
        await self._stream.aclose()


_DEFAULT_PORT = {"http": 80, "https": 443}
# Response headers not handed to the browser with a resource: the body comes decoded and whole.
_NOT_PASSED_ON = frozenset(
    {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}
)


def _default_transport(options: FetchOptions) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(max_connections=options.concurrency * 2, max_keepalive_connections=None)
    return _PolicyTransport(limits, max_pools=options.concurrency * 2)


# -- the response --------------------------------------------------------------------------------


async def _read_reply(response: httpx.Response, shown: str, rule: _BodyRule) -> _Reply:
    status = response.status_code
    if not 200 <= status < 300:
        snippet = await _snippet(response, shown) if status in SNIPPET_STATUSES else b""
        return _Reply(response.url, status, response.headers, snippet)
    if rule.html_only:
        _check_content_type(response.headers.get("content-type"), shown, rule.accept)
    declared = _content_length(response.headers)
    if declared is not None and declared > rule.limit and not rule.truncate:
        raise TooLarge(shown, f"body larger than {rule.limit} bytes")
    decoder = _decoder_for(response.headers.get("content-encoding"), rule.limit, shown)
    body, wire = await _read_body(response, decoder, rule, shown)
    return _Reply(response.url, status, response.headers, body, wire)


async def _snippet(response: httpx.Response, shown: str) -> bytes:
    """The first `SNIPPET_BYTES` of a refusal's body; b"" when it cannot be read."""
    rule = _BodyRule(limit=SNIPPET_BYTES, truncate=True)
    try:
        decoder = _decoder_for(response.headers.get("content-encoding"), rule.limit, shown)
        return (await _read_body(response, decoder, rule, shown))[0]
    except (FetchError, httpx.HTTPError):  # the status is the answer; its body is a bonus
        return b""


async def _read_body(
    response: httpx.Response, decoder: _Decoder, rule: _BodyRule, shown: str
) -> tuple[bytes, int]:
    """The decoded body, within `rule.limit` on the wire and after decoding. Over the limit:
    `TooLarge`, or with `rule.truncate` the part that fits (of the crossing chunk too)."""
    parts: list[bytes] = []
    wire = 0
    try:
        async for chunk in _raw_chunks(response):
            room = rule.limit - wire
            wire += len(chunk)
            if wire > rule.limit and not rule.truncate:
                raise TooLarge(shown, f"body larger than {rule.limit} bytes")
            parts.append(decoder.decode(chunk[:room]))
            if wire > rule.limit or decoder.overflowed:
                break
        else:
            parts.append(decoder.flush())
    except (zlib.error, brotli.error):
        raise UnsupportedContent(shown, "corrupt compressed body") from None
    if decoder.overflowed and not rule.truncate:
        raise TooLarge(shown, f"body larger than {rule.limit} bytes")
    return b"".join(parts), wire


def _raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The bytes as received, never decoded by httpx (its decoders are unbounded).

    Straight from the transport's stream rather than through `Response.aiter_raw`, which only
    adds bookkeeping we never read (a byte count, a chunker without a chunk size); errors are
    httpx exceptions either way, since the transport's stream maps httpcore's. It also reads an
    in-memory response a mock transport built with `content=` (which httpx marks consumed).
    `_exchange` closes the response, as `aiter_raw` would have at the end.
    """
    return aiter(cast(httpx.AsyncByteStream, response.stream))  # checked in `_transmit`


def _check_content_type(content_type: str | None, shown: str, accept: frozenset[str]) -> None:
    if content_type is None:
        return  # judged on the bytes once read
    media_type = _media_type(content_type)
    if media_type not in accept:
        raise UnsupportedContent(shown, f"unsupported content type {media_type or '(empty)'}")


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _content_length(headers: httpx.Headers) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.strip().isdigit() else None


def _to_page(url: str, shown: str, reply: _Reply, rule: _BodyRule) -> Page | NotModified:
    if reply.status == 304:
        return NotModified(url)
    if not 200 <= reply.status < 300:
        raise BadStatus(shown, reply.status, snippet=reply.body.decode("utf-8", "replace"))
    if not reply.body.strip():
        raise UnsupportedContent(shown, "empty body")
    content_type = reply.headers.get("content-type")
    media_type = _media_type(content_type) if content_type else _sniff_media_type(reply.body)
    body = reply.body
    if media_type in GZIP_TYPES & rule.accept:  # a file, not a Content-Encoding
        body = _gunzip(body, rule.limit, shown) if body[:2] == GZIP_MAGIC else body
        media_type = _sniff_media_type(body)
    documents = rule.accept != HTML_TYPES
    if media_type not in rule.accept:
        if documents:
            raise UnsupportedContent(shown, f"unsupported content {media_type or '(unknown)'}")
        raise UnsupportedContent(shown, "no content type and not HTML")
    is_html = media_type in HTML_TYPES and not (documents and _looks_like_xml(body))
    raw = RawHtml(body, content_type) if is_html and not rule.decode else None
    decoded = is_html and raw is None
    text, encoding = decode_html(body, content_type) if decoded else ("", "")
    return Page(
        url=url,
        # Without userinfo, but with its query: the page's address (an article's identity).
        final_url=strip_userinfo(str(reply.url)),
        status=reply.status,
        content_type=media_type,
        text=text,
        encoding=encoding,
        validators=Validators(
            etag=reply.headers.get("etag"), last_modified=reply.headers.get("last-modified")
        ),
        size=reply.wire_bytes,
        body=b"" if is_html else body,
        raw=raw,
    )


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n\f").lower()
    return head.startswith(HTML_STARTS)


def _looks_like_xml(body: bytes) -> bool:
    """An XML document (a feed or sitemap some servers label text/html)."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n\f").lower()
    return head.startswith(b"<?xml") or head.startswith((b"<rss", b"<feed", b"<urlset"))


def _sniff_media_type(body: bytes) -> str:
    """The media type of a body sent without Content-Type (or inside a gzip file)."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n\f")
    if head[:2] == GZIP_MAGIC:
        return "application/gzip"
    if _looks_like_html(head):
        return "text/html"
    if head.startswith(b"<"):
        return "application/xml"
    if head.startswith(b"{"):
        return "application/json"
    return "text/plain" if head.lower().startswith((b"http://", b"https://")) else ""


def _gunzip(body: bytes, limit: int, shown: str) -> bytes:
    """A gzip *file* (a `.xml.gz` sitemap), unpacked by the same bounded decoder as the wire."""
    decoder = _Zlib(limit, zlib.MAX_WBITS | 16)
    try:
        unpacked = decoder.decode(body)
        unpacked += b"" if decoder.overflowed else decoder.flush()
    except zlib.error:
        raise UnsupportedContent(shown, "corrupt gzip file") from None
    if decoder.overflowed:
        raise TooLarge(shown, f"unpacked body larger than {limit} bytes")
    return unpacked


# -- bounded decoders ----------------------------------------------------------------------------


class _Decoder(Protocol):
    """Turns wire bytes into body bytes, never giving out more than its limit in all; once it had
    more to give, `overflowed` is set and what it returned was cut to the limit."""

    overflowed: bool

    def decode(self, chunk: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Room:
    """The output still allowed; the decoders below share it."""

    def __init__(self, limit: int) -> None:
        self._room = limit
        self.overflowed = False

    def _take(self, out: bytes) -> bytes:
        if len(out) > self._room:
            self.overflowed = True
            out = out[: self._room]
        self._room -= len(out)
        return out


class _Identity(_Room):
    def decode(self, chunk: bytes) -> bytes:
        return self._take(chunk)

    def flush(self) -> bytes:
        return b""


class _Zlib(_Room):
    """gzip or deflate; `max_length` keeps each output at most one byte over the room left."""

    def __init__(self, limit: int, wbits: int) -> None:
        super().__init__(limit)
        self._wbits = wbits
        self._obj = zlib.decompressobj(wbits)
        self._started = False

    def decode(self, chunk: bytes) -> bytes:
        if not self._started and self._wbits == zlib.MAX_WBITS:
            chunk = self._sniff_raw_deflate(chunk)
        self._started = True
        return self._take(self._obj.decompress(chunk, self._room + 1))

    def flush(self) -> bytes:
        return self._take(self._obj.flush())

    def _sniff_raw_deflate(self, chunk: bytes) -> bytes:
        """Some servers send raw deflate as "deflate"; browsers (and httpx) accept both."""
        try:
            zlib.decompressobj(zlib.MAX_WBITS).decompress(chunk, 1)
        except zlib.error:
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        return chunk


class _Brotli(_Room):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._obj = brotli.Decompressor()

    def decode(self, chunk: bytes) -> bytes:
        parts = [self._step(chunk)]
        while not self.overflowed and not self._obj.can_accept_more_data():
            parts.append(self._step(b""))
        return b"".join(parts)

    def flush(self) -> bytes:
        return b""

    def _step(self, data: bytes) -> bytes:
        limit = min(self._room + 1, _BROTLI_STEP)
        return self._take(self._obj.process(data, output_buffer_limit=limit))


def _decoder_for(content_encoding: str | None, limit: int, shown: str) -> _Decoder:
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("identity", ""):
        return _Identity(limit)
    if coding in ("gzip", "x-gzip"):
        return _Zlib(limit, zlib.MAX_WBITS | 16)
    if coding == "deflate":
        return _Zlib(limit, zlib.MAX_WBITS)
    if coding == "br":
        return _Brotli(limit)
    raise UnsupportedContent(shown, f"unsupported content encoding {content_encoding!r}")


# -- URLs, headers, small pure helpers ------------------------------------------------------------


def _parse_url(url: str, shown: str) -> httpx.URL:
    if "\\" in url:
        raise Blocked(shown, "backslash in URL")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise Blocked(shown, "invalid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise Blocked(shown, f"unsupported scheme {parsed.scheme or '(none)'}")
    if not parsed.host:
        raise Blocked(shown, "no host in URL")
    if "#" not in url:
        return parsed
    return parsed.copy_with(fragment=None)  # never sent; and one URL, one key for loops


def _redirect_target(reply: _Reply, shown: str) -> httpx.URL:
    location = reply.headers.get("location")
    if not location or not location.strip():
        raise TooManyRedirects(shown, f"HTTP {reply.status} without Location")
    try:
        target = reply.url.join(location.strip())
    except httpx.InvalidURL:
        raise TooManyRedirects(shown, "redirect to an invalid URL") from None
    return _parse_url(str(target), shown)


def _redact(url: str) -> str:
    """The URL for messages and logs: no user:password, no secret-looking parameter values."""
    return redact_url(url)


def _add_basic_auth(request: httpx.Request, credentials: Mapping[str, Credentials]) -> None:
    """Basic auth for the request's own origin: the URL's userinfo (a URL given on the command
    line), else the credentials configured for that origin. No other origin gets them."""
    url = request.url
    if url.username or url.password:
        user, password = url.username, url.password
    elif credentials and (known := credentials.get(origin_key(str(url)))) is not None:
        user, password = known.user, known.password
    else:
        return
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.headers["Authorization"] = f"Basic {token}"


def _conditional_headers(validators: Validators | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if validators and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


def _retryable(exc: FetchError) -> bool:
    if isinstance(exc, Timeout):
        return exc.transient
    return not (isinstance(exc, NetworkError) and exc.reason.startswith("TLS"))


def _network_error(shown: str, exc: httpx.TransportError) -> NetworkError:
    if "CERTIFICATE" in str(exc).upper() or "SSL" in str(exc).upper():
        return NetworkError(shown, "TLS error")  # fail closed, never retried
    if isinstance(exc, httpx.ConnectError):
        return NetworkError(shown, "could not connect")
    if isinstance(exc, httpx.RemoteProtocolError):
        return NetworkError(shown, "connection closed by server")
    return NetworkError(shown, "connection failed")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if unusable."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
