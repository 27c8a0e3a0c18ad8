"""feedworker: a scheduled scrape-and-feed worker.

The packages follow the data flow of one source's run (docs/design.md, "How it works"):
config -> service (schedule) -> fetch -> listing -> extract -> dedupe -> store -> publish,
met in one place, `worker.pipeline`; `web` serves what `publish` wrote; `commands` and `cli`
are the edges a person uses. Each package's `__init__` says what goes in and what comes out.
"""

__version__ = "0.1.0"
