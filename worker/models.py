"""Plain frozen records that travel between the stages.

Dates are always timezone-aware UTC `datetime`s; URLs are absolute strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeAlias

# Which path produced an article's body: the operator's `body` selector, a site rule, the first
# automatic attempt, a later attempt of the extractor's safety net, the page's JSON-LD, the
# page's text as a whole; or, for a feed entry whose page held no article, the feed's own
# summary. What each means: `worker.extract.article.METHOD_NOTES`.
Method: TypeAlias = Literal[
    "selector",
    "rule",
    "auto",
    "prose-run",
    "opening",
    "loose",
    "raw",
    "jsonld",
    "fallback",
    "feed-summary",
]
# Why an article was left out of a run: a small fixed set (a metrics label, so kept short).
SkipKind: TypeAlias = Literal[
    "http",  # a 4xx/5xx answer
    "challenge",  # an anti-bot challenge page instead of the article
    "not_html",  # another content type (PDF, image...)
    "empty",  # an empty body
    "network",  # timeouts, refused connections, bodies too large, redirect loops
    "blocked",  # robots.txt or the SSRF guard said no
    "no_text",  # the extractor found no article text
    "too_short",  # a body under the source's floor (`min_body_chars`)
    "duplicate",  # the same or nearly the same text as a stored item
    "native_ad",  # a site rule's native_ad_clue matched: sponsored content
    "render",  # the browser could not render the page (`render = "browser"` sources)
    "error",  # an internal error
    "other",
]
# What became of an article page in a run: stored as a new item, an edit of its item, nothing
# new, the same (or nearly the same) text as a stored item, kept out by the source's item filters
# (stored, never published), or left out (a `Skip`).
Decision: TypeAlias = Literal[
    "new", "updated", "unchanged", "duplicate", "near-duplicate", "filtered", "skipped"
]


@dataclass(frozen=True, slots=True)
class Validators:
    """HTTP cache validators remembered for a URL, sent back as a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    """HTTP Basic credentials for one origin (`worker.config.Config.credentials`); the password
    is left out of `repr`, so a logged or printed record never shows it."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RawHtml:
    """An HTML page's bytes, not decoded yet, with the Content-Type header its charset label
    comes from (`worker.fetch.decode.html_text` decodes it). Article pages travel to the extractor
    like this: its process decodes them, and the worker holds the bytes, half the memory of
    text with any character beyond Latin-1 in it."""

    body: bytes
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched HTML page, decoded to text (or left raw: `raw`)."""

    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    content_type: str
    text: str
    encoding: str
    validators: Validators = field(default_factory=Validators)
    size: int = 0  # bytes received on the wire (before decompression)
    # The raw bytes of a document that is not HTML (a sitemap or feed, fetched with
    # `accept=DOCUMENT_TYPES`; its parser decodes it); `text` is then empty.
    body: bytes = b""
    # An HTML page fetched with `decode=False`: its bytes, for the extractor to decode; `text`
    # and `encoding` are then empty (`worker.fetch.decode.page_html` gives either form).
    raw: RawHtml | None = None


@dataclass(frozen=True, slots=True)
class NotModified:
    """The server answered 304 to a conditional GET: nothing to parse."""

    url: str


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """What a feed entry or a sitemap entry says about an article; used where the page is silent."""

    title: str = ""
    published: datetime | None = None
    modified: datetime | None = None
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    """An article link found on an index page, in a sitemap or in a feed."""

    url: str  # absolute and normalised
    title: str = ""
    entry: EntryInfo | None = None  # from a feed or sitemap; None for index-page links


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """How a site rule file (`worker.siterules`) shaped one page: for `feedworker extract`, and
    for source health, where a rule that stops matching is drift."""

    name: str  # the rule file's name without ".txt": "example.com", ".example.com"
    path: str = ""  # where it was read
    matched: tuple[str, ...] = ()  # directives that found something: "title", "strip ×3"...
    missed: tuple[str, ...] = ()  # of title, body, author and date: given, found nothing
    body_used: bool = False  # the body is the rule's (else automatic extraction's)
    native_ad: bool = False  # a `native_ad_clue` matched: sponsored content
    note: str = ""  # why the rule's body was not used, when it matched


@dataclass(frozen=True, slots=True)
class Article:
    """What the extractor makes of one page. `body_html` is sanitised; `body_text` is plain."""

    url: str
    title: str
    body_html: str
    body_text: str
    canonical_url: str | None = None
    authors: tuple[str, ...] = ()
    published: datetime | None = None
    modified: datetime | None = None
    image: str | None = None
    language: str | None = None
    summary: str = ""
    categories: tuple[str, ...] = ()  # the article's own tags and section
    # Fingerprints of the page's text blocks, so a source can learn its site's template
    # (blocks recurring across pages are boilerplate). Opaque strings; see worker.extract.
    block_fingerprints: tuple[str, ...] = ()
    # The fingerprints the extractor looked up in the site's template (the blocks it could have
    # dropped as template): a newly learnt template changes the article only if it names one.
    template_checked: tuple[str, ...] = ()
    method: Method = "auto"  # which path produced the body (`Method`)
    site_rule: RuleTrace | None = None  # the site rule applied to the page, if any
    # Multi-page articles: the next page's URL (a rule's `next_page_link`, or pagination when
    # asked for), and the single-page version's (a rule's `single_page_link`). The pipeline
    # follows them; the extractor never fetches.
    next_page: str | None = None
    single_page: str | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """One published entry of a source's feed. `guid` is the canonical article URL, never a hash."""

    source_id: str
    guid: str
    url: str
    title: str
    content_html: str
    content_hash: str  # versioned, e.g. "v3:<sha256 hex>" (worker.dedupe.content.HASH_VERSION)
    first_seen: datetime
    published: datetime  # the article's own date, else first_seen
    updated: datetime  # the article's modified date, else published
    authors: tuple[str, ...] = ()
    summary: str = ""
    image: str | None = None
    categories: tuple[str, ...] = ()  # the article's own tags or sections, as the site names them
    simhash: int | None = None  # 64-bit SimHash of the normalised body, for near-duplicates
    # Why the source's `keep`/`drop` filters leave it out of the feed; None: published.
    filtered: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """An article left out of a run, and why; `kind` groups reasons
    (`worker.service.health.SKIP_KINDS`)."""

    url: str
    reason: str
    kind: SkipKind = "other"


