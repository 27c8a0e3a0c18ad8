"""Pure stages stay pure: they never import the network, the database or the store."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "worker"
PURE = [
    "discover.py",
    "htmlparse.py",
    "dedupe.py",
    "urls.py",
    "xmlchars.py",
    "models.py",
    "sitemap.py",
    "feedsource.py",
    "kinds.py",
    "simhash.py",
    "health.py",
    "redact.py",
    "listread.py",
    "urlpattern.py",
    "xmldoc.py",
    "extract",
    "siterules",
    "multipage.py",
]
FORBIDDEN = {
    "psycopg",
    "worker.db",
    "httpx",
    "sqlite3",
    "socket",
    "worker.store",
    "worker.fetch",
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
    sample.write_text("import httpx\nfrom worker.store import Store\n")
    assert imported_modules(sample) == {"httpx", "worker.store"}
