"""Secrets never leak: credentials have a home of their own, and no output of a run shows them.

The end-to-end test runs the worker as an operator would (subprocesses, real local sites, a
webhook receiver, the server) with every kind of secret the config can hold, collects every
output, and looks for each secret in all of them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backend import state_env
from tests.blogsite import Blog, sample_posts
from tests.localserver import Exchange, LocalServer
from tests.test_cli import REPO, free_port, wait_for
from tests.test_webhook import Receiver
from worker.config import load_config
from worker.errors import ConfigError

# Every secret a config can hold, each a distinct string to look for.
SITE_PASSWORD = "env-Pa55word-7781"  # auth.password_env
URL_PASSWORD = "url-Pa55word-4410"  # user:password@ in a source's url
FILE_PASSWORD = "file-Pa55word-9902"  # auth.password_file
API_KEY = "query-ApiKey-5513"  # ?apikey= in a source's url
LINK_TOKEN = "link-T0ken-6620"  # ?token= in a source's url, repeated by the site in its links
WALL_SIG = "wall-Sig-3307"  # ?sig= in the url of a site that refuses the worker
HOOK_TOKEN = "hook-T0ken-2294"  # ?token= in the webhook URL
SERVE_TOKEN = "serve-T0ken-8876-abcdef"  # FEEDWORKER_SERVE_TOKEN


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


SECRETS = [
    SITE_PASSWORD,
    URL_PASSWORD,
    FILE_PASSWORD,
    API_KEY,
    LINK_TOKEN,
    WALL_SIG,
    HOOK_TOKEN,
    SERVE_TOKEN,
    basic("alice", SITE_PASSWORD).split()[1],
    basic("bob", URL_PASSWORD).split()[1],
    basic("carol", FILE_PASSWORD).split()[1],
]


# ---------------------------------------------------------------------------------------------
# Credentials in the config
# ---------------------------------------------------------------------------------------------


def write(root: Path, sources: str, worker: str = "") -> Path:
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "feedworker.toml").write_text(
        f'[worker]\nper_host_delay = 0\nstate_url = "sqlite:///{root}/state.db"\n{worker}'
    )
    (config / "sources.toml").write_text(sources)
    return config


def test_a_password_written_in_the_config_is_refused_with_where_to_put_it(tmp_path: Path) -> None:
    sources = (
        '[[source]]\nid = "a"\nurl = "https://a.test/"\n'
        'auth = { user = "alice", password = "hunter2-literal" }\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, sources), env=state_env())
    message = str(caught.value)
    assert "source 'a': auth: a password is never written in the config" in message
    assert "password_env" in message and "password_file" in message
    assert "hunter2-literal" not in message


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ('{ user = "alice", password_env = "NOT_SET" }', "NOT_SET (password_env) is not set"),
        ('{ user = "alice", password_file = "nope.txt" }', "cannot read password file"),
        ('{ user = "alice" }', "give the password in one way"),
        ('{ user = "a:b", password_env = "SET" }', "without ':'"),
    ],
)
def test_auth_problems_are_named(tmp_path: Path, auth: str, message: str) -> None:
    sources = f'[[source]]\nid = "a"\nurl = "https://a.test/"\nauth = {auth}\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, sources), env={"SET": "x"})
    assert message in str(caught.value)


def test_userinfo_moves_out_of_the_url_into_auth(tmp_path: Path) -> None:
    sources = (
        f'[[source]]\nid = "a"\nurl = "https://bob:{URL_PASSWORD}@a.test/feed?apikey={API_KEY}"\n'
    )
    config = load_config(write(tmp_path, sources), env=state_env())
    source = config.source("a")
    assert source.url == f"https://a.test/feed?apikey={API_KEY}"  # the query is still needed
    assert source.auth is not None and source.auth.user == "bob"
    assert URL_PASSWORD not in repr(source) and URL_PASSWORD not in repr(config.credentials)
    assert config.credentials["https://a.test:443"].password == URL_PASSWORD
    assert {URL_PASSWORD, API_KEY} <= config.secret_values


def test_credentials_given_twice_or_conflicting_are_refused(tmp_path: Path) -> None:
    twice = (
        f'[[source]]\nid = "a"\nurl = "https://bob:{URL_PASSWORD}@a.test/"\n'
        'auth = { user = "bob", password_env = "SET" }\n'
    )
    conflicting = (
        '[[source]]\nid = "a"\nurl = "https://a.test/one"\nauth = { user = "bob", password_env = "SET" }\n'
        '[[source]]\nid = "b"\nurl = "https://a.test/two"\nauth = { user = "eve", password_env = "SET" }\n'
        '[[source]]\nid = "c"\nurl = "https://a.test/three"\nauth = { user = "bob", password_env = "SET" }\n'
    )
    for sources, message in [
        (twice, "credentials given twice"),
        (conflicting, "source 'b': auth: other credentials for https://a.test:443 than source 'a'"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, sources), env={"SET": "x"})
        assert message in str(caught.value)
        assert URL_PASSWORD not in str(caught.value)
        assert "source 'c'" not in str(caught.value)  # the same credentials again are fine


def test_a_bad_url_is_reported_without_its_secrets(tmp_path: Path) -> None:
    sources = f'[[source]]\nid = "a"\nurl = "https://bob:{URL_PASSWORD}@a.test:99999/?token={LINK_TOKEN}"\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, sources), env=state_env())
    assert "bad port" in str(caught.value)
    assert URL_PASSWORD not in str(caught.value) and LINK_TOKEN not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# The whole run: every output searched for every secret
# ---------------------------------------------------------------------------------------------


def private_blog(server: LocalServer, user: str, password: str, link_query: str = "") -> Blog:
    """A three-post blog that answers 401 to any request without the right Basic auth;
    `link_query` is appended to the article links on its index page."""
    blog = Blog(origin=server.url("").rstrip("/"), posts=sample_posts())
    pages = {p.path: blog.post_html(p).encode() for p in blog.posts}
    pages["/"] = blog.index_html([(p.path + link_query, p.title) for p in blog.posts]).encode()
    expected = basic(user, password)

    def handler(ex: Exchange) -> None:
        if ex.request.headers.get("authorization") != expected:
            ex.respond(401, {"WWW-Authenticate": 'Basic realm="blog"'}, b"who are you?")
            return
        path = ex.request.path.split("?", 1)[0]
        ex.respond(200, {"Content-Type": "text/html; charset=utf-8"}, pages[path])

    for path in pages:
        server.route(path, handler)
    server.route("/robots.txt", handler=lambda ex: ex.respond(404, {}, b""))
    return blog


def wall(server: LocalServer) -> None:
    server.route("/", handler=lambda ex: ex.respond(403, {"Content-Type": "text/html"}, b"no"))


def answer_200(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


@contextlib.contextmanager
def sites() -> Iterator[tuple[LocalServer, LocalServer, LocalServer, LocalServer, Receiver]]:
    with (
        LocalServer() as env_site,
        LocalServer() as url_site,
        LocalServer() as file_site,
        LocalServer() as walled,
        Receiver(answer_200) as hook,
    ):
        private_blog(env_site, "alice", SITE_PASSWORD)
        private_blog(url_site, "bob", URL_PASSWORD, link_query=f"?token={LINK_TOKEN}")
        private_blog(file_site, "carol", FILE_PASSWORD)
        wall(walled)
        yield env_site, url_site, file_site, walled, hook


class Operator:
    """Runs `feedworker` commands as subprocesses and keeps everything they print."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = {"PATH": "/usr/bin:/bin", **state_env(), **env}
        self.outputs: dict[str, str] = {}

    def run(self, name: str, *args: str, ok: bool = True) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "worker", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=self.env,
            timeout=120,
        )
        self.outputs[name] = done.stdout + done.stderr
        assert (done.returncode == 0) == ok, self.outputs[name][-3000:]
        return self.outputs[name]

    def serve_and_read(self, paths: list[str]) -> None:
        port = free_port()
        command = [
            "serve",
            "--config",
            str(self.config),
            "--port",
            str(port),
            "--log-level",
            "DEBUG",
        ]
        server = subprocess.Popen(
            [sys.executable, "-m", "worker", *command],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _answers(base + "/healthz"), what="the server")
            with httpx.Client(base_url=base, timeout=10) as http:
                refused = http.get("/")
                assert refused.status_code == 401
                self.outputs["server: 401"] = _response_text(refused)
                auth = {"Authorization": f"Bearer {SERVE_TOKEN}"}
                for path in paths:
                    response = http.get(path, headers=auth)
                    assert response.status_code == 200, path
                    self.outputs[f"server: {path}"] = _response_text(response)
                by_query = http.get("/", params={"token": SERVE_TOKEN})
                assert "feedworker_token=" in by_query.headers["set-cookie"]
                self.outputs["server: /?token="] = _response_text(by_query)
        finally:
            server.terminate()
            self.outputs["server log"] = server.communicate(timeout=30)[0]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _response_text(response: httpx.Response) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return f"{response.status_code}\n{headers}\n\n{response.text}"


