"""The `feedworker` command: builds the objects of the other modules and calls them.

    feedworker check    [--config DIR]
    feedworker run      [--once] [--source ID ...] [--serve] [--host H] [--port P] [--grace S]
    feedworker serve    [--host H] [--port P] [--config DIR]
    feedworker status   [--json] [--config DIR]
    feedworker db upgrade [--config DIR]
    feedworker try      SOURCE_ID [--fresh] [--json] [--config DIR]
    feedworker add      URL [--id ID] [--title T] [--kind K] [--links CSS] [--every E]
                        [--yes | --dry-run] [--config DIR]
    feedworker extract  FILE_OR_URL [--url URL] [--no-rules] [--rules DIR] [--json] [--config DIR]
    feedworker rules test [HOST ...] [--rules DIR] [--json] [--config DIR]
    feedworker discover URL [--kind K] [--links CSS] [--pages N] [--json] [--config DIR]
    feedworker demo     [--once] [--dir DIR] [--port P]

Exit codes: 0 success (SIGTERM included); 1 a failure the message explains (bad config, every
source failed, a page that could not be fetched or extracted, a broken site rule, a port in
use); 2 wrong usage.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from worker import __version__
from worker.commands.canary import CanaryResult, run_canaries
from worker.config import (
    Config,
    Settings,
    Source,
    default_config_dir,
    load_config,
    load_config_leniently,
    missing_scheme_hint,
    setting_default,
)
from worker.errors import ConfigError, FeedworkerError
from worker.extract import ExtractOptions, describe_method, extract
from worker.extract.multipage import follow_pages
from worker.fetch.client import Fetcher, FetchOptions
from worker.fetch.decode import decode_html
from worker.listing.lister import Listing, ListingOptions, list_articles
from worker.models import Article, NotModified, Page, RunReport
from worker.publish.files import orphaned_feed_files
from worker.redact import redact_text, redact_url
from worker.render import BROWSER_PACKAGES, Renderer, RendererOptions, RenderPolicy, find_browser
from worker.service.cluster import ClusterView, config_notes, live_replicas, upgrade_schema
from worker.service.logs import check_level, log, progress_line, setup_logging
from worker.service.metrics import Metrics
from worker.service.reload import ConfigWatcher, watch_config
from worker.service.runner import RELOAD_INTERVAL, Service, Worker, feed_media_type
from worker.service.websub import SelfHub, make_websub
from worker.siterules import EMPTY_LIBRARY, RuleLibrary, RuleSet
from worker.siterules.load import load_rule_folders
from worker.store.db import redact
from worker.store.state import Store
from worker.urls import param_dropper
from worker.web.serve import (
    SourceStatus,
    build_app,
    links_base,
    listen_or_fail,
    serve_socket,
    stop_on_signals,
    store_status_reader,
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.log_level = check_level(args.log_level) if args.log_level else None
    except ValueError as exc:
        print(f"feedworker: --log-level: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or "INFO", args.log_format)
    try:
        return int(args.command(args))
    except ConfigError as exc:
        print(f"config is not valid ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except FeedworkerError as exc:
        print(f"feedworker: {redact_text(str(exc))}", file=sys.stderr)  # a URL's secrets too
        return 1
    except KeyboardInterrupt:
        return 130


@dataclass(frozen=True, slots=True)
class _About:
    """A subcommand's one-line description and an example, for `--help`."""

    summary: str
    example: str


