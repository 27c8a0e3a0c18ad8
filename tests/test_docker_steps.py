"""The Dockerfile's install and start steps, performed without a Docker engine.

The Dockerfile is parsed; its COPY steps copy into a temporary /app, its `pip install` steps run
in a fresh virtual environment (this needs the package index), its CMD starts with the image's
environment and a config pointing at a 127.0.0.1 test site, its HEALTHCHECK must pass, and
SIGTERM must end it with exit code 0. Only the listening address is changed: 127.0.0.1 and a free
port instead of 0.0.0.0:8080, so the test never listens beyond this machine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import venv
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.localserver import LocalServer
from tests.test_cli import REPO, blog_source, free_port, get_or_none, serve_blog, wait_for

DOCKERFILE = REPO / "Dockerfile"
IMAGE_PORT = "8080"


@dataclass
class Image:
    """What the test needs from a Dockerfile, in order."""

    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    user: str = "root"
    volumes: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    steps = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            steps.append((keyword.upper(), rest.strip()))
    return steps


def parse_dockerfile(text: str) -> Image:
    image = Image()
    for keyword, rest in instructions(text):
        if keyword == "ENV":
            image.env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        elif keyword == "WORKDIR":
            image.workdir = rest
        elif keyword == "COPY":
            *sources, dest = shlex.split(rest)
            image.copies.append((sources, dest))
        elif keyword == "RUN":
            image.runs.append(rest)
        elif keyword == "USER":
            image.user = rest
        elif keyword == "VOLUME":
            image.volumes = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            image.healthcheck = json.loads(rest[rest.index("CMD") + 3 :])
        elif keyword == "CMD":
            image.cmd = json.loads(rest)
    return image


def test_dockerfile_shape() -> None:
    image = parse_dockerfile(DOCKERFILE.read_text())
    assert image.user not in ("root", "0") and image.workdir == "/app"
    assert {"/app/feeds", "/app/state"} <= set(image.volumes)
    assert "/app/config" not in image.volumes  # mounted read-only by the operator
    assert image.env["FEEDWORKER_CONFIG"] == "/app/config"
    assert image.cmd[:3] == ["feedworker", "run", "--serve"]
    assert _option(image.cmd, "--host") == "0.0.0.0" and _option(image.cmd, "--port") == IMAGE_PORT
    assert "/healthz" in " ".join(image.healthcheck) and "curl" not in image.healthcheck
    assert any("pip install" in run for run in image.runs)


def _option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def _with_option(cmd: list[str], name: str, value: str) -> list[str]:
    cmd = list(cmd)
    cmd[cmd.index(name) + 1] = value
    return cmd


class Build:
    """Performs an `Image`'s steps under `root` (standing for the image's `/`)."""

    def __init__(self, image: Image, root: Path) -> None:
        self.image = image
        self.root = root
        self.app = self.path(image.workdir)
        self.venv = root / "venv"
        self.skipped: list[str] = []

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def env(self) -> dict[str, str]:
        mapped = {k: v.replace("/app", str(self.app)) for k, v in self.image.env.items()}
        base = {k: v for k, v in os.environ.items() if not k.startswith(("FEEDWORKER_", "PIP_"))}
        base.pop("PYTHONPATH", None)
        mapped.pop("PIP_NO_CACHE_DIR", None)  # the local pip cache keeps the test quick
        return {**base, **mapped, "PATH": f"{self.venv / 'bin'}:{base.get('PATH', '')}"}

    def perform(self) -> None:
        self.app.mkdir(parents=True)
        venv.EnvBuilder(with_pip=True).create(self.venv)
        for sources, dest in self.image.copies:
            for source in sources:
                self.copy(REPO / source, self.app / dest)
        for run in self.image.runs:
            for command in (part.strip() for part in run.split("&&")):
                self.run_step(command)

    def copy(self, source: Path, dest: Path) -> None:
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(source, dest, ignore=ignore, dirs_exist_ok=True)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / source.name)

    def run_step(self, command: str) -> None:
        words = shlex.split(command)
        if words[:2] == ["pip", "install"]:
            pip = [str(self.bin("python")), "-m", "pip", "install", "-q", *words[2:]]
            done = subprocess.run(
                pip, cwd=self.app, env=self.env(), capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, done.stderr[-3000:]
        elif words[:2] == ["mkdir", "-p"]:
            for folder in words[2:]:
                self.path(folder).mkdir(parents=True, exist_ok=True)
        else:  # useradd, chown, rm: about the image's users and layers, not the install
            self.skipped.append(command)


@pytest.mark.slow
def test_dockerfile_install_and_start_steps(tmp_path: Path) -> None:
    image = parse_dockerfile(DOCKERFILE.read_text())
    build = Build(image, tmp_path)
    build.perform()
    assert build.bin("feedworker").exists()
    assert all(s.split()[0] in ("useradd", "chown", "rm") for s in build.skipped), build.skipped

    with LocalServer() as site:
        serve_blog(site)
        config_dir = build.app / "config"  # stands for the operator's read-only mount
        shutil.rmtree(config_dir)
        config_dir.mkdir()
        (config_dir / "sources.toml").write_text(blog_source(site))
        (config_dir / "feedworker.toml").write_text("[worker]\nper_host_delay = 0\n")
        config_dir.chmod(0o555)

        port = str(free_port())
        cmd = _with_option(_with_option(image.cmd, "--host", "127.0.0.1"), "--port", port)
        log_path = tmp_path / "container.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd, cwd=build.app, env=build.env(), stdout=log, stderr=subprocess.STDOUT
            )
            try:
                base = f"http://127.0.0.1:{port}"
                try:
                    health = wait_for(lambda: get_or_none(f"{base}/healthz"), 30, "/healthz")
                except AssertionError as exc:
                    raise AssertionError(
                        f"{exc}; the command said:\n{log_path.read_text()}"
                    ) from None
                assert health.status_code == 200, log_path.read_text()  # type: ignore[attr-defined]
                check = [
                    str(build.bin(word)) if word == "python" else word.replace(IMAGE_PORT, port)
                    for word in image.healthcheck
                ]
                assert subprocess.run(check, env=build.env(), timeout=10).returncode == 0
                feed = build.app / "feeds" / "blog.rss"
                wait_for(feed.exists, 20, "the first run's feed")
                assert httpx.get(f"{base}/feeds/blog.rss").status_code == 200
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=40) == 0, log_path.read_text()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                config_dir.chmod(0o755)
    assert (build.app / "state" / "feedworker.db").exists()
    assert sys.executable not in log_path.read_text()  # ran from the fresh venv, not ours

    # The installed package carries its sample site (package data), so the demo works offline.
    demo = [str(build.bin("feedworker")), "demo", "--once", "--dir", str(tmp_path / "demo")]
    done = subprocess.run(demo, env=build.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "4 new articles" in done.stdout, done.stdout + done.stderr
