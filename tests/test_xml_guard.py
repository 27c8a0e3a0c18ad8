"""One XML-bomb guard for sitemaps and feeds, in any encoding (issue 16).

A UTF-16 sitemap with an internal DTD passed the old byte check for `<!DOCTYPE` (ASCII bytes),
and ElementTree expanded its entities: a 4 MiB sitemap became a 334 MiB URL. A sitemap declaring
UTF-16-LE raised a bare ValueError. Now a document is decoded as an XML parser would, its prolog
is read by expat with handlers that refuse a DTD of its own, and the parsers read exactly the
UTF-8 text that was checked.
"""

from __future__ import annotations

import asyncio
import codecs

import pytest
import respx

from worker.errors import ListingError
from worker.fetch.client import Fetcher, FetchOptions
from worker.listing.feedsource import parse_feed
from worker.listing.lister import ListingOptions, list_articles
from worker.listing.sitemap import MAX_ENTRIES, parse_sitemap
from worker.listing.xmldoc import decode_xml, guard_xml
from worker.urls import MAX_URL_LENGTH

ORIGIN = "https://bomb.example.test"
LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
    + "".join(
        f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(8)
    )  # b = 10 a, c = 10 b, ... i = 10^8 a: 4.8 GB of text
    + "]>"
)
SITEMAP = (
    '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
    "<url><loc>https://bomb.example.test/&i;</loc></url></urlset>"
)
FEED = (
    '<rss version="2.0"><channel><title>&i;</title>'
    "<item><title>&i;</title><link>https://bomb.example.test/a</link></item></channel></rss>"
)
# (codec for the bytes, byte order mark or none, what the declaration says)
ENCODINGS = [
    ("utf-8", b"", "UTF-8"),
    ("utf-8", codecs.BOM_UTF8, "UTF-8"),
    ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16"),
    ("utf-16-be", codecs.BOM_UTF16_BE, "UTF-16"),
    ("utf-16-le", b"", "UTF-16LE"),
    ("utf-16-be", b"", "UTF-16BE"),
    ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16-LE"),  # the spelling that raised ValueError
    ("utf-32-le", codecs.BOM_UTF32_LE, "UTF-32"),
]
ENCODING_IDS = [f"{codec}{'-bom' if bom else ''}-declares-{said}" for codec, bom, said in ENCODINGS]


def document(body: str, codec: str, bom: bytes, declared: str, prolog: str = LAUGHS) -> bytes:
    text = f'<?xml version="1.0" encoding="{declared}"?>\n{prolog}\n{body}'
    return bom + text.encode(codec)


@pytest.mark.parametrize(("codec", "bom", "declared"), ENCODINGS, ids=ENCODING_IDS)
def test_sitemap_entity_bomb_is_refused_in_every_encoding(
    codec: str, bom: bytes, declared: str
) -> None:
    with pytest.raises(ListingError, match="sitemap declares a DTD of its own"):
        parse_sitemap(document(SITEMAP, codec, bom, declared))


@pytest.mark.parametrize(("codec", "bom", "declared"), ENCODINGS, ids=ENCODING_IDS)
def test_feed_entity_bomb_is_refused_in_every_encoding(
    codec: str, bom: bytes, declared: str
) -> None:
    with pytest.raises(ListingError, match="feed declares a DTD of its own"):
        parse_feed(document(FEED, codec, bom, declared), f"{ORIGIN}/feed")


@pytest.mark.parametrize(("codec", "bom", "declared"), ENCODINGS, ids=ENCODING_IDS)
def test_the_same_documents_without_the_dtd_are_read(codec: str, bom: bytes, declared: str) -> None:
    sitemap = parse_sitemap(document(SITEMAP.replace("&i;", "ok"), codec, bom, declared, ""))
    assert [e.url for e in sitemap.entries] == [f"{ORIGIN}/ok"]
    feed = parse_feed(document(FEED.replace("&i;", "Héllo"), codec, bom, declared, ""), ORIGIN)
    assert feed.title == "Héllo" and [e.info.title for e in feed.entries] == ["Héllo"]


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE r [<!ENTITY big "' + "x" * 1000 + '">]>',  # one flat entity, used many times
        '<!DOCTYPE r [<!ATTLIST url a CDATA "' + "x" * 1000 + '">]>',  # attribute defaults
        '<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd" [<!ENTITY % p SYSTEM "x">%p;]>',
        "<!-- a comment first -->\n<!DOCTYPE r [<!ENTITY a 'b'>]>",
        "<?pi first?>\x01<!DOCTYPE r [<!ENTITY a 'b'>]>",  # not even well-formed before it
    ],
    ids=["flat-entity", "attlist", "external-parameter-entity", "after-comment", "malformed"],
)
def test_any_dtd_of_its_own_is_refused_with_a_reason(prolog: str) -> None:
    for what, body in (("sitemap", SITEMAP), ("feed", FEED)):
        data = document(
            body.replace("&i;", "x"), "utf-16-le", codecs.BOM_UTF16_LE, "UTF-16", prolog
        )
        with pytest.raises(ListingError) as caught:
            guard_xml(data, what)
        assert str(caught.value) == f"{what} declares a DTD of its own (refused: entity expansion)"


def test_an_external_dtd_is_named_but_never_read() -> None:
    """RSS 0.91 feeds name Netscape's DTD: still read, and nothing is fetched (no network)."""
    prolog = (
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://my.netscape.com/publish/formats/rss-0.91.dtd">'
    )
    feed = parse_feed(document(FEED.replace("&i;", "Old"), "utf-8", b"", "UTF-8", prolog), ORIGIN)
    assert [e.url for e in feed.entries] == [f"{ORIGIN}/a"]


