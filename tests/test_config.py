"""worker.config: the shipped example loads; every bad input is refused with file, source, field."""

from __future__ import annotations

import re
import shutil
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from worker.config import (
    Config,
    Settings,
    Source,
    default_config_dir,
    load_config,
    parse_duration,
)
from worker.errors import ConfigError, ConfigProblem

SHIPPED = Path(__file__).resolve().parent.parent / "config"
GOOD = '[[source]]\nid = "blog"\nurl = "https://example.com/"\n'


def make_config(
    tmp_path: Path, sources: str = GOOD, worker: str | None = None, **extra: str
) -> Path:
    """A config folder under tmp_path/site; `extra` maps sources.d file names to contents."""
    config_dir = tmp_path / "site" / "config"
    config_dir.mkdir(parents=True)
    if sources is not None:
        (config_dir / "sources.toml").write_text(sources)
    if worker is not None:
        (config_dir / "feedworker.toml").write_text(worker)
    if extra:
        (config_dir / "sources.d").mkdir()
        for name, text in extra.items():
            (config_dir / "sources.d" / name).write_text(text)
    return config_dir


def problems(config_dir: Path, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir, env=env or {})
    return list(caught.value.problems)


def one_problem(config_dir: Path, env: dict[str, str] | None = None) -> ConfigProblem:
    found = problems(config_dir, env)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def source_problem(tmp_path: Path, body: str) -> ConfigProblem:
    return one_problem(make_config(tmp_path, "[[source]]\n" + body))


# -- the shipped example ---------------------------------------------------------------------


def test_shipped_config_loads() -> None:
    config = load_config(SHIPPED, env={})
    assert config.sources, "the shipped config must define a source"
    assert config.settings == Settings.model_validate({}, context={"root": SHIPPED.parent})


def test_shipped_commented_examples_are_valid(tmp_path: Path) -> None:
    """Uncommenting the full example in sources.toml, and the sources.d example, must load."""
    text = (SHIPPED / "sources.toml").read_text()
    block = text[text.index("# [[source]]") :]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    example = (SHIPPED / "sources.d" / "example.toml.example").read_text()
    config = load_config(make_config(tmp_path, uncommented, **{"example.toml": example}), env={})
    full = config.source("example-news")
    assert full.cron and full.jitter == timedelta(minutes=5) and len(full.remove) == 3
    assert full.drop and dict(full.headers) == {"Accept-Language": "en-GB"}
    assert config.source("example-blog").every == timedelta(hours=2)


def test_shipped_sources_file_documents_every_field() -> None:
    """The field list at the top of sources.toml is an operator's reference: no field missing."""
    text = (SHIPPED / "sources.toml").read_text()
    listed = set(re.findall(r"^#   ([a-z_]+) ", text, re.MULTILINE))
    assert set(Source.model_fields) <= listed, set(Source.model_fields) - listed


def test_shipped_worker_file_documents_every_setting() -> None:
    text = (SHIPPED / "feedworker.toml").read_text()
    for name in Settings.model_fields:
        assert re.search(rf"^# {name} = ", text, re.MULTILINE), name
    settings = "[worker]\n" + "\n".join(
        line.removeprefix("# ")
        for line in text.splitlines()
        if re.match(r"# [a-z_]+ = ", line)
        and not re.match(r"# ((public|webhook)_url|serve_token|proxy|websub_hub)", line)
    )
    assert Settings.model_validate(
        tomllib.loads(settings)["worker"], context={"root": SHIPPED.parent}
    ) == Settings.model_validate({}, context={"root": SHIPPED.parent})


# -- good input ------------------------------------------------------------------------------


def test_defaults_and_filled_in_title(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path), env={})
    source = config.source("blog")
    assert source.title == "blog"
    assert source.every == timedelta(hours=1) and source.cron is None
    assert source.include == () and source.remove == () and source.max_items == 50
    assert config.active_sources == config.sources
    assert config.settings.log_level == "INFO"


