"""Site rules at the edges: the config (`site_rules` folders, `check`'s report, reloading when a
rule file changes) and `feedworker extract` showing which rule file and directives applied."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.backend import state_env
from tests.localserver import LocalServer
from tests.test_siterules_e2e import article_html, text_of
from worker.cli import main
from worker.config import load_config
from worker.errors import ConfigError
from worker.service.reload import ConfigWatcher

SOURCES = '[[source]]\nid = "news"\nurl = "https://news.example.com/"\n'


def make_config(root: Path, worker: str, rules: dict[str, str] | None = None) -> Path:
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "feedworker.toml").write_text(f"[worker]\n{worker}")
    (config / "sources.toml").write_text(SOURCES)
    if rules is not None:
        folder = root / "rules"
        folder.mkdir(exist_ok=True)
        for name, text in rules.items():
            (folder / name).write_text(text)
    return config


def test_check_lists_unusable_rule_lines_and_loads_the_rest(tmp_path: Path, capsys) -> None:
    rules = {
        "example.com.txt": "body: //article\n",
        "broken.example.txt": "body: //article\nbody: //div[\nunknown_thing: 1\n",
    }
    config = make_config(tmp_path, 'site_rules = ["rules"]\n', rules)
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "site rules: 2 file(s)" in out
    folder = tmp_path / "rules"
    assert f"  {folder / 'broken.example.txt'}:2: body: bad XPath" in out
    assert f"  {folder / 'broken.example.txt'}:3: unknown directive 'unknown_thing'" in out
    loaded = load_config(config, env=state_env())
    assert loaded.site_rules.for_host("broken.example") is not None  # its good line is used
    assert loaded.site_rules.for_host("www.example.com") is not None


def test_a_missing_rules_folder_is_a_config_problem(tmp_path: Path) -> None:
    config = make_config(tmp_path, 'site_rules = ["rules", "nowhere"]\n', {"a.example.txt": ""})
    with pytest.raises(ConfigError) as caught:
        load_config(config, env=state_env())
    (problem,) = caught.value.problems
    assert problem.field == "site_rules[1]" and "not found" in problem.message
    assert str(tmp_path / "nowhere") in problem.message


def test_folders_resolve_against_the_root_and_come_from_the_environment(tmp_path: Path) -> None:
    config = make_config(tmp_path, "", {"a.example.txt": "body: //main\n"})
    loaded = load_config(config, env={"FEEDWORKER_SITE_RULES": "rules"})
    assert loaded.settings.site_rules == (tmp_path / "rules",)
    assert loaded.site_rules.for_host("a.example") is not None
    assert load_config(config, env=state_env()).site_rules.files == 0


def test_a_changed_rule_file_reloads_the_config(tmp_path: Path) -> None:
    config_dir = make_config(
        tmp_path, 'site_rules = ["rules"]\n', {"a.example.txt": "body: //main\n"}
    )
    config = load_config(config_dir, env=state_env())
    watcher = ConfigWatcher(config, env=state_env())
    assert watcher.poll() is None
    rule = tmp_path / "rules" / "a.example.txt"
    rule.write_text("body: //article\n")
    os.utime(rule, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert watcher.poll() is None  # not settled yet: an edit in progress
    new = watcher.poll()
    assert new is not None and new.digest != config.digest
    found = new.site_rules.for_host("a.example")
    assert found is not None and found.body == ("//article",)
    assert watcher.poll() is None


def test_extract_shows_the_rule_file_and_directives(tmp_path: Path, capsys) -> None:
    paragraphs = text_of(5)
    extra = '<div class="pager"><a class="next-page" href="/story/2/">Next page</a></div>'
    with LocalServer() as server:
        server.route("/robots.txt", headers={"Content-Type": "text/plain"}, body=b"")
        server.route("/story/", body=article_html("The story", paragraphs, extra))
        server.route("/story/2/", body=article_html("The story", text_of(6)))
        folder = tmp_path / "rules"
        folder.mkdir()
        (folder / "127.0.0.1.txt").write_text(
            "title: //h1\nbody: //div[@class='story-body']\ndate: //time/@datetime\n"
            "next_page_link: //a[@class='next-page']\nstrip: //nav\n"
        )
        url = server.url("/story/")
        assert (
            main(["extract", url, "--rules", str(folder), "--config", str(tmp_path / "none")]) == 0
        )
        out = capsys.readouterr().out
        assert f"site rule: {folder / '127.0.0.1.txt'}" in out
        assert "  found:   title, next_page_link, strip ×1, body" in out
        assert "  missed:  date" in out and "  body:    the rule's" in out
        assert "method:    rule" in out and "pages:     2, merged" in out
        assert paragraphs[0] in out and text_of(6)[0] in out
        assert main(["extract", url, "--no-rules", "--rules", str(folder)]) == 0
        plain = capsys.readouterr().out
        assert "site rule: not used (--no-rules)" in plain and "method:    rule" not in plain
        assert text_of(6)[0] not in plain
