"""Several searches at once: :func:`search_many` sends every deal search of one owner kind,
and every raw search, as one statement each, on one connection and one snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..db.pool import operation
from ..errors import InvalidArgumentError
from ..models import (
    DealChunkHit,
    DealChunkSearch,
    PreQualificationMatch,
    PreQualificationSearch,
    RawChunkHit,
    RawChunkSearch,
    SearchRequest,
    SimilarityHit,
    SimilaritySearch,
)
from . import mmr
from ._db import Db, connection, routed, snapshot
from ._sql import OwnerColumn
from .global_search import _PreQualPlan, _run_pre_qualification
from .owner import _DealParams, _merge_similar, _prepare_raw, _RawParams, _run_deal_batch, _run_raw_batch, _SimilarPlan
from .results import deal_hit, raw_hit, similarity

__all__ = ["SearchResult", "search_many"]

SearchResult = list[DealChunkHit] | list[RawChunkHit] | list[SimilarityHit] | list[PreQualificationMatch]
"""One request's result list."""


@operation("search_many", read_only=True)
@routed
async def search_many(db: Db, requests: Sequence[SearchRequest]) -> list[SearchResult]:
    """Run several searches together; results in request order (one list per request).

    All requests are validated first (nothing runs if one is invalid). Then, on one
    connection:

    * every deal-chunk search owned by a qualification (including the ``lead`` part of
      :class:`SimilaritySearch`) is **one statement** (one round trip), likewise every
      deal-chunk search owned by a pre-qualification and every raw-chunk search: each
      request is one element of the ``unnest`` arrays of the batched SQL;
    * :class:`PreQualificationSearch` requests run one statement each (the HNSW index scan
      needs its own ``SET LOCAL`` settings and LIMIT).

    With more than one statement the batch runs in one ``REPEATABLE READ READ ONLY``
    transaction, so every result sees the same snapshot. ``db`` may be a pool or a
    connection (inside a caller's transaction the snapshot is the caller's).

    Requests with ``mmr_lambda`` run with their MMR candidate pool as the limit, followed
    by the MMR post-step (:func:`dealhunter_vectors.search.mmr.search_many_with_mmr`), all
    in one snapshot.
    """
    if mmr.wants_mmr(requests):
        return await mmr.search_many_with_mmr(db, requests, search_many)
    deal_plans: dict[OwnerColumn, list[_DealParams]] = {"qualification_id": [], "pre_qualification_id": []}
    raw_plans: list[_RawParams] = []
    # What each request needs: ("deal", column, index) / ("raw", index) / ("similar", plan, refs) / ("pq", plan)
    slots: list[tuple[Any, ...]] = []

    def add_deal(params: _DealParams) -> tuple[OwnerColumn, int]:
        bucket = deal_plans[params.owner_column]
        bucket.append(params)
        return params.owner_column, len(bucket) - 1

    def add_raw(params: _RawParams) -> int:
        raw_plans.append(params)
        return len(raw_plans) - 1

    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
        raise InvalidArgumentError("requests", f"must be a list of search requests, got {type(requests).__name__}")
    for req in requests:
        if isinstance(req, DealChunkSearch):
            slots.append(("deal", *add_deal(_DealParams(req))))
        elif isinstance(req, RawChunkSearch):
            slots.append(("raw", add_raw(_prepare_raw(req))))
        elif isinstance(req, SimilaritySearch):
            plan = _SimilarPlan(req)
            refs = (
                add_deal(plan.lead) if plan.lead else None,
                add_deal(plan.agent) if plan.agent else None,
                add_raw(plan.raw) if plan.raw else None,
            )
            slots.append(("similar", plan, refs))
        elif isinstance(req, PreQualificationSearch):
            slots.append(("pq", _PreQualPlan(req)))
        else:
            raise InvalidArgumentError("requests", f"unsupported search request: {type(req).__name__}")

    statements = sum(1 for bucket in deal_plans.values() if bucket) + (1 if raw_plans else 0)
    statements += sum(1 for slot in slots if slot[0] == "pq")

    async with connection(db) as conn, snapshot(conn, statements):
        deal_rows = {column: await _run_deal_batch(conn, column, bucket) for column, bucket in deal_plans.items()}
        raw_rows = await _run_raw_batch(conn, raw_plans)
        results: list[SearchResult] = []
        for slot in slots:
            kind = slot[0]
            if kind == "deal":
                rows = deal_rows[slot[1]][slot[2]]
                results.append([deal_hit(row, similarity(row["distance"])) for row in rows])
            elif kind == "raw":
                results.append([raw_hit(row) for row in raw_rows[slot[1]]])
            elif kind == "similar":
                plan, (lead_ref, agent_ref, raw_ref) = slot[1], slot[2]
                results.append(
                    _merge_similar(
                        plan,
                        deal_rows[lead_ref[0]][lead_ref[1]] if lead_ref else [],
                        deal_rows[agent_ref[0]][agent_ref[1]] if agent_ref else [],
                        raw_rows[raw_ref] if raw_ref is not None else [],
                    )
                )
            else:
                results.append(await _run_pre_qualification(conn, slot[1]))
    return results
