"""`join_url` gives what `urllib.parse.urljoin` gives, whichever of its shortcuts answers."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.extract.weburl import absolute_url, join_url

BASES = [
    "https://news.example/world/story.html",
    "https://news.example/world/story.html?id=3#top",
    "http://news.example",
    "http://news.example/",
    "https://news.example/a/b/",
    "https://news.example/a//b/c.html",  # an empty segment, which urljoin drops when joining
    "https://news.example/a/./b.html",  # a dot segment: not plain, urljoin resolves it
    "https://news.example/a;p=1/b",  # parameters: not plain
    "HTTPS://News.Example/a",  # an upper-case scheme: not plain
    "https://[::1]/a",  # a bracketed host: not plain
    "https://nëws.example/a",  # not ASCII
    "",
]

# The shortcuts' cases, and what they must leave to urljoin.
VALUES = [
    "#cite_note-3",
    "#",
    "#a#b",
    "#notes;x=1",
    "#Überblick",
    "#with space",
    "//cdn.example/img/a.png",
    "//cdn.example",
    "//cdn.example/a?b=1#c",
    "//",
    "//cdn.example/a;b",
    "//[::1]/a",
    "/wiki/Page",
    "page2.html",
    "page2.html?x=1#y",
    "../up.html",
    "./here.html",
    "a/./b",
    "a//b",
    "/a//b",
    "?only=query",
    "javascript:void(0)",
    "mailto:someone@news.example",
    "https://other.example/x",
    "HTTP://Other.Example/x",
    "https://other.example/x;y",
    "ünïcode/path",
]


def reference(base: str, value: str) -> tuple[str, str, str]:
    absolute = urljoin(base, value)
    scheme, netloc = urlsplit(absolute)[:2]
    return absolute, scheme, netloc


def outcome(func: object, base: str, value: str) -> object:
    try:
        return func(base, value)  # type: ignore[operator]
    except ValueError:
        return ValueError


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("value", VALUES)
def test_join_url_is_urljoin(base: str, value: str) -> None:
    assert outcome(join_url, base, value) == outcome(reference, base, value)


# Values built from the characters the shortcuts look at: `#`, `/`, `.`, `?`, `;`, `:`,
# brackets, spaces and letters beyond ASCII.
URL_TEXT = st.text(alphabet="ab/.#?;:[]%-_ =Ü1", max_size=16)


@settings(max_examples=600, deadline=None)
@given(base=st.sampled_from(BASES), value=URL_TEXT)
def test_join_url_is_urljoin_on_any_value(base: str, value: str) -> None:
    assert outcome(join_url, base, value) == outcome(reference, base, value)


def test_absolute_url_keeps_fragments_and_other_hosts() -> None:
    base = "https://news.example/world/story.html?id=3#top"
    assert absolute_url(base, "#note-1") == "https://news.example/world/story.html?id=3#note-1"
    assert absolute_url(base, "//cdn.example/a.png") == "https://cdn.example/a.png"
