"""Every feed format is valid by its format's rules, whatever the items look like.

No maintained feed validator is installable from PyPI (the W3C Feed Validation Service is not
packaged; feedparser 6.0 does not read JSON Feed), so the rules that matter are checked here:

- RSS 2.0 (rssboard.org spec + RSS Best Practices Profile): channel title/link/description,
  every item has a title or description, RFC 822 dates, unique GUIDs, permalink GUIDs are URLs,
  enclosures have url/length/type, a self link.
- Atom (RFC 4287): feed id/title/updated, every entry id/title/updated, RFC 3339 dates, unique
  ids that are absolute IRIs, an author at feed or entry level, a self link.
- JSON Feed 1.1: version, title, items with unique string ids and content, RFC 3339 dates.

Each checker returns a list of problems, so a failure names every broken rule at once; a few
tests feed the checkers broken documents so they are known to catch what they claim to.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from worker.models import Item
from worker.publish.render import (
    FeedMeta,
    render_atom,
    render_combined,
    render_json,
    render_rss,
)

ATOM = "{http://www.w3.org/2005/Atom}"
DCTERMS = "{http://purl.org/dc/terms/}"
RFC822 = re.compile(
    r"(?:(Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" \d{4} \d{2}:\d{2}(?::\d{2})? (?:[+-]\d{4}|GMT|UT|[ECMP][SD]T)"
)
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
URL = re.compile(r"https?://[^\s/$.?#][^\s]*")
IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")  # absolute: a scheme, then no whitespace

T0 = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
NOW = datetime(2030, 1, 1, tzinfo=UTC)
META = FeedMeta(
    source_id="blog",
    title="Example blog",
    link="https://example.org/",
    description="Everything Example writes",
    language="en",
    self_base_url="https://feeds.example.net",
    ttl_minutes=60,
)


# -- the checkers ----------------------------------------------------------------------------


def rss_problems(data: bytes, need_self: bool = True) -> list[str]:
    """What breaks RSS 2.0's rules in `data`; `need_self`: a public URL is configured."""
    problems: list[str] = []
    root = etree.fromstring(data)
    if root.tag != "rss" or root.get("version") != "2.0":
        return [f"root is <{root.tag} version={root.get('version')}>, not <rss version='2.0'>"]
    channels = root.findall("channel")
    if len(channels) != 1:
        return [f"{len(channels)} channels"]
    channel = channels[0]
    for name in ("title", "link", "description"):
        problems += _one_nonempty(channel, name, "channel")
    problems += _check_url(channel.findtext("link"), "channel link")
    for name in ("pubDate", "lastBuildDate"):
        problems += _check_dates(channel.findall(name), rfc822_problem, f"channel {name}")
    problems += _check_ttl(channel)
    self_links = [ln for ln in channel.findall(f"{ATOM}link") if ln.get("rel") == "self"]
    if len(self_links) != int(need_self):
        problems.append(f"{len(self_links)} atom:link rel=self in the channel")
    guids: list[str] = []
    for n, item in enumerate(channel.findall("item")):
        problems += _rss_item_problems(item, f"item {n}", guids)
    problems += _duplicates(guids, "guid")
    return problems


def _rss_item_problems(item: etree._Element, where: str, guids: list[str]) -> list[str]:
    problems: list[str] = []
    if not (item.findtext("title") or "").strip() and not (item.findtext("description") or ""):
        problems.append(f"{where}: neither title nor description")
    for name in ("title", "link", "description", "guid", "pubDate", "comments"):
        if len(item.findall(name)) > 1:
            problems.append(f"{where}: more than one <{name}>")
    problems += _check_dates(item.findall("pubDate"), rfc822_problem, f"{where} pubDate")
    problems += _check_dates(item.findall(f"{DCTERMS}modified"), rfc3339_problem, where)
    for link in item.findall("link"):
        problems += _check_url(link.text, f"{where} link")
    for guid in item.findall("guid"):
        text = (guid.text or "").strip()
        guids.append(text)
        if not text:
            problems.append(f"{where}: empty guid")
        if guid.get("isPermaLink", "true") == "true":
            problems += _check_url(text, f"{where} permalink guid")
        elif guid.get("isPermaLink") != "false":
            problems.append(f"{where}: isPermaLink={guid.get('isPermaLink')!r}")
    enclosures = item.findall("enclosure")
    if len(enclosures) > 1:
        problems.append(f"{where}: more than one enclosure")  # the Best Practices Profile
    for enclosure in enclosures:
        problems += _check_url(enclosure.get("url"), f"{where} enclosure url")
        if not (enclosure.get("length") or "").isdigit() or not enclosure.get("type"):
            problems.append(f"{where}: enclosure needs a numeric length and a type")
    for category in item.findall("category"):
        if not (category.text or "").strip():
            problems.append(f"{where}: empty category")
    return problems


