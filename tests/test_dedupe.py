from __future__ import annotations

import os
import re
import sys
import unicodedata

from hypothesis import assume, example, given
from hypothesis import strategies as st

from worker.dedupe.content import (
    _MAX_ROUNDS,
    _PHRASES,
    _VOLATILE,
    HASH_VERSION,
    _is_stable,
    _normalise_once,
    content_hash,
    normalise_text,
    text_signature,
)
from worker.publish.xmlchars import xml_safe

# Words: letters and digits only, so a word never holds whitespace and never is, alone, a
# volatile phrase (those need a number followed by a space and a keyword).
words = st.text(
    alphabet=st.characters(categories=["Lu", "Ll", "Lt", "Lo", "Nd"]), min_size=1, max_size=12
)
# Every character Python counts as whitespace (str.split splits on all of them).
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
whitespace = st.text(alphabet=WHITESPACE, min_size=1, max_size=4)


@given(st.text())
def test_normalising_twice_changes_nothing(text: str) -> None:
    once = normalise_text(text)
    assert normalise_text(once) == once


@given(st.lists(words, min_size=1, max_size=8), st.data())
def test_whitespace_only_differences_give_the_same_hash(tokens: list[str], data) -> None:
    gaps = [data.draw(whitespace) for _ in range(len(tokens) + 1)]
    spaced = gaps[0] + "".join(token + gap for token, gap in zip(tokens, gaps[1:], strict=True))
    assert content_hash(spaced) == content_hash(" ".join(tokens))


# Letters only: no list of these words can hold a volatile phrase, so distinct lists must differ.
lowercase_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12)


@given(st.lists(lowercase_words, min_size=1), st.lists(lowercase_words, min_size=1))
def test_different_words_give_different_hashes(first: list[str], second: list[str]) -> None:
    assume(first != second)
    assert content_hash(" ".join(first)) != content_hash(" ".join(second))


@given(st.lists(words, min_size=1, max_size=8), st.lists(words, min_size=1, max_size=8))
def test_hash_differs_exactly_when_normal_forms_differ(first: list[str], second: list[str]) -> None:
    same_text = normalise_text(" ".join(first)) == normalise_text(" ".join(second))
    assert (content_hash(" ".join(first)) == content_hash(" ".join(second))) == same_text


def test_different_words_give_different_hashes_plainly() -> None:
    assert content_hash("The cat sat.") != content_hash("The dog sat.")


def test_hash_is_versioned_sha256() -> None:
    assert re.fullmatch(rf"{HASH_VERSION}:[0-9a-f]{{64}}", content_hash("hello"))


def test_case_width_and_compatibility_forms_are_folded() -> None:
    assert normalise_text("  HELLO\u00a0Ｗｏｒｌｄ \t ﬁne\n") == "hello world fine"
    assert content_hash("Straße") == content_hash("STRASSE")


def test_volatile_phrases_are_left_out() -> None:
    base = content_hash("Budget passes. The vote was close.")
    assert content_hash("Budget passes. 5 minutes ago The vote was close. 12 comments") == base
    assert content_hash("Budget passes. 4 min read The vote was close. 1.2k views") == base


def test_numbers_in_prose_are_kept() -> None:
    assert content_hash("The vote was 5 to 4.") != content_hash("The vote was 6 to 3.")


def test_characters_a_feed_would_drop_do_not_count() -> None:
    assert content_hash("a\x00b\ud800c") == content_hash("abc")


# -- v2: edit stamps and counters, and the signature feeding near-duplicate checks ---------------

VOLATILE = (
    "Updated 10:42 am",
    "Last updated: 3 May 2024, 10:42 BST",
    "modified on 2024-05-03",
    "1,204 views",
    "Views: 1,204",
    "12 comments",
    "5 minutes ago",
    "4 min read",
)


@given(
    st.lists(lowercase_words, min_size=2, max_size=12),
    st.sampled_from(VOLATILE),
    st.data(),
)
def test_a_volatile_phrase_between_words_does_not_change_the_hash(
    tokens: list[str], phrase: str, data
) -> None:
    at = data.draw(st.integers(0, len(tokens)))
    noisy = " ".join([*tokens[:at], phrase, *tokens[at:]])
    assert content_hash(noisy) == content_hash(" ".join(tokens))


@given(st.lists(words, min_size=1, max_size=10), st.data())
def test_signature_agrees_with_content_hash_and_ignores_spacing(tokens: list[str], data) -> None:
    gaps = [data.draw(whitespace) for _ in range(len(tokens) + 1)]
    spaced = gaps[0] + "".join(token + gap for token, gap in zip(tokens, gaps[1:], strict=True))
    signature = text_signature(spaced)
    assert signature.content_hash == content_hash(" ".join(tokens))
    assert signature.simhash == text_signature(" ".join(tokens)).simhash


@given(st.text())
@example("ı")  # dotless i: once found by a rare draw (upper case "I" folded to "i")
@example("İstanbul ılık")
def test_normal_form_is_single_spaced_and_stable(text: str) -> None:
    normal = normalise_text(text)
    assert normal == " ".join(normal.split())
    assert normalise_text(normal.upper()) == normalise_text(normal)


