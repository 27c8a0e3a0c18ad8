"""The status page at thousands of sources: paged, failing and degraded first, filtered by id,
state and host, reading every source's state cheaply and only its page's sources in full."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.test_serve import app_client, item, write_config
from worker.config import Config
from worker.models import RunReport
from worker.store.db import Database
from worker.store.state import Store
from worker.web.serve import build_app, store_status_reader
from worker.web.statuspage import DEFAULT_PER_PAGE, StatusQuery, select_sources

RAN = datetime(2026, 3, 1, 12, tzinfo=UTC)


def sources_toml(count: int, disabled: tuple[int, ...] = ()) -> str:
    """`count` sources s0000…, on three hosts: a.example, news.b.example and c.example."""
    hosts = ("a.example", "news.b.example", "c.example")
    return "".join(
        f'[[source]]\nid = "s{n:04d}"\nurl = "https://{hosts[n % 3]}/{n}/"\n'
        + ("enabled = false\n" if n in disabled else "")
        for n in range(count)
    )


FAILING = (7, 150, 333)
DEGRADED = (12, 299)


def fill(store: Store, count: int) -> None:
    """Every source ran once; FAILING failed twice, DEGRADED are degraded; items for a few."""
    for n in range(count):
        store.record_run(RunReport(f"s{n:04d}", RAN, RAN + timedelta(seconds=1)))
    for n in FAILING:
        failed = RunReport(f"s{n:04d}", RAN, RAN, error="index page: HTTP 503")
        store.record_run(failed)
        store.record_run(failed)
    for n in DEGRADED:
        store.set_health(f"s{n:04d}", "degraded", ("links found fell to 0",), RAN)
    for n in (0, 150):
        store.add_item(item(f"s{n:04d}", f"https://x.example/{n}/1", RAN))


@dataclass
class CountingDatabase:
    """The store's connection, counting statements and the rows they returned."""

    inner: Database
    statements: list[tuple[str, int]] = field(default_factory=list)

    def execute(self, sql: str, params: Any = ()) -> Any:
        cursor = self.inner.execute(sql, params)
        counting = self

        class Counted:
            rowcount = cursor.rowcount

            def fetchone(self) -> Any:
                row = cursor.fetchone()
                counting.statements.append((sql, int(row is not None)))
                return row

            def fetchall(self) -> list[Any]:
                rows = cursor.fetchall()
                counting.statements.append((sql, len(rows)))
                return rows

        return Counted()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Paged:
    config: Config
    store: Store
    db: CountingDatabase

    def page(self, query: str = "") -> str:
        self.db.statements.clear()
        app = build_app(self.config, status_reader=store_status_reader(self.config, self.store))
        response = app_client(app).get("/" + query)
        assert response.status_code == 200
        return response.text


def paged(tmp_path: Path, count: int) -> Iterator[Paged]:
    config = write_config(tmp_path, sources_toml(count, disabled=(5,)))
    store = Store.open(config.settings.state_url)
    try:
        fill(store, count)
        db = CountingDatabase(store._db)
        store._db = db  # type: ignore[assignment]
        yield Paged(config, store, db)
    finally:
        store.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Paged]:
    yield from paged(tmp_path, 400)


def shown_ids(page: str) -> list[str]:
    return re.findall(r'id="source-([a-z0-9_-]+)"', page)


def test_first_page_shows_failing_then_degraded_then_the_rest(site: Paged) -> None:
    page = site.page()
    ids = shown_ids(page)
    assert len(ids) == DEFAULT_PER_PAGE
    assert ids[:5] == ["s0007", "s0150", "s0333", "s0012", "s0299"]
    assert ids[5:8] == ["s0000", "s0001", "s0002"]  # then the config's order (s0005 disabled)
    assert "400 sources, 3 failing, 2 degraded" in page
    assert "showing 1–100 of 400 sources" in page and "page 1 of 4" in page
    assert 'href="?page=2" rel="next"' in page
    assert "<dt>Items</dt><dd>1</dd>" in page  # read for the page's sources


