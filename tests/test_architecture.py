"""The package's architecture (issues 9 and 18), checked on the code itself.

* imports run one way (the import-linter contract in pyproject.toml, run here; it sees
  imports inside functions) and a deliberate upward import breaks it;
* no underscore name crosses a subpackage, no asyncpg private attribute is touched outside
  the one place that documents why (none today);
* the deployment layout is chosen in one place: nothing outside ``layout/`` asks which layout
  it runs on or imports a layout's implementation;
* every public name of 0.1 and 0.2 still imports (moved ones with a DeprecationWarning), every
  old module path too;
* every search statement is one readable file, with the proven bound as a literal.
"""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import dealhunter_vectors as dv
from dealhunter_vectors._compat import MOVED, MOVED_NAMES
from dealhunter_vectors.layout.statements import load_sql, owner_variant
from dealhunter_vectors.search.bound import HALF_DISTANCE_ERROR_BOUND

PACKAGE = Path(dv.__file__).parent
REPO = PACKAGE.parent

PUBLIC_0_1 = [
    "DEFAULT_DATABASE_URL",
    "VECTOR_INDEXES",
    "ChunkSource",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "DealChunk",
    "DealChunkHit",
    "DealChunkSearch",
    "DealhunterVectorsError",
    "EmbeddedServer",
    "EmbeddedServerError",
    "InvalidEmbeddingError",
    "MigrationError",
    "MigrationProgress",
    "MigrationReport",
    "MigrationStoppedError",
    "NotFoundError",
    "Pool",
    "PoolExhaustedError",
    "PreQualificationMatch",
    "PreQualificationSearch",
    "RawChunk",
    "RawChunkHit",
    "RawChunkSearch",
    "RowProblem",
    "SchemaError",
    "SearchRequest",
    "Settings",
    "SimilarityHit",
    "SimilaritySearch",
    "TableReport",
    "TableVerification",
    "VectorProblem",
    "VerificationReport",
    "__version__",
    "apply_schema",
    "as_embedding",
    "close_pool",
    "create_pool",
    "find_similar_pre_qualifications",
    "get_settings",
    "insert_deal_chunks",
    "lifespan",
    "list_deal_chunks",
    "load_order",
    "mask_url",
    "migrate_sqlite",
    "open_pool",
    "parse_blob_embedding",
    "parse_json_embedding",
    "replace_raw_chunks",
    "resolve_database_url",
    "schema_status",
    "search_deal_embeddings",
    "search_many",
    "search_raw_chunks",
    "search_similar",
    "section_confidence",
    "set_description_embedding",
    "start_embedded",
    "stop_embedded",
    "transaction_settings",
    "verify_migration",
]
"""``dealhunter_vectors.__all__`` of release 0.1 (a compatibility contract, not derived from the code)."""

