"""Writes and read-backs of ``deal_embeddings``: insert, replace a section, delete, upsert, get, page.

* :func:`insert_deal_chunks`: one binary COPY of any number of rows (all or none).
* :func:`replace_deal_chunks`: the app's "delete the section, insert its new chunks", atomic:
  in one transaction the owning pre-qualification's row is locked (``FOR NO KEY UPDATE``: two
  replaces of one pre-qualification's chunks run one after the other, inserts that only
  reference it are not blocked), the selected rows are deleted and the new ones COPYed. Every
  new chunk must be selected by the same selector, so a replace run twice leaves one set.
* :func:`delete_deal_chunks`: by ids and/or an owner's selector, never without one of them.
* :func:`upsert_deal_chunks`: ``INSERT ... ON CONFLICT`` on the primary key, idempotent; a
  stored chunk never moves to another owner.
* :func:`get_deal_chunks`, :func:`page_deal_chunks`, :func:`iter_deal_chunks`: the stored rows
  read back (from the primary: reads that follow a write see it), pages by id (keyset).

Every row gets its library-owned values (``embedding_model``, ``embedding_content_hash``;
``db/library_columns.py``). Errors: bad input ``InvalidArgumentError`` / ``InvalidEmbeddingError``
naming table, row id and column, before anything is sent; an unknown owner ``NotFoundError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import asyncpg

from .. import validation
from ..db.faults import operation
from ..errors import InvalidArgumentError, NotFoundError
from ..layout import Layout, OwnerColumn, OwnerRequest, layout_of
from ..models import DealChunk, DealChunkPage, ReplaceResult, StoredDealChunk, UpsertResult
from . import statements as st
from ._conn import Db, connection
from ._faults import typed_errors
from .records import DEAL_WRITE_COLUMNS, check_chunks, check_unique, deal_record, embedding_model, utc_now
from .rows import deal_chunk, stored_by_ids
from .selectors import DealSelector, deal_selector, id_list

__all__ = [
    "MAX_PAGE_SIZE",
    "delete_deal_chunks",
    "get_deal_chunks",
    "insert_deal_chunks",
    "iter_deal_chunks",
    "lock_tenant",
    "page_deal_chunks",
    "replace_deal_chunks",
    "upsert_deal_chunks",
]

TABLE: Final = "deal_embeddings"
MAX_PAGE_SIZE: Final = 10_000
"""The largest page of :func:`page_deal_chunks` / ``page_raw_chunks``."""
_OWNERS: Final = ("pre_qualification_id", "qualification_id")


def _records(chunks: Sequence[DealChunk], model: Any) -> list[tuple[Any, ...]]:
    check_chunks(chunks)
    now, name = utc_now(), embedding_model(model)
    records = [deal_record(chunk, now, name) for chunk in chunks]
    check_unique((r[0] for r in records), TABLE)
    return records


@operation("insert_deal_chunks")
async def insert_deal_chunks(db: Db, chunks: Sequence[DealChunk], *, embedding_model: str | None = None) -> list[str]:
    """Insert *chunks* into ``deal_embeddings`` with one binary COPY; return their ids in order.

    Everything is validated first (embeddings, texts, integers, owners, duplicate ids); a
    bad chunk raises before any row is written, and the COPY itself is one statement (all
    rows or none). An unknown owner id is a ``NotFoundError``, an id already stored an
    ``InvalidArgumentError`` (nothing written in either case). *embedding_model* is recorded
    with each embedding (default ``DEALHUNTER_EMBEDDING_MODEL``).
    """
    records = _records(chunks, embedding_model)
    if records:
        async with connection(db) as conn:
            layout = await layout_of(conn)  # the Citus layout places each chunk with its tenant
            with typed_errors(TABLE):
                await layout.copy_rows(conn, TABLE, DEAL_WRITE_COLUMNS, records)
    return [r[0] for r in records]


async def lock_tenant(conn: asyncpg.Connection, selector: DealSelector) -> str:
    """Lock the pre-qualification row(s) owning the selector's chunks until commit; return the
    tenant (the owning pre-qualification) of the selector's routing owner.

    ``NotFoundError`` when an owner does not exist. Two owners (a pre-qualification and a
    qualification of another one) are locked in id order, so concurrent writers cannot deadlock.
    """
    tenants: dict[str, str] = {}
    if selector.pre_qualification_id is not None:
        tenants["pre_qualification_id"] = selector.pre_qualification_id
    if selector.qualification_id is not None:
        parent = await conn.fetchval(st.QUALIFICATION_TENANT, selector.qualification_id)
        if parent is None:
            raise NotFoundError(f"qualifications id={selector.qualification_id} does not exist")
        tenants["qualification_id"] = parent
    for tenant in sorted(set(tenants.values())):
        if await conn.fetchval(st.LOCK_PRE_QUALIFICATION, tenant) is None:
            raise NotFoundError(f"pre_qualifications id={tenant} does not exist")
    return tenants.get("pre_qualification_id") or tenants["qualification_id"]


def _selector_request(selector: DealSelector, *extra: object) -> tuple[OwnerColumn, OwnerRequest]:
    owner = selector.owner
    assert owner is not None  # the callers require an owner
    column, owner_id = owner
    return column, OwnerRequest(owner_id, (owner_id, *selector.params(), *extra))


@operation("replace_deal_chunks")
async def replace_deal_chunks(
    db: Db,
    chunks: Sequence[DealChunk],
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    agent_name: str | None = None,
    chunk_type: str | None = None,
    metadata_match: dict[str, str] | None = None,
    embedding_model: str | None = None,
) -> ReplaceResult:
    """Replace the chunks a selector picks (one "section") by *chunks*, atomically.

    The selector is an owner (``qualification_id`` and/or ``pre_qualification_id``) narrowed by
    ``agent_name``, ``chunk_type`` and ``metadata_match`` (e.g. ``{"sectionId": "budget"}``:
    metadata JSON objects holding that string value). Every new chunk must be picked by the same
    selector (else ``InvalidArgumentError`` naming it). One transaction: lock the owner, delete
    the picked rows, COPY the new ones; concurrent replaces of one owner run one after the
    other, so the section ends with exactly one of their chunk sets; rows outside the selector
    are never touched. Returns the deleted and inserted ids. ``NotFoundError``: unknown owner.
    """
    selector = deal_selector(
        qualification_id=qualification_id,
        pre_qualification_id=pre_qualification_id,
        agent_name=agent_name,
        chunk_type=chunk_type,
        metadata_match=metadata_match,
    )
    records = _records(chunks, embedding_model)
    for chunk, record in zip(chunks, records, strict=True):
        why = selector.mismatch({**dict(zip(DEAL_WRITE_COLUMNS, record, strict=True)), "metadata": chunk.metadata})
        if why is not None:
            raise InvalidArgumentError(f"{TABLE} id={record[0]}", f"is not in the replaced section ({why})")
    column, request = _selector_request(selector, None)
    async with connection(db) as conn, conn.transaction():
        layout = await layout_of(conn)
        tenant = await lock_tenant(conn, selector)
        deleted = await layout.tenant_rows(conn, st.DELETE_DEAL[column], request, tenant)
        if records:
            with typed_errors(TABLE):
                await layout.copy_rows(conn, TABLE, DEAL_WRITE_COLUMNS, records)
    return ReplaceResult(deleted_ids=sorted(r["id"] for r in deleted), inserted_ids=[r[0] for r in records])


@operation("delete_deal_chunks")
async def delete_deal_chunks(
    db: Db,
    *,
    ids: Sequence[str] | None = None,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    agent_name: str | None = None,
    chunk_type: str | None = None,
    metadata_match: dict[str, str] | None = None,
) -> int:
    """Delete chunks by *ids* and/or an owner's selector (as :func:`replace_deal_chunks`); the count.

    Without an owner only *ids* may be given (``agent_name`` etc. narrow an owner's chunks);
    without both an owner and ids it is an ``InvalidArgumentError``: no call empties the table
    by accident. ``ids=[]`` deletes nothing. An unknown owner has no chunks (0).
    """
    selector = deal_selector(
        qualification_id=qualification_id,
        pre_qualification_id=pre_qualification_id,
        agent_name=agent_name,
        chunk_type=chunk_type,
        metadata_match=metadata_match,
        owner_required=False,
    )
    id_values = None if ids is None else id_list(ids)
    if selector.owner is None:
        if id_values is None:
            raise InvalidArgumentError("ids", "give ids or an owner (qualification_id / pre_qualification_id)")
        narrowing = [n for n in ("agent_name", "chunk_type", "metadata_match") if getattr(selector, n) is not None]
        if narrowing:
            raise InvalidArgumentError(narrowing[0], "narrows an owner's chunks: give the owner too")
    if id_values == []:
        return 0
    async with connection(db) as conn:
        layout = await layout_of(conn)
        if selector.owner is None:
            rows = await layout.all_rows(conn, st.DELETE_DEAL_BY_ID, id_values)
        else:
            column, request = _selector_request(selector, id_values)
            rows = await layout.owner_rows(conn, st.DELETE_DEAL[column], request)
    return len(rows)


@operation("upsert_deal_chunks")
async def upsert_deal_chunks(
    db: Db, chunks: Sequence[DealChunk], *, embedding_model: str | None = None
) -> UpsertResult:
    """Insert *chunks*, or update the stored chunks with their ids (``ON CONFLICT (id) DO UPDATE``).

    Idempotent: the same call twice stores the same values (``updated_at`` aside; ``created_at``
    keeps the first write's). A chunk stored under other owners is an ``InvalidArgumentError``
    (an upsert never moves a chunk: delete it and insert it); nothing is written then.
    """
    records = _records(chunks, embedding_model)
    if not records:
        return UpsertResult(ids=[], inserted_ids=[], updated_ids=[])
    async with connection(db) as conn, conn.transaction():
        layout = await layout_of(conn)
        with typed_errors(TABLE):
            written = await _upsert(conn, layout, records)
    ids = [r[0] for r in records]
    return UpsertResult(
        ids=ids, inserted_ids=[i for i in ids if written[i]], updated_ids=[i for i in ids if not written[i]]
    )


async def _upsert(conn: asyncpg.Connection, layout: Layout, records: list[tuple[Any, ...]]) -> dict[str, bool]:
    rows = await layout.upsert_rows(conn, TABLE, DEAL_WRITE_COLUMNS, records, fixed=_OWNERS, keep=("created_at",))
    written = {r["id"]: bool(r["inserted"]) for r in rows}
    for record in records:
        if record[0] not in written:
            raise InvalidArgumentError(
                f"{TABLE} id={record[0]}",
                "is stored with other owners; an upsert never moves a chunk (delete it, then insert it)",
            )
    return written


@operation("get_deal_chunks", read_only=True)
async def get_deal_chunks(db: Db, ids: Sequence[str], *, include_embeddings: bool = True) -> list[StoredDealChunk]:
    """The stored chunks with these *ids*, in the order asked (an id twice: once); missing ids are absent.

    Reads the primary with read replicas configured (it follows writes). ``include_embeddings``:
    the float32 vectors too (``has_embedding`` tells either way).
    """
    return await stored_by_ids(db, st.GET_DEAL, ids, include_embeddings, deal_chunk)


@operation("page_deal_chunks", read_only=True)
async def page_deal_chunks(
    db: Db,
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    agent_name: str | None = None,
    chunk_type: str | None = None,
    metadata_match: dict[str, str] | None = None,
    after: str | None = None,
    limit: int = 100,
    include_embeddings: bool = False,
) -> DealChunkPage:
    """One page of an owner's chunks (optionally narrowed as in :func:`replace_deal_chunks`), by id.

    Pass ``after=page.next_after`` for the next page (keyset: rows inserted or deleted meanwhile
    never make a page repeat or skip a row that exists throughout); ``next_after`` is None after
    the last page. ``limit`` in [1, 10,000]. Reads the primary.
    """
    selector = deal_selector(
        qualification_id=qualification_id,
        pre_qualification_id=pre_qualification_id,
        agent_name=agent_name,
        chunk_type=chunk_type,
        metadata_match=metadata_match,
    )
    cursor = validation.optional_text(after, "after")
    size = validation.limit(limit, maximum=MAX_PAGE_SIZE)
    include = validation.flag(include_embeddings, "include_embeddings")
    column, request = _selector_request(selector, cursor, size, include)
    async with connection(db) as conn:
        layout = await layout_of(conn)
        rows = await layout.owner_rows(conn, st.PAGE_DEAL[column], request)
    chunks = [deal_chunk(r) for r in rows]
    return DealChunkPage(chunks=chunks, next_after=chunks[-1].id if len(chunks) == size else None)


async def iter_deal_chunks(
    db: Db,
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    agent_name: str | None = None,
    chunk_type: str | None = None,
    metadata_match: dict[str, str] | None = None,
    page_size: int = 500,
    include_embeddings: bool = False,
) -> AsyncIterator[StoredDealChunk]:
    """Every chunk :func:`page_deal_chunks` pages through, page after page (one query each)."""
    after: str | None = None
    while True:
        page = await page_deal_chunks(
            db,
            qualification_id=qualification_id,
            pre_qualification_id=pre_qualification_id,
            agent_name=agent_name,
            chunk_type=chunk_type,
            metadata_match=metadata_match,
            after=after,
            limit=page_size,
            include_embeddings=include_embeddings,
        )
        for chunk in page.chunks:
            yield chunk
        if page.next_after is None:
            return
        after = page.next_after
