"""The documentation names every setting, environment variable and command the code has.

docs/configuration.md is the settings reference: a field added to `Settings`, `Source`,
`HealthThresholds` or `SourceAuth` without a line there fails here, and so does a table row for a
key the code no longer has. The README's command table must hold every command and its
dependency list every package; links between the docs must resolve. (The shipped example files'
lists of keys are checked in tests/test_config.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from tests.test_cli_help import ALL as COMMANDS
from worker.config import ENV_PREFIX, HealthThresholds, Settings, Source, SourceAuth
from worker.service.reload import RESTART_ONLY_SETTINGS

REPO = Path(__file__).resolve().parents[1]
CONFIGURATION = REPO / "docs" / "configuration.md"
MODELS: tuple[type[BaseModel], ...] = (Settings, Source, HealthThresholds, SourceAuth)
# A FEEDWORKER_ name written out in the code, a doc or a build file.
ENV_NAME = re.compile(r"\bFEEDWORKER_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
# Where the product, its tests, benchmarks and builds read variables from.
CODE_FOLDERS = ("worker", "tests", "bench", ".ci")
BUILD_FILES = ("Makefile", "Dockerfile")


def fields() -> list[tuple[str, str]]:
    return [(model.__name__, name) for model in MODELS for name in model.model_fields]


def settings_variables() -> set[str]:
    """The FEEDWORKER_<SETTING> names the config loader reads (`_Loader._apply_env`)."""
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def names_in(paths: list[Path]) -> set[str]:
    return {name for path in paths for name in ENV_NAME.findall(path.read_text(errors="replace"))}


def code_files(folders: tuple[str, ...], builds: tuple[str, ...] = ()) -> list[Path]:
    found = [
        path
        for folder in folders
        for path in (REPO / folder).rglob("*")
        if path.is_file() and path.suffix in (".py", ".sh", "") and "__pycache__" not in path.parts
    ]
    return found + [REPO / name for name in builds]


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize(("model", "name"), fields(), ids=[f"{m}.{n}" for m, n in fields()])
def test_every_config_field_is_in_the_settings_reference(model: str, name: str) -> None:
    assert f"`{name}`" in CONFIGURATION.read_text(), (
        f"{model}.{name} is not documented in docs/configuration.md: add it (where it goes,"
        " its default, what it means)"
    )


def test_every_key_in_the_reference_tables_is_a_config_field() -> None:
    """The first cell of each table row under a settings heading names real keys only."""
    known = {name for _model, name in fields()}
    stale = []
    for row in CONFIGURATION.read_text().splitlines():
        if not row.startswith("| `"):
            continue
        first_cell = row.split("|")[1]
        for key in re.findall(r"`([a-z_]+)`", first_cell):
            if key not in known:
                stale.append(key)
    assert not stale, f"docs/configuration.md documents keys the code does not have: {stale}"


def test_variables_the_product_reads_are_in_the_settings_reference() -> None:
    """Names written out in worker/ (FEEDWORKER_CONFIG, FEEDWORKER_LOG_FORMAT, the secrets' own
    variables), and the rule that gives every other setting its FEEDWORKER_<KEY>."""
    text = CONFIGURATION.read_text()
    missing = sorted(names_in(code_files(("worker",))) - set(ENV_NAME.findall(text)))
    assert not missing, f"read by worker/ but not in docs/configuration.md: {missing}"
    assert "`FEEDWORKER_<KEY>`" in text
    # The one setting the rule does not cover (a table) is named as such.
    nested = [n for n, f in Settings.model_fields.items() if isinstance(f.default, BaseModel)]
    assert nested == ["health"] and "but `[worker.health]`" in text


def test_every_variable_the_docs_name_exists() -> None:
    """No doc names a variable nothing reads (a renamed setting, a typo)."""
    real = settings_variables() | names_in(code_files(CODE_FOLDERS, BUILD_FILES))
    for path in doc_files():
        unknown = sorted(set(ENV_NAME.findall(path.read_text())) - real)
        assert not unknown, f"{path.relative_to(REPO)} names variables nothing reads: {unknown}"


def test_the_restart_list_is_the_reloaders() -> None:
    text = " ".join(CONFIGURATION.read_text().split())
    paragraph = text.split("**Restart needed**", 1)[1].split("Every other setting", 1)[0]
    assert set(re.findall(r"`([a-z_]+)`", paragraph)) == RESTART_ONLY_SETTINGS


def test_the_readme_lists_every_command() -> None:
    readme = (REPO / "README.md").read_text()
    leaves = [
        name
        for name, _ in COMMANDS
        if not any(other.startswith(name + " ") for other, _ in COMMANDS)
    ]
    missing = [name for name in leaves if f"`feedworker {name}" not in readme]
    assert not missing, f"README's command table lacks {missing}"


def test_the_readme_explains_every_dependency() -> None:
    """Each package pyproject.toml installs (runtime, extras, test and bench) has its line in
    the README's dependency list, saying why it is there."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    names = {re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0] for requirement in requirements}
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Dependencies", 1)[1].lower()
    missing = sorted(name for name in names if name.lower() not in section)
    assert not missing, f"README's dependency list does not explain {missing}"


def test_every_topic_page_is_in_both_indexes() -> None:
    pages = {path.name for path in (REPO / "docs").glob("*.md")} - {"README.md"}
    index = (REPO / "docs" / "README.md").read_text()
    readme = (REPO / "README.md").read_text()
    assert not [page for page in pages if f"]({page})" not in index], "docs/README.md"
    assert not [page for page in pages if f"](docs/{page}" not in readme], "README.md"


def slug(heading: str) -> str:
    """A Markdown heading's anchor as GitHub makes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("path", doc_files(), ids=lambda path: path.name)
def test_links_between_the_docs_resolve(path: Path) -> None:
    """Every relative link names a file that exists, and a heading that exists in it."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in anchors(linked)
        ):
            broken.append(target)
    assert not broken, f"{path.relative_to(REPO)}: broken links {broken}"
