"""Hybrid retrieval: PostgreSQL full-text search + exact vector search, fused by reciprocal rank fusion.

Pure embedding search misses exact terms (product names such as "TYPO3", tender numbers);
full-text search misses paraphrases. :func:`hybrid_search_deal_embeddings` and
:func:`hybrid_search_raw_chunks` run both over one owner's rows in one statement
(``search/sql/hybrid_*.sql``) and fuse the two rankings:

* **Vector leg**: the owner's rows (after the filters) ranked by the exact cosine distance
  ``embedding <=> q``, ties by id, optionally only rows with similarity ``> threshold``;
  its top ``candidates``. Like the owner-scoped search, rows are first scored by the inline
  half-precision copy (migration 004) and the exact distance is computed only for the rows
  the proven error bound cannot exclude from the top ``candidates``: the leg is identical
  to an exact scan.
* **Text leg**: the owner's rows whose ``content_tsv`` (migration 005) matches
  ``websearch_to_tsquery(config, query_text)``, ranked by ``ts_rank_cd`` (descending), ties
  by id; its top ``candidates``. ``config`` is the database's text search configuration
  (``german`` by default, see :func:`~dealhunter_vectors.db.fulltext.set_text_search_config`):
  German stemming (``Angebote`` finds ``Angebot``), umlauts and ß folded (``Straße`` =
  ``Strasse``). ``websearch_to_tsquery`` never fails on user text: words are ANDed,
  ``"quoted phrases"``, ``or`` and ``-word`` work as on a web search engine, every other
  character is a separator. **German compounds** (migration 011, docs/compounds.md): a row's
  ``content_tsv`` holds its content's compound parts after the text, so ``Rahmenvertrag``
  finds ``Rahmenvertragsangebot``; the query is ORed with its decompounded form
  (:func:`~dealhunter_vectors.compounds.decompound_query`: ``Rahmenvertrag`` ->
  ``"rahmen vertrag"``, a second parameter, never SQL text). Without the optional extra
  ``[compounds]`` the query text is used alone; rows without parts are found by their text.
* **Fusion**: ``fused_score = vector_weight / (rrf_k + vector_rank) + text_weight / (rrf_k +
  text_rank)``, a term only for a leg that returned the row; best ``limit`` by fused score,
  ties by id. A hit reports both ranks (None for a leg that did not return it), the exact
  cosine (``similarity``, whenever a query embedding is given and the row has one), the
  row's ``ts_rank_cd`` (``text_score``, whenever its text matches) and the fused score.

Either input may be absent: ``query_embedding=None`` is a text-only search (hits ordered by
text rank; ``similarity`` None), ``query_text=None`` (or text without any word, e.g. only
punctuation or only stop words) a vector-only search (hits ordered by cosine, like
:func:`~dealhunter_vectors.search_deal_embeddings` with the same threshold). Both absent is a
``ValueError``. A weight of 0 switches its leg off; a non-zero weight lies in
:data:`WEIGHT_RANGE` and ``rrf_k`` in [0, :data:`MAX_RRF_K`], so that no two ranks of a leg
round to the same fused score. ``threshold`` applies to the vector leg
only: a row below it can still be found by its text.

``query_text`` is data: quotes, ``&|!():*``, ``<->``, backslashes and SQL are just text. A
NUL character is treated as a space (PostgreSQL text cannot hold it); text longer than
:data:`MAX_QUERY_TEXT_CHARS` characters or with a lone UTF-16 surrogate raises
:class:`~dealhunter_vectors.errors.InvalidQueryTextError` (a ``ValueError``). Cost: the text
leg evaluates ``@@`` and ``ts_rank_cd`` for the owner's rows; a query of many ``or``-ed words
costs more per row (4,096 characters of ``x or x or ...``: ~1.8 ms per row), hence the cap.

``mmr_lambda`` (None = off): the fused list's top ``candidates`` are diversified by
maximal marginal relevance (:mod:`dealhunter_vectors.search.mmr`), relevance = fused score /
the best candidate's fused score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from ..compounds import decompound_query
from ..db.codecs import Vector
from ..db.content_parts import splitting_available
from ..db.faults import operation
from ..errors import InvalidArgumentError, InvalidQueryTextError, SchemaError
from ..layout import OwnerRequest, OwnerStatement, layout_of
from ..models import HybridDealChunkHit, HybridRawChunkHit
from . import mmr
from ._args import (
    check_id,
    check_limit,
    check_threshold,
    deal_filters,
    integer,
    max_distance,
    number,
    one_owner,
    query_vector,
)
from ._db import Db, routed
from .results import deal_fields, raw_fields
from .statements import HYBRID_DEAL, HYBRID_RAW

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_RRF_K",
    "MAX_CANDIDATES",
    "MAX_QUERY_TEXT_CHARS",
    "MAX_RRF_K",
    "WEIGHT_RANGE",
    "hybrid_search_deal_embeddings",
    "hybrid_search_raw_chunks",
]

DEFAULT_RRF_K: Final = 60
"""The usual reciprocal-rank-fusion constant (Cormack et al. 2009)."""
DEFAULT_CANDIDATES: Final = 50
"""How many rows each leg contributes to the fusion by default."""
MAX_CANDIDATES: Final = 1000
"""Largest ``candidates`` (each leg sorts at most this many rows into the fusion)."""
MAX_QUERY_TEXT_CHARS: Final = 4096
"""Longest accepted ``query_text`` (a search query, not a document)."""


MAX_RRF_K: Final = 1e6
"""Largest ``rrf_k``: beyond ~2**53 the terms of neighbouring ranks round to the same float."""
WEIGHT_RANGE: Final = (1e-6, 1e6)
"""A non-zero leg weight lies in this range (0 switches the leg off): every rank difference of
one leg stays visible beside the other leg's term in float64 (no ties, no overflow to inf)."""


