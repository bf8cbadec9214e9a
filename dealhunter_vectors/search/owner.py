"""Owner-scoped exact search: the deal-chunk, raw-chunk and search-action call sites.

Every search here reads the rows of one owner (a qualification or a pre-qualification)
and returns exactly what the single-step exact scan would: the half-precision prefilter
only decides which rows get their exact distance computed (docs/design.md, "Owner-scoped
search"; the bound in :mod:`.bound`). Deal and raw searches are batched statements over
``unnest(...)`` arrays (:mod:`.batching` sends many); a single search runs the same
statement's one-request form (scalar parameters). The query's half copy is computed here,
once per request (:func:`query_half`), and sent as a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import asyncpg
import numpy as np

from ..db.codecs import HalfVector, Vector
from ..db.faults import operation
from ..embeddings import Float32Array
from ..errors import InvalidArgumentError
from ..layout import Layout, OwnerColumn, OwnerRequest, layout_of
from ..models import (
    DealChunkHit,
    DealChunkSearch,
    RawChunkHit,
    RawChunkSearch,
    SearchRequest,
    SimilarityHit,
    SimilaritySearch,
)
from . import mmr
from ._args import (
    check_id,
    check_limit,
    check_threshold,
    deal_filters,
    flag,
    max_distance,
    one_owner,
    optional_integer,
    query_vector,
    string_list,
    substring,
)
from ._db import Db, connection_and_layout, routed, snapshot
from .bound import HALF_NORM_RANGE
from .results import deal_hit, parse_metadata, raw_hit, similarity
from .scan_stats import note_scans
from .statements import DEAL_SEARCH, LIST_DEAL_CHUNKS, RAW_SEARCH

__all__ = [
    "DEAL_SEARCH_BY_PRE_QUALIFICATION_SQL",
    "DEAL_SEARCH_BY_QUALIFICATION_SQL",
    "LIST_BY_PRE_QUALIFICATION_SQL",
    "LIST_BY_QUALIFICATION_SQL",
    "MAX_SIMILAR_LIMIT",
    "RAW_SEARCH_SQL",
    "list_deal_chunks",
    "query_half",
    "search_deal_embeddings",
    "search_raw_chunks",
    "search_similar",
]

MAX_SIMILAR_LIMIT: Final = 50
"""The search action's maximum ``limit`` (the old zod schema's ``max(50)``)."""

DEAL_SEARCH_BY_QUALIFICATION_SQL: Final = DEAL_SEARCH["qualification_id"].batched
"""Batched exact deal-chunk search of rows owned by a qualification (half-precision prefilter + exact re-rank)."""
DEAL_SEARCH_BY_PRE_QUALIFICATION_SQL: Final = DEAL_SEARCH["pre_qualification_id"].batched
"""Batched exact deal-chunk search of rows owned by a pre-qualification (half-precision prefilter + exact re-rank)."""
RAW_SEARCH_SQL: Final = RAW_SEARCH.batched
"""Batched exact raw-chunk search (half-precision prefilter + exact re-rank of the candidates)."""
LIST_BY_QUALIFICATION_SQL: Final = LIST_DEAL_CHUNKS["qualification_id"].single
"""Unranked listing of a qualification's chunks (with or without embedding)."""
LIST_BY_PRE_QUALIFICATION_SQL: Final = LIST_DEAL_CHUNKS["pre_qualification_id"].single
"""Unranked listing of a pre-qualification's chunks (with or without embedding)."""


# --------------------------------------------------------------------------- validated requests


def query_half(query: Float32Array) -> HalfVector | None:
    """The query's half copy ``l2_normalize(q)::halfvec``, as migration 004 computes a row's.

    Normalised in float64 and rounded once to float32 (componentwise relative error <= 2^-24,
    as the bound assumes), then to half precision by IEEE round-to-nearest-even (numpy), as
    pgvector rounds (``tests/db/test_inline_halfvec.py``). ``None`` (every row re-ranked
    exactly) when the norm lies outside :data:`~.bound.HALF_NORM_RANGE`. A parameter is a
    constant of any plan, generic or custom; computed in SQL (a ``LATERAL`` subquery) it
    reached the per-row distance as a nested-loop parameter, and the half scan took twice as
    long (measured in ``benchmarks/perf_side_by_side.py``).
    """
    q64 = np.asarray(query, dtype=np.float64)
    norm = float(np.sqrt(np.dot(q64, q64)))
    lo, hi = HALF_NORM_RANGE
    if not lo <= norm <= hi:
        return None
    return HalfVector((q64 / norm).astype(np.float32))