def test_later_pages_and_the_last_one(site: Paged) -> None:
    second = shown_ids(site.page("?page=2"))
    # Page 1 held the 5 unhealthy sources and 95 others: s0000-s0097 but for 5, 7 and 12.
    assert second[0] == "s0098" and len(second) == DEFAULT_PER_PAGE
    last = site.page("?page=4")
    ids = shown_ids(last)
    assert ids[-1] == "s0005"  # the disabled source comes last
    assert "showing 301–400 of 400" in last and 'rel="prev"' in last and 'rel="next"' not in last
    assert shown_ids(site.page("?page=99")) == ids  # past the end: the last page


def test_filters_by_state_host_and_id(site: Paged) -> None:
    assert shown_ids(site.page("?state=failing")) == ["s0007", "s0150", "s0333"]
    assert shown_ids(site.page("?state=degraded")) == ["s0012", "s0299"]
    assert shown_ids(site.page("?state=disabled")) == ["s0005"]
    on_b = shown_ids(site.page("?host=b.example&per_page=1000"))  # news.b.example: a subdomain
    assert on_b and all(int(i[1:]) % 3 == 1 for i in on_b) and len(on_b) == 133
    assert shown_ids(site.page("?host=news.b.example&state=failing")) == ["s0007"]
    assert shown_ids(site.page("?host=a.example&state=failing")) == ["s0150", "s0333"]
    assert shown_ids(site.page("?id=s033")) == [f"s033{d}" for d in (3, 0, 1, 2, 4, 5, 6, 7, 8, 9)]
    page = site.page("?id=nothing-like-this")
    assert shown_ids(page) == [] and "no matching sources" in page
    assert "400 sources, 3 failing, 2 degraded" in page  # the counts are the whole config's


def test_sort_by_id_and_page_size(site: Paged) -> None:
    ids = shown_ids(site.page("?sort=id&per_page=10"))
    assert ids == [f"s{n:04d}" for n in range(10)]
    assert "page 1 of 40" in site.page("?sort=id&per_page=10")


def test_bad_parameters_fall_back_to_defaults_and_are_escaped(site: Paged) -> None:
    page = site.page("?page=x&per_page=-3&state=bogus&sort=%3Cb%3E")
    assert len(shown_ids(page)) == DEFAULT_PER_PAGE
    evil = site.page("?id=%22%3E%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert(1)" not in evil and "&lt;script&gt;" in evil


def test_a_page_reads_a_bounded_amount_whatever_the_number_of_sources(tmp_path: Path) -> None:
    """A few statements per view, the same at 300 and at 1,200 sources; the rows read in full
    (states, health, item counts) are the page's, not every source's."""
    counts = {}
    for count in (300, 1200):
        for site in paged(tmp_path / str(count), count):
            site.page()
            statements = list(site.db.statements)
            full = [(sql, rows) for sql, rows in statements if " IN (" in sql]
            counts[count] = len(statements)
            assert len(statements) <= 5, statements
            assert all(rows <= DEFAULT_PER_PAGE for _sql, rows in full), full
            assert not any("COUNT(*) FROM items WHERE source_id = ?" in s for s, _ in statements)
    assert counts[300] == counts[1200]


def test_a_small_config_reads_as_before(tmp_path: Path) -> None:
    """Three sources: one page, no pager, the config's order."""
    config = write_config(tmp_path, sources_toml(3))
    store = Store.open(config.settings.state_url)
    try:
        page = app_client(build_app(config, status_reader=store_status_reader(config, store)))
        text = page.get("/").text
    finally:
        store.close()
    assert shown_ids(text) == ["s0000", "s0001", "s0002"]
    assert "showing" not in text and "page 1 of" not in text
    assert "3 sources, 0 failing, 0 degraded" in text


def test_select_sources_is_pure_and_keeps_config_order_within_a_state() -> None:
    config_sources = [
        type("S", (), {"id": f"x{n}", "url": f"https://h{n % 2}.example/", "enabled": True})()
        for n in range(6)
    ]
    states = {"x0": "ok", "x1": "degraded", "x2": "ok", "x3": "never", "x4": "failing", "x5": "ok"}
    selection = select_sources(config_sources, states, StatusQuery(per_page=4))  # type: ignore[arg-type]
    assert [s.id for s in selection.sources] == ["x4", "x1", "x3", "x0"]
    assert (selection.pages, selection.matching, selection.count("ok")) == (2, 6, 3)
    assert StatusQuery(page=2).query_string(state="ok") == "?state=ok&page=2"
