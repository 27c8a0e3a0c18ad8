"""Untrusted XML (sitemaps and feeds) -> UTF-8 bytes a parser may read: the one XML-bomb guard.

Entity expansion is the way a small XML document becomes a huge one (a billion laughs; one
4 MiB sitemap became a 334 MiB URL). No feed or sitemap needs a DTD of its own, so a document
type declaration may name an external DTD (which is never read: RSS 0.91 feeds name
Netscape's), but may not declare anything itself: no internal subset, no entity declarations.

Looking for `<!DOCTYPE` in the raw bytes is not enough: in UTF-16 they are not those ASCII
bytes, yet the parser reads them. Nor is feedparser's own defence: it converts a feed to UTF-8,
drops the entity declarations it finds there but puts back the "safe" ones (a flat text, no
references) in a DTD of its own, and one flat entity of a megabyte referenced a thousand times
is still a gigabyte. So `guard_xml`:

1. decodes the document as an XML parser would (`decode_xml`: a byte order mark, else the byte
   pattern of `<?xml`, else the declared encoding, else UTF-8), leniently as feedparser does: a
   declaration that contradicts the bytes loses to them, bytes invalid in the declared encoding
   are read as UTF-8 or windows-1252, so an encoding mistake never costs a whole feed;
2. has expat (the parser behind ElementTree and feedparser) read the prolog of that text, with
   handlers that raise on an internal subset or any entity declaration (`refuse_dtd`), and
   stops at the root element; a document expat cannot read that far is checked by text;
3. returns the text as UTF-8 under a declaration that says so: what the parsers read is
   exactly what was checked, in the one encoding every XML parser knows.

`worker.listing.sitemap` parses the result with `refuse_dtd` on its own parser too;
`worker.listing.feedsource` hands it to feedparser. Raises `ListingError` with a reason a person can
act on.
"""

from __future__ import annotations

import codecs
import re
from xml.parsers import expat

from worker.errors import ListingError

__all__ = ["decode_xml", "guard_xml", "guard_xml_text", "refuse_dtd"]

# Byte order marks, UTF-32 before UTF-16 (whose little-endian mark starts UTF-32's).
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# `<?` (or `<` and a name) without a mark: the XML spec's appendix F.
_WIDE_PATTERNS = (
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00", "utf-16-le"),
    (b"\x00<", "utf-16-be"),
)
_WIDE = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})
_DECLARATION = re.compile(r"<\?xml\s[^<>?]{0,200}\?>")
_DECLARED_ENCODING = re.compile(r"""encoding\s*=\s*["']([A-Za-z][\w.:-]{0,40})["']""")
_UTF8_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
# Markup declarations only a DTD holds; looked for when expat cannot read the prolog.
_DTD_MARKUP = re.compile(r"<!(?:ENTITY|ATTLIST|ELEMENT|NOTATION)\b|<!DOCTYPE[^<>\[]*\[", re.I)
_ELEMENT_START = re.compile(r"<\w")  # where feedparser, too, takes the prolog to end


class _RootReached(Exception):
    """The prolog has been read: the check pass stops at the root element."""


def guard_xml(data: bytes, what: str) -> bytes:
    """`data` (a sitemap or feed, `what` names it) as UTF-8 bytes with no DTD of its own."""
    return guard_xml_text(decode_xml(data), what)


def guard_xml_text(text: str, what: str) -> bytes:
    """`guard_xml` for a document decoded already (by `decode_xml`)."""
    body = text.lstrip("\ufeff \t\r\n")
    if declaration := _DECLARATION.match(body):
        body = body[declaration.end() :]
    document = (_UTF8_DECLARATION + body).encode("utf-8", errors="replace")
    _check_prolog(document, text, what)
    return document


def decode_xml(data: bytes) -> str:
    """The text of an XML document, decoded the way its bytes say (see the module docstring);
    never raises: the last resort is windows-1252 with replacement characters."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(name, errors="replace")
    wide = next((name for pattern, name in _WIDE_PATTERNS if data.startswith(pattern)), None)
    if wide is not None:
        return data.decode(wide, errors="replace")
    for encoding in (_declared_encoding(data), "utf-8"):
        if encoding is not None:
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                continue
    return data.decode("windows-1252", errors="replace")


def _declared_encoding(data: bytes) -> str | None:
    """The declaration's encoding when Python knows it and it reads ASCII as ASCII (a document
    whose declaration was readable in ASCII is not UTF-16, whatever it says)."""
    declaration = _DECLARATION.match(data[:256].decode("ascii", errors="replace").lstrip())
    found = _DECLARED_ENCODING.search(declaration.group()) if declaration else None
    if found is None:
        return None
    try:
        name = codecs.lookup(found.group(1)).name
    except LookupError:
        return None
    if name.replace("_", "-") in _WIDE or "<?xml".encode(name, errors="replace") != b"<?xml":
        return None
    return name


def refuse_dtd(parser: expat.XMLParserType, what: str) -> None:
    """Make `parser` raise `ListingError` on a DTD's internal subset or any entity declaration,
    and never read an external DTD or entity."""

    def doctype(name: str, system_id: str | None, public_id: str | None, internal: int) -> None:
        if internal:
            raise ListingError(f"{what} declares a DTD of its own (refused: entity expansion)")

    def entity(name: str, *_: object) -> None:
        raise ListingError(f"{what} declares the entity {name!r} (refused: entity expansion)")

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)


def _check_prolog(document: bytes, text: str, what: str) -> None:
    """Read `document` up to its root element with `refuse_dtd` in force."""
    parser = expat.ParserCreate("utf-8")
    refuse_dtd(parser, what)

    def root(name: str, attributes: object) -> None:
        raise _RootReached

    parser.StartElementHandler = root
    try:
        parser.Parse(document, True)
    except _RootReached:
        return
    except expat.ExpatError:
        # Not well-formed before its root (feedparser may still read it, loosely): refuse what
        # only a DTD holds anywhere before the first element, as text.
        head = text[: match.start()] if (match := _ELEMENT_START.search(text)) else text
        if _DTD_MARKUP.search(head):
            reason = f"{what} declares a DTD of its own (refused: entity expansion)"
            raise ListingError(reason) from None
