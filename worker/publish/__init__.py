"""Publishing: a source's items in, RSS 2.0, Atom and JSON Feed documents out, written to disk.

- `render`: items -> the bytes of each document, deterministically (the same items give the same
  bytes); pure;
- `xmlchars`: text -> text without the characters XML 1.0 forbids; pure, used wherever text
  will end up in a feed.

Rendering is pure; writing the files (atomically, only when the bytes changed) is the edge.
"""
