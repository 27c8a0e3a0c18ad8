"""HTTP: the feed files, a status page, health, metrics and OPML, served by Starlette on uvicorn.

    GET /                      HTML status of the sources, readable on a phone: failing and
                               degraded first, 100 a page, filtered by ?state= ?host= ?id=
                               (`worker.web.statuspage`)
    GET /feeds/<id>.rss        RSS 2.0      (also .atom and .json; /feeds/all.atom is every source)
    GET /healthz               200 "ok" while `health()` is true, else 503
    GET /metrics               Prometheus text format
    GET /opml                  OPML 2.0 list of every feed, to subscribe to all at once
    GET /sources/<id>          one source: settings, health, last runs, latest items, filtered
    GET /preview               a URL and selectors tried on request (only with a serve_token)
    POST /websub               WebSub subscriptions, when feedworker is the hub (websub_hub)

Feeds follow HTTP's caching rules: a strong `ETag` from the content hash, `Last-Modified` from
the file's mtime, 304 for a matching `If-None-Match` (which wins) or `If-Modified-Since`, and
gzip when asked. The publisher replaces a feed file by rename, so the one open handle a request
reads from always holds one complete version; its validators come from that same handle's fstat.

Access: with a `serve_token`, everything but `/healthz` wants the token (and the feeds too with
`public_feeds = false`): `Authorization: Bearer <token>`, `?token=<token>` (which also sets an
HttpOnly cookie derived from it, so the status page's links work in a browser), compared in
constant time. Links
that leave the server (OPML) are built on `public_url`, else the address the server was started
on, never on the request's Host header; no page ever shows the token or a source URL's secrets.

Clients that take their time (`ServeLimits`): a request's head must arrive within seconds of the
connection or of the previous response, an answer must be ready within a minute and written out
within seconds after, and the
server holds at most `max_connections` connections, a quarter of the file descriptors the process
may open (the worker's own fetches, database and extractor pipes need the rest). At the limit, a
new connection closes the one that has waited longest without sending a request, so a flood of
idle connections cannot lock out `/healthz`. uvicorn has no deadline for a request's head of its
own (its keep-alive timer starts after a response, and any byte resets it), hence
`_GuardedH11Protocol`.

Only names built from the configured ids are ever opened, so no request path reaches outside
`feeds_dir`. The status page reads the store its caller already has open (the running worker's,
or the one `serve` opens at start-up), in a worker thread so the event loop never waits on SQL;
`Store` serialises calls from several threads. Nothing here opens the database or writes to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hmac
import html
import ipaddress
import logging
import os
import resource
import signal
import socket
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable
from urllib.parse import parse_qsl

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from worker.config import Config, Settings, Source
from worker.errors import FeedworkerError
from worker.fetch.client import Fetcher
from worker.publish.files import GZIP_LEVEL, FeedVersion, feed_digest
from worker.publish.render import FEED_MEDIA_TYPES, feed_file_names
from worker.publish.xmlchars import xml_safe
from worker.redact import redact_text, redact_url
from worker.service.logs import LOGGER_NAME, fields, log, throttle
from worker.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from worker.service.metrics import Metrics
from worker.service.websub import HUB_PATH, SelfHub
from worker.service.websub import MAX_REQUEST_BYTES as MAX_HUB_REQUEST_BYTES
from worker.store.state import SourceHealth, SourceOverview, SourceState, Store
from worker.web.page import BASE_CSS, content_security_policy
from worker.web.preview import PREVIEW_PATH, Previewer, PreviewForm, render_preview_page
from worker.web.sourcepage import read_source_view, render_source_page
from worker.web.statuspage import (
    StatusQuery,
    StatusSelection,
    render_controls,
    render_pager,
    select_sources,
    source_state,
)

__all__ = [
    "FEED_MEDIA_TYPES",
    "ServeLimits",
    "SourceStatus",
    "StatusPage",
    "StatusReader",
    "StoreStatusReader",
    "accepts_gzip",
    "build_app",
    "connection_limit",
    "links_base",
    "listen",
    "listen_or_fail",
    "read_status_page",
    "render_opml",
    "render_status_page",
    "serve",
    "serve_socket",
    "stop_on_signals",
    "store_status_reader",
]

FEED_LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON"}
ALL_FEED = "all.atom"  # the combined feed over every source
OPML_MEDIA_TYPE = "text/x-opml; charset=utf-8"
# Five minutes: readers polling more often get a cheap 304 anyway; sources rarely run more often.
FEED_CACHE_CONTROL = "public, max-age=300"
GZIP_MIN_BYTES = 1000  # for the HTML and OPML pages; feed files are always gzipped when asked
SHUTDOWN_GRACE_SECONDS = 5  # in-flight requests get this long once the server is told to stop

# Clients that take their time (`ServeLimits`). A reader, a browser or Prometheus sends its whole
# request head in one packet and reads the answer at once; only a broken or hostile client needs
# more than these.
HEADER_TIMEOUT = 10.0  # seconds to send a complete request head (slowloris: a byte at a time)
KEEP_ALIVE_TIMEOUT = 5  # an idle keep-alive connection is closed after this (uvicorn's default)
# Seconds from a request's head to its answer being handed to the connection (a status page
# stuck on the database); what is left to write then has HEADER_TIMEOUT to go out, so a client
# that never reads holds nothing for long.
RESPONSE_TIMEOUT = 60.0
# Connections held at once: a few readers, browsers and a scraper need a handful; 200 is plenty
# and costs 200 file descriptors. Never more than a quarter of RLIMIT_NOFILE's soft limit, so the
# worker's own sockets, database files and extractor pipes always have three quarters (at the
# usual 1,024: 200 here, 824 for the worker, which needs about 100 at its default concurrency).
MAX_CONNECTIONS = 200
MIN_CONNECTIONS = 8  # even under a tiny descriptor limit the server stays usable
FD_SHARE = 4  # the server may hold 1/FD_SHARE of the process's file descriptors
# The listen backlog, which is also how many connections asyncio accepts in one go before any of
# them is counted: the server may briefly hold max_connections plus this many descriptors (plus
# those it is closing). So half the connection limit, at most this.
BACKLOG = 64
MAX_HEAD_BYTES = 16 * 1024  # a larger request head is answered 400 (h11's default, said aloud)
TOKEN_PARAM = "token"  # ?token=...
TOKEN_COOKIE = "feedworker_token"  # set when ?token= was right, so the page's links work
COOKIE_SALT = b"feedworker status page cookie"
SLOW_HEAD = "request head not complete in time: connection closed"
SLOW_RESPONSE = "response not written out in time: connection closed"
server_log = logging.getLogger(f"{LOGGER_NAME}.server")  # throttled: a flood logs once a minute
throttle(server_log)

Health = Callable[[], bool]
NextRuns = Callable[[str], datetime | None]
# Extra lines for the top of the status page (cluster mode: replicas whose configs differ).
Notes = Callable[[], Sequence[str]]


# ---------------------------------------------------------------------------------------------
# Feed files: read one version whole, validators from the same handle, hash cached per version.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cached:
    key: tuple[int, int, int]  # (inode, size, mtime_ns): a new file by rename changes the inode
    digest: str
    gzipped: bytes | None


class FeedFiles:
    """The feed files one app may serve, by name; remembers each version's hash and gzip bytes."""

    def __init__(self, folder: Path, names: Collection[str]) -> None:
        self.folder = folder
        self.names = frozenset(names)
        self._cache: dict[str, _Cached] = {}  # by file name; one entry per feed, so bounded

    def exists(self, name: str) -> bool:
        return name in self.names and (self.folder / name).is_file()

    def read(self, name: str, *, want_gzip: bool = False) -> FeedVersion | None:
        """The file's current version, or None when `name` is not a feed or not written yet."""
        if name not in self.names:
            return None
        try:
            with open(self.folder / name, "rb") as handle:
                stat = os.fstat(handle.fileno())
                body = handle.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        cached = self._remember(name, (stat.st_ino, len(body), stat.st_mtime_ns), body)
        if want_gzip and cached.gzipped is None:
            cached = _Cached(cached.key, cached.digest, gzip.compress(body, GZIP_LEVEL, mtime=0))
            self._cache[name] = cached
        gzipped = cached.gzipped if want_gzip else None
        return FeedVersion(body, cached.digest, stat.st_mtime, gzipped)

    def _remember(self, name: str, key: tuple[int, int, int], body: bytes) -> _Cached:
        cached = self._cache.get(name)
        if cached is None or cached.key != key:
            # Concurrent requests may both hash a new version; the entries they store are equal.
            cached = _Cached(key, feed_digest(body), None)
            self._cache[name] = cached
        return cached


