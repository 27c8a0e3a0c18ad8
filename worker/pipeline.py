"""Run one source: the one place where the stages meet.

1. fetch the index page (conditional GET; a 304 skips straight to publishing);
2. discover the article links on it;
3. fetch the articles not seen before, at most `max_items` new ones per run;
4. extract each article, with the source's learnt template (recurring blocks) removed;
5. dedupe by canonical URL and by content hash, store new items;
6. render the source's feeds and write the files that changed;
7. record the run and log one summary line.

A failure of the index page fails the run (the feeds already published stay as they are); a
failure of one article skips that article with its reason.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from worker.config import Settings, Source
from worker.dedupe import content_hash
from worker.discover import discover_links
from worker.errors import ExtractError, FeedworkerError, FetchError
from worker.extract import ExtractOptions, extract, page_fingerprints
from worker.fetch import Fetcher
from worker.logs import fields, log
from worker.models import Article, Item, Link, NotModified, Page, RunReport, Skip
from worker.publish import FeedMeta, publish_feeds
from worker.store import Store
from worker.urls import host_key, normalise_url

# A block seen on this many distinct pages of a source is its template, not article text. Three,
# not two: an index page's teaser and its article page share the article's lead paragraph.
TEMPLATE_MIN_PAGES = 3
# Dates further ahead than this are a wrong clock or a scheduled post, not the article's date.
FUTURE_TOLERANCE = timedelta(days=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class RunContext:
    """What a run needs from the outside world, built once by the runner and shared."""

    settings: Settings
    fetcher: Fetcher
    store: Store
    clock: Callable[[], datetime] = utc_now


@dataclass(slots=True)
class _Fetched:
    link: Link
    page: Page
    position: int  # place on the listing (0 = first), to keep listing order among undated items


@dataclass(slots=True)
class _Run:
    """Mutable state of one run, kept off the function signatures."""

    source: Source
    ctx: RunContext
    report: RunReport
    fetched: list[_Fetched] = field(default_factory=list)


async def run_source(source: Source, ctx: RunContext) -> RunReport:
    """Run one source end to end and return its report; never raises for a site's faults."""
    started = ctx.clock()
    clock_start = time.perf_counter()
    run = _Run(source, ctx, RunReport(source.id, started=started))
    try:
        await _run(run)
    except FeedworkerError as exc:
        run.report.error = str(exc)
    except Exception as exc:  # a bug must not take the worker down; say so loudly
        log.exception("run crashed", extra=fields(source=source.id))
        run.report.error = f"internal error: {type(exc).__name__}: {exc}"
    run.report.finished = ctx.clock()
    ctx.store.record_run(run.report)
    _log_summary(run.report, time.perf_counter() - clock_start)
    return run.report


async def _run(run: _Run) -> None:
    source, ctx, report = run.source, run.ctx, run.report
    index = await _fetch_index(run)
    if index is not None:
        links = _discover(run, index)
        await _fetch_articles(run, links)
        _store_articles(run, index)
    items = ctx.store.feed_items(source.id, source.max_items)
    report.feeds_written = publish_feeds(
        ctx.settings.feeds_dir, feed_meta(source, ctx.settings), items, report.started
    )


async def _fetch_index(run: _Run) -> Page | None:
    """The index page, or None when it has not changed since the last run."""
    source, store = run.source, run.ctx.store
    try:
        result = await run.ctx.fetcher.fetch_page(
            source.url,
            validators=store.get_validators(source.url),
            trusted_host=host_key(source.url),
            allow_private=True,
            respect_robots=source.respect_robots,
        )
    except FetchError as exc:
        raise FetchError(exc.url, f"index page: {exc.reason}") from exc
    if isinstance(result, NotModified):
        run.report.index_not_modified = True
        return None
    run.report.pages_fetched += 1
    run.report.bytes_received += result.size
    return result


def _discover(run: _Run, index: Page) -> list[Link]:
    source, store, report = run.source, run.ctx.store, run.report
    found = discover_links(
        index.text,
        index.final_url,
        selector=source.links,
        include=source.include,
        exclude=source.exclude,
        limit=run.ctx.settings.max_links_per_run,
    )
    report.links_found = len(found.links)
    new: list[Link] = []
    for link in found.links:
        if store.known_url(source.id, link.url) is not None:
            report.items_unchanged += 1
        elif len(new) < source.max_items:
            new.append(link)
    return new


