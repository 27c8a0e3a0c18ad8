"""Site templates: blocks that recur across a source's pages are boilerplate.

A *block fingerprint* is a short hash of the normalised text of one text block (a paragraph, list
item, heading, table cell, or a `div` holding text directly). Normalisation lower-cases, drops
digits, punctuation and extra whitespace, so "5 comments" and "12 Comments" match and a widget
re-rendered with slightly different markup still matches, while any block carrying article text
unique to one page cannot match another page's blocks.

Each fingerprint is computed per block, not per widget, so a "Popular posts" list whose items
rotate still shares its heading and most items with other pages. The pipeline counts, per source,
on how many distinct pages each fingerprint appeared (`learn_boilerplate`) and passes the recurring
ones back to `extract` as `ExtractOptions.boilerplate`.

Versioned: fingerprints start with "1"; a change of normalisation bumps it, so fingerprints
learnt under the old scheme simply stop matching instead of matching the wrong blocks.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from collections.abc import Iterable

FINGERPRINT_VERSION = "1"

# A block needs this many letters (after normalisation) to get a fingerprint: shorter blocks
# ("Home", "Reply") are too common across unrelated sites' text to mean anything.
MIN_BLOCK_CHARS = 12

# Runs of letters: digits and the underscore are word characters to `re`, not letters.
_LETTERS = re.compile(r"[^\W\d_]+")
# The same for ASCII text, as a byte table: every byte but A-Z and a-z becomes a space.
_ASCII_NON_LETTERS = bytes(c if chr(c).isalpha() and c < 128 else 32 for c in range(256))
# Typographic marks that keep most English text from being ASCII: curly quotes, dashes, the
# ellipsis, the no-break space, guillemets. None is a letter: to `_LETTERS` each one separates
# words just as a space does.
_TYPOGRAPHY = "\u2019\u2018\u201c\u201d\u2013\u2014\u2026\u00a0\u00ab\u00bb"


def normalise_block(text: str) -> str:
    """Letters only, lower-cased, words separated by single spaces (joining the runs of letters
    is a fifth faster than replacing everything else with a regex)."""
    return " ".join(_LETTERS.findall(text.lower()))


# A cache of a pure function: a site's pages repeat their header, sidebar and footer blocks (a
# quarter of the blocks on the extraction benchmark's pages), and a hit skips the hashing.
@functools.lru_cache(maxsize=4096)
def fingerprint(text: str) -> str | None:
    """The fingerprint of one block's text, or None when it is too short to fingerprint."""
    if len(text) < MIN_BLOCK_CHARS:  # cannot hold enough letters: skip the normalising
        return None
    # `normalise_block` on bytes is twice as fast, and most blocks are ASCII, or are once their
    # typographic marks are spaces.
    ascii_text = text if text.isascii() else ascii_form(text)
    if ascii_text is not None:
        words = ascii_text.encode("ascii").lower().translate(_ASCII_NON_LETTERS).split()
        norm = b" ".join(words)
        letters = len(norm) - len(words) + 1
    else:
        text = normalise_block(text)
        norm, letters = text.encode("utf-8"), len(text) - text.count(" ")
    if letters < MIN_BLOCK_CHARS:
        return None
    return FINGERPRINT_VERSION + hashlib.blake2b(norm, digest_size=6).hexdigest()


def ascii_form(text: str) -> str | None:
    """`text` with its typographic marks as spaces, when that leaves it ASCII: the same
    `normalise_block`. Else None, and `text` itself is normalised: in Greek, a space for a mark
    could change how a final sigma lower-cases."""
    for mark in _TYPOGRAPHY:
        if mark in text:
            text = text.replace(mark, " ")
    return text if text.isascii() else None


def fingerprints(texts: Iterable[str]) -> tuple[str, ...]:
    """Distinct fingerprints of the given block texts, in first-seen order."""
    seen: dict[str, None] = {}
    for text in texts:
        fp = fingerprint(text)
        if fp is not None:
            seen.setdefault(fp, None)
    return tuple(seen)


def learn_boilerplate(pages: Iterable[tuple[str, ...]], min_pages: int = 2) -> frozenset[str]:
    """Fingerprints present on at least `min_pages` of the given pages (each page counted once).

    `pages` are the `block_fingerprints` of distinct pages of one source (article pages and the
    index page's `page_fingerprints`). Article text is unique to its page, so it never recurs.
    """
    counts: Counter[str] = Counter()
    for page in pages:
        counts.update(set(page))
    return frozenset(fp for fp, n in counts.items() if n >= min_pages)
