"""Every statement of the write paths, as named records (``layout/statements.py``), built at import.

Each is a file in ``writes/sql/`` that runs as written on a single node; owner statements
derive their pre-qualification variant and their Citus form (``-- citus:`` markers) as the
search statements do. The re-embedding statements are templates over an embedding slot (the
vector column and its two bookkeeping columns, ``db/library_columns.py``), built per slot.
"""

from __future__ import annotations

from functools import cache
from typing import Final, Literal

from ..db.library_columns import EmbeddingSlot
from ..db.migrations import quote_ident
from ..layout import OwnerColumn, OwnerStatement, Statement
from ..layout.statements import load_sql, owner_variant

__all__ = [
    "DELETE_DEAL",
    "DELETE_DEAL_BY_ID",
    "DELETE_RAW",
    "DELETE_RAW_BY_ID",
    "GET_DEAL",
    "GET_RAW",
    "LOCK_PRE_QUALIFICATION",
    "OWNER_STATEMENTS",
    "PAGE_DEAL",
    "PAGE_RAW",
    "QUALIFICATION_TENANT",
    "SET_DESCRIPTION_EMBEDDING",
    "ChunkTable",
    "stale_statement",
    "update_embeddings_sql",
]

ChunkTable = Literal["deal_embeddings", "raw_chunks"]
_OWNERS: Final[tuple[OwnerColumn, ...]] = ("qualification_id", "pre_qualification_id")


def _load(name: str) -> str:
    return load_sql("dealhunter_vectors.writes", name)


def _by_owner(name: str, text: str | None = None) -> dict[OwnerColumn, OwnerStatement]:
    sql = _load(name) if text is None else text
    return {
        owner: OwnerStatement.build(f"{name}[{owner}]", owner_variant(sql, owner), owner=owner, owner_param=1)
        for owner in _OWNERS
    }


def _everywhere(name: str) -> Statement:
    """A statement that runs as written on both layouts (multi-shard on Citus)."""
    sql = _load(name)
    return Statement(name, sql, sql)


DELETE_DEAL: Final = _by_owner("delete_deal_chunks")
"""Delete an owner's deal chunks by a selector, returning the deleted ids."""
PAGE_DEAL: Final = _by_owner("page_deal_chunks")
"""One keyset page of an owner's deal chunks."""
DELETE_RAW: Final = OwnerStatement.build(
    "delete_raw_chunks", _load("delete_raw_chunks"), owner="pre_qualification_id", owner_param=1
)
"""Delete a pre-qualification's raw chunks (all, or by ids)."""
PAGE_RAW: Final = OwnerStatement.build(
    "page_raw_chunks", _load("page_raw_chunks"), owner="pre_qualification_id", owner_param=1
)
"""One keyset page of a pre-qualification's raw chunks."""
GET_DEAL: Final = _everywhere("get_deal_chunks")
GET_RAW: Final = _everywhere("get_raw_chunks")
DELETE_DEAL_BY_ID: Final = _everywhere("delete_deal_chunks_by_id")
DELETE_RAW_BY_ID: Final = _everywhere("delete_raw_chunks_by_id")
LOCK_PRE_QUALIFICATION: Final = _load("lock_pre_qualification")
"""Lock a pre-qualification row (the tenant of its chunks) until commit (same text on Citus: a router query)."""
QUALIFICATION_TENANT: Final = _load("qualification_tenant")
SET_DESCRIPTION_EMBEDDING: Final = 'UPDATE "pre_qualifications" SET "description_embedding" = $2 WHERE "id" = $1'

OWNER_STATEMENTS: Final[tuple[OwnerStatement, ...]] = (
    *DELETE_DEAL.values(),
    *PAGE_DEAL.values(),
    DELETE_RAW,
    PAGE_RAW,
)
"""Every owner statement of the writes (checked like the searches' in tests/writes/)."""


def _slot_sql(name: str, slot: EmbeddingSlot) -> str:
    vector, model, digest = slot.quoted()
    return _load(name).format(vector=vector, model=model, hash=digest)


@cache
def stale_statement(table: ChunkTable, slot: EmbeddingSlot, owner: OwnerColumn | None) -> OwnerStatement:
    """The stale-chunk query of *table* for *slot*, scoped to an owner column (its Citus form
    routed), or over every row (*owner* None: ``$1`` is NULL and the single form runs everywhere)."""
    if table == "raw_chunks":
        return OwnerStatement.build(
            f"stale_raw_chunks[{slot.column}]",
            _slot_sql("stale_raw_chunks", slot),
            owner="pre_qualification_id",
            owner_param=1,
        )
    return _by_owner("stale_deal_chunks", _slot_sql("stale_deal_chunks", slot))[owner or "qualification_id"]


@cache
def update_embeddings_sql(table: ChunkTable, slot: EmbeddingSlot) -> str:
    """The bulk update of *slot* in *table* from the staged embeddings (same text on both layouts)."""
    vector, model, digest = slot.quoted()
    return _load("update_embeddings").format(table=quote_ident(table), vector=vector, model=model, hash=digest)
