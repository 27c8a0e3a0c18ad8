"""The noise vocabulary: one test per group of class/id hints and of widget labels."""

from __future__ import annotations

import pytest

from worker.extract.body import FURNITURE_AND_HIDDEN
from worker.extract.noise import (
    NOISE_HINTS,
    NOISE_LABELS,
    hint_groups,
    is_content_hint,
    is_noise_hint,
    label_group,
    noise_groups,
)

# (group, hints that must match it, hints that must not be noise at all)
HINT_CASES = [
    (
        "navigation",
        [
            "primary-navigation",
            "navbar-top",
            "nav",
            "breadcrumbs",
            "site-header",
            "offcanvas-menu",
            "menu-drawer",
            "navegacion-principal",
        ],
        [],
    ),
    ("sidebar", ["sidebar-right", "widget widget_archive", "right-rail rail"], ["railway-story"]),
    (
        "related",
        [
            "jp-relatedposts",
            "most-popular",
            "outbrain-widget",
            "read-more",
            "noticias-relacionadas",
            "articoli-correlati",
            "lire-aussi",
            "powiazane-artykuly",
            "ahnliche-artikel",
        ],
        [],
    ),
    (
        "share",
        [
            "share-bar",
            "social-icons",
            "sharedaddy",
            "artikel-teilen",
            "partage",
            "compartir-redes",
            "udostepnij",
        ],
        [],
    ),
    (
        "newsletter",
        ["newsletter-signup", "subscribe-box", "newsletter-abonnieren", "suscribete"],
        [],
    ),
    (
        "consent",
        [
            "cookie-notice",
            "gdpr-banner",
            "cmp",
            "didomi-popup",
            "onetrust-banner-sdk",
            "sp_message_container_123",
            "qc-cmp2-container",
        ],
        [],
    ),
    (
        "comments",
        [
            "comments-area",
            "disqus_thread",
            "comment-respond",
            "kommentare",
            "comentarios",
            "sekcja-komentarzy",
            "commentaires",
            "reacties",
        ],
        [],
    ),
    (
        "ads",
        [
            "ad-slot",
            "ad",
            "ads top",
            "advertisement",
            "sponsored-content",
            "anzeige",
            "publicidad",
            "reklama",
        ],
        ["header-lead", "anzeigen-text"],
    ),
    (
        "byline",
        ["byline", "entry-meta", "author-box", "tags-links", "autor", "fecha", "schlagworte"],
        ["metadata-free"],
    ),
    ("media", ["gallery-slides", "slideshow", "owl-carousel", "swiper-slider"], []),
    ("footer", ["site-footer", "copyright", "impressum-links"], []),
    ("hidden", ["sr-only", "visually-hidden", "hidden", "login-modal", "popup", "dialog"], []),
]


def test_every_group_has_cases() -> None:
    assert {case[0] for case in HINT_CASES} == set(NOISE_HINTS)


@pytest.mark.parametrize(("group", "hits", "misses"), HINT_CASES, ids=[c[0] for c in HINT_CASES])
def test_hint_group(group: str, hits: list[str], misses: list[str]) -> None:
    for hint in hits:
        assert group in noise_groups(hint), hint
        assert is_noise_hint(hint), hint
    for hint in misses:
        assert group not in noise_groups(hint), hint


def test_grouped_hint_regex_finds_what_a_flat_alternation_finds() -> None:
    """The hint regex groups its words by first letter for speed: on hints built from the
    vocabulary itself (words inside words, glued, at edges), it finds the same words in the same
    order as the plain alternation, tokens first, then fragments, each longest first."""
    import itertools
    import re

    from worker.extract import noise

    def flat(words: dict[str, str]) -> str:
        return "|".join(map(re.escape, sorted(words, key=len, reverse=True)))

    plain = re.compile(
        f"(?<![a-z0-9])(?:{flat(noise._TOKEN_GROUP)})(?![a-z0-9])|{flat(noise._FRAGMENT_GROUP)}"
    )
    words = sorted({*noise._TOKEN_GROUP, *noise._FRAGMENT_GROUP})
    hints = [
        *words,
        *(f"{a}{b}" for a, b in itertools.product(words[::7], words[::5])),
        *(f"x{a}-{b}2" for a, b in itertools.product(words[::5], words[::7])),
        *(f"{a} {b}_{a}" for a, b in zip(words, reversed(words), strict=True)),
    ]
    for hint in hints:
        assert noise._HINT_WORDS.findall(hint) == plain.findall(hint), hint


@pytest.mark.parametrize(
    "hint", ["entry-content", "article-body", "post-body", "story-text", "main", "hentry"]
)
def test_content_hints_are_not_noise(hint: str) -> None:
    assert is_content_hint(hint)
    assert not is_noise_hint(hint)


@pytest.mark.parametrize(
    "hint", ["article-comments", "post-share", "entry-footer", "content-related", "entry-meta"]
)
def test_strong_groups_beat_content_hints(hint: str) -> None:
    assert is_noise_hint(hint)


