"""SSRF guard: address rules (pure), the connect-time hook, and the fetcher on a local server."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx
import pytest
import respx

from worker.errors import FetchError
from worker.fetch.client import Blocked, Fetcher, FetchOptions
from worker.fetch.client import host_key as fetch_host_key
from worker.fetch.guard import (
    AddressBlocked,
    GuardedBackend,
    blocked_address,
    check_url,
    never_fetched,
    same_origin,
)
from worker.models import Page
from worker.urls import host_key

try:
    from tests.localserver import LocalServer
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    from localserver import LocalServer  # type: ignore[no-redef]

HTML = b"<!doctype html><html><head><title>Local</title></head><body><p>ok</p></body></html>"
HTML_TYPE = ("Content-Type", "text/html; charset=utf-8")

BLOCKED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # CGNAT
    "0.0.0.0",
    "224.0.0.1",
    "233.1.1.1",  # multicast that Python calls global
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "::127.0.0.1",  # IPv4-compatible
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
]
ALLOWED = ["93.184.215.14", "2606:4700::1", "64:ff9b::5db8:d70e", "2002:5db8:d70e::"]


@pytest.mark.parametrize("address", BLOCKED)
def test_internal_addresses_are_blocked(address: str):  # bad input 14
    parsed = ipaddress.ip_address(address)
    assert blocked_address(parsed) == f"blocked address {parsed}"


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address: str):
    assert blocked_address(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "unsupported scheme ftp"),
        ("file:///etc/passwd", "unsupported scheme file"),
        ("http://user:pw@example.com/", "credentials in URL"),
        ("http://169.254.169.254/latest/meta-data", "blocked address 169.254.169.254"),
        ("http://[::1]:8080/", "blocked address ::1"),
        ("http://[64:ff9b::7f00:1]/", "blocked address 64:ff9b::7f00:1"),
        ("https://example.com/", None),
        ("http://127.1/", None),  # not a literal to ipaddress: judged once resolved
    ],
)
def test_check_url(url: str, reason: str | None):
    assert check_url(httpx.URL(url)) == reason


@pytest.mark.parametrize(
    "host",
    ["bücher.example", "BÜCHER.example.", "xn--bcher-kva.example", "Xn--Bcher-Kva.Example"],
)
def test_same_origin_normalises_the_host(host: str):
    assert same_origin(httpx.URL("https://bücher.example:8443/x"), f"https://{host}:8443/blog/")


def test_same_origin_takes_the_source_url_as_configured():
    # listing/pipeline pass the source's `url`; its host must be the one httpx connects to, or
    # the source's own origin counts as untrusted (IDNA 2003 said "strasse.de").
    trusted = "https://Straße.de/news"
    assert same_origin(httpx.URL("https://straße.de/a"), trusted)
    assert same_origin(httpx.URL("https://xn--strae-oqa.de/a"), trusted)
    assert same_origin(httpx.URL("https://straße.de:443/a"), trusted)  # the default port
    assert not same_origin(httpx.URL("https://strasse.de/a"), trusted)


@pytest.mark.parametrize(
    "other",
    [
        "http://127.0.0.1:6379/",  # another port of the same host: another service
        "http://127.0.0.1/",
        "https://127.0.0.1:8080/",  # another scheme
        "http://localhost:8080/",  # another name for it: judged by its address instead
    ],
)
def test_same_origin_is_scheme_host_and_port(other: str):
    assert same_origin(httpx.URL("http://127.0.0.1:8080/feed.xml"), "http://127.0.0.1:8080/")
    assert not same_origin(httpx.URL(other), "http://127.0.0.1:8080/")


def test_fetch_keys_hosts_with_the_one_host_key():
    assert fetch_host_key is host_key
    assert fetch_host_key("https://straße.de/") == "xn--strae-oqa.de"


def test_same_origin_refuses_others():
    url = httpx.URL("https://example.com/")
    assert not same_origin(url, None)
    assert not same_origin(url, "https://evil.example.com/")
    assert not same_origin(url, "https://example.com.evil/")


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "169.254.0.23", "fe80::1", "fd00:ec2::254", "100.100.100.200",
     "192.0.0.192", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"],
)  # fmt: skip
def test_link_local_and_metadata_addresses_are_never_fetched(address: str):
    assert never_fetched(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "192.168.1.1", "::1", "fd00::1"])
def test_other_private_addresses_may_be_trusted(address: str):
    assert never_fetched(ipaddress.ip_address(address)) is None


# -- the connect-time hook, with a fake resolver and a fake network -------------------------------


class RecordingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connected.append(host)
        return object()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def resolver(*answers: list[str]) -> Any:
    """A resolver giving each answer in turn (a rebinding name), counting its calls."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_connects_to_the_address_it_judged_after_one_lookup():  # bad input 15
    inner = RecordingBackend()
    resolve = resolver(["93.184.215.14"], ["127.0.0.1"])  # answers differently the second time
    backend = GuardedBackend(inner, resolve)
    asyncio.run(backend.connect_tcp("rebind.example", 443))
    assert inner.connected == ["93.184.215.14"]
    assert resolve.calls == ["rebind.example"]


