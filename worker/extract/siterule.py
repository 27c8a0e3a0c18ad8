"""The hook between site rules (`worker.siterules`) and the extractor.

`ExtractOptions.site_rules` is the `RuleSet` for the page's host, handed over as data (the
extractor reads no files). With it, `extract` does, in order:

1. `rule_page`: the rule's replacements and strips are applied to the page (lxml), and its
   title, author, date, native-ad clue and links read (`worker.siterules.apply`). Everything
   after reads the page as the rule left it, automatic extraction included;
2. `ruled_metadata`: the rule's title, authors and date win over the page's own metadata;
3. `ruled_body` picks the body by precedence: the operator's own `body` selector; the rule's
   body (`rule_body`: rendered as an operator's container is, with the format's `prune: yes`,
   the default, dropping link-dense and labelled blocks inside it), unless `looks_worse` finds
   it worse than automatic extraction of the page without the rule (`check_rules`); automatic
   extraction of the page as the rule left it, when the rule's body matched nothing, unless
   the file says `autodetect_on_failure: no` (`RuleMissed`);
4. `rule_trace`: what the rule did, for `Article.site_rule`; `next_page_link`: the article's
   next page, from the rule or (when asked) from the page's own pagination.

Sanitising still runs last, on whatever body won.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.errors import ExtractError
from worker.extract import body as body_mod
from worker.extract.htmlparse import FlatHtml, flatten_nesting, parse_flat
from worker.extract.meta import Metadata, parse_date
from worker.extract.multipage import pagination_link
from worker.models import Method, RuleTrace
from worker.publish.xmlchars import xml_safe

if TYPE_CHECKING:  # lxml is imported only by processes that apply rules
    from worker.extract.article import ExtractOptions
    from worker.siterules import RuleResult, RuleSet

__all__ = [
    "RuleMissed",
    "RuledPage",
    "looks_worse",
    "next_page_link",
    "rule_body",
    "rule_page",
    "rule_trace",
    "ruled_body",
    "ruled_metadata",
]

# `prune: yes` cleans the rule's body as the scoring extractor cleans its pick (link-dense and
# labelled blocks); it does not drop blocks by class or id (the rule chose its container).
PRUNE = body_mod.Preset(strip_noise=False, weight_hints=False, clean=True)
KEEP_ALL = body_mod.Preset(strip_noise=False, weight_hints=False, clean=False)
# `looks_worse`: the thresholds, from the extraction benchmark's pages with rule files.
PROSE_SHARE = 0.5  # as a retry's body must read (body.RETRY_PROSE_SHARE)
CONTAINED = 0.9  # share of one body's text found in the other's lines: "holds it"
EXTRA_SHARE = 0.02  # text the rule's body adds, as a share of it, before its links matter
EXTRA_LINK_LINES = 1 / 3  # share of the added lines that are mostly a link: a teaser list
# A rule's body under this share of the automatic one's, and inside it, is narrow: a teaser or
# summary box left matching after a redesign (a third: automatic extraction's siblings may
# double an article, a rule that leaves them out is right).
NARROW_SHARE = 1 / 3


class RuleMissed(ExtractError):
    """A rule's `body` matched nothing and its file says `autodetect_on_failure: no`."""

    def __init__(self, message: str, trace: RuleTrace) -> None:
        super().__init__(message)
        self.trace = trace


@dataclass(frozen=True, slots=True)
class RuledPage:
    """A page as a rule set left it, and what the rule set found on it."""

    page: FlatHtml
    url: str
    result: RuleResult
    rules: RuleSet


def rule_page(page: FlatHtml, url: str, rules: RuleSet | None) -> RuledPage | None:
    """Apply `rules` to the (flattened) page; None without rules."""
    if rules is None:
        return None
    from worker.siterules.apply import apply_rules

    result = apply_rules(page, url, rules)
    # lxml's output nests no deeper than its input, which was flat already.
    return RuledPage(FlatHtml(result.html), url, result, rules)


