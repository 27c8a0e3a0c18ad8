"""What the server's HTML pages share (pure): escaping, times, the page shell, and a strict
Content-Security-Policy that fits it.

Every string from the config, the database or a fetched page is escaped (`esc`) where it is put
into HTML; item bodies, which are HTML, are sanitised again (`worker.extract.sanitize`) where they
are shown. On top of that each page is served with `content_security_policy(css)`: no scripts at
all, the page's one `<style>` element allowed by its hash, images and media from the web (item
bodies have them), forms only to this server, and no framing. So even markup that slipped
through could neither run nor send anything anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import html
from datetime import UTC, datetime, timedelta

__all__ = [
    "BASE_CSS",
    "content_security_policy",
    "esc",
    "html_page",
    "relative_time",
    "utc_text",
    "when",
]

BASE_CSS = """
body{font:16px/1.45 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#222}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.4rem 0 .4rem}
h3{font-size:1.05rem;margin:.2rem 0}a{color:#15c}
.meta{color:#666;font-size:.9rem;margin:0 0 .4rem;overflow-wrap:anywhere}
.ok{color:#171}.bad{color:#a11}.warn{color:#a50}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .4rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:.4rem 0}
dt{color:#666}dd{margin:0;overflow-wrap:anywhere}
code{font-size:.88rem;overflow-wrap:anywhere}
.box{border:1px solid #ddd;border-radius:.4rem;padding:.6rem .8rem;margin:.6rem 0}
.item img{max-width:100%;height:auto}.item .body img{max-width:100%}
details>summary{cursor:pointer;color:#15c}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(22rem,1fr));gap:1rem}
form label{display:block;margin:.4rem 0 .1rem;color:#444}
form input{width:100%;box-sizing:border-box;font:inherit;padding:.3rem}
form button{margin-top:.6rem;font:inherit;padding:.3rem 1rem}
ul.links{padding-left:1.1rem}ul.links li{margin:.15rem 0;overflow-wrap:anywhere}
.kept{color:#171}.dropped{color:#777}
svg{max-width:100%;height:auto}
""".strip()


def content_security_policy(css: str) -> str:
    """No scripts; the page's one `<style>` element by its hash; images and media from the web."""
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode()
    return "; ".join(
        [
            "default-src 'none'",
            f"style-src 'sha256-{digest}'",
            "img-src http: https: data:",
            "media-src http: https:",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def html_page(title: str, body: str, css: str = BASE_CSS) -> str:
    """A whole page around `body` (already HTML); `title` is text."""
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>{esc(title)}</title><style>{css}</style></head><body>",
            body,
            "</body></html>\n",
        ]
    )


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def utc_text(moment: datetime) -> str:
    return _aware(moment).strftime("%Y-%m-%d %H:%M UTC")


def when(moment: datetime | None, now: datetime, missing: str = "never") -> str:
    """Escaped "2026-05-01 08:30 UTC (2 h ago)", or `missing`."""
    if moment is None:
        return esc(missing)
    moment = _aware(moment)
    return f"{esc(utc_text(moment))} ({relative_time(moment - now)})"


_UNITS = (("d", 86400), ("h", 3600), ("min", 60))


def relative_time(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return "now"
    unit, size = next((u, s) for u, s in _UNITS if seconds >= s)
    amount = f"{seconds // size} {unit}"
    return f"in {amount}" if delta.total_seconds() > 0 else f"{amount} ago"


def _aware(moment: datetime) -> datetime:
    """UTC; a naive value is UTC without its label (the store keeps UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
