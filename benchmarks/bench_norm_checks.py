"""What migration 008's norm checks cost: writes, and the duplicate search's norm test.

Run from the repository root (about two minutes on 2 cores)::

    .venv/bin/python -m benchmarks.bench_norm_checks [--rows 400] [--repeats 7] [--pre-qualifications 3000]

Uses ``DATABASE_URL`` when it names a server, else an embedded PostgreSQL in a temporary
directory. Prints the markdown tables of docs/benchmarks.md ("Norm checks"); every figure is a
ratio measured side by side in one run (the variants take turns, median of the repeats).

1. **Write cost of the check** on 3072-d rows: the same rows COPYed into three copies of
   ``deal_embeddings`` (generated columns included: the half copy and the text vector), without
   a check, with migration 008's ``CHECK (vector_norm(embedding) BETWEEN 1e-12 AND 1e15)``, and
   with the same test written in SQL over ``unnest(embedding::real[])`` in double precision (the
   alternative the check would have needed if ``vector_norm`` summed in float32).
2. **The duplicate search's norm test**: the exact scan and the index search of
   ``pre_qualifications`` as before migration 008 (no norm test) and as now (the norm of the rows
   within the distance, resp. of the index's candidates, each vector detoasted once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

import dealhunter_vectors as dv
from dealhunter_vectors.config import with_database
from dealhunter_vectors.db.codecs import Vector
from dealhunter_vectors.db.embedded import is_embedded_url, start_embedded, stop_embedded
from dealhunter_vectors.db.schema import create_vector_indexes, drop_vector_indexes
from dealhunter_vectors.search.global_search import PRE_QUALIFICATION_ANN_SQL, PRE_QUALIFICATION_EXACT_SQL

COPY_COLUMNS = ("id", "pre_qualification_id", "agent_name", "chunk_type", "content", "embedding")
CHECKS = {
    "no check": None,
    "vector_norm (migration 008)": "vector_norm(embedding) BETWEEN '1e-12'::float8 AND '1e15'::float8",
    "unnest, float8 in SQL": "bench_norm(embedding) BETWEEN '1e-12'::float8 AND '1e15'::float8",
}
BENCH_NORM = """
CREATE OR REPLACE FUNCTION bench_norm(v vector) RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT sqrt(sum(x::float8 * x::float8)) FROM unnest(v::real[]) AS u(x) $$
"""
"""A CHECK cannot hold a subquery: the SQL variant is an immutable SQL function."""
OLD_EXACT = """
SELECT s.id, s.distance
FROM (
    SELECT p.id, p.description_embedding <=> $1::vector AS distance
    FROM "pre_qualifications" p
    WHERE p.description_embedding IS NOT NULL AND p.extracted_requirements IS NOT NULL
      AND ($2::text IS NULL OR p.id <> $2::text)
    OFFSET 0
) s
WHERE s.distance <= $3
ORDER BY s.distance, s.id
LIMIT $4
"""
OLD_ANN = """
WITH cand AS MATERIALIZED (
    SELECT c.id, c.description_embedding <=> $1::vector AS distance
    FROM (
        SELECT p.id, p.description_embedding
        FROM "pre_qualifications" p
        WHERE p.description_embedding IS NOT NULL AND p.extracted_requirements IS NOT NULL
          AND ($2::text IS NULL OR p.id <> $2::text)
        ORDER BY (p.description_embedding)::halfvec(3072) <=> ($1::vector)::halfvec(3072)
        LIMIT $5
    ) c
)
SELECT s.id, s.distance, f.frontier, f.candidates
FROM (SELECT max(distance) FILTER (WHERE distance <> 'NaN'::float8) AS frontier, count(*) AS candidates FROM cand) f
LEFT JOIN LATERAL (SELECT id, distance FROM cand WHERE distance <= $3 ORDER BY distance, id LIMIT $4) s ON true
ORDER BY s.distance, s.id
"""


async def round_robin(cases: dict[str, Callable[[], Awaitable[Any]]], repeats: int) -> dict[str, float]:
    """Median seconds per case; the cases take turns (the machine's noise hits all of them)."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        await fn()
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            await fn()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in samples.items()}