@pytest.mark.slow
def test_no_output_of_a_run_shows_a_secret(tmp_path: Path) -> None:
    with sites() as (env_site, url_site, file_site, walled, hook):
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "carol.password").write_text(FILE_PASSWORD + "\n")
        url_with_userinfo = url_site.url("/").replace("http://", f"http://bob:{URL_PASSWORD}@")
        sources = f"""
[[source]]
id = "env-auth"
url = "{env_site.url("/")}?apikey={API_KEY}"
auth = {{ user = "alice", password_env = "SITE_PASSWORD" }}
respect_robots = false

[[source]]
id = "url-auth"
url = "{url_with_userinfo}?token={LINK_TOKEN}"

[[source]]
id = "file-auth"
url = "{file_site.url("/")}"
auth = {{ user = "carol", password_file = "secrets/carol.password" }}

[[source]]
id = "walled"
url = "{walled.url("/")}?sig={WALL_SIG}"
respect_robots = false
health = {{ bad_runs = 1 }}
"""
        hook_url = f"http://127.0.0.1:{hook.sock.getsockname()[1]}/hook?token={HOOK_TOKEN}"
        worker = f'feeds_dir = "{tmp_path}/feeds"\nwebhook_url = "{hook_url}"\n'
        config = write(tmp_path, sources, worker)
        operator = Operator(
            config, {"SITE_PASSWORD": SITE_PASSWORD, "FEEDWORKER_SERVE_TOKEN": SERVE_TOKEN}
        )

        operator.run("check", "check")
        operator.run("run (text)", "run", "--once", "--log-level", "DEBUG")
        operator.run("run (json)", "run", "--once", "--log-level", "DEBUG", "--log-format", "json")
        operator.run("status", "status")
        operator.run("status --json", "status", "--json")
        operator.run("try url-auth", "try", "url-auth", "--fresh")
        operator.run("try env-auth --json", "try", "env-auth", "--fresh", "--json")
        operator.run("try walled", "try", "walled", ok=False)
        feeds = sorted(p.name for p in (tmp_path / "feeds").iterdir())
        operator.serve_and_read(["/", "/metrics", "/opml", *[f"/feeds/{name}" for name in feeds]])
        for name in feeds:
            operator.outputs[f"file feeds/{name}"] = (tmp_path / "feeds" / name).read_text()
        for n, request in enumerate(hook.requests):
            operator.outputs[f"webhook body {n}"] = request.partition(b"\r\n\r\n")[2].decode()

    # Every kind of output is there, and says something.
    assert {"env-auth.rss", "url-auth.atom", "file-auth.json", "all.atom"} <= set(feeds)
    assert json.loads(operator.outputs["webhook body 0"])["state"] == "degraded"
    assert "run finished" in operator.outputs["run (text)"]
    assert "index page: HTTP 403" in operator.outputs["status"]
    # The sites really got their credentials, on the index and on every article.
    for site, user, password in [
        (env_site, "alice", SITE_PASSWORD),
        (url_site, "bob", URL_PASSWORD),
        (file_site, "carol", FILE_PASSWORD),
    ]:
        got = {r.headers.get("authorization") for r in site.requests if r.path != "/robots.txt"}
        assert got == {basic(user, password)}, site.url("/")
        articles = [r for r in site.requests if r.path.startswith("/20")]
        assert len(site.seen("/")) >= 2 and len(articles) >= 3  # the index and every article
    # And no output shows any secret.
    leaks = [
        (name, secret)
        for name, text in operator.outputs.items()
        for secret in SECRETS
        if secret in text
    ]
    assert not leaks, leaks
    # The redacted forms are there instead: the URLs are still recognisable.
    assert "apikey=***" in operator.outputs["check"]
    assert "token=***" in operator.outputs["file feeds/url-auth.rss"]


@pytest.mark.parametrize(
    "auth",
    [f'"bob:{URL_PASSWORD}"', f'["bob", "{URL_PASSWORD}"]', f'{{ user = "{URL_PASSWORD}a:" }}'],
)
def test_a_mistyped_auth_is_not_repeated(tmp_path: Path, auth: str) -> None:
    sources = f'[[source]]\nid = "a"\nurl = "https://a.test/"\nauth = {auth}\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, sources), env=state_env())
    assert "auth" in str(caught.value) and URL_PASSWORD not in str(caught.value)
