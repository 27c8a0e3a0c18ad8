"""The extractor's shortcuts answer what the straightforward way answers.

Speed work replaced a few questions asked of the tree with cheaper ones; each test here asks
both ways, on pages built to hit the cases where they could part.
"""

from __future__ import annotations

import pytest

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