def test_weak_groups_yield_to_content_hints() -> None:
    assert "sidebar" in hint_groups("widget-content")
    assert not is_noise_hint("widget-content main")
    assert not is_noise_hint("article-header")
    assert not is_noise_hint("main-navigation")  # the <nav> tag catches these, not the hint


def test_page_builder_blocks_are_not_sidebar_widgets() -> None:
    for hint in ("elementor-widget-wrap", "elementor-widget-container", "so-widget-text"):
        assert not is_noise_hint(hint), hint
    assert is_noise_hint("widget widget_recent_entries")
    assert is_noise_hint("elementor-widget-share-buttons")  # share stays strong


def test_case_is_ignored() -> None:
    assert is_noise_hint("ShareBar") and is_noise_hint("COMMENTS")


# (group, labels that must match it, texts that must not)
LABEL_CASES = [
    ("related", ["Popular posts from this blog", "Related Articles", "Lire aussi :",
                 "Das könnte Sie auch interessieren", "You may also like…",
                 "Самые популярные диеты", "Czytaj także", "Artículos relacionados",
                 "Čtěte také", "Leia também", "I più letti", "Lees ook", "Zum Thema",
                 "Kunden kauften auch", "Ähnliche Produkte", "Produits similaires",
                 "Recetas relacionadas"],
     ["Related parties in the dispute met on Monday to agree the terms of the sale"]),
    ("share", ["Share this:", "Teilen mit:", "Udostępnij", "Condividi su Facebook",
               "Compartilhe"], ["Shares fell"]),
    ("newsletter", ["Subscribe to our newsletter", "Sign up", "Zapisz się do newslettera",
                    "Iscriviti alla newsletter"], []),
    ("comments", ["Comments (14)", "Leave a Reply", "Kommentare", "Отзывы", "Komentarze (12)",
                  "Deja un comentario", "Avis clients", "Kundenbewertungen"],
     ["Avis de tempête sur la côte atlantique"]),
    ("navigation", ["Labels", "Tags:", "Schlagwörter:", "Étiquettes", "Síguenos"], []),
    ("ads", ["Advertisement", "ANZEIGE", "Advert", "Publicidade", "Gesponsert"],
     ["Advertising revenue fell", "Advert agency"]),
]  # fmt: skip


def test_every_label_group_has_cases() -> None:
    assert {case[0] for case in LABEL_CASES} == set(NOISE_LABELS)


@pytest.mark.parametrize(("group", "hits", "misses"), LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
def test_label_group(group: str, hits: list[str], misses: list[str]) -> None:
    for text in hits:
        assert label_group(text) == group, text
    for text in misses:
        assert label_group(text) is None, text


# --- Furniture removal: outermost elements only, in document order ------------------------------

PROSE = (
    "The council voted on Tuesday to keep the library open on Sundays, after a petition signed "
    "by more than two thousand residents asked for longer hours during the exam season. "
) * 8  # long prose with no links: a flagged element holding it is the article's wrapper


def test_furniture_is_outermost_and_skips_only_what_goes() -> None:
    from worker.extract.body import Hints, furniture
    from worker.extract.htmlparse import parse_html

    tree = parse_html(
        "<body>"
        '<div class="sidebar" id="side"><div class="widget"><ul class="menu">'
        '<li class="menu-item">Home</li></ul></div></div>'
        '<div class="share-bar" id="share">Share</div>'
        f'<div class="ad_body" id="wrapper"><p>{PROSE}</p>'
        '<div class="related-posts" id="inner">Related</div></div>'
        '<aside id="rail"><div class="promo">More</div></aside>'
        "</body>"
    )
    assert tree.body is not None
    doomed = furniture(tree.body, Hints())
    # Inside a doomed element nothing is asked about; inside a kept (prose) one, all is.
    assert [node.attributes.get("id") for node in doomed] == ["side", "share", "inner", "rail"]


def test_furniture_matching_several_selectors_is_listed_once() -> None:
    """lexbor reports an element once per part of the candidates' selector it matches (a
    hidden `nav`, a `div` with a class and `display:none`): each is asked about and listed
    once, so it is decomposed once."""
    from worker.extract.body import Hints, furniture
    from worker.extract.htmlparse import parse_html

    tree = parse_html(
        "<body>"
        '<div class="share-bar" id="a" style="display:none" hidden>Share</div>'
        '<nav id="b" hidden aria-hidden="true">Menu</nav>'
        f'<div class="sidebar" id="c" style="visibility:hidden"><p>{PROSE}</p></div>'
        f"<p>{PROSE}</p>"
        "</body>"
    )
    assert tree.body is not None
    assert len(tree.body.css("#a, #b, #c")) == 3
    matches = [node.attributes.get("id") for node in tree.body.css(FURNITURE_AND_HIDDEN)]
    assert len(matches) > len(set(matches))  # lexbor repeats them
    doomed = furniture(tree.body, Hints())
    assert [node.attributes.get("id") for node in doomed] == ["a", "b", "c"]
