"""A made-up news site serving every kind of source: index pages with navigation, pagination and
a "Popular posts" widget, sitemaps (an index, a gzipped child, a Google News sitemap), RSS, Atom
and JSON feeds, robots.txt. Served through respx by `KindsSite`, which counts requests per path.
"""

from __future__ import annotations

import gzip
import html
import json
from collections import Counter
from dataclasses import dataclass

import httpx

ORIGIN = "https://news.example.test"


@dataclass(frozen=True)
class Story:
    path: str
    title: str
    date: str  # ISO 8601
    with_metadata: bool = True  # False: the page has no <title>, <h1> or date of its own

    @property
    def url(self) -> str:
        return ORIGIN + self.path

    @property
    def paragraphs(self) -> tuple[str, ...]:
        words = self.title.lower()
        return (
            f"The full text of {words} starts here, well past the summary a feed would carry.",
            f"A second paragraph about {words} gives the reader the details and the quotes.",
            f"The closing paragraph of {words} says what happens next and who decides it.",
        )


# Page 1 of the blog, page 2, and stories only the sitemaps and feeds name.
PAGE1 = (
    Story(
        "/blog/2026/11/harbour-wall-repairs-begin/",
        "Harbour wall repairs begin",
        "2026-11-24T09:00:00+00:00",
    ),
    Story(
        "/blog/2026/11/ferry-timetable-changes/",
        "Ferry timetable changes for winter",
        "2026-11-23T09:00:00+00:00",
    ),
    Story(
        "/blog/2026/11/school-roof-fund-reaches-target/",
        "School roof fund reaches its target",
        "2026-11-22T09:00:00+00:00",
    ),
)
PAGE2 = (
    Story(
        "/blog/2026/11/lifeboat-crew-training-night/",
        "Lifeboat crew training night",
        "2026-11-20T09:00:00+00:00",
    ),
    Story(
        "/blog/2026/11/market-moves-to-the-square/",
        "Market moves to the square",
        "2026-11-19T09:00:00+00:00",
    ),
)
POPULAR = (
    Story(
        "/blog/2024/06/the-great-storm-remembered/",
        "The great storm, remembered",
        "2024-06-01T09:00:00+00:00",
    ),
    Story(
        "/blog/2025/02/best-walks-on-the-headland/",
        "Best walks on the headland",
        "2025-02-01T09:00:00+00:00",
    ),
)
NEWS = (
    Story(
        "/news/council-votes-on-parking/", "Council votes on parking", "2026-11-25T08:00:00+00:00"
    ),
    Story(
        "/news/storm-warning-for-weekend/",
        "Storm warning for the weekend",
        "2026-11-25T11:30:00+00:00",
    ),
)
BARE = (  # pages without metadata of their own, listed by the feeds
    Story(
        "/stories/pier-lights-restored/",
        "Pier lights restored",
        "2026-11-21T18:00:00+00:00",
        with_metadata=False,
    ),
)
STORIES = {s.path: s for s in (*PAGE1, *PAGE2, *POPULAR, *NEWS, *BARE)}

CHROME_NAV = """<header class="site-header"><a href="/">Harbour News</a>
  <nav class="menu"><a href="/">Home</a> <a href="/about/">About</a>
  <a href="/category/harbour/">Harbour</a> <a href="/category/school/">School</a></nav></header>"""
FOOTER = """<footer class="site-footer"><a href="/privacy/">Privacy</a> <a href="/contact/">Contact</a></footer>"""


def _popular() -> str:
    items = "".join(f'<li><a href="{s.path}">{html.escape(s.title)}</a></li>' for s in POPULAR)
    return f'<aside class="widget"><h3>Popular posts</h3><ul>{items}</ul></aside>'


def index_html(stories: tuple[Story, ...], older: str | None, feed: bool = True) -> str:
    cards = "".join(
        f"""<article class="post"><h2 class="entry-title"><a href="{s.path}">{html.escape(s.title)}</a></h2>
        <p>A short teaser for {html.escape(s.title.lower())}.</p><a href="{s.path}">Read more</a></article>"""
        for s in stories
    )
    pager = f'<div class="pagination"><a href="{older}">Older posts</a></div>' if older else ""
    alternate = (
        '<link rel="alternate" type="application/rss+xml" title="Harbour News" href="/feed.rss">'
        '<link rel="alternate" type="application/rss+xml" title="Comments Feed" href="/comments/feed/">'
        if feed
        else ""
    )
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Harbour News</title>
    {alternate}</head><body>{CHROME_NAV}<main id="main" class="content">{cards}{pager}</main>
    {_popular()}{FOOTER}</body></html>"""


def landing_html() -> str:
    """A page with no listing: a cover image and a link to the about page."""
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Welcome</title>
    <link rel="alternate" type="application/atom+xml" title="Harbour News" href="/atom.xml">
    </head><body>{CHROME_NAV}<main><img src="/cover.jpg" alt="The harbour"></main>{FOOTER}</body></html>"""


