"""Resolve a page's URLs against its address exactly as `urllib.parse.urljoin` does, cheaper (pure).

Most URLs in an article (links, images, Open Graph tags) are absolute already. For those,
`urljoin` parses the base and the URL and builds the URL again from its parts, which gives back
the URL as it was unless urllib normalises it: an upper-case scheme, `;` parameters, an empty `?`
or `#`, tabs or newlines, a bracketed (IPv6) or non-ASCII host, which urllib checks and may
reject. A URL free of all those is returned as it is, whatever the base (once the base is known to
parse); any other goes through `urljoin`. That was half the cost of sanitising an article's links.

Relative links (`/wiki/Page`, `page2.html`) against a plain base are joined the same way by
string operations when neither holds a dot segment (`./`, `../`), which `urljoin` would resolve.
So are links within the page (`#cite_note-3`: the base without its fragment, then the link's)
and links to another host on the base's scheme (`//cdn.example/a.png`) when the result is plain.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

__all__ = ["WEB_SCHEMES", "absolute_url", "join_url"]

WEB_SCHEMES = frozenset({"http", "https"})

# http(s), a host, then an optional path, a non-empty query and a non-empty fragment, without
# `;`, brackets, tabs or newlines anywhere (stricter than needed: such URLs take the long way).
_PLAIN_WEB_URL = re.compile(
    r"(https?)://([^/?#;\[\]\t\n\r]+)"
    r"(?:/[^?#;\[\]\t\n\r]*)?(?:\?[^#;\[\]\t\n\r]+)?(?:#[^;\[\]\t\n\r]+)?"
)


# A path relative to the base, root-relative (`/a/b`) or not (`b.html`), then an optional query
# and fragment, with none of the characters above and no `:` (a scheme); `_plain_relative` also
# rules out dot segments, by string search (a lookahead scanning the rest of the text from every
# position would make the pattern quadratic when searched).
_PLAIN_RELATIVE = re.compile(
    r"(?!//)[^?#:;\[\]\t\n\r]+(?:\?[^#;\[\]\t\n\r]+)?(?:#[^;\[\]\t\n\r]+)?"
)


@dataclass(frozen=True, slots=True)
class _Base:
    scheme: str
    netloc: str
    origin: str  # scheme://netloc
    folder: str  # the path up to its last `/`, or "/"
    page: str  # the base without its fragment


@functools.lru_cache(maxsize=256)
def _plain_base(base: str) -> _Base | None:
    """The parts of a plain web base URL without dot segments, else None (take `urljoin`)."""
    plain = _PLAIN_WEB_URL.fullmatch(base) if base.isascii() else None
    if plain is None:
        return None
    path = urlsplit(base).path
    if "/." in path:
        return None
    origin = f"{plain.group(1)}://{plain.group(2)}"
    folder = path[: path.rfind("/") + 1] or "/"
    return _Base(plain.group(1), plain.group(2), origin, folder, base.partition("#")[0])


def _plain_relative(value: str) -> bool:
    """Whether `value` is a relative URL that string joining resolves as `urljoin` does."""
    return (
        not value.startswith(".")
        and "/." not in value
        and _PLAIN_RELATIVE.fullmatch(value) is not None
    )


def join_url(base: str, value: str) -> tuple[str, str, str]:
    """`urljoin(base, value)` with its scheme and host as `urlsplit` reads them; raises
    ValueError where either does."""
    plain = _PLAIN_WEB_URL.fullmatch(value) if value.isascii() else None
    if plain is None:
        parts = _plain_base(base)
        joined = _join_plain(parts, value) if parts is not None else None
        if joined is not None:
            return joined
        absolute = urljoin(base, value)
        scheme, netloc = urlsplit(absolute)[:2]
        return absolute, scheme, netloc
    if base:
        _check_base(base)  # `urljoin` parses a base first, and raises on a malformed one
    return value, plain.group(1), plain.group(2)


def _join_plain(base: _Base, value: str) -> tuple[str, str, str] | None:
    """`join_url` of a plain base and a value that is not a plain web URL, where string
    operations give what `urljoin` gives; else None."""
    if value[:1] <= " ":  # empty, or `urljoin` strips its leading controls and spaces first
        return None
    if value.startswith("#"):  # the same page: a fragment is kept as it is, a bare "#" dropped
        return base.page + value if len(value) > 1 else base.page, base.scheme, base.netloc
    if not value.isascii():
        return None
    if value.startswith("//"):  # another host, on the base's scheme
        plain = _PLAIN_WEB_URL.fullmatch(absolute := f"{base.scheme}:{value}")
        return (absolute, plain.group(1), plain.group(2)) if plain is not None else None
    if value.startswith("/"):
        folder = ""
    elif "//" in value or "//" in base.folder:
        return None  # `urljoin` drops the empty segments of a path it appends to the base's
    else:
        folder = base.folder
    if _plain_relative(value):
        return f"{base.origin}{folder}{value}", base.scheme, base.netloc
    return None


@functools.lru_cache(maxsize=256)
def _check_base(base: str) -> None:
    """Raise ValueError where `urlsplit` does on `base` (cached: one page's links share it)."""
    urlsplit(base)


def absolute_url(base: str, value: str, schemes: frozenset[str] = WEB_SCHEMES) -> str | None:
    """`value` (a cleaned attribute or meta value) resolved against `base`, when its scheme is
    one of `schemes` and it names a host (`mailto:` names none); else None. The one place the
    extractor makes a page's URLs absolute: links, images, `<base href>`, canonical, meta."""
    if not value:
        return None
    try:
        absolute, scheme, netloc = join_url(base, value)
    except ValueError:
        return None
    if scheme not in schemes or (scheme != "mailto" and not netloc):
        return None
    return absolute
