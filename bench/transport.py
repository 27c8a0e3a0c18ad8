"""CPU per fetch of the worker's fetcher on its two possible network backends, in one run.

    python -m bench.transport [--hosts 16] [--pages 8] [--rounds 3] [--fast-pages 300]

`worker.fetch.transport.AsyncioBackend` (the worker's) against httpcore's anyio backend, which
httpx uses by default, under the same `Fetcher`: its politeness, SSRF guard, pools and body
reading, only the sockets' backend swapped. A local server in another process (its CPU is not
counted) serves a 60 KB page over keep-alive HTTP/1.1 on `--hosts` ports, each port its own host
for politeness. Two settings, each backend in interleaved rounds:

- polite: the defaults, one request per host at a time and 1 s between request starts to a
  host (the connection sits idle between them, and is checked before reuse);
- flat out: `per_host_delay = 0`, eight requests in flight, as the pipeline benchmark runs.

Reported: the client process's CPU time per fetch (`time.process_time`), median over the rounds;
wall time is the politeness delay's, not the backend's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpcore

import worker.fetch.guard as guard
from worker.fetch.client import Fetcher, FetchOptions
from worker.fetch.transport import AsyncioBackend

BODY_BYTES = 60_000
SERVER = textwrap.dedent(
    """
    import asyncio, sys

    BODY = b"<!doctype html><html><body><p>" + b"x" * BODY_BYTES + b"</p></body></html>"
    HEAD = (
        b"HTTP/1.1 200 OK\\r\\nContent-Type: text/html; charset=utf-8\\r\\n"
        + f"Content-Length: {len(BODY)}\\r\\n\\r\\n".encode()
    )

    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                if not head:
                    break
                writer.write(HEAD + BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def main(count):
        servers = [await asyncio.start_server(serve, "127.0.0.1", 0) for _ in range(count)]
        print(" ".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(int(sys.argv[1])))
    """
).replace("BODY_BYTES", str(BODY_BYTES))
BACKENDS: dict[str, Callable[[], httpcore.AsyncNetworkBackend]] = {
    "asyncio (feedworker's)": AsyncioBackend,
    "anyio (httpcore's default)": httpcore.AnyIOBackend,
}


@dataclass(frozen=True)
class Round:
    cpu: float  # seconds of this process's CPU
    wall: float
    fetches: int


async def fetch_all(urls: list[str], per_host_delay: float) -> int:
    options = FetchOptions(user_agent="feedworker-bench/1", per_host_delay=per_host_delay)
    async with Fetcher(options) as fetcher:
        pages = await asyncio.gather(
            *(fetcher.fetch_page(url, respect_robots=False, allow_private=True) for url in urls)
        )
    return len(pages)


def one_round(
    backend: Callable[[], httpcore.AsyncNetworkBackend], urls: list[str], delay: float
) -> Round:
    # The fetcher's pools take their backend from `worker.fetch.guard`; swapped for this round.
    guard.AsyncioBackend = backend  # type: ignore[assignment, misc]
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        fetched = asyncio.run(fetch_all(urls, delay))
        return Round(time.process_time() - cpu, time.perf_counter() - wall, fetched)
    finally:
        guard.AsyncioBackend = AsyncioBackend  # type: ignore[misc]


def measure(urls: list[str], delay: float, rounds: int) -> dict[str, list[Round]]:
    results: dict[str, list[Round]] = {name: [] for name in BACKENDS}
    for _ in range(rounds):
        for name, backend in BACKENDS.items():  # interleaved: the machine's drift hits both
            results[name].append(one_round(backend, urls, delay))
    return results


def report(title: str, results: dict[str, list[Round]]) -> None:
    print(f"\n{title}")
    print(
        f"{'backend':<28} {'fetches':>8} {'CPU µs/fetch (median)':>22} {'rounds':>24} {'wall s':>8}"
    )
    medians = {}
    for name, rounds in results.items():
        per_fetch = [r.cpu / r.fetches * 1e6 for r in rounds]
        medians[name] = statistics.median(per_fetch)
        shown = ", ".join(f"{v:.0f}" for v in per_fetch)
        wall = statistics.median(r.wall for r in rounds)
        print(f"{name:<28} {rounds[0].fetches:>8} {medians[name]:>22.0f} {shown:>24} {wall:>8.1f}")
    ours, theirs = medians.values()
    print(f"asyncio backend: {100 * (theirs - ours) / theirs:+.1f}% less CPU per fetch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--pages", type=int, default=8, help="pages per host, polite")
    parser.add_argument("--fast-pages", type=int, default=300, help="pages in all, flat out")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.hosts)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        ports = [int(p) for p in server.stdout.readline().split()]
        polite = [f"http://127.0.0.1:{port}/p{n}" for n in range(args.pages) for port in ports]
        fast = [f"http://127.0.0.1:{ports[n % len(ports)]}/f{n}" for n in range(args.fast_pages)]
        measure(fast[: len(ports)], 0.0, 1)  # warm up: imports, TLS-free pools, caches
        report(
            f"polite (defaults: 1 request per host, 1 s apart), {args.hosts} hosts",
            measure(polite, FetchOptions(user_agent="x").per_host_delay, args.rounds),
        )
        report("flat out (per_host_delay = 0, 8 in flight)", measure(fast, 0.0, args.rounds))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
