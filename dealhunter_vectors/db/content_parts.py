"""The split text of a chunk (migration 011): German compound parts indexed beside its content.

Two library-owned columns of ``deal_embeddings`` and ``raw_chunks`` (issue 23; docs/compounds.md):

* ``content_parts``: :func:`~dealhunter_vectors.compounds.compound_parts_text` of ``content``
  (``Rahmenvertragsangebot`` -> ``rahmen vertrag angebot rahmenvertrag vertragsangebot``; ``''``:
  no compound); NULL: not computed (a row of another writer, or written without the extra);
* ``content_parts_hash``: sha256 of the content the parts were split from.

The generated ``content_tsv`` (:func:`parts_tsvector_sql`) indexes the parts after the content
only while ``content_parts_hash`` is the current content's hash: parts never outlive their
content, and a row without them is still indexed by its content. Such rows are *lacking*
(:data:`LACKING`): ``doctor`` counts them (:func:`lacking_counts`), the backfill
(:mod:`dealhunter_vectors.writes.content_parts`) fills them.

Without the optional extra ``[compounds]`` (wordfreq) nothing fails: writers store NULL and the
hybrid search uses the query text alone; :func:`splitting_available` says so once per process.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Final

import asyncpg

from .. import compounds

__all__ = [
    "COLUMNS",
    "LACKING",
    "MAX_INDEXED_PARTS_CHARS",
    "PARTS_TABLES",
    "LackingParts",
    "has_parts_columns",
    "lacking_counts",
    "parts_tsvector_sql",
    "parts_values",
    "splitting_available",
]

_log = logging.getLogger(__name__)

COLUMNS: Final = ("content_parts", "content_parts_hash")
"""The two library-owned columns, in the order of :func:`parts_values`."""
PARTS_TABLES: Final = ("deal_embeddings", "raw_chunks")
MAX_INDEXED_PARTS_CHARS: Final = compounds.MAX_PARTS_CHARS
"""Characters of ``content_parts`` the full-text column reads (what the splitter writes at most)."""

LACKING: Final = '("content_parts_hash" IS NULL OR "content_parts_hash" <> "dealhunter_content_hash"("content"))'
"""A row whose split text is not that of its content: never computed, or the content changed since."""

MISSING_EXTRA: Final = (
    "German compound splitting is off: the optional dependency wordfreq is not installed "
    f"(pip install 'dealhunter-vectors[{compounds.EXTRA}]'). Chunks are written without their compound "
    "parts (found by their text, not by a part of a compound) and the hybrid search uses the query "
    "text alone; `dealhunter-vectors text backfill` fills the parts once it is installed."
)


@functools.cache
def splitting_available() -> bool:
    """Whether the extra is installed (checked once per process; a warning when it is not)."""
    available = compounds.compounds_available()
    if not available:
        _log.warning(MISSING_EXTRA)
    return available


def parts_values(content: str, digest: bytes) -> tuple[str | None, bytes | None]:
    """``(content_parts, content_parts_hash)`` of a row whose content has the sha256 *digest*;
    ``(None, None)`` without the extra."""
    if not splitting_available():
        return (None, None)
    return (compounds.compound_parts_text(content), digest)


def parts_tsvector_sql(config: str) -> str:
    """The tsvector of a row's parts for the generated column (*config*: a quoted regconfig literal).

    Empty unless ``content_parts_hash`` is the current content's: the hash is computed only for rows
    that have parts (CASE evaluates in order).
    """
    return (
        f"to_tsvector({config}::regconfig, CASE WHEN \"content_parts_hash\" IS NULL THEN '' "
        f'WHEN "content_parts_hash" = "dealhunter_content_hash"("content") '
        f"THEN left(\"content_parts\", {MAX_INDEXED_PARTS_CHARS}) ELSE '' END)"
    )


async def has_parts_columns(conn: asyncpg.Connection) -> bool:
    """Whether migration 011's columns exist (both tables)."""
    found = await conn.fetchval(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = ANY($1::regclass[]) AND attname = $2 AND NOT attisdropped",
        [f'"{t}"' for t in PARTS_TABLES],
        COLUMNS[0],
    )
    return int(found) == len(PARTS_TABLES)


@dataclass(frozen=True)
class LackingParts:
    """Rows of *table* whose split text is missing or stale (*lacking*), of all its *rows*."""

    table: str
    lacking: int
    rows: int


async def lacking_counts(conn: asyncpg.Connection) -> list[LackingParts]:
    """Per chunk table, how many rows lack their split text (:data:`LACKING`), of how many.

    One sequential scan per table (the hash of each row with parts is computed: ~sha256 of the
    content; docs/compounds.md has the cost).
    """
    out = []
    for table in PARTS_TABLES:
        row = await conn.fetchrow(
            f'SELECT count(*) FILTER (WHERE {LACKING}) AS "lacking", count(*) AS "rows" FROM "{table}"'  # noqa: S608
        )
        out.append(LackingParts(table, int(row["lacking"]), int(row["rows"])))
    return out
