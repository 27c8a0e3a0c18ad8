"""The body's last pass: weak blocks at its edges and blocks repeated at once are dropped."""

from __future__ import annotations

from worker.extract import extract

PROSE = (
    "The council voted on Tuesday to rebuild the old bridge, a decision that ends a debate "
    "which has divided the town for more than a decade, and work starts in the spring."
)


def page(inner: str) -> str:
    paragraphs = "".join(f"<p>{PROSE} Part {i}.</p>" for i in range(4))
    return f"<html><body><div class='story'>{inner.format(body=paragraphs)}</div></body></html>"


def test_short_byline_and_link_rail_at_the_edges_are_trimmed() -> None:
    html = page(
        "<div>Jane Doe</div><div>Updated</div>{body}"
        "<div><a href='/a'>Another story about the harbour</a></div>"
        "<div><a href='/b'>Council budget explained in full</a></div>"
    )
    text = extract(html, "https://example.org/a").body_text
    assert "Part 0." in text and "Part 3." in text
    for furniture in ("Jane Doe", "Updated", "Another story", "budget explained"):
        assert furniture not in text


def test_unlinked_list_ending_an_article_is_kept() -> None:
    dates = "".join(f"<li>June {d} -- Arena Hall, Springfield</li>" for d in range(10, 14))
    text = extract(page("{body}<ul>" + dates + "</ul>"), "https://example.org/a").body_text
    assert "June 13 -- Arena Hall, Springfield" in text


def test_a_caption_repeated_at_once_appears_once() -> None:
    caption = "<p>The old bridge at dawn, seen from the river bank.</p>"
    article = extract(page(caption + caption + "{body}"), "https://example.org/a")
    assert article.body_text.count("The old bridge at dawn") == 1
    assert article.body_html.count("The old bridge at dawn") == 1


def test_repeats_far_apart_are_the_authors() -> None:
    line = "<p>Mix one cup of oats with two cups of milk</p>"
    html = page(line + "{body}" + line + f"<p>{PROSE} End.</p>")
    assert extract(html, "https://example.org/a").body_text.count("one cup of oats") == 2


def test_a_weak_line_in_a_wrapper_does_not_take_the_wrapper_with_it() -> None:
    html = page("<div>Jane Doe{body}</div>")
    text = extract(html, "https://example.org/a").body_text
    assert "Part 0." in text and "Part 3." in text


def test_a_long_paragraph_written_twice_is_kept_twice() -> None:
    # Captions and teaser lines are short; a whole paragraph repeated is the author's refrain.
    twice = f"<p>{PROSE} {PROSE}</p>"
    html = page("{body}" + twice + twice)
    assert extract(html, "https://example.org/a").body_text.count(PROSE + " " + PROSE) == 2


def test_words_parted_by_a_space_between_inline_elements_stay_apart() -> None:
    """Whitespace between two inline elements parts their words in the page's block texts
    (scored, fingerprinted, looked for as a description's opening) as in the body's lines: both
    read "Photo by Jane", and the renderer takes the block texts as they are."""
    from worker.extract import body
    from worker.extract.template import fingerprint

    caption = "<p><b>Photo by</b> <i>Jane Doe for the Gazette</i></p>"
    html = page("{body}" + caption + caption)
    tree = body.parse_html(html)
    assert tree.body is not None
    blocks = body.collect_blocks(tree.body)
    texts = [b.text for b in blocks]
    assert "Photo by Jane Doe for the Gazette" in texts
    assert not any("byJane" in text for text in texts)
    story = tree.css_first("div.story")
    assert story is not None
    found = body.render_content([story], body.PRESETS[0], "", frozenset(), (), blocks)
    assert found.text.count("Photo by Jane Doe for the Gazette") == 1  # the repeat went
    assert fingerprint("Photo by Jane Doe for the Gazette") in found.checked
    assert fingerprint("Photo byJane Doe for the Gazette") not in found.checked


def test_a_line_break_in_the_source_is_a_space_outside_pre() -> None:
    """A paragraph wrapped in the page's source is one line of the body's text; a `pre`
    block keeps its lines."""
    wrapped = PROSE.replace("on Tuesday to", "on\nTuesday\nto")
    code = "<pre>first line\n  second line</pre>"
    text = extract(page("<p>" + wrapped + "</p>{body}" + code), "https://example.org/a").body_text
    assert PROSE in text.splitlines()
    assert "first line" in text.splitlines()
    assert "second line" in text.splitlines()