def test_every_field_parses(tmp_path: Path) -> None:
    body = """
id = "full"
url = "https://example.com/news/"
title = "Full"
language = "pt-BR"
cron = "*/15 * * * *"
jitter = "30s"
links = "h2 > a"
include = "/20[0-9]{2}/"
exclude = ["/tag/", "/author/"]
max_items = 1000
body = "article"
remove = ".share"
respect_robots = false
allow_private_networks = true
enabled = false
"""
    config = load_config(make_config(tmp_path, "[[source]]" + body), env={})
    source = config.sources[0]
    assert source.every is None and source.cron == "*/15 * * * *"
    assert source.jitter == timedelta(seconds=30)
    assert [p.pattern for p in source.include] == ["/20[0-9]{2}/"]
    assert [p.pattern for p in source.exclude] == ["/tag/", "/author/"]
    assert source.remove == (".share",)
    assert not source.respect_robots and source.allow_private_networks
    assert config.active_sources == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("1d", timedelta(days=1)),
        ("1.5h", timedelta(minutes=90)),
        (90, timedelta(seconds=90)),
    ],
)
def test_parse_duration(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_settings_durations_and_paths(tmp_path: Path) -> None:
    worker = """[worker]
feeds_dir = "public/feeds"
state_url = "sqlite:///var/state.db"
read_timeout = "1m"
per_host_delay = 0
log_level = "debug"
public_url = "https://feeds.example.org/"
"""
    config = load_config(make_config(tmp_path, worker=worker), env={})
    root = tmp_path / "site"
    settings = config.settings
    assert config.root == root and config.config_dir == root / "config"
    assert settings.feeds_dir == root / "public" / "feeds"
    assert settings.state_url == f"sqlite:///{root}/var/state.db"
    assert settings.state_url.startswith("sqlite:////")
    assert settings.sqlite_path == root / "var" / "state.db"
    assert settings.read_timeout == 60.0 and settings.per_host_delay == 0.0
    assert settings.log_level == "DEBUG"
    assert settings.public_url == "https://feeds.example.org"


def test_absolute_and_postgres_state_urls(tmp_path: Path) -> None:
    worker = '[worker]\nstate_url = "sqlite:////srv/state.db"\n'
    settings = load_config(make_config(tmp_path, worker=worker), env={}).settings
    assert settings.sqlite_path == Path("/srv/state.db")
    url = "postgresql://fw@db/feedworker"
    settings = load_config(tmp_path / "site" / "config", env={"FEEDWORKER_STATE_URL": url}).settings
    assert settings.state_url == url and settings.sqlite_path is None


def test_relative_paths_ignore_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir = make_config(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(config_dir, env={})
    assert config.settings.feeds_dir == tmp_path / "site" / "feeds"
    monkeypatch.chdir(tmp_path / "site")
    assert load_config("config", env={}).settings.feeds_dir == tmp_path / "site" / "feeds"


def test_missing_files_mean_defaults(tmp_path: Path) -> None:
    config_dir = make_config(tmp_path, sources=None, **{"one.toml": GOOD})
    config = load_config(config_dir, env={})
    assert [s.id for s in config.sources] == ["blog"]
    assert config.files == (config_dir / "sources.d" / "one.toml",)


def test_sources_d_order(tmp_path: Path) -> None:
    def entry(source_id: str) -> str:
        return f'[[source]]\nid = "{source_id}"\nurl = "https://{source_id}.example/"\n'

    config_dir = make_config(
        tmp_path,
        entry("first") + entry("second"),
        **{
            "b.toml": entry("from-b"),
            "a.toml": entry("from-a"),
            "10-c.toml": entry("from-c"),
            "notes.txt": "not toml",
            "skip.toml.example": "[[ not even toml",
            ".#lock.toml": "[[ editor junk",
        },
    )
    config = load_config(config_dir, env={})
    assert [s.id for s in config.sources] == ["first", "second", "from-c", "from-a", "from-b"]
    assert [p.name for p in config.files] == ["sources.toml", "10-c.toml", "a.toml", "b.toml"]


def test_digest_changes_with_files(tmp_path: Path) -> None:
    config_dir = make_config(tmp_path)
    first = load_config(config_dir, env={}).digest
    assert load_config(config_dir, env={}).digest == first
    (config_dir / "sources.toml").write_text(GOOD + "# a comment\n")
    second = load_config(config_dir, env={}).digest
    assert second != first
    (config_dir / "feedworker.toml").write_text("[worker]\n")
    assert load_config(config_dir, env={}).digest != second


def test_source_lookup(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path), env={})
    assert isinstance(config, Config)
    with pytest.raises(KeyError, match=r"no source with id 'nope'.*known: blog"):
        config.source("nope")


def test_models_are_frozen(tmp_path: Path) -> None:
    source = Source(id="x", url="https://example.com/")
    with pytest.raises(ValueError):
        source.id = "y"  # type: ignore[misc]


def test_default_config_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEEDWORKER_CONFIG", raising=False)
    assert default_config_dir() == Path("config")
    monkeypatch.setenv("FEEDWORKER_CONFIG", "/srv/site/config")
    assert default_config_dir() == Path("/srv/site/config")


# -- environment overrides -------------------------------------------------------------------


def test_env_overrides(tmp_path: Path) -> None:
    config_dir = make_config(tmp_path, worker='[worker]\nlog_level = "INFO"\nconcurrency = 3\n')
    env = {
        "FEEDWORKER_LOG_LEVEL": "DEBUG",
        "FEEDWORKER_CONCURRENCY": "12",
        "FEEDWORKER_READ_TIMEOUT": "2m",
        "FEEDWORKER_CONNECT_TIMEOUT": "2.5",
        "FEEDWORKER_FEEDS_DIR": "out",
        "FEEDWORKER_PUBLIC_URL": "",  # empty means unset
    }
    settings = load_config(config_dir, env=env).settings
    assert settings.log_level == "DEBUG" and settings.concurrency == 12
    assert settings.read_timeout == 120.0 and settings.connect_timeout == 2.5
    assert settings.feeds_dir == tmp_path / "site" / "out"
    assert settings.public_url is None


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("YES", True), ("0", False), ("off", False)]
)
def test_env_overrides_booleans_and_lists(tmp_path: Path, raw: str, expected: bool) -> None:
    env = {"FEEDWORKER_DEDUPE_ACROSS_SOURCES": raw, "FEEDWORKER_TRACKING_PARAMS": "ref, src_*"}
    settings = load_config(make_config(tmp_path), env=env).settings
    assert settings.dedupe_across_sources is expected
    assert tuple(settings.tracking_params) == ("ref", "src_*")


