"""Global search: the duplicate check's semantic step over every pre-qualification.

Candidates come from the halfvec HNSW index (iterative scan; a candidate count sized to the
request and the table, widened while the result is crowded) and are re-ranked by the exact
``vector`` distance, in one call of migration 008's function (its SET clauses carry the index
settings: one round trip). "All matches" (no limit) is an exact scan. Design:
docs/design.md, "Global search".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from ..db.pool import operation
from ..errors import InvalidArgumentError, SchemaError
from ..models import PreQualificationMatch, PreQualificationSearch
from ..scale import citus
from . import _sql
from ._args import check_id, check_limit, number, optional_flag, query_vector
from ._db import Db, connection, routed
from .results import similarity, similarity_percent

__all__ = [
    "ANN_MAX_SCAN_TUPLES",
    "PRE_QUALIFICATION_ANN_SQL",
    "PRE_QUALIFICATION_EXACT_SQL",
    "find_similar_pre_qualifications",
]

ANN_MIN_CANDIDATES: Final = 100
"""Fewest HNSW candidates per shard of a distributed (Citus) global search (scale.citus)."""
ANN_START_CANDIDATES: Final = 64
"""Candidates of the single node's first index walk up to 10,000 rows (``4 x limit`` when larger)."""
ANN_GROWTH: Final = 0.8
"""Above 10,000 rows the first walk takes ``(rows / 10,000) ** ANN_GROWTH`` times more candidates
(404 at 100,000 rows, where issue 14 measured that ~400 keep recall@10 >= 0.99)."""
ANN_MAX_EF_SEARCH: Final = 1000
ANN_MAX_SCAN_TUPLES: Final = 50_000
ANN_WIDEN_FACTOR: Final = 4
"""The candidate count grows by this factor while the result is crowded (:func:`_crowded`)."""
ANN_COMPACT_RATIO: Final = 0.5
"""The result is a compact group seen from afar (widen) when its rows' mean pairwise distance is
below this share of their mean distance to the query (:func:`_compact`)."""
ANN_FRONTIER_MARGIN: Final = 0.02
"""With fewer than 2 rows in the result: widen when the scan's frontier lies within this distance
of the threshold."""
_PERCENT_SLACK: Final = 1e-9
"""Distance slack of the SQL prefilter of the percent rule; the exact rule is applied in Python."""

PRE_QUALIFICATION_EXACT_SQL: Final = _sql.load("pre_qualification_exact")
"""Exact scan of every pre-qualification with a description embedding and requirements."""
PRE_QUALIFICATION_ANN_SQL: Final = _sql.load("pre_qualification_ann")
"""HNSW (halfvec) candidates, re-ranked by the exact ``vector`` distance (with the scan's frontier)."""
_ANN_CALL_SQL: Final = (
    'SELECT * FROM "dealhunter_pre_qualification_ann_spread"($1::vector, $2::text, $3::float8, $4::int4, $5::int4, '
    "$6::float8, $7::int4, $8::int4, $9::int4)"
)
"""The global index search as one call of migration 008's function (its SET clauses carry the settings)."""


class _PreQualPlan:
    __slots__ = ("exact", "exclude_id", "limit", "max_distance", "min_percent", "vector")

    def __init__(self, req: PreQualificationSearch) -> None:
        self.vector = query_vector(req.query_embedding)
        self.exclude_id = None if req.exclude_id is None else check_id(req.exclude_id, "exclude_id")
        self.min_percent = number(req.min_similarity_percent, "min_similarity_percent", minimum=0.0, maximum=100.0)
        self.limit = None if req.limit is None else check_limit(req.limit)
        exact = optional_flag(req.exact, "exact")
        if exact is False and self.limit is None:
            raise InvalidArgumentError(
                "exact", "an approximate (index) search needs a limit; use exact=True or give a limit"
            )
        self.exact = self.limit is None if exact is None else exact
        # round((cos + 1) / 2 * 100) >= P  <=>  (cos + 1) / 2 * 100 >= P - 0.5  <=>  cos >= (P - 0.5) / 50 - 1
        min_cos = max(-1.0, (self.min_percent - 0.5) / 50.0 - 1.0)
        self.max_distance = 1.0 - min_cos + _PERCENT_SLACK

    def matches(self, rows: Sequence[asyncpg.Record]) -> list[PreQualificationMatch]:
        out: list[PreQualificationMatch] = []
        for row in rows:  # best first: stop at the limit (no model for the slack rows)
            cos = similarity(row["distance"])
            percent = similarity_percent(cos)
            if percent >= self.min_percent:
                out.append(
                    PreQualificationMatch(pre_qualification_id=row["id"], similarity=cos, similarity_percent=percent)
                )
                if len(out) == self.limit:
                    break
        return out


