"""Concurrency: 1, 8, 32 and 128 concurrent owner-scoped searches through one pool (max 20).

Each benchmark round runs ``QUERIES_PER_ROUND`` lead-retrieval searches
(``vector_search.search_deal_embeddings``, threshold 0.3, limit 5) spread over all
qualifications of the data set, by ``concurrency`` tasks that share the pool. A query's
latency includes the wait for a pool connection. extra_info: throughput (queries/s over
all rounds), p50 and p99 of the per-query latency.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import Any

import numpy as np
import pytest

from benchmarks import datasets as ds
from benchmarks.conftest import POOL_MAX, OwnerData, Runner

CASE = "concurrency"
QUERIES_PER_ROUND = 128


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "concurrency" in metafunc.fixturenames:
        metafunc.parametrize("concurrency", ds.SCALES[metafunc.config.getoption("--scale")].concurrency)


def test_concurrent_owner_search(
    benchmark: Any, owner_data: OwnerData, runner: Runner, scale: ds.Scale, concurrency: int
) -> None:
    try:
        vs = importlib.import_module("dealhunter_vectors.vector_search")
    except ImportError:
        pytest.skip("dealhunter_vectors.vector_search has not landed yet")
    queries = ds.owner_queries_all(scale, QUERIES_PER_ROUND)
    latencies: list[float] = []
    wall: list[float] = []

    async def one(q_id: str, query: np.ndarray) -> None:
        t = time.perf_counter()
        await vs.search_deal_embeddings(owner_data.pool, query, qualification_id=q_id, threshold=0.3, limit=5)
        latencies.append(time.perf_counter() - t)

    async def round_() -> None:
        sem = asyncio.Semaphore(concurrency)

        async def guarded(q_id: str, query: np.ndarray) -> None:
            async with sem:
                await one(q_id, query)

        t = time.perf_counter()
        await asyncio.gather(*(guarded(q_id, q) for q_id, q in queries))
        wall.append(time.perf_counter() - t)

    runner.run(round_())  # warm-up (connections, caches)
    latencies.clear()
    wall.clear()
    benchmark.pedantic(lambda: runner.run(round_()), rounds=scale.concurrency_batches, iterations=1)
    lat = np.array(latencies)
    benchmark.extra_info.update(
        {
            "case": CASE,
            "role": f"c{concurrency}",
            "concurrency": concurrency,
            "pool_max": POOL_MAX,
            "queries": len(lat),
            "throughput_qps": len(lat) / sum(wall),
            "p50_ms": float(np.percentile(lat, 50)) * 1e3,
            "p99_ms": float(np.percentile(lat, 99)) * 1e3,
            "mean_ms": float(lat.mean()) * 1e3,
            "table_rows": owner_data.meta.get("rows"),
        }
    )
