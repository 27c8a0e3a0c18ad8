"""A small made-up blog, rendered as HTML pages, for the end-to-end tests.

Every page carries the same chrome (navigation, a "Popular posts" sidebar widget, a footer) and
every article page a share bar and a comment section, so a test can check that none of it leaks
into the feeds.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

POPULAR = (
    ("/2024/03/why-we-moved-to-the-coast.html", "Why we moved to the coast, ten years on"),
    ("/2024/07/the-garden-in-july.html", "The garden in July: tomatoes, beans and a lot of rain"),
    ("/2025/01/a-year-of-sourdough.html", "A year of sourdough, and what the starter taught me"),
)
POPULAR_HEADING = "Popular posts from this blog"
COMMENT = "Great post, thanks for sharing! Visit my casino site for free spins."


@dataclass
class Post:
    path: str
    title: str
    paragraphs: tuple[str, ...]
    published: str | None = None  # ISO 8601
    canonical: str | None = None  # path of the canonical URL, when the page declares one
    extra_head: str = ""

    def text(self) -> str:
        return "\n".join(self.paragraphs)


@dataclass
class Blog:
    origin: str = "https://blog.example.test"
    name: str = "Notes from the Allotment"
    posts: list[Post] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.origin + path

    def index_html(self, listed: list[tuple[str, str]]) -> str:
        """The front page: one teaser per (href, title), newest first."""
        teasers = "\n".join(
            f"""<article class="post-outer"><h2 class="post-title"><a href="{html.escape(href)}">
            {html.escape(title)}</a></h2><div class="post-snippet">{html.escape(title)} is the
            subject of today's post, in which we look at it in some detail.</div>
            <a class="jump-link" href="{html.escape(href)}">Read more</a></article>"""
            for href, title in listed
        )
        body = f"""<main id="main"><div class="blog-posts">{teasers}</div>
        <div class="blog-pager"><a class="blog-pager-older-link" href="/search?page=2">Older posts</a></div>
        </main>"""
        return self._page(self.name, body, head="")

    def post_html(self, post: Post) -> str:
        paragraphs = "\n".join(f"<p>{html.escape(p)}</p>" for p in post.paragraphs)
        head = post.extra_head
        if post.canonical:
            head += f'<link rel="canonical" href="{self.url(post.canonical)}">'
        if post.published:
            head += f'<meta property="article:published_time" content="{post.published}">'
        body = f"""<main id="main"><article class="post hentry">
          <h1 class="post-title entry-title">{html.escape(post.title)}</h1>
          <div class="post-header"><span class="byline">Posted by Ann Gardener</span></div>
          <div class="post-body entry-content">{paragraphs}</div>
          <div class="share-buttons"><a href="https://twitter.example/share">Share on Twitter</a>
            <a href="https://facebook.example/share">Share on Facebook</a> Email this</div>
          <section id="comments" class="comments"><h4>3 comments</h4>
            <div class="comment"><p>{COMMENT}</p></div>
            <div class="comment"><p>I tried this last spring and it worked for me too.</p></div>
          </section>
        </article></main>"""
        return self._page(f"{post.title} | {self.name}", body, head=head)

    def _page(self, title: str, body: str, head: str) -> str:
        popular = "\n".join(
            f'<li><a href="{href}">{html.escape(text)}</a></li>' for href, text in POPULAR
        )
        return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
        <title>{html.escape(title)}</title>{head}</head><body>
        <header class="header"><a href="/">{html.escape(self.name)}</a>
          <nav class="menu"><a href="/">Home</a> <a href="/p/about.html">About</a>
          <a href="/search/label/garden">Garden</a> <a href="/search/label/kitchen">Kitchen</a></nav>
        </header>
        <div class="content-outer">{body}
        <aside class="sidebar"><div class="widget PopularPosts"><h3 class="title">{POPULAR_HEADING}</h3>
          <ul>{popular}</ul></div>
          <div class="widget Label"><h3>Labels</h3><a href="/search/label/garden">garden</a>
          <a href="/search/label/kitchen">kitchen</a></div></aside></div>
        <footer class="footer"><p>Copyright 2026 Ann Gardener. Powered by a blog engine.</p>
          <a href="/p/privacy.html">Privacy</a> <a href="/p/contact.html">Contact</a></footer>
        </body></html>"""


def sample_posts() -> list[Post]:
    """Three posts with distinct, article-length text."""
    return [
        Post(
            "/2026/11/frost-and-the-late-leeks.html",
            "Frost and the late leeks",
            (
                "The first hard frost arrived on Tuesday night, a full two weeks earlier than "
                "last year, and it caught the late leeks still standing in the lower bed.",
                "Leeks are tough, of course. They will sit in frozen ground for weeks and come "
                "out sweet, but the young ones I transplanted in September are another matter.",
                "I lifted a dozen of the smallest and heeled them into a trench by the shed, "
                "where the wall holds a little warmth and the wind does not reach.",
                "By Thursday the rest had recovered completely, their blue-green flags upright "
                "again, which is more than can be said for the nasturtiums.",
            ),
            published="2026-11-20T08:30:00+00:00",
        ),
        Post(
            "/2026/11/saving-bean-seed.html",
            "Saving bean seed for next year",
            (
                "Every autumn I leave a few pods of each climbing bean on the plant until they "
                "rattle, then bring them indoors to finish drying on the kitchen windowsill.",
                "The trick is patience: a bean that is not fully dry will go mouldy in the jar, "
                "and a whole year's line of seed can be lost in a single damp week.",
                "This year the borlotti did best, with nearly two hundred good seeds from six "
                "plants, while the purple podded variety gave me barely thirty.",
            ),
            published="2026-11-12T18:00:00+00:00",
            canonical="/2026/11/saving-bean-seed.html",
        ),
        Post(
            "/2026/10/compost-in-three-bays.html",
            "Compost in three bays",
            (
                "The new compost system is three bays made of old pallets, wired together at "
                "the corners and lined with cardboard to keep the heat in.",
                "Material goes into the first bay all summer, gets turned into the second in "
                "autumn, and by the following spring the third bay holds crumbly dark compost.",
                "It is more work than a single heap, but the difference in the finished product "
                "is remarkable, and the rats have so far shown no interest in it at all.",
            ),
        ),
    ]
