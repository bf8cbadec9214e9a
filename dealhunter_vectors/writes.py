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
(dimensions, finite, norm in [1e-12, 1e15], half-precision range) **before** anything is
sent; the error names table, row id and column. Every other value is checked in Python
too (texts without NUL characters, integers in int32 and never ``bool``, flags ``bool``):
:class:`~dealhunter_vectors.errors.InvalidArgumentError` naming table, row id and column.
An unknown owner is a :class:`~dealhunter_vectors.errors.NotFoundError`, an id that is
already stored an ``InvalidArgumentError``. Nothing is dropped or fixed silently.

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

from . import validation
from .config import get_settings
from .db.faults import operation
from .embeddings import Float32Array, as_embedding
from .errors import InvalidArgumentError, NotFoundError
from .layout import layout_of
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
SET_DESCRIPTION_EMBEDDING_SQL: Final = 'UPDATE "pre_qualifications" SET "description_embedding" = $2 WHERE "id" = $1'

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
        raise InvalidArgumentError(f"{table} id={row_id} column=metadata", f"not JSON-serialisable ({exc})") from None


def _texts(table: str, row_id: str, **values: Any) -> None:
    for column, value in values.items():
        validation.optional_text(value, f"{table} id={row_id} column={column}")


def _ints(table: str, row_id: str, **values: Any) -> None:
    for column, value in values.items():
        validation.optional_integer(value, f"{table} id={row_id} column={column}")


def _row_id(chunk: DealChunk | RawChunk, table: str) -> str:
    if chunk.id is None:
        return new_id()
    return validation.text(chunk.id, f"{table} column=id")


def _check_chunks(chunks: Any) -> None:
    if isinstance(chunks, (str, bytes)) or not isinstance(chunks, Sequence):
        raise InvalidArgumentError("chunks", f"must be a list of chunks, got {type(chunks).__name__}")


def _check_unique(ids: Iterable[str], table: str) -> None:
    seen: set[str] = set()
    for row_id in ids:
        if row_id in seen:
            raise InvalidArgumentError(f"{table} id={row_id}", "appears twice in the input")
        seen.add(row_id)


def _deal_record(chunk: DealChunk, now: datetime) -> tuple[Any, ...]:
    if not isinstance(chunk, DealChunk):
        raise InvalidArgumentError("chunks", f"expected DealChunk items, got {type(chunk).__name__}")
    row_id = _row_id(chunk, "deal_embeddings")
    if chunk.pre_qualification_id is None and chunk.qualification_id is None:
        raise InvalidArgumentError(
            f"deal_embeddings id={row_id}", "a chunk needs a pre_qualification_id or a qualification_id"
        )
    _texts(
        "deal_embeddings",
        row_id,
        pre_qualification_id=chunk.pre_qualification_id,
        qualification_id=chunk.qualification_id,
        agent_name=chunk.agent_name,
        chunk_type=chunk.chunk_type,
        content=chunk.content,
        chunk_category=chunk.chunk_category,
        validated_by=chunk.validated_by,
    )
    _ints("deal_embeddings", row_id, chunk_index=chunk.chunk_index, confidence=chunk.confidence)
    validation.optional_flag(chunk.requires_validation, f"deal_embeddings id={row_id} column=requires_validation")
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
        raise InvalidArgumentError("chunks", f"expected RawChunk items, got {type(chunk).__name__}")
    row_id = _row_id(chunk, "raw_chunks")
    if chunk.embedding is None:
        raise InvalidArgumentError(
            f"raw_chunks id={row_id} column=embedding", "raw chunks need an embedding (NOT NULL)"
        )
    _texts("raw_chunks", row_id, content=chunk.content)
    _ints("raw_chunks", row_id, chunk_index=chunk.chunk_index, token_count=chunk.token_count)
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


@operation("insert_deal_chunks")
async def insert_deal_chunks(db: Db, chunks: Sequence[DealChunk]) -> list[str]:
    """Insert *chunks* into ``deal_embeddings`` with one binary COPY; return their ids in order.

    Everything is validated first (embeddings, texts, integers, owners, duplicate ids); a
    bad chunk raises before any row is written, and the COPY itself is one statement (all
    rows or none). An unknown owner id is a ``NotFoundError``, an id already stored an
    ``InvalidArgumentError`` (nothing written in either case).
    """
    _check_chunks(chunks)
    now = utc_now()
    records = [_deal_record(chunk, now) for chunk in chunks]
    _check_unique((r[0] for r in records), "deal_embeddings")
    if records:
        try:
            if isinstance(db, asyncpg.Pool):
                async with db.acquire() as conn:
                    await _copy_deal_records(conn, records)
            else:
                await _copy_deal_records(db, records)
        except (asyncpg.ForeignKeyViolationError, asyncpg.UniqueViolationError) as exc:
            raise _constraint_error("deal_embeddings", exc) from exc
    return [r[0] for r in records]


async def _copy_deal_records(conn: asyncpg.Connection, records: list[tuple[Any, ...]]) -> None:
    layout = await layout_of(conn)  # the Citus layout places each chunk with its tenant
    await layout.copy_rows(conn, "deal_embeddings", DEAL_EMBEDDING_COLUMNS, records)


def _constraint_error(table: str, exc: asyncpg.PostgresError) -> NotFoundError | InvalidArgumentError:
    detail = getattr(exc, "detail", None) or str(exc)
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFoundError(f"{table}: an owner does not exist ({detail})")
    return InvalidArgumentError(f"{table} column=id", f"an id is already stored ({detail})")


@operation("replace_raw_chunks")
async def replace_raw_chunks(db: Db, pre_qualification_id: str, chunks: Sequence[RawChunk]) -> list[str]:
    """Replace every raw chunk of a pre-qualification by *chunks*, atomically; return the new ids.

    Validation happens before the transaction. In one transaction: lock the
    pre-qualification row (``NotFoundError`` when it does not exist), delete its raw
    chunks, binary-COPY the new ones. Any failure rolls back to the old chunks.
    """
    pre_qualification_id = validation.text(pre_qualification_id, "pre_qualification_id")
    _check_chunks(chunks)
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
                layout = await layout_of(conn)
                try:
                    await layout.copy_rows(conn, "raw_chunks", RAW_CHUNK_COLUMNS, records)
                except asyncpg.UniqueViolationError as exc:
                    raise _constraint_error("raw_chunks", exc) from exc

    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            await _run(conn)
    else:
        await _run(db)
    return [r[0] for r in records]


@operation("set_description_embedding")
async def set_description_embedding(db: Db, pre_qualification_id: str, embedding: Any) -> None:
    """Set (or, with ``None``, clear) ``pre_qualifications.description_embedding``.

    The embedding is validated first. ``updated_at`` is left alone: the old app had no
    ``$onUpdate`` and never wrote this column. ``NotFoundError`` when the id does not exist.
    """
    pre_qualification_id = validation.text(pre_qualification_id, "pre_qualification_id")
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