class _DealParams:
    """One validated deal-chunk search, as the per-request elements of the batched statement."""

    __slots__ = ("owner_column", "request")

    def __init__(self, req: DealChunkSearch) -> None:
        vector = query_vector(req.query_embedding)
        self.owner_column, owner_id = one_owner(req.qualification_id, req.pre_qualification_id)
        threshold = check_threshold(req.threshold)
        limit = check_limit(req.limit)
        filters = deal_filters(
            req.chunk_categories,
            req.min_confidence,
            req.only_validated,
            req.agent_name_contains,
            req.agent_names,
            req.tech_stack,
        )
        params = (
            Vector(vector),
            owner_id,
            max_distance(threshold),
            flag(req.inclusive, "inclusive"),
            *filters,
            flag(req.filter_fallback, "filter_fallback"),
            flag(req.fallback_to_top_k, "fallback_to_top_k"),
            limit,
            query_half(vector),
        )
        self.request = OwnerRequest(owner_id, params)


class _RawParams:
    __slots__ = ("request",)

    def __init__(self, query: Float32Array, owner_id: str, threshold: float, inclusive: bool, limit: int) -> None:
        params = (Vector(query), owner_id, max_distance(threshold), inclusive, limit, query_half(query))
        self.request = OwnerRequest(owner_id, params)


def _prepare_raw(req: RawChunkSearch) -> _RawParams:
    vector = query_vector(req.query_embedding)
    owner = check_id(req.pre_qualification_id, "pre_qualification_id")
    return _RawParams(
        vector, owner, check_threshold(req.threshold), flag(req.inclusive, "inclusive"), check_limit(req.limit)
    )


class _SimilarPlan:
    """The search action split into at most three sub-searches (lead, agent, raw)."""

    __slots__ = ("agent", "lead", "limit", "raw")

    def __init__(self, req: SimilaritySearch) -> None:
        vector = query_vector(req.query_embedding)
        if req.qualification_id is None and req.pre_qualification_id is None:
            raise InvalidArgumentError(
                "qualification_id/pre_qualification_id", "give qualification_id and/or pre_qualification_id"
            )
        include_raw = flag(req.include_raw_chunks, "include_raw_chunks")
        threshold = check_threshold(req.threshold)
        self.limit = check_limit(req.limit, maximum=MAX_SIMILAR_LIMIT)
        self.lead: _DealParams | None = None
        self.agent: _DealParams | None = None
        self.raw: _RawParams | None = None
        common: dict[str, Any] = {
            "query_embedding": vector,
            "threshold": threshold,
            "limit": self.limit,
            "inclusive": True,
        }
        if req.qualification_id is not None:
            self.lead = _DealParams(
                DealChunkSearch(qualification_id=check_id(req.qualification_id, "qualification_id"), **common)
            )
        if req.pre_qualification_id is not None:
            owner = check_id(req.pre_qualification_id, "pre_qualification_id")
            self.agent = _DealParams(DealChunkSearch(pre_qualification_id=owner, **common))
            if include_raw:
                self.raw = _RawParams(vector, owner, threshold, True, self.limit)

    @property
    def statements(self) -> int:
        """How many statements the plan runs (one per source)."""
        return sum(part is not None for part in (self.lead, self.agent, self.raw))


def _merge_similar(
    plan: _SimilarPlan,
    lead: list[asyncpg.Record],
    agent: list[asyncpg.Record],
    raw: list[asyncpg.Record],
) -> list[SimilarityHit]:
    keyed: list[tuple[float, int, str, SimilarityHit]] = []
    for rank, (source, rows) in enumerate((("lead", lead), ("agent", agent))):
        for row in rows:
            hit = deal_hit(row, similarity(row["distance"]))
            keyed.append(
                (
                    row["distance"],
                    rank,
                    row["id"],
                    SimilarityHit(
                        id=hit.chunk_id,
                        source=source,  # type: ignore[arg-type]
                        similarity=hit.similarity or 0.0,
                        agent_name=hit.agent_name,
                        chunk_type=hit.chunk_type,
                        chunk_index=hit.chunk_index,
                        content=hit.content,
                        metadata=hit.metadata,
                        metadata_raw=hit.metadata_raw,
                        metadata_error=hit.metadata_error,
                    ),
                )
            )
    for row in raw:
        metadata, bad, error = parse_metadata(row["metadata"], table="raw_chunks", row_id=row["id"], default={})
        keyed.append(
            (
                row["distance"],
                2,
                row["id"],
                SimilarityHit(
                    id=row["id"],
                    source="raw",
                    similarity=similarity(row["distance"]),
                    chunk_index=row["chunk_index"],
                    content=row["content"],
                    metadata=metadata,
                    metadata_raw=bad,
                    metadata_error=error,
                ),
            )
        )
    keyed.sort(key=lambda item: (item[0], item[1], item[2]))
    return [item[3] for item in keyed[: plan.limit]]