def ruled_metadata(meta: Metadata, ruled: RuledPage | None) -> Metadata:
    """The rule's title, authors and date over the page's own."""
    if ruled is None:
        return meta
    found = ruled.result
    published = parse_date(found.date) if found.date else None
    return replace(
        meta,
        title=xml_safe(found.title) or meta.title,
        authors=tuple(xml_safe(a) for a in found.authors) or meta.authors,
        published=published or meta.published,
    )


class FindBody(Protocol):
    """`worker.extract.article.find_body`: the operator's selector, else automatic extraction."""

    def __call__(
        self,
        tree: LexborHTMLParser,
        html: FlatHtml,
        meta: Metadata,
        options: ExtractOptions,
        junk: list[LexborNode] | None,
    ) -> tuple[body_mod.Body, Method]: ...


def ruled_body(
    ruled: RuledPage,
    tree: LexborHTMLParser,
    junk: list[LexborNode] | None,
    original: FlatHtml,
    meta: Metadata,
    options: ExtractOptions,
    find_body: FindBody,
) -> tuple[body_mod.Body, Method, RuleTrace]:
    """The body to publish, its path, and the rule's trace, by precedence: the operator's
    `body` selector; the rule's body, unless (with `options.check_rules`) it looks worse than
    automatic extraction of the page without the rule; automatic extraction of the page as
    the rule left it. `tree` (with its `junk`) is the ruled page parsed; `original` the page
    before the rule."""
    picked = rule_body(ruled, meta.title, options.remove, options.boilerplate)
    if picked is None or options.body:
        found, method = find_body(tree, ruled.page, meta, options, junk)
        if method == "selector":
            return (
                found,
                method,
                rule_trace(ruled, used=False, note="the source's body selector won"),
            )
        if picked is None:
            _fallback_allowed(ruled)
            return found, method, rule_trace(ruled, used=False)
    automatic = replace(options, body=None)
    auto, method = find_body(parse_flat(original), original, meta, automatic, None)
    reason = looks_worse(picked, auto) if options.check_rules else ""
    if reason:
        return auto, method, rule_trace(ruled, used=False, note=reason)
    # The page's own blocks (rule or not) feed template learning, and every lookup counts.
    picked = replace(picked, fingerprints=auto.fingerprints, checked=picked.checked | auto.checked)
    return picked, "rule", rule_trace(ruled, used=True)


def _fallback_allowed(ruled: RuledPage) -> None:
    """Raise `RuleMissed` when the rule's body found nothing and its file forbids falling back."""
    if ruled.rules.body and not ruled.rules.autodetects:
        raise RuleMissed(
            f"{ruled.url}: site rule {ruled.rules.name}: body matched nothing"
            " (autodetect_on_failure: no)",
            rule_trace(ruled, used=False),
        )


def rule_body(
    ruled: RuledPage, title: str, remove: tuple[str, ...], boilerplate: frozenset[str]
) -> body_mod.Body | None:
    """The rule's body rendered as an operator's container is; None when the rule has no body,
    or it holds no text."""
    fragment = ruled.result.body_html
    if fragment is None:
        return None
    tree = parse_flat(flatten_nesting(f"<body><div>{fragment}</div></body>"))
    preset = PRUNE if ruled.rules.prunes else KEEP_ALL
    body_mod.prepare_tree(tree, remove, preset, body_mod.Hints())
    if tree.body is None:
        return None
    picked = body_mod.render_content([tree.body], preset, title, boilerplate, ())
    return picked if picked.text else None


