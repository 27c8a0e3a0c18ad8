"""The one headless Chromium the worker shares: found, started on first use, watched, restarted.

- **Found** among Debian's packages (`BROWSER_PACKAGES`), never downloaded: the `render_browser`
  setting, else ``chromium-headless-shell`` or ``chromium`` on the PATH or in /usr/bin. Without
  one, `BrowserMissing` names the package to install.
- **Started** with a fresh profile folder (removed at stop), driven over its debugging pipe
  (`worker.render.cdp`), in a process group of its own so the whole tree can be stopped at once.
  Chromium never reaches the network itself: every request a page makes is paused and answered
  by feedworker (`worker.render.page`), and whatever is not (a pre-connect, a WebSocket, a
  request of a kind the interception does not see) goes to a "proxy" that is a bound socket
  nobody listens on, so it is refused on this machine (`--proxy-bypass-list=<-loopback>` keeps
  loopback addresses going there too).
- **Watched** once a second while it runs: its memory (the proportional set size of every process
  in its group, so shared pages are not counted once per process) against `memory_limit`, and
  every `PING_INTERVAL` an answer to a trivial command within `PING_TIMEOUT`. Over the limit, or
  silent, it is killed; the pages it was rendering fail with that reason, and the next page
  starts a new one. After `IDLE_CLOSE` seconds without a page it is stopped, giving its memory
  back; the next page starts it again (about a tenth of a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from worker.errors import RenderError
from worker.render.cdp import CdpClosed, CdpConnection

__all__ = [
    "BROWSER_PACKAGES",
    "Browser",
    "BrowserMissing",
    "BrowserOptions",
    "find_browser",
    "group_memory",
    "group_stats",
]

log = logging.getLogger("feedworker")

BROWSER_PACKAGES = ("chromium-headless-shell", "chromium")  # Debian's names, best first
_SEARCHED = tuple(f"/usr/bin/{name}" for name in BROWSER_PACKAGES)
INSTALL_HINT = (
    "install Debian's chromium-headless-shell (apt-get install chromium-headless-shell), or"
    " chromium; or point render_browser at a Chromium executable"
)
MIB = 1024 * 1024
MONITOR_INTERVAL = 1.0  # seconds between two looks at the browser's memory
PING_INTERVAL = 5.0  # seconds between two "are you there" commands
PING_TIMEOUT = 10.0  # a browser that takes longer to answer one is hung
IDLE_CLOSE = 120.0  # seconds without a page before the browser is stopped
START_TIMEOUT = 30.0  # for the first answer after starting
STOP_GRACE = 3.0
STDERR_LINES = 5  # the browser's last error lines kept, for a failed start's message
_STDERR_NOISE = (
    "dbus",
    "Floss",
    "vaapi",
    "sandbox_linux",
    "bluez",
)  # after closing the pipe, before the process group is killed
# Chromium's switches. Each is here for a reason; see the module docstring for the proxy.
_SWITCHES = (
    "--headless",
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",  # no update checks, metrics, safe-browsing lists
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-dev-shm-usage",  # containers give /dev/shm 64 MiB; Chromium then crashes
    "--disable-gpu",
    "--mute-audio",
    "--hide-scrollbars",
    "--block-new-web-contents",  # window.open and target=_blank open nothing
    "--disable-notifications",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",  # no UDP around the proxy
    "--proxy-bypass-list=<-loopback>",  # loopback addresses go to the dead proxy too
    "--disable-features=Translate,MediaRouter,OptimizationHints,InterestFeedContentSuggestions,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater,DialMediaRouteProvider",
)


class BrowserMissing(RenderError):
    """No Chromium to start: the message names the package."""


@dataclass(frozen=True, slots=True)
class BrowserOptions:
    """How the shared browser runs (`Settings.render_*`)."""

    executable: str = "auto"  # a path, or "auto": Debian's packages
    memory_limit: int = 1024 * MIB  # the whole process group, proportional set size
    sandbox: bool = True  # Chromium's own sandbox (impossible as root: then off, with a warning)
    max_message_bytes: int = 64 * MIB  # the largest message read from the pipe
    idle_close: float = IDLE_CLOSE


def find_browser(configured: str = "auto") -> str | None:
    """The Chromium executable to start, or None when there is none."""
    if configured != "auto":
        found = shutil.which(configured)
        return found
    for candidate in (*_SEARCHED, *BROWSER_PACKAGES):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def missing_message(configured: str) -> str:
    if configured != "auto":
        return f'render = "browser": render_browser {configured!r} is not an executable'
    return f'render = "browser" needs headless Chromium and none was found: {INSTALL_HINT}'


class Browser:
    """The shared browser: `connection()` starts it when needed; `aclose()` stops it."""

    def __init__(self, options: BrowserOptions) -> None:
        self.options = options
        self.starts = 0  # processes started (restarts are starts after the first)
        self.kills: list[str] = []  # why each was killed (memory, hung), newest last
        self._running: _Running | None = None
        self._lock = asyncio.Lock()
        self._in_use = 0
        self._last_used = time.monotonic()
        self._warned_root = False

    async def connection(self) -> CdpConnection:
        """The running browser's connection, starting a browser when there is none alive."""
        async with self._lock:
            running = self._running
            if running is None or running.connection.closed is not None:
                if running is not None:
                    await running.stop()
                running = self._running = await self._start()
            return running.connection

    def use(self) -> contextlib.AbstractAsyncContextManager[CdpConnection]:
        """`async with browser.use() as cdp:` marks a page in progress (not idle meanwhile)."""
        return _InUse(self)

    async def recycle(self, why: str) -> None:
        """Kill the running browser (hung, or in a state not to trust); the next page starts
        another."""
        running = self._running
        if running is not None and running.connection.closed is None:
            await self._kill(running, why)

    async def aclose(self) -> None:
        async with self._lock:
            running, self._running = self._running, None
            if running is not None:
                await running.stop()

    @property
    def pid(self) -> int | None:
        return self._running.process.pid if self._running is not None else None

    async def _start(self) -> _Running:
        executable = find_browser(self.options.executable)
        if executable is None:
            raise BrowserMissing("browser", missing_message(self.options.executable))
        args = [executable, *_SWITCHES]
        if not self.options.sandbox or os.geteuid() == 0:
            args.append("--no-sandbox")
            if os.geteuid() == 0 and self.options.sandbox and not self._warned_root:
                self._warned_root = True
                log.warning("browser runs without its sandbox: Chromium refuses one as root")
        running = await _Running.launch(args, self.options)
        self.starts += 1
        running.monitor = asyncio.create_task(self._watch(running))
        log.info(
            "browser started",
            extra={"fields": {"pid": running.process.pid, "starts": self.starts}},
        )
        return running

    async def _watch(self, running: _Running) -> None:
        """Kill the browser over its memory limit or when it stops answering; stop it idle."""
        options = self.options
        pinged = time.monotonic()
        while running.connection.closed is None:
            await asyncio.sleep(MONITOR_INTERVAL)
            used = await asyncio.to_thread(group_memory, running.process.pid)
            if used > options.memory_limit:
                await self._kill(running, f"memory over {options.memory_limit // MIB} MiB")
                return
            now = time.monotonic()
            if self._in_use == 0 and now - self._last_used > options.idle_close:
                async with self._lock:
                    if self._running is running and self._in_use == 0:
                        self._running = None
                        await running.stop()
                        log.info("browser stopped: idle")
                return
            if now - pinged >= PING_INTERVAL:
                pinged = now
                try:
                    await running.connection.send("Browser.getVersion", timeout=PING_TIMEOUT)
                except TimeoutError:
                    await self._kill(running, f"no answer within {PING_TIMEOUT:g} s")
                    return
                except CdpClosed:
                    return

    async def _kill(self, running: _Running, why: str) -> None:
        self.kills.append(why)
        log.warning("browser killed", extra={"fields": {"reason": why, "pid": running.process.pid}})
        await running.connection.aclose(f"browser restarted: {why}")
        running.kill()


