"""Cluster mode: pages per second with 1, 2 and 3 replicas; or many sources on a few replicas.

    .ci/postgres.sh .venv/bin/python bench/cluster.py            # a throwaway PostgreSQL
    FEEDWORKER_TEST_POSTGRES_URL=postgresql://… python bench/cluster.py
    .ci/postgres.sh .venv/bin/python bench/cluster.py --sources 100000 --replicas 3 [--minutes 10]

With `--sources` (the scale run, `bench/clusterscale.py`): that many sources, every hour, on the
quiet local web of `bench/quietsite.py` (a 304 once read), and `--replicas` replicas for
`--minutes`; reported: whether the queue keeps up (every schedule slot due in the window run
once, how late), the database size per source, and each replica's memory and CPU.

Without it:

For each replica count, a fresh database, the 30-source local site of tests/test_cluster.py
(each source: an index page and three articles answering after 0.2 s), every source on a 10 s
interval (index pages answer after 0.5 s), and N `feedworker run --serve` replicas for 3 slots.
Reported: pages fetched per second while a slot's work is under way (from the slot's start to
its last request), and the duplicate runs (a source's index fetched more than once in one
slot), which must be 0. On a 2-core machine the point is that the work is shared without
duplication, not a linear speed-up.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.backend import create_database, drop_database
from tests.localserver import LocalServer
from tests.test_cluster import (
    INTERVAL,
    SOURCES,
    Replica,
    next_slot,
    serve_ok,
    serve_site,
    wait_until,
    write_cluster_config,
)

SLOTS = 3
INDEX_DELAY = 0.5  # seconds each index page takes to answer: a slow site, so work is visible


def sleep_until(moment: float) -> None:
    """Until the wall clock reads `moment` (seconds since the epoch)."""
    time.sleep(max(0.0, moment - time.time()))


def measure(server_url: str, replicas: int) -> tuple[float, int, int]:
    """(pages per second, pages, duplicate runs) for `replicas` replicas over SLOTS slots."""
    database = create_database(server_url, prefix="fwbench")
    started: list[Replica] = []
    try:
        with LocalServer() as server, tempfile.TemporaryDirectory() as tmp:
            site = serve_site(server)
            config = write_cluster_config(Path(tmp), site, database)
            for number in range(replicas):
                started.append(Replica(config, Path(tmp), number))
            for replica in started:
                wait_until(lambda r=replica: serve_ok(r), 30, "a replica")
            site.index_delay = INDEX_DELAY
            first = next_slot(time.time() + INTERVAL / 2)  # after the start-up catch-up
            shift = time.time() - time.monotonic()
            sleep_until(first + SLOTS * INTERVAL)
            pages, busy = 0, 0.0
            for slot in range(SLOTS):
                start = first + slot * INTERVAL
                seen = [
                    r.started + shift
                    for r in list(server.requests)
                    if start <= r.started + shift < start + INTERVAL and r.path != "/robots.txt"
                ]
                pages += len(seen)
                busy += (max(seen) - start + INDEX_DELAY) if seen else 0.0
            duplicates = 0
            for times in site.index_fetches().values():
                in_window = [t for t in times if first <= t < first + SLOTS * INTERVAL]
                per_slot = Counter(int(t // INTERVAL) for t in in_window)
                duplicates += sum(count - 1 for count in per_slot.values() if count > 1)
            return pages / max(busy, 1e-9), pages, duplicates
    finally:
        for replica in started:
            replica.stop()
        drop_database(server_url, database)


def main() -> int:
    server_url = os.environ.get("FEEDWORKER_TEST_POSTGRES_URL")
    if not server_url:
        print(
            "needs PostgreSQL: .ci/postgres.sh .venv/bin/python bench/cluster.py", file=sys.stderr
        )
        return 2
    if len(sys.argv) > 1:  # the scale run: its own arguments
        from bench.clusterscale import scale_main

        return scale_main(server_url, sys.argv[1:])
    print(f"{SOURCES} sources every {INTERVAL} s, {SLOTS} slots per measurement")
    print(f"{'replicas':>8} {'pages':>6} {'pages/s':>8} {'duplicate runs':>15}")
    total_duplicates = 0
    for replicas in (1, 2, 3):
        rate, pages, duplicates = measure(server_url, replicas)
        total_duplicates += duplicates
        print(f"{replicas:>8} {pages:>6} {rate:>8.1f} {duplicates:>15}")
    print(f"duplicate runs: {total_duplicates}")
    return 1 if total_duplicates else 0


if __name__ == "__main__":
    sys.exit(main())
