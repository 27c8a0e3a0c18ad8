"""Pipeline throughput: feedworker against the obvious httpx + trafilatura loop, on a local web.

    .venv/bin/python -m bench.pipeline [--scale 100x20 --scale 1000x20] [--concurrency 8]
                                       [--passes 3] [--profile FILE] [--no-inline]
                                       [--extract-processes N ...] [--data ../shared/bench]

A local web on 127.0.0.1 serves N sites, one port each (so each site is its own host for the
per-host politeness limits, as on the real web). Every site has an index page listing M article
pages built from the real pages of the shared `aeb` set, each wrapped in that site's own chrome
(a masthead with a nav bar, a "popular" sidebar and a footer whose wording and class names vary
per site), so template learning has something to learn. Responses are precomputed byte pieces
joined per request, served uncompressed with an ETag.

The runs are measured one at a time, each a child with its own process tree: CPU time
from `os.wait4` (which includes feedworker's extractor processes, children the worker reaps) and
peak RSS sampled every 0.1 s from /proc as the sum over the tree:

1. feedworker: `feedworker run --once` over a generated config (`per_host_delay = 0`: a local site
   needs no politeness gap, so the figures show work, not waiting), with the first
   `--extract-processes` given (else the worker's default);
2. baseline: httpx with the same request concurrency fetching the same index and article pages,
   `trafilatura.extract` on each article as it arrives (the obvious asyncio loop);
3. feedworker again, as in 1, on a fresh state: the machine's speed drifts over minutes, so the
   ratio compares the baseline with 1 and 3 together (pages over seconds of both), which bracket
   it in time; then feedworker with each further `--extract-processes N` given, and with
   `extract_processes = 0` (extraction in the event loop's thread, not in child processes beside
   it), to show what the extractor processes buy (`--no-inline` skips that one);
4. repeated runs: one worker process running every source three times (`--passes`), each pass over
   a new set of M articles per site (the sites "publish"), on the same state database: its
   process tree's RSS after each pass, which should stay within 10% of the first pass.

Printed per scale: article pages per second, CPU seconds per page, peak RSS, the ratio, the
database size after the runs. `--profile FILE` runs the feedworker child under pyinstrument
(text report written to FILE) instead of the plain command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "bench"
PYTHON = sys.executable

# Chrome vocabulary; a site picks one of each by its number, so neighbours differ.
MASTHEAD_CLASSES = ("site-header", "masthead", "top-bar", "branding")
SIDEBAR_CLASSES = ("sidebar", "rail", "widget-area", "aside-col")
SECTIONS = ("World", "Politics", "Business", "Tech", "Science", "Culture", "Sport", "Opinion")
POPULAR = ("Popular on {name}", "Most read at {name}", "Trending now", "Editors' picks")
FOOTERS = (
    "© 2026 {name} Media Group. All rights reserved. Reproduction without permission prohibited.",
    "{name} is an independent publication. Contact the newsroom or send us a tip any time.",
    "Copyright {name}. Sign up for our morning newsletter and never miss a story again.",
)


# -- the local web --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourcePage:
    """A real page cut where a site's chrome goes in: after `<body…>` and before `</body>`."""

    head: bytes
    middle: bytes
    tail: bytes
    title: str


def load_pages(data: Path) -> list[SourcePage]:
    pages = []
    for path in sorted((data / "aeb" / "html").glob("*.html.gz")):
        raw = gzip.decompress(path.read_bytes())
        lower = raw.lower()
        open_at = lower.find(b"<body")
        start = lower.find(b">", open_at) + 1 if open_at >= 0 else 0
        end = lower.rfind(b"</body")
        end = end if end >= start else len(raw)
        found = re.search(rb"<title[^>]*>(.*?)</title", raw, re.S | re.I)
        title = found.group(1).decode("utf-8", "replace").strip() if found else ""
        title = re.sub(r"\s+", " ", re.sub(r"<[^>]+>|[&<>\"]", " ", title))[:120]
        pages.append(SourcePage(raw[:start], raw[start:end], raw[end:], title or path.stem))
    return pages


