"""Prometheus metrics: what the runner did per source, and what the server answered per feed.

`Metrics` owns its own `CollectorRegistry` (never the process-global one), so several apps and
tests can each keep their own counts. The runner calls `observe_run` after every run; the server
calls `observe_feed_response` for every feed request and `render` for ``/metrics``. At start-up
the CLI calls `seed` with what the store remembers, so a restart does not report a degraded
source as healthy or forget when a source last succeeded.

Bounded series. Each source has about twenty series (counters, a gauge or two, a histogram of
eleven buckets); at 10,000 sources that was 200,000 series, 19 MB of text and seconds to render
on every scrape, and prometheus_client's labelled children held 70 MB. So the figures live
here in one small record per source, and a scrape shows:

- always, totals over every source: sources by state (`feedworker_sources{state}`), runs by
  outcome, pages, bytes, items, skips, run durations and feed responses (`feedworker_all_*`);
- per source (`{source="..."}`, the names of old), every source's series while there are at most
  `AUTO_PER_SOURCE_LIMIT` sources (`metrics_per_source = "auto"`, the default) or with
  `"all"`; otherwise only the sources that are failing or degraded, the ones worth a look. A
  source that recovers drops out; its counters start again at zero should it come back (a
  counter reset, which Prometheus' `rate()` expects).
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from worker.models import RunReport
from worker.service.health import SKIP_KINDS

if TYPE_CHECKING:  # only their fields are read: the store itself is never called from here
    from worker.store.state import SourceHealth, SourceState

__all__ = [
    "AUTO_PER_SOURCE_LIMIT",
    "CONTENT_TYPE",
    "PER_SOURCE_MODES",
    "RUN_DURATION_BUCKETS",
    "SOURCE_STATES",
    "Metrics",
    "PerSource",
]

# What `generate_latest` writes: the classic text format every Prometheus version scrapes.
# (prometheus_client's own CONTENT_TYPE_LATEST now says version=1.0.0, which Prometheus 2 lacks.)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A run is one index page plus up to max_links_per_run articles at per_host_delay apart: from
# under a second (index not modified) to several minutes (a first run of 100 articles).
RUN_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
# `metrics_per_source = "auto"` shows every source's series up to this many sources: about
# 10,000 series and 1 MB a scrape, well within what one Prometheus target should expose.
AUTO_PER_SOURCE_LIMIT = 500
PerSource = Literal["auto", "all", "unhealthy"]
PER_SOURCE_MODES: tuple[PerSource, ...] = ("auto", "all", "unhealthy")
# `feedworker_sources{state}`: the status page's states. "never": configured, not run yet.
SOURCE_STATES = ("ok", "failing", "degraded", "never", "disabled")
FEED_FORMATS = ("rss", "atom", "json")
# prometheus_client's own spelling of a sample value ("1.0", "+Inf", "1e+06"): typed here.
_float_text: Callable[[float], str] = floatToGoString


@dataclass(slots=True)
class _Durations:
    """A histogram's counts per bucket (not cumulative; the last is +Inf), sum and count."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(RUN_DURATION_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(RUN_DURATION_BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, count of observations at or below it), as the exposition wants them."""
        out, running = [], 0
        for bound, count in zip((*RUN_DURATION_BUCKETS, float("inf")), self.buckets, strict=True):
            running += count
            out.append((_le(bound), float(running)))
        return out


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client spells it: "2.5", "5.0", "+Inf"."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


@dataclass(slots=True)
class _Figures:
    """What is counted of one source (or of all of them together)."""

    runs: int = 0
    failures: int = 0
    pages_fetched: int = 0
    bytes_received: int = 0
    items_published: int = 0
    durations: _Durations | None = None  # made at the first timed run: most never-run sources
    skipped: dict[str, int] | None = None  # reason -> articles

    def count(self, report: RunReport) -> None:
        self.runs += 1
        self.failures += not report.ok
        self.pages_fetched += report.pages_fetched
        self.bytes_received += report.bytes_received
        self.items_published += report.items_new
        for skip in report.skipped:
            kind = skip.kind if skip.kind in SKIP_KINDS else "other"
            if self.skipped is None:
                self.skipped = {}
            self.skipped[kind] = self.skipped.get(kind, 0) + 1
        if report.finished is not None:
            if self.durations is None:
                self.durations = _Durations()
            self.durations.observe(max(0.0, (report.finished - report.started).total_seconds()))


@dataclass(slots=True)
class _Source(_Figures):
    """One source: its counts, and the gauges and state its last run (or the store) left."""

    ran: bool = False  # a run was seen or stored: not "never"
    disabled: bool = False  # `enabled = false` in the config: never scheduled
    failing: bool = False  # its last run failed
    degraded: bool = False
    last_success: float | None = None  # Unix time
    links_found: int | None = None
    median_body_chars: float | None = None

    @property
    def state(self) -> str:
        if self.disabled:
            return "disabled"
        if self.failing:
            return "failing"
        if self.degraded:
            return "degraded"
        return "ok" if self.ran else "never"


