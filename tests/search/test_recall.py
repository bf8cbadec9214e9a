"""Recall with the HNSW indexes present: owner-scoped searches are exact, global search recall@10 >= 0.98.

One module-scoped database: 10 050 deal chunks (one big owner, one tiny owner, many
medium ones) and 20 000 pre-qualifications with clustered 3072-d description embeddings
(``dealhunter_vectors.synthetic``), loaded with binary COPY, HNSW indexes built after the
load. Expected results are numpy float64 cosines of the stored float32 vectors.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

import dealhunter_vectors as dv
from dealhunter_vectors.db.codecs import Vector
from dealhunter_vectors.db.schema import VECTOR_INDEXES, create_vector_indexes, drop_vector_indexes
from dealhunter_vectors.legacy.synthetic import clustered_embeddings
from dealhunter_vectors.search.global_search import PRE_QUALIFICATION_ANN_SQL, PRE_QUALIFICATION_EXACT_SQL
from dealhunter_vectors.search.owner import DEAL_SEARCH_BY_QUALIFICATION_SQL, query_half

pytestmark = pytest.mark.slow

N_PRE_QUALIFICATIONS = 20_000
BIG, TINY = "q-big", "q-tiny"
MEDIUM = [f"q-m{i:02d}" for i in range(70)]
SIZES = {BIG: 3000, TINY: 50, **{m: 100 for m in MEDIUM}}  # 10 050 rows
DIMS = 3072


class Data:
    deal_ids: dict[str, list[str]]
    deal_vectors: dict[str, np.ndarray[Any, Any]]
    pq_ids: list[str]
    pq_vectors: np.ndarray[Any, Any]
    pq_has_requirements: np.ndarray[Any, Any]
    eligible: np.ndarray[Any, Any]
    eligible_unit64: np.ndarray[Any, Any]
    load_seconds: float
    index_seconds: float


@pytest_asyncio.fixture(scope="module")
async def loaded(dhv_database_factory: Any) -> AsyncIterator[tuple[dv.Pool, Data]]:
    url = await dhv_database_factory()
    pool = await dv.create_pool(url, min_size=1, max_size=4, command_timeout=600)
    data = Data()
    try:
        t0 = time.perf_counter()
        async with pool.acquire() as conn:
            await drop_vector_indexes(conn)
            await conn.execute(
                "INSERT INTO business_units (id, name, leader_name, leader_email, keywords)"
                " VALUES ('bu', 'BU', 'L', 'l@example.com', '[]')"
            )
            await conn.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@e.com', 'x', 'U')")
            # pre-qualifications: 20 000 clustered description embeddings; every 10th has no requirements
            data.pq_vectors = clustered_embeddings(N_PRE_QUALIFICATIONS, n_clusters=64, seed=11)
            data.pq_ids = [f"pq{i:05d}" for i in range(N_PRE_QUALIFICATIONS)]
            data.pq_has_requirements = np.arange(N_PRE_QUALIFICATIONS) % 10 != 0
            await conn.copy_records_to_table(
                "pre_qualifications",
                columns=[
                    "id",
                    "user_id",
                    "source",
                    "stage",
                    "input_type",
                    "raw_input",
                    "extracted_requirements",
                    "description_embedding",
                ],
                records=[
                    (pid, "u", "reactive", "rfp", "freetext", "t", '{"customerName": "c"}' if req else None, v)
                    for pid, req, v in zip(data.pq_ids, data.pq_has_requirements, data.pq_vectors, strict=True)
                ],
            )
            await conn.executemany(
                "INSERT INTO qualifications (id, pre_qualification_id, customer_name, business_unit_id)"
                " VALUES ($1, 'pq00000', 'c', 'bu')",
                [(q,) for q in SIZES],
            )
        # deal chunks through the library's binary COPY write path
        vectors = clustered_embeddings(sum(SIZES.values()), n_clusters=64, seed=12)
        data.deal_ids, data.deal_vectors = {}, {}
        start = 0
        for owner, size in SIZES.items():
            data.deal_vectors[owner] = vectors[start : start + size]
            start += size
        chunks = [
            dv.DealChunk(
                qualification_id=owner, agent_name=f"agent{i % 5}", chunk_type="t", content=f"{owner}/{i}", embedding=v
            )
            for owner in SIZES
            for i, v in enumerate(data.deal_vectors[owner])
        ]
        ids = await dv.insert_deal_chunks(pool, chunks)
        start = 0
        for owner, size in SIZES.items():
            data.deal_ids[owner] = ids[start : start + size]
            start += size
        data.eligible = np.flatnonzero(data.pq_has_requirements)
        wide = data.pq_vectors[data.eligible].astype(np.float64)
        data.eligible_unit64 = wide / np.linalg.norm(wide, axis=1)[:, None]
        data.load_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        async with pool.acquire() as conn:
            await conn.execute("SET maintenance_work_mem = '1GB'")
            await conn.execute("SET max_parallel_maintenance_workers = 1")
            await create_vector_indexes(conn)
            await conn.execute("ANALYZE deal_embeddings, pre_qualifications")
        data.index_seconds = time.perf_counter() - t1
        print(f"\nrecall data: load {data.load_seconds:.1f} s, HNSW build {data.index_seconds:.1f} s")
        yield pool, data
    finally:
        await dv.close_pool(pool)


def exact_top(vectors: np.ndarray[Any, Any], query: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    v = vectors.astype(np.float64)
    q = query.astype(np.float32).astype(np.float64)
    return (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))


async def explain(conn: Any, sql: str, *args: Any) -> str:
    rows = await conn.fetch("EXPLAIN (COSTS OFF) " + sql, *args)
    return "\n".join(r[0] for r in rows)


async def test_hnsw_indexes_are_present(loaded: tuple[dv.Pool, Data]) -> None:
    pool, _ = loaded
    names = {r["indexname"] for r in await pool.fetch("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%hnsw%'")}
    assert names == {idx.name for idx in VECTOR_INDEXES}


async def test_owner_scoped_searches_are_exact_with_hnsw_present(loaded: tuple[dv.Pool, Data]) -> None:
    pool, data = loaded
    rng = np.random.default_rng(3)
    for owner in (BIG, TINY, MEDIUM[0], MEDIUM[-1]):
        vectors, ids = data.deal_vectors[owner], data.deal_ids[owner]
        for _ in range(3):
            query = vectors[rng.integers(len(vectors))] + 0.05 * rng.standard_normal(DIMS).astype(np.float32)
            sims = exact_top(vectors, query)
            order = np.argsort(-sims, kind="stable")
            for threshold, limit in ((0.3, 5), (0.0, 50), (-1.0, len(vectors))):
                hits = await dv.search_deal_embeddings(
                    pool, query, qualification_id=owner, threshold=threshold, limit=limit
                )
                expected = [i for i in order if sims[i] > threshold][:limit]
                assert len(hits) == len(expected)  # never under-returns
                got = [h.chunk_id for h in hits]
                want = [ids[i] for i in expected]
                if got != want:  # only exact near-ties may swap
                    sim_of = {ids[i]: sims[i] for i in range(len(ids))}
                    assert all(abs(sim_of[a] - sim_of[b]) <= 1e-6 for a, b in zip(got, want, strict=True))
                for h, i in zip(hits, expected, strict=True):
                    assert abs((h.similarity or 0) - sims[i]) <= 1e-5


async def test_tiny_owner_is_not_under_returned(loaded: tuple[dv.Pool, Data]) -> None:
    """An ANN scan filtered by owner afterwards would find few of the 50 rows among 10 050."""
    pool, data = loaded
    query = data.deal_vectors[BIG][0]  # a query far from most of the tiny owner's rows
    hits = await dv.search_deal_embeddings(pool, query, qualification_id=TINY, threshold=-1.0, limit=1000)
    assert sorted(h.chunk_id for h in hits) == sorted(data.deal_ids[TINY])


async def test_owner_scoped_plan_uses_no_hnsw_index(loaded: tuple[dv.Pool, Data]) -> None:
    pool, data = loaded
    q = data.deal_vectors[BIG][1]
    async with pool.acquire() as conn:
        plan = await explain(
            conn,
            DEAL_SEARCH_BY_QUALIFICATION_SQL,
            [Vector(q)],
            [BIG],
            [0.7],
            [False],
            [None],
            [None],
            [False],
            [None],
            [None],
            [None],
            [False],
            [False],
            [5],
            [query_half(q)],
        )
    assert "hnsw" not in plan
    assert "deal_embeddings_qualification" in plan  # narrowed by the owner's btree index


async def test_global_search_plans(loaded: tuple[dv.Pool, Data]) -> None:
    pool, data = loaded
    q = data.pq_vectors[5]
    async with dv.transaction_settings(pool, {"hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": 100}) as c:
        ann = await explain(c, PRE_QUALIFICATION_ANN_SQL, q, None, 0.31, 10, 100)
        exact = await explain(c, PRE_QUALIFICATION_EXACT_SQL, q, None, 0.31, 10)
    assert "pre_qualifications_description_embedding_hnsw_idx" in ann
    assert "hnsw" not in exact


async def test_global_recall_at_10_is_at_least_0_98(loaded: tuple[dv.Pool, Data]) -> None:
    pool, data = loaded
    rng = np.random.default_rng(4)
    eligible = data.eligible
    hits_total, wanted_total = 0, 0
    for n in range(40):
        base = data.pq_vectors[rng.integers(N_PRE_QUALIFICATIONS)]
        query = (base + 0.6 * rng.standard_normal(DIMS).astype(np.float32) / math.sqrt(DIMS)).astype(np.float32)
        q64 = query.astype(np.float64)
        sims = data.eligible_unit64 @ (q64 / np.linalg.norm(q64))
        top = np.argsort(-sims, kind="stable")[:10]
        truth = {data.pq_ids[eligible[i]] for i in top}
        got = await dv.find_similar_pre_qualifications(pool, query, min_similarity_percent=0, limit=10)
        if n < 4:  # exact=True scans all 20 000 rows (~0.5 s each): check it on a few queries
            exact = await dv.find_similar_pre_qualifications(
                pool, query, min_similarity_percent=0, limit=10, exact=True
            )
            assert {m.pre_qualification_id for m in exact} == truth or math.isclose(
                sorted(sims)[-10], sorted(sims)[-11], abs_tol=1e-6
            )
        hits_total += len(truth & {m.pre_qualification_id for m in got})
        wanted_total += len(truth)
        sim_of = {data.pq_ids[eligible[i]]: sims[i] for i in range(len(eligible))}
        for m in got:  # re-ranked: similarities are the exact ones, no row without requirements
            assert abs(m.similarity - sim_of[m.pre_qualification_id]) <= 1e-5
        assert [m.similarity for m in got] == sorted((m.similarity for m in got), reverse=True)
    recall = hits_total / wanted_total
    print(f"\nglobal recall@10 = {recall:.4f}")
    assert recall >= 0.98


async def test_all_matches_exact_scan_over_20k(loaded: tuple[dv.Pool, Data]) -> None:
    pool, data = loaded
    query = data.pq_vectors[42]
    eligible = data.eligible
    q64 = query.astype(np.float64)
    sims = data.eligible_unit64 @ (q64 / np.linalg.norm(q64))
    percents = np.floor((sims + 1) / 2 * 100 + 0.5)  # no value here sits on a .5 boundary (checked below)
    assert np.all(np.abs((sims + 1) / 2 * 100 % 1 - 0.5) > 1e-6)
    want = {data.pq_ids[eligible[i]] for i in np.flatnonzero(percents >= 80)}
    got = await dv.find_similar_pre_qualifications(pool, query, min_similarity_percent=80, exclude_id="pq00042")
    assert {m.pre_qualification_id for m in got} == want - {"pq00042"}
