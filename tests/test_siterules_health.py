"""Site rules as canaries in source health: a rule whose directives stop matching is drift;
and `feedworker rules test` against a local site."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tests.localserver import LocalServer
from tests.test_health import DEFAULTS, healthy, run
from tests.test_siterules_e2e import article_html, text_of
from worker.cli import main
from worker.commands.canary import judge
from worker.models import Article, RuleTrace, RunHealth
from worker.service.health import assess
from worker.siterules import RuleTest
from worker.store.state import _health_from_json, _health_json

NAME = "example.com"


def ruled(n: int, pages: int = 3, **missed: int) -> RunHealth:
    base = run(n)
    counts = {f"{NAME}: {directive}": count for directive, count in missed.items()}
    return replace(base, rule_pages={NAME: pages}, rule_missed=counts)


def test_a_rule_that_stops_matching_is_drift_after_bad_runs() -> None:
    history = [ruled(n) for n in range(5)]
    assert assess([*history, ruled(5, body=3)], DEFAULTS).state == "ok"  # one run is no alarm
    verdict = assess([*history, ruled(5, body=3), ruled(6, body=2, title=3)], DEFAULTS)
    assert verdict.degraded
    assert verdict.reasons == (
        "site rule for example.com no longer matches: body (body found nothing on 5 of 6 pages"
        " on the last 2 runs; it matched before)",
    )


def test_a_rule_that_never_matched_or_misses_a_little_is_no_drift() -> None:
    never = [ruled(n, body=3) for n in range(7)]
    assert assess(never, DEFAULTS).state == "ok"  # no baseline where it matched
    some = [*(ruled(n) for n in range(5)), ruled(5, body=1), ruled(6, body=1)]
    assert assess(some, DEFAULTS).state == "ok"  # most pages still match
    without = [*healthy(), run(5), run(6)]
    assert assess(without, DEFAULTS).state == "ok"


def test_every_drifted_directive_is_named() -> None:
    history = [*(ruled(n) for n in range(5)), ruled(5, title=3, date=3), ruled(6, title=3, date=3)]
    (reason,) = assess(history, DEFAULTS).reasons
    assert reason.startswith("site rule for example.com no longer matches: title, date (title")


def test_rule_counts_survive_the_store_round_trip() -> None:
    health = ruled(1, pages=4, body=2)
    assert _health_from_json(_health_json(health)) == health


def test_judge_names_what_broke() -> None:
    trace = RuleTrace(NAME, missed=("body",))
    article = Article(
        url="u", title="t", body_html="", body_text="The quick  brown\nfox", site_rule=trace
    )
    test = RuleTest("https://example.com/a", ("quick brown fox", "lazy dog"))
    assert judge(test, article) == ("body matched nothing", "test_contains not found: 'lazy dog'")
    assert judge(test, None, "https://example.com/a: HTTP 404") == (
        "https://example.com/a: HTTP 404",
    )


def test_rules_test_command_reports_broken_rules(tmp_path: Path, capsys) -> None:
    good, changed = text_of(1), text_of(2)
    with LocalServer() as server:
        server.route("/robots.txt", headers={"Content-Type": "text/plain"}, body=b"")
        server.route("/ok", body=article_html("Fine", good))
        redesigned = article_html("Redesigned", changed).replace(b"story-body", b"content-v2")
        server.route("/changed", body=redesigned)
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "127.0.0.1.txt").write_text(
            "body: //div[@class='story-body']\n"
            f"test_url: {server.url('/ok')}\ntest_contains: {good[1][:40]}\n"
            f"test_url: {server.url('/changed')}\ntest_contains: {changed[0][:40]}\n"
            f"test_url: {server.url('/missing')}\n"
        )
        (rules / "example.org.txt").write_text("body: //article\n")
        code = main(["rules", "test", "--rules", str(rules)])
        out = capsys.readouterr().out
        assert code == 1
        lines = out.splitlines()
        assert f"ok       127.0.0.1                      {server.url('/ok')}" in lines
        assert f"BROKEN   127.0.0.1                      {server.url('/changed')}" in lines
        assert "           - body matched nothing" in lines
        assert any("HTTP 404" in line for line in lines)
        assert "untested example.org                    no test_url" in lines
        assert (
            lines[-1] == "2 rule file(s), 3 test page(s): 1 rule file(s) broken, 1 without test_url"
        )
        assert main(["rules", "test", "--rules", str(rules), "example.org", "--json"]) == 0
        (result,) = json.loads(capsys.readouterr().out)
        assert result["rule"] == "example.org" and result["url"] == ""
        assert main(["rules", "test", "--rules", str(rules), "nowhere.example"]) == 1
