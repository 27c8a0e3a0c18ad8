"""The operator's config folder -> validated, typed, frozen objects.

This is the only module that reads config files, and every default lives here, as a field default
of `Settings` or `Source` (or one of the constants just below). Value objects that other stages
build from them (`FetchOptions`, `ListingOptions`, ...) take their defaults from here too
(`setting_default`, `source_default`), never a copy of the value.

Layout, relative to the config folder (``config/`` unless ``--config`` or ``FEEDWORKER_CONFIG``):

- ``feedworker.toml``: one ``[worker]`` table -> `Settings` (optional; all defaults when missing).
- ``sources.toml``: ``[[source]]`` tables -> `Source`, then every ``sources.d/*.toml`` sorted by
  name, one site a file by convention. Either may be missing; no source at all is a problem.
- ``FEEDWORKER_<SETTING>`` environment variables override the ``[worker]`` table.

Secrets are never written in the config files: a source's password comes from an environment
variable or a file (``auth = { user = "...", password_env = "SITE_PASSWORD" }``), the server's
token from ``FEEDWORKER_SERVE_TOKEN`` or ``serve_token_file``. ``user:password@`` in a source's URL
is still understood, and moved out of the URL into `Source.auth` at load, so no URL the worker
shows carries it. Every secret value the config holds is in `Config.secret_values`; loading
hands them to the log handler, which masks them (`worker.service.logs.remember_secrets`).

Relative paths (``feeds_dir``, a relative ``sqlite:///`` state URL) resolve against the folder that
holds the config folder, the "root", so ``--config /srv/site/config`` works from any directory.

`load_config` collects every problem it finds (TOML syntax, unknown keys with a suggestion, wrong
types, bad values, duplicate ids) and raises one `ConfigError` listing them all, each line naming
the file, the source and the field.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.util
import math
import os
import re
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard, get_origin
from urllib.parse import unquote, urlsplit, urlunsplit

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from selectolax.lexbor import LexborHTMLParser

from worker.errors import ConfigError, ConfigProblem
from worker.fetch.cookies import (
    MAX_COOKIE_FILE_BYTES,
    CookieSet,
    parse_cookie_file,
    parse_cookie_header,
)
from worker.filters import FilterRule, ItemFilters, parse_rules
from worker.models import Credentials
from worker.redact import is_secret_param, redact_url, url_secrets
from worker.service.logs import remember_secrets
from worker.siterules import EMPTY_LIBRARY, RuleLibrary
from worker.siterules.load import load_rule_folders
from worker.urlpattern import UrlMatcher, compile_url_pattern, has_nested_quantifier
from worker.urls import host_key, origin_key

__all__ = [
    "CONFIG_ENV_VAR",
    "ENV_PREFIX",
    "Config",
    "CookieEnv",
    "CookieFile",
    "HealthThresholds",
    "Settings",
    "Source",
    "SourceAuth",
    "TokenFile",
    "default_config_dir",
    "load_config",
    "parse_duration",
    "setting_default",
    "source_default",
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
DURATION_FORMAT = (
    'a duration like "45s", "15m", "2h", "1h30m", "1 hour", "90 minutes" or "1d",'
    " or a number of seconds"
)
# A unit as written: its first letter says which ("mins" and "m" are minutes, "hrs" hours).
# Longer spellings first, so "minutes" is not read as "m" followed by junk.
_UNIT = r"(weeks?|wks?|w|days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*" + _UNIT + r"(?![a-z])", re.IGNORECASE)
# Parts may be run together ("1h30m") or separated by spaces, commas or "and" ("1 hour, 30
# minutes", "1 hour and 30 minutes").
_DURATION = re.compile(
    rf"\s*\d+(?:\.\d+)?\s*{_UNIT}(?:(?:\s*,\s*|\s+and\s+|\s*)\d+(?:\.\d+)?\s*{_UNIT})*\s*",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


# `serve_token`: long enough that guessing is hopeless, and fit for a header and a query string.
MIN_TOKEN_CHARS = 16
TOKEN_HINT = "e.g. the output of: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
PASSWORD_HOME = (
    "a password is never written in the config: put it in an environment variable and write"
    ' auth = { user = "...", password_env = "SITE_PASSWORD" }, or in a file only the worker'
    ' reads and write auth = { user = "...", password_file = "secrets/site.password" }'
)

WEBSUB_SELF = "self"  # websub_hub = "self": feedworker is its own WebSub hub

# The longest duration any setting takes; beyond it dates overflow.
MAX_DURATION = timedelta(days=3650)

# -- request settings and rendering (docs/rendering.md) ------------------------------------------
MAX_HEADERS = 32  # a source's extra request headers
MAX_HEADER_CHARS = 8192  # one header's value
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token
# Headers a source may not set, each with what to do instead (compared lower-cased).
REFUSED_HEADERS = {
    **dict.fromkeys(
        ("host", "content-length", "transfer-encoding", "connection", "keep-alive",
         "proxy-connection", "te", "trailer", "upgrade", "expect"),
        "a hop-by-hop or framing header: feedworker sets it for each request",
    ),
    "accept-encoding": "feedworker decodes bodies itself, within max_page_bytes, and asks for"
    " the encodings it can decode",
    "cookie": "cookies are secrets, never written in the config: use cookies_file or cookie_env",
    "authorization": "credentials are never written in the config: use auth = { user = ...,"
    " password_env = ... }",
    "proxy-authorization": "put the proxy's user:password in the proxy URL (better: in the"
    " FEEDWORKER_PROXY environment variable)",
    "user-agent": 'use user_agent = "..." instead',
    **dict.fromkeys(
        ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range",
         "range"),
        "feedworker sends conditional requests itself",
    ),
}  # fmt: skip
PROXY_SCHEMES = ("http", "https", "socks5")
NO_PROXY = "none"  # a source's proxy = "none": straight to the site, whatever [worker] says
RENDER_MODES = ("none", "browser")
MAX_RENDER_TIMEOUT = 300.0

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
        seconds = sum(float(n) * _UNIT_SECONDS[u[0].lower()] for n, u in parts)
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
    problem = _selector_problem(value)
    if problem:
        raise ValueError(f"invalid CSS selector {value!r}: {problem}")
    return value


# Loads (and hot reloads) see the same few selectors and patterns again and again, thousands
# of sources often sharing a site platform's; each costs a parse (selectors: 13 µs, a pattern's
# RE2 compile and syntax check: 60 µs). Bounded: a config of endless distinct ones still loads.
_CONFIG_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=_CONFIG_CACHE_SIZE)
def _selector_problem(selector: str) -> str:
    """Why Lexbor refuses `selector` ("" when it does not)."""
    try:
        LexborHTMLParser("<p></p>").css(selector)
    except Exception as exc:  # selectolax raises its own SelectolaxError (and ValueError)
        return str(exc) or type(exc).__name__
    return ""


# RE2 patterns are immutable and safe to share between sources and threads.
_compile_pattern = functools.lru_cache(maxsize=_CONFIG_CACHE_SIZE)(compile_url_pattern)
_nested_quantifier = functools.lru_cache(maxsize=_CONFIG_CACHE_SIZE)(has_nested_quantifier)


def _check_selectors(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected a CSS selector or a list of them, got {_toml_type(value)}")
    return tuple(_check_selector(item) for item in items)


def _check_patterns(value: object) -> tuple[UrlMatcher, ...]:
    """URL regexes, compiled for linear-time matching (`worker.urlpattern`)."""
    items = [value] if isinstance(value, str | re.Pattern) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected a regex or a list of regexes, got {_toml_type(value)}")
    patterns: list[UrlMatcher] = []
    for item in items:
        if isinstance(item, re.Pattern):
            patterns.append(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f"expected a regex string, got {_toml_type(item)}")
        try:
            patterns.append(_compile_pattern(item))
        except ValueError as exc:
            raise ValueError(f"bad regular expression {item!r}: {exc}") from None
        except (RecursionError, OverflowError):  # sre's parser recurses once per group
            raise ValueError(f"regular expression {_short(item)} is nested too deeply") from None
    return tuple(patterns)


def _check_filters(value: object, info: ValidationInfo) -> tuple[FilterRule, ...]:
    """`keep` / `drop`: rules as `worker.filters` reads them; RE2 for `re:` patterns."""
    return parse_rules(value, info.field_name or "filter")


def format_duration(delta: timedelta) -> str:
    """A duration the way the config takes it: "1h30m", "45s", "2d"."""
    seconds = round(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


# What `str.isspace` calls space (Unicode's too), the C0 controls and DEL: one regex search,
# not a Python step per character (the URL check ran 300,000 of them at 10,000 sources).
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def _check_http_url(value: str) -> str:
    """An absolute http(s) URL with a host; nothing a browser would have to guess about."""
    example = 'e.g. "https://example.com/blog/"'
    shown = redact_url(value)  # messages are printed: never with a password or token in them
    if not value.strip():
        raise ValueError(f"empty URL, {example}")
    if "\\" in value:
        raise ValueError(f"backslash in URL {shown!r}; use '/'")
    if _SPACE_OR_CONTROL.search(value):
        raise ValueError(f"space or control character in URL {shown!r}; percent-encode it")
    hint = missing_scheme_hint(value)
    if hint:
        raise ValueError(f"URL {shown!r} has no scheme; {hint}")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise ValueError(f"only http and https URLs are allowed, got {scheme} in {shown!r}")
    if not parts.hostname:
        raise ValueError(f"URL {shown!r} has no host, {example}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"URL {shown!r} has a bad port") from None
    return value


# A host name as people type it: dotted labels (or localhost), an optional port.
_BARE_HOST = re.compile(r"(?:[\w-]+\.)+[\w-]{2,}|localhost|\[[0-9a-fA-F:.]+\]", re.IGNORECASE)


def missing_scheme_hint(value: str) -> str | None:
    """'did you mean "https://example.com/blog"?' for a URL written without its scheme
    ("example.com/blog", "www.example.com:8080/"); None when `value` has one or is no URL."""
    text = value.strip()
    if "://" in text or not text or any(ch.isspace() for ch in text):
        return None
    text = text.removeprefix("//")
    host = re.split(r"[/?#]", text, maxsplit=1)[0].rpartition("@")[2]
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    if port and not port.isdigit():
        return None  # "mailto:x", "javascript:..." are schemes, not ports
    if not _BARE_HOST.fullmatch(name or host):
        return None
    return f'did you mean "{redact_url("https://" + text)}"?'


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
        if _split_userinfo(item)[1] is not None:
            raise ValueError(
                f"urls[{n}]: write it without 'user:password@'; the source's auth = {{ ... }}"
                " is sent to every URL on the origin of its url"
            )
    return tuple(urls)


def _split_userinfo(url: str) -> tuple[str, str | None, str]:
    """(url without userinfo, user or None when there is none, password), decoded."""
    try:
        parts = urlsplit(url)
        if parts.username is None:
            return url, None, ""
    except ValueError:
        return url, None, ""
    clean = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return clean, unquote(parts.username), unquote(parts.password or "")


def _check_token(value: object) -> SecretStr | None:
    """The server's access token; messages never repeat it."""
    if value is None:
        return None
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(text, str):
        raise ValueError(f"expected a string, got {_toml_type(text)}")
    text = text.strip()
    if len(text) < MIN_TOKEN_CHARS or not text.isascii() or not text.isprintable():
        raise ValueError(
            f"must be at least {MIN_TOKEN_CHARS} printable ASCII characters ({TOKEN_HINT})"
        )
    if any(ch.isspace() for ch in text):
        raise ValueError("must not contain spaces")
    return SecretStr(text)


