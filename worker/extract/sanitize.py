"""Make an article body safe and self-contained for a feed: the last step of extraction, always.

1. Prepare (Lexbor): resolve lazy-loaded images (`data-src`, `srcset` ... ) and make every link
   and image URL absolute against the fragment's `<base href>` or the caller's `base_url`;
   images with no usable source and `<noscript>` duplicates of images are dropped, links whose
   URL is unusable (`javascript:`, `data:`, however obfuscated) are unwrapped to their text.
   Pathologically deep nesting is flattened to paragraphs before any parser sees it. The
   extractor's body is prepared where it is, in the page's tree (`sanitize_nodes`): the same
   result as parsing its HTML again.
2. Clean (nh3, i.e. ammonia): an allowlist of article tags and attributes; scripts, styles,
   frames, embeds, SVG and forms go with their content; only http(s) (and mailto for links) URLs
   survive; links get `rel="noopener noreferrer"`.
3. Tidy: `<h1>` becomes `<h2>` (the item title is the feed's heading), empty paragraphs go, and
   characters XML 1.0 forbids are stripped.

nh3 runs last on purpose: whatever the preparation step does, the allowlist decides what leaves.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence

import nh3
from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.extract.htmlparse import FlatHtml, parse_flat, parse_html, too_deep
from worker.extract.weburl import WEB_SCHEMES, absolute_url
from worker.publish.xmlchars import xml_safe

# --- Data tables -----------------------------------------------------------------------------

# Tags kept; any other tag is unwrapped (its text stays) unless listed in _DROPPED_WITH_CONTENT.
_ALLOWED_TAGS = frozenset(
    {
        *("p", "br", "hr", "div", "h1", "h2", "h3", "h4", "h5", "h6"),
        *("ul", "ol", "li", "dl", "dt", "dd", "blockquote", "q", "cite"),
        *("figure", "figcaption", "img", "a", "abbr", "time"),
        *("strong", "b", "em", "i", "u", "s", "sub", "sup", "mark", "small", "del", "ins"),
        *("code", "pre", "kbd", "samp", "var"),
        *("table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption"),
    }
)
# Tags removed together with everything inside them: active content, embeds, forms, media.
_DROPPED_WITH_CONTENT = frozenset(
    {
        *("script", "style", "noscript", "template", "title"),
        *("iframe", "frame", "frameset", "noframes", "object", "embed", "applet", "noembed"),
        *("svg", "math", "canvas", "audio", "video"),
        *("form", "button", "select", "textarea", "datalist"),
    }
)
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "time": {"datetime"},
    "ol": {"start", "reversed"},
    "th": {"colspan", "rowspan", "scope"},
    "td": {"colspan", "rowspan"},
}
_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_IMAGE_SCHEMES = WEB_SCHEMES

# Where lazy-loading scripts keep the real image URL, most specific first.
_LAZY_SRC_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
_SRCSET_ATTRIBUTES = ("data-srcset", "data-lazy-srcset", "srcset")
# A `src` matching this is a stand-in until a script swaps in the real image: a data: URI, or a
# blank/spacer/placeholder GIF, PNG or SVG (never a JPEG: "transparent-solar-cells.jpg" is news).
_PLACEHOLDER_SRC = re.compile(
    r"^data:|(?:^|/)(?:pixel|empty|(?:[\w.-]*[-_.])?"
    r"(?:blank|spacer|transparent|placeholder|lazy[-_]?load\w*|1x1)(?:[-_.][\w.-]*)?)"
    r"\.(?:gif|png|svg)(?:[?#]|$)",
    re.IGNORECASE,
)
# What a placeholder's URL holds, whatever else (lower case; `_is_placeholder`).
_PLACEHOLDER_TYPES = (".gif", ".png", ".svg")

# Tab and newline anywhere, and C0 controls or spaces at the ends, are ignored by browsers' URL
# parsing: "jav&#x09;ascript:" and " javascript:" are both javascript: URLs.
_URL_IGNORED = re.compile(r"[\t\n\r]")
_URL_TRIM = "".join(chr(c) for c in range(0x21))

# An empty paragraph (or div, or figure): nothing but whitespace, `&nbsp;` and `<br>` inside, or
# empty blocks itself, nested up to `_EMPTY_BLOCK_LEVELS` deep (one pass over the text, where a
# pass per level found the blocks emptied by the pass before).
_EMPTY_BLOCK_LEVELS = 3
_BLANK = r"(?:\s|&nbsp;|<br>)"


def _empty_block_pattern(levels: int) -> str:
    """The innermost block holds blanks only; each one around it, blanks and empty blocks."""
    inside = f"{_BLANK}*"
    for level in range(levels, 0, -1):  # groups number from the outermost block, 1
        inside = f"<(p|div|figure)>{inside}</\\{level}>"
        if level > 1:
            inside = f"(?:{_BLANK}|{inside})*"
    return inside


_EMPTY_BLOCK = re.compile(_empty_block_pattern(_EMPTY_BLOCK_LEVELS))
# Elements the preparation may remove or unwrap: as one of `sanitize_nodes`'s own nodes, its
# place would be lost.
_SETTLED_TAGS = frozenset({"a", "img", "noscript"})
_HEADING_DEMOTIONS = (("<h1>", "<h2>"), ("</h1>", "</h2>"))

# Lexbor and html5ever both take quadratic time on deeply nested elements (measured: 30,000
# nested <div>s cost 1.1 s and 1.7 s). Nested too deep for `worker.extract.htmlparse` (the one
# measure every parser here uses), the body is flattened to plain paragraphs: such nesting is no
# structure. Linear on any text: an element left open runs to the end, a tag ends at `>` or the next
# `<`.
_RAW_TEXT_ELEMENT = re.compile(r"<(script|style)\b.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_ANY_TAG = re.compile(r"<[^<>]*>")
_BLOCK_BOUNDARY = re.compile(
    r"</?(?:p|div|br|h[1-6]|li|blockquote|pre|tr|section|article|figure|figcaption)\b[^<>]*>",
    re.IGNORECASE,
)

# Elements that end a line in plain text.
_TEXT_BLOCK_TAGS = (
    "p,div,br,hr,h1,h2,h3,h4,h5,h6,ul,ol,li,dl,dt,dd,blockquote,figure,figcaption,pre,table,"
    "caption,tr,section,article,header,footer,aside,main,address,details,summary"
)
_TEXT_DROPPED_TAGS = "script,style,noscript,template"
# xml_safe removes NUL from the input first, so it cannot occur in the text: a safe marker.
_LINE_BREAK = "\x00"
_SPACES = re.compile(r"\s+")

_CLEANER = nh3.Cleaner(
    tags=set(_ALLOWED_TAGS),
    clean_content_tags=set(_DROPPED_WITH_CONTENT),
    attributes={tag: set(names) for tag, names in _ALLOWED_ATTRIBUTES.items()},
    url_schemes=set(_LINK_SCHEMES),
    url_relative="deny",  # every URL was made absolute first; a relative one is a surprise
    link_rel="noopener noreferrer",
    strip_comments=True,
)


# --- Public API --------------------------------------------------------------------------------


def sanitize_html(fragment: str, base_url: str) -> str:
    """Return `fragment` as safe, self-contained article HTML with absolute URLs."""
    fragment = xml_safe(fragment)
    if too_deep(fragment):
        fragment = _flatten(fragment)
    tree = parse_flat(FlatHtml(fragment))  # its nesting was checked above
    _prepare([tree], base_url)
    prepared = (tree.body.inner_html or "") if tree.body is not None else ""
    return xml_safe(_tidy(_CLEANER.clean(prepared))).strip()


def sanitize_nodes(nodes: Sequence[LexborNode], base_url: str) -> str:
    """`sanitize_html` of the HTML of `nodes`, elements of a tree lexbor parsed: they are
    prepared where they are, changed in place, and serialised once, rather than serialised,
    parsed again and prepared (the extractor's body is in the page's tree already). When one of
    `nodes` is an element the preparation removes or unwraps, `sanitize_html` runs instead; when
    the prepared HTML nests too deep, it is flattened as there.

    The same result, but for characters XML forbids: `sanitize_html` drops them before the
    preparation, this after it, so a URL holding one is resolved with it and loses it then (a
    browser ignores only tabs and newlines inside a URL). nh3's output then holds none either:
    lexbor's HTML escapes only with `&amp;`, `&lt;`, `&gt;`, `&quot;` and `&nbsp;`, so nh3
    decodes nothing else."""
    if any(node.tag in _SETTLED_TAGS for node in nodes):
        return sanitize_html("\n".join(node.html or "" for node in nodes), base_url)
    _prepare(nodes, base_url)
    prepared = "\n".join(node.html or "" for node in nodes)
    if too_deep(prepared):
        return sanitize_html(prepared, base_url)
    return _tidy(_CLEANER.clean(xml_safe(prepared))).strip()


def html_to_text(fragment: str) -> str:
    """Plain text of (sanitised) HTML: each paragraph, heading or list item on its own line
    (item filters read a stored item's body this way: `worker.filters`)."""
    tree = parse_html(xml_safe(fragment))
    if tree.body is None:
        return ""
    for node in tree.css(_TEXT_DROPPED_TAGS):
        node.decompose()
    for node in tree.css(_TEXT_BLOCK_TAGS):
        node.insert_before(_LINE_BREAK)
        node.insert_after(_LINE_BREAK)
    text = tree.body.text() or ""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split(_LINE_BREAK))
    return xml_safe("\n".join(line for line in lines if line))