# Every subcommand's `--help` starts with its summary and ends with an example.
COMMANDS = {
    "check": _About(
        "validate the config folder: every problem with its file, source and field, or the"
        " sources with their schedules",
        "feedworker check --config /srv/feedworker/config",
    ),
    "run": _About(
        "run every enabled source on its schedule until SIGTERM (config edits apply live)",
        "feedworker run --serve --host 0.0.0.0 --port 8080",
    ),
    "serve": _About(
        "serve the feeds, the status and source pages, /healthz, /metrics and /opml over HTTP",
        "feedworker serve --port 8080",
    ),
    "add": _About(
        "add a source from its URL: detect its kind, show what the first run would publish,"
        " and write config/sources.d/<id>.toml after a yes",
        "feedworker add https://example.com/blog/",
    ),
    "extract": _About(
        "show what the extractor makes of one page: title, dates, body and why",
        "feedworker extract https://example.com/blog/2026/05/a-post.html",
    ),
    "rules": _About(
        "site rules in FiveFilters' ftr-site-config format",
        "feedworker rules test example.com",
    ),
    "rules test": _About(
        "fetch each site rule's test_url and check that it still matches (test_contains, body)",
        "feedworker rules test example.com --rules /srv/ftr-site-config",
    ),
    "discover": _About(
        "show every link found on a page, with whether it would be followed and why",
        'feedworker discover https://example.com/blog/ --links "h2 a"',
    ),
    "status": _About(
        "show each source's last run, health, items and next run",
        "feedworker status --json",
    ),
    "prune": _About(
        "delete the feed files of sources no longer in the config",
        "feedworker prune --dry-run",
    ),
    "db": _About("the state database", "feedworker db upgrade"),
    "db upgrade": _About(
        "create or migrate the state database (and the cluster's job queue); run also does",
        "feedworker db upgrade --config /srv/feedworker/config",
    ),
    "try": _About(
        "run one source end to end without writing anything; show each stage and its health",
        "feedworker try python-insider --fresh",
    ),
    "demo": _About(
        "scrape a bundled sample site offline and serve its feed",
        "feedworker demo --once",
    ),
}


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """A subcommand with its `COMMANDS` entry as its help line, description and example."""
    about = COMMANDS[name]
    return commands.add_parser(
        name.rpartition(" ")[2],
        parents=list(parents),
        help=about.summary,
        description=textwrap.fill(about.summary[0].upper() + about.summary[1:] + ".", 78),
        epilog=f"example:\n  {about.example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedworker",
        description="Scrape sites that have no full-text feed into clean RSS, Atom and JSON"
        " feeds, on a schedule.",
        epilog="Run `feedworker COMMAND --help` for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"feedworker {__version__}")
    logging_options = argparse.ArgumentParser(add_help=False)
    logging_options.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR")
    logging_options.add_argument(
        "--log-format", choices=("text", "json"), default=None, help="log lines as text or JSON"
    )
    common = argparse.ArgumentParser(add_help=False, parents=[logging_options])
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config folder (default: $FEEDWORKER_CONFIG or ./config)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    check = _command(commands, "check", [common])
    check.set_defaults(command=cmd_check)

    run = _command(commands, "run", [common])
    run.add_argument("--once", action="store_true", help="run each source once and exit")
    run.add_argument(
        "--source", action="append", metavar="ID", help="only this source (repeatable)"
    )
    run.add_argument("--serve", action="store_true", help="also serve feeds, status and health")
    _add_listen_options(run)
    run.add_argument(
        "--grace",
        type=float,
        default=None,
        metavar="SECONDS",
        help="on SIGTERM, time runs in progress get to finish (default: shutdown_grace,"
        f" {setting_default('shutdown_grace'):g} s)",
    )
    run.set_defaults(command=cmd_run)

    serve = _command(commands, "serve", [common])
    _add_listen_options(serve)
    serve.set_defaults(command=cmd_serve)

    add = _command(commands, "add", [common])
    add.add_argument(
        "url", metavar="URL", help="the site's page that lists its articles, its feed or sitemap"
    )
    add.add_argument("--id", help="the source's id (default: made from the URL's host and path)")
    add.add_argument("--title", help="the feed's title (default: the page's or feed's own)")
    add.add_argument(
        "--kind",
        choices=("auto", "index", "sitemap", "feed"),
        default="auto",
        help="read the URL as this kind of source (default: detected)",
    )
    add.add_argument("--links", help="CSS selector for article links (default: proposed if unsure)")
    add.add_argument("--every", help='how often to run, e.g. "6h" or "90 minutes" (default 1h)')
    answer = add.add_mutually_exclusive_group()
    answer.add_argument("--yes", "-y", action="store_true", help="write the file without asking")
    answer.add_argument(
        "--dry-run", action="store_true", help="print the TOML it would write, write nothing"
    )
    add.set_defaults(command=cmd_add)

    ext = _command(commands, "extract", [common])
    ext.add_argument(
        "target",
        metavar="FILE_OR_URL",
        help="a page's http(s) URL, or an HTML file saved from it (then give --url)",
    )
    ext.add_argument("--url", help="the page's URL, for a file (resolves relative links)")
    ext.add_argument("--json", action="store_true", help="print JSON instead of text")
    ext.add_argument(
        "--no-rules", action="store_true", help="automatic extraction only, without site rules"
    )
    _add_rules_option(ext)
    _add_render_options(ext)
    ext.set_defaults(command=cmd_extract)

    rules = _command(commands, "rules")
    rules_commands = rules.add_subparsers(required=True, metavar="ACTION")
    rules_test = _command(rules_commands, "rules test", [common])
    rules_test.add_argument(
        "hosts", nargs="*", metavar="HOST", help="only the rules for these hosts (default: all)"
    )
    rules_test.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_rules_option(rules_test)
    rules_test.set_defaults(command=cmd_rules_test)

    disc = _command(commands, "discover", [common])
    disc.add_argument(
        "target", metavar="URL", help="the page to read: an index page, a feed or a sitemap"
    )
    disc.add_argument("--links", help="CSS selector for article links (as in a source's `links`)")
    disc.add_argument(
        "--kind",
        choices=("auto", "index", "sitemap", "feed"),
        default="auto",
        help="read the URL as this kind of source (default: detected)",
    )
    disc.add_argument(
        "--pages", type=int, default=1, help="index pages to follow, as a source's `pages`"
    )
    disc.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_render_options(disc)
    disc.set_defaults(command=cmd_discover)

    status = _command(commands, "status", [common])
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(command=cmd_status)

    prune = _command(commands, "prune", [common])
    prune.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    prune.set_defaults(command=cmd_prune)

    db = _command(commands, "db")
    db_commands = db.add_subparsers(required=True, metavar="ACTION")
    upgrade = _command(db_commands, "db upgrade", [common])
    upgrade.set_defaults(command=cmd_db_upgrade)

    trial = _command(commands, "try", [common])
    trial.add_argument(
        "source_id",
        metavar="SOURCE_ID",
        help="the id of a source in the config (`feedworker check` lists them)",
    )
    trial.add_argument(
        "--fresh", action="store_true", help="treat every listed article as new: fetch them all"
    )
    trial.add_argument("--json", action="store_true", help="print JSON instead of text")
    trial.set_defaults(command=cmd_try)

    # No --config: the demo writes a config of its own and never reads the operator's.
    demo = _command(commands, "demo", [logging_options])
    demo.add_argument("--once", action="store_true", help="exit after the run, do not serve")
    demo.add_argument("--dir", type=Path, help="keep the demo's config, feeds and state here")
    demo.add_argument("--port", type=int, default=0, help="port for the feeds (default: any free)")
    demo.set_defaults(command=cmd_demo)
    return parser


def _add_rules_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        action="append",
        type=Path,
        metavar="DIR",
        help="site rule folder (repeatable; default: the config's site_rules)",
    )


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--render",
        action="store_true",
        help='render the page in headless Chromium first, as a source with render = "browser"',
    )
    parser.add_argument(
        "--render-wait", metavar="CSS", help="with --render: wait for this element to appear"
    )
    parser.add_argument(
        "--render-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="with --render: time for the page to settle (default 20)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help='with --render: a third-party host the page may load from (repeatable; "*.x.net")',
    )


