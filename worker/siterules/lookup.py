"""Host -> rule set, in the format's lookup order (pure).

A file is named after the host it serves, without a scheme: `example.com.txt` serves
`example.com` and `www.example.com`; `.example.com.txt` serves every subdomain of
`example.com` (`news.example.com`, `a.b.example.com`) but not `example.com` itself, nor its
`www.`; `news.example.com.txt` serves that host only. For a host the names are tried from the
most specific: the host itself, the host without `www.`, then `.parent` for each parent domain
walking up (never a bare top-level domain such as `.com`).

Folders are searched in the operator's order, each one whole before the next, so a file in the
operator's own folder wins over any file of a shared collection, even a more specific one.
`global.txt` is used only when the operator enables it: it is appended to the host's rules
(its expressions tried after the host's own), or used alone for hosts without a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from worker.siterules.parse import RuleProblem, RuleSet
from worker.urls import host_key

__all__ = ["GLOBAL", "RuleFolder", "RuleLibrary", "candidate_names", "is_rule_name"]

GLOBAL = "global"  # global.txt
# A rule file's name without `.txt`: a host name (two labels or more of these characters), or
# one with a leading dot (its subdomains).
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def is_rule_name(name: str) -> bool:
    """True for "example.com", ".example.com" and "global"; False for "LICENSE" and the like."""
    if name == GLOBAL:
        return True
    labels = name.removeprefix(".").split(".")
    return len(labels) >= 2 and all(label and _LABEL_CHARS.issuperset(label) for label in labels)


def candidate_names(host: str) -> tuple[str, ...]:
    """The rule names that may serve `host` (lower-case, punycode, no port), most specific first."""
    host = host.lower().rstrip(".")
    if not host or not is_rule_name(host):
        return ()
    names = [host]
    bare = host.removeprefix("www.")
    if bare != host:
        names.append(bare)
    labels = bare.split(".")
    if labels[-1].isdigit():  # an IPv4 address has no parent domains
        return tuple(names)
    # Parents of the bare host: ".example.com" for "news.example.com", and for "www.example.com"
    # nothing below ".com" (the wildcard never serves the domain itself or its www.).
    for start in range(1, len(labels) - 1):
        names.append("." + ".".join(labels[start:]))
    return tuple(names)


@dataclass(frozen=True, slots=True)
class RuleFolder:
    """The rule files of one folder, by name."""

    path: str
    rules: Mapping[str, RuleSet] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class RuleLibrary:
    """Every configured folder's rules, searched in order. `digest` changes when any file read
    changes (it is part of the config's digest)."""

    folders: tuple[RuleFolder, ...] = ()
    use_global: bool = False
    problems: tuple[RuleProblem, ...] = ()
    digest: str = ""

    def __bool__(self) -> bool:
        return any(folder.rules for folder in self.folders)

    @property
    def files(self) -> int:
        return sum(len(folder.rules) for folder in self.folders)

    def named(self, name: str) -> RuleSet | None:
        """The rule file called `name` ("example.com") in the first folder that has one."""
        for folder in self.folders:
            if (rules := folder.rules.get(name)) is not None:
                return rules
        return None

    def for_host(self, host: str) -> RuleSet | None:
        """The rules for `host`, merged with `global.txt` when enabled; None when none apply."""
        names = candidate_names(host)
        found = next(
            (f.rules[n] for f in self.folders for n in names if n in f.rules and n != GLOBAL),
            None,
        )
        fallback = self.named(GLOBAL) if self.use_global else None
        if found is None or fallback is None:
            return found or fallback
        return found.merged_with(fallback)

    def for_url(self, url: str) -> RuleSet | None:
        return self.for_host(host_key(url, port=False))

    def all_rules(self) -> list[RuleSet]:
        """Every rule file that lookups can reach, by name (a name shadowed by an earlier
        folder's file is left out)."""
        seen: dict[str, RuleSet] = {}
        for folder in self.folders:
            for name, rules in folder.rules.items():
                seen.setdefault(name, rules)
        return [seen[name] for name in sorted(seen)]


EMPTY_LIBRARY = RuleLibrary()
