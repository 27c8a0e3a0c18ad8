"""worker.fetch.decode.decode_html: BOM, then agreeing labels, then detection, then windows-1252."""

from __future__ import annotations

import codecs

import pytest

from worker.fetch.decode import decode_html

RUSSIAN = "Новости дня: правительство объявило о новых мерах поддержки"
FRENCH = "Café crème à la carte: «déjà vu» – naïve façade, señor Müller’s œuvre"


def page(title: str, body: str = "", head: str = "") -> str:
    return f"<html><head>{head}<title>{title}</title></head><body><p>{body}</p></body></html>"


def test_cp1251_labelled_utf8_the_bytes_win():  # bad input 2
    body = page(RUSSIAN, RUSSIAN * 3).encode("cp1251")
    text, encoding = decode_html(body, "text/html; charset=utf-8")
    assert encoding == "cp1251"
    assert f"<title>{RUSSIAN}</title>" in text


def test_cp1251_labelled_utf8_in_meta_too():
    html = page(RUSSIAN, RUSSIAN, head='<meta charset="utf-8">')
    text, encoding = decode_html(html.encode("cp1251"), "text/html; charset=UTF-8")
    assert (encoding, RUSSIAN in text) == ("cp1251", True)


def test_cp1252_without_any_label_falls_back_to_windows_1252():  # bad input 3
    body = page(FRENCH, FRENCH).encode("cp1252")
    text, encoding = decode_html(body, "text/html")
    assert encoding == "cp1252"
    assert f"<title>{FRENCH}</title>" in text


def test_cp1252_undefined_bytes_never_crash():
    body = page("x\x81\x8d\x8f\x90\x9dy").encode("latin-1")
    text, encoding = decode_html(body, None)
    assert "<title>" in text
    assert encoding


@pytest.mark.parametrize(
    ("bom_codec", "label"),
    [
        ("utf-8-sig", "text/html; charset=iso-8859-1"),
        ("utf-16", "text/html; charset=utf-8"),
        ("utf-16-be", "text/html; charset=windows-1251"),
        ("utf-16-le", None),
    ],
)
def test_bom_wins_over_every_label(bom_codec: str, label: str | None):  # bad input 34
    html = page(RUSSIAN + " " + FRENCH, head='<meta charset="iso-8859-1">')
    body = html.encode(bom_codec)
    if bom_codec == "utf-16-be":
        body = codecs.BOM_UTF16_BE + body
    elif bom_codec == "utf-16-le":
        body = codecs.BOM_UTF16_LE + body
    text, encoding = decode_html(body, label)
    assert text == html
    assert encoding.startswith("utf-")


def test_http_label_used_when_the_bytes_agree():
    body = page(RUSSIAN).encode("koi8-r")
    text, encoding = decode_html(body, 'text/html; charset="KOI8-R"')
    assert (encoding, RUSSIAN in text) == ("koi8-r", True)


def test_meta_charset_used_when_http_says_nothing():
    html = page(RUSSIAN, head='<meta charset="windows-1251">')
    text, encoding = decode_html(html.encode("cp1251"), "text/html")
    assert (encoding, RUSSIAN in text) == ("cp1251", True)


def test_meta_http_equiv():
    head = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
    text, encoding = decode_html(page(RUSSIAN, head=head).encode("cp1251"), None)
    assert (encoding, RUSSIAN in text) == ("cp1251", True)


def test_latin1_label_means_windows_1252():
    text, encoding = decode_html(
        page("“quoted” – dash").encode("cp1252"), "text/html; charset=latin1"
    )
    assert encoding == "cp1252"
    assert "“quoted” – dash" in text


def test_utf8_bytes_labelled_latin1_are_utf8():
    text, encoding = decode_html(page(FRENCH).encode("utf-8"), "text/html; charset=ISO-8859-1")
    assert (encoding, FRENCH in text) == ("utf-8", True)


def test_utf8_page_with_one_stray_byte_keeps_its_label():
    body = page(FRENCH * 20).encode("utf-8") + b"\xff"
    text, encoding = decode_html(body, "text/html; charset=utf-8")
    assert encoding == "utf-8"
    assert FRENCH in text
    assert text.endswith("\ufffd")


def test_detection_finds_cyrillic_without_labels():
    text, encoding = decode_html(page(RUSSIAN, RUSSIAN * 3).encode("cp1251"), None)
    assert (encoding, RUSSIAN in text) == ("cp1251", True)


def test_utf7_label_is_never_honoured():
    body = page("+ADw-script+AD4-").encode("ascii")
    text, encoding = decode_html(body, "text/html; charset=utf-7")
    assert encoding != "utf-7"
    assert "+ADw-script+AD4-" in text


@pytest.mark.parametrize("label", ["text/html; charset=nonsense", "text/html; charset=", ""])
def test_unknown_labels_are_ignored(label: str):
    text, encoding = decode_html(page(FRENCH).encode("utf-8"), label)
    assert (encoding, FRENCH in text) == ("utf-8", True)


def test_garbage_bytes_never_crash():
    text, encoding = decode_html(bytes(range(256)) * 20, "text/html; charset=utf-8")
    assert isinstance(text, str)
    assert encoding
