"""Widgets inside or beside the article: containers headed by a widget label, teaser rails."""

from __future__ import annotations

import pytest

from worker.extract import extract

URL = "https://example.org/story"
SENTENCE = (
    "The council voted on Tuesday to rebuild the old bridge, a decision that ends a debate "
    "which has divided the town for more than a decade, and work starts in the spring."
)


def prose(label: str, count: int = 4) -> str:
    return "".join(f"<p>{SENTENCE} {label} {i}.</p>" for i in range(count))


def teaser_post(i: int) -> str:
    other = (
        f"Another town, another story number {i}: the harbour wall was repaired after the storm, "
        "and the fishermen went back to sea within the week, happy to work again. "
    )
    return f"<article class='post'><h2><a href='/p{i}'>Harbour story {i}</a></h2><p>{other * 2}</p></article>"


@pytest.mark.parametrize("label", ["You may also like", "Você pode gostar...", "Related posts"])
def test_a_container_opening_with_a_widget_heading_is_dropped(label: str) -> None:
    widget = (
        f"<section class='more'><h3>{label}</h3>{''.join(map(teaser_post, range(5)))}</section>"
    )
    html = f"<html><body><article class='post'><h1>Bridge</h1>{prose('Main', 2)}</article>{widget}</body></html>"
    text = extract(html, URL).body_text
    assert "Main 0." in text and "Main 1." in text
    assert "Harbour story" not in text and "fishermen" not in text


def test_a_label_wrapped_in_a_div_heads_its_container_too() -> None:
    widget = (
        "<div class='box'><div class='box-title'><h4>Recent articles</h4></div>"
        + "".join(
            f"<div><p>Some other story number {i} happened, and people talked.</p></div>"
            for i in range(3)
        )
        + "</div>"
    )
    html = f"<html><body><div class='story'>{prose('Main')}{widget}</div></body></html>"
    text = extract(html, URL).body_text
    assert "Main 3." in text and "Some other story" not in text


def test_a_section_with_an_ordinary_heading_is_kept() -> None:
    section = f"<section><h2>What happens next</h2>{prose('Next', 2)}</section>"
    html = f"<html><body><div class='story'>{prose('Main')}{section}</div></body></html>"
    text = extract(html, URL).body_text
    assert "What happens next" in text and "Next 1." in text


def teaser_card(i: int) -> str:
    return (
        f"<div class='card'><a href='/t{i}'><h5>Teaser title number {i} for the rail</h5></a>"
        f"<p>A one-line summary of another story, from the county, the harbour or the hills, "
        f"that runs here with a picture {i}</p>"
        f"<span>Reporter Name</span></div>"
    )


def test_a_teaser_rail_beside_the_article_is_not_merged_as_a_sibling() -> None:
    rail = f"<div class='grid'>{''.join(map(teaser_card, range(8)))}</div>"
    html = f"<html><body><div class='wrap'><div class='story'>{prose('Main')}</div>{rail}</div></body></html>"
    text = extract(html, URL).body_text
    assert "Main 3." in text
    assert "Teaser title" not in text and "one-line summary" not in text


def test_an_article_continuation_beside_the_top_candidate_is_merged() -> None:
    html = (
        "<html><body><div class='wrap'>"
        f"<div class='story'>{prose('First', 6)}</div><div class='story-more'>{prose('Second', 3)}</div>"
        "</div></body></html>"
    )
    text = extract(html, URL).body_text
    assert "First 5." in text and "Second 2." in text
