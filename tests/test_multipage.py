"""Multi-page articles, the pure part: which link continues an article, how pages merge, and
when following stops (a loop, a repeated page, the page limit, a page that cannot be read)."""

from __future__ import annotations

import asyncio

import pytest

from worker.extract import ExtractOptions, extract
from worker.extract.htmlparse import parse_html
from worker.extract.multipage import (
    follow_pages,
    is_next_page,
    merge_pages,
    page_marker,
    pagination_link,
)
from worker.models import Article


@pytest.mark.parametrize(
    ("candidate", "current", "number", "expected"),
    [
        ("https://a.example/story/2/", "https://a.example/story/", 1, True),
        ("https://a.example/story/page/2", "https://a.example/story", 1, True),
        ("https://a.example/story?page=2", "https://a.example/story", 1, True),
        ("https://a.example/?p=123&page=2", "https://a.example/?p=123", 1, True),
        ("https://a.example/story/3/", "https://a.example/story/2/", 2, True),
        ("https://a.example/story?page=3", "https://a.example/story?page=2", 2, True),
        ("https://a.example/story?page=2", "https://a.example/story?page=1", 1, True),
        # Not a continuation: another article, a skipped page, another host, page 1 again.
        ("https://a.example/another-story/", "https://a.example/story/", 1, False),
        ("https://a.example/comics/6", "https://a.example/comics/5", 1, False),
        ("https://a.example/?p=124", "https://a.example/?p=123", 1, False),
        ("https://a.example/story/3/", "https://a.example/story/", 1, False),
        ("https://b.example/story/2/", "https://a.example/story/", 1, False),
        ("https://a.example/story/", "https://a.example/story/2/", 2, False),
        ("https://a.example/news/12346", "https://a.example/news/12345", 1, False),
    ],
)
def test_is_next_page(candidate: str, current: str, number: int, expected: bool) -> None:
    assert is_next_page(candidate, current, number) is expected


def test_page_marker_splits_the_article_from_its_page_number() -> None:
    assert page_marker("https://a.example/story/page/4/").number == 4
    assert page_marker("https://a.example/story/page/4/").key == "https://a.example/story"
    assert page_marker("https://a.example/news/12345").number == 1  # an id, not a page


def article_page(links: str, head: str = "") -> str:
    body = " ".join(["The council said the harbour plan would go ahead next spring."] * 8)
    return f"<html><head>{head}</head><body><article><p>{body}</p>{links}</article></body></html>"


def test_pagination_link_follows_the_articles_own_next_page_only() -> None:
    url = "https://a.example/2024/long-read/"
    head = '<link rel="next" href="https://a.example/2024/long-read/2/">'
    assert pagination_link(parse_html(article_page("", head)), url) == url + "2/"
    pager = '<div class="page-links">Pages: <a href="/2024/long-read/2/">2</a> <a href="/2024/long-read/3/">3</a></div>'
    assert pagination_link(parse_html(article_page(pager)), url) == url + "2/"
    on_two = parse_html(article_page(pager))
    assert pagination_link(on_two, url + "2/", 2) == url + "3/"
    # WordPress marks its "next post" link rel=next: another article, never followed.
    next_post = '<a rel="next" href="/2024/another-story/">Next post: another story</a>'
    assert pagination_link(parse_html(article_page(next_post)), url) is None


def test_extractor_reports_the_next_page_only_when_asked() -> None:
    url = "https://a.example/2024/long-read/"
    document = article_page('<a href="/2024/long-read/2/">Next page</a>')
    assert extract(document, url).next_page is None
    paged = extract(document, url, ExtractOptions(paginated=True))
    assert paged.next_page == url + "2/"


def page_article(url: str, text: str, next_page: str | None = None) -> Article:
    return Article(
        url=url, title="T", body_html=f"<p>{text}</p>", body_text=text, next_page=next_page
    )


def follow(first: Article, site: dict[str, Article | None], limit: int = 10) -> tuple:
    asked: list[tuple[str, int]] = []

    async def load(url: str, number: int) -> Article | None:
        asked.append((url, number))
        return site.get(url)

    followed = asyncio.run(follow_pages(first, load, limit))
    return followed, asked


def test_three_pages_merge_in_order() -> None:
    first = page_article("https://a.example/s/", "one", "https://a.example/s/2/")
    site = {
        "https://a.example/s/2/": page_article(
            "https://a.example/s/2/", "two", "https://a.example/s/3/"
        ),
        "https://a.example/s/3/": page_article("https://a.example/s/3/", "three"),
    }
    followed, asked = follow(first, site)
    assert followed.pages == 3 and followed.stopped == ""
    assert followed.article.body_text == "one\ntwo\nthree"
    assert followed.article.body_html == "<p>one</p>\n<p>two</p>\n<p>three</p>"
    assert followed.article.url == "https://a.example/s/" and followed.article.next_page is None
    assert asked == [("https://a.example/s/2/", 2), ("https://a.example/s/3/", 3)]


def test_a_loop_stops_following() -> None:
    first = page_article("https://a.example/s/", "one", "https://a.example/s/2/")
    site = {
        "https://a.example/s/2/": page_article(
            "https://a.example/s/2/", "two", "https://a.example/s/"
        )
    }
    followed, asked = follow(first, site)
    assert followed.pages == 2 and followed.stopped.startswith("loop")
    assert len(asked) == 1


def test_a_page_repeating_an_earlier_one_stops_following() -> None:
    first = page_article("https://a.example/s/", "one", "https://a.example/s/?page=2")
    site = {
        "https://a.example/s/?page=2": page_article(
            "https://a.example/s/", "one", "https://a.example/s/?page=3"
        )
    }
    followed, _ = follow(first, site)
    assert followed.pages == 1 and "repeats" in followed.stopped


def test_the_page_limit_holds() -> None:
    def at(n: int) -> Article:
        return page_article(
            f"https://a.example/s/{n}/", f"page {n}", f"https://a.example/s/{n + 1}/"
        )

    site: dict[str, Article | None] = {f"https://a.example/s/{n}/": at(n) for n in range(2, 100)}
    followed, asked = follow(
        page_article("https://a.example/s/", "page 1", "https://a.example/s/2/"), site, limit=4
    )
    assert followed.pages == 4 and len(asked) == 3 and followed.stopped == "limit: 4 pages"


def test_a_missing_page_keeps_what_was_read() -> None:
    first = page_article("https://a.example/s/", "one", "https://a.example/s/2/")
    followed, _ = follow(first, {})
    assert (
        followed.pages == 1
        and followed.article.body_text == "one"
        and "could not be read" in followed.stopped
    )


def test_single_page_version_replaces_the_body_and_keeps_identity() -> None:
    first = Article(
        url="https://a.example/s/",
        title="The real title",
        body_html="<p>teaser</p>",
        body_text="teaser",
        canonical_url="https://a.example/s/",
        single_page="https://a.example/print/s",
        next_page="https://a.example/s/2/",
    )
    single = page_article(
        "https://a.example/print/s", "the whole article", "https://a.example/print/s?p=2"
    )
    followed, asked = follow(first, {"https://a.example/print/s": single})
    assert followed.single_page and followed.pages == 1
    assert followed.article.body_text == "the whole article"
    assert (
        followed.article.url == "https://a.example/s/"
        and followed.article.title == "The real title"
    )
    assert followed.article.next_page is None and asked == [("https://a.example/print/s", 1)]


def test_merge_of_one_page_is_that_page() -> None:
    only = page_article("https://a.example/s/", "one")
    assert merge_pages([only]) is only
