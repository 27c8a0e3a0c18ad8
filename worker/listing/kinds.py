"""What a source's URL returns: content type and the first bytes -> a source kind (pure).

Kinds: "index" (an HTML page listing articles), "sitemap" (XML urlset or sitemap index, or a text
sitemap), "feed" (RSS, Atom, RDF or JSON Feed). The body decides over the Content-Type, because
servers label feeds and sitemaps text/xml, text/html or application/octet-stream alike. The
root element is read in the text as an XML parser would decode it, so a UTF-16 feed or sitemap
is told as well.
"""

from __future__ import annotations

import re

from worker.listing.xmldoc import decode_xml

__all__ = ["KINDS", "detect_kind"]

KINDS = ("index", "sitemap", "feed", "urls")  # "urls" is never detected: the config says so
SITEMAP_ROOTS = frozenset({"urlset", "sitemapindex"})
FEED_ROOTS = frozenset({"rss", "feed", "rdf", "channel"})
FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json"}
)
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Prolog, comments and a doctype come before the root element. Linear wherever it is tried:
# whitespace is taken from its start only, and a declaration left open runs to the end.
_PROLOG = re.compile(
    r"(?<!\s)\s*(?:<\?.*?(?:\?>|\Z)|<!--.*?(?:-->|\Z)"
    r"|<!DOCTYPE[^>\[]*(?:\[.*?(?:\]\s*>|\Z)|>|\Z))",  # with its internal subset, if any
    re.DOTALL | re.IGNORECASE,
)
_ROOT = re.compile(r"<([A-Za-z_][\w.:-]*)")
_URL_LINE = re.compile(rb"https?://\S+\s*(?:\n|$)", re.IGNORECASE)


def detect_kind(content_type: str, head: bytes) -> str | None:
    """ "index", "sitemap" or "feed" for a response, or None when it is none of them."""
    root = _root_element(head)
    if root is not None:
        local = root.rpartition(":")[2].lower()
        if local in SITEMAP_ROOTS:
            return "sitemap"
        if local in FEED_ROOTS:
            return "feed"
        if local == "html":
            return "index"
    body = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if body.startswith(b"{"):
        return "feed" if b"jsonfeed.org/version" in body else None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in FEED_TYPES:
        return "feed"
    if media_type in HTML_TYPES:
        return "index"
    if _URL_LINE.match(body):
        return "sitemap"  # a text sitemap: one URL a line
    return None


def _root_element(head: bytes) -> str | None:
    body = decode_xml(head).lstrip("\ufeff")  # UTF-16 and UTF-32 too, with or without a mark
    position = 0
    while match := _PROLOG.match(body, position):
        position = match.end()
    root = _ROOT.match(body[position:].lstrip())
    return root.group(1) if root else None
