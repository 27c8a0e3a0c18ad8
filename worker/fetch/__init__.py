"""Fetching: a URL in, a `Page` (or `NotModified`) out, politely and within hard limits.

- `client`: `Fetcher.fetch_page(url, ...)` -> `worker.models.Page` | `NotModified`; robots.txt,
  per-host politeness, retries, redirects judged hop by hop, bounded bodies; refusals are
  `worker.errors.FetchError` subclasses with a short `reason`;
- `guard`: the SSRF guard (which URLs and resolved addresses may be connected to);
- `transport`: the connection pools, on an asyncio-native network backend for httpcore;
- `robots`: robots.txt bytes -> rules, and their cache;
- `decode`: a page's bytes -> text (BOM, HTTP charset, `<meta>`, detection); pure, and the only
  part extractor processes import.

The network lives here and nowhere else (`tests/test_layering.py`).
"""