def _read_secret_file(value: object, root: Path, what: str) -> tuple[Path, str]:
    """(the file, its text without the trailing newline); messages name the file, never the text."""
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ValueError(f"expected a file path string, got {_toml_type(value)}")
    try:
        path = Path(os.path.abspath(root / Path(value).expanduser()))
    except RuntimeError:  # "~nosuchuser/..."
        raise ValueError(f"cannot find the home folder in {value!r}") from None
    try:
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} file {path} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{what} file {path} is empty")
    return path, text


@dataclass(frozen=True, slots=True)
class TokenFile:
    """`serve_token_file`: the file and the token read from it at load."""

    path: Path
    token: SecretStr


def _check_token_file(value: object, info: ValidationInfo) -> TokenFile | None:
    if value is None or isinstance(value, TokenFile):
        return value
    path, text = _read_secret_file(value, _root_from(info), "serve_token")
    token = _check_token(text)
    assert token is not None
    return TokenFile(path, token)


def _check_param_names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError('expected an array of parameter names like ["ref", "source_*"]')
    names = tuple(v.strip() for v in value)
    if any(not name or name == "*" or "=" in name or "&" in name for name in names):
        raise ValueError('each name is a query parameter name ("ref"), or a prefix ("ref_*")')
    return names


def _check_one_line(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_toml_type(value)}")
    if not value.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must be one non-empty line of text")
    return value


