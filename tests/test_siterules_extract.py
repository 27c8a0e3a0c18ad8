"""Site rules applied in extraction: each directive, the precedence (the operator's selector,
then the rule, then automatic extraction), sanitising last, and the check that keeps automatic
extraction when a rule's body looks worse."""

from __future__ import annotations

import html
from dataclasses import replace

import pytest

from tests.sitekit import prose
from worker.errors import ExtractError
from worker.extract import ExtractOptions, extract
from worker.extract.siterule import RuleMissed
from worker.siterules import RuleSet, parse_rules

URL = "https://news.example.com/2024/05/story/"


def paragraphs(seed: int, count: int = 6) -> list[str]:
    lines = prose(seed, sentences=count * 3)
    return [" ".join(lines[i : i + 3]) for i in range(0, len(lines), 3)]


ARTICLE = paragraphs(1)
INTERVIEW = paragraphs(2, 4)


def page(extra_story: str = "", head: str = "", after: str = "") -> str:
    story = "".join(f"<p>{html.escape(p)}</p>" for p in ARTICLE)
    interview = "".join(f"<p>{html.escape(p)}</p>" for p in INTERVIEW)
    return f"""<!doctype html><html><head><title>Page title | News</title>
<meta property="og:title" content="Open Graph title">
<meta property="article:published_time" content="2024-01-01T00:00:00Z">{head}</head><body>
<nav><a href="/">Home</a> <a href="/world">World</a></nav>
<div id="story">
  <h1 class="headline">The rule's headline</h1>
  <span class="byline">Jane Rulewriter</span> <time datetime="2024-05-06T07:08:09Z">6 May</time>
  {story}
  <div class="share">Share this story with your friends on every network</div>
  <div class="promo-box">Subscribe today for unlimited access to everything we publish</div>
  {extra_story}
</div>
<section id="interview"><h2>Interview</h2>{interview}</section>
{after}
<footer>Copyright News Inc.</footer></body></html>"""


def rules(text: str, name: str = "news.example.com") -> RuleSet:
    parsed = parse_rules(text, name, f"rules/{name}.txt")
    assert parsed.problems == ()
    return parsed


def ruled(text: str, document: str | None = None, **options: object) -> object:
    opts = ExtractOptions(site_rules=rules(text), **options)  # type: ignore[arg-type]
    return extract(document if document is not None else page(), URL, opts)


def test_body_rule_picks_its_container_over_automatic_extraction() -> None:
    automatic = extract(page(), URL)  # the story alone: the interview is a section of its own
    assert ARTICLE[0] in automatic.body_text and INTERVIEW[0] not in automatic.body_text
    article = ruled("body: //div[@id='story'] | //section[@id='interview']")
    assert article.method == "rule"
    lines = article.body_text.splitlines()
    assert [line for line in lines if line in ARTICLE + INTERVIEW] == ARTICLE + INTERVIEW
    trace = article.site_rule
    assert trace is not None and trace.body_used and trace.name == "news.example.com"
    assert trace.path == "rules/news.example.com.txt" and "body" in trace.matched


def test_first_matching_body_wins_and_multiple_elements_are_kept_in_order_once() -> None:
    article = ruled(
        "body: //div[@id='nothing-here']\nbody: //div[@id='story']//p | //div[@id='story']"
    )
    lines = article.body_text.splitlines()
    assert [line for line in lines if line in ARTICLE] == ARTICLE  # nested matches once
    assert article.method == "rule"


def test_title_author_and_date_rules_win_over_the_pages_metadata() -> None:
    article = ruled(
        "title: //h1[@class='headline']\nauthor: //span[@class='byline']\ndate: //time/@datetime"
    )
    assert article.title == "The rule's headline"
    assert article.authors == ("Jane Rulewriter",)
    assert (
        article.published is not None
        and article.published.isoformat() == "2024-05-06T07:08:09+00:00"
    )
    assert extract(page(), URL).title == "Open Graph title"


def test_missed_directives_are_named_and_the_page_metadata_stays() -> None:
    article = ruled("title: //h1[@class='nope']\nbody: //div[@id='story']")
    assert article.title == "Open Graph title"
    assert article.site_rule is not None and article.site_rule.missed == ("title",)