async def _run_pre_qualification(conn: asyncpg.Connection, plan: _PreQualPlan) -> list[PreQualificationMatch]:
    """Run one global search on *conn*.

    The index search is one call of the server-side function of migration 008, whose SET
    clauses apply the index settings for the call only: one round trip, nothing to reset,
    the same inside or outside a caller's transaction.
    """
    # A few extra rows so that rows dropped by the exact percent rule never shorten the result.
    sql_limit = None if plan.limit is None else plan.limit + 8
    distributed = await citus.is_distributed(conn)
    if plan.exact:
        if distributed:  # Citus: a distributed top-k (scale.citus)
            return plan.matches(await citus.run_pre_qualification_search(conn, plan, sql_limit))
        rows = await conn.fetch(PRE_QUALIFICATION_EXACT_SQL, plan.vector, plan.exclude_id, plan.max_distance, sql_limit)
        return plan.matches(rows)
    assert sql_limit is not None and plan.limit is not None
    if distributed:  # Citus: each shard's HNSW candidates; SET LOCAL reaches the shards (scale.citus)
        return plan.matches(await citus.run_pre_qualification_search(conn, plan, sql_limit))
    base, growth, cap = min(max(ANN_START_CANDIDATES, 4 * plan.limit), ANN_MAX_EF_SEARCH), ANN_GROWTH, ANN_MAX_EF_SEARCH
    while True:
        try:
            rows = await conn.fetch(
                _ANN_CALL_SQL,
                plan.vector,
                plan.exclude_id,
                plan.max_distance,
                sql_limit,
                base,
                growth,
                cap,
                ANN_MAX_SCAN_TUPLES,
                plan.limit,
            )
        except asyncpg.UndefinedFunctionError:
            raise SchemaError(
                "the global search needs migration 008 (dealhunter_pre_qualification_ann_spread); run apply_schema "
                "or `dealhunter-vectors schema apply`"
            ) from None
        found = [row for row in rows if row["id"] is not None]
        candidates = rows[0]["ef"] if rows else cap
        if candidates >= cap or not _crowded(rows, found, plan.limit, candidates, plan.max_distance):
            return plan.matches(found)
        base = cap = min(ANN_MAX_EF_SEARCH, ANN_WIDEN_FACTOR * candidates)


def _crowded(
    rows: Sequence[asyncpg.Record], found: Sequence[asyncpg.Record], limit: int, candidates: int, max_distance: float
) -> bool:
    """True when a wider index walk may find rows this one missed.

    Where every candidate was used (else the scan ran out of rows and the result is exact),
    the walk may have been captured by one dense group: a graph walk whose beam fills with the
    members of one group stops before it reaches another group at the same distance (the hard
    set: a query between two tight clusters, top 10 split between them). Such a result is a
    compact group seen from afar (:func:`_compact` of its first ``limit`` rows). Distances that
    merely concentrate (loose clusters, real embeddings: hundreds of rows within 0.02 of the
    10th distance) leave a result whose rows are as far from each other as from the query: no
    widening. With fewer than 2 rows the spread is unknown: widen when the frontier lies
    within :data:`ANN_FRONTIER_MARGIN` of the boundary (the ``limit``-th distance, else the
    threshold). Measurements: docs/benchmarks.md.
    """
    if not rows or rows[0]["candidates"] < candidates or rows[0]["frontier"] is None:
        return False  # the scan ran out of rows: every candidate was seen, the result is exact
    top = found[:limit]
    if len(top) < 2 or rows[0]["centre_norm"] is None:
        boundary = top[-1]["distance"] if len(top) >= limit else max_distance
        return bool(rows[0]["frontier"] < boundary + ANN_FRONTIER_MARGIN)
    return _compact([row["distance"] for row in top], rows[0]["centre_norm"])


def _compact(distances: Sequence[float], centre_norm: float) -> bool:
    """True when rows at cosine *distances* from the query lie much closer to each other.

    *centre_norm* is the norm of the mean of the rows' unit vectors; for n unit vectors
    ``n / (n - 1) * (1 - centre_norm**2)`` is their mean pairwise cosine distance. Compact:
    below :data:`ANN_COMPACT_RATIO` times their mean distance to the query.
    """
    n = len(distances)
    pairwise = n / (n - 1) * max(0.0, 1.0 - centre_norm * centre_norm)
    return pairwise < ANN_COMPACT_RATIO * (sum(distances) / n)


@operation("find_similar_pre_qualifications", read_only=True)
@routed
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
    req = PreQualificationSearch.model_construct(  # no coercion: _PreQualPlan checks every value
        query_embedding=query_embedding,
        exclude_id=exclude_id,
        min_similarity_percent=min_similarity_percent,
        limit=limit,
        exact=exact,
    )
    plan = _PreQualPlan(req)
    async with connection(db) as conn:
        return await _run_pre_qualification(conn, plan)