def _render_policy(args: argparse.Namespace) -> RenderPolicy | None:
    """What `--render` asks for; None without it. The page's own origin is trusted, as for a
    source; other private addresses are refused (a page's resources are the site's choice)."""
    if not args.render:
        return None
    return RenderPolicy(
        wait=args.render_wait,
        timeout=args.render_timeout,
        allow_hosts=tuple(host.lower() for host in args.allow_host),
        trusted_origin=args.target,
    )


def _add_listen_options(parser: argparse.ArgumentParser) -> None:
    host, port = setting_default("serve_host"), setting_default("serve_port")
    parser.add_argument("--host", help=f"address to listen on (default: serve_host, {host})")
    parser.add_argument("--port", type=int, help=f"port to listen on (default: serve_port, {port})")


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config or default_config_dir())
    if args.log_level is None:
        setup_logging(config.settings.log_level, args.log_format)
    return config


def _listen_address(args: argparse.Namespace, settings: Settings) -> tuple[str, int]:
    """Flags win over `[worker] serve_host` / `serve_port`."""
    host = args.host or settings.serve_host
    return host, settings.serve_port if args.port is None else args.port


def _grace(args: argparse.Namespace, settings: Settings) -> float:
    return float(args.grace) if args.grace is not None else settings.shutdown_grace


