"""Every library name a benchmark script uses still exists.

The benchmarks reach into the library's modules (some into private helpers, to time one step
alone); a refactoring that renames one breaks a benchmark that no test runs. This reads each
script's imports and ``module.attribute`` uses of ``dealhunter_vectors`` modules and resolves
them against the installed package.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def _library_module(name: str) -> bool:
    return name == "dealhunter_vectors" or name.startswith("dealhunter_vectors.")


def missing_names(source: str) -> list[str]:
    """The ``dealhunter_vectors`` names *source* uses that do not resolve."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    missing: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _library_module(a.name):
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and _library_module(node.module):
            module = importlib.import_module(node.module)
            for a in node.names:
                full = f"{node.module}.{a.name}"
                try:
                    importlib.import_module(full)
                    aliases[a.asname or a.name] = full
                except ImportError:
                    if not hasattr(module, a.name):
                        missing.append(f"line {node.lineno}: {full}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            module = importlib.import_module(aliases[node.value.id])
            if not hasattr(module, node.attr):
                missing.append(f"line {node.lineno}: {aliases[node.value.id]}.{node.attr}")
    return missing


def test_the_check_finds_a_missing_name() -> None:
    source = "from dealhunter_vectors.search import owner as lib\nlib._NO_SUCH_STATEMENT\n"
    assert missing_names(source) == ["line 2: dealhunter_vectors.search.owner._NO_SUCH_STATEMENT"]
    assert missing_names("from dealhunter_vectors.errors import NoSuchError\n") == [
        "line 1: dealhunter_vectors.errors.NoSuchError"
    ]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_uses_existing_library_names(script: Path) -> None:
    assert missing_names(script.read_text(encoding="utf-8")) == []
