"""Rows to typed results: metadata parsing, similarity, the old percent rule."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import asyncpg
import orjson

from ..models import RAW_CHUNK_DEFAULT_METADATA, DealChunkHit, RawChunkHit

_log = logging.getLogger("dealhunter_vectors.search")


def parse_metadata(
    text: str | None, *, table: str, row_id: str, default: dict[str, Any]
) -> tuple[dict[str, Any], str | None, str | None]:
    """Parse a metadata JSON text: ``(metadata, raw_text_if_bad, error_if_bad)``."""
    if text is None:
        return dict(default), None, None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        try:  # valid JSON that orjson refuses (integers beyond 64 bits); NaN/Infinity stay invalid
            value = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            error = f"invalid JSON: {exc}"
            _log.warning("%s id=%s column=metadata: %s; returning the raw text", table, row_id, error)
            return dict(default), text, error
    if not isinstance(value, dict):
        error = f"not a JSON object (got {type(value).__name__})"
        _log.warning("%s id=%s column=metadata: %s; returning the raw text", table, row_id, error)
        return dict(default), text, error
    return value, None, None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def similarity(distance: float) -> float:
    return 1.0 - float(distance)


def _js_round(x: float) -> int:
    floor = math.floor(x)
    return int(floor + 1 if x - floor >= 0.5 else floor)


def similarity_percent(cosine: float) -> int:
    """The old duplicate check's ``Math.round((cos + 1) / 2 * 100)`` (JavaScript rounding)."""
    return _js_round((cosine + 1) / 2 * 100)


def deal_fields(row: asyncpg.Record, similarity: float | None) -> dict[str, Any]:
    """The fields of a deal-chunk hit from its row (metadata parsed); shared by every deal hit model."""
    metadata, raw, error = parse_metadata(row["metadata"], table="deal_embeddings", row_id=row["id"], default={})
    return {
        "chunk_id": row["id"],
        "pre_qualification_id": row["pre_qualification_id"],
        "qualification_id": row["qualification_id"],
        "agent_name": row["agent_name"],
        "chunk_type": row["chunk_type"],
        "chunk_index": row["chunk_index"],
        "content": row["content"],
        "similarity": similarity,
        "metadata": metadata,
        "metadata_raw": raw,
        "metadata_error": error,
        "chunk_category": row["chunk_category"],
        "confidence": row["confidence"],
        "is_validated": row["is_validated"],
    }


def deal_hit(row: asyncpg.Record, similarity: float | None) -> DealChunkHit:
    """A :class:`DealChunkHit` from a search or listing row."""
    return DealChunkHit(**deal_fields(row, similarity))


def raw_fields(row: asyncpg.Record, similarity: float | None) -> dict[str, Any]:
    """The fields of a raw-chunk hit from its row (NULL metadata: the old default); shared by every raw hit model."""
    metadata, raw, error = parse_metadata(
        row["metadata"], table="raw_chunks", row_id=row["id"], default=RAW_CHUNK_DEFAULT_METADATA
    )
    return {
        "chunk_id": row["id"],
        "pre_qualification_id": row["pre_qualification_id"],
        "chunk_index": row["chunk_index"],
        "content": row["content"],
        "token_count": row["token_count"],
        "similarity": similarity,
        "metadata": metadata,
        "metadata_raw": raw,
        "metadata_error": error,
    }


def raw_hit(row: asyncpg.Record) -> RawChunkHit:
    """A :class:`RawChunkHit` from a search row."""
    return RawChunkHit(**raw_fields(row, similarity(row["distance"])))
