"""No regex over page, feed or sitemap text can stall on a hostile input (issue 16).

Two layers:
- every compiled pattern in a module that reads untrusted text is run over large adversarial
  inputs (a unit such as `<div ` or `1,` repeated to 64 KiB), so a pattern added later is
  checked too. Quadratic patterns took 0.7 to 50 s of CPU on at least one of these inputs
  (`<[^>]*>` 1.3 s on `<` x 65,536; a date suffix regex 50 s on spaces); linear ones take a few
  milliseconds (the slowest, a 130-word alternation, 30 ms). The bound, 0.25 s of CPU, sits
  between them;
- each function that applies such patterns to a page is run over the issue's own inputs
  (244 KiB of `<div ` with no `>`, `&lt;` x 120,000 in a feed summary, ...), bounded by CPU time
  with a margin of ten and more over what it takes now (and a tenth or less of what it took).

CPU time of this process (`time.process_time`), never wall-clock time: other processes on a busy
machine do not move it.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import re
import time
from collections.abc import Callable, Iterator

import pytest

import worker
from worker.dedupe.content import text_signature
from worker.errors import ExtractError
from worker.extract import extract, page_fingerprints
from worker.extract.htmlparse import flatten_nesting, parse_html
from worker.listing.discover import discover_links
from worker.listing.feedsource import parse_feed
from worker.service.health import challenge_marker

# Modules whose patterns only ever see the operator's own config or our SQL.
TRUSTED_TEXT = {
    "worker.config",
    "worker.store.db",
    "worker.cli",
    "worker.service.logs",
    "worker.__main__",
}
SIZE = 64 * 1024
PATTERN_CPU_LIMIT = 0.25  # seconds for one pattern over one 64 KiB input
# Units that, repeated, make a backtracking pattern rescan the rest of the text from each one:
# unclosed tags, comments and raw-text elements, entities, digit runs with separators, runs of
# whitespace, URL pieces, date pieces, and the prefixes of the patterns' own alternatives.
UNITS = (
    "<", "<div ", "<a ", "</", "<!--", "<!", "<?", "<?x", "<script", "<script>", "</script",
    "<style ", "<template", "<noscript", "<noscript>", "<title>", "<xmp", "<iframe ", "<meta ",
    "<meta charset", "<meta charset=", "<p", "<p>", "</p", "<div", "</div", "<h1", "<br",
    "<br>", "<x-", "<p>&nbsp;", "&nbsp;", "&lt;", "&", "<!DOCTYPE", "<!ENTITY", "<![CDATA[",
    "-->", "--", " ", "\t", "\n", "\r\n", "a", "A", "aA", "a b", "a-", "a_", "-_", "a.", ".a",
    "1", "1,", "1.", "1 ", ",", ", ", ",}", ".", ". ", "-", "_", "%", "%2", "/", "/a", "/a.",
    "/page/1", "/tag", "tag/", "/feed", "/share", "/2024/", "/20", "2024-", "2024 ",
    "http://", "https://a", "=", '"', "'", "?", "#", "(", "[", "{", "}", "@", "~", ":", ";",
    "charset=", "charset= ", "data:", "x.gif", "blank", "updated ", "updated 1 ", "updated on ",
    "1 comment", "comments ", "view", "1 min", "ago ", "10:42 ", "10:42 am ", "3 may ",
    "monday ", "Z", " Z", " +", "+00", "by ",
)  # fmt: skip


def untrusted_patterns() -> Iterator[tuple[str, re.Pattern[str] | re.Pattern[bytes]]]:
    for info in pkgutil.walk_packages(worker.__path__, "worker."):
        if info.name in TRUSTED_TEXT:
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                yield f"{info.name}.{name}", value


PATTERNS = dict(untrusted_patterns())


def cpu(call: Callable[[], object]) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


def test_the_sweep_sees_the_patterns_that_were_quadratic() -> None:
    for name in (
        "worker.extract.htmlparse._TAG",
        "worker.listing.feedsource._TAG",
        "worker.service.health._HIDDEN",
        "worker.service.health._TAG",
        "worker.fetch.decode._META_CHARSET",
        "worker.dedupe.content._VOLATILE",
        "worker.extract.meta._DATE_ZONE_SUFFIX",
        "worker.extract.sanitize._RAW_TEXT_ELEMENT",
    ):
        assert name in PATTERNS
    assert len(PATTERNS) > 50


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_pattern_is_linear_on_adversarial_input(name: str) -> None:
    pattern = PATTERNS[name]
    slow = []
    for unit in UNITS:
        text = (unit * (SIZE // len(unit) + 1))[:SIZE]
        data = text if isinstance(pattern.pattern, str) else text.encode()
        spent = cpu(lambda data=data: sum(1 for _ in pattern.finditer(data)))  # type: ignore[misc]
        if spent > PATTERN_CPU_LIMIT:
            slow.append(f"{unit!r}: {spent:.2f} s")
    assert not slow, f"{name} is not linear: {slow}"


# -- the functions that apply them, on the inputs ---------------------------------------

DIV_PAGE = "<html><body>" + "<div " * 50_000  # 244 KiB, never closed: 25 s of /healthz silence
LT_SUMMARY = b"&lt;" * 120_000  # feedparser unescapes it to 120,000 "<" in a row


def feed_with_summary(summary: bytes) -> bytes:
    return (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>a</title><link>https://e.test/a</link><description>"
        + summary
        + b"</description></item></channel></rss>"
    )


def extract_or_refuse(html: str) -> object:
    with contextlib.suppress(ExtractError):  # "no article text" is an answer too
        return extract(html, "https://e.test/a")
    return None


HOSTILE_CALLS = {
    "parse_html": (lambda: parse_html(DIV_PAGE), 1.0),  # was 4 s; now 0.02 s
    "flatten_nesting": (lambda: flatten_nesting(DIV_PAGE), 1.0),
    "discover_links": (lambda: discover_links(DIV_PAGE, "https://e.test/"), 1.0),
    "page_fingerprints": (lambda: page_fingerprints(DIV_PAGE), 1.0),
    "extract": (lambda: extract_or_refuse(DIV_PAGE), 2.0),
    "challenge_marker <script": (lambda: challenge_marker("<script " * 8000), 0.5),
    "challenge_marker <": (lambda: challenge_marker("<" * 65_000), 0.5),
    "text_signature 1,": (lambda: text_signature("1," * 30_000 + " x"), 1.0),  # was 12.6 s
}


@pytest.mark.parametrize("label", sorted(HOSTILE_CALLS))
def test_function_is_bounded_on_hostile_page(label: str) -> None:
    call, limit = HOSTILE_CALLS[label]
    spent = cpu(call)
    assert spent < limit, f"{label}: {spent:.2f} s of CPU"


def test_feed_summary_of_120000_escaped_brackets_is_read_in_bounded_time() -> None:
    data = feed_with_summary(LT_SUMMARY)
    spent = cpu(lambda: parse_feed(data, "https://e.test/feed"))
    assert spent < 2.0  # was 12 s of the event loop; now under 0.1 s
    (entry,) = parse_feed(data, "https://e.test/feed").entries
    assert entry.info.summary.startswith("<<<")  # the text, not a tag: nothing was dropped


def test_tag_stripping_still_reads_ordinary_markup() -> None:
    """`<[^<>]*>` drops what `<[^>]*>` dropped on real text, and keeps a lone `<` as text."""
    (entry,) = parse_feed(
        feed_with_summary(b"&lt;p&gt;Why 2 &amp;lt; 3 &lt;b&gt;matters&lt;/b&gt;&lt;/p&gt;"),
        "https://e.test/feed",
    ).entries
    assert entry.info.summary == "Why 2 < 3 matters"
    assert challenge_marker("<html><body><p>Just a moment...</p></body></html>") == (
        "just a moment..."
    )
    assert challenge_marker("<script>var a = '<p>captcha</p>'</script><p>Hello</p>") is None