def _check_headers(value: object) -> tuple[tuple[str, str], ...]:
    """Extra request headers: names that are HTTP tokens, not ones feedworker must set itself
    (`REFUSED_HEADERS`), values on one line. Messages name the header, never its value."""
    example = 'e.g. headers = { "Accept-Language" = "de-DE" }'
    if isinstance(value, tuple):  # the default, or already checked
        return value
    if not isinstance(value, dict):
        raise ValueError(f"expected a table of header names and values, {example}")
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers, got {len(value)}")
    headers = []
    for name, text in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a header name (letters, digits and -)")
        refused = REFUSED_HEADERS.get(name.lower())
        if refused:
            raise ValueError(f"{name!r} may not be set: {refused}")
        if not isinstance(text, str):
            raise ValueError(f"{name!r}: expected a string value, got {_toml_type(text)}")
        if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in text):
            raise ValueError(f"{name!r}: the value must be one line without control characters")
        if len(text) > MAX_HEADER_CHARS:
            raise ValueError(f"{name!r}: the value is longer than {MAX_HEADER_CHARS} characters")
        headers.append((name, text.strip()))
    return tuple(headers)


@dataclass(frozen=True, slots=True)
class CookieFile:
    """A source's `cookies_file` (Netscape cookies.txt) and the cookies read from it at load;
    `worker.pipeline` reads it again for each run, so a fresh export needs no restart."""

    path: Path
    cookies: CookieSet


def read_cookie_file(path: Path) -> CookieSet:
    """The cookies of a cookies.txt file now; `ValueError` naming the file (never a value)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_COOKIE_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read cookies file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_COOKIE_FILE_BYTES:
        raise ValueError(f"cookies file {path} is larger than {MAX_COOKIE_FILE_BYTES} bytes")
    try:
        return parse_cookie_file(raw.decode("utf-8-sig"), time.time())
    except UnicodeDecodeError:
        raise ValueError(f"cookies file {path} is not UTF-8 text") from None
    except ValueError as exc:
        raise ValueError(f"cookies file {path}: {exc}") from None


def _check_cookie_file(value: object, info: ValidationInfo) -> CookieFile | None:
    if value is None or isinstance(value, CookieFile):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a file path string, got {_toml_type(value)}")
    path = Path(os.path.abspath(_root_from(info) / _expand_home(Path(value))))
    return CookieFile(path, read_cookie_file(path))


@dataclass(frozen=True, slots=True)
class CookieEnv:
    """A source's `cookie_env`: the variable's name and the Cookie header value it holds."""

    name: str
    value: SecretStr

    def cookies(self, url: str) -> CookieSet:
        """The cookies, as cookies of `url`'s host (and of no other host)."""
        return parse_cookie_header(self.value.get_secret_value(), host_key(url, port=False))


def _check_cookie_env(value: object, info: ValidationInfo) -> CookieEnv | None:
    if value is None or isinstance(value, CookieEnv):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an environment variable name, got {_toml_type(value)}")
    env = (info.context or {}).get("env", os.environ)
    header = env.get(value)
    if not header:
        raise ValueError(f"environment variable {value} (cookie_env) is not set or empty")
    try:
        parse_cookie_header(str(header), "example.invalid")
    except ValueError as exc:
        raise ValueError(f"environment variable {value}: {exc}") from None
    return CookieEnv(value, SecretStr(str(header)))


