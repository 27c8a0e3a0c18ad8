"""worker.urls: normalisation examples, the properties it must keep, site and link helpers."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from worker.urls import (
    TRACKING_PARAMS,
    amp_to_regular,
    host_key,
    is_tracking_param,
    normalise_url,
    param_dropper,
    resolve,
    same_site,
)

# --- normalise_url: examples ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # case: scheme and host lower-case, path case kept
        ("HTTP://Example.COM/Path/To", "http://example.com/Path/To"),
        # IDN host to punycode, trailing dot dropped
        ("https://Bücher.example./", "https://xn--bcher-kva.example/"),
        ("https://例え.テスト/記事", "https://xn--r8jz45g.xn--zckzah/%E8%A8%98%E4%BA%8B"),
        # IDNA 2008 with UTS #46, as httpx connects: "ß" stays (IDNA 2003 made it "strasse.de")
        ("https://Straße.de/", "https://xn--strae-oqa.de/"),
        # default ports removed, others kept (leading zeros dropped)
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:08080/a", "https://example.com:8080/a"),
        ("http://example.com:/a", "http://example.com/a"),
        # empty path becomes "/", empty query and fragment go
        ("https://example.com", "https://example.com/"),
        ("https://example.com?", "https://example.com/"),
        ("https://example.com/a?#", "https://example.com/a"),
        ("https://example.com/a#section-2", "https://example.com/a"),
        # dot segments resolved
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),
        ("https://example.com/a/b/..", "https://example.com/a/"),
        ("https://example.com/../../x", "https://example.com/x"),
        ("https://example.com/a/%2E%2e/b", "https://example.com/b"),
        # repeated slashes are kept: they can name a different resource
        ("https://example.com/a//b", "https://example.com/a//b"),
        # IPv6 literal
        ("http://[2001:DB8::1]:80/", "http://[2001:db8::1]/"),
        # user info kept as written
        ("https://User:Pw@Example.com/", "https://User:Pw@example.com/"),
        # surrounding whitespace and embedded tab/newline (WHATWG strips them)
        ("  https://example.com/a\n/b\t ", "https://example.com/a/b"),
    ],
)
def test_normalise_examples(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # hex upper-cased, unreserved characters decoded, reserved ones left escaped
        ("https://e.com/%7euser/%2fx/%41%62", "https://e.com/~user/%2Fx/Ab"),
        # raw characters that need escaping are escaped as UTF-8
        ("https://e.com/a b/café", "https://e.com/a%20b/caf%C3%A9"),
        # ... and the escaped form of the same URL gives the same result
        ("https://e.com/a%20b/caf%c3%a9", "https://e.com/a%20b/caf%C3%A9"),
        # never double-encode an escape; a stray "%" is escaped
        ("https://e.com/100%25/50%/%zz", "https://e.com/100%25/50%25/%25zz"),
        # in a query, "&", "=" and "+" keep their meaning, escaped or not
        ("https://e.com/?q=a%26b%3Dc&r=a+b", "https://e.com/?q=a%26b%3Dc&r=a+b"),
        ("https://e.com/?q=%e2%82%ac %7e", "https://e.com/?q=%E2%82%AC%20~"),
    ],
)
def test_normalise_percent_encoding(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://e.com/?b=2&a=1", "https://e.com/?a=1&b=2"),
        # stable: repeated keys keep their relative order
        ("https://e.com/?b=1&a=2&b=0&a=1", "https://e.com/?a=2&a=1&b=1&b=0"),
        # empty pieces dropped, valueless keys kept
        ("https://e.com/?&b&&a=", "https://e.com/?a=&b"),
    ],
)
def test_normalise_sorts_query(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://e.com/a?utm_source=rss&utm_medium=feed&utm_campaign=x&id=7",
        "https://e.com/a?UTM_Source=rss&id=7&fbclid=IwAR0",
        "https://e.com/a?id=7&gclid=1&dclid=2&msclkid=3&mc_cid=4&mc_eid=5&igshid=6&yclid=7",
        "https://e.com/a?_ga=2.1&id=7&ref_src=twsrc&spm=a.b.c",
        "https://e.com/a?utm%5Fsource=escaped&id=7",
    ],
)
def test_normalise_drops_tracking_params(url: str) -> None:
    assert normalise_url(url) == "https://e.com/a?id=7"


def test_normalise_drop_params_hook() -> None:
    url = "https://e.com/a?sessionid=9&id=7&utm_source=x"
    assert (
        normalise_url(url, drop_params=lambda name: name == "sessionid") == "https://e.com/a?id=7"
    )


def test_normalise_leaves_unparseable_urls_alone() -> None:
    assert normalise_url(" http://[::1/x ") == "http://[::1/x"


def test_normalise_other_schemes_keep_their_shape() -> None:
    assert normalise_url("FILE:///etc/Hosts") == "file:///etc/Hosts"
    assert normalise_url("mailto:A@B.example") == "mailto:A@B.example"


# --- tracking vocabulary --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["utm_source", "utm_anything", "UTM_TERM", "fbclid", "gclid", "_ga"]
)
def test_is_tracking_param_true(name: str) -> None:
    assert is_tracking_param(name)


@pytest.mark.parametrize("name", ["id", "p", "page", "q", "utm", "ref", "source"])
def test_is_tracking_param_false(name: str) -> None:
    assert not is_tracking_param(name)


def test_tracking_params_are_lower_case() -> None:
    assert all(name == name.lower() for name in TRACKING_PARAMS)


# --- normalise_url: properties --------------------------------------------------------------------

_hosts = st.sampled_from(
    [
        "example.com",
        "EXAMPLE.com",
        "www.example.com.",
        "bücher.example",
        "ÄÖÜ.de",
        "例え.テスト",
        "127.0.0.1",
        "[::1]",
        "[2001:DB8::A]",
        "xn--bcher-kva.example",
        "a-b.c-d.example",
    ]
)
_ports = st.sampled_from(["", ":80", ":443", ":8080", ":0443", ":"])
# Path and query text: URL-ish characters, escapes (valid and broken), dot segments, unicode.
_url_chars = st.sampled_from(
    [*"abcXYZ019-._~!$&'()*+,;=:@/?% []{}|\\^`\"<>", "%2e", "%2F", "%7e", "%c3%a9", "é", "€"]
)
_segment = st.one_of(
    st.sampled_from([".", "..", "", "%2E", "%2e%2E"]),
    st.lists(_url_chars, max_size=6).map("".join),
)
_paths = st.lists(_segment, max_size=5).map(lambda segs: "/" + "/".join(segs) if segs else "")
_param_names = st.one_of(
    st.sampled_from(sorted(TRACKING_PARAMS)),
    st.sampled_from(["utm_source", "UTM_Medium", "utm_x", "id", "page", "q", "a", "b", "b"]),
    st.text("abcxyz_%2", min_size=1, max_size=5),
)
_params = st.tuples(_param_names, st.lists(_url_chars, max_size=4).map("".join)).map(
    lambda kv: f"{kv[0]}={kv[1]}"
)
_queries = st.one_of(
    st.just(""),
    st.lists(_params, max_size=5).map(lambda ps: "?" + "&".join(ps)),
)
_fragments = st.one_of(st.just(""), st.text(max_size=8).map(lambda t: "#" + t))


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "HtTpS"]))
    host = draw(_hosts)
    return f"{scheme}://{host}{draw(_ports)}{draw(_paths)}{draw(_queries)}{draw(_fragments)}"


@given(urls())
@example("http://example.com/a/%2e%2E/b?utm_source=1#x")
@example("http://é../x")
def test_normalise_is_idempotent(url: str) -> None:
    once = normalise_url(url)
    assert normalise_url(once) == once


@given(st.text(max_size=40))
def test_normalise_is_idempotent_on_any_text(tail: str) -> None:
    for url in (f"https://example.com/{tail}", tail):
        once = normalise_url(url)
        assert normalise_url(once) == once


@given(urls())
def test_tracking_params_never_survive(url: str) -> None:
    query = urlsplit(normalise_url(url)).query
    assert not any(is_tracking_param(name) for name, _ in parse_qsl(query, keep_blank_values=True))


@given(urls())
def test_fragment_never_survives(url: str) -> None:
    assert "#" not in normalise_url(url)


@given(urls())
def test_normalised_scheme_and_host_are_lower_case_ascii(url: str) -> None:
    parts = urlsplit(normalise_url(url))
    assert parts.scheme in ("http", "https")
    assert parts.netloc == parts.netloc.lower()
    assert parts.netloc.isascii()
    assert parts.path.startswith("/")


# --- host_key and same_site -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Example.COM./a", "example.com"),
        ("http://example.com:80/", "example.com"),
        ("https://example.com:80/", "example.com:80"),
        ("https://user@Bücher.example:8443/", "xn--bcher-kva.example:8443"),
        ("https://straße.de/", "xn--strae-oqa.de"),  # not "strasse.de": another host
        ("https://ΣΟΦΟΣ.gr/", "xn--0xaakcn.gr"),
        ("https://ｅｘａｍｐｌｅ.com/", "example.com"),  # UTS #46 maps fullwidth letters
        ("https://a_b.example/", "a_b.example"),  # ASCII names as written (httpx does the same)
        ("https://☃.net/", "☃.net"),  # not a valid IDN: kept as written, httpx refuses it
        ("not a url", ""),
    ],
)
def test_host_key(url: str, expected: str) -> None:
    assert host_key(url) == expected


@pytest.mark.parametrize(
    "host", ["straße.de", "faß.example", "ΣΟΦΟΣ.gr", "Bücher.example.", "例え.テスト", "ÖBB.at"]
)
def test_host_key_is_the_host_httpx_connects_to(host: str) -> None:
    sent = httpx.URL(f"https://{host}/x").raw_host.decode("ascii").rstrip(".")
    assert host_key(f"https://{host}/x") == sent


def test_host_key_without_port() -> None:
    assert host_key("https://Bücher.example:8443/", port=False) == "xn--bcher-kva.example"
    assert host_key("http://[::1]:8080/", port=False) == "[::1]"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("https://example.com/a", "http://EXAMPLE.com./b", True),
        ("https://www.example.com/a", "https://example.com/", True),
        ("https://example.com/", "https://www.example.com/", True),
        # limitation, documented: other subdomains are other sites
        ("https://blog.example.com/", "https://example.com/", False),
        ("https://www.blog.example.com/", "https://www.example.com/", False),
        ("https://a.github.io/", "https://b.github.io/", False),
        ("https://example.com/", "https://example.org/", False),
        ("https://example.com:8080/", "https://example.com/", False),
        ("mailto:x@example.com", "https://example.com/", False),
    ],
)
def test_same_site(a: str, b: str, expected: bool) -> None:
    assert same_site(a, b) is expected


# --- resolve --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/post/1", "https://example.com/post/1"),
        ("../up", "https://example.com/up"),
        ("next", "https://example.com/blog/next"),
        ("?page=2", "https://example.com/blog/index?page=2"),
        ("//cdn.example.net/x", "https://cdn.example.net/x"),
        ("HTTP://Other.example/a", "HTTP://Other.example/a"),
        ("  /spaced\n ", "https://example.com/spaced"),
        ("#comments", None),
        ("", None),
        ("   ", None),
        ("javascript:void(0)", None),
        (" JavaScript:alert(1)", None),
        ("mailto:a@example.com", None),
        ("tel:+4912345", None),
        ("data:text/html,hi", None),
        ("ftp://example.com/file", None),
        ("http://[::1", None),
        ("http:///nohost", None),
    ],
)
def test_resolve(href: str, expected: str | None) -> None:
    assert resolve("https://example.com/blog/index", href) == expected


# -- AMP variants and operator-configured tracking parameters (issue 5) --------------------------


@pytest.mark.parametrize(
    ("url", "regular"),
    [
        ("https://e.com/story/amp/", "https://e.com/story/"),
        ("https://e.com/story/amp", "https://e.com/story"),
        ("https://e.com/story?amp=1", "https://e.com/story"),
        ("https://e.com/story?amp&b=2", "https://e.com/story?b=2"),
        ("https://e.com/story?outputType=amp", "https://e.com/story"),
        ("https://e.com/amp/", "https://e.com/amp/"),  # a section named "amp", not a variant
        ("https://e.com/amp/story", "https://e.com/amp/story"),  # unsure: left to rel=canonical
        ("https://amp.e.com/story", "https://amp.e.com/story"),
        ("https://e.com/amplifier-review", "https://e.com/amplifier-review"),
    ],
)
def test_amp_to_regular(url: str, regular: str) -> None:
    assert amp_to_regular(url) == regular


def test_param_dropper_names_and_prefixes() -> None:
    drop = param_dropper(["Ref", "src_*"])
    url = "https://e.com/a?ref=x&src_a=1&SRC_b=2&srcx=3&utm_medium=y&id=4"
    assert normalise_url(url, drop_params=drop) == "https://e.com/a?id=4&srcx=3"
    assert param_dropper([]) is None and param_dropper(["  "]) is None


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_=&?/:.%", max_size=40))
def test_normalising_with_extra_params_is_idempotent(tail: str) -> None:
    drop = param_dropper(["ref", "x_*"])
    once = normalise_url("https://e.com/" + tail, drop_params=drop)
    assert normalise_url(once, drop_params=drop) == once
