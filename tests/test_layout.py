"""The package layout (issue 9): core modules never import the reference/demo/CLI layers,
the 0.1 public names and module paths still work, each search statement is one readable file."""

from __future__ import annotations

import ast
import importlib
import re
import warnings
from pathlib import Path

import pytest

import dealhunter_vectors as dv
from dealhunter_vectors._compat import MOVED
from dealhunter_vectors.search import _sql
from dealhunter_vectors.search.bound import HALF_DISTANCE_ERROR_BOUND

PACKAGE = Path(dv.__file__).parent
CORE = ("config", "errors", "models", "embeddings", "writes", "db", "search", "migrate", "scale", "_compat")
"""Top-level modules/subpackages of the library proper."""
NOT_FOR_CORE = ("legacy", "demo", "cli", "testing")
"""The reference implementation, the demo, the command line and the pytest plugin."""

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


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str | None = None) -> set[str]:
    """Every module *path* (module *name*) imports, relative imports resolved, also inside functions."""
    name = name or _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def _core_files() -> list[Path]:
    files = []
    for entry in CORE:
        if (PACKAGE / entry).is_dir():
            files.extend(sorted((PACKAGE / entry).rglob("*.py")))
        elif (PACKAGE / f"{entry}.py").exists():
            files.append(PACKAGE / f"{entry}.py")
    return files


def test_import_graph_core_never_imports_legacy_demo_or_cli() -> None:
    files = _core_files()
    assert len(files) >= 15, files  # the walk really sees the core
    forbidden = tuple(f"dealhunter_vectors.{name}" for name in NOT_FOR_CORE)
    offenders = {_module_name(path): sorted(m for m in _imports(path) if m.startswith(forbidden)) for path in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_import_graph_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself resolves relative imports, also inside a function, and would catch them."""
    probe = tmp_path / "probe.py"
    probe.write_text("from . import schema\n\ndef f():\n    from ..legacy import algorithms\n")
    found = _imports(probe, "dealhunter_vectors.db.probe")
    assert "dealhunter_vectors.db.schema" in found
    assert "dealhunter_vectors.legacy.algorithms" in found


@pytest.mark.parametrize("name", PUBLIC_0_1)
def test_every_0_1_public_name_is_still_exported(name: str) -> None:
    assert name in dv.__all__
    assert getattr(dv, name) is not None


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
        literals = {float(x) for x in re.findall(r"\b0\.0017\d+", _sql.load(name))}
        assert literals == {HALF_DISTANCE_ERROR_BOUND}, name


def test_owner_variant_replaces_exactly_the_owner_predicate() -> None:
    sql = _sql.load("deal_search")
    variant = _sql.owner_variant(sql, "pre_qualification_id")
    assert variant.count('d."pre_qualification_id" = ') == 1
    assert variant.replace('d."pre_qualification_id" = ', 'd."qualification_id" = ') == sql
    with pytest.raises(RuntimeError):
        _sql.owner_variant("SELECT 1", "qualification_id")