@pytest.mark.parametrize(
    ("data", "text"),
    [
        # An 8-bit document whose declaration says UTF-16: it cannot be (it was read as ASCII).
        ('<?xml version="1.0" encoding="UTF-16"?><r>é</r>'.encode(), "é"),
        # An unknown name, and a name Python knows that is no byte-compatible encoding.
        ('<?xml version="1.0" encoding="x-unknown"?><r>é</r>'.encode(), "é"),
        ('<?xml version="1.0" encoding="cp037"?><r>é</r>'.encode(), "é"),
        # UTF-16 without a mark that declares UTF-8: the bytes say otherwise.
        ('<?xml version="1.0" encoding="UTF-8"?><r>é</r>'.encode("utf-16-le"), "é"),
        # Declared UTF-8, written in windows-1252.
        ('<?xml version="1.0" encoding="UTF-8"?><r>é</r>'.encode("cp1252"), "é"),
        # A mark wins over the declaration.
        (
            codecs.BOM_UTF16_BE
            + '<?xml version="1.0" encoding="latin-1"?><r>é</r>'.encode("utf-16-be"),
            "é",
        ),
    ],
    ids=["8bit-says-utf16", "unknown", "ebcdic", "utf16-says-utf8", "cp1252-says-utf8", "bom-wins"],
)
def test_declared_encoding_mismatches_are_read_as_the_bytes_say(data: bytes, text: str) -> None:
    """As feedparser does for feeds: an encoding mistake never costs a whole document, and never
    surfaces as a bare ValueError or UnicodeError."""
    assert f"<r>{text}</r>" in decode_xml(data)
    assert guard_xml(data, "sitemap").startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    sitemap = data.replace(b"<r>", b"<urlset><url><loc>").replace(b"</r>", b"</loc></url></urlset>")
    sitemap = sitemap.replace("<r>".encode("utf-16-le"), "<urlset><url><loc>".encode("utf-16-le"))
    sitemap = sitemap.replace(
        "</r>".encode("utf-16-le"), "</loc></url></urlset>".encode("utf-16-le")
    )
    sitemap = sitemap.replace("<r>".encode("utf-16-be"), "<urlset><url><loc>".encode("utf-16-be"))
    sitemap = sitemap.replace(
        "</r>".encode("utf-16-be"), "</loc></url></urlset>".encode("utf-16-be")
    )
    assert [e.url for e in parse_sitemap(sitemap).entries] == [text]


def test_garbage_is_the_projects_error_never_a_bare_one() -> None:
    for data in (
        b"\xff\xfe<\x00u\x00r\x00",  # UTF-16 cut short
        b'<?xml version="1.0" encoding="UTF-16-LE"?>\x00\x00\x00',
        b"<urlset><url><loc>\xff\xfe\x00</loc>",
        codecs.BOM_UTF32_BE + b"\x00\x00\x00<",
    ):
        with pytest.raises(ListingError):
            parse_sitemap(data)
        with pytest.raises(ListingError):
            parse_feed(data, ORIGIN)


def test_a_url_over_the_length_limit_is_skipped_and_counted() -> None:
    long_url = f"{ORIGIN}/" + "a" * 5_000_000  # what the 334 MiB URL would have been, smaller
    urls = [f"{ORIGIN}/one", long_url, f"{ORIGIN}/" + "b" * (MAX_URL_LENGTH - 40)]
    body = "".join(f"<url><loc>{u}</loc><lastmod>2026-01-02</lastmod></url>" for u in urls)
    result = parse_sitemap(f"<urlset>{body}</urlset>".encode())
    assert [e.url for e in result.entries] == [urls[0], urls[2]]
    assert result.too_long == 1
    text = parse_sitemap("\n".join(urls).encode())
    assert [e.url for e in text.entries] == [urls[0], urls[2]] and text.too_long == 1


def test_entries_past_the_protocol_limit_are_not_read() -> None:
    body = "".join(f"<url><loc>{ORIGIN}/{n}</loc></url>" for n in range(MAX_ENTRIES + 5))
    result = parse_sitemap(f"<urlset>{body}</urlset>".encode())
    assert len(result.entries) == MAX_ENTRIES and result.unread


def listing_of(body: bytes) -> list[str]:
    async def go() -> list[str]:
        async with Fetcher(FetchOptions(user_agent="test", per_host_delay=0)) as fetcher:
            found = await list_articles(ListingOptions(url=f"{ORIGIN}/sitemap.xml"), fetcher)
            return [link.url for link in found.links]

    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{ORIGIN}/robots.txt").respond(404)
        mock.get(f"{ORIGIN}/sitemap.xml").respond(
            200, content=body, headers={"Content-Type": "application/xml"}
        )
        return asyncio.run(go())


def test_a_utf16_sitemap_is_told_and_read() -> None:
    sitemap = SITEMAP.replace("&i;", "story")
    assert listing_of(document(sitemap, "utf-16-le", codecs.BOM_UTF16_LE, "UTF-16-LE", "")) == [
        f"{ORIGIN}/story"
    ]


def test_listing_of_a_utf16_sitemap_bomb_fails_with_the_reason() -> None:
    with pytest.raises(ListingError, match="sitemap declares a DTD of its own"):
        listing_of(document(SITEMAP, "utf-16-le", codecs.BOM_UTF16_LE, "UTF-16"))