def test_env_overrides_read_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDWORKER_MAX_LINKS_PER_RUN", "7")
    assert load_config(make_config(tmp_path)).settings.max_links_per_run == 7


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("FEEDWORKER_CONCURRENCY", "many", "integer"),
        ("FEEDWORKER_CONCURRENCY", "0", "1 or more"),
        ("FEEDWORKER_LOG_LEVEL", "LOUD", "DEBUG"),
        ("FEEDWORKER_READ_TIMEOUT", "soon", "duration"),
        ("FEEDWORKER_STATE_URL", "mysql://x", "sqlite"),
        ("FEEDWORKER_DEDUPE_ACROSS_SOURCES", "maybe", "true or false"),
    ],
)
def test_bad_env_value_names_the_variable(
    tmp_path: Path, variable: str, value: str, words: str
) -> None:
    problem = one_problem(make_config(tmp_path), env={variable: value})
    assert problem.field == variable and problem.file == "environment"
    assert words in problem.message


# -- bad input: one line naming file, source and field ---------------------------------------


def test_config_dir_missing(tmp_path: Path) -> None:
    problem = one_problem(tmp_path / "nowhere")
    assert "config folder not found" in str(problem) and "nowhere" in str(problem)


def test_no_sources(tmp_path: Path) -> None:
    problem = one_problem(make_config(tmp_path, sources="# nothing yet\n"))
    assert problem.file == "config/sources.toml"
    assert "no sources defined" in problem.message


