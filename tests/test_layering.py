"""The architecture, stated as data and checked on every module's imports.

Two rules:

1. `LAYERS`: which part of `worker` may import which. A part is a package (`worker.fetch`) or a
   top-level module (`worker.config`); an entry names a part, or one module of a part when only
   that one may be used (`worker.service.health`: the pure verdicts, not the service).
   Importing within one's own part is always allowed. The service layer never imports the web
   layer: what both need (feed versions, file names, gzip level) belongs to publishing.
2. `PURE`: modules that take data and return data. Besides what `LAYERS` allows, they import
   nothing that reaches the network, the disk, a database, the clock, randomness or the logging
   system (`SIDE_EFFECTS`), so each can be read, tested and run in an extractor process alone.

Imports are read from the source (function-level imports included) and resolved to module
paths: `from worker import store` is `worker.store`, `from worker.store import state` is
`worker.store.state`, `from worker.models import Item` is `worker.models`. A forbidden entry
matches a module and everything below it (`worker.store` catches `worker.store.state`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "worker"

# Everything a part builds on, besides itself. Read top to bottom: the foundations, the pure
# stages, the edges (network, database, files), the place they meet, the worker around it, the
# HTTP server, and what a person runs.
LAYERS: dict[str, set[str]] = {
    "worker": set(),
    "worker.models": set(),
    "worker.errors": set(),
    "worker.redact": set(),
    "worker.urls": set(),
    "worker.urlpattern": set(),
    "worker.siterules": {"worker.urls"},
    # `xml_safe` cleans every string that will end up in a feed, wherever it is made.
    "worker.extract": {
        "worker.errors",
        "worker.models",
        "worker.urls",
        "worker.siterules",
        "worker.publish.xmlchars",
    },
    "worker.dedupe": {"worker.publish.xmlchars"},
    # Item filters read an item's text the way extraction renders it.
    "worker.filters": {"worker.models", "worker.extract", "worker.urlpattern"},
    "worker.publish": {"worker.errors", "worker.models", "worker.redact"},
    # Loading a config hands its secrets to the log handler, which masks them from then on.
    "worker.config": {
        "worker.errors",
        "worker.fetch.cookies",
        "worker.filters",
        "worker.models",
        "worker.redact",
        "worker.service.logs",
        "worker.siterules",
        "worker.urlpattern",
        "worker.urls",
    },
    # Options built from the settings take their defaults from them (`worker.config`).
    "worker.fetch": {
        "worker.config",
        "worker.errors",
        "worker.models",
        "worker.redact",
        "worker.urls",
    },
    # The browser's own requests are answered through the fetcher (politeness, the SSRF guard).
    "worker.render": {
        "worker.errors",
        "worker.models",
        "worker.redact",
        "worker.urls",
        "worker.fetch",
    },
    "worker.store": {"worker.errors", "worker.models", "worker.redact", "worker.dedupe"},
    # Listing documents are read where pages are extracted (`extractpool`), and judged by the
    # same pure markers as source health (`health`).
    "worker.listing": {
        "worker.config",
        "worker.errors",
        "worker.models",
        "worker.urls",
        "worker.urlpattern",
        "worker.fetch",
        "worker.extract",
        "worker.service.health",
        "worker.service.extractpool",
    },
    "worker.pipeline": {
        "worker.config",
        "worker.dedupe",
        "worker.errors",
        "worker.extract",
        "worker.fetch",
        "worker.filters",
        "worker.listing",
        "worker.models",
        "worker.publish",
        "worker.redact",
        "worker.render",
        "worker.service.extractpool",
        "worker.service.health",
        "worker.service.logs",
        "worker.siterules",
        "worker.store",
        "worker.urls",
    },
    "worker.service": {
        "worker.config",
        "worker.dedupe",
        "worker.errors",
        "worker.extract",
        "worker.fetch",
        "worker.filters",
        "worker.listing",
        "worker.models",
        "worker.pipeline",
        "worker.publish",
        "worker.redact",
        "worker.render",
        "worker.siterules",
        "worker.store",
        "worker.urls",
    },
    "worker.web": {
        "worker.config",
        "worker.errors",
        "worker.extract",
        "worker.fetch",
        "worker.filters",
        "worker.listing",
        "worker.models",
        "worker.publish",
        "worker.redact",
        "worker.service.logs",
        "worker.service.metrics",
        "worker.service.websub",
        "worker.store",
        "worker.urls",
    },
    "worker.commands": {
        "worker.config",
        "worker.errors",
        "worker.extract",
        "worker.fetch",
        "worker.filters",
        "worker.listing",
        "worker.models",
        "worker.pipeline",
        "worker.publish",
        "worker.redact",
        "worker.render",
        "worker.service",
        "worker.siterules",
        "worker.store",
        "worker.urls",
        "worker.web",
    },
    "worker.cli": {"*"},  # the commands build everything
    "worker.__main__": {"worker.cli"},
}

# Pure modules and packages (a package: every module in it).
PURE = [
    "worker/models.py",
    "worker/errors.py",
    "worker/urls.py",
    "worker/urlpattern.py",
    "worker/redact.py",
    "worker/fetch/decode.py",
    "worker/listing/__init__.py",
    "worker/listing/discover.py",
    "worker/listing/feedsource.py",
    "worker/listing/kinds.py",
    "worker/listing/read.py",
    "worker/listing/sitemap.py",
    "worker/listing/xmldoc.py",
    "worker/extract",
    "worker/siterules/__init__.py",
    "worker/siterules/apply.py",
    "worker/siterules/lookup.py",
    "worker/siterules/parse.py",
    "worker/dedupe",
    "worker/publish/__init__.py",
    "worker/publish/render.py",
    "worker/publish/xmlchars.py",
    "worker/service/health.py",
    "worker/render/policy.py",
    "worker/fetch/cookies.py",
    "worker/filters.py",
    "worker/listing/selector.py",
    "worker/web/page.py",
    "worker/web/statuspage.py",
]
SIDE_EFFECTS = {
    # the network
    "httpx",
    "httpcore",
    "socket",
    "ssl",
    "asyncio",
    "urllib.request",
    "http.client",
    "uvicorn",
    "starlette",
    # databases
    "sqlite3",
    "psycopg",
    "procrastinate",
    # files, processes and threads
    "os",
    "pathlib",
    "tempfile",
    "shutil",
    "subprocess",
    "threading",
    "multiprocessing",
    "concurrent",
    # the clock, randomness, the logging system
    "time",
    "random",
    "logging",
    # the worker's own edges (`worker.config` is not one: its value objects are data, and only
    # its loader reads files)
    "worker.fetch.client",
    "worker.fetch.transport",
    "worker.fetch.guard",
    "worker.fetch.robots",
    "worker.listing.lister",
    "worker.siterules.load",
    "worker.store",
    "worker.publish.files",
    "worker.pipeline",
    "worker.service",  # all of it but the pure verdicts, `worker.service.health` (below)
    "worker.web",
    "worker.commands",
    "worker.cli",
}
PURE_EXCEPTIONS = {"worker.service.health"}


def module_name(path: Path, root: Path = ROOT) -> str:
    """`worker/fetch/client.py` -> `worker.fetch.client`; a package's `__init__` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_worker_module(name: str, root: Path = ROOT) -> bool:
    relative = root / Path(*name.split("."))
    return relative.with_suffix(".py").is_file() or (relative / "__init__.py").is_file()


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module `path` imports, resolved (see the module docstring)."""
    package = module_name(path if path.name == "__init__.py" else path.parent, root)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from . import x`, `from ..store import state`
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                names.add(candidate if is_worker_module(candidate, root) else base)
    return names


def part_of(module: str) -> str:
    """The `LAYERS` part a worker module belongs to: its package, or the top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def matches(module: str, entry: str) -> bool:
    return module == entry or module.startswith(entry + ".")