@pytest.mark.parametrize("answer", [["10.0.0.5"], ["93.184.215.14", "127.0.0.1"], ["::1"]])
def test_a_name_with_any_internal_answer_is_refused(answer: list[str]):  # bad input 15
    inner = RecordingBackend()
    with pytest.raises(AddressBlocked):
        asyncio.run(GuardedBackend(inner, resolver(answer)).connect_tcp("internal.example", 80))
    assert inner.connected == []


# -- the fetcher, on a real local server ----------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        running.route("/", body=HTML)
        yield running


def fetch(url: str, **kwargs: Any) -> Page:
    kwargs.setdefault("allow_private", False)

    async def go() -> Any:
        fetch_options = FetchOptions(user_agent="feedworker-test/1", per_host_delay=0, retries=0)
        async with Fetcher(fetch_options) as fetcher:
            return await fetcher.fetch_page(url, **kwargs)

    return asyncio.run(go())


def blocked(url: str, **kwargs: Any) -> FetchError:
    with pytest.raises(Blocked) as info:
        fetch(url, **kwargs)
    return info.value


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1", "2130706433", "0x7f000001"])
def test_a_guarded_fetch_never_reaches_loopback(server: LocalServer, host: str):  # 14, 15
    error = blocked(server.url("/", host=host))
    assert error.reason == "blocked address 127.0.0.1"
    assert server.requests == []  # robots.txt included: nothing reached the server


def test_private_is_fine_when_allowed_or_trusted(server: LocalServer):
    assert isinstance(fetch(server.url("/", host="localhost"), allow_private=True), Page)
    trusted = server.url("/blog/", host="LOCALHOST.")
    assert isinstance(fetch(server.url("/", host="localhost"), trusted_origin=trusted), Page)
    assert isinstance(fetch(server.url("/"), trusted_origin=server.url("/")), Page)


def test_a_redirect_from_the_trusted_origin_to_another_internal_one_is_blocked(server: LocalServer):
    server.route("/go", status=302, headers=[("Location", server.url("/", host="localhost"))])
    error = blocked(server.url("/go"), trusted_origin=server.url("/"), respect_robots=False)
    assert error.reason == "blocked address 127.0.0.1"
    assert [r.path for r in server.requests] == ["/go"]  # the target received nothing


def test_another_port_of_the_trusted_host_is_not_trusted(server: LocalServer):
    with LocalServer() as other:  # another service on the same host
        other.route("/", body=HTML)
        trusted = server.url("/")
        error = blocked(other.url("/"), trusted_origin=trusted)  # a link to it
        assert error.reason == "blocked address 127.0.0.1"
        server.route("/go", status=302, headers=[("Location", other.url("/secret"))])
        error = blocked(server.url("/go"), trusted_origin=trusted, respect_robots=False)
        assert error.reason == "blocked address 127.0.0.1"
        assert other.requests == []  # neither the link nor the redirect reached it
    assert [r.path for r in server.requests] == ["/go"]


@pytest.mark.parametrize("allow_private", [False, True])
@respx.mock
def test_a_trusted_metadata_address_is_still_refused(allow_private: bool):
    metadata = respx.get(url__startswith="http://169.254.169.254/").respond(200)
    url = "http://169.254.169.254/latest/meta-data/"
    error = blocked(url, trusted_origin=url, allow_private=allow_private)
    assert error.reason.startswith("blocked address 169.254.169.254 (link-local")
    assert not metadata.called


def test_a_trusted_name_that_resolves_to_a_metadata_address_is_refused_at_connect():
    inner = RecordingBackend()
    backend = GuardedBackend(inner, resolver(["169.254.169.254"]), judge=never_fetched)
    with pytest.raises(AddressBlocked, match="never fetched"):
        asyncio.run(backend.connect_tcp("feeds.example", 80))
    assert inner.connected == []
    asyncio.run(
        GuardedBackend(inner, resolver(["10.0.0.5"]), judge=never_fetched).connect_tcp(
            "intranet.example", 80
        )
    )  # a private address is fine for a trusted origin
    assert inner.connected == ["10.0.0.5"]


def test_credentials_are_refused_for_untrusted_sources(server: LocalServer):
    assert blocked("http://user:pw@example.com/").reason == "credentials in URL"


@respx.mock
def test_redirect_to_metadata_address_is_blocked_at_the_hop():  # bad input 14
    respx.get("https://example.com/a").respond(
        302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    metadata = respx.get(url__startswith="http://169.254.169.254/").respond(200)
    error = blocked("https://example.com/a", respect_robots=False)
    assert error.reason == "blocked address 169.254.169.254"
    assert not metadata.called