class Metrics:
    """The worker's counters per source, with totals; per-source series as `per_source` says."""

    def __init__(self, source_ids: Iterable[str] = (), *, per_source: PerSource = "auto") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.per_source: PerSource = per_source
        self._sources: dict[str, _Source] = {}
        self._all = _Figures()  # every run ever observed, whatever became of its source
        self._feeds: dict[tuple[str, str], int] = {}  # (file name, status) -> responses
        self.add_sources(source_ids)
        self.registry.register(_Collector(self))

    # -- the sources ---------------------------------------------------------------------------

    def add_sources(self, source_ids: Iterable[str]) -> None:
        """Count these sources in from now on (at zero: a source that never ran still shows)."""
        for source_id in source_ids:
            if source_id not in self._sources:
                self._sources[source_id] = _Source()

    def set_sources(self, source_ids: Iterable[str], disabled: Iterable[str] = ()) -> None:
        """Exactly these sources are configured now (after a reload), `disabled` among them: a
        removed source's series and state leave the exposition; the `feedworker_all_*` totals
        keep what it did."""
        wanted = dict.fromkeys(source_ids)
        self._sources = {sid: self._sources.get(sid) or _Source() for sid in wanted}
        off = set(disabled)
        for source_id, source in self._sources.items():
            source.disabled = source_id in off

    def seed(self, states: Iterable[SourceState], healths: Iterable[SourceHealth]) -> None:
        """Set the gauges the store remembers (`store.source_states()`, `source_healths()`):
        each source's last success, whether it is failing or degraded. Counters start at zero.
        (The app's `set_sources` then leaves out the stored sources no longer configured.)"""
        for state in states:
            source = self._sources.setdefault(state.source_id, _Source())
            source.ran = source.ran or state.last_run is not None
            source.failing = state.consecutive_failures > 0
            if state.last_success is not None:
                source.last_success = state.last_success.timestamp()
        for health in healths:
            source = self._sources.setdefault(health.source_id, _Source())
            source.degraded = health.state == "degraded"

    def observe_run(self, report: RunReport) -> None:
        """Count one finished run of one source."""
        self.add_sources([report.source_id])  # a source added since start-up
        source = self._sources[report.source_id]
        source.count(report)
        self._all.count(report)
        source.ran = True
        source.failing = not report.ok
        if report.ok and report.finished is not None:
            source.last_success = report.finished.timestamp()
        if report.health_state:
            source.degraded = report.health_state == "degraded"
        if report.listing_kind and not report.index_not_modified:
            source.links_found = report.links_found
        if report.body_lengths:
            source.median_body_chars = float(statistics.median(report.body_lengths))

    def observe_feed_response(self, feed: str, status: int) -> None:
        """Count one answer to a feed request; `feed` is a known file name such as ``a.rss``."""
        key = (feed, str(status))
        self._feeds[key] = self._feeds.get(key, 0) + 1

    # -- the exposition ------------------------------------------------------------------------

    def every_source_shown(self) -> bool:
        """Whether every source gets its own series (else only failing or degraded ones)."""
        if self.per_source == "auto":
            return len(self._sources) <= AUTO_PER_SOURCE_LIMIT
        return self.per_source == "all"

    def shown_sources(self) -> list[tuple[str, _Source]]:
        """The sources with series of their own in this scrape, by id."""
        every = self.every_source_shown()
        return sorted(
            (sid, s) for sid, s in self._sources.items() if every or s.failing or s.degraded
        )

    def states(self) -> dict[str, int]:
        """Configured sources by state (`SOURCE_STATES`)."""
        counts = dict.fromkeys(SOURCE_STATES, 0)
        for source in self._sources.values():
            counts[source.state] += 1
        return counts

    def render(self) -> bytes:
        """Everything in the Prometheus text format (`CONTENT_TYPE`): what `generate_latest`
        writes for the registry, written directly (its per-label checks and escapes took 6 s
        for the 200,000 series of 10,000 sources with `metrics_per_source = "all"`)."""
        return exposition(self.families())

    def families(self) -> Iterator[Metric]:
        """The metric families of one scrape: totals first, then the shown sources'."""
        yield from self._totals()
        shown = self.shown_sources()
        yield from _per_source(shown)
        if self.every_source_shown():
            responses = CounterMetricFamily(
                "feedworker_feed_responses",
                "Feed file requests answered, by feed file and HTTP status.",
                labels=["feed", "status"],
            )
            for (feed, status), count in self._feeds.items():
                responses.add_metric([feed, status], count)
            yield responses

    def _totals(self) -> Iterator[Metric]:
        states = GaugeMetricFamily(
            "feedworker_sources",
            "Configured sources by state: ok, failing (last run failed), degraded, never (not"
            " run yet), disabled.",
            labels=["state"],
        )
        for state, count in self.states().items():
            states.add_metric([state], count)
        yield states
        figures = self._all
        runs = CounterMetricFamily(
            "feedworker_all_runs", "Source runs finished, all sources.", labels=["outcome"]
        )
        runs.add_metric(["ok"], figures.runs - figures.failures)
        runs.add_metric(["failed"], figures.failures)
        yield runs
        yield _counter("all_pages_fetched", "Pages fetched, all sources.", figures.pages_fetched)
        yield _counter("all_bytes_received", "Bytes received, all sources.", figures.bytes_received)
        yield _counter(
            "all_items_published", "New items published, all sources.", figures.items_published
        )
        skipped = CounterMetricFamily(
            "feedworker_all_articles_skipped",
            "Articles left out of the feeds, by reason, all sources.",
            labels=["reason"],
        )
        for reason, count in sorted((figures.skipped or {}).items()):
            skipped.add_metric([reason], count)
        yield skipped
        durations = HistogramMetricFamily(
            "feedworker_all_run_duration_seconds", "Wall time of source runs, all sources."
        )
        timed = figures.durations or _Durations()
        durations.add_metric([], timed.cumulative(), timed.total)
        yield durations
        responses = CounterMetricFamily(
            "feedworker_all_feed_responses",
            "Feed file requests answered, by format and HTTP status.",
            labels=["format", "status"],
        )
        by_format: dict[tuple[str, str], int] = {}
        for (feed, status), count in self._feeds.items():
            ext = feed.rpartition(".")[2]
            key = (ext if ext in FEED_FORMATS else "other", status)
            by_format[key] = by_format.get(key, 0) + count
        for (ext, status), count in sorted(by_format.items()):
            responses.add_metric([ext, status], count)
        yield responses


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"feedworker_{name}", documentation, value=value)


