"""Captions, hidden copies of the article, comments in the markup and the retry's prose check."""

from __future__ import annotations

from worker.extract import extract
from worker.extract.safetynet import reads_as_prose

URL = "https://example.org/a"
PROSE = (
    "The council voted on Tuesday to rebuild the old bridge, a decision that ends a debate "
    "which has divided the town for more than a decade, and work starts in the spring."
)


def page(inner: str, after: str = "") -> str:
    paragraphs = "".join(f"<p>{PROSE} Part {i}.</p>" for i in range(4))
    story = inner.format(body=paragraphs)
    return f"<html><body><div class='story'>{story}</div>{after}</body></html>"


def test_a_classed_photo_caption_stays_in_the_html_but_not_the_text() -> None:
    figure = (
        "<div class='wp-caption'><img src='/bridge.jpg' alt=''>"
        "<p class='wp-caption-text'>The old bridge at dawn, seen from the river bank.</p></div>"
    )
    article = extract(page("{body}" + figure + "{body}"), URL)
    assert "old bridge at dawn" not in article.body_text
    assert "old bridge at dawn" in article.body_html
    assert "Part 3." in article.body_text


def test_a_caption_holding_a_heading_is_a_card_and_stays_in_the_text() -> None:
    card = (
        "<div class='caption'><h4>Bridge vote explained</h4>"
        "<p>Our reporter walks through what the council decided and what happens next.</p></div>"
    )
    text = extract(page("{body}" + card), URL).body_text
    assert "what the council decided" in text


def test_a_caption_right_after_a_video_player_is_its_summary_and_stays() -> None:
    video = (
        "<div class='video-player'><img src='/still.jpg' alt=''></div>"
        "<div class='media-caption'><p>Footage shows the bridge closing to traffic for the "
        "last time on Monday evening.</p></div>"
    )
    text = extract(page("{body}" + video), URL).body_text
    assert "closing to traffic" in text


def test_a_long_caption_classed_wrapper_is_not_a_caption() -> None:
    text = extract(page("<div class='has-captions'>{body}</div>"), URL).body_text
    assert "Part 0." in text and "Part 3." in text


def test_a_hidden_copy_of_the_article_is_dropped_however_long() -> None:
    copy = (
        "<div style='display:none' itemscope itemtype='http://schema.org/NewsArticle'>"
        "<div itemprop='articleBody'>{body}{body}</div>"  # long prose, which alone would keep it
        "<div itemprop='datePublished'>2019-11-19</div>"
        "</div>"
    )
    text = extract(page("{body}" + copy), URL).body_text
    assert text.count("Part 0.") == 1
    assert "2019-11-19" not in text


def test_a_comment_in_the_markup_does_not_defeat_the_caption_rule() -> None:
    # Comment nodes once entered the cleaner's stack of open elements without leaving it.
    figure = (
        "<div class='caption'><!-- credit --><span>Photo: Jane Doe for the Gazette</span></div>"
    )
    article = extract(page(figure + "{body}"), URL)
    assert "Jane Doe" not in article.body_text
    assert "Part 0." in article.body_text


def test_a_retry_must_read_as_prose() -> None:
    footer = "\n".join(["News", "Policy", "Video", "Opinion", "Contact us", "Advertise"] * 8)
    assert not reads_as_prose(footer)
    assert reads_as_prose("\n".join([PROSE] * 3 + ["Share"]))
