"""Pure stages stay pure: they never import the network, the database or the store."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "worker"
PURE = [
    "listing/discover.py",
    "listing/sitemap.py",
    "listing/feedsource.py",
    "listing/kinds.py",
    "listing/read.py",
    "listing/xmldoc.py",
    "extract",
    "dedupe",
    "publish/xmlchars.py",
    "siterules",
    "service/health.py",
    "urls.py",
    "models.py",
    "redact.py",
    "urlpattern.py",
    "web/statuspage.py",
]
FORBIDDEN = {
    "psycopg",
    "worker.store.db",
    "worker.store.state",
    "httpx",
    "sqlite3",
    "socket",
    "worker.fetch.client",
    "worker.pipeline",
    "asyncio",
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def pure_files() -> list[Path]:
    files: list[Path] = []
    for name in PURE:
        target = PACKAGE / name
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return files


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_module_imports_no_side_effects(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_layering_check_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import httpx\nfrom worker.store.state import Store\n")
    assert imported_modules(sample) == {"httpx", "worker.store.state"}
