"""The library-owned columns of a loaded row (``db/library_columns.py``, migration 009).

The legacy rows of ``deal_embeddings`` and ``raw_chunks`` are written with their library-owned
values in the same COPY: the model of the old app's embeddings (:data:`LEGACY_EMBEDDING_MODEL`,
``text-embedding-3-large``) and the sha256 of the content, so a migrated chunk is not "stale"
for that model. ``verify`` compares the legacy columns only and ignores these.
"""

from __future__ import annotations

from typing import Any

from ..db.library_columns import CHUNK_TABLES, LEGACY_EMBEDDING_MODEL, LIBRARY_COLUMNS, library_values
from .source import Batch, TablePlan

__all__ = ["LEGACY_EMBEDDING_MODEL", "written_columns", "written_values"]


def written_columns(plan: TablePlan) -> list[str]:
    """The columns the loader writes: the legacy ones, then the library-owned ones of a chunk table."""
    names = [c.name for c in plan.columns]
    return [*names, *LIBRARY_COLUMNS] if plan.name in CHUNK_TABLES else names


def written_values(plan: TablePlan, batch: Batch, row: int) -> list[Any]:
    """Row *row* of *batch*, converted, followed by its library-owned values (in
    :func:`written_columns` order): those the worker processes computed, else computed here."""
    values = batch.values[row]
    if plan.name not in CHUNK_TABLES:
        return list(values)
    if batch.library:
        library = batch.library[row]
        if library is not None:
            return [*values, *library]
    names = [c.name for c in plan.columns]
    content, embedding = values[names.index("content")], values[names.index("embedding")]
    return [*values, *library_values(content, embedding is not None, LEGACY_EMBEDDING_MODEL)]
