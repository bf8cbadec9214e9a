"""Recall self-check of the global search on the user's own data.

Samples stored description embeddings as queries (each query excludes its own row), runs the
index search and the exact scan of :func:`find_similar_pre_qualifications` for each, and
reports recall@``limit`` and both latencies. Design: docs/design.md, "Global search".
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from typing import Final

from pydantic import BaseModel, ConfigDict

from .. import observe
from ..db.faults import operation
from ..embeddings import as_embedding
from ..errors import NotFoundError
from ..layout.statements import load_sql
from ..models import PreQualificationMatch
from ._args import check_limit, integer
from ._db import Db, connection, routed
from .global_search import find_similar_pre_qualifications

__all__ = ["MAX_SAMPLES", "QueryRecall", "RecallReport", "query_recall", "recall_self_check"]

MAX_SAMPLES: Final = 10_000
"""Most queries of one check (each runs an exact scan of the whole table)."""
MAX_CHECK_LIMIT: Final = 1_000
_SAMPLE_SQL: Final = load_sql("dealhunter_vectors.search", "pre_qualification_sample")
_ELIGIBLE_SQL: Final = load_sql("dealhunter_vectors.search", "pre_qualification_eligible_count")


class QueryRecall(BaseModel):
    """One sampled query: its row, its recall and the two searches' latencies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pre_qualification_id: str
    recall: float
    index_ms: float
    exact_ms: float


class RecallReport(BaseModel):
    """What :func:`recall_self_check` measured.

    ``recall_*`` are recall@``limit`` of the index search against the exact scan (a row tied
    with the exact ``limit``-th similarity counts as found); ``perfect_share`` is the share of
    queries with recall 1; latencies are wall milliseconds per call as the caller sees them
    (median and nearest-rank p95).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    samples: int
    limit: int
    seed: int
    eligible_rows: int
    recall_mean: float
    recall_min: float
    perfect_share: float
    index_ms_median: float
    index_ms_p95: float
    exact_ms_median: float
    exact_ms_p95: float
    queries: tuple[QueryRecall, ...]


def query_recall(index: Sequence[PreQualificationMatch], exact: Sequence[PreQualificationMatch]) -> float:
    """Recall of *index* against *exact* (best first, the same limit), ties at the boundary counted.

    Both come from the same exact re-rank, so a row's similarity is the same float in both;
    an index row is found when it is one of the exact rows or ties the last one. No exact
    rows (nothing to find): 1.0.
    """
    if not exact:
        return 1.0
    wanted = {m.pre_qualification_id for m in exact}
    boundary = exact[-1].similarity
    found = sum(1 for m in index if m.pre_qualification_id in wanted or m.similarity >= boundary)
    return min(found, len(exact)) / len(exact)


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@operation("recall_self_check", read_only=True)
@routed
async def recall_self_check(db: Db, *, samples: int = 50, limit: int = 10, seed: int = 0) -> RecallReport:
    """Recall@``limit`` and latency of the global index search on the stored rows.

    ``samples`` rows with a description embedding and requirements are drawn (deterministic
    for a ``seed`` and the table's rows; all of them when fewer exist); each one's embedding
    is a query of :func:`find_similar_pre_qualifications` (``exclude_id`` its own row, every
    similarity) with the index (``exact=False``) and with the exact scan (``exact=True``),
    in alternating order. Raises :class:`NotFoundError` when no row can be sampled.
    """
    samples = integer(samples, "samples", minimum=1, maximum=MAX_SAMPLES)
    limit = check_limit(limit, maximum=MAX_CHECK_LIMIT)
    seed = integer(seed, "seed", minimum=0, maximum=2**63 - 1)
    async with connection(db) as conn:
        eligible = int(await conn.fetchval(_ELIGIBLE_SQL))
        rows = await conn.fetch(_SAMPLE_SQL, str(seed), samples)
    if not rows:
        raise NotFoundError(
            "recall_self_check: no pre_qualifications row has a description_embedding and extracted_requirements"
        )
    queries: list[QueryRecall] = []
    for n, row in enumerate(rows):
        row_id = row["id"]
        vector = as_embedding(
            row["description_embedding"], where=f"pre_qualifications id={row_id} column=description_embedding"
        )
        timed: dict[bool, tuple[list[PreQualificationMatch], float]] = {}
        for exact in (False, True) if n % 2 == 0 else (True, False):
            t0 = time.perf_counter()
            found = await find_similar_pre_qualifications(
                db, vector, exclude_id=row_id, min_similarity_percent=0, limit=limit, exact=exact
            )
            timed[exact] = (found, (time.perf_counter() - t0) * 1e3)
        (index, index_ms), (exact_rows, exact_ms) = timed[False], timed[True]
        queries.append(QueryRecall(pre_qualification_id=row_id, recall=query_recall(index, exact_rows),
                                   index_ms=index_ms, exact_ms=exact_ms))  # fmt: skip
    recalls = [q.recall for q in queries]
    report = RecallReport(
        samples=len(queries),
        limit=limit,
        seed=seed,
        eligible_rows=eligible,
        recall_mean=statistics.fmean(recalls),
        recall_min=min(recalls),
        perfect_share=sum(1 for r in recalls if r == 1.0) / len(recalls),
        index_ms_median=statistics.median(q.index_ms for q in queries),
        index_ms_p95=_p95([q.index_ms for q in queries]),
        exact_ms_median=statistics.median(q.exact_ms for q in queries),
        exact_ms_p95=_p95([q.exact_ms for q in queries]),
        queries=tuple(queries),
    )
    _report_observation(report)
    return report


def _report_observation(report: RecallReport) -> None:
    """The report as attributes of this call's observation and as measurements (metrics with ``[otel]``)."""
    observe.note("recall_mean", report.recall_mean)
    observe.note("recall_min", report.recall_min)
    observe.note("samples", report.samples)
    observe.measure("recall", report.recall_mean, limit=report.limit)
    observe.measure("recall_latency", report.index_ms_median / 1e3, search="index")
    observe.measure("recall_latency", report.exact_ms_median / 1e3, search="exact")