def _check_ttl(channel: etree._Element) -> list[str]:
    ttls = channel.findall("ttl")
    if len(ttls) > 1 or any(not (t.text or "").isdigit() for t in ttls):
        return ["channel ttl must be one whole number of minutes"]
    return []


def atom_problems(data: bytes, need_self: bool = True) -> list[str]:
    """What breaks RFC 4287's rules in `data`; `need_self`: a public URL is configured."""
    problems: list[str] = []
    root = etree.fromstring(data)
    if root.tag != f"{ATOM}feed":
        return [f"root is <{root.tag}>, not an Atom feed"]
    problems += _atom_common(root, "feed")
    links = root.findall(f"{ATOM}link")
    if sum(1 for ln in links if ln.get("rel") == "self") != int(need_self):
        problems.append(f"feed needs {int(need_self)} link rel=self")
    entries = root.findall(f"{ATOM}entry")
    feed_has_author = bool(root.findall(f"{ATOM}author"))
    ids: list[str] = []
    for n, entry in enumerate(entries):
        where = f"entry {n}"
        problems += _atom_common(entry, where)
        ids.append((entry.findtext(f"{ATOM}id") or "").strip())
        if not feed_has_author and not entry.findall(f"{ATOM}author"):
            problems.append(f"{where}: no author, and none at feed level")
        problems += _check_dates(entry.findall(f"{ATOM}published"), rfc3339_problem, where)
        if len(entry.findall(f"{ATOM}content")) > 1 or len(entry.findall(f"{ATOM}summary")) > 1:
            problems.append(f"{where}: more than one content or summary")
        if not entry.findall(f"{ATOM}content") and not _alternates(entry):
            problems.append(f"{where}: no content and no alternate link")
    problems += _duplicates(ids, "entry id")
    return problems


def _atom_common(element: etree._Element, where: str) -> list[str]:
    """The rules feed and entry share: one id (an absolute IRI), title and updated; authors
    named; links with href; at most one alternate link per type and language."""
    problems: list[str] = []
    for name in ("id", "title", "updated"):
        found = element.findall(f"{ATOM}{name}")
        if len(found) != 1:
            problems.append(f"{where}: {len(found)} <{name}> elements")
    identifier = (element.findtext(f"{ATOM}id") or "").strip()
    if not IRI.fullmatch(identifier):
        problems.append(f"{where}: id {identifier!r} is not an absolute IRI")
    if not (element.findtext(f"{ATOM}title") or "").strip():
        problems.append(f"{where}: empty title")
    problems += _check_dates(element.findall(f"{ATOM}updated"), rfc3339_problem, where)
    for author in element.findall(f"{ATOM}author"):
        if not (author.findtext(f"{ATOM}name") or "").strip():
            problems.append(f"{where}: author without a name")
    for link in element.findall(f"{ATOM}link"):
        if not link.get("href"):
            problems.append(f"{where}: link without href")
    keys = [(ln.get("type"), ln.get("hreflang")) for ln in _alternates(element)]
    problems += _duplicates([repr(k) for k in keys], f"{where} alternate link type")
    for category in element.findall(f"{ATOM}category"):
        if not (category.get("term") or "").strip():
            problems.append(f"{where}: category without a term")
    return problems


def _alternates(element: etree._Element) -> list[etree._Element]:
    return [
        ln for ln in element.findall(f"{ATOM}link") if ln.get("rel", "alternate") == "alternate"
    ]


