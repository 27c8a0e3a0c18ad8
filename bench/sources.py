"""Many sources on one worker: 1,000 and 10,000 sources side by side, against a quiet local web.

    .venv/bin/python -m bench.sources [--scale 1000 --scale 10000] [--window 60]

Every source runs every hour; the local web (`bench/quietsite.py`, a process of its own) gives
each source its own host and answers its index page with 304 once it has been read: the steady
state of a real deployment. 1% of the sources point at a page that is gone (404), so some fail,
as some always do. A third of the sources have a `links` selector and include/exclude
patterns, a quarter a `body` selector and `remove` list, so `check` validates what real configs
hold. Measured per scale, each in processes of its own:

1. `feedworker check`: wall time, CPU, peak memory;
2. a first start on an empty state (`run --serve`): runs in its first `--first-window` seconds
   (they are spread over the hour; all of them ran at once before);
3. `run --once` over every source (politeness off, so it is quick), which fills the state: one
   article per source; CPU per run;
4. the steady state: the state is rewritten as a worker that has run for a while leaves it (each
   source's last run at a random point of the past hour), and `run --serve` works for
   `--window` seconds: its CPU (the worker and its extractor processes), runs, memory;
5. during that window, the status page (first page, failing sources, one host, the last page)
   and `/metrics`: wall time and the worker's CPU for each, bytes;
6. a hot reload of the whole file (a source added): the worker's CPU for it, and how long
   until it logged "config reloaded" (that includes the folder poll, every second, and the
   wait for the file to settle, one poll);
7. the scheduler on its own (APScheduler, one job per source, every source firing a no-op
   within a few seconds): its CPU per fire, and so its share of a core at one run per source
   an hour;
8. the state database's size per source.

The figures in docs/scale.md come from this script. Wall times are those of a shared 2-core
machine; the CPU figures are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline import descendants, rss_kib, tree_rss_mib
from bench.quietsite import QuietWeb, source_url

PYTHON = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
GONE_EVERY = 100  # one source in a hundred points at a page that is gone
REPEATS = 5  # of each request to the status page and /metrics


# -- the local web ---------------------------------------------------------------------------------


# -- a config --------------------------------------------------------------------------------------


def write_config(folder: Path, count: int, port: int) -> Path:
    config = folder / "config"
    config.mkdir(parents=True)
    (config / "feedworker.toml").write_text(
        "[worker]\n"
        f'state_url = "sqlite:///{folder}/state/feedworker.db"\n'
        f'feeds_dir = "{folder}/feeds"\n'
    )
    (config / "sources.toml").write_text("".join(source_table(n, port) for n in range(count)))
    return config


def source_table(number: int, port: int) -> str:
    url = source_url(number, port, gone=number % GONE_EVERY == GONE_EVERY - 1)
    lines = ["[[source]]", f'id = "site-{number:05d}"', f'url = "{url}"', 'every = "1h"']
    if number % 3 == 0:
        lines += ['links = "main h2 a"', r"include = ['/a/\d+\.html$']", "exclude = ['/tag/']"]
    if number % 4 == 0:
        lines += ['body = "article"', 'remove = [".share", "footer"]']
    return "\n".join(lines) + "\n\n"


# -- processes -------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of process `pid` and its children still running (the extractor processes)."""
    total = 0.0
    for member in descendants(pid):
        with contextlib.suppress(OSError, IndexError):
            stat = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
            total += (int(stat[11]) + int(stat[12])) / TICK
    return total


def rss_mib(pid: int) -> float:
    return rss_kib(pid) / 1024


@dataclass
class Finished:
    seconds: float
    cpu: float
    peak_mib: float


