"""URL normalisation: one spelling per address, so links, canonical URLs and store keys compare.

Pure functions over strings (no network, no DNS). `normalise_url` is idempotent:
`normalise_url(normalise_url(u)) == normalise_url(u)` for any input, which the tests check with
generated URLs.

What normalisation does (RFC 3986 section 6 plus the tracking-parameter clean-up feed readers do):
scheme and host lower-cased, an IDN host turned to punycode (IDNA 2008 with UTS #46 mapping, as
httpx does), a trailing dot dropped from the host, the scheme's default port removed, an empty path
made "/", dot segments resolved, the fragment dropped, tracking parameters removed, the remaining
query sorted by key (stable, so repeated keys keep their order), percent-encoding made canonical
(upper-case hex, unreserved characters decoded, characters that need escaping escaped, a stray "%"
escaped, an existing escape never re-escaped).

Deliberately not done: no "www." stripping or http -> https (those are different URLs a site may
serve differently; `same_site` handles the "www." relation), no trailing-slash games, no "+" -> %20
in queries (servers differ on "+").
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus, urljoin, urlsplit

import idna

__all__ = [
    "MAX_URL_LENGTH",
    "TRACKING_PARAMS",
    "TRACKING_PARAM_PREFIXES",
    "amp_to_regular",
    "host_key",
    "is_tracking_param",
    "normalise_url",
    "origin_key",
    "param_dropper",
    "resolve",
    "same_site",
]

# --- Tracking parameters (names compared lower-cased) -------------------------------------------
# Campaign tags: Google Analytics' utm_* family and its relatives; any name with these prefixes.
TRACKING_PARAM_PREFIXES: tuple[str, ...] = ("utm_", "pk_", "mtm_")
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        # Ad-click identifiers appended by ad networks and social sites.
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
        "ttclid", "li_fat_id", "igshid", "igsh", "srsltid", "epik", "rb_clickid",
        # Analytics cross-domain and session markers.
        "_ga", "_gl", "_hsenc", "_hsmi", "__hstc", "__hssc", "__hsfp", "hsctatracking",
        "_openstat", "spm", "scm", "s_cid", "wt.mc_id", "cmpid", "ito",
        # E-mail marketing (Mailchimp, Marketo, Vero, Omeda, MailerLite).
        "mc_cid", "mc_eid", "mkt_tok", "vero_id", "vero_conv", "oly_anon_id", "oly_enc_id",
        "ml_subscriber", "ml_subscriber_hash", "__s", "wickedid",
        # Referral markers added by social sites and aggregators.
        "ref_src", "ref_url", "ref_source",
    }
)  # fmt: skip

# Links longer than this are no article's: the sitemap protocol's limit (browsers and servers
# give up around it too). Screens refuse them before any pattern runs over them, which bounds
# the operator's include/exclude regexes and what a hostile sitemap can make the worker hold.
MAX_URL_LENGTH = 2048

# --- AMP variants that name the regular page without a doubt -------------------------------------
# "?amp", "?amp=1", "?outputType=amp" and a last path segment "amp" ("/story/amp/", WordPress's
# AMP plugin). Not rewritten: "amp." hosts and ".amp.html" names (which host or file the regular
# page has is a guess); an AMP page's own `<link rel=canonical>` maps those once fetched.
AMP_QUERY = frozenset({"amp", "amp=1", "amp=true", "outputtype=amp"})
AMP_LAST_SEGMENT = "amp"

# --- URL grammar (RFC 3986) ---------------------------------------------------------------------
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = "!$&'()*+,;="
# Characters that may stay literal in a path and in a query; everything else is percent-encoded.
_PATH_SAFE = frozenset(_UNRESERVED | set(_SUB_DELIMS + ":@/"))
_QUERY_SAFE = frozenset(_PATH_SAFE | {"?"})
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443", "ftp": "21"}
_WEB_SCHEMES = frozenset({"http", "https"})
# Browsers strip these from the ends of an href and drop tab/newline anywhere in it (WHATWG URL).
_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# The complements of the safe sets above (plus "%", whose escapes are handled separately).
_PATH_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]")
_QUERY_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]")


def is_tracking_param(name: str) -> bool:
    """True when a query parameter name is a known tracking marker (case-insensitive)."""
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PARAM_PREFIXES)


def normalise_url(url: str, *, drop_params: Callable[[str], bool] | None = None) -> str:
    """The canonical spelling of `url` (see the module docstring for what changes).

    `drop_params` is asked about each query parameter's decoded name and drops it when it answers
    True, on top of the tracking parameters. A string that cannot be parsed as a URL (say an
    unclosed IPv6 bracket) comes back stripped of surrounding whitespace but otherwise unchanged.
    """
    cleaned = _TAB_OR_NEWLINE.sub("", url.strip(_C0_OR_SPACE))
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return cleaned
    scheme = parts.scheme.lower()
    netloc = _normalise_netloc(parts.netloc, scheme)
    path = _normalise_escapes(parts.path, _PATH_SAFE)
    if path.startswith("/"):
        path = _remove_dot_segments(path)
    elif not path and netloc:
        path = "/"
    query = _normalise_query(parts.query, drop_params)
    out = f"{scheme}:" if scheme else ""
    had_authority = cleaned.startswith("//", len(parts.scheme) + 1 if parts.scheme else 0)
    if netloc or had_authority or scheme in _WEB_SCHEMES:
        out += f"//{netloc}"
    out += path
    return f"{out}?{query}" if query else out


@dataclass(frozen=True, slots=True)
class ParamDropper:
    """A `drop_params` for `normalise_url`: the operator's extra tracking parameters, by name or
    prefix (lower case). A value, not a closure, so it travels to the extractor processes."""

    exact: frozenset[str]
    prefixes: tuple[str, ...]

    def __call__(self, name: str) -> bool:
        name = name.lower()
        return name in self.exact or (bool(self.prefixes) and name.startswith(self.prefixes))


def param_dropper(names: Iterable[str]) -> ParamDropper | None:
    """A `drop_params` for `normalise_url` from an operator's list of extra tracking parameters:
    names compared case-insensitively; a name ending in "*" is a prefix ("ref_*"). None for none."""
    lowered = [name.strip().lower() for name in names if name.strip()]
    exact = frozenset(name for name in lowered if not name.endswith("*"))
    prefixes = tuple(name[:-1] for name in lowered if name.endswith("*") and len(name) > 1)
    if not exact and not prefixes:
        return None
    return ParamDropper(exact, prefixes)


def amp_to_regular(url: str) -> str:
    """The regular page of an AMP URL when its spelling says so for sure, else `url` unchanged:
    "/story/amp/" -> "/story/", "/story?amp=1" -> "/story". For a normalised URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    params = parts.query.split("&") if parts.query else []
    kept = [p for p in params if p.lower() not in AMP_QUERY]
    path = parts.path
    head, _, last = path.rstrip("/").rpartition("/")
    if head and last.lower() == AMP_LAST_SEGMENT:
        path = head + "/" if path.endswith("/") else head  # "/story/amp/" -> "/story/"
    if path == parts.path and len(kept) == len(params):
        return url
    return parts._replace(path=path, query="&".join(kept)).geturl()


