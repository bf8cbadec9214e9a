"""Re-embedding without waste, and the description embedding (docs/reembedding.md).

* :func:`stale_chunks`: the chunks whose embedding is out of date for a model: no recorded
  model or content hash (written by another writer), another model, or content changed since
  it was embedded (``embedding_content_hash`` differs from the current content's sha256).
  Pages by id.
* :func:`update_embeddings`: new embeddings for rows by id in one statement: a binary COPY into
  a session-temporary table and one ``UPDATE ... FROM``; a row whose content changed since the
  caller embedded it (``content_hash`` given) is left alone and reported.
* Both work on the main slot ``embedding`` or on a shadow slot that a model switch adds
  (``column="embedding_next"``, with ``embedding_next_model`` / ``embedding_next_content_hash``).
* :func:`set_description_embedding`: the write the old app never had (so its semantic
  duplicate step never fired).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final, cast

import asyncpg

from .. import validation
from ..config import get_settings
from ..db.faults import operation
from ..db.library_columns import MAIN_SLOT, EmbeddingSlot
from ..errors import InvalidArgumentError, NotFoundError
from ..layout import OwnerColumn, OwnerRequest, layout_of
from ..models import EmbeddingUpdate, EmbeddingUpdateResult, StaleChunk
from . import statements as st
from ._conn import Db, connection
from ._faults import typed_errors
from .records import check_chunks, check_unique, embedding_model, stored_embedding

__all__ = ["set_description_embedding", "stale_chunks", "update_embeddings"]

_TABLES: Final = ("deal_embeddings", "raw_chunks")
_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_STAGE: Final = "dhv_embedding_update"
_CREATE_STAGE: Final = (
    f'CREATE TEMP TABLE IF NOT EXISTS "{_STAGE}" ("id" text, "embedding" vector, "content_hash" bytea) '
    "ON COMMIT DELETE ROWS"
)
_SLOT_COLUMNS: Final = """
SELECT a.attname AS "name", t.typname AS "type", a.atttypmod AS "typmod", a.attgenerated <> '' AS "generated"
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($2::text[]) AND a.attnum > 0 AND NOT a.attisdropped
"""


def _table(value: Any) -> st.ChunkTable:
    if value not in _TABLES:
        raise InvalidArgumentError("table", f"must be one of {list(_TABLES)}, got {value!r}")
    return cast(st.ChunkTable, value)


def _slot_name(value: Any) -> EmbeddingSlot:
    name = validation.text(value, "column")
    if not _NAME.fullmatch(name):
        raise InvalidArgumentError("column", f"must be a plain lower-case column name, got {name!r}")
    return MAIN_SLOT if name == MAIN_SLOT.column else EmbeddingSlot(name)


async def _slot_dimensions(conn: asyncpg.Connection, table: str, slot: EmbeddingSlot) -> int:
    """The vector size of *slot* in *table*; ``InvalidArgumentError`` unless its three columns exist
    with the right types (a plain ``vector`` column, ``text`` model, ``bytea`` hash)."""
    if slot == MAIN_SLOT:
        return get_settings().embedding_dimensions
    names = [slot.column, slot.model, slot.content_hash]
    rows = {r["name"]: r for r in await conn.fetch(_SLOT_COLUMNS, f'"{table}"', names)}
    expected = {slot.column: "vector", slot.model: "text", slot.content_hash: "bytea"}
    for name, kind in expected.items():
        row = rows.get(name)
        if row is None or row["type"] != kind or row["generated"]:
            raise InvalidArgumentError(
                "column",
                f"{table}.{name} must exist as a plain {kind} column for the slot {slot.column!r} "
                "(docs/reembedding.md, 'Switching models')",
            )
    typmod = int(rows[slot.column]["typmod"])
    return typmod if typmod > 0 else get_settings().embedding_dimensions


def _owner(qualification_id: Any, pre_qualification_id: Any, table: str) -> tuple[OwnerColumn, str] | None:
    q = validation.optional_text(qualification_id, "qualification_id")
    pq = validation.optional_text(pre_qualification_id, "pre_qualification_id")
    if q is not None and pq is not None:
        raise InvalidArgumentError("qualification_id", "give one owner, not both")
    if q is not None:
        if table == "raw_chunks":
            raise InvalidArgumentError("qualification_id", "raw chunks belong to a pre-qualification")
        return "qualification_id", q
    return None if pq is None else ("pre_qualification_id", pq)


@operation("stale_chunks", read_only=True)
async def stale_chunks(
    db: Db,
    *,
    model: str | None = None,
    table: str = "deal_embeddings",
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    after: str | None = None,
    limit: int = 500,
    include_missing: bool = False,
    column: str = "embedding",
) -> list[StaleChunk]:
    """The chunks of *table* to (re-)embed for *model* (default ``DEALHUNTER_EMBEDDING_MODEL``), by id.

    Stale: no recorded model or hash (rows written by other writers: NULL counts as stale),
    another model, or content changed since it was embedded. ``include_missing``: chunks without
    any embedding too. One owner (single-shard on Citus) or every row; pages by id: pass the
    last id as ``after`` (``limit`` in [1, 10,000]). *column*: a shadow slot of a model switch.
    Each :class:`StaleChunk` carries the current content and its hash for :func:`update_embeddings`.
    """
    name = _table(table)
    target = embedding_model(model)
    owner = _owner(qualification_id, pre_qualification_id, name)
    cursor = validation.optional_text(after, "after")
    size = validation.limit(limit, maximum=10_000)
    missing = validation.flag(include_missing, "include_missing")
    slot = _slot_name(column)
    async with connection(db) as conn:
        layout = await layout_of(conn)
        await _slot_dimensions(conn, name, slot)
        statement = st.stale_statement(name, slot, None if owner is None else owner[0])
        with typed_errors(name):
            if owner is None:
                rows = await conn.fetch(statement.single, None, target, missing, cursor, size)
            else:
                request = OwnerRequest(owner[1], (owner[1], target, missing, cursor, size))
                rows = await layout.owner_rows(conn, statement, request)
    return [StaleChunk(**dict(r.items())) for r in rows]


def _updates(updates: Any, table: str, dimensions: int) -> list[tuple[str, Any, bytes | None]]:
    check_chunks(updates)
    out = []
    for item in updates:
        if not isinstance(item, EmbeddingUpdate):
            raise InvalidArgumentError("updates", f"expected EmbeddingUpdate items, got {type(item).__name__}")
        row_id = validation.text(item.id, f"{table} column=id")
        vector = stored_embedding(item.embedding, table=table, row_id=row_id, dimensions=dimensions)
        digest = item.content_hash
        if digest is not None and (not isinstance(digest, bytes) or len(digest) != 32):
            raise InvalidArgumentError(f"{table} id={row_id} column=content_hash", "must be a 32-byte sha256 digest")
        out.append((row_id, vector, digest))
    check_unique((r[0] for r in out), table)
    return out


@operation("update_embeddings")
async def update_embeddings(
    db: Db,
    updates: Sequence[EmbeddingUpdate],
    *,
    model: str | None = None,
    table: str = "deal_embeddings",
    column: str = "embedding",
) -> EmbeddingUpdateResult:
    """Set new embeddings by id, in bulk: one binary COPY into a temporary table, one ``UPDATE``.

    Each row gets the embedding, *model* (default ``DEALHUNTER_EMBEDDING_MODEL``) and its current
    content's hash. With ``content_hash`` (from :func:`stale_chunks`) a row whose content changed
    since is left alone (``changed_ids``: embed it again); unknown ids are ``missing_ids``. One
    transaction. *column*: a shadow slot of a model switch (its size is the column's).
    """
    name = _table(table)
    target = embedding_model(model)
    slot = _slot_name(column)
    async with connection(db) as conn:
        dimensions = await _slot_dimensions(conn, name, slot)
        records = _updates(updates, name, dimensions)
        if not records:
            return EmbeddingUpdateResult(updated_ids=[], missing_ids=[], changed_ids=[])
        async with conn.transaction():
            await conn.execute(_CREATE_STAGE)
            await conn.copy_records_to_table(_STAGE, records=records, columns=["id", "embedding", "content_hash"])
            with typed_errors(name):
                rows = await conn.fetch(st.update_embeddings_sql(name, slot), target)
            await conn.execute(f'DELETE FROM "{_STAGE}"')  # noqa: S608 - a constant; for a second update in one transaction
            updated = {r["id"] for r in rows}
            rest = [r[0] for r in records if r[0] not in updated]
            present: set[str] = set()
            if rest:
                layout = await layout_of(conn)
                stored = st.GET_DEAL if name == "deal_embeddings" else st.GET_RAW
                present = {r["id"] for r in await layout.all_rows(conn, stored, rest, False)}
    ids = [r[0] for r in records]
    return EmbeddingUpdateResult(
        updated_ids=[i for i in ids if i in updated],
        missing_ids=[i for i in ids if i not in updated and i not in present],
        changed_ids=[i for i in ids if i not in updated and i in present],
    )


@operation("set_description_embedding")
async def set_description_embedding(db: Db, pre_qualification_id: str, embedding: Any) -> None:
    """Set (or, with ``None``, clear) ``pre_qualifications.description_embedding``.

    The embedding is validated first. ``updated_at`` is left alone: the old app had no
    ``$onUpdate`` and never wrote this column. ``NotFoundError`` when the id does not exist.
    """
    owner = validation.text(pre_qualification_id, "pre_qualification_id")
    value = (
        None
        if embedding is None
        else stored_embedding(embedding, table="pre_qualifications", row_id=owner, column="description_embedding")
    )
    status = await db.execute(st.SET_DESCRIPTION_EMBEDDING, owner, value)
    if status.split()[-1] == "0":
        raise NotFoundError(f"pre_qualifications id={owner} does not exist")
