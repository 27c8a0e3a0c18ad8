"""Access to the server: the optional token, and links never built from the Host header."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from tests.test_serve import (
    ATOM,
    RSS,
    app_client,
    publish,
    raw_get,
    running_server,
    write_config,
)
from worker.config import load_config
from worker.errors import ConfigError
from worker.web.serve import TOKEN_COOKIE, build_app, links_base, listen

TOKEN = "s3rve-T0KEN-abcdefghij"
SOURCES = """
[[source]]
id = "blog"
url = "https://blog.example.com/?apikey=SITE-KEY-123456"
"""
PROTECTED = ["/", "/metrics", "/opml"]
FEEDS = ["/feeds/blog.rss", "/feeds/blog.atom", "/feeds/all.atom"]


def make_app(tmp_path: Path, worker: str = "") -> Starlette:
    config = write_config(tmp_path, SOURCES, worker)
    publish(tmp_path / "feeds" / "blog.rss", RSS.format(title="Blog", item="First"))
    publish(tmp_path / "feeds" / "blog.atom", ATOM.format(title="Blog"))
    publish(tmp_path / "feeds" / "all.atom", ATOM.format(title="All"))
    return build_app(config, status_reader=dict)


@pytest.fixture
def token_app(tmp_path: Path) -> Starlette:
    return make_app(tmp_path, f'serve_token = "{TOKEN}"\n')


def test_without_a_token_everything_is_open(tmp_path: Path) -> None:
    with app_client(make_app(tmp_path)) as client:
        for path in [*PROTECTED, *FEEDS, "/healthz"]:
            assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("path", PROTECTED)
def test_the_token_is_wanted(token_app: Starlette, path: str) -> None:
    with app_client(token_app) as client:
        refused = client.get(path)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert client.get(path, params={"token": "s3rve-T0KEN-wrong-guess"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Basic " + TOKEN}).status_code == 401
        by_header = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert by_header.status_code == 200
        assert by_header.headers["referrer-policy"] == "no-referrer"
        assert "public" not in by_header.headers.get("cache-control", "")
        assert client.get(path, params={"token": TOKEN}).status_code == 200
    assert TOKEN not in refused.text


def test_healthz_and_feeds_stay_open_by_default(token_app: Starlette) -> None:
    with app_client(token_app) as client:
        assert client.get("/healthz").status_code == 200
        for path in FEEDS:
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["cache-control"].startswith("public")


def test_private_feeds_want_the_token_too(tmp_path: Path) -> None:
    app = make_app(tmp_path, f'serve_token = "{TOKEN}"\npublic_feeds = false\n')
    with app_client(app) as client:
        assert client.get("/healthz").status_code == 200
        for path in [*FEEDS, "/feeds/nosuch.rss"]:  # unknown names do not tell what exists
            assert client.get(path).status_code == 401, path
        feed = client.get("/feeds/blog.rss", headers={"Authorization": f"Bearer {TOKEN}"})
        assert feed.status_code == 200
        assert feed.headers["cache-control"].startswith("private")  # no shared cache keeps it


def test_a_token_in_the_query_sets_a_cookie_for_the_page_links(token_app: Starlette) -> None:
    """Opened as /?token=..., the status page's own links (OPML, feeds) work in a browser."""
    with app_client(token_app) as client:
        page = client.get("/", params={"token": TOKEN})
        cookie = page.headers["set-cookie"]
        assert cookie.startswith(f"{TOKEN_COOKIE}=") and "HttpOnly" in cookie
        assert TOKEN not in cookie  # derived from the token, not the token
        assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert TOKEN not in page.text
    with app_client(token_app) as browser:  # a fresh client: only the cookie it sends counts
        assert browser.get("/opml", headers={"Cookie": cookie.split(";")[0]}).status_code == 200
        assert browser.get("/opml", headers={"Cookie": f"{TOKEN_COOKIE}=no"}).status_code == 401


def test_the_token_from_the_environment_or_a_file(tmp_path: Path) -> None:
    config_dir = write_config(tmp_path, SOURCES).config_dir
    env = load_config(config_dir, env={"FEEDWORKER_SERVE_TOKEN": TOKEN})
    assert env.settings.token == TOKEN
    assert TOKEN not in repr(env.settings) and TOKEN not in str(env.settings)
    (tmp_path / "token").write_text(TOKEN + "\n")
    from_file = load_config(config_dir, env={"FEEDWORKER_SERVE_TOKEN_FILE": "token"})
    assert from_file.settings.token == TOKEN


@pytest.mark.parametrize(
    ("worker", "message"),
    [
        ('serve_token = "short-token"\n', "at least 16"),
        ('serve_token_file = "missing.token"\n', "cannot read serve_token file"),
        (f'serve_token = "{TOKEN}"\nserve_token_file = "t"\n', "not both"),
    ],
)
def test_bad_tokens_are_refused_without_being_shown(
    tmp_path: Path, worker: str, message: str
) -> None:
    (tmp_path / "t").write_text(TOKEN)
    with pytest.raises(ConfigError) as caught:
        write_config(tmp_path, SOURCES, worker)
    assert message in str(caught.value)
    assert "short-token" not in str(caught.value) and TOKEN not in str(caught.value)


def test_status_page_and_opml_show_no_secret(tmp_path: Path) -> None:
    with app_client(make_app(tmp_path)) as client:
        page, opml = client.get("/").text, client.get("/opml").text
    for text in (page, opml):
        assert "SITE-KEY-123456" not in text
        assert "apikey=***" in text


def test_opml_links_never_come_from_the_host_header(tmp_path: Path) -> None:
    """`curl -H 'Host: evil.example' /opml` used to return links on evil.example."""
    config = write_config(tmp_path, SOURCES)
    publish(tmp_path / "feeds" / "blog.rss", RSS.format(title="Blog", item="First"))
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # `running_server` listens on a port of its own; links name the one we give
    app = build_app(config, status_reader=dict, base_url=f"http://127.0.0.1:{port}")
    with running_server(app) as base_url:
        answer = raw_get_with_host(base_url, "/opml", "evil.example")
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"evil.example" not in answer
    assert f'xmlUrl="http://127.0.0.1:{port}/feeds/blog.rss"'.encode() in answer


def test_links_base_is_the_public_url_or_the_listening_address(tmp_path: Path) -> None:
    config = write_config(tmp_path, SOURCES)
    with listen("127.0.0.1", 0) as sock:
        assert links_base(config.settings, sock) == f"http://127.0.0.1:{sock.getsockname()[1]}"
    with listen("0.0.0.0", 0) as sock:  # a wildcard names no machine: the host name does
        assert links_base(config.settings, sock).startswith(f"http://{socket.gethostname()}:")
    public = write_config(tmp_path, SOURCES, 'public_url = "https://feeds.example.org/"\n')
    assert links_base(public.settings) == "https://feeds.example.org"


def raw_get_with_host(base_url: str, target: str, host_header: str) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        request = f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"
        conn.sendall(request.encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_real_server_wants_the_token(token_app: Starlette) -> None:
    with running_server(token_app) as base_url, httpx.Client(base_url=base_url) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert raw_get(base_url, "/").startswith(b"HTTP/1.1 401")
