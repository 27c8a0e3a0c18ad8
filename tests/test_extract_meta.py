"""worker.extract.meta: each metadata source on a small page of its own, precedence, bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from selectolax.lexbor import LexborHTMLParser

from worker.extract.meta import Metadata, extract_metadata, parse_date

URL = "https://news.example/world/2024/story.html"


def meta(head: str = "", body: str = "", html_attrs: str = "") -> Metadata:
    page = f"<html {html_attrs}><head>{head}</head><body>{body}</body></html>"
    return extract_metadata(LexborHTMLParser(page), URL)


def jsonld(data: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_empty_page_gives_empty_metadata() -> None:
    assert meta() == Metadata()


# --- Title -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "body"),
    [
        (jsonld({"@type": "NewsArticle", "headline": "The Headline"}), ""),
        ('<meta property="og:title" content="The Headline">', ""),
        ('<meta name="twitter:title" content="The Headline">', ""),
        ("", "<header><h1>Site</h1></header><article><h1>The Headline</h1></article>"),
        ("", "<main><h1>The Headline</h1></main>"),
        ("<title>The Headline</title>", ""),
    ],
)
def test_title_sources(head: str, body: str) -> None:
    assert meta(head, body).title == "The Headline"


@pytest.mark.parametrize("separator", [" | ", " - ", " — ", " – "])
def test_title_site_suffix_matching_site_name_is_stripped(separator: str) -> None:
    head = (
        f"<title>Short one{separator}Daily Planet</title>"
        '<meta property="og:site_name" content="Daily Planet">'
    )
    assert meta(head).title == "Short one"


def test_title_clear_suffix_is_stripped_without_site_name() -> None:
    assert meta("<title>Council approves the new budget plan | Gazette</title>").title == (
        "Council approves the new budget plan"
    )


def test_title_separator_inside_headline_is_kept() -> None:
    assert meta("<title>Review - The Matrix Resurrections</title>").title == (
        "Review - The Matrix Resurrections"
    )


def test_og_title_loses_site_name_too() -> None:
    head = (
        '<meta property="og:title" content="Big news | Daily Planet">'
        '<meta property="og:site_name" content="Daily Planet">'
    )
    assert meta(head).title == "Big news"


def test_title_precedence_jsonld_over_og_over_title() -> None:
    head = '<title>From title</title><meta property="og:title" content="From og">' + jsonld(
        {"@type": "Article", "headline": "From JSON-LD"}
    )
    assert meta(head).title == "From JSON-LD"
    assert meta(head.replace("Article", "Thing")).title == "From og"


def test_title_entities_are_decoded() -> None:
    head = jsonld({"@type": "Article", "headline": "Tom &amp; Jerry&#8217;s <b>day</b>"})
    assert meta(head).title == "Tom & Jerry’s day"


# --- Authors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "body"),
    [
        (jsonld({"@type": "Article", "author": "Jane Doe"}), ""),
        (jsonld({"@type": "Article", "author": {"@type": "Person", "name": "Jane Doe"}}), ""),
        (jsonld({"@type": "Article", "author": [{"name": "Jane Doe"}, "Jane Doe"]}), ""),
        ('<meta name="author" content="Jane Doe">', ""),
        ('<meta property="article:author" content="Jane Doe">', ""),
        ("", '<a rel="author" href="/people/jane">Jane Doe</a>'),
        ("", '<span itemprop="author">Jane Doe</span>'),
        ("", '<div itemprop="author" itemscope><span itemprop="name">Jane Doe</span></div>'),
        ("", '<p class="byline">By Jane Doe</p>'),
        ("", '<span class="author-name">Jane Doe</span>'),
    ],
)
def test_author_sources(head: str, body: str) -> None:
    assert meta(head, body).authors == ("Jane Doe",)


def test_authors_keep_order_and_deduplicate() -> None:
    head = jsonld({"@type": "Article", "author": ["Ann Lee", {"name": "Bo Chan"}, "ann lee"]})
    assert meta(head).authors == ("Ann Lee", "Bo Chan")


def test_article_author_url_is_not_a_name() -> None:
    head = (
        '<meta property="article:author" content="https://facebook.com/jane">'
        '<meta property="article:author" content="Jane Doe">'
    )
    assert meta(head).authors == ("Jane Doe",)


def test_author_precedence_metadata_over_byline() -> None:
    head = jsonld({"@type": "Article", "author": "From JSON-LD"})
    body = '<p class="byline">By Someone Else</p>'
    assert meta(head, body).authors == ("From JSON-LD",)
    assert meta('<meta name="author" content="From Meta">', body).authors == ("From Meta",)


BYLINE_BODIES = [
    '<span class="author byline">Ann Lee</span><p class="xauthor">Not Her</p>',
    '<p class="ByLine">Bo Chan</p><p class="post-author">Cy Dee</p>',
    '<p class="byline\xa0wide">Not Him</p><p class="entry-author\tx">Di Eng</p>',
    '<p class="authorship">Nobody</p><p class="AUTHOR">Ed Fox</p><i class="author">Gil Ho</i>',
]


@pytest.mark.parametrize("doctype", ["<!DOCTYPE html>", ""])  # standards and quirks mode
@pytest.mark.parametrize("body", BYLINE_BODIES)
def test_byline_query_answers_as_the_class_selectors_do(doctype: str, body: str) -> None:
    """The bylines come from one cheap query and a check of the class words; lexbor's
    twelve class selectors (case-insensitive in quirks mode only, split at ASCII spaces only)
    find the same names."""
    from worker.extract import meta as meta_mod

    tree = LexborHTMLParser(f"{doctype}<html><body>{body}</body></html>")
    expected = meta_mod._dedupe(meta_mod._markup_values(tree, meta_mod._BYLINE_SELECTOR))
    assert meta_mod._dedupe(meta_mod._byline_values(tree)) == expected
    assert expected  # every body holds a byline in both modes


def test_long_byline_is_not_an_author() -> None:
    body = '<div class="byline">By Jane Doe, Senior Correspondent | Updated 3 May 2024, 10:00</div>'
    assert meta(body=body).authors == ()


def test_author_reference_by_id_in_graph() -> None:
    graph = {
        "@graph": [
            {"@type": "Article", "author": {"@id": "https://news.example/#/person/1"}},
            {"@type": "Person", "@id": "https://news.example/#/person/1", "name": "Jane Doe"},
        ]
    }
    assert meta(jsonld(graph)).authors == ("Jane Doe",)


# --- Dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "body"),
    [
        (jsonld({"@type": "NewsArticle", "datePublished": "2024-03-05T10:20:30Z"}), ""),
        ('<meta property="article:published_time" content="2024-03-05T10:20:30+00:00">', ""),
        ('<meta name="date" content="2024-03-05T10:20:30Z">', ""),
        ('<meta name="pubdate" content="2024-03-05T10:20:30Z">', ""),
        ('<meta name="publishdate" content="2024-03-05T10:20:30Z">', ""),
        ('<meta name="DC.date.issued" content="2024-03-05T10:20:30Z">', ""),
        ('<meta name="sailthru.date" content="2024-03-05 10:20:30">', ""),
        ('<meta name="parsely-pub-date" content="2024-03-05T10:20:30Z">', ""),
        ('<meta itemprop="datePublished" content="2024-03-05T10:20:30Z">', ""),
        ("", '<time itemprop="datePublished" datetime="2024-03-05T10:20:30Z">5 March</time>'),
        ("", '<article><time datetime="2024-03-05T11:20:30+01:00">5 March</time></article>'),
    ],
)
def test_published_sources(head: str, body: str) -> None:
    assert meta(head, body).published == utc(2024, 3, 5, 10, 20, 30)


@pytest.mark.parametrize(
    "head",
    [
        jsonld({"@type": "BlogPosting", "dateModified": "2024-03-06T08:00:00Z"}),
        '<meta property="article:modified_time" content="2024-03-06T08:00:00Z">',
        '<meta property="og:updated_time" content="2024-03-06T08:00:00Z">',
        '<meta itemprop="dateModified" content="2024-03-06T08:00:00Z">',
    ],
)
def test_modified_sources(head: str) -> None:
    assert meta(head).modified == utc(2024, 3, 6, 8)


def test_time_outside_article_is_ignored() -> None:
    assert meta(body='<aside><time datetime="2020-01-01">old</time></aside>').published is None


def test_date_precedence_and_fallthrough_on_garbage() -> None:
    head = (
        jsonld({"@type": "Article", "datePublished": "not a date"})
        + '<meta property="article:published_time" content="2024-03-05T10:20:30Z">'
        + '<meta name="date" content="2020-01-01">'
    )
    assert meta(head).published == utc(2024, 3, 5, 10, 20, 30)


def test_naive_date_is_utc_and_unparseable_is_none() -> None:
    naive = meta('<meta property="article:published_time" content="2024-03-05 10:20">')
    assert naive.published == utc(2024, 3, 5, 10, 20)
    assert naive.published is not None and naive.published.tzinfo is UTC
    assert meta('<meta property="article:published_time" content="yesterday">').published is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-05", utc(2024, 3, 5)),
        ("2024-03-05T10:20:30Z", utc(2024, 3, 5, 10, 20, 30)),
        ("2024-03-05T10:20:30.123Z", utc(2024, 3, 5, 10, 20, 30, 123000)),
        ("2024-03-05T10:20:30.123456789Z", utc(2024, 3, 5, 10, 20, 30, 123456)),
        ("2024-03-05T12:20:30+02:00", utc(2024, 3, 5, 10, 20, 30)),
        ("2024-03-05T05:20:30-0500", utc(2024, 3, 5, 10, 20, 30)),
        ("2024-03-05T12:20:30 +02:00", utc(2024, 3, 5, 10, 20, 30)),
        ("2024-03-05 10:20:30", utc(2024, 3, 5, 10, 20, 30)),
        ("2024-03-05 10:20:30 UTC", utc(2024, 3, 5, 10, 20, 30)),
        ("  2024-03-05T10:20:30Z\n", utc(2024, 3, 5, 10, 20, 30)),
        ("Tue, 05 Mar 2024 10:20:30 GMT", utc(2024, 3, 5, 10, 20, 30)),
        ("Tue, 05 Mar 2024 11:20:30 +0100", utc(2024, 3, 5, 10, 20, 30)),
        ("Tue, 05 Mar 2024 10:20:30 -0000", utc(2024, 3, 5, 10, 20, 30)),
        ("1709634030", utc(2024, 3, 5, 10, 20, 30)),
        ("1709634030000", utc(2024, 3, 5, 10, 20, 30)),
        ("2024/03/05 10:20", utc(2024, 3, 5, 10, 20)),
        ("March 5, 2024", utc(2024, 3, 5)),
        ("5 March 2024", utc(2024, 3, 5)),
        ("05.03.2024", utc(2024, 3, 5)),
    ],
)
def test_parse_date_formats(value: str, expected: datetime) -> None:
    parsed = parse_date(value)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value", ["", "   ", "garbage", "2024-13-45", "0000-00-00", "yesterday at 5", "x" * 500]
)
def test_parse_date_garbage_is_none(value: str) -> None:
    assert parse_date(value) is None


# --- JSON-LD shapes ----------------------------------------------------------------------------


def test_graph_with_webpage_first() -> None:
    graph = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebPage", "name": "Page name | Site"},
            {"@type": "WebSite", "name": "Site"},
            {"@type": ["Article", "NewsArticle"], "headline": "From graph", "articleBody": "Body."},
        ],
    }
    found = meta(jsonld(graph))
    assert found.title == "From graph"
    assert found.jsonld_body == "Body."


def test_list_of_blocks_and_nested_main_entity() -> None:
    data = [
        {"@type": "BreadcrumbList", "itemListElement": []},
        {"@type": "WebPage", "mainEntity": {"@type": "ReportageNewsArticle", "headline": "Nested"}},
    ]
    assert meta(jsonld(data)).title == "Nested"


def test_broken_block_is_skipped_and_next_block_read() -> None:
    head = '<script type="application/ld+json">{"@type": "Article", "headline": </script>' + jsonld(
        {"@type": "Article", "headline": "Second block"}
    )
    assert meta(head).title == "Second block"


def test_trailing_commas_and_control_characters_are_tolerated() -> None:
    raw = '{"@type": "BlogPosting", "headline": "Tab\there", "author": ["Jane Doe",],}'
    found = meta(f'<script type="application/ld+json">{raw}</script>')
    assert found.title == "Tab here"
    assert found.authors == ("Jane Doe",)


def test_jsonld_body_entities_are_decoded() -> None:
    head = jsonld({"@type": "Article", "articleBody": "Fish &amp; chips\x0b."})
    assert meta(head).jsonld_body == "Fish & chips."


def test_non_article_jsonld_is_ignored() -> None:
    head = jsonld({"@type": "Organization", "name": "Org", "headline": "Not an article"})
    assert meta(head).title == ""


# --- Image -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        jsonld({"@type": "Article", "image": "https://cdn.example/lead.jpg"}),
        jsonld(
            {
                "@type": "Article",
                "image": {"@type": "ImageObject", "url": "https://cdn.example/lead.jpg"},
            }
        ),
        jsonld({"@type": "Article", "image": ["https://cdn.example/lead.jpg", "https://x/2.jpg"]}),
        '<meta property="og:image" content="https://cdn.example/lead.jpg">',
        '<meta name="twitter:image" content="https://cdn.example/lead.jpg">',
    ],
)
def test_image_sources(head: str) -> None:
    assert meta(head).image == "https://cdn.example/lead.jpg"


def test_relative_image_is_made_absolute_against_base_href() -> None:
    assert meta('<meta property="og:image" content="/i/lead.jpg">').image == (
        "https://news.example/i/lead.jpg"
    )
    head = (
        '<base href="https://static.example/assets/"><meta property="og:image" content="lead.jpg">'
    )
    assert meta(head).image == "https://static.example/assets/lead.jpg"


def test_image_with_bad_scheme_falls_through() -> None:
    head = (
        '<meta property="og:image" content="javascript:alert(1)">'
        '<meta name="twitter:image" content="https://cdn.example/ok.jpg">'
    )
    assert meta(head).image == "https://cdn.example/ok.jpg"


# --- Language ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "html_attrs", "expected"),
    [
        ("", 'lang="en"', "en"),
        ("", 'lang="pt-br"', "pt-BR"),
        ('<meta property="og:locale" content="pt_BR">', "", "pt-BR"),
        ('<meta http-equiv="content-language" content="de-DE, en">', "", "de-DE"),
        ('<meta property="og:locale" content="fr_FR">', 'lang="en-GB"', "en-GB"),
        ("", 'lang="not a language!"', None),
    ],
)
def test_language_sources(head: str, html_attrs: str, expected: str | None) -> None:
    assert meta(head, html_attrs=html_attrs).language == expected


# --- Canonical ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ('<link rel="canonical" href="https://news.example/s">', "https://news.example/s"),
        ('<link rel="canonical" href="/s?id=1">', "https://news.example/s?id=1"),
        ('<meta property="og:url" content="https://news.example/s">', "https://news.example/s"),
        (
            '<link rel="canonical" href="https://news.example/a">'
            '<meta property="og:url" content="https://news.example/b">',
            "https://news.example/a",
        ),
        ('<link rel="canonical" href="">', None),
        ('<link rel="canonical" href="javascript:void(0)">', None),
        ('<link rel="canonical" href="ftp://news.example/s">', None),
        # A template bug: every article claiming the home page as its canonical URL.
        ('<link rel="canonical" href="https://news.example/">', None),
        (
            '<link rel="canonical" href="about:blank">'
            '<meta property="og:url" content="https://news.example/s">',
            "https://news.example/s",
        ),
    ],
)
def test_canonical(head: str, expected: str | None) -> None:
    assert meta(head).canonical_url == expected


# --- Description and site name -----------------------------------------------------------------


def test_description_and_site_name() -> None:
    head = (
        '<meta name="description" content="Plain description.">'
        '<meta property="og:description" content="OG &amp;amp; description.">'
        + jsonld({"@type": "Article", "publisher": {"@type": "Organization", "name": "Planet"}})
    )
    found = meta(head)
    assert found.description == "OG & description."
    assert found.site_name == "Planet"
    assert meta('<meta property="og:site_name" content="Daily Planet">').site_name == "Daily Planet"


# --- Bad input ---------------------------------------------------------------------------------


def test_xml_forbidden_characters_are_stripped_from_every_text_field() -> None:
    head = (
        '<meta property="og:title" content="Ti\x0btle\x1b">'
        '<meta name="author" content="Jane\x01 Doe">'
        '<meta name="description" content="De&#xFFFE;sc">'
    )
    found = meta(head)
    assert (found.title, found.authors, found.description) == ("Title", ("Jane Doe",), "Desc")


def test_hostile_jsonld_does_not_crash() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    head = f'<script type="application/ld+json">{deep}</script>' + jsonld(
        {"@type": "Article", "headline": 42, "author": {"name": ["x"]}, "image": {"url": 7}}
    )
    found = meta(head)
    assert found.title == ""
    assert found.image is None


# --- Categories --------------------------------------------------------------------------------


def test_categories_from_jsonld_then_meta_deduplicated_in_order() -> None:
    head = jsonld(
        {"@type": "NewsArticle", "articleSection": "World", "keywords": "Climate, world ,Energy"}
    )
    head += '<meta property="article:section" content="world">'
    head += '<meta property="article:tag" content="Oceans">'
    head += '<meta property="article:tag" content="Climate">'
    assert meta(head).categories == ("World", "Climate", "Energy", "Oceans")


def test_categories_from_jsonld_lists_and_meta_only() -> None:
    data = {"@type": "BlogPosting", "articleSection": ["Tech", "AI"], "keywords": ["LLM", "", 3]}
    assert meta(jsonld(data)).categories == ("Tech", "AI", "LLM")
    assert meta('<meta property="article:tag" content="Cats">').categories == ("Cats",)


def test_categories_are_capped() -> None:
    data = {"@type": "Article", "keywords": ",".join(f"tag{i}" for i in range(40))}
    assert len(meta(jsonld(data)).categories) == 10


def test_categories_reach_the_article() -> None:
    from worker.extract import extract

    page = (
        '<html><head><meta property="article:tag" content="Gardening"></head><body><article>'
        + "<p>Tomatoes need sun, water and patience, and a gardener who waits.</p>" * 8
        + "</article></body></html>"
    )
    assert extract(page, URL).categories == ("Gardening",)


def test_itemprops_select_what_the_attribute_selector_selects() -> None:
    """The microdata index answers `[itemprop=name]` from one walk of the page: the value is
    the name exactly (case and spaces count), on any element, in document order."""
    from worker.extract.htmlparse import parse_html
    from worker.extract.meta import _ItemProps

    tree = parse_html(
        '<p itemprop="datepublished">a</p><p ITEMPROP="datePublished">b</p>'
        '<p itemprop=" datePublished">c</p><svg><g itemprop="datePublished">d</g></svg>'
        '<div itemprop="author"><span itemprop="name">Jane</span></div><p itemprop>e</p>'
        '<time itemprop="datePublished dateModified">f</time><p itemprop="dateModified">g</p>'
    )
    props = _ItemProps(tree)
    for name in ("datePublished", "dateModified", "author", "name", "datepublished", ""):
        expected = [node.mem_id for node in tree.css(f'[itemprop="{name}"]')]
        assert [node.mem_id for node in props.nodes(name)] == expected, name
    assert list(props.authors()) == ["Jane"]
