"""Write paths of the "embedding storage" phase: deal chunks, raw chunks, description embeddings.

* :func:`insert_deal_chunks`: binary ``COPY`` (asyncpg ``copy_records_to_table``) of any
  number of rows in one statement: all rows or none.
* :func:`replace_raw_chunks`: delete a pre-qualification's raw chunks and copy the new
  set in **one transaction** (the pre-qualification row is locked ``FOR UPDATE`` first, so
  concurrent replaces of the same pre-qualification run one after the other); a failure
  anywhere leaves the old chunks.
* :func:`set_description_embedding`: the write the old app never had (so its semantic
  duplicate step never fired).

Every embedding is validated with :func:`~dealhunter_vectors.embeddings.as_embedding`
(dimensions, finite, non-zero norm, half-precision range) **before** anything is sent;
the error names table, row id and column. Nothing is dropped or fixed silently.

Conventions kept from the old app (Drizzle):

* ids: when the caller gives none, a cuid2-*shaped* id is generated: 24 characters,
  a lower-case letter followed by 23 characters of ``[a-z0-9]``, drawn from
  :mod:`secrets` (a CSPRNG; about 119 random bits). It is not cuid2's hash construction,
  only its alphabet and length, which is all the schema and the app rely on.
* ``created_at`` / ``updated_at``: ``timestamp without time zone`` holding the UTC wall
  clock (Drizzle sent ``Date.toISOString()``), i.e. ``datetime.now(UTC)`` without tzinfo.
  Aware datetimes given by the caller (``validated_at``) are converted to UTC; naive ones
  are taken as UTC already.
* metadata: JSON text (``orjson.dumps``), NULL when None.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

import asyncpg
import orjson

from .config import get_settings
from .embeddings import Float32Array, as_embedding
from .errors import NotFoundError
from .models import DealChunk, RawChunk

__all__ = [
    "DEAL_EMBEDDING_COLUMNS",
    "RAW_CHUNK_COLUMNS",
    "insert_deal_chunks",
    "new_id",
    "replace_raw_chunks",
    "set_description_embedding",
    "utc_now",
]

DEAL_EMBEDDING_COLUMNS: Final = (
    "id",
    "pre_qualification_id",
    "qualification_id",
    "agent_name",
    "chunk_type",
    "chunk_index",
    "content",
    "metadata",
    "embedding",
    "chunk_category",
    "confidence",
    "requires_validation",
    "validated_at",
    "validated_by",
    "created_at",
    "updated_at",
)
"""Columns written by :func:`insert_deal_chunks` (all 16 of ``deal_embeddings``)."""

RAW_CHUNK_COLUMNS: Final = (
    "id",
    "pre_qualification_id",
    "chunk_index",
    "content",
    "token_count",
    "embedding",
    "metadata",
    "created_at",
)
"""Columns written by :func:`replace_raw_chunks` (all 8 of ``raw_chunks``)."""

LOCK_PRE_QUALIFICATION_SQL: Final = 'SELECT 1 FROM "pre_qualifications" WHERE "id" = $1 FOR UPDATE'
DELETE_RAW_CHUNKS_SQL: Final = 'DELETE FROM "raw_chunks" WHERE "pre_qualification_id" = $1'
SET_DESCRIPTION_EMBEDDING_SQL: Final = (
    'UPDATE "pre_qualifications" SET "description_embedding" = $2 WHERE "id" = $1'
)

_ID_FIRST: Final = string.ascii_lowercase
_ID_REST: Final = string.ascii_lowercase + string.digits
ID_LENGTH: Final = 24

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


def new_id() -> str:
    """A cuid2-shaped id: a letter then 23 of ``[a-z0-9]``, from :mod:`secrets`."""
    return secrets.choice(_ID_FIRST) + "".join(secrets.choice(_ID_REST) for _ in range(ID_LENGTH - 1))


def utc_now() -> datetime:
    """The current UTC wall clock as a naive datetime (``timestamp without time zone``)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _as_utc_naive(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _embedding(value: Any, *, table: str, row_id: str, column: str = "embedding") -> Float32Array:
    return as_embedding(
        value, dimensions=get_settings().embedding_dimensions, where=f"{table} id={row_id} column={column}"
    )


def _metadata_text(value: dict[str, Any] | None, *, table: str, row_id: str) -> str | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise ValueError(f"{table} id={row_id} column=metadata: not JSON-serialisable ({exc})") from None


def _check_unique(ids: Iterable[str], table: str) -> None:
    seen: set[str] = set()
    for row_id in ids:
        if row_id in seen:
            raise ValueError(f"{table}: id {row_id!r} appears twice in the input")
        seen.add(row_id)


def _deal_record(chunk: DealChunk, now: datetime) -> tuple[Any, ...]:
    if not isinstance(chunk, DealChunk):
        raise TypeError(f"expected DealChunk, got {type(chunk).__name__}")
    row_id = chunk.id or new_id()
    if chunk.pre_qualification_id is None and chunk.qualification_id is None:
        raise ValueError(
            f"deal_embeddings id={row_id}: a chunk needs a pre_qualification_id or a qualification_id"
        )
    embedding = None if chunk.embedding is None else _embedding(chunk.embedding, table="deal_embeddings", row_id=row_id)
    return (
        row_id,
        chunk.pre_qualification_id,
        chunk.qualification_id,
        chunk.agent_name,
        chunk.chunk_type,
        chunk.chunk_index,
        chunk.content,
        _metadata_text(chunk.metadata, table="deal_embeddings", row_id=row_id),
        embedding,
        chunk.chunk_category,
        chunk.confidence,
        chunk.requires_validation,
        _as_utc_naive(chunk.validated_at),
        chunk.validated_by,
        now,
        now,
    )


def _raw_record(chunk: RawChunk, pre_qualification_id: str, now: datetime) -> tuple[Any, ...]:
    if not isinstance(chunk, RawChunk):
        raise TypeError(f"expected RawChunk, got {type(chunk).__name__}")
    row_id = chunk.id or new_id()
    if chunk.embedding is None:
        raise ValueError(f"raw_chunks id={row_id} column=embedding: raw chunks need an embedding (NOT NULL)")
    return (
        row_id,
        pre_qualification_id,
        chunk.chunk_index,
        chunk.content,
        chunk.token_count,
        _embedding(chunk.embedding, table="raw_chunks", row_id=row_id),
        _metadata_text(chunk.metadata, table="raw_chunks", row_id=row_id),
        now,
    )


async def insert_deal_chunks(db: Db, chunks: Sequence[DealChunk]) -> list[str]:
    """Insert *chunks* into ``deal_embeddings`` with one binary COPY; return their ids in order.

    Everything is validated first (embeddings, owners, duplicate ids); a bad chunk raises
    before any row is written, and the COPY itself is one statement (all rows or none).
    An unknown owner id fails with asyncpg's ``ForeignKeyViolationError``.
    """
    now = utc_now()
    records = [_deal_record(chunk, now) for chunk in chunks]
    _check_unique((r[0] for r in records), "deal_embeddings")
    if records:
        await db.copy_records_to_table("deal_embeddings", records=records, columns=list(DEAL_EMBEDDING_COLUMNS))
    return [r[0] for r in records]


async def replace_raw_chunks(db: Db, pre_qualification_id: str, chunks: Sequence[RawChunk]) -> list[str]:
    """Replace every raw chunk of a pre-qualification by *chunks*, atomically; return the new ids.

    Validation happens before the transaction. In one transaction: lock the
    pre-qualification row (``NotFoundError`` when it does not exist), delete its raw
    chunks, binary-COPY the new ones. Any failure rolls back to the old chunks.
    """
    if not isinstance(pre_qualification_id, str):
        raise ValueError(f"pre_qualification_id must be a string, got {type(pre_qualification_id).__name__}")
    now = utc_now()
    records = [_raw_record(chunk, pre_qualification_id, now) for chunk in chunks]
    _check_unique((r[0] for r in records), "raw_chunks")

    async def _run(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            found = await conn.fetchval(LOCK_PRE_QUALIFICATION_SQL, pre_qualification_id)
            if found is None:
                raise NotFoundError(f"pre_qualifications id={pre_qualification_id} does not exist")
            await conn.execute(DELETE_RAW_CHUNKS_SQL, pre_qualification_id)
            if records:
                await conn.copy_records_to_table("raw_chunks", records=records, columns=list(RAW_CHUNK_COLUMNS))

    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            await _run(conn)
    else:
        await _run(db)
    return [r[0] for r in records]


async def set_description_embedding(db: Db, pre_qualification_id: str, embedding: Any) -> None:
    """Set (or, with ``None``, clear) ``pre_qualifications.description_embedding``.

    The embedding is validated first. ``updated_at`` is left alone: the old app had no
    ``$onUpdate`` and never wrote this column. ``NotFoundError`` when the id does not exist.
    """
    if not isinstance(pre_qualification_id, str):
        raise ValueError(f"pre_qualification_id must be a string, got {type(pre_qualification_id).__name__}")
    value = (
        None
        if embedding is None
        else _embedding(
            embedding, table="pre_qualifications", row_id=pre_qualification_id, column="description_embedding"
        )
    )
    status = await db.execute(SET_DESCRIPTION_EMBEDDING_SQL, pre_qualification_id, value)
    if status.split()[-1] == "0":
        raise NotFoundError(f"pre_qualifications id={pre_qualification_id} does not exist")
