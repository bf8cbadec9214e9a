"""The module paths of 0.1 stay importable for one release (CHANGELOG.md, 0.2.0 "Changed").

``import dealhunter_vectors.vector_search`` (and every other moved module) gives the module
at its new path, with a ``DeprecationWarning`` naming it. One import hook instead of a file per
old name keeps the package's top level what the library is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Final

MOVED: Final = {
    "dealhunter_vectors.pool": "dealhunter_vectors.db.pool",
    "dealhunter_vectors.embedded": "dealhunter_vectors.db.embedded",
    "dealhunter_vectors.schema": "dealhunter_vectors.db.schema",
    "dealhunter_vectors.doctor": "dealhunter_vectors.db.doctor",
    "dealhunter_vectors.vector_search": "dealhunter_vectors.search",
    "dealhunter_vectors.bulk_loader": "dealhunter_vectors.migrate.loader",
    "dealhunter_vectors.verify": "dealhunter_vectors.migrate.verify",
    "dealhunter_vectors.migration_models": "dealhunter_vectors.migrate.reports",
    "dealhunter_vectors.legacy_db": "dealhunter_vectors.legacy.database",
    "dealhunter_vectors.synthetic": "dealhunter_vectors.legacy.synthetic",
    "dealhunter_vectors.cli_search": "dealhunter_vectors.cli.search",
    "dealhunter_vectors.cli_migrate": "dealhunter_vectors.cli.migrate",
    "dealhunter_vectors.cli_demo": "dealhunter_vectors.cli.demo",
    # 0.2 -> 0.3 (docs/design.md, "Map")
    "dealhunter_vectors.demo": "dealhunter_vectors.cli.demo_run",
    "dealhunter_vectors.scale": "dealhunter_vectors.tooling",
    "dealhunter_vectors.scale.cluster": "dealhunter_vectors.tooling.cluster",
    "dealhunter_vectors.scale.local": "dealhunter_vectors.tooling.local",
    "dealhunter_vectors.scale.replicas": "dealhunter_vectors.db.replicas",
    "dealhunter_vectors.scale.citus": "dealhunter_vectors.layout.citus",
}
"""Old module path -> new module path (``dealhunter_vectors.legacy`` is now a package that
re-exports the old module's names)."""


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder module; exec_module swaps in the real one

    def exec_module(self, module: ModuleType) -> None:
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        # importlib returns sys.modules[name] after exec_module: the real module, not the placeholder.
        sys.modules[module.__name__] = importlib.import_module(new)


MOVED_NAMES: Final = {
    "EmbeddedServer": "dealhunter_vectors.tooling",
    "start_embedded": "dealhunter_vectors.tooling",
    "stop_embedded": "dealhunter_vectors.tooling",
    "LocalCluster": "dealhunter_vectors.tooling",
    "build_citus": "dealhunter_vectors.tooling",
    "start_cluster": "dealhunter_vectors.tooling",
    "stop_cluster": "dealhunter_vectors.tooling",
    "resolve_database_url": "dealhunter_vectors.db.embedded",
    "load_order": "dealhunter_vectors.migrate.source",
    "VECTOR_INDEXES": "dealhunter_vectors.db.schema",
}
"""Top-level names of 0.2 that are developer tooling or internals, and where they live now."""


def moved_name(name: str) -> object:
    """The object a moved top-level name refers to, with a ``DeprecationWarning`` naming its new home."""
    module = MOVED_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'dealhunter_vectors' has no attribute {name!r}")
    warnings.warn(
        f"dealhunter_vectors.{name} moved to {module}.{name} (not part of the application API); import it from there",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(module), name)


def install() -> None:
    """Make the old module paths importable (idempotent)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModules())  # first: a moved package's new path holds the same files
