"""The Dockerfile's install and start steps, performed without a Docker engine.

The Dockerfile is parsed; its COPY steps copy into a temporary /app, its `pip install` steps run
in a fresh virtual environment (this needs the package index), its CMD starts with the image's
environment and a config pointing at a 127.0.0.1 test site, its HEALTHCHECK must pass, and
SIGTERM must end it with exit code 0. Only the listening address is changed, the way an operator
would: `FEEDWORKER_SERVE_HOST=127.0.0.1` and `FEEDWORKER_SERVE_PORT=<a free port>` instead of the
image's 0.0.0.0:8080, so the test never listens beyond this machine.

Build arguments (`ARG`, `--build-arg`) and Docker's variable substitution are read as Docker reads
them. A stage that another copies from (`COPY --from=site-rules`) has its `RUN` lines performed
by a shell in a folder standing for its `WORKDIR`, with `git` and `apt-get` replaced by stubs
that log their arguments: the site rules' fetch is checked without the network.
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
from collections.abc import Mapping
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
    args: dict[str, str] = field(default_factory=dict)  # the stage's ARG values (RUN sees them)
    workdir: str = "/"
    copies: list[Copy] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    user: str = "root"
    volumes: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


@dataclass
class Copy:
    """A COPY step: from the build context, or (`stage`) from an earlier stage's files."""

    sources: list[str]
    dest: str
    stage: Image | None = None


# Docker's substitution in ENV, COPY and WORKDIR: $NAME, ${NAME}, ${NAME:-word} (word when NAME
# is unset or empty) and ${NAME:+word} (word when NAME is set and not empty).
VARIABLE = re.compile(r"\$\{(\w+)(?::([-+])([^}]*))?\}|\$(\w+)")


def substitute(text: str, values: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1) or match.group(4), "")
        if match.group(2) == "-":
            return value or match.group(3)
        if match.group(2) == "+":
            return match.group(3) if value else ""
        return value

    return VARIABLE.sub(one, text)


def declared_args(text: str) -> dict[str, str]:
    """The build arguments declared before the first FROM, with their defaults."""
    declared = {}
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = shlex.split(rest)[0].partition("=")
            declared[name] = default
    return declared


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


def parse_dockerfile(
    text: str, target: str | None = None, build_args: Mapping[str, str] | None = None
) -> Image:
    """The image a build of `target` makes (default: the last stage, as `docker build .`) with
    `build_args` (`--build-arg NAME=value`); a stage `FROM` an earlier one starts from what that
    one made, without its ARGs (Docker's scope: each stage declares the ones it uses)."""
    given = dict(build_args or {})
    defaults = declared_args(text)
    stages: dict[str, Image] = {}
    image = Image()
    for keyword, rest in instructions(text):
        values = {**image.args, **image.env}
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            image = copy.deepcopy(stages[base.strip()]) if base.strip() in stages else Image()
            image.args = {}
            stages[name.strip() or base.strip()] = image
        elif keyword == "ARG" and stages:
            name, has_default, default = shlex.split(rest)[0].partition("=")
            image.args[name] = given.get(name, default if has_default else defaults.get(name, ""))
        elif keyword == "ENV":
            pairs = (pair.split("=", 1) for pair in shlex.split(rest))
            image.env.update({key: substitute(value, values) for key, value in pairs})
        elif keyword == "WORKDIR":
            image.workdir = substitute(rest, values)
        elif keyword == "COPY":
            words = [substitute(word, values) for word in shlex.split(rest)]
            stage = next(
                (w.removeprefix("--from=") for w in words if w.startswith("--from=")), None
            )
            *sources, dest = [word for word in words if not word.startswith("--")]
            image.copies.append(Copy(sources, dest, stages[stage] if stage else None))
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


UPSTREAM_RULES = "https://github.com/fivefilters/ftr-site-config.git"
IMAGE_RULES = "/app/site-rules"


def site_rules_stage(image: Image) -> Copy:
    (step,) = [step for step in image.copies if step.stage is not None]
    assert step.dest == IMAGE_RULES and step.stage is not None
    return step


def one_source_config(folder: Path) -> Path:
    folder.mkdir()
    (folder / "sources.toml").write_text('[[source]]\nid = "a"\nurl = "https://a.example/"\n')
    return folder


def test_site_rules_are_off_by_default(tmp_path: Path) -> None:
    """Without `--build-arg SITE_RULES_REF` nothing is installed or fetched, the rules folder
    is empty and FEEDWORKER_SITE_RULES is empty, which the config reads as unset."""
    from worker.config import load_config

    text = DOCKERFILE.read_text()
    assert declared_args(text)["SITE_RULES_REF"] == ""
    assert parse_dockerfile(text, "browser").env["FEEDWORKER_SITE_RULES"] == ""
    image = parse_dockerfile(text)
    assert image.env["FEEDWORKER_SITE_RULES"] == ""
    stubs = Stubs(tmp_path / "stubs")
    stage = site_rules_stage(image).stage
    assert stage is not None
    folder = build_stage(stage, tmp_path / "stage", stubs)
    assert stubs.calls() == [] and list(folder.iterdir()) == []
    config = load_config(one_source_config(tmp_path / "config"), image.env)
    assert config.settings.site_rules == () and not config.site_rules