class Web:
    """N sites × M articles; `generation` (one per pass) picks which M articles are listed."""

    def __init__(self, pages: list[SourcePage], sites: int, per_site: int) -> None:
        self.pages = pages
        self.sites = sites
        self.per_site = per_site
        self.generation = 0
        self.ports: list[int] = []
        self.article_requests = 0
        self.requests = 0
        self._chrome = [self._site_chrome(n) for n in range(sites)]

    def page_for(self, site: int, generation: int, number: int) -> SourcePage:
        return self.pages[self.page_index(site, generation, number)]

    def page_index(self, site: int, generation: int, number: int) -> int:
        return (site * 13 + generation * self.per_site + number) % len(self.pages)

    def _site_chrome(self, n: int) -> tuple[bytes, bytes]:
        name = f"The Site {n} {('Gazette', 'Daily', 'Courier', 'Herald', 'Post')[n % 5]}"
        sections = [SECTIONS[(n + k) % len(SECTIONS)] for k in range(5)]
        nav = "".join(f'<li><a href="/section/{s.lower()}">{s}</a></li>' for s in sections)
        header = (
            f'<header class="{MASTHEAD_CLASSES[n % 4]}"><a class="logo" href="/">{name}</a>'
            f"<nav><ul>{nav}</ul></nav></header>"
        )
        popular = POPULAR[n % len(POPULAR)].format(name=name)
        picks = "".join(
            f'<li><a href="/evergreen/{k}.html">{name} guide number {k} to living well</a></li>'
            for k in range(5)
        )
        footer = FOOTERS[n % len(FOOTERS)].format(name=name)
        tail = (
            f'<aside class="{SIDEBAR_CLASSES[n % 4]}"><h3>{popular}</h3><ul>{picks}</ul></aside>'
            f"<footer><p>{footer}</p><p>About {name} · Careers · Privacy · Terms</p></footer>"
        )
        return header.encode(), tail.encode()

    def index(self, site: int) -> bytes:
        header, tail = self._chrome[site]
        items = []
        for j in range(self.per_site):
            title = self.page_for(site, self.generation, j).title
            items.append(
                f'<li><h2><a href="/g{self.generation}/a{j}.html">{title}</a></h2>'
                f"<p>Story {j} of today's edition.</p></li>"
            )
        body = f"<main><ul>{''.join(items)}</ul></main>".encode()
        return (
            b"<!doctype html><html><head><title>Index</title></head><body>%b%b%b</body></html>"
            % (
                header,
                body,
                tail,
            )
        )

    def body(self, site: int, path: str) -> tuple[bytes, bytes] | None:
        """The body served at `path` and its ETag. The tag names what the body is made of (the
        site, and the listing's generation or the page), so equal tags mean equal bytes without
        hashing each body: the server shares the worker's two cores, and hashing every page
        cost it 0.3 ms a page that a real site's server, on its own machine, would not take
        from the worker."""
        if path == "/":
            return self.index(site), b"i%d-%d" % (site, self.generation)
        if path == "/robots.txt":
            return b"User-agent: *\nAllow: /\n", b"r"
        found = re.fullmatch(r"/g(\d+)/a(\d+)\.html", path)
        if found is None:
            return None
        generation, number = int(found[1]), int(found[2])
        chosen = self.page_index(site, generation, number)
        page = self.pages[chosen]
        header, tail = self._chrome[site]
        self.article_requests += 1
        tag = b"a%d-%d" % (site, chosen)
        return b"".join((page.head, header, page.middle, tail, page.tail)), tag

    async def serve(self, site: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode("latin-1")
                self.requests += 1
                served = self.body(site, path)
                if served is None:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                kind = b"text/plain" if path.endswith(".txt") else b"text/html; charset=utf-8"
                body, etag = served
                if f'"{etag.decode()}"'.encode() in head:
                    writer.write(b'HTTP/1.1 304 Not Modified\r\nETag: "%b"\r\n\r\n' % etag)
                    continue
                head = b'HTTP/1.1 200 OK\r\nContent-Type: %b\r\nETag: "%b"\r\n' % (kind, etag)
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body))
                writer.write(body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> None:
        """Serve every site on its own port from one event loop in a background thread."""
        ready = threading.Event()

        async def main() -> None:
            for site in range(self.sites):
                server = await asyncio.start_server(
                    lambda r, w, s=site: self.serve(s, r, w), "127.0.0.1", 0, backlog=64
                )
                self.ports.append(server.sockets[0].getsockname()[1])
            ready.set()
            await asyncio.Event().wait()

        threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()
        ready.wait()


# -- the contestants, each run as a child process -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measure:
    seconds: float
    cpu: float
    peak_mib: float
    pages: int
    output: str

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds

    @property
    def cpu_per_page(self) -> float:
        return self.cpu / max(self.pages, 1)


def descendants(root: int) -> set[int]:
    """`root` and every process below it (from each process's parent in /proc/PID/stat)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):  # gone meanwhile
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError, StopIteration):
        status = Path(f"/proc/{pid}/status").read_text()
        return next(int(x.split()[1]) for x in status.splitlines() if x[:6] == "VmRSS:")
    return 0


def tree_rss_mib(root: int) -> float:
    """Resident memory of process `root` and all its descendants (extractor processes), MiB."""
    return sum(rss_kib(pid) for pid in descendants(root)) / 1024


class TreeSampler:
    """Samples a process tree's summed RSS every `interval` seconds in a thread; `peak` in MiB
    (os.wait4 only gives the largest single process's)."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, tree_rss_mib(self.pid))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def run_child(command: list[str], web: Web, *, stdin_lines: int = 0) -> Measure:
    """Run `command`, returning its wall time, CPU time (os.wait4's, which includes the children
    it reaped: the worker's extractor processes) and peak RSS (the largest of wait4's figure and
    the sampled sum over the process tree: the worker and its extractor processes together).

    With `stdin_lines`, the child prints "pass done" lines; each one advances the web's
    generation and is answered on the child's stdin (the repeated-runs mode)."""
    before = web.article_requests
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert child.stdout is not None and child.stdin is not None
    sampler = TreeSampler(child.pid)
    lines = []
    for line in child.stdout:
        lines.append(line)
        if line.startswith("pass done") and stdin_lines:
            web.generation += 1
            child.stdin.write("go\n")
            child.stdin.flush()
    sampler.stop()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0,):
        raise SystemExit(
            f"child failed ({child.returncode}): {' '.join(command)}\n{''.join(lines)}"
        )
    return Measure(
        seconds=seconds,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_mib=max(usage.ru_maxrss / 1024, sampler.peak),
        pages=web.article_requests - before,
        output="".join(lines),
    )


def write_config(
    folder: Path, web: Web, concurrency: int, tag: str, processes: int | None = None
) -> Path:
    config = folder / f"config-{tag}"
    config.mkdir()
    (config / "feedworker.toml").write_text(
        "[worker]\n"
        f'feeds_dir = "feeds-{tag}"\n'
        f'state_url = "sqlite:///state-{tag}/feedworker.db"\n'
        "per_host_delay = 0\n"  # local sites: no politeness gap, the figures show work
        f"concurrency = {concurrency}\n"
        f"source_concurrency = {concurrency}\n"
        'log_level = "WARNING"\n'
        + ("" if processes is None else f"extract_processes = {processes}\n")
    )
    sources = [
        f'[[source]]\nid = "site-{n}"\nurl = "http://127.0.0.1:{port}/"\n'
        f'links = "main h2 a"\nmax_items = {web.per_site}\n'
        for n, port in enumerate(web.ports)
    ]
    (config / "sources.toml").write_text("\n".join(sources))
    return config


def feedworker_command(config: Path, profile: Path | None) -> list[str]:
    run = ["run", "--once", "--config", str(config)]
    if profile is None:
        return [PYTHON, "-m", "worker", *run]
    return [PYTHON, "-m", "pyinstrument", "-r", "text", "-o", str(profile), "-m", "worker", *run]


def database_mib(config: Path, tag: str) -> float:
    files = (config.parent / f"state-{tag}").glob("feedworker.db*")
    return sum(f.stat().st_size for f in files) / 2**20


def measure_scale(args: argparse.Namespace, pages: list[SourcePage], sites: int, per: int) -> None:
    web = Web(pages, sites, per)
    web.start()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        first = args.extract_processes[0]
        # The default setting runs twice, just before and just after the baseline, and is
        # compared as the two together: the machine's speed drifts over minutes, and
        # bracketing the baseline's run cancels a steady drift instead of charging it to one
        # side. The other settings come after.
        config = write_config(folder, web, args.concurrency, "once", first)
        before = run_child(feedworker_command(config, args.profile), web)
        items = _count_items(config, "once")
        urls = folder / "indexes.json"
        urls.write_text(json.dumps([f"http://127.0.0.1:{p}/" for p in web.ports]))
        base = run_child(
            [
                PYTHON,
                "-m",
                "bench.pipeline",
                "--baseline-child",
                str(urls),
                "-c",
                str(args.concurrency),
            ],
            web,
        )
        config = write_config(folder, web, args.concurrency, "again", first)
        after = run_child(feedworker_command(config, None), web)
        variants = []  # the same run with other extract_processes: 0 is the event loop's thread
        for processes in [*args.extract_processes[1:], *([0] if args.inline else [])]:
            config = write_config(folder, web, args.concurrency, f"p{processes}", processes)
            variants.append((processes, run_child(feedworker_command(config, None), web)))
        repeated = None
        if args.passes > 1:
            config = write_config(folder, web, args.concurrency, "passes", first)
            command = [PYTHON, "-m", "bench.pipeline", "--passes-child", str(config)]
            repeated = run_child([*command, "--passes", str(args.passes)], web, stdin_lines=1)
            passes_db = database_mib(config, "passes")
        once_db = database_mib(folder / "config-once", "once")
    report(sites, per, args.concurrency, (first, before, after), items, base, once_db, variants)
    if repeated is not None:
        report_passes(repeated, passes_db)


def _count_items(config: Path, tag: str) -> int:
    import sqlite3

    with sqlite3.connect(config.parent / f"state-{tag}" / "feedworker.db") as conn:
        return conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]


