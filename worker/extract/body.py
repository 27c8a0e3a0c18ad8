"""Find the article body in a parsed page: scored candidates in the spirit of Readability.js.

The sequence, one helper per step:
1. `prepare_tree`: drop tags that never hold article text, the operator's `remove` selectors and,
   when the preset says so, elements whose class/id or attributes mark them as furniture (a
   flagged element holding long prose is kept, unless it is hidden: a hidden copy of the article).
2. `collect_blocks`: one walk over the text nodes; each text node belongs to its nearest block
   element ("own text"). Gives the page's block texts (for template fingerprints) and paragraphs.
3. `score_candidates`: every paragraph adds to its ancestors' scores (parent full, grandparent
   half, then less), scores live in a dict keyed by node id, never on the DOM.
4. `pick_top`: scale the best few by (1 - link density) and take the highest.
5. `merge_siblings`: add the top candidate's siblings that look like article text too: scoring
   well and holding mostly sentences (a teaser rail scores, but its lines are titles and blurbs),
   or repeating the top's markup with prose in it; then, while the kept part is the bulk of its
   parent, the parent's siblings (an article split by figures, ad slots and pull quotes).
6. `render`: one iterative walk per kept node that drops link-dense or labelled furniture, known
   boilerplate blocks and the duplicated title, and yields both the text and the cleaned HTML.
   A container that opens with a widget label ("You may also like", "Comments") is that widget
   and goes whole; a kept node that opens with one is dropped when another node holds text.
   Captions (`figcaption`, short "caption"-classed photo captions) stay in the HTML only.
   The walk also records each kept block's line and where it lies in the output, so that
7. `trim_edges_and_repeats` drops weak lines at the body's edges and repeats of a line just
   shown, from the output and the tree, without walking the tree again.
`extract_body` runs the steps once, with one preset; `worker.extract.safetynet` runs further
attempts (looser presets, other top candidates) while the body found is implausible.
Everything iterates with explicit stacks: 100,000 nested `div`s must not hit the recursion limit
(and `worker.extract.htmlparse.parse_html` flattens such nesting before lexbor sees it).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.extract.htmlparse import parse_html
from worker.extract.noise import (
    STRONG_GROUPS,
    hint_groups,
    is_noise_groups,
    label_group,
    normalise_label,
)
from worker.extract.template import fingerprint, fingerprints

# --- Tags ------------------------------------------------------------------------------------

# Removed with their content before anything else: never article text.
JUNK_TAGS = [
    "script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "canvas",
    "button", "input", "select", "textarea", "option", "link", "meta", "head", "dialog", "map",
    "audio", "video", "source", "track",
]  # fmt: skip

JUNK_SELECTOR = ",".join(JUNK_TAGS)

# Links: an `a` without `href` is a named anchor (a jump target), and an unclosed one
# (`<a name="more">`) wraps the rest of the post, which is not link text.
LINK_SELECTOR = "a[href]"

# The tag lexbor gives text nodes.
TEXT_TAG = "-text"

# Page furniture by element name (HTML5 semantics); kept when they carry a content hint.
FURNITURE_TAGS = frozenset({"nav", "aside", "footer", "header", "menu"})

# Elements that start a new line of text; text nodes belong to their nearest one.
BLOCK_TAGS = frozenset({
    "html", "body", "main", "article", "section", "div", "p", "aside", "header", "footer", "nav",
    "ul", "ol", "li", "dl", "dt", "dd", "table", "thead", "tbody", "tfoot", "tr", "td", "th",
    "caption", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "figure", "figcaption",
    "form", "fieldset", "address", "details", "summary", "center", "hr", "menu", "picture",
})  # fmt: skip

# The document's own containers: candidates never climb past `body`.
PAGE_ROOTS = frozenset({"body", "html", "-document"})

HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})

# Kept in the body's HTML but left out of its running text: captions describe a picture, they are
# not part of the story's prose (and galleries repeat them).
HTML_ONLY_TAGS = frozenset({"figcaption"})
# ...and so are elements whose class calls them a caption (WordPress `wp-caption-text`, galleries'
# `image-caption`), when short: a long "caption"-classed block is a wrapper, not a caption. A
# "caption" holding a heading is a card's title and blurb, and one right after a video player is
# the video's summary: both read as part of the story.
CAPTION_SELECTOR = "[class*=caption i]"
CAPTION_MAX_CHARS = 400
VIDEO_SELECTOR = "[class*=video i]"
CAPTION_NOT_PHOTO = ", ".join([*sorted(HEADING_TAGS), VIDEO_SELECTOR])

# Containers the cleaner may drop as a whole when they look like furniture.
CLEANABLE_TAGS = frozenset({
    "div", "section", "ul", "ol", "dl", "table", "form", "aside", "header", "footer", "nav",
    "center", "details", "fieldset", "figure", "article",
})  # fmt: skip

# A furniture-flagged element with at least this much text and less than this share of it in links
# is kept: widgets are short or link lists, article wrappers with odd class names are not.
PROSE_CHARS = 1000
PROSE_LINK_DENSITY = 0.25
# ...and so is one holding more than this share of the page's text, unless its class names a
# widget outright: no sidebar or menu is most of a page, a wrapper whose class names a column
# ("layout-with-sidebar") is.
WRAPPER_SHARE = 0.6

# Starting score of a candidate by tag (Readability.js `initializeNode`).
TAG_WEIGHTS: dict[str, float] = {
    "div": 5, "article": 10, "main": 5, "section": 3, "pre": 3, "td": 3, "blockquote": 3,
    "address": -3, "ol": -3, "ul": -3, "dl": -3, "dd": -3, "dt": -3, "li": -3, "form": -3,
    "h1": -5, "h2": -5, "h3": -5, "h4": -5, "h5": -5, "h6": -5, "th": -5,
}  # fmt: skip

# Class/id evidence added to a candidate's score (Readability.js `getClassWeight`).
HINT_WEIGHT = 25.0

# --- Thresholds ------------------------------------------------------------------------------

# Blocks whose text belongs to their parent's run of prose (`holder_of_opening`).
RUN_ITEM_TAGS = frozenset({"p", "li", "dd", "dt", "blockquote", "pre"}) | HEADING_TAGS
# Own text shorter than this is not a paragraph (Readability.js uses 25 characters).
MIN_PARAGRAPH_CHARS = 25
# How far a paragraph's score reaches up the tree, and the divisor per level beyond the parent.
SCORE_LEVELS = 5
# What a paragraph's points are divided by at each level: the parent 1, the grandparent 2, then
# three times the level (Readability.js).
SCORE_DIVISORS = tuple(
    1 if level == 0 else 2 if level == 1 else level * 3 for level in range(SCORE_LEVELS)
)
# How many of the best raw candidates get their (costlier) link density measured.
TOP_CANDIDATES = 8
# Candidates within this share of the best are alternatives; when this many of them share an
# ancestor of the best, that ancestor is the article (Readability.js: 0.75 and 3).
ALTERNATIVE_RATIO = 0.75
MIN_ALTERNATIVES = 3
# A sibling joins the top candidate when it scores this fraction of it (Readability.js: 0.2).
SIBLING_SCORE_RATIO = 0.2
# ...and holds at least this share of its text in sentences (an article's continuation is prose).
SIBLING_PROSE_SHARE = 0.5
# A sibling scoring less joins when it repeats the top's markup (tag and class) and holds at
# least this much text in sentences (one sentence), SIBLING_PROSE_SHARE of its text: a later
# section of the article, one paragraph after a figure or an ad slot, its wrappers deeper than
# scores reach.
SIBLING_MIN_PROSE = 80
# How deep a sibling may wrap a lone paragraph and still be judged as that paragraph.
LONE_PARAGRAPH_DEPTH = 3
# Siblings are looked for this many levels up, while what is kept makes up this share of its
# parent's text (the rest of the parent: a figure, an ad slot, a pull quote).
MERGE_LEVELS = 3
BULK_SHARE = 0.75
# Inside the nearest container (at most this many levels up) whose markup names the article,
# siblings are looked for up to that container, whatever the bulk: its schema.org type, the
# `articleBody` property (in `is_content_container`), or a class or id fragment naming a recipe,
# product or FAQ in the languages of the recipe and shop plugins.
CONTAINER_LEVELS = 4
CONTAINER_TYPES = re.compile(
    r"schema\.org/(?:\w*Article|BlogPosting|Recipe|HowTo|Product|FAQPage|Review)\b", re.I
)
CONTAINER_HINTS = (
    "recipe", "rezept", "recette", "receta", "ricetta", "przepis", "recept", "receita",
    "product-desc", "product-detail", "productdesc", "productdetail", "faq",
)  # fmt: skip
# What may join the top inside such a container: lists and tables (ingredients, specifications)
# and titled boxes of sentences, with few links.
STRUCTURED_TAGS = frozenset({"div", "section", "ul", "ol", "dl", "table"})
STRUCTURED_ITEMS = "li, tr, dt, dd"
STRUCTURED_LINK_DENSITY = 0.3

# A kept body shorter than this triggers the next, looser preset (Readability.js: 500 chars;
# our cleaning is stricter, so a short body is more often a short article).
MIN_BODY_CHARS = 250
# ...and a retry's body must hold at least this share of its text in sentences (the threshold
# used for siblings: SIBLING_PROSE_SHARE).
RETRY_PROSE_SHARE = 0.5
# A container is furniture when links make up more than this share of its text...
MAX_LINK_DENSITY = 0.5
# ...a table only when nearly all of it is links: a data table links its rows' names (teams,
# products, sources) and is still the content (trafilatura's limit for short tables too).
TABLE_LINK_DENSITY = 0.8
# ...or, when it opens with a furniture label ("Related articles"), more than this share.
LABELLED_LINK_DENSITY = 0.25
# Blocks whose text can be a widget's heading, and the label groups that make a container
# opening with one that widget ("Advertisement" or "Share" may open an article's own wrapper).
LABEL_TAGS = HEADING_TAGS | {"p", "div"}
HEAD_GROUPS = frozenset({"related", "comments", "newsletter"})
# A labelled container shorter than this is dropped whatever its links.
LABELLED_MAX_CHARS = 600

# --- Body edges and repeats ------------------------------------------------------------------

# A line ending like a sentence: its last mark (before any whitespace) is one of these, closing
# quotes and brackets in any language's style included (German „…“ and ‚…‘ close with “ and ‘,
# Swiss and Danish »…« with «).
SENTENCE_END_MARKS = frozenset(".!?。！？…؟।»”“‘’«›‹\"')]")
# Lines at the start or end of a body are trimmed while they look like furniture (bylines,
# datelines, "Share", "Follow us", teaser titles): not ending a sentence, and shorter than this
# or mostly link text.
EDGE_SHORT_CHARS = 20
# A repeated line (gallery captions, a teaser shown twice) is kept once when at least this long;
# shorter repeats ("Yes", a chorus line) may be the author's.
MIN_REPEAT_CHARS = 25
# ...and only within this many long blocks of the first copy.
REPEAT_WINDOW = 2
# A repeat longer than this is a paragraph the author wrote twice (a refrain, a template
# sentence), not a caption: captions and teaser lines are short.
MAX_REPEAT_CHARS = 200

# A sentence ending inside a line: the mark, then a space and the next sentence's first letter.
_INNER_SENTENCE = re.compile(r"[.!?…](?=\s+[^\W\d_])|[。！？]")
# Commas in the scripts that use their own (counted with `str.count`: faster than a regex).
COMMAS = (",", "，", "、", "،")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden")


@dataclass(frozen=True, slots=True)
class Preset:
    """One attempt's settings; `extract_body` tries them in order, loosest last."""

    strip_noise: bool = True  # drop furniture by class/id and tag before scoring
    weight_hints: bool = True  # add class/id evidence to candidate scores
    clean: bool = True  # drop link-dense and labelled containers inside the body


