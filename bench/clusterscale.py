"""Cluster mode at scale: many sources shared by a few replicas (`bench/cluster.py --sources`).

    .ci/postgres.sh .venv/bin/python bench/cluster.py --sources 100000 --replicas 3 [--minutes 10]

A fresh database on the PostgreSQL server given, the quiet local web of `bench/quietsite.py` (a
process of its own; 100 sources a host, each host a loopback address of its own; index pages
list no articles, so a run is an index page: 200 the first time, 304 after), the sources every
`--every` (default 1 h, default jitter: each source's slots sit at a fixed point of the hour
given by a hash of its id), and `--replicas` `feedworker run --serve` processes, started one
after the other. Once all of them answer /healthz, the window of `--minutes` starts. Reported:

- the queue: the schedule slots due in the window (but its last `MARGIN` seconds), how many
  ran (the local web logs each index request), how late after its slot (median, 99th
  percentile, worst), slots run twice, and the replicas' own reports (slots missed after the
  misfire grace, runs skipped as still queued); it keeps up when every slot ran once, none later
  than the misfire grace (300 s);
- each replica's memory (RSS, its worst sample) and CPU over the window;
- the database's size per source, and its largest tables.

Every source's first run is in the window (the database is new), so this is the first hour of
a new cluster: the heaviest, with each replica fetching each host's robots.txt once.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from bench.quietsite import QuietWeb, source_number, source_url
from bench.sources import Serving, cpu_seconds, rss_mib, run_command
from tests.conftest import create_database, drop_database

PATHS_PER_HOST = 100  # sources on one host (one listening socket)
GONE_EVERY = 100  # one source in a hundred points at a page that is gone
MARGIN = 120.0  # seconds at the end of the window whose slots are not judged: still running
SAMPLE_EVERY = 10.0  # seconds between samples of the replicas' memory


def write_config(folder: Path, count: int, port: int, state_url: str, every: str) -> Path:
    config = folder / "config"
    config.mkdir(parents=True)
    (config / "feedworker.toml").write_text(
        f'[worker]\nstate_url = "{state_url}"\ncluster = true\nfeeds_dir = "{folder}/feeds"\n'
    )
    with (config / "sources.toml").open("w") as sources:
        for n in range(count):
            gone = n % GONE_EVERY == GONE_EVERY - 1
            url = source_url(n, port, paths_per_host=PATHS_PER_HOST, gone=gone)
            sources.write(f'[[source]]\nid = "s{n:06d}"\nurl = "{url}"\nevery = "{every}"\n\n')
    return config


def scale_main(server_url: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/cluster.py", description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, required=True)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", default="1h")
    args = parser.parse_args(argv)
    database = create_database(server_url, prefix="fwscale")
    try:
        with tempfile.TemporaryDirectory(prefix="fw-cluster-") as tmp:
            return measure(Path(tmp), database, args)
    finally:
        drop_database(server_url, database)


def measure(folder: Path, database: str, args: argparse.Namespace) -> int:
    hosts = math.ceil(args.sources / PATHS_PER_HOST)
    web = QuietWeb(hosts, folder, articles=0, log=folder / "index.log")
    replicas: list[Serving] = []
    try:
        config = write_config(folder, args.sources, web.port, database, args.every)
        env = {k: v for k, v in os.environ.items() if k != "FEEDWORKER_TEST_POSTGRES_URL"}
        upgrade = run_command(["db", "upgrade", "--config", str(config)], env=env)
        print(
            f"{args.sources:,} sources every {args.every} on {hosts:,} hosts,"
            f" {args.replicas} replicas, {args.minutes:g} minutes;"
            f" db upgrade {upgrade.seconds:.1f} s",
            flush=True,
        )
        for number in range(args.replicas):
            replica = Serving(config, folder / f"replica-{number}.log", env=env)
            took = replica.start()
            replicas.append(replica)
            print(f"replica {number}: /healthz after {took:.1f} s", flush=True)
        window = watch(replicas, args.minutes * 60)
        web.counts()  # writes the index log
        queue = judge_queue(config, folder / "index.log", window)
        logged = {
            name: sum(len(r.events(name)) for r in replicas)
            for name in ("schedule slot missed", "run already queued", "stalled run retired")
        }
        sizes = database_sizes(database)
    finally:
        for replica in replicas:
            replica.stop()
        web.stop()
    report(args, window, queue, logged, sizes)
    keeps_up = queue.missing == 0 and queue.worst <= 300 and not logged["schedule slot missed"]
    print(f"\nthe queue keeps up: {'yes' if keeps_up else 'NO'}")
    return 0 if keeps_up else 1


class Window:
    def __init__(self, start: float, end: float, replicas: list[dict[str, float]]) -> None:
        self.start, self.end, self.replicas = start, end, replicas


def watch(replicas: list[Serving], seconds: float) -> Window:
    """Sample each replica's memory every `SAMPLE_EVERY` s for `seconds`; CPU over the window."""
    start = time.time()
    cpu = [cpu_seconds(r.pid) for r in replicas]
    peak = [rss_mib(r.pid) for r in replicas]
    while time.time() < start + seconds:
        time.sleep(min(SAMPLE_EVERY, max(0.0, start + seconds - time.time())))
        peak = [max(p, rss_mib(r.pid)) for p, r in zip(peak, replicas, strict=True)]
        print(
            f"  {time.time() - start:5.0f} s: RSS " + ", ".join(f"{p:.0f}" for p in peak),
            flush=True,
        )
    end = time.time()
    used = [cpu_seconds(r.pid) - c for r, c in zip(replicas, cpu, strict=True)]
    return Window(
        start,
        end,
        [{"rss": p, "cpu": u / (end - start)} for p, u in zip(peak, used, strict=True)],
    )


