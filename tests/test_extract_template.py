"""Site templates: fingerprints of blocks recurring across a source's pages remove a widget that
single-page extraction cannot tell from article text, and never remove text unique to a page."""

from __future__ import annotations

from worker.extract import ExtractOptions, extract, learn_boilerplate, page_fingerprints
from worker.extract.template import fingerprint, normalise_block
from worker.models import Article

# A made-up site. Its "From the editors" widget sits inside the article container, has no
# telling class names, no links and reads like prose: one page alone cannot spot it.
WIDGET = [
    "From the editors: every week we pick a handful of long reads from our archive, chosen "
    "because they still matter, and we send them to readers who asked for them.",
    "This week, our reporters revisit the lighthouse keepers of the northern isles and ask what "
    "became of the families who kept the lamps burning for three generations.",
]

ARTICLES = {
    "tides": [
        "The spring tides arrived two days early this year, flooding the lower harbour road "
        "twice before the council could put out its sandbags, and leaving the fish market shut.",
        "Harbour master Ines Varga said the readings matched the forecast almost to the "
        "centimetre, but that the wind had pushed the water further up the slipway than usual.",
        "Residents of Quay Street, who have asked for a flood barrier since 2015, said they would "
        "raise the matter again at next month's public meeting in the church hall.",
    ],
    "orchard": [
        "Volunteers replanted the community orchard on Saturday, putting in forty young apple "
        "and pear trees grafted from the old varieties that once grew in every garden here.",
        "The scheme, paid for by a lottery grant, will keep a record of each variety, and the "
        "first fruit should be ready for the autumn fair in about four years, the organisers said.",
        "Children from the primary school each adopted a tree, and will measure its growth every "
        "term as part of a science project that runs until they leave for secondary school.",
    ],
    "bridge": [
        "Repairs to the old packhorse bridge will begin in March, after engineers found that two "
        "of its five arches had shifted during the winter storms, the county said on Tuesday.",
        "The bridge will be closed to walkers for eight weeks while masons rebuild the parapet "
        "with stone from the same quarry that supplied the original builders in 1702.",
        "A temporary footpath across the meadow will be signposted from both ends of the lane, "
        "and the farmer who owns the field has agreed to keep his cattle away until May.",
    ],
}


def site_page(paragraphs: list[str], variant: int) -> str:
    # The widget's markup differs slightly between pages, as templates do over time.
    widget = "".join(
        f'<p class="w{variant}">{" " * variant}{text}</p>' if variant % 2 else f"<p>{text}</p>"
        for text in WIDGET
    )
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        "<html><head><title>Harbour Herald</title></head><body>"
        '<div class="top"><a href="/">Harbour Herald</a> <a href="/news">News</a></div>'
        f'<div class="main"><h1>A story</h1><div class="text">{body}'
        f'<div class="b{variant}">{widget}<p>{3 + variant} comments on this story</p></div>'
        "</div></div>"
        "</body></html>"
    )


def pages_ending_with(block: str) -> dict[str, str]:
    """Each article's page with `block` at the end of its article container."""
    return {
        slug: site_page(paras, 0).replace("</div></div></body>", f"{block}</div></div></body>")
        for slug, paras in ARTICLES.items()
    }


def fingerprints_of(pages: dict[str, str], *slugs: str) -> list[tuple[str, ...]]:
    """The block fingerprints of those pages, as the pipeline keeps them to learn from."""
    return [
        extract(pages[slug], f"https://herald.example/{slug}").block_fingerprints for slug in slugs
    ]


LEARNT_FROM = ("orchard", "bridge")


def alone_and_templated(pages: dict[str, str]) -> tuple[Article, Article]:
    """The tides page extracted alone, and with the template learnt from two other pages; the
    article's own paragraphs are in both."""
    url = "https://herald.example/tides"
    learnt = learn_boilerplate(fingerprints_of(pages, *LEARNT_FROM))
    alone = extract(pages["tides"], url)
    article = extract(pages["tides"], url, ExtractOptions(boilerplate=learnt))
    for paragraph in ARTICLES["tides"]:
        assert paragraph in alone.body_text
        assert paragraph in article.body_text
    return alone, article


def index_page() -> str:
    items = "".join(
        f'<li><a href="/{slug}">{paras[0][:60]}</a></li>' for slug, paras in ARTICLES.items()
    )
    widget = "".join(f"<p>{text}</p>" for text in WIDGET)
    return f"<html><body><ul>{items}</ul><div>{widget}</div></body></html>"


def test_fingerprint_ignores_case_digits_punctuation_and_spacing() -> None:
    assert fingerprint("5 Comments!") == fingerprint("12   comments")
    assert fingerprint("Popular posts from this blog") == fingerprint(
        "POPULAR POSTS FROM THIS BLOG"
    )
    assert fingerprint("Popular posts from this blog") != fingerprint("Popular posts from my blog")
    assert fingerprint("Home") is None  # too short to mean anything
    assert normalise_block("Hello, World — 2024!") == "hello world"


def test_learn_boilerplate_counts_each_page_once() -> None:
    pages = [("a", "a", "b"), ("a", "c"), ("d",)]
    assert learn_boilerplate(pages) == frozenset({"a"})
    assert learn_boilerplate(pages, min_pages=1) == frozenset({"a", "b", "c", "d"})
    assert learn_boilerplate([]) == frozenset()


