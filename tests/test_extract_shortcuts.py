"""The extractor's shortcuts answer what the straightforward way answers.

Speed work replaced a few questions asked of the tree with cheaper ones; each test here asks
both ways, on pages built to hit the cases where they could part.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from selectolax.lexbor import LexborNode

from worker.extract import body
from worker.extract.htmlparse import parse_html

CONTENT_PAGES = [
    # a main element deep in flagged wrappers, and flagged widgets beside it
    "<div class='wrap sidebar'><div class='ad'><main><p>Story</p></main></div>"
    "<div class='related'><p>Other</p></div></div>",
    # the content markers other than `main`, at several depths, one inside another
    "<div class='a'><div role='MAIN'><p>x</p></div></div>"
    "<section class='b'><article itemprop='about articleBody'><p>y</p></article></section>"
    "<div class='c'><div class='post hentry'><div class='h-entry'><p>z</p></div></div></div>",
    # none at all
    "<div class='a'><p>x</p></div><ul class='menu'><li>y</li></ul>",
]


@pytest.mark.parametrize("page", CONTENT_PAGES)
def test_page_content_is_found_as_a_query_per_element_finds_it(page: str) -> None:
    tree = parse_html(f"<html><body>{page}</body></html>")
    assert tree.body is not None
    facts = body.PageFacts(tree.body)
    for node in tree.body.traverse():
        expected = node.css_first(body.PAGE_CONTENT_SELECTOR) is not None
        assert facts.holds_content(node) == expected, node.html


def test_page_facts_count_the_page_text_once() -> None:
    tree = parse_html("<html><body><p>one</p><p>two</p></body></html>")
    assert tree.body is not None
    facts = body.PageFacts(tree.body)
    assert facts.chars == len("onetwo")


def reference_blocks(root: LexborNode) -> list[tuple[int, str, int]]:
    """`collect_blocks` the straightforward way: every text node, whitespace alone included, and
    a space for each `br`, joined into its nearest block's text; a block is listed from its
    first non-blank text."""
    texts: dict[int, list[str]] = {}
    started: list[int] = []
    links: dict[int, int] = {}
    for node in root.traverse(include_text=True):
        if not node.is_text_node and node.tag != "br":
            continue
        block, in_link = body.nearest_block(node)
        if block is None:
            continue
        key = block.mem_id
        text = node.text_content or "" if node.is_text_node else " "
        texts.setdefault(key, []).append(text)
        if node.is_text_node and not node.is_empty_text_node and key not in started:
            started.append(key)
        if in_link and node.is_text_node and not node.is_empty_text_node:
            links[key] = links.get(key, 0) + len(text.strip())
    return [(k, body.collapse_spaces("".join(texts[k])), links.get(k, 0)) for k in started]


INLINE = ["b", "i", "span", "a href='/x'", "em"]
BLOCKS = ["p", "div", "li", "h2", "td"]
piece = st.recursive(
    st.sampled_from(["", " ", "\n  ", "word", "two words", " lead", "trail ", "\xa0", "x", "<br>"]),
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(INLINE + BLOCKS), st.lists(inner, max_size=4)).map(
            lambda t: f"<{t[0]}>{''.join(t[1])}</{t[0].split()[0]}>"
        ),
        st.lists(inner, min_size=2, max_size=4).map("".join),
        st.just("<!-- note -->"),
        st.just("<img src='/i.png'>"),
    ),
    max_leaves=24,
)


@given(st.lists(piece, min_size=1, max_size=5))
def test_blocks_read_whitespace_between_pieces_as_the_whole_walk_does(pieces: list[str]) -> None:
    """`collect_blocks` walks non-blank text only and looks back for whitespace where two
    pieces of a block meet; reading every text node gives the same blocks and texts."""
    tree = parse_html("<html><body><div>" + "".join(pieces) + "</div></body></html>")
    assert tree.body is not None
    fast = [(b.node.mem_id, b.text, b.link_chars) for b in body.collect_blocks(tree.body)]
    assert fast == reference_blocks(tree.body)


def test_blocks_part_words_where_the_page_parts_them() -> None:
    tree = parse_html(
        "<html><body><p><b>Photo by</b> <i>Jane</i><span><br></span>Doe<em> </em>"
        "<a href='/x'>now</a><span>X</span><span>Y</span></p></body></html>"
    )
    assert tree.body is not None
    assert [b.text for b in body.collect_blocks(tree.body)] == ["Photo by Jane Doe nowXY"]


@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=60))
@example("plain ascii")
@example("caf\xe9 \x07")
@example("\u2014\ud800")
@example("\ufffe")
@example("\U0001f600\x1f")
@example("\x85\x9f\xa0")  # C1 controls and a no-break space: allowed
def test_forbidden_characters_are_found_as_the_regex_finds_them(text: str) -> None:
    from worker.publish.xmlchars import _NOT_XML_CHAR, has_forbidden, xml_safe

    assert has_forbidden(text) == (_NOT_XML_CHAR.search(text) is not None)
    assert not has_forbidden(xml_safe(text))


@given(st.text(max_size=40))
@example("Done.  ")
@example("He said «no» ")
@example("x\u3002")
@example("")
@example("  \n")
def test_a_sentence_end_is_read_as_the_regex_reads_it(text: str) -> None:
    import re

    regex = re.compile(r"[.!?。！？…؟।»”“‘’«›‹\"')\]]\s*$")
    assert body.ends_sentence(text) == (regex.search(text) is not None)
    assert body.ends_sentence(text + ".")
