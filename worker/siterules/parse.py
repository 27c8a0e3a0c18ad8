"""One site rule file (FiveFilters' `ftr-site-config` format) -> a frozen `RuleSet` (pure).

The format, as its README and help pages describe it: one directive a line, `name: value`;
lines starting with `#` and blank lines are comments. A few directives take an argument in
parentheses, `replace_string(find): replace` and `http_header(name): value`. Repeating a list
directive (`body`, `title`, `strip` ...) adds an alternative or another expression; a repeated
yes/no directive (`prune`, `autodetect_on_failure`) takes the last value.

- XPath 1.0 values (`body`, `title`, `author`, `date`, `strip`, `strip_attr`, `native_ad_clue`,
  `single_page_link`, `next_page_link`, `if_page_contains`) are compiled here once, so a broken
  expression is reported with its line and left out instead of failing on every page.
- `find_string: x` pairs with the `replace_string: y` of the same rank (the first with the
  first ...); `replace_string(x): y` is one pair on one line.
- `if_page_contains: XPath` conditions the link directive just before it.
- `test_url` starts a test, `test_contains` adds a snippet its page must hold.
- Directives of the format that feedworker does not apply (`tidy`, the `login_*` family,
  `wrap_in(...)`...) are remembered by name (`RuleSet.ignored`), not reported: they are valid.

Every problem comes with its line (`RuleProblem`), and never stops the rest of the file: a rule
set is whatever the file's good lines say.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

__all__ = [
    "IGNORED_DIRECTIVES",
    "LinkRule",
    "Replacement",
    "RuleProblem",
    "RuleSet",
    "RuleTest",
    "compile_xpath",
    "parse_rules",
]

# -- the directives, as data ---------------------------------------------------------------------
# Values that are XPath 1.0 expressions, one list each (in file order: the first that matches a
# page wins, except `strip`s and `native_ad_clue`s, which all apply).
XPATH_LISTS = (
    "title",
    "body",
    "author",
    "date",
    "strip",
    "strip_attr",
    "native_ad_clue",
)
# Values that are plain substrings (of an element's id or class, of an image's src).
TEXT_LISTS = ("strip_id_or_class", "strip_image_src")
LINK_DIRECTIVES = ("single_page_link", "next_page_link")
YES_NO = ("prune", "autodetect_on_failure")
# Part of the format, valid, but not applied by feedworker (page fix-ups for PHP's parser,
# logins, moving elements around). Listed so that they are not taken for typos.
IGNORED_DIRECTIVES = frozenset(
    {
        "tidy", "parser", "convert_double_br_tags", "dissolve", "footnotes",
        "insert_detected_image", "skip_json_ld", "strip_comments", "autodetect_next_page",
        "single_page_link_in_feed",
        "src_lazy_load_attr", "skip_id_or_class", "post_strip_attr", "wrap_in", "move_into",
        "requires_login", "not_logged_in_xpath", "login_uri", "login_username_field",
        "login_password_field", "login_extra_fields",
    }
)  # fmt: skip
# Spellings of yes and no seen in rule files.
_YES = frozenset({"yes", "true", "1", "on"})
_NO = frozenset({"no", "false", "0", "off"})
# `name: value` or `name(argument): value`; the argument ends at the first "):" (arguments hold
# ":" themselves, as in `replace_string(,"value":): ,"other":`).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a directive's name (spaces around it stripped)
MAX_XPATH_CHARS = 2000  # a longer "expression" is a pasted page, not a rule


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """A line of a rule file that could not be used, and why."""

    file: str
    line: int  # 1-based; 0 for the file as a whole
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.message}"
            if self.line
            else f"{self.file}: {self.message}"
        )


@dataclass(frozen=True, slots=True)
class Replacement:
    """`find_string`/`replace_string`: a plain-text replacement in the page's HTML."""

    find: str
    replace: str


@dataclass(frozen=True, slots=True)
class LinkRule:
    """`single_page_link` or `next_page_link`, used only when `if_page_contains` (when given)
    matches something on the page."""

    xpath: str
    if_page_contains: str | None = None


