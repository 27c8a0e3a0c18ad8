"""SSRF guard: keep fetches for untrusted sources off loopback, private and other internal networks.

Two layers, both needed: httpx takes `127.1`, `2130706433` or `0x7f000001` for host names, which
the system resolver turns into 127.0.0.1, and a name may resolve to a private address, or to
another one on a second lookup, so the URL alone never tells where a request goes.
- `check_url` refuses what is wrong in the URL itself, on the first URL and on every redirect
  hop: a scheme other than http(s), credentials, an IP literal in a blocked range.
- `GuardedBackend` judges the addresses a host name resolves to, at connect time, once, and then
  connects to the very address it judged (the Host header and TLS SNI keep the name). So `127.1`,
  `2130706433`, a name pointing at 10.0.0.1, or a name that answers differently on a second lookup
  never reach an internal address. `guarded_transport` installs it under httpx.

An address is judged after unwrapping IPv4 embedded in IPv6 (IPv4-mapped, IPv4-compatible, NAT64
`64:ff9b::/96`, 6to4 `2002::/16`): Python 3.11's `is_global` lets several of those through.

What is trusted is a source's own *origin* (scheme, host and port: `same_origin`), never its host
on any port: a source on 127.0.0.1:8080 does not open 127.0.0.1:6379 to the links and redirects
it serves. And some addresses are never fetched, trusted or not (`never_fetched`): link-local
networks, where cloud metadata services answer, and the metadata services' own addresses, so a
trusted name that starts resolving there reaches nothing either.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from worker.errors import AddressBlocked
from worker.fetch.transport import AsyncioBackend, PoolTransport, pool_transport
from worker.urls import host_key

__all__ = [
    "AddressBlocked",
    "GuardedBackend",
    "blocked_address",
    "check_url",
    "guarded_transport",
    "judge_destination",
    "never_fetched",
    "proxied_transport",
    "same_origin",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

RESOLVE_TIMEOUT = 10.0  # seconds to resolve a destination judged before a proxy
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# Never fetched, whatever the source's trust or `allow_private_networks`: no site serves its
# articles from these, and they hand out cloud credentials.
NEVER_FETCHED = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local: AWS, GCP, Azure, OpenStack metadata
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("192.0.0.192/32"),  # Oracle Cloud metadata (classic)
)


def check_url(url: httpx.URL) -> str | None:
    """Why this URL may not be fetched for an untrusted source, or None."""
    if url.scheme not in ("http", "https"):
        return f"unsupported scheme {url.scheme or '(none)'}"
    if url.userinfo:
        return "credentials in URL"
    try:
        literal = ipaddress.ip_address(url.host)
    except ValueError:
        return None  # a name (or an odd IPv4 form like 127.1): judged when it is resolved
    return blocked_address(literal)


def blocked_address(address: IPAddress) -> str | None:
    """Why connecting to this address is refused, or None when it is a public unicast address."""
    judged = _unwrap(address)
    if (
        not judged.is_global
        or judged.is_multicast
        or judged.is_reserved
        or judged.is_unspecified
        or judged.is_loopback
        or judged.is_link_local
        or judged.is_private
    ):
        return f"blocked address {address}"
    return None


def never_fetched(address: IPAddress) -> str | None:
    """Why this address is refused even to a trusted origin (link-local, metadata), or None."""
    judged = _unwrap(address)
    if any(judged in network for network in NEVER_FETCHED if network.version == judged.version):
        return f"blocked address {address} (link-local or cloud metadata: never fetched)"
    return None


def check_trusted_url(url: httpx.URL) -> str | None:
    """Why a URL on a trusted origin may still not be fetched (an IP literal `never_fetched`)."""
    try:
        literal = ipaddress.ip_address(url.host)
    except ValueError:
        return None  # a name: judged when it is resolved
    return never_fetched(literal)


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address carried inside an IPv6 one, when there is one."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def same_origin(url: httpx.URL, trusted: str | None) -> bool:
    """Whether `url` has the origin (scheme, host, port) of the URL `trusted` (a source's `url`,
    as configured: any case, Unicode or punycode, a final dot, the default port written or not).
    Hosts go through `worker.urls.host_key`, the one IDNA rule."""
    if not trusted or not trusted.strip():
        return False
    wanted = host_key(trusted.strip())
    scheme = trusted.strip().partition(":")[0].lower()
    return bool(wanted) and url.scheme == scheme and host_key(str(url)) == wanted


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


Judge = Callable[[IPAddress], str | None]  # why an address is refused, or None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves once, refuses if any answer is blocked (by `judge`: `blocked_address` for the SSRF
    guard, `never_fetched` for a trusted origin), then connects to an address it judged."""

    def __init__(
        self,
        inner: httpcore.AsyncNetworkBackend,
        resolve: Resolver = _system_resolve,
        judge: Judge = blocked_address,
    ) -> None:
        self._inner = inner
        self._resolve = resolve
        self._judge = judge

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._judged_addresses(host, port, timeout)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def _judged_addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no address for {host} in time") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            reason = self._judge(ipaddress.ip_address(address.split("%", 1)[0]))
            if reason:
                raise AddressBlocked(reason)
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressBlocked("unix sockets are blocked")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    limits: httpx.Limits,
    resolve: Resolver = _system_resolve,
    *,
    verify: ssl.SSLContext | bool = True,
    judge: Judge = blocked_address,
) -> PoolTransport:
    """A transport whose connections all pass `GuardedBackend` (around `AsyncioBackend`)
    judging with `judge`; `verify` as for httpx. The backend is the pool's own, given to
    httpcore's constructor (`tests/test_fetch_guard.py` proves it is in force on every
    connection)."""
    backend = GuardedBackend(AsyncioBackend(), resolve, judge)
    return pool_transport(limits, backend, verify=verify)