async def _fetch_articles(run: _Run, links: Sequence[Link]) -> None:
    """Fetch the new article pages concurrently (the fetcher enforces the limits per host)."""

    async def fetch_one(position: int, link: Link) -> None:
        try:
            result = await run.ctx.fetcher.fetch_page(
                link.url,
                allow_private=run.source.allow_private_networks,
                trusted_host=host_key(run.source.url),
                respect_robots=run.source.respect_robots,
            )
        except FetchError as exc:
            _skip(run, link.url, exc.reason)
            return
        if isinstance(result, NotModified):  # we sent no validators; a server's odd answer
            _skip(run, link.url, "answered 304 without a conditional request")
            return
        run.report.pages_fetched += 1
        run.report.bytes_received += result.size
        run.fetched.append(_Fetched(link, result, position))

    await asyncio.gather(*(fetch_one(i, link) for i, link in enumerate(links)))
    run.fetched.sort(key=lambda f: f.position)


def _store_articles(run: _Run, index: Page) -> None:
    """Extract, dedupe and store the fetched articles, learning the site's template on the way."""
    source, store, report = run.source, run.ctx.store, run.report
    store.save_validators(source.url, index.validators)
    store.record_blocks(source.id, index.final_url, page_fingerprints(index.text))
    known = store.boilerplate_blocks(source.id, TEMPLATE_MIN_PAGES)
    articles = [_extract(run, f, known) for f in run.fetched]
    # Blocks that recur across this run's pages are template too, even on a source's first run:
    # re-extract only the pages that hold such a newly learnt block.
    for fetched, article in zip(run.fetched, articles, strict=True):
        if article is not None:
            store.record_blocks(source.id, fetched.page.final_url, article.block_fingerprints)
    learnt = store.boilerplate_blocks(source.id, TEMPLATE_MIN_PAGES)
    fresh = learnt - known
    for i, (fetched, article) in enumerate(zip(run.fetched, articles, strict=True)):
        if article is not None and fresh.intersection(article.block_fingerprints):
            articles[i] = _extract(run, fetched, learnt)
    for fetched, article in zip(run.fetched, articles, strict=True):
        if article is not None:
            _store_article(run, fetched, article)
    report.skipped.sort(key=lambda s: s.url)


def _extract(run: _Run, fetched: _Fetched, boilerplate: frozenset[str]) -> Article | None:
    options = ExtractOptions(
        body=run.source.body, remove=tuple(run.source.remove), boilerplate=boilerplate
    )
    try:
        return extract(fetched.page.text, fetched.page.final_url, options)
    except ExtractError as exc:
        _skip(run, fetched.link.url, str(exc))
    except Exception as exc:  # an extractor bug costs one article, not the run
        log.exception("extract crashed", extra=fields(source=run.source.id, url=fetched.link.url))
        _skip(run, fetched.link.url, f"internal error: {type(exc).__name__}: {exc}")
    return None


def _store_article(run: _Run, fetched: _Fetched, article: Article) -> None:
    source, store, report = run.source, run.ctx.store, run.report
    guid = article_identity(article, fetched.page)
    seen_as = (fetched.link.url, normalise_url(fetched.page.final_url))
    if store.has_item(source.id, guid):
        report.items_unchanged += 1
    else:
        digest = content_hash(article.body_text)
        same_text = store.guid_for_hash(source.id, digest)
        if same_text is not None:
            _skip(run, fetched.link.url, f"same text as {same_text}")
            guid = same_text
        else:
            item = build_item(source.id, guid, article, digest, report.started, fetched.position)
            if store.add_item(item):
                report.items_new += 1
    for url in seen_as:
        store.remember_url(source.id, url, guid)


def article_identity(article: Article, page: Page) -> str:
    """An item's GUID: the page's canonical URL when it declares one, else where we found it."""
    if article.canonical_url:
        canonical = normalise_url(article.canonical_url)
        if canonical.startswith(("http://", "https://")):
            return canonical
    return normalise_url(page.final_url)


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
    return FeedMeta(
        source_id=source.id,
        title=source.title,
        link=source.url,
        description=source.description or f"Full-text feed of {source.url}",
        language=source.language,
        self_base_url=settings.public_url,
        ttl_minutes=ttl_minutes(source),
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
    return max(1, round((second - first).total_seconds() / 60))


def _skip(run: _Run, url: str, reason: str) -> None:
    run.report.skipped.append(Skip(url, reason))
    log.info("article skipped", extra=fields(source=run.source.id, url=url, reason=reason))


def _log_summary(report: RunReport, seconds: float) -> None:
    summary = fields(
        source=report.source_id,
        outcome="ok" if report.ok else "failed",
        links=report.links_found,
        items_new=report.items_new,
        items_unchanged=report.items_unchanged,
        skipped=len(report.skipped),
        pages=report.pages_fetched,
        bytes=report.bytes_received,
        feeds_written=report.feeds_written,
        duration_ms=round(seconds * 1000),
    )
    if report.ok:
        log.info("run finished", extra=summary)
    else:
        summary["fields"]["error"] = report.error
        log.warning("run failed", extra=summary)
