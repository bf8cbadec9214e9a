"""Where migration 010's function spends its time against the bare statement (issue 22).

Run (the ``concurrency_global`` part of ``perf_side_by_side`` builds the data set first)::

    python -m benchmarks.bench_global_function --rounds 400

On one held connection whose session has the index settings, interleaved per round in a
shuffled order, the same query each: ``bare`` (the raw HNSW statement at ``ef_search`` 64,
exact re-rank), ``function`` (the library's first statement: migration 010's function as
migration 012 leaves it, 64 candidates; the schema is applied first), ``body`` (the function's
statement sent as plain SQL: no plpgsql, no ``set_config``, the prepared statement's plan),
``body_no_spread`` (without the spread column) and ``body_avg_spread`` (the spread as
migration 010 computed it: ``avg``). Prints p50 per path after 50 warm-up rounds, and checks
that the variants return the function's rows.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from benchmarks.perf_side_by_side import RAW_ANN_SQL, bench_set, benchmark_server
from dealhunter_vectors.db.pool import register_vector_codecs
from dealhunter_vectors.db.schema import apply_schema
from dealhunter_vectors.search import global_search as gs
from dealhunter_vectors.search.statements import DUPLICATE_CANDIDATES
from dealhunter_vectors.testing import with_database

START = gs.ANN_START_CANDIDATES
SPREAD = "vector_norm(sum(l2_normalize(t.e))) / count(*)"
BODY = f"""
WITH cand AS MATERIALIZED (
    SELECT k.id, k.description_embedding AS e, k.description_embedding <=> $1 AS distance
    FROM (
        SELECT p.id, p.description_embedding FROM "pre_qualifications" p
        WHERE p.description_embedding IS NOT NULL AND p.extracted_requirements IS NOT NULL
          AND ($2::text IS NULL OR p.id <> $2::text)
        ORDER BY (p.description_embedding)::halfvec(3072) <=> ($1::vector)::halfvec(3072)
        LIMIT $4
    ) k
), f AS (
    SELECT max(cand.distance) FILTER (WHERE cand.distance <> 'NaN'::float8) AS frontier, count(*) AS candidates
    FROM cand
), s AS MATERIALIZED (
    SELECT cand.id, cand.e, cand.distance FROM cand WHERE cand.distance <= $3 ORDER BY cand.distance, cand.id LIMIT 18
), spread AS (
    SELECT CASE WHEN count(*) >= 2 THEN {SPREAD} END AS centre_norm
    FROM (SELECT s.e FROM s ORDER BY s.distance, s.id LIMIT 10) t
)
SELECT s.id, s.distance, f.frontier, f.candidates, spread.centre_norm
FROM f CROSS JOIN spread LEFT JOIN s ON true ORDER BY s.distance, s.id
"""


async def main(args: argparse.Namespace) -> None:
    url, _ = benchmark_server()
    settings = {"jit": "off", "hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": str(START)}
    conn = await asyncpg.connect(with_database(url, f"dhv_perf_global_bench_{args.rows}"), server_settings=settings)
    await register_vector_codecs(conn)
    await apply_schema(conn)  # the function as this version of the library installs it
    _, queries = bench_set(args.rows)
    far = 2.0 + 1e-9
    paths: dict[str, Callable[[Any], Awaitable[list[asyncpg.Record]]]] = {
        "bare": lambda q: conn.fetch(RAW_ANN_SQL, q, START),
        "function": lambda q: conn.fetch(
            DUPLICATE_CANDIDATES.single,
            q,
            None,
            far,
            18,
            START,
            gs.ANN_GROWTH,
            gs.ANN_MAX_EF_SEARCH,
            gs.ANN_MAX_SCAN_TUPLES,
            10,
        ),
        "body": lambda q: conn.fetch(BODY, q, None, far, START),
        "body_no_spread": lambda q: conn.fetch(BODY.replace(SPREAD, "0.0::float8"), q, None, far, START),
        "body_avg_spread": lambda q: conn.fetch(
            BODY.replace(SPREAD, "vector_norm(avg(l2_normalize(t.e)))"), q, None, far, START
        ),
    }
    try:
        for q in queries:  # every variant returns the function's rows (the spread within float32 rounding)
            want = await paths["function"](q)
            for name in ("body", "body_avg_spread"):
                got = await paths[name](q)
                assert [r["id"] for r in got] == [r["id"] for r in want], name
                assert abs(got[0]["centre_norm"] - want[0]["centre_norm"]) < 1e-5, name
        times: dict[str, list[float]] = {name: [] for name in paths}
        names = list(paths)
        rng = random.Random(22)
        for r in range(50 + args.rounds):
            rng.shuffle(names)
            for name in names:
                t0 = time.perf_counter()
                await paths[name](queries[r % len(queries)])
                if r >= 50:
                    times[name].append(time.perf_counter() - t0)
        for name, values in times.items():
            print(f"{name:16s} p50 {statistics.median(values) * 1e3:.3f} ms")
    finally:
        await conn.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=400)
    asyncio.run(main(ap.parse_args()))