async def judge_destination(
    host: str, port: int, judge: Judge, resolve: Resolver = _system_resolve
) -> None:
    """Before a request goes to a proxy: `host` resolved here and every address judged
    (`AddressBlocked` when one is refused). The proxy resolves the name again; a name that
    answers differently then is the proxy's network's to guard (see docs/rendering.md)."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await _resolve_in_time(resolve, host, port)
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise httpx.ConnectError(f"no address for {host}")
    for address in addresses:
        reason = judge(ipaddress.ip_address(address.split("%", 1)[0]))
        if reason:
            raise AddressBlocked(reason)


async def _resolve_in_time(resolve: Resolver, host: str, port: int) -> list[str]:
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            return await resolve(host, port)
    except TimeoutError:
        raise httpx.ConnectTimeout(f"no address for {host} in time") from None


def proxied_transport(
    limits: httpx.Limits, proxy: str, *, verify: ssl.SSLContext | bool = True
) -> PoolTransport:
    """A transport sending through `proxy` (http, https or socks5), its connections to the proxy
    on `worker.fetch.transport`'s backend, given to httpcore's public proxy constructors. The
    proxy is the operator's and is not judged; the destination is, before sending
    (`judge_destination`)."""
    if not isinstance(verify, ssl.SSLContext):
        verify = httpx.create_ssl_context(verify=verify, trust_env=False)
    parsed = httpx.Proxy(proxy)
    url = httpcore.URL(
        scheme=parsed.url.raw_scheme,
        host=parsed.url.raw_host,
        port=parsed.url.port,
        target=parsed.url.raw_path,
    )
    backend = AsyncioBackend()
    pool: httpcore.AsyncConnectionPool
    if parsed.url.scheme == "socks5":
        pool = httpcore.AsyncSOCKSProxy(
            proxy_url=url,
            proxy_auth=parsed.raw_auth,
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
    else:
        pool = httpcore.AsyncHTTPProxy(
            proxy_url=url,
            proxy_auth=parsed.raw_auth,
            proxy_headers=parsed.headers.raw,
            proxy_ssl_context=parsed.ssl_context,
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
    return PoolTransport(pool, backend)
