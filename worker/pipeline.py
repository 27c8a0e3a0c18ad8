"""Run one source: the one place where the stages meet.

1. read the source's listing: its index page(s), sitemap or feed (`worker.listing.lister`; a
   conditional GET of the source's URL, a 304 skips straight to publishing);
2. take the links not seen before;
3. fetch the articles not seen before, at most `max_items` new ones per run;
4. extract each article, with the source's learnt template (recurring blocks) removed and the
   site rules of its host applied (`worker.siterules`); a multi-page article's further pages
   (or its single-page version) are fetched and merged into it (`worker.extract.multipage`);
5. dedupe by canonical URL and by content hash, store new items;
6. render the source's feeds and write the files that changed;
7. record the run, judge the source's health against its own history (`worker.service.health`; one
   log line when it degrades or recovers) and log one summary line.

Every request of the run goes through the source's session of the shared fetcher, with the
source's own request settings (`request_profile`: headers, User-Agent, cookies, proxy). With
`render = "browser"`, each HTML page (listing and articles) is rendered in headless Chromium
(`worker.render`) right after it is fetched, and read as the DOM the browser built: discovery
and extraction stay the same code.

A failure of the index page fails the run (the feeds already published stay as they are); a
failure of one article skips that article with its reason. An article whose body is missing or
under the source's floor is never published as such: it is skipped, or, when the source is a
feed, published with the feed's own summary (`method="feed-summary"`).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from apscheduler.triggers.cron import CronTrigger

from worker.config import HEALTH_HISTORY_RUNS, Settings, Source, read_cookie_file
from worker.dedupe.content import Change, Signature, compare_texts, text_signature
from worker.errors import FeedworkerError, FetchError, RenderError
from worker.extract import ExtractOptions
from worker.extract.multipage import follow_pages
from worker.fetch.client import (
    BadStatus,
    Blocked,
    Fetcher,
    RequestProfile,
    RobotsDisallowed,
    UnsupportedContent,
)
from worker.fetch.cookies import CookieSpec
from worker.fetch.decode import page_html, page_text
from worker.filters import FilterSubject
from worker.listing.feedsource import fill_article
from worker.listing.lister import Listing, ListingOptions, list_articles
from worker.models import (
    Article,
    ArticleTrace,
    Decision,
    EntryInfo,
    Item,
    Link,
    Method,
    NotModified,
    Page,
    RuleTrace,
    RunHealth,
    RunReport,
    Skip,
    SkipKind,
    Validators,
)
from worker.publish.files import FeedSink, publish_feeds
from worker.publish.render import FeedMeta
from worker.redact import redact_text, redact_url
from worker.render import Renderer, RenderPolicy
from worker.service.extractpool import Extracted, Extractor, ExtractorCrashed, InlineExtractor
from worker.service.health import (
    BLOCKING_STATUSES,
    NOSCRIPT_ONLY,
    assess,
    body_floor,
    challenge_marker,
    run_health,
)
from worker.service.logs import fields, log, remember_secrets
from worker.siterules import EMPTY_LIBRARY, RuleLibrary
from worker.store.state import Identity, SimhashIndex, Store
from worker.urls import normalise_url, param_dropper

# A block seen on this many distinct pages of a source is its template, not article text. Three,
# not two: an index page's teaser and its article page share the article's lead paragraph.
TEMPLATE_MIN_PAGES = 3
# Near-duplicates within a source are looked for in memory while it has at most this many
# SimHashes (one query a run, then a comparison each); beyond, by the store's indexed probes.
SIMHASHES_IN_MEMORY = 5000
# Dates further ahead than this are a wrong clock or a scheduled post, not the article's date.
FUTURE_TOLERANCE = timedelta(days=1)
# A site rule's `http_header(...)` lines sent with `site_rules_headers = true`: the ones rule files
# use (User-Agent, Cookie, Referer, Accept). Never those that would undo our own handling of the
# exchange (Accept-Encoding: we decode bodies ourselves, with limits; Host, Authorization...).
RULE_HEADERS = frozenset({"user-agent", "cookie", "referer", "accept", "accept-language"})

K = TypeVar("K")  # what `_count` counts: statuses, extraction methods


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class RunContext:
    """What a run needs from the outside world, built once by the runner and shared."""

    settings: Settings
    fetcher: Fetcher
    store: Store
    clock: Callable[[], datetime] = utc_now
    # When the scheduler will run a source next, recorded with each run for `feedworker status`.
    next_run: Callable[[str], datetime | None] = lambda _source_id: None
    # Where feeds are published: None for the files in `settings.feeds_dir` (cluster mode: the
    # state database, worker.service.cluster.FeedTable).
    feeds: FeedSink | None = None
    # `feedworker try`: no feeds written, no health transitions logged (its store writes nothing).
    dry_run: bool = False
    on_listing: Callable[[Listing], None] | None = None  # sees each listing read
    # Where pages are extracted: inline, or in child processes (`extract_processes`).
    extractor: Extractor = field(default_factory=InlineExtractor)
    site_rules: RuleLibrary = EMPTY_LIBRARY  # the config's site rule files (`Config.site_rules`)
    # The shared browser for `render = "browser"` sources (started on first use); None: none
    # here, and such a source's pages fail with that reason.
    renderer: Renderer | None = None


@dataclass(slots=True)
class _Fetched:
    link: Link
    page: Page
    position: int  # place on the listing (0 = first), to keep listing order among undated items
    recheck: bool = False  # a known article fetched again to see whether it was edited
    extraction: asyncio.Future[Extracted] | None = None  # started as soon as the page arrived
    # A multi-page article's further pages by URL (None: could not be fetched), kept so that
    # extracting it again (with newly learnt template blocks) fetches nothing.
    more: dict[str, Page | None] = field(default_factory=dict)


@dataclass(slots=True)
class _Run:
    """Mutable state of one run, kept off the function signatures."""

    source: Source
    ctx: RunContext
    report: RunReport
    fetched: list[_Fetched] = field(default_factory=list)
    listing: Listing | None = None  # what _fetch_index read; _discover takes its links
    left_over: bool = False  # links over this run's cap wait for a later run
    drop_params: Callable[[str], bool] | None = None  # the operator's extra tracking parameters
    history: list[RunHealth] = field(default_factory=list)  # the source's earlier runs
    floor: int = 0  # bodies shorter than this are not published (`health.body_floor`)
    simhashes: SimhashIndex | None = None  # the source's SimHashes in memory while storing
    # The run's view of the shared fetcher: its own cookie jar, never another source's.
    fetcher: Fetcher = field(init=False)

    def __post_init__(self) -> None:
        self.fetcher = self.ctx.fetcher.session()


async def run_source(source: Source, ctx: RunContext) -> RunReport:
    """Run one source end to end and return its report; never raises for a site's faults."""
    started = ctx.clock()
    clock_start = time.perf_counter()
    run = _Run(source, ctx, RunReport(source.id, started=started))
    run.drop_params = param_dropper(ctx.settings.tracking_params)
    try:
        run.history = ctx.store.health_history(source.id, HEALTH_HISTORY_RUNS)
        run.floor = body_floor(run.history, source.health_thresholds(ctx.settings.health))
        run.fetcher = ctx.fetcher.session(request_profile(source, ctx.settings))
        await _run(run)
    except FeedworkerError as exc:
        run.report.error = redact_text(str(exc), source.secret_values)
    except Exception as exc:  # a bug must not take the worker down; say so loudly
        log.exception("run crashed", extra=fields(source=source.id))
        error = f"internal error: {type(exc).__name__}: {exc}"
        run.report.error = redact_text(error, source.secret_values)
    run.report.finished = ctx.clock()
    before = ctx.store.source_state(source.id)
    ctx.store.record_run(run.report, ctx.next_run(source.id))
    _judge_health(run)
    failures = before.consecutive_failures if before is not None else 0
    seconds = time.perf_counter() - clock_start
    _log_summary(run.report, redact_url(source.url), seconds, failures_before=failures)
    return run.report


