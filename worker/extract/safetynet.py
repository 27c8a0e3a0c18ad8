"""The safety net: try further attempts while the body found is implausible (Readability.js
retries with looser flags; so do we, and also with what the page says about its article).

An attempt's body is *implausible* when it is much shorter than something the page shows or
states about its article:
- the page's largest run of prose (the paragraphs one element holds, which the scorer passed
  over: picked a hinted stub, or lost them to a cleaned-out container);
- the JSON-LD `articleBody`, or the JSON-LD `wordCount`;
- the page's description (`og:description`...): no article is shorter than its own summary.

The attempts, in order (`Attempt.name` becomes `Article.method` when its body wins):
1. "auto": the best-scored candidate with its siblings, furniture stripped;
2. "prose-run": the same preparation, the largest run of prose as the top candidate;
3. "opening": the same preparation, the block holding the description's first words as the top
   candidate (blogs describe a post with its own opening), not cleaned;
4. "loose": furniture left in (a class name may lie about a whole column);
5. "raw": no class/id evidence, no cleaning.
Hidden elements go in every attempt: hidden text is never the article.
The first plausible body wins. When none is, today's choice stands: the first body long enough
(a retry's must also read as prose), else the longest. Pages whose first body is plausible,
nearly all, parse once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.extract.body import (
    MIN_BODY_CHARS,
    PRESETS,
    RETRY_PROSE_SHARE,
    Body,
    Preset,
    extract_body,
    is_sentence_line,
)
from worker.extract.htmlparse import FlatHtml, parse_flat
from worker.models import Method

# A body shorter than this share of the page's largest run of prose, of its JSON-LD
# `articleBody` or of its JSON-LD `wordCount` is implausible. Half: cleaning rightly drops a
# caption or a pull quote from a run, and JSON-LD bodies often hold the captions too.
PLAUSIBLE_SHARE = 0.5
# The description's first words looked for in the page, to find where the article starts: enough
# to be unlikely elsewhere, few enough to end before a description's own rewording.
OPENING_WORDS = 8


@dataclass(frozen=True, slots=True)
class Expected:
    """What the page states about its article apart from its markup (from its metadata)."""

    chars: int = 0  # JSON-LD articleBody length
    words: int = 0  # JSON-LD wordCount
    summary_chars: int = 0  # the page's description
    opening: str = ""  # the description's first words, lower case (see `opening_words`)


def opening_words(description: str) -> str:
    """The first OPENING_WORDS words of a description that has that many, lower case, spaced as
    block texts are; blogs and many CMSs describe a post with its own first sentence."""
    words = description.lower().split()
    return " ".join(words[:OPENING_WORDS]) if len(words) >= OPENING_WORDS else ""


@dataclass(frozen=True, slots=True)
class Attempt:
    name: Method  # `Article.method` when this attempt's body wins
    preset: Preset
    start: str = ""  # the top candidate: the best-scored (""), or see `body.extract_body`


ATTEMPTS: tuple[Attempt, ...] = (
    Attempt("auto", PRESETS[0]),
    Attempt("prose-run", PRESETS[0], start="prose-run"),
    # Found through the page's own summary, the container is trusted as it is: not cleaned of
    # link-dense blocks (an unclosed link makes a whole post link text).
    Attempt("opening", replace(PRESETS[0], clean=False), start="opening"),
    Attempt("loose", PRESETS[1]),
    Attempt("raw", PRESETS[2]),
)


@dataclass(frozen=True, slots=True)
class Found:
    """An attempt's body, the attempt's name, and whether it is long enough to be taken."""

    body: Body
    name: Method
    long_enough: bool


def best_body(
    tree: LexborHTMLParser,
    html: FlatHtml,
    *,
    remove: tuple[str, ...] = (),
    title: str = "",
    boilerplate: frozenset[str] = frozenset(),
    junk: list[LexborNode] | None = None,
    expected: Expected = Expected(),
) -> tuple[Body, Method]:
    """The first plausible body of the ATTEMPTS, and the name of the attempt that found it.

    `tree` is `html` parsed, used (and mutated) by the first attempt, with its `junk_elements`
    when the caller has them; later attempts parse afresh (`html` is flattened already: see
    `worker.extract.htmlparse.parse_flat`).
    """
    tried: list[Found] = []
    for i, attempt in enumerate(ATTEMPTS):
        page, page_junk = (tree, junk) if i == 0 else (parse_flat(html), None)
        body = extract_body(
            page,
            attempt.preset,
            remove=remove,
            title=title,
            boilerplate=boilerplate,
            junk=page_junk,
            start=attempt.start,
            opening=expected.opening,
        )
        long_enough = len(body.text) >= MIN_BODY_CHARS and (i == 0 or reads_as_prose(body.text))
        tried.append(Found(body, attempt.name, long_enough))
        if long_enough and plausible(body, expected):
            return as_retry(tried[-1], tried)
    first = next((found for found in tried if found.long_enough), None)
    return as_retry(first or max(tried, key=lambda found: len(found.body.text)), tried)


def plausible(body: Body, expected: Expected) -> bool:
    """Not much shorter than the page's largest run of prose, its JSON-LD body and word count,
    nor shorter than its description."""
    size = len(body.text)
    floor = max(PLAUSIBLE_SHARE * max(body.prose_run, expected.chars), expected.summary_chars)
    if size < floor:
        return False
    return not expected.words or len(body.text.split()) >= PLAUSIBLE_SHARE * expected.words


def reads_as_prose(text: str) -> bool:
    """A retry's body must be mostly sentences: with the furniture left in, a looser preset may
    pick the page's footer or menus, which are long enough but hold no article."""
    lines = text.split("\n")
    prose = sum(len(line) for line in lines if is_sentence_line(line))
    return prose >= RETRY_PROSE_SHARE * len(text)


def as_retry(chosen: Found, tried: list[Found]) -> tuple[Body, Method]:
    """The chosen body with the first attempt's page fingerprints, and every attempt's template
    lookups (each attempt's body decided whether the next one ran)."""
    checked = chosen.body.checked.union(*(found.body.checked for found in tried))
    body = replace(chosen.body, fingerprints=tried[0].body.fingerprints, checked=checked)
    return body, chosen.name
