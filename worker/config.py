"""The operator's config folder -> validated, typed, frozen objects.

This is the only module that reads config files, and every default lives here, as a field default
of `Settings` or `Source` (or one of the constants just below).

Layout, relative to the config folder (``config/`` unless ``--config`` or ``FEEDWORKER_CONFIG``):

- ``feedworker.toml``: one ``[worker]`` table -> `Settings` (optional; all defaults when missing).
- ``sources.toml``: ``[[source]]`` tables -> `Source`, then every ``sources.d/*.toml`` sorted by
  name, one site a file by convention. Either may be missing; no source at all is a problem.
- ``FEEDWORKER_<SETTING>`` environment variables override the ``[worker]`` table.

Relative paths (``feeds_dir``, a relative ``sqlite:///`` state URL) resolve against the folder that
holds the config folder, the "root", so ``--config /srv/site/config`` works from any directory.

`load_config` collects every problem it finds (TOML syntax, unknown keys with a suggestion, wrong
types, bad values, duplicate ids) and raises one `ConfigError` listing them all, each line naming
the file, the source and the field.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from selectolax.lexbor import LexborHTMLParser

from worker.errors import ConfigError, ConfigProblem
from worker.siterules import EMPTY_LIBRARY, RuleLibrary, load_rule_folders

__all__ = [
    "CONFIG_ENV_VAR",
    "ENV_PREFIX",
    "Config",
    "HealthThresholds",
    "Settings",
    "Source",
    "default_config_dir",
    "load_config",
    "parse_duration",
]

CONFIG_ENV_VAR = "FEEDWORKER_CONFIG"  # where the config folder is, when --config is not given
ENV_PREFIX = "FEEDWORKER_"  # FEEDWORKER_<SETTING> overrides [worker] <setting>
# How a boolean setting may be spelt in an environment variable.
_ENV_BOOLEANS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}
SETTINGS_FILE = "feedworker.toml"
SOURCES_FILE = "sources.toml"
SOURCES_DIR = "sources.d"

DEFAULT_EVERY = timedelta(hours=1)  # a source with neither `every` nor `cron`
# The id is the feed's file name: lower case only, so two ids never name one file on a
# case-insensitive disk; no dots or slashes, so an id can never climb out of feeds/.
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
RESERVED_IDS = frozenset({"all"})  # "all" names the combined feed
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_ITEMS_LIMIT = 1000
MAX_NEAR_DUPLICATE_DISTANCE = 11  # what the store's SimHash index answers exactly
DEFAULT_KEEP_DAYS = 90
SOURCE_KINDS = ("auto", "index", "sitemap", "feed", "urls")  # `kind`; auto: detected on fetch
MAX_PAGES = 20  # `pages`: index pages followed per run
# Runs of health history kept per source: two days of hourly runs, more than any baseline
# window needs, a few hundred bytes a row.
HEALTH_HISTORY_RUNS = 50

ID_RULE = "1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
DURATION_FORMAT = 'a duration like "45s", "15m", "2h", "1h30m" or "1d", or a number of seconds'
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(min|[wdhms])", re.IGNORECASE)
_DURATION = re.compile(r"\s*(?:\d+(?:\.\d+)?\s*(?:min|[wdhms])\s*)+", re.IGNORECASE)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}


# The longest duration any setting takes; beyond it dates overflow.
MAX_DURATION = timedelta(days=3650)

# ---------------------------------------------------------------------------------------------
# Value parsers: each returns the clean value or raises ValueError with a message for a person.
# ---------------------------------------------------------------------------------------------


def parse_duration(value: object) -> timedelta:
    """Parse "1h30m", "15m", "45s", "1d", "2w", "1.5h" or a number of seconds (at most 10 years:
    `inf`, which TOML allows, or a typo's 10**12 days must be a config error, not a crash)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.fullmatch(value):
        parts = _DURATION_PART.findall(value)
        seconds = sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in parts)
    else:
        raise ValueError(f"expected {DURATION_FORMAT}, got {value!r}")
    if not math.isfinite(seconds) or abs(seconds) > MAX_DURATION.total_seconds():
        raise ValueError(f"must be at most {MAX_DURATION.days} days, got {value!r}")
    return timedelta(seconds=seconds)