def _tidy(cleaned: str) -> str:
    """nh3's output with headings demoted and empty paragraphs gone."""
    if "<h1>" in cleaned:  # one search, where two replacements would search twice
        for old, new in _HEADING_DEMOTIONS:
            cleaned = cleaned.replace(old, new)
    return _drop_empty_blocks(cleaned)


def _drop_empty_blocks(cleaned: str) -> str:
    """Remove empty paragraphs (and the blocks that held only them), a few levels deep."""
    return _EMPTY_BLOCK.sub("", cleaned)


# --- Preparation (Lexbor) ----------------------------------------------------------------------


def _prepare(roots: Sequence[LexborNode | LexborHTMLParser], base_url: str) -> None:
    """Settle the base, images, noscript copies and links in `roots` (and under them), in
    place. One query per root finds three kinds (each query walks all of a root); the order
    they are settled in stays: the base first, images before the noscript copies that pair
    with them, links last (the noscript copies went with any link inside them)."""
    found: dict[str, list[LexborNode]] = {"base": [], "img": [], "noscript": []}
    for root in roots:
        for node in root.css("base[href], img, noscript"):
            found[node.tag or ""].append(node)
    base = _fragment_base(found["base"], base_url)
    for image in found["img"]:
        _settle_image(image, base)
    for noscript in found["noscript"]:
        _settle_noscript(noscript)
    for root in roots:
        for link in root.css("a"):
            _settle_link(link, base)


