"""The one exception family of feedworker.

Every error the project raises on purpose derives from `FeedworkerError`, and its message is meant
for a person: it says what failed, where (file, source, URL) and, when known, what to do.

Who raises and who catches:
- `ConfigError`: raised by `worker.config` on load; caught by the CLI (exit 1) and by hot reload
  (the last good config stays in force).
- `FetchError` (and subclasses): raised by `worker.fetch.client` for one URL; the pipeline catches
  it, reports it against the source (index page) or skips that one article.
- `AddressBlocked`: raised by the SSRF guard (`worker.fetch.guard`) at connect time, when a host
  name resolves to an address it may not reach; `worker.fetch.client` catches it and raises the
  `FetchError` `Blocked` for the URL (never retried).
- `ListingError`: raised by `worker.listing.sitemap` and `worker.listing.feedsource` for a document
  they cannot read, and by `worker.listing.lister` when a source's URL leads to no listing; the
  pipeline reports it against the source, `feedworker discover` prints it.
- `ExtractError`: raised by `worker.extract` when a page holds no usable article; the pipeline
  skips that article with the reason. `ExtractorCrashed` (worker.service.extractpool): the child
  process extracting a page died; the pipeline skips the pages it held, the pool starts again.
- `StoreError`: raised by `worker.store.state` when the state database cannot be opened or used.
- `PublishError`: raised by `worker.publish.render` when a feed cannot be rendered and by
  `worker.publish.files` when it cannot be written; the old feed file stays in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class FeedworkerError(Exception):
    """Base of every error feedworker raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in the operator's config, located as precisely as we can."""

    file: str
    message: str
    source: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.source:
            where += f": source {self.source!r}"
        if self.field:
            where += f": {self.field}"
        return f"{where}: {self.message}"


class ConfigError(FeedworkerError):
    """The config folder does not validate; holds every problem found, not just the first."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class FetchError(FeedworkerError):
    """A URL could not be fetched or its response was refused; `reason` is short and stable."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class AddressBlocked(FeedworkerError):
    """A connection refused by the SSRF guard before it was made; `reason` names the address."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RenderError(FetchError):
    """A page could not be rendered in the browser (`worker.render`): no browser, a timeout, the
    browser killed for its memory or restarted. A `FetchError`, so the pipeline skips the article
    (or fails the listing) with its reason, as for a page that could not be fetched."""


class ListingError(FeedworkerError):
    """A sitemap or feed that cannot be read, or a URL that leads to no list of articles."""


class ExtractError(FeedworkerError):
    """A page holds no article we are willing to publish."""


class StoreError(FeedworkerError):
    """The state database could not be opened or used."""


class PublishError(FeedworkerError):
    """A feed could not be rendered or written; the previous file is left in place."""
