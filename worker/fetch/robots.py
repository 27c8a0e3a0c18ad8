"""robots.txt rules per origin: what an answer means (pure), and a small cache with a clock.

RFC 9309, as trusted crawlers apply it:
- 2xx: the first `max_bytes` (512 KiB) are parsed by protego; a cut last line is dropped. A page
  that is not robots.txt at all (an HTML page served as robots.txt) holds no rules: all allowed.
- 4xx (404, 403, 410 ...): no robots.txt, everything allowed.
- 429, 5xx, no answer, a broken body: everything disallowed *for now*; kept for `error_ttl`, then
  asked again (a site rate-limiting us has not told us its rules are absent). No answer at all
  (no connection, a timeout) is told apart: the site could not be reached, which is what the
  operator needs to hear, not that robots.txt was unavailable.
- `Crawl-delay` for our user agent raises the host's gap between requests, up to 30 s.
Good answers are kept for `ttl` (24 h at most). The fetching itself lives in `worker.fetch.client`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from protego import Protego

__all__ = ["RobotsCache", "RobotsRules", "parse_robots", "unavailable", "unreachable"]


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """What one origin's robots.txt allows us; `reason` says why when it refuses everything."""

    parser: Protego | None = None  # None: no rules
    allow_all: bool = True
    crawl_delay: float | None = None
    reason: str = ""
    unreachable: bool = False  # refused because the site did not answer at all

    def allows(self, url: str, user_agent: str) -> bool:
        if self.parser is None:
            return self.allow_all
        return bool(self.parser.can_fetch(url, user_agent))

    @property
    def is_error(self) -> bool:
        return self.parser is None and not self.allow_all


ALLOW_ALL = RobotsRules()


def unavailable(reason: str) -> RobotsRules:
    """5xx or a body that cannot be read: RFC 9309 says assume complete disallow until it can
    be read."""
    return RobotsRules(allow_all=False, reason=f"robots.txt unavailable ({reason})")


def unreachable(reason: str) -> RobotsRules:
    """No answer for robots.txt (no connection, a timeout): disallow for now, as for a 5xx, and
    say that the site could not be reached."""
    message = f"the site could not be reached ({reason})"
    return RobotsRules(allow_all=False, reason=message, unreachable=True)


def parse_robots(status: int, body: bytes, user_agent: str, max_bytes: int) -> RobotsRules:
    """The rules an HTTP answer for /robots.txt means, after redirects were followed."""
    if 400 <= status < 500 and status != 429:
        return ALLOW_ALL
    if not 200 <= status < 300:
        return unavailable(f"HTTP {status}")
    if len(body) >= max_bytes:
        body = body[:max_bytes].rsplit(b"\n", 1)[0]  # a cut last line could mean anything
    parser = Protego.parse(body.decode("utf-8", errors="replace"))
    delay = parser.crawl_delay(user_agent)
    return RobotsRules(parser=parser, crawl_delay=float(delay) if delay is not None else None)


@dataclass(slots=True)
class _Entry:
    rules: RobotsRules
    expires: float


class RobotsCache:
    """Rules per origin ("https://example.com:443"), each kept until it expires."""

    def __init__(
        self, ttl: float, error_ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._error_ttl = error_ttl
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def get(self, origin: str) -> RobotsRules | None:
        entry = self._entries.get(origin)
        if entry is None or entry.expires <= self._clock():
            return None
        return entry.rules

    def put(self, origin: str, rules: RobotsRules) -> None:
        ttl = self._error_ttl if rules.is_error else self._ttl
        self._entries[origin] = _Entry(rules, self._clock() + ttl)
