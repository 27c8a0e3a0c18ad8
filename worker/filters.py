"""Item filters: a source's `keep` and `drop` rules, judged on each item (pure).

    drop = [{ title = "sponsored" }, { category = ["Deals", "Gossip"] }]
    keep = [{ content = "re:\\bpython\\s*3\\.1[0-9]\\b" }]

A rule names one or more of an item's fields (`FILTER_FIELDS`) and, for each, a pattern: a word
or phrase, or a list of them (any may match), each matched case-insensitively as whole words
("Sale" matches "Summer sale!" but not "Wholesale"); or, written `re:...`, a regular expression
searched anywhere in the field. A rule with several fields matches when all of them do.

An item is published when it matches one of the `keep` rules (or there are none) and none of the
`drop` rules; otherwise it is stored as filtered, with the reason (`ItemFilters.judge`), so it
never comes back as new and the source page can show why it is missing.

Safeguards, as for `include`/`exclude` (`worker.urlpattern`): regexes are compiled with RE2,
which never backtracks, so matching is linear in the text whatever the pattern, and a pattern RE2
cannot run is refused when the config loads. Word lists are escaped literals. Only the first
`MAX_FILTER_CHARS` characters of a field are matched, so a huge article costs a bounded time.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from worker.extract.sanitize import html_to_text
from worker.models import Article, Item
from worker.urlpattern import UrlMatcher, compile_url_pattern

__all__ = [
    "FILTER_FIELDS",
    "MAX_FILTER_CHARS",
    "FieldPattern",
    "FilterRule",
    "FilterSubject",
    "ItemFilters",
    "parse_rules",
]

# The item fields a rule can name (a list field matches when any of its values does).
FILTER_FIELDS = ("title", "content", "author", "category", "url")
REGEX_PREFIX = "re:"
# Characters of one field a rule looks at: a long article is about 50,000 characters, and what
# decides whether to publish it (a "Sponsored" label, a topic) is near its start anyway.
MAX_FILTER_CHARS = 100_000
MAX_PATTERNS_PER_FIELD = 200  # a word list longer than this is a blocklist in the wrong place
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class FieldPattern:
    """One field of a rule and what it must contain."""

    field: str
    written: tuple[str, ...]  # the entries as the operator wrote them (for reasons and digests)
    words: re.Pattern[str] | None  # the plain entries, as one whole-word alternation
    regexes: tuple[tuple[str, UrlMatcher], ...]  # (as written, compiled) for `re:` entries

    def match(self, values: Sequence[str]) -> str | None:
        """The entry that matched one of `values` (as written), or None."""
        for value in values:
            text = value[:MAX_FILTER_CHARS]
            if self.words is not None:
                found = self.words.search(text)
                if found is not None:
                    return self._entry_for(found.group(0))
            for written, regex in self.regexes:
                if regex.search(text) is not None:
                    return written
        return None

    def _entry_for(self, matched: str) -> str:
        folded = " ".join(matched.split()).casefold()
        plain = (entry for entry in self.written if not entry.startswith(REGEX_PREFIX))
        return next((e for e in plain if " ".join(e.split()).casefold() == folded), matched)


@dataclass(frozen=True, slots=True)
class FilterRule:
    """One `keep` or `drop` rule: every field pattern must match."""

    patterns: tuple[FieldPattern, ...]

    def match(self, subject: FilterSubject) -> str | None:
        """What matched, for a reason ("title 'sponsored'"), or None when the rule does not."""
        found = []
        for pattern in self.patterns:
            entry = pattern.match(subject.values(pattern.field))
            if entry is None:
                return None
            found.append(f"{pattern.field} {entry!r}")
        return " and ".join(found)

    def written(self) -> dict[str, list[str]]:
        return {p.field: list(p.written) for p in self.patterns}


@dataclass(frozen=True, slots=True)
class FilterSubject:
    """What the rules look at in an item: its fields as plain text."""

    title: str
    content: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    url: str

    @classmethod
    def of_article(cls, article: Article, url: str) -> FilterSubject:
        return cls(article.title, article.body_text, article.authors, article.categories, url)

    @classmethod
    def of_item(cls, item: Item) -> FilterSubject:
        """A stored item: its body's text read from its (sanitised) HTML."""
        content = html_text(item.content_html)
        return cls(item.title, content, item.authors, item.categories, item.url)

    def values(self, field: str) -> tuple[str, ...]:
        if field == "author":
            return self.authors
        if field == "category":
            return self.categories
        return (str(getattr(self, field)),)


