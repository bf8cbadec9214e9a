"""The global search widens its HNSW candidate count when the scan stops inside a dense shell."""

from __future__ import annotations

from typing import Any

import numpy as np

import dealhunter_vectors as dv
from dealhunter_vectors.layout import CandidatePass
from dealhunter_vectors.search import global_search as gs
from dealhunter_vectors.search.statements import DUPLICATE_CANDIDATES


def _pass(distances: list[float], frontier: float, seen: int, candidates: int = 100) -> CandidatePass:
    rows: Any = [{"id": f"p{i}", "distance": d} for i, d in enumerate(distances)]
    return CandidatePass(rows, candidates, frontier, seen)


def test_crowded_rule() -> None:
    ten = [0.30 + 0.0005 * i for i in range(10)]
    # frontier 0.004 beyond the 10th distance, every candidate used: widen
    assert gs._crowded(_pass(ten, ten[-1] + 0.004, 100), 10, 2.0)
    # a clear gap: keep
    assert not gs._crowded(_pass(ten, ten[-1] + 0.3, 100), 10, 2.0)
    # the scan ran out of rows (fewer candidates than asked): the result is exact
    assert not gs._crowded(_pass(ten, ten[-1] + 0.001, 60), 10, 2.0)
    # fewer than k matches: the boundary is the threshold
    few = _pass(ten[:3], 0.305, 100)
    assert gs._crowded(few, 10, 0.31)
    assert not gs._crowded(few, 10, 0.2)
    empty = _pass([], 0.5, 100)
    assert gs._crowded(empty, 10, 0.49) and not gs._crowded(empty, 10, 0.4)
    # a layout that cannot tell the frontier (Citus): the pass is final
    assert not gs._crowded(CandidatePass(_pass(ten, 0.0, 100).rows, 100, None, None), 10, 2.0)


async def test_candidate_count_follows_the_table_size(dhv_pool: dv.Pool) -> None:
    q = np.random.default_rng(2).standard_normal(3072).astype(np.float32)
    args = (q, None, 2.0, 18, 100, 1000, 50_000)
    async with dhv_pool.acquire() as conn:
        row = (await conn.fetch(DUPLICATE_CANDIDATES.single, *args))[0]
        assert row["ef"] == 100 and row["id"] is None and row["candidates"] == 0  # empty table
        async with conn.transaction():
            for rows, expected in ((10_000, 100), (100_000, 399), (1_000_000, 1000)):
                await conn.execute(
                    "UPDATE pg_class SET reltuples = $1 WHERE oid = 'pre_qualifications'::regclass", float(rows)
                )
                assert (await conn.fetch(DUPLICATE_CANDIDATES.single, *args))[0]["ef"] == expected
            # the function's SET clauses: nothing leaks into the caller's transaction
            assert await conn.fetchval("SHOW enable_seqscan") == "on"
            assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
            assert await conn.fetchval("SHOW hnsw.ef_search") == "40"


async def test_widening_keeps_results_exact_on_a_tight_cluster(dhv_pool: dv.Pool) -> None:
    """Rows at near-equal distance: the (widened) ANN result equals the exact scan's."""
    rng = np.random.default_rng(5)
    centre = rng.standard_normal(3072)
    centre /= np.linalg.norm(centre)
    noise = rng.standard_normal((400, 3072))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    rows = (0.97 * centre + np.sqrt(1 - 0.97**2) * noise).astype(np.float32)
    await dhv_pool.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@x', 'p', 'U')")
    await dhv_pool.executemany(
        "INSERT INTO pre_qualifications (id, user_id, raw_input, source, stage, input_type, extracted_requirements,"
        " description_embedding) VALUES ($1, 'u', 'x', 'reactive', 'pre-qualification', 'freetext', '{}', $2)",
        [(f"pq{i:04d}", v) for i, v in enumerate(rows)],
    )
    await dhv_pool.execute("ANALYZE pre_qualifications")
    q = centre.astype(np.float32)
    ann = await dv.find_similar_pre_qualifications(dhv_pool, q, min_similarity_percent=0, limit=10, exact=False)
    exact = await dv.find_similar_pre_qualifications(dhv_pool, q, min_similarity_percent=0, limit=10, exact=True)
    assert [m.pre_qualification_id for m in ann] == [m.pre_qualification_id for m in exact]


async def test_index_settings_never_outlive_the_search(dhv_database_url: str) -> None:
    """Pool, caller's connection, caller's transaction: the function's settings end with the call."""
    q = np.random.default_rng(1).standard_normal(3072).astype(np.float32)
    async with dv.open_pool(dhv_database_url, min_size=1, max_size=1) as pool:
        await dv.find_similar_pre_qualifications(pool, q, limit=10)
        async with pool.acquire() as conn:
            await dv.find_similar_pre_qualifications(conn, q, limit=10)
            assert not conn.is_in_transaction()
            async with conn.transaction():
                await dv.find_similar_pre_qualifications(conn, q, limit=10)
                assert await conn.fetchval("SHOW enable_seqscan") == "on"
                assert await conn.fetchval("SHOW hnsw.ef_search") == "40"
            assert await conn.fetchval("SHOW plan_cache_mode") == "auto"


async def test_function_and_statement_file_agree(dhv_pool: dv.Pool) -> None:
    """Migration 007's function runs search/sql/pre_qualification_ann.sql: same rows for the same input."""
    rng = np.random.default_rng(8)
    await dhv_pool.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@x', 'p', 'U')")
    await dhv_pool.executemany(
        "INSERT INTO pre_qualifications (id, user_id, raw_input, source, stage, input_type, extracted_requirements,"
        " description_embedding) VALUES ($1, 'u', 'x', 'reactive', 'pre-qualification', 'freetext', '{}', $2)",
        [(f"pq{i:03d}", rng.standard_normal(3072).astype(np.float32)) for i in range(150)],
    )
    q = rng.standard_normal(3072).astype(np.float32)
    for exclude, max_distance in ((None, 2.0), ("pq007", 1.0), (None, 0.5)):
        async with dhv_pool.acquire() as conn:
            via_function = await conn.fetch(DUPLICATE_CANDIDATES.single, q, exclude, max_distance, 12, 100, 100, 50_000)
            async with dv.transaction_settings(
                conn, {"hnsw.ef_search": 100, "hnsw.iterative_scan": "relaxed_order", "enable_seqscan": False}
            ) as tx:
                via_file = await tx.fetch(gs.PRE_QUALIFICATION_ANN_SQL, q, exclude, max_distance, 12, 100)
        assert [(r["id"], r["distance"], r["frontier"], r["candidates"]) for r in via_function] == [
            (r["id"], r["distance"], r["frontier"], r["candidates"]) for r in via_file
        ]
