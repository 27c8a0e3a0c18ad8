"""Hot reload: notice edits in the config folder and hand over the new config when it validates.

`ConfigWatcher.poll` is called every second or so by the running service. It is cheap when
nothing changed (one `stat` per file), and it only loads the folder once the files have stood
still for one poll, so an editor that writes a file in two steps is not caught half-way. Then:

- a valid config whose digest differs from the one in force is returned to the caller, who
  swaps it in (`Worker.apply_config`) and re-syncs the scheduler;
- an invalid one changes nothing: its problems (file, source, field) are logged once per distinct
  set of problems, and the last good config stays in force until the next good edit. Whatever
  fails while loading is such a problem (`load_config` reports even unforeseen errors as the
  config's), and `watch_config` outlives any error of its own: it logs it and keeps watching,
  so a later good edit is always applied and a shutdown is never disturbed.

Some settings are read once, when the worker's long-lived objects are built (the HTTP client's
limits, the state database, the feeds folder); `restart_only_changes` names the ones an edit
touched, so the operator can be told that they need a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from worker.config import SOURCES_DIR, Config, Settings, load_config
from worker.errors import ConfigError, ConfigProblem
from worker.fetch.client import FetchOptions
from worker.service.logs import fields, log

__all__ = [
    "RESTART_ONLY_SETTINGS",
    "ConfigWatcher",
    "folder_stamp",
    "restart_only_changes",
    "watch_config",
]

# Settings baked into objects built at start-up: the fetcher's options, the store, the feeds
# folder (the server serves it), the source semaphore, the extractor's processes, the scheduler's
# job defaults, and where
# the server listens and how long a shutdown waits (when those are settings).
_BUILT_AT_START = frozenset(
    {"feeds_dir", "state_url", "source_concurrency", "misfire_grace_time", "cluster"}
    | {"extract_processes"}
    | {"serve_host", "serve_port", "shutdown_grace"}
    | {"render_concurrency", "render_browser", "render_memory_mb", "render_sandbox"}
    | {"websub_hub", "websub_allow_private"}  # the hub and its client are built at start
)
# (The fetcher's options that are no settings, such as its robots.txt cache TTL, drop out.)
RESTART_ONLY_SETTINGS: frozenset[str] = _BUILT_AT_START | (
    frozenset(f.name for f in dataclasses.fields(FetchOptions)) & frozenset(Settings.model_fields)
)

Stamp = tuple[tuple[str, int, int, int], ...]


def folder_stamp(config_dir: Path) -> Stamp:
    """(name, inode, size, mtime) of every file the config loader may read; cheap to compare.

    The inode is there because editors often save by writing a new file and renaming it over
    the old one, which can keep the size and, within one clock tick, the mtime.
    """
    entries = []
    for folder in (config_dir, config_dir / SOURCES_DIR):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if name.startswith("."):
                continue
            try:
                stat = (folder / name).stat()
            except OSError:
                continue
            if (folder / name).is_file():
                relative = (folder / name).relative_to(config_dir).as_posix()
                entries.append((relative, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def rule_folders_stamp(folders: tuple[Path, ...]) -> Stamp:
    """(path, inode, size, mtime) of every `.txt` file in the site rule folders: a `git pull`
    of the rules is picked up like an edit of the config folder."""
    entries = []
    for folder in folders:
        try:
            scan = os.scandir(folder)
        except OSError:
            entries.append((str(folder), 0, 0, 0))  # gone: its absence is a change too
            continue
        with scan:
            for entry in scan:
                with contextlib.suppress(OSError):
                    if entry.name.endswith(".txt") and entry.is_file():
                        stat = entry.stat()
                        entries.append((entry.path, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def restart_only_changes(old: Settings, new: Settings) -> list[str]:
    """The restart-only settings whose value differs between `old` and `new`, sorted."""
    return sorted(
        name for name in RESTART_ONLY_SETTINGS if getattr(old, name) != getattr(new, name)
    )


class ConfigWatcher:
    """Polls one config folder; `poll` returns a new, valid `Config` when an edit produced one."""

    def __init__(self, config: Config, env: Mapping[str, str] | None = None) -> None:
        self.config_dir = config.config_dir
        self.digest = config.digest  # of the config in force
        self._env = env
        self._rule_folders = config.settings.site_rules
        self._loaded = self._stamp()  # what the config in force was read from
        self._seen = self._loaded  # what the previous poll saw
        self._reported: tuple[str, ...] = ()  # the problems logged last, not to repeat them

    def poll(self) -> Config | None:
        """Call every second or so; returns the new config at most once per good edit."""
        stamp = self._stamp()
        settled = stamp == self._seen
        self._seen = stamp
        if not settled or stamp == self._loaded:
            return None
        self._loaded = stamp
        return self.check()

    def check(self) -> Config | None:
        """Load the folder now: the new config, or None when invalid or unchanged."""
        try:
            config = load_config(self.config_dir, self._env)
        except ConfigError as exc:
            self._report(exc)
            return None
        except Exception as exc:  # load_config reports its own errors; this is a last resort
            problem = ConfigProblem(str(self.config_dir), f"{type(exc).__name__}: {exc}")
            self._report(ConfigError([problem]))
            return None
        self._reported = ()
        self._rule_folders = config.settings.site_rules
        if config.digest == self.digest:
            return None
        self.digest = config.digest
        return config

    def _stamp(self) -> Stamp:
        return folder_stamp(self.config_dir) + rule_folders_stamp(self._rule_folders)

    def _report(self, exc: ConfigError) -> None:
        problems = tuple(str(p) for p in exc.problems)
        if problems == self._reported:
            return
        self._reported = problems
        log.error(
            "config edit not applied: not valid; the last good config stays in force",
            extra=fields(problems=len(problems)),
        )
        for problem in exc.problems:
            where = {"source": problem.source, "field": problem.field}
            located = {key: value for key, value in where.items() if value is not None}
            log.error(
                "config problem",
                extra=fields(problem=str(problem), file=problem.file, **located),
            )


async def watch_config(
    watcher: ConfigWatcher,
    stop: asyncio.Event,
    apply: Callable[[Config], None],
    interval: float,
) -> None:
    """Poll every `interval` seconds until `stop` is set; `apply` each new valid config.

    Never ends with an error: one in polling or applying is logged (once while it repeats)
    and the watch goes on."""
    failing = ""  # the error logged last, not to log it every `interval`
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        try:
            # Reading and validating a few small files: off the event loop all the same.
            new = await asyncio.to_thread(watcher.poll)
            if new is not None:
                apply(new)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if error != failing:
                log.exception(
                    "config edit not applied: reloading failed; still watching",
                    extra=fields(error=error),
                )
            failing = error
        else:
            failing = ""
