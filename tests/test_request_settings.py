"""A source's request settings: headers, user_agent, cookies_file / cookie_env, proxy.

Validated by the config with one problem per field, applied by the fetcher (headers to the
source's own site only, cookies where their domain says, every request through the proxy with
the SSRF guard judging the destination first), and never shown: no cookie value, header secret
or proxy password in `check`'s output, the logs or a run's error."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend import state_env
from tests.localserver import LocalServer
from tests.proxies import running_proxy
from tests.test_config import make_config, one_problem, source_problem
from worker.cli import main
from worker.config import load_config
from worker.errors import FetchError
from worker.fetch.client import Blocked, Fetcher, FetchOptions, RequestProfile
from worker.fetch.cookies import CookieSpec, parse_cookie_file, parse_cookie_header
from worker.models import Page
from worker.pipeline import request_profile
from worker.service.logs import setup_logging
from worker.service.runner import Worker

HTML = b"<!doctype html><html><head><title>t</title></head><body><p>ok</p></body></html>"
SECRET_COOKIE = "s3cr3t-session-value-42"
PROXY_PASSWORD = "pr0xy-passw0rd-77"
API_KEY = "k3y-9f8e7d6c5b4a"


def cookie_file_text(host: str, *, expired: int = 0) -> str:
    future = int(time.time()) + 86400
    lines = ["# Netscape HTTP Cookie File", "# exported by a browser extension", ""]
    lines.append(f"{host}\tFALSE\t/\tFALSE\t{future}\tsession\t{SECRET_COOKIE}")
    lines.append(f"#HttpOnly_{host}\tFALSE\t/\tFALSE\t0\tcsrf\tabc123def456")
    lines.append(f".other.example\tTRUE\t/\tFALSE\t{future}\telsewhere\tnot-for-this-host-1")
    lines += [f"{host}\tFALSE\t/\tFALSE\t1000\told{n}\tgone-value-{n}" for n in range(expired)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        running.route("/", body=HTML)
        yield running


# -- the cookie formats ------------------------------------------------------------------------


def test_cookie_file_is_read_with_its_flags_and_expired_cookies_counted() -> None:
    found = parse_cookie_file(cookie_file_text("news.example", expired=2), time.time())
    by_name = {cookie.name: cookie for cookie in found.cookies}
    assert set(by_name) == {"session", "csrf", "elsewhere"} and found.expired == 2
    assert by_name["csrf"].http_only and by_name["csrf"].expires is None
    assert by_name["session"].host_only and not by_name["elsewhere"].host_only
    assert SECRET_COOKIE not in repr(found)  # values stay out of repr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("news.example\tFALSE\t/\tFALSE\t0\tsession", "line 1: expected 7 tab-separated"),
        (f"news.example\tMAYBE\t/\tFALSE\t0\ts\t{SECRET_COOKIE}", "line 1: fields 2 and 4"),
        (f"# c\nnews.example\tFALSE\t/\tFALSE\tsoon\ts\t{SECRET_COOKIE}", "line 2: the expiry"),
        (f"news.example\tFALSE\t/\tFALSE\t0\tb@d name\t{SECRET_COOKIE}", "line 1: the cookie name"),
        ("# Netscape HTTP Cookie File\n\n", "no cookies in it"),
    ],
)
def test_a_bad_cookie_file_names_the_line_never_the_value(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_cookie_file(text, time.time())
    assert message in str(caught.value) and SECRET_COOKIE not in str(caught.value)


def test_a_cookie_header_value_becomes_cookies_of_the_host_only() -> None:
    found = parse_cookie_header(f"session={SECRET_COOKIE}; theme=dark", "News.Example")
    assert [(c.domain, c.name) for c in found.cookies] == [
        ("news.example", "session"),
        ("news.example", "theme"),
    ]
    with pytest.raises(ValueError, match="pair 2 is not name=value") as caught:
        parse_cookie_header(f"a=1; {SECRET_COOKIE}", "news.example")
    assert SECRET_COOKIE not in str(caught.value)


# -- the config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "advice"),
    [
        ("Host", "hop-by-hop or framing"),
        ("Transfer-Encoding", "hop-by-hop or framing"),
        ("Content-Length", "hop-by-hop or framing"),
        ("Connection", "hop-by-hop or framing"),
        ("Cookie", "cookies_file or cookie_env"),
        ("Authorization", "auth = {"),
        ("Accept-Encoding", "decodes bodies itself"),
        ("User-Agent", "user_agent"),
        ("If-None-Match", "conditional requests itself"),
    ],
)
def test_headers_feedworker_must_set_itself_are_refused(
    tmp_path: Path, header: str, advice: str
) -> None:
    body = f'id = "a"\nurl = "https://a.example/"\nheaders = {{ "{header}" = "{API_KEY}" }}\n'
    problem = source_problem(tmp_path, body)
    assert problem.field == "headers" and header in problem.message and advice in problem.message
    assert API_KEY not in str(problem)


def test_a_header_value_on_two_lines_is_refused(tmp_path: Path) -> None:
    body = 'id = "a"\nurl = "https://a.example/"\nheaders = { "X-A" = "one\\r\\nX-B: two" }\n'
    problem = source_problem(tmp_path, body)
    assert problem.field == "headers" and "one line" in problem.message


def test_request_settings_load_and_their_secrets_are_known(tmp_path: Path) -> None:
    config_dir = make_config(
        tmp_path,
        '[[source]]\nid = "a"\nurl = "https://news.example/"\n'
        'headers = { "Accept-Language" = "de-DE", "X-Api-Key" = "' + API_KEY + '" }\n'
        'user_agent = "Mozilla/5.0 (feedworker; +https://me.example/)"\n'
        'cookies_file = "secrets/news.cookies"\ncookie_env = "NEWS_COOKIE"\n'
        f'proxy = "http://me:{PROXY_PASSWORD}@127.0.0.1:3128"\n',
    )
    secrets = tmp_path / "site" / "secrets"
    secrets.mkdir()
    (secrets / "news.cookies").write_text(cookie_file_text("news.example", expired=1))
    config = load_config(
        config_dir, env={**state_env(), "NEWS_COOKIE": "consent=yes-please-1; lang=de-DE-x"}
    )
    source = config.source("a")
    assert source.headers == (("Accept-Language", "de-DE"), ("X-Api-Key", API_KEY))
    assert source.cookies_file is not None and len(source.cookies_file.cookies.cookies) == 3
    known = config.secret_values
    assert {SECRET_COOKIE, API_KEY, PROXY_PASSWORD, "yes-please-1"} <= known
    assert "de-DE" not in known  # Accept-Language is no secret
    (warning,) = config.warnings
    assert warning.field == "cookies_file" and "1 of 4 cookies" in warning.message
    profile = request_profile(source, config.settings)
    names = {(c.domain, c.name) for c in profile.cookies}
    assert ("news.example", "consent") in names and ("news.example", "session") in names
    assert profile.proxy == f"http://me:{PROXY_PASSWORD}@127.0.0.1:3128"


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (
            'cookie_env = "NOT_SET_ANYWHERE"',
            "cookie_env",
            "NOT_SET_ANYWHERE (cookie_env) is not set",
        ),
        ('cookies_file = "missing.txt"', "cookies_file", "cannot read cookies file"),
        ('proxy = "socks5h://127.0.0.1:1080"', "proxy", "socks5h:// (names resolved by the proxy)"),
        ('proxy = "ftp://127.0.0.1:21"', "proxy", "http, https or socks5"),
        ('proxy = "socks5://127.0.0.1"', "proxy", "give the port"),
        ('proxy = "http://127.0.0.1:3128/path"', "proxy", "scheme://host:port and nothing more"),
        ('render = "chrome"', "render", 'expected one of "none", "browser"'),
        (
            'render_wait = "article"',
            None,
            'render_wait applies to rendered pages: add render = "browser"',
        ),
        ('render = "browser"\nrender_timeout = "10m"', "render_timeout", "at most 300 s"),
        (
            'render = "browser"\nrender_allow_hosts = ["https://cdn.example/"]',
            "render_allow_hosts",
            "not a URL",
        ),
        ('user_agent = "two\\nlines"', "user_agent", "one non-empty line"),
    ],
)
def test_each_bad_request_setting_is_one_problem_naming_its_field(
    tmp_path: Path, line: str, field: str | None, message: str
) -> None:
    problem = source_problem(tmp_path, f'id = "a"\nurl = "https://a.example/"\n{line}\n')
    assert problem.field == field and message in problem.message, str(problem)


def test_a_source_may_opt_out_of_the_workers_proxy(tmp_path: Path) -> None:
    config_dir = make_config(
        tmp_path,
        '[[source]]\nid = "a"\nurl = "https://a.example/"\n'
        '[[source]]\nid = "b"\nurl = "https://b.example/"\nproxy = "none"\n',
        worker='[worker]\nproxy = "socks5://127.0.0.1:1080"\n',
    )
    config = load_config(config_dir, env=state_env())
    assert config.source("a").proxy_for(config.settings) == "socks5://127.0.0.1:1080"
    assert config.source("b").proxy_for(config.settings) is None
    bad = one_problem(make_config(tmp_path / "2", worker='[worker]\nproxy = "gopher://x:70"\n'))
    assert bad.field == "proxy"


def test_check_shows_the_settings_and_none_of_their_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = make_config(
        tmp_path,
        '[[source]]\nid = "a"\nurl = "https://news.example/"\n'
        'headers = { "X-Api-Key" = "' + API_KEY + '" }\n'
        'cookies_file = "secrets/news.cookies"\ncookie_env = "NEWS_COOKIE"\n'
        f'proxy = "http://me:{PROXY_PASSWORD}@127.0.0.1:3128"\n',
    )
    (tmp_path / "site" / "secrets").mkdir()
    (tmp_path / "site" / "secrets" / "news.cookies").write_text(cookie_file_text("news.example"))
    monkeypatch.setenv("NEWS_COOKIE", f"session={SECRET_COOKIE}x")
    assert main(["check", "--config", str(config_dir)]) == 0
    out = capsys.readouterr().out
    assert "headers: X-Api-Key" in out and "cookies: 3 from" in out and "$NEWS_COOKIE" in out
    assert "proxy: http://127.0.0.1:3128" in out
    for secret in (API_KEY, PROXY_PASSWORD, SECRET_COOKIE, "abc123def456"):
        assert secret not in out


# -- the fetcher applies them ------------------------------------------------------------------


def fetch_with(profile: RequestProfile, *urls: str) -> list[Page]:
    async def go() -> list[Page]:
        options = FetchOptions(user_agent="feedworker-test/1", per_host_delay=0, retries=0)
        async with Fetcher(options) as fetcher:
            session = fetcher.session(profile)
            pages = [await session.fetch_page(url, respect_robots=False) for url in urls]
            return [page for page in pages if isinstance(page, Page)]

    return asyncio.run(go())


def test_headers_and_cookies_go_to_the_sources_site_only(server: LocalServer) -> None:
    with LocalServer() as other:
        other.route("/", body=HTML)
        profile = RequestProfile(
            site=server.url("/"),
            headers=(("Accept-Language", "de-DE"), ("X-Api-Key", API_KEY)),
            user_agent="Mozilla/5.0 (compatible; test)",
            cookies=(
                CookieSpec("127.0.0.1", "session", SECRET_COOKIE),
                CookieSpec("news.example", "elsewhere", "not-for-this-host-1"),
            ),
        )
        fetch_with(profile, server.url("/"), other.url("/"))
        (own,) = server.requests
        (foreign,) = other.requests
    assert own.headers["x-api-key"] == API_KEY and own.headers["accept-language"] == "de-DE"
    assert own.headers["user-agent"] == "Mozilla/5.0 (compatible; test)"
    assert own.headers["cookie"] == f"session={SECRET_COOKIE}"
    # Another site (here another port of the host) gets the User-Agent, never the headers.
    assert "x-api-key" not in foreign.headers and "accept-language" not in foreign.headers
    assert foreign.headers["user-agent"] == "Mozilla/5.0 (compatible; test)"


def test_a_sessions_cookies_are_its_own(server: LocalServer) -> None:
    """Another source's session, on the same fetcher, sends none of them."""

    async def go() -> None:
        options = FetchOptions(user_agent="feedworker-test/1", per_host_delay=0, retries=0)
        async with Fetcher(options) as fetcher:
            with_cookie = fetcher.session(
                RequestProfile(cookies=(CookieSpec("127.0.0.1", "session", SECRET_COOKIE),))
            )
            await with_cookie.fetch_page(server.url("/"), respect_robots=False)
            await fetcher.session().fetch_page(server.url("/"), respect_robots=False)

    asyncio.run(go())
    first, second = server.requests
    assert first.headers.get("cookie") == f"session={SECRET_COOKIE}"
    assert "cookie" not in second.headers


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_every_request_goes_through_the_proxy(server: LocalServer, kind: str) -> None:
    with running_proxy(kind) as (proxy_url, seen):
        (page,) = fetch_with(RequestProfile(proxy=proxy_url), server.url("/"))
    assert b"ok" in page.text.encode() and len(server.requests) == 1
    expected = f"127.0.0.1:{server.port}"
    assert any(expected in target for target in seen.targets), seen.targets


