"""Near-duplicates: SimHash distances, the banded index, and syndicated copies in a run."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.sitekit import Site, article_html, prose, run_sites, source_toml, write_config
from worker.config import Settings
from worker.dedupe.content import text_signature
from worker.dedupe.simhash import (
    BITS,
    MAX_DISTANCE,
    SHINGLE_WORDS,
    band_probes,
    bands,
    hamming,
    simhash,
)
from worker.models import Item
from worker.store.state import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
THRESHOLD = Settings().near_duplicate_distance
# Different articles must stay at least this far above the threshold. bench/neardup.py measured
# 16 bits for the closest of 15,000 pairs of real articles, 6 above the default of 10.
MARGIN = 4

TOPIC = ("ferry", "strike", "harbour", "union")
ORIGINAL = prose(1, 40, TOPIC)
HEADLINE = ["Ferry strike: what it means for island families this winter."]
FOOTER = ["This story first appeared in The Island Courier and is republished with permission."]


def edited(sentences: list[str], where: tuple[int, ...] = (5, 17, 29)) -> list[str]:
    copy = list(sentences)
    for index in where:
        words = copy[index].split()
        words[2] = "several"
        words[-2] = "officials"
        copy[index] = " ".join(words)
    return copy


def distance(a: list[str], b: list[str]) -> int:
    return hamming(text_signature(" ".join(a)).simhash, text_signature(" ".join(b)).simhash)


# -- the hash ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "copy",
    [
        HEADLINE + ORIGINAL,
        ORIGINAL + FOOTER,
        edited(ORIGINAL),
        HEADLINE + edited(ORIGINAL) + FOOTER,
    ],
    ids=["new headline", "other footer", "3 edited sentences", "all three"],
)
def test_syndicated_copies_are_within_the_threshold(copy: list[str]) -> None:
    assert distance(ORIGINAL, copy) <= THRESHOLD


@pytest.mark.parametrize("seed", range(2, 12))
def test_different_articles_on_one_topic_are_far_apart(seed: int) -> None:
    other = prose(seed, 40, TOPIC)
    background = prose(99, 4, TOPIC)  # both carry the same background paragraph
    assert distance(ORIGINAL + background, other + background) >= THRESHOLD + MARGIN


def test_whitespace_and_case_do_not_move_the_simhash() -> None:
    text = " ".join(ORIGINAL)
    assert text_signature(text).simhash == text_signature("  " + text.upper() + "\n").simhash


def test_empty_and_short_texts() -> None:
    assert simhash("") == 0
    # Texts shorter than a shingle are one shingle: hashed, and told apart by their words.
    assert simhash("one two") != 0
    assert simhash("one two") != simhash("two one")


def plain_simhash(normalised: str) -> int:
    """SimHash as the module docstring defines it, one vote per bit and distinct shingle."""
    words = normalised.encode("utf-8").split()
    if not words:
        return 0
    width = min(SHINGLE_WORDS, len(words))
    shingles = {b" ".join(words[i : i + width]) for i in range(len(words) - width + 1)}
    votes = [0] * BITS
    for shingle in shingles:
        value = int.from_bytes(hashlib.blake2b(shingle, digest_size=BITS // 8).digest(), "big")
        for bit in range(BITS):
            votes[bit] += 1 if value >> bit & 1 else -1
    return sum(1 << bit for bit in range(BITS) if votes[bit] > 0)


texts_with_repeats = st.lists(
    st.sampled_from(["a", "b", "c", "ü", "ß", "12", "\u3000"]), max_size=40
)


@given(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=["Cs"])),
        texts_with_repeats.map(" ".join),
    )
)
def test_simhash_equals_the_plain_definition(text: str) -> None:
    assert simhash(text) == plain_simhash(text)


@given(st.integers(0, 2**BITS - 1), st.sets(st.integers(0, BITS - 1), max_size=MAX_DISTANCE))
def test_band_probes_find_every_hash_within_the_distance(value: int, flips: set[int]) -> None:
    other = value
    for bit in flips:
        other ^= 1 << bit
    probes = band_probes(value, len(flips))
    assert any(band in probe for band, probe in zip(bands(other), probes, strict=True))


# -- the store's index ------------------------------------------------------------------------


def stored(store: Store, source_id: str, guid: str, value: int, n: int) -> None:
    item = Item(
        source_id=source_id,
        guid=guid,
        url=guid,
        title=guid,
        content_html="<p>x</p>",
        content_hash=f"v2:{n:064x}",
        first_seen=T0,
        published=T0,
        updated=T0,
        simhash=value,
    )
    assert store.add_item(item)


def test_store_finds_the_nearest_item_within_the_distance(state_url: str) -> None:
    store = Store.open(state_url)
    base = 0xDEADBEEF_01234567
    stored(store, "a", "https://a/1", base ^ 0b111, 1)  # 3 bits away
    stored(store, "a", "https://a/2", base ^ (2**64 - 1), 2)  # every bit differs
    stored(store, "b", "https://b/1", base, 3)  # identical, other source
    match = store.near_duplicate(base, 10, "a")
    assert match is not None and (match.guid, match.distance) == ("https://a/1", 3)
    assert store.near_duplicate(base, 2, "a") is None
    anywhere = store.near_duplicate(base, 10)
    assert anywhere is not None and (anywhere.source_id, anywhere.distance) == ("b", 0)


def test_simhash_with_the_top_bit_set_round_trips(state_url: str) -> None:
    store = Store.open(state_url)
    stored(store, "a", "https://a/1", 2**64 - 1, 1)
    identity = store.identity("a", "https://a/1")
    assert identity is not None and identity.simhash == 2**64 - 1


# -- in a run ---------------------------------------------------------------------------------


def test_a_syndicated_copy_in_one_source_is_published_once(tmp_path: Path) -> None:
    site = Site()
    site.pages["/a.html"] = article_html("Ferry strike", ORIGINAL)
    site.pages["/b.html"] = article_html("Islanders face ferry strike", HEADLINE + edited(ORIGINAL))
    site.listed = ["/a.html", "/b.html"]
    config = write_config(tmp_path, source_toml("news", site))
    (report,) = run_sites(config, [site], T0)
    assert report.items_new == 1
    (skip,) = report.skipped
    assert skip.url.endswith("/b.html")
    assert skip.reason.startswith(f"near-duplicate of {site.origin}/a.html")


def test_different_articles_in_one_source_are_both_published(tmp_path: Path) -> None:
    site = Site()
    site.pages["/a.html"] = article_html("Ferry strike", ORIGINAL)
    site.pages["/b.html"] = article_html("Ferry talks", prose(5, 40, TOPIC))
    site.listed = ["/a.html", "/b.html"]
    (report,) = run_sites(write_config(tmp_path, source_toml("news", site)), [site], T0)
    assert report.items_new == 2 and report.skipped == []


@pytest.mark.parametrize("across", [False, True])
def test_copies_across_sources_only_when_enabled(tmp_path: Path, across: bool) -> None:
    first, second = Site("https://one.example.test"), Site("https://two.example.test")
    first.pages["/a.html"] = article_html("Ferry strike", ORIGINAL)
    second.pages["/copy.html"] = article_html("Ferry strike (wire)", ORIGINAL + FOOTER)
    first.listed, second.listed = ["/a.html"], ["/copy.html"]
    sources = source_toml("one", first) + source_toml("two", second)
    worker = f"dedupe_across_sources = {'true' if across else 'false'}\nsource_concurrency = 1\n"
    reports = {
        r.source_id: r
        for r in run_sites(write_config(tmp_path, sources, worker), [first, second], T0)
    }
    assert reports["one"].items_new == 1
    assert reports["two"].items_new == (0 if across else 1)
    if across:
        assert "in source one" in reports["two"].skipped[0].reason