def _judge_health(run: _Run) -> None:
    """Add this run to the source's health history and store its state; log a transition once."""
    source, ctx, report = run.source, run.ctx, run.report
    thresholds = source.health_thresholds(ctx.settings.health)
    current = run_health(
        report, selector=source.links, body_selector=source.body, history=run.history
    )
    verdict = assess([*run.history, current], thresholds)
    before = ctx.store.source_health(source.id)
    was = before.state if before is not None else "ok"
    report.health_state, report.health_reasons = verdict.state, verdict.reasons
    report.health_changed = verdict.state != was
    reasons = list(verdict.reasons) if verdict.degraded else []  # the page shows them over time
    ctx.store.record_health(
        source.id,
        replace(current, degraded=verdict.degraded, reasons=reasons),
        HEALTH_HISTORY_RUNS,
    )
    when = report.finished or report.started
    ctx.store.set_health(source.id, verdict.state, verdict.reasons, when)
    if report.health_changed and not ctx.dry_run:
        if verdict.degraded:
            reason = "; ".join(verdict.reasons)
            log.warning("source degraded", extra=fields(source=source.id, reason=reason))
        else:
            log.warning("source recovered", extra=fields(source=source.id, was=was))


async def _run(run: _Run) -> None:
    source, ctx, report = run.source, run.ctx, run.report
    index = await _fetch_index(run)
    # On a 304 there are no new links, but articles due an update check are still fetched.
    links = _discover(run) if index is not None else []
    if index is not None and run.listing is not None:  # fingerprinted where it was read
        ctx.store.record_blocks(source.id, index.final_url, run.listing.fingerprints)
    # The site's template as known before this run; each page is extracted with it as soon as
    # it arrives (beside the fetches when the extractor has processes of its own).
    known = ctx.store.boilerplate_blocks(source.id, TEMPLATE_MIN_PAGES)
    try:
        await _fetch_articles(run, links, known)
        await _store_articles(run, index, known)
    finally:
        for fetched in run.fetched:  # a cancelled run leaves no extraction behind
            if fetched.extraction is not None:
                fetched.extraction.cancel()
    _refilter(run)
    if ctx.dry_run:
        return
    items = ctx.store.feed_items(source.id, source.max_items)
    report.feeds_written = publish_feeds(
        ctx.feeds or ctx.settings.feeds_dir, feed_meta(source, ctx.settings), items, report.started
    )


