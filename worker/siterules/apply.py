"""Apply a `RuleSet` to one page (pure): XPath 1.0 through lxml, on a tree of the page's HTML.

The order, and why:
1. `find_string`/`replace_string` on the HTML text, before parsing (they repair markup);
2. `title`, `author`, `date`, `native_ad_clue`, `single_page_link`, `next_page_link` are read
   before anything is stripped: a rule often strips the very byline or pager it reads;
3. `strip`, `strip_id_or_class`, `strip_image_src`, `strip_attr` change the tree;
4. `body`: the first expression that selects elements gives the body (all its elements, in
   document order, nested ones once).

For lists of alternatives (`title`, `body`, `author`, `date`, the links) the first expression
that yields something wins, as in the format's own reader. The result says which directives
found something and which found nothing (`RuleResult.matched`, `.missed`), for `feedworker
extract` and for source health, where a rule that stops matching is a sign of drift.

lxml (libxml2) parses the page again here; the extractor's own tree is selectolax's. The page is
given flattened (`worker.extract.htmlparse`), so libxml2's depth limit (2048 with `huge_tree`) is
never reached: beyond it libxml2 would silently drop the rest of the page.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import lxml.html
from lxml import etree

from worker.siterules.parse import LinkRule, Replacement, RuleSet, compile_xpath
from worker.urls import resolve

__all__ = ["RuleResult", "apply_rules"]

_PARSER = lxml.html.HTMLParser(encoding="utf-8", huge_tree=True)
# The format's substring tests, with the value passed as an XPath variable (no quoting games).
_ID_OR_CLASS = etree.XPath("//*[contains(@class, $value) or contains(@id, $value)]")
_IMAGE_SRC = etree.XPath("//img[contains(@src, $value)]")
_BASE_HREF = etree.XPath("string((//base[@href])[1]/@href)")
# Directives whose "found nothing" is worth reporting: they pick what the feed shows.
PICKING = ("title", "body", "author", "date")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RuleResult:
    """What a rule set made of one page."""

    html: str  # the page after replacements and strips: what automatic extraction reads
    body_html: str | None = None  # the `body` match, serialised; None when none matched
    title: str = ""
    authors: tuple[str, ...] = ()
    date: str = ""  # as the page writes it; parsed by the extractor
    next_page: str | None = None  # absolute URL of the article's next page
    single_page: str | None = None  # absolute URL of its single-page (print) version
    native_ad: bool = False  # a `native_ad_clue` matched: the page is sponsored content
    matched: tuple[str, ...] = ()  # directives that found something, e.g. "body", "strip ×3"
    missed: tuple[str, ...] = ()  # picking directives the file gives that found nothing


def apply_rules(html: str, url: str, rules: RuleSet) -> RuleResult:
    """Apply `rules` to the page `html` fetched from `url`. Never raises for a page's content."""
    text, replaced = replace_strings(html, rules.replacements)
    doc = _parse(text)
    if doc is None:
        missed = tuple(name for name in PICKING if getattr(rules, name))
        return RuleResult(html=text, missed=missed)
    base = resolve(url, str(_BASE_HREF(doc))) or url
    found = _Found()
    title = found.note("title", _first_text(doc, rules.title))
    authors = found.note("author", _first_texts(doc, rules.author))
    date = found.note("date", _first_text(doc, rules.date))
    native_ad = found.note("native_ad_clue", any(_evaluate(doc, x) for x in rules.native_ad_clue))
    single_page = found.note("single_page_link", _first_link(doc, rules.single_page_link, base))
    next_page = found.note("next_page_link", _first_link(doc, rules.next_page_link, base))
    removed = _strip(doc, rules, found)
    body = found.note("body", _body_fragment(doc, rules.body))
    if replaced:
        found.count("replace_string", replaced)
    return RuleResult(
        html=_serialise(doc) if removed else text,
        body_html=body or None,
        title=title,
        authors=authors,
        date=date,
        next_page=next_page,
        single_page=single_page,
        native_ad=native_ad,
        matched=tuple(found.matched),
        missed=tuple(name for name in PICKING if getattr(rules, name) and name in found.empty),
    )


class _Found:
    """Which directives found something on the page."""

    def __init__(self) -> None:
        self.matched: list[str] = []
        self.empty: set[str] = set()

    def note(self, name: str, value: T) -> T:
        if value:
            self.matched.append(name)
        else:
            self.empty.add(name)
        return value

    def count(self, name: str, n: int) -> None:
        if n:
            self.matched.append(f"{name} ×{n}")


def replace_strings(html: str, replacements: Iterable[Replacement]) -> tuple[str, int]:
    """`html` with each replacement made in order, and how many of them changed something."""
    changed = 0
    for replacement in replacements:
        if replacement.find in html:
            html = html.replace(replacement.find, replacement.replace)
            changed += 1
    return html, changed