class _InUse(contextlib.AbstractAsyncContextManager[CdpConnection]):
    def __init__(self, browser: Browser) -> None:
        self._browser = browser

    async def __aenter__(self) -> CdpConnection:
        self._browser._in_use += 1
        try:
            return await self._browser.connection()
        except BaseException:
            self._browser._in_use -= 1
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._browser._in_use -= 1
        self._browser._last_used = time.monotonic()


@dataclass(slots=True, eq=False)
class _Running:
    """One started browser process and what it needs until it is stopped."""

    process: asyncio.subprocess.Process
    connection: CdpConnection
    profile: Path
    dead_proxy: socket.socket
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_LINES))
    monitor: asyncio.Task[None] | None = None
    drain: asyncio.Task[None] | None = None

    @classmethod
    async def launch(cls, args: list[str], options: BrowserOptions) -> _Running:
        profile = Path(tempfile.mkdtemp(prefix="feedworker-browser-"))
        dead_proxy = _dead_proxy()
        port = dead_proxy.getsockname()[1]
        to_browser, from_browser = _pipe_pair()
        try:
            command = [
                *args,
                f"--user-data-dir={profile}",
                f"--proxy-server=http://127.0.0.1:{port}",
                "about:blank",
            ]
            process = await _spawn(command, to_browser, from_browser)
        except BaseException:
            for fd in (*to_browser, *from_browser):
                os.close(fd)
            dead_proxy.close()
            shutil.rmtree(profile, ignore_errors=True)
            raise
        os.close(to_browser[0])  # the browser's ends
        os.close(from_browser[1])
        connection = await _connect(to_browser[1], from_browser[0], options.max_message_bytes)
        running = cls(process, connection, profile, dead_proxy)
        assert process.stderr is not None
        running.drain = asyncio.create_task(_drain(process.stderr, running.stderr))
        try:
            await connection.send("Browser.getVersion", timeout=START_TIMEOUT)
        except BaseException as exc:
            await running.stop()
            if isinstance(exc, Exception):
                said = " / ".join(running.stderr) or str(exc)
                raise RenderError("browser", f"the browser did not start: {said}") from None
            raise
        return running

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """Close the pipe (Chromium exits), kill what is left, remove the profile."""
        if self.monitor is not None and self.monitor is not asyncio.current_task():
            self.monitor.cancel()
        await self.connection.aclose("browser stopped")
        try:
            async with asyncio.timeout(STOP_GRACE):
                await self.process.wait()
        except TimeoutError:
            pass
        self.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_GRACE):
                await self.process.wait()
        self.dead_proxy.close()
        if self.drain is not None:
            self.drain.cancel()
        await asyncio.to_thread(shutil.rmtree, self.profile, True)