def _check_proxy(value: object) -> str | None:
    """A proxy URL (http, https or socks5, with a host and no path), or "none"."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f'expected a proxy URL or "none", got {_toml_type(value)}')
    if value.strip().lower() == NO_PROXY:
        return NO_PROXY
    shown = redact_url(value)  # never the proxy's password in a message
    example = 'e.g. "http://proxy.example:3128" or "socks5://127.0.0.1:1080"'
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"proxy {shown!r} is not a URL with a valid port, {example}") from None
    scheme = parts.scheme.lower()
    if scheme == "socks5h":
        raise ValueError(
            "socks5h:// (names resolved by the proxy) is not supported: feedworker resolves each"
            " destination itself, so the SSRF guard can judge its address; write socks5://"
        )
    if scheme not in PROXY_SCHEMES:
        raise ValueError(f"proxy {shown!r}: the scheme must be http, https or socks5, {example}")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"proxy {shown!r}: expected scheme://host:port and nothing more")
    if scheme == "socks5" and port is None:
        raise ValueError(f"proxy {shown!r}: give the port, e.g. socks5://{parts.hostname}:1080")
    if scheme == "socks5" and importlib.util.find_spec("socksio") is None:
        raise ValueError("socks5 proxies need the socksio package: pip install socksio")
    return value.strip()


def _check_worker_proxy(value: object) -> str | None:
    checked = _check_proxy(value)
    return None if checked == NO_PROXY else checked


def _check_render_timeout(value: object) -> float:
    seconds = _check_seconds(value)
    if seconds > MAX_RENDER_TIMEOUT:
        raise ValueError(f"must be at most {MAX_RENDER_TIMEOUT:g} s, got {value!r}")
    return seconds


def _check_allow_hosts(value: object) -> tuple[str, ...]:
    """Host names ("cdn.example.net") or domains with their subdomains ("*.example.net")."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected an array of host names, got {_toml_type(value)}")
    hosts = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"expected host name strings, got {_toml_type(item)}")
        text = item.strip()
        wildcard = text.startswith("*.")
        name = text[2:] if wildcard else text
        if "/" in name or (":" in name and not name.startswith("[")):
            raise ValueError(
                f'{text!r}: a host name like "cdn.example.net" or "*.example.net", not a URL'
                " (any port of the host is allowed)"
            )
        key = host_key(f"http://{name}/", port=False)
        if not key or "*" in key:
            raise ValueError(f"{text!r} is not a host name")
        hosts.append("*." + key if wildcard else key)
    return tuple(hosts)


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


def _is_valid_id(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str) and value not in RESERVED_IDS and bool(ID_PATTERN.fullmatch(value))
    )


def _root_from(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("root") or Path.cwd())


def _resolve_path(value: object, info: ValidationInfo) -> Path:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ValueError(f"expected a folder path string, got {value!r}")
    return Path(os.path.abspath(_root_from(info) / _expand_home(Path(value))))


def _expand_home(path: Path) -> Path:
    """`~` and `~user` expanded, or a ValueError saying which home could not be found."""
    try:
        return path.expanduser()
    except RuntimeError:  # pathlib's "Could not determine home directory."
        home = path.parts[0] if path.parts else "~"
        message = f"cannot expand {home!r} in {str(path)!r}: no such user or home folder"
        raise ValueError(message) from None


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
Patterns = Annotated[tuple[UrlMatcher, ...], PlainValidator(_check_patterns)]
Urls = Annotated[tuple[str, ...], PlainValidator(_check_urls)]
ParamNames = Annotated[tuple[str, ...], PlainValidator(_check_param_names)]
Filters = Annotated[tuple[FilterRule, ...], PlainValidator(_check_filters)]
Token = Annotated[SecretStr | None, PlainValidator(_check_token)]
TokenFileField = Annotated[TokenFile | None, PlainValidator(_check_token_file)]
RequestHeaders = Annotated[tuple[tuple[str, str], ...], PlainValidator(_check_headers)]
OneLine = Annotated[str, PlainValidator(_check_one_line)]
CookieFileField = Annotated[CookieFile | None, PlainValidator(_check_cookie_file)]
CookieEnvField = Annotated[CookieEnv | None, PlainValidator(_check_cookie_env)]
ProxyField = Annotated[str | None, PlainValidator(_check_proxy)]
WorkerProxy = Annotated[str | None, PlainValidator(_check_worker_proxy)]
RenderTimeout = Annotated[float, PlainValidator(_check_render_timeout)]
AllowHosts = Annotated[tuple[str, ...], PlainValidator(_check_allow_hosts)]


