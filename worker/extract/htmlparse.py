"""Parse HTML with lexbor, bounded in time: the one way feedworker turns a page into a tree (pure).

lexbor's tree builder scans its stack of open elements for many start tags (`div`, `address`,
`section`, ...), so parsing is quadratic in the nesting depth: 100,000 nested elements take
minutes. No real page nests deeply (browsers stop laying out around 512 levels), so before parsing,
start tags nested deeper than `MAX_DEPTH`, and their end tags, are dropped; the text stays.

1. fewer than `CHECK_TAGS` tags (`html.count("<")`, C speed): parse it as it is, whatever its
   nesting costs (4,096 nested elements: 18 ms);
2. a cheap upper bound of the depth, over the tags: shallow pages parse as they are, byte for
   byte what lexbor would see anyway;
3. otherwise one walk over the tags, skipping comments and raw text (`script`, `style` ...),
   drops the start tags beyond the limit and their end tags.

Void elements (`br`, `img`) never open anything; elements whose end tag is optional (`p`, `li`,
`td` ...) close each other, so they are not counted either: a chain of them needs a counted
element between each two, which at most doubles the real depth. Nor is `a`: a link start tag
closes an open link, so links never nest, and kept beyond the limit, an index page keeps its links.
"""

from __future__ import annotations

import itertools
import re
from typing import NewType

from selectolax.lexbor import LexborDocumentOptions, LexborHTMLParser

__all__ = [
    "CHECK_TAGS",
    "MAX_DEPTH",
    "FlatHtml",
    "as_tree",
    "flatten_nesting",
    "nesting_depth",
    "parse_flat",
    "parse_html",
    "too_deep",
]

# Deeper nesting is flattened; lexbor parses 512 nested `address`es in well under a millisecond.
MAX_DEPTH = 512
# Pages with fewer tags are not checked. The check is a regex scan of the whole page: 0.6 ms on a
# page of 3,000 tags, an eighth of its extraction. Below the limit the worst case is a page that
# is nothing but nested `div`s: 4,096 of them parse in 18 ms (2,048 in 5 ms, 8,192 in 74 ms), a
# few pages' worth of extraction, once. The extraction benchmark's pages have 140 to 3,300 tags.
CHECK_TAGS = 8 * MAX_DEPTH

# Never opened (void) or closed implicitly by a sibling or a parent's end (optional end tag).
_NOT_COUNTED = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "keygen", "basefont", "bgsound", "frame", "image",
    "p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot", "colgroup", "caption",
    "option", "optgroup", "rb", "rt", "rp", "rtc", "a",
})  # fmt: skip


def _alternation(names: frozenset[str]) -> str:
    """A regex alternation of `names` grouped by first letter ("b(?:asefont|ase|r)|c(?:...)"):
    twice as fast as a flat one, tried at every tag of the page."""
    by_letter: dict[str, list[str]] = {}
    for name in sorted(names, key=len, reverse=True):
        by_letter.setdefault(name[0], []).append(name[1:])
    return "|".join(f"{letter}(?:{'|'.join(rest)})" for letter, rest in sorted(by_letter.items()))


# For the estimate: "" for a counted start tag, "/" for a counted end tag.
_COUNTED_TAG = re.compile(
    rf"<(/?)(?!(?:{_alternation(_NOT_COUNTED)})[\s/>])[A-Za-z]", re.IGNORECASE
)
_STEP = {"": 1, "/": -1}

# For the rewrite: comments and raw text are passed over whole; any other tag is one match. As
# in the HTML tokenizer, a comment, raw text or tag left open runs to the end of the page, which
# also keeps the scan linear: a `<div ` never closed is one match, not a scan to the end from
# every `<` after it (quadratic: 244 KiB of `<div ` took seconds).
_RAW_TEXT = "script|style|textarea|title|xmp|iframe|noembed|noframes|plaintext"
_TAG = re.compile(
    rf"<!--.*?(?:-->|\Z)"
    rf"|<({_RAW_TEXT})\b[^>]*(?:>.*?(?:</\1\s*>|\Z)|\Z)"
    rf"|<(/?)([A-Za-z][\w-]*)\b[^>]*(?:>|\Z)",
    re.IGNORECASE | re.DOTALL,
)


# Text `flatten_nesting` returned: safe to parse as it is, as often as needed.
FlatHtml = NewType("FlatHtml", str)


def parse_html(html: str) -> LexborHTMLParser:
    """The page's tree, with nesting deeper than MAX_DEPTH flattened first."""
    return parse_flat(flatten_nesting(html))


def parse_flat(html: FlatHtml) -> LexborHTMLParser:
    """The tree of a page flattened already: a caller parsing one page more than once (the
    extractor's retries) flattens it once, as checking its nesting scans the whole page.

    Without lexbor's DOM events: they apply a browser's side effects after each insertion (a
    `<selectedcontent>` mirroring its `<option>`), none of which holds article text; parsing
    without them is an eighth faster."""
    return LexborHTMLParser(html, options=LexborDocumentOptions.WO_EVENTS)


def as_tree(html: str | LexborHTMLParser) -> LexborHTMLParser:
    """`html` parsed with `parse_html`, or the tree itself when the caller parsed it already."""
    return html if isinstance(html, LexborHTMLParser) else parse_html(html)


def too_deep(html: str) -> bool:
    """Whether `html` has many tags and may nest deeper than MAX_DEPTH (see CHECK_TAGS)."""
    return html.count("<") >= CHECK_TAGS and _depth_bound(html) > MAX_DEPTH


def nesting_depth(html: str) -> int:
    """An upper bound of the nesting of counted elements, in one regex scan."""
    if html.count("<") < MAX_DEPTH:
        return 0
    return _depth_bound(html)


def _depth_bound(html: str) -> int:
    """`nesting_depth` without its shortcut, for callers that counted the tags already (the
    count is a scan of the whole page too)."""
    sums = list(itertools.accumulate(map(_STEP.__getitem__, _COUNTED_TAG.findall(html))))
    # The spread of the running sum: stray end tags (which the parser ignores) lower it, so its
    # maximum alone could hide deep nesting after them.
    return max(max(sums, default=0), 0) - min(min(sums, default=0), 0)


def flatten_nesting(html: str) -> FlatHtml:
    """`html` without the start tags nested deeper than MAX_DEPTH (and their end tags)."""
    if not too_deep(html):
        return FlatHtml(html)
    stack: list[tuple[str, bool]] = []  # open counted elements: (name, start tag kept)
    open_names: dict[str, int] = {}  # how many of each name are on the stack
    kept_depth = 0
    pieces: list[str] = []
    last = 0
    for match in _TAG.finditer(html):
        name = match.group(3)
        if name is None:
            continue  # a comment or raw text
        name = name.lower()
        if name in _NOT_COUNTED:
            continue
        if match.group(2):  # an end tag: closes the innermost open element of its name
            if not open_names.get(name):
                continue  # stray: the parser ignores it
            while True:
                open_name, kept = stack.pop()
                open_names[open_name] -= 1
                kept_depth -= kept
                if open_name == name:
                    break
        else:
            kept = kept_depth < MAX_DEPTH
            stack.append((name, kept))
            open_names[name] = open_names.get(name, 0) + 1
            kept_depth += kept
        if not kept:
            pieces.append(html[last : match.start()])
            last = match.end()
    pieces.append(html[last:])
    return FlatHtml("".join(pieces))
