"""Re-crawl cost: one source over a local site of real article pages, crawled twice.

    python bench/recrawl.py [--pages 40] [--data ../shared/bench]

A local HTTP server on 127.0.0.1 serves an index page listing N real pages from the shared
benchmark set, with ETag/Last-Modified, 304s and gzip as a well-behaved site would. feedworker
runs the source twice (two separate workers on the same state, as two scheduled runs would be);
the server counts requests and the bytes it sent (headers included). The second run over the
unchanged site should receive at most 5% of the first run's bytes: the index answers 304 and
known articles are not fetched again.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import html
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from worker.config import load_config
from worker.service.runner import Worker

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "bench"


@dataclass
class Counters:
    requests: int = 0
    bytes_sent: int = 0
    not_modified: int = 0


class Site:
    """path -> (body, etag); the index lists every article."""

    def __init__(self, pages: list[bytes]) -> None:
        self.files: dict[str, bytes] = {}
        links = []
        for i, raw in enumerate(pages):
            path = f"/articles/{i:03d}.html"
            self.files[path] = raw
            links.append(f'<li><a href="{path}">Article number {i} of the benchmark set</a></li>')
        index = f"<html><body><main><ul>{''.join(links)}</ul></main></body></html>"
        self.files["/"] = index.encode()
        self.files["/robots.txt"] = b"User-agent: *\nAllow: /\n"
        self.etags = {
            p: '"' + hashlib.sha1(b).hexdigest()[:16] + '"' for p, b in self.files.items()
        }
        self.counters = Counters()
        self.lock = threading.Lock()


def handler_for(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = site.files.get(self.path)
            if body is None:
                self._send(404, {}, b"")
                return
            etag = site.etags[self.path]
            if self.headers.get("If-None-Match") == etag:
                with site.lock:
                    site.counters.not_modified += 1
                self._send(304, {"ETag": etag}, b"")
                return
            headers = {"ETag": etag, "Last-Modified": "Mon, 02 Nov 2026 10:00:00 GMT"}
            headers["Content-Type"] = (
                "text/plain" if self.path.endswith(".txt") else "text/html; charset=utf-8"
            )
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(body, compresslevel=6)
                headers["Content-Encoding"] = "gzip"
            self._send(200, headers, body)

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            head += f"Content-Length: {len(body)}\r\n\r\n"
            data = head.encode() + body
            self.wfile.write(data)
            with site.lock:
                site.counters.requests += 1
                site.counters.bytes_sent += len(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def load_pages(data: Path, count: int) -> list[bytes]:
    files = sorted((data / "aeb" / "html").glob("*.html.gz"))[:count]
    return [gzip.decompress(f.read_bytes()) for f in files]


async def crawl(config_dir: Path) -> tuple[float, int]:
    started = time.perf_counter()
    async with Worker(load_config(config_dir)) as worker:
        (report,) = await worker.run_once()
    if not report.ok:
        raise SystemExit(f"run failed: {report.error}")
    return time.perf_counter() - started, report.items_new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()

    site = Site(load_pages(args.data, args.pages))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(site))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config"
        config.mkdir()
        # A local site: no politeness delay, so the figures show work, not waiting.
        (config / "feedworker.toml").write_text("[worker]\nper_host_delay = 0\n")
        (config / "sources.toml").write_text(
            f'[[source]]\nid = "bench"\nurl = "{html.escape(url)}"\nlinks = "main a"\n'
            f"max_items = {args.pages}\n"
        )
        rows = []
        for label in ("first run", "second run (unchanged site)"):
            before = Counters(**vars(site.counters))
            seconds, new = asyncio.run(crawl(config))
            now = site.counters
            rows.append(
                (
                    label,
                    now.requests - before.requests,
                    now.not_modified - before.not_modified,
                    now.bytes_sent - before.bytes_sent,
                    seconds,
                    new,
                )
            )
    server.shutdown()

    print(f"recrawl: {args.pages} real article pages on a local site, one source, two runs\n")
    print("| run | requests | 304s | bytes received | time | new items |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, requests, not_modified, sent, seconds, new in rows:
        print(f"| {label} | {requests} | {not_modified} | {sent:,} | {seconds:.2f} s | {new} |")
    share = rows[1][3] / rows[0][3] if rows[0][3] else 0.0
    verdict = "ok" if share <= 0.05 else "ABOVE TARGET"
    print(f"\nsecond run received {share:.2%} of the first run's bytes (target <= 5%): {verdict}")


if __name__ == "__main__":
    main()
