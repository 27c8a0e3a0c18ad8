"""Tell changed text from unchanged text: a versioned hash over normalised text. Pure, no I/O.

Identity is the canonical URL (the item's GUID); this module only answers "is this the same text?".
The hash carries its version (`v1:`), so a later change of `normalise_text` can be introduced as
`v2:` without every stored item suddenly looking edited and being republished.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from worker.xmlchars import xml_safe

HASH_VERSION = "v1"

# Volatile phrases that change between two fetches of an unchanged article. Matched after
# case folding and whitespace collapsing, so they are lower case with single spaces. Cheap,
# English-only patterns: each needs a number, so ordinary prose is never touched.
_VOLATILE = re.compile(
    "|".join(
        (
            # relative time: "5 minutes ago", "1 day ago"
            r"\b\d+ (?:second|minute|hour|day|week|month|year)s? ago\b",
            # reading time: "4 min read", "12 minutes read"
            r"\b\d+ min(?:ute)?s? read\b",
            # engagement counters: "12 comments", "1.2k views", "3,401 shares"
            r"\b\d[\d.,]*k? (?:comment|view|share|like|read|reaction)s?\b",
        )
    )
)

# Normalisation is applied until it stops changing the text (NFKC and case folding are not
# closed under each other for a few characters); two rounds are the norm, a third is rare.
_MAX_ROUNDS = 5


def normalise_text(text: str) -> str:
    """The comparable form of `text`: NFKC, case-folded, volatile phrases out, single spaces."""
    current = text
    for _ in range(_MAX_ROUNDS):
        following = _normalise_once(current)
        if following == current:
            break
        current = following
    return current


def content_hash(text: str) -> str:
    """The versioned hash of `text`'s normalised form, e.g. ``"v1:9f86d0…"``."""
    digest = hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()
    return f"{HASH_VERSION}:{digest}"


def _normalise_once(text: str) -> str:
    # Whitespace first (str.split also splits on the controls \x1c-\x1f, which XML forbids),
    # then xml_safe: characters the feed would drop (other controls, lone surrogates) must not
    # make two texts differ, and lone surrogates cannot be encoded for hashing anyway.
    spaced = xml_safe(" ".join(text.split()))
    folded = unicodedata.normalize("NFKC", spaced).casefold()
    folded = unicodedata.normalize("NFKC", folded)
    collapsed = " ".join(folded.split())
    return " ".join(_VOLATILE.sub(" ", collapsed).split())
