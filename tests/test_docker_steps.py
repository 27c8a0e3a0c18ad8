"""The Dockerfile's install and start steps, performed without a Docker engine.

The Dockerfile is parsed; its COPY steps copy into a temporary /app, its `pip install` steps run
in a fresh virtual environment (this needs the package index), its CMD starts with the image's
environment and a config pointing at a 127.0.0.1 test site, its HEALTHCHECK must pass, and
SIGTERM must end it with exit code 0. Only the listening address is changed, the way an operator
would: `FEEDWORKER_SERVE_HOST=127.0.0.1` and `FEEDWORKER_SERVE_PORT=<a free port>` instead of the
image's 0.0.0.0:8080, so the test never listens beyond this machine.
"""

from __future__ import annotations

import copy
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


def parse_dockerfile(text: str, target: str | None = None) -> Image:
    """The image a build of `target` makes (default: the last stage, as `docker build .`);
    a stage `FROM` an earlier one starts from what that one made."""
    stages: dict[str, Image] = {}
    image = Image()
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            image = copy.deepcopy(stages[base.strip()]) if base.strip() in stages else Image()
            stages[name.strip() or base.strip()] = image
        elif keyword == "ENV":
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
    return stages[target] if target is not None else image


def test_the_browser_target_adds_debian_chromium_to_the_same_image() -> None:
    """`docker build --target browser`: the default image plus Debian's headless Chromium (no
    browser download), still as the unprivileged user; the default target has no browser."""
    text = DOCKERFILE.read_text()
    plain, browser = parse_dockerfile(text), parse_dockerfile(text, "browser")
    installs = [run for run in browser.runs if "apt-get install" in run]
    assert len(installs) == 1 and "chromium-headless-shell" in installs[0]
    assert not any("chromium" in run for run in plain.runs)
    assert browser.user == plain.user == "feedworker" and browser.cmd == plain.cmd
    assert browser.env["FEEDWORKER_RENDER_SANDBOX"] == "false"
    assert browser.runs[: len(plain.runs)] == plain.runs


def test_pyproject_license_is_an_spdx_string() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"  # PEP 639; the table form is deprecated
    (setuptools,) = [r for r in project["build-system"]["requires"] if "setuptools" in r]
    assert setuptools.replace(" ", "") == "setuptools>=77"  # the first to read the string


def test_dockerfile_shape() -> None:
    image = parse_dockerfile(DOCKERFILE.read_text())
    assert image.user not in ("root", "0") and image.workdir == "/app"
    assert {"/app/feeds", "/app/state"} <= set(image.volumes)
    assert "/app/config" not in image.volumes  # mounted read-only by the operator
    assert image.env["FEEDWORKER_CONFIG"] == "/app/config"
    assert image.cmd[:3] == ["feedworker", "run", "--serve"]
    assert image.env["FEEDWORKER_SERVE_HOST"] == "0.0.0.0"  # a container listens on all
    assert "/healthz" in " ".join(image.healthcheck) and "curl" not in image.healthcheck
    assert any("pip install" in run for run in image.runs)


# Flags that override a [worker] setting: none may be in the image's command, or the operator's
# FEEDWORKER_<SETTING> would silently lose (flags win over settings).
SETTING_FLAGS = {"--host": "serve_host", "--port": "serve_port", "--grace": "shutdown_grace"}


@pytest.mark.parametrize(
    ("operator_env", "address", "grace"),
    [
        ({}, ("0.0.0.0", int(IMAGE_PORT)), 30.0),
        (
            {"FEEDWORKER_SERVE_PORT": "9000", "FEEDWORKER_SHUTDOWN_GRACE": "45"},
            ("0.0.0.0", 9000),
            45.0,
        ),
        ({"FEEDWORKER_SERVE_HOST": "127.0.0.1"}, ("127.0.0.1", int(IMAGE_PORT)), 30.0),
    ],
)
def test_the_operators_environment_wins_over_the_image_command(
    tmp_path: Path, operator_env: dict[str, str], address: tuple[str, int], grace: float
) -> None:
    from worker.cli import _grace, _listen_address, _parser
    from worker.config import load_config

    image = parse_dockerfile(DOCKERFILE.read_text())
    assert not set(SETTING_FLAGS) & set(image.cmd), image.cmd
    args = _parser().parse_args(image.cmd[1:])
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "sources.toml").write_text('[[source]]\nid = "a"\nurl = "https://a.example/"\n')
    env = {**image.env, **operator_env}  # as `docker run -e` sets them over the image's ENV
    settings = load_config(config_dir, env).settings
    assert _listen_address(args, settings) == address
    assert _grace(args, settings) == grace


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
            # No deprecation banner (the old license table printed one on every install).
            assert "Deprecat" not in done.stderr, done.stderr[-3000:]
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
        run_env = {**build.env(), "FEEDWORKER_SERVE_HOST": "127.0.0.1"}  # docker run -e ...
        run_env["FEEDWORKER_SERVE_PORT"] = port
        log_path = tmp_path / "container.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                image.cmd, cwd=build.app, env=run_env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                base = f"http://127.0.0.1:{port}"
                try:
                    health = wait_for(lambda: get_or_none(f"{base}/healthz"), 90, "/healthz")
                except AssertionError as exc:
                    raise AssertionError(
                        f"{exc}; the command said:\n{log_path.read_text()}"
                    ) from None
                assert health.status_code == 200, log_path.read_text()  # type: ignore[attr-defined]
                check = [str(build.bin(w)) if w == "python" else w for w in image.healthcheck]
                assert subprocess.run(check, env=run_env, timeout=60).returncode == 0
                feed = build.app / "feeds" / "blog.rss"
                wait_for(feed.exists, 90, "the first run's feed")
                assert httpx.get(f"{base}/feeds/blog.rss").status_code == 200
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=90) == 0, log_path.read_text()
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