# --------------------------------------------------------------------------- arguments


def _query_text(value: Any) -> str | None:
    """The text leg's input: None, or text that PostgreSQL can hold (typed error otherwise)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidQueryTextError(f"expected a string or None, got {type(value).__name__}")
    if len(value) > MAX_QUERY_TEXT_CHARS:
        raise InvalidQueryTextError(f"{len(value)} characters, at most {MAX_QUERY_TEXT_CHARS} are accepted")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidQueryTextError(f"not valid Unicode text ({exc.reason} at position {exc.start})") from None
    text = value.replace("\x00", " ")
    return text if text.strip() else None


def _alternative(text: str | None) -> str | None:
    """The decompounded query text ORed with the query's (None: no compound, or no extra [compounds])."""
    if text is None or not splitting_available():
        return None
    return decompound_query(text)


def _weight(value: Any, name: str) -> float:
    """0 (the leg is off) or a weight in :data:`WEIGHT_RANGE`."""
    low, high = WEIGHT_RANGE
    weight = number(value, name, minimum=0.0, maximum=high)
    if 0.0 < weight < low:
        raise InvalidArgumentError(name, f"must be 0 (leg off) or lie in [{low:g}, {high:g}], got {value!r}")
    return weight


class _Common:
    """The arguments shared by both hybrid searches, validated."""

    __slots__ = (
        "alternative",
        "candidates",
        "limit",
        "max_distance",
        "mmr_lambda",
        "rrf_k",
        "sql_limit",
        "text",
        "text_weight",
        "vector",
        "vector_weight",
    )

    def __init__(
        self,
        query_text: Any,
        query_embedding: Any,
        *,
        limit: int,
        threshold: float | None,
        rrf_k: float,
        text_weight: float,
        vector_weight: float,
        candidates: int,
        mmr_lambda: float | None,
    ) -> None:
        self.text = _query_text(query_text)
        self.alternative = _alternative(self.text)
        self.vector = None if query_embedding is None else Vector(query_vector(query_embedding))
        if query_text is None and query_embedding is None:
            raise InvalidArgumentError("query_text/query_embedding", "give query_text and/or query_embedding")
        self.limit = check_limit(limit)
        self.max_distance = None if threshold is None else max_distance(check_threshold(threshold))
        self.rrf_k = number(rrf_k, "rrf_k", minimum=0.0, maximum=MAX_RRF_K)
        self.text_weight = _weight(text_weight, "text_weight")
        self.vector_weight = _weight(vector_weight, "vector_weight")
        if self.text_weight == 0 and self.vector_weight == 0:
            raise InvalidArgumentError(
                "text_weight/vector_weight", "text_weight and vector_weight are both 0: no leg left to rank by"
            )
        candidates = integer(candidates, "candidates", minimum=1, maximum=MAX_CANDIDATES)
        if candidates < self.limit:
            raise InvalidArgumentError("candidates", f"candidates ({candidates}) must be >= limit ({self.limit})")
        self.candidates = candidates
        self.mmr_lambda = mmr.check_mmr_lambda(mmr_lambda)
        # With MMR the fused list's top `candidates` are the pool MMR chooses `limit` from.
        self.sql_limit = self.limit if self.mmr_lambda is None else candidates


async def _fetch(
    db: Db, statement: OwnerStatement, request: OwnerRequest, *, table: mmr.MmrTable, common: _Common
) -> list[Any]:
    """Run the hybrid statement (and the MMR step) on one connection and snapshot."""
    try:
        async with mmr.snapshot(db) as conn:
            layout = await layout_of(conn)
            rows = await layout.owner_rows(conn, statement, request)
            if common.mmr_lambda is None or len(rows) <= 1:
                return list(rows)
            best = max(r["fused_score"] for r in rows)
            return await mmr.diversify(
                conn,
                table,
                list(rows),
                owner=(statement.owner, request.owner_id),
                ids=[r["id"] for r in rows],
                relevance=[r["fused_score"] / best for r in rows],
                mmr_lambda=common.mmr_lambda,
                limit=common.limit,
            )
    except (asyncpg.UndefinedFunctionError, asyncpg.UndefinedColumnError) as exc:
        raise SchemaError(
            f"{table} has no full-text column (content_tsv, migration 005): run apply_schema first ({exc})"
        ) from None


# --------------------------------------------------------------------------- public API