def test_every_normal_form_is_closed_under_case_changes() -> None:
    """Checked for every character case mapping or NFKC changes (a few thousand), not left to
    a random draw: a case change of a text never counts as an edit."""
    changing = [
        c
        for c in map(chr, range(sys.maxunicode + 1))
        if not 0xD800 <= ord(c) <= 0xDFFF
        and (c.upper() != c or c.casefold() != c or unicodedata.normalize("NFKC", c) != c)
    ]
    assert len(changing) > 5000
    unstable = [
        c
        for c in changing
        if normalise_text(normal := normalise_text(c)) != normal
        or normalise_text(normal.upper()) != normal
        or normalise_text(normal.lower()) != normal
    ]
    assert unstable == []


def test_turkish_case_changes_are_no_edit() -> None:
    assert content_hash("ılık İstanbul sabahı") == content_hash("ILIK İSTANBUL SABAHI")
    assert content_hash("İstanbul") == content_hash("istanbul") == content_hash("ISTANBUL")


def test_prose_about_updates_is_kept() -> None:
    assert normalise_text("They updated 3 systems.") == "they updated 3 systems."
    assert normalise_text("Updated guidance was published") == "updated guidance was published"
    assert content_hash("Budget updated 10:42 passes") == content_hash("Budget passes")


# -- the shortcut in normalise_text must not change any result -----------------------------------


def plain_normalise(text: str) -> str:
    """normalise_text as specified: whole rounds until one changes nothing, no shortcut."""
    current = text
    for _ in range(_MAX_ROUNDS):
        spaced = xml_safe(" ".join(current.split()))
        casefolded = unicodedata.normalize("NFKC", spaced).casefold()
        turkic = casefolded.replace("i\u0307", "i").replace("ı", "i")  # both Turkic i's are i
        folded = unicodedata.normalize("NFKC", turkic)
        collapsed = " ".join(folded.split())
        following = " ".join(_VOLATILE.sub(" ", collapsed).split())
        if following == current:
            break
        current = following
    return current


# Pieces that exercise every branch: volatile phrases (whole and in parts, so a removal can join
# a new phrase), characters NFKC and case folding change or disagree on, and ones xml_safe drops.
TRICKY = (
    *VOLATILE,
    "updated",
    "last",
    "on",
    "at",
    "10:42",
    "3 may",
    "2024",
    "5",
    "12",
    "minutes",
    "ago",
    "comments",
    "Views:",
    "ﬁ",
    "ẞ",
    "İ",
    "ı",
    "ς",
    "ǅ",
    "１２",
    "\u00a8",
    "e\u0301",
    "\u0345",
    "\U0001d400",
    "\x00",
    "\ud800",
    "\ufffe",
    "\x1c",
    "\u3000",
)
tricky_texts = st.lists(st.one_of(st.sampled_from(TRICKY), st.text(max_size=4)), max_size=12).map(
    " ".join
)


@given(st.one_of(st.text(), tricky_texts))
def test_normalise_text_equals_the_plain_rounds(text: str) -> None:
    assert normalise_text(text) == plain_normalise(text)


@given(st.one_of(st.text(), tricky_texts))
def test_a_stable_single_spaced_text_without_phrases_is_a_fixed_point(text: str) -> None:
    # What the shortcut relies on, for any such text, not only for a round's results.
    single = " ".join(text.split())
    assume(_VOLATILE.search(single) is None)
    if _is_stable(single):
        assert _normalise_once(single) == (single, 0)
    else:
        assert _normalise_once(single)[0] != single


def test_normalise_text_equals_the_plain_rounds_where_a_removal_joins_a_phrase() -> None:
    # Removing "12 comments" leaves "5 minutes ago", which only the next round removes.
    text = "Budget updated 5 12 comments minutes ago passes"
    assert normalise_text(text) == plain_normalise(text) == "budget updated passes"


# The phrase search checks a phrase's first character up front; it must find exactly what
# trying every phrase at every position finds.
PLAIN_VOLATILE = re.compile("|".join(_PHRASES))


@given(st.one_of(st.text(), tricky_texts))
def test_volatile_search_equals_trying_every_phrase(text: str) -> None:
    for variant in (text, " ".join(text.casefold().split())):
        assert _VOLATILE.subn(" ", variant) == PLAIN_VOLATILE.subn(" ", variant)


def test_every_volatile_example_is_found_by_both_searches() -> None:
    for phrase in VOLATILE:
        folded = phrase.casefold()
        assert _VOLATILE.fullmatch(folded) is not None, phrase
        assert PLAIN_VOLATILE.fullmatch(folded) is not None, phrase


def test_property_tests_draw_the_same_examples_on_every_run() -> None:
    from hypothesis import settings

    if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci":  # tests/conftest.py
        current = settings()
        assert current.derandomize and current.database is None and current.deadline is None
