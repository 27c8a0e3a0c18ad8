"""Bytes of an HTML page -> text, choosing the encoding the way the bytes say.

The order, first match wins:
1. a byte-order mark (UTF-8, UTF-16, UTF-32);
2. the HTTP `charset=` label, when the bytes agree with it;
3. `<meta charset>` or `<meta http-equiv="Content-Type">` in the first 4 KiB, when the bytes agree;
4. valid UTF-8 containing non-ASCII bytes: UTF-8;
5. charset-normalizer's guess, unless it only says "some Latin code page" (then windows-1252);
6. windows-1252.

"The bytes agree" means: a UTF-8 label needs (nearly) valid UTF-8; any other label needs bytes
that decode strictly with it and are not valid non-ASCII UTF-8 (a page labelled iso-8859-1 whose
bytes are valid UTF-8 is, in practice, always UTF-8). Decoding never raises: errors become U+FFFD.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from worker.models import Page, RawHtml

__all__ = ["decode_html", "html_text", "page_html", "page_text"]

FALLBACK = "cp1252"

# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# WHATWG Encoding Standard: these labels mean a superset in every browser.
_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
}
# Never honoured from a label: UTF-7 smuggles markup past filters; UTF-16/32 without a BOM in a
# <meta> is impossible (the meta itself would not be ASCII), so browsers read it as UTF-8.
_REFUSED = {"utf-7"}
# The encodings of the WHATWG Encoding Standard (what browsers decode), by Python codec name. A
# label outside them is ignored: Python also "knows" base64, zlib, rot13, EBCDIC and escape codecs,
# which either raise or turn any bytes into garbage that seems to fit.
_WEB_ENCODINGS = frozenset(
    codecs.lookup(label).name
    for label in (
        "utf-8",
        "ibm866",
        "iso-8859-2",
        "iso-8859-3",
        "iso-8859-4",
        "iso-8859-5",
        "iso-8859-6",
        "iso-8859-7",
        "iso-8859-8",
        "iso-8859-10",
        "iso-8859-13",
        "iso-8859-14",
        "iso-8859-15",
        "iso-8859-16",
        "koi8-r",
        "koi8-u",
        "mac-roman",
        "mac-cyrillic",
        "cp874",
        "cp1250",
        "cp1251",
        "cp1252",
        "cp1253",
        "cp1254",
        "cp1255",
        "cp1256",
        "cp1257",
        "cp1258",
        "gbk",
        "gb18030",
        "big5",
        "big5hkscs",
        "euc-jp",
        "iso-2022-jp",
        "shift_jis",
        "euc-kr",
        "cp949",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "iso-8859-1",
        "ascii",
        "gb2312",
        "iso-8859-9",
        "iso-8859-11",
        "tis-620",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
    )
)
_META_UTF16 = {"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}

# Tolerate a few broken sequences in a page labelled UTF-8 (a stray byte in an otherwise UTF-8
# page); cp1251 or cp1252 text mislabelled UTF-8 breaks on almost every non-ASCII character.
_UTF8_MAX_BAD_RATIO = 0.01

_META_SCAN_BYTES = 4096
# `[^<>]`, not `[^>]`: a `<meta` never closed is not scanned again from every `<meta` before it.
_META_CHARSET = re.compile(rb"""<meta[^<>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)


def decode_html(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Decode an HTML body; returns (text, Python codec name used). Never raises on bad bytes."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace"), name
    for label in (_header_label(content_type), _meta_label(body)):
        encoding = _lookup(label)
        if encoding and (text := _decoded_as(body, encoding)) is not None:
            return text, encoding
    if not body.isascii() and (text := _strict(body, "utf-8")) is not None:
        return text, "utf-8"
    encoding = _detect(body) or FALLBACK
    return body.decode(encoding, errors="replace"), encoding


def html_text(html: str | RawHtml) -> str:
    """`html` as text: decoded when it is still raw."""
    return html if isinstance(html, str) else decode_html(html.body, html.content_type)[0]


def page_html(page: Page) -> str | RawHtml:
    """A fetched page's HTML as it came: its text, or its bytes when fetched undecoded."""
    return page.raw if page.raw is not None else page.text


def page_text(page: Page) -> str:
    """A fetched page's text, decoding it when it was fetched undecoded."""
    return html_text(page_html(page))


def _header_label(content_type: str | None) -> str | None:
    match = _HEADER_CHARSET.search(content_type or "")
    return match.group(1) if match else None


def _meta_label(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:_META_SCAN_BYTES])
    if not match:
        return None
    label = match.group(1).decode("ascii", errors="replace")
    encoding = _lookup(label)
    return "utf-8" if encoding in _META_UTF16 else label


def _lookup(label: str | None) -> str | None:
    """A charset label -> Python codec name, or None when unknown or refused."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None
    if name in _REFUSED or name not in _WEB_ENCODINGS:
        return None
    return _SUPERSETS.get(name, name)


def _decoded_as(body: bytes, encoding: str) -> str | None:
    """The text, when the labelled `encoding` agrees with the bytes; None otherwise. The check
    is the decode itself, so a page is decoded once (it was twice: check, then decode)."""
    if encoding == "utf-8":
        return _mostly_utf8(body)
    if encoding.startswith(("utf-16", "utf-32")):
        return None  # without a BOM we cannot trust it; detection decides
    if not body.isascii() and _decodes(body, "utf-8"):
        return None
    return _strict(body, encoding)


def _mostly_utf8(body: bytes) -> str | None:
    text = _strict(body, "utf-8")
    if text is not None:
        return text
    text = body.decode("utf-8", errors="replace")
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return text if text.count("\ufffd") <= non_ascii * _UTF8_MAX_BAD_RATIO else None


def _detect(body: bytes) -> str | None:
    """charset-normalizer's guess; a Latin-only guess becomes windows-1252 when that decodes.

    Detectors cannot tell Latin code pages apart on short pages (French cp1252 text comes back as
    Baltic cp1257), and windows-1252 is by far the most common of them on the web.
    """
    # Imported here, when a page needs it (few do): it is 4 MB of memory in every extractor
    # process, which decodes pages but almost never guesses.
    import charset_normalizer

    best = charset_normalizer.from_bytes(body).best()
    if best is None:
        return None
    encoding = _lookup(best.encoding)
    if encoding is None or encoding == "ascii":
        return None
    if _latin_only(str(best)) and _decodes(body, FALLBACK):
        return FALLBACK
    return encoding


def _latin_only(text: str) -> bool:
    letters = (ch for ch in text if ord(ch) > 127 and ch.isalpha())
    return all(unicodedata.name(ch, "").startswith("LATIN") for ch in letters)


def _decodes(body: bytes, encoding: str) -> bool:
    return _strict(body, encoding) is not None


def _strict(body: bytes, encoding: str) -> str | None:
    """`body` decoded without replacements, or None when it is not valid `encoding`."""
    try:
        return body.decode(encoding)
    except UnicodeError:
        return None