class LiveApp:
    """An ASGI app that can be rebuilt while serving: each reload swaps in an app for the new
    config (new sources' feeds, removed ones' status), requests in flight finish on the old."""

    def __init__(self, build: Callable[[Config], Starlette], config: Config) -> None:
        self._build = build
        self.app = build(config)

    def load(self, config: Config) -> None:
        self.app = self._build(config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def as_starlette(self) -> Starlette:
        return cast(Starlette, self)  # uvicorn takes any ASGI callable


def cmd_check(args: argparse.Namespace) -> int:
    config = _config(args)
    active = [s for s in config.sources if s.enabled]
    files = len(config.files)
    print(f"config ok: {len(active)} source(s) from {files} file(s) in {config.config_dir}")
    for source in config.sources:
        schedule = source.schedule_text
        state = "" if source.enabled else "  (disabled)"
        if source.auth is not None:
            auth = source.auth
            state += f"  (Basic auth as {auth.user}, password from {auth.password_from})"
        print(f"  {source.id:<24} {schedule:<20} {redact_url(source.url)}{state}")
        for line in request_lines(source, config.settings):
            print(f"      {line}")
    for warning in [*config.warnings, *browser_warnings(config)]:
        print(f"warning: {warning}")
    if config.settings.site_rules:
        print("\n".join(site_rules_lines(config.site_rules)))
    return 0


def request_lines(source: Source, settings: Settings) -> list[str]:
    """`check`'s lines on a source's request settings and rendering: names, files, counts, the
    proxy without its password; never a header's, cookie's or password's value."""
    lines = []
    if source.headers:
        lines.append("headers: " + ", ".join(name for name, _ in source.headers))
    if source.user_agent:
        lines.append(f"user_agent: {source.user_agent}")
    if source.cookies_file is not None:
        found = source.cookies_file.cookies
        expired = f", {found.expired} expired" if found.expired else ""
        domains = ", ".join(found.domains[:5]) + (" ..." if len(found.domains) > 5 else "")
        lines.append(
            f"cookies: {len(found.cookies)} from {source.cookies_file.path}{expired}"
            f" (for {domains or 'no domain'})"
        )
    if source.cookie_env is not None:
        count = len(source.cookie_env.cookies(source.url).cookies)
        lines.append(f"cookies: {count} from ${source.cookie_env.name}")
    proxy = source.proxy_for(settings)
    if source.proxy is not None or proxy:
        lines.append(f"proxy: {redact_url(proxy) if proxy else 'none (direct)'}")
    if source.renders:
        wait = f"wait for {source.render_wait!r}" if source.render_wait else "wait for quiet"
        allowed = ", ".join(source.render_allow_hosts)
        lines.append(
            f"render: browser, {wait}, timeout {source.render_timeout:g} s"
            + (f", third-party hosts allowed: {allowed}" if allowed else "")
        )
    return lines


def browser_warnings(config: Config) -> list[str]:
    """A warning when sources render and no browser is installed here."""
    rendering = [source.id for source in config.active_sources if source.renders]
    if not rendering or find_browser(config.settings.render_browser) is not None:
        return []
    packages = " or ".join(BROWSER_PACKAGES)
    return [
        f"{len(rendering)} source(s) render pages in a browser ({', '.join(rendering[:5])}),"
        f" and no Chromium was found: install {packages} (apt-get install {BROWSER_PACKAGES[0]})"
        if config.settings.render_browser == "auto"
        else f"render_browser {config.settings.render_browser!r} is not an executable"
    ]


def site_rules_lines(library: RuleLibrary) -> list[str]:
    """`check`'s report on the site rules: files per folder, then every line that could not be
    used (a bad line never stops its file or the others)."""
    lines = [f"site rules: {library.files} file(s)"]
    for folder in library.folders:
        lines.append(f"  {folder.path}: {len(folder.rules)} file(s)")
    if library.use_global:
        found = library.named("global")
        lines.append(f"  global.txt: {found.path if found else 'enabled, but no folder has one'}")
    if library.problems:
        lines.append(f"site rules: {len(library.problems)} line(s) not used:")
        lines.extend(f"  {problem}" for problem in library.problems)
    return lines


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.once:
        if args.serve:
            print("--serve does not go with --once", file=sys.stderr)
            return 2
        return asyncio.run(_run_once(config, args.source))
    if args.source:
        print("--source only goes with --once", file=sys.stderr)
        return 2
    address = _listen_address(args, config.settings) if args.serve else None
    asyncio.run(_run_service(config, address, _grace(args, config.settings), args.log_level))
    return 0


async def _run_once(config: Config, ids: list[str] | None) -> int:
    async with Worker(config) as worker:
        try:
            sources = worker.sources(ids)
        except KeyError as exc:
            print(f"feedworker: {exc.args[0]}", file=sys.stderr)
            return 1
        with progress_line(len(sources)) as progress:
            if progress is not None:
                worker.on_report = lambda report: progress.advance(_report_label(report))
            reports = await worker.run_once(ids)
        if isinstance(worker.websub, SelfHub):  # our own hub: send what these runs changed
            await worker.websub_settled()
            await worker.websub.drain()
    failed = [r for r in reports if not r.ok]
    for report in failed:
        print(f"{report.source_id}: {report.error}", file=sys.stderr)
    return 1 if reports and len(failed) == len(reports) else 0


def _report_label(report: RunReport) -> str:
    return f"{report.source_id}: {f'{report.items_new} new' if report.ok else 'failed'}"


async def _run_service(
    config: Config, address: tuple[str, int] | None, grace: float, log_level_flag: str | None
) -> None:
    """`feedworker run [--serve]`: schedule, reload, serve; SIGTERM winds it all down."""
    stop = stop_on_signals()
    sock = listen_or_fail(*address) if address else None  # a port in use fails before any run
    metrics = Metrics()
    async with Worker(config, metrics=metrics) as worker:
        service = Service(worker, grace=grace, watcher=ConfigWatcher(config))
        if log_level_flag is None:
            service.on_reload.append(lambda new: log.setLevel(new.settings.log_level))
        if sock is None:
            await service.run(stop)
            return
        store = worker.ctx.store
        seed_metrics(metrics, store)
        view = ClusterView(store) if config.settings.cluster else None
        base_url = links_base(config.settings, sock)
        app = LiveApp(
            lambda c: build_app(
                c,
                status_reader=store_status_reader(c, store),
                health=service.healthy,
                next_runs=service.next_run,
                metrics=metrics,
                base_url=base_url,
                store=store,
                preview_fetcher=worker.ctx.fetcher,
                websub=service.hub,
                **(view.app_options(c) if view else {}),
            ),
            worker.config,
        )
        service.on_reload.append(app.load)
        server_stop = asyncio.Event()  # the server outlives the scheduler: /healthz says 503
        server = asyncio.create_task(serve_socket(app.as_starlette(), sock, server_stop))
        try:
            await service.run(stop)
        finally:
            server_stop.set()
            await server


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    asyncio.run(_serve(config, *_listen_address(args, config.settings)))
    return 0


async def _serve(config: Config, host: str, port: int) -> None:
    """`feedworker serve`: the feeds and the status page, following config edits."""
    stop = stop_on_signals()
    sock = listen_or_fail(host, port)
    try:
        store = Store.open(config.settings.state_url)  # one for the whole run, read by every page
    except BaseException:
        sock.close()
        raise
    # The preview's fetches (with a serve_token): the same politeness, limits and guard as a run.
    fetcher = Fetcher(FetchOptions.from_settings(config.settings), credentials=config.credentials)
    # Our own WebSub hub answers subscriptions here; the `run` beside us sends the deliveries.
    hub = make_websub(config.settings, store, lambda _name: None, feed_media_type)
    try:
        metrics = Metrics()
        seed_metrics(metrics, store)
        view = ClusterView(store) if config.settings.cluster else None
        base_url = links_base(config.settings, sock)
        app = LiveApp(
            lambda c: build_app(
                c,
                status_reader=store_status_reader(c, store),
                metrics=metrics,
                base_url=base_url,
                store=store,
                preview_fetcher=fetcher,
                websub=hub if isinstance(hub, SelfHub) else None,
                **(view.app_options(c) if view else {}),
            ),
            config,
        )
        watching = asyncio.create_task(
            watch_config(ConfigWatcher(config), stop, app.load, RELOAD_INTERVAL)
        )
        await serve_socket(app.as_starlette(), sock, stop)
        await watching
    finally:
        if hub is not None:
            await hub.aclose()
        await fetcher.aclose()
        store.close()


def seed_metrics(metrics: Metrics, store: Store) -> None:
    """Start the gauges from the stored state: degraded sources and last successes survive a
    restart (the counters start at zero, as Prometheus expects)."""
    metrics.seed(store.source_states(), store.source_healths())


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.commands.demo import run_demo  # the demo's sample site is not needed anywhere else

    if args.log_level is None:
        setup_logging("WARNING", args.log_format)  # the demo prints what matters itself
    return asyncio.run(run_demo(folder=args.dir, port=args.port, once=args.once))


def cmd_extract(args: argparse.Namespace) -> int:
    target: str = args.target
    config = _optional_config(args)
    settings = config.settings if config is not None else Settings()
    library = EMPTY_LIBRARY if args.no_rules else _rule_library(args, config)
    if target.startswith(("http://", "https://")):
        result = asyncio.run(_extract_url(settings, target, library, _render_policy(args)))
        article, pages = result.article, result.pages
    else:
        path = Path(target)
        if not path.is_file():
            hint = missing_scheme_hint(target)
            more = f" (for a page's URL, {hint})" if hint else ""
            print(f"feedworker: no such file: {target}{more}", file=sys.stderr)
            return 1
        html, _encoding = decode_html(path.read_bytes(), None)
        url = args.url or path.resolve().as_uri()
        article, pages = extract(html, url, _extract_options(library, url, settings)), 1
    if args.json:
        print(json.dumps(asdict(article), default=_json_default, ensure_ascii=False, indent=2))
        return 0
    print(f"title:     {article.title}")
    print(f"url:       {redact_url(article.canonical_url or article.url)}")
    print(f"authors:   {', '.join(article.authors) or '-'}")
    print(f"published: {article.published or '-'}   modified: {article.modified or '-'}")
    print(f"image:     {article.image or '-'}")
    print(f"language:  {article.language or '-'}")
    print(f"method:    {article.method} ({describe_method(article.method)})")
    for line in rule_lines(article, pages, args.no_rules):
        print(line)
    print(f"words:     {len(article.body_text.split())}")
    print()
    print(article.body_text)
    return 0


def rule_lines(article: Article, pages: int, no_rules: bool) -> list[str]:
    """What `extract` says about site rules and pages: which rule file, which directives."""
    trace = article.site_rule
    if trace is None:
        return ["site rule: " + ("not used (--no-rules)" if no_rules else "none for this host")]
    lines = [f"site rule: {trace.path or trace.name}"]
    lines.append(f"  found:   {', '.join(trace.matched) or 'nothing'}")
    if trace.missed:
        lines.append(f"  missed:  {', '.join(trace.missed)}")
    body = "the rule's" if trace.body_used else trace.note or "automatic extraction's"
    lines.append(f"  body:    {body}")
    if trace.native_ad:
        lines.append("  native ad: yes (the worker skips this article)")
    if pages > 1:
        lines.append(f"pages:     {pages}, merged")
    return lines


@dataclass(frozen=True, slots=True)
class _Extracted:
    article: Article
    pages: int


def _extract_options(library: RuleLibrary, url: str, settings: Settings) -> ExtractOptions:
    return ExtractOptions(site_rules=library.for_url(url), check_rules=settings.site_rules_check)


async def _extract_url(
    settings: Settings, url: str, library: RuleLibrary, render: RenderPolicy | None = None
) -> _Extracted:
    """Fetch (and with `render`, render) and extract `url`, and its further pages as the worker
    would."""
    renderer = Renderer(RendererOptions.from_settings(settings))
    async with Fetcher(FetchOptions.from_settings(settings)) as fetcher:

        async def load(page_url: str, number: int) -> Article | None:
            try:
                page = await _fetch_with(fetcher, page_url)
                if render is not None:
                    page = (await renderer.render(page, fetcher, render)).page
            except FeedworkerError as exc:
                print(f"feedworker: page {number}: {exc}", file=sys.stderr)
                return None
            options = _extract_options(library, page.final_url, settings)
            return extract(page.text, page.final_url, replace(options, page_number=number))

        try:
            first = await load(url, 1)
            if first is None:
                raise FeedworkerError(f"{url}: could not be fetched")
            followed = await follow_pages(first, load, settings.max_article_pages)
        finally:
            await renderer.aclose()
    if followed.stopped:
        print(f"feedworker: following pages stopped: {followed.stopped}", file=sys.stderr)
    return _Extracted(followed.article, followed.pages)


def _rule_library(args: argparse.Namespace, config: Config | None) -> RuleLibrary:
    """The folders given with --rules, else the config's site rules (none without a config)."""
    if args.rules:
        missing = [str(folder) for folder in args.rules if not folder.is_dir()]
        if missing:
            raise FeedworkerError(f"no such site rules folder: {', '.join(missing)}")
        return load_rule_folders(args.rules)
    return config.site_rules if config is not None else EMPTY_LIBRARY


def cmd_rules_test(args: argparse.Namespace) -> int:
    config = _optional_config(args)
    library = _rule_library(args, config)
    if not library:
        print("feedworker: no site rules: set site_rules in [worker] or give --rules DIR")
        return 1
    chosen = library.all_rules()
    if args.hosts:
        found = {host: library.for_host(host) for host in args.hosts}
        unknown = [host for host, rules in found.items() if rules is None]
        if unknown:
            print(f"feedworker: no site rule for {', '.join(unknown)}", file=sys.stderr)
            return 1
        chosen = list({rules.name: rules for rules in found.values() if rules}.values())
    settings = config.settings if config is not None else Settings()
    results = asyncio.run(_run_canaries(settings, chosen))
    broken = [r for r in results if r.tested and not r.ok]
    if args.json:
        print(json.dumps([asdict(r) for r in results], ensure_ascii=False, indent=2))
    else:
        print(render_canaries(results))
    return 1 if broken else 0


async def _run_canaries(settings: Settings, chosen: list[RuleSet]) -> list[CanaryResult]:
    async with Fetcher(FetchOptions.from_settings(settings)) as fetcher:
        return await run_canaries(chosen, fetcher)


def render_canaries(results: list[CanaryResult]) -> str:
    """`rules test` as text: one line per test page (and per rule file without one)."""
    lines = []
    for r in results:
        if not r.tested:
            lines.append(f"untested {r.rule:<30} no test_url")
            continue
        state = "ok" if r.ok else "BROKEN"
        lines.append(f"{state:<8} {r.rule:<30} {r.url}")
        lines.extend(f"           - {problem}" for problem in r.problems)
    tested = [r for r in results if r.tested]
    broken = {r.rule for r in tested if not r.ok}
    files = len({r.rule for r in results})
    untested = files - len({r.rule for r in tested})
    lines.append(
        f"{files} rule file(s), {len(tested)} test page(s): {len(broken)} rule file(s) broken,"
        f" {untested} without test_url"
    )
    return "\n".join(lines)


def cmd_discover(args: argparse.Namespace) -> int:
    hint = missing_scheme_hint(args.target)
    if hint:
        print(f"feedworker: {redact_url(args.target)!r} has no scheme; {hint}", file=sys.stderr)
        return 1
    settings = _settings(args)
    options = ListingOptions(
        url=args.target,
        kind=args.kind,
        pages=max(1, args.pages),
        selector=args.links,
        limit=settings.max_links_per_run,
        drop_params=param_dropper(settings.tracking_params),
    )
    listing = asyncio.run(_list_one(settings, options, _render_policy(args)))
    if args.json:
        payload = {
            "url": redact_url(args.target),
            "kind": listing.kind,
            "documents": [_shown(asdict(d)) for d in listing.documents],
            "decisions": [_shown(asdict(d)) for d in listing.decisions],
        }
        print(json.dumps(payload, default=_json_default, ensure_ascii=False, indent=2))
        return 0
    print(f"{redact_url(args.target)}: {len(listing.links)} article link(s), kind {listing.kind}")
    for document in listing.documents:
        note = f" ({document.note})" if document.note else ""
        print(f"  read {document.kind}: {redact_url(document.url)}{note}")
    for decision in listing.decisions:
        mark = "+" if decision.kept else "-"
        date = f"  {decision.date:%Y-%m-%d %H:%M}" if decision.date else ""
        print(f" {mark} {redact_url(decision.url)}  [{decision.reason}]{date}")
        if decision.title:
            print(f"     {decision.title[:100]}")
    return 0


async def _list_one(
    settings: Settings, options: ListingOptions, render: RenderPolicy | None = None
) -> Listing:
    renderer = Renderer(RendererOptions.from_settings(settings))
    async with Fetcher(FetchOptions.from_settings(settings)) as fetcher:

        async def rendered(page: Page) -> Page:
            assert render is not None
            return (await renderer.render(page, fetcher, render)).page

        try:
            return await list_articles(options, fetcher, render=rendered if render else None)
        finally:
            await renderer.aclose()


def cmd_status(args: argparse.Namespace) -> int:
    # An operator looks at status when something is wrong, maybe right after a broken edit (the
    # running worker keeps its last good config): show the state, with the config's problems.
    salvaged = load_config_leniently(args.config or default_config_dir())
    config = salvaged.config
    if args.log_level is None:
        setup_logging(config.settings.log_level, args.log_format)
    if salvaged.problems:
        print(
            f"warning: the config is not valid ({len(salvaged.problems)} problem(s)); a running"
            " worker keeps its last good config. Showing every source the state database knows:",
            file=sys.stderr,
        )
        for problem in salvaged.problems:
            print(f"  {problem}", file=sys.stderr)
    store = Store.open(config.settings.state_url)
    try:
        rows = status_rows(config, store, stored_too=bool(salvaged.problems))
        if args.json:
            print(json.dumps(rows, default=_json_default, ensure_ascii=False, indent=2))
            return 0
        print(render_status_table(rows))
        if config.settings.cluster:
            print("\n".join(cluster_status_lines(config, store)))
    finally:
        store.close()
    return 0


def cluster_status_lines(config: Config, store: Store) -> list[str]:
    """The live replicas and their config digests, and a warning when the digests differ."""
    replicas = live_replicas(store, datetime.now(UTC))
    lines = [f"\nreplicas: {len(replicas)} live"]
    for replica in replicas:
        beat = _short_time(replica.heartbeat)
        lines.append(f"  {replica.name:<32} config {replica.config_digest[:12]}  last beat {beat}")
    lines.extend(f"warning: {note}" for note in config_notes(replicas))
    return lines


def cmd_prune(args: argparse.Namespace) -> int:
    """Removing a source unschedules it but keeps its feed files; this deletes them. The source's
    state stays in the database, so re-adding it later publishes nothing it already had."""
    config = _config(args)
    orphans = orphaned_feed_files(config.settings.feeds_dir, {s.id for s in config.sources})
    for path in orphans:
        if not args.dry_run:
            path.unlink(missing_ok=True)
        print(f"{'would delete' if args.dry_run else 'deleted'} {path}")
    if not orphans:
        print(f"nothing to prune in {config.settings.feeds_dir}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    config = _config(args)
    version = asyncio.run(upgrade_schema(config))
    where = redact(config.settings.state_url)
    queue = " and the job queue" if config.settings.cluster else ""
    print(f"state database {where}{queue} up to date (schema version {version})")
    return 0


STATUS_COLUMNS = (  # (key, heading, width); the last error takes the rest of the line
    ("source", "source", 24),
    ("outcome", "outcome", 8),
    ("items", "items", 5),
    ("consecutive_failures", "fails", 5),
    ("health", "health", 8),
    ("last_run", "last run", 19),
    ("last_success", "last success", 19),
    ("next_run", "next run", 19),
)


def status_rows(config: Config, store: Store, *, stored_too: bool = False) -> list[dict[str, Any]]:
    """One dict per configured source (what `status --json` prints), read as the status page
    reads it; `stored_too` adds the other sources the state database has runs of (after them,
    by id: those left out of a config that does not validate)."""
    if stored_too:
        known = {source.id for source in config.sources}
        others = sorted({s.source_id for s in store.source_states()} - known)
        # Only `id` and `enabled` are read below; the rest of such a source is not known.
        extra = tuple(Source.model_construct(id=source_id, url="") for source_id in others)
        config = dataclasses.replace(config, sources=config.sources + extra)
    statuses = store_status_reader(config, store)()
    return [_status_row(source, statuses[source.id]) for source in config.sources]


def _status_row(source: Source, status: SourceStatus) -> dict[str, Any]:
    return {
        "source": source.id,
        "enabled": source.enabled,
        "outcome": _outcome(status) if source.enabled else "disabled",
        "last_run": status.last_run,
        "last_success": status.last_success,
        "items": status.items,
        "consecutive_failures": status.consecutive_failures,
        "next_run": status.next_run if source.enabled else None,
        "last_error": status.last_error,
        "health": status.health or "-",
        "health_reasons": list(status.health_reasons),
        "health_since": status.health_since,
    }


def render_status_table(rows: list[dict[str, Any]]) -> str:
    lines = [" ".join(f"{h:<{w}}" for _k, h, w in STATUS_COLUMNS) + " last error"]
    for row in rows:
        cells = []
        for key, _heading, width in STATUS_COLUMNS:
            value = row.get(key, "-")
            text = _short_time(value) if key.endswith(("_run", "_success")) else str(value)
            cells.append(f"{text:>{width}}" if isinstance(value, int) else f"{text:<{width}}")
        error = (row["last_error"] or "").replace("\n", " ")
        if row.get("health") == "degraded":
            error = "; ".join(filter(None, [error, *row["health_reasons"]]))
        lines.append(" ".join(cells) + " " + error)
    return "\n".join(line.rstrip() for line in lines)


def cmd_add(args: argparse.Namespace) -> int:
    from worker.commands.add import AddOptions, propose_source, sample_lines, write_source

    config_dir = Path(args.config or default_config_dir())
    config = _config_to_add_to(args, config_dir)
    if args.log_level is None:  # the trial run's own log lines would bury what add says
        setup_logging("WARNING", args.log_format)
    options = AddOptions(
        url=args.url,
        source_id=args.id,
        title=args.title,
        kind=args.kind,
        links=args.links,
        every=args.every,
    )
    report = sys.stderr if args.dry_run else sys.stdout  # --dry-run: the TOML alone on stdout
    print(f"feedworker add: reading {redact_url(options.url)} ...", file=report, flush=True)
    proposal = asyncio.run(propose_source(options, config))
    kind = "given" if proposal.kind_given else "detected"
    for line in [
        f"  kind:     {proposal.kind} ({kind}), {proposal.links_found} article link(s)",
        f"  links:    {proposal.links or 'automatic'} ({proposal.links_note})",
        f"  id:       {proposal.source_id}",
        f"  title:    {proposal.title}",
        f"  every:    {proposal.every}",
        *(f"  note:     {note}" for note in proposal.notes),
        "",
        *sample_lines(proposal),
        "",
    ]:
        print(line, file=report)
    if args.dry_run:
        print(proposal.toml(shown=True), end="")
        return 0
    print(f"{proposal.path}:")
    print("    " + proposal.toml(shown=True).replace("\n", "\n    ").rstrip())
    if not args.yes and not _confirm(f"Write {config_dir.name}/{proposal.path}? [y/N] "):
        print("not written (answer y, or give --yes)")
        return 1
    path = write_source(proposal, config_dir)
    print(
        f"wrote {path}; the config validates ({proposal.source_id} is one of its sources)."
        " A running worker picks it up within seconds; `feedworker try"
        f" {proposal.source_id}` runs it once without writing anything."
    )
    return 0


def _config_to_add_to(args: argparse.Namespace, config_dir: Path) -> Config:
    """The folder's config, to take its settings and ids; a folder that does not exist yet, or
    has no source yet, is fine (`add` writes the first one), any other problem is not."""
    if not config_dir.exists():
        root = config_dir.absolute().parent
        settings = Settings.model_validate({}, context={"root": root})
        return Config(config_dir.absolute(), root, settings, (), (), "")
    try:
        return _config(args)
    except ConfigError as exc:
        if all(problem.message.startswith("no sources defined") for problem in exc.problems):
            return load_config_leniently(config_dir).config
        raise


def _confirm(question: str) -> bool:
    """A yes from the terminal; no answer (end of input, a script without --yes) is a no."""
    try:
        answer = input(question)
    except EOFError:
        print()
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_try(args: argparse.Namespace) -> int:
    from worker.commands.dryrun import try_source  # only this command needs the dry-run store

    config = _config(args)
    try:
        source = config.source(args.source_id)
    except KeyError as exc:
        print(f"feedworker: {exc.args[0]}", file=sys.stderr)
        return 1
    result = asyncio.run(try_source(config, source, fresh=args.fresh))
    if args.json:
        payload = try_payload(result)
        print(json.dumps(payload, default=_json_default, ensure_ascii=False, indent=2))
    else:
        print(render_try(result))
    return 0 if result.report.ok else 1


def try_payload(result: Any) -> dict[str, Any]:
    """What `try --json` prints: every stage of the dry run."""
    report = result.report
    return {
        "source": report.source_id,
        "dry_run": True,
        "error": report.error,
        "listing": {
            "kind": report.listing_kind,
            "not_modified": report.index_not_modified,
            "links_found": report.links_found,
            "selector_matched": report.selector_matched,
            "documents": [
                _shown(asdict(d)) for listing in result.listings for d in listing.documents
            ],
            "decisions": [
                _shown(asdict(d)) for listing in result.listings for d in listing.decisions
            ],
        },
        "known_links": report.items_unchanged,
        "statuses": {str(k): v for k, v in sorted(report.statuses.items())},
        "render": {
            "pages_rendered": report.pages_rendered,
            "requests_blocked": report.requests_blocked,
        },
        "articles": [_shown(asdict(trace)) for trace in report.articles],
        "would_publish": [_item_summary(item) for item in result.would_add],
        "would_update": [_item_summary(item) for item in result.would_update],
        "would_filter": [
            {**_item_summary(item), "reason": item.filtered} for item in result.would_filter
        ],
        "health": {
            "state": report.health_state,
            "reasons": list(report.health_reasons),
            "before": result.health_before,
        },
    }


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    """A listing record for output: its URL redacted (no userinfo, no token values)."""
    return {**record, "url": redact_url(record["url"])} if "url" in record else record


def _item_summary(item: Any) -> dict[str, Any]:
    return {"guid": redact_url(item.guid), "title": item.title, "published": item.published}


def render_try(result: Any) -> str:
    """`try` as text: one block per stage."""
    report, source = result.report, result.source
    lines = [f"feedworker try {source.id}: {redact_url(source.url)} (dry run: nothing is written)"]
    kept = sum(1 for listing in result.listings for d in listing.decisions if d.kept)
    skipped: dict[str, int] = {}
    for listing in result.listings:
        for decision in listing.decisions:
            if not decision.kept:
                skipped[decision.reason] = skipped.get(decision.reason, 0) + 1
    if report.index_not_modified:
        lines.append("listing:  not modified since the last run (304)")
    elif report.listing_kind:
        matched = (
            f"; selector {source.links!r} matched {report.selector_matched}"
            if report.selector_matched is not None
            else ""
        )
        lines.append(f"listing:  {report.listing_kind}, {kept} link(s) kept{matched}")
        top = sorted(skipped.items(), key=lambda pair: -pair[1])[:8]
        if top:
            lines.append("          skipped: " + ", ".join(f"{r} ×{n}" for r, n in top))
    if report.items_unchanged and not report.articles:
        known = report.items_unchanged
        lines.append(f"          {known} link(s) already known (--fresh fetches them)")
    statuses = ", ".join(f"{k} ×{v}" for k, v in sorted(report.statuses.items()))
    lines.append(f"fetch:    {statuses or 'nothing fetched'}")
    if source.renders:
        lines.append(
            f"render:   browser: {report.pages_rendered} page(s) rendered,"
            f" {report.requests_blocked} request(s) refused"
        )
    if report.articles:
        lines.append("articles:")
        for trace in report.articles:
            status = "-" if trace.status is None else str(trace.status)
            note = f"  ({trace.note})" if trace.note and trace.decision == "skipped" else ""
            lines.append(
                f"  {trace.decision:<14} {trace.method or '-':<12} {trace.body_chars:>7,} chars"
                f"  {status:>3}  {redact_url(trace.url)}{note}"
            )
    lines.append(
        f"would publish: {len(result.would_add)} new item(s), {len(result.would_update)} update(s)"
    )
    for item in result.would_add + result.would_update:
        lines.append(f"  + {item.title}  <{redact_url(item.guid)}>")
    if result.would_filter:
        lines.append(f"filtered out: {len(result.would_filter)} item(s) (keep/drop rules)")
        for item in result.would_filter:
            lines.append(f"  - {item.title}  <{redact_url(item.guid)}>  [{item.filtered}]")
    if report.error:
        lines.append(f"error:    {report.error}")
    lines.append(f"health:   {report.health_state or '-'} (stored state: {result.health_before})")
    lines.extend(f"  - {reason}" for reason in report.health_reasons)
    return "\n".join(lines)


def _outcome(status: SourceStatus) -> str:
    if status.last_run is None:
        return "never"
    return "failing" if status.consecutive_failures else "ok"


def _short_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _settings(args: argparse.Namespace) -> Settings:
    """The worker settings when a config folder is there (for the User-Agent), else defaults."""
    config = _optional_config(args)
    return config.settings if config is not None else Settings()


def _optional_config(args: argparse.Namespace) -> Config | None:
    """The config when its folder is there (a command that works without one), else None."""
    config_dir = args.config or default_config_dir()
    return _config(args) if Path(config_dir).is_dir() else None


async def _fetch_with(fetcher: Fetcher, url: str) -> Page:
    result = await fetcher.fetch_page(url)
    if isinstance(result, NotModified):  # no validators were sent, so this is the server's oddity
        raise FeedworkerError(f"{url}: answered 304 Not Modified to a plain request")
    log.debug("fetched", extra={"fields": {"url": url, "status": result.status}})
    return result


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
