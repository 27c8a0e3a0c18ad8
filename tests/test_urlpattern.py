"""The operator's include/exclude regexes run over sites' URLs in linear time (issue 16).

`(\\w+-?)*\\.html$` took 2.7 s with Python's `re` on one 24-character path, and doubled with each
character more. Patterns are compiled with RE2; URLs over `MAX_URL_LENGTH` are refused before
any pattern runs; what RE2 cannot do is a config error naming file, source and field; and
`feedworker check` warns about nested quantifiers.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.test_e2e import write_config
from worker.cli import main
from worker.config import load_config
from worker.errors import ConfigError
from worker.listing.discover import UrlScreen, discover_links
from worker.urlpattern import compile_url_pattern, has_nested_quantifier
from worker.urls import MAX_URL_LENGTH

HOSTILE = r"(\w+-?)*\.html$"


def cpu(call: object) -> float:
    start = time.process_time()
    call()  # type: ignore[operator]
    return time.process_time() - start


def test_the_pattern_that_took_seconds_is_matched_in_linear_time() -> None:
    pattern = compile_url_pattern(HOSTILE)
    path = "https://e.test/" + "a" * 24 + "!"  # 24 characters of path: 2.7 s with Python's re
    assert cpu(lambda: pattern.search(path)) < 0.1
    long = "https://e.test/" + "a-" * (MAX_URL_LENGTH // 2 - 10)  # as long as a URL screened
    assert cpu(lambda: [pattern.search(long + tail) for tail in ("x", "x.htm", "!")]) < 0.5
    assert pattern.search("https://e.test/news/some-story.html")
    assert not pattern.search("https://e.test/news/some-story.html?x")


def test_python_re_is_the_engine_that_stalls() -> None:
    """The reason for RE2, measured: each character more doubles Python's work."""
    pattern = re.compile(HOSTILE)
    short = cpu(lambda: pattern.search("https://e.test/" + "a" * 14 + "!"))
    longer = cpu(lambda: pattern.search("https://e.test/" + "a" * 19 + "!"))  # 32 times the work
    assert longer > 8 * short


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        (r"/\d{4}/\d{2}/", "https://e.test/2024/05/x", "https://e.test/blog/x"),
        (r"(?i)/TAG/", "https://e.test/tag/x", "https://e.test/tags-x"),
        (
            r"^https://e\.test/(news|blog)/[a-z0-9-]+/?$",
            "https://e.test/news/a-b/",
            "https://e.test/news/a/b",
        ),
        (r"\.html?$", "https://e.test/a.htm", "https://e.test/a.html.gz"),
        (r"[?&]id=\d+\b", "https://e.test/a?id=42", "https://e.test/a?id=x"),
        (r"/p/(?P<slug>[\w-]+)$", "https://e.test/p/a_b-c", "https://e.test/p/a/b"),
        (r"\bvideo\b", "https://e.test/video/1", "https://e.test/videos/1"),
    ],
)
def test_what_operators_write_means_the_same(pattern: str, matches: str, misses: str) -> None:
    compiled = compile_url_pattern(pattern)
    assert compiled.search(matches) and re.search(pattern, matches)
    assert not compiled.search(misses) and not re.search(pattern, misses)


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"^(?!.*/video/)", "lookahead and lookbehind are not supported"),
        (r"(?<=/)news", "lookahead and lookbehind are not supported"),
        (r"/(\w+)/\1/", "backreferences are not supported"),
        (r"/(?P<a>\w+)/(?P=a)/", "backreferences are not supported"),
        (r"(?>a+)b", "atomic groups are not supported"),
        (r"a++b", "possessive quantifiers are not supported"),
        (r"/news/\Z", r"write \z (or $)"),
        (r"/post/(\d+", "missing ), unterminated subpattern"),
        (r"a{1001}", "not supported by the linear-time matcher (RE2): invalid repetition size"),
    ],
)
def test_unsupported_patterns_are_config_errors_naming_file_source_and_field(
    tmp_path: Path, pattern: str, says: str
) -> None:
    source = (
        f"[[source]]\nid = \"blog\"\nurl = \"https://e.test/\"\nexclude = ['/ok/', '{pattern}']\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, source))
    (problem,) = caught.value.problems
    assert (problem.file, problem.source, problem.field) == (
        "config/sources.toml",
        "blog",
        "exclude",
    )
    assert says in problem.message and repr(pattern) in problem.message


def test_screens_refuse_an_overlong_url_before_any_pattern_sees_it() -> None:
    class Counting:
        pattern = "counting"
        calls = 0

        def search(self, text: str) -> object:
            Counting.calls += 1
            return True

    patterns = (Counting(),)
    long = "https://e.test/" + "a" * MAX_URL_LENGTH
    screen = UrlScreen("https://e.test/", same_site_only=False, include=patterns, exclude=patterns)
    assert screen.reason(long).startswith("URL too long")
    page = f'<html><body><a href="{long}">A long story title here</a></body></html>'
    found = discover_links(page, "https://e.test/", include=patterns, exclude=patterns)
    assert [d.reason for d in found.decisions] == [
        f"URL too long (over {MAX_URL_LENGTH} characters)"
    ]
    assert Counting.calls == 0
    assert screen.reason("https://e.test/a").startswith("excluded")


@pytest.mark.parametrize(
    ("pattern", "nested"),
    [
        (HOSTILE, True),
        (r"(a{1,9})+", True),
        (r"(.*)*", True),
        (r"^/(?:[a-z]+/)+$", True),
        (r"/\d{4}/\d{2}/", False),
        (r"(?:\d{4}/)*x", False),  # a fixed-length repetition repeated: no two ways to split
        (r"(a|b)+", False),
        (r"[a-z]+\.html", False),
    ],
)
def test_nested_quantifiers_are_recognised(pattern: str, nested: bool) -> None:
    assert has_nested_quantifier(pattern) is nested


def test_check_warns_about_nested_quantifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = (
        f'[[source]]\nid = "blog"\nurl = "https://e.test/"\n'
        f"include = ['{HOSTILE}', '/20\\d\\d/']\nexclude = '/tag/'\n"
    )
    config_dir = write_config(tmp_path, source)
    assert main(["check", "--config", str(config_dir)]) == 0
    out = capsys.readouterr().out
    (warning,) = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warning.startswith("warning: config/sources.toml: source 'blog': include: ")
    assert f"'{HOSTILE}'" in warning and "repetition inside a repetition" in warning