async def _run_deal_batch(
    conn: asyncpg.Connection, layout: Layout, owner_column: OwnerColumn, batch: Sequence[_DealParams]
) -> list[list[asyncpg.Record]]:
    batches = await layout.owner_batch(conn, DEAL_SEARCH[owner_column], [p.request for p in batch])
    note_scans(batches)
    return batches


async def _run_raw_batch(
    conn: asyncpg.Connection, layout: Layout, batch: Sequence[_RawParams]
) -> list[list[asyncpg.Record]]:
    batches = await layout.owner_batch(conn, RAW_SEARCH, [p.request for p in batch])
    note_scans(batches)
    return batches


async def _plain_searches(conn: asyncpg.Connection, requests: Sequence[SearchRequest]) -> list[Any]:
    """Deal/raw chunk searches without MMR, one statement each (the MMR step's candidate searches)."""
    layout = await layout_of(conn)
    out: list[Any] = []
    for req in requests:
        if isinstance(req, DealChunkSearch):
            params = _DealParams(req)
            rows = (await _run_deal_batch(conn, layout, params.owner_column, [params]))[0]
            out.append([deal_hit(row, similarity(row["distance"])) for row in rows])
        else:
            assert isinstance(req, RawChunkSearch)
            out.append([raw_hit(row) for row in (await _run_raw_batch(conn, layout, [_prepare_raw(req)]))[0]])
    return out


# --------------------------------------------------------------------------- public API


@operation("search_deal_embeddings", read_only=True)
@routed
async def search_deal_embeddings(
    db: Db,
    query_embedding: Any,
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    threshold: float = 0.3,
    limit: int = 5,
    agent_names: str | Sequence[str] | None = None,
    agent_name_contains: str | None = None,
    chunk_categories: Sequence[str] | None = None,
    min_confidence: int | None = None,
    only_validated: bool = False,
    tech_stack: str | None = None,
    filter_fallback: bool = False,
    inclusive: bool = False,
    fallback_to_top_k: bool = False,
    mmr_lambda: float | None = None,
    mmr_candidates: int | None = None,
) -> list[DealChunkHit]:
    """Exact thresholded cosine search over one owner's ``deal_embeddings`` rows.

    Rows of exactly one owner (``qualification_id`` or ``pre_qualification_id``; both or
    neither is a ``ValueError``) with a non-null embedding and similarity ``> threshold``
    (``>=`` when ``inclusive``), best first (ties by id), at most ``limit``.

    Filters applied before the threshold (as the old SQL did): ``chunk_categories`` (an
    empty list means no filter), ``min_confidence`` (only when > 0; NULL confidence fails
    it), ``only_validated`` (``validated_at IS NOT NULL``), ``agent_name_contains``
    (case-insensitive substring; ``%``, ``_`` and ``\\`` are literal characters; an empty
    string means no filter).

    Filters applied after the threshold (as the old code did): ``agent_names`` (exact
    match, one or many) and ``tech_stack`` (case-insensitive substring of the string
    ``metadata.cms`` or ``metadata.framework``; rows with unparsable metadata do not
    match). With ``filter_fallback=True``, when these leave nothing above the threshold
    the unfiltered thresholded rows are returned (the old lead/agent retrieval behaviour);
    without it the filters are strict.

    ``fallback_to_top_k=True`` (the old deep-scan expert): when nothing passes, return the
    best ``limit`` rows by similarity ignoring the threshold (NaN distances still excluded).

    ``mmr_lambda`` (None = off, else in [0, 1]): the ``limit`` hits are chosen from this
    search's best ``mmr_candidates`` (default ``max(20, 4 * limit)``) by maximal marginal
    relevance (:mod:`dealhunter_vectors.search.mmr`).
    """
    # model_construct: no pydantic coercion (limit=True must not become 1); _DealParams checks every value
    req = DealChunkSearch.model_construct(
        query_embedding=query_embedding,
        qualification_id=qualification_id,
        pre_qualification_id=pre_qualification_id,
        threshold=threshold,
        limit=limit,
        agent_names=agent_names,
        agent_name_contains=agent_name_contains,
        chunk_categories=chunk_categories,
        min_confidence=min_confidence,
        only_validated=only_validated,
        tech_stack=tech_stack,
        filter_fallback=filter_fallback,
        inclusive=inclusive,
        fallback_to_top_k=fallback_to_top_k,
        mmr_lambda=mmr_lambda,
        mmr_candidates=mmr_candidates,
    )
    if req.mmr_lambda is not None:
        return (await mmr.search_many_with_mmr(db, [req], _plain_searches))[0]  # type: ignore[no-any-return]
    params = _DealParams(req)
    async with connection_and_layout(db) as (conn, layout):
        rows = (await _run_deal_batch(conn, layout, params.owner_column, [params]))[0]
    return [deal_hit(row, similarity(row["distance"])) for row in rows]