def _fragment_base(bases: list[LexborNode], base_url: str) -> str:
    """A `<base href>` inside the fragment (the first) wins over the caller's base, when it is a
    web URL."""
    if not bases:
        return base_url
    return _absolute_url(bases[0].attributes.get("href"), base_url, _IMAGE_SCHEMES) or base_url


def _settle_image(image: LexborNode, base: str) -> None:
    """Point `src` at the real image, absolute; drop the image when there is none."""
    attrs = image.attributes
    candidates = _image_candidates(image, attrs)
    resolved = (_absolute_url(url, base, _IMAGE_SCHEMES) for url in candidates)
    src = next((url for url in resolved if url), None)
    if src is None:
        image.decompose()
    elif src != attrs.get("src"):  # most images point at their absolute URL already
        image.attrs["src"] = src


def _image_candidates(image: LexborNode, attrs: dict[str, str | None]) -> Iterator[str]:
    """Possible sources, best first: `src` unless a placeholder, lazy-loading attributes, then
    the largest candidate of each `srcset` (the image's own, then its `<picture>`'s)."""
    if attrs.get("width") == "1" and attrs.get("height") == "1":
        return  # a tracking pixel
    for name in ("src", *_LAZY_SRC_ATTRIBUTES):
        value = (attrs.get(name) or "").strip()
        if value and not _is_placeholder(value):
            yield value
    for srcset in [*(attrs.get(name) for name in _SRCSET_ATTRIBUTES), *_picture_srcsets(image)]:
        largest = _largest_candidate(srcset or "")
        if largest:
            yield largest