def worker_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def pure_files() -> list[Path]:
    files: list[Path] = []
    for name in PURE:
        target = ROOT / name
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return files


def layer_violations(path: Path, root: Path = ROOT) -> list[str]:
    own = part_of(module_name(path, root))
    allowed = LAYERS.get(own)
    if allowed is None:
        return [f"{own} is not in LAYERS: add it with the parts it may import"]
    if "*" in allowed:
        return []
    return sorted(
        f"{own} may not import {imported}"
        for imported in imported_modules(path, root)
        if imported.startswith("worker.")
        and part_of(imported) != own
        and not any(matches(imported, entry) for entry in allowed)
    )


def impurities(path: Path, root: Path = ROOT) -> list[str]:
    return sorted(
        imported
        for imported in imported_modules(path, root)
        if any(matches(imported, entry) for entry in SIDE_EFFECTS)
        and not any(matches(imported, entry) for entry in PURE_EXCEPTIONS)
    )


@pytest.mark.parametrize("path", worker_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_what_its_layer_may(path: Path) -> None:
    assert not layer_violations(path)


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_module_imports_no_side_effects(path: Path) -> None:
    bad = impurities(path)
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_service_layer_never_imports_the_web_layer() -> None:
    assert not any(matches("worker.web", entry) for entry in LAYERS["worker.service"])
    for path in sorted((PACKAGE / "service").rglob("*.py")):
        assert not {m for m in imported_modules(path) if matches(m, "worker.web")}, path.name


def test_every_part_and_pure_module_named_exists() -> None:
    parts = {part_of(module_name(path)) for path in worker_files()}
    assert set(LAYERS) == parts
    for name in PURE:
        assert (ROOT / name).exists(), name
    for entries in LAYERS.values():
        for entry in entries - {"*"}:
            assert is_worker_module(entry), entry


def test_the_product_reads_no_test_variable() -> None:
    """Tests choose the state backend through fixtures and FEEDWORKER_STATE_URL, as an operator
    would; nothing in `worker/` looks for a variable of the test harness."""
    readers = [
        path.relative_to(ROOT)
        for path in [*worker_files(), *PACKAGE.rglob("*.toml")]
        if "FEEDWORKER_TEST_" in path.read_text()
    ]
    assert readers == []


# -- the checker sees what it must ---------------------------------------------------------

PROBE = """\
import httpx
import os.path
from worker import store
from worker.store import state
from worker.store.state import Store
from worker.models import Item
from . import body
from ..fetch import client


def later():
    import time
"""


def test_every_spelling_of_an_import_resolves_to_its_module(tmp_path: Path) -> None:
    for name in [
        "worker/__init__.py",
        "worker/models.py",
        "worker/store/__init__.py",
        "worker/store/state.py",
        "worker/fetch/__init__.py",
        "worker/fetch/client.py",
        "worker/extract/__init__.py",
        "worker/extract/body.py",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    probe = tmp_path / "worker" / "extract" / "probe.py"
    probe.write_text(PROBE)
    assert imported_modules(probe, tmp_path) == {
        "httpx",
        "os.path",
        "worker.store",
        "worker.store.state",
        "worker.models",
        "worker.extract.body",
        "worker.fetch.client",
        "time",
    }
    assert impurities(probe, tmp_path) == [
        "httpx",
        "os.path",
        "time",
        "worker.fetch.client",
        "worker.store",
        "worker.store.state",
    ]
    assert layer_violations(probe, tmp_path) == [
        "worker.extract may not import worker.fetch.client",
        "worker.extract may not import worker.store",
        "worker.extract may not import worker.store.state",
    ]


def test_a_pure_module_may_use_the_pure_health_verdicts_and_no_other_service_module(
    tmp_path: Path,
) -> None:
    probe = tmp_path / "worker" / "listing" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from worker.service.health import script_shell\nimport worker.service.runner\n"
    )
    assert impurities(probe, tmp_path) == ["worker.service.runner"]
