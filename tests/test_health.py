"""`worker.service.health`: each drift rule, the challenge markers, the body floor, and the config keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.backend import state_env
from tests.test_layering import PACKAGE, impurities
from worker.config import HealthThresholds, load_config
from worker.errors import ConfigError
from worker.models import RunHealth, RunReport
from worker.service.health import (
    CHALLENGE_MARKERS,
    NOSCRIPT_ONLY,
    assess,
    body_floor,
    challenge_marker,
    run_health,
    script_shell,
)

T0 = datetime(2026, 11, 25, tzinfo=UTC)
DEFAULTS = HealthThresholds()


def run(n: int, **values: object) -> RunHealth:
    """A healthy run of an index source: 12 links, 3 articles of about 2,400 characters."""
    base: dict[str, object] = {
        "listing_read": True,
        "links_found": 12,
        "articles": 3,
        "median_body_chars": 2400,
        "methods": {"auto": 3},
        "statuses": {"200": 4},
        "responses": 4,
    }
    base.update(values)
    return RunHealth(at=T0 + timedelta(hours=n), **base)  # type: ignore[arg-type]


def healthy(count: int = 5) -> list[RunHealth]:
    return [run(n, links_found=12 + n % 4) for n in range(count)]


def test_a_healthy_history_is_ok() -> None:
    assert assess(healthy(), DEFAULTS).state == "ok"
    assert assess([], DEFAULTS).state == "ok"


# -- listing -------------------------------------------------------------------------------------


def test_selector_matching_nothing_degrades_after_two_runs() -> None:
    broken = {"links_found": 0, "selector": "h2 a", "selector_matched": 0, "articles": 0}
    history = [*healthy(), run(5, **broken)]
    assert assess(history, DEFAULTS).state == "ok"
    verdict = assess([*history, run(6, **broken)], DEFAULTS)
    assert verdict.degraded
    assert verdict.reasons == (
        "the listing selector 'h2 a' matched nothing on the last 2 runs;"
        " the 5 runs before found 12–15 links",
    )


def test_an_empty_automatic_listing_degrades_at_once_with_bad_runs_1() -> None:
    verdict = assess(
        [*healthy(3), run(3, links_found=0)], DEFAULTS.model_copy(update={"bad_runs": 1})
    )
    assert verdict.reasons == (
        "the listing yielded no article links on the last run; the 3 runs before found 12–14 links",
    )


def test_a_listing_that_never_found_links_is_not_drift() -> None:
    assert assess([run(n, links_found=0) for n in range(4)], DEFAULTS).state == "ok"


def test_runs_that_read_no_listing_neither_break_nor_extend_a_streak() -> None:
    # Rows as `run_health` leaves them for a failed index page, or a 304 with nothing to repeat.
    empty = run(5, links_found=0, articles=0)
    unchanged = run(6, listing_read=False, links_found=0, articles=0, statuses={"304": 1})
    assert assess([*healthy(), empty, unchanged], DEFAULTS).state == "ok"
    assert assess([*healthy(), empty, unchanged, run(7, links_found=0)], DEFAULTS).degraded


def test_a_degraded_source_stays_degraded_once_its_baseline_rolled_out() -> None:
    empty = {"links_found": 0, "articles": 0, "degraded": True}
    history = [run(n, **empty) for n in range(6)] + [run(6, links_found=0, articles=0)]
    verdict = assess(history, DEFAULTS)
    assert verdict.reasons == ("the listing yielded no article links on the last 2 runs",)


def not_modified(n: int, **values: object) -> RunReport:
    """The report of a run whose index page answered 304."""
    report = RunReport("blog", started=T0 + timedelta(hours=n), index_not_modified=True)
    for key, value in values.items():
        setattr(report, key, value)
    return report


def test_a_304_repeats_the_listing_facts_of_the_reading_it_confirms() -> None:
    empty = run(5, links_found=0, articles=0)
    repeated = run_health(not_modified(6, statuses={304: 1}), history=[*healthy(), empty])
    assert repeated.not_modified and repeated.listing_read and repeated.links_found == 0
    assert repeated.responses == 1 and repeated.articles == 0  # its own, not repeated
    verdict = assess([*healthy(), empty, repeated], DEFAULTS)
    assert verdict.reasons == (
        "the listing yielded no article links on the last 2 runs; the 5 runs before found 12–15"
        " links",
    )
    # ...and a 304 after a good reading is a good run.
    good = run_health(not_modified(6), history=healthy())
    assert good.listing_read and good.links_found == healthy()[-1].links_found


def test_a_304_repeats_nothing_under_another_selector_or_without_a_reading() -> None:
    history = [run(n, selector="h2 a", selector_matched=0, links_found=0) for n in range(3)]
    other = run_health(not_modified(3), selector="h3 a", history=history)
    assert other.not_modified and not other.listing_read  # the new selector never read it
    same = run_health(not_modified(3), selector="h2 a", history=history)
    assert same.listing_read and same.selector_matched == 0
    assert not run_health(not_modified(0), history=[]).listing_read
    failed = run_health(not_modified(1, error="index page: HTTP 500"), history=healthy())
    assert not failed.listing_read


# -- pages that need JavaScript ------------------------------------------------------------------

SHELLS = {
    "create-react-app": (
        "<!doctype html><html><head><title>React App</title>"
        '<script defer src="/static/js/main.js"></script></head><body>'
        "<noscript>You need to enable JavaScript to run this app.</noscript>"
        '<div id="root"></div></body></html>'
    ),
    "vue": '<html><body><div id="app"></div><script type="module" src="/src/main.js"></script></body></html>',
    "angular": "<html><body><app-root></app-root><script src=main.js></script></body></html>",
    "mount point and spinner": (
        '<body><div id="root"><div class="spinner"></div></div><script src="x.js"></script>'
        '<script id="__NEXT_DATA__" type="application/json">{"props": {}}</script></body>'
    ),
    "noscript holding markup": (
        "<body><noscript><p>Please</p><p>enable</p><p>JavaScript</p><p>now</p></noscript>"
        '<div id="app"></div><script src="a.js"></script></body>'
    ),
}
NOT_SHELLS = {
    "server-rendered text": '<body><div id="root"><p>Hello</p></div><script src="x.js"></script></body>',
    "links": '<body><div id="root"><a href="/post">x</a></div><script src="x.js"></script></body>',
    "many elements": "<body>" + "<div></div>" * 4 + '<script src="x.js"></script></body>',
    "no script": '<body><div id="root"></div></body>',
    "empty": "",
}


@pytest.mark.parametrize("name", SHELLS)
def test_script_shells_are_recognised(name: str) -> None:
    assert script_shell(SHELLS[name])


@pytest.mark.parametrize("name", NOT_SHELLS)
def test_other_pages_are_not_script_shells(name: str) -> None:
    assert not script_shell(NOT_SHELLS[name])


def test_pages_with_many_tags_are_ruled_out_before_any_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import worker.service.health

    parsed: list[int] = []
    real = worker.service.health.parse_html
    monkeypatch.setattr(
        worker.service.health, "parse_html", lambda html: parsed.append(1) or real(html)
    )
    hostile = [
        "<script>x</script>" + "<div " * 100_000,  # lexbor: quadratic in repeated attributes
        "<script>x</script>" + "<div>" * 100_000,
        "<body><script>1</script>" + "<p>text</p>" * 50_000 + "</body>",
        "<script></script>" * 100_000,
    ]
    assert not any(script_shell(page) for page in hostile)
    assert parsed == []
    # "<" inside scripts and styles opens no tag: a shell with large inline code is still one.
    code = (
        "<script>" + "if (a < b) { x(); }" * 5_000 + "</script><style>" + "a<b" * 999 + "</style>"
    )
    assert script_shell(code + '<body><div id="root"></div></body>') and parsed == [1]


def test_a_script_shell_degrades_at_once_without_a_baseline() -> None:
    shell = run(0, links_found=0, articles=0, needs_javascript=True)
    verdict = assess([shell], DEFAULTS)
    assert verdict.degraded and len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith("the page is an empty shell that its scripts fill in")
    repeated = run_health(not_modified(1), history=[shell])
    assert repeated.needs_javascript
    assert assess([shell, repeated], DEFAULTS).degraded
    assert assess([shell, run(1)], DEFAULTS).state == "ok"  # rendered by the server again


# -- bodies --------------------------------------------------------------------------------------


def test_bodies_collapsing_far_below_the_sources_median_degrade() -> None:
    short = {"median_body_chars": 300}
    assert assess([*healthy(), run(5, **short)], DEFAULTS).state == "ok"
    verdict = assess([*healthy(), run(5, **short), run(6, **short)], DEFAULTS)
    assert verdict.reasons == (
        "article bodies collapsed: a median of 300 characters on the last 2 runs,"
        " against 2,400 over the 5 runs before",
    )


def test_shorter_articles_within_the_usual_spread_are_fine() -> None:
    short = {"median_body_chars": 900}  # above a quarter of 2,400
    assert assess([*healthy(), run(5, **short), run(6, **short)], DEFAULTS).state == "ok"


def test_most_articles_falling_back_or_too_short_degrade() -> None:
    poor = {"methods": {"fallback": 1}, "skipped": {"too_short": 2}, "articles": 3}
    verdict = assess([*healthy(), run(5, **poor), run(6, **poor)], DEFAULTS)
    assert verdict.reasons == (
        "6 of 6 articles could not be read as articles (whole-page fallback, no text or too"
        " short) on the last 2 runs; before: 0 of 15",
    )


@pytest.mark.parametrize(
    "instead",
    [{"auto": 2}, {"jsonld": 1, "prose-run": 1}, {"loose": 1, "raw": 1}, {"opening": 2}],
    ids=str,
)
def test_a_body_selector_that_stops_matching_degrades(instead: dict[str, int]) -> None:
    before = [run(n, methods={"selector": 3}, body_selector="div.post") for n in range(3)]
    after = {"methods": instead, "articles": 2, "body_selector": "div.post"}
    verdict = assess([*before, run(3, **after), run(4, **after)], DEFAULTS)
    assert verdict.reasons == (
        "the body selector 'div.post' matched nothing on 4 of 4 pages on the last 2 runs;"
        " before: 0 of 9",
    )


def test_a_source_that_always_falls_back_is_not_drift() -> None:
    always = [run(n, methods={"fallback": 3}) for n in range(5)]
    assert assess(always, DEFAULTS).state == "ok"


# -- anti-bot walls --------------------------------------------------------------------------------


def test_a_streak_of_403_challenge_pages_degrades_without_a_baseline() -> None:
    wall = {
        "failed": True,
        "statuses": {"403": 1},
        "responses": 1,
        "blocked": 1,
        "challenge": "cf-chl",
        "articles": 0,
        "median_body_chars": None,
    }
    verdict = assess([run(0, **wall), run(1, **wall)], DEFAULTS)
    assert verdict.reasons == (
        "the site is refusing the worker: HTTP 403 with challenge pages ('cf-chl') for 2 of 2"
        " requests on the last 2 runs (an anti-bot wall or a rate limit)",
    )


def test_a_few_429s_among_many_pages_are_not_a_wall() -> None:
    some = {"statuses": {"200": 8, "429": 2}, "responses": 10, "blocked": 2}
    assert assess([*healthy(), run(5, **some), run(6, **some)], DEFAULTS).state == "ok"


def test_a_single_403_run_between_good_ones_is_not_a_streak() -> None:
    wall = {"statuses": {"403": 1}, "responses": 1, "blocked": 1, "failed": True}
    history = [*healthy(), run(5, **wall), run(6), run(7, **wall)]
    assert assess(history, DEFAULTS).state == "ok"


# -- pages that are no longer HTML -----------------------------------------------------------------


def test_article_pages_turning_into_pdfs_or_empty_bodies_degrade() -> None:
    odd = {"skipped": {"not_html": 2, "empty": 1}, "articles": 0, "median_body_chars": None}
    verdict = assess([*healthy(), run(5, **odd), run(6, **odd)], DEFAULTS)
    assert verdict.reasons == ("6 of 6 article pages were not HTML or empty on the last 2 runs",)


# -- thresholds ------------------------------------------------------------------------------------


def test_thresholds_change_the_verdict() -> None:
    short = {"median_body_chars": 900}
    strict = DEFAULTS.model_copy(update={"body_drop": 0.5, "bad_runs": 1})
    assert assess([*healthy(), run(5, **short)], strict).degraded


def test_body_floor_is_min_body_chars_until_the_sources_own_median_is_known() -> None:
    notes = [run(n, median_body_chars=120) for n in range(3)]
    assert body_floor([], DEFAULTS) == 200
    assert body_floor(notes[:2], DEFAULTS) == 200
    assert body_floor(notes, DEFAULTS) == 60  # half the source's own median
    assert body_floor(healthy(), DEFAULTS) == 200
    degraded = [run(n, median_body_chars=50, degraded=True) for n in range(5)]
    assert body_floor(degraded, DEFAULTS) == 200  # a broken source never lowers its own floor


# -- challenge pages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "marker"),
    [
        (
            '<html><script src="/cdn-cgi/challenge-platform/x.js"></script></html>',
            "challenge-platform",
        ),
        (
            "<html><head><title>Just a moment...</title></head><body></body></html>",
            "just a moment...",
        ),
        ("<html><body><p>Please verify you are human.</p></body></html>", "verify you are human"),
        (
            "<html><body><div class='g-recaptcha'></div><p>Complete the CAPTCHA</p></body></html>",
            "captcha",
        ),
        (
            "<html><body><noscript>Enable JS</noscript><script>x()</script></body></html>",
            NOSCRIPT_ONLY,
        ),
        ('<html><body><form id="cf-chl-form"></form></body></html>', "cf-chl"),
    ],
)
def test_challenge_pages_are_recognised(page: str, marker: str) -> None:
    assert challenge_marker(page) == marker


def test_every_product_marker_is_lower_case() -> None:
    assert all(marker == marker.lower() for marker in CHALLENGE_MARKERS)


def test_an_article_about_captchas_is_not_a_challenge() -> None:
    text = "CAPTCHAs ask you to verify you are human. " * 60
    assert challenge_marker(f"<html><body><article><p>{text}</p></article></body></html>") is None
    assert challenge_marker("<html><body><p>An ordinary short page.</p></body></html>") is None


def test_health_module_is_pure() -> None:
    assert not impurities(PACKAGE / "service" / "health.py")


# -- config ----------------------------------------------------------------------------------------


def write(tmp_path: Path, worker: str, source: str = "") -> Path:
    config = tmp_path / "config"
    config.mkdir(parents=True)
    (config / "feedworker.toml").write_text("[worker]\n" + worker)
    (config / "sources.toml").write_text(
        f'[[source]]\nid = "blog"\nurl = "https://example.org/"\n{source}\n'
    )
    return config


def test_worker_health_table_and_source_overrides(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "[worker.health]\nbad_runs = 3\nmin_body_chars = 150\n",
            "health = { bad_runs = 1, body_drop = 0.1 }",
        ),
        env=state_env(),
    )
    settings, source = config.settings, config.source("blog")
    assert settings.health.bad_runs == 3 and settings.health.min_body_chars == 150
    merged = source.health_thresholds(settings.health)
    assert (merged.bad_runs, merged.body_drop, merged.min_body_chars) == (1, 0.1, 150)


def test_health_keys_are_validated_with_clear_messages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            write(
                tmp_path,
                "[worker.health]\nbad_run = 3\nbody_drop = 2\n",
                'health = { window = 0, poor_share = "most" }',
            ),
            env=state_env(),
        )
    lines = [str(p) for p in caught.value.problems]
    assert "config/feedworker.toml: health.bad_run: unknown key; did you mean 'bad_runs'?" in lines
    assert "config/feedworker.toml: health.body_drop: must be less than 1.0, got 2" in lines
    assert "config/sources.toml: source 'blog': health.window: must be 1 or more, got 0" in lines
    assert any(
        line.startswith("config/sources.toml: source 'blog': health.poor_share: expected")
        for line in lines
    )


def test_webhook_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, 'webhook_url = "ftp://hooks.example.org/"\n'), env=state_env())
    assert "webhook_url: only http and https URLs are allowed" in str(caught.value)
    config = load_config(
        write(tmp_path / "ok", 'webhook_url = "https://hooks.example.org/x"\n'), env=state_env()
    )
    assert config.settings.webhook_url == "https://hooks.example.org/x"