def host_key(url: str, *, port: bool = True) -> str:
    """The host of `url` as used for same-site checks, politeness and the SSRF guard's trusted
    host: lower-case, punycode (UTS #46, as httpx connects), no trailing dot, with the port only
    when it is not the scheme's default ("example.com:8080") and `port` is true. "" when `url`
    cannot be parsed. The one definition: `worker.fetch.client` and `worker.fetch.guard` use it
    too."""
    try:
        parts = urlsplit(url.strip(_C0_OR_SPACE))
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    _, _, hostport = _normalise_netloc(parts.netloc, scheme, keep_port=port).rpartition("@")
    return hostport


def origin_key(url: str) -> str:
    """The origin of `url` as "scheme://host:port", the port always written
    ("https://example.com:443"): whom a source's credentials are for. "" when unparsable."""
    try:
        parts = urlsplit(url.strip(_C0_OR_SPACE))
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    host = host_key(url, port=False)
    port_text = str(port) if port is not None else _DEFAULT_PORTS.get(scheme, "")
    return f"{scheme}://{host}:{port_text}" if scheme and host else ""


def same_site(a: str, b: str) -> bool:
    """True when two URLs are on one site: equal `host_key`s, or one is the "www." of the other.

    Limitation, by design (no public-suffix list dependency): other subdomains count as other
    sites ("blog.example.com" is not "example.com"), and hosts under shared suffixes are never
    merged, so "a.github.io" and "b.github.io" stay apart, as they should.
    """
    key_a, key_b = host_key(a), host_key(b)
    if not key_a or not key_b:
        return False
    return key_a.removeprefix("www.") == key_b.removeprefix("www.")