def _check_duration(value: object, *, allow_zero: bool) -> timedelta:
    delta = parse_duration(value)
    if delta < timedelta(0) or (delta == timedelta(0) and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ValueError(f"must be {bound}, got {value!r} (expected {DURATION_FORMAT})")
    return delta


def _check_interval(value: object) -> timedelta:
    return _check_duration(value, allow_zero=False)


def _check_jitter(value: object) -> timedelta:
    return _check_duration(value, allow_zero=True)


def _check_seconds(value: object) -> float:
    return _check_duration(value, allow_zero=False).total_seconds()


def _check_seconds_or_zero(value: object) -> float:
    return _check_duration(value, allow_zero=True).total_seconds()


def _check_selector(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a CSS selector string, got {_toml_type(value)}")
    if not value.strip():
        raise ValueError("empty CSS selector")
    try:
        LexborHTMLParser("<p></p>").css(value)
    except Exception as exc:  # selectolax raises its own SelectolaxError (and ValueError)
        raise ValueError(f"invalid CSS selector {value!r}: {exc}") from None
    return value


def _check_selectors(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected a CSS selector or a list of them, got {_toml_type(value)}")
    return tuple(_check_selector(item) for item in items)


def _check_patterns(value: object) -> tuple[re.Pattern[str], ...]:
    items = [value] if isinstance(value, str | re.Pattern) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected a regex or a list of regexes, got {_toml_type(value)}")
    patterns = []
    for item in items:
        if isinstance(item, re.Pattern):
            patterns.append(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f"expected a regex string, got {_toml_type(item)}")
        try:
            patterns.append(re.compile(item))
        except re.error as exc:
            raise ValueError(f"bad regular expression {item!r}: {exc}") from None
    return tuple(patterns)


def _check_http_url(value: str) -> str:
    """An absolute http(s) URL with a host; nothing a browser would have to guess about."""
    example = 'e.g. "https://example.com/blog/"'
    if not value.strip():
        raise ValueError(f"empty URL, {example}")
    if "\\" in value:
        raise ValueError(f"backslash in URL {value!r}; use '/'")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"space or control character in URL {value!r}; percent-encode it")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise ValueError(f"only http and https URLs are allowed, got {shown} in {value!r}")
    if not parts.hostname:
        raise ValueError(f"URL {value!r} has no host, {example}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"URL {value!r} has a bad port") from None
    return value


def _check_urls(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected an array of URLs, got {_toml_type(value)}")
    urls = []
    for n, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"urls[{n}]: expected a URL string, got {_toml_type(item)}")
        try:
            urls.append(_check_http_url(item))
        except ValueError as exc:
            raise ValueError(f"urls[{n}]: {exc}") from None
    return tuple(urls)


def _check_param_names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError('expected an array of parameter names like ["ref", "source_*"]')
    names = tuple(v.strip() for v in value)
    if any(not name or name == "*" or "=" in name or "&" in name for name in names):
        raise ValueError('each name is a query parameter name ("ref"), or a prefix ("ref_*")')
    return names


def _check_id(value: str) -> str:
    if value in RESERVED_IDS:
        raise ValueError(f"{value!r} is reserved; pick another id")
    if ID_PATTERN.fullmatch(value):
        return value
    hint = ""
    lowered = value.lower()
    if lowered != value and ID_PATTERN.fullmatch(lowered) and lowered not in RESERVED_IDS:
        hint = f" (lower case only: try {lowered!r})"
    raise ValueError(f"invalid id {value!r}: use {ID_RULE} (it names the feed file){hint}")


def _is_valid_id(value: object) -> bool:
    return (
        isinstance(value, str) and value not in RESERVED_IDS and bool(ID_PATTERN.fullmatch(value))
    )


def _root_from(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("root") or Path.cwd())


def _resolve_path(value: object, info: ValidationInfo) -> Path:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ValueError(f"expected a folder path string, got {value!r}")
    path = Path(value).expanduser()
    return Path(os.path.abspath(_root_from(info) / path))


def _resolve_paths(value: object, info: ValidationInfo) -> tuple[Path, ...]:
    items = [value] if isinstance(value, str | Path) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected an array of folder paths, got {_toml_type(value)}")
    return tuple(_resolve_path(item, info) for item in items)


# ---------------------------------------------------------------------------------------------
# The models. Field defaults are the project's defaults; config/feedworker.toml mirrors them.
# ---------------------------------------------------------------------------------------------

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True)

Seconds = Annotated[float, PlainValidator(_check_seconds)]
SecondsOrZero = Annotated[float, PlainValidator(_check_seconds_or_zero)]
Interval = Annotated[timedelta, PlainValidator(_check_interval)]
Jitter = Annotated[timedelta, PlainValidator(_check_jitter)]
Selector = Annotated[str, PlainValidator(_check_selector)]
Selectors = Annotated[tuple[str, ...], PlainValidator(_check_selectors)]
Patterns = Annotated[tuple[re.Pattern[str], ...], PlainValidator(_check_patterns)]
Urls = Annotated[tuple[str, ...], PlainValidator(_check_urls)]
ParamNames = Annotated[tuple[str, ...], PlainValidator(_check_param_names)]


class HealthThresholds(BaseModel):
    """When a source counts as degraded (``[worker.health]``, or a source's ``health = {...}``,
    which overrides only the keys it sets). Every rule compares a source with its own history;
    see `worker.health` and the README's "Source health"."""

    model_config = _MODEL_CONFIG

    # Earlier healthy runs a source's baseline (links found, body length) is taken from.
    window: int = Field(default=10, ge=1, le=HEALTH_HISTORY_RUNS)
    # Consecutive bad runs before a source is degraded: 2, so one odd answer (a deploy, a flaky
    # CDN) raises no alarm, while an hourly source is flagged within about two hours.
    bad_runs: int = Field(default=2, ge=1, le=20)
    # Bodies "collapse" when a run's median length is under this share of the source's recent
    # median: a chrome-only body (a teaser, a cookie notice) is a tenth of an article or less,
    # while short and long articles on one site vary by about 2-3x.
    body_drop: float = Field(default=0.25, gt=0, lt=1)
    # "Most articles": the share that fell back to the whole page, missed the operator's body
    # selector, or were too short, before a run counts as bad; also for non-HTML pages.
    poor_share: float = Field(default=0.5, gt=0, le=1)
    # Share of a run's responses that were 403/429 or challenge pages for an anti-bot wall.
    blocked_share: float = Field(default=0.5, gt=0, le=1)
    # Article bodies shorter than this are not published (skipped, or the feed's summary
    # instead), unless the source's own recent median is lower: then half that median. 200
    # characters is about two sentences, more than a byline, share bar or cookie notice.
    min_body_chars: int = Field(default=200, ge=0)


MAX_EXTRACT_PROCESSES = 64
# "auto" starts one extractor process per CPU up to this many. On two cores two beat one (the
# event loop's own work is a fraction of a core: README "Pipeline throughput"); beyond four the
# event loop's share of each page, not extraction, limits the rate, and each process costs
# about 50 MiB.
AUTO_EXTRACT_PROCESSES = 4


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, where the OS has one), else the
    machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Settings(BaseModel):
    """The ``[worker]`` table: how the whole worker behaves. Durations are in seconds."""

    model_config = _MODEL_CONFIG

    feeds_dir: Annotated[Path, PlainValidator(_resolve_path)] = Path("feeds")
    state_url: str = "sqlite:///state/feedworker.db"
    user_agent: str = "feedworker/0.1 (+https://github.com/feedworker/feedworker)"
    connect_timeout: Seconds = 10
    read_timeout: Seconds = 20
    request_deadline: Seconds = 30  # one HTTP exchange (each redirect hop and retry), body included
    retries: int = Field(default=2, ge=0, le=10)  # of silent timeouts, 408, 429 and 5xx
    retry_backoff: Seconds = 1.0  # first wait between attempts; doubles each time, with jitter
    max_redirects: int = Field(default=5, ge=0)
    max_page_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    concurrency: int = Field(default=8, ge=1)  # requests in flight over all hosts
    # One at a time per host: what trusted crawlers agree on (FIELD-NOTES), safer than 2.
    per_host_concurrency: int = Field(default=1, ge=1)
    per_host_delay: SecondsOrZero = 1.0  # between request starts to one host
    source_concurrency: int = Field(default=4, ge=1)  # sources running at once
    # Child processes extracting pages beside the event loop; 0 extracts inline. "auto": one per
    # CPU this process may use, at most AUTO_EXTRACT_PROCESSES; none on one CPU
    # (`Settings.extract_workers`).
    extract_processes: int | Literal["auto"] = "auto"
    max_links_per_run: int = Field(default=100, ge=1)
    # Query parameters dropped from every URL on top of the built-in tracking list
    # (worker.urls.TRACKING_PARAMS); "name_*" drops a prefix.
    tracking_params: ParamNames = ()
    misfire_grace_time: Seconds = 300
    log_level: str = "INFO"
    public_url: str | None = None  # stored without a trailing slash
    combined_feed_size: int = Field(default=100, ge=1)  # items in feeds/all.atom
    serve_host: str = "127.0.0.1"  # for `serve` and `run --serve`; Docker sets 0.0.0.0
    serve_port: int = Field(default=8080, ge=0, le=65535)
    shutdown_grace: Seconds = 30  # on SIGTERM, runs in progress may finish for this long
    # Several replicas share the sources through procrastinate (worker.cluster); PostgreSQL only.
    cluster: bool = False
    # Bodies whose SimHashes differ in at most this many of 64 bits are near-duplicates: 10 keeps
    # 96% of syndicated copies (new headline, other footer, 3 edited sentences) of 300+ word
    # articles and is 6 bits below the closest pair of different articles (bench/neardup.py).
    near_duplicate_distance: int = Field(default=10, ge=0, le=MAX_NEAR_DUPLICATE_DISTANCE)
    dedupe_across_sources: bool = False  # near-duplicates of another source's items too
    # Folders of site rule files in FiveFilters' ftr-site-config format (worker.siterules),
    # searched in order, the operator's own first. Read with the config, reloaded with it.
    site_rules: Annotated[tuple[Path, ...], PlainValidator(_resolve_paths)] = ()
    site_rules_global: bool = False  # also apply the first folder's global.txt, to every page
    # Honour the rules' http_header(...) lines: off, since their User-Agent and Cookie lines
    # override the operator's honest User-Agent (and cookies set by someone else).
    site_rules_headers: bool = False
    # Keep automatic extraction's body when a rule's looks worse (rules age; README "Site rules").
    site_rules_check: bool = True
    # Pages of one multi-page article fetched and merged (`next_page_link`, `paginated_articles`).
    max_article_pages: int = Field(default=10, ge=1, le=100)
    health: HealthThresholds = HealthThresholds()  # [worker.health]: when a source is degraded
    webhook_url: str | None = None  # receives a JSON POST when a source degrades or recovers

    @property
    def extract_workers(self) -> int:
        """`extract_processes`, or its default for this machine when unset."""
        if self.extract_processes != "auto":
            return self.extract_processes
        cpus = usable_cpus()
        return min(cpus, AUTO_EXTRACT_PROCESSES) if cpus >= 2 else 0

    @field_validator("extract_processes", mode="before")
    @classmethod
    def _check_extract_processes(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():  # from the environment
            value = int(value)
        if value == "auto" or (type(value) is int and 0 <= value <= MAX_EXTRACT_PROCESSES):
            return value
        raise ValueError(
            f'expected "auto" or a number of processes from 0 to {MAX_EXTRACT_PROCESSES},'
            f" got {value!r}"
        )

    @field_validator("state_url")
    @classmethod
    def _check_state_url(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith(("postgresql://", "postgres://", "postgresql+")):
            return value
        if not value.startswith("sqlite:///"):
            raise ValueError(
                f"expected sqlite:///path/to/file.db or postgresql://..., got {value!r}"
            )
        path, sep, _query = value.removeprefix("sqlite:///").partition("?")
        if sep:
            raise ValueError(f"query parameters are not supported in a sqlite state_url: {value!r}")
        if not path:
            raise ValueError(f"no database file in {value!r}, e.g. sqlite:///state/feedworker.db")
        if path == ":memory:":
            return value
        absolute = os.path.abspath(_root_from(info) / Path(path).expanduser())
        return f"sqlite:///{absolute}"

    @field_validator("cluster")
    @classmethod
    def _check_cluster(cls, value: bool, info: ValidationInfo) -> bool:
        if "state_url" not in info.data:  # the state_url itself was wrong: said once, there
            return value
        state_url = info.data["state_url"]
        if value and not state_url.startswith(("postgresql://", "postgres://", "postgresql+")):
            raise ValueError(
                "cluster mode needs a PostgreSQL state_url (postgresql://user@host/db): a SQLite"
                " file belongs to one process and cannot be shared by replicas"
            )
        return value

    @field_validator("user_agent")
    @classmethod
    def _check_user_agent(cls, value: str) -> str:
        if not value.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValueError("must be one non-empty line of text")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return value.upper()

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value).rstrip("/")

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)

    @property
    def sqlite_path(self) -> Path | None:
        """The state database file when `state_url` is SQLite on disk, else None."""
        if not self.state_url.startswith("sqlite:///"):
            return None
        path = self.state_url.removeprefix("sqlite:///").partition("?")[0]
        return None if path == ":memory:" else Path(path)


class Source(BaseModel):
    """One ``[[source]]``: a site to scrape into its own feeds, ``feeds/<id>.rss`` and others."""

    model_config = _MODEL_CONFIG

    id: str
    url: str  # the site's page: what is fetched (unless kind = "urls") and the feed's link
    kind: str = "auto"  # see SOURCE_KINDS; "urls" when `urls` is given
    pages: int = Field(default=1, ge=1, le=MAX_PAGES)  # index pages followed ("next page")
    urls: Urls = ()  # kind = "urls": the pages to watch
    title: str = ""  # filled in with the id when empty
    description: str = ""
    language: str | None = None
    every: Interval | None = None  # DEFAULT_EVERY when `cron` is not given either
    cron: str | None = None  # 5-field crontab, e.g. "0 7 * * 1-5"
    jitter: Jitter | None = None  # None: the scheduler picks
    links: Selector | None = None  # CSS selector of article links on the index page
    include: Patterns = ()  # article URLs must match one of these (re.search), when given
    exclude: Patterns = ()  # article URLs matching any of these are skipped
    max_items: int = Field(default=50, ge=1, le=MAX_ITEMS_LIMIT)
    body: Selector | None = None  # CSS selector of the article container
    remove: Selectors = ()  # CSS selectors removed from the article before extraction
    respect_robots: bool = True
    allow_private_networks: bool = False
    site_rules: bool = True  # apply the [worker] site_rules files to this source's pages
    # Follow an article's own pagination (`<link rel="next">`, a "page 2" link of the same URL)
    # and merge its pages into one item, without a site rule.
    paginated_articles: bool = False
    # Refetch known articles still in the feed (conditional GET) at most this often, so edits
    # reach the feed; None: an article is fetched once.
    recheck: Interval | None = None
    keep_days: int = Field(
        default=DEFAULT_KEEP_DAYS, ge=1, le=MAX_DURATION.days
    )  # items beyond max_items kept this long
    # Health thresholds for this source; only the keys given override [worker.health].
    health: HealthThresholds | None = None
    enabled: bool = True

    def health_thresholds(self, defaults: HealthThresholds) -> HealthThresholds:
        """`defaults` (the worker's) with the keys this source sets in its `health` table."""
        if self.health is None:
            return defaults
        return defaults.model_copy(
            update={key: getattr(self.health, key) for key in self.health.model_fields_set}
        )

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if not data.get("title") and isinstance(data.get("id"), str):
            data["title"] = data["id"]
        if data.get("every") is None and data.get("cron") is None:
            data["every"] = DEFAULT_EVERY
        if data.get("urls") and "kind" not in data:
            data["kind"] = "urls"
        return data

    @field_validator("kind")
    @classmethod
    def _check_kind(cls, value: str) -> str:
        if value not in SOURCE_KINDS:
            choices = ", ".join(f'"{k}"' for k in SOURCE_KINDS)
            raise ValueError(f"expected one of {choices}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_kind_keys(self) -> Source:
        """Keys that only mean something for some kinds; a mismatch is the operator's slip."""
        if self.kind == "urls" and not self.urls:
            raise ValueError('kind = "urls" needs urls = ["https://...", ...]')
        if self.urls and self.kind != "urls":
            raise ValueError(f'urls is for kind = "urls", not kind = "{self.kind}"')
        if self.pages > 1 and self.kind not in ("auto", "index"):
            raise ValueError(f'pages follows index pages; kind = "{self.kind}" has none')
        if self.links is not None and self.kind not in ("auto", "index"):
            raise ValueError(f'links selects links on an index page, not in a "{self.kind}"')
        return self

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        return _check_id(value)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("language")
    @classmethod
    def _check_language(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", value):
            raise ValueError(f'expected a language tag like "en" or "pt-BR", got {value!r}')
        return value

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("every") is not None:
            raise ValueError("give either 'every' or 'cron', not both")
        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(
                f"bad crontab {value!r}: {exc} (a crontab has 5 fields: minute hour "
                f'day-of-month month day-of-week, e.g. "0 7 * * 1-5")'
            ) from None
        return value


@dataclass(frozen=True, slots=True)
class Config:
    """Everything read from one config folder; `digest` changes when any file read changes."""

    config_dir: Path
    root: Path  # the folder holding config_dir; relative paths resolve against it
    settings: Settings
    sources: tuple[Source, ...]  # enabled and disabled, in file order
    files: tuple[Path, ...]
    digest: str  # of every config file read, and of the site rule files
    site_rules: RuleLibrary = EMPTY_LIBRARY  # read from `settings.site_rules`

    @property
    def active_sources(self) -> tuple[Source, ...]:
        return tuple(source for source in self.sources if source.enabled)

    def source(self, source_id: str) -> Source:
        for source in self.sources:
            if source.id == source_id:
                return source
        known = ", ".join(s.id for s in self.sources) or "none"
        raise KeyError(f"no source with id {source_id!r} in {self.config_dir} (known: {known})")

    def active_source(self, source_id: str) -> Source | None:
        """The enabled source with this id; None when it is gone or disabled (a run to skip)."""
        source = next((s for s in self.sources if s.id == source_id), None)
        return source if source is not None and source.enabled else None


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def default_config_dir() -> Path:
    """``$FEEDWORKER_CONFIG`` when set, else ``./config``."""
    return Path(os.environ.get(CONFIG_ENV_VAR) or "config")


def load_config(config_dir: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config folder; raise `ConfigError` listing every problem found.

    `env` defaults to `os.environ`; its ``FEEDWORKER_<SETTING>`` entries override ``[worker]``.
    """
    config_dir = Path(os.path.abspath(Path(config_dir).expanduser()))
    loader = _Loader(config_dir, os.environ if env is None else env)
    return loader.load()


@dataclass(frozen=True, slots=True)
class _SourceTable:
    """A raw ``[[source]]`` table and where it was written."""

    file: str
    number: int  # 1-based position in its file
    data: dict[str, Any]

    @property
    def label(self) -> str:
        source_id = self.data.get("id")
        return source_id if _is_valid_id(source_id) else f"[[source]] #{self.number}"


class _Loader:
    """One load: reads files, collects problems, builds the `Config`."""

    def __init__(self, config_dir: Path, env: Mapping[str, str]) -> None:
        self.config_dir = config_dir
        self.root = config_dir.parent
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.files: list[Path] = []
        self.contents: list[bytes] = []

    def load(self) -> Config:
        if not self.config_dir.is_dir():
            what = "is not a folder" if self.config_dir.exists() else "not found"
            problem = ConfigProblem(str(self.config_dir), f"config folder {what}")
            raise ConfigError([problem])
        settings = self._load_settings()
        sources = self._load_sources()
        library = self._load_site_rules(settings) if settings is not None else EMPTY_LIBRARY
        if self.problems or settings is None:
            raise ConfigError(self._sorted_problems())
        return Config(
            config_dir=self.config_dir,
            root=self.root,
            settings=settings,
            sources=tuple(sources),
            files=tuple(self.files),
            digest=self._digest(library.digest),
            site_rules=library,
        )

    def _load_site_rules(self, settings: Settings) -> RuleLibrary:
        """The rule folders' files; a folder that is not there is a config problem, a rule file
        that does not parse is not (`RuleLibrary.problems`: `feedworker check` lists them)."""
        for n, folder in enumerate(settings.site_rules):
            if not folder.is_dir():
                what = "is not a folder" if folder.exists() else "not found"
                self.problems.append(
                    ConfigProblem(
                        self._name(self.config_dir / SETTINGS_FILE),
                        f"site rules folder {what}: {folder} (clone the rules there, see the"
                        ' README\'s "Site rules")',
                        field=f"site_rules[{n}]",
                    )
                )
        return load_rule_folders(settings.site_rules, use_global=settings.site_rules_global)

    def _sorted_problems(self) -> list[ConfigProblem]:
        """Problems grouped by file, in the order the files are read; environment last."""
        order = {self._name(path): rank for rank, path in enumerate(self.files)}
        return sorted(self.problems, key=lambda p: order.get(p.file, len(order)))

    # -- files --------------------------------------------------------------------------------

    def _name(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _read_toml(self, path: Path) -> dict[str, Any] | None:
        """The parsed file, or None (and a problem) when it cannot be read or parsed."""
        name = self._name(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self.problems.append(ConfigProblem(name, f"cannot read: {exc.strerror or exc}"))
            return None
        self.files.append(path)
        self.contents.append(raw)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.problems.append(
                ConfigProblem(name, f"not valid UTF-8 (byte {exc.start}); save it as UTF-8")
            )
            return None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            self.problems.append(ConfigProblem(name, f"TOML syntax error: {exc}"))
            return None

    def _digest(self, rules_digest: str = "") -> str:
        digest = hashlib.sha256()
        for path, raw in zip(self.files, self.contents, strict=True):
            name = self._name(path).encode()
            digest.update(len(name).to_bytes(8, "big") + name)
            digest.update(len(raw).to_bytes(8, "big") + raw)
        if rules_digest:  # only with site rules: other configs keep the digest they had
            digest.update(b"site_rules:" + rules_digest.encode())
        return digest.hexdigest()

    # -- [worker] -----------------------------------------------------------------------------

    def _load_settings(self) -> Settings | None:
        path = self.config_dir / SETTINGS_FILE
        name = self._name(path)
        table: dict[str, Any] = {}
        if path.exists():
            document = self._read_toml(path)
            if document is None:
                return None
            table = self._worker_table(document, name)
        overridden = self._apply_env(table)
        try:
            return Settings.model_validate(table, context={"root": self.root})
        except ValidationError as exc:
            for error in exc.errors():
                key = str(error["loc"][0]) if error["loc"] else None
                if key in overridden:
                    message = _error_message(error, Settings)
                    self.problems.append(
                        ConfigProblem("environment", message, field=overridden[key])
                    )
                else:
                    self.problems.append(_problem(error, Settings, name, None))
            return None

    def _worker_table(self, document: dict[str, Any], name: str) -> dict[str, Any]:
        for key in document:
            if key == "worker":
                continue
            if key in Settings.model_fields:
                message = f"setting outside the [worker] table; put {key} = ... under [worker]"
            else:
                message = "unknown top-level key" + _suggest(key, ["worker"], " table")
            self.problems.append(ConfigProblem(name, message, field=key))
        table = document.get("worker", {})
        if not isinstance(table, dict):
            self.problems.append(
                ConfigProblem(
                    name, f"expected a [worker] table, got {_toml_type(table)}", None, "worker"
                )
            )
            return {}
        return dict(table)

    def _apply_env(self, table: dict[str, Any]) -> dict[str, str]:
        """Put FEEDWORKER_<SETTING> values into `table`; return {setting: variable} applied."""
        applied: dict[str, str] = {}
        for field_name, info in Settings.model_fields.items():
            variable = ENV_PREFIX + field_name.upper()
            raw = self.env.get(variable)
            if raw is None or raw == "":
                continue  # an empty variable counts as unset
            applied[field_name] = variable
            if info.annotation is int:
                try:
                    table[field_name] = int(raw.strip())
                except ValueError:
                    self.problems.append(
                        ConfigProblem(
                            "environment", f"expected an integer, got {raw!r}", None, variable
                        )
                    )
                    table.pop(field_name, None)
                    applied.pop(field_name)
            elif info.annotation is bool:
                flag = _ENV_BOOLEANS.get(raw.strip().lower())
                if flag is None:
                    self.problems.append(
                        ConfigProblem(
                            "environment", f"expected true or false, got {raw!r}", None, variable
                        )
                    )
                    table.pop(field_name, None)
                    applied.pop(field_name)
                else:
                    table[field_name] = flag
            elif get_origin(info.annotation) in (list, tuple):  # "a, b" -> ["a", "b"]
                table[field_name] = [part.strip() for part in raw.split(",") if part.strip()]
            elif info.annotation is float:  # a duration: "10", "2.5" or "30s"
                try:
                    table[field_name] = float(raw)
                except ValueError:
                    table[field_name] = raw
            else:
                table[field_name] = raw
        return applied

    # -- [[source]] ---------------------------------------------------------------------------

    def _load_sources(self) -> list[Source]:
        paths = [self.config_dir / SOURCES_FILE]
        folder = self.config_dir / SOURCES_DIR
        if folder.is_dir():
            # Dot-files are editor lock and backup files, never an operator's source.
            found = (p for p in folder.glob("*.toml") if p.is_file() and not p.name.startswith("."))
            paths += sorted(found, key=lambda p: p.name)
        tables: list[_SourceTable] = []
        problems_before = len(self.problems)
        for path in paths:
            document = self._read_toml(path) if path.exists() else None
            if document is not None:
                tables += self._source_tables(document, self._name(path))
        # A file we could not read may hold the sources; say "none" only when we saw everything.
        if not tables and len(self.problems) == problems_before:
            self.problems.append(
                ConfigProblem(
                    self._name(self.config_dir / SOURCES_FILE),
                    "no sources defined: add [[source]] tables to config/sources.toml or "
                    "config/sources.d/*.toml",
                )
            )
        self._check_duplicate_ids(tables)
        return [s for s in (self._validate_source(t) for t in tables) if s is not None]

    def _source_tables(self, document: dict[str, Any], name: str) -> list[_SourceTable]:
        for key in document:
            if key != "source":
                message = "unknown top-level key" + _suggest(key, ["source"], " tables")
                if key == "worker":
                    message = f"[worker] belongs in config/{SETTINGS_FILE}"
                self.problems.append(ConfigProblem(name, message, field=key))
        entries = document.get("source", [])
        if isinstance(entries, dict):
            self.problems.append(
                ConfigProblem(
                    name, "write [[source]] (two brackets) for each source", None, "source"
                )
            )
            return []
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            self.problems.append(ConfigProblem(name, "expected [[source]] tables", None, "source"))
            return []
        return [_SourceTable(name, n, entry) for n, entry in enumerate(entries, start=1)]

    def _check_duplicate_ids(self, tables: Sequence[_SourceTable]) -> None:
        first_seen: dict[str, _SourceTable] = {}
        for table in tables:
            source_id = table.data.get("id")
            if not _is_valid_id(source_id):
                continue
            earlier = first_seen.setdefault(source_id, table)
            if earlier is not table:
                where = f"{earlier.file} ([[source]] #{earlier.number})"
                message = f"duplicate id {source_id!r}, already used in {where}"
                self.problems.append(ConfigProblem(table.file, message, table.label, "id"))

    def _validate_source(self, table: _SourceTable) -> Source | None:
        try:
            return Source.model_validate(table.data)
        except ValidationError as exc:
            for error in exc.errors():
                self.problems.append(_problem(error, Source, table.file, table.label))
            return None


# ---------------------------------------------------------------------------------------------
# Pydantic errors -> one line each, for a person
# ---------------------------------------------------------------------------------------------

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "float_type": "a number",
    "dict_type": "a table",
    "model_type": "a table",
    "list_type": "an array",
    "tuple_type": "an array",
}
_BOUNDS = {
    "greater_than": "more than {gt}",
    "greater_than_equal": "{ge} or more",
    "less_than": "less than {lt}",
    "less_than_equal": "{le} or less",
}
# Names operators reach for (from other scrapers and feed tools) -> the key we use.
_KEY_HINTS = {
    "interval": "every",
    "frequency": "every",
    "period": "every",
    "schedule": "cron",
    "crontab": "cron",
    "name": "title",
    "lang": "language",
    "link": "links",
    "selector": "links",
    "link_selector": "links",
    "content": "body",
    "article": "body",
    "content_selector": "body",
    "strip": "remove",
    "limit": "max_items",
    "type": "kind",
    "max_pages": "pages",
    "pagination": "pages",
    "url_list": "urls",
    "tracking": "tracking_params",
    "robots": "respect_robots",
    "disabled": "enabled",
    "timeout": "read_timeout",
    "delay": "per_host_delay",
    "feeds": "feeds_dir",
    "database": "state_url",
}
_NESTED_MODELS: dict[Any, type[BaseModel]] = {
    HealthThresholds: HealthThresholds,
    HealthThresholds | None: HealthThresholds,
}
_REQUIRED_EXAMPLES = {
    "id": 'every [[source]] needs an id, e.g. id = "python-blog"',
    "url": 'every [[source]] needs a url, e.g. url = "https://example.com/blog/"',
}


def _problem(
    error: Mapping[str, Any], model: type[BaseModel], file: str, source: str | None
) -> ConfigProblem:
    loc = error.get("loc") or ()
    field = _format_loc(loc) or None
    return ConfigProblem(file, _error_message(error, model), source, field)


def _format_loc(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _error_message(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    kind = error.get("type", "")
    value = error.get("input")
    context = error.get("ctx") or {}
    loc = error.get("loc") or ()
    if kind == "extra_forbidden":
        allowed = list(_model_at(model, loc[:-1]).model_fields)
        suggestion = _suggest(str(loc[-1]), allowed, "", _KEY_HINTS)
        return "unknown key" + (suggestion or f"; allowed keys: {', '.join(allowed)}")
    if kind == "missing":
        return "required key missing; " + _REQUIRED_EXAMPLES.get(str(loc[-1]), "add it")
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_toml_type(value)} {_short(value)}"
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind].format(**context)}, got {_short(value)}"
    if kind == "value_error" and "error" in context:
        return str(context["error"])
    return str(error.get("msg", "invalid value"))


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel]:
    """The model a nested error location points into (`health.bad_run` -> HealthThresholds)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        inner = _NESTED_MODELS.get(field.annotation) if field is not None else None
        if inner is None:
            return model
        model = inner
    return model


def _suggest(
    key: str, choices: Sequence[str], suffix: str, hints: Mapping[str, str] | None = None
) -> str:
    """ "; did you mean 'x'?" for a close spelling, or a known synonym, of one of `choices`."""
    hints = {k: v for k, v in (hints or {}).items() if v in choices}
    match = difflib.get_close_matches(key.lower(), [*choices, *hints], n=1, cutoff=0.6)
    if not match:
        return ""
    return f"; did you mean {hints.get(match[0], match[0])!r}{suffix}?"


def _toml_type(value: object) -> str:
    names = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
    ]
    for kind, name in names:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
