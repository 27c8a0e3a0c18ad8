"""The `feedworker` command: builds the objects of the other modules and calls them.

    feedworker check    [--config DIR]
    feedworker run      [--once] [--source ID ...] [--config DIR]
    feedworker extract  FILE_OR_URL [--url URL] [--json] [--config DIR]
    feedworker discover URL [--links CSS] [--json] [--config DIR]
    feedworker status   [--json] [--config DIR]

Exit codes: 0 success; 1 a failure the message explains (bad config, every source failed, a
page that could not be fetched or extracted); 2 wrong usage (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from worker import __version__
from worker.charset import decode_html
from worker.config import Config, Settings, default_config_dir, load_config
from worker.discover import discover_links
from worker.errors import ConfigError, FeedworkerError
from worker.extract import extract
from worker.fetch import Fetcher, FetchOptions
from worker.logs import log, setup_logging
from worker.models import NotModified, Page
from worker.runner import Worker, run_forever
from worker.store import Store


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level or "INFO", args.log_format)
    try:
        return int(args.command(args))
    except ConfigError as exc:
        print(f"config is not valid ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except FeedworkerError as exc:
        print(f"feedworker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedworker", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"feedworker {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config folder (default: $FEEDWORKER_CONFIG or ./config)",
    )
    common.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR")
    common.add_argument(
        "--log-format", choices=("text", "json"), default=None, help="log lines as text or JSON"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    check = commands.add_parser("check", parents=[common], help="validate the config and exit")
    check.set_defaults(command=cmd_check)

    run = commands.add_parser("run", parents=[common], help="run the sources on their schedules")
    run.add_argument("--once", action="store_true", help="run each source once and exit")
    run.add_argument(
        "--source", action="append", metavar="ID", help="only this source (repeatable)"
    )
    run.set_defaults(command=cmd_run)

    ext = commands.add_parser(
        "extract", parents=[common], help="show what the extractor makes of a page"
    )
    ext.add_argument("target", metavar="FILE_OR_URL")
    ext.add_argument("--url", help="the page's URL, for a file (resolves relative links)")
    ext.add_argument("--json", action="store_true", help="print JSON instead of text")
    ext.set_defaults(command=cmd_extract)

    disc = commands.add_parser(
        "discover", parents=[common], help="show the article links found on a page"
    )
    disc.add_argument("target", metavar="URL")
    disc.add_argument("--links", help="CSS selector for article links (as in a source's `links`)")
    disc.add_argument("--json", action="store_true", help="print JSON instead of text")
    disc.set_defaults(command=cmd_discover)

    status = commands.add_parser("status", parents=[common], help="show each source's last runs")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(command=cmd_status)
    return parser


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config or default_config_dir())
    if args.log_level is None:
        setup_logging(config.settings.log_level, args.log_format)
    return config


def cmd_check(args: argparse.Namespace) -> int:
    config = _config(args)
    active = [s for s in config.sources if s.enabled]
    print(
        f"config ok: {len(active)} source(s) from {len(config.files)} file(s) in {config.config_dir}"
    )
    for source in config.sources:
        schedule = f"cron {source.cron}" if source.cron else f"every {source.every}"
        state = "" if source.enabled else "  (disabled)"
        print(f"  {source.id:<24} {schedule:<20} {source.url}{state}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.once:
        return asyncio.run(_run_once(config, args.source))
    if args.source:
        print("--source only goes with --once", file=sys.stderr)
        return 2
    asyncio.run(_run_service(config))
    return 0


async def _run_once(config: Config, ids: list[str] | None) -> int:
    async with Worker(config) as worker:
        try:
            reports = await worker.run_once(ids)
        except KeyError as exc:
            print(f"feedworker: {exc.args[0]}", file=sys.stderr)
            return 1
    failed = [r for r in reports if not r.ok]
    for report in failed:
        print(f"{report.source_id}: {report.error}", file=sys.stderr)
    return 1 if reports and len(failed) == len(reports) else 0


async def _run_service(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(config) as worker:
        await run_forever(worker, stop)


def cmd_extract(args: argparse.Namespace) -> int:
    target: str = args.target
    if target.startswith(("http://", "https://")):
        page = asyncio.run(_fetch_one(_settings(args), target))
        html, url = page.text, page.final_url
    else:
        path = Path(target)
        if not path.is_file():
            print(f"feedworker: no such file: {target}", file=sys.stderr)
            return 1
        html, _encoding = decode_html(path.read_bytes(), None)
        url = args.url or path.resolve().as_uri()
    article = extract(html, url)
    if args.json:
        print(json.dumps(asdict(article), default=_json_default, ensure_ascii=False, indent=2))
        return 0
    print(f"title:     {article.title}")
    print(f"url:       {article.canonical_url or article.url}")
    print(f"authors:   {', '.join(article.authors) or '-'}")
    print(f"published: {article.published or '-'}   modified: {article.modified or '-'}")
    print(f"image:     {article.image or '-'}")
    print(f"language:  {article.language or '-'}   method: {article.method}")
    print(f"words:     {len(article.body_text.split())}")
    print()
    print(article.body_text)
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    page = asyncio.run(_fetch_one(_settings(args), args.target))
    found = discover_links(page.text, page.final_url, selector=args.links)
    if args.json:
        payload = {
            "url": page.final_url,
            "method": found.method,
            "selector_matched": found.selector_matched,
            "decisions": [asdict(d) for d in found.decisions],
        }
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    print(f"{page.final_url}: {len(found.links)} article link(s), method {found.method}")
    for decision in found.decisions:
        mark = "+" if decision.kept else "-"
        print(f" {mark} {decision.url}  [{decision.reason}]")
        if decision.title:
            print(f"     {decision.title[:100]}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    store = Store.open(config.settings.state_url)
    try:
        states = {s.source_id: s for s in store.source_states()}
        rows = []
        for source in config.sources:
            state = states.get(source.id)
            rows.append(
                {
                    "source": source.id,
                    "enabled": source.enabled,
                    "last_run": state.last_run if state else None,
                    "last_success": state.last_success if state else None,
                    "outcome": _outcome(state),
                    "items": store.count_items(source.id),
                    "consecutive_failures": state.consecutive_failures if state else 0,
                    "last_error": state.last_error if state else None,
                }
            )
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, default=_json_default, ensure_ascii=False, indent=2))
        return 0
    print(f"{'source':<24} {'outcome':<8} {'items':>5} {'fails':>5}  {'last run':<20} last error")
    for row in rows:
        print(
            f"{row['source']:<24} {row['outcome']:<8} {row['items']:>5} "
            f"{row['consecutive_failures']:>5}  {_short_time(row['last_run']):<20} "
            f"{row['last_error'] or ''}"
        )
    return 0


def _outcome(state: Any) -> str:
    if state is None or state.last_run is None:
        return "never"
    return "failing" if state.consecutive_failures else "ok"


def _short_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _settings(args: argparse.Namespace) -> Settings:
    """The worker settings when a config folder is there (for the User-Agent), else defaults."""
    config_dir = args.config or default_config_dir()
    if Path(config_dir).is_dir():
        return _config(args).settings
    return Settings()


async def _fetch_one(settings: Settings, url: str) -> Page:
    async with Fetcher(FetchOptions.from_settings(settings)) as fetcher:
        result = await fetcher.fetch_page(url)
    if isinstance(result, NotModified):  # no validators were sent, so this is the server's oddity
        raise FeedworkerError(f"{url}: answered 304 Not Modified to a plain request")
    log.debug("fetched", extra={"fields": {"url": url, "status": result.status}})
    return result


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