def looks_worse(rule: body_mod.Body, auto: body_mod.Body) -> str:
    """Why the rule's body looks worse than automatic extraction's, or "" when it does not.

    Rules age: a site redesign can leave a rule's expression matching a teaser box, a list of
    related links or a paywall notice. Three signs, each measured on the extraction benchmark's
    pages with rule files (docs/site-rules.md), none of them needing to know the page:
    - it reads less like an article: fewer of its lines are sentences (`PROSE_SHARE`), where
      automatic extraction's do;
    - it holds automatic extraction's text and adds lines to it (`EXTRA_SHARE` of its text or
      more), many of them links (`EXTRA_LINK_LINES`): related stories, teasers, "read more";
    - it holds only a small part (`NARROW_SHARE`) of the prose automatic extraction found.
    """
    rule_prose, auto_prose = prose_share(rule.text), prose_share(auto.text)
    if rule_prose < PROSE_SHARE <= auto_prose:
        return (
            f"automatic extraction kept: {rule_prose:.0%} of the rule's body reads as sentences,"
            f" {auto_prose:.0%} of automatic extraction's"
        )
    rule_lines, auto_lines = _lines(rule.text), _lines(auto.text)
    extra = [line for line in rule_lines if line not in auto_lines]
    extra_chars = sum(len(line) for line in extra)
    if (
        _share_in(auto_lines, rule_lines) >= CONTAINED
        and extra_chars >= EXTRA_SHARE * len(rule.text)
        and (linked := _link_lines(extra, rule.fragment())) >= EXTRA_LINK_LINES
    ):
        return (
            f"automatic extraction kept: the rule's body adds {len(extra)} lines to it,"
            f" {linked:.0%} of them links (related stories, teasers)"
        )
    missing = [line for line in auto_lines if line not in rule_lines]
    if (
        _share_in(rule_lines, auto_lines) >= CONTAINED
        and len(rule.text) < NARROW_SHARE * len(auto.text)
        and prose_share("\n".join(missing)) >= PROSE_SHARE
    ):
        return (
            f"automatic extraction kept: the rule's body holds {len(rule.text):,} characters,"
            f" {len(rule.text) / len(auto.text):.0%} of the article automatic extraction found"
        )
    return ""


def prose_share(text: str) -> float:
    """The share of `text` in lines that read as sentences."""
    lines = text.split("\n")
    prose = sum(len(line) for line in lines if body_mod.is_sentence_line(line))
    return prose / len(text) if text else 0.0


def _lines(text: str) -> dict[str, None]:
    return dict.fromkeys(line for line in text.split("\n") if line)


def _share_in(lines: dict[str, None], other: dict[str, None]) -> float:
    """The share of `lines`' characters in lines that `other` has too."""
    total = sum(len(line) for line in lines)
    shared = sum(len(line) for line in lines if line in other)
    return shared / total if total else 0.0


def _link_lines(lines: list[str], fragment: str) -> float:
    """The share of `lines` that are mostly link text in `fragment` (a headline of a teaser, a
    "read more"): a line holding a link's text counts its characters as linked."""
    tree = parse_flat(flatten_nesting(fragment))
    links = {text for node in tree.css("a") if (text := " ".join(node.text().split()))}
    linked = sum(1 for line in lines if sum(len(t) for t in links if t in line) > len(line) / 2)
    return linked / len(lines) if lines else 0.0


def rule_trace(ruled: RuledPage, *, used: bool, note: str = "") -> RuleTrace:
    """What the rule did; its body counts as missed when it was not used and no `note` says why
    (it matched nothing, or nothing with text)."""
    found = ruled.result
    missed = found.missed
    if ruled.rules.body and not used and not note and "body" not in missed:
        missed = (*missed, "body")
    return RuleTrace(
        name=ruled.rules.name,
        path=ruled.rules.path,
        matched=found.matched,
        missed=missed,
        body_used=used,
        native_ad=found.native_ad,
        note=note,
    )


def next_page_link(
    tree: LexborHTMLParser, url: str, ruled: RuledPage | None, paginated: bool, page_number: int
) -> str | None:
    """The article's next page: the rule's `next_page_link`, else (when the source asks for
    it) the page's own pagination link to page `page_number + 1`. Read before extraction
    changes `tree`."""
    if ruled is not None and ruled.rules.next_page_link:
        return ruled.result.next_page
    return pagination_link(tree, url, page_number) if paginated else None