PUBLIC_0_2 = [
    "DEFAULT_DATABASE_URL",
    "VECTOR_INDEXES",
    "ChunkSource",
    "CitusError",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "DealChunk",
    "DealChunkHit",
    "DealChunkSearch",
    "DealhunterVectorsError",
    "EmbeddedServer",
    "EmbeddedServerError",
    "HybridDealChunkHit",
    "HybridRawChunkHit",
    "InvalidArgumentError",
    "InvalidEmbeddingError",
    "InvalidQueryTextError",
    "LocalCluster",
    "MigrationError",
    "MigrationProgress",
    "MigrationReport",
    "MigrationStoppedError",
    "NotFoundError",
    "Pool",
    "PoolExhaustedError",
    "PreQualificationMatch",
    "PreQualificationSearch",
    "QueryTimeoutError",
    "RawChunk",
    "RawChunkHit",
    "RawChunkSearch",
    "ReadOnlyServerError",
    "ReplicaStatus",
    "ReplicatedPool",
    "RowProblem",
    "SchemaError",
    "SearchRequest",
    "ServedBy",
    "Settings",
    "SimilarityHit",
    "SimilaritySearch",
    "TableReport",
    "TableVerification",
    "VectorProblem",
    "VerificationReport",
    "__version__",
    "apply_schema",
    "as_embedding",
    "build_citus",
    "close_pool",
    "create_pool",
    "find_similar_pre_qualifications",
    "get_settings",
    "hybrid_search_deal_embeddings",
    "hybrid_search_raw_chunks",
    "insert_deal_chunks",
    "last_served_by",
    "lifespan",
    "list_deal_chunks",
    "load_order",
    "mask_url",
    "migrate_sqlite",
    "on_primary",
    "open_pool",
    "parse_blob_embedding",
    "parse_json_embedding",
    "replace_raw_chunks",
    "resolve_database_url",
    "schema_status",
    "search_deal_embeddings",
    "search_many",
    "search_raw_chunks",
    "search_similar",
    "section_confidence",
    "set_description_embedding",
    "set_text_search_config",
    "start_cluster",
    "start_embedded",
    "stop_cluster",
    "stop_embedded",
    "text_search_config",
    "transaction_settings",
    "verify_migration",
]
"""``dealhunter_vectors.__all__`` of release 0.2 (83 names; a compatibility contract)."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    package = name if is_package else name.rpartition(".")[0]
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _lint_imports(cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env_path = [str(extra_path)] if extra_path else []
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": ":".join(env_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_the_import_contract_holds() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("db/server.py", "from ..search import search_many", "dealhunter_vectors.db is not allowed to import"),
        ("db/fulltext.py", "from .schema import apply_schema", "No cycles are allowed in dealhunter_vectors.db"),
        ("search/owner.py", "from ..writes import insert_deal_chunks", "dealhunter_vectors.search is not allowed"),
    ],
)
def test_the_contract_catches_an_upward_import_inside_a_function(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    """A copy of the package with one import added inside a function: the contract breaks."""
    shutil.copytree(PACKAGE, tmp_path / "dealhunter_vectors", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "dealhunter_vectors" / module
    target.write_text(target.read_text() + f"\n\ndef _probe() -> None:\n    {line}  # noqa\n")
    result = _lint_imports(tmp_path, tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout


def test_no_underscore_name_crosses_a_subpackage() -> None:
    offenders = []
    for path in _package_files():
        name = _module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        imported: dict[str, str] = {}  # local alias -> module, for attribute access
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = _resolve(node, name, path.name == "__init__.py")
                if not module.startswith("dealhunter_vectors"):
                    continue
                for alias in node.names:
                    full = f"{module}.{alias.name}"
                    imported[alias.asname or alias.name] = full
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    other = _subpackage(module) != _subpackage(name) or (
                        module.count(".") == 0 and _subpackage(full) != _subpackage(name)
                    )
                    if private and other and module != "dealhunter_vectors":
                        offenders.append(f"{name}: from {module} import {alias.name}")
                    if private and module == "dealhunter_vectors" and alias.name != "_compat":
                        offenders.append(f"{name}: from {module} import {alias.name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and _subpackage(imported[node.value.id]) != _subpackage(name)
            ):
                offenders.append(f"{name}: {node.value.id}.{node.attr}")
    assert offenders == []


ASYNCPG_PRIVATE = {"_con", "_acquire", "_connect_args", "_connect_kwargs", "_config", "_addr", "_holder", "_check_init"}


def test_asyncpg_is_used_through_its_public_hooks() -> None:
    """No asyncpg private attribute is read or overridden anywhere in the package."""
    found = []
    for path in _package_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ASYNCPG_PRIVATE:
                found.append(f"{_module_name(path)}:{node.lineno} .{node.attr}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in ASYNCPG_PRIVATE:
                found.append(f"{_module_name(path)}:{node.lineno} def {node.name}")
    assert found == []


def test_the_layout_is_chosen_in_one_place() -> None:
    """Outside layout/ nothing imports a layout's implementation or reads the layout marker;
    callers use layout_of() and the Layout interface (capability flags, never the name)."""
    offenders = []
    for path in _package_files():
        name = _module_name(path)
        if name.startswith("dealhunter_vectors.layout"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = _resolve(node, name, path.name == "__init__.py")
                names = {a.name for a in node.names}
                if module in ("dealhunter_vectors.layout.citus", "dealhunter_vectors.layout.single"):
                    offenders.append(f"{name} imports {module}")
                if module == "dealhunter_vectors.layout" and names & {"CITUS", "SINGLE_NODE", "Citus", "SingleNode"}:
                    offenders.append(f"{name} imports a layout object")
                if "LAYOUT_TABLE" in names and name != "dealhunter_vectors.db.schema":
                    offenders.append(f"{name} reads the layout marker")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("name", "is_distributed")
                and (isinstance(node.value, ast.Name) and node.value.id == "layout")
            ):
                offenders.append(f"{name}:{node.lineno} branches on the layout's name")
        if "is_distributed" in path.read_text():
            offenders.append(f"{name} mentions is_distributed")
    assert offenders == []


def _all_public_names_still_import(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = getattr(dv, name, None)
        if value is None:
            missing.append(name)
        elif name not in dv.__all__:
            # moved out of the application API: still there, with a warning naming the new home
            new_home = MOVED_NAMES[name]
            assert value is getattr(importlib.import_module(new_home), name)
            assert any(issubclass(w.category, DeprecationWarning) and new_home in str(w.message) for w in caught)
    return missing


def test_every_0_1_and_0_2_public_name_still_imports() -> None:
    assert _all_public_names_still_import(sorted(set(PUBLIC_0_1) | set(PUBLIC_0_2))) == []
    assert set(MOVED_NAMES) <= set(PUBLIC_0_2)  # only names that were public move
    assert not set(MOVED_NAMES) & set(dv.__all__)


def test_a_moved_name_imports_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="dealhunter_vectors.tooling"):
        from dealhunter_vectors import start_cluster
    from dealhunter_vectors.tooling import start_cluster as new

    assert start_cluster is new
    with pytest.raises(AttributeError):
        dv.no_such_name  # noqa: B018


def test_every_public_name_has_a_docstring() -> None:
    missing = [
        name for name in dv.__all__ if callable(getattr(dv, name)) and not (getattr(dv, name).__doc__ or "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_module_paths_import_the_moved_module_with_a_warning(old: str, new: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)


def test_old_legacy_module_names_are_on_the_legacy_package() -> None:
    from dealhunter_vectors import legacy
    from dealhunter_vectors.legacy import algorithms

    assert legacy.__all__ == algorithms.__all__
    assert all(getattr(legacy, name) is getattr(algorithms, name) for name in algorithms.__all__)


def test_each_search_statement_is_one_sql_file_with_the_proven_bound() -> None:
    files = sorted((PACKAGE / "search" / "sql").glob("*.sql"))
    assert {f.stem for f in files} >= {
        "deal_search",
        "raw_search",
        "list_deal_chunks",
        "pre_qualification_exact",
        "pre_qualification_ann",
    }
    for name in ("deal_search", "raw_search"):
        literals = {float(x) for x in re.findall(r"\b0\.0017\d+", load_sql("dealhunter_vectors.search", name))}
        assert literals == {HALF_DISTANCE_ERROR_BOUND}, name


def test_owner_variant_replaces_exactly_the_owner_predicate() -> None:
    sql = load_sql("dealhunter_vectors.search", "deal_search")
    variant = owner_variant(sql, "pre_qualification_id")
    assert variant.count('d."pre_qualification_id" = ') == 1
    assert variant.replace('d."pre_qualification_id" = ', 'd."qualification_id" = ') == sql
    with pytest.raises(ValueError):
        owner_variant("SELECT 1", "qualification_id")