def json_feed_problems(data: bytes) -> list[str]:
    """What breaks JSON Feed 1.1's rules in `data`."""
    feed = json.loads(data.decode("utf-8"))
    problems: list[str] = []
    if not isinstance(feed, dict):
        return ["top level is not an object"]
    if feed.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append(f"version is {feed.get('version')!r}")
    if not isinstance(feed.get("title"), str) or not feed["title"]:
        problems.append("feed title missing")
    for key in ("home_page_url", "feed_url"):
        if key in feed:
            problems += _check_url(feed[key], key)
    problems += _no_nulls(feed, "feed")
    items = feed.get("items")
    if not isinstance(items, list):
        return [*problems, "items is not a list"]
    ids: list[str] = []
    for n, item in enumerate(items):
        where = f"item {n}"
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"{where}: id must be a non-empty string")
        ids.append(str(item.get("id")))
        if not isinstance(item.get("content_html", item.get("content_text")), str):
            problems.append(f"{where}: neither content_html nor content_text")
        for key in ("date_published", "date_modified"):
            if key in item:
                problems += _check_dates([item[key]], rfc3339_problem, f"{where} {key}")
        for key in ("url", "image"):
            if key in item:
                problems += _check_url(item[key], f"{where} {key}")
        authors = item.get("authors", [])
        if not all(isinstance(a, dict) and isinstance(a.get("name"), str) for a in authors):
            problems.append(f"{where}: authors must be objects with a name")
        if not all(isinstance(t, str) and t for t in item.get("tags", [])):
            problems.append(f"{where}: tags must be non-empty strings")
    problems += _duplicates(ids, "item id")
    return problems


def _no_nulls(value: object, where: str) -> list[str]:
    if value is None:
        return [f"{where}: null (leave the key out instead)"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _no_nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for n, v in enumerate(value) for p in _no_nulls(v, f"{where}[{n}]")]
    return []


def rfc822_problem(text: str) -> str | None:
    if not RFC822.fullmatch(text):
        return f"{text!r} is not an RFC 822 date"
    parsed = parsedate_to_datetime(text)
    weekday = text.split(",")[0] if "," in text else None
    if weekday is not None and parsed.strftime("%a") != weekday:
        return f"{text!r} names the wrong weekday"
    return None


def rfc3339_problem(text: object) -> str | None:
    if not isinstance(text, str) or not RFC3339.fullmatch(text):
        return f"{text!r} is not an RFC 3339 date"
    datetime.fromisoformat(text)  # raises on 2024-02-30 and the like
    return None


def _check_dates(
    found: Sequence[etree._Element | str], problem: Callable[[str], str | None], where: str
) -> list[str]:
    texts = [f if isinstance(f, str) else (f.text or "").strip() for f in found]
    return [f"{where}: {p}" for p in map(problem, texts) if p is not None]


def _one_nonempty(parent: etree._Element, name: str, where: str) -> list[str]:
    found = parent.findall(name)
    if len(found) != 1 or not (found[0].text or "").strip():
        return [f"{where}: needs exactly one non-empty <{name}>"]
    return []


def _check_url(value: object, where: str) -> list[str]:
    if not isinstance(value, str) or not URL.fullmatch(value.strip()):
        return [f"{where}: {value!r} is not an http(s) URL"]
    return []


def _duplicates(values: Sequence[str], what: str) -> list[str]:
    counts = Counter(values)
    return [f"duplicate {what} {v!r}" for v in sorted(counts) if counts[v] > 1]


# -- awkward inputs --------------------------------------------------------------------------


def make_item(n: int, **changes: object) -> Item:
    item = Item(
        source_id="blog",
        guid=f"https://example.org/post/{n}",
        url=f"https://example.org/post/{n}",
        title=f"Post {n}",
        content_html=f"<p>Full body of post {n}.</p>",
        content_hash=f"v1:{n:064x}",
        first_seen=T0 + timedelta(hours=n, minutes=1),
        published=T0 + timedelta(hours=n),
        updated=T0 + timedelta(hours=n, minutes=30),
        authors=("Ada Lovelace",),
        summary=f"Summary {n}",
        image=f"https://example.org/img/{n}.jpg",
        categories=("Python",),
    )
    return replace(item, **changes)  # type: ignore[arg-type]


def bare(n: int) -> Item:
    return make_item(n, authors=(), summary="", image=None, categories=(), content_html="")