def test_single_page_extraction_is_fooled_by_the_widget() -> None:
    article = extract(site_page(ARTICLES["tides"], 1), "https://herald.example/tides")
    assert "From the editors" in article.body_text


def test_learnt_template_removes_the_widget_and_keeps_article_text() -> None:
    urls = {slug: f"https://herald.example/{slug}" for slug in ARTICLES}
    seen = [
        extract(site_page(ARTICLES[slug], n), urls[slug]).block_fingerprints
        for n, slug in enumerate(["orchard", "bridge"], start=2)
    ]
    boilerplate = learn_boilerplate([*seen, page_fingerprints(index_page())])
    article = extract(
        site_page(ARTICLES["tides"], 1), urls["tides"], ExtractOptions(boilerplate=boilerplate)
    )
    for paragraph in ARTICLES["tides"]:
        assert paragraph in article.body_text
    assert "From the editors" not in article.body_text
    assert "lighthouse keepers" not in article.body_text
    assert "comments on this story" not in article.body_text
    assert "From the editors" not in article.body_html


def test_article_text_never_becomes_boilerplate() -> None:
    pages = [
        extract(site_page(paras, n), f"https://herald.example/{slug}").block_fingerprints
        for n, (slug, paras) in enumerate(ARTICLES.items())
    ]
    learnt = learn_boilerplate([*pages, page_fingerprints(index_page())])
    unique = {fingerprint(p) for paras in ARTICLES.values() for p in paras}
    assert not learnt & unique
    assert {fingerprint(text) for text in WIDGET} <= learnt


def test_page_fingerprints_match_article_fingerprints() -> None:
    html = site_page(ARTICLES["bridge"], 0)
    assert set(page_fingerprints(html)) == set(
        extract(html, "https://x.example/").block_fingerprints
    )


def test_ascii_text_fingerprints_as_the_unicode_path_does() -> None:
    """ASCII blocks take a byte-table shortcut; it must agree with the regex normalisation."""
    ascii_text = "Popular posts from this blog -- 12 Comments_here!"
    unicode_text = ascii_text + " \u2026"  # an ellipsis: not a letter, so normalised away
    assert not unicode_text.isascii()
    assert fingerprint(ascii_text) == fingerprint(unicode_text) is not None
    assert fingerprint("12 Comments, 5 + 7") is None  # too few letters either way
    assert fingerprint("12 Comments, 5 + 7\u2026") is None


def test_a_block_split_by_inline_markup_is_matched_as_learnt() -> None:
    """The template is learnt from the page's block texts; the renderer must look a block up by
    the same text, also when markup splits a word ("Sub<b>scribe</b>")."""
    split = (
        "<p>Sub<b>scribe</b> to the Herald: one e<i>mail</i> a week with the harbour news, "
        "the tide tables and the events of the coming weekend.</p>"
    )
    alone, article = alone_and_templated(pages_ending_with(split))
    assert "Subscribe to the Herald" in alone.body_text, "precondition: in the body"
    assert "Subscribe to the Herald" not in article.body_text


def test_template_checked_names_the_rendered_blocks_only() -> None:
    article = extract(site_page(ARTICLES["tides"], 0), "https://herald.example/tides")
    checked = set(article.template_checked)
    assert {fingerprint(p) for p in ARTICLES["tides"]} <= checked
    assert fingerprint(WIDGET[0]) in checked  # inside the article container: could be template
    assert checked < set(article.block_fingerprints)
    # The masthead's links are outside the rendered body: no template can change the article
    # through them.
    assert fingerprint("Harbour Herald News") not in checked


def test_a_template_of_unchecked_blocks_changes_nothing() -> None:
    """What lets a run skip re-extracting a page: a template naming none of the blocks the
    extractor looked up leaves the article as it was; one naming a looked-up block does not."""
    for n, (slug, paras) in enumerate(ARTICLES.items()):
        html, url = site_page(paras, n), f"https://herald.example/{slug}"
        plain = extract(html, url)
        unchecked = frozenset(plain.block_fingerprints) - set(plain.template_checked)
        outside = frozenset({*unchecked, fingerprint(WIDGET[0] + " elsewhere") or ""})
        again = extract(html, url, ExtractOptions(boilerplate=outside))
        assert again == plain
        widget = frozenset({fingerprint(WIDGET[0]) or ""})
        assert fingerprint(WIDGET[0]) in plain.template_checked
        changed = extract(html, url, ExtractOptions(boilerplate=widget))
        assert "From the editors" not in changed.body_text
        assert changed.body_text != plain.body_text


def test_a_block_of_inline_elements_parted_by_spaces_is_matched_as_learnt() -> None:
    """Whitespace between two inline elements parts their words in the block texts a template
    is learnt from, as in the rendered text the renderer looks blocks up by: a recurring credit
    line in `<b>` and `<i>` is learnt, and dropped, whatever spacing its markup has."""
    credit = (
        "<p><b>Photos by</b> <i>the Harbour Herald picture desk</i>\n<a href='/pictures'>"
        "see the gallery</a> <em>and order prints</em></p>"
    )
    pages = pages_ending_with(credit)
    alone, article = alone_and_templated(pages)
    line = "Photos by the Harbour Herald picture desk see the gallery and order prints"
    assert line in alone.body_text, "precondition: in the body, words parted"
    assert all(fingerprint(line) in prints for prints in fingerprints_of(pages, *LEARNT_FROM))
    assert fingerprint(line) in alone.template_checked
    assert "picture desk" not in article.body_text
