"""Operator overrides (`body`, `remove`), the JSON-LD path, and hostile input."""

from __future__ import annotations

import json

import pytest
from selectolax.lexbor import LexborNode

from worker.errors import ExtractError
from worker.extract import ExtractOptions, body, extract, page_fingerprints
from worker.extract.htmlparse import MAX_DEPTH, nesting_depth

PARAS = [
    "The committee met for the third time this year and agreed, after a long debate, to publish "
    "its findings on the state of the county's roads before the end of the summer.",
    "Members said the report would list every bridge in need of repair, with an estimate of the "
    "cost, so that residents could see where the money is going and why.",
    "The chair thanked the engineers, who had surveyed more than four hundred sites since March, "
    "often in bad weather, and said their work had been remarkably thorough.",
]


def page(extra: str = "", body_class: str = "text") -> str:
    paras = "".join(f"<p>{p}</p>" for p in PARAS)
    return (
        "<html><head><title>Roads report</title></head><body>"
        f'<div class="wrap"><div class="{body_class}">{paras}{extra}</div>'
        '<div class="other"><p>A completely different block of prose that sits outside the '
        "story container, long enough to be a paragraph of its own, with commas, too.</p></div>"
        "</div></body></html>"
    )


def test_auto_method() -> None:
    article = extract(page(), "https://example.org/roads")
    assert article.method == "auto"
    assert all(p in article.body_text for p in PARAS)
    assert article.title == "Roads report"
    assert article.body_text.count("\n") >= 2  # one paragraph per line
    assert "<p>" in article.body_html


def test_body_selector_wins() -> None:
    article = extract(page(), "https://example.org/roads", ExtractOptions(body="div.other"))
    assert article.method == "selector"
    assert article.body_text.startswith("A completely different block")
    assert PARAS[0] not in article.body_text


def test_body_selector_that_matches_nothing_falls_back_to_auto() -> None:
    article = extract(page(), "https://example.org/roads", ExtractOptions(body="#missing"))
    assert article.method == "auto"
    assert PARAS[0] in article.body_text


def test_remove_selectors_apply_in_both_paths() -> None:
    extra = '<div class="box-x"><p>Buy the printed edition of this report at the county shop, '
    extra += "open every weekday from nine until five, with parking.</p></div>"
    options = ExtractOptions(remove=(".box-x", "p.nothing"))
    assert "printed edition" in extract(page(extra, "text"), "https://e.org/").body_text
    assert (
        "printed edition" not in extract(page(extra, "text"), "https://e.org/", options).body_text
    )
    selected = ExtractOptions(body="div.text", remove=(".box-x",))
    assert "printed edition" not in extract(page(extra), "https://e.org/", selected).body_text


def test_jsonld_article_body_rescues_a_poor_dom() -> None:
    body = "\n".join(PARAS * 2)
    ld = json.dumps({"@type": "NewsArticle", "headline": "Roads report", "articleBody": body})
    html = (
        f'<html><head><script type="application/ld+json">{ld}</script></head>'
        "<body><div><p>Subscribe to read the rest of this story.</p></div></body></html>"
    )
    article = extract(html, "https://example.org/roads")
    assert article.method == "jsonld"
    assert PARAS[1] in article.body_text
    assert "<p>" in article.body_html


@pytest.mark.parametrize("html", ["", "   \n  ", "<html><body></body></html>", "<div></div>"])
def test_empty_pages_raise(html: str) -> None:
    with pytest.raises(ExtractError, match=r"example\.org"):
        extract(html, "https://example.org/empty")


def test_only_furniture_raises_or_returns_text() -> None:
    html = "<html><body><nav><a href='/'>Home</a></nav><footer>© 2024</footer></body></html>"
    with pytest.raises(ExtractError):
        extract(html, "https://example.org/")


def test_deep_nesting_does_not_recurse() -> None:
    depth = 100_000
    html = "<div>" * depth + "".join(f"<p>{p}</p>" for p in PARAS) + "</div>" * depth
    article = extract(html, "https://example.org/deep")
    assert PARAS[2] in article.body_text
    assert page_fingerprints(html)


@pytest.mark.parametrize("tag", ["address", "section", "hgroup", "summary", "dir"])
def test_deep_nesting_of_any_block_is_bounded(tag: str, lexbor_inputs: list[str]) -> None:
    depth = 20_000
    paras = "".join(f"<p>{p}</p>" for p in PARAS)
    html = f"<html><body>{f'<{tag}>' * depth}{paras}{f'</{tag}>' * depth}</body></html>"
    article = extract(html, "https://example.org/deep")
    # Unflattened, lexbor's time grows with the square of the depth: 0.5 s per parse here.
    assert lexbor_inputs and all(nesting_depth(parsed) <= MAX_DEPTH for parsed in lexbor_inputs)
    assert PARAS[2] in article.body_text


def test_remove_selectors_never_free_a_node_inside_another(monkeypatch: pytest.MonkeyPatch) -> None:
    original = body.decompose_all

    def checked(nodes: list[LexborNode]) -> None:
        doomed = {node.mem_id for node in nodes}
        for node in nodes:
            parent = node.parent
            while parent is not None:
                assert parent.mem_id not in doomed, "freed with its ancestor, then again"
                parent = parent.parent
        original(nodes)

    monkeypatch.setattr(body, "decompose_all", checked)
    extra = '<div class="outer"><p class="inner">Subscribe to our printed edition today, '
    extra += 'with a free tote bag.</p><p class="inner">And a mug.</p></div><p class="inner">x</p>'
    for remove in ((".inner", ".outer"), (".outer", ".inner"), (".outer p", ".outer", ".inner")):
        options = ExtractOptions(remove=remove)
        text = extract(page(extra), "https://example.org/roads", options).body_text
        assert "printed edition" not in text and PARAS[0] in text
        selected = ExtractOptions(body="div.text", remove=remove)
        assert "tote bag" not in extract(page(extra), "https://e.org/", selected).body_text


def test_malformed_html() -> None:
    html = (
        "<html><body><div class=story><p>" + PARAS[0] + "<p>" + PARAS[1] + "<b><i>"
        + PARAS[2] + "</b></i></span></td><table><tr><td>cell</div><!-- unclosed comment"
    )  # fmt: skip
    article = extract(html, "https://example.org/bad")
    assert PARAS[0] in article.body_text and PARAS[1] in article.body_text


def test_control_characters_and_lone_surrogates_are_dropped() -> None:
    html = page().replace("third time", "third\x00 \x0btime\ud800")
    article = extract(html, "https://example.org/")
    assert "\x00" not in article.body_text and "\ud800" not in article.body_text


def test_inline_markup_does_not_split_words() -> None:
    html = (
        "<html><body><div><p>Word<b>joined</b> and <a href='/x'>linked</a> text, in a paragraph "
        "long enough to count as one, with a comma or two, and some more words.</p>"
        "</div></body></html>"
    )
    assert "Wordjoined and linked text" in extract(html, "https://e.org/").body_text


def test_extract_is_pure() -> None:
    html = page()
    first = extract(html, "https://example.org/a")
    extract(page("<p>Something else entirely, unrelated to roads, but long.</p>"), "https://b/")
    assert extract(html, "https://example.org/a") == first


def test_page_without_paragraph_structure_falls_back_to_its_text() -> None:
    html = "<html><body><span>Just a few words in a span, and nothing else.</span></body></html>"
    article = extract(html, "https://example.org/")
    assert article.method == "fallback"
    assert article.body_text == "Just a few words in a span, and nothing else."
