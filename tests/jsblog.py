"""A blog whose pages are empty shells a script fills in from JSON, served on 127.0.0.1.

Every page is the same shell: a mount point and `/app.js`. The script reads the address, fetches
`/api/posts.json` (the listing) or `/api/posts/<slug>.json` (a post), and builds the page: the
listing's links, or the post's full text; on every page a "Popular posts from this blog" sidebar,
a share bar and, on posts, comments. Fetched plainly, no page holds a word of any of it.
"""

from __future__ import annotations

import json

from tests.localserver import Exchange, LocalServer
from tests.sitekit import prose

POPULAR_HEADING = "Popular posts from this blog"
COMMENT = "Great post, thanks for sharing! Visit my casino site for free spins."
SHELL = b"""<!doctype html><html><head><meta charset="utf-8"><title>Loading...</title></head>
<body><div id="app"></div><noscript>Please enable JavaScript to read this blog.</noscript>
<script src="/app.js"></script></body></html>"""

APP_JS = b"""
(async () => {
  const app = document.getElementById('app');
  const esc = (s) => s.replace(/[&<>"]/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
  const sidebar = (posts) => '<aside class="sidebar"><h3>' + POPULAR + '</h3><ul>' +
    posts.map((p) => '<li><a href="/posts/' + p.slug + '.html">' + esc(p.title) + '</a></li>').join('') +
    '</ul></aside><div class="share">Share on Facebook | Share on X | Email this</div>';
  const list = await (await fetch('/api/posts.json')).json();
  const match = location.pathname.match(/^\\/posts\\/([a-z0-9-]+)\\.html$/);
  if (!match) {
    document.title = 'Garden Notes';
    app.innerHTML = '<header><nav><a href="/">Home</a> <a href="/about.html">About</a></nav></header>' +
      '<main><h1>Garden Notes</h1>' + list.map((p) =>
        '<article class="teaser"><h2><a href="/posts/' + p.slug + '.html">' + esc(p.title) +
        '</a></h2><p>' + esc(p.teaser) + '</p></article>').join('') + '</main>' + sidebar(list.slice(0, 3));
    return;
  }
  const post = await (await fetch('/api/posts/' + match[1] + '.json')).json();
  document.title = post.title + ' - Garden Notes';
  app.innerHTML = '<header><nav><a href="/">Home</a></nav></header><main><article><h1>' +
    esc(post.title) + '</h1><p class="byline">By ' + esc(post.author) + '</p>' +
    post.paragraphs.map((p) => '<p>' + esc(p) + '</p>').join('') +
    '</article><section class="comments"><h3>Comments</h3><p>' + COMMENT + '</p></section></main>' +
    sidebar(list.slice(0, 3));
})();
"""


class JsBlog:
    """The blog's posts, and its routes on a `LocalServer`."""

    def __init__(self, count: int = 4) -> None:
        self.posts = [
            {
                "slug": f"post-{n}",
                "title": f"Notes on the garden, part {n}",
                "author": "Ada Gardener",
                "teaser": f"Part {n} of the notes, in short.",
                "paragraphs": [
                    " ".join(sentences[i : i + 4])
                    for sentences in [prose(100 + n, 24)]
                    for i in range(0, 24, 4)
                ],
            }
            for n in range(1, count + 1)
        ]

    def serve(self, server: LocalServer) -> None:
        shell = (("Content-Type", "text/html; charset=utf-8"),)
        server.route("/", headers=shell, body=SHELL)
        for post in self.posts:
            server.route(f"/posts/{post['slug']}.html", headers=shell, body=SHELL)
            server.route(f"/api/posts/{post['slug']}.json", self._json(post))
        listing = [{k: p[k] for k in ("slug", "title", "teaser")} for p in self.posts]
        server.route("/api/posts.json", self._json(listing))
        script = APP_JS.replace(b"POPULAR", json.dumps(POPULAR_HEADING).encode())
        script = script.replace(b"COMMENT", json.dumps(COMMENT).encode())
        server.route("/app.js", headers={"Content-Type": "text/javascript"}, body=script)
        server.route("/robots.txt", headers={"Content-Type": "text/plain"}, body=b"")

    @staticmethod
    def _json(value: object) -> object:
        body = json.dumps(value).encode()

        def handler(ex: Exchange) -> None:
            ex.respond(200, {"Content-Type": "application/json"}, body)

        return handler
