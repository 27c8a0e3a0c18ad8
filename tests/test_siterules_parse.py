"""Reading FiveFilters' site-config format: every directive, its problems with their lines, and
(when the shared snapshot is on this machine) every upstream file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker.siterules import LinkRule, Replacement, RuleTest, parse_rules
from worker.siterules.load import MAX_RULE_FILE_BYTES, load_rule_folders, read_rule_file

SNAPSHOT = Path(
    os.environ.get("FEEDWORKER_FTR_SITE_CONFIG")
    or Path(__file__).resolve().parents[1].parent / "shared" / "ftr-site-config"
)
if not SNAPSHOT.is_dir():  # a worktree sits one level deeper than the main checkout
    SNAPSHOT = Path(__file__).resolve().parents[3] / "shared" / "ftr-site-config"

FULL = """\
# A comment, then every directive feedworker applies.
title: //h1[@class='headline']
title: //meta[@property='og:title']/@content
body: //div[@id='story']
body: //article
author: //span[@class='byline']
date: //time/@datetime
strip: //div[@class='share']
strip_id_or_class: promo
strip_image_src: pixel.gif
strip_attr: //img/@srcset
native_ad_clue: //meta[@name='sponsored']
single_page_link: //a[@class='print']
if_page_contains: //div[@class='paged']
next_page_link: //a[@rel='next']
prune: no
autodetect_on_failure: no
find_string: <amp-img
replace_string: <img
replace_string(<b>Ad:</b>): <b></b>
http_header(User-Agent): Mozilla/5.0 (X11; Linux x86_64)
http_header(referer): https://example.com/
tidy: no
login_uri: https://example.com/login
test_url: https://example.com/story/1
test_contains: the first snippet
test_contains: the second snippet
test_url: https://example.com/story/2
"""


def test_every_directive_is_read() -> None:
    rules = parse_rules(FULL, "example.com", "rules/example.com.txt")
    assert rules.problems == ()
    assert rules.title == ("//h1[@class='headline']", "//meta[@property='og:title']/@content")
    assert rules.body == ("//div[@id='story']", "//article")
    assert rules.author == ("//span[@class='byline']",)
    assert rules.date == ("//time/@datetime",)
    assert rules.strip == ("//div[@class='share']",)
    assert rules.strip_id_or_class == ("promo",)
    assert rules.strip_image_src == ("pixel.gif",)
    assert rules.strip_attr == ("//img/@srcset",)
    assert rules.native_ad_clue == ("//meta[@name='sponsored']",)
    assert rules.single_page_link == (LinkRule("//a[@class='print']", "//div[@class='paged']"),)
    assert rules.next_page_link == (LinkRule("//a[@rel='next']"),)
    assert rules.prune is False and rules.prunes is False
    assert rules.autodetect_on_failure is False and rules.autodetects is False
    assert rules.replacements == (
        Replacement("<amp-img", "<img"),
        Replacement("<b>Ad:</b>", "<b></b>"),
    )
    assert rules.headers == (
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("referer", "https://example.com/"),
    )
    assert rules.tests == (
        RuleTest("https://example.com/story/1", ("the first snippet", "the second snippet")),
        RuleTest("https://example.com/story/2"),
    )
    assert rules.ignored == ("tidy", "login_uri")


def test_defaults_when_a_file_says_nothing() -> None:
    rules = parse_rules("# only a comment\n\n", "example.com")
    assert rules.prunes and rules.autodetects and rules.body == () and rules.problems == ()


def test_argument_holding_a_colon_and_spacing_variants() -> None:
    text = (
        'replace_string(,"value":): ,"other":\nbody://div[@id="a"]\nprune:YES\n  title :  //h1  \n'
    )
    rules = parse_rules(text, "example.com")
    assert rules.replacements == (Replacement(',"value":', ',"other":'),)
    assert rules.body == ('//div[@id="a"]',) and rules.prune is True and rules.title == ("//h1",)


def test_replacements_keep_file_order_across_both_forms() -> None:
    text = "replace_string(a): b\nfind_string: c\nreplace_string: d\nreplace_string(e): f\n"
    rules = parse_rules(text, "example.com")
    assert [r.find for r in rules.replacements] == ["a", "c", "e"]


def test_problems_name_their_line_and_the_rest_of_the_file_is_used() -> None:
    text = "\n".join(
        [
            "titl: //h1",  # 1: a typo
            "body: //div[",  # 2: bad XPath
            "body: //article",  # 3: fine
            "this line is prose",  # 4: not a directive
            "prune: maybe",  # 5
            "find_string: <x",  # 6: never replaced
            "test_contains: orphan",  # 7: no test_url yet
            "if_page_contains: //div",  # 8: follows no link directive
            "strip: php:function('x')",  # 9: compiles, cannot run (undefined prefix)
            "http_header(): nothing",  # 10
            "test_url: ftp://example.com/",  # 11
            "strip_id_or_class:",  # 12
        ]
    )
    rules = parse_rules(text, "example.com", "f.txt")
    lines = {p.line: p.message for p in rules.problems}
    assert sorted(lines) == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert "unknown directive 'titl'" in lines[1]
    assert "bad XPath" in lines[2] and "expected yes or no" in lines[5]
    assert "without a replace_string" in lines[6]
    assert str(rules.problems[0]) == "f.txt:1: unknown directive 'titl'"
    assert rules.body == ("//article",) and rules.strip == ()


def test_unreadable_and_oversized_and_non_utf8_files(tmp_path: Path) -> None:
    big = tmp_path / "big.example.com.txt"
    big.write_bytes(b"# x\n" * (MAX_RULE_FILE_BYTES // 4 + 1))
    _, rules = read_rule_file(big)
    assert rules.problems and "bytes" in rules.problems[0].message and rules.problems[0].line == 0
    latin = tmp_path / "latin.example.com.txt"
    latin.write_bytes(b"body: //article\ntitle: //h1[.='caf\xe9']\n")
    _, rules = read_rule_file(latin)
    assert rules.body == ("//article",)
    assert [(p.line, "UTF-8" in p.message) for p in rules.problems] == [(2, True)]


def test_folder_loading_skips_non_rule_files_and_reports_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "example.com.txt").write_text("body: //article\n")
    (tmp_path / ".example.org.txt").write_text("bodyy: //article\n")
    (tmp_path / "LICENSE.txt").write_text("These files are released to the public domain.\n")
    (tmp_path / "README.md").write_text("# readme\n")
    library = load_rule_folders([tmp_path])
    assert sorted(library.folders[0].rules) == [".example.org", "example.com"]
    assert [p.line for p in library.problems] == [1]
    assert library.problems[0].file.endswith(".example.org.txt")


@pytest.mark.skipif(
    not SNAPSHOT.is_dir(),
    reason=f"SKIPPED: no ftr-site-config snapshot at {SNAPSHOT} (set FEEDWORKER_FTR_SITE_CONFIG)",
)
def test_every_upstream_file_parses_or_reports_its_lines() -> None:
    """The shared snapshot (about 2,000 files): every file loads, and every line not used is
    reported with its file and line; nearly all of them are used."""
    library = load_rule_folders([SNAPSHOT])
    files = library.files
    assert files > 1500
    for problem in library.problems:
        assert problem.line > 0 and problem.file.endswith(".txt"), problem
    print(f"\n{files} rule files, {len(library.problems)} lines not used:")
    for problem in library.problems:
        print(f"  {problem}")
    assert len({p.file for p in library.problems}) < files / 100
    with_body = sum(bool(rules.body) for rules in library.all_rules())
    assert with_body > 1500  # the issue counts about 1,770 files setting body