def test_a_proxys_credentials_are_sent_and_never_logged(
    tmp_path: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the worker's own logging, at DEBUG: the password reaches the proxy only."""
    with running_proxy("socks5") as (proxy_url, seen):
        with_auth = proxy_url.replace("socks5://", f"socks5://me:{PROXY_PASSWORD}@")
        config_dir = make_config(
            tmp_path,
            f'[[source]]\nid = "a"\nurl = "{server.url("/")}"\nrespect_robots = false\n',
            worker=f'[worker]\nper_host_delay = 0\nstate_url = "sqlite:///{tmp_path}/s.db"\n'
            f'feeds_dir = "{tmp_path}/feeds"\nproxy = "{with_auth}"\n',
        )
        config = load_config(config_dir, env=state_env())
        setup_logging("DEBUG")

        async def go() -> None:
            async with Worker(config) as worker:
                await worker.run_once()

        asyncio.run(go())
    assert seen.auth and set(seen.auth) == {("me", PROXY_PASSWORD)} and server.seen("/")
    err = capsys.readouterr().err
    assert "run finished" in err and PROXY_PASSWORD not in err


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_the_guard_judges_the_destination_before_the_proxy(server: LocalServer, kind: str) -> None:
    """An untrusted link to another port of 127.0.0.1, or to a metadata address, is refused
    here: the proxy is never asked, and the target receives nothing."""

    async def go(url: str, proxy_url: str) -> FetchError:
        options = FetchOptions(user_agent="feedworker-test/1", per_host_delay=0, retries=0)
        async with Fetcher(options) as fetcher:
            session = fetcher.session(RequestProfile(proxy=proxy_url))
            with pytest.raises(FetchError) as caught:
                await session.fetch_page(
                    url,
                    allow_private=False,
                    trusted_origin="https://a.example/",
                    respect_robots=False,
                )
            return caught.value

    with running_proxy(kind) as (proxy_url, seen):
        for url in (server.url("/"), "http://169.254.169.254/latest/meta-data/"):
            error = asyncio.run(go(url, proxy_url))
            assert isinstance(error, Blocked) and "blocked address" in error.reason
        assert seen.targets == [] and server.requests == []


def test_a_run_sends_the_sources_settings_and_logs_no_secret(
    tmp_path: Path, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("/", body=b"<html><body><main><p>nothing listed</p></main></body></html>")
    config_dir = make_config(
        tmp_path,
        f'[[source]]\nid = "a"\nurl = "{server.url("/")}"\nrespect_robots = false\n'
        'headers = { "Accept-Language" = "de-DE" }\ncookie_env = "A_COOKIE"\n'
        'user_agent = "feedworker-test/2 (+https://me.example/)"\n',
        worker=f'[worker]\nper_host_delay = 0\nstate_url = "sqlite:///{tmp_path}/state.db"\n'
        f'feeds_dir = "{tmp_path}/feeds"\n',
    )
    config = load_config(config_dir, env={**state_env(), "A_COOKIE": f"session={SECRET_COOKIE}"})
    caplog.set_level(logging.DEBUG)

    async def go() -> None:
        async with Worker(config) as worker:
            await worker.run_once()

    asyncio.run(go())
    (request,) = server.seen("/")
    assert request.headers["cookie"] == f"session={SECRET_COOKIE}"
    assert request.headers["accept-language"] == "de-DE"
    assert request.headers["user-agent"].startswith("feedworker-test/2")
    assert SECRET_COOKIE not in caplog.text
