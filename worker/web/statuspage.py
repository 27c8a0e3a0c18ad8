"""The status page's list of sources: filtered, sorted and paged (pure).

Thousands of sources make one page of thousands of sections (5 MB of HTML at 10,000, and seconds
to read and render every source's state). So the page shows `per_page` sources at a time, the
failing and degraded ones first, and a small form narrows the list:

    /?state=failing             one state: failing, degraded, never (not run yet), ok, disabled
    /?host=example.com          sources on that host or its subdomains
    /?id=news                   sources whose id contains "news"
    /?sort=id&page=3&per_page=100

Everything here works on data the caller read: each source's state (`source_state`, from a
cheap overview of the store) to choose the page, and only then the page's own rows are read in
full (`worker.web.serve`). Bad parameters never make an error page: they fall back to the
defaults.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlencode, urlsplit

from worker.config import Source

__all__ = [
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "SORTS",
    "STATES",
    "StatusQuery",
    "StatusSelection",
    "render_controls",
    "select_sources",
    "source_state",
]

# The order of the default sort: what needs a look first.
STATES = ("failing", "degraded", "never", "ok", "disabled")
_STATE_RANK = {state: rank for rank, state in enumerate(STATES)}
SORTS = ("state", "id")  # "state": STATES' order, then the config's; "id": alphabetical
DEFAULT_PER_PAGE = 100  # a phone scrolls through it; the page stays under about 200 KB
MAX_PER_PAGE = 1000


def source_state(*, enabled: bool, failing: bool, degraded: bool, ran: bool) -> str:
    """A source's state on the status page, one of `STATES`."""
    if not enabled:
        return "disabled"
    if failing:
        return "failing"
    if degraded:
        return "degraded"
    return "ok" if ran else "never"


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """What the status page was asked to show (its query string)."""

    state: str = ""  # "" or one of STATES
    host: str = ""  # "" or a host name: that host and its subdomains
    id: str = ""  # "" or a piece of the source id
    sort: str = "state"
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> StatusQuery:
        """Read leniently: an unknown state or sort, or a page that is not a number, is ignored."""
        state = params.get("state", "").strip().lower()
        sort = params.get("sort", "").strip().lower()
        return cls(
            state=state if state in STATES else "",
            host=params.get("host", "").strip().lower().rstrip(".")[:253],
            id=params.get("id", "").strip().lower()[:64],
            sort=sort if sort in SORTS else "state",
            page=_number(params.get("page"), 1),
            per_page=min(MAX_PER_PAGE, _number(params.get("per_page"), DEFAULT_PER_PAGE)),
        )

    @property
    def filtered(self) -> bool:
        return bool(self.state or self.host or self.id)

    def query_string(self, **changes: object) -> str:
        """ "?…" for this query with `changes`, defaults left out ("" when all are defaults)."""
        query = replace(self, **changes)  # type: ignore[arg-type]
        defaults = StatusQuery()
        pairs = [
            (name, str(getattr(query, name)))
            for name in ("state", "host", "id", "sort", "page", "per_page")
            if getattr(query, name) != getattr(defaults, name)
        ]
        return "?" + urlencode(pairs) if pairs else "?"


def _number(text: str | None, default: int) -> int:
    """A count from the query string: `default` unless it is a whole number of at least 1."""
    try:
        number = int(text) if text is not None else default
    except ValueError:
        return default
    return number if number >= 1 else default


@dataclass(frozen=True, slots=True)
class StatusSelection:
    """One page of the list: its sources, and where it sits in the whole."""

    sources: tuple[Source, ...]
    counts: Mapping[str, int]  # every configured source, by state
    matching: int  # sources the filters let through
    page: int  # the page shown (the asked one, or the last when that is past the end)
    pages: int
    query: StatusQuery

    @property
    def first(self) -> int:
        """1-based position of the page's first source among the matching ones."""
        return (self.page - 1) * self.query.per_page + 1 if self.sources else 0

    def count(self, state: str) -> int:
        return self.counts.get(state, 0)