@operation("search_raw_chunks", read_only=True)
@routed
async def search_raw_chunks(
    db: Db,
    query_embedding: Any,
    *,
    pre_qualification_id: str,
    threshold: float = 0.2,
    limit: int = 5,
    mmr_lambda: float | None = None,
    mmr_candidates: int | None = None,
    inclusive: bool = False,
) -> list[RawChunkHit]:
    """Exact thresholded search over a pre-qualification's ``raw_chunks`` (similarity ``> threshold``;
    ``>=`` when ``inclusive``).

    Best first, ties by id, at most ``limit``. NULL metadata is reported as the old default
    ``{"startPosition": 0, "endPosition": 0, "type": "unknown"}``. ``mmr_lambda`` /
    ``mmr_candidates``: maximal marginal relevance, as in :func:`search_deal_embeddings`.
    """
    req = RawChunkSearch.model_construct(
        query_embedding=query_embedding,
        pre_qualification_id=pre_qualification_id,
        threshold=threshold,
        limit=limit,
        inclusive=inclusive,
        mmr_lambda=mmr_lambda,
        mmr_candidates=mmr_candidates,
    )
    if req.mmr_lambda is not None:
        return (await mmr.search_many_with_mmr(db, [req], _plain_searches))[0]  # type: ignore[no-any-return]
    params = _prepare_raw(req)
    async with connection_and_layout(db) as (conn, layout):
        rows = (await _run_raw_batch(conn, layout, [params]))[0]
    return [raw_hit(row) for row in rows]


@operation("search_similar", read_only=True)
@routed
async def search_similar(
    db: Db,
    query_embedding: Any,
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    threshold: float = 0.5,
    limit: int = 10,
    include_raw_chunks: bool = True,
) -> list[SimilarityHit]:
    """The old search action: hits with similarity ``>= threshold`` merged over sources.

    ``"lead"``: deal_embeddings of ``qualification_id``; ``"agent"``: deal_embeddings of
    ``pre_qualification_id``; ``"raw"``: raw_chunks of ``pre_qualification_id`` (when
    ``include_raw_chunks``). At least one owner is required; ``limit`` at most 50. Sorted by
    similarity (ties: lead, agent, raw, then id) and sliced to ``limit``. A row owned by
    both ids appears once per source, as in the old action.
    """
    req = SimilaritySearch.model_construct(
        query_embedding=query_embedding,
        qualification_id=qualification_id,
        pre_qualification_id=pre_qualification_id,
        threshold=threshold,
        limit=limit,
        include_raw_chunks=include_raw_chunks,
    )
    plan = _SimilarPlan(req)
    async with connection_and_layout(db) as (conn, layout), snapshot(conn, plan.statements):
        lead = (await _run_deal_batch(conn, layout, "qualification_id", [plan.lead]))[0] if plan.lead else []
        agent = (await _run_deal_batch(conn, layout, "pre_qualification_id", [plan.agent]))[0] if plan.agent else []
        raw = (await _run_raw_batch(conn, layout, [plan.raw]))[0] if plan.raw else []
    return _merge_similar(plan, lead, agent, raw)


@operation("list_deal_chunks", read_only=True)
@routed
async def list_deal_chunks(
    db: Db,
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    limit: int | None = None,
    agent_names: str | Sequence[str] | None = None,
    agent_name_contains: str | None = None,
    chunk_categories: Sequence[str] | None = None,
    min_confidence: int | None = None,
    only_validated: bool = False,
    filter_fallback: bool = False,
) -> list[DealChunkHit]:
    """Unranked listing of one owner's chunks (also those without embedding), similarity None.

    The old "no query embedding" paths: the lead service listed every chunk of the
    qualification (and reported an invented similarity 0.75: not reproduced), the deep-scan
    expert took the first ``k`` rows. Order: ``created_at`` (NULLs last), then id. Filters
    as in :func:`search_deal_embeddings`; ``filter_fallback`` applies to ``agent_names``.
    """
    owner_column, owner_id = one_owner(qualification_id, pre_qualification_id)
    row_limit = None if limit is None else check_limit(limit)
    min_conf = optional_integer(min_confidence, "min_confidence")
    categories = string_list(chunk_categories, "chunk_categories")
    params = (
        owner_id,
        string_list(agent_names, "agent_names"),
        categories if categories != "[]" else None,
        min_conf if min_conf is not None and min_conf > 0 else None,
        flag(only_validated, "only_validated"),
        substring(agent_name_contains, "agent_name_contains"),
        flag(filter_fallback, "filter_fallback"),
        row_limit,
    )
    async with connection_and_layout(db) as (conn, layout):
        rows = await layout.owner_rows(conn, LIST_DEAL_CHUNKS[owner_column], OwnerRequest(owner_id, params))
    return [deal_hit(row, None) for row in rows]