CASES: dict[str, tuple[FeedMeta, list[Item]]] = {
    "no items": (META, []),
    "no items, bare meta": (FeedMeta(source_id="b", title="", link="https://example.org/"), []),
    "full items": (META, [make_item(n) for n in range(1, 4)]),
    "bare items": (META, [bare(1), bare(2)]),
    "naive dates": (
        META,
        [make_item(1, published=datetime(2024, 5, 1), updated=datetime(2024, 5, 2))],
    ),
    "same dates everywhere": (META, [make_item(n, published=T0, first_seen=T0) for n in (1, 2)]),
    "xml-invalid characters": (
        replace(META, title="Bad\x00 feed\ufffe", description="d\ud800", language="e\x1bn"),
        [
            make_item(
                1,
                title="Bad\x00 ti\x0btle\ud800",
                content_html="<p>bo\x1bdy\udfff</p>",
                summary="\x01",
                authors=("\x08",),
                categories=("\x0c", "ok\x00"),
            )
        ],
    ),
    "title made only of invalid characters": (META, [make_item(1, title="\x00\x01", summary="")]),
    "blank titles": (replace(META, title=" \n\t"), [make_item(1, title="  \n ", summary=" ")]),
    "very long title": (META, [make_item(1, title="Long " * 5000, summary="s" * 100_000)]),
    "non-ascii": (
        replace(META, title="Блог — 日本語 ✓", description="مرحبا"),
        [
            make_item(
                1,
                title="Ünïcödé 🎉 𝔘 e\u0301",
                authors=("Zoë Ångström", "李小龙"),
                categories=("Ümlaut", "日本"),
                content_html="<p>Grüße, 🌍, \u202eRTL\u202c</p>",
            )
        ],
    ),
    "html in titles and summaries": (
        replace(META, title="<b>Bold</b> & co"),
        [
            make_item(
                1,
                title="<script>alert('x')</script> Tom & Jerry <3 &amp;",
                summary="<em>not</em> markup ]]> & <",
                authors=("<Ada> & co",),
                categories=("C++ & <Rust>",),
            )
        ],
    ),
    "body with a cdata end": (META, [make_item(1, content_html="<p>a[b[0]]>c ]]></p>")]),
    "guid that is not a url": (META, [make_item(1, guid="urn:uuid:1234"), make_item(2)]),
    "image of unknown type": (META, [make_item(1, image="https://cdn.example/i?id=4")]),
    "image that is not a url": (META, [make_item(1, image="javascript:alert(1)")]),
}
XML_RENDERERS = {"rss": (render_rss, rss_problems), "atom": (render_atom, atom_problems)}


def parse_cleanly(data: bytes) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", XML_RENDERERS)
def test_xml_feeds_are_valid_and_parse_cleanly(kind: str, case: str) -> None:
    render, problems = XML_RENDERERS[kind]
    meta, items = CASES[case]
    data = render(meta, items, NOW)
    assert problems(data, need_self=meta.self_base_url is not None) == []
    parsed = parse_cleanly(data)
    assert len(parsed.entries) == len(items)
    assert all(entry.title.strip() for entry in parsed.entries)


@pytest.mark.parametrize("case", CASES)
def test_json_feed_is_valid(case: str) -> None:
    meta, items = CASES[case]
    assert json_feed_problems(render_json(meta, items, NOW)) == []


@pytest.mark.parametrize("case", CASES)
def test_combined_feed_is_valid(case: str) -> None:
    meta, items = CASES[case]
    data = render_combined(meta, items, NOW, limit=100)
    assert atom_problems(data, need_self=meta.self_base_url is not None) == []
    parse_cleanly(data)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "render",
    [render_rss, render_atom, render_json, functools.partial(render_combined, limit=100)],
    ids=["rss", "atom", "json", "combined"],
)
def test_same_items_in_any_order_give_the_same_bytes(render, case: str) -> None:
    meta, items = CASES[case]
    shuffled = list(items)
    random.Random(case).shuffle(shuffled)
    assert render(meta, items, NOW) == render(meta, shuffled, NOW)


def test_titles_survive_as_text() -> None:
    meta, items = CASES["non-ascii"]
    assert parse_cleanly(render_atom(meta, items, NOW)).entries[0].title == items[0].title
    assert json.loads(render_json(meta, items, NOW))["items"][0]["title"] == items[0].title
    meta, items = CASES["html in titles and summaries"]
    # Atom says its title is text, so the markup is shown, not run.
    assert parse_cleanly(render_atom(meta, items, NOW)).entries[0].title == items[0].title
    assert "Tom & Jerry" in parse_cleanly(render_rss(meta, items, NOW)).entries[0].title


