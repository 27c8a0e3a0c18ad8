from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

import worker.publish.files as publish
from worker.errors import PublishError
from worker.models import Item
from worker.publish.files import (
    publish_combined,
    publish_feeds,
    remove_stale_temp_files,
    write_if_changed,
)
from worker.publish.render import (
    FeedMeta,
    render_atom,
    render_combined,
    render_feeds,
    render_json,
    render_rss,
)

T0 = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
NOW = datetime(2030, 1, 1, tzinfo=UTC)  # must never show up in a feed with items
META = FeedMeta(
    source_id="blog",
    title="Example blog",
    link="https://example.org/",
    description="Everything Example writes",
    language="en",
    self_base_url="https://feeds.example.net/",
)
RENDERERS = [render_rss, render_atom]


def make_item(n: int, **changes: object) -> Item:
    item = Item(
        source_id="blog",
        guid=f"https://example.org/post/{n}",
        url=f"https://example.org/post/{n}",
        title=f"Post {n}",
        content_html=f"<p>Full body of post {n}, <b>all</b> of it &amp; more.</p>",
        content_hash=f"v1:{n:064x}",
        first_seen=T0 + timedelta(hours=n, minutes=1),
        published=T0 + timedelta(hours=n),
        updated=T0 + timedelta(hours=n, minutes=30),
        authors=("Ada Lovelace",),
        summary=f"Summary {n}",
        image=f"https://example.org/img/{n}.jpg",
    )
    return replace(item, **changes)  # type: ignore[arg-type]


ITEMS = [make_item(1), make_item(3), make_item(2)]


def parse(data: bytes) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


# -- rendering -------------------------------------------------------------------------------


@pytest.mark.parametrize("render", RENDERERS)
def test_feed_parses_cleanly_newest_first(render) -> None:
    parsed = parse(render(META, ITEMS, NOW))
    assert [e.id for e in parsed.entries] == [
        "https://example.org/post/3",
        "https://example.org/post/2",
        "https://example.org/post/1",
    ]
    assert parsed.feed.title == "Example blog"
    assert parsed.feed.link == "https://example.org/"


def test_rss_guids_are_permalinks_and_content_encoded_holds_the_body() -> None:
    data = render_rss(META, ITEMS, NOW)
    parsed = parse(data)
    entry = parsed.entries[0]
    assert entry.id == entry.link == "https://example.org/post/3"
    assert entry.content[0].value == make_item(3).content_html
    assert entry.summary == "Summary 3"
    assert entry.author == "Ada Lovelace"
    assert entry.enclosures == [
        {"href": "https://example.org/img/3.jpg", "length": "0", "type": "image/jpeg"}
    ]
    assert b'<guid isPermaLink="true">https://example.org/post/3</guid>' in data
    assert b"<content:encoded><![CDATA[<p>Full body of post 3" in data
    assert b'href="https://feeds.example.net/feeds/blog.rss" rel="self"' in data


def test_atom_ids_content_summary_authors_and_image() -> None:
    data = render_atom(META, ITEMS, NOW)
    parsed = parse(data)
    entry = parsed.entries[0]
    assert entry.id == "https://example.org/post/3"
    assert entry.link == "https://example.org/post/3"
    assert entry.content[0].type == "text/html"
    assert entry.content[0].value == make_item(3).content_html
    assert entry.summary == "Summary 3"
    assert [a.name for a in entry.authors] == ["Ada Lovelace"]
    assert entry.enclosures == [{"href": "https://example.org/img/3.jpg", "type": "image/jpeg"}]
    assert parsed.feed.language == "en"
    assert b'href="https://feeds.example.net/feeds/blog.atom" rel="self"' in data


@pytest.mark.parametrize("render", RENDERERS)
def test_every_item_is_dated_and_feed_date_is_newest_update(render) -> None:
    parsed = parse(render(META, ITEMS, NOW))
    newest = T0 + timedelta(hours=3, minutes=30)
    assert parsed.feed.updated_parsed[:6] == newest.timetuple()[:6]
    for entry, item in zip(parsed.entries, [make_item(3), make_item(2), make_item(1)], strict=True):
        assert entry.published_parsed[:6] == item.published.timetuple()[:6]
    atom = parse(render_atom(META, ITEMS, NOW))
    assert atom.entries[0].updated_parsed[:6] == newest.timetuple()[:6]


@pytest.mark.parametrize("render", RENDERERS)
def test_rendering_is_deterministic(render) -> None:
    first = render(META, ITEMS, NOW)
    second = render(META, list(reversed(ITEMS)), NOW + timedelta(days=3))
    assert first == second
    assert b"2030" not in first


