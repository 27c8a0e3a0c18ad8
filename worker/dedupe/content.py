"""Tell changed text from unchanged text: a versioned hash over normalised text. Pure, no I/O.

Identity is the canonical URL (the item's GUID); this module only answers "is this the same text?"
(`content_hash`), "is it nearly the same text?" (the SimHash in `text_signature`, compared by
`worker.dedupe.simhash`) and "did a known article change materially?" (`compare_texts`).
The hash carries its version (`v3:`), so a change of `normalise_text` is introduced as a new
version: a stored hash of another version is re-baselined, never taken for an edit.

v1 -> v2: "updated 10:42", "last updated: 3 may 2024 10:42 bst" and "views: 1,204" count as
volatile too (a page's edit stamp and counters change between fetches of an unchanged article).
v2 -> v3: the Turkish dotless ı and dotted İ fold to i, so case never counts as an edit: with
Unicode's default folding alone, "ılık" and its upper case "ILIK" differed (every other
character's normal form is closed under upper case; tests/test_dedupe.py checks them all).
"""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from dataclasses import dataclass

from worker.dedupe.simhash import simhash
from worker.publish.xmlchars import xml_safe

HASH_VERSION = "v3"

_MONTH = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december"
    r"|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.?"
)
# Edit stamps are a run of date and time tokens, at least one of which ("strong") cannot be
# prose: a clock time, a month, a year, a numeric date. Every token must end a word.
_STRONG = (
    r"(?:\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}(?::\d{2})?|" + _MONTH + r"|\d{4}"
    r"|\d{1,2}[./-]\d{1,2}[./-]\d{2,4})"
)
_WEAK = r"(?:\d{1,2}(?:st|nd|rd|th)?|at|on)"
_ZONE = r"(?:utc|gmt|bst|cet|cest|est|edt|cst|cdt|pst|pdt|[ap]\.?m\.?)"
_SEP = r",? "
_END = r"(?!\w)"
_STAMP = (
    rf"(?:{_WEAK}{_END}{_SEP})*{_STRONG}{_END}"
    rf"(?:{_SEP}(?:{_STRONG}|{_WEAK}|{_ZONE}){_END})*"
)

# Volatile phrases that change between two fetches of an unchanged article. Matched after
# case folding and whitespace collapsing, so they are lower case with single spaces. Cheap,
# English-only patterns: each needs a number, so ordinary prose is never touched.
_PHRASES = (
    # relative time: "5 minutes ago", "1 day ago"
    r"\b\d+ (?:second|minute|hour|day|week|month|year)s? ago\b",
    # reading time: "4 min read", "12 minutes read"
    r"\b\d+ min(?:ute)?s? read\b",
    # engagement counters: "12 comments", "1.2k views", "3,401 shares"; the number is bounded,
    # or "1,1,1,..." (a word starts after each comma) is scanned to its end from every digit
    r"\b\d[\d.,]{0,31}k? (?:comment|view|share|like|read|reaction)s?\b",
    # counters the other way round: "views: 1,204", "comments (12)"
    r"\b(?:comment|view|share|like|reaction)s?:? \(?\d[\d.,]*k?\)?",
    # edit stamps: "updated 10:42 am", "last updated: 3 may 2024, 10:42 bst"; prose such
    # as "updated guidance" or "updated 3 systems" holds no date or time and stays
    rf"\b(?:last )?(?:updated|modified|edited)(?: on| at)?:? {_STAMP}",
)
# Every phrase starts a word with a digit or with the first letter of its first word (comment,
# view, share, like, reaction, last, updated, modified, edited). Checking that before trying
# the phrases one by one rejects most positions of a text at once: the search took 40% less.
_PHRASE_START = r"\b(?=[\dcelmrsuv])"
_VOLATILE = re.compile(_PHRASE_START + "(?:" + "|".join(_PHRASES) + ")")

# Normalisation is applied until it stops changing the text (NFKC and case folding are not
# closed under each other for a few characters); two rounds are the norm, a third is rare.
_MAX_ROUNDS = 5


def normalise_text(text: str) -> str:
    """The comparable form of `text`: NFKC, case-folded, volatile phrases out, single spaces."""
    current = text
    for _ in range(_MAX_ROUNDS):
        following, phrases_removed = _normalise_once(current)
        if following == current:
            break
        current = following
        # Shortcut for the usual last round, which would only confirm the fixed point. When no
        # volatile phrase was removed, `following` is exactly the single-spaced text the regex
        # just searched without a match. If it is also XML-safe and its own NFKC case fold, the
        # next round maps it to itself step by step (split/join, xml_safe, fold, split/join,
        # the same fruitless search), so the loop would stop there with this same value.
        if not phrases_removed and _is_stable(following):
            break
    return current


def content_hash(text: str) -> str:
    """The versioned hash of `text`'s normalised form, e.g. ``"v3:9f86d0…"``."""
    return _hash_normalised(normalise_text(text))


@dataclass(frozen=True, slots=True)
class Signature:
    """What is compared of an article's text: its exact hash and its SimHash."""

    content_hash: str
    simhash: int


def text_signature(text: str) -> Signature:
    """Both hashes of `text`, normalising it once."""
    normalised = normalise_text(text)
    return Signature(_hash_normalised(normalised), simhash(normalised))


class Change(enum.Enum):
    """How a known article's new text relates to the stored one."""

    UNCHANGED = "unchanged"  # same normalised text: a counter, a stamp, whitespace at most
    EDITED = "edited"  # materially changed: update the item, same GUID
    REHASHED = "rehashed"  # stored under another hash version: cannot tell, keep, store new hash


def compare_texts(stored_hash: str, new_hash: str) -> Change:
    if stored_hash == new_hash:
        return Change.UNCHANGED
    if stored_hash.partition(":")[0] != new_hash.partition(":")[0]:
        return Change.REHASHED
    return Change.EDITED


def _hash_normalised(normalised: str) -> str:
    digest = hashlib.sha256(normalised.encode("utf-8")).hexdigest()
    return f"{HASH_VERSION}:{digest}"


def _normalise_once(text: str) -> tuple[str, int]:
    """One round of normalisation, and how many volatile phrases it removed."""
    # Whitespace first (str.split also splits on the controls \x1c-\x1f, which XML forbids),
    # then xml_safe: characters the feed would drop (other controls, lone surrogates) must not
    # make two texts differ, and lone surrogates cannot be encoded for hashing anyway.
    spaced = xml_safe(" ".join(text.split()))
    collapsed = " ".join(_fold(spaced).split())
    without_phrases, removed = _VOLATILE.subn(" ", collapsed)
    if not removed:
        return collapsed, 0  # what split/join would give back: `collapsed` is single-spaced
    return " ".join(without_phrases.split()), removed


# Unicode's default case folding keeps the Turkish dotless ı apart from I and i, and folds İ to
# "i" with a combining dot: the upper case of "ılık" is "ILIK", which folds to "ilik". All four
# fold to a plain i here (Unicode's Turkic folding, applied either way).
_TURKIC_I = str.maketrans({"ı": "i"})


def _fold(text: str) -> str:
    """NFKC, case folding (the Turkic i's as one), NFKC again."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = folded.replace("i\u0307", "i").translate(_TURKIC_I)
    return unicodedata.normalize("NFKC", folded)


def _is_stable(normalised: str) -> bool:
    """Whether a round's single-spaced result is left alone by xml_safe and by `_fold`."""
    return xml_safe(normalised) == normalised and _fold(normalised) == normalised
