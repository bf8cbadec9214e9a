"""Writes and read-backs of ``raw_chunks`` (a pre-qualification's document chunks).

* :func:`replace_raw_chunks`: every raw chunk of a pre-qualification replaced, atomically (the
  app re-chunks a document and stores the new set): in one transaction the pre-qualification's
  row is locked (``FOR NO KEY UPDATE``: concurrent replaces of it run one after the other), its
  raw chunks deleted and the new ones COPYed; a failure anywhere leaves the old chunks.
* :func:`delete_raw_chunks` (a pre-qualification's, all or by ids; or by ids alone),
  :func:`upsert_raw_chunks`, :func:`get_raw_chunks`, :func:`page_raw_chunks`: as the deal-chunk
  functions (:mod:`.deal_chunks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from .. import validation
from ..db.faults import operation
from ..errors import InvalidArgumentError, NotFoundError
from ..layout import OwnerRequest, layout_of
from ..models import RawChunk, RawChunkPage, StoredRawChunk, UpsertResult
from . import statements as st
from ._conn import Db, connection
from ._faults import typed_errors
from .deal_chunks import MAX_PAGE_SIZE
from .records import RAW_WRITE_COLUMNS, check_chunks, check_unique, embedding_model, raw_record, utc_now
from .rows import raw_chunk, stored_by_ids
from .selectors import id_list

__all__ = [
    "delete_raw_chunks",
    "get_raw_chunks",
    "page_raw_chunks",
    "replace_raw_chunks",
    "upsert_raw_chunks",
]

TABLE: Final = "raw_chunks"


def _records(pre_qualification_id: str, chunks: Sequence[RawChunk], model: Any) -> list[tuple[Any, ...]]:
    check_chunks(chunks)
    now, name = utc_now(), embedding_model(model)
    records = [raw_record(chunk, pre_qualification_id, now, name) for chunk in chunks]
    check_unique((r[0] for r in records), TABLE)
    return records


@operation("replace_raw_chunks")
async def replace_raw_chunks(
    db: Db, pre_qualification_id: str, chunks: Sequence[RawChunk], *, embedding_model: str | None = None
) -> list[str]:
    """Replace every raw chunk of a pre-qualification by *chunks*, atomically; return the new ids.

    Validation happens before the transaction. In one transaction: lock the
    pre-qualification row (``NotFoundError`` when it does not exist), delete its raw
    chunks, binary-COPY the new ones. Any failure rolls back to the old chunks.
    *embedding_model* is recorded with each embedding (default ``DEALHUNTER_EMBEDDING_MODEL``).
    """
    owner = validation.text(pre_qualification_id, "pre_qualification_id")
    records = _records(owner, chunks, embedding_model)
    async with connection(db) as conn, conn.transaction():
        if await conn.fetchval(st.LOCK_PRE_QUALIFICATION, owner) is None:
            raise NotFoundError(f"pre_qualifications id={owner} does not exist")
        layout = await layout_of(conn)
        await layout.owner_rows(conn, st.DELETE_RAW, OwnerRequest(owner, (owner, None)))
        if records:
            with typed_errors(TABLE):
                await layout.copy_rows(conn, TABLE, RAW_WRITE_COLUMNS, records)
    return [r[0] for r in records]


@operation("delete_raw_chunks")
async def delete_raw_chunks(
    db: Db, *, pre_qualification_id: str | None = None, ids: Sequence[str] | None = None
) -> int:
    """Delete a pre-qualification's raw chunks (all, or those of *ids*), or the raw chunks of
    *ids*; the count. Neither given: ``InvalidArgumentError`` (never an unbounded delete)."""
    owner = validation.optional_text(pre_qualification_id, "pre_qualification_id")
    id_values = None if ids is None else id_list(ids)
    if owner is None and id_values is None:
        raise InvalidArgumentError("ids", "give ids or a pre_qualification_id")
    if id_values == []:
        return 0
    async with connection(db) as conn:
        layout = await layout_of(conn)
        if owner is None:
            rows = await layout.all_rows(conn, st.DELETE_RAW_BY_ID, id_values)
        else:
            rows = await layout.owner_rows(conn, st.DELETE_RAW, OwnerRequest(owner, (owner, id_values)))
    return len(rows)


@operation("upsert_raw_chunks")
async def upsert_raw_chunks(
    db: Db, pre_qualification_id: str, chunks: Sequence[RawChunk], *, embedding_model: str | None = None
) -> UpsertResult:
    """Insert *chunks* for the pre-qualification, or update the stored raw chunks with their ids.

    As :func:`~dealhunter_vectors.writes.upsert_deal_chunks`: idempotent, ``created_at`` kept; an
    id stored for another pre-qualification is an ``InvalidArgumentError`` (nothing written).
    """
    owner = validation.text(pre_qualification_id, "pre_qualification_id")
    records = _records(owner, chunks, embedding_model)
    if not records:
        return UpsertResult(ids=[], inserted_ids=[], updated_ids=[])
    async with connection(db) as conn, conn.transaction():
        layout = await layout_of(conn)
        with typed_errors(TABLE):
            rows = await layout.upsert_rows(
                conn, TABLE, RAW_WRITE_COLUMNS, records, fixed=("pre_qualification_id",), keep=("created_at",)
            )
        written = {r["id"]: bool(r["inserted"]) for r in rows}
        for record in records:
            if record[0] not in written:
                raise InvalidArgumentError(
                    f"{TABLE} id={record[0]}",
                    "is stored for another pre-qualification; an upsert never moves a chunk",
                )
    ids = [r[0] for r in records]
    return UpsertResult(
        ids=ids, inserted_ids=[i for i in ids if written[i]], updated_ids=[i for i in ids if not written[i]]
    )


@operation("get_raw_chunks", read_only=True)
async def get_raw_chunks(db: Db, ids: Sequence[str], *, include_embeddings: bool = True) -> list[StoredRawChunk]:
    """The stored raw chunks with these *ids*, in the order asked; missing ids are absent."""
    return await stored_by_ids(db, st.GET_RAW, ids, include_embeddings, raw_chunk)


@operation("page_raw_chunks", read_only=True)
async def page_raw_chunks(
    db: Db,
    pre_qualification_id: str,
    *,
    after: str | None = None,
    limit: int = 100,
    include_embeddings: bool = False,
) -> RawChunkPage:
    """One page of a pre-qualification's raw chunks by id (keyset, as ``page_deal_chunks``)."""
    owner = validation.text(pre_qualification_id, "pre_qualification_id")
    cursor = validation.optional_text(after, "after")
    size = validation.limit(limit, maximum=MAX_PAGE_SIZE)
    include = validation.flag(include_embeddings, "include_embeddings")
    async with connection(db) as conn:
        layout = await layout_of(conn)
        rows = await layout.owner_rows(conn, st.PAGE_RAW, OwnerRequest(owner, (owner, cursor, size, include)))
    chunks = [raw_chunk(r) for r in rows]
    return RawChunkPage(chunks=chunks, next_after=chunks[-1].id if len(chunks) == size else None)