def _refilter(run: _Run) -> None:
    """After an edit of the source's `keep`/`drop` rules, judge the items still in its feed (the
    newest `max_items`, filtered or not) again, both ways: a newly dropped item leaves the feed,
    one no rule drops any more comes back."""
    source, store = run.source, run.ctx.store
    filters = source.filters
    if store.filter_digest(source.id) == filters.digest:
        return
    changed = [
        (item.guid, verdict)
        for item in store.window_items(source.id, source.max_items)
        if (verdict := filters.judge(FilterSubject.of_item(item))) != item.filtered
    ]
    with store.transaction("judging items by new filters"):
        store.set_filtered(source.id, changed)
        store.set_filter_digest(source.id, filters.digest)
    run.report.items_refiltered = len(changed)
    if changed:
        log.info(
            "filters changed: items judged again",
            extra=fields(
                source=source.id,
                filtered=sum(1 for _, verdict in changed if verdict),
                published=sum(1 for _, verdict in changed if verdict is None),
            ),
        )


async def _fetch_index(run: _Run) -> Page | None:
    """Read the source's listing (index pages, sitemaps or feed; `worker.listing.lister`) and return
    the source URL's page, or None when it has not changed since the last run."""
    source, store = run.source, run.ctx.store
    validators = store.get_validators(source.id, source.url, _listing_variant(run))
    options = ListingOptions.for_source(source, run.ctx.settings, validators)
    render = (lambda page: _render(run, page)) if source.renders else None
    try:
        listing = await list_articles(options, run.fetcher, run.ctx.extractor, render)
    except FetchError as exc:
        if isinstance(exc, BadStatus):
            _note_refusal(run, exc)
        raise FetchError(exc.url, f"index page: {exc.reason}") from exc
    report = run.report
    report.pages_fetched += listing.pages_fetched
    report.bytes_received += listing.bytes_received
    if run.ctx.on_listing is not None:
        run.ctx.on_listing(listing)
    if listing.not_modified:
        report.index_not_modified = True
        _count(report.statuses, 304)
        return None
    report.listing_kind, report.selector_matched = listing.kind, listing.selector_matched
    page = listing.page
    if page is not None and listing.kind != "urls":
        _count(report.statuses, page.status)
        if not listing.links:
            _note_empty_listing(report, listing)
    run.listing = listing
    return page


