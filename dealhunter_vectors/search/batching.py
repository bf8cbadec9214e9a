"""Several searches at once: :func:`search_many` sends every deal search of one owner kind,
and every raw search, as one statement each, on one connection and one snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from ..db.faults import operation
from ..errors import InvalidArgumentError
from ..layout import Layout, OwnerColumn
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
from ._db import Db, connection_and_layout, routed, snapshot
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
    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
        raise InvalidArgumentError("requests", f"must be a list of search requests, got {type(requests).__name__}")
    batch = _Batch()
    for req in requests:
        batch.add(req)
    async with connection_and_layout(db) as (conn, layout), snapshot(conn, batch.statements):
        return await batch.run(conn, layout)


class _Batch:
    """The requests of one :func:`search_many` call, validated and grouped into statements."""

    def __init__(self) -> None:
        self.deal: dict[OwnerColumn, list[_DealParams]] = {"qualification_id": [], "pre_qualification_id": []}
        self.raw: list[_RawParams] = []
        # What each request needs: ("deal", column, index) / ("raw", index) / ("similar", plan, refs) / ("pq", plan)
        self.slots: list[tuple[Any, ...]] = []

    def _add_deal(self, params: _DealParams) -> tuple[OwnerColumn, int]:
        bucket = self.deal[params.owner_column]
        bucket.append(params)
        return params.owner_column, len(bucket) - 1

    def _add_raw(self, params: _RawParams) -> int:
        self.raw.append(params)
        return len(self.raw) - 1

    def add(self, req: SearchRequest) -> None:
        """Validate *req* and note which statement rows it reads."""
        if isinstance(req, DealChunkSearch):
            self.slots.append(("deal", *self._add_deal(_DealParams(req))))
        elif isinstance(req, RawChunkSearch):
            self.slots.append(("raw", self._add_raw(_prepare_raw(req))))
        elif isinstance(req, SimilaritySearch):
            plan = _SimilarPlan(req)
            refs = (
                self._add_deal(plan.lead) if plan.lead else None,
                self._add_deal(plan.agent) if plan.agent else None,
                self._add_raw(plan.raw) if plan.raw else None,
            )
            self.slots.append(("similar", plan, refs))
        elif isinstance(req, PreQualificationSearch):
            self.slots.append(("pq", _PreQualPlan(req)))
        else:
            raise InvalidArgumentError("requests", f"unsupported search request: {type(req).__name__}")

    @property
    def statements(self) -> int:
        """How many statements the batch runs (one per non-empty group, one per global search)."""
        groups = sum(1 for bucket in self.deal.values() if bucket) + (1 if self.raw else 0)
        return groups + sum(1 for slot in self.slots if slot[0] == "pq")

    async def run(self, conn: asyncpg.Connection, layout: Layout) -> list[SearchResult]:
        """Run every group's statement, then assemble each request's result in order."""
        deal_rows = {column: await _run_deal_batch(conn, layout, column, b) for column, b in self.deal.items()}
        raw_rows = await _run_raw_batch(conn, layout, self.raw)
        results: list[SearchResult] = []
        for slot in self.slots:
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
                results.append(await _run_pre_qualification(conn, layout, slot[1]))
        return results
