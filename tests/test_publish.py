from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

import worker.publish as publish
from worker.errors import PublishError
from worker.models import Item
from worker.publish import (
    FeedMeta,
    publish_feeds,
    remove_stale_temp_files,
    render_atom,
    render_rss,
    write_if_changed,
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
    assert b'href="https://feeds.example.net/blog.rss" rel="self"' in data


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
    assert b'href="https://feeds.example.net/blog.atom" rel="self"' in data


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


def test_publish_feeds_writes_both_and_only_when_changed(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds"
    assert publish_feeds(feeds, META, ITEMS, NOW) == 2
    assert sorted(p.name for p in feeds.iterdir()) == ["blog.atom", "blog.rss"]
    parse((feeds / "blog.rss").read_bytes())
    parse((feeds / "blog.atom").read_bytes())
    assert publish_feeds(feeds, META, ITEMS, NOW + timedelta(hours=1)) == 0
    assert publish_feeds(feeds, META, [*ITEMS, make_item(4)], NOW) == 2


@pytest.mark.parametrize("bad_id", ["", ".", "..", "../etc", "a/b", "a\\b"])
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
