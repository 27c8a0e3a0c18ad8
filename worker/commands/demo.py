"""`feedworker demo`: the whole path on a sample site bundled with the package, offline.

1. serve `worker/commands/demo_site/` (an index page with a sidebar widget, four articles with share
   bars and comments, a permissive robots.txt) on 127.0.0.1, on a free port;
2. write a config for it into a temporary folder (or `--dir`);
3. run the source once, as `feedworker run --once` would;
4. serve the feeds and the status page until Ctrl-C (not with `--once`), printing where to look.

The demo reads no `FEEDWORKER_*` variable, so it never writes to an operator's real state.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from worker.config import Config, load_config
from worker.errors import FeedworkerError
from worker.models import RunReport
from worker.service.runner import Worker
from worker.store.state import Store
from worker.web.serve import (
    FEED_MEDIA_TYPES,
    build_app,
    links_base,
    listen_or_fail,
    serve_socket,
    stop_on_signals,
    store_status_reader,
)

__all__ = ["DEMO_SOURCE_ID", "run_demo", "sample_site", "write_demo_config"]

DEMO_SOURCE_ID = "hedgerow-notes"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def sample_site() -> Iterator[str]:
    """Serve the bundled sample site on 127.0.0.1; yields its base URL (with a trailing /)."""
    with resources.as_file(resources.files("worker.commands") / "demo_site") as folder:
        if not (folder / "index.html").is_file():
            raise FeedworkerError(f"the demo's sample site is missing from this install: {folder}")
        handler = partial(_QuietHandler, directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
        thread.daemon = True
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def write_demo_config(root: Path, site_url: str) -> Path:
    """A config folder under `root` with one source for the sample site; returns its path."""
    config_dir = root / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "feedworker.toml").write_text(
        "# Written by `feedworker demo`.\n"
        "[worker]\n"
        "per_host_delay = 0  # our own sample site: no need to be gentle\n"
    )
    (config_dir / "sources.toml").write_text(
        "[[source]]\n"
        f'id = "{DEMO_SOURCE_ID}"\n'
        f'url = "{site_url}"\n'
        'title = "Hedgerow Notes (feedworker demo)"\n'
        'description = "A sample site bundled with feedworker"\n'
        'language = "en"\n'
        'every = "1h"\n'
    )
    return config_dir


async def run_demo(*, folder: Path | None = None, port: int = 0, once: bool = False) -> int:
    """Scrape the sample site once; then serve its feeds until Ctrl-C unless `once`."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            temp = stack.enter_context(tempfile.TemporaryDirectory(prefix="feedworker-demo-"))
            folder = Path(temp)
        site_url = stack.enter_context(sample_site())
        config = load_config(write_demo_config(folder, site_url), env={})
        print(f"feedworker demo: sample site at {site_url}, files in {folder}")
        async with Worker(config) as worker:
            (report,) = await worker.run_once()
        _print_report(report, config)
        if not report.ok:
            return 1
        if not once:
            await _serve_until_interrupted(config, port)
    return 0


def _print_report(report: RunReport, config: Config) -> None:
    if not report.ok:
        print(f"the run failed: {report.error}")
        return
    print(f"scraped {report.pages_fetched} pages: {report.items_new} new articles")
    for path in _feed_files(config):
        print(f"  feed file: {path}")


def _feed_files(config: Config) -> list[Path]:
    feeds_dir = config.settings.feeds_dir
    candidates = (feeds_dir / f"{DEMO_SOURCE_ID}.{ext}" for ext in FEED_MEDIA_TYPES)
    return [path for path in candidates if path.is_file()]


async def _serve_until_interrupted(config: Config, port: int) -> None:
    stop = stop_on_signals()
    sock = listen_or_fail("127.0.0.1", port)  # a port in use: "cannot listen on …", exit 1
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(f"\nstatus page:  {base}/")
    for path in _feed_files(config):
        print(f"feed:         {base}/feeds/{path.name}")
    print(f"OPML:         {base}/opml")
    print("subscribe to a feed in your reader, or open the status page; Ctrl-C stops the demo")
    store = Store.open(config.settings.state_url)
    try:
        base_url = links_base(config.settings, sock)
        app = build_app(
            config, status_reader=store_status_reader(config, store), base_url=base_url, store=store
        )
        await serve_socket(app, sock, stop)
    finally:
        store.close()
