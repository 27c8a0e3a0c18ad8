"""Where a degraded source shows: the status page (from the store), `feedworker status` and
`/metrics`, after real runs of a site that broke (tests/test_drift_e2e.py's `DriftSite`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.backend import state_env
from tests.test_drift_e2e import DriftSite, Harness
from tests.test_serve import app_client
from worker.cli import main, seed_metrics
from worker.config import load_config
from worker.service.metrics import Metrics
from worker.store.state import Store
from worker.web.serve import build_app, store_status_reader

REASON_START = "the listing selector 'ul.posts h2 a' matched nothing on the last 2 runs"


class NoHook:
    url = "http://127.0.0.1:9/hook"


@pytest.fixture
def degraded(tmp_path: Path) -> Harness:
    site = DriftSite()
    for n in (1, 2):
        site.add(n)
    h = Harness(tmp_path, site, NoHook())  # type: ignore[arg-type]
    h.run()
    site.listing_class = "stories"
    h.run()
    assert h.run().health_state == "degraded"
    return h


def test_status_page_shows_the_degraded_state_and_reason(degraded: Harness) -> None:
    config = load_config(degraded.config_dir, env=state_env())
    store = Store.open(config.settings.state_url)
    try:
        reader = store_status_reader(config, store)
        with app_client(
            build_app(config, status_reader=reader, metrics=degraded.metrics)
        ) as client:
            page = client.get("/").text
            metrics = client.get("/metrics").text
    finally:
        store.close()
    assert "1 sources, 0 failing, 1 degraded" in page
    assert 'class="src degraded"' in page
    assert "<strong>Degraded since" in page
    assert REASON_START.replace("'", "&#x27;") in page
    assert "feedworker try drift" in page
    assert 'feedworker_source_degraded{source="drift"} 1.0' in metrics
    assert 'feedworker_links_found{source="drift"} 0.0' in metrics


def test_metrics_after_a_restart_seeded_from_the_store(degraded: Harness) -> None:
    """A fresh process's metrics start from the store: still degraded, last success kept."""
    config = load_config(degraded.config_dir, env=state_env())
    store = Store.open(config.settings.state_url)
    try:
        metrics = Metrics([s.id for s in config.sources])
        seed_metrics(metrics, store)
        last_success = store.source_state("drift").last_success  # type: ignore[union-attr]
    finally:
        store.close()
    text = metrics.render().decode()
    assert 'feedworker_source_degraded{source="drift"} 1.0' in text
    assert 'feedworker_runs_total{source="drift"} 0.0' in text  # counters start at zero
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert last_success is not None
    assert samples["feedworker_last_success_timestamp_seconds"] == last_success.timestamp()


def test_status_command_shows_health(degraded: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--config", str(degraded.config_dir)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["source", "outcome", "items", "fails", "health"]
    assert table[1].split()[:5] == ["drift", "ok", "2", "0", "degraded"]
    assert REASON_START in table[1]
    assert main(["status", "--json", "--config", str(degraded.config_dir)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["health"] == "degraded" and row["health_reasons"][0].startswith(REASON_START)
    assert row["health_since"] is not None


def test_webhook_message_shape() -> None:
    from worker.models import RunReport
    from worker.service.webhook import transition_message

    report = RunReport("drift", started=datetime(2026, 1, 1, tzinfo=UTC))
    report.health_state, report.health_reasons = "degraded", ("why",)
    assert transition_message(report) == {
        "source": "drift",
        "state": "degraded",
        "reasons": ["why"],
        "at": "2026-01-01T00:00:00+00:00",
    }
