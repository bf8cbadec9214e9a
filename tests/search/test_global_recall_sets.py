"""Global search recall@10 against numpy's exact top 10 on three data sets (issue 22).

Each set is 2,000 pre-qualifications (3072-d description embeddings, the library's HNSW index
built after the load) and 20 held-out queries:

* **hard**: 16 tight clusters (cosine 0.97 to their centre, ~125 rows each), each query between
  two centres, so its top 10 is split between two groups of 250 near-equidistant rows: the first
  index walk is captured by one group, and only widening finds the other (checked: with the rule
  switched off recall falls below 0.9);
* **loose**: 16 isotropic clusters whose members have cosine ~0.4 to each other, queries fresh
  members: distances concentrate (hundreds of rows within 0.02 of the 10th distance);
* **clustered**: :func:`dealhunter_vectors.legacy.synthetic.clustered_embeddings` (the
  benchmark's geometry), queries near stored rows (cosine ~0.74-0.96).

benchmarks/global_sets.py holds the benchmark's versions (10,000 rows, real embeddings too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from numpy.typing import NDArray

import dealhunter_vectors as dv
from dealhunter_vectors.db.schema import create_vector_indexes, drop_vector_indexes
from dealhunter_vectors.legacy.synthetic import clustered_embeddings, query_near
from dealhunter_vectors.search import global_search as gs

pytestmark = pytest.mark.slow

ROWS, QUERIES, DIMS = 2_000, 20, 3072
Set = tuple[NDArray[np.float32], NDArray[np.float32]]


def _unit(x: NDArray[Any]) -> NDArray[np.float32]:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def hard_set() -> Set:
    rng = np.random.default_rng(221)
    centres = _unit(rng.standard_normal((16, DIMS)))
    rows = 0.97 * centres[rng.integers(0, 16, ROWS)] + np.sqrt(1 - 0.97**2) * _unit(rng.standard_normal((ROWS, DIMS)))
    pairs = [rng.choice(16, size=2, replace=False) for _ in range(QUERIES)]
    queries = np.stack([centres[a] + centres[b] + 0.05 * rng.standard_normal(DIMS) / np.sqrt(DIMS) for a, b in pairs])
    return _unit(rows), _unit(queries)


def loose_set() -> Set:
    rng = np.random.default_rng(222)
    centres = _unit(rng.standard_normal((16, DIMS)))

    def members(n: int) -> NDArray[np.float32]:
        noise = _unit(rng.standard_normal((n, DIMS)))
        return _unit(np.sqrt(0.4) * centres[rng.integers(0, 16, n)] + np.sqrt(0.6) * noise)

    return members(ROWS), members(QUERIES)


def clustered_set() -> Set:
    rows = clustered_embeddings(ROWS, n_clusters=16, seed=223)
    rng = np.random.default_rng(223)
    picks = rng.integers(0, ROWS, QUERIES)
    return rows, np.stack([query_near(rows[i], rng, float(rng.uniform(0.3, 0.9))) for i in picks])


SETS: dict[str, Callable[[], Set]] = {"hard": hard_set, "loose": loose_set, "clustered": clustered_set}


class Loaded:
    def __init__(self, pool: dv.Pool, vectors: NDArray[np.float32], queries: NDArray[np.float32]) -> None:
        self.pool, self.vectors, self.queries = pool, vectors, queries
        self.ids = [f"pq{i:05d}" for i in range(len(vectors))]

    def exact_top10(self, q: NDArray[np.float32]) -> list[str]:
        v = self.vectors.astype(np.float64)
        sims = (v @ q.astype(np.float64)) / np.linalg.norm(v, axis=1)
        order = np.lexsort((np.arange(len(sims)), -sims))[:10]
        return [self.ids[i] for i in order]

    async def recall(self) -> float:
        hits = 0
        for q in self.queries:
            got = await dv.find_similar_pre_qualifications(self.pool, q, min_similarity_percent=0, limit=10)
            hits += len({m.pre_qualification_id for m in got} & set(self.exact_top10(q)))
        return hits / (10 * len(self.queries))


@pytest_asyncio.fixture(scope="module", params=list(SETS))
async def loaded(request: pytest.FixtureRequest, dhv_database_factory: Any) -> AsyncIterator[tuple[str, Loaded]]:
    vectors, queries = SETS[request.param]()
    pool = await dv.create_pool(await dhv_database_factory(), min_size=1, max_size=2, command_timeout=600)
    try:
        data = Loaded(pool, vectors, queries)
        async with pool.acquire() as conn:
            await drop_vector_indexes(conn)
            await conn.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@e.com', 'x', 'U')")
            await conn.copy_records_to_table(
                "pre_qualifications",
                columns=["id", "user_id", "source", "stage", "input_type", "raw_input", "extracted_requirements",
                         "description_embedding"],
                records=[(i, "u", "reactive", "rfp", "freetext", "t", "{}", v)
                         for i, v in zip(data.ids, vectors, strict=True)],
            )  # fmt: skip
            await conn.execute("SET maintenance_work_mem = '512MB'")
            await create_vector_indexes(conn)
            await conn.execute("ANALYZE pre_qualifications")
        yield request.param, data
    finally:
        await dv.close_pool(pool)


async def test_recall_at_10_against_exact(loaded: tuple[str, Loaded]) -> None:
    name, data = loaded
    recall = await data.recall()
    print(f"\n{name}: recall@10 {recall:.3f}")
    assert recall >= 0.99


async def test_hard_set_needs_the_widening(loaded: tuple[str, Loaded], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without widening the hard set misses the 0.99 goal: the recall test above depends on the rule.

    The graph is built anew each run (HNSW levels are random): without widening the hard set's
    recall@10 measured 0.77-0.92, with it >= 0.99; the bound leaves room for that spread.
    """
    name, data = loaded
    if name != "hard":
        pytest.skip("the hard set only")
    monkeypatch.setattr(gs, "_crowded", lambda *args: False)
    recall = await data.recall()
    print(f"\nhard, never widening: recall@10 {recall:.3f}")
    assert recall < 0.97
