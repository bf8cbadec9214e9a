"""Stored rows as typed models (:class:`~dealhunter_vectors.models.StoredDealChunk`,
:class:`~dealhunter_vectors.models.StoredRawChunk`).

Metadata is the JSON text the app stored; it is parsed with orjson. A text that is not a JSON
object never fails a read: ``metadata`` is None and ``metadata_raw`` / ``metadata_error`` say
what was stored and why it was not used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import orjson

from .. import validation
from ..layout import Statement, layout_of
from ..models import StoredDealChunk, StoredRawChunk
from ._conn import Db, connection
from .selectors import id_list

__all__ = ["deal_chunk", "parse_metadata", "raw_chunk", "stored_by_ids"]

_Row = TypeVar("_Row")


def parse_metadata(text: str | None) -> dict[str, Any]:
    """``metadata`` / ``metadata_raw`` / ``metadata_error`` of a stored metadata text."""
    if text is None:
        return {"metadata": None}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return {"metadata": None, "metadata_raw": text, "metadata_error": f"not valid JSON ({exc})"}
    if not isinstance(value, dict):
        return {
            "metadata": None,
            "metadata_raw": text,
            "metadata_error": f"a JSON {type(value).__name__}, not an object",
        }
    return {"metadata": value}


def deal_chunk(row: asyncpg.Record) -> StoredDealChunk:
    """A ``deal_embeddings`` row (columns of ``writes/sql/get_deal_chunks.sql``)."""
    values = dict(row.items())
    values.update(parse_metadata(values.pop("metadata")))
    return StoredDealChunk(**values)


def raw_chunk(row: asyncpg.Record) -> StoredRawChunk:
    """A ``raw_chunks`` row (columns of ``writes/sql/get_raw_chunks.sql``)."""
    values = dict(row.items())
    values.update(parse_metadata(values.pop("metadata")))
    return StoredRawChunk(**values)


async def stored_by_ids(
    db: Db,
    statement: Statement,
    ids: Sequence[str],
    include_embeddings: bool,
    convert: Callable[[asyncpg.Record], _Row],
) -> list[_Row]:
    """The stored rows with these *ids* (read by *statement*) as models, in the order asked; missing ids are absent."""
    wanted = list(dict.fromkeys(id_list(ids)))
    include = validation.flag(include_embeddings, "include_embeddings")
    if not wanted:
        return []
    async with connection(db) as conn:
        layout = await layout_of(conn)
        rows = await layout.all_rows(conn, statement, wanted, include)
    found = {r["id"]: convert(r) for r in rows}
    return [found[i] for i in wanted if i in found]
