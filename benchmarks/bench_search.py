"""Owner-scoped search (lead retrieval): ours vs the literal old path vs the best in-process path.

Data: ``scale.owner_qualifications`` x 1,000 deal_embeddings (100k at ``--scale full``), HNSW
indexes present. Every round runs the lead-retrieval call (threshold > 0.3, limit 5) for the
next query of a fixed list spread over the legacy-backed qualifications.
Before timing, every query's hits are computed by all paths and must agree (same ids in the
same order, similarities within 1e-5).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

from benchmarks.conftest import Cycle, OwnerData, Runner, record
from benchmarks.datasets import Scale
from benchmarks.legacy_paths import LegacyHit, inprocess_lead_retrieval, old_lead_retrieval

CASE = "owner_scoped"
THRESHOLD = 0.3
LIMIT = 5

# The exact scan written directly in SQL (reference for "exact pgvector"; ours is vector_search).
EXACT_OWNER_SQL = """
SELECT "id", 1 - ("embedding" <=> $1) AS similarity
FROM "deal_embeddings"
WHERE "qualification_id" = $2 AND "embedding" IS NOT NULL AND ("embedding" <=> $1) < $3
ORDER BY "embedding" <=> $1, "id"
LIMIT $4
"""


def _vector_search() -> Any:
    try:
        return importlib.import_module("dealhunter_vectors.vector_search")
    except ImportError:
        return None


async def exact_sql(data: OwnerData, qualification_id: str, query: np.ndarray) -> list[LegacyHit]:
    rows = await data.pool.fetch(EXACT_OWNER_SQL, query, qualification_id, 1.0 - THRESHOLD, LIMIT)
    return [LegacyHit(r["id"], float(r["similarity"])) for r in rows]


async def ours(data: OwnerData, qualification_id: str, query: np.ndarray) -> list[LegacyHit]:
    vs = _vector_search()
    hits = await vs.search_deal_embeddings(
        data.pool, query, qualification_id=qualification_id, threshold=THRESHOLD, limit=LIMIT
    )
    return [LegacyHit(h.chunk_id, float(h.similarity)) for h in hits]


def assert_same_hits(a: list[LegacyHit], b: list[LegacyHit], what: str) -> None:
    """Same ids in the same order (except exact near-ties), similarities within 1e-5."""
    assert len(a) == len(b), f"{what}: {len(a)} vs {len(b)} hits"
    for x, y in zip(a, b, strict=True):
        assert abs(x.similarity - y.similarity) < 1e-5, f"{what}: {x} vs {y}"
    ids_a, ids_b = [h.id for h in a], [h.id for h in b]
    if ids_a != ids_b:  # allowed only between hits whose similarities tie within 1e-6
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x.id != y.id:
                near = [h for h in b if abs(h.similarity - x.similarity) < 1e-6]
                assert any(h.id == x.id for h in near), f"{what}: order differs at {i}: {ids_a} vs {ids_b}"


@pytest.fixture(scope="module")
def agreed(owner_data: OwnerData, runner: Runner, scale: Scale) -> bool:
    """All paths return the same hits for one query per legacy-backed qualification."""
    checked = owner_data.queries[: scale.legacy_owner_qualifications]
    for q_id, query in checked:
        old = old_lead_retrieval(owner_data.legacy_path, q_id, query, threshold=THRESHOLD, limit=LIMIT)
        assert len(old) == LIMIT, "the query must have a full page of hits"
        inproc = inprocess_lead_retrieval(owner_data.legacy_path, q_id, query, threshold=THRESHOLD, limit=LIMIT)
        assert_same_hits(old, inproc, "old vs in-process")
        assert_same_hits(old, runner.run(exact_sql(owner_data, q_id, query)), "old vs exact SQL")
        if _vector_search() is not None:
            assert_same_hits(old, runner.run(ours(owner_data, q_id, query)), "old vs ours")
    return True


def test_owner_old_path(benchmark: Any, owner_data: OwnerData, scale: Scale, agreed: bool) -> None:
    """(a) legacy SQLite + json.loads + JavaScript-style cosine loop."""
    cycle = Cycle(owner_data.queries)

    def run() -> list[LegacyHit]:
        q_id, query = cycle.next()
        return old_lead_retrieval(owner_data.legacy_path, q_id, query, threshold=THRESHOLD, limit=LIMIT)

    benchmark.pedantic(run, rounds=scale.slow_rounds, iterations=1, warmup_rounds=1)
    record(benchmark, case=CASE, role="old_path", rows_scanned=1000)


def test_owner_inprocess(benchmark: Any, owner_data: OwnerData, scale: Scale, agreed: bool) -> None:
    """(b) the same rows parsed with orjson, scored with numpy."""
    cycle = Cycle(owner_data.queries)

    def run() -> list[LegacyHit]:
        q_id, query = cycle.next()
        return inprocess_lead_retrieval(owner_data.legacy_path, q_id, query, threshold=THRESHOLD, limit=LIMIT)

    benchmark.pedantic(run, rounds=max(20, scale.slow_rounds), iterations=1, warmup_rounds=2)
    record(benchmark, case=CASE, role="inprocess", rows_scanned=1000)


def test_owner_exact_sql(benchmark: Any, owner_data: OwnerData, runner: Runner, scale: Scale, agreed: bool) -> None:
    """Exact pgvector scan of the owner's rows, written directly in SQL."""
    cycle = Cycle(owner_data.queries)

    def run() -> list[LegacyHit]:
        q_id, query = cycle.next()
        return runner.run(exact_sql(owner_data, q_id, query))

    benchmark.pedantic(run, rounds=scale.search_rounds, iterations=1, warmup_rounds=5)
    record(benchmark, case=CASE, role="exact_sql", rows_scanned=1000, table_rows=owner_data.meta.get("rows"))