def test_strip_directives_remove_what_they_select() -> None:
    extra = (
        '<img src="https://ads.example/pixel.gif?id=3" alt="">'
        '<img src="https://news.example.com/photo.jpg" alt="A photo of the harbour">'
    )
    text = (
        "body: //div[@id='story']\nprune: no\nstrip: //div[@class='share']\n"
        "strip_id_or_class: promo\nstrip_image_src: pixel.gif\nstrip_attr: //img/@alt\n"
    )
    article = ruled(text, page(extra_story=extra))
    assert "Share this story" not in article.body_text
    assert "Subscribe today" not in article.body_text
    assert "pixel.gif" not in article.body_html and "photo.jpg" in article.body_html
    assert "A photo of the harbour" not in article.body_html
    assert article.site_rule is not None
    assert {"strip ×1", "strip_id_or_class ×1", "strip_image_src ×1", "strip_attr ×1"} <= set(
        article.site_rule.matched
    )
    kept = ruled("body: //div[@id='story']\nprune: no\n", page(extra_story=extra))
    assert "Share this story" in kept.body_text and "A photo of the harbour" in kept.body_html


def test_strips_also_shape_automatic_extraction_when_the_rule_has_no_body() -> None:
    article = ruled("strip: //div[@id='story']")
    assert article.method != "rule"
    assert ARTICLE[0] not in article.body_text and INTERVIEW[0] in article.body_text


def test_find_and_replace_strings_fix_the_markup_before_parsing() -> None:
    amp = '<amp-img src="https://news.example.com/amp.jpg" alt="Amp photo"></amp-img>'
    plain = ruled("body: //div[@id='story']", page(extra_story=amp))
    assert "amp.jpg" not in plain.body_html
    fixed = ruled(
        "body: //div[@id='story']\nfind_string: <amp-img\nreplace_string: <img\n"
        "replace_string(Rulewriter): Rule-Writer\nauthor: //span[@class='byline']",
        page(extra_story=amp),
    )
    assert "amp.jpg" in fixed.body_html and fixed.authors == ("Jane Rule-Writer",)
    assert fixed.site_rule is not None and "replace_string ×2" in fixed.site_rule.matched


def test_prune_drops_link_lists_inside_the_rules_body_unless_told_not_to() -> None:
    links = "".join(
        f'<li><a href="/more/{n}">Another story number {n} to read</a></li>' for n in range(8)
    )
    document = page(extra_story=f'<div class="more"><ul>{links}</ul></div>')
    pruned = ruled("body: //div[@id='story']", document)
    # Unchecked: the check would rightly prefer automatic extraction to a body of link lists.
    kept = ruled("body: //div[@id='story']\nprune: no", document, check_rules=False)
    assert "Another story number 3" not in pruned.body_text
    assert "Another story number 3" in kept.body_text
    assert pruned.method == kept.method == "rule"


def test_native_ad_clue_marks_the_article() -> None:
    sponsored = ruled(
        "body: //div[@id='story']\nnative_ad_clue: //meta[@name='sponsored']",
        page(head='<meta name="sponsored" content="yes">'),
    )
    assert sponsored.site_rule is not None and sponsored.site_rule.native_ad
    plain = ruled("body: //div[@id='story']\nnative_ad_clue: //meta[@name='sponsored']")
    assert plain.site_rule is not None and not plain.site_rule.native_ad


def test_autodetect_on_failure_no_refuses_the_fallback() -> None:
    with pytest.raises(RuleMissed) as caught:
        ruled("body: //div[@id='gone']\nautodetect_on_failure: no")
    assert isinstance(caught.value, ExtractError)
    assert "body matched nothing" in str(caught.value) and URL in str(caught.value)
    assert caught.value.trace.missed == ("body",)
    fallback = ruled("body: //div[@id='gone']")
    assert fallback.method == "auto" and ARTICLE[0] in fallback.body_text
    assert fallback.site_rule is not None and fallback.site_rule.missed == ("body",)


def test_the_operators_selector_wins_and_their_remove_applies_to_the_rules_body() -> None:
    article = ruled("body: //div[@id='story']", body="section#interview")
    assert article.method == "selector" and INTERVIEW[0] in article.body_text
    assert article.site_rule is not None and "selector" in article.site_rule.note
    removed = ruled("body: //div[@id='story']", remove=(".share",))
    assert removed.method == "rule" and "Share this story" not in removed.body_text