@pytest.mark.parametrize(
    ("build_args", "repository", "ref"),
    [
        ({"SITE_RULES_REF": "HEAD"}, UPSTREAM_RULES, "HEAD"),
        (
            {
                "SITE_RULES_REF": "e607dc10ea432381ac04ee09f77a2d79212fc566",
                "SITE_RULES_REPO": "https://git.example.org/mirror/ftr-site-config.git",
            },
            "https://git.example.org/mirror/ftr-site-config.git",
            "e607dc10ea432381ac04ee09f77a2d79212fc566",
        ),
    ],
    ids=["default-branch", "pinned-commit-of-a-mirror"],
)
def test_the_site_rules_build_argument_fetches_them_and_points_site_rules_there(
    tmp_path: Path, build_args: dict[str, str], repository: str, ref: str
) -> None:
    """`--build-arg SITE_RULES_REF=<ref>`: git is installed in a stage of its own, the ref is
    fetched shallowly, its commit noted, `.git` dropped; both targets copy the folder to
    /app/site-rules and name it in FEEDWORKER_SITE_RULES, which the worker reads."""
    from worker.config import load_config

    text = DOCKERFILE.read_text()
    assert parse_dockerfile(text, "browser", build_args).env["FEEDWORKER_SITE_RULES"] == IMAGE_RULES
    image = parse_dockerfile(text, None, build_args)
    assert image.env["FEEDWORKER_SITE_RULES"] == IMAGE_RULES
    assert not any("git" in run for run in image.runs)  # git stays in the rules' stage
    stubs = Stubs(tmp_path / "stubs")
    stage = site_rules_stage(image).stage
    assert stage is not None
    folder = build_stage(stage, tmp_path / "stage", stubs)
    calls = stubs.calls()
    fetch = f"git fetch -q --depth 1 {repository} {ref}"
    (install,) = [call for call in calls if call.startswith("apt-get install")]
    assert " git " in install and calls.index(install) < calls.index(fetch)
    assert calls.index(fetch) < calls.index("git checkout -q FETCH_HEAD")
    assert not (folder / ".git").exists()
    assert (folder / "COMMIT").read_text().strip() == FAKE_COMMIT

    app = tmp_path / "app"  # stands for the image's /app
    shutil.copytree(folder, app / "site-rules")
    env = {key: value.replace("/app", str(app)) for key, value in image.env.items()}
    config = load_config(one_source_config(app / "config"), env)
    assert config.settings.site_rules == (app / "site-rules",)
    rules = config.site_rules.for_host("www.example.com")
    assert rules is not None and config.site_rules.files == 1  # README.md and COMMIT are no rules


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


FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Stand-ins for the network tools a stage runs: each logs its arguments; `git checkout` leaves a
# rule file and a README, as a checkout of ftr-site-config would.
STUB_SCRIPTS = {
    "apt-get": "",
    "git": f"""case "$1" in
  init) mkdir .git ;;
  checkout) printf 'body: //article\\n' > example.com.txt; printf 'rules\\n' > README.md ;;
  rev-parse) echo {FAKE_COMMIT} ;;
esac""",
}


class Stubs:
    """A folder of stub tools to put first on PATH, and the log of their calls."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.log = folder / "calls.log"
        self.log.touch()
        for name, body in STUB_SCRIPTS.items():
            script = folder / name
            script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{self.log}"\n{body}\n')
            script.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()


def build_stage(stage: Image, root: Path, stubs: Stubs) -> Path:
    """Perform `stage`'s RUN steps with `sh` in `root` + its WORKDIR, its ARGs in the
    environment (as Docker passes them) and `stubs` first on PATH; the WORKDIR folder."""
    workdir = root / stage.workdir.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**stage.args, "PATH": f"{stubs.folder}:{os.environ.get('PATH', '')}"}
    for run in stage.runs:
        done = subprocess.run(
            ["sh", "-c", run], cwd=workdir, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{run}\n{done.stdout}{done.stderr}"
    return workdir


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
        for number, step in enumerate(self.image.copies):
            dest = self.path(step.dest) if step.dest.startswith("/") else self.app / step.dest
            origin = REPO
            if step.stage is not None:  # that stage's files: its RUN steps under a root of its own
                origin = self.root / "stages" / str(number)
                build_stage(step.stage, origin, Stubs(self.root / "stubs"))
            for source in step.sources:
                self.copy(origin / source.lstrip("/"), dest)
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
