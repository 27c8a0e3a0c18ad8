"""What an extractor process runs (`python -m worker.service.extractjob`): the job, its answers, and
the loop that reads pages from stdin and writes answers to stdout (`worker.service.extractpool` is
the event loop's side). Kept apart so a child imports what extraction needs and no more: not
asyncio, sockets or ssl, about 5 MiB less in every extractor process.

The job is `extract_page`, a pure function of the page (its text, or its bytes still to be
decoded: a `RawHtml`), URL and options; its answer is an `Extracted`. A child also reads listing
documents (`worker.listing.read.read_listing`: index pages, feeds, sitemaps) for the same reason:
the work is the site's to choose, and it must not hold up the event loop. The frames are a 4-byte
length and a pickle; a request is `(EXTRACT, (page, URL, options))` or `(READ_LISTING, request)`,
an answer an `Extracted`, a listing answer, or a `Failure`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from worker.dedupe.content import Signature, text_signature
from worker.errors import ExtractError
from worker.extract import ExtractOptions, extract
from worker.fetch.decode import html_text
from worker.listing.read import read_listing
from worker.models import Article, RawHtml, RuleTrace

DEFAULT_JOB = "worker.service.extractjob:extract_page"
# Children run at a lower priority than the event loop: extraction is batch work, while the loop
# feeds it (and schedules runs and answers the status page) in short bursts that should get a
# core the moment they wake. With equal priorities the two children kept the loop waiting for a
# core and then waited for pages themselves: at 300 × 20 on 2 cores, niceness 10 ran 6% more
# pages per second than 0 (four runs each, interleaved); 19 was in between.
EXTRACT_NICENESS = 10
FRAME = struct.Struct(">I")  # the length of the pickle that follows
EXTRACT, READ_LISTING = "extract", "read_listing"  # what a request asks for


@dataclass(frozen=True, slots=True)
class Extracted:
    """One page's extraction: an article and its text's signature, or the reason for none."""

    article: Article | None = None
    signature: Signature | None = None
    error: str = ""  # why there is no article: the extractor's own refusal (ExtractError)
    site_rule: RuleTrace | None = None  # with no article: the site rule whose body missed


def extract_page(html: str | RawHtml, url: str, options: ExtractOptions) -> Extracted:
    """Decode (when raw) and extract one page and sign its text; an `ExtractError` becomes
    `Extracted.error`."""
    try:
        article = extract(html_text(html), url, options)
    except ExtractError as exc:  # a `RuleMissed` carries its rule's trace
        return Extracted(error=str(exc), site_rule=getattr(exc, "trace", None))
    return Extracted(article, text_signature(article.body_text))


ExtractJob = Callable[[str | RawHtml, str, ExtractOptions], Extracted]


@dataclass(frozen=True, slots=True)
class Failure:
    """An unexpected exception in a child's job, sent back instead of an answer."""

    kind: str
    message: str


def _load_job(spec: str) -> ExtractJob:
    module, _, name = spec.partition(":")
    job: ExtractJob = getattr(importlib.import_module(module), name)
    return job


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def serve(job: ExtractJob, requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer framed requests from `requests` on `answers` until `requests` ends."""
    while (header := _read_exactly(requests, FRAME.size)) is not None:
        (size,) = FRAME.unpack(header)
        body = _read_exactly(requests, size)
        if body is None:
            return
        task, arguments = pickle.loads(body)
        try:
            answer: object = job(*arguments) if task == EXTRACT else read_listing(arguments)
        except Exception as exc:  # a bug in the extractor costs this page, not the child
            answer = Failure(type(exc).__name__, str(exc))
        data = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
        answers.write(FRAME.pack(len(data)) + data)
        answers.flush()


def _main() -> None:
    # Answers go to the real stdout only: anything else printing there would corrupt the frames.
    channel = sys.stdout.buffer
    sys.stdout = sys.stderr
    spec = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_JOB
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # a sandbox may refuse; full priority then
            os.nice(EXTRACT_NICENESS)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        serve(_load_job(spec), sys.stdin.buffer, channel)


if __name__ == "__main__":
    # Run as a script this file is `__main__`; the answers must be pickled as classes of
    # `worker.service.extractjob`, which the parent knows, so the work is done by that module.
    importlib.import_module("worker.service.extractjob")._main()
