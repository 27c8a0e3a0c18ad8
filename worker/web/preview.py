"""`/preview`: paste a URL and optional `links`, `body` and `remove` selectors; see which links
feedworker finds on the page, each with the reason it was kept or dropped, and the article it
extracts, beside the page's own title. The answer to "the selector works in my browser but not in
the tool": the page as feedworker receives it (no scripts run), judged by the same code.

Only with a `serve_token` (the route does not exist otherwise), since it fetches on request, and
only through the worker's own fetcher: robots.txt, the per-host politeness, the size and time
limits, and the SSRF guard on every hop, the pasted URL included (`preview_allow_private` lets
it reach loopback and private networks). At most `PREVIEW_SLOTS` previews run at once, each
within `PREVIEW_DEADLINE` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode, urlsplit

from selectolax.lexbor import LexborHTMLParser

from worker.config import Config, Settings, missing_scheme_hint
from worker.errors import ExtractError, FetchError
from worker.extract import ExtractOptions, describe_method, extract
from worker.fetch.client import DOCUMENT_TYPES, HTML_TYPES, Fetcher
from worker.listing.discover import LinkDecision, discover_links
from worker.listing.kinds import detect_kind
from worker.models import Article, NotModified, Page
from worker.redact import redact_text, redact_url
from worker.urls import param_dropper
from worker.web.page import esc, html_page

__all__ = ["PREVIEW_PATH", "PreviewForm", "PreviewResult", "Previewer", "render_preview_page"]

PREVIEW_PATH = "preview"
PREVIEW_DEADLINE = 45.0  # seconds: inside the server's one-minute answer deadline
PREVIEW_SLOTS = 2  # previews fetching at once; more wait
DECISIONS_SHOWN = 300  # links listed; a page with more says how many were left out
MAX_FIELD_CHARS = 2000  # of any form field


@dataclass(frozen=True, slots=True)
class PreviewForm:
    url: str = ""
    links: str = ""
    body: str = ""
    remove: str = ""
    article: str = ""  # the article page to extract (default: the first link kept)

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> PreviewForm:
        def value(name: str) -> str:
            return (params.get(name) or "").strip()[:MAX_FIELD_CHARS]

        return cls(value("url"), value("links"), value("body"), value("remove"), value("article"))

    def problems(self) -> list[str]:
        """What is wrong with the form, one line each (nothing is fetched then)."""
        found = []
        for name, url in (("URL", self.url), ("article", self.article)):
            if not url:
                continue
            hint = missing_scheme_hint(url)
            if hint:
                found.append(f"{name} {redact_url(url)!r} has no scheme; {hint}")
            elif urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                found.append(f"{name} {redact_url(url)!r}: only http and https URLs are previewed")
        for name, selector in (("links", self.links), ("body", self.body), ("remove", self.remove)):
            problem = _selector_problem(selector)
            if problem:
                found.append(f"{name}: {problem}")
        return found

    def query(self, **changes: str) -> str:
        """This form as a query string, with `changes`: for links to another article."""
        form = replace(self, **changes)
        fields = {k: getattr(form, k) for k in ("url", "links", "body", "remove", "article")}
        return urlencode({k: v for k, v in fields.items() if v})


@dataclass(slots=True)
class PreviewResult:
    """What the preview found; `error` says why it stopped short."""

    url: str
    final_url: str = ""
    kind: str = ""  # of the pasted URL: "index", "feed", "sitemap"
    page_title: str = ""
    decisions: list[LinkDecision] = field(default_factory=list)
    selector_matched: int | None = None
    article_url: str = ""
    article_page_title: str = ""
    article: Article | None = None
    article_error: str = ""
    error: str = ""

    @property
    def kept(self) -> list[LinkDecision]:
        return [d for d in self.decisions if d.kept]


class Previewer:
    """Runs previews with a fetcher the server shares with the worker (or its own)."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        self._slots = asyncio.Semaphore(PREVIEW_SLOTS)

    async def preview(self, form: PreviewForm, config: Config) -> PreviewResult:
        result = PreviewResult(form.url)
        async with self._slots:
            try:
                async with asyncio.timeout(PREVIEW_DEADLINE):
                    await self._run(form, config, result)
            except TimeoutError:
                result.error = f"the preview took longer than {PREVIEW_DEADLINE:g} s: stopped"
        secrets = config.secret_values
        result.error = redact_text(result.error, secrets)
        result.article_error = redact_text(result.article_error, secrets)
        return result

    async def _run(self, form: PreviewForm, config: Config, result: PreviewResult) -> None:
        settings = config.settings
        fetcher = self.fetcher.session()  # a cookie jar of its own, as a source's run has
        page = await _fetch(fetcher, form.url, settings, DOCUMENT_TYPES, result)
        if page is None:
            return
        result.final_url = page.final_url
        result.kind = detect_kind(page.content_type, _head(page)) or ""
        if result.kind != "index":
            result.error = (
                f"this is a {result.kind or page.content_type}, not an HTML page: selectors"
                " apply to HTML pages (`feedworker discover URL` lists a feed's or sitemap's"
                " entries)"
            )
            return
        found = await asyncio.to_thread(_discover, page, form, settings)
        if isinstance(found, str):
            result.error = found
            return
        result.page_title, result.decisions, result.selector_matched = found
        target = form.article or (result.kept[0].url if result.kept else page.final_url)
        result.article_url = target
        if target == page.final_url:
            article_page: Page | None = page
        else:
            article_page = await _fetch(fetcher, target, settings, HTML_TYPES, result)
        if article_page is None:
            result.article_error, result.error = result.error, ""
            return
        options = ExtractOptions(
            body=form.body or None,
            remove=(form.remove,) if form.remove else (),
            site_rules=config.site_rules.for_url(article_page.final_url),
            check_rules=settings.site_rules_check,
        )
        extracted = await asyncio.to_thread(_extract, article_page, options)
        if isinstance(extracted, str):
            result.article_error = extracted
        else:
            result.article_page_title, result.article = extracted