PRESETS: tuple[Preset, ...] = (
    Preset(),
    Preset(strip_noise=False),
    Preset(strip_noise=False, weight_hints=False, clean=False),
)


@dataclass(frozen=True, slots=True)
class Body:
    """The article body found on a page."""

    text: str  # paragraphs separated by newlines
    html: str  # unsanitised fragment, when the body is not `nodes` (see `fragment`)
    fingerprints: tuple[str, ...]  # of the whole page's text blocks (first preset)
    scored: bool = True  # False when no paragraph scored and the whole page body was taken
    # Fingerprints of the blocks looked up in the site's template while rendering, on every
    # attempt: only a template that names one of them can change this body.
    checked: frozenset[str] = frozenset()
    # Characters in the page's largest run of prose (the paragraphs one element holds, as
    # scoring counts them), as this attempt prepared the page: a body much shorter than that
    # missed the article.
    prose_run: int = 0
    # The body's elements, in the tree they were rendered in (unchanged since): the sanitiser
    # prepares them there rather than parsing their HTML again. Empty for a body made another
    # way (JSON-LD), whose `html` is the fragment.
    nodes: tuple[LexborNode, ...] = ()

    def fragment(self) -> str:
        """The unsanitised HTML: `html`, or that of `nodes`, serialised when asked (the
        sanitiser prepares the nodes first and then serialises them, once)."""
        return self.html or "\n".join(node.html or "" for node in self.nodes)


# Not frozen, as `Line` below: a frozen dataclass sets each field through `object.__setattr__`,
# four times the cost, and a page makes hundreds of blocks and lines. Nothing changes them.
@dataclass(slots=True)
class Block:
    """A block element with the text it holds directly (its inline descendants included)."""

    node: LexborNode
    text: str
    link_chars: int


AnyBlock = TypeVar("AnyBlock", bound=Block)


# --- Step 1: prepare ---------------------------------------------------------------------------


# Elements worth asking `furniture` about; lexbor selects them in C, in document order.
# Inline elements (`a`, `span`, ...) are left alone: furniture comes in blocks, and asking about
# every link would double the cost of this step. A block without a class, id or hiding attribute
# cannot be furniture unless its tag says so: those are not even selected. (Attributes before
# tags: lexbor tests a compound selector in order, and the attributes rule out more elements at
# once; a seventh faster.)
FURNITURE_CANDIDATES = ", ".join(
    [
        *sorted(FURNITURE_TAGS),
        ":is([class], [id], [style], [hidden], [aria-hidden])"
        ":is(div, section, ul, ol, li, p, form, table, figure, dl)",
    ]
)
# Elements that may be hidden from readers, whatever their tag (`is_hidden` decides).
HIDDEN_SELECTOR = "[hidden], [aria-hidden=true i], [style*=none i], [style*=hidden i]"
# Schema.org FAQ answers (`is_closed_answer`), found from a hidden element at most this many
# levels up (`Answer` > `text` > a wrapper), or inside it.
ANSWER_PROPS = frozenset({"acceptedanswer", "suggestedanswer"})
ANSWER_SELECTOR = "[itemprop~=acceptedAnswer i], [itemprop~=suggestedAnswer i]"
ANSWER_LEVELS = 3
# ...and their questions, whose toggle button is junk unless it names the question.
QUESTION_TYPE = re.compile(r"schema\.org/Question\b", re.IGNORECASE)
NAME_SELECTOR = "[itemprop~=name i]"
FURNITURE_AND_HIDDEN = f"{FURNITURE_CANDIDATES}, {HIDDEN_SELECTOR}"
# What only the page's own wrapper holds, never a widget: a flagged element holding one of these
# is the page (or the article), however short and whatever its links. The page's main element,
# the schema.org article body, a microformats blog entry (Blogger and WordPress mark the post).
PAGE_CONTENT_SELECTOR = (
    "main, [role=main i], [itemprop~=articleBody i], [class~=hentry], [class~=h-entry]"
)
# Never furniture: the page's own containers.
ROOT_CONTAINERS = frozenset({"html", "body", "main", "article"})