@dataclass(frozen=True, slots=True)
class RuleTest:
    """`test_url` and its `test_contains` snippets: the rule's canary (`feedworker rules test`)."""

    url: str
    contains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleSet:
    """What one rule file says. `name` is the file's name without `.txt` ("example.com",
    ".example.com", "global"); `path` where it was read. Empty tuples mean "not given"."""

    name: str
    path: str = ""
    title: tuple[str, ...] = ()
    body: tuple[str, ...] = ()
    author: tuple[str, ...] = ()
    date: tuple[str, ...] = ()
    strip: tuple[str, ...] = ()
    strip_id_or_class: tuple[str, ...] = ()
    strip_image_src: tuple[str, ...] = ()
    strip_attr: tuple[str, ...] = ()
    native_ad_clue: tuple[str, ...] = ()
    single_page_link: tuple[LinkRule, ...] = ()
    next_page_link: tuple[LinkRule, ...] = ()
    replacements: tuple[Replacement, ...] = ()
    prune: bool | None = None  # None: not said (the format's default is yes)
    autodetect_on_failure: bool | None = None  # None: not said (yes)
    tests: tuple[RuleTest, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # http_header(name): value, names lower-cased
    ignored: tuple[str, ...] = ()  # directives of the format feedworker does not apply
    problems: tuple[RuleProblem, ...] = field(default=(), compare=False)

    @property
    def prunes(self) -> bool:
        return self.prune is not False

    @property
    def autodetects(self) -> bool:
        """False when the file says `autodetect_on_failure: no`: no automatic fallback."""
        return self.autodetect_on_failure is not False

    def merged_with(self, fallback: RuleSet) -> RuleSet:
        """This rule set, then `fallback`'s expressions after its own (`global.txt`); yes/no
        values from `fallback` only where this one says nothing. Tests and headers stay ours."""
        lists = {
            name: getattr(self, name) + getattr(fallback, name)
            for name in (*XPATH_LISTS, *TEXT_LISTS, *LINK_DIRECTIVES, "replacements")
        }
        flags = {
            name: getattr(self, name)
            if getattr(self, name) is not None
            else getattr(fallback, name)
            for name in YES_NO
        }
        return RuleSet(
            name=self.name,
            path=self.path,
            tests=self.tests,
            headers=self.headers,
            ignored=self.ignored,
            problems=self.problems,
            **lists,
            **flags,
        )


@functools.lru_cache(maxsize=8192)
def compile_xpath(expression: str) -> etree.XPath:
    """The compiled expression (cached: a site's pages use the same few; compiling is pure, so
    the cache never changes a result). Raises `etree.XPathSyntaxError`."""
    return etree.XPath(expression, smart_strings=True)


# An empty document to evaluate each expression on once: catches what compiles but can never
# run (an undefined namespace prefix such as PHP's `php:function`).
_PROBE = etree.fromstring("<html><body/></html>")


def xpath_problem(expression: str) -> str | None:
    """Why `expression` is not a usable XPath 1.0 expression, or None."""
    if len(expression) > MAX_XPATH_CHARS:
        return f"XPath longer than {MAX_XPATH_CHARS} characters"
    try:
        compile_xpath(expression)(_PROBE)
    except etree.XPathError as exc:
        return f"bad XPath {expression!r}: {exc}"
    return None


class _Builder:
    """The state of one file's parse: lists being filled, and problems found."""

    def __init__(self, name: str, path: str) -> None:
        self.name, self.path = name, path
        self.lists: dict[str, list[Any]] = {
            n: [] for n in (*XPATH_LISTS, *TEXT_LISTS, *LINK_DIRECTIVES)
        }
        self.flags: dict[str, bool] = {}
        self.finds: list[tuple[int, str]] = []
        self.replaces: list[tuple[int, str]] = []
        self.pairs: list[tuple[int, Replacement]] = []  # one-line `replace_string(x): y`
        self.tests: list[RuleTest] = []
        self.headers: list[tuple[str, str]] = []
        self.ignored: dict[str, None] = {}
        self.problems: list[RuleProblem] = []
        self.last_link: str | None = None  # the link directive an `if_page_contains` refers to

    def problem(self, line: int, message: str) -> None:
        self.problems.append(RuleProblem(self.path or self.name, line, message))

    def add(self, number: int, name: str, argument: str | None, value: str) -> None:
        previous_link, self.last_link = self.last_link, None
        if argument is not None and name not in ("replace_string", "http_header"):
            if name in IGNORED_DIRECTIVES:  # wrap_in(tag), move_into(...)
                self.ignored[name] = None
                return
            self.problem(number, f"{name} takes no argument in parentheses")
            return
        if name in XPATH_LISTS or name in LINK_DIRECTIVES:
            self._xpath(number, name, value)
        elif name == "if_page_contains":
            self._condition(number, previous_link, value)
        elif name in TEXT_LISTS:
            self._text(number, name, value)
        elif name in YES_NO:
            self._flag(number, name, value)
        elif name == "find_string":
            self.finds.append((number, value))
        elif name == "replace_string":
            self._replace(number, argument, value)
        elif name == "test_url":
            self._test_url(number, value)
        elif name == "test_contains":
            self._test_contains(number, value)
        elif name == "http_header":
            self._header(number, argument, value)
        elif name in IGNORED_DIRECTIVES:
            self.ignored[name] = None
        else:
            self.problem(number, f"unknown directive {name!r}")

    def _xpath(self, number: int, name: str, value: str) -> None:
        if not value:
            self.problem(number, f"{name}: empty XPath")
            return
        if (why := xpath_problem(value)) is not None:
            self.problem(number, f"{name}: {why}")
            return
        if name in LINK_DIRECTIVES:
            self.lists[name].append(LinkRule(value))
            self.last_link = name
        else:
            self.lists[name].append(value)

    def _condition(self, number: int, link: str | None, value: str) -> None:
        if link is None:
            self.problem(
                number, "if_page_contains must follow a single_page_link or next_page_link"
            )
            return
        if (why := xpath_problem(value)) is not None:
            self.problem(number, f"if_page_contains: {why}")
            return
        rules = self.lists[link]
        rules[-1] = LinkRule(rules[-1].xpath, value)

    def _text(self, number: int, name: str, value: str) -> None:
        value = value.strip("'\"")  # a few files quote the value
        if value:
            self.lists[name].append(value)
        else:
            self.problem(number, f"{name}: empty value")

    def _flag(self, number: int, name: str, value: str) -> None:
        word = value.lower()
        if word in _YES or word in _NO:
            self.flags[name] = word in _YES
        else:
            self.problem(number, f"{name}: expected yes or no, got {value!r}")

    def _replace(self, number: int, argument: str | None, value: str) -> None:
        if argument is None:
            self.replaces.append((number, value))
        elif argument:
            self.pairs.append((number, Replacement(argument, value)))
        else:
            self.problem(number, "replace_string(): nothing to find")

    def _test_url(self, number: int, value: str) -> None:
        if value.lower().startswith(("http://", "https://")):
            self.tests.append(RuleTest(value))
        else:
            self.problem(number, f"test_url: expected an http(s) URL, got {value!r}")

    def _test_contains(self, number: int, value: str) -> None:
        if not self.tests:
            self.problem(number, "test_contains must follow a test_url")
        elif value:
            last = self.tests[-1]
            self.tests[-1] = RuleTest(last.url, (*last.contains, value))

    def _header(self, number: int, argument: str | None, value: str) -> None:
        if not argument or not re.fullmatch(r"[A-Za-z0-9-]+", argument.strip()):
            self.problem(
                number, f"http_header needs a header name, as in http_header(referer): {value}"
            )
        else:
            self.headers.append((argument.strip().lower(), value))

    def build(self) -> RuleSet:
        finds, replaces = self.finds, self.replaces
        for line, _ in finds[len(replaces) :]:
            self.problem(line, "find_string without a replace_string")
        for line, _ in replaces[len(finds) :]:
            self.problem(line, "replace_string without a find_string")
        # In file order: a pair counts from its replace_string's line.
        pairs = zip(finds, replaces, strict=False)  # the unpaired ones are reported above
        paired = [(line, Replacement(f, r)) for (_, f), (line, r) in pairs]
        replacements = tuple(r for _, r in sorted([*paired, *self.pairs], key=lambda p: p[0]))
        return RuleSet(
            name=self.name,
            path=self.path,
            **{name: tuple(values) for name, values in self.lists.items()},
            replacements=replacements,
            prune=self.flags.get("prune"),
            autodetect_on_failure=self.flags.get("autodetect_on_failure"),
            tests=tuple(self.tests),
            headers=tuple(self.headers),
            ignored=tuple(self.ignored),
            problems=tuple(self.problems),
        )


def parse_rules(text: str, name: str, path: str = "") -> RuleSet:
    """Parse one rule file's text. Never raises: lines that cannot be used become
    `RuleSet.problems`, each with its line number."""
    builder = _Builder(name, path)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parsed = _split(line)
        if parsed is None:
            builder.problem(number, f"not a directive (expected 'name: value'): {line[:60]!r}")
            continue
        directive, argument, value = parsed
        builder.add(number, directive.lower(), argument, value)
    return builder.build()


def _split(line: str) -> tuple[str, str | None, str] | None:
    """`name: value` -> (name, None, value); `name(arg): value` -> (name, arg, value)."""
    line = line.lstrip()
    match = _NAME.match(line)
    if match is None:
        return None
    name, rest = match.group(), line[match.end() :].lstrip()
    argument = None
    if rest.startswith("("):
        end = rest.find("):")
        if end < 0:
            return None
        argument, rest = rest[1:end], rest[end + 1 :]
    if not rest.startswith(":"):
        return None
    return name, argument, rest[1:].strip()
