"""Global search: the duplicate check's semantic step over every pre-qualification.

Candidates come from the halfvec HNSW index (iterative scan, ``SET LOCAL`` settings sized to
the request) and are re-ranked by the exact ``vector`` distance; "all matches" (no limit)
is an exact scan. Design: docs/design.md, "Global search".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from ..db.pool import transaction_settings
from ..models import PreQualificationMatch, PreQualificationSearch
from . import _sql
from ._args import check_id, check_limit, query_vector
from ._db import Db, connection
from .results import similarity, similarity_percent

__all__ = [
    "ANN_MAX_SCAN_TUPLES",
    "PRE_QUALIFICATION_ANN_SQL",
    "PRE_QUALIFICATION_EXACT_SQL",
    "find_similar_pre_qualifications",
]

ANN_MIN_CANDIDATES: Final = 100
ANN_MAX_EF_SEARCH: Final = 1000
ANN_MAX_SCAN_TUPLES: Final = 50_000
_PERCENT_SLACK: Final = 1e-9
"""Distance slack of the SQL prefilter of the percent rule; the exact rule is applied in Python."""

PRE_QUALIFICATION_EXACT_SQL: Final = _sql.load("pre_qualification_exact")
"""Exact scan of every pre-qualification with a description embedding and requirements."""
PRE_QUALIFICATION_ANN_SQL: Final = _sql.load("pre_qualification_ann")
"""HNSW (halfvec) candidates, re-ranked by the exact ``vector`` distance."""


class _PreQualPlan:
    __slots__ = ("exact", "exclude_id", "limit", "max_distance", "min_percent", "vector")

    def __init__(self, req: PreQualificationSearch) -> None:
        self.vector = query_vector(req.query_embedding)
        self.exclude_id = None if req.exclude_id is None else check_id(req.exclude_id, "exclude_id")
        p = req.min_similarity_percent
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0 <= p <= 100):
            raise ValueError(f"min_similarity_percent must be a number in [0, 100], got {p!r}")
        self.min_percent = float(p)
        self.limit = None if req.limit is None else check_limit(req.limit)
        if req.exact is False and self.limit is None:
            raise ValueError("an approximate (index) search needs a limit; use exact=True or give a limit")
        self.exact = self.limit is None if req.exact is None else bool(req.exact)
        # round((cos + 1) / 2 * 100) >= P  <=>  (cos + 1) / 2 * 100 >= P - 0.5  <=>  cos >= (P - 0.5) / 50 - 1
        min_cos = max(-1.0, (self.min_percent - 0.5) / 50.0 - 1.0)
        self.max_distance = 1.0 - min_cos + _PERCENT_SLACK

    def matches(self, rows: Sequence[asyncpg.Record]) -> list[PreQualificationMatch]:
        out = []
        for row in rows:
            cos = similarity(row["distance"])
            percent = similarity_percent(cos)
            if percent >= self.min_percent:
                out.append(
                    PreQualificationMatch(pre_qualification_id=row["id"], similarity=cos, similarity_percent=percent)
                )
        return out if self.limit is None else out[: self.limit]


async def _run_pre_qualification(conn: asyncpg.Connection, plan: _PreQualPlan) -> list[PreQualificationMatch]:
    # A few extra rows so that rows dropped by the exact percent rule never shorten the result.
    sql_limit = None if plan.limit is None else plan.limit + 8
    if plan.exact:
        rows = await conn.fetch(PRE_QUALIFICATION_EXACT_SQL, plan.vector, plan.exclude_id, plan.max_distance, sql_limit)
        return plan.matches(rows)
    assert sql_limit is not None
    candidates = max(ANN_MIN_CANDIDATES, 4 * sql_limit)
    settings: dict[str, str | int | float | bool] = {
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.ef_search": min(ANN_MAX_EF_SEARCH, candidates),
        "hnsw.max_scan_tuples": max(ANN_MAX_SCAN_TUPLES, candidates),
        # This path exists to use the index: on small tables the planner prefers a seq scan
        # that reads every 12 KB vector through TOAST (15.7 ms vs 4.0 ms at 1k rows), and
        # after five executions a prepared statement may switch to a slower generic plan
        # (6.6 ms vs 3.7 ms at 10k rows); both measured in benchmarks/bench_global.py.
        "enable_seqscan": False,
        "plan_cache_mode": "force_custom_plan",
    }
    async with transaction_settings(conn, settings) as tx:
        rows = await tx.fetch(
            PRE_QUALIFICATION_ANN_SQL, plan.vector, plan.exclude_id, plan.max_distance, sql_limit, candidates
        )
    return plan.matches(rows)


async def find_similar_pre_qualifications(
    db: Db,
    query_embedding: Any,
    *,
    exclude_id: str | None = None,
    min_similarity_percent: float = 85,
    limit: int | None = None,
    exact: bool | None = None,
) -> list[PreQualificationMatch]:
    """The duplicate check's semantic step over every pre-qualification.

    Candidates: pre-qualifications other than ``exclude_id`` with a description embedding
    and ``extracted_requirements``. A match has ``round((cos + 1) / 2 * 100) >=
    min_similarity_percent`` (JavaScript rounding, halves up; 85 means cos >= 0.69).
    Best first (ties by id).

    ``limit=None`` (all matches, the old behaviour) scans exactly. With a ``limit`` the
    halfvec HNSW index supplies candidates (iterative scan) that are re-ranked by the exact
    distance; ``exact=True`` forces the exact scan, ``exact=False`` without a limit is a
    ``ValueError``.
    """
    req = PreQualificationSearch(
        query_embedding=query_embedding,
        exclude_id=exclude_id,
        min_similarity_percent=min_similarity_percent,
        limit=limit,
        exact=exact,
    )
    plan = _PreQualPlan(req)
    async with connection(db) as conn:
        return await _run_pre_qualification(conn, plan)