def test_rule_picked_content_is_sanitised_last() -> None:
    hostile = (
        '<p onclick="steal()">Click handler paragraph that is long enough to stay in the body.</p>'
        '<script>alert("x")</script><a href="javascript:alert(1)">a bad link</a>'
        '<iframe src="https://evil.example/"></iframe>'
    )
    article = ruled("body: //div[@id='story']\nprune: no", page(extra_story=hostile))
    assert article.method == "rule"
    for bad in ("onclick", "<script", "alert(", "javascript:", "<iframe"):
        assert bad not in article.body_html


def test_link_rules_give_absolute_urls_and_honour_if_page_contains() -> None:
    links = '<a class="next" href="page/2/">Next</a><a class="print" href="/print/story">Print</a>'
    document = page(extra_story=links)
    article = ruled(
        "body: //div[@id='story']\nnext_page_link: //a[@class='next']\n"
        "single_page_link: //a[@class='print']\nif_page_contains: //div[@id='story']",
        document,
    )
    assert article.next_page == "https://news.example.com/2024/05/story/page/2/"
    assert article.single_page == "https://news.example.com/print/story"
    gated = ruled(
        "body: //div[@id='story']\nsingle_page_link: //a[@class='print']\n"
        "if_page_contains: //div[@class='absent']",
        document,
    )
    assert gated.single_page is None
    assert (
        ruled("next_page_link: concat('/p/', 'two')", document).next_page
        == "https://news.example.com/p/two"
    )


def test_a_worse_looking_rule_body_loses_to_automatic_extraction() -> None:
    links = "".join(f'<li><a href="/s/{n}">Related headline {n}</a></li>' for n in range(10))
    document = page(after=f'<aside id="related"><ul>{links}</ul></aside>')
    checked = ruled("body: //aside[@id='related']\nprune: no", document)
    assert checked.method == "auto" and ARTICLE[0] in checked.body_text
    assert checked.site_rule is not None and not checked.site_rule.body_used
    assert "automatic extraction kept" in checked.site_rule.note
    assert "body" not in checked.site_rule.missed  # it matched: a judgement, not drift
    unchecked = ruled("body: //aside[@id='related']\nprune: no", document, check_rules=False)
    assert unchecked.method == "rule" and "Related headline 3" in unchecked.body_text


def test_a_rule_body_adding_teaser_lines_loses_and_one_adding_prose_wins() -> None:
    teasers = "".join(
        f'<div class="teaser"><a href="/t/{n}">Teaser headline number {n}</a><p>Read more</p></div>'
        for n in range(6)
    )
    with_teasers = ruled("body: //body\nprune: no", page(after=teasers))
    assert with_teasers.method != "rule" and "teaser" in with_teasers.site_rule.note  # type: ignore[union-attr]
    both = ruled("body: //div[@id='story'] | //section[@id='interview']")
    assert both.method == "rule"
    assert ARTICLE[0] in both.body_text and INTERVIEW[0] in both.body_text


def test_deep_nesting_does_not_hide_the_end_of_the_page_from_the_rule() -> None:
    deep = "<div>" * 3000 + "deep" + "</div>" * 3000
    document = page(extra_story=deep, after='<p id="end">' + " ".join(INTERVIEW) + "</p>")
    article = ruled("body: //p[@id='end']", document, check_rules=False)
    assert article.method == "rule" and INTERVIEW[0] in article.body_text
    assert article.body_text == " ".join(INTERVIEW)


def test_pages_with_an_xml_declaration_and_empty_pages() -> None:
    declared = '<?xml version="1.0" encoding="iso-8859-1"?>' + page()
    assert ruled("body: //div[@id='story']", declared).method == "rule"
    with pytest.raises(ExtractError):
        ruled("body: //div[@id='story']", "   ")


def test_rule_set_travels_to_extractor_processes() -> None:
    import pickle

    options = ExtractOptions(site_rules=rules("body: //div[@id='story']\nnext_page_link: //a"))
    assert pickle.loads(pickle.dumps(options)) == options
    assert replace(options, page_number=2).page_number == 2
