"""/metrics at thousands of sources: per-source series only for the failing or degraded ones
(unless asked for), totals by state always, and a render that matches prometheus_client's."""

from __future__ import annotations

import tracemalloc
from datetime import timedelta
from pathlib import Path

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.test_metrics import STARTED, report, samples, value
from tests.test_serve import app_client, write_config
from worker.models import Skip
from worker.service.metrics import AUTO_PER_SOURCE_LIMIT, Metrics
from worker.store.state import SourceHealth, SourceState
from worker.web.serve import build_app


def many(count: int, **options: str) -> Metrics:
    """`count` sources that each ran once, fine; s1 and s2 failed, s3 is degraded."""
    ids = [f"s{n}" for n in range(count)]
    metrics = Metrics(ids, **options)  # type: ignore[arg-type]
    for source_id in ids:
        error = "index page: HTTP 503" if source_id in ("s1", "s2") else None
        health = "degraded" if source_id == "s3" else "ok"
        metrics.observe_run(report(source_id, error=error, health_state=health))
    return metrics


def per_source(metrics: Metrics) -> set[str]:
    """The sources that have series of their own."""
    return {dict(labels)["source"] for (_n, labels) in samples(metrics) if "source" in dict(labels)}


def test_many_sources_show_only_the_failing_and_degraded_ones() -> None:
    count = AUTO_PER_SOURCE_LIMIT + 100
    metrics = many(count)
    assert per_source(metrics) == {"s1", "s2", "s3"}
    assert value(metrics, "feedworker_runs_total", source="s1") == 1
    assert value(metrics, "feedworker_run_failures_total", source="s1") == 1
    assert value(metrics, "feedworker_source_degraded", source="s3") == 1
    assert value(metrics, "feedworker_runs_total", source="s9") is None
    # The totals cover every source, whatever is shown per source.
    assert value(metrics, "feedworker_sources", state="ok") == count - 3
    assert value(metrics, "feedworker_sources", state="failing") == 2
    assert value(metrics, "feedworker_sources", state="degraded") == 1
    assert value(metrics, "feedworker_sources", state="never") == 0
    assert value(metrics, "feedworker_all_runs_total", outcome="ok") == count - 2
    assert value(metrics, "feedworker_all_runs_total", outcome="failed") == 2
    assert value(metrics, "feedworker_all_pages_fetched_total") == 4 * count
    assert value(metrics, "feedworker_all_run_duration_seconds_count") == count


def test_series_do_not_grow_with_healthy_sources() -> None:
    small, large = many(AUTO_PER_SOURCE_LIMIT + 1), many(20 * AUTO_PER_SOURCE_LIMIT)
    assert len(samples(small)) == len(samples(large))
    assert len(large.render()) < 20_000  # bytes: all 10,000 sources' series were ~13 MB


def test_a_recovered_source_leaves_and_a_new_failure_joins() -> None:
    metrics = many(AUTO_PER_SOURCE_LIMIT + 1)
    metrics.observe_run(report("s1"))  # recovers
    metrics.observe_run(report("s9", error="index page: timed out"))
    assert per_source(metrics) == {"s2", "s3", "s9"}
    assert value(metrics, "feedworker_runs_total", source="s9") == 2  # its whole count
    assert value(metrics, "feedworker_sources", state="failing") == 2


def test_the_setting_picks_every_source_or_only_unhealthy_ones() -> None:
    everything = many(AUTO_PER_SOURCE_LIMIT + 1, per_source="all")
    assert len(per_source(everything)) == AUTO_PER_SOURCE_LIMIT + 1
    few = many(5, per_source="unhealthy")
    assert per_source(few) == {"s1", "s2", "s3"}
    assert per_source(many(5)) == {f"s{n}" for n in range(5)}  # a small config: as before


def test_never_run_sources_are_counted_and_seeding_marks_failing_ones() -> None:
    ids = [f"s{n}" for n in range(AUTO_PER_SOURCE_LIMIT + 1)]
    metrics = Metrics(ids)
    metrics.seed(
        [SourceState("s4", STARTED, None, "503", 3, 0, None)],
        [SourceHealth("s5", "degraded", ("why",), STARTED, STARTED)],
    )
    assert value(metrics, "feedworker_sources", state="never") == len(ids) - 2
    assert per_source(metrics) == {"s4", "s5"}
    assert value(metrics, "feedworker_run_failures_total", source="s4") == 0  # counters: zero


def test_render_matches_prometheus_clients_own_writer() -> None:
    metrics = Metrics(per_source="all")
    skipped = [Skip("https://x/1", "too short", "too_short"), Skip("https://x/2", "?", "odd")]
    metrics.observe_run(report("a", skipped=skipped, body_lengths=[300, 500]))
    metrics.observe_run(report("b", error="boom", finished=STARTED + timedelta(seconds=700)))
    metrics.observe_run(report("c", finished=None))
    metrics.observe_feed_response("a.rss", 200)
    metrics.observe_feed_response('we"ird\\name\n.atom', 304)
    text = metrics.render()
    assert text == generate_latest(metrics.registry)
    names = {family.name for family in text_string_to_metric_families(text.decode())}
    assert {"feedworker_runs", "feedworker_sources", "feedworker_all_feed_responses"} <= names


def test_the_app_applies_the_setting_and_forgets_removed_sources(tmp_path: Path) -> None:
    sources = "".join(f'[[source]]\nid = "s{n}"\nurl = "https://s{n}.example/"\n' for n in (1, 2))
    sources += '[[source]]\nid = "off"\nurl = "https://off.example/"\nenabled = false\n'
    metrics = Metrics()
    for source_id in ("s1", "s2", "gone"):
        metrics.observe_run(report(source_id))
    config = write_config(tmp_path, sources, 'metrics_per_source = "unhealthy"\n')
    text = app_client(build_app(config, status_reader=dict, metrics=metrics)).get("/metrics").text
    assert 'source="' not in text  # all healthy, and only unhealthy ones are shown
    assert 'feedworker_sources{state="ok"} 2.0' in text  # "gone" is no longer configured
    assert 'feedworker_sources{state="disabled"} 1.0' in text
    assert 'feedworker_all_runs_total{outcome="ok"} 3.0' in text  # but its run was done


def test_memory_per_source_is_small() -> None:
    """prometheus_client's labelled children held about 7 KB a source (70 MB at 10,000)."""
    ids = [f"source-{n:05d}" for n in range(10_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        metrics = Metrics(ids)
        for source_id in ids:
            metrics.observe_run(report(source_id))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert used < 10_000 * 1000, used  # under 1 KB a source
