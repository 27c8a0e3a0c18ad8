"""The safety net (worker/extract/safetynet.py) and the markup rules behind issue 17's classes:
an implausible first body makes way for a later attempt, named in `Article.method`; hidden
elements of any tag, named anchors, page wrappers with noisy class names, article containers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.cli import main
from worker.extract import extract
from worker.extract.body import Body
from worker.extract.htmlparse import parse_html
from worker.extract.meta import extract_metadata
from worker.extract.safetynet import ATTEMPTS, Expected, opening_words, plausible

URL = "https://example.org/story"
SENTENCE = (
    "The ferry between the two villages will run every hour from May, the operator said on "
    "Tuesday, after a winter in which the crossing was cut to four trips a day."
)


def paragraphs(count: int, tag: str = "p", label: str = "Part") -> str:
    return "".join(f"<{tag}>{SENTENCE} {label} {i}.</{tag}>" for i in range(count))


def page(body: str, head: str = "") -> str:
    return f"<html><head><title>Ferry</title>{head}</head><body>{body}</body></html>"


# --- Plausibility ------------------------------------------------------------------------------


def body_of(text: str, prose_run: int = 0) -> Body:
    return Body(text, f"<p>{text}</p>", (), prose_run=prose_run)


def test_a_body_much_shorter_than_the_largest_run_of_prose_is_implausible() -> None:
    assert plausible(body_of("x" * 600, prose_run=1000), Expected())
    assert not plausible(body_of("x" * 400, prose_run=1000), Expected())


def test_a_body_shorter_than_its_description_or_half_its_word_count_is_implausible() -> None:
    text = " ".join(["word"] * 100)
    assert plausible(body_of(text), Expected(summary_chars=300, words=200))
    assert not plausible(body_of(text), Expected(summary_chars=len(text) + 1))
    assert not plausible(body_of(text), Expected(words=201))
    assert not plausible(body_of(text), Expected(chars=2 * len(text) + 2))


def test_the_opening_is_the_descriptions_first_words_when_it_has_enough() -> None:
    assert opening_words("Last spring we  finally did it: the roof of our") == (
        "last spring we finally did it: the roof"
    )
    assert opening_words("A short summary.") == ""


def test_attempts_are_named_and_the_first_is_auto() -> None:
    names = [attempt.name for attempt in ATTEMPTS]
    assert names[0] == "auto" and len(set(names)) == len(names)
    assert {"prose-run", "opening", "loose", "raw"} <= set(names)


# --- Attempts winning --------------------------------------------------------------------------


def test_a_hinted_stub_gives_way_to_the_largest_run_of_prose() -> None:
    stub = f'<div class="article-body">{paragraphs(2, label="Stub")}</div>'
    run = f"<div class='col'>{paragraphs(8, label='Run')}</div>"
    article = extract(page(stub + run), URL)
    assert article.method == "prose-run"
    assert "Run 7." in article.body_text and "Run 0." in article.body_text


def test_the_first_body_stays_when_no_attempt_is_plausible() -> None:
    ld = json.dumps({"@type": "NewsArticle", "headline": "Ferry", "wordCount": 50_000})
    html = page(f"<div>{paragraphs(5)}</div>", f'<script type="application/ld+json">{ld}</script>')
    article = extract(html, URL)
    assert article.method == "auto"
    assert "Part 4." in article.body_text


def test_the_word_count_is_read_from_json_ld() -> None:
    for value, expected in ((1204, 1204), ("1,204", 1204), ("many", 0), (True, 0), (-3, 0)):
        ld = json.dumps({"@type": "BlogPosting", "headline": "Ferry", "wordCount": value})
        tree = parse_html(page("", f'<script type="application/ld+json">{ld}</script>'))
        assert extract_metadata(tree, URL).word_count == expected, value


# --- Markup rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hidden",
    [
        '<span style="display: none">SECRET</span>',
        '<span aria-hidden="true">SECRET</span>',
        "<em hidden>SECRET</em>",
        '<label style="visibility:hidden">SECRET</label>',
    ],
)
def test_hidden_elements_of_any_tag_are_dropped(hidden: str) -> None:
    html = page(f"<div><p>{SENTENCE} {hidden}</p>{paragraphs(3)}</div>")
    text = extract(html, URL).body_text
    assert "SECRET" not in text and "Part 2." in text


def test_panels_hidden_until_found_are_content() -> None:
    """`hidden="until-found"` collapses content that a search of the page opens (accordion
    panels): it stays, where a plain `hidden` goes."""
    panels = (
        f"<div hidden='until-found'><p>OPENED {SENTENCE}</p></div>"
        f"<div hidden><p>CLOSED {SENTENCE}</p></div>"
    )
    text = extract(page(f"<div>{paragraphs(3)}{panels}</div>"), URL).body_text
    assert "OPENED" in text and "CLOSED" not in text


FAQ_HIDINGS = ['style="display: none"', "hidden", 'aria-hidden="true"']


def faq_page(hiding: str, answer_on: str) -> str:
    """An FAQ in schema.org microdata whose answers an accordion hides; `answer_on` says which
    element carries the hiding: the Answer, its text, or a wrapper around the Answer."""
    items = []
    for i in range(4):
        answer = f"ANSWER {i}: {SENTENCE}"
        text = f'<div itemprop="text"{" " + hiding if answer_on == "text" else ""}>{answer}</div>'
        on_answer = " " + hiding if answer_on == "answer" else ""
        body = (
            f'<div itemscope itemprop="acceptedAnswer" itemtype="https://schema.org/Answer"'
            f"{on_answer}>{text}</div>"
        )
        if answer_on == "wrapper":
            body = f'<div class="panel" {hiding}>{body}</div>'
        items.append(
            '<div itemscope itemprop="mainEntity" itemtype="https://schema.org/Question">'
            f'<h3 itemprop="name">Question {i}: when does the ferry run?</h3>{body}</div>'
        )
    login = f"<div class='login' {hiding}><p>LOGIN No account was found for {SENTENCE}</p></div>"
    return page(
        f'<div itemscope itemtype="https://schema.org/FAQPage"><h1>Ferry questions</h1>'
        f"{''.join(items)}</div>{login}"
    )


@pytest.mark.parametrize("answer_on", ["answer", "text", "wrapper"])
@pytest.mark.parametrize("hiding", FAQ_HIDINGS)
def test_closed_faq_answers_are_content(hiding: str, answer_on: str) -> None:
    """An accordion's answers are hidden until a reader opens their question; marked up as a
    schema.org FAQ's answers they are the page's content. Other hidden text still goes."""
    text = extract(faq_page(hiding, answer_on), URL).body_text
    for i in range(4):
        assert f"ANSWER {i}:" in text
    assert "LOGIN" not in text


@pytest.mark.parametrize(
    "toggle",
    [
        '<button aria-expanded="false"><span itemprop="name">QUESTION {i}?</span></button>',
        '<h3 itemprop="name"><button aria-expanded="false">QUESTION {i}?</button></h3>',
        '<h3><button itemprop="name" aria-expanded="false">QUESTION {i}?</button></h3>',
    ],
)
def test_an_faq_question_in_its_toggle_button_is_content(toggle: str) -> None:
    """Buttons are interface, but an accordion's toggle that names an FAQ question holds the
    question; a vote button beside it stays out."""
    items = "".join(
        '<div itemscope itemprop="mainEntity" itemtype="https://schema.org/Question">'
        + toggle.format(i=i)
        + '<div itemscope itemprop="acceptedAnswer" itemtype="https://schema.org/Answer" hidden>'
        f'<div itemprop="text"><p>ANSWER {i}: {SENTENCE}</p></div></div>'
        "<div class='vote'><button>HELPFUL</button></div></div>"
        for i in range(4)
    )
    faq = f'<div itemscope itemtype="https://schema.org/FAQPage">{items}</div>'
    text = extract(page(faq), URL).body_text
    for i in range(4):
        assert f"QUESTION {i}?" in text and f"ANSWER {i}:" in text
    assert "HELPFUL" not in text


def test_a_page_hidden_until_its_scripts_run_is_still_read() -> None:
    html = f'<html><body style="display:none"><div>{paragraphs(3)}</div></body></html>'
    assert "Part 2." in extract(html, URL).body_text


def test_a_named_anchor_left_open_is_not_a_link() -> None:
    # `<a name="more">` without its end tag wraps the rest of the post: its text is no link text.
    post = f"<div class='post'><p>{SENTENCE}</p><a name='more'>{paragraphs(4)}</div>"
    header = "<div class='blog-header'><p>Notes from the harbour office, every week.</p></div>"
    text = extract(page(header + post), URL).body_text
    assert "Part 3." in text and "harbour office" not in text


def test_a_page_wrapper_with_an_ad_class_holding_the_main_content_is_kept() -> None:
    menu = "".join(f"<li><a href='/s{i}'>Section number {i}</a></li>" for i in range(40))
    html = page(f'<div id="ad-portal"><ul>{menu}</ul><main>{paragraphs(4)}</main></div>')
    article = extract(html, URL)
    assert article.method == "auto" and "Part 3." in article.body_text


def test_a_wrapper_named_for_its_sidebar_holding_most_of_the_page_is_kept() -> None:
    menu = "".join(
        f"<li><a href='/s{i}'>Section number {i} of the site</a></li>" for i in range(30)
    )
    html = page(
        f'<div class="layout-with-sidebar"><ul class="nav">{menu}</ul>'
        f"<div class='story'>{paragraphs(5)}</div></div><footer>Contact us</footer>"
    )
    article = extract(html, URL)
    assert article.method == "auto" and "Part 4." in article.body_text


def test_a_recipe_containers_ingredients_join_its_steps() -> None:
    ingredients = "".join(f"<li>{n} g flour type {n}</li>" for n in (100, 200, 300))
    steps = paragraphs(3, label="Step")
    html = page(
        '<div itemscope itemtype="https://schema.org/Recipe"><h1>Bread</h1>'
        f'<div class="box"><h2>Ingredients</h2><ul>{ingredients}</ul></div>'
        f'<div class="steps">{steps}</div>'
        '<div class="share"><a href="/s">Share</a></div></div>'
        "<div class='more'><h2>More recipes</h2><ul><li>Cake with a long name here</li></ul></div>"
    )
    text = extract(html, URL).body_text
    assert "200 g flour type 200" in text and "Step 2." in text
    assert "Share" not in text and "Cake with" not in text


def test_a_lone_paragraph_in_a_wrapper_of_its_own_joins_as_a_paragraph() -> None:
    intro = (
        "<div class='intro'><p>Here are the answers to the questions our riders ask most.</p></div>"
    )
    items = "".join(
        f"<div class='item'><h3>Question {i}?</h3><div class='answer'><p>{SENTENCE}</p></div></div>"
        for i in range(5)
    )
    cta = "<div class='cta'><p>Another question? <a href='/contact'>Write to us</a></p></div>"
    text = extract(
        page(f"<div class='wrap'>{intro}<div class='list'>{items}</div>{cta}</div>"), URL
    ).body_text
    assert "answers to the questions our riders ask most" in text
    assert "Question 4?" in text and "Write to us" not in text


def test_a_data_table_whose_names_are_links_stays() -> None:
    rows = "".join(
        f"<tr><td><a href='/team/{name}'>{name}</a></td><td>{points}</td></tr>"
        for name, points in (("Pontedera", 41), ("Torres", 39), ("Cesena", 38))
    )
    menu = "".join(f"<tr><td><a href='/s/{i}'>Section {i}</a></td></tr>" for i in range(6))
    html = page(
        f"<div class='story'>{paragraphs(2)}<table>{rows}</table>{paragraphs(1, label='End')}"
        f"<table>{menu}</table></div>"
    )
    text = extract(html, URL).body_text
    assert "Torres" in text and "39" in text and "End 0." in text
    assert "Section 3" not in text


def test_feedworker_extract_shows_which_path_won(capsys: pytest.CaptureFixture[str]) -> None:
    source = Path(__file__).parent / "pages" / "blog-unclosed-link" / "source.html"
    assert main(["extract", str(source), "--url", "https://weber-metallbau.example/p.html"]) == 0
    out = capsys.readouterr().out
    assert "method:    opening (the first body was implausible" in out
    assert "Die Lieferzeit für beschichtete Geländer sinkt" in out