def run_command(args: list[str], env: dict[str, str] | None = None) -> Finished:
    started = time.perf_counter()
    child = subprocess.Popen(
        [PYTHON, "-m", "worker", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # 1: `run --once` with failed sources
        raise SystemExit(f"feedworker {' '.join(args)} failed: {status}")
    return Finished(
        time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    )


@dataclass
class Serving:
    """A `feedworker run --serve` process, its JSON log, and its address."""

    config: Path
    log: Path
    env: dict[str, str] | None = None  # instead of this process's environment
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _log_file: object = None

    def start(self) -> float:
        """Start and wait until /healthz answers; returns the seconds that took."""
        self.port = free_port()
        self._log_file = self.log.open("ab")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [PYTHON, "-m", "worker", "run", "--serve", "--port", str(self.port), *self.flags],
            stdout=self._log_file,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url("/healthz"), timeout=5).status_code == 200:
                    return time.perf_counter() - started
            if self.process.poll() is not None:
                raise SystemExit(f"the worker exited: see {self.log}")
            time.sleep(0.1)
        raise SystemExit("the worker did not start")

    @property
    def flags(self) -> list[str]:
        return ["--config", str(self.config), "--log-format", "json"]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def events(self, name: str) -> list[dict[str, object]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=120)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the measurements ------------------------------------------------------------------------------


@dataclass
class Figures:
    sources: int
    rows: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, text: str) -> None:
        self.rows[name] = text
        print(f"  {self.sources:>6,} sources | {name}: {text}", flush=True)


def measure(count: int, web: QuietWeb, args: argparse.Namespace) -> Figures:
    figures = Figures(count)
    with tempfile.TemporaryDirectory(prefix=f"fw-sources-{count}-") as tmp:
        folder = Path(tmp)
        config = write_config(folder, count, web.port)
        check = run_command(["check", "--config", str(config)])
        figures.put(
            "check", f"{check.seconds:.2f} s wall, {check.cpu:.2f} s CPU, {check.peak_mib:.0f} MiB"
        )
        first_start(figures, folder, config, web, args.first_window)
        fill = run_command(
            ["run", "--once", "--config", str(config)],
            env={"FEEDWORKER_PER_HOST_DELAY": "0", "FEEDWORKER_SOURCE_CONCURRENCY": "16"},
        )
        figures.put(
            "run --once, every source (first runs: index + 1 article)",
            f"{fill.cpu / count * 1000:.1f} ms CPU a source, {fill.peak_mib:.0f} MiB peak",
        )
        spread_last_runs(folder / "state" / "feedworker.db", count)
        steady_state(figures, folder, config, web, args.window)
        database = sum(p.stat().st_size for p in (folder / "state").glob("feedworker.db*"))
        figures.put(
            "state database",
            f"{database / 2**20:.1f} MiB, {database / count / 1024:.1f} KiB a source",
        )
    figures.put("scheduler alone (APScheduler, a job per source)", scheduler_alone(count))
    return figures


def first_start(figures: Figures, folder: Path, config: Path, web: QuietWeb, window: float) -> None:
    """A first start on an empty state: how many sources run in its first `window` seconds."""
    worker = Serving(config, folder / "first-start.log")
    before = index_requests(web)
    took = worker.start()
    try:
        time.sleep(window)
        runs = index_requests(web) - before
    finally:
        worker.stop()
    expected = count_expected(figures.sources, window + took)
    figures.put(
        f"first start: sources run in its first {window:.0f} s",
        f"{runs:,} (spread over the hour: about {expected:,.0f}); ready in {took:.1f} s",
    )


def index_requests(web: QuietWeb) -> int:
    """Index pages asked for so far, of live sources and gone ones: one a run."""
    counts = web.counts()
    return counts.get("index", 0) + counts.get("gone", 0)


def count_expected(sources: int, seconds: float) -> float:
    return sources * seconds / 3600


