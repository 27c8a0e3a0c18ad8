"""A source's own cookies: a Netscape ``cookies.txt`` file, or a ``Cookie`` header value.

Browser extensions that export cookies write the Netscape format: one cookie a line, seven
tab-separated fields (domain, "include subdomains", path, secure, expiry as a Unix time with 0 for
a session cookie, name, value); ``#`` starts a comment, except ``#HttpOnly_`` in front of a
domain, which marks an HttpOnly cookie. `parse_cookie_file` reads that, and `parse_cookie_header`
reads a ``Cookie`` header value (``name=value; other=value``) given through the environment,
whose cookies belong to the source's own host.

Cookie values are secrets: no message here ever quotes a line or a value, only line numbers,
names of fields, and counts. `to_cookie` makes the `http.cookiejar.Cookie` a session's jar takes
(`worker.fetch.client.Fetcher.session`), so each cookie goes only where its domain, path and
`secure` flag say, as in a browser.
"""

from __future__ import annotations

import http.cookiejar
import re
from dataclasses import dataclass, field

__all__ = [
    "MAX_COOKIE_FILE_BYTES",
    "CookieSet",
    "CookieSpec",
    "parse_cookie_file",
    "parse_cookie_header",
    "to_cookie",
]

MAX_COOKIE_FILE_BYTES = 1024 * 1024  # an export of every site a browser knows is far smaller
MAX_COOKIES = 1000  # per file: beyond, it is not a file meant for one source
MAX_COOKIE_SIZE = 4096  # name and value, as RFC 6265 asks user agents to accept
HTTP_ONLY_PREFIX = "#HttpOnly_"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: a cookie name


@dataclass(frozen=True, slots=True)
class CookieSpec:
    """One cookie to send; `value` is a secret (left out of `repr`)."""

    domain: str  # lower case; a leading dot for a cookie its subdomains get too
    name: str
    value: str = field(repr=False)
    path: str = "/"
    secure: bool = False
    expires: int | None = None  # Unix time; None for a session cookie
    http_only: bool = False

    @property
    def host_only(self) -> bool:
        return not self.domain.startswith(".")


@dataclass(frozen=True, slots=True)
class CookieSet:
    """The cookies read from a file or a header value, and what was left out."""

    cookies: tuple[CookieSpec, ...]
    expired: int = 0  # cookies in the file past their expiry (not kept)

    @property
    def values(self) -> tuple[str, ...]:
        """The cookie values: secrets to mask wherever text leaves the process."""
        return tuple(cookie.value for cookie in self.cookies if cookie.value)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted({cookie.domain.lstrip(".") for cookie in self.cookies}))


def parse_cookie_file(text: str, now: float) -> CookieSet:
    """The cookies of a Netscape cookies.txt text; `ValueError` naming the first bad line (by
    number, never its content). Cookies expired at `now` are counted, not kept."""
    cookies: list[CookieSpec] = []
    expired = 0
    for number, line in enumerate(text.splitlines(), start=1):
        spec = _cookie_line(line.rstrip("\r"), number)
        if spec is None:
            continue
        if spec.expires is not None and spec.expires <= now:
            expired += 1
            continue
        cookies.append(spec)
        if len(cookies) > MAX_COOKIES:
            raise ValueError(f"more than {MAX_COOKIES} cookies: export the site's cookies only")
    if not cookies and not expired:
        raise ValueError("no cookies in it (expected the Netscape cookies.txt format)")
    return CookieSet(tuple(cookies), expired)


def _cookie_line(line: str, number: int) -> CookieSpec | None:
    http_only = line.startswith(HTTP_ONLY_PREFIX)
    if http_only:
        line = line[len(HTTP_ONLY_PREFIX) :]
    elif not line.strip() or line.lstrip().startswith("#"):
        return None
    parts = line.split("\t")
    if len(parts) != 7:
        raise ValueError(
            f"line {number}: expected 7 tab-separated fields (domain, subdomains, path, secure,"
            f" expiry, name, value), got {len(parts)}"
        )
    domain, subdomains, path, secure, expires, name, value = parts
    domain = domain.strip().lower()
    if not domain or any(ch.isspace() or ch in "/:" for ch in domain):
        raise ValueError(f"line {number}: the first field is not a domain")
    flags = (subdomains.strip().upper(), secure.strip().upper())
    if any(flag not in ("TRUE", "FALSE") for flag in flags):
        raise ValueError(f"line {number}: fields 2 and 4 must be TRUE or FALSE")
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"line {number}: the cookie name (field 6) is not a valid name")
    _check_value(value, f"line {number}")
    try:
        when = int(expires.strip() or "0")
    except ValueError:
        raise ValueError(f"line {number}: the expiry (field 5) is not a whole number") from None
    domain = domain.lstrip(".")
    return CookieSpec(
        domain="." + domain if flags[0] == "TRUE" else domain,
        name=name,
        value=value,
        path=path.strip() or "/",
        secure=flags[1] == "TRUE",
        expires=when or None,
        http_only=http_only,
    )


def parse_cookie_header(value: str, host: str) -> CookieSet:
    """The cookies of a ``Cookie`` header value, as cookies of `host` (and no other host);
    `ValueError` naming the bad pair by position."""
    cookies = []
    for number, pair in enumerate(value.split(";"), start=1):
        if not pair.strip():
            continue
        name, equals, cookie_value = pair.strip().partition("=")
        if not equals or not _TOKEN.fullmatch(name.strip()):
            raise ValueError(f"pair {number} is not name=value (a Cookie header value: a=1; b=2)")
        _check_value(cookie_value.strip(), f"pair {number}")
        cookies.append(CookieSpec(domain=host.lower(), name=name.strip(), value=cookie_value))
    if not cookies:
        raise ValueError("no cookies in it (a Cookie header value: a=1; b=2)")
    return CookieSet(tuple(cookies))


def _check_value(value: str, where: str) -> None:
    if len(value) > MAX_COOKIE_SIZE:
        raise ValueError(f"{where}: the value is longer than {MAX_COOKIE_SIZE} characters")
    if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 or ch == ";" for ch in value):
        raise ValueError(f"{where}: the value holds a control character or ';'")


def to_cookie(spec: CookieSpec) -> http.cookiejar.Cookie:
    """The `http.cookiejar.Cookie` of a spec, as a jar keeps one a site set."""
    return http.cookiejar.Cookie(
        version=0,
        name=spec.name,
        value=spec.value,
        port=None,
        port_specified=False,
        domain=spec.domain,
        domain_specified=not spec.host_only,
        domain_initial_dot=not spec.host_only,
        path=spec.path,
        path_specified=True,
        secure=spec.secure,
        expires=spec.expires,
        discard=spec.expires is None,
        comment=None,
        comment_url=None,
        rest={"HttpOnly": ""} if spec.http_only else {},
    )
