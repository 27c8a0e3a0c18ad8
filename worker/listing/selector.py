"""For `feedworker add`: is the automatic listing detection sure of an index page, and which
`links` CSS selector would find the same links (pure).

Unsure means: the listing it chose is short, or many links that pass every screen (they look
like articles) lie outside it, in another list of the page (`judge_listing`). Then a selector is
worth writing down, so a redesign that moves those lists around cannot swap them silently.

A selector is proposed by trying a few shaped like what operators write ("article.post h2 a",
".entry-title a", "#main li a"), made from the classes, ids and tags around the links the
automatic detection kept, on the same page with the same screens (`discover_links`), and keeping
the one that finds the same links best (F1 over link URLs, the shorter on ties), when it finds
them well enough (`MIN_F1`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.extract.htmlparse import as_tree
from worker.listing.discover import MAX_PAGE_LINKS, LinkDecision, discover_links

__all__ = ["ListingVerdict", "SelectorProposal", "judge_listing", "propose_selector"]

# Fewer links than this: a short list may be a widget the detection took for the listing.
MIN_SURE_LINKS = 4
# Links that pass every screen but lie outside the chosen listing, as a share of its size (and
# at least RIVAL_MIN of them): another list of articles competes with the one chosen.
RIVAL_SHARE = 0.5
RIVAL_MIN = 3
NOT_CHOSEN = "not in main listing"  # `worker.listing.discover`'s reason for such links
# A proposed selector must find the automatic links this well (F1): one that also takes a
# sidebar's links, or misses a third of the listing, is no help.
MIN_F1 = 0.9
SUPPORT = 0.8  # a candidate must fit this share of the kept links
MAX_CANDIDATES = 40  # tried, most widely fitting first; each is one `discover_links`
ANCESTORS = 5  # elements above a link whose classes and ids may name its list
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
LIST_TAGS = frozenset({"article", "main", "li", "section"})  # worth naming by their tag alone
STOP_TAGS = frozenset({"body", "html", "-document"})
# A class or id usable as written: no digits (those tend to be per-item, "post-4711"), no
# characters that would need escaping (Tailwind's "md:flex").
_NAME = re.compile(r"-?[A-Za-z_][A-Za-z_-]*")


@dataclass(frozen=True, slots=True)
class ListingVerdict:
    """Whether the automatic detection is sure of a page's listing, and why not."""

    sure: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SelectorProposal:
    selector: str
    found: int  # links it finds
    f1: float  # against the automatic links


def judge_listing(decisions: Sequence[LinkDecision]) -> ListingVerdict:
    """Is the automatic detection sure of the listing these decisions (one index page's, from
    `discover_links` or a `Listing`) come from?"""
    kept = len({d.url for d in decisions if d.kept})
    rivals = len({d.url for d in decisions if not d.kept and d.reason == NOT_CHOSEN})
    reasons = []
    if kept < MIN_SURE_LINKS:
        reasons.append(f"only {kept} article link(s) found")
    if rivals >= max(RIVAL_MIN, RIVAL_SHARE * kept):
        reasons.append(
            f"{rivals} other links that look like articles are outside the listing it chose"
        )
    return ListingVerdict(not reasons, tuple(reasons))


def propose_selector(
    html: str | LexborHTMLParser,
    base_url: str,
    drop_params: Callable[[str], bool] | None = None,
) -> SelectorProposal | None:
    """A `links` selector finding the links automatic detection keeps on the page, or None."""
    tree = as_tree(html)
    automatic = discover_links(tree, base_url, drop_params=drop_params)
    wanted = {link.url for link in automatic.links}
    if not wanted:
        return None
    anchors = _kept_anchors(tree, automatic.decisions)
    best: SelectorProposal | None = None
    for selector in _candidates(anchors):
        found = discover_links(tree, base_url, selector=selector, drop_params=drop_params)
        urls = {link.url for link in found.links}
        score = _f1(urls, wanted)
        better = best is None or _rank(score, selector) > _rank(best.f1, best.selector)
        if score >= MIN_F1 and better:
            best = SelectorProposal(selector, len(urls), score)
    return best


def _kept_anchors(tree: LexborHTMLParser, decisions: Sequence[LinkDecision]) -> list[LexborNode]:
    """The `<a>` elements of the kept links: automatic detection decides on the page's anchors
    in order, one decision each (up to `MAX_PAGE_LINKS`)."""
    anchors = tree.css("body a[href]")[:MAX_PAGE_LINKS]
    if len(decisions) != len(anchors):
        return []  # not this page's decisions
    return [anchor for anchor, decision in zip(anchors, decisions, strict=True) if decision.kept]


def _candidates(anchors: Sequence[LexborNode]) -> list[str]:
    """Selectors that fit at least `SUPPORT` of the kept anchors, the most widely fitting and
    then the shortest first, at most `MAX_CANDIDATES`."""
    if not anchors:
        return []
    support: Counter[str] = Counter()
    for anchor in anchors:
        support.update(set(_shapes(anchor)))
    needed = SUPPORT * len(anchors)
    fitting = [s for s, n in support.items() if n >= needed]
    fitting.sort(key=lambda s: (-support[s], len(s), s))
    return fitting[:MAX_CANDIDATES]


def _shapes(anchor: LexborNode) -> Iterator[str]:
    """Selectors that would select `anchor`, named by its classes, heading and ancestors."""
    heading = _heading_of(anchor)
    for name in _names(anchor):
        yield f"a{name}"
    if heading is not None:
        yield f"{heading} a"
    node = anchor.parent
    for _ in range(ANCESTORS):
        if node is None or (node.tag or "") in STOP_TAGS:
            return
        for step in _steps(node):
            yield f"{step} a"
            if heading is not None and heading != node.tag:
                yield f"{step} {heading} a"
        node = node.parent


def _heading_of(anchor: LexborNode) -> str | None:
    """The heading tag the link is in (a headline), looking two levels up."""
    node = anchor.parent
    for _ in range(2):
        if node is None:
            return None
        if node.tag in HEADINGS:
            return node.tag
        node = node.parent
    return None


def _steps(node: LexborNode) -> Iterator[str]:
    tag = node.tag or ""
    for name in _names(node):
        yield name if name.startswith("#") else f"{tag}{name}"
        if not name.startswith("#"):
            yield name
    if tag in LIST_TAGS:
        yield tag


def _names(node: LexborNode) -> Iterator[str]:
    """ ".class" and "#id" selectors for the element's usable classes and id."""
    attrs = node.attributes
    for cls in (attrs.get("class") or "").split():
        if _NAME.fullmatch(cls):
            yield f".{cls}"
    element_id = attrs.get("id") or ""
    if _NAME.fullmatch(element_id):
        yield f"#{element_id}"


def _rank(score: float, selector: str) -> tuple[float, bool, int]:
    """Better: finds the links better; then names a class or id (a bare "h2 a" also takes the
    next sidebar whose boxes have h2 headlines); then shorter."""
    return (score, "." in selector or "#" in selector, -len(selector))


def _f1(found: set[str], wanted: set[str]) -> float:
    both = len(found & wanted)
    if not both:
        return 0.0
    precision, recall = both / len(found), both / len(wanted)
    return 2 * precision * recall / (precision + recall)
