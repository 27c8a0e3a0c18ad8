"""A local web that does not change: after a source's first run, every index page answers 304.

The steady state of a real deployment: most sources, most hours, have nothing new. Used by
`bench/sources.py` and `bench/cluster.py`, in a process of its own (so its CPU is not the
worker's):

    python -m bench.quietsite --hosts 10000 [--port-per-host] [--articles 1]

Each host is its own loopback address, 127.1.0.1, 127.1.0.2, … (one listening socket each, on
one port number), so every source is a host of its own for the worker's per-host politeness,
as on the real web. A host serves:

- ``/robots.txt``: 404 (allow all), as most sites do;
- ``/``: an index page listing ``--articles`` article links, with an ETag: 304 to a matching
  ``If-None-Match``;
- ``/a/<n>.html``: an article of a few paragraphs (enough text to be published);
- ``/gone/``: 404 (a source whose site went away: it fails on every run).

A host also serves more sources under ``/s<k>/``, ``/s<k>/a/<n>.html`` and ``/s<k>/gone/``
(`source_url(..., paths_per_host=K)`): 100,000 sources need more sockets than one process may
open. The listening port is printed as ``ready <port>`` on stdout once every socket listens.
Requests are counted by kind (robots, index, 304, article, gone) and the counts written as JSON
to ``--stats FILE`` on SIGTERM or SIGUSR1; with ``--log FILE``, each index request's time
(epoch seconds) and path too, one line each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

__all__ = ["QuietWeb", "host_address", "host_number", "source_number", "source_url"]

HOSTS_PER_OCTET = 250  # 127.1.X.1 … 127.1.X.250, then the next X


def host_address(number: int) -> str:
    """The loopback address of host `number` (0-based): 127.1.0.1, …, 127.1.0.250, 127.1.1.1, …"""
    high, low = divmod(number, HOSTS_PER_OCTET)
    second, third = divmod(high, 256)
    return f"127.{1 + second}.{third}.{low + 1}"


def host_number(address: str) -> int:
    """The inverse of `host_address`."""
    _, second, third, low = (int(part) for part in address.split("."))
    return ((second - 1) * 256 + third) * HOSTS_PER_OCTET + low - 1


def source_number(where: str, paths_per_host: int = 1) -> int:
    """The source a logged request ("127.1.0.5/s3/" or "127.1.0.5/gone/") is for."""
    host, _, path = where.partition("/")
    number = host_number(host) * paths_per_host
    if path.startswith("s") and paths_per_host > 1:
        number += int(path[1:].split("/", 1)[0])
    return number


def source_url(number: int, port: int, *, paths_per_host: int = 1, gone: bool = False) -> str:
    """The URL of source `number` on the quiet site."""
    host, path = divmod(number, paths_per_host)
    prefix = f"/s{path}" if paths_per_host > 1 else ""
    return f"http://{host_address(host)}:{port}{prefix}/{'gone/' if gone else ''}"


PARAGRAPH = (
    "The committee met on Tuesday to review the proposals submitted over the summer, and after "
    "a long discussion agreed to fund the three projects that had the broadest support among "
    "residents. Work on the first of them, a footbridge over the canal, starts next spring."
)


def article_page(host: str, number: int) -> bytes:
    body = "".join(f"<p>{PARAGRAPH} ({n})</p>" for n in range(4))
    return (
        f"<!doctype html><html><head><title>Story {number} from {host}</title></head><body>"
        f"<header><a href='/'>Home</a></header><article><h1>Story {number} from {host}</h1>"
        f"{body}</article><footer>Contact us</footer></body></html>"
    ).encode()


def index_page(prefix: str, articles: int) -> bytes:
    links = "".join(
        f'<li><h2><a href="{prefix}/a/{n}.html">Story {n}</a></h2></li>' for n in range(articles)
    )
    return f"<!doctype html><html><body><main><ul>{links}</ul></main></body></html>".encode()


class QuietSite(asyncio.Protocol):
    """One connection: HTTP/1.1 requests with keep-alive, answered from memory."""

    def __init__(
        self, host: str, articles: int, counts: Counter[str], seen: list[tuple[float, str]] | None
    ) -> None:
        self.host = host
        self.articles = articles
        self.counts = counts
        self.seen = seen  # (time, host and path) of index requests, when logged
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.answer(head)

    def answer(self, head: bytes) -> None:
        assert self.transport is not None
        path = head.split(b" ", 2)[1].decode("latin-1")
        kind, body, etag = self.route(path)
        self.counts[kind] += 1
        if self.seen is not None and kind in ("index", "gone"):
            self.seen.append((time.time(), self.host + path))
        if body is None:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        if etag in head:
            self.counts["304"] += 1
            self.transport.write(b"HTTP/1.1 304 Not Modified\r\nETag: %b\r\n\r\n" % etag)
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nETag: %b\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (etag, len(body), body)
        )

    def route(self, path: str) -> tuple[str, bytes | None, bytes]:
        prefix, _, rest = path.partition("/a/") if "/a/" in path else (path, "", "")
        if path == "/robots.txt":
            return "robots", None, b""
        if path.endswith("/gone/"):
            return "gone", None, b""
        if rest:
            number = int(rest.removesuffix(".html") or 0)
            return "article", article_page(self.host, number), b'"a%d"' % number
        return "index", index_page(prefix.rstrip("/"), self.articles), b'"i1"'


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    counts: Counter[str] = Counter()
    seen: list[tuple[float, str]] | None = [] if args.log else None
    sockets = []
    port = 0
    for number in range(args.hosts):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_address(number), port))
        port = sock.getsockname()[1]  # the first socket picks the port; the others take it too
        sock.listen(64)
        sockets.append(sock)
    for sock in sockets:
        host = sock.getsockname()[0]
        await loop.create_server(
            lambda h=host: QuietSite(h, args.articles, counts, seen),  # type: ignore[misc]
            sock=sock,
        )
    stop = asyncio.Event()

    def dump() -> None:
        if args.log and seen is not None:
            lines = "".join(f"{at:.3f} {where}\n" for at, where in seen)
            Path(args.log).write_text(lines)
        if args.stats:  # last: its file appearing says that both are written
            Path(args.stats).write_text(json.dumps(counts))

    loop.add_signal_handler(signal.SIGUSR1, dump)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(f"ready {port}", flush=True)
    await stop.wait()
    dump()


class QuietWeb:
    """This site in a process of its own; `counts()` asks it for its request counts (and, with
    `log`, writes the index requests' times there)."""

    def __init__(
        self, hosts: int, folder: Path, *, articles: int = 1, log: Path | None = None
    ) -> None:
        self.stats = folder / "site-stats.json"
        self.log = log
        command = [sys.executable, "-m", "bench.quietsite", "--hosts", str(hosts)]
        command += ["--stats", str(self.stats), "--articles", str(articles)]
        command += ["--log", str(log)] if log else []
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1]
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready "):
            raise SystemExit(f"the local web did not start: {line!r}")
        self.port = int(line.split()[1])

    def counts(self) -> dict[str, int]:
        self.stats.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                return dict(json.loads(self.stats.read_text()))
            time.sleep(0.02)
        raise SystemExit("the local web does not answer")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, required=True)
    parser.add_argument("--articles", type=int, default=1)
    parser.add_argument("--stats", type=Path)
    parser.add_argument("--log", type=Path, help="where to write index request times")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
