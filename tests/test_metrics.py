"""Metrics: a run is counted per source, in a registry of the app's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from worker.models import RunReport
from worker.service.metrics import Metrics
from worker.store.state import SourceHealth, SourceState

STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed back, by (name, sorted labels)."""
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def report(source_id: str = "blog", **changes: object) -> RunReport:
    fields: dict[str, object] = {
        "source_id": source_id,
        "started": STARTED,
        "finished": STARTED + timedelta(seconds=3),
        "pages_fetched": 4,
        "bytes_received": 12345,
        "items_new": 2,
    }
    fields.update(changes)
    return RunReport(**fields)  # type: ignore[arg-type]


def test_observe_run_counts_one_run() -> None:
    metrics = Metrics()
    metrics.observe_run(report())
    assert value(metrics, "feedworker_runs_total", source="blog") == 1
    assert value(metrics, "feedworker_run_failures_total", source="blog") == 0
    assert value(metrics, "feedworker_pages_fetched_total", source="blog") == 4
    assert value(metrics, "feedworker_bytes_received_total", source="blog") == 12345
    assert value(metrics, "feedworker_items_published_total", source="blog") == 2
    assert value(metrics, "feedworker_run_duration_seconds_count", source="blog") == 1
    assert value(metrics, "feedworker_run_duration_seconds_sum", source="blog") == 3
    assert value(metrics, "feedworker_run_duration_seconds_bucket", source="blog", le="2.5") == 0
    assert value(metrics, "feedworker_run_duration_seconds_bucket", source="blog", le="5.0") == 1
    finished = (STARTED + timedelta(seconds=3)).timestamp()
    assert value(metrics, "feedworker_last_success_timestamp_seconds", source="blog") == finished


def test_failed_run_counts_a_failure_and_keeps_last_success() -> None:
    metrics = Metrics()
    metrics.observe_run(report())
    metrics.observe_run(report(error="index page: 503", items_new=0))
    assert value(metrics, "feedworker_runs_total", source="blog") == 2
    assert value(metrics, "feedworker_run_failures_total", source="blog") == 1
    assert value(metrics, "feedworker_items_published_total", source="blog") == 2
    finished = (STARTED + timedelta(seconds=3)).timestamp()
    assert value(metrics, "feedworker_last_success_timestamp_seconds", source="blog") == finished


def test_unfinished_report_counts_the_run_without_a_duration() -> None:
    metrics = Metrics()
    metrics.observe_run(report(finished=None))
    assert value(metrics, "feedworker_runs_total", source="blog") == 1
    assert value(metrics, "feedworker_run_duration_seconds_count", source="blog") == 0


def test_sources_are_counted_apart() -> None:
    metrics = Metrics()
    metrics.observe_run(report("a"))
    metrics.observe_run(report("a"))
    metrics.observe_run(report("b"))
    assert value(metrics, "feedworker_runs_total", source="a") == 2
    assert value(metrics, "feedworker_runs_total", source="b") == 1


def test_configured_sources_show_at_zero_before_any_run() -> None:
    metrics = Metrics(["quiet"])
    assert value(metrics, "feedworker_runs_total", source="quiet") == 0
    assert value(metrics, "feedworker_run_failures_total", source="quiet") == 0
    assert value(metrics, "feedworker_run_duration_seconds_count", source="quiet") == 0


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe_run(report())
    assert value(first, "feedworker_runs_total", source="blog") == 1
    assert value(second, "feedworker_runs_total", source="blog") is None


def test_feed_responses_by_file_and_status() -> None:
    metrics = Metrics()
    metrics.observe_feed_response("blog.rss", 200)
    metrics.observe_feed_response("blog.rss", 304)
    metrics.observe_feed_response("blog.rss", 304)
    assert value(metrics, "feedworker_feed_responses_total", feed="blog.rss", status="200") == 1
    assert value(metrics, "feedworker_feed_responses_total", feed="blog.rss", status="304") == 2


def test_seed_starts_the_gauges_from_the_stored_state() -> None:
    states = [
        SourceState("x", STARTED, STARTED, None, 0, 1, None),
        SourceState("y", STARTED, None, "503", 2, 0, None),  # never succeeded: no series
    ]
    healths = [
        SourceHealth("x", "degraded", ("why",), STARTED, STARTED),
        SourceHealth("y", "ok", (), STARTED, STARTED),
    ]
    metrics = Metrics(["x", "y"])
    metrics.seed(states, healths)
    assert value(metrics, "feedworker_source_degraded", source="x") == 1.0
    assert value(metrics, "feedworker_source_degraded", source="y") == 0.0
    last = "feedworker_last_success_timestamp_seconds"
    assert value(metrics, last, source="x") == STARTED.timestamp()
    assert value(metrics, last, source="y") is None
    assert value(metrics, "feedworker_runs_total", source="x") == 0.0
