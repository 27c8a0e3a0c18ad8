"""The operator's `include`/`exclude` URL regexes, matched in linear time (pure).

The patterns come from the config, but the URLs they run over come from the sites: with Python's
backtracking `re`, `(\\w+-?)*\\.html$` took 2.7 s on one 24-character path, and a longer path
doubles that with every character. So patterns are compiled with RE2 (`google-re2`), which
never backtracks: matching is linear in the URL, whatever the pattern. Screens also refuse URLs
longer than `worker.urls.MAX_URL_LENGTH` before any pattern sees them.

RE2 reads Python's syntax except for what needs backtracking: lookahead and lookbehind
(`(?=`, `(?!`, `(?<=`, `(?<!`), backreferences (`\\1`, `(?P=name)`), atomic groups and
possessive quantifiers, and `\\Z` (RE2 spells it `\\z`). A pattern using them is refused when the
config loads, with the reason and what to write instead; `$` is the usual end anchor, and a
"must not match" is an `exclude` pattern. `\\w`, `\\d` and `\\b` are ASCII in RE2, as normalised
URLs are (anything else in them is percent-encoded).

`has_nested_quantifier` finds the shape that makes backtracking engines blow up (a repeated group
holding a repetition), for `feedworker check` to warn about: harmless here, but a sign of a
pattern broader than meant, and a trap when the same pattern is used elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

import re2

__all__ = ["UrlMatcher", "compile_url_pattern", "has_nested_quantifier"]

# Python syntax RE2 refuses, and what to write instead (the first that appears is named).
_UNSUPPORTED = (
    (("(?=", "(?!", "(?<=", "(?<!"), "lookahead and lookbehind are not supported (URLs are "
     "matched without backtracking): say what must match in `include`, what must not in `exclude`"),
    (("(?P=",), "backreferences are not supported"),
    (("(?>",), "atomic groups are not supported (nor needed: matching never backtracks)"),
    (("*+", "++", "?+", "}+"), "possessive quantifiers are not supported (nor needed: matching "
     "never backtracks)"),
    (("\\Z",), "write \\z (or $) for the end of the URL"),
)  # fmt: skip
_BACKREFERENCE = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")


class UrlMatcher(Protocol):
    """What the screens need of a pattern: an RE2 regex, or a Python one in tests."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str, /) -> object: ...


def compile_url_pattern(pattern: str) -> UrlMatcher:
    """`pattern` compiled for matching URLs in linear time; ValueError saying why when it cannot
    be (bad syntax, or a feature only a backtracking engine has)."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refusal on stderr
    try:
        compiled: UrlMatcher = re2.compile(pattern, options)
    except re2.error as exc:
        raise ValueError(_refusal(pattern, exc)) from None
    return compiled


def _refusal(pattern: str, exc: Exception) -> str:
    try:
        re.compile(pattern)
    except re.error as python_error:  # plain bad syntax: Python's message says where
        return str(python_error)
    except RecursionError:
        return "nested too deeply"
    for spellings, advice in _UNSUPPORTED:
        if any(spelling in pattern for spelling in spellings):
            return advice
    if _BACKREFERENCE.search(pattern):
        return "backreferences are not supported"
    reason = exc.args[0] if exc.args else exc
    text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return f"not supported by the linear-time matcher (RE2): {text}"


def has_nested_quantifier(pattern: str) -> bool:
    """Whether a repeated part of `pattern` holds a repetition of varying length (`(\\w+-?)*`,
    `(a{1,9})+`): the shape that takes exponential time in backtracking engines."""
    try:
        tree = re._parser.parse(pattern)  # type: ignore[attr-defined]
    except (re.error, RecursionError):
        return False
    return _nested(tree, inside_repeat=False)


_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


def _nested(items: Iterable[tuple[object, Any]], *, inside_repeat: bool) -> bool:
    """Walk the parse tree of Python's `re` (opcode, argument pairs) for a varying repetition
    inside a repetition."""
    for opcode, argument in items:
        name = str(opcode)
        if name in _REPEATS:
            low, high, body = argument
            if inside_repeat and high != low:
                return True
            if _nested(body, inside_repeat=inside_repeat or high > 1):
                return True
        elif name in ("SUBPATTERN", "ATOMIC_GROUP", "ASSERT", "ASSERT_NOT"):
            body = argument[-1] if isinstance(argument, tuple) else argument
            if _nested(body, inside_repeat=inside_repeat):
                return True
        elif name == "BRANCH" and any(_nested(b, inside_repeat=inside_repeat) for b in argument[1]):
            return True
    return False
