"""The arrows of docs/architecture.md point one way: ``idp`` uses ``adapters``,
``keys``, ``metadata`` (and the tests use ``sandbox``), which import nothing
of ``idp`` (a key reaches the world through its ports only)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def type_checking_only(path: Path) -> set[str]:
    """Imports under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module:
                    found.add(inner.module)
    return found


@pytest.mark.parametrize("package", ["adapters", "keys", "metadata", "sandbox"])
def test_lower_layers_import_nothing_of_idp(package):
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = {m for m in imported_modules(path) - type_checking_only(path)
                 if m == "idp" or m.startswith("idp.")}
        if wrong:
            offenders[str(path.relative_to(ROOT))] = sorted(wrong)
    assert offenders == {}