def resolve(base: str, href: str) -> str | None:
    """`href` made absolute against `base`, or None when it is no web page address.

    None for an empty href, a bare fragment ("#top"), and any scheme other than http(s)
    (javascript:, mailto:, tel:, data:, ftp: ...). The result is absolute but not normalised.
    """
    cleaned = _TAB_OR_NEWLINE.sub("", href.strip(_C0_OR_SPACE))
    if not cleaned or cleaned.startswith("#"):
        return None
    try:
        absolute = urljoin(base, cleaned)
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in _WEB_SCHEMES or not parts.hostname:
        return None
    return absolute


def _normalise_netloc(netloc: str, scheme: str, *, keep_port: bool = True) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):  # IPv6 literal: "[::1]:8080"
        end = hostport.find("]") + 1
        host, port = hostport[:end].lower(), hostport[end:].removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
        host = _normalise_host(host)
    if port.isascii() and port.isdigit():
        port = str(int(port))
    if keep_port and port and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{userinfo}{at}{host}"


def _normalise_host(host: str) -> str:
    """Lower case, no trailing dot, and a Unicode name in punycode by IDNA 2008 with UTS #46
    mapping: what httpx sends and connects to ("straße.de" -> "xn--strae-oqa.de"; Python's own
    "idna" codec is IDNA 2003 and would name another host, "strasse.de")."""
    host = host.lower().rstrip(".")
    if not host.isascii():
        # Not a valid IDN: keep it as written (lower-cased); the fetch will fail loudly.
        with contextlib.suppress(idna.IDNAError, UnicodeError):
            host = idna.encode(host, uts46=True).decode("ascii").lower()
    return host.rstrip(".")


def _normalise_escapes(text: str, safe: frozenset[str]) -> str:
    """Canonical percent-encoding: a stray "%" escaped, escapes upper-cased, unreserved characters
    decoded, characters outside `safe` escaped as UTF-8. Existing escapes are never re-escaped."""
    if "%" in text:
        text = _STRAY_PERCENT.sub("%25", text)
        text = _ESCAPE.sub(_canonical_escape, text)
    unsafe = _PATH_UNSAFE if safe is _PATH_SAFE else _QUERY_UNSAFE
    if not unsafe.search(text):
        return text
    return unsafe.sub(lambda match: _escape(match.group(0)), text)


def _canonical_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else match.group(0).upper()


def _escape(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path: "/a/./b/../c" -> "/a/c"."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")  # "/a/b/.." names the directory "/a/"
    return "/" + "/".join(out)


def _normalise_query(query: str, drop_params: Callable[[str], bool] | None) -> str:
    if not query:
        return ""
    kept = []
    for param in _normalise_escapes(query, _QUERY_SAFE).split("&"):
        if not param:
            continue
        name = unquote_plus(param.partition("=")[0])
        if is_tracking_param(name) or (drop_params is not None and drop_params(name)):
            continue
        kept.append(param)
    kept.sort(key=lambda param: param.partition("=")[0])
    return "&".join(kept)