def _per_source(shown: list[tuple[str, _Source]]) -> Iterator[Metric]:
    """The per-source families, with the names and labels they have always had."""
    labels = ["source"]
    counters: tuple[tuple[str, str, Callable[[_Source], float]], ...] = (
        ("runs", "Source runs finished.", lambda s: s.runs),
        ("run_failures", "Source runs that failed.", lambda s: s.failures),
        ("pages_fetched", "Pages fetched (index and articles).", lambda s: s.pages_fetched),
        (
            "bytes_received",
            "Bytes received on the wire, before decompression.",
            lambda s: s.bytes_received,
        ),
        ("items_published", "New items added to the source's feed.", lambda s: s.items_published),
    )
    for name, documentation, read in counters:
        family = CounterMetricFamily(f"feedworker_{name}", documentation, labels=labels)
        for source_id, source in shown:
            family.add_metric([source_id], read(source))
        yield family
    durations = HistogramMetricFamily(
        "feedworker_run_duration_seconds", "Wall time of a source run.", labels=labels
    )
    for source_id, source in shown:
        timed = source.durations or _Durations()
        durations.add_metric([source_id], timed.cumulative(), timed.total)
    yield durations
    gauges: tuple[tuple[str, str, Callable[[_Source], float | None]], ...] = (
        (
            "last_success_timestamp_seconds",
            "Unix time the source last finished a run without error.",
            lambda s: s.last_success,
        ),
        (
            "source_degraded",
            "1 while the source is degraded (see the status page for why), else 0.",
            lambda s: float(s.degraded),
        ),
        (
            "links_found",
            "Article links the source's listing yielded on its last run that read it.",
            lambda s: s.links_found,
        ),
        (
            "median_body_chars",
            "Median extracted body length (characters) on the source's last run with articles.",
            lambda s: s.median_body_chars,
        ),
    )
    for name, documentation, read_gauge in gauges:
        gauge = GaugeMetricFamily(f"feedworker_{name}", documentation, labels=labels)
        for source_id, source in shown:
            value = read_gauge(source)
            if value is not None:
                gauge.add_metric([source_id], value)
        yield gauge
    skipped = CounterMetricFamily(
        "feedworker_articles_skipped",
        "Articles left out of the feed, by reason (worker.service.health.SKIP_KINDS).",
        labels=["source", "reason"],
    )
    for source_id, source in shown:
        for reason, count in (source.skipped or {}).items():
            skipped.add_metric([source_id, reason], count)
    yield skipped


def exposition(families: Iterable[Metric]) -> bytes:
    """Families in the classic text format, as `generate_latest` writes them. Label names here
    are fixed identifiers; values are escaped as the format says."""
    lines: list[str] = []
    for family in families:
        name = family.name + "_total" if family.type == "counter" else family.name
        help_text = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {family.type}")
        for sample in family.samples:
            value = _float_text(sample.value)
            if sample.labels:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
                lines.append(f"{sample.name}{{{labels}}} {value}")
            else:
                lines.append(f"{sample.name} {value}")
    lines.append("")
    return "\n".join(lines).encode()


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


class _Collector:
    """The registry's view of a `Metrics`: its families, built at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()

    def describe(self) -> list[Metric]:
        return []  # names vary with the sources shown: nothing to check for clashes up front
