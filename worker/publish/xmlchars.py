"""Keep strings inside what XML 1.0 allows, so one bad character never breaks a whole feed.

feedgen raises on C0 controls (other than tab, newline, carriage return), on U+FFFE/U+FFFF and on
lone surrogates; nh3 lets some of them through. Every string bound for a feed passes through here.
"""

from __future__ import annotations

import re

# Complement of XML 1.0's Char production: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
# [#x10000-#x10FFFF]. Lone surrogates (U+D800-U+DFFF) fall in the excluded range too.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Return `text` without the characters XML 1.0 forbids."""
    return _NOT_XML_CHAR.sub("", text)