@pytest.mark.parametrize("render", RENDERERS)
def test_ties_are_ordered_by_guid(render) -> None:
    tied = [make_item(n, published=T0, first_seen=T0) for n in (2, 1, 3)]
    ids = [e.id for e in parse(render(META, tied, NOW)).entries]
    assert ids == sorted(ids)


@pytest.mark.parametrize("render", RENDERERS)
def test_empty_feed_is_dated_now(render) -> None:
    parsed = parse(render(META, [], NOW))
    assert parsed.entries == []
    assert parsed.feed.updated_parsed[:3] == (2030, 1, 1)


@pytest.mark.parametrize("render", RENDERERS)
def test_minimal_items_work(render) -> None:
    bare = [make_item(n, authors=(), summary="", image=None) for n in (1, 2)]
    meta = FeedMeta(source_id="blog", title="Blog", link="https://example.org/")
    parsed = parse(render(meta, bare, NOW))
    assert len(parsed.entries) == 2
    assert "author" not in parsed.entries[0]
    assert parsed.entries[0].enclosures == []
    assert parsed.entries[0].content[0].value == bare[1].content_html


def test_rss_without_summary_describes_with_an_excerpt() -> None:
    parsed = parse(render_rss(META, [make_item(1, summary="")], NOW))
    assert parsed.entries[0].summary == "Full body of post 1, all of it & more."
    assert parsed.entries[0].content[0].value == make_item(1).content_html


def test_atom_without_summary_has_no_summary_element() -> None:
    data = render_atom(META, [make_item(1, summary="")], NOW)
    assert b"<summary" not in data


@pytest.mark.parametrize("render", RENDERERS)
def test_xml_invalid_characters_and_lone_surrogates_are_stripped(render) -> None:
    nasty = make_item(
        1,
        title="Bad\x00 ti\x0btle\ud800\ufffe",
        content_html="<p>bo\x1bdy\udfff \x0c end</p>",
        summary="sum\x01mary",
        authors=("A\x08da",),
    )
    meta = replace(META, title="Ex\x00ample", description="d\ud83desc")
    parsed = parse(render(meta, [nasty], NOW))
    entry = parsed.entries[0]
    assert entry.title == "Bad title"
    assert entry.content[0].value == "<p>body  end</p>"
    assert entry.summary == "summary"
    assert parsed.feed.title == "Example"


@pytest.mark.parametrize("render", RENDERERS)
def test_naive_datetimes_are_taken_as_utc(render) -> None:
    naive = make_item(1, published=datetime(2024, 5, 1, 9, 30), updated=datetime(2024, 5, 1, 10))
    parsed = parse(render(META, [naive], datetime(2024, 6, 1)))
    assert parsed.entries[0].published_parsed[:5] == (2024, 5, 1, 9, 30)


def test_body_containing_cdata_end_still_parses() -> None:
    body = "<p>code: a[b[0]]>c</p>"
    parsed = parse(render_rss(META, [make_item(1, content_html=body)], NOW))
    assert parsed.entries[0].content[0].value == body


def test_unknown_image_type_has_no_enclosure() -> None:
    item = make_item(1, image="https://cdn.example.org/image?id=4")
    assert parse(render_rss(META, [item], NOW)).entries[0].enclosures == []
    assert parse(render_atom(META, [item], NOW)).entries[0].enclosures == []


# -- JSON Feed, feed metadata, categories ----------------------------------------------------


def test_json_feed_carries_the_feed_and_every_item_field() -> None:
    data = render_json(replace(META, title="Exämple"), [make_item(1, categories=("Python",))], NOW)
    assert "Exämple".encode() in data  # UTF-8, not \\u-escaped
    feed = json.loads(data)
    assert feed == {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Exämple",
        "home_page_url": "https://example.org/",
        "feed_url": "https://feeds.example.net/feeds/blog.json",
        "description": "Everything Example writes",
        "language": "en",
        "items": [
            {
                "id": "https://example.org/post/1",
                "url": "https://example.org/post/1",
                "title": "Post 1",
                "content_html": make_item(1).content_html,
                "summary": "Summary 1",
                "image": "https://example.org/img/1.jpg",
                "date_published": "2024-05-01T09:30:00Z",
                "date_modified": "2024-05-01T10:00:00Z",
                "authors": [{"name": "Ada Lovelace"}],
                "tags": ["Python"],
            }
        ],
    }


def test_json_feed_leaves_empty_optional_fields_out() -> None:
    meta = FeedMeta(source_id="blog", title="Blog", link="https://example.org/")
    bare = make_item(1, authors=(), summary="", image="not a url", categories=())
    feed = json.loads(render_json(meta, [bare], NOW))
    assert set(feed) == {"version", "title", "home_page_url", "items"}
    assert set(feed["items"][0]) == {
        "id", "url", "title", "content_html", "date_published", "date_modified"
    }  # fmt: skip