async def _fetch(
    fetcher: Fetcher,
    url: str,
    settings: Settings,
    accept: frozenset[str],
    result: PreviewResult,
) -> Page | None:
    """The page, fetched as for an untrusted URL (the guard on every hop, the pasted one too);
    None with `result.error` set when it cannot be."""
    try:
        page = await fetcher.fetch_page(
            url,
            allow_private=settings.preview_allow_private,
            trusted_origin=None,
            accept=accept,
        )
    except FetchError as exc:
        hint = ""
        if "blocked address" in exc.reason and not settings.preview_allow_private:
            hint = " (preview_allow_private = true lets the preview reach private networks)"
        result.error = f"{redact_url(url)}: {exc.reason}{hint}"
        return None
    if isinstance(page, NotModified):
        result.error = f"{redact_url(url)}: answered 304 to a plain request"
        return None
    return page


def _head(page: Page) -> bytes:
    if page.raw is not None:
        return page.raw.body[:2048]
    return page.body[:2048] if page.body else page.text[:2048].encode()


def _discover(
    page: Page, form: PreviewForm, settings: Settings
) -> tuple[str, list[LinkDecision], int | None] | str:
    """(the page's title, each link's decision, elements the selector matched), or why not."""
    text = page.text
    tree = LexborHTMLParser(text)
    try:
        found = discover_links(
            tree,
            page.final_url,
            selector=form.links or None,
            limit=settings.max_links_per_run,
            drop_params=param_dropper(settings.tracking_params),
        )
    except ValueError as exc:
        return str(exc)
    return _title(tree), list(found.decisions), found.selector_matched


def _extract(page: Page, options: ExtractOptions) -> tuple[str, Article] | str:
    try:
        article = extract(page.text, page.final_url, options)
    except ExtractError as exc:
        return f"no article extracted: {exc}"
    return _title(LexborHTMLParser(page.text)), article


def _title(tree: LexborHTMLParser) -> str:
    node = tree.css_first("title")
    return " ".join((node.text() if node is not None else "").split())


def _selector_problem(selector: str) -> str:
    if not selector:
        return ""
    try:
        LexborHTMLParser("<p></p>").css(selector)
    except Exception as exc:  # selectolax raises its own SelectolaxError (and ValueError)
        return f"invalid CSS selector {selector!r}: {exc}"
    return ""


# -- the page (pure) ---------------------------------------------------------------------------