def test_combined_feed_with_two_sources_sharing_urls_is_valid() -> None:
    blog = [make_item(n) for n in range(1, 4)]
    news = [replace(item, source_id="news", title=f"News {item.title}") for item in blog]
    data = render_combined(replace(META, title="All"), [*blog, *news], NOW, limit=50)
    assert atom_problems(data) == []
    assert len(parse_cleanly(data).entries) == 3


# -- random inputs ---------------------------------------------------------------------------

ANY_TEXT = st.text(max_size=40)  # every code point, surrogates and controls included


@st.composite
def random_items(draw: st.DrawFn) -> list[Item]:
    count = draw(st.integers(min_value=0, max_value=4))
    moments = st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    )
    return [
        make_item(
            n,
            source_id=draw(st.sampled_from(["blog", "news"])),
            title=draw(ANY_TEXT),
            content_html=draw(ANY_TEXT),
            summary=draw(ANY_TEXT),
            authors=tuple(draw(st.lists(ANY_TEXT, max_size=2))),
            categories=tuple(draw(st.lists(ANY_TEXT, max_size=3))),
            image=draw(st.none() | st.sampled_from(["https://x.example/a.png", "ftp://x/a.png"])),
            published=draw(moments),
            updated=draw(moments),
        )
        for n in range(count)
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=random_items(), title=ANY_TEXT)
def test_any_items_give_valid_feeds(items: list[Item], title: str) -> None:
    meta = replace(META, title=title, description=title)
    for render, problems in XML_RENDERERS.values():
        data = render(meta, items, NOW)
        assert problems(data) == []
        assert len(parse_cleanly(data).entries) == len(items)
    assert json_feed_problems(render_json(meta, items, NOW)) == []
    assert atom_problems(render_combined(meta, items, NOW, limit=100)) == []


# -- the checkers catch what they claim to ---------------------------------------------------


def test_rss_checker_catches_broken_feeds() -> None:
    broken = b"""<rss version="2.0"><channel><title>T</title><link>x</link>
      <lastBuildDate>2024-05-01</lastBuildDate>
      <item><guid>https://a/1</guid><pubDate>Thu, 01 May 2024 00:00:00 +0000</pubDate></item>
      <item><title>2</title><guid>https://a/1</guid></item>
      <item><title>3</title><guid>not-a-url</guid></item>
    </channel></rss>"""
    found = "\n".join(rss_problems(broken))
    for expected in (
        "channel: needs exactly one non-empty <description>",
        "channel link: 'x' is not an http(s) URL",
        "'2024-05-01' is not an RFC 822 date",
        "rel=self",
        "item 0: neither title nor description",
        "wrong weekday",  # 1 May 2024 was a Wednesday
        "duplicate guid 'https://a/1'",
        "item 2 permalink guid",
    ):
        assert expected in found


def test_atom_checker_catches_broken_feeds() -> None:
    broken = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
      <updated>2024-05-01 08:00</updated>
      <entry><id>https://a/1</id><title>1</title><updated>2024-05-01T00:00:00Z</updated>
        <content>x</content></entry>
      <entry><id>https://a/1</id><updated>2024-05-01T00:00:00Z</updated></entry>
    </feed>"""
    found = "\n".join(atom_problems(broken))
    for expected in (
        "feed: 0 <id> elements",
        "'2024-05-01 08:00' is not an RFC 3339 date",
        "self",
        "entry 0: no author",
        "entry 1: 0 <title> elements",
        "entry 1: no content and no alternate link",
        "duplicate entry id 'https://a/1'",
    ):
        assert expected in found


def test_json_checker_catches_broken_feeds() -> None:
    broken = {
        "version": "https://jsonfeed.org/version/1",
        "items": [
            {"id": "1", "date_published": "yesterday", "summary": None},
            {"id": "1", "content_html": "x", "tags": [""]},
        ],
    }
    found = "\n".join(json_feed_problems(json.dumps(broken).encode()))
    for expected in (
        "version is",
        "feed title missing",
        "item 0: neither content_html nor content_text",
        "'yesterday' is not an RFC 3339 date",
        "feed.items[0].summary: null",
        "item 1: tags must be non-empty strings",
        "duplicate item id '1'",
    ):
        assert expected in found
