"""HNSW halfvec index build time per 10k rows, and the settings it was built with.

The index is the library's (migration 002): ``hnsw ((embedding)::halfvec(3072)
halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)``, built on a 10k-row copy of the
global data set. Variants measured: maintenance_work_mem (server default 64 MB, where the
graph does not fit and pgvector falls back to on-disk insertion, vs 2 GB) and parallel
maintenance workers (0 vs 1 worker + the leader = both cores).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from benchmarks import datasets as ds
from benchmarks.conftest import GlobalSets, Runner

CASE = "index_build"
TABLE = "bench_index_build"

SETUP_SQL = (
    f'CREATE TABLE IF NOT EXISTS "{TABLE}" ("id" text PRIMARY KEY, "embedding" vector(3072))',
    f'TRUNCATE "{TABLE}"',
    f'INSERT INTO "{TABLE}" SELECT "id", "description_embedding" FROM "pre_qualifications" ORDER BY "id" LIMIT $1',
    f'VACUUM (ANALYZE) "{TABLE}"',
)
INDEX_SQL = (
    f'CREATE INDEX "{TABLE}_hnsw_idx" ON "{TABLE}" USING hnsw (("embedding"::halfvec(3072)) halfvec_cosine_ops)'
    f" WITH (m = {ds.HNSW_M}, ef_construction = {ds.HNSW_EF_CONSTRUCTION})"
)
VARIANTS = {
    "mwm2GB_workers1": {"maintenance_work_mem": "2GB", "max_parallel_maintenance_workers": "1"},
    "mwm2GB_workers0": {"maintenance_work_mem": "2GB", "max_parallel_maintenance_workers": "0"},
    "mwm64MB_workers1": {"maintenance_work_mem": "64MB", "max_parallel_maintenance_workers": "1"},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_hnsw_build(benchmark: Any, global_sets: GlobalSets, runner: Runner, scale: ds.Scale, variant: str) -> None:
    data = global_sets.get(max(r for r in scale.global_rows if r >= scale.index_build_rows))
    rows = scale.index_build_rows
    settings = VARIANTS[variant]

    async def prepare() -> None:
        async with data.pool.acquire() as conn:
            if (
                await conn.fetchval(f"SELECT count(*) FROM pg_class WHERE relname = '{TABLE}'")
                and await conn.fetchval(f'SELECT count(*) FROM "{TABLE}"') == rows
            ):
                return
            for sql in SETUP_SQL:
                await (conn.execute(sql, rows) if "$1" in sql else conn.execute(sql))

    runner.run(prepare())
    timings: list[float] = []

    async def build() -> None:
        async with data.pool.acquire() as conn:
            await conn.execute(f'DROP INDEX IF EXISTS "{TABLE}_hnsw_idx"')
            for name, value in settings.items():
                await conn.execute("SELECT set_config($1, $2, false)", name, value)
            t = time.perf_counter()
            await conn.execute(INDEX_SQL, timeout=3600)
            timings.append(time.perf_counter() - t)
            await conn.execute("RESET ALL")

    benchmark.pedantic(lambda: runner.run(build()), rounds=1, iterations=1)
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "case": CASE,
            "role": variant,
            "rows": rows,
            "seconds_per_10k_rows": seconds * 10_000 / rows,
            "m": ds.HNSW_M,
            "ef_construction": ds.HNSW_EF_CONSTRUCTION,
            **settings,
            "p50_ms": seconds * 1e3,
        }
    )