def render_preview_page(
    form: PreviewForm,
    result: PreviewResult | None,
    problems: Sequence[str] = (),
    secrets: frozenset[str] = frozenset(),
) -> str:
    """The form, and what the preview found; every string from the page is escaped."""
    parts = [
        '<header><p class="meta"><a href="./">← all sources</a></p><h1>Preview</h1>'
        '<p class="meta">Paste a page\'s URL: see the links feedworker finds on it, with why each'
        " was kept or dropped, and the article it extracts. Fetched now, politely, as the worker"
        " fetches (no scripts run).</p></header>",
        _form(form),
    ]
    parts.extend(f'<p class="bad">{esc(problem)}</p>' for problem in problems)
    if result is not None:
        parts.append(_result(form, result, secrets))
    return html_page("Preview · feedworker", "\n".join(parts))


def _form(form: PreviewForm) -> str:
    def field_html(name: str, label: str, value: str, hint: str) -> str:
        return (
            f'<label for="{name}">{label} <span class="meta">{hint}</span></label>'
            f'<input id="{name}" name="{name}" value="{esc(value)}">'
        )

    return "".join(
        [
            f'<form method="get" action="{PREVIEW_PATH}" class="box">',
            field_html("url", "URL", form.url, "an index page, or an article"),
            field_html("links", "links", form.links, "CSS selector of the article links"),
            field_html("body", "body", form.body, "CSS selector of the article's body"),
            field_html("remove", "remove", form.remove, "CSS selector of parts to drop"),
            field_html("article", "article", form.article, "default: the first link kept"),
            "<button>Preview</button></form>",
        ]
    )


def _result(form: PreviewForm, result: PreviewResult, secrets: frozenset[str]) -> str:
    def shown(text: str) -> str:
        return esc(redact_text(text, secrets))

    head = [f'<p class="meta">{shown(result.final_url or result.url)}']
    if result.page_title:
        head.append(f" · page title: <strong>{esc(result.page_title)}</strong>")
    head.append("</p>")
    if result.error:
        head.append(f'<p class="bad">{shown(result.error)}</p>')
    if not result.decisions and not result.article_url:
        return "".join(head)
    return "".join(head) + (
        f'<div class="cols"><section>{_links_column(form, result, secrets)}</section>'
        f"<section>{_article_column(result, secrets)}</section></div>"
    )


def _links_column(form: PreviewForm, result: PreviewResult, secrets: frozenset[str]) -> str:
    kept = len(result.kept)
    matched = (
        f"; the selector matched {result.selector_matched} element(s)"
        if result.selector_matched is not None
        else " (found automatically: no links selector)"
    )
    lines = [
        f"<h2>Links: {kept} kept of {len(result.decisions)}</h2>",
        f'<p class="meta">{esc(matched.lstrip("; "))}</p><ul class="links">',
    ]
    for decision in result.decisions[:DECISIONS_SHOWN]:
        mark, css = ("✓", "kept") if decision.kept else ("✗", "dropped")
        url = redact_text(decision.url, secrets)
        extract_it = esc("?" + form.query(article=decision.url))
        title = f" {esc(decision.title)}" if decision.title else ""
        lines.append(
            f'<li class="{css}">{mark} <a href="{extract_it}" title="extract this page">'
            f"<code>{esc(url)}</code></a>{title} <em>({esc(decision.reason)})</em></li>"
        )
    lines.append("</ul>")
    if len(result.decisions) > DECISIONS_SHOWN:
        lines.append(f'<p class="meta">{len(result.decisions) - DECISIONS_SHOWN} more</p>')
    return "".join(lines)


def _article_column(result: PreviewResult, secrets: frozenset[str]) -> str:
    url = esc(redact_text(result.article_url, secrets))
    lines = ["<h2>Article</h2>", f'<p class="meta"><code>{url}</code></p>']
    if result.article_error:
        lines.append(f'<p class="bad">{esc(redact_text(result.article_error, secrets))}</p>')
    article = result.article
    if article is None:
        return "".join(lines)
    words = len(article.body_text.split())
    meta = [f"{describe_method(article.method)} ({article.method})", f"{words} words"]
    if article.authors:
        meta.append(", ".join(article.authors))
    if article.published:
        meta.append(article.published.strftime("%Y-%m-%d %H:%M UTC"))
    lines.append(
        "<dl>"
        f"<dt>page title</dt><dd>{esc(result.article_page_title) or '-'}</dd>"
        f"<dt>extracted title</dt><dd><strong>{esc(article.title) or '-'}</strong></dd>"
        f"<dt>extraction</dt><dd>{esc(' · '.join(meta))}</dd>"
        "</dl>"
    )
    lines.append(f'<div class="box body">{article.body_html}</div>')  # sanitised by `extract`
    return "".join(lines)
