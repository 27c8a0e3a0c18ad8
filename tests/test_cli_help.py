"""Command-line help: every command says what it does and shows an example; arguments have help;
intervals shown as written; a URL without a scheme gets a suggestion."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_e2e import write_config
from worker.cli import COMMANDS, _parser, main


def subcommands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix}{name}"
                yield full, sub
                yield from subcommands(sub, full + " ")


ALL = list(subcommands(_parser()))


def test_every_command_is_described() -> None:
    assert {name for name, _ in ALL} == set(COMMANDS)


@pytest.mark.parametrize(("name", "parser"), ALL, ids=[name for name, _ in ALL])
def test_help_has_a_description_and_an_example(
    name: str, parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*name.split(), "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    summary = COMMANDS[name].summary
    assert " ".join(summary.split()[:6]).lower() in " ".join(text.split()).lower()
    example = text.split("example:\n", 1)[1].strip()
    assert example.startswith(f"feedworker {name}")
    for action in parser._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"{name}: positional {action.dest} has no help"


def test_the_main_help_lists_every_command_with_its_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ("check", "run", "serve", "add", "try", "demo", "discover"):
        assert f"{name} {' '.join(COMMANDS[name].summary.split()[:4])}" in text


def test_demo_offers_no_config_it_would_ignore(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--config", "somewhere", "--once"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --config" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--config" not in capsys.readouterr().out


def test_check_shows_intervals_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = "".join(
        f'[[source]]\nid = "{source_id}"\nurl = "https://{source_id}.example/"\n{schedule}\n'
        for source_id, schedule in [
            ("six", 'every = "6h"'),
            ("hour", 'every = "1 hour"'),
            ("ninety", 'every = "90 minutes"'),
            ("seconds", "every = 900"),
            ("cron", 'cron = "0 7 * * 1-5"'),
            ("default", ""),
        ]
    )
    config = write_config(tmp_path, sources)
    assert main(["check", "--config", str(config)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "every 6h " in lines["six"]
    assert "every 1 hour " in lines["hour"]
    assert "every 90 minutes " in lines["ninety"]
    assert "every 900s " in lines["seconds"]
    assert "cron 0 7 * * 1-5 " in lines["cron"]
    assert "every 1h (default)" in lines["default"]


@pytest.mark.parametrize("command", ["discover", "extract"])
def test_a_url_without_a_scheme_gets_a_suggestion(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "example.com/blog/", "--config", str(tmp_path / "none")]) == 1
    assert 'did you mean "https://example.com/blog/"?' in capsys.readouterr().err


def test_a_config_url_without_a_scheme_gets_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, '[[source]]\nid = "blog"\nurl = "www.example.com/blog"\n')
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "source 'blog': url: URL 'www.example.com/blog' has no scheme;" in err
    assert 'did you mean "https://www.example.com/blog"?' in err