class Hints:
    """Class/id verdicts for one extraction; the answers come from `element_groups`' cache."""

    def groups(self, node: LexborNode) -> frozenset[str]:
        attrs = node.attributes
        return element_groups(attrs.get("class"), attrs.get("id"))

    def groups_of(self, class_: str | None, id_: str | None) -> frozenset[str]:
        return element_groups(class_, id_)


# A cache of a pure function, as `hint_groups`: a site's pages repeat their class attributes.
@functools.lru_cache(maxsize=16384)
def element_groups(class_: str | None, id_: str | None) -> frozenset[str]:
    """Every hint group an element's `class` words and `id` match, "content" included."""
    found: frozenset[str] = frozenset()
    for value in (class_, id_):
        if value:
            for word in value.split():
                found = found | hint_groups(word)
    return found


def is_hidden(attrs: dict[str, str | None]) -> bool:
    """Hidden from readers by the element's own attributes. `hidden="until-found"` is not: it
    collapses content that a search of the page opens (an accordion's panels)."""
    if len(attrs) < 2 and ("class" in attrs or "id" in attrs):
        return False  # the common case, answered without a lookup per hiding attribute
    if "hidden" in attrs and (attrs["hidden"] or "").lower() != "until-found":
        return True
    if attrs.get("aria-hidden") == "true":
        return True
    style = attrs.get("style")
    return style is not None and _HIDDEN_STYLE.search(style) is not None


def is_closed_answer(node: LexborNode) -> bool:
    """A hidden element that is, lies in (the answer's `text`, a few levels down) or holds a
    schema.org FAQ answer: an accordion keeps its answers hidden until a reader opens their
    question, and on an FAQ page they are the content. Asked of hidden elements only, and only
    of those holding a paragraph's worth of text (not an icon, not an empty panel)."""
    if len(node.text_lexbor()) < MIN_PARAGRAPH_CHARS:
        return False
    current: LexborNode | None = node
    for _ in range(ANSWER_LEVELS):
        if current is None or current.tag in PAGE_ROOTS:
            break
        if not ANSWER_PROPS.isdisjoint((current.attributes.get("itemprop") or "").lower().split()):
            return True
        current = current.parent
    return node.css_first(ANSWER_SELECTOR) is not None


# A cache of a pure function, as `element_groups`: asked of every furniture candidate.
@functools.lru_cache(maxsize=16384)
def furniture_hint(tag: str | None, class_: str | None, id_: str | None) -> bool:
    """Furniture by tag or class/id hint: a noise hint, or for `nav`, `aside` ... the lack of a
    content one; the page's root containers never are."""
    if tag in ROOT_CONTAINERS:
        return False
    groups = element_groups(class_, id_)
    if tag in FURNITURE_TAGS and "content" not in groups:
        return True
    return is_noise_groups(groups)


class PageFacts:
    """What `holds_prose` asks of the whole page, each read once and only when asked: the
    length of its raw text, and which elements hold its main content (`PAGE_CONTENT_SELECTOR`).
    """

    __slots__ = ("_chars", "_content", "root")

    def __init__(self, root: LexborNode) -> None:
        self.root = root
        self._chars = -1
        self._content: set[int] | None = None

    @property
    def chars(self) -> int:
        if self._chars < 0:
            self._chars = len(self.root.text_lexbor())
        return self._chars

    def holds_content(self, node: LexborNode) -> bool:
        """Whether `node` is or holds an element of the page's main content: what
        `node.css_first(PAGE_CONTENT_SELECTOR)` finds, from one query of the page (a page has
        a few such elements; a query per flagged element cost more than all the rest of its
        questions). The tree must not change between the calls."""
        if self._content is None:
            self._content = set()
            for element in self.root.css(PAGE_CONTENT_SELECTOR):
                climb: LexborNode | None = element
                while climb is not None and (key := climb.mem_id) not in self._content:
                    self._content.add(key)
                    climb = climb.parent
        return node.mem_id in self._content


def holds_prose(node: LexborNode, groups: frozenset[str], page: PageFacts) -> bool:
    """Class names lie ("ad_body", "with-right-rail", Blogger's "date-outer" round a post): a
    flagged element holding the page's main content, most of the page's text, or much text and
    few links, is the article's or the page's wrapper, not furniture. Comment sections are long
    prose too, so a comments hint (in `groups`, the element's hint groups) is always believed;
    and so is a furniture tag (`header`, `nav`...), whose class only adds to what the tag says."""
    if "comments" in groups:
        return False
    # The raw text is never shorter than the stripped one and a third cheaper to read (one
    # string, not one per text node): most flagged widgets are short by either measure.
    # lexbor's own `textContent` reads it a quarter faster than `text()` (the same string).
    raw = len(node.text_lexbor())
    if raw < MIN_PARAGRAPH_CHARS:
        return False
    if node.tag not in FURNITURE_TAGS and (
        page.holds_content(node)
        or (
            raw >= PROSE_CHARS
            and not groups & STRONG_GROUPS  # a "related" grid may well outweigh a short story
            and raw >= WRAPPER_SHARE * page.chars
        )
    ):
        return True
    if raw < PROSE_CHARS:
        return False
    chars = text_chars(node)
    if chars < PROSE_CHARS:
        return False
    return not links_reach(node, PROSE_LINK_DENSITY * chars)


def decompose_all(nodes: list[LexborNode]) -> None:
    """Remove nodes given in document order; descendants go first so no node is freed twice."""
    for node in reversed(nodes):
        node.decompose()


def drop_junk(junk: list[LexborNode]) -> None:
    """Remove the junk elements (`junk_elements`), but unwrap the buttons that are an FAQ's
    question toggles (`is_question_toggle`): their text is the question."""
    toggles = [node for node in junk if node.tag == "button" and is_question_toggle(node)]
    for node in toggles:
        node.unwrap()
    if toggles:
        kept = {node.mem_id for node in toggles}
        junk = [node for node in junk if node.mem_id not in kept]
    decompose_all(junk)


def is_question_toggle(button: LexborNode) -> bool:
    """A button naming a schema.org FAQ question, in the Question itself or one level down (an
    accordion's toggle, `<h3><button>`): its `name` is the button, its parent or inside it. A
    button beside the question (a "Was this helpful?" vote) names nothing."""
    parent = button.parent
    if parent is None:
        return False
    grandparent = parent.parent
    for node in (parent, grandparent):  # read without a generator: asked of every button
        itemtype = node.attributes.get("itemtype") if node is not None else None
        if itemtype and QUESTION_TYPE.search(itemtype) is not None:
            break
    else:
        return False
    if any("name" in (node.attributes.get("itemprop") or "").split() for node in (button, parent)):
        return True
    return button.css_first(NAME_SELECTOR) is not None


def junk_elements(tree: LexborHTMLParser) -> list[LexborNode]:
    """The elements that never hold article text (JUNK_TAGS), in document order; the page's
    metadata (`meta`, `link`, `script`) is among them."""
    return tree.css(JUNK_SELECTOR)  # one query: 1.5x faster than `strip_tags`