def select_sources(
    sources: Sequence[Source], states: Mapping[str, str], query: StatusQuery
) -> StatusSelection:
    """The page of `sources` that `query` asks for; `states` holds each source's `source_state`
    (a source missing from it is "never")."""
    counts = dict.fromkeys(STATES, 0)
    chosen = []
    for position, source in enumerate(sources):
        state = states.get(source.id, "never")
        counts[state] += 1
        if _matches(source, state, query):
            chosen.append((position, source))
    if query.sort == "id":
        chosen.sort(key=lambda pair: pair[1].id)
    else:  # what needs a look first, then the config's order
        chosen.sort(key=lambda pair: (_STATE_RANK[states.get(pair[1].id, "never")], pair[0]))
    pages = max(1, math.ceil(len(chosen) / query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    shown = tuple(source for _position, source in chosen[start : start + query.per_page])
    return StatusSelection(shown, counts, len(chosen), page, pages, query)


def _matches(source: Source, state: str, query: StatusQuery) -> bool:
    if query.state and state != query.state:
        return False
    if query.id and query.id not in source.id:
        return False
    return not query.host or _on_host(source.url, query.host)


def _on_host(url: str, host: str) -> bool:
    try:
        name = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return False
    return name == host or name.endswith("." + host)


def render_controls(selection: StatusSelection) -> str:
    """The filter form, the counts by state (each a link to that state's list) and the pager."""
    query = selection.query
    by_state = " · ".join(
        f'<a href="{_esc(query.query_string(state=state, page=1))}">'
        f"{selection.count(state):,} {state}</a>"
        for state in STATES
        if selection.count(state)
    )
    options = "".join(
        f'<option value="{state}"{" selected" if state == query.state else ""}>{state}</option>'
        for state in STATES
    )
    sorts = "".join(
        f'<option value="{sort}"{" selected" if sort == query.sort else ""}>by {sort}</option>'
        for sort in SORTS
    )
    form = (
        '<form class="filters" method="get" action="">'
        f'<input name="id" value="{_esc(query.id)}" placeholder="id" aria-label="id contains">'
        f'<input name="host" value="{_esc(query.host)}" placeholder="host" aria-label="host">'
        f'<select name="state" aria-label="state"><option value="">any state</option>{options}'
        f'</select><select name="sort" aria-label="sort">{sorts}</select>'
        + (
            f'<input type="hidden" name="per_page" value="{query.per_page}">'
            if query.per_page != DEFAULT_PER_PAGE
            else ""
        )
        + '<button type="submit">show</button>'
        + (' <a href="?">clear</a>' if query.filtered or query.sort != "state" else "")
        + "</form>"
    )
    return "\n".join(
        part for part in (f'<p class="meta">{by_state}</p>', form, render_pager(selection)) if part
    )


def render_pager(selection: StatusSelection) -> str:
    """ "showing 101-200 of 10,000 · ‹ previous · page 2 of 100 · next ›" ("" when all fit on one
    page and nothing is filtered)."""
    query = selection.query
    if selection.pages == 1 and not query.filtered:
        return ""
    last = selection.first + len(selection.sources) - 1
    what = "matching sources" if query.filtered else "sources"
    parts = [
        f"showing {selection.first:,}–{last:,} of {selection.matching:,} {what}"
        if selection.sources
        else f"no {what}"
    ]
    if selection.pages > 1:
        if selection.page > 1:
            previous = query.query_string(page=selection.page - 1)
            parts.append(f'<a href="{_esc(previous)}" rel="prev">‹ previous</a>')
        parts.append(f"page {selection.page:,} of {selection.pages:,}")
        if selection.page < selection.pages:
            following = query.query_string(page=selection.page + 1)
            parts.append(f'<a href="{_esc(following)}" rel="next">next ›</a>')
    return f'<p class="meta pager">{" · ".join(parts)}</p>'


def _esc(text: str) -> str:
    return html.escape(text, quote=True)
