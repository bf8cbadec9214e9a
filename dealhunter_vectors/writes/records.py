"""Chunks (:class:`~dealhunter_vectors.models.DealChunk`, :class:`~dealhunter_vectors.models.RawChunk`)
validated into the records the write paths copy, before anything is sent.

Every embedding goes through :func:`~dealhunter_vectors.embeddings.as_embedding` (dimensions,
finite, norm in [1e-12, 1e15], half-precision range); every other value through
:mod:`dealhunter_vectors.validation` (texts without NUL characters, integers in int32 and never
``bool``, flags ``bool``). Errors name table, row id and column. A record is the row's legacy
columns followed by its library-owned values (:func:`~dealhunter_vectors.db.library_columns.library_values`,
the one place that computes them).

Conventions kept from the old app (Drizzle):

* ids: when the caller gives none, a cuid2-*shaped* id is generated: 24 characters, a
  lower-case letter followed by 23 characters of ``[a-z0-9]``, drawn from :mod:`secrets` (a
  CSPRNG; about 119 random bits). It is not cuid2's hash construction, only its alphabet and
  length, which is all the schema and the app rely on.
* ``created_at`` / ``updated_at``: ``timestamp without time zone`` holding the UTC wall clock
  (Drizzle sent ``Date.toISOString()``). Aware datetimes given by the caller
  (``validated_at``) are converted to UTC; naive ones are taken as UTC already.
* metadata: JSON text (``orjson.dumps``), NULL when None.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import orjson

from .. import validation
from ..config import get_settings
from ..db.library_columns import LIBRARY_COLUMNS, library_values
from ..embeddings import Float32Array, as_embedding
from ..errors import InvalidArgumentError, NotFoundError
from ..models import DealChunk, RawChunk

__all__ = [
    "DEAL_EMBEDDING_COLUMNS",
    "DEAL_WRITE_COLUMNS",
    "ID_LENGTH",
    "RAW_CHUNK_COLUMNS",
    "RAW_WRITE_COLUMNS",
    "check_chunks",
    "check_unique",
    "constraint_error",
    "deal_record",
    "embedding_model",
    "new_id",
    "raw_record",
    "stored_embedding",
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
"""The 16 legacy columns of ``deal_embeddings`` (the writes also fill :data:`LIBRARY_COLUMNS`)."""

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
"""The 8 legacy columns of ``raw_chunks`` (the writes also fill :data:`LIBRARY_COLUMNS`)."""

DEAL_WRITE_COLUMNS: Final = (*DEAL_EMBEDDING_COLUMNS, *LIBRARY_COLUMNS)
"""The columns of a :func:`deal_record`, in order."""
RAW_WRITE_COLUMNS: Final = (*RAW_CHUNK_COLUMNS, *LIBRARY_COLUMNS)
"""The columns of a :func:`raw_record`, in order."""

_ID_FIRST: Final = string.ascii_lowercase
_ID_REST: Final = string.ascii_lowercase + string.digits
ID_LENGTH: Final = 24


def new_id() -> str:
    """A cuid2-shaped id: a letter then 23 of ``[a-z0-9]``, from :mod:`secrets`."""
    return secrets.choice(_ID_FIRST) + "".join(secrets.choice(_ID_REST) for _ in range(ID_LENGTH - 1))


def utc_now() -> datetime:
    """The current UTC wall clock as a naive datetime (``timestamp without time zone``)."""
    return datetime.now(UTC).replace(tzinfo=None)


def embedding_model(value: Any) -> str:
    """The model name recorded with new embeddings: *value*, else ``DEALHUNTER_EMBEDDING_MODEL``."""
    if value is None:
        return get_settings().embedding_model
    model = validation.text(value, "embedding_model")
    if not model.strip():
        raise InvalidArgumentError("embedding_model", "must not be empty")
    return model


def _as_utc_naive(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def stored_embedding(
    value: Any, *, table: str, row_id: str, column: str = "embedding", dimensions: int | None = None
) -> Float32Array:
    """*value* checked by the embedding rules (*dimensions*, default ``DEALHUNTER_EMBEDDING_DIMENSIONS``),
    as float32; the error names table, row and column."""
    size = get_settings().embedding_dimensions if dimensions is None else dimensions
    return as_embedding(value, dimensions=size, where=f"{table} id={row_id} column={column}")


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


def check_chunks(chunks: Any) -> None:
    """*chunks* must be a sequence (a list or tuple), not a string or one chunk."""
    if isinstance(chunks, (str, bytes)) or not isinstance(chunks, Sequence):
        raise InvalidArgumentError("chunks", f"must be a list of chunks, got {type(chunks).__name__}")


def check_unique(ids: Iterable[str], table: str) -> None:
    """No id twice in one call."""
    seen: set[str] = set()
    for row_id in ids:
        if row_id in seen:
            raise InvalidArgumentError(f"{table} id={row_id}", "appears twice in the input")
        seen.add(row_id)


def deal_record(chunk: DealChunk, now: datetime, model: str) -> tuple[Any, ...]:
    """One ``deal_embeddings`` record in :data:`DEAL_WRITE_COLUMNS` order."""
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
    embedding = (
        None if chunk.embedding is None else stored_embedding(chunk.embedding, table="deal_embeddings", row_id=row_id)
    )
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
        *library_values(chunk.content, embedding is not None, model),
    )


def raw_record(chunk: RawChunk, pre_qualification_id: str, now: datetime, model: str) -> tuple[Any, ...]:
    """One ``raw_chunks`` record in :data:`RAW_WRITE_COLUMNS` order."""
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
        stored_embedding(chunk.embedding, table="raw_chunks", row_id=row_id),
        _metadata_text(chunk.metadata, table="raw_chunks", row_id=row_id),
        now,
        *library_values(chunk.content, True, model),
    )


def constraint_error(table: str, exc: asyncpg.PostgresError) -> NotFoundError | InvalidArgumentError:
    """A foreign-key violation as ``NotFoundError``, a duplicate id as ``InvalidArgumentError``."""
    detail = getattr(exc, "detail", None) or str(exc)
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFoundError(f"{table}: an owner does not exist ({detail})")
    return InvalidArgumentError(f"{table} column=id", f"an id is already stored ({detail})")