@operation("hybrid_search_deal_embeddings", read_only=True)
@routed
async def hybrid_search_deal_embeddings(
    db: Db,
    query_text: str | None,
    query_embedding: Any,
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    limit: int = 5,
    agent_names: str | Sequence[str] | None = None,
    agent_name_contains: str | None = None,
    chunk_categories: Sequence[str] | None = None,
    min_confidence: int | None = None,
    only_validated: bool = False,
    tech_stack: str | None = None,
    threshold: float | None = None,
    rrf_k: float = DEFAULT_RRF_K,
    text_weight: float = 1.0,
    vector_weight: float = 1.0,
    candidates: int = DEFAULT_CANDIDATES,
    mmr_lambda: float | None = None,
) -> list[HybridDealChunkHit]:
    """Hybrid (full-text + vector) search over one owner's ``deal_embeddings`` rows.

    Exactly one owner (``qualification_id`` or ``pre_qualification_id``). The filters are
    those of :func:`~dealhunter_vectors.search_deal_embeddings` and apply to both legs, all
    strictly (no ``filter_fallback``): ``chunk_categories``, ``min_confidence``,
    ``only_validated``, ``agent_name_contains``, ``agent_names``, ``tech_stack``.
    ``threshold`` (None = none) restricts the vector leg to similarity ``> threshold``.
    Each leg contributes its top ``candidates`` (>= ``limit``) rows; the result is the best
    ``limit`` by reciprocal rank fusion (``rrf_k``, ``text_weight``, ``vector_weight``), ties
    by id; ``mmr_lambda`` diversifies it. Leg semantics, absent inputs and hostile text:
    see :mod:`dealhunter_vectors.search.hybrid`.
    """
    common = _Common(
        query_text,
        query_embedding,
        limit=limit,
        threshold=threshold,
        rrf_k=rrf_k,
        text_weight=text_weight,
        vector_weight=vector_weight,
        candidates=candidates,
        mmr_lambda=mmr_lambda,
    )
    owner_column, owner_id = one_owner(qualification_id, pre_qualification_id)
    filters = deal_filters(
        chunk_categories, min_confidence, only_validated, agent_name_contains, agent_names, tech_stack
    )
    args = (
        common.vector,
        owner_id,
        common.text,
        common.max_distance,
        *filters,
        common.candidates,
        common.rrf_k,
        common.vector_weight,
        common.text_weight,
        common.sql_limit,
        common.alternative,
    )
    request = OwnerRequest(owner_id, args)
    rows = await _fetch(db, HYBRID_DEAL[owner_column], request, table="deal_embeddings", common=common)
    return [_deal_hit(row) for row in rows]


@operation("hybrid_search_raw_chunks", read_only=True)
@routed
async def hybrid_search_raw_chunks(
    db: Db,
    query_text: str | None,
    query_embedding: Any,
    *,
    pre_qualification_id: str,
    limit: int = 5,
    threshold: float | None = None,
    rrf_k: float = DEFAULT_RRF_K,
    text_weight: float = 1.0,
    vector_weight: float = 1.0,
    candidates: int = DEFAULT_CANDIDATES,
    mmr_lambda: float | None = None,
) -> list[HybridRawChunkHit]:
    """Hybrid (full-text + vector) search over a pre-qualification's ``raw_chunks``.

    As :func:`hybrid_search_deal_embeddings` without the deal-chunk filters. NULL metadata
    is reported as the old default ``{"startPosition": 0, "endPosition": 0, "type": "unknown"}``.
    """
    common = _Common(
        query_text,
        query_embedding,
        limit=limit,
        threshold=threshold,
        rrf_k=rrf_k,
        text_weight=text_weight,
        vector_weight=vector_weight,
        candidates=candidates,
        mmr_lambda=mmr_lambda,
    )
    owner_id = check_id(pre_qualification_id, "pre_qualification_id")
    args = (
        common.vector,
        owner_id,
        common.text,
        common.max_distance,
        common.candidates,
        common.rrf_k,
        common.vector_weight,
        common.text_weight,
        common.sql_limit,
        common.alternative,
    )
    rows = await _fetch(db, HYBRID_RAW, OwnerRequest(owner_id, args), table="raw_chunks", common=common)
    return [_raw_hit(row) for row in rows]


# --------------------------------------------------------------------------- rows -> hits


def _similarity(distance: float | None) -> float | None:
    if distance is None or math.isnan(distance):
        return None
    return 1.0 - float(distance)


def _text_score(value: float | None) -> float | None:
    return None if value is None else float(value)


def _fusion_fields(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "vector_rank": row["vector_rank"],
        "text_rank": row["text_rank"],
        "text_score": _text_score(row["text_score"]),
        "fused_score": row["fused_score"],
    }


def _deal_hit(row: asyncpg.Record) -> HybridDealChunkHit:
    return HybridDealChunkHit(**deal_fields(row, _similarity(row["distance"])), **_fusion_fields(row))


def _raw_hit(row: asyncpg.Record) -> HybridRawChunkHit:
    return HybridRawChunkHit(**raw_fields(row, _similarity(row["distance"])), **_fusion_fields(row))