def test_owner_ours(benchmark: Any, owner_data: OwnerData, runner: Runner, scale: Scale, agreed: bool) -> None:
    """``vector_search.search_deal_embeddings`` (the library's lead-retrieval call)."""
    if _vector_search() is None:
        pytest.skip("dealhunter_vectors.vector_search has not landed yet")
    cycle = Cycle(owner_data.queries)

    def run() -> list[LegacyHit]:
        q_id, query = cycle.next()
        return runner.run(ours(owner_data, q_id, query))

    benchmark.pedantic(run, rounds=scale.search_rounds, iterations=1, warmup_rounds=5)
    record(benchmark, case=CASE, role="ours", rows_scanned=1000, table_rows=owner_data.meta.get("rows"))


# ------------------------------------------------------------------ design experiment
# A half-precision copy of the embedding stored inline (STORAGE MAIN: 6 KB fits in the heap
# page, so no TOAST lookups), scored for every row of the owner, then an exact re-rank by the
# full-precision vector of only the rows that can still be in the exact top k:
#   |halfvec distance - exact distance| <= DELTA (2 x half rounding of both vectors, 4u ~ 2e-3,
#   plus float32 accumulation in pgvector's halfvec kernel, <= 6e-4), so every exact top-k row
#   has half distance < max_distance + DELTA and <= (k-th best half distance) + 2 DELTA.
# Built once as a side table of the owner database (bench_deal_half) - not the library schema.
HALF_DELTA = 5e-3

HALF_TABLE_SQL = (
    """CREATE TABLE IF NOT EXISTS "bench_deal_half" (
        "id" text PRIMARY KEY, "qualification_id" text, "embedding" vector(3072),
        "embedding_half" halfvec(3072))""",
    'ALTER TABLE "bench_deal_half" ALTER COLUMN "embedding_half" SET STORAGE MAIN',
    'TRUNCATE "bench_deal_half"',
    'INSERT INTO "bench_deal_half" SELECT "id", "qualification_id", "embedding", "embedding"::halfvec(3072)'
    ' FROM "deal_embeddings" ORDER BY "qualification_id", "id"',
    'CREATE INDEX IF NOT EXISTS "bench_deal_half_q_idx" ON "bench_deal_half" ("qualification_id")',
    'VACUUM (ANALYZE) "bench_deal_half"',
)

HALF_OWNER_SQL = """
WITH cand AS MATERIALIZED (
    SELECT "id", "embedding_half" <=> $1::halfvec(3072) AS hd
    FROM "bench_deal_half"
    WHERE "qualification_id" = $2 AND "embedding_half" IS NOT NULL
), kth AS (
    SELECT hd FROM cand WHERE hd < $3::float8 + $5::float8 ORDER BY hd LIMIT 1 OFFSET $4::int4 - 1
)
SELECT d."id", 1 - (d."embedding" <=> $6) AS similarity
FROM cand c JOIN "bench_deal_half" d ON d."id" = c."id"
WHERE c.hd < $3::float8 + $5::float8
  AND c.hd <= coalesce((SELECT hd FROM kth), 'Infinity'::float8) + 2 * $5::float8
  AND (d."embedding" <=> $6) < $3
ORDER BY d."embedding" <=> $6, d."id"
LIMIT $4
"""


async def ensure_half_table(data: OwnerData) -> None:
    from benchmarks import datasets as ds

    async with data.pool.acquire() as conn:
        meta = await ds.get_meta(conn)
        if meta.get("half_table") is True:
            return
        for sql in HALF_TABLE_SQL:
            await conn.execute(sql)
        await ds.set_meta(conn, "half_table", True)


async def half_inline(data: OwnerData, qualification_id: str, query: np.ndarray) -> list[LegacyHit]:
    rows = await data.pool.fetch(HALF_OWNER_SQL, query, qualification_id, 1.0 - THRESHOLD, LIMIT, HALF_DELTA, query)
    return [LegacyHit(r["id"], float(r["similarity"])) for r in rows]


def test_owner_design_halfvec_inline(
    benchmark: Any, owner_data: OwnerData, runner: Runner, scale: Scale, agreed: bool
) -> None:
    """Design experiment: inline halfvec copy + provably exact re-rank (same hits asserted)."""
    runner.run(ensure_half_table(owner_data))
    for q_id, query in owner_data.queries[: scale.legacy_owner_qualifications]:
        old = old_lead_retrieval(owner_data.legacy_path, q_id, query, threshold=THRESHOLD, limit=LIMIT)
        assert_same_hits(old, runner.run(half_inline(owner_data, q_id, query)), "old vs halfvec inline")
    for q_id, query in owner_data.queries:  # exactness on every query against the exact scan
        assert_same_hits(
            runner.run(exact_sql(owner_data, q_id, query)),
            runner.run(half_inline(owner_data, q_id, query)),
            "exact vs halfvec inline",
        )
    cycle = Cycle(owner_data.queries)

    def run() -> list[LegacyHit]:
        q_id, query = cycle.next()
        return runner.run(half_inline(owner_data, q_id, query))

    benchmark.pedantic(run, rounds=scale.search_rounds, iterations=1, warmup_rounds=5)
    record(benchmark, case=CASE, role="design_halfvec_inline", rows_scanned=1000, delta=HALF_DELTA)
