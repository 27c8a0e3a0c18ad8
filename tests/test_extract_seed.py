"""The seed case: a real scraped article whose "Popular posts from this blog" widget leaked into
the text. Built at runtime from /work/shared/seed/scraped-article.txt into a blog-style page with
navigation, a share bar, comments, a footer and the popular posts in a sidebar widget."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from worker.extract import extract

# In `../shared/seed` beside the project, or beside one of its ancestors (a worktree lives deeper).
SEED = next(
    (
        found
        for folder in Path(__file__).resolve().parents[1].parents
        if (found := folder / "shared" / "seed" / "scraped-article.txt").is_file()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "seed" / "scraped-article.txt",
)
WIDGET_HEADING = "Popular posts from this blog"


def read_seed() -> tuple[str, list[str], list[str]]:
    lines = [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    cut = lines.index(WIDGET_HEADING)
    return lines[0], lines[1:cut], lines[cut + 1 : cut + 4]


def build_page(title: str, paragraphs: list[str], popular: list[str]) -> str:
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    posts = "\n".join(
        f'<li><a href="/p/{i}.html">{html.escape(t)}</a></li>' for i, t in enumerate(popular)
    )
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<script>var tracker = {{"id": 1}};</script></head><body>
<div class="top"><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/about">About</a></li><li><a href="/contact">Contact</a></li></ul></div>
<div class="wrap"><div class="col-main">
<h1>{html.escape(title)}</h1>
<div class="tools"><a href="#">Share on Facebook</a> <a href="#">Share on Twitter</a>
<a href="#">Email this</a></div>
<div class="txt">{body}</div>
<div id="comments"><h3>2 comments</h3><div class="c"><p>Great reporting, thanks for keeping us
informed about the region.</p></div><div class="c"><p>I hope the coalition stays, the security
gap is real.</p></div></div>
</div>
<div class="col-side"><div class="box"><h2>{WIDGET_HEADING}</h2><ul>{posts}</ul></div></div>
</div>
<div class="bottom"><p>Copyright 2020 Example Blog. Powered by a blog engine.</p></div>
</body></html>"""


@pytest.fixture(scope="module")
def seed() -> tuple[str, list[str], list[str]]:
    if not SEED.is_file():
        pytest.skip(f"seed file not found at {SEED}")
    return read_seed()


def test_seed_keeps_every_paragraph_and_drops_the_widget(seed) -> None:
    title, paragraphs, popular = seed
    assert len(popular) == 3
    article = extract(build_page(title, paragraphs, popular), "https://blog.example.com/isis.html")
    text = " ".join(article.body_text.split())  # whitespace (incl. no-break spaces) normalised
    missing = [p for p in paragraphs if " ".join(p.split()) not in text]
    assert not missing, f"paragraphs dropped: {missing}"
    assert WIDGET_HEADING not in text
    for post in popular:
        assert post not in text
    assert "Share on Facebook" not in text
    assert "Great reporting" not in text
    assert "Copyright 2020" not in text
    assert article.title == title
