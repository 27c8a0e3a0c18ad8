"""Learning a site's template across its pages, through the whole pipeline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import feedparser
import httpx
import respx

from tests.backend import own_state
from tests.blogsite import Blog, Post, sample_posts
from tests.test_e2e import write_config
from worker.config import load_config
from worker.extract import extract, learn_boilerplate, page_fingerprints
from worker.service.runner import Worker

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

    first_run(tmp_path, blog)

    feed = feedparser.parse((tmp_path / "feeds" / "plot.rss").read_bytes())
    bodies = {e.link: e.content[0].value for e in feed.entries}
    assert len(bodies) == 3
    for post in posts:
        body = bodies[blog.url(post.path)].replace("&#39;", "'")
        assert "twenty years" not in body
        for unique in post.paragraphs[:-1]:
            assert unique in body


def first_run(tmp_path: Path, blog: Blog) -> None:
    """The source's first run over `blog` (served by respx), which must store every post."""

    def site(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/":
            text = blog.index_html([(p.path, p.title) for p in blog.posts])
        elif path in {p.path for p in blog.posts}:
            text = blog.post_html(next(p for p in blog.posts if p.path == path))
        else:
            return httpx.Response(404)
        return httpx.Response(200, text=text, headers={"content-type": "text/html"})

    config = write_config(
        tmp_path, f'[[source]]\nid = "plot"\nurl = "{blog.origin}/"\nlinks = "h2 a"\n'
    )

    async def run() -> None:
        async with Worker(load_config(config)) as worker:
            (report,) = await worker.run_once()
            assert report.ok and report.items_new == len(blog.posts)

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="blog.example.test").mock(side_effect=site)
        asyncio.run(run())


def _count_extractions(tmp_path: Path, posts: list[Post], monkeypatch: object) -> list[str]:
    """Run a first run over `posts` and return the URL of every extraction it made."""
    import worker.pipeline as pipeline

    calls: list[str] = []
    real = pipeline._extract

    async def counted(run: object, fetched: object, boilerplate: frozenset[str]) -> object:
        calls.append(fetched.page.final_url)  # type: ignore[attr-defined]
        return await real(run, fetched, boilerplate)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_extract", counted)  # type: ignore[attr-defined]
    with own_state():  # a first run each time
        first_run(tmp_path, Blog(posts=posts))
    return calls


def test_first_run_re_extracts_only_pages_a_new_template_block_can_change(
    tmp_path: Path, monkeypatch: object
) -> None:
    """The blog's chrome (navigation, sidebar, footer) recurs on every page and is learnt on
    the first run; pages where it lies outside the rendered body are extracted once. A
    recurring block inside the body sends every page to be extracted again."""
    plain = sample_posts()
    blog = Blog(posts=plain)
    single = {blog.url(p.path): extract(blog.post_html(p), blog.url(p.path)) for p in plain}
    index = blog.index_html([(p.path, p.title) for p in plain])
    learnt = learn_boilerplate(
        [*(a.block_fingerprints for a in single.values()), page_fingerprints(index)]
    )
    could_change = {url for url, a in single.items() if learnt & set(a.template_checked)}
    assert all(learnt & set(a.block_fingerprints) for a in single.values()), "all hold chrome"
    assert len(could_change) < len(plain), "precondition: some pages cannot change"

    calls = _count_extractions(tmp_path / "plain", plain, monkeypatch)
    assert sorted(calls) == sorted([*single, *could_change])

    recurring = [with_recurring_block(p) for p in sample_posts()]
    calls = _count_extractions(tmp_path / "recurring", recurring, monkeypatch)
    assert sorted(calls) == sorted(2 * [blog.url(p.path) for p in recurring])