class FeedReader(Protocol):
    """Where the server reads feeds: `FeedFiles` (the default) or, in cluster mode, the state
    database (`worker.service.cluster.StoredFeeds`)."""

    names: frozenset[str]

    def exists(self, name: str) -> bool: ...

    def read(self, name: str, *, want_gzip: bool = False) -> FeedVersion | None: ...


def is_not_modified(headers: Mapping[str, str], version: FeedVersion) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return _etag_matches(if_none_match, version.digest)
    since = _parse_http_date(headers.get("if-modified-since"))
    # Last-Modified has whole seconds, so compare the mtime as sent.
    return since is not None and int(version.mtime) <= since.timestamp()


def _etag_matches(header: str, digest: str) -> bool:
    """Weak comparison, as If-None-Match requires; either encoding's tag names this content."""
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/")
        if tag == "*" or tag in (f'"{digest}"', f'"{digest}-gz"'):
            return True
    return False


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def accepts_gzip(accept_encoding: str) -> bool:
    """True when Accept-Encoding allows gzip (``gzip``, ``x-gzip`` or ``*``, with q above 0)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        quality = params.strip().lower().removeprefix("q=")
        try:
            if not params.strip() or float(quality) > 0:
                return True
        except ValueError:
            continue
    return False


def feed_response(version: FeedVersion, media_type: str, headers: Mapping[str, str]) -> Response:
    """200 with the bytes, or 304 with only the validators."""
    out = {
        "ETag": version.etag,
        "Last-Modified": version.last_modified,
        "Cache-Control": FEED_CACHE_CONTROL,
        "Vary": "Accept-Encoding",
    }
    if is_not_modified(headers, version):
        return Response(status_code=304, headers=out)
    if version.gzipped is not None:
        out["Content-Encoding"] = "gzip"
        return Response(version.gzipped, headers=out, media_type=media_type)
    return Response(version.body, headers=out, media_type=media_type)


# ---------------------------------------------------------------------------------------------
# Source status: read from the open store per request, rendered by a pure function.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What the status page shows about one source's runs."""

    last_run: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    items: int = 0
    next_run: datetime | None = None
    health: str = ""  # "ok" | "degraded"; "" before the first judged run
    health_reasons: tuple[str, ...] = ()
    health_since: datetime | None = None


