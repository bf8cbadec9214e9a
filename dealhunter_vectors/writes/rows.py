"""Stored rows as typed models (:class:`~dealhunter_vectors.models.StoredDealChunk`,
:class:`~dealhunter_vectors.models.StoredRawChunk`).

Metadata is the JSON text the app stored; it is parsed with orjson. A text that is not a JSON
object never fails a read: ``metadata`` is None and ``metadata_raw`` / ``metadata_error`` say
what was stored and why it was not used.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from ..models import StoredDealChunk, StoredRawChunk

__all__ = ["deal_chunk", "parse_metadata", "raw_chunk"]


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
