"""Learning a site's template across its pages, through the whole pipeline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import feedparser
import httpx
import respx

from tests.blogsite import Blog, Post, sample_posts
from tests.test_e2e import write_config
from worker.config import load_config
from worker.extract import extract
from worker.runner import Worker

# Prose that reads like article text, in the article container, on every page of the site: only
# seeing it recur across pages gives it away.
RECURRING = (
    "Ann Gardener has kept the same allotment plot in the north of the city for twenty years, "
    "and writes about it here every week, whatever the weather is doing."
)


def with_recurring_block(post: Post) -> Post:
    return Post(post.path, post.title, (*post.paragraphs, RECURRING), post.published)


def test_recurring_block_is_learnt_and_removed_on_first_run(tmp_path: Path) -> None:
    posts = [with_recurring_block(p) for p in sample_posts()]
    blog = Blog(posts=posts)
    single = extract(blog.post_html(posts[0]), blog.url(posts[0].path))
    assert RECURRING in single.body_text, "precondition: one page alone keeps the block"

    def site(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/":
            text = blog.index_html([(p.path, p.title) for p in posts])
        elif path in {p.path for p in posts}:
            text = blog.post_html(next(p for p in posts if p.path == path))
        else:
            return httpx.Response(404)
        return httpx.Response(200, text=text, headers={"content-type": "text/html"})

    config = write_config(
        tmp_path, f'[[source]]\nid = "plot"\nurl = "{blog.origin}/"\nlinks = "h2 a"\n'
    )

    async def run() -> None:
        async with Worker(load_config(config)) as worker:
            (report,) = await worker.run_once()
            assert report.ok and report.items_new == 3

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="blog.example.test").mock(side_effect=site)
        asyncio.run(run())

    feed = feedparser.parse((tmp_path / "feeds" / "plot.rss").read_bytes())
    bodies = {e.link: e.content[0].value for e in feed.entries}
    assert len(bodies) == 3
    for post in posts:
        body = bodies[blog.url(post.path)].replace("&#39;", "'")
        assert "twenty years" not in body
        for unique in post.paragraphs[:-1]:
            assert unique in body
