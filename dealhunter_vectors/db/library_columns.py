"""The library-owned columns of the chunk tables and their values for one row (migration 009).

``deal_embeddings`` and ``raw_chunks`` carry, besides the old app's columns, columns that only
this library writes. Every write path (:mod:`dealhunter_vectors.writes`) and the bulk loader
(:mod:`dealhunter_vectors.migrate`) take a row's values from :func:`library_values`, the one
place that computes them, in :data:`LIBRARY_COLUMNS` order after the row's legacy columns:

* ``embedding_model``: the model that computed ``embedding``;
* ``embedding_content_hash``: sha256 of the UTF-8 ``content`` that was embedded;
* ``content_parts`` / ``content_parts_hash`` (migration 011): the German compound parts of
  ``content`` and the hash of the content they were split from (:mod:`.content_parts`).

The first two are NULL for a row without an embedding (docs/reembedding.md), the last two
without the optional extra ``[compounds]`` (docs/compounds.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .content_parts import COLUMNS as PARTS_COLUMNS
from .content_parts import parts_values
from .migrations import quote_ident

__all__ = [
    "CHUNK_TABLES",
    "LEGACY_EMBEDDING_MODEL",
    "LIBRARY_COLUMNS",
    "MAIN_SLOT",
    "EmbeddingSlot",
    "content_hash",
    "content_hash_sql",
    "library_values",
    "library_values_many",
]

CHUNK_TABLES: Final = ("deal_embeddings", "raw_chunks")
"""The tables that carry the library-owned columns."""

LIBRARY_COLUMNS: Final = ("embedding_model", "embedding_content_hash", *PARTS_COLUMNS)
"""The library-owned columns every writer fills, in the order of :func:`library_values`."""

LEGACY_EMBEDDING_MODEL: Final = "text-embedding-3-large"
"""The model of the old app's embeddings (OpenAI, 3072 dimensions: the only OpenAI embedding
model whose native size is 3072; ``shared/reference/legacy-behaviour.md``), recorded by the
loader for every migrated chunk that has an embedding."""


def content_hash(content: str) -> bytes:
    """sha256 of *content* as UTF-8: the same bytes as :func:`content_hash_sql` on the server."""
    return hashlib.sha256(content.encode("utf-8")).digest()


def content_hash_sql(column: str) -> str:
    """The server-side twin of :func:`content_hash` for a qualified column, e.g. ``d."content"``
    (migration 009's IMMUTABLE ``dealhunter_content_hash``)."""
    return f'"dealhunter_content_hash"({column})'


def library_values(content: str, has_embedding: bool, model: str) -> tuple[object, ...]:
    """The library-owned values of one chunk row, in :data:`LIBRARY_COLUMNS` order.

    *model* is the embedding's model; without an embedding the first two values are NULL.
    The compound parts are split here (:func:`.content_parts.parts_values`; NULL without the extra).
    """
    digest = content_hash(content)
    embedded = (model, digest) if has_embedding else (None, None)
    return (*embedded, *parts_values(content, digest))


def library_values_many(rows: Sequence[tuple[str, bool] | None], model: str) -> list[tuple[object, ...] | None]:
    """:func:`library_values` of many ``(content, has_embedding)`` rows; ``None`` stays ``None``.

    Module-level, so a process pool runs it (the bulk loader splits compounds in its workers).
    """
    return [None if row is None else library_values(row[0], row[1], model) for row in rows]


@dataclass(frozen=True)
class EmbeddingSlot:
    """A vector column and its two bookkeeping columns (``<column>_model``, ``<column>_content_hash``).

    The main slot is ``embedding``; a model switch adds a shadow slot such as ``embedding_next``
    (docs/reembedding.md). ``column`` is checked by the caller (a plain lower-case name).
    """

    column: str

    @property
    def model(self) -> str:
        return f"{self.column}_model"

    @property
    def content_hash(self) -> str:
        return f"{self.column}_content_hash"

    def quoted(self) -> tuple[str, str, str]:
        """The three column names, quoted."""
        return quote_ident(self.column), quote_ident(self.model), quote_ident(self.content_hash)


MAIN_SLOT: Final = EmbeddingSlot("embedding")
