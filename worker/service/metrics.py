"""Prometheus metrics: what the runner did per source, and what the server answered per feed.

`Metrics` owns its own `CollectorRegistry` (never the process-global one), so several apps and
tests can each keep their own counts. The runner calls `observe_run` after every run; the server
calls `observe_feed_response` for every feed request and `render` for ``/metrics``. At start-up
the CLI calls `seed` with what the store remembers, so a restart does not report a degraded
source as healthy or forget when a source last succeeded.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from worker.models import RunReport
from worker.service.health import SKIP_KINDS

if TYPE_CHECKING:  # only their fields are read: the store itself is never called from here
    from worker.store.state import SourceHealth, SourceState

__all__ = ["CONTENT_TYPE", "RUN_DURATION_BUCKETS", "Metrics"]

# What `generate_latest` writes: the classic text format every Prometheus version scrapes.
# (prometheus_client's own CONTENT_TYPE_LATEST now says version=1.0.0, which Prometheus 2 lacks.)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A run is one index page plus up to max_links_per_run articles at per_host_delay apart: from
# under a second (index not modified) to several minutes (a first run of 100 articles).
RUN_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """The worker's counters, each labelled by source (or by feed file for served responses)."""

    def __init__(self, source_ids: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["source"]
        # prometheus_client appends "_total" to counter names when exposing them.
        self.runs = Counter(
            "feedworker_runs", "Source runs finished.", labels, registry=self.registry
        )
        self.failures = Counter(
            "feedworker_run_failures", "Source runs that failed.", labels, registry=self.registry
        )
        self.pages_fetched = Counter(
            "feedworker_pages_fetched",
            "Pages fetched (index and articles).",
            labels,
            registry=self.registry,
        )
        self.bytes_received = Counter(
            "feedworker_bytes_received",
            "Bytes received on the wire, before decompression.",
            labels,
            registry=self.registry,
        )
        self.items_published = Counter(
            "feedworker_items_published",
            "New items added to the source's feed.",
            labels,
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "feedworker_run_duration_seconds",
            "Wall time of a source run.",
            labels,
            buckets=RUN_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            "feedworker_last_success_timestamp_seconds",
            "Unix time the source last finished a run without error.",
            labels,
            registry=self.registry,
        )
        self.degraded = Gauge(
            "feedworker_source_degraded",
            "1 while the source is degraded (see the status page for why), else 0.",
            labels,
            registry=self.registry,
        )
        self.links_found = Gauge(
            "feedworker_links_found",
            "Article links the source's listing yielded on its last run that read it.",
            labels,
            registry=self.registry,
        )
        self.median_body_chars = Gauge(
            "feedworker_median_body_chars",
            "Median extracted body length (characters) on the source's last run with articles.",
            labels,
            registry=self.registry,
        )
        self.articles_skipped = Counter(
            "feedworker_articles_skipped",
            "Articles left out of the feed, by reason (worker.service.health.SKIP_KINDS).",
            ["source", "reason"],
            registry=self.registry,
        )
        self.feed_responses = Counter(
            "feedworker_feed_responses",
            "Feed file requests answered, by feed file and HTTP status.",
            ["feed", "status"],
            registry=self.registry,
        )
        self.add_sources(source_ids)

    def add_sources(self, source_ids: Iterable[str]) -> None:
        """Create every per-source series at zero, so a source that never ran still shows."""
        per_source = (
            self.runs,
            self.failures,
            self.pages_fetched,
            self.bytes_received,
            self.items_published,
            self.run_duration,
            self.degraded,
        )
        for source_id in source_ids:
            for metric in per_source:
                metric.labels(source=source_id)

    def seed(self, states: Iterable[SourceState], healths: Iterable[SourceHealth]) -> None:
        """Set the gauges the store remembers (`store.source_states()`, `source_healths()`):
        each source's last success and whether it is degraded. Counters start at zero."""
        for state in states:
            if state.last_success is not None:
                last = self.last_success.labels(source=state.source_id)
                last.set(state.last_success.timestamp())
        for health in healths:
            self.degraded.labels(source=health.source_id).set(health.state == "degraded")

    def observe_run(self, report: RunReport) -> None:
        """Count one finished run of one source."""
        source = report.source_id
        self.add_sources([source])  # a source added since start-up gets all its series too
        self.runs.labels(source=source).inc()
        if not report.ok:
            self.failures.labels(source=source).inc()
        self.pages_fetched.labels(source=source).inc(report.pages_fetched)
        self.bytes_received.labels(source=source).inc(report.bytes_received)
        self.items_published.labels(source=source).inc(report.items_new)
        self._observe_health(report)
        if report.finished is not None:
            seconds = max(0.0, (report.finished - report.started).total_seconds())
            self.run_duration.labels(source=source).observe(seconds)
            if report.ok:
                self.last_success.labels(source=source).set(report.finished.timestamp())

    def _observe_health(self, report: RunReport) -> None:
        source = report.source_id
        if report.health_state:
            self.degraded.labels(source=source).set(report.health_state == "degraded")
        if report.listing_kind and not report.index_not_modified:
            self.links_found.labels(source=source).set(report.links_found)
        if report.body_lengths:
            self.median_body_chars.labels(source=source).set(statistics.median(report.body_lengths))
        for skip in report.skipped:
            kind = skip.kind if skip.kind in SKIP_KINDS else "other"
            self.articles_skipped.labels(source=source, reason=kind).inc()

    def observe_feed_response(self, feed: str, status: int) -> None:
        """Count one answer to a feed request; `feed` is a known file name such as ``a.rss``."""
        self.feed_responses.labels(feed=feed, status=str(status)).inc()

    def render(self) -> bytes:
        """Everything in the Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