StatusReader = Callable[[], Mapping[str, SourceStatus]]


@runtime_checkable
class PagedStatusReader(Protocol):
    """A `StatusReader` that can also tell every source's state cheaply and read a few sources
    in full, so a page of 100 out of 10,000 sources reads 100 in full (`StoreStatusReader`)."""

    def __call__(self) -> Mapping[str, SourceStatus]: ...

    def overview(self) -> Mapping[str, SourceOverview]: ...

    def statuses(self, source_ids: Collection[str]) -> Mapping[str, SourceStatus]: ...


class StoreStatusReader:
    """Reads the configured sources' status from `store`, which the caller opened and closes.
    Called, it reads every source (`feedworker status`); the status page reads an `overview`
    of all and `statuses` of its page's sources: a handful of queries however many there are.

    Only reads: a page view never takes the write lock the running worker needs."""

    def __init__(self, config: Config, store: Store) -> None:
        self._config = config
        self._store = store
        self._secrets = config.secret_values

    def __call__(self) -> dict[str, SourceStatus]:
        every = self._read(None)
        return {source.id: every.get(source.id, SourceStatus()) for source in self._config.sources}

    def overview(self) -> dict[str, SourceOverview]:
        return self._store.source_overviews()

    def statuses(self, source_ids: Collection[str]) -> dict[str, SourceStatus]:
        found = self._read(source_ids)
        return {source_id: found.get(source_id, SourceStatus()) for source_id in source_ids}

    def _read(self, source_ids: Collection[str] | None) -> dict[str, SourceStatus]:
        """The stored sources among `source_ids` (None: all), redacted; three queries (per
        500 ids)."""
        store = self._store
        states = {state.source_id: state for state in store.source_states(source_ids)}
        healths = {health.source_id: health for health in store.source_healths(source_ids)}
        items = store.item_counts(source_ids)
        return {
            source_id: _redacted(
                _with_health(
                    _status_of(states.get(source_id), items.get(source_id, 0)),
                    healths.get(source_id),
                ),
                self._secrets,
            )
            for source_id in states.keys() | healths.keys() | items.keys()
        }


def store_status_reader(config: Config, store: Store) -> StoreStatusReader:
    """The status of `config`'s sources as `store` has it (see `StoreStatusReader`)."""
    return StoreStatusReader(config, store)


def _redacted(status: SourceStatus, secrets: Collection[str]) -> SourceStatus:
    """The stored texts fit to show: an error stored by an older version may hold a secret."""
    return replace(
        status,
        last_error=redact_text(status.last_error, secrets) if status.last_error else None,
        health_reasons=tuple(redact_text(reason, secrets) for reason in status.health_reasons),
    )


def _with_health(status: SourceStatus, health: SourceHealth | None) -> SourceStatus:
    if health is None:
        return status
    return replace(
        status, health=health.state, health_reasons=health.reasons, health_since=health.since
    )


def _status_of(state: SourceState | None, items: int) -> SourceStatus:
    if state is None:
        return SourceStatus(items=items)
    return SourceStatus(
        last_run=state.last_run,
        last_success=state.last_success,
        last_error=state.last_error,
        consecutive_failures=state.consecutive_failures,
        items=items,
        next_run=state.next_run,
    )


@dataclass(frozen=True, slots=True)
class StatusPage:
    """What one view of the status page shows: its sources and their status."""

    selection: StatusSelection
    statuses: Mapping[str, SourceStatus]  # of the page's sources (at least)
    note: str | None = None  # why the run state is missing


def read_status_page(reader: StatusReader, config: Config, query: StatusQuery) -> StatusPage:
    """The page `query` asks for: chosen from every source's state, then its own sources read
    in full. A store error still gives the page, listing the sources without their state."""
    sources = config.sources
    try:
        if isinstance(reader, PagedStatusReader):
            overview = reader.overview()
            states = {s.id: _overview_state(s, overview.get(s.id)) for s in sources}
            selection = select_sources(sources, states, query)
            return StatusPage(selection, reader.statuses([s.id for s in selection.sources]))
        statuses = reader()
        states = {s.id: _status_state(s, statuses.get(s.id, SourceStatus())) for s in sources}
        return StatusPage(select_sources(sources, states, query), statuses)
    except FeedworkerError as exc:
        log.warning("status unavailable", extra=fields(error=str(exc)))
        states = {s.id: _status_state(s, SourceStatus()) for s in sources}
        note = f"run state unavailable: {exc}"
        return StatusPage(select_sources(sources, states, query), {}, note)


def _overview_state(source: Source, overview: SourceOverview | None) -> str:
    if overview is None:
        return source_state(enabled=source.enabled, failing=False, degraded=False, ran=False)
    return source_state(
        enabled=source.enabled,
        failing=overview.failing,
        degraded=overview.degraded,
        ran=overview.ran,
    )


