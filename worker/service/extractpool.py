"""Where extraction runs: in the event loop's own thread, or in child processes beside it.

Extraction is the pipeline's CPU-heavy stage (parse, score, sanitise, hash), and Python runs one
thread of it at a time. With `extract_processes = N` (N >= 1) pages are extracted in N child
processes while the event loop goes on fetching, storing and publishing: on two cores, fetching
and extraction then overlap instead of taking turns (figures in docs/benchmarks.md).
With 0 they run inline, between fetches (the loop yields after each page).

Either way the job is `extract_page`, a pure function of the page (its text, or its bytes still
to be decoded: a `RawHtml`), URL and options, and its answer is an `Extracted`: the article and
the signature of its text (hashed where it was extracted, so the text is normalised once), or
why there is none. The pipeline hands over raw pages: a child then decodes them itself, and the
event loop's process neither decodes a page nor encodes its text again to pickle it.

A child is `python -m worker.service.extractjob` (the child's side, kept light), spoken to over its
stdin and stdout through the event loop: length-prefixed pickles, one request per page, answers
in order. No helper threads, so a busy event loop never waits for a thread to get the GIL before
a child gets its next page. A child that dies (a parser crash on a hostile page, the OOM killer)
or spends longer than `EXTRACT_TIMEOUT` on one page (it is killed) costs the page it was on,
reported as skipped with that reason; the pages queued behind it are sent again to a new child.

Listing documents (index pages, feeds, sitemaps: `worker.listing.read`) are read the same way, off
the event loop and under the same cap: by the children, or with `extract_processes = 0` in a
worker thread (the loop goes on while it runs, but a thread cannot be stopped: one over the cap
is left to finish, its answer dropped). A document over the cap fails with `ExtractorCrashed`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fcntl
import os
import pickle
import sys
from typing import Protocol

from worker.errors import FeedworkerError
from worker.extract import ExtractOptions
from worker.listing.read import ListingAnswer, ListingRequest, read_listing
from worker.models import RawHtml
from worker.service.extractjob import (
    DEFAULT_JOB,
    EXTRACT,
    EXTRACT_NICENESS,
    FRAME,
    READ_LISTING,
    Extracted,
    ExtractJob,
    Failure,
    extract_page,
)
from worker.service.logs import fields, log

__all__ = [
    "DEFAULT_JOB",
    "EXTRACT_NICENESS",
    "EXTRACT_TIMEOUT",
    "ExtractJob",
    "Extracted",
    "Extractor",
    "ExtractorCrashed",
    "InlineExtractor",
    "ProcessExtractor",
    "extract_page",
    "make_extractor",
]

EXTRACT_TIMEOUT = 60.0  # seconds one page may take in a child before the child is killed
PIPE_BYTES = 1 << 20  # the pipe to a child: Linux's default ceiling for unprivileged processes
# Pages sent to a child ahead of its answers: enough that it never waits for the event loop,
# few enough that pages waiting for a busy child stay unpickled (one copy in memory, not two).
PAGES_AHEAD = 4


class ExtractorCrashed(FeedworkerError):
    """The child process extracting a page died or was killed; the page is skipped."""


class Extractor(Protocol):
    # True when pages given at once are extracted side by side, away from the event loop.
    concurrent: bool

    async def extract(
        self, html: str | RawHtml, url: str, options: ExtractOptions
    ) -> Extracted: ...

    async def read_listing(self, request: ListingRequest) -> ListingAnswer: ...

    async def aclose(self) -> None: ...


class InlineExtractor:
    """Extraction in the calling thread: no processes, no pickling (`extract_processes = 0`).

    Listing documents are read in the one listing thread (`LISTING_THREAD`), one at a time: a
    thread holds the GIL while it parses, and the event loop has to win it back after each
    read or write, so every thread more that parses makes each of the loop's steps wait longer
    (with four, `/healthz` took over a second). A read gets `timeout` seconds once it starts."""

    concurrent = False

    def __init__(self, *, timeout: float = EXTRACT_TIMEOUT) -> None:
        self._timeout = timeout

    async def extract(self, html: str | RawHtml, url: str, options: ExtractOptions) -> Extracted:
        return extract_page(html, url, options)

    async def read_listing(self, request: ListingRequest) -> ListingAnswer:
        loop = asyncio.get_running_loop()
        started = loop.create_future()

        def job() -> ListingAnswer:
            loop.call_soon_threadsafe(_settle, started)
            return read_listing(request)

        reading = loop.run_in_executor(_listing_thread(), job)
        try:
            # Waiting for the reads queued before it is not this document's time.
            await asyncio.wait([started, reading], return_when=asyncio.FIRST_COMPLETED)
            async with asyncio.timeout(self._timeout):
                return await reading
        except TimeoutError:
            reason = f"took longer than {self._timeout:g} s to read (skipped)"
            raise ExtractorCrashed(reason) from None
        finally:
            reading.cancel()  # not started yet (a cancelled run): never started

    async def aclose(self) -> None:
        return None


_LISTING_THREAD: list[concurrent.futures.ThreadPoolExecutor] = []


def _listing_thread() -> concurrent.futures.ThreadPoolExecutor:
    """The process's one listing thread, started on first use (a thread past the time cap
    cannot be stopped: it finishes its document, its answer dropped, then takes the next)."""
    if not _LISTING_THREAD:
        _LISTING_THREAD.append(
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="feedworker-listing")
        )
    return _LISTING_THREAD[0]


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ProcessExtractor:
    """Extraction in `processes` child processes, each started on first use; a page goes to the
    child with the fewest pages waiting. `job` ("module:function") is what a child runs."""

    concurrent = True

    def __init__(
        self, processes: int, *, job: str = DEFAULT_JOB, timeout: float = EXTRACT_TIMEOUT
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.processes = processes
        self._job = job
        self._timeout = timeout
        self._children: list[_Child] = []
        self._closed = False
        self._sent = asyncio.Semaphore(processes * PAGES_AHEAD)

    async def extract(self, html: str | RawHtml, url: str, options: ExtractOptions) -> Extracted:
        answer = await self._ask(EXTRACT, (html, url, options))
        if not isinstance(answer, Extracted):
            raise RuntimeError(f"the extractor process answered a {type(answer).__name__}")
        return answer

    async def read_listing(self, request: ListingRequest) -> ListingAnswer:
        answer = await self._ask(READ_LISTING, request)
        if isinstance(answer, Extracted):
            raise RuntimeError("the extractor process answered a listing with an article")
        return answer  # type: ignore[return-value]  # what `read_listing` returns

    async def _ask(self, task: str, arguments: object) -> object:
        """Send one request to a child and wait for its answer; a `Failure` is raised."""
        if self._closed:
            raise ExtractorCrashed("the extractor is shut down")
        async with self._sent:
            request = pickle.dumps((task, arguments), pickle.HIGHEST_PROTOCOL)
            while True:
                child = await self._child()
                try:
                    answer = await child.submit(request)
                except _Requeue:  # the child died while this page waited behind another one
                    continue
                break
        if isinstance(answer, Failure):
            raise RuntimeError(f"{answer.kind}: {answer.message}")
        return answer

    async def _child(self) -> _Child:
        self._children = [c for c in self._children if c.alive]
        if len(self._children) < self.processes:
            child = _Child(self._job, self._timeout)
            self._children.append(child)
            await child.start()
            return child
        return min(self._children, key=lambda c: c.waiting)

    async def aclose(self) -> None:
        """Stop the children: they finish the page in hand, see their input close and exit."""
        self._closed = True
        children, self._children = self._children, []
        await asyncio.gather(*(c.stop() for c in children))


class _Requeue(Exception):
    """A page queued behind the one a child died on: to be sent to a new child."""


class _Child:
    """One `python -m worker.service.extractjob` process and the pages it has been sent, in
    order."""

    def __init__(self, job: str, timeout: float) -> None:
        self._job = job
        self._timeout = timeout
        self._process: asyncio.subprocess.Process | None = None
        self._started: asyncio.Future[None] | None = None
        self._pending: collections.deque[asyncio.Future[object]] = collections.deque()
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._overdue = False
        self._answered = 0
        self.alive = True

    @property
    def waiting(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        if self._started is None:
            self._started = asyncio.ensure_future(self._spawn())
        await asyncio.shield(self._started)

    async def _spawn(self) -> None:
        # The parent's import path, so the child finds the same `worker` (and a test's job).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "worker.service.extractjob",
                self._job,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            self.alive = False
            raise ExtractorCrashed(f"cannot start an extractor process: {exc}") from exc
        _widen_pipe(self._process.stdin)
        self._reader = asyncio.create_task(self._read_answers())

    async def submit(self, request: bytes) -> object:
        await self.start()
        process = self._process
        if not self.alive or process is None or process.stdin is None:
            raise _Requeue
        answer: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending.append(answer)
        if len(self._pending) == 1:
            self._arm_watchdog()
        process.stdin.write(FRAME.pack(len(request)))  # two writes: no joined copy of the page
        process.stdin.write(request)
        try:
            with contextlib.suppress(ConnectionError):  # a dead child: its reader says so
                await process.stdin.drain()
            return await answer
        except asyncio.CancelledError:
            answer.cancel()  # nobody waits for this page any more
            raise

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = None
        if self._pending:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(self._timeout, self._kill_overdue)

    def _kill_overdue(self) -> None:
        """The page in hand has taken longer than the timeout: end the child."""
        self._overdue = True
        if self._process is not None and self._process.returncode is None:
            self._process.kill()

    async def _read_answers(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        try:
            while True:
                (size,) = FRAME.unpack(await stdout.readexactly(FRAME.size))
                answer = pickle.loads(await stdout.readexactly(size))
                waiter = self._pending.popleft()
                self._answered += 1
                if not waiter.done():  # a cancelled run no longer waits for its pages
                    waiter.set_result(answer)
                self._arm_watchdog()
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError):
            pass
        await self._died()

    async def _died(self) -> None:
        self.alive = False
        if self._watchdog is not None:
            self._watchdog.cancel()
        process = self._process
        code = await process.wait() if process is not None else None
        if not self._pending:
            return
        if self._overdue:
            reason = _overdue(self._timeout)
        elif self._answered:
            reason = f"the extractor process died on this page (exit status {code})"
        else:  # it could not even start (its error output is in the worker's log)
            reason = f"the extractor process ended before its first answer (exit status {code})"
        log.warning("extractor process ended", extra=fields(reason=reason, pages=self.waiting))
        first = self._pending.popleft()
        if not first.done():
            first.set_exception(ExtractorCrashed(reason))
        while self._pending:
            waiter = self._pending.popleft()
            if not waiter.done():
                waiter.set_exception(_Requeue())

    async def stop(self) -> None:
        process = self._process
        if process is None:
            if self._started is not None:
                self._started.cancel()
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), self._timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._reader is not None:
            await self._reader


def _overdue(timeout: float) -> str:
    return f"took longer than {timeout:g} s to read; the extractor process was stopped"


def _widen_pipe(stream: asyncio.StreamWriter | None) -> None:
    """Let the pipe to a child hold several pages (Linux: 64 KiB by default, less than one page):
    the child can then read its next page while the event loop is busy elsewhere, instead of
    waiting for the loop to push each 64 KiB through."""
    pipe = stream.get_extra_info("pipe") if stream is not None else None
    if pipe is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep the default
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def make_extractor(processes: int) -> Extractor:
    return ProcessExtractor(processes) if processes > 0 else InlineExtractor()
