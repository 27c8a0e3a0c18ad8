"""WebSub (W3C Recommendation, 2018): readers are told when a feed changes instead of polling.

Every feed names the hub of `websub_hub`: Atom `<link rel="hub">`, RSS `<atom:link rel="hub">`,
JSON Feed `hubs` (`worker.publish.render`), and the `Link` header of each feed response
(`worker.web.serve`). Then:

- `websub_hub = "https://hub.example/"`, a hub of someone else's: when a feed's bytes change,
  `HubPing` tells it (`hub.mode=publish&hub.url=<feed>`); the hub fetches the feed itself and
  pushes it to its subscribers.
- `websub_hub = "self"`: feedworker is the hub, at `<public_url>/websub` (`SelfHub`):
  1. a subscriber POSTs `hub.mode=subscribe` (or `unsubscribe`), `hub.topic` (one of our feed
     URLs), `hub.callback`, and optionally `hub.lease_seconds` and `hub.secret`. Mistakes are
     answered at once with a 4xx; otherwise 202, and the intent is verified right after (§5.3):
     a GET to the callback with a random `hub.challenge`, which it must echo in a 2xx. Only then
     is the subscription stored (or removed), with a lease of `hub.lease_seconds` within
     `LEASE_MIN`..`LEASE_MAX` (default `LEASE_DEFAULT`); a subscriber renews by subscribing
     again;
  2. when a feed's bytes change, each subscription with a lease still running gets a delivery
     (§7): a POST of the feed's bytes, its media type, `Link` headers naming the hub and the
     topic, and with a secret `X-Hub-Signature: sha256=<HMAC-SHA256 of the body>` (§8). A failed
     attempt is tried again after `RETRY_WAITS`, then given up (with a warning); a 410 Gone ends
     the subscription. Deliveries wait as rows of the state database, so a restart loses none,
     one per subscription, so a feed that changes twice before it goes out is sent once, as it
     then is;
  3. an expired lease gets nothing more, and its subscription is removed.

Callbacks are URLs strangers hand us, so every request to one goes through the SSRF guard
(`worker.fetch.guard`: no loopback, private, link-local or metadata address, judged on the address
actually connected to; `websub_allow_private` lets readers on the operator's own network in),
never follows a redirect, and is bounded in time and in the bytes read. Per callback host:
at most `SUBSCRIBE_LIMIT` subscription requests in `SUBSCRIBE_WINDOW` seconds (then 429), at most
`MAX_PER_HOST` subscriptions, and deliveries one at a time, `DELIVERY_SPACING` apart.

Cluster mode: every replica answers subscription requests (they share the database); deliveries
are sent by the job queue's `websub_deliver` job, which procrastinate runs on one replica at a
time (`worker.service.cluster`), so each update is delivered by one replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import re
import secrets as random_secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx

from worker.config import WEBSUB_SELF, Settings
from worker.fetch.guard import (
    AddressBlocked,
    blocked_address,
    check_trusted_url,
    check_url,
    guarded_transport,
    never_fetched,
)
from worker.redact import redact_url
from worker.service.logs import fields, log
from worker.store.state import Delivery, Store, Subscription
from worker.urls import host_key

__all__ = [
    "HUB_PATH",
    "CallbackClient",
    "DrainReport",
    "HubAnswer",
    "HubPing",
    "SelfHub",
    "feed_file_reader",
    "feed_name_of",
    "feed_topic",
    "make_websub",
    "stored_feed_reader",
]

HUB_PATH = "websub"  # the hub's endpoint below public_url
FEED_PATH = "feeds"
# Leases (§5.1: the hub decides). Ten days by default, as common hubs grant; at least a minute,
# at most a month, so a forgotten subscriber stops costing deliveries within weeks.
LEASE_DEFAULT = 10 * 86400
LEASE_MIN = 60
LEASE_MAX = 30 * 86400
MAX_SECRET_BYTES = 199  # §5.1: "MUST be less than 200 bytes"
MAX_CALLBACK_CHARS = 2048
MAX_REQUEST_BYTES = 8 * 1024  # a subscription request's body
# Subscription requests per callback host: a reader subscribing to a few dozen feeds at once is
# normal; a stream of them is someone using the hub to send requests to that host.
SUBSCRIBE_LIMIT = 60
SUBSCRIBE_WINDOW = 600.0
MAX_PER_HOST = 1000  # subscriptions one callback host may hold
MAX_HOSTS_TRACKED = 10_000  # hosts the request limiter remembers (the oldest go first)
REQUEST_TIMEOUT = 10.0  # seconds for one verification or delivery, whatever the callback drips
MAX_ANSWER_BYTES = 4096  # read of a callback's answer: a challenge is short
# Waits after the 1st, 2nd... failed delivery; after the last, the delivery is given up.
RETRY_WAITS = (10.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0)
RETRY_JITTER = 0.2  # each wait is stretched by up to this share, so retries do not bunch
DELIVERY_SPACING = 0.2  # seconds between two deliveries to one callback host
DELIVERY_HOSTS = 8  # callback hosts delivered to at once
DRAIN_BATCH = 200  # deliveries taken per pass
DRAIN_POLL = 30.0  # seconds between looks at the queue when nothing wakes the deliverer
PING_RETRIES = 2


def feed_topic(public_url: str, name: str) -> str:
    """A feed's topic URL: where readers fetch it, `<public_url>/feeds/<name>`."""
    return f"{public_url.rstrip('/')}/{FEED_PATH}/{name}"