class HealthThresholds(BaseModel):
    """When a source counts as degraded (``[worker.health]``, or a source's ``health = {...}``,
    which overrides only the keys it sets). Every rule compares a source with its own history;
    see `worker.service.health` and docs/health.md."""

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
# event loop's own work is a fraction of a core: docs/benchmarks.md); beyond four the
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
    # One at a time per host, at least a second apart: what trusted crawlers agree on (Nutch
    # waits 5 s), safer than 2.
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
    # Several replicas share the sources through procrastinate (worker.service.cluster); PostgreSQL
    # only.
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
    # Keep automatic extraction's body when a rule's looks worse (rules age; docs/site-rules.md).
    site_rules_check: bool = True
    # Pages of one multi-page article fetched and merged (`next_page_link`, `paginated_articles`).
    max_article_pages: int = Field(default=10, ge=1, le=100)
    health: HealthThresholds = HealthThresholds()  # [worker.health]: when a source is degraded
    webhook_url: str | None = None  # receives a JSON POST when a source degrades or recovers
    # When set, the status page, /metrics and /opml (and the feeds, unless `public_feeds`) want
    # `Authorization: Bearer <token>` or `?token=<token>`. Best from FEEDWORKER_SERVE_TOKEN or a
    # file (`serve_token_file`), not written in feedworker.toml.
    serve_token: Token = None
    serve_token_file: TokenFileField = None
    public_feeds: bool = True  # with a token: feeds stay readable without it
    # Every request through this proxy (http://, https:// or socks5://host:port); a source's
    # own `proxy` wins ("none": direct). Best from FEEDWORKER_PROXY when it holds a password.
    proxy: WorkerProxy = None
    # Rendering in headless Chromium (`render = "browser"` sources; worker.render): pages at
    # once (each a browser tab, tens of MiB); the browser ("auto": Debian's
    # chromium-headless-shell or chromium); its memory cap, over which it is killed and started
    # again; and Chromium's own sandbox (off as root, where Chromium refuses it).
    render_concurrency: int = Field(default=2, ge=1, le=16)
    render_browser: str = "auto"
    render_memory_mb: int = Field(default=1024, ge=128, le=65536)
    render_sandbox: bool = True
    # WebSub (worker.service.websub): a hub every feed advertises, pinged when a feed's bytes
    # change; "self": feedworker is the hub (at <public_url>/websub). Needs `public_url`.
    websub_hub: str | None = None
    # WebSub callbacks and the /preview form's URLs may be on loopback or private networks (a
    # reader on the same LAN); off, so a subscriber cannot make the worker call internal hosts.
    websub_allow_private: bool = False
    preview_allow_private: bool = False
    # /metrics: series per source for every source ("all"), only failing or degraded ones
    # ("unhealthy"), or "auto": all up to worker.service.metrics.AUTO_PER_SOURCE_LIMIT sources.
    metrics_per_source: Literal["auto", "all", "unhealthy"] = "auto"

    @property
    def token(self) -> str | None:
        """The server's access token, from `serve_token` or `serve_token_file`; None: open."""
        secret = self.serve_token or (self.serve_token_file and self.serve_token_file.token)
        return secret.get_secret_value() if secret else None

    @model_validator(mode="after")
    def _check_one_token(self) -> Settings:
        if self.serve_token is not None and self.serve_token_file is not None:
            raise ValueError("give serve_token or serve_token_file, not both")
        return self

    @model_validator(mode="after")
    def _check_websub(self) -> Settings:
        if self.websub_hub is None:
            return self
        if not self.public_url:
            raise ValueError(
                "websub_hub needs public_url: hubs and subscribers name each feed by the"
                ' address readers use (public_url = "https://feeds.example.org")'
            )
        if self.token and not self.public_feeds:
            raise ValueError(
                "websub_hub with public_feeds = false would push private feeds to anyone who"
                " subscribes; make the feeds public or remove websub_hub"
            )
        return self

    @field_validator("websub_hub")
    @classmethod
    def _check_websub_hub(cls, value: str | None) -> str | None:
        if value is None or value == WEBSUB_SELF:
            return value
        try:
            return _check_http_url(value)
        except ValueError as exc:
            raise ValueError(f'{exc} (or "{WEBSUB_SELF}": feedworker is its own hub)') from None

    @property
    def websub_hub_url(self) -> str | None:
        """The hub every feed advertises: the configured one, or our own `/websub`."""
        if self.websub_hub == WEBSUB_SELF and self.public_url:
            return f"{self.public_url}/websub"
        return self.websub_hub

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
        absolute = os.path.abspath(_root_from(info) / _expand_home(Path(path)))
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