@dataclass(frozen=True, slots=True)
class ArticleTrace:
    """What became of one article page in a run, stage by stage (for `feedworker try`)."""

    url: str
    status: int | None = None  # HTTP status; None when no response came
    method: Method | Literal[""] = ""  # extraction path (`Article.method`), "" when none
    body_chars: int = 0
    decision: Decision | Literal[""] = ""
    note: str = ""  # the skip reason, the twin's GUID...


@dataclass(slots=True)
class RunReport:
    """The outcome of one run of one source; the pipeline fills it in as it goes."""

    source_id: str
    started: datetime
    finished: datetime | None = None
    index_not_modified: bool = False
    links_found: int = 0
    pages_fetched: int = 0
    bytes_received: int = 0
    items_new: int = 0
    items_unchanged: int = 0
    items_updated: int = 0  # known articles whose text changed materially (same GUID)
    items_pruned: int = 0  # items past retention, kept as tombstones
    items_filtered: int = 0  # new items the source's keep/drop rules left out (stored, unpublished)
    items_refiltered: int = 0  # items in the feed whose verdict changed with edited filters
    skipped: list[Skip] = field(default_factory=list)
    feeds_written: int = 0
    error: str | None = None  # set when the source as a whole failed
    # Health figures, judged by `worker.service.health` against the source's own history.
    listing_kind: str = ""  # "index", "sitemap", "feed" or "urls"
    selector_matched: int | None = None  # elements the operator's `links` selector matched
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> responses
    content_types: dict[str, int] = field(default_factory=dict)  # of article pages received
    body_lengths: list[int] = field(default_factory=list)  # characters, per extracted article
    methods: dict[str, int] = field(default_factory=dict)  # extraction path -> articles
    blocked: int = 0  # responses that were 403/429 or an anti-bot challenge page
    challenge: str = ""  # the first challenge marker seen, e.g. "cf-chl"
    # The listing page is an empty shell its scripts fill in (`worker.service.health.script_shell`).
    needs_javascript: bool = False
    # Pages rendered in the browser (`render = "browser"`), and their requests refused
    # (third-party hosts, the SSRF guard, kinds never loaded; `worker.render`).
    pages_rendered: int = 0
    requests_blocked: int = 0
    articles: list[ArticleTrace] = field(default_factory=list)
    # Site rules: articles each rule file was applied to ("example.com" -> 4), and those where
    # one of its directives found nothing ("example.com: body" -> 1).
    rule_pages: dict[str, int] = field(default_factory=dict)
    rule_missed: dict[str, int] = field(default_factory=dict)
    health_state: str = ""  # "ok" | "degraded" after this run ("" when not judged)
    health_reasons: tuple[str, ...] = ()
    health_changed: bool = False  # this run moved the source from ok to degraded or back

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class RunHealth:
    """One run as the source's health history keeps it: a compact row, judged by
    `worker.service.health.assess` against the runs before it."""

    at: datetime
    failed: bool = False  # the run as a whole failed (e.g. the index page could not be read)
    # False when the index was not reached, or not modified (304) with no earlier reading of
    # it to repeat (`worker.service.health.run_health`)
    listing_read: bool = False
    links_found: int = 0
    selector: str | None = None  # the operator's `links` selector, when set
    selector_matched: int | None = None
    items_new: int = 0
    items_updated: int = 0
    articles: int = 0  # article pages received as HTML and put through extraction
    median_body_chars: int | None = None  # None when no article was extracted
    methods: dict[str, int] = field(default_factory=dict)  # "auto", "selector", "feed-summary"...
    body_selector: str | None = None  # the operator's `body` selector, when set
    skipped: dict[str, int] = field(default_factory=dict)  # by `Skip.kind`
    statuses: dict[str, int] = field(default_factory=dict)  # "200" -> responses (JSON keys)
    content_types: dict[str, int] = field(default_factory=dict)
    responses: int = 0
    blocked: int = 0
    challenge: str = ""
    needs_javascript: bool = False  # the listing page is a script shell
    not_modified: bool = False  # a 304: the listing facts above repeat the reading it confirms
    rule_pages: dict[str, int] = field(default_factory=dict)  # as in `RunReport`
    rule_missed: dict[str, int] = field(default_factory=dict)
    degraded: bool = False  # the source's state once this run was judged
    # For the source page's run history (worker.web.sourcepage); not judged.
    reasons: list[str] = field(default_factory=list)  # why the source was degraded then
    items_filtered: int = 0
    bytes_received: int = 0
    duration_ms: int | None = None
    error: str = ""  # the run's error, when it failed (redacted, shortened)
    skip_reasons: dict[str, int] = field(default_factory=dict)  # the most frequent few