async def write_costs(pool: dv.Pool, rows: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    vectors = [Vector(rng.standard_normal(3072).astype(np.float32)) for _ in range(rows)]
    async with pool.acquire() as conn:
        await conn.execute(BENCH_NORM)
        for n, check in enumerate(CHECKS.values()):
            table = f"bench_writes_{n}"
            await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            await conn.execute(
                f'CREATE TABLE "{table}" (LIKE "deal_embeddings" INCLUDING DEFAULTS INCLUDING GENERATED '
                "INCLUDING STORAGE)"
            )
            await conn.execute(f'ALTER TABLE "{table}" SET (toast_tuple_target = 8160)')
            if check is not None:
                await conn.execute(f'ALTER TABLE "{table}" ADD CHECK ({check})')

        def writer(n: int) -> Callable[[], Awaitable[Any]]:
            async def write() -> None:
                table = f"bench_writes_{n}"
                records = [(f"r{i}", "pq-base", "a", "text", "Inhalt", v) for i, v in enumerate(vectors)]
                async with conn.transaction():
                    await conn.copy_records_to_table(table, records=records, columns=COPY_COLUMNS)
                    raise _Rollback

            async def guarded() -> None:
                with contextlib.suppress(_Rollback):
                    await write()

            return guarded

        result = await round_robin({name: writer(n) for n, name in enumerate(CHECKS)}, repeats)
        for n in range(len(CHECKS)):
            await conn.execute(f'DROP TABLE "bench_writes_{n}"')
    return {name: seconds / rows * 1e6 for name, seconds in result.items()}  # us per row


class _Rollback(Exception):
    pass


async def search_costs(pool: dv.Pool, n: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(2)
    centers = rng.standard_normal((20, 3072))
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@x', 'x', 'U')")
        await drop_vector_indexes(conn)
        await conn.executemany(
            "INSERT INTO pre_qualifications (id, user_id, source, stage, input_type, raw_input, extracted_requirements,"
            " description_embedding) VALUES ($1, 'u', 'reactive', 'rfp', 'freetext', 't', '[]', $2)",
            [(f"pq{i:05d}", Vector((centers[i % 20] + 0.8 * rng.standard_normal(3072)).astype(np.float32)))
             for i in range(n)],
        )  # fmt: skip
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await create_vector_indexes(conn)
        await conn.execute("VACUUM ANALYZE pre_qualifications")
        queries = [Vector((centers[i % 20] + 0.9 * rng.standard_normal(3072)).astype(np.float32)) for i in range(20)]
        await conn.execute("SET hnsw.iterative_scan = relaxed_order")
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("SET hnsw.ef_search = 100")
        state = {"i": 0}

        def case(sql: str, *args: Any) -> Callable[[], Awaitable[Any]]:
            async def run() -> None:
                state["i"] += 1
                await conn.fetch(sql, queries[state["i"] % len(queries)], *args)

            return run

        # the duplicate check's defaults: 85 % (max distance 0.31), limit 18 (10 + 8 slack); exact "all"
        cases = {
            "exact, 85 %, before": case(OLD_EXACT, None, 0.31, None),
            "exact, 85 %, now": case(PRE_QUALIFICATION_EXACT_SQL, None, 0.31, None),
            "exact, every row, before": case(OLD_EXACT, None, 2.0, None),
            "exact, every row, now": case(PRE_QUALIFICATION_EXACT_SQL, None, 2.0, None),
            "index, 100 candidates, before": case(OLD_ANN, None, 0.31, 18, 100),
            "index, 100 candidates, now": case(PRE_QUALIFICATION_ANN_SQL, None, 0.31, 18, 100),
        }
        result = await round_robin(cases, repeats)
    return {name: seconds * 1e3 for name, seconds in result.items()}  # ms


def report(writes: dict[str, float], searches: dict[str, float], args: argparse.Namespace) -> None:
    base = writes["no check"]
    print(f"\nWrite cost, {args.rows} rows of 3072 dimensions per COPY, median of {args.repeats}:\n")
    print("| check | us per row | ratio |")
    print("|---|---:|---:|")
    for name, us in writes.items():
        print(f"| {name} | {us:.1f} | {us / base:.3f} |")
    n, r = args.pre_qualifications, args.repeats
    print(f"\nDuplicate search over {n} pre-qualifications, median of {r} rounds of 6 statements:\n")
    print("| statement | before (ms) | now (ms) | ratio |")
    print("|---|---:|---:|---:|")
    for label in ("exact, 85 %", "exact, every row", "index, 100 candidates"):
        before, now = searches[f"{label}, before"], searches[f"{label}, now"]
        print(f"| {label} | {before:.2f} | {now:.2f} | {now / before:.3f} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pre-qualifications", type=int, default=3000)
    args = parser.parse_args()
    env = os.environ.get("DATABASE_URL")
    data_dir = None
    if env and not is_embedded_url(env):
        url = env
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="dhv-bench-norms-"))
        url = start_embedded(data_dir / "pgdata").url
    try:
        admin = await asyncpg.connect(url)
        name = "dhv_bench_norms"
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
            pool = await dv.create_pool(with_database(url, name), min_size=1, max_size=2, command_timeout=None)
            try:
                await dv.apply_schema(pool)
                writes = await write_costs(pool, args.rows, args.repeats)
                searches = await search_costs(pool, args.pre_qualifications, args.repeats)
            finally:
                await dv.close_pool(pool)
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        report(writes, searches, args)
    finally:
        if data_dir is not None:
            stop_embedded(data_dir / "pgdata")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
