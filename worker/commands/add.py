"""`feedworker add URL`: a new source from its URL, tried first, written after a yes.

1. the URL is checked ("example.com/blog" gets "did you mean https://example.com/blog?");
2. its listing is read as a run would read it (`list_articles`): the kind detected, the article
   links found, and whether the automatic detection is sure of them (`judge_listing`); when it is
   not, a `links` selector that finds the same links is proposed (`propose_selector`);
3. an id (from the host and path), a title (the feed's or the page's own) and the kind are
   proposed, and the source so made is tried end to end by `feedworker try`'s machinery
   (`try_source`: the real pipeline on a private copy of the state, nothing written), on its first
   `SAMPLE_ARTICLES` articles, with the same fetcher (politeness and robots.txt carry over);
4. after a yes (`--yes` for scripts), `config/sources.d/<id>.toml` is written, a comment above
   each key, atomically (a running worker's hot reload never reads half a file; it applies the
   new source within seconds), and the folder is loaded again as `feedworker check` loads it.

What stops it is said in one sentence naming the setting that would fix it (`AddError`): a site
that cannot be reached, a URL that is no HTML page, feed or sitemap, robots.txt forbidding it, a
page that needs JavaScript, an anti-bot wall, a page with no article links.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
import textwrap
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from worker.commands.dryrun import TryResult, try_source
from worker.config import (
    DEFAULT_EVERY,
    ID_PATTERN,
    PASSWORD_HOME,
    RESERVED_IDS,
    SOURCES_DIR,
    Config,
    Settings,
    Source,
    format_duration,
    load_config,
    missing_scheme_hint,
    parse_duration,
)
from worker.errors import ConfigError, FeedworkerError, FetchError, ListingError
from worker.extract.htmlparse import parse_html
from worker.extract.meta import extract_metadata
from worker.fetch.client import (
    BadStatus,
    Blocked,
    Fetcher,
    FetchOptions,
    NetworkError,
    RobotsDisallowed,
    Timeout,
    TooLarge,
    TooManyRedirects,
    UnsupportedContent,
)
from worker.fetch.decode import page_text
from worker.filters import html_text
from worker.listing.feedsource import parse_feed
from worker.listing.lister import Listing, ListingOptions, list_articles
from worker.listing.selector import judge_listing, propose_selector
from worker.models import Page
from worker.redact import redact_url
from worker.service.health import NOSCRIPT_ONLY
from worker.urls import normalise_url, param_dropper, same_site

__all__ = ["AddError", "AddOptions", "Proposal", "propose_source", "write_source"]

# Articles fetched and extracted to show what the first run would publish.
SAMPLE_ARTICLES = 3
FIRST_LINE_CHARS = 160
# Path segments that say nothing about a source ("/feed", "/index.html"): left out of its id.
GENERIC_SEGMENTS = frozenset(
    {"index", "feed", "feeds", "rss", "atom", "sitemap", "blog", "news", "en", "www", "home"}
)
# Host labels left out of an id: the usual first and last ones.
GENERIC_LABELS = frozenset({"www", "com", "org", "net", "io", "co", "uk", "de", "fr", "info"})
MAX_ID_CHARS = 40  # ids are file names and typed in commands: short ones
COMMENT_WIDTH = 96  # the files' comment lines, wrapped
RENDER_FIELD = "render"  # a source setting for JavaScript pages, when this version has it


class AddError(FeedworkerError):
    """A URL that cannot become a source: one sentence, naming the setting that would fix it."""


@dataclass(frozen=True, slots=True)
class AddOptions:
    """What the operator gave: the URL and any of the proposal's parts."""

    url: str
    source_id: str | None = None
    title: str | None = None
    kind: str = "auto"
    links: str | None = None
    every: str | None = None


