"""Keep strings inside what XML 1.0 allows, so one bad character never breaks a whole feed.

feedgen raises on C0 controls (other than tab, newline, carriage return), on U+FFFE/U+FFFF and on
lone surrogates; nh3 lets some of them through. Every string bound for a feed passes through here.
"""

from __future__ import annotations

import re

# Complement of XML 1.0's Char production: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
# [#x10000-#x10FFFF]. Lone surrogates (U+D800-U+DFFF) fall in the excluded range too.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# The C0 controls XML forbids: in ASCII text, the only characters that can be out of place.
_C0_FORBIDDEN = tuple(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r")
_C0_BYTES = "".join(_C0_FORBIDDEN).encode("ascii")


def xml_safe(text: str) -> str:
    """Return `text` without the characters XML 1.0 forbids."""
    if not has_forbidden(text):
        return text
    return _NOT_XML_CHAR.sub("", text)


def has_forbidden(text: str) -> bool:
    """Whether `text` holds a character XML 1.0 forbids, read faster than by the regex engine,
    which tests every character against its class (most text holds none):
    - ASCII text: none when all of it is printable (one pass in C: titles, names, URLs), else
      29 substring searches (memchr) for the C0 controls;
    - other text: U+FFFE and U+FFFF searched for; lone surrogates fail its UTF-8 encoding; the
      C0 controls, single bytes in UTF-8 (never part of a longer sequence), are deleted from
      the encoded bytes in one C pass, which then come out shorter."""
    if text.isascii():
        return not text.isprintable() and any(c in text for c in _C0_FORBIDDEN)
    if "\ufffe" in text or "\uffff" in text:
        return True
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return True
    return len(encoded.translate(None, _C0_BYTES)) != len(encoded)