def _is_placeholder(url: str) -> bool:
    """Whether `url` matches `_PLACEHOLDER_SRC`; an ASCII URL without its file types or a data:
    scheme cannot, and is not searched (the pattern backtracks over every path segment)."""
    if url.isascii():
        lowered = url.lower()
        if not lowered.startswith("data:") and not any(
            kind in lowered for kind in _PLACEHOLDER_TYPES
        ):
            return False
    return _PLACEHOLDER_SRC.search(url) is not None


def _picture_srcsets(image: LexborNode) -> list[str | None]:
    """The `srcset`s of the `<source>`s beside an image inside `<picture>`."""
    parent = image.parent
    if parent is None or parent.tag != "picture":
        return []
    sources = parent.css("source")
    return [s.attributes.get(name) for s in sources for name in _SRCSET_ATTRIBUTES]


def _largest_candidate(srcset: str) -> str | None:
    """The URL of the widest (or highest-density) candidate of a `srcset`."""
    best: tuple[tuple[int, float], str] | None = None
    for url, descriptor in _srcset_candidates(srcset):
        if _is_placeholder(url):
            continue
        size = _descriptor_size(descriptor)
        if best is None or size > best[0]:
            best = (size, url)
    return best[1] if best else None


def _srcset_candidates(srcset: str) -> Iterator[tuple[str, str]]:
    """(url, descriptor) pairs, split as the HTML spec does (URLs may contain commas)."""
    position, length = 0, len(srcset)
    while position < length:
        while position < length and (srcset[position].isspace() or srcset[position] == ","):
            position += 1
        end = position
        while end < length and not srcset[end].isspace():
            end += 1
        url, position = srcset[position:end], end
        if not url:
            return
        if url.endswith(","):
            yield url.rstrip(","), ""
            continue
        comma = srcset.find(",", position)
        comma = length if comma == -1 else comma
        yield url, srcset[position:comma].strip()
        position = comma + 1


def _descriptor_size(descriptor: str) -> tuple[int, float]:
    """Width descriptors ("800w") rank above density ones ("2x"); no descriptor means "1x"."""
    unit, number = descriptor[-1:].lower(), descriptor[:-1]
    try:
        value = float(number) if number else 1.0
    except ValueError:
        return (0, 1.0)
    return (1, value) if unit == "w" else (0, value if unit == "x" else 1.0)


def _settle_noscript(noscript: LexborNode) -> None:
    """Keep a `<noscript>` image only when no usable image sits beside it already.

    Lazy-loading pages pair each scripted image with a `<noscript>` copy; keeping both would
    show the picture twice. Runs after `_settle_image`, so every image left is usable.
    """
    if noscript.css_first("img") is None or _has_image_beside(noscript):
        noscript.decompose()
    else:
        noscript.unwrap()


def _has_image_beside(node: LexborNode) -> bool:
    parent = node.parent
    if parent is None:
        return False
    return any(
        sibling.mem_id != node.mem_id
        and (sibling.tag == "img" or sibling.css_first("img") is not None)
        for sibling in parent.iter()
    )


def _settle_link(link: LexborNode, base: str) -> None:
    """Make `href` absolute; a link without a usable one is unwrapped to its text."""
    value = link.attributes.get("href")
    href = _absolute_url(value, base, _LINK_SCHEMES)
    if href is None:
        link.unwrap()
    elif href != value:  # most links are absolute already
        link.attrs["href"] = href


def _absolute_url(value: str | None, base: str, schemes: frozenset[str]) -> str | None:
    """An attribute's URL, cleaned as browsers do (tabs and newlines ignored, spaces and control
    characters trimmed), made absolute by `absolute_url`."""
    value = value or ""
    if "\t" in value or "\n" in value or "\r" in value:  # rare: skip the regex otherwise
        value = _URL_IGNORED.sub("", value)
    return absolute_url(base, value.strip(_URL_TRIM), schemes)


# --- Pathological nesting ----------------------------------------------------------------------


def _flatten(fragment: str) -> str:
    """Plain paragraphs of the fragment's text, without parsing it (see `too_deep`)."""
    text = _BLOCK_BOUNDARY.sub("\n", _RAW_TEXT_ELEMENT.sub("", fragment))
    lines = (
        _SPACES.sub(" ", html.unescape(_ANY_TAG.sub("", line))).strip() for line in text.split("\n")
    )
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines if line)
