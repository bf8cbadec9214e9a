"""Global search: the duplicate check's semantic step over every pre-qualification.

Candidates come from the halfvec HNSW index (iterative scan; a candidate count sized to the
request and the table, widened while the result is crowded) and are re-ranked by the exact
``vector`` distance, in one call of migration 010's function (its SET clauses carry the index
settings: one round trip). "All matches" (no limit) is an exact scan. Design:
docs/design.md, "Global search".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from .. import observe
from ..db.faults import operation
from ..errors import InvalidArgumentError, SchemaError
from ..layout import CandidatePass, CandidateQuery, Layout
from ..layout.statements import load_sql
from ..models import PreQualificationMatch, PreQualificationSearch
from ._args import check_id, check_limit, number, optional_flag, query_vector
from ._db import Db, connection_and_layout, routed
from .results import similarity, similarity_percent
from .statements import DUPLICATE_CANDIDATES, DUPLICATE_EXACT

__all__ = [
    "ANN_MAX_SCAN_TUPLES",
    "PRE_QUALIFICATION_ANN_SQL",
    "PRE_QUALIFICATION_EXACT_SQL",
    "find_similar_pre_qualifications",
]

ANN_START_CANDIDATES: Final = 64
"""Candidates of the first index walk up to 10,000 rows (``4 x limit`` when larger); a Citus
shard contributes at least ``layout.citus.SHARD_MIN_CANDIDATES``."""
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
"""Where the spread is unknown (fewer than 2 result rows, or a layout that cannot compute it):
widen when the scan's frontier lies within this distance of the result's boundary."""
_PERCENT_SLACK: Final = 1e-9
"""Distance slack of the SQL prefilter of the percent rule; the exact rule is applied in Python."""

PRE_QUALIFICATION_EXACT_SQL: Final = DUPLICATE_EXACT.single
"""Exact scan of every pre-qualification with a description embedding and requirements."""
PRE_QUALIFICATION_ANN_SQL: Final = load_sql("dealhunter_vectors.search", "pre_qualification_ann")
"""HNSW (halfvec) candidates, re-ranked by the exact ``vector`` distance (with the scan's frontier):
the statement migration 007's function runs, as a file to ``EXPLAIN``."""


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


async def _run_pre_qualification(
    conn: asyncpg.Connection, layout: Layout, plan: _PreQualPlan
) -> list[PreQualificationMatch]:
    """Run one global search on *conn*: the exact scan, or index passes widened while crowded."""
    # A few extra rows so that rows dropped by the exact percent rule never shorten the result.
    sql_limit = None if plan.limit is None else plan.limit + 8
    if plan.exact:
        rows = await layout.all_rows(conn, DUPLICATE_EXACT, plan.vector, plan.exclude_id, plan.max_distance, sql_limit)
        observe.note("exact_scan", True)
        return plan.matches(rows)
    assert sql_limit is not None and plan.limit is not None
    query = CandidateQuery(
        vector=plan.vector,
        exclude_id=plan.exclude_id,
        max_distance=plan.max_distance,
        limit=sql_limit,
        candidates=min(ANN_MAX_EF_SEARCH, max(ANN_START_CANDIDATES, 4 * plan.limit)),
        cap=ANN_MAX_EF_SEARCH,
        max_scan_tuples=ANN_MAX_SCAN_TUPLES,
        growth=ANN_GROWTH,
        spread_rows=plan.limit,
    )
    while True:
        try:
            scan = await layout.duplicate_candidates(conn, DUPLICATE_CANDIDATES, query)
        except asyncpg.UndefinedFunctionError:
            raise SchemaError(
                "the global search needs migration 010 (dealhunter_pre_qualification_ann_spread); run apply_schema "
                "or `dealhunter-vectors schema apply`"
            ) from None
        observe.note("ann_candidates", scan.seen if scan.seen is not None else scan.candidates)
        if scan.candidates >= query.cap or not _crowded(scan, plan.limit, plan.max_distance):
            return plan.matches(scan.rows)
        observe.add("ann_widenings")
        wider = min(ANN_MAX_EF_SEARCH, ANN_WIDEN_FACTOR * scan.candidates)
        query = dataclasses.replace(query, candidates=wider, cap=wider)


def _crowded(scan: CandidatePass, limit: int, max_distance: float) -> bool:
    """True when a wider index walk may find rows this one missed.

    Where every candidate was used (else the scan ran out of rows and the result is exact),
    the walk may have been captured by one dense group: a graph walk whose beam fills with the
    members of one group stops before it reaches another group at the same distance (the hard
    set: a query between two tight clusters, top 10 split between them). Such a result is a
    compact group seen from afar (:func:`_compact` of its first ``limit`` rows). Distances that
    merely concentrate (loose clusters, real embeddings: hundreds of rows within 0.02 of the
    10th distance) leave a result whose rows are as far from each other as from the query: no
    widening. Where the spread is unknown (fewer than 2 rows, or the layout cannot compute it):
    widen when the frontier lies within :data:`ANN_FRONTIER_MARGIN` of the boundary (the
    ``limit``-th distance, else the threshold). Measurements: docs/benchmarks.md.
    """
    if scan.seen is None or scan.frontier is None or scan.seen < scan.candidates:
        return False  # the scan ran out of rows (every candidate was seen: exact), or cannot tell
    top = scan.rows[:limit]
    if len(top) < 2 or scan.centre_norm is None:
        boundary = top[-1]["distance"] if len(top) >= limit else max_distance
        return bool(scan.frontier < boundary + ANN_FRONTIER_MARGIN)
    return _compact([row["distance"] for row in top], scan.centre_norm)


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
    async with connection_and_layout(db) as (conn, layout):
        return await _run_pre_qualification(conn, layout, plan)