def test_json_feed_keeps_sub_second_dates_and_order() -> None:
    items = [make_item(1, published=T0 + timedelta(milliseconds=n)) for n in (1, 2)]
    items[1] = replace(items[1], guid="https://example.org/post/x")
    feed = json.loads(render_json(META, items, NOW))
    assert [i["date_published"] for i in feed["items"]] == [
        "2024-05-01T08:30:00.002000Z",
        "2024-05-01T08:30:00.001000Z",
    ]


def test_rss_ttl_comes_from_meta_and_is_absent_by_default() -> None:
    assert parse(render_rss(replace(META, ttl_minutes=90), ITEMS, NOW)).feed.ttl == "90"
    assert b"<ttl>" not in render_rss(META, ITEMS, NOW)


@pytest.mark.parametrize("render", RENDERERS)
def test_categories_are_cleaned_and_kept_in_order(render) -> None:
    item = make_item(1, categories=(" Python ", "", "News\x00", "Python", "  ", "Mehr  Text"))
    entry = parse(render(META, [item], NOW)).entries[0]
    assert [t.term for t in entry.tags] == ["Python", "News", "Mehr Text"]


def test_rss_item_carries_its_update_date() -> None:
    entry = parse(render_rss(META, [make_item(2)], NOW)).entries[0]
    assert entry.updated_parsed[:5] == (2024, 5, 1, 11, 0)
    assert entry.published_parsed[:5] == (2024, 5, 1, 10, 30)


def test_a_guid_that_is_not_a_url_is_no_permalink() -> None:
    item = make_item(1, guid="urn:example:1")
    assert b'<guid isPermaLink="false">urn:example:1</guid>' in render_rss(META, [item], NOW)


def test_self_links_without_public_url_are_left_out() -> None:
    meta = replace(META, self_base_url=None)
    assert b'rel="self"' not in render_rss(meta, ITEMS, NOW)
    assert b'rel="self"' not in render_atom(meta, ITEMS, NOW)
    assert "feed_url" not in json.loads(render_json(meta, ITEMS, NOW))


def test_rss_authors_are_dc_creators_before_the_update_date() -> None:
    item = make_item(1, authors=("Ada Lovelace", "Charles Babbage"))
    data = render_rss(META, [item], NOW)
    assert b'xmlns:dc="http://purl.org/dc/elements/1.1/"' in data
    assert (
        b"<dc:creator>Ada Lovelace</dc:creator>\n"
        b"      <dc:creator>Charles Babbage</dc:creator>\n"
        b"      <dcterms:modified>"
    ) in data
    assert [a.name for a in parse(data).entries[0].authors] == ["Ada Lovelace", "Charles Babbage"]


def test_render_feeds_gives_what_each_renderer_gives() -> None:
    # render_feeds prepares each item once for all three documents; the bytes must not differ.
    items = [
        *ITEMS,
        make_item(4, summary="", image=None, authors=(), categories=("News", " news ")),
        make_item(5, title=" \n", content_html="<p>a ]]> b\x00</p>", image="https://e.org/x.tiff"),
        make_item(6, guid="urn:example:6", url="", published=datetime(2024, 5, 1, 12, 0)),
    ]
    for meta in (META, replace(META, self_base_url=None, ttl_minutes=30, description="")):
        assert render_feeds(meta, items, NOW) == {
            ".rss": render_rss(meta, items, NOW),
            ".atom": render_atom(meta, items, NOW),
            ".json": render_json(meta, items, NOW),
        }


# -- the combined feed -----------------------------------------------------------------------

ALL = FeedMeta(
    source_id="ignored",
    title="All feeds",
    link="https://feeds.example.net/",
    self_base_url="https://feeds.example.net",
)


def other_source(n: int, **changes: object) -> Item:
    item = make_item(
        n, source_id="news", guid=f"https://news.example/{n}", url=f"https://news.example/{n}"
    )
    return replace(item, **changes)  # type: ignore[arg-type]


def test_combined_feed_merges_sources_newest_first_up_to_the_limit() -> None:
    items = [make_item(1), other_source(2), make_item(3), other_source(4)]
    parsed = parse(render_combined(ALL, items, NOW, limit=3))
    assert [e.id for e in parsed.entries] == [
        "https://news.example/4",
        "https://example.org/post/3",
        "https://news.example/2",
    ]
    assert parsed.feed.title == "All feeds"
    assert b'href="https://feeds.example.net/feeds/all.atom" rel="self"' in render_combined(
        ALL, items, NOW, limit=100
    )