class Queue:
    def __init__(self) -> None:
        self.due = 0
        self.ran = 0
        self.missing = 0
        self.twice = 0
        self.lags: list[float] = []

    @property
    def worst(self) -> float:
        return max(self.lags, default=0.0)


def judge_queue(config_dir: Path, log: Path, window: Window) -> Queue:
    """Each slot due in the window (but the last MARGIN seconds) against the index requests
    logged by the local web: the first one from the slot on is its run, a second one before
    the next slot a duplicate."""
    from worker.config import load_config
    from worker.service.slots import next_slot_at

    requests: dict[int, list[float]] = defaultdict(list)
    for line in log.read_text().splitlines():
        at, _, where = line.partition(" ")
        requests[source_number(where, PATHS_PER_HOST)].append(float(at))
    queue = Queue()
    until = window.end - MARGIN
    for source in load_config(config_dir, env={}).sources:
        number = int(source.id[1:])
        times = sorted(requests.get(number, []))
        slot = next_slot_at(source, window.start)
        while slot is not None and slot <= until:
            following = next_slot_at(source, slot)
            end = following if following is not None else math.inf
            ran = [t for t in times if slot - 1 <= t < end]
            queue.due += 1
            if ran:
                queue.ran += 1
                queue.lags.append(max(0.0, ran[0] - slot))
                queue.twice += len(ran) > 1
            else:
                queue.missing += 1
            slot = following
    return queue


def database_sizes(database: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(database) as conn:
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        ran = conn.execute("SELECT COUNT(*) FROM source_state").fetchone()
        rows = conn.execute(
            "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables"
            " ORDER BY 2 DESC LIMIT 6"
        ).fetchall()
    sizes = {"(database)": int(total[0]) if total else 0, "(run)": int(ran[0]) if ran else 0}
    sizes.update((name, int(size)) for name, size in rows)
    return sizes


def report(
    args: argparse.Namespace,
    window: Window,
    queue: Queue,
    logged: dict[str, int],
    sizes: dict[str, int],
) -> None:
    minutes = (window.end - window.start) / 60
    print(f"\n### {args.sources:,} sources, {args.replicas} replicas, {minutes:.1f} minutes\n")
    print("| | |\n|---|---|")
    lags = sorted(queue.lags)
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0
    median = statistics.median(lags) if lags else 0.0
    rows = [
        ("slots due (window less its last 2 minutes)", f"{queue.due:,}"),
        ("slots run", f"{queue.ran:,} ({queue.missing:,} not run, {queue.twice:,} run twice)"),
        (
            "lateness after the slot",
            f"median {median:.1f} s, p99 {p99:.1f} s, worst {queue.worst:.1f} s",
        ),
        ("slots missed (later than the misfire grace)", f"{logged['schedule slot missed']:,}"),
        ("runs skipped as still queued", f"{logged['run already queued']:,}"),
        (
            "runs per hour",
            f"{queue.ran / max(1.0, (window.end - MARGIN - window.start)) * 3600:,.0f}",
        ),
    ]
    for number, replica in enumerate(window.replicas):
        rows.append(
            (
                f"replica {number}",
                f"{replica['rss']:.0f} MiB RSS (peak), {replica['cpu']:.1%} of a core",
            )
        )
    total, ran = sizes.pop("(database)"), sizes.pop("(run)")
    rows.append(
        (
            "database",
            f"{total / 2**20:,.0f} MiB after {ran:,} sources' first runs:"
            f" {total / max(ran, 1) / 1024:.1f} KiB a source that ran",
        )
    )
    rows += [(f"  table {name}", f"{size / 2**20:,.1f} MiB") for name, size in sizes.items()]
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"\n(as of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
