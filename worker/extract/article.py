"""html + url -> Article: metadata, body, then sanitising, always last.

Body paths, tried in this order (`Article.method` says which one won):
- "selector": the operator's `body` CSS selector matched and holds text;
- "rule": the site rule's `body` XPath matched, holds text, and does not look worse than what
  the paths below find (extract/siterule.py, which also applies the rule's replacements,
  strips and metadata before any path runs);
- "auto": the scored-candidates extractor (body.py) found a plausible body at once;
- "prose-run", "opening", "loose", "raw": the first body was implausible (much shorter than
  the page's largest run of prose, its JSON-LD body or word count, or its description), and
  this later attempt of the safety net (safetynet.py) found a plausible one;
- "jsonld": the DOM result was poor and the page's JSON-LD `articleBody` is much longer;
- "fallback": nothing scored; the page's cleaned text as a whole.
"""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.errors import ExtractError
from worker.extract import body as body_mod
from worker.extract.htmlparse import FlatHtml, flatten_nesting, parse_flat
from worker.extract.meta import Metadata, extract_metadata
from worker.extract.safetynet import Expected, best_body, opening_words
from worker.extract.sanitize import sanitize_html, sanitize_nodes
from worker.extract.siterule import next_page_link, rule_page, ruled_body, ruled_metadata
from worker.models import Article, Method
from worker.publish.xmlchars import xml_safe

if TYPE_CHECKING:  # lxml is loaded only by extractor processes that get site rules
    from worker.siterules import RuleSet

# What each body path means, for people reading `feedworker extract` (see the docstring).
METHOD_NOTES: dict[Method, str] = {
    "selector": "the source's `body` selector",
    "rule": "the site rule's `body` XPath (see the rule lines below)",
    "auto": "the best-scored block of the page, with its siblings",
    "prose-run": "the first body was implausible; the page's largest run of prose instead",
    "opening": "the first body was implausible; the block holding the page description's words",
    "loose": "the first body was implausible; found again with class/id furniture left in",
    "raw": "the first body was implausible; found again without class/id evidence or cleaning",
    "jsonld": "the page's JSON-LD articleBody (the page itself showed much less)",
    "fallback": "no paragraph scored: the page's text as a whole",
    "feed-summary": "the page held no article: the feed entry's own summary",
}

# The DOM body loses to JSON-LD `articleBody` when it is shorter than this share of it: the DOM
# path then most likely picked a teaser or a paywalled stub.
JSONLD_PREFERRED_RATIO = 0.5
# Below this many characters of text a page holds no article worth publishing: what is left
# is a stray link or a copyright line (the same floor as a paragraph in body.py).
MIN_ARTICLE_CHARS = 25


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    """Per-source settings from the operator's config and from learnt site templates."""

    body: str | None = None  # operator's CSS selector for the article container
    remove: tuple[str, ...] = ()  # operator's CSS selectors to drop before extraction
    boilerplate: frozenset[str] = frozenset()  # block fingerprints recurring on this source
    site_rules: RuleSet | None = None  # the site rule file for the page's host, if any
    paginated: bool = False  # look for the article's next page by its pagination links
    page_number: int = 1  # which page of a multi-page article this is
    check_rules: bool = True  # keep automatic extraction's body when the rule's looks worse