def spread_last_runs(database: Path, count: int) -> None:
    """As a worker that has run for a while leaves the state: each source's last run at a
    random point of the past hour (its next run an hour after), so runs come due at the rate of
    the schedule: one source in 3,600 a second."""
    rng = random.Random(1)
    now = datetime.now(UTC)
    with sqlite3.connect(database) as conn:
        ids = [row[0] for row in conn.execute("SELECT source_id FROM source_state")]
        rows = []
        for source_id in ids:
            last = now - timedelta(seconds=rng.uniform(0, 3600))
            rows.append((_iso(last), _iso(last + timedelta(hours=1)), source_id))
        conn.executemany(
            "UPDATE source_state SET last_run = ?, next_run = ? WHERE source_id = ?", rows
        )
    assert len(ids) == count, (len(ids), count)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def steady_state(
    figures: Figures, folder: Path, config: Path, web: QuietWeb, window: float
) -> None:
    worker = Serving(config, folder / "steady.log")
    took = worker.start()
    figures.put("start to /healthz", f"{took:.1f} s")
    try:
        time.sleep(5)  # start-up work (seeding metrics, the first wake-ups) is done
        cpu, runs = cpu_seconds(worker.pid), index_requests(web)
        rss_start = rss_mib(worker.pid)
        started = time.perf_counter()
        requests = serve_requests(worker, window / 2)
        time.sleep(max(0.0, window - (time.perf_counter() - started)))
        elapsed = time.perf_counter() - started
        used = cpu_seconds(worker.pid) - cpu - sum(r.cpu_total for r in requests)
        done = index_requests(web) - runs
        figures.put(
            f"steady state over {elapsed:.0f} s",
            f"{used / elapsed:.1%} of a core (worker and extractor processes), {done:,} runs"
            f" ({done / elapsed * 3600:,.0f} an hour)",
        )
        figures.put(
            "memory",
            f"worker {rss_mib(worker.pid):.0f} MiB (at start {rss_start:.0f}),"
            f" with its extractor processes {tree_rss_mib(worker.pid):.0f} MiB",
        )
        for request in requests:
            figures.put(request.label, request.summary())
        figures.put("hot reload of the whole file", reload(worker, config))
    finally:
        worker.stop()


@dataclass
class Request:
    label: str
    wall: float
    cpu: float  # one request's
    size: int
    cpu_total: float  # all the requests of this kind: left out of the steady state's CPU
    note: str = ""

    def summary(self) -> str:
        return (
            f"{self.wall * 1000:.0f} ms wall, {self.cpu * 1000:.0f} ms worker CPU,"
            f" {self.size / 1024:,.0f} KiB{self.note}"
        )


