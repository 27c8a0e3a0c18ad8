"""Is a source still working? A pure judgement over its recent runs (no I/O, no clock).

The pipeline turns each `RunReport` into a compact `RunHealth` row (`run_health`), keeps a
rolling history of them in the store, and asks `assess(history, thresholds)` after every run. A
source is **degraded** when one of the rules below holds for `bad_runs` consecutive runs that can
be judged by that rule (a run that read nothing, such as one whose index page failed, neither
breaks nor extends a streak), each with a sentence a person understands:

1. blocked: most responses are 403/429 or anti-bot challenge pages (no baseline needed);
2. listing: the listing (or the operator's `links` selector) yields no article links where
   earlier runs found some;
3. bodies: the median extracted body length falls far below the source's own recent median;
4. extraction: most articles fall back to the whole page, miss the operator's `body` selector,
   or are too short, where earlier runs did not;
5. pages: most article pages stop being HTML (another content type, empty bodies);
6. javascript: the listing page is an empty shell that scripts fill in (no text, a mount point,
   scripts): judged at once, on one run and with no baseline, since it will not change by itself.
7. site rules: a site rule's `body` (or `title`, `author`, `date`) finds nothing on most pages
   where it used to find something: the site changed and its rule file did not (yet).

A 304 for the index page confirms the page an earlier run read, so it repeats that reading's
listing facts (`run_health`): a listing that went empty stays judged run after run, instead of
the source staying as it was for as long as the site sends the same empty page.

Baselines come from the earlier runs in which the source was not degraded, so a broken source
never becomes its own new normal. Thresholds: `worker.config.HealthThresholds`.

Challenge pages are recognised by markers kept as data at the top of this module.
"""

from __future__ import annotations

import functools
import re
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, get_args

from worker.extract.htmlparse import parse_html
from worker.models import Method, RunHealth, RunReport, SkipKind

if TYPE_CHECKING:  # the config pulls in the scheduler: too heavy for an extractor process
    from worker.config import HealthThresholds

__all__ = [
    "CHALLENGE_MARKERS",
    "SKIP_KINDS",
    "Verdict",
    "assess",
    "body_floor",
    "challenge_marker",
    "run_health",
    "script_shell",
]

# -- anti-bot challenge pages ------------------------------------------------------------------
# Markers that name a bot-protection product or its challenge script: conclusive anywhere in the
# first CHALLENGE_SCAN_CHARS of a page (Cloudflare, Akamai, Imperva, PerimeterX, DataDome,
# DDoS-Guard, Sucuri, AWS WAF).
CHALLENGE_MARKERS = (
    "cf-chl",  # Cloudflare's challenge scripts and form ids (cf-chl-opt, cf-chl-widget)
    "challenge-platform",  # Cloudflare: /cdn-cgi/challenge-platform/
    "cf-browser-verification",
    "attention required! | cloudflare",
    "_incapsula_resource",  # Imperva
    "px-captcha",  # PerimeterX / HUMAN
    "captcha-delivery.com",  # DataDome
    "ddos-guard",
    "sucuri website firewall",
    "awswafintegration",  # AWS WAF challenge
    "/_sec/cp_challenge/",  # Akamai
)
# Phrases that also appear in real articles ("how CAPTCHAs work"), so they count only on a page
# with little text of its own (under SMALL_PAGE_TEXT_CHARS), as a challenge page is.
CHALLENGE_PHRASES = (
    "just a moment...",
    "checking your browser",
    "verify you are human",
    "verifying you are human",
    "are you a robot",
    "captcha",
    "enable javascript and cookies to continue",
    "please enable cookies",
    "access denied",
    "request unsuccessful",
)
NOSCRIPT_ONLY = "<noscript>-only body"  # the marker named for a page whose text is all noscript
CHALLENGE_SCAN_CHARS = 65536  # challenge pages are small; markers sit in their first kilobytes
SMALL_PAGE_TEXT_CHARS = 1000  # visible text of a challenge page: a line or two and a button