def prepare_tree(
    tree: LexborHTMLParser,
    remove: tuple[str, ...],
    preset: Preset,
    hints: Hints,
    junk: list[LexborNode] | None = None,
) -> None:
    """Drop junk (`junk`, when the caller found it already), `remove` matches, hidden elements
    and furniture."""
    drop_junk(junk_elements(tree) if junk is None else junk)
    decompose_all(removal_targets(tree, remove))
    if tree.body is None:
        return
    # Hidden elements go whatever the preset: hidden text is never article text.
    if preset.strip_noise:  # among the furniture: one walk finds both
        decompose_all(furniture(tree.body, hints))
    else:
        decompose_all(hidden_elements(tree.body))


def furniture(root: LexborNode, hints: Hints) -> list[LexborNode]:
    """The outermost furniture and hidden elements (`hidden_elements`) under `root`, in document
    order: what lies inside one goes with it, so it is never asked about (the prose check reads
    a whole subtree's text)."""
    doomed: list[LexborNode] = []
    candidates = root.css(FURNITURE_AND_HIDDEN)
    page = PageFacts(root)
    at = 0
    last = 0
    while at < len(candidates):
        node = candidates[at]
        at += 1
        # lexbor reports an element once per part of the selector it matches, one after the
        # other (a hidden `nav` twice): asked once, and never freed twice.
        if (key := node.mem_id) == last:
            continue
        last = key
        attrs = node.attributes  # read once: each read builds a dict
        tag = node.tag
        class_, id_ = attrs.get("class"), attrs.get("id")
        # Hidden copies of the article (schema.org microdata, print versions) are long prose too.
        hidden = (
            ("style" in attrs or "hidden" in attrs or "aria-hidden" in attrs)  # else not hidden
            and tag not in PAGE_ROOTS
            and is_hidden(attrs)
            and not is_closed_answer(node)
        )
        if not hidden and (
            not furniture_hint(tag, class_, id_)
            or holds_prose(node, hints.groups_of(class_, id_), page)
        ):
            continue
        doomed.append(node)
        at = skip_inside(candidates, at, Subtree(node))
    return doomed


def skip_inside(nodes: list[LexborNode], at: int, subtree: Subtree) -> int:
    """The index of the first of `nodes[at:]` outside `subtree`. Nodes come in document order,
    so those inside come first: probing `at`, `at + 2`, `at + 5`, `at + 10` ... and bisecting the
    last gap asks about a few of them, whether the subtree holds none or hundreds."""
    low, probe, step = at, at, 1  # nodes[at:low] lie inside
    while probe < len(nodes) and subtree.holds(nodes[probe]):
        low = probe + 1
        probe, step = low + step, step * 2
    return bisect.bisect_left(nodes, True, lo=low, hi=min(probe, len(nodes)), key=subtree.outside)


class Subtree:
    """Asks whether a node coming after `root` in document order lies inside it: a few `parent`
    calls, where a selector query for the subtree's candidates costs a walk of all of it."""

    __slots__ = ("parent_id", "root_id")

    def __init__(self, root: LexborNode) -> None:
        parent = root.parent
        self.root_id = root.mem_id
        self.parent_id = parent.mem_id if parent is not None else 0

    def holds(self, node: LexborNode) -> bool:
        """Climb from `node` until the root (inside), or the root's parent or the top (outside):
        a later node outside the subtree lies under a later sibling of the root, or further up."""
        parent = node.parent
        while parent is not None:
            key = parent.mem_id
            if key == self.root_id:
                return True
            if key == self.parent_id:
                return False
            parent = parent.parent
        return False

    def outside(self, node: LexborNode) -> bool:
        return not self.holds(node)


def hidden_elements(root: LexborNode) -> list[LexborNode]:
    """Elements hidden from readers (`hidden`, `aria-hidden`, inline `display:none` or
    `visibility:hidden`), whatever their tag: a login form's messages, a closed menu, a MathML
    copy of a formula. Never the page itself: a page may hide its body until a script has run;
    nor an FAQ's closed answers (`is_closed_answer`).
    """
    return outermost(
        [
            node
            for node in root.css(HIDDEN_SELECTOR)
            if node.tag not in PAGE_ROOTS
            and is_hidden(node.attributes)
            and not is_closed_answer(node)
        ]
    )


def removal_targets(tree: LexborHTMLParser, remove: tuple[str, ...]) -> list[LexborNode]:
    """The outermost elements the operator's `remove` selectors match, in document order.

    One query for all selectors: lexbor answers a selector list in document order (repeating an
    element that several selectors match), where one query per selector gives selector order,
    and `decompose_all` would then free an element inside one it had freed already.
    """
    if not remove:
        return []
    return outermost(tree.css(", ".join(remove)))


def outermost(nodes: list[LexborNode]) -> list[LexborNode]:
    """Nodes given in document order, without repeats and without those inside an earlier one."""
    kept: list[LexborNode] = []
    seen: set[int] = set()
    latest: Subtree | None = None
    for node in nodes:
        if node.mem_id in seen or (latest is not None and latest.holds(node)):
            continue
        seen.add(node.mem_id)
        kept.append(node)
        latest = Subtree(node)
    return kept


# --- Step 2: blocks ----------------------------------------------------------------------------


def nearest_block(node: LexborNode) -> tuple[LexborNode | None, bool]:
    """A text node's nearest block ancestor, and whether a link lies between them."""
    in_link = False
    parent = node.parent
    while parent is not None:
        tag = parent.tag  # read once: a property call into lexbor
        if tag in BLOCK_TAGS:
            break
        in_link = in_link or (tag == "a" and "href" in parent.attrs)
        parent = parent.parent
    return parent, in_link


def collect_blocks(root: LexborNode) -> list[Block]:
    """Every block under `root` with its own text, in document order. Whitespace between two
    pieces of a block's text parts them ("<b>Photo by</b> <i>Jane</i>" reads "Photo by Jane"),
    as `render` joins a block's own text."""
    texts: dict[int, list[str]] = {}  # by block id, in the order the blocks' text starts
    links: dict[int, int] = {}
    blocks: dict[int, LexborNode] = {}
    # A text node's nearest block id (0: none) and whether a link lies between, by its parent's
    # id: the text nodes of one parent share them.
    near: dict[int, tuple[int, bool]] = {}
    # Whitespace-only text nodes are skipped (most are the page's indentation, between blocks);
    # where two pieces of a block meet without a space, `parted_before` looks for one.
    for node in root.traverse(include_text=True, skip_empty=True):
        if not node.is_text_node:
            continue
        parent = node.parent
        found = near.get(parent_key := parent.mem_id if parent is not None else 0)
        if found is None:
            block, in_link = nearest_block(node)
            key = block.mem_id if block is not None else 0
            if block is not None:
                blocks[key] = block
            found = near[parent_key] = (key, in_link)
        key, in_link = found
        if not key:
            continue
        text = node.text_content or ""
        pieces = texts.get(key)
        if pieces is None:
            pieces = texts[key] = []
            links[key] = 0
        elif not text[:1].isspace() and not pieces[-1][-1:].isspace() and parted_before(node, key):
            pieces.append(" ")
        pieces.append(text)
        if in_link:
            links[key] += len(text.strip())
    return [Block(blocks[k], collapse_spaces("".join(texts[k])), links[k]) for k in texts]


def parted_before(node: LexborNode, block_key: int) -> bool:
    """Whether a whitespace-only text node or a `br` of the block's own lies between the text
    node `node` and the block's text before it: the nodes before `node` are read backwards, in
    document order, up to the first text node (the text before, or that whitespace); a nested
    block's text is its own and is passed over whole, as are empty elements and comments."""
    current: LexborNode | None = node
    while current is not None:
        before = current.prev
        if before is None:  # the first child: go on before its parent, within the block
            current = current.parent
            if current is not None and current.mem_id == block_key:
                return False
            continue
        current = before
        while True:  # the last node of `before` in document order, unless a block or empty
            if current.is_text_node:
                return current.is_empty_text_node
            if not current.is_element_node:
                break
            tag = current.tag
            if tag == "br":  # a line break parts the words as a space does
                return True
            if tag in BLOCK_TAGS:
                break
            last = current.last_child
            if last is None:
                break
            current = last
    return False


