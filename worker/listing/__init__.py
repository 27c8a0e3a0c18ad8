"""Listing: a source in, the article links to fetch out.

- `lister`: `list_articles(ListingOptions, fetcher)` -> `Listing` (links with their
  titles and dates, the documents read, and why each link not taken was skipped); it fetches
  the index page(s), sitemap or feed, so it is the package's only module with I/O;
- `read`: one fetched listing document -> its links (`read_listing`), run beside the event loop
  (in an extractor process or a worker thread), pure;
- `kinds` tells an index page, sitemap and feed apart; `discover` finds the article links on an
  index page; `sitemap` and `feedsource` parse sitemaps and feeds behind one XML guard
  (`xmldoc`). All pure.
"""