def _listing_variant(run: _Run) -> str:
    """What the listing's links depend on besides the page: validators saved with other values
    are not sent, so an edited selector or pattern is tried on an unchanged page at once."""
    source, settings = run.source, run.ctx.settings
    parts = [
        source.kind,
        source.pages,
        source.links,
        [pattern.pattern for pattern in source.include],
        [pattern.pattern for pattern in source.exclude],
        settings.max_links_per_run,
        list(settings.tracking_params),
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _note_empty_listing(report: RunReport, listing: Listing) -> None:
    """Why a page listed nothing, when it shows: an anti-bot wall (a named product wins over the
    shell it also is), or an empty shell its scripts fill in (both read beside the loop)."""
    marker = listing.challenge
    if marker is not None and marker != NOSCRIPT_ONLY:
        _note_challenge(report, marker)
    elif listing.script_shell and not report.pages_rendered:  # rendered: the listing's rules say
        report.needs_javascript = True
    elif marker is not None:
        _note_challenge(report, marker)


def _count(counts: dict[K, int], key: K) -> None:
    counts[key] = counts.get(key, 0) + 1


def _note_refusal(run: _Run, exc: BadStatus) -> None:
    """Count a 4xx/5xx answer; a 403/429 or a challenge page is an anti-bot wall's sign."""
    report = run.report
    _count(report.statuses, exc.status)
    marker = challenge_marker(exc.snippet) if exc.snippet else None
    if marker is not None:
        _note_challenge(report, marker)
    elif exc.status in BLOCKING_STATUSES:
        report.blocked += 1


def _note_challenge(report: RunReport, marker: str) -> None:
    report.blocked += 1
    report.challenge = report.challenge or marker


def _discover(run: _Run) -> list[Link]:
    """The listing's links not seen before, at most `max_items` (the rest wait for a later run)."""
    source, store, report = run.source, run.ctx.store, run.report
    links = run.listing.links if run.listing is not None else ()
    report.links_found = len(links)
    new: list[Link] = []
    for link in links:
        if store.known_url(source.id, link.url) is not None:
            report.items_unchanged += 1
        elif len(new) < source.max_items:
            new.append(link)
        else:
            run.left_over = True
    return new


async def _fetch_articles(run: _Run, links: Sequence[Link], boilerplate: frozenset[str]) -> None:
    """Fetch the new article pages concurrently, and the known ones due an update check with a
    conditional GET (the fetcher enforces the limits per host); start each page's extraction,
    with the site's known `boilerplate` blocks, as soon as it arrives."""
    rechecks = [Link(url) for url in _due_rechecks(run, {link.url for link in links})]

    async def fetch_one(position: int, link: Link, recheck: bool) -> None:
        validators = run.ctx.store.get_validators(run.source.id, link.url) if recheck else None
        try:
            result = await run.fetcher.fetch_page(
                link.url,
                validators=validators,
                allow_private=run.source.allow_private_networks,
                trusted_origin=run.source.url,
                respect_robots=run.source.respect_robots,
                decode=False,  # the extractor decodes it (see `RawHtml`)
                headers=_rule_headers(run, link.url),
            )
            if isinstance(result, Page):
                result = await _render(run, result)
        except FetchError as exc:
            status = exc.status if isinstance(exc, BadStatus) else None
            if isinstance(exc, BadStatus):
                _note_refusal(run, exc)
            _skip(run, link.url, exc.reason, _fetch_skip_kind(exc), status=status)
            return
        if isinstance(result, NotModified):
            _count(run.report.statuses, 304)
            if recheck:  # unchanged since the last check: nothing to parse
                run.ctx.store.mark_checked(run.source.id, link.url, run.report.started)
                run.report.articles.append(ArticleTrace(link.url, 304, decision="unchanged"))
            else:  # we sent no validators; a server's odd answer
                _skip(run, link.url, "answered 304 without a conditional request", status=304)
            return
        _count(run.report.statuses, result.status)
        _count(run.report.content_types, result.content_type)
        run.report.pages_fetched += 1
        run.report.bytes_received += result.size
        fetched = _Fetched(link, result, position, recheck)
        fetched.extraction = asyncio.ensure_future(_extract(run, fetched, boilerplate))
        run.fetched.append(fetched)

    await asyncio.gather(
        *(fetch_one(i, link, False) for i, link in enumerate(links)),
        *(fetch_one(len(links) + i, link, True) for i, link in enumerate(rechecks)),
    )
    run.fetched.sort(key=lambda f: f.position)


def _fetch_skip_kind(exc: FetchError) -> SkipKind:
    """The `Skip.kind` of an article page that could not be fetched (or rendered)."""
    if isinstance(exc, RenderError):
        return "render"
    if isinstance(exc, BadStatus):
        return "http"
    if isinstance(exc, UnsupportedContent):
        return "empty" if exc.reason == "empty body" else "not_html"
    if isinstance(exc, RobotsDisallowed | Blocked):
        return "blocked"
    return "network"


def request_profile(source: Source, settings: Settings) -> RequestProfile:
    """The source's own request settings for its run's session. Its cookies file is read again
    for each run (a fresh export needs no restart); a file that cannot be read fails the run."""
    cookies: tuple[CookieSpec, ...] = ()
    if source.cookies_file is not None:
        try:
            read = read_cookie_file(source.cookies_file.path)
        except ValueError as exc:
            raise FeedworkerError(f"cookies_file: {exc}") from None
        remember_secrets(read.values)  # values added to the file since the config was loaded
        cookies = read.cookies
    if source.cookie_env is not None:
        cookies += source.cookie_env.cookies(source.url).cookies
    return RequestProfile(
        site=source.url,
        headers=source.headers,
        user_agent=source.user_agent,
        cookies=cookies,
        proxy=source.proxy_for(settings),
    )


def render_policy(source: Source) -> RenderPolicy:
    """How the source's pages are rendered, and what they may load."""
    return RenderPolicy(
        wait=source.render_wait,
        timeout=source.render_timeout,
        allow_hosts=source.render_allow_hosts,
        allow_private=source.allow_private_networks,
        trusted_origin=source.url,
        respect_robots=source.respect_robots,
    )


async def _render(run: _Run, page: Page) -> Page:
    """An HTML page of a `render = "browser"` source as the browser renders it (its requests
    made through the run's session); any other page as fetched."""
    if not run.source.renders or page.raw is None:
        return page
    renderer = run.ctx.renderer
    if renderer is None:
        raise RenderError(redact_url(page.final_url), "no browser in this command")
    rendered = await renderer.render(page, run.fetcher, render_policy(run.source))
    report = run.report
    report.pages_rendered += 1
    report.requests_blocked += len(rendered.blocked)
    report.bytes_received += rendered.bytes_received
    return rendered.page


def _due_rechecks(run: _Run, new_urls: set[str]) -> list[str]:
    """URLs of the source's items in the feed not checked for edits within `recheck`."""
    source = run.source
    if source.recheck is None:
        return []
    checked_before = run.report.started - source.recheck
    due = run.ctx.store.recheck_due(source.id, checked_before, source.max_items)
    return [url for url in due if url not in new_urls]


async def _store_articles(run: _Run, index: Page | None, known: frozenset[str]) -> None:
    """Dedupe and store the fetched articles as extracted with the `known` template blocks,
    learning the site's template on the way; then prune what the source's retention lets go,
    and remember the listing's validators."""
    source, store, report = run.source, run.ctx.store, run.report
    results = list(await asyncio.gather(*(f.extraction for f in run.fetched if f.extraction)))
    # Blocks that recur across this run's pages are template too, even on a source's first run:
    # re-extract only the pages where the extractor looked such a newly learnt block up (it
    # drops template blocks only from what it renders; any other page would come out the same).
    store.record_pages_blocks(
        source.id,
        [
            (fetched.page.final_url, done.article.block_fingerprints)
            for fetched, done in zip(run.fetched, results, strict=True)
            if done.article is not None
        ],
    )
    learnt = store.boilerplate_blocks(source.id, TEMPLATE_MIN_PAGES)
    fresh = learnt - known
    again = [
        i
        for i, done in enumerate(results)
        if done.article is not None and fresh.intersection(done.article.template_checked)
    ]
    redone = await _extract_all(run, [run.fetched[i] for i in again], learnt)
    for i, done in zip(again, redone, strict=True):
        results[i] = done
    if not run.ctx.settings.dedupe_across_sources:
        run.simhashes = store.simhash_index(source.id, SIMHASHES_IN_MEMORY)
    with store.transaction("storing a run's articles"):  # one commit for the lot
        for fetched, done in zip(run.fetched, results, strict=True):
            extracted = done.article
            article = _vet(run, fetched, extracted) if extracted is not None else None
            if extracted is not None and article is not None:
                # The signature was taken of the extracted text; a stand-in summary has its own.
                signature = done.signature
                if signature is None or article.body_text != extracted.body_text:
                    signature = text_signature(article.body_text)
                stored = _store_article(run, fetched, article, signature)
                _trace(run, fetched, article, stored.decision, stored.note)
        keep_since = report.started - timedelta(days=source.keep_days)
        report.items_pruned = store.prune(source.id, source.max_items, keep_since, report.started)
    report.skipped.sort(key=lambda s: s.url)
    if index is not None:
        # Last, and only when the run left nothing behind: a 304 next time must not hide links
        # over this run's cap, or articles to be tried again (a fetch error, a too-short page).
        left_over = run.left_over or any(s.kind != "duplicate" for s in report.skipped)
        validators = Validators() if left_over else index.validators
        store.save_validators(source.id, source.url, validators, _listing_variant(run))


async def _extract_all(
    run: _Run, fetched: Sequence[_Fetched], boilerplate: frozenset[str]
) -> list[Extracted]:
    """Extract the pages again (with newly learnt template blocks): all at once when the extractor
    works beside the event loop, else one by one, letting the loop move between them."""
    if run.ctx.extractor.concurrent:
        return list(await asyncio.gather(*(_extract(run, f, boilerplate) for f in fetched)))
    results = []
    for page in fetched:
        results.append(await _extract(run, page, boilerplate))
        await asyncio.sleep(0)
    return results


async def _extract(run: _Run, fetched: _Fetched, boilerplate: frozenset[str]) -> Extracted:
    page = fetched.page
    options = _options(run, page.final_url, boilerplate)
    try:
        done = await run.ctx.extractor.extract(page_html(page), page.final_url, options)
    except ExtractorCrashed as exc:
        _skip(run, fetched.link.url, str(exc), "error", status=page.status)
        return Extracted()
    except Exception as exc:  # an extractor bug costs one article, not the run
        log.exception("extract crashed", extra=fields(source=run.source.id, url=fetched.link.url))
        reason = f"internal error: {type(exc).__name__}: {exc}"
        _skip(run, fetched.link.url, reason, "error", status=page.status)
        return Extracted()
    if done.article is None:
        _note_rule(run.report, done.site_rule)  # a rule's body that matched nothing, no fallback
        return Extracted(_junk(run, fetched, done.error, "no_text"))
    if done.article.next_page is not None or done.article.single_page is not None:
        done = await _merge_pages(run, fetched, done, boilerplate)
    if done.article is None:  # never: merging keeps the first page's article at least
        return done
    # A feed's title, date... where the page has none; the body text stays as signed.
    return replace(done, article=fill_article(done.article, fetched.link.entry))


def _options(
    run: _Run, url: str, boilerplate: frozenset[str], page_number: int = 1
) -> ExtractOptions:
    """How to extract a page of the source at `url`: the operator's overrides, the site's
    template, and the site rules of `url`'s host."""
    source, settings = run.source, run.ctx.settings
    return ExtractOptions(
        body=source.body,
        remove=tuple(source.remove),
        boilerplate=boilerplate,
        site_rules=run.ctx.site_rules.for_url(url) if source.site_rules else None,
        paginated=source.paginated_articles,
        page_number=page_number,
        check_rules=settings.site_rules_check,
    )


def _rule_headers(run: _Run, url: str) -> dict[str, str] | None:
    """The site rule's `http_header(...)` lines for `url` that may be sent (`RULE_HEADERS`),
    when the operator allows them (`site_rules_headers`); the others are left out with a
    debug line."""
    rules = run.ctx.site_rules.for_url(url) if run.source.site_rules else None
    if rules is None or not rules.headers:
        return None
    allowed = run.ctx.settings.site_rules_headers
    sent = {name: value for name, value in rules.headers if allowed and name in RULE_HEADERS}
    left_out = [name for name, _ in rules.headers if name not in sent]
    if left_out:
        why = "not one we send" if allowed else "site_rules_headers = false"
        log.debug(
            "site rule headers not sent",
            extra=fields(url=url, rule=rules.name, headers=",".join(left_out), why=why),
        )
    return sent or None


async def _merge_pages(
    run: _Run, fetched: _Fetched, done: Extracted, boilerplate: frozenset[str]
) -> Extracted:
    """The article with its single-page version's body, or with its next pages merged in
    (`worker.extract.multipage`); fetched once, with the same politeness and guard as any
    article."""
    assert done.article is not None

    async def load(url: str, page_number: int) -> Article | None:
        page = await _fetch_more(run, fetched, url)
        if page is None:
            return None
        options = _options(run, page.final_url, boilerplate, page_number)
        try:
            more = await run.ctx.extractor.extract(page_html(page), page.final_url, options)
        except Exception as exc:  # a page beyond the first costs itself, not the article
            log.info("article page not extracted", extra=fields(url=url, error=repr(exc)))
            return None
        return more.article

    followed = await follow_pages(done.article, load, run.ctx.settings.max_article_pages)
    extra = fields(source=run.source.id, url=fetched.link.url, pages=followed.pages)
    if followed.stopped:
        extra["fields"]["stopped"] = followed.stopped
    if followed.single_page:
        log.info("single-page version used", extra=extra)
    elif followed.pages > 1 or followed.stopped:
        log.info("article pages merged", extra=extra)
    if followed.article is done.article:
        return done
    return Extracted(followed.article, text_signature(followed.article.body_text))


async def _fetch_more(run: _Run, fetched: _Fetched, url: str) -> Page | None:
    """A further page of `fetched`'s article (counted in the run's figures), or None."""
    if url in fetched.more:
        return fetched.more[url]
    fetched.more[url] = None
    source, report = run.source, run.report
    try:
        result = await run.fetcher.fetch_page(
            url,
            allow_private=source.allow_private_networks,
            trusted_origin=source.url,
            respect_robots=source.respect_robots,
            decode=False,
            headers=_rule_headers(run, url),
        )
        if isinstance(result, Page):
            result = await _render(run, result)
    except FetchError as exc:
        if isinstance(exc, BadStatus):
            _note_refusal(run, exc)
        log.info(
            "article page not fetched", extra=fields(source=source.id, url=url, error=exc.reason)
        )
        return None
    if isinstance(result, NotModified):
        return None
    _count(report.statuses, result.status)
    report.pages_fetched += 1
    report.bytes_received += result.size
    fetched.more[url] = result
    return result


def _note_rule(report: RunReport, trace: RuleTrace | None) -> None:
    """Count a page a site rule was applied to, and the rule's directives that found nothing
    there (source health: a rule that stops matching is drift)."""
    if trace is None:
        return
    _count(report.rule_pages, trace.name)
    for directive in trace.missed:
        _count(report.rule_missed, f"{trace.name}: {directive}")


def _vet(run: _Run, fetched: _Fetched, article: Article) -> Article | None:
    """Count an extracted article's body and path; one under the source's floor is junk."""
    if article.method == FEED_SUMMARY:
        return article
    rule = article.site_rule
    _note_rule(run.report, rule)
    if rule is not None and rule.native_ad:
        reason = f"sponsored content (site rule {rule.name}: native_ad_clue)"
        _skip(run, fetched.link.url, reason, "native_ad", status=fetched.page.status)
        return None
    chars = len(article.body_text)
    run.report.body_lengths.append(chars)
    if chars < run.floor:
        reason = f"body too short ({chars} characters, under {run.floor})"
        return _junk(run, fetched, reason, "too_short", article)
    _count(run.report.methods, article.method)
    return article


def _junk(
    run: _Run, fetched: _Fetched, reason: str, kind: SkipKind, article: Article | None = None
) -> Article | None:
    """A page with no article worth publishing: the feed entry's summary stands in for it when
    there is one (marked as such), else it is skipped with its reason."""
    marker = challenge_marker(page_text(fetched.page))
    if marker is not None:
        _note_challenge(run.report, marker)
        reason, kind = f"challenge page ({marker!r})", "challenge"
    entry = fetched.link.entry
    if entry is not None and entry.summary.strip():
        _count(run.report.methods, FEED_SUMMARY)
        log.info(
            "feed summary published instead",
            extra=fields(source=run.source.id, url=fetched.link.url, reason=reason),
        )
        return summary_article(fetched.page.final_url, entry)
    method: Method | Literal[""] = article.method if article else ""
    chars = len(article.body_text) if article else 0
    status = fetched.page.status
    _skip(run, fetched.link.url, reason, kind, status=status, method=method, chars=chars)
    return None


FEED_SUMMARY: Method = "feed-summary"
FEED_SUMMARY_NOTE = "Summary from the site's feed: the full article could not be extracted."


def summary_article(url: str, entry: EntryInfo) -> Article:
    """An article made of a feed entry's own summary, with a note saying so."""
    text = entry.summary.strip()
    note = html.escape(FEED_SUMMARY_NOTE, quote=False)
    body = f"<p>{html.escape(text, quote=False)}</p>\n<p><em>{note}</em></p>"
    return Article(
        url=url,
        title=entry.title,
        body_html=body,
        body_text=text,
        authors=entry.authors,
        published=entry.published,
        modified=entry.modified,
        summary=text,
        categories=entry.categories,
        method=FEED_SUMMARY,
    )


def _trace(run: _Run, fetched: _Fetched, article: Article, decision: Decision, note: str) -> None:
    run.report.articles.append(
        ArticleTrace(
            fetched.link.url,
            fetched.page.status,
            article.method,
            len(article.body_text),
            decision,
            note,
        )
    )


@dataclass(frozen=True, slots=True)
class _Stored:
    """What storing an article decided, and a note (the item's GUID, or the twin's reason)."""

    decision: Decision
    note: str


def _store_article(run: _Run, fetched: _Fetched, article: Article, signature: Signature) -> _Stored:
    """Store a new article (its text's `signature` given), update an edited one, or skip a
    duplicate."""
    source, store, report = run.source, run.ctx.store, run.report
    guid = article_identity(article, fetched.page, run.drop_params)
    known = store.identity(source.id, guid)
    decision: Decision = "unchanged"
    note = guid
    if known is not None:
        decision = _refresh_item(run, fetched, article, known, signature)
    elif (twin := _find_twin(run, signature)) is not None:
        _skip(run, fetched.link.url, twin.reason, "duplicate")
        guid, note = twin.guid, twin.reason
        decision = "near-duplicate" if twin.reason.startswith("near") else "duplicate"
    else:
        item = build_item(
            source.id, guid, article, signature.content_hash, report.started, fetched.position
        )
        filtered = source.filters.judge(FilterSubject.of_article(article, guid))
        item = replace(item, simhash=signature.simhash, filtered=filtered)
        if store.add_item(item):
            if run.simhashes is not None:
                run.simhashes.added(item)
            if filtered is None:
                report.items_new += 1
                decision = "new"
            else:  # stored, so it never comes back as new; not published
                report.items_filtered += 1
                decision, note = "filtered", filtered
    if source.recheck is not None:  # rechecks ask for the item's URL: its GUID
        store.save_validators(source.id, guid, fetched.page.validators)
        store.mark_checked(source.id, guid, report.started)
    for url in (
        fetched.link.url,
        normalise_url(fetched.page.final_url, drop_params=run.drop_params),
    ):
        store.remember_url(source.id, url, guid)
    return _Stored(decision, note)


@dataclass(frozen=True, slots=True)
class _Twin:
    """A stored item with the same or nearly the same text as a new article."""

    guid: str
    reason: str


def _find_twin(run: _Run, signature: Signature) -> _Twin | None:
    """The item (or tombstone) a new article duplicates: the same text in this source, else a
    near-duplicate in this source or, when the operator enables it, in any source."""
    source, store, settings = run.source, run.ctx.store, run.ctx.settings
    same = store.guid_for_hash(source.id, signature.content_hash)
    if same is not None:
        return _Twin(same, f"same text as {same}")
    distance = settings.near_duplicate_distance
    if run.simhashes is not None and not settings.dedupe_across_sources:
        near = run.simhashes.closest(signature.simhash, distance)
    else:
        scope = None if settings.dedupe_across_sources else source.id
        near = store.near_duplicate(signature.simhash, distance, scope)
    if near is None:
        return None
    where = "" if near.source_id == source.id else f" in source {near.source_id}"
    return _Twin(near.guid, f"near-duplicate of {near.guid}{where} ({near.distance} bits)")


def _refresh_item(
    run: _Run, fetched: _Fetched, article: Article, known: Identity, signature: Signature
) -> Literal["updated", "unchanged"]:
    """A known article seen again: its item takes the new text when it changed materially;
    "updated" or "unchanged"."""
    source, store, report = run.source, run.ctx.store, run.report
    change = compare_texts(known.content_hash, signature.content_hash)
    if change is Change.REHASHED and not known.pruned:
        rehashed = store.rehash(source.id, known.guid, signature.content_hash, signature.simhash)
        if rehashed and run.simhashes is not None:
            run.simhashes.changed(known.guid, signature.simhash)
    stored = None if known.pruned else store.item(source.id, known.guid)
    if change is not Change.EDITED or stored is None:
        report.items_unchanged += 0 if fetched.recheck else 1
        return "unchanged"
    edited = edited_item(stored, article, signature, report.started)
    edited = replace(edited, filtered=source.filters.judge(FilterSubject.of_item(edited)))
    if not store.update_item(edited):
        return "unchanged"
    if run.simhashes is not None:
        run.simhashes.changed(known.guid, signature.simhash)
    report.items_updated += 1
    log.info("article updated", extra=fields(source=source.id, url=known.guid))
    return "updated"


def edited_item(stored: Item, article: Article, signature: Signature, seen: datetime) -> Item:
    """`stored` with an edited article's new content: same GUID, first-seen and (unless the page
    now gives one) published date; `updated` is the page's modified date when it is newer than
    the stored one, else the moment the edit was seen."""
    modified = _plausible(article.modified, seen)
    updated = modified if modified is not None and modified > stored.updated else seen
    published = _plausible(article.published, seen) or stored.published
    return replace(
        stored,
        title=article.title or stored.title,
        content_html=article.body_html,
        content_hash=signature.content_hash,
        simhash=signature.simhash,
        published=published,
        updated=max(updated, published),
        authors=article.authors or stored.authors,
        summary=article.summary,
        image=article.image,
        categories=article.categories or stored.categories,
    )


def article_identity(
    article: Article, page: Page, drop_params: Callable[[str], bool] | None = None
) -> str:
    """An item's GUID: the page's canonical URL when it declares one, else where we found it."""
    if article.canonical_url:
        canonical = normalise_url(article.canonical_url, drop_params=drop_params)
        if canonical.startswith(("http://", "https://")):
            return canonical
    return normalise_url(page.final_url, drop_params=drop_params)


def build_item(
    source_id: str, guid: str, article: Article, digest: str, run_started: datetime, position: int
) -> Item:
    """The item for a new article. Undated articles get their first-seen time; within one run
    those are spaced a millisecond apart in listing order, so the feed keeps the site's order."""
    first_seen = run_started - timedelta(milliseconds=position)
    published = _plausible(article.published, run_started) or first_seen
    updated = _plausible(article.modified, run_started) or published
    return Item(
        source_id=source_id,
        guid=guid,
        url=guid,
        title=article.title or guid,
        content_html=article.body_html,
        content_hash=digest,
        first_seen=first_seen,
        published=published,
        updated=max(updated, published),
        authors=article.authors,
        summary=article.summary,
        image=article.image,
        categories=article.categories,
    )


def _plausible(value: datetime | None, now: datetime) -> datetime | None:
    if value is None or value > now + FUTURE_TOLERANCE:
        return None
    return value.astimezone(UTC)


def feed_meta(source: Source, settings: Settings) -> FeedMeta:
    shown = redact_url(source.url)  # a feed is public: no token from the source's URL in it
    return FeedMeta(
        source_id=source.id,
        title=source.title,
        link=shown,
        description=source.description or f"Full-text feed of {shown}",
        language=source.language,
        self_base_url=settings.public_url,
        ttl_minutes=ttl_minutes(source),
        secrets=source.secret_values,
        hub=settings.websub_hub_url,
    )


def ttl_minutes(source: Source) -> int:
    """RSS `<ttl>`: how often the feed may change, from the source's schedule."""
    if source.every is not None:
        return max(1, math.ceil(source.every.total_seconds() / 60))
    trigger = CronTrigger.from_crontab(source.cron or "0 * * * *", timezone=UTC)
    first = trigger.get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=UTC))
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    if first is None or second is None:
        return 60
    minutes: float = (second - first).total_seconds() / 60
    return max(1, round(minutes))