def serve_requests(worker: Serving, spacing: float) -> list[Request]:
    """The status page and /metrics: each asked once, then `REPEATS` times (the median wall time
    and the mean CPU of those: the CPU clock ticks every 10 ms)."""
    pages = [
        ("status page, first page", "/"),
        ("status page, failing sources", "/?state=failing"),
        ("status page, one host", "/?host=127.1.0.7"),
        ("status page, last page", "/?page=1000000"),
        ("/metrics", "/metrics"),
    ]
    found = []
    with httpx.Client(timeout=60) as client:
        for label, path in pages:
            before = cpu_seconds(worker.pid)
            client.get(worker.url(path))
            walls = []
            cpu = cpu_seconds(worker.pid)
            for _ in range(REPEATS):
                started = time.perf_counter()
                response = client.get(worker.url(path))
                walls.append(time.perf_counter() - started)
            used = (cpu_seconds(worker.pid) - cpu) / REPEATS
            wall = sorted(walls)[REPEATS // 2]
            note = ""
            if path == "/metrics":
                series = sum(1 for line in response.text.splitlines() if not line.startswith("#"))
                note = f", {series:,} series"
            total = cpu_seconds(worker.pid) - before
            found.append(Request(label, wall, used, len(response.content), total, note))
            time.sleep(spacing / len(pages))
    return found


def reload(worker: Serving, config: Path) -> str:
    """Add a source to sources.toml and wait for the worker to apply it."""
    before = len(worker.events("config reloaded"))
    baseline_start, baseline_cpu = time.perf_counter(), cpu_seconds(worker.pid)
    time.sleep(3)
    rate = (cpu_seconds(worker.pid) - baseline_cpu) / (time.perf_counter() - baseline_start)
    cpu, started = cpu_seconds(worker.pid), time.perf_counter()
    with (config / "sources.toml").open("a") as sources:
        sources.write('[[source]]\nid = "added-by-reload"\nurl = "http://127.1.0.1:9/"\n')
    deadline = time.monotonic() + 120
    while len(worker.events("config reloaded")) == before:
        if time.monotonic() > deadline:
            return "not applied within 120 s"
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    used = cpu_seconds(worker.pid) - cpu - rate * elapsed
    return f"{used:.2f} s worker CPU; applied {elapsed:.1f} s after the edit (polls every 1 s)"


def scheduler_alone(count: int) -> str:
    """In a child: `count` no-op jobs all due within a few seconds; CPU per fire."""
    done = subprocess.run(
        [PYTHON, "-m", "bench.sources", "--scheduler-child", str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    per_fire = result["cpu"] / result["fires"]
    share = per_fire * count / 3600
    return (
        f"{per_fire * 1e6:.0f} µs CPU a fire ({result['fires']:,} fires); at one run per source an"
        f" hour {share:.2%} of a core; start {result['start']:.2f} s CPU, {result['mib']:.0f} MiB"
    )


def scheduler_child(count: int) -> None:
    from worker.config import Source
    from worker.service.schedule import RunTimes, SourceScheduler

    spread = 10.0  # seconds over which every source comes due
    now = datetime.now(UTC)
    rng = random.Random(2)
    sources = [
        Source(id=f"s{n}", url=f"https://s{n}.example/", every="1h", jitter="0s")
        for n in range(count)
    ]
    # Last runs an hour ago, give or take: every source due within `spread` seconds of start.
    times = {
        s.id: RunTimes(now - timedelta(hours=1) + timedelta(seconds=2 + rng.uniform(0, spread)))
        for s in sources
    }
    fired = 0

    async def run(source_id: str) -> None:
        nonlocal fired
        fired += 1

    async def main() -> dict[str, float]:
        scheduler = SourceScheduler(
            run, run_times=lambda ids: {i: times[i] for i in ids}, clock=lambda: now
        )
        started = time.process_time()
        scheduler.start(sources)
        start_cpu = time.process_time() - started
        mib = rss_mib(os.getpid())
        cpu = time.process_time()
        while fired < count:
            await asyncio.sleep(0.5)
        used = time.process_time() - cpu
        scheduler.shutdown()
        return {"cpu": used, "fires": fired, "start": start_cpu, "mib": mib}

    print(json.dumps(asyncio.run(main())))


# -- the report ------------------------------------------------------------------------------------


def report(all_figures: list[Figures]) -> None:
    names: list[str] = []
    for figures in all_figures:
        names += [name for name in figures.rows if name not in names]
    heading = " | ".join(f"{f.sources:,} sources" for f in all_figures)
    print(f"\n| | {heading} |")
    print("|---|" + "---|" * len(all_figures))
    for name in names:
        cells = " | ".join(f.rows.get(name, "-") for f in all_figures)
        print(f"| {name} | {cells} |")


@contextlib.contextmanager
def quiet_web(hosts: int) -> Iterator[QuietWeb]:
    with tempfile.TemporaryDirectory(prefix="fw-quietweb-") as tmp:
        web = QuietWeb(hosts, Path(tmp))
        try:
            yield web
        finally:
            web.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, action="append", help="sources (default 1000, 10000)")
    parser.add_argument("--window", type=float, default=60, help="steady-state seconds")
    parser.add_argument("--first-window", type=float, default=30, help="first-start seconds")
    parser.add_argument("--scheduler-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scheduler_child:
        return scheduler_child(args.scheduler_child)
    scales = args.scale or [1000, 10000]
    print(
        f"many sources on one worker: {', '.join(f'{s:,}' for s in scales)}; {os.cpu_count()} CPUs"
    )
    with quiet_web(max(scales)) as web:
        report([measure(count, web, args) for count in scales])
    return None


if __name__ == "__main__":
    main()