def extract(html: str, url: str, options: ExtractOptions | None = None) -> Article:
    """Pure: no I/O, no globals that change between calls. Raises ExtractError when no article."""
    options = options or ExtractOptions()
    if not html or html.isspace():  # not `strip`, which copies the page
        raise ExtractError(f"{url}: empty page")
    original = page = flatten_nesting(html)  # once: the body paths may parse the page again
    ruled = rule_page(page, url, options.site_rules)
    page = ruled.page if ruled is not None else page
    tree = parse_flat(page)
    junk = body_mod.junk_elements(tree)  # one walk finds both the junk and the metadata
    meta = ruled_metadata(extract_metadata(tree, url, junk), ruled)
    next_page = next_page_link(tree, url, ruled, options.paginated, options.page_number)
    if ruled is None:
        found, method = find_body(tree, page, meta, options, junk)
        trace = None
    else:
        found, method, trace = ruled_body(ruled, tree, junk, original, meta, options, find_body)
    if len(found.text) < MIN_ARTICLE_CHARS:
        raise ExtractError(f"{url}: no article text found")
    return Article(
        url=url,
        title=meta.title,
        body_html=sanitize_body(found, url),
        body_text=xml_safe(found.text),
        canonical_url=meta.canonical_url,
        authors=meta.authors,
        published=meta.published,
        modified=meta.modified,
        image=meta.image,
        language=meta.language,
        summary=meta.description,
        categories=meta.categories,
        block_fingerprints=found.fingerprints,
        template_checked=tuple(sorted(found.checked)),
        method=method,
        site_rule=trace,
        next_page=next_page,
        single_page=ruled.result.single_page if ruled is not None else None,
    )


def find_body(
    tree: LexborHTMLParser,
    html: FlatHtml,
    meta: Metadata,
    options: ExtractOptions,
    junk: list[LexborNode] | None,
) -> tuple[body_mod.Body, Method]:
    """The body and the name of the path that produced it; `tree` is `html` parsed, `junk` are
    the `tree`'s."""
    checked: frozenset[str] = frozenset()  # template lookups of an attempt given up
    if options.body:
        selected, checked = select_body(tree, html, options, meta.title, junk)
        if selected is not None:
            return selected, "selector"
        tree, junk = parse_flat(html), None
    jsonld_body = (meta.jsonld_body or "").strip()
    description = meta.description
    expected = Expected(
        len(jsonld_body), meta.word_count, len(description), opening_words(description)
    )
    found, method = best_body(
        tree,
        html,
        remove=options.remove,
        title=meta.title,
        boilerplate=options.boilerplate,
        junk=junk,
        expected=expected,
    )
    found = replace(found, checked=found.checked | checked)
    if jsonld_body and len(found.text) < JSONLD_PREFERRED_RATIO * len(jsonld_body):
        return jsonld_as_body(jsonld_body, found), "jsonld"
    return found, method if found.scored else "fallback"


def select_body(
    tree: LexborHTMLParser,
    html: FlatHtml,
    options: ExtractOptions,
    title: str,
    junk: list[LexborNode] | None,
) -> tuple[body_mod.Body | None, frozenset[str]]:
    """The operator's container, when the selector matches something with text; and the
    fingerprints looked up in the site's template on the way."""
    preset = body_mod.Preset(strip_noise=False)
    body_mod.prepare_tree(tree, options.remove, preset, body_mod.Hints(), junk)
    node = tree.css_first(options.body) if options.body else None
    if node is None:
        return None, frozenset()
    prints = body_mod.tree_blocks(parse_flat(html))
    found = body_mod.render_selected(node, title, options.boilerplate, prints)
    return (found if found.text else None), found.checked


def jsonld_as_body(text: str, found: body_mod.Body) -> body_mod.Body:
    """The JSON-LD article text as the body, chosen over the `found` one (which was too short:
    its page fingerprints and template lookups stay)."""
    paragraphs = [line.strip() for line in text.splitlines() if line.strip()]
    fragment = "".join(f"<p>{html_lib.escape(p)}</p>" for p in paragraphs)
    return body_mod.Body("\n".join(paragraphs), fragment, found.fingerprints, True, found.checked)


def sanitize_body(found: body_mod.Body, url: str) -> str:
    """The body's HTML sanitised: its elements prepared where they are in the page's tree,
    when it has them (the page is parsed once, not its body again)."""
    if found.nodes:
        return sanitize_nodes(found.nodes, url)
    return sanitize_html(found.html, url)


def describe_method(method: Method) -> str:
    """One line on what an `Article.method` means."""
    return METHOD_NOTES.get(method, "")


def page_fingerprints(html: str) -> tuple[str, ...]:
    """Fingerprints of a page's text blocks (e.g. an index page), as `block_fingerprints`."""
    return body_mod.page_blocks(html)


__all__ = ["METHOD_NOTES", "ExtractOptions", "describe_method", "extract", "page_fingerprints"]