def test_combined_feed_has_one_entry_per_shared_article_url() -> None:
    shared = "https://example.org/post/1"
    older = other_source(1, guid=shared, url=shared, title="From news", published=T0)
    newer = make_item(1, title="From blog")
    parsed = parse(render_combined(ALL, [older, newer, make_item(2)], NOW, limit=100))
    assert [e.id for e in parsed.entries] == ["https://example.org/post/2", shared]
    assert parsed.entries[1].title == "From blog"
    # An exact tie is broken by source id, never by arrival order.
    twin = replace(newer, source_id="news", title="From news")
    first = render_combined(ALL, [newer, twin], NOW, limit=100)
    assert first == render_combined(ALL, [twin, newer], NOW, limit=100)
    assert parse(first).entries[0].title == "From blog"


def test_combined_feed_size_must_be_positive() -> None:
    with pytest.raises(PublishError, match="at least 1"):
        render_combined(ALL, ITEMS, NOW, limit=0)


# -- writing ---------------------------------------------------------------------------------


def test_write_if_changed_skips_identical_bytes(tmp_path: Path) -> None:
    path = tmp_path / "blog.rss"
    assert write_if_changed(path, b"<rss/>")
    past = 1_600_000_000
    os.utime(path, (past, past))
    assert not write_if_changed(path, b"<rss/>")
    assert path.stat().st_mtime == past
    assert write_if_changed(path, b"<rss version='2.0'/>")
    assert path.read_bytes() == b"<rss version='2.0'/>"
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blog.rss"]


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "blog.rss"
    path.write_bytes(b"old feed")

    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish.os, failing, fail)
    with pytest.raises(PublishError, match="No space left"):
        write_if_changed(path, b"new feed")
    assert path.read_bytes() == b"old feed"
    assert [p.name for p in tmp_path.iterdir()] == ["blog.rss"]


def test_failed_write_of_data_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "blog.atom"
    path.write_bytes(b"old feed")
    real_fdopen = os.fdopen

    class DiskFull:
        def __init__(self, fd: int, mode: str) -> None:
            self._handle = real_fdopen(fd, mode)

        def __enter__(self) -> DiskFull:
            return self

        def __exit__(self, *_exc: object) -> None:
            self._handle.close()

        def write(self, _data: bytes) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish.os, "fdopen", DiskFull)
    with pytest.raises(PublishError):
        write_if_changed(path, b"new feed")
    assert path.read_bytes() == b"old feed"
    assert [p.name for p in tmp_path.iterdir()] == ["blog.atom"]


def test_publish_feeds_writes_all_three_and_only_when_changed(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds"
    assert publish_feeds(feeds, META, ITEMS, NOW) == 3
    assert sorted(p.name for p in feeds.iterdir()) == ["blog.atom", "blog.json", "blog.rss"]
    parse((feeds / "blog.rss").read_bytes())
    parse((feeds / "blog.atom").read_bytes())
    assert json.loads((feeds / "blog.json").read_bytes())["title"] == "Example blog"
    assert publish_feeds(feeds, META, ITEMS, NOW + timedelta(hours=1)) == 0
    assert publish_feeds(feeds, META, [*ITEMS, make_item(4)], NOW) == 3


@pytest.mark.parametrize("bad_id", ["", ".", "..", "../etc", "a/b", "a\\b", "all"])
def test_publish_feeds_refuses_ids_that_are_not_file_names(tmp_path: Path, bad_id: str) -> None:
    with pytest.raises(PublishError, match="file name"):
        publish_feeds(tmp_path, replace(META, source_id=bad_id), ITEMS, NOW)


def test_remove_stale_temp_files(tmp_path: Path) -> None:
    (tmp_path / "blog.rss").write_bytes(b"feed")
    (tmp_path / ".blog.rss.abc123.feedworker-tmp").write_bytes(b"half a fe")
    (tmp_path / ".other.atom.x.feedworker-tmp").write_bytes(b"")
    (tmp_path / "notes.tmp").write_bytes(b"not ours")
    assert remove_stale_temp_files(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blog.rss", "notes.tmp"]
    assert remove_stale_temp_files(tmp_path / "missing") == 0


def test_publish_combined_writes_all_atom_only_when_changed(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds"
    items = [make_item(1), other_source(2)]
    assert publish_combined(feeds, ALL, items, NOW, limit=10) == 1
    assert [p.name for p in feeds.iterdir()] == ["all.atom"]
    assert len(parse((feeds / "all.atom").read_bytes()).entries) == 2
    assert (
        publish_combined(feeds, ALL, list(reversed(items)), NOW + timedelta(days=1), limit=10) == 0
    )
    assert publish_combined(feeds, ALL, items, NOW, limit=1) == 1
