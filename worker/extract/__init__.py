"""html + url -> Article: the article body extractor.

    from worker.extract import ExtractOptions, extract, page_fingerprints, learn_boilerplate

`extract` is pure; it raises `worker.errors.ExtractError` when a page holds no article. Site
templates: `Article.block_fingerprints` and `page_fingerprints(index_html)` feed
`learn_boilerplate`, whose result goes back in as `ExtractOptions.boilerplate`.
"""

from worker.extract.article import ExtractOptions, describe_method, extract, page_fingerprints
from worker.extract.template import learn_boilerplate

__all__ = ["ExtractOptions", "describe_method", "extract", "learn_boilerplate", "page_fingerprints"]
