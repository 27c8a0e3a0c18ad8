"""Site rules as canaries: `feedworker rules test [HOST ...]`.

A rule file names test pages (`test_url`) and snippets they must yield (`test_contains`). For
each, the page is fetched (with the worker's fetcher: its User-Agent, politeness, robots.txt
and limits), extracted with the rule (its body taken as the rule gives it, without comparing
it with automatic extraction: the test is of the rule), and judged by `judge`:

- the page could not be fetched, or holds no article: broken;
- the rule's `body` (or `title`, `date`, `author`) found nothing: broken, naming it;
- a `test_contains` snippet is not in the extracted text (spaces collapsed): broken, quoting it.

A rule file without `test_url` is reported as untested. Rule files age quietly: run this from
cron after `git pull` of the rules, and fix or override what broke.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from worker.errors import FeedworkerError
from worker.extract import ExtractOptions, extract
from worker.fetch.client import Fetcher
from worker.models import Article, NotModified
from worker.siterules import RuleSet, RuleTest

__all__ = ["CanaryResult", "judge", "run_canaries"]

QUOTE_CHARS = 60  # a missing snippet is quoted up to this long


@dataclass(frozen=True, slots=True)
class CanaryResult:
    """One test page of one rule file, and what is wrong with it (nothing: it passed)."""

    rule: str  # the rule file's name, "example.com"
    path: str
    url: str = ""  # the test page; "" for a rule file without test_url
    problems: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()  # the directives that found something on the page

    @property
    def tested(self) -> bool:
        return bool(self.url)

    @property
    def ok(self) -> bool:
        return self.tested and not self.problems


def judge(test: RuleTest, article: Article | None, error: str = "") -> tuple[str, ...]:
    """What is wrong with a rule on its test page, given what extraction made of it."""
    if article is None:
        return (error or "no article extracted",)
    trace = article.site_rule
    problems = [f"{d} matched nothing" for d in (trace.missed if trace else ())]
    text = " ".join(article.body_text.split())
    for snippet in test.contains:
        if " ".join(snippet.split()) not in text:
            shown = snippet if len(snippet) <= QUOTE_CHARS else snippet[: QUOTE_CHARS - 3] + "..."
            problems.append(f"test_contains not found: {shown!r}")
    return tuple(problems)


async def run_canaries(
    rule_sets: Sequence[RuleSet], fetcher: Fetcher, *, respect_robots: bool = True
) -> list[CanaryResult]:
    """Every test page of every rule set, fetched concurrently (the fetcher keeps to its
    per-host politeness); results in the rule sets' order."""

    async def one(rules: RuleSet, test: RuleTest) -> CanaryResult:
        article, error = None, ""
        try:
            page = await fetcher.fetch_page(test.url, respect_robots=respect_robots)
            if isinstance(page, NotModified):
                raise FeedworkerError("answered 304 Not Modified to a plain request")
            options = ExtractOptions(site_rules=rules, check_rules=False)
            article = extract(page.text, page.final_url, options)
        except FeedworkerError as exc:
            error = str(exc)
        applied = article.site_rule.matched if article and article.site_rule else ()
        return CanaryResult(rules.name, rules.path, test.url, judge(test, article, error), applied)

    jobs = [one(rules, test) for rules in rule_sets for test in rules.tests]
    tested = iter(await asyncio.gather(*jobs))
    results: list[CanaryResult] = []
    for rules in rule_sets:
        if not rules.tests:
            results.append(CanaryResult(rules.name, rules.path))
        results.extend(next(tested) for _ in rules.tests)
    return results
