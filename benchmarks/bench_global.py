"""Global search (the duplicate check): HNSW halfvec vs exact pgvector scan vs numpy brute force.

For each table size of the scale (1k, 10k and, at ``--scale full``, 100k pre-qualifications)
a query list of near-duplicates is searched for the top 10:

* ``ours``: ``vector_search.find_similar_pre_qualifications(limit=10, min_similarity_percent=0)``
  (halfvec HNSW candidates, iterative scan, exact re-rank by the full vector);
* ``hnsw_ef<N>``: the same statement written here with ``hnsw.ef_search`` swept, so the
  recall/latency trade-off of the index is visible (candidates = ef_search), with
  ``enable_seqscan=off`` and ``plan_cache_mode=force_custom_plan`` (see SWEEP_SETTINGS);
* ``exact_sql``: exact pgvector scan of the full-precision column (parallel seq scan);
* ``numpy``: brute force over an in-memory float32 matrix (norms precomputed);
* ``old_path``: the old app's duplicate step (every row loaded from SQLite, JSON-parsed,
  scored in a Python loop) on the sizes where it finishes in reasonable time.

recall@10 is measured against the exact float64 top 10 (``datasets.exact_top_k``) over all
queries of the list, before timing, and stored in the benchmark's extra_info.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

from benchmarks import datasets as ds
from benchmarks.conftest import Cycle, GlobalData, GlobalSets, Runner, record
from benchmarks.legacy_paths import NumpyBruteForce, old_duplicate_check
from dealhunter_vectors.db.pool import transaction_settings

CASE = "global"
K = 10
EF_SWEEP = (40, 100, 200, 400)

EXACT_GLOBAL_SQL = """
SELECT p."id"
FROM "pre_qualifications" p
WHERE p."description_embedding" IS NOT NULL AND p."extracted_requirements" IS NOT NULL
ORDER BY p."description_embedding" <=> $1, p."id"
LIMIT $2
"""

# The same shape as vector_search's ANN statement: halfvec HNSW candidates, exact re-rank.
HNSW_GLOBAL_SQL = """
SELECT c."id"
FROM (
    SELECT p."id", p."description_embedding"
    FROM "pre_qualifications" p
    WHERE p."description_embedding" IS NOT NULL AND p."extracted_requirements" IS NOT NULL
    ORDER BY (p."description_embedding")::halfvec(3072) <=> ($1)::halfvec(3072)
    LIMIT $3
) c
ORDER BY c."description_embedding" <=> $1, c."id"
LIMIT $2
"""


def _sizes(scale_name: str) -> tuple[int, ...]:
    return ds.SCALES[scale_name].global_rows


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rows" in metafunc.fixturenames:
        sizes = _sizes(metafunc.config.getoption("--scale"))
        if metafunc.function.__name__ == "test_global_old_path":
            sizes = ds.SCALES[metafunc.config.getoption("--scale")].legacy_global_rows
        metafunc.parametrize("rows", sizes)


def _vector_search() -> Any:
    try:
        return importlib.import_module("dealhunter_vectors.vector_search")
    except ImportError:
        return None


def recall(found: list[list[str]], data: GlobalData) -> float:
    hits = 0
    for got, truth in zip(found, data.truth, strict=True):
        hits += len(set(got[:K]) & set(data.ids(truth)))
    return hits / (K * len(found))


# Planner settings of the sweep: without them PostgreSQL picks a seq scan (casting every row to
# halfvec) for small tables or large LIMITs, and asyncpg's prepared statements switch to a
# generic plan after 5 runs; measured separately as ours (library defaults) vs hnsw_ef100.
SWEEP_SETTINGS = {"enable_seqscan": "off", "plan_cache_mode": "force_custom_plan"}


async def hnsw_sql(data: GlobalData, query: np.ndarray, ef_search: int) -> list[str]:
    settings: dict[str, str | int] = {"hnsw.ef_search": ef_search, "hnsw.iterative_scan": "relaxed_order"}
    settings.update(SWEEP_SETTINGS)
    async with transaction_settings(data.pool, settings) as conn:
        rows = await conn.fetch(HNSW_GLOBAL_SQL, query, K, ef_search)
    return [r["id"] for r in rows]


async def exact_sql(data: GlobalData, query: np.ndarray) -> list[str]:
    return [r["id"] for r in await data.pool.fetch(EXACT_GLOBAL_SQL, query, K)]


async def ours(data: GlobalData, query: np.ndarray) -> list[str]:
    vs = _vector_search()
    hits = await vs.find_similar_pre_qualifications(data.pool, query, min_similarity_percent=0, limit=K)
    return [h.pre_qualification_id for h in hits]


def _index_info(data: GlobalData) -> dict[str, Any]:
    return {
        "table_rows": data.rows,
        "m": ds.HNSW_M,
        "ef_construction": ds.HNSW_EF_CONSTRUCTION,
        "hnsw_build_seconds": data.meta.get("hnsw_build_seconds"),
    }


def test_global_ours(benchmark: Any, global_sets: GlobalSets, runner: Runner, scale: ds.Scale, rows: int) -> None:
    if _vector_search() is None:
        pytest.skip("dealhunter_vectors.vector_search has not landed yet")
    data = global_sets.get(rows)
    rec = recall([runner.run(ours(data, q)) for q in data.queries], data)
    cycle = Cycle(list(data.queries))
    benchmark.pedantic(
        lambda: runner.run(ours(data, cycle.next())), rounds=scale.search_rounds, iterations=1, warmup_rounds=5
    )
    record(benchmark, case=CASE, role="ours", rows=rows, recall_at_10=rec, **_index_info(data))


@pytest.mark.parametrize("ef_search", EF_SWEEP)
def test_global_hnsw(
    benchmark: Any, global_sets: GlobalSets, runner: Runner, scale: ds.Scale, rows: int, ef_search: int
) -> None:
    data = global_sets.get(rows)
    rec = recall([runner.run(hnsw_sql(data, q, ef_search)) for q in data.queries], data)
    cycle = Cycle(list(data.queries))
    benchmark.pedantic(
        lambda: runner.run(hnsw_sql(data, cycle.next(), ef_search)),
        rounds=scale.search_rounds,
        iterations=1,
        warmup_rounds=5,
    )
    record(
        benchmark,
        case=CASE,
        role=f"hnsw_ef{ef_search}",
        rows=rows,
        ef_search=ef_search,
        recall_at_10=rec,
        **_index_info(data),
    )


def test_global_exact_sql(benchmark: Any, global_sets: GlobalSets, runner: Runner, scale: ds.Scale, rows: int) -> None:
    data = global_sets.get(rows)
    rec = recall([runner.run(exact_sql(data, q)) for q in data.queries[:5]], _first(data, 5))
    cycle = Cycle(list(data.queries))
    rounds = scale.search_rounds if rows <= 10_000 else max(scale.slow_rounds, 20)
    benchmark.pedantic(lambda: runner.run(exact_sql(data, cycle.next())), rounds=rounds, iterations=1, warmup_rounds=2)
    record(benchmark, case=CASE, role="exact_sql", rows=rows, recall_at_10=rec, table_rows=rows)


def test_global_numpy(benchmark: Any, global_sets: GlobalSets, scale: ds.Scale, rows: int) -> None:
    data = global_sets.get(rows)
    brute = NumpyBruteForce(data.vectors)
    found = [data.ids(brute.top_k(q, K)[0]) for q in data.queries]
    rec = recall(found, data)
    cycle = Cycle(list(data.queries))
    rounds = scale.search_rounds if rows <= 10_000 else max(scale.slow_rounds, 30)
    benchmark.pedantic(lambda: brute.top_k(cycle.next(), K), rounds=rounds, iterations=1, warmup_rounds=2)
    record(
        benchmark,
        case=CASE,
        role="numpy",
        rows=rows,
        recall_at_10=rec,
        table_rows=rows,
        matrix_mb=round(data.vectors.nbytes / 2**20, 1),
    )


def test_global_old_path(benchmark: Any, global_sets: GlobalSets, scale: ds.Scale, data_dir: Any, rows: int) -> None:
    data = global_sets.get(rows)
    name = f"global_{ds.fingerprint('global-legacy', rows)}.sqlite"
    path = ds.build_global_legacy_file(data.vectors, data_dir / name)
    cycle = Cycle(list(data.queries))
    benchmark.pedantic(
        lambda: old_duplicate_check(path, cycle.next()),
        rounds=scale.slow_rounds,
        iterations=1,
        warmup_rounds=1 if rows <= 1000 else 0,
    )
    record(benchmark, case=CASE, role="old_path", rows=rows, table_rows=rows)


def _first(data: GlobalData, n: int) -> GlobalData:
    return GlobalData(data.rows, data.url, data.pool, data.vectors, data.queries[:n], data.truth[:n], data.meta)