def feed_name_of(topic: str, public_url: str, names: Collection[str]) -> str | None:
    """The feed file a topic URL names ("blog.rss"), when it is one of `names`."""
    prefix = f"{public_url.rstrip('/')}/{FEED_PATH}/"
    if not topic.startswith(prefix):
        return None
    name = topic[len(prefix) :]
    return name if name in names else None


# -- talking to callbacks ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    status: int | None  # None: no answer (refused, blocked, timed out)
    body: bytes = b""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class CallbackClient:
    """Requests to subscribers' callbacks: through the SSRF guard, no redirects, bounded."""

    def __init__(
        self,
        user_agent: str,
        *,
        allow_private: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.allow_private = allow_private
        judge = never_fetched if allow_private else blocked_address
        limits = httpx.Limits(max_connections=DELIVERY_HOSTS * 2, max_keepalive_connections=8)
        self._client = httpx.AsyncClient(
            transport=transport or guarded_transport(limits, judge=judge),
            headers={"User-Agent": user_agent},
            follow_redirects=False,
            trust_env=False,
            timeout=REQUEST_TIMEOUT,
        )

    def refusal(self, url: str) -> str | None:
        """Why `url` may not be called (its scheme, credentials, an address literal), or None;
        a name is judged on what it resolves to, when connecting."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            return f"not a URL: {exc}"
        if self.allow_private:
            if parsed.scheme not in ("http", "https"):
                return f"unsupported scheme {parsed.scheme or '(none)'}"
            return check_trusted_url(parsed)
        return check_url(parsed)

    async def get(self, url: str) -> CallbackAnswer:
        return await self._call("GET", url)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> CallbackAnswer:
        return await self._call("POST", url, body, headers)

    async def _call(
        self, method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> CallbackAnswer:
        reason = self.refusal(url)
        if reason:
            return CallbackAnswer(None, error=f"refused: {reason}")
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                request = self._client.build_request(method, url, content=body, headers=headers)
                response = await self._client.send(request, stream=True)
                try:
                    answer = await _read_some(response, MAX_ANSWER_BYTES)
                finally:
                    await response.aclose()
        except TimeoutError:
            return CallbackAnswer(None, error=f"no answer within {REQUEST_TIMEOUT:g} s")
        except AddressBlocked as exc:  # the guard, at connect time: a name resolving inside
            return CallbackAnswer(None, error=f"refused: {exc.reason}")
        except httpx.HTTPError as exc:
            return CallbackAnswer(None, error=_http_error(exc))
        return CallbackAnswer(response.status_code, answer)

    async def aclose(self) -> None:
        await self._client.aclose()


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit]


def _http_error(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# -- limits per callback host --------------------------------------------------------------------


class HostWindow:
    """At most `limit` events per `window` seconds per host, in memory (a sliding log)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def take(self, host: str) -> float | None:
        """Count an event for `host`; None when allowed, else seconds until one would be."""
        now = self._clock()
        events = self._events.pop(host, None) or deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        self._events[host] = events  # the most recently seen host last
        if len(events) >= self.limit:
            return events[0] + self.window - now
        events.append(now)
        while len(self._events) > MAX_HOSTS_TRACKED:
            del self._events[next(iter(self._events))]
        return None


# -- feedworker as the hub -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HubAnswer:
    """The HTTP answer to a subscription request."""

    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class DrainReport:
    delivered: int = 0
    failed: int = 0  # attempts that failed (to be tried again, or given up)
    given_up: int = 0
    ended: int = 0  # subscriptions ended by a 410 Gone
    expired: int = 0


ReadFeed = Callable[[str], bytes | None]  # a feed's current bytes by file name
MediaType = Callable[[str], str]


class SelfHub:
    """feedworker's own WebSub hub: subscriptions (`handle`), deliveries (`feeds_changed`,
    `drain`, `run`). `read_feed` gives a feed's current bytes by name ("blog.rss")."""

    def __init__(
        self,
        store: Store,
        *,
        public_url: str,
        client: CallbackClient,
        read_feed: ReadFeed,
        media_type: MediaType,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.public_url = public_url.rstrip("/")
        self.hub_url = f"{self.public_url}/{HUB_PATH}"
        self.client = client
        self.read_feed = read_feed
        self.media_type = media_type
        self.clock = clock
        self._rng = rng or random.Random()
        self._requests = HostWindow(SUBSCRIBE_LIMIT, SUBSCRIBE_WINDOW)
        self._verifying: set[asyncio.Task[bool]] = set()
        self._wake = asyncio.Event()
        self._draining = asyncio.Lock()
        # Set in cluster mode: queue the delivery job instead of waking the local deliverer.
        self.on_queued: Callable[[], Awaitable[object]] | None = None

    # -- subscriptions -------------------------------------------------------------------------

    def handle(self, form: Mapping[str, str], feed_names: Collection[str]) -> HubAnswer:
        """A subscription request (§5.1): refused with a 4xx, or 202 and verified soon after."""
        mode = form.get("hub.mode", "")
        topic = form.get("hub.topic", "")
        callback = form.get("hub.callback", "")
        if mode not in ("subscribe", "unsubscribe"):
            return HubAnswer(400, "hub.mode must be subscribe or unsubscribe\n")
        if feed_name_of(topic, self.public_url, feed_names) is None:
            example = feed_topic(self.public_url, "<id>.atom")
            return HubAnswer(400, f"hub.topic is not a feed of this hub: {example} is\n")
        problem = self._callback_problem(callback)
        if problem:
            return HubAnswer(400, f"hub.callback {problem}\n")
        secret = form.get("hub.secret") or None
        if secret is not None and len(secret.encode()) > MAX_SECRET_BYTES:
            return HubAnswer(400, "hub.secret must be less than 200 bytes\n")
        lease = _lease(form.get("hub.lease_seconds"))
        if lease is None:
            return HubAnswer(400, "hub.lease_seconds must be a whole number of seconds\n")
        host = host_key(callback, port=False)
        wait = self._requests.take(host)
        if wait is not None:
            return HubAnswer(
                429,
                f"too many subscription requests for {host}; try again later\n",
                {"Retry-After": str(max(1, round(wait)))},
            )
        new = mode == "subscribe" and self.store.subscription(topic, callback) is None
        if new and self.store.count_subscriptions(host) >= MAX_PER_HOST:
            return HubAnswer(429, f"{host} holds {MAX_PER_HOST} subscriptions already\n")
        task = asyncio.get_running_loop().create_task(
            self.verify(mode, topic, callback, lease, secret)
        )
        self._verifying.add(task)
        task.add_done_callback(self._verifying.discard)
        return HubAnswer(202, "accepted: the callback will be asked to confirm\n")

    def _callback_problem(self, callback: str) -> str | None:
        if not callback:
            return "is missing"
        if len(callback) > MAX_CALLBACK_CHARS:
            return f"is longer than {MAX_CALLBACK_CHARS} characters"
        parts = urlsplit(callback)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "must be an http or https URL"
        if parts.fragment:
            return "must not have a fragment"
        refusal = self.client.refusal(callback)
        if refusal:
            allow = "" if self.client.allow_private else " (websub_allow_private = true)"
            return f"is refused: {refusal}{allow}"
        return None

    async def verify(
        self, mode: str, topic: str, callback: str, lease: int, secret: str | None
    ) -> bool:
        """Verify the subscriber's intent (§5.3); store or remove the subscription on a yes."""
        challenge = random_secrets.token_urlsafe(24)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            params["hub.lease_seconds"] = str(lease)
        separator = "&" if urlsplit(callback).query else ("" if callback.endswith("?") else "?")
        answer = await self.client.get(callback + separator + urlencode(params))
        shown = fields(topic=topic, callback=redact_url(callback), mode=mode)
        echoed = answer.body.decode("utf-8", "replace").strip() == challenge
        if not answer.ok or not echoed:
            why = (answer.error or f"HTTP {answer.status}") if not answer.ok else "wrong challenge"
            shown["fields"]["error"] = why
            log.info("websub intent not verified", extra=shown)
            return False
        if mode == "unsubscribe":
            self.store.delete_subscription(topic, callback)
        else:
            now = self.clock()
            host = host_key(callback, port=False)
            expires = now + timedelta(seconds=lease)
            self.store.save_subscription(
                Subscription(topic, callback, host, secret, lease, expires, now)
            )
        shown["fields"]["lease_seconds"] = lease
        log.info("websub subscription verified", extra=shown)
        return True

    async def settled(self) -> None:
        """Wait for the verifications under way (for tests and a clean stop)."""
        while self._verifying:
            await asyncio.gather(*list(self._verifying), return_exceptions=True)

    # -- deliveries ----------------------------------------------------------------------------

    async def feeds_changed(self, names: Iterable[str]) -> int:
        """Queue a delivery of each changed feed to its subscribers; how many were queued."""
        now = self.clock()
        queued = sum(
            self.store.queue_deliveries(feed_topic(self.public_url, n), now) for n in names
        )
        if queued:
            if self.on_queued is not None:
                await self.on_queued()
            self._wake.set()
        return queued

    async def drain(self) -> DrainReport:
        """Send every delivery due now (each pass takes `DRAIN_BATCH`, until none is due)."""
        report = DrainReport()
        async with self._draining:
            report.expired = self.store.expire_subscriptions(self.clock())
            while True:
                due = self.store.due_deliveries(self.clock(), DRAIN_BATCH)
                if not due:
                    return report
                await self._deliver_all(due, report)
                if len(due) < DRAIN_BATCH:
                    return report

    async def _deliver_all(self, due: list[Delivery], report: DrainReport) -> None:
        by_host: dict[str, list[Delivery]] = {}
        for delivery in due:
            by_host.setdefault(host_key(delivery.callback, port=False), []).append(delivery)
        hosts = asyncio.Semaphore(DELIVERY_HOSTS)

        async def one_host(deliveries: list[Delivery]) -> None:
            async with hosts:
                for n, delivery in enumerate(deliveries):
                    if n:
                        await asyncio.sleep(DELIVERY_SPACING)  # one host, one at a time
                    await self._deliver(delivery, report)

        await asyncio.gather(*(one_host(group) for group in by_host.values()))

    async def _deliver(self, delivery: Delivery, report: DrainReport) -> None:
        name = delivery.topic.rpartition("/")[2]
        body = self.read_feed(name)
        if body is None:  # the feed is gone (its source removed and pruned): nothing to send
            self.store.delivery_done(delivery.topic, delivery.callback)
            return
        headers = {
            "Content-Type": self.media_type(name),
            "Link": f'<{self.hub_url}>; rel="hub", <{delivery.topic}>; rel="self"',
        }
        if delivery.secret:
            digest = hmac.new(delivery.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature"] = f"sha256={digest}"
        answer = await self.client.post(delivery.callback, body, headers)
        shown = fields(topic=delivery.topic, callback=redact_url(delivery.callback))
        if answer.ok:
            self.store.delivery_done(delivery.topic, delivery.callback)
            report.delivered += 1
            log.debug("websub delivered", extra=shown)
            return
        if answer.status == 410:  # §7: the subscriber ended it
            self.store.delete_subscription(delivery.topic, delivery.callback)
            report.ended += 1
            log.info("websub subscription ended by its subscriber (410)", extra=shown)
            return
        self._retry(delivery, answer.error or f"HTTP {answer.status}", report)

    def _retry(self, delivery: Delivery, error: str, report: DrainReport) -> None:
        report.failed += 1
        attempts = delivery.attempts + 1
        shown = fields(
            topic=delivery.topic,
            callback=redact_url(delivery.callback),
            attempts=attempts,
            error=error,
        )
        if attempts > len(RETRY_WAITS):
            self.store.delivery_done(delivery.topic, delivery.callback)
            report.given_up += 1
            log.warning("websub delivery given up", extra=shown)
            return
        wait = RETRY_WAITS[attempts - 1] * (1 + self._rng.uniform(0, RETRY_JITTER))
        due = self.clock() + timedelta(seconds=wait)
        self.store.delivery_failed(delivery.topic, delivery.callback, attempts, due, error[:300])
        log.info("websub delivery failed, will retry", extra=shown)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set: when woken by a change, and when a retry falls due."""
        while not stop.is_set():
            try:
                await self.drain()
            except Exception as exc:  # the database away for a moment: keep going
                log.warning("websub deliveries failed", extra=fields(error=repr(exc)))
            self._wake.clear()
            wait = self._until_next_due()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    waker = asyncio.ensure_future(self._wake.wait())
                    stopper = asyncio.ensure_future(stop.wait())
                    try:
                        await asyncio.wait({waker, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waker.cancel()
                        stopper.cancel()
        await self.settled()

    def _until_next_due(self) -> float:
        due = self.store.next_delivery_due()
        if due is None:
            return DRAIN_POLL
        return min(DRAIN_POLL, max(0.05, (due - self.clock()).total_seconds()))

    async def aclose(self) -> None:
        await self.settled()
        await self.client.aclose()


def _lease(value: str | None) -> int | None:
    """The lease granted for a requested `hub.lease_seconds` (None: not a number)."""
    if value is None or not value.strip():
        return LEASE_DEFAULT
    try:
        asked = int(value.strip())
    except ValueError:
        return None
    return min(max(asked, LEASE_MIN), LEASE_MAX)


# -- someone else's hub ------------------------------------------------------------------------


class HubPing:
    """Tells an outside hub (`websub_hub = "https://..."`) when feeds changed: one
    `hub.mode=publish` POST per feed, in the background, tried `PING_RETRIES` more times. The
    hub is the operator's choice, so it is trusted (no SSRF guard), like `webhook_url`."""

    def __init__(
        self,
        hub_url: str,
        public_url: str,
        user_agent: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_wait: float = 2.0,
    ) -> None:
        self.hub_url = hub_url
        self.public_url = public_url
        self.retry_wait = retry_wait
        self._client = httpx.AsyncClient(
            transport=transport,
            headers={"User-Agent": user_agent},
            timeout=REQUEST_TIMEOUT,
            trust_env=False,
        )
        self._pending: set[asyncio.Task[bool]] = set()

    async def feeds_changed(self, names: Iterable[str]) -> int:
        topics = [feed_topic(self.public_url, name) for name in names]
        for topic in topics:
            task = asyncio.get_running_loop().create_task(self.ping(topic))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        return len(topics)

    async def ping(self, topic: str) -> bool:
        form = {"hub.mode": "publish", "hub.url": topic}
        error = ""
        for attempt in range(PING_RETRIES + 1):
            if attempt:
                await asyncio.sleep(self.retry_wait * 2 ** (attempt - 1))
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    response = await self._client.post(self.hub_url, data=form)
            except TimeoutError:
                error = f"no answer within {REQUEST_TIMEOUT:g} s"
                continue
            except httpx.HTTPError as exc:
                error = _http_error(exc)
                continue
            if 200 <= response.status_code < 300:
                return True
            error = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break  # the hub said no: asking again changes nothing
        log.warning(
            "websub hub not pinged",
            extra=fields(hub=redact_url(self.hub_url), topic=topic, error=error),
        )
        return False

    async def settled(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def aclose(self) -> None:
        await self.settled()
        await self._client.aclose()


WebSub = SelfHub | HubPing


FEED_FILE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(?:rss|atom|json)")  # what `read_feed` opens


def make_websub(
    settings: Settings,
    store: Store,
    read_feed: ReadFeed,
    media_type: MediaType,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> WebSub | None:
    """The WebSub side `settings` ask for: our own hub, a pinger of another, or None."""
    hub, public_url = settings.websub_hub, settings.public_url
    if hub is None or public_url is None:
        return None
    if hub == WEBSUB_SELF:
        client = CallbackClient(
            settings.user_agent, allow_private=settings.websub_allow_private, transport=transport
        )
        return SelfHub(
            store,
            public_url=public_url,
            client=client,
            read_feed=read_feed,
            media_type=media_type,
        )
    return HubPing(hub, public_url, settings.user_agent, transport=transport)


def feed_file_reader(folder: Path) -> ReadFeed:
    """A feed's bytes from the feeds folder, by its file name (None when it is not there)."""

    def read(name: str) -> bytes | None:
        if not FEED_FILE.fullmatch(name):
            return None
        try:
            return (folder / name).read_bytes()
        except OSError:
            return None

    return read


def stored_feed_reader(store: Store) -> ReadFeed:
    """A feed's bytes from the state database (cluster mode), by its name."""

    def read(name: str) -> bytes | None:
        stored = store.stored_feed(name) if FEED_FILE.fullmatch(name) else None
        return None if stored is None else stored.body

    return read