class SourceAuth(BaseModel):
    """``auth = { user = "...", password_env = "SITE_PASSWORD" }`` (or ``password_file = "..."``):
    HTTP Basic credentials, sent to the origin (scheme, host, port) of the source's `url` only,
    never on a redirect or link to another origin. The password is read at load from the
    environment or the file; a ``password`` key of its own is refused (`PASSWORD_HOME`)."""

    model_config = _MODEL_CONFIG

    user: str
    password_env: str | None = None
    password_file: str | None = None
    # Read from password_env or password_file, or taken from the URL's userinfo; never a key.
    password: SecretStr = SecretStr("")

    @classmethod
    def from_url(cls, user: str, password: str) -> SourceAuth:
        """Credentials written in a URL's userinfo (still understood; `auth` is their home)."""
        return cls.model_construct(user=user, password=SecretStr(password))

    @property
    def password_from(self) -> str:
        """Where the password came from, for `feedworker check`."""
        if self.password_env:
            return f"${self.password_env}"
        if self.password_file:
            return f"file {self.password_file}"
        return "the URL (better: password_env or password_file)"

    @model_validator(mode="before")
    @classmethod
    def _read_password(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "password" in data:
            raise ValueError(PASSWORD_HOME)
        env_name, file_name = data.get("password_env"), data.get("password_file")
        if (env_name is None) == (file_name is None):
            raise ValueError(
                'give the password in one way: password_env = "SITE_PASSWORD" (an environment'
                ' variable) or password_file = "secrets/site.password" (a file)'
            )
        if isinstance(env_name, str):
            data["password"] = SecretStr(_password_from_env(env_name, info))
        elif isinstance(file_name, str):
            data["password"] = SecretStr(
                _read_secret_file(file_name, _root_from(info), "password")[1]
            )
        return data  # a value of the wrong type: the field's own check says so

    @field_validator("user")
    @classmethod
    def _check_user(cls, value: str) -> str:
        if not value or ":" in value or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValueError("a user name: not empty, without ':' or control characters")
        return value


def _same_credentials(a: SourceAuth, b: SourceAuth) -> bool:
    return (a.user, a.password) == (b.user, b.password)


def _password_from_env(name: str, info: ValidationInfo) -> str:
    env = (info.context or {}).get("env", os.environ)
    value = env.get(name)
    if not value:
        raise ValueError(f"environment variable {name} (password_env) is not set or empty")
    return str(value)


_MAY_HOLD_SECRETS = re.compile(r"[@?#]")


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
    # HTTP Basic credentials for the origin of `url`; `user:password@` in `url` lands here too.
    auth: SourceAuth | None = None
    # Request settings (docs/rendering.md): extra headers sent to the source's own site, a
    # User-Agent of its own, cookies (a cookies.txt file, or a Cookie header value in the
    # environment), and a proxy (None: the worker's; "none": direct).
    headers: RequestHeaders = ()
    user_agent: OneLine | None = None
    cookies_file: CookieFileField = None
    cookie_env: CookieEnvField = None
    proxy: ProxyField = None
    # Rendering in headless Chromium (worker.render): "browser" renders the listing's and the
    # articles' HTML pages before discovery and extraction; wait for a CSS selector (else for
    # the network to go quiet) within a timeout; third-party hosts the pages may load from.
    render: str = "none"
    render_wait: Selector | None = None
    render_timeout: RenderTimeout = 20.0
    render_allow_hosts: AllowHosts = ()
    # Item filters (worker.filters): items must match one `keep` rule (when there are any) and
    # no `drop` rule to be published; the others are stored as filtered, with the reason.
    keep: Filters = ()
    drop: Filters = ()

    # `every` as the operator wrote it ("6h", "90 minutes"), for `feedworker check`.
    _every_written: str | None = PrivateAttr(default=None)

    @property
    def filters(self) -> ItemFilters:
        return ItemFilters(self.keep, self.drop)

    @property
    def schedule_text(self) -> str:
        """The schedule as the operator wrote it: "every 6h", "cron 0 7 * * 1-5", or
        "every 1h (default)" when neither `every` nor `cron` is given."""
        if self.cron is not None:
            return f"cron {self.cron}"
        if self._every_written is not None:
            return f"every {self._every_written}"
        if self.every == DEFAULT_EVERY:
            return f"every {format_duration(DEFAULT_EVERY)} (default)"
        return f"every {format_duration(self.every or DEFAULT_EVERY)}"

    @model_validator(mode="wrap")
    @classmethod
    def _remember_every(cls, data: Any, handler: ModelWrapValidatorHandler[Source]) -> Source:
        source = handler(data)
        written = data.get("every") if isinstance(data, Mapping) else None
        if isinstance(written, str):
            source._every_written = written.strip()
        elif isinstance(written, int | float) and not isinstance(written, bool):
            source._every_written = f"{written:g}s"
        return source

    @property
    def secret_values(self) -> tuple[str, ...]:
        """Every secret this source holds: its password, the tokens in its URLs' queries, its
        cookies' values, its proxy's password, and the values of secret-looking headers."""
        values = [
            secret
            for url in (self.url, *self.urls, self.proxy or "")
            if _MAY_HOLD_SECRETS.search(url)  # a userinfo, a query or a fragment
            for secret in url_secrets(url)
        ]
        if self.auth is not None:
            values.append(self.auth.password.get_secret_value())
        if self.cookies_file is not None:
            values.extend(self.cookies_file.cookies.values)
        if self.cookie_env is not None:
            values.append(self.cookie_env.value.get_secret_value())
            values.extend(self.cookie_env.cookies(self.url).values)
        values.extend(value for name, value in self.headers if is_secret_param(name))
        return tuple(value for value in values if value)

    @property
    def renders(self) -> bool:
        return self.render == "browser"

    def proxy_for(self, settings: Settings) -> str | None:
        """The proxy this source's requests go through, or None for none."""
        if self.proxy == NO_PROXY:
            return None
        return self.proxy or settings.proxy

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
        if "password" in data:
            raise ValueError(PASSWORD_HOME)
        _move_userinfo(data)
        if not data.get("title") and isinstance(data.get("id"), str):
            data["title"] = data["id"]
        if data.get("every") is None and data.get("cron") is None:
            data["every"] = DEFAULT_EVERY
        if data.get("urls") and "kind" not in data:
            data["kind"] = "urls"
        return data

    @field_validator("render")
    @classmethod
    def _check_render(cls, value: str) -> str:
        if value not in RENDER_MODES:
            choices = ", ".join(f'"{mode}"' for mode in RENDER_MODES)
            raise ValueError(f"expected one of {choices}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_render_keys(self) -> Source:
        """render_* keys only mean something for a rendered source: a slip otherwise."""
        if self.renders:
            return self
        for key in ("render_wait", "render_timeout", "render_allow_hosts"):
            if key in self.model_fields_set:
                raise ValueError(f'{key} applies to rendered pages: add render = "browser"')
        return self

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


def _move_userinfo(data: dict[str, Any]) -> None:
    """`user:password@` in a source's url becomes its `auth`, and leaves the url."""
    url = data.get("url")
    if not isinstance(url, str) or "@" not in url:
        return
    clean, user, password = _split_userinfo(url)
    if user is None:
        return
    if data.get("auth") is not None:
        raise ValueError(
            "credentials given twice: keep auth = { ... } and write url without 'user:password@'"
        )
    data["url"] = clean
    data["auth"] = SourceAuth.from_url(user, password)


def setting_default(name: str) -> Any:
    """The default of the `[worker]` setting `name`, for a value object another stage builds
    from `Settings` (`FetchOptions`): the value is written once, on `Settings`."""
    return Settings.model_fields[name].default


def source_default(name: str) -> Any:
    """The default of the `[[source]]` key `name`, for a value object built from a `Source`."""
    return Source.model_fields[name].default


@dataclass(frozen=True, slots=True)
class Config:
    """Everything read from one config folder; `digest` changes when any file read changes."""

    config_dir: Path
    root: Path  # the folder holding config_dir; relative paths resolve against it
    settings: Settings
    sources: tuple[Source, ...]  # enabled and disabled, in file order
    files: tuple[Path, ...]
    digest: str  # of every config file read, and of the site rule files
    warnings: tuple[ConfigProblem, ...] = ()  # valid but doubtful (`feedworker check` shows them)
    site_rules: RuleLibrary = EMPTY_LIBRARY  # read from `settings.site_rules`
    # Looked up on every run, from thousands of sources: an index by id, and the secrets once.
    _by_id: dict[str, Source] = field(init=False, repr=False, compare=False)
    _secrets: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Source] = {}
        for source in self.sources:
            by_id.setdefault(source.id, source)  # the first, as a scan would find
        object.__setattr__(self, "_by_id", by_id)

    @property
    def active_sources(self) -> tuple[Source, ...]:
        return tuple(source for source in self.sources if source.enabled)

    def source(self, source_id: str) -> Source:
        source = self._by_id.get(source_id)
        if source is not None:
            return source
        known = ", ".join(s.id for s in self.sources) or "none"
        raise KeyError(f"no source with id {source_id!r} in {self.config_dir} (known: {known})")

    def active_source(self, source_id: str) -> Source | None:
        """The enabled source with this id; None when it is gone or disabled (a run to skip)."""
        source = self._by_id.get(source_id)
        return source if source is not None and source.enabled else None

    @property
    def credentials(self) -> dict[str, Credentials]:
        """HTTP Basic credentials by origin ("https://example.com:443"), from the sources' auth."""
        return {
            origin_key(source.url): Credentials(
                source.auth.user, source.auth.password.get_secret_value()
            )
            for source in self.sources
            if source.auth is not None
        }

    @property
    def secret_values(self) -> frozenset[str]:
        """Every secret value in the config (passwords, tokens, secrets in URLs), to be masked
        wherever text leaves the process."""
        if self._secrets is None:
            object.__setattr__(self, "_secrets", self._find_secrets())
        assert self._secrets is not None
        return self._secrets

    def _find_secrets(self) -> frozenset[str]:
        settings = self.settings
        values = {value for source in self.sources for value in source.secret_values}
        for url in (
            settings.webhook_url,
            settings.state_url,
            settings.public_url,
            settings.proxy,
            settings.websub_hub,
        ):
            values.update(url_secrets(url or ""))
        if settings.token:
            values.add(settings.token)
        return frozenset(values)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def default_config_dir() -> Path:
    """``$FEEDWORKER_CONFIG`` when set, else ``./config``."""
    return Path(os.environ.get(CONFIG_ENV_VAR) or "config")


def load_config(config_dir: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config folder; raise `ConfigError` listing every problem found.

    `env` defaults to `os.environ`; its ``FEEDWORKER_<SETTING>`` entries override ``[worker]``.
    Whatever goes wrong while loading (a file nested too deeply to parse, a home folder that
    does not exist) is reported as a problem of the config, never raised as another error.
    """
    config = _loader(config_dir, env).load()
    remember_secrets(config.secret_values)
    return config


@dataclass(frozen=True, slots=True)
class SalvagedConfig:
    """A config folder read as far as it validates (`load_config_leniently`)."""

    config: Config  # the settings (defaults for keys with problems) and the valid sources
    problems: tuple[ConfigProblem, ...]  # empty when the folder validates


def load_config_leniently(
    config_dir: Path | str, env: Mapping[str, str] | None = None
) -> SalvagedConfig:
    """The config as far as it validates, for commands that only read the state (`status`)
    while an edit is broken: sources with problems are left out, settings with problems take
    their defaults. Raises `ConfigError` only when the state database cannot be known (a
    settings file that does not parse, a bad `state_url`) unless the environment names it."""
    loader = _loader(config_dir, env)
    try:
        salvaged = SalvagedConfig(loader.load(), ())
    except ConfigError as exc:
        salvaged = SalvagedConfig(loader.salvage(exc), exc.problems)
    remember_secrets(salvaged.config.secret_values)
    return salvaged


def _loader(config_dir: Path | str, env: Mapping[str, str] | None) -> _Loader:
    try:
        folder = Path(os.path.abspath(_expand_home(Path(config_dir))))
    except ValueError as exc:
        raise ConfigError([ConfigProblem(str(config_dir), str(exc))]) from None
    return _Loader(folder, os.environ if env is None else env)


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
        self.warnings: list[ConfigProblem] = []
        self.files: list[Path] = []
        self.contents: list[bytes] = []
        self.reading = str(config_dir)  # the file being read or validated, for problems
        # For `salvage`: the [worker] table as read (None: unreadable), the keys with problems.
        self.settings_table: dict[str, Any] | None = {}
        self.bad_settings: set[str] = set()
        self.sources: list[Source] = []

    def load(self) -> Config:
        try:
            return self._load()
        except ConfigError:
            raise
        except Exception as exc:  # unforeseen, yet still the config's: never a crash
            raise ConfigError([*self._sorted_problems(), _unexpected(exc, self.reading)]) from exc

    def _load(self) -> Config:
        if not self.config_dir.is_dir():
            what = "is not a folder" if self.config_dir.exists() else "not found"
            problem = ConfigProblem(str(self.config_dir), f"config folder {what}")
            raise ConfigError([problem])
        settings = self._load_settings()
        self.sources = self._load_sources()
        library = self._load_site_rules(settings) if settings is not None else EMPTY_LIBRARY
        if self.problems or settings is None:
            raise ConfigError(self._sorted_problems())
        return self._config(settings, self.sources, library)

    def _config(
        self, settings: Settings, sources: Sequence[Source], library: RuleLibrary = EMPTY_LIBRARY
    ) -> Config:
        return Config(
            config_dir=self.config_dir,
            root=self.root,
            settings=settings,
            sources=tuple(sources),
            files=tuple(self.files),
            digest=self._digest(library.digest),
            warnings=tuple(self.warnings),
            site_rules=library,
        )

    def salvage(self, error: ConfigError) -> Config:
        """After `load` failed with `error`: the settings without their bad keys, and the
        sources that validated; `error` again when the state database cannot be known."""
        table = dict(self.settings_table or {})
        from_env = self._apply_env(table)
        unreadable = self.settings_table is None  # did not parse: only the environment can say
        if "state_url" in self.bad_settings or (unreadable and "state_url" not in from_env):
            raise error
        kept = {key: value for key, value in table.items() if key not in self.bad_settings}
        try:
            settings = Settings.model_validate(kept, context={"root": self.root})
        except Exception:  # a problem the keys alone do not explain
            raise error from None
        return self._config(settings, self.sources)

    def _load_site_rules(self, settings: Settings) -> RuleLibrary:
        """The rule folders' files; a folder that is not there is a config problem, a rule file
        that does not parse is not (`RuleLibrary.problems`: `feedworker check` lists them)."""
        for n, folder in enumerate(settings.site_rules):
            if not folder.is_dir():
                what = "is not a folder" if folder.exists() else "not found"
                self.problems.append(
                    ConfigProblem(
                        self._name(self.config_dir / SETTINGS_FILE),
                        f"site rules folder {what}: {folder} (clone the rules there, see"
                        " docs/site-rules.md)",
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
        self.reading = name
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
        except RecursionError:  # tomllib recurses once per nested array or inline table
            message = "nested too deeply: arrays or inline tables hundreds of levels deep"
            self.problems.append(ConfigProblem(name, message))
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
                self.settings_table = None
                return None
            table = self._worker_table(document, name)
        self.settings_table = dict(table)  # before the environment: `salvage` applies it again
        overridden = self._apply_env(table)
        self.reading = name
        try:
            return Settings.model_validate(table, context={"root": self.root})
        except ValidationError as exc:
            for error in exc.errors():
                key = str(error["loc"][0]) if error["loc"] else None
                self.bad_settings.add(key or "")
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

    # Not pydantic-settings (tried 2.16): errors name the field, not the variable; no "a, b" lists.
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
        validated = [(t, self._validate_source(t)) for t in tables]
        sources = [(t, s) for t, s in validated if s is not None]
        self._check_credentials(sources)
        return [source for _table, source in sources]

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

    def _check_credentials(self, sources: Sequence[tuple[_SourceTable, Source]]) -> None:
        """Credentials belong to an origin: two sources may not give it different ones."""
        first: dict[str, tuple[_SourceTable, SourceAuth]] = {}
        for table, source in sources:
            if source.auth is None:
                continue
            origin = origin_key(source.url)
            earlier_table, earlier_auth = first.setdefault(origin, (table, source.auth))
            if earlier_table is table or _same_credentials(earlier_auth, source.auth):
                continue
            message = (
                f"other credentials for {origin} than source {earlier_table.label!r} gives;"
                " an origin has one user and password (give both sources the same auth)"
            )
            self.problems.append(ConfigProblem(table.file, message, table.label, "auth"))

    def _validate_source(self, table: _SourceTable) -> Source | None:
        self.reading = table.file
        try:
            try:
                source = Source.model_validate(
                    table.data, context={"root": self.root, "env": self.env}
                )
            except ValidationError as exc:
                for error in exc.errors():
                    self.problems.append(_problem(error, Source, table.file, table.label))
                return None
        except Exception as exc:  # a validator's own failure: this source's problem, no other's
            self.problems.append(_unexpected(exc, table.file, table.label))
            return None
        self.warnings += _pattern_warnings(table)
        self.warnings += _cookie_warnings(table, source)
        return source


def _cookie_warnings(table: _SourceTable, source: Source) -> list[ConfigProblem]:
    """Expired cookies in a cookies file: valid, but the site will not know the session."""
    if source.cookies_file is None or not source.cookies_file.cookies.expired:
        return []
    cookies = source.cookies_file.cookies
    total = cookies.expired + len(cookies.cookies)
    message = (
        f"{cookies.expired} of {total} cookies in {source.cookies_file.path} have expired"
        " (not sent): export them again"
    )
    return [ConfigProblem(table.file, message, table.label, "cookies_file")]


def _pattern_warnings(table: _SourceTable) -> list[ConfigProblem]:
    """Include/exclude patterns with nested quantifiers: harmless in feedworker (RE2 matches in
    linear time), but exponential in backtracking engines, and often broader than meant."""
    warnings = []
    for name in ("include", "exclude"):
        value = table.data.get(name)
        for item in [value] if isinstance(value, str) else value or ():
            if isinstance(item, str) and _nested_quantifier(item):
                message = (
                    f"pattern '{item}' nests a repetition inside a repetition: exponential time "
                    "in backtracking regex engines (feedworker's is linear); is it what you mean?"
                )
                warnings.append(ConfigProblem(table.file, message, table.label, name))
    return warnings


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
    "cookies": "cookies_file",
    "cookie_file": "cookies_file",
    "cookie": "cookie_env",
    "useragent": "user_agent",
    "ua": "user_agent",
    "javascript": "render",
    "js": "render",
    "wait": "render_wait",
    "wait_for": "render_wait",
    "allow_hosts": "render_allow_hosts",
}
# Fields whose values are never repeated in a message (a wrong type may still be a secret).
_SECRET_FIELDS = frozenset(
    {"auth", "serve_token", "serve_token_file", "proxy", "headers", "cookie_env", "cookies_file"}
)
_NESTED_MODELS: dict[Any, type[BaseModel]] = {
    HealthThresholds: HealthThresholds,
    HealthThresholds | None: HealthThresholds,
}
_REQUIRED_EXAMPLES = {
    "id": 'every [[source]] needs an id, e.g. id = "python-blog"',
    "url": 'every [[source]] needs a url, e.g. url = "https://example.com/blog/"',
}


def _unexpected(exc: Exception, file: str, source: str | None = None) -> ConfigProblem:
    """A problem for an error no check foresaw (a value too deep to validate, a bug)."""
    if isinstance(exc, RecursionError):
        return ConfigProblem(file, "a value is nested too deeply to read", source)
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return ConfigProblem(file, f"could not be read: {type(exc).__name__}: {detail}", source)


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
    loc: Sequence[int | str] = error.get("loc") or ()
    if kind == "extra_forbidden":
        allowed = list(_model_at(model, loc[:-1]).model_fields)
        suggestion = _suggest(str(loc[-1]), allowed, "", _KEY_HINTS)
        return "unknown key" + (suggestion or f"; allowed keys: {', '.join(allowed)}")
    if kind == "missing":
        return "required key missing; " + _REQUIRED_EXAMPLES.get(str(loc[-1]), "add it")
    if kind in _EXPECTED:
        if loc and loc[0] in _SECRET_FIELDS:  # the value may be a password: never repeat it
            return f"expected {_EXPECTED[kind]}, got {_toml_type(value)}"
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
