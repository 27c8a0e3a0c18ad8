"""worker.extract.htmlparse: every parse is bounded in time, and ordinary pages parse unchanged."""

from __future__ import annotations

import pytest
from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.extract.htmlparse import (
    CHECK_TAGS,
    MAX_DEPTH,
    as_tree,
    flatten_nesting,
    nesting_depth,
    parse_html,
)

DEEP = 20_000
# Tags lexbor's tree builder checks its stack of open elements for (measured: quadratic).
BLOCK_TAGS = [
    "div", "address", "section", "hgroup", "menu", "dir", "summary", "dialog", "figcaption",
    "article", "blockquote", "center", "details", "fieldset", "figure", "main", "nav", "ul",
]  # fmt: skip


def depth_of(node: LexborNode) -> int:
    depth = 0
    parent = node.parent
    while parent is not None:
        depth, parent = depth + 1, parent.parent
    return depth


@pytest.mark.parametrize("tag", BLOCK_TAGS)
def test_deep_nesting_is_flattened_before_lexbor_sees_it(
    tag: str, lexbor_inputs: list[str]
) -> None:
    html = f"<body>{f'<{tag} class=x>' * DEEP}<p>deep text</p>{f'</{tag}>' * DEEP}<p>after</p>"
    tree = parse_html(html)
    # Unflattened, lexbor's time grows with the square of the depth: 0.5 s here.
    assert [nesting_depth(parsed) <= MAX_DEPTH for parsed in lexbor_inputs] == [True]
    deep = tree.css_first("p")
    assert deep is not None and deep.text() == "deep text"
    assert depth_of(deep) <= MAX_DEPTH + 4  # html, body, the document, the p itself
    assert tree.body is not None and tree.body.text().endswith("deep textafter")


def test_stray_end_tags_do_not_hide_deep_nesting() -> None:
    html = "<body>" + "</address>" * DEEP + "<address>" * DEEP + "<p>x</p>"
    assert nesting_depth(html) == DEEP
    assert depth_of(parse_html(html).css_first("p")) <= MAX_DEPTH + 4  # type: ignore[arg-type]


def test_ordinary_pages_are_parsed_as_they_are() -> None:
    rows = "".join(f"<li><a href='/{i}'>Item {i}</a><br><img src='/{i}.png'>" for i in range(600))
    script = "<script>for (i = 0; i<n; i++) { if (a<b && c<d) {} }</script>" * 300
    html = f"<html><head>{script}</head><body><div><ul>{rows}</ul><p>a<p>b</div></body></html>"
    assert nesting_depth(html) > MAX_DEPTH  # the estimate counts the script's "<n" and "<b"...
    assert flatten_nesting(html) is html  # ...but the walk skips raw text: nothing to drop
    assert flatten_nesting("<p>short</p>") == "<p>short</p>"


def test_raw_text_and_comments_are_left_alone_in_a_deep_page() -> None:
    inner = "<script>var s = '<div><div>';</script><!-- <div> -->"
    html = "<body>" + "<div>" * DEEP + inner + "</div>" * DEEP
    flat = flatten_nesting(html)
    assert inner in flat
    kept = MAX_DEPTH - 1  # and the body
    assert flat.count("<div>") == kept + 3 and flat.count("</div>") == kept


def test_links_and_paragraphs_beyond_the_limit_stay() -> None:
    html = "<body>" + "<section>" * DEEP + "<p><a href='/x'>link</a></p>" + "</section>" * DEEP
    tree = parse_html(html)
    link = tree.css_first("a[href]")
    assert link is not None and link.text() == "link" and link.parent.tag == "p"  # type: ignore[union-attr]


def test_as_tree_takes_a_tree_as_it_is() -> None:
    tree = LexborHTMLParser("<p>x</p>")
    assert as_tree(tree) is tree
    assert as_tree("<p>y</p>").css_first("p").text() == "y"  # type: ignore[union-attr]


def test_pages_with_few_tags_are_not_checked() -> None:
    # The worst such page, nested `div`s just under the limit: 18 ms for lexbor, not worth a scan
    # of every page.
    html = "<body>" + "<div>" * (CHECK_TAGS - 2) + "x"
    assert html.count("<") < CHECK_TAGS
    assert flatten_nesting(html) is html
    deeper = html + "<div>"
    assert deeper.count("<") == CHECK_TAGS
    assert flatten_nesting(deeper) != deeper  # checked, and flattened
