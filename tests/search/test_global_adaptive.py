"""The global search widens its HNSW candidate count when the scan stops inside a dense shell."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.layout import CandidatePass
from dealhunter_vectors.search import global_search as gs
from dealhunter_vectors.search.statements import DUPLICATE_CANDIDATES


def _rows(distances: list[float], frontier: float, candidates: int, centre_norm: float | None) -> list[dict[str, Any]]:
    if not distances:
        return [{"id": None, "distance": None, "frontier": frontier, "candidates": candidates, "centre_norm": None}]
    return [
        {"id": f"p{i}", "distance": d, "frontier": frontier, "candidates": candidates, "centre_norm": centre_norm}
        for i, d in enumerate(distances)
    ]


def _scan(rows: list[dict[str, Any]], candidates: int) -> CandidatePass:
    """A pass as a layout returns it: the result rows and what the scan saw."""
    found: Any = [r for r in rows if r["id"] is not None]
    return CandidatePass(found, candidates, rows[0]["frontier"], rows[0]["candidates"], rows[0]["centre_norm"])


def _centre_norm(pairwise: float, n: int = 10) -> float:
    """The centre norm of n unit vectors whose mean pairwise cosine distance is *pairwise*."""
    return float(np.sqrt(1 - pairwise * (n - 1) / n))


def test_compact_matches_the_pairwise_distances_of_vectors() -> None:
    """_compact's pairwise distance from the centre norm equals numpy's mean pairwise cosine distance."""
    rng = np.random.default_rng(4)
    centre = rng.standard_normal(64)
    for spread in (0.05, 0.5, 2.0):
        x = centre + spread * rng.standard_normal((10, 64))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        pairwise = float(np.mean([1 - x[i] @ x[j] for i in range(10) for j in range(10) if i != j]))
        centre_norm = float(np.linalg.norm(x.mean(axis=0)))
        # compact exactly when the pairwise distance is below ANN_COMPACT_RATIO x the mean distance to the query
        assert gs._compact([pairwise / gs.ANN_COMPACT_RATIO * 1.001] * 10, centre_norm)
        assert not gs._compact([pairwise / gs.ANN_COMPACT_RATIO * 0.999] * 10, centre_norm)


def test_crowded_rule() -> None:
    ten = [0.30 + 0.0005 * i for i in range(10)]
    # a compact group seen from afar (pairwise 0.06 vs distance ~0.30: the hard set), every candidate used: widen
    rows = _rows(ten, ten[-1] + 0.004, 64, _centre_norm(0.06))
    assert gs._crowded(_scan(rows, 64), 10, 2.0)
    # ... also when the frontier lies far beyond the boundary (the walk left the group for far rows)
    rows = _rows(ten, 0.95, 64, _centre_norm(0.06))
    assert gs._crowded(_scan(rows, 64), 10, 2.0)
    # distances concentrate but the rows are as far from each other as from the query (loose clusters): keep
    rows = _rows(ten, ten[-1] + 0.004, 64, _centre_norm(0.31))
    assert not gs._crowded(_scan(rows, 64), 10, 2.0)
    # the scan ran out of rows (fewer candidates than asked): the result is exact
    rows = _rows(ten, ten[-1] + 0.001, 60, _centre_norm(0.06))
    assert not gs._crowded(_scan(rows, 64), 10, 2.0)
    # fewer than 2 rows: the spread is unknown; the frontier near the threshold widens
    rows = _rows(ten[:1], 0.305, 64, None)
    assert gs._crowded(_scan(rows, 64), 10, 0.31)
    assert not gs._crowded(_scan(rows, 64), 10, 0.2)
    empty = _rows([], 0.5, 64, None)
    assert gs._crowded(_scan(empty, 64), 10, 0.49) and not gs._crowded(_scan(empty, 64), 10, 0.4)
    # limit 1: the boundary is the first distance
    rows = _rows(ten[:1], ten[0] + 0.01, 64, None)
    assert gs._crowded(_scan(rows, 64), 1, 2.0)
    rows = _rows(ten[:1], ten[0] + 0.5, 64, None)
    assert not gs._crowded(_scan(rows, 64), 1, 2.0)
    # a layout that cannot tell the frontier: the pass is final
    assert not gs._crowded(CandidatePass(_scan(_rows(ten, 0.5, 64, None), 64).rows, 64, None, None), 10, 2.0)


async def test_candidate_count_follows_the_table_size(dhv_pool: dv.Pool) -> None:
    q = np.random.default_rng(2).standard_normal(3072).astype(np.float32)
    args = (q, None, 2.0, 18, 64, 0.8, 1000, 50_000, 10)
    async with dhv_pool.acquire() as conn:
        row = (await conn.fetch(DUPLICATE_CANDIDATES.single, *args))[0]
        assert row["ef"] == 64 and row["id"] is None and row["candidates"] == 0  # empty table
        assert row["centre_norm"] is None
        async with conn.transaction():
            # 64 up to 10,000 rows, then 64 x (rows / 10k)^0.8 (issue 14's ~400 at 100k), at most 1,000
            for rows, expected in ((2_000, 64), (10_000, 64), (30_000, 155), (100_000, 404), (1_000_000, 1000)):
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
    """Migration 010's function runs search/sql/pre_qualification_ann.sql: same rows for the same input; its
    centre_norm (since migration 012: the norm of their float32 sum / n) is the norm of the mean of the
    first spread_rows rows' unit vectors (numpy, float64)."""
    rng = np.random.default_rng(8)
    vectors = {f"pq{i:03d}": rng.standard_normal(3072).astype(np.float32) for i in range(150)}
    await dhv_pool.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@x', 'p', 'U')")
    await dhv_pool.executemany(
        "INSERT INTO pre_qualifications (id, user_id, raw_input, source, stage, input_type, extracted_requirements,"
        " description_embedding) VALUES ($1, 'u', 'x', 'reactive', 'pre-qualification', 'freetext', '{}', $2)",
        list(vectors.items()),
    )
    q = rng.standard_normal(3072).astype(np.float32)
    norms_checked = 0
    for exclude, max_distance in ((None, 2.0), ("pq007", 1.0), (None, 0.5)):
        async with dhv_pool.acquire() as conn:
            via_function = await conn.fetch(
                DUPLICATE_CANDIDATES.single, q, exclude, max_distance, 12, 100, 0.8, 100, 50_000, 10
            )
            async with dv.transaction_settings(
                conn, {"hnsw.ef_search": 100, "hnsw.iterative_scan": "relaxed_order", "enable_seqscan": False}
            ) as tx:
                via_file = await tx.fetch(gs.PRE_QUALIFICATION_ANN_SQL, q, exclude, max_distance, 12, 100)
        assert [(r["id"], r["distance"], r["frontier"], r["candidates"]) for r in via_function] == [
            (r["id"], r["distance"], r["frontier"], r["candidates"]) for r in via_file
        ]
        top = [r["id"] for r in via_function if r["id"] is not None][:10]
        if len(top) < 2:
            assert via_function[0]["centre_norm"] is None
            continue
        unit = np.stack([vectors[i] / np.linalg.norm(vectors[i].astype(np.float64)) for i in top])
        assert via_function[0]["centre_norm"] == pytest.approx(np.linalg.norm(unit.mean(axis=0)), rel=1e-5)
        norms_checked += 1
    assert norms_checked == 2
