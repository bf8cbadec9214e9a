"""Every search statement, as a named record (``layout/statements.py``), built once at import.

Each statement is a file in ``search/sql/`` that runs as written on a single node; the
records derive the owner variants, the one-request forms and the Citus forms from it.
``tests/layout/`` prepares every form of every record on a real server.
"""

from __future__ import annotations

from typing import Final

from ..layout import CandidateStatement, OwnerColumn, OwnerStatement, Statement
from ..layout.statements import load_sql, owner_variant

__all__ = [
    "DEAL_SEARCH",
    "DUPLICATE_CANDIDATES",
    "DUPLICATE_EXACT",
    "HYBRID_DEAL",
    "HYBRID_RAW",
    "LIST_DEAL_CHUNKS",
    "MMR_PAIRWISE",
    "OWNER_STATEMENTS",
    "RAW_SEARCH",
]

_OWNERS: Final[tuple[OwnerColumn, ...]] = ("qualification_id", "pre_qualification_id")


def _load(name: str) -> str:
    return load_sql("dealhunter_vectors.search", name)


def _by_owner(name: str, *, owner_param: int | None = None) -> dict[OwnerColumn, OwnerStatement]:
    text = _load(name)
    return {
        owner: OwnerStatement.build(
            f"{name}[{owner}]", owner_variant(text, owner), owner=owner, owner_param=owner_param
        )
        for owner in _OWNERS
    }


DEAL_SEARCH: Final = _by_owner("deal_search")
"""Batched exact deal-chunk search (half-precision prefilter + exact re-rank), per owner column."""
RAW_SEARCH: Final = OwnerStatement.build("raw_search", _load("raw_search"), owner="pre_qualification_id")
"""Batched exact raw-chunk search (half-precision prefilter + exact re-rank of the candidates)."""
LIST_DEAL_CHUNKS: Final = _by_owner("list_deal_chunks", owner_param=1)
"""Unranked listing of an owner's chunks (with or without embedding)."""
HYBRID_DEAL: Final = _by_owner("hybrid_deal_embeddings", owner_param=2)
"""Hybrid (full-text + vector, RRF) search over an owner's deal chunks."""
HYBRID_RAW: Final = OwnerStatement.build(
    "hybrid_raw_chunks", _load("hybrid_raw_chunks"), owner="pre_qualification_id", owner_param=2
)
"""Hybrid search over a pre-qualification's raw chunks."""

MMR_PAIRWISE: Final[dict[str, dict[OwnerColumn, OwnerStatement]]] = {
    "deal_embeddings": _by_owner("mmr_pairwise_deal_embeddings", owner_param=2),
    "raw_chunks": {
        "pre_qualification_id": OwnerStatement.build(
            "mmr_pairwise_raw_chunks", _load("mmr_pairwise_raw_chunks"), owner="pre_qualification_id", owner_param=2
        )
    },
}
"""The exact cosine matrix of MMR candidates (an owner's rows, by id), per table and owner column."""

DUPLICATE_EXACT: Final = Statement(
    "pre_qualification_exact", _load("pre_qualification_exact"), _load("citus_pre_qualification_exact")
)
"""Exact scan of every pre-qualification with a description embedding and requirements."""
DUPLICATE_CANDIDATES: Final = CandidateStatement(
    "pre_qualification_ann",
    'SELECT * FROM "dealhunter_pre_qualification_ann_spread"($1::vector, $2::text, $3::float8, $4::int4, '
    "$5::int4, $6::float8, $7::int4, $8::int4, $9::int4)",
    _load("citus_pre_qualification_ann"),
)
"""The global index search: one call of migration 010's function (its SET clauses carry the
settings: one round trip), or each shard's candidates on Citus."""

OWNER_STATEMENTS: Final[tuple[OwnerStatement, ...]] = (
    *DEAL_SEARCH.values(),
    RAW_SEARCH,
    *LIST_DEAL_CHUNKS.values(),
    *HYBRID_DEAL.values(),
    HYBRID_RAW,
    *(statement for by_owner in MMR_PAIRWISE.values() for statement in by_owner.values()),
)
"""Every owner statement (for the checks in tests/layout/)."""
