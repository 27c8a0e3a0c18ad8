"""Rendering cost: the same pages fetched plainly, then fetched and rendered in headless Chromium.

    .venv/bin/python bench/render.py [PAGES]        # make bench-render

The site is tests/jsblog.py's blog on 127.0.0.1 (each page a shell, a script, and one or two
JSON requests), PAGES posts (default 40). In one run, in order:
1. plain: every post page fetched by the fetcher (what a source without `render` does);
2. rendered, render_concurrency 1, then 2: every post page fetched and rendered.
Reported for each: pages per second (wall clock: only comparable within one run, on a quiet
machine), CPU seconds per page of this process and of the browser's processes (from /proc; the
sturdier figure on a shared machine), and the peak memory of the browser's process group
(proportional set size, sampled every 50 ms) and this process's peak resident size.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.jsblog import JsBlog
from tests.localserver import LocalServer
from worker.fetch.client import Fetcher, FetchOptions
from worker.models import Page
from worker.render import Renderer, RendererOptions, RenderPolicy, find_browser
from worker.render.browser import group_memory, group_stats

MIB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    label: str
    pages: int
    seconds: float
    own_cpu: float
    browser_cpu: float
    browser_peak: int

    def line(self) -> str:
        rate = self.pages / self.seconds
        own = self.own_cpu / self.pages * 1000
        browser = self.browser_cpu / self.pages * 1000
        peak = f"{self.browser_peak / MIB:6.0f} MiB" if self.browser_peak else "      -    "
        return (
            f"{self.label:<26} {rate:7.1f} pages/s   CPU/page: feedworker {own:6.1f} ms,"
            f" browser {browser:6.1f} ms   browser peak {peak}"
        )


def group_cpu(pgid: int | None) -> float:
    """CPU seconds (user + system) of the live processes of a process group."""
    if pgid is None:
        return 0.0
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in group_stats(pgid))
    return ticks / TICKS  # utime, stime


def timed_memory(pid: int) -> tuple[int, float]:
    started = time.thread_time()
    return group_memory(pid), time.thread_time() - started


async def sample_peak(renderer: Renderer, stop: asyncio.Event, peak: list[float]) -> None:
    """The browser's peak memory in peak[0]; the CPU this sampling took in peak[1] (the bench's,
    not feedworker's: subtracted)."""
    while not stop.is_set():
        pid = renderer.browser.pid
        if pid is not None:
            used, cpu = await asyncio.to_thread(timed_memory, pid)
            peak[0], peak[1] = max(peak[0], used), peak[1] + cpu
        await asyncio.sleep(0.05)


async def plain(urls: list[str], options: FetchOptions) -> Figures:
    started, cpu = time.perf_counter(), time.process_time()
    async with Fetcher(options) as fetcher:
        await asyncio.gather(*(fetcher.fetch_page(url, respect_robots=False) for url in urls))
    return Figures(
        "plain fetch", len(urls), time.perf_counter() - started, time.process_time() - cpu, 0.0, 0
    )


async def rendered(urls: list[str], options: FetchOptions, concurrency: int) -> Figures:
    renderer = Renderer(RendererOptions(concurrency=concurrency))
    policy = RenderPolicy(trusted_origin=urls[0])
    stop, peak = asyncio.Event(), [0.0, 0.0]
    async with Fetcher(options) as fetcher:
        # Started before the clock: the browser's start is paid once per worker, not per page.
        warm = await fetcher.fetch_page(urls[0], decode=False, respect_robots=False)
        assert isinstance(warm, Page)
        await renderer.render(warm, fetcher, policy)
        pgid = renderer.browser.pid
        sampler = asyncio.create_task(sample_peak(renderer, stop, peak))
        started, cpu, browser_cpu = time.perf_counter(), time.process_time(), group_cpu(pgid)

        async def one(url: str) -> None:
            page = await fetcher.fetch_page(url, decode=False, respect_robots=False)
            assert isinstance(page, Page)
            result = await renderer.render(page, fetcher, policy)
            assert "Ada Gardener" in result.page.text, url

        await asyncio.gather(*(one(url) for url in urls))
        seconds = time.perf_counter() - started
        stop.set()
        await sampler
        figures = Figures(
            f"rendered, concurrency {concurrency}",
            len(urls),
            seconds,
            time.process_time() - cpu - peak[1],
            group_cpu(pgid) - browser_cpu,
            int(peak[0]),
        )
    await renderer.aclose()
    return figures


def serve_site(count: int, ports: Any, done: Any) -> None:
    """The blog, in a process of its own: its CPU is not counted as feedworker's."""
    with LocalServer() as site:
        JsBlog(count).serve(site)
        ports.put(site.port)
        done.wait()


def main() -> None:
    if find_browser() is None:
        sys.exit("bench/render.py: no headless Chromium (apt-get install chromium-headless-shell)")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    options = FetchOptions(
        user_agent="feedworker-bench/1", per_host_delay=0, concurrency=8, per_host_concurrency=8
    )
    ports: Any = multiprocessing.Queue()
    done = multiprocessing.Event()
    server = multiprocessing.Process(target=serve_site, args=(count, ports, done), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        slugs = [post["slug"] for post in JsBlog(count).posts]
        urls = [f"http://127.0.0.1:{port}/posts/{slug}.html" for slug in slugs]
        results = [
            asyncio.run(plain(urls, options)),
            asyncio.run(rendered(urls, options, 1)),
            asyncio.run(rendered(urls, options, 2)),
        ]
    finally:
        done.set()
        server.join(10)
    print(f"bench/render.py: {count} script-rendered pages on 127.0.0.1, {os.cpu_count()} CPUs")
    for figures in results:
        print("  " + figures.line())
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"  feedworker process peak resident size: {peak_rss / MIB:.0f} MiB")


if __name__ == "__main__":
    main()
