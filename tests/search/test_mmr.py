"""Maximal marginal relevance (``mmr_lambda``) on the owner-scoped and the hybrid searches.

Expected orders come from :func:`hybrid_reference.naive_mmr` (nested Python loops) over
numpy cosines of the stored small-integer vectors (exactly pgvector's cosines) and, for the
hybrid searches, the independent reciprocal rank fusion of :func:`hybrid_reference.expected_hybrid`.
The tie data has equal cosines between candidates and equal relevances.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hybrid_reference import (
    PQ_TIES,
    Q_TIES,
    QUERY,
    expected_hybrid,
    insert_tie_data,
    int_vector,
    naive_mmr,
    pg_cosine,
)

import dealhunter_vectors as dv
from dealhunter_vectors.models import DealChunkSearch, RawChunkSearch
from dealhunter_vectors.search.hybrid import hybrid_search_deal_embeddings, hybrid_search_raw_chunks
from dealhunter_vectors.search.mmr import mmr_select, pairwise_similarity
from dealhunter_vectors.testing import seed_owners

LAMBDAS = [0.0, 0.25, 0.5, 0.7, 1.0]


@pytest.fixture(scope="module")
async def pool(dhv_module_pool: dv.Pool) -> dv.Pool:
    await seed_owners(dhv_module_pool, pre_qualification_ids=[PQ_TIES], qualification_ids=[Q_TIES])
    await insert_tie_data(dhv_module_pool)
    return dhv_module_pool


async def embeddings(db: dv.Pool, table: str, ids: list[str]) -> dict[str, Any]:
    rows = await db.fetch(f"SELECT id, embedding FROM {table} WHERE id = ANY($1::text[])", ids)
    return {r["id"]: r["embedding"] for r in rows}


def similarity_matrix(ids: list[str], vectors: dict[str, Any]) -> list[list[float]]:
    n = len(ids)
    out = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = vectors.get(ids[i]), vectors.get(ids[j])
            if a is not None and b is not None:
                out[i][j] = out[j][i] = pg_cosine(a, b)
    return out


# --------------------------------------------------------------------------- the greedy selection


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mmr_lambda", LAMBDAS)
def test_mmr_select_equals_the_naive_loops(seed: int, mmr_lambda: float) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    # coarse values: many exact ties in relevance and similarity
    relevance = sorted((rng.integers(0, 5, size=n) / 4).tolist(), reverse=True)
    upper = np.triu(rng.integers(-4, 5, size=(n, n)) / 4, 1)
    similarity = upper + upper.T + np.eye(n)
    for k in (1, 3, n, n + 5):
        assert mmr_select(relevance, similarity, mmr_lambda, k) == naive_mmr(relevance, similarity, mmr_lambda, k)


def test_mmr_select_edge_cases() -> None:
    assert mmr_select([], np.zeros((0, 0)), 0.5, 3) == []
    assert mmr_select([0.9, 0.8, 0.7], np.eye(3), 1.0, 3) == [0, 1, 2]  # lambda 1: the plain order
    # two identical candidates: lambda 0.5 skips the duplicate of the first pick
    sim = np.array([[1.0, 1.0, 0.1], [1.0, 1.0, 0.1], [0.1, 0.1, 1.0]])
    assert mmr_select([0.9, 0.9, 0.6], sim, 0.5, 2) == [0, 2]


async def test_pairwise_similarity_is_the_exact_cosine_matrix(pool: dv.Pool) -> None:
    ids = ["t000", "t005", "nope", "t022", "t017", "t001"]
    vectors = await embeddings(pool, "deal_embeddings", ids)
    assert any(v is None for v in vectors.values())  # a row without embedding
    async with pool.acquire() as conn:
        got = await pairwise_similarity(conn, "deal_embeddings", ids, owner=("qualification_id", Q_TIES))
    assert got.tolist() == similarity_matrix(ids, vectors)


# --------------------------------------------------------------------------- owner-scoped searches


async def expected_owner_mmr(
    db: dv.Pool,
    table: str,
    owner_column: str,
    owner: str,
    *,
    threshold: float,
    mmr_lambda: float,
    limit: int,
    candidates: int,
) -> list[str]:
    rows = await db.fetch(
        f"SELECT id, embedding FROM {table} WHERE {owner_column} = $1 AND embedding IS NOT NULL", owner
    )
    cos = {r["id"]: pg_cosine(r["embedding"], QUERY) for r in rows}
    ranked = sorted((i for i in cos if 1 - cos[i] < 1 - threshold), key=lambda i: (1 - cos[i], i))[:candidates]
    vectors = {r["id"]: r["embedding"] for r in rows}
    order = naive_mmr([cos[i] for i in ranked], similarity_matrix(ranked, vectors), mmr_lambda, limit)
    return [ranked[i] for i in order]


@pytest.mark.parametrize("mmr_lambda", LAMBDAS)
@pytest.mark.parametrize(("limit", "candidates"), [(5, None), (4, 12), (10, 30), (3, 3)])
async def test_deal_search_mmr_equals_independent(
    pool: dv.Pool, mmr_lambda: float, limit: int, candidates: int | None
) -> None:
    got = await dv.search_deal_embeddings(
        pool,
        QUERY,
        qualification_id=Q_TIES,
        threshold=0.1,
        limit=limit,
        mmr_lambda=mmr_lambda,
        mmr_candidates=candidates,
    )
    want = await expected_owner_mmr(
        pool,
        "deal_embeddings",
        "qualification_id",
        Q_TIES,
        threshold=0.1,
        mmr_lambda=mmr_lambda,
        limit=limit,
        candidates=candidates or max(20, 4 * limit),
    )
    assert [h.chunk_id for h in got] == want
    plain = {
        h.chunk_id: h
        for h in await dv.search_deal_embeddings(pool, QUERY, qualification_id=Q_TIES, threshold=0.1, limit=48)
    }
    assert all(h == plain[h.chunk_id] for h in got)  # the hits themselves are unchanged


@pytest.mark.parametrize("mmr_lambda", LAMBDAS)
async def test_raw_search_mmr_equals_independent(pool: dv.Pool, mmr_lambda: float) -> None:
    got = await dv.search_raw_chunks(
        pool, QUERY, pre_qualification_id=PQ_TIES, threshold=0.0, limit=6, mmr_lambda=mmr_lambda, mmr_candidates=25
    )
    want = await expected_owner_mmr(
        pool,
        "raw_chunks",
        "pre_qualification_id",
        PQ_TIES,
        threshold=0.0,
        mmr_lambda=mmr_lambda,
        limit=6,
        candidates=25,
    )
    assert [h.chunk_id for h in got] == want


async def test_mmr_off_and_lambda_one_are_the_plain_search(pool: dv.Pool) -> None:
    plain = await dv.search_deal_embeddings(pool, QUERY, qualification_id=Q_TIES, threshold=0.1, limit=7)
    for lam in (None, 1.0):
        got = await dv.search_deal_embeddings(
            pool, QUERY, qualification_id=Q_TIES, threshold=0.1, limit=7, mmr_lambda=lam
        )
        assert got == plain


async def test_mmr_diversifies(pool: dv.Pool) -> None:
    """The tie data repeats each vector pattern: plain top-6 holds duplicates, MMR(0.5) does not."""
    plain = await dv.search_deal_embeddings(pool, QUERY, qualification_id=Q_TIES, threshold=-1.0, limit=6)
    mmr = await dv.search_deal_embeddings(pool, QUERY, qualification_id=Q_TIES, threshold=-1.0, limit=6, mmr_lambda=0.5)
    vectors = await embeddings(pool, "deal_embeddings", [h.chunk_id for h in plain + mmr])

    def distinct(hits: list[dv.DealChunkHit]) -> int:
        return len({tuple(np.asarray(vectors[h.chunk_id])[:6]) for h in hits})

    assert distinct(mmr) > distinct(plain)
    assert mmr[0] == plain[0]


async def test_search_many_applies_mmr_per_request(pool: dv.Pool) -> None:
    requests = [
        DealChunkSearch(query_embedding=QUERY, qualification_id=Q_TIES, threshold=0.1, limit=4, mmr_lambda=0.3),
        DealChunkSearch(query_embedding=QUERY, qualification_id=Q_TIES, threshold=0.1, limit=4),
        RawChunkSearch(query_embedding=QUERY, pre_qualification_id=PQ_TIES, limit=5, mmr_lambda=0.6, mmr_candidates=15),
    ]
    got = await dv.search_many(pool, requests)
    assert got[0] == await dv.search_deal_embeddings(
        pool, QUERY, qualification_id=Q_TIES, threshold=0.1, limit=4, mmr_lambda=0.3
    )
    assert got[1] == await dv.search_deal_embeddings(pool, QUERY, qualification_id=Q_TIES, threshold=0.1, limit=4)
    assert got[2] == await dv.search_raw_chunks(
        pool, QUERY, pre_qualification_id=PQ_TIES, limit=5, mmr_lambda=0.6, mmr_candidates=15
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mmr_lambda": 1.5}, "mmr_lambda"),
        ({"mmr_lambda": -0.1}, "mmr_lambda"),
        ({"mmr_lambda": math.nan}, "mmr_lambda"),
        ({"mmr_lambda": True}, "mmr_lambda"),
        ({"mmr_lambda": "0.5"}, "mmr_lambda"),
        ({"mmr_lambda": 0.5, "mmr_candidates": 2}, "mmr_candidates"),
        ({"mmr_lambda": 0.5, "mmr_candidates": 5000}, "mmr_candidates"),
        ({"mmr_lambda": 0.5, "mmr_candidates": 7.5}, "mmr_candidates"),
    ],
)
async def test_bad_mmr_arguments(pool: dv.Pool, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await dv.search_deal_embeddings(pool, QUERY, qualification_id=Q_TIES, limit=5, **kwargs)
    with pytest.raises(ValueError, match=message):
        await dv.search_raw_chunks(pool, QUERY, pre_qualification_id=PQ_TIES, limit=5, **kwargs)


# --------------------------------------------------------------------------- hybrid searches


@pytest.mark.parametrize("mmr_lambda", LAMBDAS)
@pytest.mark.parametrize(
    ("text", "vector"), [("TYPO3 or Relaunch", True), ("TYPO3 or Relaunch", False), (None, True), ("Angebot", True)]
)
async def test_hybrid_mmr_equals_independent(pool: dv.Pool, mmr_lambda: float, text: str | None, vector: bool) -> None:
    query = QUERY if vector else None
    candidates, limit = 20, 6
    fused = await expected_hybrid(
        pool, "deal_embeddings", "qualification_id", Q_TIES, text, query, limit=candidates, candidates=candidates
    )
    ids = [f["id"] for f in fused]
    best = max(f["fused_score"] for f in fused)
    order = naive_mmr(
        [f["fused_score"] / best for f in fused],
        similarity_matrix(ids, await embeddings(pool, "deal_embeddings", ids)),
        mmr_lambda,
        limit,
    )
    got = await hybrid_search_deal_embeddings(
        pool, text, query, qualification_id=Q_TIES, limit=limit, candidates=candidates, mmr_lambda=mmr_lambda
    )
    assert [h.chunk_id for h in got] == [ids[i] for i in order]
    by_id = {f["id"]: f for f in fused}
    assert all(
        (h.vector_rank, h.text_rank, h.fused_score)
        == (by_id[h.chunk_id]["vector_rank"], by_id[h.chunk_id]["text_rank"], by_id[h.chunk_id]["fused_score"])
        for h in got
    )


@pytest.mark.parametrize("mmr_lambda", [0.0, 0.5])
async def test_hybrid_raw_mmr_equals_independent(pool: dv.Pool, mmr_lambda: float) -> None:
    fused = await expected_hybrid(
        pool, "raw_chunks", "pre_qualification_id", PQ_TIES, "TYPO3 or Wartung", QUERY, limit=30, candidates=30
    )
    ids = [f["id"] for f in fused]
    best = max(f["fused_score"] for f in fused)
    order = naive_mmr(
        [f["fused_score"] / best for f in fused],
        similarity_matrix(ids, await embeddings(pool, "raw_chunks", ids)),
        mmr_lambda,
        8,
    )
    got = await hybrid_search_raw_chunks(
        pool, "TYPO3 or Wartung", QUERY, pre_qualification_id=PQ_TIES, limit=8, candidates=30, mmr_lambda=mmr_lambda
    )
    assert [h.chunk_id for h in got] == [ids[i] for i in order]


async def test_mmr_of_a_single_candidate(pool: dv.Pool) -> None:
    await pool.execute(
        "INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
        " VALUES ('solo', 'pq-base', 0, 'Solo', 1, $1)",
        int_vector([1]),
    )
    got = await dv.search_raw_chunks(pool, QUERY, pre_qualification_id="pq-base", threshold=-1, mmr_lambda=0.5)
    assert [h.chunk_id for h in got] == ["solo"]
    assert await dv.search_raw_chunks(pool, QUERY, pre_qualification_id="nobody", mmr_lambda=0.5) == []
