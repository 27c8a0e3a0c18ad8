"""A tiny mutable site behind `httpx.MockTransport`, and prose to fill it, for the dedupe tests.

`Site.pages` maps a path to its HTML and can be edited between runs; the index lists
`Site.listed`. Article pages answer with an ETag of their bytes and 304 to a matching
If-None-Match, as a well-behaved server does.
"""

from __future__ import annotations

import hashlib
import html
import random
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx

from tests.backend import state_env
from worker.config import load_config
from worker.models import RunReport
from worker.service.runner import Worker

VOCABULARY = [
    "council",
    "budget",
    "river",
    "harbour",
    "school",
    "teacher",
    "market",
    "farmer",
    "weather",
    "storm",
    "railway",
    "station",
    "museum",
    "library",
    "hospital",
    "nurse",
    "doctor",
    "bridge",
    "village",
    "mayor",
    "election",
    "vote",
    "tax",
    "housing",
    "rent",
    "tenant",
    "garden",
    "park",
    "festival",
    "music",
    "theatre",
    "author",
    "novel",
    "history",
    "science",
    "energy",
    "wind",
    "solar",
    "coast",
    "ferry",
    "island",
    "fishing",
    "boat",
    "night",
    "morning",
    "summer",
    "winter",
    "road",
    "traffic",
    "cycle",
    "walk",
    "plan",
    "report",
    "survey",
    "data",
    "number",
    "people",
    "family",
    "children",
    "water",
    "price",
    "cost",
    "money",
    "year",
    "week",
    "month",
]
VERBS = [
    "said",
    "found",
    "opened",
    "closed",
    "raised",
    "cut",
    "built",
    "planned",
    "asked",
    "told",
    "showed",
    "expected",
]


def prose(seed: int, sentences: int = 40, topic: tuple[str, ...] = ()) -> list[str]:
    """Deterministic made-up sentences; `topic` words are mixed into every sentence."""
    rng = random.Random(seed)
    out = []
    for _ in range(sentences):
        words = [rng.choice(VOCABULARY) for _ in range(rng.randint(8, 16))]
        words.insert(rng.randint(1, 4), rng.choice(VERBS))
        if topic:
            words.insert(rng.randint(0, len(words)), rng.choice(topic))
        out.append(" ".join(words).capitalize() + ".")
    return out


def article_html(title: str, sentences: list[str], *, canonical: str | None = None) -> str:
    paragraphs = [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)]
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    return (
        f"<!doctype html><html><head><title>{html.escape(title)}</title>{link}</head><body>"
        f"<main><article><h1>{html.escape(title)}</h1>{body}</article></main></body></html>"
    )


class Site:
    def __init__(self, origin: str = "https://news.example.test") -> None:
        self.origin = origin
        self.pages: dict[str, str] = {}
        self.listed: list[str] = []
        self.hits: Counter[str] = Counter()
        self.not_modified = 0

    def index_html(self) -> str:
        items = "".join(
            f'<li><h2><a href="{html.escape(path)}">Story {n}</a></h2></li>'
            for n, path in enumerate(self.listed)
        )
        return f"<!doctype html><html><body><main><ul>{items}</ul></main></body></html>"

    def handle(self, request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode()
        self.hits[target] += 1
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        if target == "/":
            body = self.index_html()
        elif target in self.pages:
            body = self.pages[target]
        elif request.url.path in self.pages:
            body = self.pages[request.url.path]
        else:
            return httpx.Response(404)
        etag = '"' + hashlib.sha1(body.encode()).hexdigest()[:16] + '"'
        if target != "/" and request.headers.get("if-none-match") == etag:
            self.not_modified += 1
            return httpx.Response(304, headers={"etag": etag})
        headers = {"content-type": "text/html; charset=utf-8", "etag": etag}
        return httpx.Response(200, text=body, headers=headers)


def write_config(root: Path, sources: str, worker: str = "") -> Path:
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "feedworker.toml").write_text(
        f'[worker]\nper_host_delay = 0\nstate_url = "sqlite:///{root}/state.db"\n' + worker
    )
    (config / "sources.toml").write_text(sources)
    return config


def source_toml(source_id: str, site: Site, extra: str = "") -> str:
    return (
        f'[[source]]\nid = "{source_id}"\nurl = "{site.origin}/"\nlinks = "main h2 a"\n'
        f"respect_robots = false\n{extra}\n"
    )


def run_sites(config: Path, sites: list[Site], at: datetime) -> list[RunReport]:
    import asyncio

    by_host = {httpx.URL(s.origin).host: s for s in sites}
    transport = httpx.MockTransport(lambda request: by_host[request.url.host].handle(request))

    async def main() -> list[RunReport]:
        async with Worker(
            load_config(config, env=state_env()), transport=transport, clock=lambda: at
        ) as w:
            return await w.run_once()

    return asyncio.run(main())