def splash_html() -> str:
    """A site root with neither a listing nor an advertised feed."""
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Harbour News</title>
    </head><body>{CHROME_NAV}<main><p>Welcome.</p></main>{FOOTER}</body></html>"""


def story_html(story: Story, amp: bool = False) -> str:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in story.paragraphs)
    head, title = "", ""
    if story.with_metadata:
        head = (
            f"<title>{html.escape(story.title)} | Harbour News</title>"
            f'<meta property="article:published_time" content="{story.date}">'
        )
        title = f"<h1>{html.escape(story.title)}</h1>"
    if amp:
        head += f'<link rel="canonical" href="{story.url}">'
    marker = " amp" if amp else ""
    return f"""<!DOCTYPE html><html lang="en"{marker}><head><meta charset="utf-8">{head}</head><body>
    {CHROME_NAV}<main><article>{title}<div class="entry-content">{paragraphs}</div></article></main>
    {_popular()}{FOOTER}</body></html>"""


def urlset(stories: tuple[Story, ...], news: bool = False) -> bytes:
    rows = []
    for s in stories:
        extra = (
            f"<news:news><news:publication><news:name>Harbour News</news:name>"
            f"<news:language>en</news:language></news:publication>"
            f"<news:publication_date>{s.date}</news:publication_date>"
            f"<news:title>{html.escape(s.title)}</news:title></news:news>"
            if news
            else f"<lastmod>{s.date}</lastmod>"
        )
        rows.append(f"<url><loc>{s.url}</loc>{extra}</url>")
    ns = ' xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"' if news else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"{ns}>{"".join(rows)}</urlset>'
    ).encode()


def sitemap_index(children: dict[str, str]) -> bytes:
    rows = "".join(
        f"<sitemap><loc>{ORIGIN}{path}</loc><lastmod>{lastmod}</lastmod></sitemap>"
        for path, lastmod in children.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{rows}</sitemapindex>'
    ).encode()


def rss(stories: tuple[Story, ...], amp: bool = False) -> bytes:
    items = "".join(
        f"""<item><title>{html.escape(s.title)}</title>
        <link>{s.url}{"amp/" if amp else ""}?utm_source=rss</link><guid>{s.url}</guid>
        <pubDate>{_rfc822(s.date)}</pubDate><dc:creator>Jo Reporter</dc:creator>
        <category>Harbour</category><description>Only a summary of {html.escape(s.title.lower())}.</description></item>"""
        for s in stories
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
    <rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Harbour News</title>
    <link>{ORIGIN}/</link><description>News</description>{items}</channel></rss>""".encode()


def atom(stories: tuple[Story, ...]) -> bytes:
    entries = "".join(
        f"""<entry><title>{html.escape(s.title)}</title><link rel="alternate" href="{s.path}"/>
        <id>tag:news.example.test,2026:{s.path}</id><published>{s.date}</published><updated>{s.date}</updated>
        <author><name>Sam Editor</name></author><category term="Town"/><summary>Summary only.</summary></entry>"""
        for s in stories
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
    <feed xmlns="http://www.w3.org/2005/Atom" xml:base="{ORIGIN}/"><title>Harbour News</title>
    <id>tag:news.example.test,2026:feed</id><updated>2026-11-25T00:00:00Z</updated>{entries}</feed>""".encode()


def json_feed(stories: tuple[Story, ...]) -> bytes:
    items = [
        {"id": s.url, "url": s.url, "title": s.title, "date_published": s.date, "tags": ["Town"]}
        for s in stories
    ]
    return json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": "Harbour News", "items": items}
    ).encode()


def _rfc822(iso: str) -> str:
    from datetime import datetime
    from email.utils import format_datetime

    return format_datetime(datetime.fromisoformat(iso))


class KindsSite:
    """respx side effect: `routes` maps a path to (content type, body); stories are served too."""

    def __init__(self, routes: dict[str, tuple[str, bytes]], robots: str = "") -> None:
        self.routes = dict(routes)
        self.robots = robots
        self.hits: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.hits[request.url.raw_path.decode()] += 1
        if path == "/robots.txt":
            if not self.robots:
                return httpx.Response(404)
            return httpx.Response(200, text=self.robots, headers={"content-type": "text/plain"})
        if path in self.routes:
            content_type, body = self.routes[path]
            return httpx.Response(200, content=body, headers={"content-type": content_type})
        amp = path.endswith("/amp/") or path.startswith("/amp/")  # two ways sites spell AMP
        story = STORIES.get(path.removesuffix("amp/").removeprefix("/amp") if amp else path)
        if story is None:
            return httpx.Response(404, text="not found")
        return httpx.Response(
            200,
            text=story_html(story, amp=amp),
            headers={"content-type": "text/html; charset=utf-8"},
        )


HTML = "text/html; charset=utf-8"


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def urls(stories: tuple[Story, ...]) -> list[str]:
    return [s.url for s in stories]