def _parse(text: str) -> etree._Element | None:
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text.encode("utf-8", "replace"), parser=_PARSER)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None


def _evaluate(doc: etree._Element, expression: str, **variables: str) -> list[Any]:
    """The expression's result as a list (a string or number result as a one-item list); an
    expression that fails on this page selects nothing."""
    try:
        result = compile_xpath(expression)(doc, **variables)
    except etree.XPathError:
        return []
    if isinstance(result, list):
        return result
    if isinstance(result, str):
        return [result] if result.strip() else []
    return []  # a number or boolean selects nothing


def _text_of(value: object) -> str:
    if isinstance(value, etree._Element):
        if not isinstance(value.tag, str):  # a comment or processing instruction
            return ""
        return " ".join(value.text_content().split())
    return " ".join(str(value).split())


def _first_texts(doc: etree._Element, expressions: Iterable[str]) -> tuple[str, ...]:
    """The texts of the first expression that yields any text, one per node, deduplicated."""
    for expression in expressions:
        texts = [text for value in _evaluate(doc, expression) if (text := _text_of(value))]
        if texts:
            return tuple(dict.fromkeys(texts))
    return ()


def _first_text(doc: etree._Element, expressions: Iterable[str]) -> str:
    texts = _first_texts(doc, expressions)
    return texts[0] if texts else ""


def _first_link(doc: etree._Element, rules: Iterable[LinkRule], base: str) -> str | None:
    """The first absolute http(s) URL a link rule gives, honouring `if_page_contains`."""
    for rule in rules:
        if rule.if_page_contains is not None and not _evaluate(doc, rule.if_page_contains):
            continue
        for value in _evaluate(doc, rule.xpath):
            href = value.get("href") if isinstance(value, etree._Element) else None
            target = href if href is not None else _text_of(value)
            if target and (absolute := resolve(base, target)) is not None:
                return absolute
    return None


def _strip(doc: etree._Element, rules: RuleSet, found: _Found) -> int:
    """Remove what the strip directives select; the number of elements and attributes removed."""
    total = 0
    for name, matches in _strip_targets(doc, rules):
        drop = _drop_attribute if name == "strip_attr" else _drop
        removed = sum(drop(node) for node in list(matches))
        found.count(name, removed)
        total += removed
    return total


def _strip_targets(doc: etree._Element, rules: RuleSet) -> Iterator[tuple[str, Iterator[object]]]:
    """Each strip directive and what it selects (evaluated when iterated, in this order)."""
    yield "strip", (v for x in rules.strip for v in _evaluate(doc, x))
    yield (
        "strip_id_or_class",
        (v for s in rules.strip_id_or_class for v in _ID_OR_CLASS(doc, value=s)),
    )
    yield "strip_image_src", (v for s in rules.strip_image_src for v in _IMAGE_SRC(doc, value=s))
    yield "strip_attr", (v for x in rules.strip_attr for v in _evaluate(doc, x))


def _drop(node: object) -> int:
    """Remove an element (its tail text stays in place); 0 when it is the root or already gone."""
    if not isinstance(node, etree._Element) or node.getparent() is None:
        return 0
    node.drop_tree()  # lxml.html elements have it
    return 1


def _drop_attribute(value: object) -> int:
    if not getattr(value, "is_attribute", False):
        return 0
    owner = value.getparent()  # type: ignore[attr-defined]
    name = value.attrname  # type: ignore[attr-defined]
    if owner is None or name not in owner.attrib:
        return 0
    del owner.attrib[name]
    return 1


def _body_fragment(doc: etree._Element, expressions: Iterable[str]) -> str:
    """The HTML of the first expression's elements (texts, when it selects text), or ""."""
    for expression in expressions:
        values = _evaluate(doc, expression)
        elements = _outermost([v for v in values if isinstance(v, etree._Element)])
        if elements:
            return "\n".join(_serialise(el) for el in elements)
        texts = [text for value in values if (text := _text_of(value))]
        if texts:
            return "\n".join(f"<p>{html_lib.escape(text)}</p>" for text in texts)
    return ""


def _outermost(elements: list[etree._Element]) -> list[etree._Element]:
    """Elements that hold text, without those inside another one of the list (document order)."""
    chosen = {id(el) for el in elements}
    kept = []
    for element in elements:
        if not isinstance(element.tag, str):
            continue
        if any(id(parent) in chosen for parent in element.iterancestors()):
            continue
        kept.append(element)
    return kept


def _serialise(element: etree._Element) -> str:
    return str(etree.tostring(element, method="html", encoding="unicode", with_tail=False))