def report(
    sites: int,
    per: int,
    conc: int,
    ours_runs: tuple[int | None, Measure, Measure],
    items: int,
    base: Measure,
    db_mib: float,
    variants: list[tuple[int, Measure]],
) -> None:
    print(
        f"\n## {sites} sites × {per} articles ({sites * per:,} article pages, concurrency {conc})\n"
    )
    print("| | article pages | wall time | pages/s | CPU s/page | peak RSS | vs baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    processes, before, after = ours_runs
    ours = both(before, after)
    setting = "default" if processes is None else str(processes)
    name = f"feedworker run --once, extract_processes = {setting}"
    rows = [
        (f"{name}: before the baseline", before),
        (f"{name}: after the baseline", after),
        (f"**{name}: both runs**", ours),
    ]
    rows += [(f"feedworker, extract_processes = {n}", m) for n, m in variants]
    rows.append(("httpx + trafilatura", base))
    for label, m in rows:
        print(
            f"| {label} | {m.pages:,} | {m.seconds:.1f} s | {m.pages_per_s:.1f} |"
            f" {m.cpu_per_page * 1000:.1f} ms | {m.peak_mib:.0f} MiB |"
            f" {m.pages_per_s / base.pages_per_s:.2f}× |"
        )
    ratio = ours.pages_per_s / base.pages_per_s
    print(
        f"\nfeedworker (both runs of the default): {ratio:.2f}× the baseline's pages/s,"
        f" {base.cpu_per_page / ours.cpu_per_page:.2f}× less CPU per page;"
        f" {items:,} items stored; database after the run: {db_mib:.1f} MiB"
    )


def both(first: Measure, second: Measure) -> Measure:
    """Two runs of the same work as one: pages, seconds and CPU added, the larger peak."""
    return Measure(
        seconds=first.seconds + second.seconds,
        cpu=first.cpu + second.cpu,
        peak_mib=max(first.peak_mib, second.peak_mib),
        pages=first.pages + second.pages,
        output=first.output + second.output,
    )


def report_passes(repeated: Measure, db_mib: float) -> None:
    rss = [float(x) for x in re.findall(r"pass done rss_mib=([\d.]+)", repeated.output)]
    growth = max(rss[1:], default=rss[0]) / rss[0] - 1
    verdict = "ok" if growth <= 0.10 else "ABOVE TARGET"
    shown = ", ".join(f"{r:.0f}" for r in rss)
    print(
        f"repeated runs in one worker process (new articles each pass): RSS after each pass"
        f" {shown} MiB; growth after the first {growth:+.1%} (target <= +10%): {verdict};"
        f" database after {len(rss)} passes: {db_mib:.1f} MiB"
    )


# -- child modes ----------------------------------------------------------------------------------


def baseline_child(urls_file: Path, concurrency: int) -> None:
    """The obvious loop: fetch each index, then its articles, trafilatura on each as it comes."""
    import httpx
    import trafilatura

    indexes = json.loads(urls_file.read_text())
    slots = asyncio.Semaphore(concurrency)
    extracted = 0

    async def get(client: httpx.AsyncClient, url: str) -> str:
        async with slots:
            response = await client.get(url)
            return response.text

    async def site(client: httpx.AsyncClient, index: str) -> None:
        nonlocal extracted
        listing = await get(client, index)
        links = re.findall(r'<h2><a href="([^"]+)"', listing)

        async def article(link: str) -> None:
            nonlocal extracted
            html = await get(client, index.rstrip("/") + link)
            if trafilatura.extract(html, url=link):
                extracted += 1

        await asyncio.gather(*(article(link) for link in links))

    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            await asyncio.gather(*(site(client, index) for index in indexes))

    asyncio.run(main())
    print(f"extracted {extracted}")


def passes_child(config_dir: Path, passes: int) -> None:
    """One worker process, `passes` runs of every source; waits for the web between passes."""
    from worker.config import load_config
    from worker.service.runner import Worker

    async def main() -> None:
        async with Worker(load_config(config_dir)) as worker:
            for _ in range(passes):
                reports = await worker.run_once()
                failed = [r for r in reports if not r.ok]
                if failed:
                    raise SystemExit(f"{len(failed)} sources failed: {failed[0].error}")
                print(f"pass done rss_mib={tree_rss_mib(os.getpid()):.1f}", flush=True)
                await asyncio.to_thread(sys.stdin.readline)

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", action="append", help="SITESxARTICLES (default 100x20, 1000x20)")
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--profile", type=Path)
    parser.add_argument(
        "--extract-processes",
        type=int,
        action="append",
        help="feedworker's extract_processes; repeat for more rows, the first one is also used"
        " for the repeated runs (default: unset, the worker's own default)",
    )
    parser.add_argument(
        "--no-inline",
        dest="inline",
        action="store_false",
        help="skip the second feedworker run with extraction inline (extract_processes = 0)",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--baseline-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--passes-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.extract_processes = args.extract_processes or [None]
    if args.baseline_child:
        return baseline_child(args.baseline_child, args.concurrency)
    if args.passes_child:
        return passes_child(args.passes_child, args.passes)
    pages = load_pages(args.data)
    if not pages:
        parser.error(f"no pages in {args.data / 'aeb' / 'html'}: point --data at the shared bench")
    print(
        f"pipeline benchmark: {len(pages)} real pages from {args.data / 'aeb'},"
        f" {os.cpu_count()} CPUs"
    )
    for scale in args.scale or ["100x20", "1000x20"]:
        sites, per = (int(n) for n in scale.lower().split("x"))
        measure_scale(args, pages, sites, per)
    return None


if __name__ == "__main__":
    main()