def test_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    problem = one_problem(make_config(tmp_path, GOOD + 'title = = "x"\n'))
    assert problem.file == "config/sources.toml"
    assert "TOML syntax error" in problem.message and "line 4, column" in problem.message


def test_syntax_error_in_worker_file(tmp_path: Path) -> None:
    problem = one_problem(make_config(tmp_path, worker="[worker\n"))
    assert problem.file == "config/feedworker.toml" and "line 1" in problem.message


def test_unknown_key_suggests(tmp_path: Path) -> None:
    problem = source_problem(tmp_path, 'id = "blog"\nurl = "https://x.org/"\nexlude = "/tag/"\n')
    assert (problem.file, problem.source, problem.field) == (
        "config/sources.toml",
        "blog",
        "exlude",
    )
    assert problem.message == "unknown key; did you mean 'exclude'?"
    assert str(problem) == (
        "config/sources.toml: source 'blog': exlude: unknown key; did you mean 'exclude'?"
    )


@pytest.mark.parametrize(
    ("key", "intended"), [("interval", "every"), ("selector", "links"), ("content", "body")]
)
def test_unknown_key_suggests_synonym(tmp_path: Path, key: str, intended: str) -> None:
    problem = source_problem(tmp_path, f'id = "blog"\nurl = "https://x.org/"\n{key} = "x"\n')
    assert problem.message == f"unknown key; did you mean {intended!r}?"


def test_unknown_key_without_close_match_lists_keys(tmp_path: Path) -> None:
    problem = source_problem(tmp_path, 'id = "blog"\nurl = "https://x.org/"\nzzz = 1\n')
    assert "allowed keys: id, url" in problem.message


def test_unknown_worker_key_suggests(tmp_path: Path) -> None:
    problem = one_problem(make_config(tmp_path, worker="[worker]\nlog_levle = 'DEBUG'\n"))
    assert (problem.file, problem.field) == ("config/feedworker.toml", "log_levle")
    assert "did you mean 'log_level'" in problem.message


def test_setting_outside_worker_table(tmp_path: Path) -> None:
    problem = one_problem(make_config(tmp_path, worker="concurrency = 3\n"))
    assert problem.field == "concurrency" and "[worker]" in problem.message


def test_misspelled_source_table(tmp_path: Path) -> None:
    found = problems(make_config(tmp_path, GOOD.replace("[[source]]", "[[sources]]")))
    assert "did you mean 'source' tables?" in found[0].message


def test_single_bracket_source_table(tmp_path: Path) -> None:
    problem = one_problem(make_config(tmp_path, GOOD.replace("[[source]]", "[source]")))
    assert problem.field == "source" and "[[source]]" in problem.message


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("max_items = '50'", "max_items", "expected an integer, got a string '50'"),
        ("enabled = 'yes'", "enabled", "expected true or false, got a string"),
        ("title = 5", "title", "expected a string, got an integer"),
        ("max_items = 0", "max_items", "must be 1 or more, got 0"),
        ("max_items = 1001", "max_items", "must be 1000 or less"),
        ("language = 'english language'", "language", "language tag"),
        ("remove = [1]", "remove", "expected a CSS selector string, got an integer"),
    ],
)
def test_wrong_type_or_range(tmp_path: Path, line: str, field: str, words: str) -> None:
    problem = source_problem(tmp_path, f'id = "blog"\nurl = "https://x.org/"\n{line}\n')
    assert (problem.source, problem.field) == ("blog", field)
    assert words in problem.message


def test_missing_url(tmp_path: Path) -> None:
    problem = source_problem(tmp_path, 'id = "blog"\n')
    assert (problem.file, problem.source, problem.field) == ("config/sources.toml", "blog", "url")
    assert "required key missing" in problem.message and "https://" in problem.message