@dataclass(frozen=True, slots=True)
class Proposal:
    """The source `add` proposes, and what trying it showed."""

    url: str
    source_id: str
    title: str
    kind: str  # what its links came from: "index", "feed" or "sitemap"
    kind_given: bool  # the operator said so (--kind); else detected
    links: str | None  # a selector, written only when given or when detection is unsure
    links_note: str  # why the selector is (or is not) written
    every: str
    links_found: int
    trial: TryResult
    notes: tuple[str, ...] = ()  # worth knowing: a redirect followed, a source already there

    @property
    def path(self) -> str:
        return f"{SOURCES_DIR}/{self.source_id}.toml"

    def toml(self, *, shown: bool = False) -> str:
        """The file to write; `shown`: with the URL's secret values masked, for the terminal."""
        url = redact_url(self.url) if shown else self.url
        kind = "given" if self.kind_given else "detected"
        lines = [
            f"# Written by `feedworker add`: {_oneline(redact_url(self.url))}",
            "# Every key is described in config/sources.toml; `feedworker check` validates it.",
            "[[source]]",
            f"# The feed's name: feeds/{self.source_id}.rss, .atom and .json.",
            f"id = {_toml_string(self.source_id)}",
            "# The page feedworker reads for article links (and the feed's link).",
            f"url = {_toml_string(url)}",
            "# The feed's title, as readers show it.",
            f"title = {_toml_string(self.title)}",
            f"# What the url is ({kind}): an index page of links, a feed or a sitemap.",
            f"kind = {_toml_string(self.kind)}",
            '# How often it runs: "30m", "6h", "90 minutes", "1d".',
            f"every = {_toml_string(self.every)}",
        ]
        if self.links:
            why = f"The article links on the index page ({_oneline(self.links_note)})."
            lines.extend(
                textwrap.wrap(why, COMMENT_WIDTH, initial_indent="# ", subsequent_indent="# ")
            )
            lines.append(f"links = {_toml_string(self.links)}")
        return "\n".join(lines) + "\n"


@dataclass(slots=True)
class _Reading:
    """What the listing showed, before the trial."""

    listing: Listing
    url: str
    kind: str
    links: str | None
    links_note: str
    notes: list[str] = field(default_factory=list)


# -- proposing ---------------------------------------------------------------------------------