@dataclass(frozen=True, slots=True)
class ItemFilters:
    """A source's rules; `judge` says why an item is filtered, or None to publish it."""

    keep: tuple[FilterRule, ...] = ()
    drop: tuple[FilterRule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keep or self.drop)

    def judge(self, subject: FilterSubject) -> str | None:
        if self.keep and not any(rule.match(subject) is not None for rule in self.keep):
            return "matches no keep rule"
        for number, rule in enumerate(self.drop, start=1):
            found = rule.match(subject)
            if found is not None:
                return f"drop rule {number}: {found}"
        return None

    @property
    def digest(self) -> str:
        """Changes when the rules do; "" without rules (so a source that never had any needs no
        stored digest)."""
        if not self:
            return ""
        rules = {
            "keep": [rule.written() for rule in self.keep],
            "drop": [rule.written() for rule in self.drop],
        }
        text = json.dumps(rules, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def html_text(html: str) -> str:
    """The text of a stored item's (sanitised) body, as extraction made its `body_text`; only
    its start is read, as much as the rules can look at."""
    text: str = html_to_text(html[: 4 * MAX_FILTER_CHARS])
    return text


# -- reading the config ------------------------------------------------------------------------


def parse_rules(value: object, name: str = "rules") -> tuple[FilterRule, ...]:
    """`keep` or `drop` as written in a source (an inline table or an array of them) -> rules;
    ValueError naming the rule and field for anything that cannot be used."""
    if isinstance(value, FilterRule):
        return (value,)
    entries = [value] if isinstance(value, Mapping) else value
    if not isinstance(entries, list | tuple):
        raise ValueError(
            f'expected an array of rules like [{{ title = "sponsored" }}], got {_kind(value)}'
        )
    rules = []
    for number, entry in enumerate(entries, start=1):
        if isinstance(entry, FilterRule):
            rules.append(entry)
            continue
        try:
            rules.append(_parse_rule(entry))
        except ValueError as exc:
            raise ValueError(f"{name} rule {number}: {exc}") from None
    return tuple(rules)


def _parse_rule(entry: object) -> FilterRule:
    if not isinstance(entry, Mapping) or not entry:
        raise ValueError(
            'expected a table naming a field and a pattern, e.g. { title = "sponsored" }, got '
            + _kind(entry)
        )
    patterns = []
    for field, spec in entry.items():
        if field not in FILTER_FIELDS:
            close = difflib.get_close_matches(str(field), FILTER_FIELDS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown field {field!r}; {hint}fields: {', '.join(FILTER_FIELDS)}")
        patterns.append(_parse_pattern(str(field), spec))
    return FilterRule(tuple(patterns))


def _parse_pattern(field: str, spec: object) -> FieldPattern:
    entries = [spec] if isinstance(spec, str) else spec
    if not isinstance(entries, list | tuple) or not entries:
        raise ValueError(f"{field}: expected a word, a list of words or 're:<regex>'")
    if len(entries) > MAX_PATTERNS_PER_FIELD:
        raise ValueError(f"{field}: at most {MAX_PATTERNS_PER_FIELD} entries")
    words: list[str] = []
    regexes: list[tuple[str, UrlMatcher]] = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"{field}: each entry is a non-empty string, got {_kind(entry)}")
        if entry.startswith(REGEX_PREFIX):
            regexes.append((entry, _compile_regex(field, entry[len(REGEX_PREFIX) :])))
        else:
            words.append(entry)
    return FieldPattern(field, tuple(entries), _word_pattern(words), tuple(regexes))


def _compile_regex(field: str, pattern: str) -> UrlMatcher:
    if not pattern:
        raise ValueError(f"{field}: empty regex after 're:'")
    try:
        return compile_url_pattern("(?i)" + pattern)  # RE2: linear time, case-insensitive
    except ValueError as exc:
        raise ValueError(f"{field}: bad regular expression {pattern!r}: {exc}") from None
    except (RecursionError, OverflowError):
        raise ValueError(f"{field}: regular expression {pattern!r} is nested too deeply") from None


def _word_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """One case-insensitive, whole-word alternation of escaped literals (a phrase's words may be
    separated by any whitespace): no quantifier of the operator's, so no backtracking to fear.
    Python's `re`, not RE2, because RE2's word boundaries are ASCII-only ("Übersicht")."""
    if not words:
        return None
    phrases = [r"\s+".join(map(re.escape, _SPACES.split(word.strip()))) for word in words]
    longest_first = sorted(set(phrases), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(longest_first) + r")(?!\w)", re.IGNORECASE)


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__
