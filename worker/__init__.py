"""feedworker: a scheduled scrape-and-feed worker.

The data flow, one module per step (see README, "How it works"):
config -> schedule -> fetch -> discover -> extract -> dedupe/store -> publish.
"""

__version__ = "0.1.0"