def _status_state(source: Source, status: SourceStatus) -> str:
    return source_state(
        enabled=source.enabled,
        failing=bool(status.consecutive_failures),
        degraded=status.health == "degraded",
        ran=bool(status.last_run or status.last_success),
    )


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One source on the status page: its config, its run status and which feed files exist."""

    source: Source
    status: SourceStatus
    feeds: tuple[str, ...]  # formats written so far, e.g. ("rss", "atom")


_PAGE_CSS = """
body{font:16px/1.45 system-ui,sans-serif;margin:0 auto;max-width:48rem;padding:1rem;color:#222}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:0 0 .3rem}
.src{border:1px solid #ddd;border-left:.4rem solid #2a2;border-radius:.4rem;padding:.7rem;
margin:.8rem 0}.src.failing{border-left-color:#c22}.src.never,.src.disabled{border-left-color:#999}
.meta{color:#666;font-size:.9rem;margin:0 0 .4rem;overflow-wrap:anywhere}
.feeds a{display:inline-block;margin:0 .6rem .3rem 0;padding:.15rem .5rem;border:1px solid #bbb;
border-radius:.3rem;text-decoration:none}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:.4rem 0 0}
dt{color:#666}dd{margin:0;overflow-wrap:anywhere}.error{color:#a11;white-space:pre-wrap}
.src.degraded{border-left-color:#d80}.health{background:#fff4e0;border-radius:.3rem;
padding:.4rem .6rem;margin:.3rem 0 .5rem;color:#6b3a00}.health ul{margin:.2rem 0 0 1.1rem;padding:0}
.filters input,.filters select,.filters button{font:inherit;margin:0 .3rem .3rem 0;max-width:9rem}
""".strip()


_STATUS_CSP = {"Content-Security-Policy": content_security_policy(_PAGE_CSS)}


def render_status_page(
    rows: Sequence[StatusRow],
    now: datetime,
    *,
    has_all_feed: bool,
    note: str | None = None,
    selection: StatusSelection | None = None,
) -> str:
    """The whole HTML page; every string from config or the database is escaped here.
    `selection`: `rows` are one page of it (the counts, the filter form and the pager)."""
    if selection is None:
        total = len(rows)
        failing = sum(1 for row in rows if row.status.consecutive_failures)
        degraded = sum(1 for row in rows if row.status.health == "degraded")
    else:
        total = sum(selection.counts.values())
        failing, degraded = selection.count("failing"), selection.count("degraded")
    links = ['<a href="opml">OPML</a>']
    if has_all_feed:
        links.append(f'<a href="feeds/{ALL_FEED}">all sources (Atom)</a>')
    summary = f"{total:,} sources, {failing:,} failing, {degraded:,} degraded · " + " · ".join(
        links
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>feedworker</title><style>{_PAGE_CSS}</style></head><body>",
        f'<header><h1>feedworker</h1><p class="meta">{summary}</p>',
    ]
    if note:
        parts.append(f'<p class="error">{_esc(note)}</p>')
    parts.append(f'<p class="meta">as of {_esc(_utc(now))}</p>')
    if selection is not None:
        parts.append(render_controls(selection))
    parts.append("</header><main>")
    parts.extend(_render_source(row, now) for row in rows)
    parts.append("</main>")
    if selection is not None and selection.pages > 1:
        parts.append(f"<footer>{render_pager(selection)}</footer>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _render_source(row: StatusRow, now: datetime) -> str:
    source, status = row.source, row.status
    shown_url = redact_url(source.url)
    feeds = " ".join(
        f'<a href="feeds/{_esc(source.id)}.{ext}">{FEED_LABELS[ext]}</a>' for ext in row.feeds
    )
    details = [
        ("Last success", _when(status.last_success, now)),
        ("Last error", _render_error(status)),
        ("Items", str(status.items)),
        ("Failures in a row", str(status.consecutive_failures)),
        (
            "Next run",
            _when(status.next_run, now, "not scheduled") if source.enabled else "disabled",
        ),
    ]
    return "\n".join(
        [
            f'<section class="src {_state_class(row)}" id="source-{_esc(source.id)}">',
            f'<h2><a href="sources/{_esc(source.id)}">{_esc(source.title)}</a></h2>',
            f'<p class="meta">{_esc(source.id)} · <a href="{_esc(shown_url)}">'
            f"{_esc(shown_url)}</a></p>",
            _render_health(row, now),
            f'<p class="feeds">{feeds or "no feed written yet"}</p>',
            "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in details) + "</dl>",
            "</section>",
        ]
    )


def _render_health(row: StatusRow, now: datetime) -> str:
    """A degraded source's state and reasons, above everything else it shows ("" when ok)."""
    status = row.status
    if status.health != "degraded":
        return ""
    since = f" since {_when(status.health_since, now)}" if status.health_since else ""
    reasons = "".join(f"<li>{_esc(reason)}</li>" for reason in status.health_reasons)
    return (
        f'<div class="health"><strong>Degraded{since}</strong>: its published items stay in its'
        f" feed; <code>feedworker try {_esc(row.source.id)}</code> shows why."
        f"<ul>{reasons}</ul></div>"
    )


def _render_error(status: SourceStatus) -> str:
    if not status.last_error:
        return "none"
    return f'<span class="error">{_esc(status.last_error)}</span>'


def _state_class(row: StatusRow) -> str:
    return _status_state(row.source, row.status)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


_UNITS = (("d", 86400), ("h", 3600), ("min", 60))


def _when(moment: datetime | None, now: datetime, missing: str = "never") -> str:
    if moment is None:
        return missing
    if moment.tzinfo is None:  # the store keeps UTC; a naive value is UTC without its label
        moment = moment.replace(tzinfo=UTC)
    return f"{_esc(_utc(moment))} ({_relative(moment - now)})"


def _relative(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return "now"
    unit, size = next((u, s) for u, s in _UNITS if seconds >= s)
    amount = f"{seconds // size} {unit}"
    return f"in {amount}" if delta.total_seconds() > 0 else f"{amount} ago"


# ---------------------------------------------------------------------------------------------
# OPML
# ---------------------------------------------------------------------------------------------


def render_opml(sources: Sequence[Source], base_url: str) -> bytes:
    """OPML 2.0 with one outline per source, pointing at its RSS feed under `base_url`."""
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = "feedworker feeds"
    body = ET.SubElement(opml, "body")
    for source in sources:
        title = xml_safe(source.title)
        outline = {
            "type": "rss",
            "text": title,
            "title": title,
            "xmlUrl": f"{base_url}/feeds/{source.id}.rss",
            "htmlUrl": redact_url(source.url),
        }
        if source.description:
            outline["description"] = xml_safe(source.description)
        ET.SubElement(body, "outline", outline)
    ET.indent(opml)
    document: bytes = ET.tostring(opml, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


Endpoint = Callable[[Request], Awaitable[Response]]


class _Access:
    """Who may read what. Without a token, everyone everything; with one, `/healthz` stays open
    and the rest wants it (the feeds only with `public_feeds = false`)."""

    def __init__(self, settings: Settings) -> None:
        token = settings.token.encode() if settings.token else None
        self._token = token
        # The cookie holds a value derived from the token, not the token: a response never
        # carries the operator's secret, even to the browser that sent it.
        self._cookie = hmac.new(token, COOKIE_SALT, "sha256").hexdigest() if token else ""
        self.public_feeds = settings.public_feeds

    def guard(self, endpoint: Endpoint, *, feed: bool = False) -> Endpoint:
        """`endpoint`, answering 401 to a request without the token when one is wanted."""
        if self._token is None or (feed and self.public_feeds):
            return endpoint

        async def guarded(request: Request) -> Response:
            by_query = self._matches(request.query_params.get(TOKEN_PARAM))
            if not (by_query or self._matches(_bearer(request)) or self._by_cookie(request)):
                return _unauthorized()
            response = await endpoint(request)
            _make_private(response)
            if by_query:
                response.set_cookie(TOKEN_COOKIE, self._cookie, httponly=True, samesite="strict")
            return response

        return guarded

    def _by_cookie(self, request: Request) -> bool:
        return _same(request.cookies.get(TOKEN_COOKIE), self._cookie.encode())

    def _matches(self, given: str | None) -> bool:
        return self._token is not None and _same(given, self._token)


def _same(given: str | None, expected: bytes) -> bool:
    """Constant time: how much of a guess was right must not show in how long the "no" took."""
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), expected)


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _unauthorized() -> Response:
    return PlainTextResponse(
        f"a token is needed: send Authorization: Bearer <token>, or add ?{TOKEN_PARAM}=<token>\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="feedworker"', "Cache-Control": "no-store"},
    )


def _make_private(response: Response) -> None:
    """A response only token holders may read: no shared cache keeps it, and a page opened with
    ?token= never sends its address (the token) to the sites it links to."""
    response.headers["Referrer-Policy"] = "no-referrer"
    cache = response.headers.get("cache-control")
    if cache and "public" in cache:
        response.headers["Cache-Control"] = cache.replace("public", "private")
    elif cache is None:
        response.headers["Cache-Control"] = "private, no-cache"


class _Handlers:
    """The endpoints of one app, sharing its config, feed files and collaborators."""

    def __init__(
        self,
        config: Config,
        health: Health,
        next_runs: NextRuns,
        metrics: Metrics,
        status_reader: StatusReader,
        files: FeedReader | None = None,
        notes: Notes = lambda: (),
        base_url: str | None = None,
    ) -> None:
        self.config = config
        settings = config.settings
        # Links that leave the server: never from the request's Host header, which is the
        # client's to choose ("Host: evil.example" would make the OPML point there).
        self.base_url = settings.public_url or base_url or links_base(settings)
        self.health = health
        self.next_runs = next_runs
        self.metrics = metrics
        self.status_reader = status_reader
        self.notes = notes
        names = feed_file_names(source.id for source in config.sources)
        self.files = files or FeedFiles(config.settings.feeds_dir, names)

    async def feed(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        want_gzip = accepts_gzip(request.headers.get("accept-encoding", ""))
        version = await run_in_threadpool(self.files.read, name, want_gzip=want_gzip)
        if version is None:
            if name in self.files.names:
                self.metrics.observe_feed_response(name, 404)
            return PlainTextResponse("no such feed\n", status_code=404)
        ext = name.rpartition(".")[2]
        response = feed_response(version, FEED_MEDIA_TYPES[ext], request.headers)
        settings = self.config.settings
        if settings.websub_hub_url and settings.public_url:  # WebSub discovery (§4)
            topic = f"{settings.public_url}/feeds/{name}"
            response.headers["Link"] = (
                f'<{settings.websub_hub_url}>; rel="hub", <{topic}>; rel="self"'
            )

        self.metrics.observe_feed_response(name, response.status_code)
        log.debug("served", extra=fields(url=request.url.path, status=response.status_code))
        return response

    async def status_page(self, request: Request) -> Response:
        query = StatusQuery.from_params(request.query_params)
        page = await run_in_threadpool(read_status_page, self.status_reader, self.config, query)
        # Asked here, on the event loop, because the scheduler lives there: the page's sources.
        live_next = {source.id: self.next_runs(source.id) for source in page.selection.sources}
        html = await run_in_threadpool(self._status_html, page, datetime.now(UTC), live_next)
        return HTMLResponse(html, headers={"Cache-Control": "no-cache", **_STATUS_CSP})

    def _status_html(
        self, page: StatusPage, now: datetime, live_next: Mapping[str, datetime | None]
    ) -> str:
        note = "\n".join(n for n in (page.note, *self.notes()) if n) or None
        rows = []
        for source in page.selection.sources:
            status = page.statuses.get(source.id, SourceStatus())
            if live_next.get(source.id) is not None:  # the scheduler knows better than the store
                status = replace(status, next_run=live_next[source.id])
            feeds = tuple(e for e in FEED_MEDIA_TYPES if self.files.exists(f"{source.id}.{e}"))
            rows.append(StatusRow(source, status, feeds))
        has_all = self.files.exists(ALL_FEED)
        return render_status_page(
            rows, now, has_all_feed=has_all, note=note, selection=page.selection
        )

    async def healthz(self, request: Request) -> Response:
        healthy = self.health()
        return PlainTextResponse(
            "ok\n" if healthy else "unhealthy\n",
            status_code=200 if healthy else 503,
            headers={"Cache-Control": "no-store"},
        )

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    async def opml(self, request: Request) -> Response:
        sources = [s for s in self.config.sources if s.enabled or self.files.exists(f"{s.id}.rss")]
        return Response(
            render_opml(sources, self.base_url),
            media_type=OPML_MEDIA_TYPE,
            headers={"Content-Disposition": 'inline; filename="feedworker.opml"'},
        )


def build_app(
    config: Config,
    *,
    status_reader: StatusReader,
    health: Health = lambda: True,
    next_runs: NextRuns = lambda _id: None,
    metrics: Metrics | None = None,
    files: FeedReader | None = None,
    notes: Notes = lambda: (),
    base_url: str | None = None,
    store: Store | None = None,
    preview_fetcher: Fetcher | None = None,
    websub: SelfHub | None = None,
) -> Starlette:
    """The ASGI app serving `config`'s feeds (from `files`, default the feeds folder);
    `status_reader` gives the sources' run state, usually `store_status_reader(config, store)`.
    `base_url` is where the server listens (`links_base`), for OPML links when `public_url` is
    not set (default: `serve_host:serve_port`). With `store`, each source has its page
    (`worker.web.sourcepage`); with `preview_fetcher` and a `serve_token`, `/preview` fetches
    through it (`worker.web.preview`); with `websub`, `/websub` is its hub endpoint."""
    if metrics is None:
        metrics = Metrics()
    metrics.per_source = config.settings.metrics_per_source
    metrics.set_sources(
        (source.id for source in config.sources),
        disabled=(source.id for source in config.sources if not source.enabled),
    )
    handlers = _Handlers(config, health, next_runs, metrics, status_reader, files, notes, base_url)
    access = _Access(config.settings)
    pages = _SourcePages(config, handlers, store, preview_fetcher)
    routes = [
        Route("/", access.guard(handlers.status_page)),
        Route("/feeds/{name}", access.guard(handlers.feed, feed=True)),
        Route("/healthz", handlers.healthz),
        Route("/metrics", access.guard(handlers.metrics_text)),
        Route("/opml", access.guard(handlers.opml)),
        Route("/sources/{source_id}", access.guard(pages.source_page)),
        Route(f"/{PREVIEW_PATH}", access.guard(pages.preview_page)),
    ]
    if websub is not None:  # open to all: subscribers have no token (the feeds are public)
        endpoint = _HubEndpoint(websub, feed_file_names(s.id for s in config.sources))
        routes.append(Route(f"/{HUB_PATH}", endpoint.handle, methods=["GET", "POST"]))
    # Feed files do their own gzip (cached, with their own ETag); the middleware takes the rest.
    excluded = (*DEFAULT_EXCLUDED_CONTENT_TYPES, *FEED_MEDIA_TYPES.values())
    gzip_pages = Middleware(
        GZipMiddleware, minimum_size=GZIP_MIN_BYTES, exclude_content_types=excluded
    )
    return Starlette(routes=routes, middleware=[gzip_pages])


class _SourcePages:
    """`/sources/<id>` and `/preview` (their pages are built in `worker.web.sourcepage` and
    `worker.web.preview`)."""

    def __init__(
        self,
        config: Config,
        handlers: _Handlers,
        store: Store | None,
        preview_fetcher: Fetcher | None,
    ) -> None:
        self.config = config
        self.handlers = handlers
        self.store = store
        # Only with a token: the preview fetches whatever URL it is given.
        self.previewer = (
            Previewer(preview_fetcher) if preview_fetcher and config.settings.token else None
        )

    async def source_page(self, request: Request) -> Response:
        source_id: str = request.path_params["source_id"]
        source = next((s for s in self.config.sources if s.id == source_id), None)
        if source is None or self.store is None:
            return PlainTextResponse("no such source\n", status_code=404)
        next_run = self.handlers.next_runs(source.id)  # on the loop: the scheduler lives there
        feeds = tuple(
            ext for ext in FEED_MEDIA_TYPES if self.handlers.files.exists(f"{source.id}.{ext}")
        )
        store = self.store
        try:
            view = await run_in_threadpool(
                read_source_view,
                store,
                self.config,
                source,
                feeds=feeds,
                next_run=next_run,
                preview=self.previewer is not None,
            )
        except FeedworkerError as exc:
            log.warning("source page unavailable", extra=fields(error=str(exc)))
            return PlainTextResponse(f"run state unavailable: {exc}\n", status_code=503)
        page = render_source_page(view, datetime.now(UTC))
        return _html_page(page)

    async def preview_page(self, request: Request) -> Response:
        if self.previewer is None:
            why = "a serve_token" if not self.config.settings.token else "the worker's fetcher"
            return PlainTextResponse(
                f"the preview fetches pages on request, so it needs {why}\n", status_code=404
            )
        form = PreviewForm.from_query(request.query_params)
        problems = form.problems()
        result = None
        if form.url and not problems:
            result = await self.previewer.preview(form, self.config)
        secrets = self.config.secret_values
        return _html_page(render_preview_page(form, result, problems, secrets))


class _HubEndpoint:
    """`/websub`: subscription requests for `worker.service.websub.SelfHub` (form-encoded)."""

    def __init__(self, hub: SelfHub, names: Sequence[str]) -> None:
        self.hub = hub
        self.names = frozenset(names)

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":
            return PlainTextResponse(
                "feedworker's WebSub hub: POST hub.mode=subscribe, hub.topic=<a feed's URL>"
                " and hub.callback=<your URL> (form-encoded)\n"
            )
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            return PlainTextResponse("send application/x-www-form-urlencoded\n", status_code=415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_HUB_REQUEST_BYTES:
                return PlainTextResponse("request too large\n", status_code=413)
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        form = dict(reversed(pairs))  # the first of a repeated parameter counts
        answer = self.hub.handle(form, self.names)
        headers = {"Cache-Control": "no-store", **answer.headers}
        return PlainTextResponse(answer.text, status_code=answer.status, headers=headers)


def _html_page(page: str) -> Response:
    """A page of ours (`worker.web.page`), with the policy that fits it."""
    headers = {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": content_security_policy(BASE_CSS),
    }
    return HTMLResponse(page, headers=headers)


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket; binding here makes "address in use" an OSError for the caller.

    Port 0 picks a free port: read it back with ``sock.getsockname()[1]``.
    """
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    return socket.create_server((host, port), family=family)


def listen_or_fail(host: str, port: int) -> socket.socket:
    """`listen` for a command: a port in use (or any bind error) is a FeedworkerError whose
    message the CLI prints, "cannot listen on host:port: …", instead of a traceback."""
    try:
        return listen(host, port)
    except OSError as exc:
        raise FeedworkerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (Ctrl-C): the caller winds down and exits 0."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    return stop


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    if not stop.is_set():
        log.info("stopping", extra=fields(signal=sig.name))
    stop.set()


def links_base(settings: Settings, sock: socket.socket | None = None) -> str:
    """Where links to this server point when `public_url` is not set: the address it listens on
    (`sock`'s, else `serve_host:serve_port`). A wildcard address (0.0.0.0, as in Docker) names no
    machine; the host name stands in, and a warning says to set `public_url`."""
    if settings.public_url:
        return settings.public_url
    host, port = (sock.getsockname()[:2]) if sock else (settings.serve_host, settings.serve_port)
    if _is_wildcard(host):
        if sock is not None:
            log.warning(
                "public_url is not set: links in /opml name this machine by its host name",
                extra=fields(host=socket.gethostname(), listening=host),
            )
        host = socket.gethostname()
    return f"http://{_url_host(host)}:{port}"


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == ""


async def serve(
    app: Starlette,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    limits: ServeLimits | None = None,
) -> None:
    """Serve `app` on host:port until `stop` is set (or, without `stop`, until SIGINT/SIGTERM)."""
    await serve_socket(app, listen(host, port), stop, limits)


async def serve_socket(
    app: Starlette,
    sock: socket.socket,
    stop: asyncio.Event | None = None,
    limits: ServeLimits | None = None,
) -> None:
    """Serve `app` on an already listening socket (closed when the server stops)."""
    limits = limits or ServeLimits()
    server = _server(app, limits, own_signals=stop is None)
    host, port = sock.getsockname()[:2]
    log.info(
        "serving",
        extra=fields(
            url=f"http://{_url_host(host)}:{port}/", max_connections=limits.max_connections
        ),
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    if stop is not None:
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        server.should_exit = True
    try:
        await task
    finally:
        sock.close()
    log.info("server stopped")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _CallerSignals(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to its caller, who sets `stop` instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: Starlette, limits: ServeLimits, *, own_signals: bool) -> uvicorn.Server:
    connections = _Connections(limits)
    settings = uvicorn.Config(
        app,
        # h11, whatever else is installed, with a deadline for request heads and a connection cap.
        http=cast(type[asyncio.Protocol], functools.partial(_GuardedH11Protocol, connections)),
        lifespan="off",
        log_config=None,  # leave logging set-up (and the root logger) to worker.service.logs
        access_log=False,  # feed requests are logged at DEBUG and counted in /metrics
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        timeout_keep_alive=limits.keep_alive,
        backlog=limits.listen_backlog,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        # No `limit_concurrency`: uvicorn answers 503 to every request once that many connections
        # are open, idle ones included, which is how idle connections would lock out /healthz.
        # `_Connections` caps connections by closing idle ones instead.
    )
    return uvicorn.Server(settings) if own_signals else _CallerSignals(settings)


# ---------------------------------------------------------------------------------------------
# Slow and idle clients
# ---------------------------------------------------------------------------------------------


def connection_limit(soft_limit: int | None = None) -> int:
    """Connections the server may hold: `MAX_CONNECTIONS`, or a quarter of the process's file
    descriptor limit (RLIMIT_NOFILE, soft) when that is lower, so the worker keeps the rest."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit <= 0:
        return MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, soft_limit // FD_SHARE))


@dataclass(frozen=True, slots=True)
class ServeLimits:
    """How long the server waits for a client, and how many it holds (see the module docstring)."""

    max_connections: int = field(default_factory=connection_limit)
    header_timeout: float = HEADER_TIMEOUT
    keep_alive: int = KEEP_ALIVE_TIMEOUT
    response_timeout: float = RESPONSE_TIMEOUT
    backlog: int | None = None  # None: half of max_connections, at most BACKLOG

    @property
    def listen_backlog(self) -> int:
        return self.backlog or max(1, min(BACKLOG, self.max_connections // 2))


class _Connections:
    """The connections one server holds; those waiting for a request head, oldest first."""

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self._open: set[_GuardedH11Protocol] = set()
        self._waiting: dict[_GuardedH11Protocol, None] = {}  # insertion order: oldest first

    def admit(self, conn: _GuardedH11Protocol) -> bool:
        """Count a new connection in; at the limit, close the connection that has waited longest
        for a request head. False when every other connection is busy: `conn` must go."""
        self._open.add(conn)
        self._waiting[conn] = None
        if len(self._open) <= self.limits.max_connections:
            return True
        oldest = next((c for c in self._waiting if c is not conn), None)
        if oldest is None:
            self.forget(conn)
            server_log.warning(
                "connection limit reached, every connection busy: new connection refused",
                extra=fields(max_connections=self.limits.max_connections),
            )
            return False
        self.forget(oldest)
        oldest.expire("connection limit reached: closed the longest idle connection")
        return True

    def busy(self, conn: _GuardedH11Protocol) -> None:
        self._waiting.pop(conn, None)

    def waiting(self, conn: _GuardedH11Protocol) -> None:
        if conn in self._open:
            self._waiting.pop(conn, None)
            self._waiting[conn] = None  # now the newest

    def forget(self, conn: _GuardedH11Protocol) -> None:
        self._open.discard(conn)
        self._waiting.pop(conn, None)


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with one deadline at a time per connection: while no request is in
    progress, its head must be complete within `header_timeout` (of the connection, or of the
    previous response; bytes dripping in do not extend it); while one is, the response must be
    written out within `response_timeout`. A connection past its deadline is closed. uvicorn's
    own keep-alive timer still closes a silent connection after `keep_alive` seconds."""

    def __init__(self, connections: _Connections, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections = connections
        self._deadline: asyncio.TimerHandle | None = None
        self._request: object = None  # the request cycle the deadline was last set for

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._connections.admit(self):
            transport.abort()
            return
        self._wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._connections.forget(self)
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and self.cycle is not self._request:
            self._request = self.cycle  # a request head arrived: now its answer has a deadline
            self._connections.busy(self)
            self._set_deadline(self._connections.limits.response_timeout, SLOW_RESPONSE)

    def on_response_complete(self) -> None:
        # Before uvicorn looks at pipelined requests, which may start one. Also when uvicorn is
        # closing the connection: a close waits for the client to read what is left, and a
        # client that never reads would hold it for good.
        self._wait_for_head()
        super().on_response_complete()

    def expire(self, reason: str) -> None:
        """Drop the connection now, and whatever it still had to write (it is past its
        deadline, or makes room for another). Also one uvicorn is closing gracefully."""
        self._cancel_deadline()
        if self.transport is not None:
            server_log.info(reason, extra=fields(client=_client(self.client)))
            self.transport.abort()

    def _wait_for_head(self) -> None:
        self._connections.waiting(self)
        self._set_deadline(self._connections.limits.header_timeout, SLOW_HEAD)

    def _set_deadline(self, seconds: float, reason: str) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, self._on_deadline, reason)

    def _on_deadline(self, reason: str) -> None:
        self._deadline = None
        half_sent = self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])
        if reason == SLOW_HEAD and half_sent and not self.transport.is_closing():
            # A polite answer to a half-sent request; a silent connection is just closed.
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
            self.transport.close()
            server_log.info(reason, extra=fields(client=_client(self.client)))
            return
        self.expire(reason)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def _client(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"
