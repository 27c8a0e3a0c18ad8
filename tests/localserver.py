"""A real HTTP/1.1 server on 127.0.0.1 for tests that need a misbehaving peer.

Each path gets a scripted handler that writes whatever bytes it likes (slow drips, lying
Content-Length, bombs, endless bodies); every request is logged with its start time.

    with LocalServer() as server:
        server.route("/", body=b"<html>hi</html>")
        server.route("/drip", drip_handler)          # def drip_handler(ex: Exchange) -> None
        ... server.url("/drip") ...
        assert server.requests[0].headers["user-agent"] == "..."

Handlers run in their own threads; `Exchange.sleep` returns early (False) when the server stops,
so a handler that never answers does not hold up the test run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Exchange", "LocalServer", "Seen"]

Handler = Callable[["Exchange"], None]
Headers = Iterable[tuple[str, str]] | dict[str, str]


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it; `started` is `time.monotonic()` when its head arrived."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    started: float


class Exchange:
    """What a handler gets: the request, and ways to answer it byte by byte."""

    def __init__(self, handler: BaseHTTPRequestHandler, seen: Seen, stopping: threading.Event):
        self.request = seen
        self._handler = handler
        self._stopping = stopping

    def respond(self, status: int = 200, headers: Headers = (), body: bytes = b"") -> None:
        """A complete response; Content-Length is added unless `headers` sets one."""
        pairs = list(headers.items() if isinstance(headers, dict) else headers)
        if not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in pairs):
            pairs.append(("Content-Length", str(len(body))))
        self.head(status, pairs)
        self.write(body)

    def head(self, status: int = 200, headers: Headers = ()) -> None:
        """Status line and headers only, sent as given (repeats and lies included)."""
        pairs = list(headers.items() if isinstance(headers, dict) else headers)
        lines = [f"HTTP/1.1 {status} Scripted"] + [f"{n}: {v}" for n, v in pairs]
        lines.append("Connection: close")
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def write(self, data: bytes) -> None:
        self._handler.wfile.write(data)
        self._handler.wfile.flush()

    def write_chunk(self, data: bytes) -> None:
        """One chunk of a `Transfer-Encoding: chunked` body (b"" ends the body)."""
        self.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def sleep(self, seconds: float) -> bool:
        """Wait; False when the server is stopping (the handler should return)."""
        return not self._stopping.wait(seconds)


class LocalServer:
    """A threaded server on an ephemeral port of 127.0.0.1; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host  # another loopback address (127.0.0.2) stands for another machine
        self.requests: list[Seen] = []
        self._routes: dict[str, Handler] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def route(
        self,
        path: str,
        handler: Handler | None = None,
        *,
        status: int = 200,
        headers: Headers = (("Content-Type", "text/html; charset=utf-8"),),
        body: bytes = b"",
    ) -> None:
        """Script `path` (without query string): a handler, or a fixed response."""
        if handler is None:
            fixed_headers = list(headers.items() if isinstance(headers, dict) else headers)

            def handler(ex: Exchange) -> None:
                ex.respond(status, fixed_headers, body)

        self._routes[path] = handler

    def seen(self, path: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                seen = Seen(self.command, self.path, _lower(self.headers.items()), time.monotonic())
                with server._lock:
                    server.requests.append(seen)
                handler = server._routes.get(self.path.split("?", 1)[0], _not_found)
                self.close_connection = True
                # The client hanging up is often the point of the test.
                with contextlib.suppress(ConnectionError):
                    handler(Exchange(self, seen, server._stopping))

            do_POST = do_HEAD = do_GET  # a browser's page may send them: recorded all the same

            def log_message(self, format: str, *args: object) -> None:
                pass

        return _Handler


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _not_found(ex: Exchange) -> None:
    ex.respond(404, {"Content-Type": "text/plain"}, b"not found")
