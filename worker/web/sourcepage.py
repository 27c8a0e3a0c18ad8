"""`/sources/<id>`: one source as its operator wants to see it, in one page without scripts.

- its settings, every secret masked (passwords, tokens, secret query values: `worker.redact`);
- its health, and the reasons it was degraded, over the runs kept (`RunHealth.reasons`);
- its last `RUNS_SHOWN` runs: outcome, links, new, updated and filtered items, skipped articles
  and why, bytes and duration, with a small inline SVG chart of new items and duration per run;
- its latest items as a reader shows them (title, date, authors, image, the first paragraphs,
  the whole body behind a `<details>` click), each with its link, GUID and content hash;
- the items its `keep`/`drop` filters left out, with the reason.

`read_source_view` reads it all from the store (the caller runs it in a worker thread);
`render_source_page` and `runs_chart` are pure.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from selectolax.lexbor import LexborHTMLParser

from worker.config import Config, HealthThresholds, Source, SourceAuth, format_duration
from worker.extract.sanitize import sanitize_html
from worker.filters import FilterRule
from worker.models import Item, RunHealth
from worker.redact import mask_values, redact_text, redact_url, strip_userinfo, url_secrets
from worker.store.state import SourceHealth, SourceState, Store
from worker.web.page import esc, html_page, utc_text, when

__all__ = ["RUNS_SHOWN", "SourceView", "read_source_view", "render_source_page", "runs_chart"]

RUNS_SHOWN = 20
ITEMS_SHOWN = 10
FILTERED_SHOWN = 20
HISTORY_READ = 50  # health history rows read: every one the store keeps
LEAD_PARAGRAPHS = 2  # shown before "Full article"
LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}
# The chart: one slot per run, new items as bars, duration as a line.
CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 600, 140, 28


@dataclass(frozen=True, slots=True)
class SourceView:
    """Everything the page shows about one source, as read from the store."""

    source: Source
    state: SourceState | None
    health: SourceHealth | None
    history: tuple[RunHealth, ...]  # oldest first
    items: tuple[Item, ...]  # the newest published, feed order
    filtered: tuple[Item, ...]  # the newest left out by the filters
    published_count: int
    filtered_count: int
    feeds: tuple[str, ...]  # formats written so far: "rss", "atom", "json"
    next_run: datetime | None
    secrets: frozenset[str]
    preview: bool = False  # /preview exists (a serve_token is set): link to it


def read_source_view(
    store: Store,
    config: Config,
    source: Source,
    *,
    feeds: Sequence[str] = (),
    next_run: datetime | None = None,
    preview: bool = False,
) -> SourceView:
    """Read what the page shows; only reads."""
    state = store.source_state(source.id)
    return SourceView(
        source=source,
        state=state,
        health=store.source_health(source.id),
        history=tuple(store.health_history(source.id, HISTORY_READ)),
        items=tuple(store.feed_items(source.id, ITEMS_SHOWN)),
        filtered=tuple(store.filtered_items(source.id, FILTERED_SHOWN)),
        published_count=store.count_items(source.id),
        filtered_count=store.count_items(source.id, filtered=True),
        feeds=tuple(feeds),
        next_run=next_run or (state.next_run if state else None),
        secrets=config.secret_values,
        preview=preview,
    )


def render_source_page(view: SourceView, now: datetime) -> str:
    """The whole page; every string from the config or the store is escaped here."""
    source = view.source
    parts = [
        _header(view),
        _health_section(view, now),
        _runs_section(view),
        _items_section(view),
        _filtered_section(view),
        _settings_section(view),
        f'<p class="meta">as of {esc(utc_text(now))}</p>',
    ]
    return html_page(f"{source.title} · feedworker", "\n".join(p for p in parts if p))


# -- header and health -------------------------------------------------------------------------


def _header(view: SourceView) -> str:
    source = view.source
    shown = _text(redact_url(source.url), view.secrets)
    feeds = " · ".join(
        f'<a href="../feeds/{esc(source.id)}.{ext}">{LABELS.get(ext, ext)}</a>'
        for ext in view.feeds
    )
    preview = ""
    if view.preview:
        # The page never shows a secret: a URL holding one is left for the operator to paste.
        url = {} if url_secrets(source.url) else {"url": source.url}
        query = {**url, **({"links": source.links} if source.links else {})}
        if source.body:
            query["body"] = source.body
        target = esc("../preview?" + urlencode(query))
        preview = f' · <a href="{target}">try its selectors in the preview</a>'
    state = view.state
    last = (
        f"last run {esc(utc_text(state.last_run))}"
        if state is not None and state.last_run
        else "never run"
    )
    return (
        '<header><p class="meta"><a href="../">← all sources</a></p>'
        f"<h1>{esc(source.title)}</h1>"
        f'<p class="meta"><code>{esc(source.id)}</code> · <a href="{esc(shown)}">{esc(shown)}</a>'
        f" · {last} · {view.published_count} item(s) in the feed"
        f"{f', {view.filtered_count} filtered out' if view.filtered_count else ''}</p>"
        f'<p class="meta">{feeds or "no feed written yet"}{preview}</p></header>'
    )


def _health_section(view: SourceView, now: datetime) -> str:
    health = view.health
    lines = ["<section><h2>Health</h2>"]
    if health is None:
        lines.append("<p>Not judged yet: the source has not run.</p>")
    else:
        css = "bad" if health.state == "degraded" else "ok"
        lines.append(
            f'<p><strong class="{css}">{esc(health.state)}</strong> since'
            f" {when(health.since, now)}</p>"
        )
        lines.append(_reason_list(health.reasons, view.secrets))
    changes = health_changes(view.history)
    if changes:
        lines.append("<details><summary>Over the runs kept</summary><ul>")
        for change in reversed(changes):
            state = "degraded" if change.degraded else "ok"
            lines.append(
                f"<li>{esc(utc_text(change.at))}: <strong>{state}</strong>"
                f"{_reason_list(change.reasons, view.secrets)}</li>"
            )
        lines.append("</ul></details>")
    if view.state is not None and view.state.last_error:
        error = _text(view.state.last_error, view.secrets)
        lines.append(f'<p>Last error: <span class="bad">{esc(error)}</span></p>')
    lines.append("</section>")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class HealthChange:
    at: datetime
    degraded: bool
    reasons: tuple[str, ...]


def health_changes(history: Sequence[RunHealth]) -> list[HealthChange]:
    """The runs (oldest first) where the state or its reasons changed."""
    changes: list[HealthChange] = []
    for run in history:
        reasons = tuple(run.reasons)
        if not changes or (changes[-1].degraded, changes[-1].reasons) != (run.degraded, reasons):
            changes.append(HealthChange(run.at, run.degraded, reasons))
    return changes


def _reason_list(reasons: Collection[str], secrets: Collection[str]) -> str:
    if not reasons:
        return ""
    return "<ul>" + "".join(f"<li>{esc(_text(r, secrets))}</li>" for r in reasons) + "</ul>"


# -- runs --------------------------------------------------------------------------------------


def _runs_section(view: SourceView) -> str:
    runs = list(view.history[-RUNS_SHOWN:])
    if not runs:
        return "<section><h2>Last runs</h2><p>No run yet.</p></section>"
    rows = []
    for run in reversed(runs):
        outcome = _outcome(run)
        css = "bad" if run.failed else "warn" if run.degraded else "ok"
        skipped = sum(run.skipped.values())
        reasons = "; ".join(f"{r} ×{n}" for r, n in run.skip_reasons.items())
        skipped_cell = str(skipped) + (
            f' <span class="meta">({esc(_text(reasons, view.secrets))})</span>' if reasons else ""
        )
        if run.error:
            outcome += f': <span class="bad">{esc(_text(run.error, view.secrets))}</span>'
        rows.append(
            f'<tr><td>{esc(utc_text(run.at))}</td><td class="{css}">{outcome}</td>'
            f'<td class="n">{run.links_found}</td><td class="n">{run.items_new}</td>'
            f'<td class="n">{run.items_updated}</td><td class="n">{run.items_filtered}</td>'
            f"<td>{skipped_cell}</td>"
            f'<td class="n">{_size(run.bytes_received)}</td>'
            f'<td class="n">{_seconds(run.duration_ms)}</td></tr>'
        )
    return "\n".join(
        [
            f"<section><h2>Last runs</h2>{runs_chart(runs)}",
            "<table><thead><tr><th>started</th><th>outcome</th><th>links</th><th>new</th>"
            "<th>updated</th><th>filtered</th><th>skipped</th><th>bytes</th><th>duration</th>"
            "</tr></thead><tbody>",
            *rows,
            "</tbody></table></section>",
        ]
    )


def _outcome(run: RunHealth) -> str:
    if run.failed:
        return "failed"
    if run.not_modified:
        return "not modified"
    return "degraded" if run.degraded else "ok"


def runs_chart(runs: Sequence[RunHealth]) -> str:
    """An inline SVG of the runs (oldest left): new items as bars, duration as a line. Numbers
    only: nothing of the config or the sites goes into it."""
    if not runs:
        return ""
    inner_w, inner_h = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD
    slot = inner_w / max(len(runs), RUNS_SHOWN)  # fixed slots, the newest run on the right
    left = CHART_PAD + inner_w - slot * len(runs)
    most_new = max(max(run.items_new for run in runs), 1)
    durations = [run.duration_ms or 0 for run in runs]
    longest = max(max(durations), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}"'
        f' width="{CHART_WIDTH}" height="{CHART_HEIGHT}" role="img"'
        f' aria-label="new items and duration of the last {len(runs)} runs">',
        f'<line x1="{CHART_PAD}" y1="{CHART_HEIGHT - CHART_PAD}" x2="{CHART_WIDTH - CHART_PAD}"'
        f' y2="{CHART_HEIGHT - CHART_PAD}" stroke="#bbb"/>',
    ]
    points = []
    for n, (run, duration) in enumerate(zip(runs, durations, strict=True)):
        x = left + n * slot
        height = inner_h * run.items_new / most_new
        y = CHART_HEIGHT - CHART_PAD - height
        fill = "#c33" if run.failed else "#3a7"
        parts.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}"'
            f' height="{max(height, 1):.1f}" fill="{fill}"><title>{esc(utc_text(run.at))}:'
            f" {run.items_new} new, {_seconds(duration)}</title></rect>"
        )
        line_y = CHART_HEIGHT - CHART_PAD - inner_h * duration / longest
        points.append(f"{x + slot / 2:.1f},{line_y:.1f}")
    parts.append(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="#36c" stroke-width="2"/>'
    )
    parts.append(
        f'<text x="{CHART_PAD}" y="14" font-size="12" fill="#3a7">new items (bars, up to'
        f' {most_new})</text><text x="{CHART_WIDTH - CHART_PAD}" y="14" font-size="12"'
        f' fill="#36c" text-anchor="end">duration (line, up to {_seconds(longest)})</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _size(count: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def _seconds(duration_ms: int | None) -> str:
    if duration_ms is None:
        return "-"
    return f"{duration_ms / 1000:.1f} s"


# -- items -------------------------------------------------------------------------------------


def _items_section(view: SourceView) -> str:
    if not view.items:
        return "<section><h2>Latest items</h2><p>No item published yet.</p></section>"
    items = [_render_item(item, view.secrets) for item in view.items]
    return "<section><h2>Latest items</h2>\n" + "\n".join(items) + "</section>"


def _render_item(item: Item, secrets: Collection[str]) -> str:
    link = _public(item.url, secrets)
    body = sanitize_html(item.content_html, item.url)  # sanitised when stored; and again here
    meta = [utc_text(item.published)]
    if item.authors:
        meta.append(", ".join(item.authors))
    if item.categories:
        meta.append(" · ".join(item.categories))
    image = _public(item.image or "", secrets)
    picture = (
        f'<img src="{esc(image)}" alt="" loading="lazy">'
        if image.startswith(("http://", "https://"))
        else ""
    )
    words = len(LexborHTMLParser(body).text(separator=" ").split()) if body else 0
    return "\n".join(
        [
            '<article class="item box">',
            f'<h3><a href="{esc(link)}" rel="noopener noreferrer">{esc(item.title)}</a></h3>',
            f'<p class="meta">{esc(" · ".join(meta))}</p>',
            picture,
            f'<div class="lead">{lead_paragraphs(body)}</div>',
            f"<details><summary>Full article ({words} words)</summary>"
            f'<div class="body">{body}</div></details>',
            f"<dl><dt>Link</dt><dd><code>{esc(link)}</code></dd>"
            f"<dt>GUID</dt><dd><code>{esc(_public(item.guid, secrets))}</code></dd>"
            f"<dt>Content hash</dt><dd><code>{esc(item.content_hash)}</code></dd></dl>",
            "</article>",
        ]
    )


def lead_paragraphs(body: str, count: int = LEAD_PARAGRAPHS) -> str:
    """The first `count` paragraphs of a sanitised body (as its own HTML), else its start."""
    if not body:
        return ""
    tree = LexborHTMLParser(body)
    paragraphs = [p.html or "" for p in tree.css("p") if (p.text() or "").strip()][:count]
    if paragraphs:
        return "".join(paragraphs)
    text = " ".join((tree.text(separator=" ") or "").split())
    return f"<p>{esc(text[:400])}{'…' if len(text) > 400 else ''}</p>"


def _filtered_section(view: SourceView) -> str:
    if not view.filtered and not (view.source.keep or view.source.drop):
        return ""
    lines = ["<section><h2>Filtered out</h2>"]
    if not view.filtered:
        lines.append("<p>Nothing: every item passed the source's keep and drop rules.</p>")
    else:
        lines.append(
            '<p class="meta">Stored, never published, never fetched as new again; judged'
            " again when the rules change.</p><ul>"
        )
        for item in view.filtered:
            link = _public(item.url, view.secrets)
            lines.append(
                f'<li><a href="{esc(link)}" rel="noopener noreferrer">{esc(item.title)}</a>'
                f' <span class="meta">{esc(utc_text(item.published))}</span>: '
                f"{esc(_text(item.filtered or '', view.secrets))}</li>"
            )
        lines.append("</ul>")
    lines.append("</section>")
    return "\n".join(lines)


# -- settings ----------------------------------------------------------------------------------


def settings_rows(source: Source, secrets: Collection[str]) -> list[tuple[str, str]]:
    """(key, value as text) of the settings the source sets or that define it, secrets masked."""
    rows = []
    for name, info in Source.model_fields.items():
        value = getattr(source, name)
        if name not in ("id", "url", "kind", "every") and value == info.default:
            continue
        if name == "every" and value is None:
            continue
        rows.append((name, _text(_setting_text(name, value), secrets)))
    if source.cron is None:  # as written: "6h", "90 minutes", "1h (default)"
        written = source.schedule_text.removeprefix("every ")
        rows = [(k, written if k == "every" else v) for k, v in rows]
    return rows


def _setting_text(name: str, value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, SourceAuth):
        return f"user {value.user}, password from {value.password_from}"
    if isinstance(value, HealthThresholds):
        return ", ".join(f"{key} = {getattr(value, key)}" for key in sorted(value.model_fields_set))
    if isinstance(value, tuple) and value and isinstance(value[0], FilterRule):
        return "; ".join(_rule_text(rule) for rule in value)
    if isinstance(value, tuple):
        shown = [redact_url(v) if name == "urls" else getattr(v, "pattern", v) for v in value]
        return ", ".join(str(v) for v in shown)
    if name == "url" and isinstance(value, str):
        return redact_url(value)
    return str(value)


def _rule_text(rule: FilterRule) -> str:
    return " and ".join(f"{field} ~ {entries}" for field, entries in rule.written().items())


def _settings_section(view: SourceView) -> str:
    rows = settings_rows(view.source, view.secrets)
    cells = "".join(f"<dt>{esc(k)}</dt><dd><code>{esc(v)}</code></dd>" for k, v in rows)
    return (
        "<section><h2>Settings</h2>"
        '<p class="meta">As configured (secrets masked); the rest take their defaults.</p>'
        f"<dl>{cells}</dl></section>"
    )


def _text(text: str, secrets: Collection[str]) -> str:
    """Stored or configured text fit to show: URLs redacted, secret values masked."""
    return redact_text(text, secrets)


def _public(url: str, secrets: Collection[str]) -> str:
    """An item's link as its feed publishes it: no userinfo, the operator's secrets masked."""
    return mask_values(strip_userinfo(url), secrets) if url else url
