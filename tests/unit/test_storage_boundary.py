"""The storage boundary holds: SQL and database connections only under core/storage, storage importing
nothing above it, and the user-facing errors importable without loading anything else of core."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SQL = re.compile(r"\.execute\(|\bSELECT |\bINSERT |\bUPDATE |\bDELETE FROM|\bCREATE |\.(read|write)\(\) as ")


def _sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def test_sql_runs_only_under_core_storage():
    storage = ROOT / "core" / "storage"
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _sources("core", "app", "pages")
        if storage not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SQL.search(line)
    ]
    assert offenders == []


def _runtime_imports(path: Path) -> list[str]:
    """Every module a file imports when it runs (anywhere, functions included), not under TYPE_CHECKING."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_storage_imports_nothing_above_storage():
    allowed = ("core.storage.", "core.errors.", "core.atomic", "core.config", "core.processes")  # the bottom layer
    offenders = [
        f"{path.name}: {name}"
        for path in _sources("core/storage")
        for name in _runtime_imports(path)
        if name.split(".")[0] in {"core", "app", "pages"} and not name.startswith(allowed)
    ]
    assert offenders == []


@pytest.mark.subprocess  # a fresh interpreter is the only way to see what an import loads
def test_the_errors_module_loads_no_other_core_module():
    code = "import sys, core.errors; print(sorted(m for m in sys.modules if m.startswith('core')))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "['core', 'core.errors']"