# -- pages that need JavaScript -------------------------------------------------------------------
# A client-side rendered page as the server sends it (create-react-app, Vue, Angular, a Next.js
# export): no text of its own, a mount point for the scripts (`<div id="root">`, `<app-root>`)
# with at most a wrapper or a spinner around it, and the scripts. A `<noscript>` plea ("You need
# to enable JavaScript") is part of the shell, not text.
SHELL_MAX_ELEMENTS = 3  # elements in <body> besides SHELL_INERT_TAGS: a mount point and a wrapper
SHELL_INERT_TAGS = frozenset({"script", "noscript", "style", "template", "link", "meta"})
# Tags outside scripts and styles, counted by string search before any parse: a shell's head of
# meta, link and preload tags and its mount point stay far below this, and a page over it (a
# real page, or `<div <div <div ...`, which lexbor parses in quadratic time) is no shell.
SHELL_MAX_TAGS = 256
_RAW_TEXT_TAGS = ("script", "style")  # their code may hold "<" that opens no tag

# Linear on any text: an element never closed runs to the end of the text (as in a browser), and
# a tag ends at its `>` or where another `<` starts, so no `<` scans the rest of the text again.
_HIDDEN = re.compile(r"<(script|style|template)\b.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_NOSCRIPT = re.compile(r"<noscript\b.*?(?:</noscript\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^<>]*>")

# -- why an article was skipped: a small fixed set (a metrics label, so keep it short) ----------
SKIP_KINDS: tuple[SkipKind, ...] = get_args(SkipKind)
# Extraction results that mean the page was not read as an article.
POOR_METHODS: tuple[Method, ...] = ("fallback", "feed-summary")
POOR_SKIPS: tuple[SkipKind, ...] = ("no_text", "too_short", "challenge")
NOT_HTML_SKIPS: tuple[SkipKind, ...] = ("not_html", "empty")
BLOCKING_STATUSES = frozenset({403, 429})
# A site rule's directives whose "found nothing" is drift, in the order a reason names them.
RULE_DIRECTIVES = ("body", "title", "author", "date")
# Floors below half the source's own median are never used: half, not all of it, because half
# a source's articles are shorter than its median.
# What a run's history row keeps for the source page, beyond what the health rules judge: its
# error and its most frequent skip reasons, shortened (50 rows a source, so a few KiB at most).
KEPT_TEXT_CHARS = 300
KEPT_SKIP_REASONS = 5
OWN_MEDIAN_SHARE = 0.5
MIN_FLOOR_BASELINE_RUNS = 3  # runs with bodies before a source's own median may lower its floor


@dataclass(frozen=True, slots=True)
class Verdict:
    state: str  # "ok" | "degraded"
    reasons: tuple[str, ...] = ()

    @property
    def degraded(self) -> bool:
        return self.state == "degraded"


def challenge_marker(html: str) -> str | None:
    """The anti-bot marker a page carries ("cf-chl", "captcha", `NOSCRIPT_ONLY`), or None."""
    head = html[:CHALLENGE_SCAN_CHARS]
    lowered = head.lower()
    for marker in CHALLENGE_MARKERS:
        if marker in lowered:
            return marker
    if len(html) > CHALLENGE_SCAN_CHARS:
        return None
    visible = " ".join(_TAG.sub(" ", _NOSCRIPT.sub(" ", _HIDDEN.sub(" ", head))).split())
    if len(visible) >= SMALL_PAGE_TEXT_CHARS:
        return None
    for phrase in CHALLENGE_PHRASES:
        if phrase in visible.lower():
            return phrase
    if not visible and _NOSCRIPT.search(head):
        return NOSCRIPT_ONLY
    return None


def script_shell(html: str) -> bool:
    """Whether a page is an empty shell its scripts fill in (see SHELL_MAX_ELEMENTS): a
    `<script>`, and a body with no text outside scripts and `<noscript>`, no links, and no more
    elements than a mount point and its wrapper."""
    lowered = html.lower()
    if "<script" not in lowered or _markup_tags(lowered, SHELL_MAX_TAGS) > SHELL_MAX_TAGS:
        return False  # most pages are ruled out without a parse
    tree = parse_html(
        html
    )  # bounded: lexbor is quadratic in nesting depth (worker.extract.htmlparse)
    body = tree.body
    if body is None or tree.css_first("script") is None:
        return False
    tree.strip_tags(list(SHELL_INERT_TAGS), recursive=True)  # with what they hold
    shell = list(body.traverse())[1:]  # the body's elements, the body itself left out
    return (
        len(shell) <= SHELL_MAX_ELEMENTS
        and not any(node.tag == "a" for node in shell)
        and not (body.text(deep=True) or "").strip()
    )


def _markup_tags(lowered: str, limit: int) -> int:
    """The "<" of a lower-cased page outside its script and style elements, counted until past
    `limit`, in one pass of plain string searches (each position is looked at a few times)."""
    count, at, end = 0, 0, len(lowered)
    starts = {tag: lowered.find(f"<{tag}") for tag in _RAW_TEXT_TAGS}
    while count <= limit:
        for tag, position in starts.items():
            if 0 <= position < at:  # inside an element passed over: look further on
                starts[tag] = lowered.find(f"<{tag}", at)
        start = min((p for p in starts.values() if p >= 0), default=end)
        count += lowered.count("<", at, start)
        if start == end:
            break
        tag = next(t for t, p in starts.items() if p == start)
        close = lowered.find(f"</{tag}", start)
        count += 1 if close < 0 else 2  # its start tag, and its end tag when there is one
        if close < 0:
            break  # raw text to the end of the page
        at = close + 2
    return count


def run_health(
    report: RunReport,
    *,
    selector: str | None = None,
    body_selector: str | None = None,
    history: Sequence[RunHealth] = (),
) -> RunHealth:
    """The compact row a run leaves in its source's history (the runs before it in `history`,
    oldest first). On a 304 for the index page, the listing facts of the reading it confirms."""
    lengths = report.body_lengths
    listing_read = not report.index_not_modified and bool(report.listing_kind)
    current = RunHealth(
        at=report.started,
        failed=not report.ok,
        listing_read=listing_read,
        links_found=report.links_found,
        selector=selector,
        selector_matched=report.selector_matched,
        items_new=report.items_new,
        items_updated=report.items_updated,
        articles=sum(report.methods.values()) + _count(report, "no_text", "too_short"),
        median_body_chars=round(statistics.median(lengths)) if lengths else None,
        methods=dict(report.methods),
        body_selector=body_selector,
        skipped=dict(Counter(skip.kind for skip in report.skipped)),
        statuses={str(status): n for status, n in sorted(report.statuses.items())},
        content_types=dict(report.content_types),
        responses=sum(report.statuses.values()),
        blocked=report.blocked,
        challenge=report.challenge,
        needs_javascript=report.needs_javascript,
        rule_pages=dict(report.rule_pages),
        rule_missed=dict(report.rule_missed),
        items_filtered=report.items_filtered,
        bytes_received=report.bytes_received,
        duration_ms=_duration_ms(report),
        error=_shortened(report.error or ""),
        skip_reasons=_top_reasons(report),
    )
    if report.index_not_modified and not report.error:
        return _confirmed(current, history)
    return current


def _duration_ms(report: RunReport) -> int | None:
    if report.finished is None:
        return None
    return max(0, round((report.finished - report.started).total_seconds() * 1000))


def _shortened(text: str) -> str:
    return text if len(text) <= KEPT_TEXT_CHARS else text[: KEPT_TEXT_CHARS - 1] + "…"


def _top_reasons(report: RunReport) -> dict[str, int]:
    """The run's most frequent skip reasons (each shortened): what the source page shows."""
    counts = Counter(_shortened(skip.reason) for skip in report.skipped)
    return dict(counts.most_common(KEPT_SKIP_REASONS))


def _confirmed(current: RunHealth, history: Sequence[RunHealth]) -> RunHealth:
    """A 304 run with the listing facts of the last reading of the page it confirms, when that
    reading used the same `links` selector (another selector would find other links)."""
    read = [h for h in history if h.listing_read and not h.failed]
    if not read or read[-1].selector != current.selector:
        return replace(current, not_modified=True)
    last = read[-1]
    return replace(
        current,
        listing_read=True,
        links_found=last.links_found,
        selector_matched=last.selector_matched,
        needs_javascript=last.needs_javascript,
        not_modified=True,
    )


def _count(report: RunReport, *kinds: str) -> int:
    return sum(1 for skip in report.skipped if skip.kind in kinds)


def body_floor(history: Sequence[RunHealth], thresholds: HealthThresholds) -> int:
    """The shortest body worth publishing: `min_body_chars`, or half the source's own recent
    median when that is lower (a source of short notes), once a few healthy runs show it."""
    medians = [
        h.median_body_chars for h in history if not h.degraded and h.median_body_chars is not None
    ][-thresholds.window :]
    if len(medians) < MIN_FLOOR_BASELINE_RUNS:
        return thresholds.min_body_chars
    return min(thresholds.min_body_chars, round(OWN_MEDIAN_SHARE * statistics.median(medians)))


def assess(history: Sequence[RunHealth], thresholds: HealthThresholds) -> Verdict:
    """The source's state after the last run of `history` (oldest first)."""
    reasons = [reason for rule in _RULES if (reason := rule(history, thresholds))]
    return Verdict("degraded" if reasons else "ok", tuple(reasons))


# -- the rules: each returns a reason, or None --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Streak:
    bad: list[RunHealth]  # the last `bad_runs` judged runs, all bad
    earlier: list[RunHealth]  # judged runs before them while the source was healthy (baseline)
    was_degraded: bool  # the source was degraded before the last run


def _streak(
    history: Sequence[RunHealth],
    thresholds: HealthThresholds,
    judged: Callable[[RunHealth], bool],
    bad: Callable[[RunHealth, list[RunHealth]], bool],
) -> _Streak | None:
    """The streak of bad runs that ends with the last judged run, or None. `bad` sees a run and
    the baseline runs before the streak."""
    runs = [h for h in history if judged(h)]
    n = thresholds.bad_runs
    if len(runs) < n:
        return None
    earlier = [h for h in runs[:-n] if not h.degraded][-thresholds.window :]
    last = runs[-n:]
    if not all(bad(h, earlier) for h in last):
        return None
    was_degraded = len(history) > 1 and history[-2].degraded
    return _Streak(last, earlier, was_degraded)


def _blocked(history: Sequence[RunHealth], thresholds: HealthThresholds) -> str | None:
    found = _streak(
        history,
        thresholds,
        lambda h: h.responses > 0,
        lambda h, _e: h.blocked > 0 and h.blocked >= thresholds.blocked_share * h.responses,
    )
    if found is None:
        return None
    statuses = sorted({s for h in found.bad for s in h.statuses if int(s) in BLOCKING_STATUSES})
    marker = next((h.challenge for h in reversed(found.bad) if h.challenge), "")
    what = [f"HTTP {' and '.join(statuses)}"] if statuses else []
    if marker:
        what.append(f"challenge pages ({marker!r})")
    blocked = sum(h.blocked for h in found.bad)
    responses = sum(h.responses for h in found.bad)
    return (
        f"the site is refusing the worker: {' with '.join(what) or 'refusals'} for {blocked} of"
        f" {responses} requests {_on_runs(len(found.bad))} (an anti-bot wall or a rate limit)"
    )


def _listing(history: Sequence[RunHealth], thresholds: HealthThresholds) -> str | None:
    def empty(h: RunHealth, earlier: list[RunHealth]) -> bool:
        found_before = any(e.links_found for e in earlier)
        return (h.links_found == 0 or h.selector_matched == 0) and found_before

    def empty_still(h: RunHealth, earlier: list[RunHealth]) -> bool:
        return h.links_found == 0 or h.selector_matched == 0

    judged = _listing_judged
    found = _streak(history, thresholds, judged, empty)
    if found is None:
        found = _streak(history, thresholds, judged, empty_still)
        if found is None or found.earlier or not found.was_degraded:
            return None
    last = found.bad[-1]
    if last.selector and last.selector_matched == 0:
        what = f"the listing selector {last.selector!r} matched nothing"
    else:
        what = "the listing yielded no article links"
    counts = [e.links_found for e in found.earlier if e.links_found]
    before = ""
    if counts:
        span = _span(counts[-5:])
        before = f"; the {_runs(len(counts[-5:]))} before found {span} links"
    return f"{what} {_on_runs(len(found.bad))}{before}"


def _listing_judged(h: RunHealth) -> bool:
    return h.listing_read and not h.failed


def _bodies(history: Sequence[RunHealth], thresholds: HealthThresholds) -> str | None:
    def collapsed(h: RunHealth, earlier: list[RunHealth]) -> bool:
        baseline = _median_of(earlier)
        return (
            baseline is not None
            and h.median_body_chars is not None
            and h.median_body_chars < thresholds.body_drop * baseline
        )

    found = _streak(history, thresholds, lambda h: h.median_body_chars is not None, collapsed)
    if found is None:
        return None
    now = round(statistics.median(h.median_body_chars or 0 for h in found.bad))
    return (
        f"article bodies collapsed: a median of {now:,} characters {_on_runs(len(found.bad))},"
        f" against {_median_of(found.earlier):,} over the {_runs(len(found.earlier))} before"
    )


def _median_of(runs: Sequence[RunHealth]) -> int | None:
    medians = [h.median_body_chars for h in runs if h.median_body_chars is not None]
    return round(statistics.median(medians)) if medians else None


def _poor(h: RunHealth) -> int:
    """Articles not read as articles: fell back, missed the body selector, too short, no text."""
    poor = sum(h.methods.get(m, 0) for m in POOR_METHODS)
    poor += sum(h.skipped.get(kind, 0) for kind in POOR_SKIPS)
    if h.body_selector:  # the selector missed these pages, whichever path read them instead
        poor += sum(n for m, n in h.methods.items() if m != "selector" and m not in POOR_METHODS)
    return poor


def _extraction(history: Sequence[RunHealth], thresholds: HealthThresholds) -> str | None:
    def judged(h: RunHealth) -> bool:
        return h.articles > 0

    def poor(h: RunHealth, earlier: list[RunHealth]) -> bool:
        fine_before = _share(earlier, _poor, _attempted) < thresholds.poor_share
        return bool(earlier) and fine_before and _poor(h) >= thresholds.poor_share * h.articles

    found = _streak(history, thresholds, judged, poor)
    if found is None:
        return None
    bad, total = sum(_poor(h) for h in found.bad), sum(h.articles for h in found.bad)
    before = f"{sum(_poor(h) for h in found.earlier)} of {sum(h.articles for h in found.earlier)}"
    last = found.bad[-1]
    if last.body_selector and last.methods.get("selector", 0) == 0:
        what = f"the body selector {last.body_selector!r} matched nothing on {bad} of {total} pages"
    else:
        what = (
            f"{bad} of {total} articles could not be read as articles (whole-page fallback,"
            " no text or too short)"
        )
    return f"{what} {_on_runs(len(found.bad))}; before: {before}"


def _attempted(h: RunHealth) -> int:
    return h.articles


def _share(
    runs: Sequence[RunHealth], part: Callable[[RunHealth], int], whole: Callable[[RunHealth], int]
) -> float:
    total = sum(whole(h) for h in runs)
    return sum(part(h) for h in runs) / total if total else 0.0


def _not_html(h: RunHealth) -> int:
    return sum(h.skipped.get(kind, 0) for kind in NOT_HTML_SKIPS)


def _pages(history: Sequence[RunHealth], thresholds: HealthThresholds) -> str | None:
    def received(h: RunHealth) -> int:
        return h.articles + _not_html(h)

    def bad(h: RunHealth, earlier: list[RunHealth]) -> bool:
        fine_before = _share(earlier, _not_html, received) < thresholds.poor_share
        return bool(earlier) and fine_before and _not_html(h) >= thresholds.poor_share * received(h)

    found = _streak(history, thresholds, lambda h: received(h) > 0, bad)
    if found is None:
        return None
    odd = sum(_not_html(h) for h in found.bad)
    total = sum(received(h) for h in found.bad)
    empty = sum(h.skipped.get("empty", 0) for h in found.bad)
    kinds = "empty" if empty == odd else "not HTML" if not empty else "not HTML or empty"
    return f"{odd} of {total} article pages were {kinds} {_on_runs(len(found.bad))}"


def _javascript(history: Sequence[RunHealth], thresholds: HealthThresholds) -> str | None:
    """At once: a shell does not fill itself in on the next run."""
    read = [h for h in history if _listing_judged(h)]
    if not read or not read[-1].needs_javascript:
        return None
    return (
        "the page is an empty shell that its scripts fill in (it needs JavaScript): set"
        ' render = "browser" on the source to render its pages in headless Chromium'
        " (docs/rendering.md), or point it at the site's feed or sitemap"
    )


def _site_rules(history: Sequence[RunHealth], thresholds: HealthThresholds) -> str | None:
    """A site rule whose directives stopped matching, for each rule of the last run."""
    if not history:
        return None
    found = [
        reason
        for name in sorted(history[-1].rule_pages)
        if (reason := _drift(history, thresholds, name))
    ]
    return "; ".join(found) or None


def _drift(history: Sequence[RunHealth], thresholds: HealthThresholds, name: str) -> str | None:
    def pages(h: RunHealth) -> int:
        return h.rule_pages.get(name, 0)

    def missed(h: RunHealth, directive: str) -> int:
        return h.rule_missed.get(f"{name}: {directive}", 0)

    def drifted(h: RunHealth, earlier: list[RunHealth]) -> list[str]:
        """The directives that missed on most of `h`'s pages, and on few before."""
        share = thresholds.poor_share
        return [
            d
            for d in RULE_DIRECTIVES
            if missed(h, d) >= share * pages(h)
            and missed(h, d) > 0
            and _share(earlier, functools.partial(missed, directive=d), pages) < share
        ]

    found = _streak(
        history, thresholds, lambda h: pages(h) > 0, lambda h, e: bool(e) and bool(drifted(h, e))
    )
    if found is None:
        return None
    lost = [d for d in RULE_DIRECTIVES if all(d in drifted(h, found.earlier) for h in found.bad)]
    if not lost:
        return None
    worst = lost[0]
    bad = sum(missed(h, worst) for h in found.bad)
    total = sum(pages(h) for h in found.bad)
    return (
        f"site rule for {name} no longer matches: {', '.join(lost)} ({worst} found nothing on"
        f" {bad} of {total} pages {_on_runs(len(found.bad))}; it matched before)"
    )


_RULES = (_blocked, _listing, _bodies, _extraction, _pages, _javascript, _site_rules)


# -- wording --------------------------------------------------------------------------------------


def _runs(n: int) -> str:
    return "run" if n == 1 else f"{n} runs"


def _on_runs(n: int) -> str:
    return "on the last run" if n == 1 else f"on the last {n} runs"


def _span(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}–{high}"