def test_missing_id_names_the_table(tmp_path: Path) -> None:
    config_dir = make_config(tmp_path, GOOD + '[[source]]\nurl = "https://x.org/"\n')
    problem = one_problem(config_dir)
    assert (problem.source, problem.field) == ("[[source]] #2", "id")
    assert "required key missing" in problem.message


@pytest.mark.parametrize("every", ['"0m"', "0", "-5", '"-5m"', '"soon"', '"15 minutes ago"'])
def test_bad_interval(tmp_path: Path, every: str) -> None:
    problem = source_problem(tmp_path, f'id = "blog"\nurl = "https://x.org/"\nevery = {every}\n')
    assert (problem.source, problem.field) == ("blog", "every")
    assert '"15m"' in problem.message  # shows the format


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    config_dir = make_config(tmp_path, GOOD, **{"blog.toml": GOOD})
    problem = one_problem(config_dir)
    assert (problem.file, problem.source, problem.field) == (
        "config/sources.d/blog.toml",
        "blog",
        "id",
    )
    assert "duplicate id 'blog'" in problem.message
    assert "config/sources.toml" in problem.message


def test_duplicate_ids_in_one_file(tmp_path: Path) -> None:
    problem = one_problem(make_config(tmp_path, GOOD + GOOD))
    assert (problem.source, problem.field) == ("blog", "id")
    assert "already used in config/sources.toml ([[source]] #1)" in problem.message


@pytest.mark.parametrize("bad_id", ["../etc", "a/b", "feed.xml", "", "-x", "x" * 65, "all"])
def test_bad_id(tmp_path: Path, bad_id: str) -> None:
    problem = source_problem(tmp_path, f'id = "{bad_id}"\nurl = "https://x.org/"\n')
    assert (problem.source, problem.field) == ("[[source]] #1", "id")
    assert "a-z" in problem.message or "reserved" in problem.message


def test_upper_case_id_suggests_lower(tmp_path: Path) -> None:
    problem = source_problem(tmp_path, 'id = "MyBlog"\nurl = "https://x.org/"\n')
    assert problem.field == "id" and "lower case only: try 'myblog'" in problem.message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("example.com/blog", 'has no scheme; did you mean "https://example.com/blog"?'),
        ("https:///path", "no host"),
        ("https://example.com\\\\blog", "backslash"),
        ("https://example.com/a b", "space"),
        ("https://example.com:99999/", "bad port"),
    ],
)
def test_bad_url(tmp_path: Path, url: str, words: str) -> None:
    problem = source_problem(tmp_path, f'id = "blog"\nurl = "{url}"\n')
    assert (problem.source, problem.field) == ("blog", "url")
    assert words in problem.message


def test_bad_regex_names_pattern(tmp_path: Path) -> None:
    body = 'id = "blog"\nurl = "https://x.org/"\ninclude = ["/ok/", "/post/(\\\\d+"]\n'
    problem = source_problem(tmp_path, body)
    assert (problem.source, problem.field) == ("blog", "include")
    assert "'/post/(\\\\d+'" in problem.message and "missing )" in problem.message


@pytest.mark.parametrize("field", ["links", "body", "remove"])
def test_bad_selector(tmp_path: Path, field: str) -> None:
    problem = source_problem(tmp_path, f'id = "blog"\nurl = "https://x.org/"\n{field} = "div["\n')
    assert (problem.source, problem.field) == ("blog", field)
    assert "invalid CSS selector 'div['" in problem.message


def test_every_and_cron(tmp_path: Path) -> None:
    body = 'id = "blog"\nurl = "https://x.org/"\nevery = "1h"\ncron = "0 * * * *"\n'
    problem = source_problem(tmp_path, body)
    assert problem.field == "cron" and "not both" in problem.message


