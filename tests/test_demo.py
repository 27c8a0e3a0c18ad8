"""`feedworker demo`: the bundled sample site scraped offline into a clean full-text feed."""

from __future__ import annotations

import re
import signal
import socket
from pathlib import Path

import feedparser
import httpx
import pytest

from tests.test_cli import Process, processes, wait_for
from worker.cli import main

__all__ = ["processes"]  # the fixture, imported for its side effect
# The demo ignores FEEDWORKER_* variables and keeps its own SQLite state: so on either pass.
pytestmark = pytest.mark.sqlite_file

TITLES = [
    "The first swallows over the water meadow",
    "Mending the dry-stone wall after the storm",
    "Bramble jelly and the last of the blackberries",
    "A barn owl takes to the new box",
]
NOISE = ["Popular posts", "garden gnomes", "Share on Mastodon", "Subscribe", "Copyright", "Older"]


def test_demo_once_writes_a_clean_full_text_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--once", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4 new articles" in out
    rss = tmp_path / "feeds" / "hedgerow-notes.rss"
    assert str(rss) in out
    feed = feedparser.parse(rss.read_bytes())
    assert not feed.bozo
    assert [entry.title for entry in feed.entries] == TITLES  # newest first, by their dates
    for entry in feed.entries:
        body = entry.content[0].value
        assert body.count("<p>") >= 4, body
        for noise in NOISE:
            assert noise not in body
    assert "kitchen windowsill" not in feed.entries[0].content[0].value
    assert "muslin hung from an upturned stool" in feed.entries[2].content[0].value


def test_demo_ignores_the_operators_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDWORKER_STATE_URL", f"sqlite:///{tmp_path}/operator.db")
    monkeypatch.setenv("FEEDWORKER_FEEDS_DIR", str(tmp_path / "operator-feeds"))
    assert main(["demo", "--once", "--dir", str(tmp_path / "demo")]) == 0
    assert not (tmp_path / "operator.db").exists() and not (tmp_path / "operator-feeds").exists()


def test_demo_serves_its_feeds_until_interrupted(tmp_path: Path, processes: list[Process]) -> None:
    process = Process.feedworker("demo", cwd=tmp_path)
    processes.append(process)
    assert process.proc.stdout is not None
    lines: list[str] = []

    def status_url() -> str | None:
        line = process.proc.stdout.readline().decode()  # type: ignore[union-attr]
        lines.append(line)
        found = re.search(r"status page:\s+(\S+)", line)
        return found.group(1) if found else None

    base = str(wait_for(status_url, what="the status page URL"))
    page = httpx.get(base, timeout=30)
    assert page.status_code == 200 and "Hedgerow Notes" in page.text
    feed = httpx.get(f"{base}feeds/hedgerow-notes.atom", timeout=30)
    assert feed.status_code == 200 and TITLES[0] in feed.text
    process.proc.send_signal(signal.SIGINT)
    assert process.proc.wait(timeout=60) == 0, process.log()


def test_demo_on_a_port_in_use_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["demo", "--dir", str(tmp_path), "--port", str(port)])
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
