"""Deduplication: an article's text in, its signature and the "is this new?" answers out. Pure.

- `content`: text -> `Signature` (a versioned content hash over normalised text, and a SimHash);
  a stored hash and a new one -> `Change` (unchanged, changed, or re-baselined across versions);
- `simhash`: text -> a 64-bit SimHash, its bands and the probes the store's index answers.

Identity is the canonical URL; these only say whether a text is the same, nearly the same, or
materially changed. The store keeps the signatures and answers the lookups.
"""
