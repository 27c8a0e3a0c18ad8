"""WebSub: every feed names its hub; an outside hub is pinged when a feed's bytes change; with
`websub_hub = "self"` feedworker is the hub (verified subscriptions, leases, signed deliveries,
retries, the SSRF guard, limits per callback host, one replica delivering in cluster mode)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import feedparser
import httpx
import pytest

from tests.backend import state_env, state_url_of
from tests.localserver import LocalServer
from tests.test_cli import serve_blog
from worker.config import Config, load_config
from worker.errors import ConfigError
from worker.service import websub as websub_module
from worker.service.runner import Worker, feed_media_type
from worker.service.websub import (
    LEASE_MIN,
    RETRY_WAITS,
    SUBSCRIBE_LIMIT,
    CallbackClient,
    SelfHub,
    feed_topic,
    stored_feed_reader,
)
from worker.store.state import Store, StoredFeed, Subscription
from worker.web.serve import build_app, listen, serve_socket, store_status_reader

SECRET = "a-subscriber-secret"


# -- a subscriber --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A WebSub subscriber on 127.0.0.1: answers verifications (echoing the challenge, unless
    `echo` is off), records every request, answers deliveries with `statuses` (then 204)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.statuses: deque[int] = deque()
        self.echo = True
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/callback") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    @property
    def verifications(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET"]

    @property
    def deliveries(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self, body: bytes) -> Request:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                request = Request(
                    self.command,
                    parts.path,
                    query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with receiver._lock:
                    receiver.requests.append(request)
                return request

            def do_GET(self) -> None:
                request = self._record(b"")
                challenge = request.query.get("hub.challenge", "")
                body = challenge.encode() if receiver.echo else b"no thanks"
                self._answer(200 if receiver.echo else 404, body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._record(self.rfile.read(length))
                with receiver._lock:
                    status = receiver.statuses.popleft() if receiver.statuses else 204
                self._answer(status, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as subscriber:
        yield subscriber


# -- config and discovery ------------------------------------------------------------------------


def write_config(root: Path, server: LocalServer, worker: str, state_url: str = "") -> Path:
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    state_url = state_url or f"sqlite:///{root}/state.db"
    (config / "feedworker.toml").write_text(
        f'[worker]\nper_host_delay = 0\nstate_url = "{state_url}"\n'
        f'feeds_dir = "{root}/feeds"\n{worker}'
    )
    (config / "sources.toml").write_text(
        f'[[source]]\nid = "blog"\nurl = "{server.url("/")}"\nevery = "1h"\n'
    )
    return config


@pytest.mark.parametrize(
    ("worker", "says"),
    [
        ('websub_hub = "self"\n', "websub_hub needs public_url"),
        (
            'websub_hub = "self"\npublic_url = "https://f.example"\n'
            'serve_token = "0123456789abcdefXYZ"\npublic_feeds = false\n',
            "would push private feeds",
        ),
        ('websub_hub = "hub.example/"\npublic_url = "https://f.example"\n', 'did you mean "https'),
    ],
)
def test_websub_settings_are_checked(tmp_path: Path, worker: str, says: str) -> None:
    with LocalServer() as server:
        config = write_config(tmp_path, server, worker)
    with pytest.raises(ConfigError) as caught:
        load_config(config, env=state_env())
    assert says in str(caught.value)


def test_every_feed_format_and_the_link_header_name_the_hub(tmp_path: Path) -> None:
    with LocalServer() as server:
        serve_blog(server)
        worker = 'websub_hub = "self"\npublic_url = "https://feeds.example.org"\n'
        config = load_config(write_config(tmp_path, server, worker), env=state_env())
        asyncio.run(run_once(config))
    hub = "https://feeds.example.org/websub"
    feeds = tmp_path / "feeds"
    for name in ("blog.rss", "blog.atom", "all.atom"):
        parsed = feedparser.parse((feeds / name).read_bytes())
        assert not parsed.bozo
        links = {link["rel"]: link["href"] for link in parsed.feed.links}
        assert links["hub"] == hub and links["self"] == f"https://feeds.example.org/feeds/{name}"
    assert json.loads((feeds / "blog.json").read_text())["hubs"] == [{"type": "WebSub", "url": hub}]
    store = Store.open(config.settings.state_url)
    try:
        app = build_app(config, status_reader=store_status_reader(config, store))
        from tests.test_serve import app_client

        with app_client(app) as client:
            link = client.get("/feeds/blog.atom").headers["link"]
    finally:
        store.close()
    assert link == f'<{hub}>; rel="hub", <https://feeds.example.org/feeds/blog.atom>; rel="self"'


async def run_once(config: Config) -> Worker:
    async with Worker(config) as worker:
        await worker.run_once()
    return worker


# -- someone else's hub --------------------------------------------------------------------------


def test_an_outside_hub_is_pinged_when_a_feed_changes_and_only_then(
    tmp_path: Path, receiver: Receiver
) -> None:
    with LocalServer() as server:
        serve_blog(server)
        worker = f'websub_hub = "{receiver.url("/hub")}"\npublic_url = "https://f.example"\n'
        config = load_config(write_config(tmp_path, server, worker), env=state_env())
        asyncio.run(run_once(config))
        first = [parse_qs(r.body.decode()) for r in receiver.deliveries]
        asyncio.run(run_once(config))  # nothing new: no feed's bytes change
    assert all(ping["hub.mode"] == ["publish"] for ping in first)
    topics = sorted(ping["hub.url"][0] for ping in first)
    assert topics == [
        f"https://f.example/feeds/{name}"
        for name in ("all.atom", "blog.atom", "blog.json", "blog.rss")
    ]
    assert len(receiver.deliveries) == len(first)


# -- feedworker as the hub: the whole path -------------------------------------------------------


def test_subscribe_publish_and_a_signed_delivery(tmp_path: Path, receiver: Receiver) -> None:
    with LocalServer() as site:
        serve_blog(site)
        sock = listen("127.0.0.1", 0)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        worker = f'websub_hub = "self"\npublic_url = "{base}"\nwebsub_allow_private = true\n'
        config = load_config(write_config(tmp_path, site, worker), env=state_env())
        asyncio.run(subscribe_publish_deliver(config, sock, base, receiver))


async def subscribe_publish_deliver(
    config: Config, sock: object, base: str, receiver: Receiver
) -> None:
    topic = f"{base}/feeds/blog.atom"
    callback = receiver.url("/callback?feed=blog")
    async with Worker(config) as worker:
        hub = worker.websub
        assert isinstance(hub, SelfHub)
        store = worker.ctx.store
        app = build_app(config, status_reader=store_status_reader(config, store), websub=hub)
        stop = asyncio.Event()
        server = asyncio.create_task(serve_socket(app, sock, stop))  # type: ignore[arg-type]
        try:
            async with httpx.AsyncClient(base_url=base) as client:
                form = {
                    "hub.mode": "subscribe",
                    "hub.topic": topic,
                    "hub.callback": callback,
                    "hub.secret": SECRET,
                    "hub.lease_seconds": "3600",
                }
                answer = await client.post("/websub", data=form)
                assert answer.status_code == 202, answer.text
                await hub.settled()
                # intent verified: a GET with a challenge, the callback's own query kept
                (check,) = receiver.verifications
                assert check.query["hub.mode"] == "subscribe" and check.query["feed"] == "blog"
                assert check.query["hub.topic"] == topic
                assert check.query["hub.lease_seconds"] == "3600"
                (subscription,) = store.subscriptions(datetime.now(UTC))
                assert (subscription.topic, subscription.callback) == (topic, callback)

                await worker.run_once()  # the feed is written: its bytes changed
                await worker.websub_settled()
                report = await hub.drain()
                assert report.delivered == 1
                (delivery,) = receiver.deliveries
                body = (Path(config.settings.feeds_dir) / "blog.atom").read_bytes()
                assert delivery.body == body and delivery.query["feed"] == "blog"
                assert delivery.headers["content-type"].startswith("application/atom+xml")
                expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                assert delivery.headers["x-hub-signature"] == f"sha256={expected}"
                assert f'<{base}/websub>; rel="hub"' in delivery.headers["link"]
                assert f'<{topic}>; rel="self"' in delivery.headers["link"]

                await worker.run_once()  # nothing changed: nothing delivered
                await worker.websub_settled()
                assert (await hub.drain()).delivered == 0 and len(receiver.deliveries) == 1

                form["hub.mode"] = "unsubscribe"
                assert (await client.post("/websub", data=form)).status_code == 202
                await hub.settled()
                assert receiver.verifications[-1].query["hub.mode"] == "unsubscribe"
                assert store.subscriptions(datetime.now(UTC)) == []
        finally:
            stop.set()
            await server


# -- feedworker as the hub: its parts, on a clock of its own -------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Hub:
    hub: SelfHub
    store: Store
    clock: Clock
    topic: str
    feed: bytes


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    store = Store.open(state_url_of(tmp_path / "state.db"))
    clock = Clock()
    feed = b"<feed>the current bytes</feed>"
    self_hub = SelfHub(
        store,
        public_url="https://feeds.example",
        client=CallbackClient("feedworker-test", allow_private=True),
        read_feed=lambda name: feed if name == "blog.atom" else None,
        media_type=feed_media_type,
        clock=clock,
        rng=random.Random(1),
    )
    yield Hub(self_hub, store, clock, feed_topic("https://feeds.example", "blog.atom"), feed)
    asyncio.run(self_hub.aclose())
    store.close()


NAMES = frozenset({"blog.rss", "blog.atom", "blog.json", "all.atom"})


def subscribe(hub: Hub, callback: str, **extra: str) -> int:
    async def go() -> int:
        form = {"hub.mode": "subscribe", "hub.topic": hub.topic, "hub.callback": callback, **extra}
        answer = hub.hub.handle(form, NAMES)
        await hub.hub.settled()
        return answer.status

    return asyncio.run(go())


def publish_and_drain(hub: Hub) -> websub_module.DrainReport:
    async def go() -> websub_module.DrainReport:
        await hub.hub.feeds_changed(["blog.atom"])
        return await hub.hub.drain()

    return asyncio.run(go())


def test_a_lease_expires(hub: Hub, receiver: Receiver) -> None:
    assert subscribe(hub, receiver.url(), **{"hub.lease_seconds": "5"}) == 202
    assert receiver.verifications[0].query["hub.lease_seconds"] == str(LEASE_MIN)  # the floor
    assert publish_and_drain(hub).delivered == 1  # within the lease
    hub.clock.now += timedelta(seconds=LEASE_MIN + 1)
    report = publish_and_drain(hub)
    assert report.delivered == 0 and report.expired == 1
    assert len(receiver.deliveries) == 1 and hub.store.count_subscriptions() == 0


def test_renewing_extends_the_lease(hub: Hub, receiver: Receiver) -> None:
    subscribe(hub, receiver.url(), **{"hub.lease_seconds": "100"})
    hub.clock.now += timedelta(seconds=90)
    subscribe(hub, receiver.url(), **{"hub.lease_seconds": "100"})
    hub.clock.now += timedelta(seconds=90)  # past the first lease, within the second
    assert publish_and_drain(hub).delivered == 1


def test_a_failed_delivery_is_retried_after_a_wait_then_given_up(
    hub: Hub, receiver: Receiver
) -> None:
    subscribe(hub, receiver.url())
    receiver.statuses.extend([500, 503])
    assert publish_and_drain(hub).failed == 1
    assert asyncio.run(hub.hub.drain()).delivered == 0  # not due yet: nothing sent
    assert len(receiver.deliveries) == 1
    hub.clock.now += timedelta(seconds=RETRY_WAITS[0] * 1.25)
    assert asyncio.run(hub.hub.drain()).failed == 1  # the 503
    hub.clock.now += timedelta(seconds=RETRY_WAITS[1] * 1.25)
    assert asyncio.run(hub.hub.drain()).delivered == 1
    assert [r.body for r in receiver.deliveries] == [hub.feed] * 3

    receiver.statuses.extend([500] * (len(RETRY_WAITS) + 1))
    publish_and_drain(hub)
    for wait in RETRY_WAITS:
        hub.clock.now += timedelta(seconds=wait * 1.25)
        report = asyncio.run(hub.hub.drain())
    assert report.given_up == 1 and hub.store.next_delivery_due() is None
    assert hub.store.count_subscriptions() == 1  # the subscription stays; this update is lost


def test_a_gone_subscriber_ends_its_subscription(hub: Hub, receiver: Receiver) -> None:
    subscribe(hub, receiver.url())
    receiver.statuses.append(410)
    assert publish_and_drain(hub).ended == 1
    assert hub.store.count_subscriptions() == 0


def test_a_feed_changing_twice_before_delivery_is_sent_once(hub: Hub, receiver: Receiver) -> None:
    subscribe(hub, receiver.url())

    async def go() -> None:
        await hub.hub.feeds_changed(["blog.atom"])
        await hub.hub.feeds_changed(["blog.atom"])
        await hub.hub.drain()

    asyncio.run(go())
    assert len(receiver.deliveries) == 1


def test_intent_not_verified_stores_nothing(hub: Hub, receiver: Receiver) -> None:
    receiver.echo = False
    assert subscribe(hub, receiver.url()) == 202
    assert len(receiver.verifications) == 1 and hub.store.count_subscriptions() == 0


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"hub.mode": "publish"}, 400, "hub.mode must be subscribe or unsubscribe"),
        ({"hub.topic": "https://feeds.example/feeds/other.atom"}, 400, "not a feed of this hub"),
        ({"hub.topic": "https://elsewhere.example/feeds/blog.atom"}, 400, "not a feed"),
        ({"hub.callback": "ftp://x.example/"}, 400, "must be an http or https URL"),
        ({"hub.callback": "https://x.example/#frag"}, 400, "must not have a fragment"),
        ({"hub.secret": "s" * 200}, 400, "less than 200 bytes"),
        ({"hub.lease_seconds": "soon"}, 400, "whole number"),
    ],
)
def test_bad_requests_are_refused_at_once(
    hub: Hub, form: dict[str, str], status: int, says: str
) -> None:
    request = {
        "hub.mode": "subscribe",
        "hub.topic": hub.topic,
        "hub.callback": "https://reader.example/cb",
        **form,
    }
    answer = hub.hub.handle(request, NAMES)
    assert answer.status == status and says in answer.text


def test_callbacks_pass_the_ssrf_guard(tmp_path: Path, receiver: Receiver) -> None:
    store = Store.open(state_url_of(tmp_path / "state.db"))
    guarded = SelfHub(
        store,
        public_url="https://feeds.example",
        client=CallbackClient("feedworker-test"),  # websub_allow_private off
        read_feed=lambda name: b"x",
        media_type=feed_media_type,
    )
    topic = feed_topic("https://feeds.example", "blog.atom")

    async def go() -> None:
        literal = guarded.handle(
            {"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": receiver.url()}, NAMES
        )
        assert literal.status == 400
        assert "blocked address 127.0.0.1 (websub_allow_private = true)" in literal.text
        metadata = "http://169.254.169.254/latest/meta-data/"
        answer = guarded.handle(
            {"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": metadata}, NAMES
        )
        assert answer.status == 400
        # a name that resolves to loopback passes the form, and is refused at connect time
        by_name = receiver.url().replace("127.0.0.1", "localhost")
        answer = guarded.handle(
            {"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": by_name}, NAMES
        )
        assert answer.status == 202
        await guarded.settled()
        # and a delivery to a stored callback that now resolves to loopback is refused too
        now = datetime.now(UTC)
        store.save_subscription(
            Subscription(topic, by_name, "localhost", None, 3600, now + timedelta(hours=1), now)
        )
        await guarded.feeds_changed(["blog.atom"])
        report = await guarded.drain()
        assert report.failed == 1 and report.delivered == 0
        await guarded.aclose()

    try:
        asyncio.run(go())
        assert receiver.requests == []  # not one request reached the loopback receiver
    finally:
        store.close()


def test_subscription_requests_are_limited_per_callback_host(hub: Hub, receiver: Receiver) -> None:
    async def go() -> list[int]:
        statuses = []
        for n in range(SUBSCRIBE_LIMIT + 1):
            form = {
                "hub.mode": "subscribe",
                "hub.topic": hub.topic,
                "hub.callback": receiver.url(f"/cb{n}"),
            }
            statuses.append(hub.hub.handle(form, NAMES).status)
        other = hub.hub.handle(
            {"hub.mode": "subscribe", "hub.topic": hub.topic, "hub.callback": "https://b.example/"},
            NAMES,
        )
        statuses.append(other.status)
        await hub.hub.settled()
        return statuses

    statuses = asyncio.run(go())
    assert statuses[:SUBSCRIBE_LIMIT] == [202] * SUBSCRIBE_LIMIT
    assert statuses[SUBSCRIBE_LIMIT] == 429  # this host: one too many
    assert statuses[-1] == 202  # another host is not held up
    assert len(receiver.verifications) == SUBSCRIBE_LIMIT


def test_the_hub_endpoint_wants_a_form(tmp_path: Path) -> None:
    with LocalServer() as server:
        worker = 'websub_hub = "self"\npublic_url = "https://feeds.example"\nwebsub_allow_private = true\n'
        config = load_config(write_config(tmp_path, server, worker), env=state_env())
    store = Store.open(config.settings.state_url)
    hub = SelfHub(
        store,
        public_url="https://feeds.example",
        client=CallbackClient("test", allow_private=True),
        read_feed=lambda name: None,
        media_type=feed_media_type,
    )
    try:
        app = build_app(config, status_reader=store_status_reader(config, store), websub=hub)
        from tests.test_serve import app_client

        with app_client(app) as client:
            assert client.post("/websub", json={"hub.mode": "subscribe"}).status_code == 415
            huge = {"hub.callback": "x" * 10_000}
            assert client.post("/websub", data=huge).status_code == 413
            unknown = client.post("/websub", data={"hub.mode": "subscribe", "hub.topic": "x"})
            assert unknown.status_code == 400 and "not a feed of this hub" in unknown.text
            assert "WebSub hub" in client.get("/websub").text
    finally:
        store.close()


# -- cluster mode: one replica delivers each update ----------------------------------------------


def test_in_cluster_mode_one_replica_delivers_each_update(
    tmp_path: Path, postgres_url: str, receiver: Receiver
) -> None:
    from worker.service.cluster import ClusterNode

    with LocalServer() as server:
        worker = (
            'cluster = true\nwebsub_hub = "self"\n'
            'public_url = "https://feeds.example"\nwebsub_allow_private = true\n'
        )
        config = load_config(write_config(tmp_path, server, worker, postgres_url), env={})

    async def go() -> None:
        stores = [Store.open(postgres_url) for _ in range(3)]
        now = datetime.now(UTC)
        topic = feed_topic("https://feeds.example", "blog.atom")
        stores[0].save_feed(StoredFeed("blog.atom", 1, b"<feed>v1</feed>", "e1", now))
        for n in range(2):
            callback = receiver.url(f"/cb{n}")
            stores[0].save_subscription(
                Subscription(
                    topic, callback, "127.0.0.1", None, 3600, now + timedelta(hours=1), now
                )
            )
        hubs = [
            SelfHub(
                store,
                public_url="https://feeds.example",
                client=CallbackClient("test", allow_private=True),
                read_feed=stored_feed_reader(store),
                media_type=feed_media_type,
            )
            for store in stores
        ]
        nodes = [
            ClusterNode(config, store, _no_run, concurrency=2, grace=5, name=f"replica-{n}")
            for n, store in enumerate(stores)
        ]
        for node, hub in zip(nodes, hubs, strict=True):
            node.use_websub(hub)
        stop = asyncio.Event()
        try:
            for node in nodes:
                await node.__aenter__()
            running = [asyncio.create_task(node.run(stop)) for node in nodes]
            # Every replica publishes the same change (as if each had run the source).
            await asyncio.gather(*(hub.feeds_changed(["blog.atom"]) for hub in hubs))
            await until(lambda: len(receiver.deliveries) >= 2, "the deliveries")
            await until(lambda: jobs_left(stores[0]) == 0, "the job queue to empty")
            stop.set()
            await asyncio.gather(*running)
        finally:
            for node in nodes:
                await node.__aexit__(None, None, None)
            for hub in hubs:
                await hub.aclose()
            for store in stores:
                store.close()

    asyncio.run(go())
    paths = sorted(r.path for r in receiver.deliveries)
    assert paths == ["/cb0", "/cb1"]  # each subscription got the update once, not once a replica


async def _no_run(_source_id: str) -> None:
    return None


def jobs_left(store: Store) -> int:
    row = store._one(
        "SELECT COUNT(*) FROM procrastinate_jobs WHERE task_name = ? AND status IN (?, ?)",
        ("websub_deliver", "todo", "doing"),
    )
    return int(row[0]) if row else 0


async def until(check: object, what: str, timeout: float = 60.0) -> None:
    """Wait for an event; `timeout` only ends a broken test (a busy machine never reaches it)."""
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# -- the whole worker: `run --serve` as operators start it ---------------------------------------


def test_run_serve_is_its_own_hub_end_to_end(tmp_path: Path, receiver: Receiver) -> None:
    from tests.blogsite import Post
    from tests.test_cli import Process, free_port, get_or_none, wait_for

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with LocalServer() as site:
        blog = serve_blog(site)
        worker = f'websub_hub = "self"\npublic_url = "{base}"\nwebsub_allow_private = true\n'
        config = write_config(tmp_path, site, worker)
        (config / "sources.toml").write_text(
            f'[[source]]\nid = "blog"\nurl = "{site.url("/")}"\nevery = "2s"\njitter = "0s"\n'
        )
        process = Process.feedworker(
            "run", "--serve", "--port", str(port), "--config", str(config), cwd=tmp_path
        )
        try:
            wait_for(lambda: get_or_none(f"{base}/healthz"), what="/healthz")
            wait_for(lambda: (tmp_path / "feeds" / "blog.rss").exists(), what="the first run")
            topic = f"{base}/feeds/blog.rss"
            form = {
                "hub.mode": "subscribe",
                "hub.topic": topic,
                "hub.callback": receiver.url(),
                "hub.secret": SECRET,
            }
            assert httpx.post(f"{base}/websub", data=form).status_code == 202
            wait_for(lambda: receiver.verifications, what="the verification")
            # A new post: the next run changes the feed, and the hub delivers it unasked.
            text = tuple(
                f"Paragraph {n} of a brand new post about winter onions, sown in the cold frame"
                f" on the first of December and watered sparingly, as old growers advise ({n})."
                for n in range(6)
            )
            new = Post("/2026/12/new-post.html", "A brand new post", text)
            blog.posts.insert(0, new)
            site.route("/", body=blog.index_html([(p.path, p.title) for p in blog.posts]).encode())
            site.route(new.path, body=blog.post_html(new).encode())
            wait_for(lambda: receiver.deliveries, what="the delivery")
            delivery = receiver.deliveries[0]
            assert b"A brand new post" in delivery.body
            expected = hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
            assert delivery.headers["x-hub-signature"] == f"sha256={expected}"
            assert delivery.headers["content-type"].startswith("application/rss+xml")
            assert process.terminate() == 0, process.log()
        finally:
            process.stop()