def _dead_proxy() -> socket.socket:
    """A TCP port on 127.0.0.1 that is bound but never listened on: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _pipe_pair() -> tuple[tuple[int, int], tuple[int, int]]:
    """(to_browser read, write), (from_browser read, write), none inherited by default."""
    to_browser = os.pipe()
    from_browser = os.pipe()
    return to_browser, from_browser


async def _spawn(
    command: list[str], to_browser: tuple[int, int], from_browser: tuple[int, int]
) -> asyncio.subprocess.Process:
    """Start the browser with our pipes as its descriptors 3 (commands) and 4 (answers).

    They reach a shell as its standard input and output, and it moves them into place before
    `exec` replaces it: no Python code runs between fork and exec (`preexec_fn` is unsafe in a
    process with threads, and the worker has some)."""
    script = 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null'
    return await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        script,
        *command,
        stdin=to_browser[0],
        stdout=from_browser[1],
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group: killed as one
    )


async def _connect(write_fd: int, read_fd: int, limit: int) -> CdpConnection:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0)
    )
    writer, _protocol = await loop.connect_write_pipe(
        asyncio.Protocol, os.fdopen(write_fd, "wb", 0)
    )
    return CdpConnection(reader, writer)


async def _drain(stream: asyncio.StreamReader, lines: deque[str]) -> None:
    """Keep the browser's last few error lines (a failed start says why there), skipping its
    usual complaints about the desktop services a server does not have."""
    with contextlib.suppress(Exception):
        async for raw in stream:
            line = raw.decode("utf-8", "replace").strip()
            if line and not any(noise in line for noise in _STDERR_NOISE):
                lines.append(line[:300])


def group_memory(pgid: int) -> int:
    """Bytes of memory used by the processes of group `pgid`: their proportional set sizes
    (shared pages divided among the processes sharing them), else their resident sizes."""
    total = 0
    for pid, _ in group_stats(pgid):
        with contextlib.suppress(OSError, ValueError, IndexError):  # gone meanwhile
            total += _process_memory(pid)
    return total


def group_stats(pgid: int) -> Iterator[tuple[str, list[bytes]]]:
    """The live processes of group `pgid`: each one's pid and the fields of its
    /proc/PID/stat after the name (state, ppid, pgrp, ...)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
            if int(fields[2]) == pgid:
                yield entry.name, fields
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile


def _process_memory(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
