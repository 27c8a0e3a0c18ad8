"""Two small proxies on 127.0.0.1 for the proxy tests: an HTTP forward proxy (absolute-form
requests, `CONNECT` refused) and a SOCKS5 proxy (no authentication, or user and password).
Each records what it was asked for and relays to the destination on this machine only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class ProxyLog:
    targets: list[str] = field(default_factory=list)  # "host:port" (SOCKS) or the request line
    auth: list[tuple[str, str]] = field(default_factory=list)


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


def _loopback_only(host: str) -> None:
    # The tests never send anything beyond this machine; a proxy asked for more refuses.
    if host not in ("127.0.0.1", "localhost"):
        raise ConnectionRefusedError(host)


async def _http_proxy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: ProxyLog
) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].decode()
    log.targets.append(line)
    method, target, _version = line.split(" ")
    if method == "CONNECT" or not target.startswith("http://"):
        writer.write(b"HTTP/1.1 405 No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        writer.close()
        return
    hostport, _, path = target.removeprefix("http://").partition("/")
    host, _, port = hostport.partition(":")
    _loopback_only(host)
    up_reader, up_writer = await asyncio.open_connection(host, int(port or 80))
    rest = head.split(b"\r\n", 1)[1]
    up_writer.write(f"{method} /{path} HTTP/1.1\r\n".encode() + rest)
    await up_writer.drain()
    await asyncio.gather(_relay(up_reader, writer), _relay(reader, up_writer))


async def _socks_proxy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: ProxyLog
) -> None:
    _version, count = await reader.readexactly(2)
    methods = await reader.readexactly(count)
    if 2 in methods:
        writer.write(b"\x05\x02")
        await reader.readexactly(1)
        user = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        password = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        log.auth.append((user, password))
        writer.write(b"\x01\x00")
    else:
        writer.write(b"\x05\x00")
    _ver, _cmd, _rsv, kind = await reader.readexactly(4)
    if kind == 3:
        host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
    else:
        host = socket.inet_ntoa(await reader.readexactly(4))
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    log.targets.append(f"{host}:{port}")
    _loopback_only(host)
    up_reader, up_writer = await asyncio.open_connection(host, port)
    writer.write(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", 0))
    await writer.drain()
    await asyncio.gather(_relay(up_reader, writer), _relay(reader, up_writer))


@contextlib.contextmanager
def running_proxy(kind: str) -> Iterator[tuple[str, ProxyLog]]:
    """("http" or "socks5") -> (its URL, what it saw), on its own event loop thread."""
    log = ProxyLog()
    handler = _http_proxy if kind == "http" else _socks_proxy
    loop = asyncio.new_event_loop()
    started = threading.Event()
    address: list[int] = []

    async def serve() -> asyncio.AbstractServer:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                await handler(reader, writer, log)

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        address.append(server.sockets[0].getsockname()[1])
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve())
        started.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"{kind}://127.0.0.1:{address[0]}", log
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
