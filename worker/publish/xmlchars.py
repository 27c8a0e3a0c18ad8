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


def xml_safe(text: str) -> str:
    """Return `text` without the characters XML 1.0 forbids."""
    # Most text is ASCII without controls: 29 substring searches (memchr) are cheaper than one
    # pass of the regex engine over every character.
    if text.isascii() and not any(c in text for c in _C0_FORBIDDEN):
        return text
    return _NOT_XML_CHAR.sub("", text)
