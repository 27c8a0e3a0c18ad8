"""Golden pages: each tests/pages/<slug>/ holds source.html and expected.json.

expected.json lists snippets the body text must contain and snippets it must not; optional keys:
"url" (default https://example.org/article), "options" (ExtractOptions fields), "method".
Run one page with `pytest -k <slug>`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.extract import ExtractOptions, extract

PAGES = Path(__file__).parent / "pages"
SLUGS = sorted(p.name for p in PAGES.iterdir() if (p / "source.html").is_file())


def load_options(raw: dict) -> ExtractOptions:
    return ExtractOptions(
        body=raw.get("body"),
        remove=tuple(raw.get("remove", ())),
        boilerplate=frozenset(raw.get("boilerplate", ())),
    )


@pytest.mark.parametrize("slug", SLUGS)
def test_golden_page(slug: str) -> None:
    folder = PAGES / slug
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    html = (folder / "source.html").read_text(encoding="utf-8")
    url = expected.get("url", "https://example.org/article")
    article = extract(html, url, load_options(expected.get("options", {})))
    text = article.body_text
    missing = [s for s in expected.get("must_contain", []) if s not in text]
    present = [s for s in expected.get("must_not_contain", []) if s in text]
    assert not missing, f"{slug}: article text dropped: {missing}\n---\n{text}"
    assert not present, f"{slug}: boilerplate kept: {present}\n---\n{text}"
    if "method" in expected:
        assert article.method == expected["method"]
    for snippet in expected.get("must_contain", [])[:1]:
        assert snippet.split()[0] in article.body_html
