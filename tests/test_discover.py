"""worker.listing.discover: article links of index pages, each fixture checked for the exact set found."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.extract.htmlparse import MAX_DEPTH, nesting_depth, parse_html
from worker.listing import discover
from worker.listing.discover import (
    Discovery,
    LinkDecision,
    advertised_feeds,
    discover_links,
    next_page_url,
)

PAGES = Path(__file__).parent / "discover_pages"


def page(name: str) -> str:
    return (PAGES / f"{name}.html").read_text(encoding="utf-8")


def urls(found: Discovery) -> list[str]:
    return [link.url for link in found.links]


def reasons(found: Discovery) -> dict[str, set[str]]:
    """url -> every reason given for it."""
    out: dict[str, set[str]] = {}
    for decision in found.decisions:
        out.setdefault(decision.url, set()).add(decision.reason)
    return out


def html_page(body: str, head: str = "") -> str:
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


def listing(*hrefs: str, cls: str = "posts") -> str:
    """A plain main listing of article links with headline-length titles."""
    items = "".join(
        f'<li class="item"><h2><a href="{href}">A headline long enough to be one {i}</a></h2></li>'
        for i, href in enumerate(hrefs)
    )
    return f'<main><ul class="{cls}">{items}</ul></main>'


# --- Fixture pages: the exact set of article URLs -------------------------------------------------

BLOG = "https://kitchennotes.blogspot.com"


def test_blogger_index() -> None:
    found = discover_links(page("blogger"), f"{BLOG}/")
    assert urls(found) == [
        f"{BLOG}/2024/05/sourdough-starter-from-scratch.html",
        f"{BLOG}/2024/05/rhubarb-galette.html",
        f"{BLOG}/2024/05/spring-onion-pancakes.html",
        f"{BLOG}/2024/05/what-i-cooked-in-april.html",
    ]
    assert found.method == "auto"
    assert found.selector_matched is None
    # "Read more »", the timestamp and comment links collapse into the headline
    assert found.links[0].title == "Sourdough starter from scratch, day by day"


def test_blogger_reasons() -> None:
    why = reasons(discover_links(page("blogger"), f"{BLOG}/"))
    popular = "sidebar widget 'Popular posts from this blog'"
    assert why[f"{BLOG}/2022/11/the-only-lasagne-recipe-you-need.html"] == {popular}
    assert why[f"{BLOG}/2024/05/an-archive-only-post.html"] == {"sidebar widget 'Blog Archive'"}
    assert why[f"{BLOG}/search/label/Bread"] == {"tag/category/author/archive page"}
    assert why[f"{BLOG}/2024/"] == {"tag/category/author/archive page"}
    assert why[f"{BLOG}/p/about-me.html"] == {"navigation"}
    assert why[f"{BLOG}/p/privacy-and-cookies.html"] == {"footer"}
    assert why[f"{BLOG}/2021/01/welcome-to-kitchen-notes.html"] == {"footer"}
    assert why[f"{BLOG}/feeds/posts/default"] == {"feed"}
    assert why[f"{BLOG}/"] == {"same as index page"}
    assert why["https://www.blogger.com/"] == {"other site"}
    assert why["javascript:void(0)"] == {"not a web link"}
    older = f"{BLOG}/search?max-results=4&updated-max=2024-05-07T08:00:00-07:00"
    assert why[older] == {"pagination"}
    # a post in the listing also linked from a widget: the widget copy is a duplicate
    assert why[f"{BLOG}/2024/05/sourdough-starter-from-scratch.html"] == {
        "in main listing",
        "duplicate",
    }


WP = "https://fieldnotes.example.org"


def test_wordpress_index() -> None:
    found = discover_links(page("wordpress"), f"{WP}/")
    assert urls(found) == [
        f"{WP}/2024/06/12/profiling-python-without-guesswork/",
        f"{WP}/2024/06/02/first-swifts-of-the-year/",
        f"{WP}/2024/05/20/sqlite-is-enough/",
    ]
    # "Continue reading “Profiling …”" loses to the headline
    assert found.links[0].title == "Profiling Python without guesswork"


def test_wordpress_reasons() -> None:
    why = reasons(discover_links(page("wordpress"), f"{WP}/"))
    recent = f"{WP}/2024/05/11/notes-from-a-wet-weekend-at-the-coast/"
    assert why[recent] == {"sidebar widget 'Recent Posts'"}
    comments = f"{WP}/2023/11/30/winter-feeders-compared-in-detail/"
    assert why[comments] == {"sidebar widget 'Recent Comments'"}
    assert why[f"{WP}/2024/06/"] == {"tag/category/author/archive page"}
    assert why[f"{WP}/category/birding/"] == {"tag/category/author/archive page"}
    assert why[f"{WP}/tag/spring/"] == {"tag/category/author/archive page"}
    assert why[f"{WP}/author/ana/"] == {"tag/category/author/archive page"}
    assert why[f"{WP}/page/2/"] == {"pagination"}
    assert why[f"{WP}/wp-login.php"] == {"login/account page"}
    assert why[f"{WP}/comments/feed/"] == {"feed"}
    assert why[f"{WP}/about/"] == {"navigation"}
    assert why[f"{WP}/2019/03/04/the-long-read-that-is-pinned-to-the-menu/"] == {"navigation"}
    assert why[f"{WP}/privacy-policy/"] == {"footer"}
    # an inline link inside an excerpt is not part of the listing
    assert why[f"{WP}/2023/01/05/a-tour-of-timeit/"] == {"not in main listing"}


NEWS = "https://www.dailyexample.news"


def test_news_front_page() -> None:
    found = discover_links(page("news"), f"{NEWS}/")
    assert urls(found) == [
        # the hero and the stories packaged with it
        f"{NEWS}/world/2024/06/12/summit-ends-without-a-deal-as-talks-collapse-481516",
        f"{NEWS}/world/2024/06/12/what-the-summit-failure-means-for-trade-481520",
        f"{NEWS}/world/2024/06/11/summit-live-as-it-happened-481490",
        # the grid
        f"{NEWS}/politics/2024/06/12/vote-on-housing-bill-delayed-again-481501",
        f"{NEWS}/business/2024/06/12/chipmaker-shares-surge-on-forecast-481502",
        f"{NEWS}/technology/2024/06/12/city-trials-driverless-buses-481503",
        f"{NEWS}/sport/2024/06/12/underdogs-reach-cup-final-481504",
        f"{NEWS}/world/2024/06/12/floods-force-thousands-from-homes-481505",
        f"{NEWS}/business/2024/06/11/interest-rates-held-for-fifth-month-481499",
        # the opinion row
        f"{NEWS}/opinion/2024/06/12/why-the-summit-was-doomed-from-the-start-481510",
        f"{NEWS}/opinion/2024/06/12/in-praise-of-the-humble-bus-481511",
    ]
    titles = [link.title for link in found.links]
    # the hero's card link wraps a headline and a standfirst: the headline is the title
    assert titles[0] == "Summit ends without a deal as talks collapse in the small hours"
    # the image link (empty alt) and the headline collapse, the headline's text wins
    assert titles[3] == "Vote on housing bill delayed again"


def test_news_reasons() -> None:
    why = reasons(discover_links(page("news"), f"{NEWS}/"))
    most_read = f"{NEWS}/lifestyle/2024/06/10/the-sandwich-that-broke-the-internet-481470"
    assert why[most_read] == {"sidebar widget 'Most read'"}
    assert why[f"{NEWS}/topics/heatwave"] == {"tag/category/author/archive page"}
    assert why[f"{NEWS}/authors/jane-doe"] == {"tag/category/author/archive page"}
    assert why[f"{NEWS}/login?return=%2F"] == {"login/account page"}
    assert why[f"{NEWS}/rss"] == {"feed"}
    assert why[f"{NEWS}/corrections-and-clarifications-policy"] == {"footer"}
    assert why[f"{NEWS}/politics/"] == {"navigation", "not in main listing", "footer"}
    assert why["https://twitter.com/dailyexample"] == {"other site"}
    assert why["mailto:letters@dailyexample.news"] == {"not a web link"}


def test_tracking_and_fragment_variants_collapse() -> None:
    found = discover_links(page("variants"), "https://notes.example/blog/")
    assert urls(found) == [
        "https://notes.example/blog/2024/why-percent-encoding-matters",
        "https://notes.example/blog/2024/Caf%C3%A9-culture-in-three-cities",
        "https://notes.example/blog/2024/sorting-query-strings?a=1&b=2",
    ]
    assert [link.title for link in found.links] == [
        "Why percent-encoding matters",
        "Café culture in three cities",
        "Sorting query strings",
    ]
    why = reasons(found)
    # "/blog/?utm_source=nav" is the index page once normalised
    assert why["https://notes.example/blog/"] == {"same as index page"}
    assert why["https://notes.example/blog/2024/why-percent-encoding-matters"] == {
        "in main listing",
        "duplicate",
    }


# --- Selector mode --------------------------------------------------------------------------------

SELECTOR_PAGE = html_page(
    """
    <nav><a href="/about">About</a></nav>
    <div class="post"><h2 class="title"><a href="/2024/one">One</a></h2><a href="/tag/x">x</a></div>
    <div class="post"><h2 class="title">
      <a href="/2024/two"><span class="inner">Two</span></a></h2></div>
    <div class="post"><h2 class="title">No link here</h2></div>
    <div class="post"><h2 class="title"><a href="https://elsewhere.example/three">Three</a></h2></div>
    <a class="more" href="/2024/one#more">Read more</a>
    """
)


def test_selector_matching_the_links() -> None:
    found = discover_links(SELECTOR_PAGE, "https://example.com/", selector="h2.title a")
    assert urls(found) == ["https://example.com/2024/one", "https://example.com/2024/two"]
    assert found.method == "selector"
    assert found.selector_matched == 3
    assert {d.reason for d in found.decisions} == {"matched selector", "other site"}


def test_selector_matching_containers_takes_first_link_inside() -> None:
    found = discover_links(SELECTOR_PAGE, "https://example.com/", selector="div.post")
    assert urls(found) == ["https://example.com/2024/one", "https://example.com/2024/two"]
    assert found.selector_matched == 4  # the post without a link matched, but gave no candidate


def test_selector_matching_inside_a_link_takes_the_link() -> None:
    found = discover_links(SELECTOR_PAGE, "https://example.com/", selector="span.inner")
    assert urls(found) == ["https://example.com/2024/two"]
    assert found.links[0].title == "Two"


def test_selector_matching_nothing() -> None:
    found = discover_links(SELECTOR_PAGE, "https://example.com/", selector=".missing")
    assert found.links == ()
    assert found.decisions == ()
    assert found.selector_matched == 0
    assert found.method == "selector"


def test_selector_dedupes_and_applies_no_heuristics() -> None:
    # the operator picked the tag link on purpose: heuristics do not second-guess a selector
    found = discover_links(SELECTOR_PAGE, "https://example.com/", selector="div.post a, a.more")
    assert urls(found) == [
        "https://example.com/2024/one",
        "https://example.com/tag/x",
        "https://example.com/2024/two",
    ]
    assert found.decisions[-1] == LinkDecision(
        "https://example.com/2024/one", "Read more", False, "duplicate"
    )


def test_invalid_selector_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid CSS selector"):
        discover_links(SELECTOR_PAGE, "https://example.com/", selector="div[")


# --- include / exclude ----------------------------------------------------------------------------


def test_include_and_exclude_patterns() -> None:
    wp = page("wordpress")
    found = discover_links(wp, f"{WP}/", include=[re.compile(r"/2024/06/")])
    assert urls(found) == [
        f"{WP}/2024/06/12/profiling-python-without-guesswork/",
        f"{WP}/2024/06/02/first-swifts-of-the-year/",
    ]
    assert "not included by pattern" in reasons(found)[f"{WP}/2024/05/20/sqlite-is-enough/"]

    found = discover_links(wp, f"{WP}/", exclude=[re.compile("swifts")])
    assert urls(found) == [
        f"{WP}/2024/06/12/profiling-python-without-guesswork/",
        f"{WP}/2024/05/20/sqlite-is-enough/",
    ]
    assert reasons(found)[f"{WP}/2024/06/02/first-swifts-of-the-year/"] == {
        "excluded by pattern 'swifts'"
    }


def test_exclude_wins_over_include() -> None:
    found = discover_links(
        page("wordpress"),
        f"{WP}/",
        include=[re.compile(r"/2024/06/")],
        exclude=[re.compile(r"python")],
    )
    assert urls(found) == [f"{WP}/2024/06/02/first-swifts-of-the-year/"]


def test_patterns_see_the_normalised_url() -> None:
    body = listing("/a/first-post-here?utm_source=x", "/a/second-post-here")
    found = discover_links(html_page(body), "https://e.com/", exclude=[re.compile(r"utm_")])
    assert urls(found) == ["https://e.com/a/first-post-here", "https://e.com/a/second-post-here"]


# --- Other sites ----------------------------------------------------------------------------------


def test_other_sites_are_dropped_unless_allowed() -> None:
    body = listing(
        "https://www.example.com/news/first-big-story",
        "https://example.com/news/second-big-story",
        "https://partner.example.net/news/third-big-story",
        "http://EXAMPLE.com:80/news/fourth-big-story",
    )
    found = discover_links(html_page(body), "https://example.com/news/")
    assert urls(found) == [
        "https://www.example.com/news/first-big-story",
        "https://example.com/news/second-big-story",
        "http://example.com/news/fourth-big-story",
    ]
    assert reasons(found)["https://partner.example.net/news/third-big-story"] == {"other site"}

    found = discover_links(html_page(body), "https://example.com/news/", same_site_only=False)
    assert len(found.links) == 4


# --- limit, <base href>, the index page -----------------------------------------------------------


def test_limit_keeps_the_first_links_in_page_order() -> None:
    found = discover_links(page("news"), f"{NEWS}/", limit=2)
    assert urls(found) == [
        f"{NEWS}/world/2024/06/12/summit-ends-without-a-deal-as-talks-collapse-481516",
        f"{NEWS}/world/2024/06/12/what-the-summit-failure-means-for-trade-481520",
    ]
    over = [d for d in found.decisions if d.reason == "over the limit of 2 links"]
    assert len(over) == 9


def test_base_href_is_honoured() -> None:
    head = '<base href="/archive/2024/">'
    body = listing("first-post-in-archive", "second-post-in-archive", "/absolute/third-post")
    found = discover_links(html_page(body, head), "https://e.com/blog/")
    assert urls(found) == [
        "https://e.com/archive/2024/first-post-in-archive",
        "https://e.com/archive/2024/second-post-in-archive",
        "https://e.com/absolute/third-post",
    ]


def test_base_href_to_another_host() -> None:
    head = '<base href="https://mirror.example.org/x/">'
    body = listing("first-mirrored-post", "second-mirrored-post")
    found = discover_links(html_page(body, head), "https://e.com/")
    assert found.links == ()
    assert {d.reason for d in found.decisions} == {"other site"}


def test_index_page_itself_is_never_a_link() -> None:
    body = listing("/blog", "/blog/?utm_source=x", "http://e.com/blog/#top", "/blog/a-real-post")
    found = discover_links(html_page(body), "https://e.com/blog/")
    assert urls(found) == ["https://e.com/blog/a-real-post"]


def test_empty_page() -> None:
    found = discover_links("", "https://e.com/")
    assert found == Discovery((), (), "auto", None)


def test_decisions_cover_every_anchor_in_page_order() -> None:
    body = '<a href="#x">top</a><a href="tel:1">call</a>' + listing("/p/one-post-here")
    found = discover_links(html_page(body), "https://e.com/")
    assert [d.reason for d in found.decisions] == [
        "not a web link",
        "not a web link",
        "in main listing",
    ]
    assert found.decisions[0] == LinkDecision("#x", "top", False, "not a web link")


# --- Main listing choice --------------------------------------------------------------------------


def test_listing_without_semantic_markup() -> None:
    # no main/nav/aside: the repeated structure with article-like links wins over a link list
    links = "".join(f'<div class="l"><a href="/{w}">{w.title()}</a></div>' for w in ("a", "b", "c"))
    items = "".join(
        f'<div class="row"><div class="cell"><a href="/stories/{i}-a-story-slug-{i}">'
        f"Story number {i} with a real headline</a></div></div>"
        for i in range(5)
    )
    found = discover_links(
        html_page(f'<div id="top">{links}</div><div>{items}</div>'), "https://e.com/"
    )
    assert urls(found) == [f"https://e.com/stories/{i}-a-story-slug-{i}" for i in range(5)]


def test_listing_of_opaque_urls_still_found() -> None:
    items = "".join(
        f'<article><h2><a href="/p/{code}">An opaque URL but a real headline {code}</a></h2>'
        "</article>"
        for code in ("x7k", "q2m", "zz9")
    )
    body = (
        f'<nav><a href="/about">About</a><a href="/contact">Contact</a></nav><main>{items}</main>'
    )
    found = discover_links(html_page(body), "https://e.com/")
    assert urls(found) == ["https://e.com/p/x7k", "https://e.com/p/q2m", "https://e.com/p/zz9"]


def test_only_a_widget_on_the_page_is_still_the_listing() -> None:
    body = '<aside class="sidebar">' + listing("/a/one-more-post", "/a/two-more-posts") + "</aside>"
    found = discover_links(html_page(body), "https://e.com/")
    assert urls(found) == ["https://e.com/a/one-more-post", "https://e.com/a/two-more-posts"]


def test_featured_block_joins_the_list() -> None:
    body = (
        '<main><div class="featured"><article class="post featured"><h2>'
        '<a href="/2024/05/the-featured-story">The featured story of the week</a></h2></article>'
        "</div>"
        + "".join(
            f'<article class="post"><h2><a href="/2024/05/story-{i}">Short one {i}</a></h2>'
            "</article>"
            for i in range(4)
        )
        + "</main>"
    )
    found = discover_links(html_page(body), "https://e.com/")
    assert urls(found) == ["https://e.com/2024/05/the-featured-story"] + [
        f"https://e.com/2024/05/story-{i}" for i in range(4)
    ]


# --- Vocabulary groups, one test each -------------------------------------------------------------


def _reason_in(container: str) -> str:
    """The reason given for an article-like link placed inside `container` ("<tag ...>{}</tag>"),
    beside a main listing that wins."""
    link = '<a href="/2024/05/an-article-in-a-box">An article placed in the box</a>'
    body = listing("/2024/05/a-b-c", "/2024/05/d-e-f", "/2024/05/g-h-i") + container.format(link)
    found = discover_links(html_page(body), "https://e.com/")
    return reasons(found)["https://e.com/2024/05/an-article-in-a-box"].pop()


@pytest.mark.parametrize(
    ("container", "reason"),
    [
        # navigation
        ("<nav>{}</nav>", "navigation"),
        ('<div role="navigation">{}</div>', "navigation"),
        ('<div class="main-menu">{}</div>', "navigation"),
        ('<ol class="breadcrumbs">{}</ol>', "navigation"),
        ("<header>{}</header>", "navigation"),
        ('<div id="masthead">{}</div>', "navigation"),
        ('<div class="widget PageList">{}</div>', "navigation"),
        # footer
        ("<footer>{}</footer>", "footer"),
        ('<div class="footer-links">{}</div>', "footer"),
        ('<div role="contentinfo">{}</div>', "footer"),
        # sidebar
        ("<aside>{}</aside>", "sidebar"),
        ('<div class="sidebar">{}</div>', "sidebar"),
        ('<div id="secondary">{}</div>', "sidebar"),
        ('<aside aria-label="More from us">{}</aside>', "sidebar widget 'More from us'"),
        # widgets by class/id (box heading as the label when there is one)
        ('<div class="popular-posts">{}</div>', "sidebar widget 'popular'"),
        ('<div class="widget RelatedPosts"><h4>See also</h4>{}</div>', "sidebar widget 'See also'"),
        ('<div id="most-read">{}</div>', "sidebar widget 'most-read'"),
        ('<div class="tag-cloud">{}</div>', "sidebar widget 'tag-cloud'"),
        ('<section aria-label="Trending">{}</section>', "sidebar widget 'Trending'"),
        # widgets by heading text, in several languages
        ('<div class="box"><h3>Most read</h3>{}</div>', "sidebar widget 'Most read'"),
        ("<div><h2>Meistgelesen</h2><p>{}</p></div>", "sidebar widget 'Meistgelesen'"),
        ("<div><h2>Les plus lus</h2><ul><li>{}</li></ul></div>", "sidebar widget 'Les plus lus'"),
        ("<div><h3>Entradas populares</h3>{}</div>", "sidebar widget 'Entradas populares'"),
        (
            '<div><div class="t"><h3>Archives</h3></div><ul>{}</ul></div>',
            "sidebar widget 'Archives'",
        ),
        # pagination and share blocks
        ('<div class="pagination">{}</div>', "pagination"),
        ('<div class="share-buttons">{}</div>', "share links"),
        # nothing: an unmarked stray block is just not the listing
        ('<div class="box"><h3>Trending: the story of the day</h3>{}</div>', "in main listing"),
    ],
)
def test_regions(container: str, reason: str) -> None:
    assert _reason_in(container) == reason


def test_article_scoped_header_and_footer_are_not_site_regions() -> None:
    items = "".join(
        f'<article><header><h2><a href="/2024/05/post-number-{i}">Post number {i} headline</a>'
        f'</h2></header><footer><a href="/2024/05/post-number-{i}#more">Read more</a></footer>'
        "</article>"
        for i in range(3)
    )
    found = discover_links(html_page(f"<main>{items}</main>"), "https://e.com/")
    assert urls(found) == [f"https://e.com/2024/05/post-number-{i}" for i in range(3)]


@pytest.mark.parametrize(
    ("href", "attrs", "text", "reason"),
    [
        # pagination: rel, text, path, query
        ("/2024/05/x-y-z", 'rel="next"', "Next stories", "pagination"),
        ("/somewhere-else-entirely", "", "Older posts »", "pagination"),
        ("/somewhere-else-entirely", "", "Ältere Beiträge", "pagination"),
        ("/somewhere-else-entirely", "", "3", "pagination"),
        ("/blog/page/3/", "", "Page three", "pagination"),
        ("/blog/?paged=3", "", "Page three", "pagination"),
        ("/search?updated-max=2024-01-01T00:00:00Z", "", "Page three", "pagination"),
        # tag / category / author / archive
        ("/2024/05/x-y-z", 'rel="tag"', "python", "tag/category/author/archive page"),
        ("/category/news/", "", "News", "tag/category/author/archive page"),
        ("/tags/rust", "", "Rust", "tag/category/author/archive page"),
        ("/search/label/Recipes", "", "Recipes", "tag/category/author/archive page"),
        ("/author/ana/", "", "Ana", "tag/category/author/archive page"),
        ("/kategorie/reisen/", "", "Reisen", "tag/category/author/archive page"),
        ("/2023/11/", "", "November 2023", "tag/category/author/archive page"),
        ("/?cat=4", "", "A category", "tag/category/author/archive page"),
        ("/?m=202405", "", "May 2024", "tag/category/author/archive page"),
        # search, login/account, feed, share, site machinery
        ("/search?q=python", "", "Search", "search page"),
        ("/?s=birds", "", "Search", "search page"),
        ("/wp-login.php?action=register", "", "Register", "login/account page"),
        ("/account/settings", "", "Settings", "login/account page"),
        ("/feed/", "", "RSS", "feed"),
        ("/index.xml", "", "Feed", "feed"),
        ("/latest", 'rel="alternate" type="application/rss+xml"', "Feed", "feed"),
        ("/2024/05/x-y-z/?share=twitter", "", "Share on X", "share link"),
        ("/2024/05/x-y-z/?replytocom=12", "", "Reply", "share link"),
        ("/wp-json/wp/v2/posts", "", "API", "not an article URL (site machinery)"),
        # file types (a hard screen, selector mode too)
        ("/files/report-2024.PDF", "", "The annual report", "not an article URL (file type)"),
        ("/img/photo-of-the-day.jpg", "", "Photo", "not an article URL (file type)"),
        ("/dl/source-code.tar.gz", "", "Source", "not an article URL (file type)"),
    ],
)
def test_url_kinds(href: str, attrs: str, text: str, reason: str) -> None:
    body = (
        listing("/2024/05/a-b-c", "/2024/05/d-e-f") + f'<p><a href="{href}" {attrs}>{text}</a></p>'
    )
    found = discover_links(html_page(body), "https://e.com/")
    link = discover.normalise_url(f"https://e.com{href}")
    assert reason in reasons(found)[link]
    assert link not in urls(found)


@pytest.mark.parametrize(
    "href",
    [
        "/topics/climate/sea-levels-rise-faster-than-expected-2231",  # filed under a topic
        "/2024/05/17/a-dated-post/",
        "/news/a-story?page_id=",  # "page_id" is not "page"
        "/p/recipe-index-of-the-year.html",
    ],
)
def test_article_urls_are_not_mistaken_for_site_pages(href: str) -> None:
    body = listing("/2024/05/a-b-c", href)
    found = discover_links(html_page(body), "https://e.com/")
    assert discover.normalise_url(f"https://e.com{href}") in urls(found)


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        ("/2024/05/17/a-long-slug-here/", "/about"),
        ("/news/story-title-words-1234567", "/news/"),
        ("/2024/05/17/a-long-slug-here.html", "/2024/05/17/"),
        ("/?p=123", "/"),
        ("/blog/some-post", "/blog"),
    ],
)
def test_articleness_orders_urls(better: str, worse: str) -> None:
    assert discover._articleness(f"https://e.com{better}", "/") > discover._articleness(
        f"https://e.com{worse}", "/"
    )


def test_site_pages_score_zero() -> None:
    for word in ("about", "contact", "privacy-policy", "impressum"):
        assert discover._articleness(f"https://e.com/{word}/", "/") == 0.0


@pytest.mark.parametrize(
    ("title", "generic"),
    [
        ("Read more", True),
        ("Read more »", True),
        ("Continue reading “Profiling Python”", True),
        ("Weiterlesen", True),
        ("", True),
        ("More rain expected this weekend", False),
        ("Profiling Python", False),
    ],
)
def test_read_more_titles(title: str, generic: bool) -> None:
    assert discover._is_generic_title(title) is generic


def test_signature_steps_ignore_per_item_classes_and_digits() -> None:
    wp_post = "post-412 post type-post status-publish hentry category-news tag-python"
    assert discover._step("article", wp_post.split()) == "article.hentry.post"
    assert discover._step("div", ["card", "card--3", "col-4"]) == "div.card.card--.col-"


def test_titles_fall_back_to_title_attribute_and_image_alt() -> None:
    body = (
        '<main><ul><li><a href="/2024/a-b-c" title="From the title attribute"> </a></li>'
        '<li><a href="/2024/d-e-f"><img src="x.png" alt="From the image alt"></a></li></ul></main>'
    )
    found = discover_links(html_page(body), "https://e.com/")
    assert [link.title for link in found.links] == [
        "From the title attribute",
        "From the image alt",
    ]


def test_title_whitespace_is_collapsed() -> None:
    body = '<main><h2><a href="/2024/a-b-c">  A\n   headline\twith   gaps </a></h2></main>'
    found = discover_links(html_page(body), "https://e.com/")
    assert found.links[0].title == "A headline with gaps"


# -- next page and advertised feeds (issue 5) ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "page", "expected"),
    [
        ('<a href="/blog/page/2/" rel="next">»</a>', 1, "https://e.com/blog/page/2/"),
        ('<div class="nav-links"><a href="/p2">Older posts »</a></div>', 1, "https://e.com/p2"),
        (
            '<a href="/?page=2">Newer</a><a href="/?page=3">Next page</a>',
            2,
            "https://e.com/?page=3",
        ),
        (
            '<ul class="pagination"><a href="/page/2/">2</a><a href="/page/3/">3</a></ul>',
            2,
            "https://e.com/page/3/",
        ),
        ('<a href="/a-story-numbered">3</a>', 2, None),  # a number that is no pagination link
        ('<a href="https://other.test/page/2/" rel="next">Next</a>', 1, None),
        ('<a href="/">Next</a>', 1, None),  # the page itself
    ],
)
def test_next_page_url(body: str, page: int, expected: str | None) -> None:
    assert next_page_url(html_page(body), "https://e.com/", page) == expected


def test_next_page_from_head_link() -> None:
    html = '<html><head><link rel="next" href="/page/2/"></head><body></body></html>'
    assert next_page_url(html, "https://e.com/") == "https://e.com/page/2/"


def test_advertised_feeds_skip_comment_feeds() -> None:
    html = """<html><head>
    <link rel="alternate" type="application/rss+xml" title="Blog &raquo; Comments Feed" href="/comments/feed/">
    <link rel="alternate" type="application/rss+xml" title="Blog" href="/feed/">
    <link rel="alternate" type="application/atom+xml" href="/feed/atom/">
    <link rel="alternate" type="application/feed+json" href="/feed.json">
    <link rel="alternate" hreflang="de" href="/de/">
    <link rel="stylesheet" type="text/css" href="/style.css"></head><body></body></html>"""
    assert advertised_feeds(html, "https://e.com/blog/") == (
        "https://e.com/feed/",
        "https://e.com/feed/atom/",
        "https://e.com/feed.json",
    )


def test_page_of_only_menus_and_footer_has_no_listing() -> None:
    body = (
        '<nav><a href="/about-the-team">About the team</a><a href="/contact-the-desk">Contact the desk</a></nav>'
        '<footer><a href="/privacy-and-cookies">Privacy and cookies</a><a href="/terms-of-use">Terms of use</a></footer>'
    )
    assert discover_links(html_page(body), "https://e.com/").links == ()


# --- Hostile pages and parsed trees ---------------------------------------------------------------


@pytest.mark.parametrize("tag", ["address", "section", "hgroup", "dialog", "summary", "dir"])
def test_deep_nesting_on_an_index_page_is_bounded(tag: str, lexbor_inputs: list[str]) -> None:
    depth = 20_000
    hrefs = [f"/2024/05/a-story-slug-number-{i}" for i in range(5)]
    head = '<link rel="alternate" type="application/rss+xml" href="/feed/">'
    body = f"{f'<{tag}>' * depth}{listing(*hrefs)}<a rel=next href=/page/2/>Older posts</a>"
    html = html_page(body + f"</{tag}>" * depth, head)
    found = discover_links(html, "https://e.com/")
    following = next_page_url(html, "https://e.com/")
    feeds = advertised_feeds(html, "https://e.com/")
    # Unflattened, lexbor's time grows with the square of the depth: 0.5 s per parse here.
    assert lexbor_inputs and all(nesting_depth(parsed) <= MAX_DEPTH for parsed in lexbor_inputs)
    assert urls(found) == [f"https://e.com{href}" for href in hrefs]
    assert following == "https://e.com/page/2/"
    assert feeds == ("https://e.com/feed/",)


def test_entry_points_take_a_parsed_tree() -> None:
    head = '<link rel="alternate" type="application/atom+xml" href="/atom.xml">'
    body = listing("/p/one-post-here", "/p/two-posts-here") + '<a href="/page/2/">Next</a>'
    html = html_page(body, head)
    tree = parse_html(html)
    assert discover_links(tree, "https://e.com/") == discover_links(html, "https://e.com/")
    assert next_page_url(tree, "https://e.com/") == "https://e.com/page/2/"
    assert advertised_feeds(tree, "https://e.com/") == ("https://e.com/atom.xml",)
    assert tree.html == parse_html(html).html  # read, never changed