@pytest.mark.parametrize("cron", ["61 * * * *", "* * *", "every monday"])
def test_bad_cron(tmp_path: Path, cron: str) -> None:
    problem = source_problem(tmp_path, f'id = "blog"\nurl = "https://x.org/"\ncron = "{cron}"\n')
    assert (problem.source, problem.field) == ("blog", "cron")
    assert f"bad crontab {cron!r}" in problem.message and "5 fields" in problem.message


def test_bad_worker_values(tmp_path: Path) -> None:
    worker = """[worker]
concurrency = "8"
connect_timeout = -1
log_level = "LOUD"
state_url = "mysql://db"
public_url = "ftp://x"
feeds_dir = 3
"""
    found = problems(make_config(tmp_path, worker=worker))
    fields = {p.field for p in found}
    assert fields == {
        "concurrency",
        "connect_timeout",
        "log_level",
        "state_url",
        "public_url",
        "feeds_dir",
    }
    assert all(p.file == "config/feedworker.toml" and p.source is None for p in found)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    sources = """
[[source]]
id = "Bad/Id"
url = "ftp://x"

[[source]]
id = "good"
url = "https://x.org/"
every = "0s"
include = "("
"""
    config_dir = make_config(
        tmp_path,
        sources,
        worker="[worker]\nconcurency = 3\n",
        **{"broken.toml": "[[source]\n", "dup.toml": sources.split("\n\n")[1]},
    )
    found = problems(config_dir)
    lines = [str(p) for p in found]
    expected = [
        "config/feedworker.toml: concurency: unknown key; did you mean 'concurrency'?",
        "config/sources.d/broken.toml: TOML syntax error",
        "config/sources.d/dup.toml: source 'good': id: duplicate id 'good'",
        "config/sources.toml: source '[[source]] #1': id: invalid id 'Bad/Id'",
        "config/sources.toml: source '[[source]] #1': url: only http and https",
        "config/sources.toml: source 'good': every: must be more than zero",
        "config/sources.toml: source 'good': include: bad regular expression '('",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, lines)
    files = [p.file for p in found]
    # Grouped by file, in reading order: worker file, sources.toml, then sources.d by name.
    assert (
        files
        == ["config/feedworker.toml"]
        + ["config/sources.toml"] * 4
        + ["config/sources.d/broken.toml"]
        + ["config/sources.d/dup.toml"] * 3
    )
    assert not any("pydantic" in line or "Input should" in line for line in lines)
    assert len(found) == len(expected) + 2  # dup.toml repeats good's two bad fields


def test_error_message_is_one_line_per_problem(tmp_path: Path) -> None:
    config_dir = make_config(tmp_path, '[[source]]\nid = "A"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir, env={})
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]
    assert len(caught.value.problems) == 2


def test_unreadable_utf8(tmp_path: Path) -> None:
    config_dir = make_config(tmp_path)
    (config_dir / "sources.toml").write_bytes(b'[[source]]\nid = "\xff"\n')
    problem = one_problem(config_dir)
    assert "not valid UTF-8" in problem.message


def test_shipped_folder_copy_loads_elsewhere(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "config")
    config = load_config(tmp_path / "config", env={})
    assert config.settings.feeds_dir == tmp_path / "feeds"


# -- source kinds, pages, URL lists, extra tracking parameters (issue 5) -------------------------

URL = 'id = "s"\nurl = "https://e.com/"\n'


