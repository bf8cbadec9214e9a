"""recall_self_check against an independent computation: numpy's exact top 10 of the sampled rows.

The table gets a deliberately weak HNSW index (m 4, ef_construction 8) on the library's index
expression, so the index search misses rows and the reported recall has something to measure.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.db.schema import drop_vector_indexes
from dealhunter_vectors.errors import InvalidArgumentError, NotFoundError
from dealhunter_vectors.models import PreQualificationMatch
from dealhunter_vectors.search.recall_check import query_recall, recall_self_check

DIMS = 3072
WEAK_INDEX = (
    'CREATE INDEX "weak_hnsw" ON "pre_qualifications" USING hnsw ((("description_embedding")::halfvec(3072))'
    " halfvec_cosine_ops) WITH (m = 4, ef_construction = 8)"
)


def _match(pid: str, similarity: float) -> PreQualificationMatch:
    return PreQualificationMatch(pre_qualification_id=pid, similarity=similarity, similarity_percent=50)


def test_query_recall() -> None:
    exact = [_match("a", 0.9), _match("b", 0.8), _match("c", 0.7)]
    assert query_recall(exact, exact) == 1.0
    assert query_recall([_match("a", 0.9), _match("b", 0.8), _match("x", 0.6)], exact) == pytest.approx(2 / 3)
    # a row tying the last exact similarity is as good as the exact scan's pick
    assert query_recall([_match("a", 0.9), _match("b", 0.8), _match("y", 0.7)], exact) == 1.0
    assert query_recall([], exact) == 0.0
    assert query_recall([], []) == 1.0


async def _load(pool: dv.Pool, vectors: np.ndarray[Any, Any], eligible: np.ndarray[Any, Any]) -> list[str]:
    ids = [f"pq{i:04d}" for i in range(len(vectors))]
    await pool.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@e.com', 'x', 'U')")
    await pool.copy_records_to_table(
        "pre_qualifications",
        columns=["id", "user_id", "source", "stage", "input_type", "raw_input", "extracted_requirements",
                 "description_embedding"],
        records=[(pid, "u", "reactive", "rfp", "freetext", "t", "{}" if ok else None, v)
                 for pid, ok, v in zip(ids, eligible, vectors, strict=True)]
        + [(f"none{i}", "u", "reactive", "rfp", "freetext", "t", "{}", None) for i in range(5)],
    )  # fmt: skip
    return ids


async def test_recall_self_check_matches_numpy(dhv_pool: dv.Pool) -> None:
    rng = np.random.default_rng(31)
    centres = rng.standard_normal((8, DIMS))
    vectors = np.sqrt(0.4) * centres[rng.integers(0, 8, 1500)] / np.sqrt(DIMS) + np.sqrt(0.6) * rng.standard_normal(
        (1500, DIMS)
    ) / np.sqrt(DIMS)
    vectors = vectors.astype(np.float32)
    eligible = rng.random(1500) >= 0.1  # every 10th row without requirements: never sampled, never found
    async with dhv_pool.acquire() as conn:
        await drop_vector_indexes(conn)  # loading into an HNSW index is slow: build it after the load
    ids = await _load(dhv_pool, vectors, eligible)
    async with dhv_pool.acquire() as conn:
        await conn.execute(WEAK_INDEX)
        await conn.execute("ANALYZE pre_qualifications")

    report = await recall_self_check(dhv_pool, samples=30, limit=10, seed=5)

    # the sample: md5(id || ':' || seed) order over the eligible rows with an embedding
    candidates = [pid for pid, ok in zip(ids, eligible, strict=True) if ok]
    expected = sorted(candidates, key=lambda pid: (hashlib.md5(f"{pid}:5".encode()).hexdigest(), pid))[:30]
    assert [q.pre_qualification_id for q in report.queries] == expected
    assert report.samples == 30 and report.limit == 10 and report.seed == 5
    assert report.eligible_rows == int(eligible.sum())

    unit = vectors.astype(np.float64) / np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True)
    index_of = {pid: i for i, pid in enumerate(ids)}
    recalls = []
    for q in report.queries:
        row = index_of[q.pre_qualification_id]
        sims = unit @ unit[row]
        sims[~eligible] = -np.inf
        sims[row] = -np.inf  # the query's own row is excluded
        truth = {ids[i] for i in np.argsort(-sims)[:10]}
        got = await dv.find_similar_pre_qualifications(
            dhv_pool, vectors[row], exclude_id=q.pre_qualification_id, min_similarity_percent=0, limit=10, exact=False
        )
        recalls.append(len(truth & {m.pre_qualification_id for m in got}) / 10)
        assert q.recall == recalls[-1]
        assert q.index_ms > 0 and q.exact_ms > 0
    assert min(recalls) < 1.0, "the weak index should miss rows (else this test checks nothing)"
    assert report.recall_mean == pytest.approx(statistics.fmean(recalls))
    assert report.recall_min == min(recalls)
    assert report.perfect_share == pytest.approx(sum(r == 1.0 for r in recalls) / 30)
    index_ms = sorted(q.index_ms for q in report.queries)
    assert report.index_ms_median == pytest.approx(statistics.median(index_ms))
    assert report.index_ms_p95 == index_ms[math.ceil(0.95 * 30) - 1]
    exact_ms = sorted(q.exact_ms for q in report.queries)
    assert report.exact_ms_median == pytest.approx(statistics.median(exact_ms))
    assert report.exact_ms_p95 == exact_ms[math.ceil(0.95 * 30) - 1]

    # another seed, another sample; more samples than rows: all of them
    other = await recall_self_check(dhv_pool, samples=30, limit=10, seed=6)
    assert [q.pre_qualification_id for q in other.queries] != expected


async def test_recall_self_check_small_table_and_bad_arguments(dhv_pool: dv.Pool) -> None:
    with pytest.raises(NotFoundError, match="description_embedding"):
        await recall_self_check(dhv_pool)
    rng = np.random.default_rng(2)
    await _load(dhv_pool, rng.standard_normal((3, DIMS)).astype(np.float32), np.array([True, True, True]))
    report = await recall_self_check(dhv_pool, samples=50)
    assert report.samples == 3 and report.eligible_rows == 3
    assert report.recall_mean == 1.0  # two other rows each: the index search finds both
    for bad in ({"samples": 0}, {"samples": 10_001}, {"samples": 2.0}, {"limit": 0}, {"limit": True},
                {"seed": -1}, {"seed": "1"}):  # fmt: skip
        with pytest.raises(InvalidArgumentError, match=next(iter(bad))):
            await recall_self_check(dhv_pool, **bad)
