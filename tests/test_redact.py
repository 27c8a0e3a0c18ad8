"""One redaction for URLs and text that leave the process: no userinfo, no secret values."""

from __future__ import annotations

import time

import pytest

from worker.redact import (
    MASK,
    is_secret_param,
    mask_values,
    redact_text,
    redact_url,
    strip_userinfo,
    url_secrets,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://alice:pa55word@example.com/feed", "https://example.com/feed"),
        ("https://alice@example.com:8443/x", "https://example.com:8443/x"),
        (
            "https://example.com/feed?token=abc123&page=2",
            f"https://example.com/feed?token={MASK}&page=2",
        ),
        (
            "https://example.com/?API_KEY=k&apikey=k2&key=k3",
            f"https://example.com/?API_KEY={MASK}&apikey={MASK}&key={MASK}",
        ),
        (
            "https://s3.example/o?X-Amz-Signature=ff&X-Amz-Credential=c&v=1",
            f"https://s3.example/o?X-Amz-Signature={MASK}&X-Amz-Credential={MASK}&v=1",
        ),
        (
            "https://example.com/cb#access_token=tok&state=1",
            f"https://example.com/cb#access_token={MASK}&state=1",
        ),
        (
            "https://example.com/a?sig=1;client_secret=2",
            f"https://example.com/a?sig={MASK};client_secret={MASK}",
        ),
        # Nothing secret: left exactly as written (no re-encoding, order kept).
        (
            "https://example.com/a?b=%20c&keyword=x&monkey=y",
            "https://example.com/a?b=%20c&keyword=x&monkey=y",
        ),
        ("https://example.com/path@not-userinfo", "https://example.com/path@not-userinfo"),
        (
            "postgresql://fw:dbpass@db/feedworker?password=p2",
            f"postgresql://db/feedworker?password={MASK}",
        ),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "name", ["token", "Token", "hub.secret", "my_api_token", "access_key", "private-key", "pass"]
)
def test_secret_names(name: str) -> None:
    assert is_secret_param(name)


@pytest.mark.parametrize("name", ["page", "keyword", "monkey", "id", "q", "utm_source", "sort"])
def test_plain_names(name: str) -> None:
    assert not is_secret_param(name)


def test_strip_userinfo_keeps_the_query() -> None:
    url = "https://u:p@example.com/a?token=1"
    assert strip_userinfo(url) == "https://example.com/a?token=1"


def test_url_secrets_as_written_and_decoded() -> None:
    url = "https://u:p%40ss@example.com/a?token=a%2Bb&page=2"
    assert set(url_secrets(url)) == {"p%40ss", "p@ss", "a%2Bb", "a+b"}
    assert url_secrets("https://example.com/?page=2") == ()


def test_mask_values_longest_first_and_not_too_short() -> None:
    text = "user hunter22 in hunter22secret; abc stays"
    masked = mask_values(text, ["hunter22", "hunter22secret", "abc"])
    assert masked == f"user {MASK} in {MASK}; abc stays"


def test_redact_text_finds_urls_in_prose() -> None:
    text = 'index page: https://u:pw@site.test/feed?apikey=SECRET-1: HTTP 404 ("see http://x.test/?sig=2")'
    shown = redact_text(text, ["SECRET-1"])
    assert ":pw@" not in shown
    assert "SECRET-1" not in shown and "sig=2" not in shown
    assert "https://site.test/feed?apikey=***" in shown


def test_redact_text_is_linear_on_hostile_text() -> None:
    """No backtracking: text made of almost-URLs costs time in proportion to its length."""
    hostile = "http:/" * 40_000 + "httpx" * 40_000 + "a" * 200_000
    started = time.process_time()
    redact_text(hostile)
    small = time.process_time() - started
    started = time.process_time()
    redact_text(hostile * 4)
    large = time.process_time() - started
    assert large < 4 * max(small, 0.001) * 5  # 4x the input, well under 20x the CPU