def collapse_spaces(text: str) -> str:
    """One line, single spaces: a block's own text (str.split is 4x faster than a regex)."""
    if "\u200b" in text:
        text = text.replace("\u200b", " ")
    return " ".join(text.split())


# --- Step 3 and 4: score and pick --------------------------------------------------------------


def paragraph_score(text: str) -> float:
    """Readability.js: one point, one per comma, one per 100 characters up to three."""
    return 1 + sum(map(text.count, COMMAS)) + min(len(text) // 100, 3)


def initial_score(node: LexborNode, preset: Preset, hints: Hints) -> float:
    score = TAG_WEIGHTS.get(node.tag or "", 0.0)
    if preset.weight_hints:
        groups = hints.groups(node)
        if "content" in groups:
            score += HINT_WEIGHT
        if is_noise_groups(groups):
            score -= HINT_WEIGHT
    return score


@dataclass(frozen=True, slots=True)
class Scored:
    """Candidate scores keyed by node id, the nodes, and the paragraph text each candidate holds
    directly (its run of prose: a paragraph's parent's, or a text block's own)."""

    scores: dict[int, float]
    nodes: dict[int, LexborNode]
    runs: dict[int, int]

    def largest_run(self) -> ProseRun:
        if not self.runs:
            return ProseRun(None, 0)
        key = max(self.runs, key=self.runs.__getitem__)
        return ProseRun(self.nodes[key], self.runs[key])


def score_candidates(blocks: list[Block], preset: Preset, hints: Hints) -> Scored:
    scores: dict[int, float] = {}
    nodes: dict[int, LexborNode] = {}
    runs: dict[int, int] = {}
    # The parent of each candidate, and its id (0: none): paragraphs share ancestors.
    parents: dict[int, tuple[LexborNode | None, int]] = {}
    for block in blocks:
        text = block.text
        size = len(text)
        if size < MIN_PARAGRAPH_CHARS or block.link_chars > size / 2:
            continue
        points = paragraph_score(text)
        # A block holding text directly is itself a candidate (a text `div`, a `td`).
        ancestor: LexborNode | None = block.node if block.node.tag != "p" else block.node.parent
        if ancestor is None:
            continue
        key = ancestor.mem_id
        if ancestor.tag not in ("html", None):
            runs[key] = runs.get(key, 0) + size
        for divisor in SCORE_DIVISORS:
            if key not in scores:
                if ancestor is None or ancestor.tag in ("html", None):
                    break
                scores[key] = initial_score(ancestor, preset, hints)
                nodes[key] = ancestor
                parent = ancestor.parent
                parents[key] = (parent, parent.mem_id if parent is not None else 0)
            scores[key] += points / divisor
            ancestor, key = parents[key]
    return Scored(scores, nodes, runs)


def link_density(node: LexborNode) -> float:
    total = text_chars(node)
    if not total:
        return 1.0
    return min(1.0, link_chars(node) / total)


def text_chars(node: LexborNode) -> int:
    """len(node.text(strip=True)): whitespace-only text nodes strip to nothing, so they are
    skipped rather than decoded and stripped (most of a page's text nodes are indentation)."""
    return len(node.text(strip=True, skip_empty=True))


def link_chars(node: LexborNode) -> int:
    """The text length of every link in `node` (`node` itself included, nested links twice)."""
    return sum(len(a.text(strip=True, skip_empty=True)) for a in node.css(LINK_SELECTOR))


def links_reach(node: LexborNode, limit: float) -> bool:
    """Whether `link_chars(node)` reaches `limit`, reading no more links than it takes (a
    flagged wrapper is often a long list of them)."""
    total = 0
    for a in node.css(LINK_SELECTOR):
        total += len(a.text(strip=True, skip_empty=True))
        if total >= limit:
            return True
    return False


def pick_top(scores: dict[int, float], nodes: dict[int, LexborNode]) -> tuple[LexborNode, float]:
    """The best candidate after link density, promoted to a common ancestor when warranted."""
    best = sorted(scores, key=scores.__getitem__, reverse=True)[:TOP_CANDIDATES]
    final: dict[int, float] = {}
    floor = 0.0  # below this raw score a candidate can neither win nor be an alternative
    for k in best:
        if scores[k] < floor:
            break  # raw scores only fall from here, and link density only lowers them
        final[k] = scores[k] * (1 - link_density(nodes[k]))
        floor = max(floor, ALTERNATIVE_RATIO * final[k])
    ranked = sorted(final, key=final.__getitem__, reverse=True)
    top = nodes[ranked[0]]
    close = [nodes[k] for k in ranked[1:] if final[k] >= ALTERNATIVE_RATIO * final[ranked[0]]]
    top = common_ancestor(top, close) or climb_scores(top, scores)
    while top.tag not in PAGE_ROOTS and top.parent is not None:
        if top.parent.tag in PAGE_ROOTS or not single_child(top.parent):
            break
        top = top.parent
    key = top.mem_id
    # Not `final.get(key, ...)`: its default, a walk of the whole candidate, is computed eagerly.
    score = final[key] if key in final else scores.get(key, 0.0) * (1 - link_density(top))
    return top, max(score, final[ranked[0]])


def ancestor_ids(node: LexborNode) -> set[int]:
    ids = set()
    parent = node.parent
    while parent is not None:
        ids.add(parent.mem_id)
        parent = parent.parent
    return ids


def common_ancestor(top: LexborNode, close: list[LexborNode]) -> LexborNode | None:
    """Readability.js: when several near-best candidates share an ancestor of the top one, the
    article is split into blocks (cards, sections) and that ancestor holds all of it."""
    if len(close) < MIN_ALTERNATIVES:
        return None
    chains = [ancestor_ids(node) for node in close]
    parent = top.parent
    while parent is not None and parent.tag not in ("body", "html"):
        key = parent.mem_id
        if sum(key in chain for chain in chains) >= MIN_ALTERNATIVES:
            return parent
        parent = parent.parent
    return None


def climb_scores(top: LexborNode, scores: dict[int, float]) -> LexborNode:
    """Readability.js: a parent scoring higher than the child below it holds more article."""
    last = scores.get(top.mem_id, 0.0)
    floor = last / 3
    parent = top.parent
    while parent is not None and parent.tag not in ("body", "html"):
        score = scores.get(parent.mem_id)
        if score is not None:
            if score < floor:
                break
            if score > last:
                return parent
            last = score
        parent = parent.parent
    return top


def single_child(node: LexborNode) -> bool:
    children = [c for c in node.iter() if c.is_element_node]
    return len(children) == 1


# --- Step 5: siblings --------------------------------------------------------------------------


def prose_share(node: LexborNode) -> float:
    """The share of a node's text in sentence-like paragraphs: long enough, ending like a
    sentence, not mostly link text. Teaser rails (linked title, a summary line, an author) score
    paragraphs too, but few of their lines are sentences."""
    return prose_of(node).share


@dataclass(frozen=True, slots=True)
class Prose:
    chars: int  # text in sentence-like blocks
    total: int  # all block text

    @property
    def share(self) -> float:
        return self.chars / self.total if self.total else 0.0


def prose_of(node: LexborNode) -> Prose:
    blocks = collect_blocks(node)
    total = sum(len(b.text) for b in blocks)
    return Prose(sum(len(b.text) for b in blocks if is_sentence_block(b)), total)


def is_sentence_block(block: Block) -> bool:
    return is_sentence_line(block.text, block.link_chars)


def is_sentence_line(text: str, link_chars: int = 0) -> bool:
    if len(text) < MIN_PARAGRAPH_CHARS or link_chars > len(text) / 2:
        return False
    # A paragraph whose last sentence lost its full stop still holds sentences inside.
    return ends_sentence(text) or len(_INNER_SENTENCE.findall(text)) >= 2


def ends_sentence(text: str) -> bool:
    """Whether the last mark of `text` ends a sentence (`SENTENCE_END_MARKS`): read at the end,
    where a regex ending in `$` tries every mark of the text on its way there."""
    return text.rstrip()[-1:] in SENTENCE_END_MARKS


def merge_siblings(top: LexborNode, top_score: float, scores: dict[int, float]) -> list[LexborNode]:
    """The top candidate with its siblings that read as article text; then, while what is kept
    makes up the bulk of its parent, the parent's siblings too (an article split into sections
    by figures, ad slots and pull quotes, each section in wrappers of its own). Inside a
    container whose markup names the article (a schema.org Recipe, an `articleBody`), its lists,
    tables and paragraphs join too, up to that container and never beyond it."""
    if top.tag in PAGE_ROOTS:
        return [top]
    threshold = max(10.0, top_score * SIBLING_SCORE_RATIO)
    container = content_container(top)
    unit, kept = top, [top]
    kept_chars = 0  # the text of what is kept, counted as it joins (`uncounted` not yet)
    uncounted = [top]
    for level in range(CONTAINER_LEVELS):
        parent = unit.parent
        if parent is None or parent.tag in PAGE_ROOTS:
            break
        before: list[LexborNode] = []
        after: list[LexborNode] = []
        seen = False
        for sibling in parent.iter():
            if sibling.mem_id == unit.mem_id:
                seen = True
            elif is_sibling_content(sibling, scores, threshold, unit) or (
                container is not None and is_structured_content(sibling)
            ):
                (after if seen else before).append(sibling)
        kept = before + kept + after
        uncounted += before + after
        if container is not None:
            if parent.mem_id == container.mem_id:
                break
        elif level + 1 >= MERGE_LEVELS:
            break
        else:
            kept_chars += sum(map(text_chars, uncounted))
            uncounted = []
            if kept_chars < BULK_SHARE * text_chars(parent):
                break
        unit = parent
    return kept


def is_sibling_content(
    node: LexborNode, scores: dict[int, float], threshold: float, unit: LexborNode
) -> bool:
    if not node.is_element_node:
        return False
    score = scores.get(node.mem_id)
    if score is not None and score * (1 - link_density(node)) >= threshold:
        return prose_share(node) >= SIBLING_PROSE_SHARE
    paragraph = lone_paragraph(node)
    if paragraph is not None:
        return is_sibling_paragraph(paragraph)
    if not same_kind(node, unit):
        return False
    # Scoring reaches only a few levels up: a section of the article wrapped deeper than the
    # top candidate has no score of its own here, but it repeats the top's markup and reads as
    # prose throughout.
    prose = prose_of(node)
    return (
        prose.chars >= SIBLING_MIN_PROSE
        and prose.share >= SIBLING_PROSE_SHARE
        and link_density(node) <= LABELLED_LINK_DENSITY
    )


def lone_paragraph(node: LexborNode) -> LexborNode | None:
    """`node` when a `p`, or the `p` it merely wraps (`<div class="intro"><p>...</p></div>`):
    a wrapper holding one paragraph and nothing else is judged as that paragraph."""
    for _ in range(LONE_PARAGRAPH_DEPTH):
        if node.tag == "p":
            return node
        if node.tag not in CLEANABLE_TAGS:
            return None
        children = [child for child in node.iter() if child.is_element_node]
        if len(children) != 1 or node.text(deep=False).strip():
            return None  # several children, or text of its own beside the child
        node = children[0]
    return None


def is_sibling_paragraph(node: LexborNode) -> bool:
    """Readability.js: a paragraph beside the top candidate joins when long and with few links,
    or short, linkless and ending a sentence."""
    text = node.text(strip=True)
    density = link_density(node)
    if len(text) > 80:
        return density < 0.25
    return density == 0 and ends_sentence(text)


def same_kind(node: LexborNode, other: LexborNode) -> bool:
    """The same tag and class: a container repeated (the article's sections), not another one."""
    return node.tag == other.tag and node.attributes.get("class") == other.attributes.get("class")


def is_content_container(node: LexborNode) -> bool:
    """Markup naming the element as the article itself (see CONTAINER_LEVELS)."""
    attrs = node.attrs
    itemtype = attrs.get("itemtype")
    if itemtype and CONTAINER_TYPES.search(itemtype):
        return True
    itemprop = attrs.get("itemprop")
    if itemprop and "articlebody" in itemprop.lower().split():
        return True
    return is_container_hint(attrs.get("class"), attrs.get("id"))


@functools.lru_cache(maxsize=4096)
def is_container_hint(class_: str | None, id_: str | None) -> bool:
    """A class or id naming a recipe, product or FAQ container (and nothing noisy: "related
    recipes" is a widget)."""
    hint = f"{class_ or ''} {id_ or ''}".lower()
    if not any(word in hint for word in CONTAINER_HINTS):
        return False
    return not is_noise_groups(element_groups(class_, id_))


def content_container(top: LexborNode) -> LexborNode | None:
    """The nearest element above `top`, a few levels at most, that its markup names the article
    (or recipe, product...) itself."""
    node = top.parent
    for _ in range(CONTAINER_LEVELS):
        if node is None or node.tag in PAGE_ROOTS:
            return None
        if is_content_container(node):
            return node
        node = node.parent
    return None


def is_structured_content(node: LexborNode) -> bool:
    """Inside the article's own container, a list, a table or a titled box of sentences that is
    not furniture: a recipe's ingredients beside its steps, a product's specifications, a tip."""
    if not node.is_element_node or node.tag not in STRUCTURED_TAGS:
        return False
    attrs = node.attrs
    if is_noise_groups(element_groups(attrs.get("class"), attrs.get("id"))):
        return False
    blocks = collect_blocks(node)
    if not blocks or label_group(blocks[0].text) is not None:
        return False
    total = sum(len(b.text) for b in blocks)
    links = sum(b.link_chars for b in blocks)
    if not total or links > STRUCTURED_LINK_DENSITY * total:
        return False
    if node.css_first(STRUCTURED_ITEMS) is not None:
        return True
    # A titled box of sentences ("Tip", "Good to know"); an untitled paragraph may as well be a
    # promotion or a disclaimer, and joins only as any sibling does.
    return blocks[0].node.tag in HEADING_TAGS and any(map(is_sentence_block, blocks[1:]))


# --- Step 6: render ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Open:
    """An element being walked: its text so far and where its output starts."""

    node: LexborNode
    tag: str
    after: int  # mem_id of the node following its subtree in the walk, 0 if none
    parts_at: int
    own: list[str]  # the block's own text so far; an inline element shares its parent's list
    lines_at: int  # how many lines (kept blocks) were rendered before this element
    link: bool  # an `a` with an `href` (a named anchor, `<a name="more">`, links nowhere)
    chars: int = 0
    link_chars: int = 0
    own_link_chars: int = 0  # link text among `own` (the block's own line, as in `Block`)
    first_own_at: int = -1  # index in the output of the first piece of `own`, -1 if none yet
    holds_block: bool = False  # a kept block element lies inside
    labelled: bool = False  # a child heading or line is a widget label ("Related posts")
    headed: bool = False  # ...and it comes first: the element is that widget


@dataclass(slots=True)
class Line(Block):
    """A kept block's own text as rendered, with where its output lies (`parts[start:end]`)."""

    start: int
    end: int
    order: int  # where its own text starts: lines sort into reading order by this
    leaf: bool  # no other block lies inside: dropping it loses no one else's text


@dataclass(frozen=True, slots=True)
class Rendered:
    node: LexborNode
    parts: list[str]  # the output: text pieces and line breaks
    lines: list[Line]  # the kept blocks holding text, in reading order
    widget: bool  # the root opens with a widget heading ("Related posts", "Comments")
    checked: list[str]  # fingerprints looked up in the template (see `Body.checked`)

    @property
    def text(self) -> str:
        return tidy_text("".join(self.parts))

    @property
    def has_text(self) -> bool:
        joined = "".join(self.parts)  # one pass in C, where a test per part runs in Python
        return bool(joined) and not joined.isspace()


def render(
    root: LexborNode,
    keep: Callable[[_Open], bool],
    title: str,
    boilerplate: frozenset[str],
    block_texts: dict[int, str] | None = None,
) -> Rendered:
    """The text of `root` with dropped elements left out; drops them from the tree too. `keep`
    judges block elements: an inline one (a link, `em`, `span`) is never furniture by itself.
    `block_texts` are the texts of the tree's blocks by node id (`collect_blocks`' on the tree
    as it is), the same own text a block has here: not made again."""
    block_texts = block_texts or {}
    parts: list[str] = []
    lines: list[Line] = []
    stack: list[_Open] = []
    doomed: list[LexborNode] = []
    checked: list[str] = []
    title_key = normalise_label(title)
    captions = {node.mem_id for node in root.css(CAPTION_SELECTOR) if is_photo_caption(node)}
    links = 0  # open `a` elements
    preformatted = 0  # open `pre` elements: their line breaks are the text's own
    root_open: _Open | None = None
    top: _Open | None = None  # the innermost open element, `stack[-1]`
    # One walk in document order, lexbor's `traverse` (cheaper than a Python stack of each
    # element's children); an element closes when the walk reaches the node after its subtree
    # (`_Open.after`), and the final None closes what is still open. Comments are passed over.
    # Inlined, not a generator, and each node's tag read once: this loop runs for every node.
    for node in itertools.chain(root.traverse(include_text=True), (None,)):
        key = node.mem_id if node is not None else 0
        while top is not None and top.after == key:
            current = stack.pop()
            top = stack[-1] if stack else None
            tag = current.tag
            if tag not in BLOCK_TAGS:  # inline: never dropped, its text is its parent's own
                links -= current.link
                if (
                    captions
                    and current.chars < CAPTION_MAX_CHARS
                    and current.node.mem_id in captions
                ):
                    leave_out_caption(current, parts, lines)
                if top is not None:  # as `close_into`; its own text is in the parent's list
                    top.chars += current.chars
                    top.link_chars += current.chars if current.link else current.link_chars
                    top.holds_block = top.holds_block or current.holds_block
                    top.own_link_chars += current.own_link_chars
                    if top.first_own_at < 0:
                        top.first_own_at = current.first_own_at
                continue
            preformatted -= tag == "pre"
            parts.append("\n")
            if top is not None:
                mark_label(current, top)
            inner = current is not root_open
            dropped = inner and not keep(current)
            own_text = ""
            if current.own and not dropped:
                known = block_texts.get(current.node.mem_id)
                own_text = known if known is not None else collapse_spaces("".join(current.own))
            if inner and not dropped:
                # Looked up whether or not there is a template yet (a cache hit: the same text
                # as the page's block), so the caller learns what a template could drop.
                if own_text and (fp := fingerprint(own_text)) is not None:
                    checked.append(fp)
                    dropped = fp in boilerplate
                if not dropped and tag in HEADING_TAGS:
                    dropped = normalise_label(" ".join(current.own)) == title_key
            if dropped:
                del parts[current.parts_at :]
                del lines[current.lines_at :]
                doomed.append(current.node)
                continue
            if tag in HTML_ONLY_TAGS or (
                captions and current.chars < CAPTION_MAX_CHARS and current.node.mem_id in captions
            ):
                leave_out_caption(current, parts, lines)
            elif own_text:
                add_line(lines, current, own_text, len(parts))
            if top is not None:
                close_into(top, current)
        if node is None:
            break
        tag = node.tag or ""
        if tag == TEXT_TAG:
            text = node.text_content or ""
            if "\n" in text and not preformatted:  # a line break in the source: a space
                text = " " if text.isspace() else text.replace("\n", " ")
            parts.append(text)
            if top is not None:
                top.own.append(text)
                if top.first_own_at < 0:
                    top.first_own_at = len(parts) - 1
                size = len(text.strip())
                top.chars += size
                if links:
                    top.link_chars += size
                    top.own_link_chars += size
            continue
        if not node.is_element_node:
            continue
        if tag == "br":  # void: no children, never open; a space in the block's own text
            parts.append("\n")
            if top is not None:
                top.own.append(" ")
            continue
        block = tag in BLOCK_TAGS
        if block:
            parts.append("\n")
            preformatted += tag == "pre"
        link = tag == "a" and "href" in node.attrs
        links += link
        if top is not None:
            following = node.next
            after = following.mem_id if following is not None else top.after
            # An inline element's own text is its parent's: it adds to the parent's list.
            own = [] if block else top.own
            top = _Open(node, tag, after, len(parts), own, len(lines), link)
        else:  # the root: closed by the final None
            top = root_open = _Open(node, tag, 0, len(parts), [], len(lines), link)
        stack.append(top)
    for node in doomed:  # post-order: descendants before ancestors
        node.decompose()
    lines.sort(key=lambda line: line.order)
    return Rendered(root, parts, lines, root_open is not None and root_open.headed, checked)


def leave_out_caption(element: _Open, parts: list[str], lines: list[Line]) -> None:
    """A caption stays in the HTML only: its text leaves the output and, so, its wrappers'
    counts (a caption inside a caption wrapper leaves it a short caption)."""
    del parts[element.parts_at :]
    del lines[element.lines_at :]
    parts.append("\n")
    element.chars = element.link_chars = 0


def add_line(lines: list[Line], element: _Open, text: str, end: int) -> None:
    """Record a kept block's line; `text` is its own text, `collapse_spaces`'d."""
    if text:
        start, order, leaf = element.parts_at - 1, element.first_own_at, not element.holds_block
        lines.append(Line(element.node, text, element.own_link_chars, start, end, order, leaf))


def close_into(parent: _Open, child: _Open) -> None:
    """Pass a kept block's counts to its parent (`render` passes an inline element's itself:
    its own text went into its parent's list as it was read)."""
    parent.chars += child.chars
    parent.link_chars += child.chars if child.link else child.link_chars
    parent.holds_block = True


def is_photo_caption(node: LexborNode) -> bool:
    """A "caption"-classed element describing a picture (see CAPTION_SELECTOR)."""
    if node.css_first(CAPTION_NOT_PHOTO) is not None:
        return False
    return not any(is_video(element_before(near)) for near in (node, node.parent))


def element_before(node: LexborNode | None) -> LexborNode | None:
    before = node.prev if node is not None else None
    while before is not None and not before.is_element_node:
        before = before.prev
    return before


def is_video(node: LexborNode | None) -> bool:
    """A video player, or a block holding one, by class (the `video` tag itself is junk); lexbor's
    `css` on a node matches the node itself too."""
    return node is not None and node.css_first(VIDEO_SELECTOR) is not None


def mark_label(child: _Open, parent: _Open) -> None:
    """Pass a closing block's label evidence to its parent, whether or not the block is kept
    (the cleaner drops label headings themselves): a label heading, or a wrapper holding only
    one, marks the parent labelled, and headed when nothing came before it."""
    label_only = (child.headed and not child.chars) or (
        child.tag in LABEL_TAGS
        and child.chars < 80
        and label_group(" ".join(child.own)) in HEAD_GROUPS
    )
    if label_only or child.labelled or (child.tag in HEADING_TAGS and is_label(child)):
        parent.labelled = True
    if label_only and not parent.chars:
        parent.headed = True


def is_label(element: _Open) -> bool:
    return element.chars < 80 and label_group(" ".join(element.own)) is not None


def keep_clean(element: _Open) -> bool:
    """The conditional cleaner: is this element article text rather than furniture?"""
    tag = element.tag
    if tag in HEADING_TAGS or tag == "p":
        return not (element.chars < 80 and is_label(element))
    if tag not in CLEANABLE_TAGS or not element.chars:
        return True
    density = element.link_chars / element.chars
    if density > (TABLE_LINK_DENSITY if tag == "table" else MAX_LINK_DENSITY):
        return False
    if element.headed:
        return False
    if element.labelled:
        return density <= LABELLED_LINK_DENSITY and element.chars >= LABELLED_MAX_CHARS
    return not is_label(element)


def keep_all(element: _Open) -> bool:
    return True


def tidy_text(text: str) -> str:
    """One paragraph per line, inner whitespace collapsed, blank lines dropped.

    `str.split` collapses every Unicode space (no-break and ideographic ones too) twice as fast
    as a regex; the zero-width space is not whitespace to Python, so it is replaced first."""
    if "\u200b" in text:
        text = text.replace("\u200b", " ")
    return "\n".join(
        [" ".join(line.split()) for line in text.split("\n") if line and not line.isspace()]
    )


# --- The sequence ------------------------------------------------------------------------------


def find_content(
    tree: LexborHTMLParser, scored: Scored, start: LexborNode | None = None
) -> list[LexborNode]:
    """The top candidate and its article siblings, or the whole body when nothing scored; with
    `start`, that element stands in for the top candidate."""
    scores = scored.scores
    if not scores:
        return [tree.body] if tree.body is not None else []
    if start is not None:
        top, top_score = start, scores.get(start.mem_id, 0.0) * (1 - link_density(start))
    else:
        top, top_score = pick_top(scores, scored.nodes)
    return merge_siblings(top, top_score, scores)


@dataclass(frozen=True, slots=True)
class ProseRun:
    """The element holding the most paragraph text directly (its paragraphs, or its own text)."""

    holder: LexborNode | None
    chars: int


def holder_of_opening(blocks: list[Block], opening: str) -> LexborNode | None:
    """The element holding the first block whose text holds `opening` (lower case): a
    paragraph's parent, else the block itself."""
    if not opening:
        return None
    for block in blocks:
        if opening in block.text.lower():
            node = block.node
            return node.parent if node.tag in RUN_ITEM_TAGS else node
    return None


def extract_body(
    tree: LexborHTMLParser,
    preset: Preset,
    *,
    remove: tuple[str, ...] = (),
    title: str = "",
    boilerplate: frozenset[str] = frozenset(),
    junk: list[LexborNode] | None = None,
    start: str = "",
    opening: str = "",
) -> Body:
    """One attempt with one preset on a fresh tree (it is mutated); the caller retries.

    `start` picks the top candidate another way: "prose-run", the holder of the page's largest
    run of prose; "opening", the holder of the first block holding `opening` (the article's
    first words as the page's description gives them). When there is none, the body is empty."""
    hints = Hints()
    prepare_tree(tree, remove, preset, hints, junk)
    if tree.body is None:
        return Body("", "", ())
    blocks = collect_blocks(tree.body)
    prints = fingerprints(b.text for b in blocks)
    scored = score_candidates(blocks, preset, hints)
    run = scored.largest_run()
    holder = None
    if start:
        holder = run.holder if start == "prose-run" else holder_of_opening(blocks, opening)
        if holder is None:
            return Body("", "", prints, prose_run=run.chars)
    content = find_content(tree, scored, holder)
    found = render_content(content, preset, title, boilerplate, prints, blocks)
    return replace(found, scored=not (content and content[0].tag == "body"), prose_run=run.chars)


def render_content(
    content: list[LexborNode],
    preset: Preset,
    title: str,
    boilerplate: frozenset[str],
    prints: tuple[str, ...],
    blocks: list[Block] | None = None,
) -> Body:
    """The `content` elements rendered with the preset's cleaning; `blocks` are the tree's
    (`collect_blocks`, on the tree as it is), when the caller has them."""
    keep = keep_clean if preset.clean else keep_all
    own_texts = {block.node.mem_id: block.text for block in blocks} if blocks else None
    rendered = [render(node, keep, title, boilerplate, own_texts) for node in content]
    kept = [r for r in rendered if r.has_text and not r.widget]
    if not kept:  # a widget-headed container is still better than nothing
        kept = [r for r in rendered if r.has_text]
    if preset.clean:
        trim_edges_and_repeats(kept)
    texts = [(r.node, text) for r in kept if (text := r.text)]
    checked = frozenset(fp for r in rendered for fp in r.checked)
    nodes = tuple(n for n, _ in texts)
    return Body("\n".join(t for _, t in texts), "", prints, checked=checked, nodes=nodes)


def trim_edges_and_repeats(rendered: list[Rendered]) -> None:
    """Drop weak lines at the body's edges and repeated lines inside it, from the output and
    the tree. Only leaves go: a weak `div` line may wrap the article's `p`s."""
    lines = [line for r in rendered for line in r.lines]
    doomed = {id(line) for line in edge_blocks(lines) + repeated_blocks(lines) if line.leaf}
    for r in rendered:
        root = r.node.mem_id
        gone = [line for line in r.lines if id(line) in doomed and line.node.mem_id != root]
        for line in sorted(gone, key=lambda line: line.start, reverse=True):
            del r.parts[line.start : line.end]
            line.node.decompose()


def is_weak_block(block: Block) -> bool:
    """Furniture-like at a body's edge: not ending a sentence, and either very short ("Video",
    a name) or mostly link text (a teaser title, "Follow us on Twitter")."""
    text = block.text
    if ends_sentence(text) and block.link_chars <= len(text) / 2:
        return False
    return len(text) < EDGE_SHORT_CHARS or block.link_chars > len(text) / 2


def edge_blocks(blocks: list[AnyBlock]) -> list[AnyBlock]:
    """The weak blocks before the first and after the last substantial one (looked for from
    each end: the blocks between are never asked about)."""
    first = next((i for i, block in enumerate(blocks) if not is_weak_block(block)), None)
    if first is None:
        return []
    last = next(i for i in range(len(blocks) - 1, first - 1, -1) if not is_weak_block(blocks[i]))
    return blocks[:first] + blocks[last + 1 :]


def repeated_blocks(blocks: list[AnyBlock]) -> list[AnyBlock]:
    """Copies of a long-enough block shortly after it (a caption shown twice, a gallery's slides);
    repeats further apart (a recipe line in two menus) are the author's."""
    seen: dict[str, int] = {}
    copies: list[int] = []
    long_blocks = [b for b in blocks if MIN_REPEAT_CHARS <= len(b.text) <= MAX_REPEAT_CHARS]
    for i, block in enumerate(long_blocks):
        key = block.text.lower()  # block texts are already collapse_spaces'd
        first = seen.setdefault(key, i)
        if first != i and i - first <= REPEAT_WINDOW:
            copies.append(i)
    return [long_blocks[i] for i in copies]


def render_selected(
    node: LexborNode, title: str, boilerplate: frozenset[str], prints: tuple[str, ...]
) -> Body:
    """The operator's container, cleaned only of known boilerplate and the title."""
    return render_content([node], PRESETS[-1], title, boilerplate, prints)


def page_blocks(html: str) -> tuple[str, ...]:
    """Fingerprints of a page's text blocks, with the first preset's preparation."""
    return tree_blocks(parse_html(html))


def tree_blocks(tree: LexborHTMLParser) -> tuple[str, ...]:
    """`page_blocks` of a page parsed already (it is mutated)."""
    prepare_tree(tree, (), PRESETS[0], Hints())
    if tree.body is None:
        return ()
    return fingerprints(b.text for b in collect_blocks(tree.body))