def _skip(
    run: _Run,
    url: str,
    reason: str,
    kind: SkipKind = "other",
    *,
    status: int | None = None,
    method: Method | Literal[""] = "",
    chars: int = 0,
) -> None:
    run.report.skipped.append(Skip(url, reason, kind))
    if kind != "duplicate":  # a duplicate's trace is written with its store decision
        run.report.articles.append(ArticleTrace(url, status, method, chars, "skipped", reason))
    log.info("article skipped", extra=fields(source=run.source.id, url=url, reason=reason))


def _log_summary(report: RunReport, url: str, seconds: float, *, failures_before: int = 0) -> None:
    """One line a run. A failing source warns once, when it starts failing (its next failed runs
    are DEBUG lines, each with its count), and once when it recovers, with how many runs failed:
    ten thousand dead sites are not ten thousand warnings an hour."""
    summary = fields(
        source=report.source_id,
        url=url,
        outcome="ok" if report.ok else "failed",
        links=report.links_found,
        items_new=report.items_new,
        items_filtered=report.items_filtered,
        items_unchanged=report.items_unchanged,
        skipped=len(report.skipped),
        pages=report.pages_fetched,
        bytes=report.bytes_received,
        feeds_written=report.feeds_written,
        duration_ms=round(seconds * 1000),
    )
    if report.ok:
        log.info("run finished", extra=summary)
        if failures_before:
            log.warning(
                "source failing no more",
                extra=fields(source=report.source_id, url=url, failures=failures_before),
            )
        return
    summary["fields"]["error"] = report.error
    summary["fields"]["failures"] = failures_before + 1
    if failures_before:
        log.debug("run failed again", extra=summary)
    else:
        log.warning("run failed", extra=summary)