async def propose_source(
    options: AddOptions,
    config: Config,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Proposal:
    """Read `options.url` and try the source it would make; raises `AddError` when it cannot
    become one. `config` is the folder's (its settings fetch; its ids are taken)."""
    url = check_url(options.url)
    every = _every(options.every)
    settings = config.settings
    fetch_options = FetchOptions.from_settings(settings)
    async with Fetcher(fetch_options, transport=transport, credentials=config.credentials) as f:
        reading = await _read(options, url, settings, f)
        title = options.title or _title(reading.listing, reading.url)
        taken = {s.id for s in config.sources}
        source_id = options.source_id or propose_id(reading.url, taken, title)
        _check_id(source_id, config)
        trial_source = _source(source_id, reading, title, every, SAMPLE_ARTICLES)
        trial = await try_source(config, trial_source, fresh=True, fetcher=f)
    notes = reading.notes + _same_url_notes(reading.url, config)
    return Proposal(
        url=reading.url,
        source_id=source_id,
        title=title,
        kind=reading.kind,
        kind_given=options.kind != "auto",
        links=reading.links,
        links_note=reading.links_note,
        every=every,
        links_found=len(reading.listing.links),
        trial=trial,
        notes=tuple(notes),
    )


def check_url(url: str) -> str:
    """The URL, or `AddError` saying what is wrong with it (a missing scheme, credentials)."""
    url = url.strip()
    hint = missing_scheme_hint(url)
    if hint:
        raise AddError(f"{redact_url(url)!r} has no scheme; {hint}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddError(f"{redact_url(url)!r} is not an http or https URL with a host")
    if parts.username is not None:
        raise AddError(f"write the URL without 'user:password@': {PASSWORD_HOME}")
    return url


async def _read(options: AddOptions, url: str, settings: Settings, fetcher: Fetcher) -> _Reading:
    drop = param_dropper(settings.tracking_params)
    listing_options = ListingOptions(
        url=url,
        kind=options.kind,
        selector=options.links,
        limit=settings.max_links_per_run,
        drop_params=drop,
    )
    try:
        listing = await list_articles(listing_options, fetcher)
    except FetchError as exc:
        raise AddError(fetch_problem(exc, url)) from exc
    except ListingError as exc:
        raise AddError(listing_problem(str(exc), url, options.kind)) from exc
    if not listing.links:
        raise AddError(empty_listing_problem(listing, url))
    page = listing.page
    final = page.final_url if page is not None else url
    notes = []
    if final != url and same_site(url, final):
        notes.append(f"{redact_url(url)} redirects to {redact_url(final)}: that is the url written")
        url = final
    links, note = options.links, "given with --links"
    if links is None and listing.kind == "index" and page is not None:
        links, note = _selector_if_unsure(listing, page, drop)
    elif links is None:
        note = f"a {listing.kind} lists its articles itself"
    return _Reading(listing, url, listing.kind, links, note, notes)


def _selector_if_unsure(
    listing: Listing, page: Page, drop: Callable[[str], bool] | None
) -> tuple[str | None, str]:
    """(a selector, why) when automatic detection is unsure of the page's listing, else
    (None, why none is needed)."""
    verdict = judge_listing(listing.decisions)
    if verdict.sure:
        return None, "found automatically; detection is sure of the listing"
    unsure = "automatic detection is unsure: " + "; ".join(verdict.reasons)
    proposal = propose_selector(parse_html(page_text(page)), page.final_url, drop)
    if proposal is None:
        return None, f"{unsure}; no selector finds the same links, check them below"
    return proposal.selector, f"{unsure}; this selector finds the same {proposal.found} links"


def _source(source_id: str, reading: _Reading, title: str, every: str, items: int) -> Source:
    data: dict[str, object] = {
        "id": source_id,
        "url": reading.url,
        "title": title,
        "kind": reading.kind,
        "every": every,
        "max_items": items,
    }
    if reading.links:
        data["links"] = reading.links
    try:
        return Source.model_validate(data)
    except ValueError as exc:  # pydantic's ValidationError is one
        raise AddError(f"the proposed source does not validate: {exc}") from None


def _every(every: str | None) -> str:
    if every is None:
        return format_duration(DEFAULT_EVERY)
    try:
        if parse_duration(every).total_seconds() <= 0:
            raise ValueError("must be more than zero")
    except ValueError as exc:
        raise AddError(f"--every {every!r}: {exc}") from None
    return every.strip()


def _check_id(source_id: str, config: Config) -> None:
    if not ID_PATTERN.fullmatch(source_id) or source_id in RESERVED_IDS:
        raise AddError(f"--id {source_id!r} cannot be an id: use 1-64 of a-z, 0-9, '-' and '_'")
    if any(source.id == source_id for source in config.sources):
        raise AddError(f"a source with id {source_id!r} exists already; choose another --id")
    if (config.config_dir / SOURCES_DIR / f"{source_id}.toml").exists():
        raise AddError(f"{SOURCES_DIR}/{source_id}.toml exists already; choose another --id")


def _same_url_notes(url: str, config: Config) -> list[str]:
    same = [s.id for s in config.sources if normalise_url(s.url) == normalise_url(url)]
    return [f"source {', '.join(same)} already reads this url"] if same else []


# -- names -------------------------------------------------------------------------------------


def propose_id(url: str, taken: set[str], title: str = "") -> str:
    """An id from the URL's host and first telling path segment: "example-recipes" for
    https://www.example.com/recipes/..., made unique among `taken` with "-2", "-3"... A host that
    names no site (an IP address, localhost) gives way to the first words of `title`."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    named = host.split(".")[:-1] or [host]  # the top-level domain names no site
    labels = [label for label in named if label not in GENERIC_LABELS]
    if _is_address(host) or host == "localhost" or not labels:
        labels = title.split()[:4] or ["site"]
    segments = [s for s in re.split(r"[/.]", parts.path.lower()) if s]
    telling = [s for s in segments if s not in GENERIC_SEGMENTS and not s.isdigit()][:1]
    base = _slug("-".join(labels + telling)) or "site"
    if base[0] in "-_":
        base = "site" + base
    candidate, n = base, 2
    while candidate in taken or candidate in RESERVED_IDS:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-_")
    return slug[:MAX_ID_CHARS].rstrip("-_")


def _title(listing: Listing, url: str) -> str:
    """The feed's own title, else the page's site name or title, else the host."""
    page = listing.page
    title = ""
    if page is not None and page.raw is None and page.body:  # a feed document
        try:
            title = parse_feed(page.body, page.final_url).title
        except ListingError:
            title = ""
    elif page is not None:
        meta = extract_metadata(parse_html(page_text(page)), page.final_url)
        title = meta.site_name or meta.title
    return " ".join(title.split())[:200] or (urlsplit(url).hostname or url)


# -- problems, one sentence each ---------------------------------------------------------------


def fetch_problem(exc: FetchError, url: str) -> str:
    """Why the URL could not be fetched, and the setting that would help."""
    shown = redact_url(url)
    if isinstance(exc, RobotsDisallowed):
        return (
            f"{shown}: robots.txt of {urlsplit(url).hostname} forbids feedworker to fetch it;"
            " respect_robots = false in the source would ignore that (only with the site's"
            " consent)"
        )
    if isinstance(exc, BadStatus):
        return _status_problem(exc.status, shown)
    if isinstance(exc, UnsupportedContent):
        return (
            f"{shown} is not an HTML page, feed or sitemap ({exc.reason}); give the page that"
            ' lists the articles as the URL, or watch fixed pages with kind = "urls"'
        )
    if isinstance(exc, TooLarge):
        return f"{shown} is too large ({exc.reason}); raise max_page_bytes in [worker]"
    if isinstance(exc, TooManyRedirects):
        return (
            f"{shown}: {exc.reason}; give the address it ends at as the URL, or raise"
            " max_redirects in [worker]"
        )
    if isinstance(exc, Timeout):
        return (
            f"{shown} did not answer in time ({exc.reason}); if the site is just slow, raise"
            " request_deadline (and read_timeout) in [worker]"
        )
    if isinstance(exc, Blocked):
        return f"{shown} cannot be fetched ({exc.reason}); the url must be a public web address"
    if isinstance(exc, NetworkError):
        return (
            f"{shown} cannot be reached ({exc.reason}); check the address (a typo in the host?),"
            " or raise connect_timeout in [worker] for a slow network"
        )
    return f"{shown} cannot be fetched: {exc.reason}"


def _status_problem(status: int, shown: str) -> str:
    if status in (401, 407):
        return (
            f"{shown} wants a login (HTTP {status}); give the source"
            ' auth = { user = "...", password_env = "SITE_PASSWORD" }'
        )
    if status in (403, 429):
        return (
            f"{shown} refuses feedworker (HTTP {status}); set user_agent in [worker] to say who"
            " you are, or try the site's feed or sitemap as the URL"
        )
    if status in (404, 410):
        return f"{shown} is not there (HTTP {status}); check the URL"
    if status >= 500:
        return f"{shown} has a server error (HTTP {status}); try again later"
    return f"{shown} answered HTTP {status}; check the URL"


def listing_problem(reason: str, url: str, kind: str) -> str:
    shown = redact_url(url)
    if "advertises no feed" in reason:
        return f"{shown} advertises no feed; leave out --kind feed to read the page's own links"
    if "neither an HTML page" in reason:
        return (
            f"{shown} is not an HTML page, feed or sitemap; give the page that lists the"
            ' articles as the URL, or watch fixed pages with kind = "urls"'
        )
    if kind != "auto":
        return f"{shown} cannot be read as kind = {kind!r} ({reason}); leave out --kind"
    return f"{shown} lists no articles: {reason}"


def empty_listing_problem(listing: Listing, url: str) -> str:
    shown = redact_url(url)
    # As the pipeline judges it: a named anti-bot product wins over the empty shell it also is;
    # a shell whose only text is a <noscript> note is a page that needs JavaScript.
    if listing.challenge and (listing.challenge != NOSCRIPT_ONLY or not listing.script_shell):
        return (
            f"{shown} answers with an anti-bot challenge page ({listing.challenge!r}), not its"
            ' articles; its feed or sitemap may be open: try that as the URL (kind = "feed")'
        )
    if listing.script_shell:
        if RENDER_FIELD in Source.model_fields:
            fix = 'render = "browser" in the source renders it in headless Chromium'
        else:
            fix = 'its feed or sitemap may list the articles: try kind = "feed" or "sitemap"'
        return f"{shown} is an empty page its scripts fill in (it needs JavaScript); {fix}"
    return (
        f"no article links found on {shown}; give the selector of its article links with"
        ' --links "CSS" (`feedworker discover URL` shows every link and why it was left out)'
    )


# -- writing -----------------------------------------------------------------------------------


def write_source(proposal: Proposal, config_dir: Path) -> Path:
    """Write `proposal` to `<config_dir>/sources.d/<id>.toml` atomically, then load the folder
    as `feedworker check` does; the file is removed again (and `AddError` raised) when the
    folder does not validate with it."""
    text = proposal.toml()
    _validate_alone(text)
    folder = config_dir / SOURCES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{proposal.source_id}.toml"
    if path.exists():
        raise AddError(f"{SOURCES_DIR}/{path.name} exists already; choose another --id")
    # A dot-file first (the config loader skips those), renamed into place: a running worker's
    # reload sees no file, then the whole file.
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.link(temp, path)  # fails if the name was taken meanwhile: never overwrite
    finally:
        os.unlink(temp)
    try:
        load_config(config_dir)
    except ConfigError as exc:
        ours = [p for p in exc.problems if p.file.endswith(f"{SOURCES_DIR}/{path.name}")]
        if ours:
            path.unlink(missing_ok=True)
            raise AddError(f"the new file does not validate, not written: {ours[0]}") from None
    return path


def _validate_alone(text: str) -> None:
    try:
        (table,) = tomllib.loads(text)["source"]
        Source.model_validate(table)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise AddError(f"the proposed source does not validate: {exc}") from None


def sample_lines(proposal: Proposal) -> list[str]:
    """What the first run would publish: counts, then each sample article's title and first
    line, and the articles it would skip, with why."""
    trial = proposal.trial
    report = trial.report
    found, most = proposal.links_found, Source.model_fields["max_items"].default
    taken = f"the {found} article link(s) found" if found <= most else f"{most} of {found} links"
    shown = min(found, SAMPLE_ARTICLES)
    lines = [f"the first run would fetch {taken}; the first {shown}, as readers would see them:"]
    for item in trial.would_add:
        first = " ".join(html_text(item.content_html).split())[:FIRST_LINE_CHARS]
        lines.append(f"  + {item.title}")
        lines.append(f"    {first}{'…' if len(first) == FIRST_LINE_CHARS else ''}")
    for skip in report.skipped:
        lines.append(f"  - skipped {redact_url(skip.url)}: {skip.reason}")
    if report.error:
        lines.append(f"  error: {report.error}")
    if not trial.would_add and not report.skipped and not report.error:
        lines.append("  (nothing new: every article is known already)")
    return lines


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (control characters as \\uXXXX)."""
    return json.dumps(value, ensure_ascii=False)


def _oneline(text: str) -> str:
    return " ".join(text.split())