def test_kind_pages_and_urls_parse(tmp_path: Path) -> None:
    sources = (
        f'[[source]]\n{URL}kind = "index"\npages = 3\n'
        '[[source]]\nid = "list"\nurl = "https://e.com/"\nurls = ["https://e.com/a", "https://e.com/b"]\n'
        '[[source]]\nid = "map"\nurl = "https://e.com/"\nkind = "sitemap"\n'
    )
    config = load_config(make_config(tmp_path, sources), env={})
    assert (config.source("s").kind, config.source("s").pages) == ("index", 3)
    assert config.source("list").kind == "urls"  # implied by urls
    assert config.source("list").urls == ("https://e.com/a", "https://e.com/b")
    assert config.source("map").kind == "sitemap" and config.source("map").pages == 1
    assert load_config(make_config(tmp_path / "d"), env={}).source("blog").kind == "auto"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ('kind = "rss"\n', "kind", 'expected one of "auto", "index"'),
        ('kind = "urls"\n', None, 'kind = "urls" needs urls'),
        ('kind = "feed"\nurls = ["https://e.com/a"]\n', None, 'urls is for kind = "urls"'),
        ('kind = "feed"\npages = 2\n', None, "pages follows index pages"),
        ('kind = "sitemap"\nlinks = "a"\n', None, "links selects links on an index page"),
        ("pages = 0\n", "pages", "must be 1 or more"),
        ("pages = 21\n", "pages", "must be 20 or less"),
        ('urls = ["ftp://e.com/a"]\n', "urls", "urls[0]: only http and https"),
        ('urls = "https://e.com/a"\n', "urls", "expected an array of URLs"),
    ],
)
def test_kind_problems(tmp_path: Path, body: str, field: str | None, message: str) -> None:
    problem = source_problem(tmp_path, URL + body)
    assert problem.source == "s" and message in problem.message, str(problem)
    if field:
        assert problem.field == field


@pytest.mark.parametrize(("key", "intended"), [("type", "kind"), ("max_pages", "pages")])
def test_kind_key_synonyms(tmp_path: Path, key: str, intended: str) -> None:
    problem = source_problem(tmp_path, URL + f"{key} = 1\n")
    assert f"did you mean {intended!r}" in problem.message


def test_tracking_params_setting(tmp_path: Path) -> None:
    worker = '[worker]\ntracking_params = ["ref", "src_*"]\n'
    config = load_config(make_config(tmp_path, worker=worker), env={})
    assert config.settings.tracking_params == ("ref", "src_*")
    bad = make_config(tmp_path / "bad", worker='[worker]\ntracking_params = ["a=b"]\n')
    assert "query parameter name" in one_problem(bad).message


# -- dedupe, update checks and retention (issue 8) --------------------------------------------


def test_recheck_keep_days_and_near_duplicate_settings(tmp_path: Path) -> None:
    sources = (
        '[[source]]\nid = "blog"\nurl = "https://example.org/"\nrecheck = "1d"\nkeep_days = 30\n'
    )
    worker = "[worker]\nnear_duplicate_distance = 6\ndedupe_across_sources = true\n"
    config = load_config(make_config(tmp_path, sources, worker), env={})
    source = config.source("blog")
    assert source.recheck == timedelta(days=1) and source.keep_days == 30
    assert config.settings.near_duplicate_distance == 6 and config.settings.dedupe_across_sources


def test_dedupe_defaults(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path), env={})
    assert config.source("blog").recheck is None and config.source("blog").keep_days == 90
    assert config.settings.near_duplicate_distance == 10
    assert not config.settings.dedupe_across_sources


def test_bad_dedupe_values(tmp_path: Path) -> None:
    sources = (
        '[[source]]\nid = "blog"\nurl = "https://example.org/"\nrecheck = "0s"\nkeep_days = 0\n'
    )
    worker = "[worker]\nnear_duplicate_distance = 12\n"
    found = problems(make_config(tmp_path, sources, worker))
    assert {p.field for p in found} == {"recheck", "keep_days", "near_duplicate_distance"}


@pytest.mark.sqlite_file  # a sqlite state_url's own problems: no FEEDWORKER_STATE_URL over it
def test_overflowing_values_are_problems_not_crashes(tmp_path: Path) -> None:
    config_dir = make_config(
        tmp_path,
        worker="[worker]\nconnect_timeout = inf\nstate_url = 'sqlite:///state/x.db?mode=ro'\n",
        sources='[[source]]\nid = "a"\nurl = "https://a.example/"\nkeep_days = 1000000\nevery = "99999999999d"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    text = str(caught.value)
    assert "connect_timeout: must be at most 3650 days" in text
    assert "every: must be at most 3650 days" in text
    assert "keep_days" in text and "query parameters" in text
