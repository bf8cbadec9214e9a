"""Issue 22: where the owner-scoped search's time goes, step by step, against numpy (one hot owner).

Run after ``benchmarks.bench_owners`` built its database (same embedded server)::

    nice -n 5 python -m benchmarks.bench_owner_floor [--rounds 300] [--owner 0]

Paths, interleaved in one loop on the same query (round r: every path once, shuffled):

* ``numpy``: the owner's float32 matrix and norms precomputed in memory (the reference);
* ``library``: ``search_deal_embeddings`` through a pool (validation, statement, result objects);
* ``statement``: the library's own statement and arguments on a held connection (asyncpg's
  prepared statement, the library's session settings);
* ``statement_generic``: the same under ``plan_cache_mode = force_generic_plan`` (planning once);
* ``half_scan``: ``max(embedding_half <=> q)`` over the owner's rows (the first pass alone:
  bitmap heap scan of the interleaved table + the halfvec kernel);
* ``narrow_interleaved`` / ``narrow_clustered``: the same over a side table holding only
  (owner, id, half), rows in the original (interleaved) order / ordered by owner;
* ``kernel_seqscan``: the same over a table holding only this owner's half copies (hot
  sequential scan: page access + kernel, no index);
* ``select_1``: one round trip.

Each path reports wall time and CPU time per call (this process + the server backend it uses,
``benchmarks/cpu_interleave.py``): on a shared machine the CPU time is the robust measure.
Also printed: ``EXPLAIN (ANALYZE, BUFFERS)`` of the statement (planning and execution time, the
time of each step) and the cost of one cold search after a restart with and without a warm-up
query (the embedded server has no ``pg_prewarm``). The side tables live in a schema ``floor``
of the benchmark database. Output: markdown on stdout, ``.benchmarks/runs/bench_owner_floor.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import asyncio
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np

import dealhunter_vectors as dv
from benchmarks import bench_owners as bo
from benchmarks import datasets as ds
from benchmarks.cpu_interleave import backend_pids, interleave_cpu
from benchmarks.perf_side_by_side import LIMIT, THRESHOLD, exact64, half_copy, library_args, numpy_top, same
from dealhunter_vectors.db.embedded import start_embedded, stop_embedded
from dealhunter_vectors.db.pool import register_vector_codecs
from dealhunter_vectors.testing import with_database

OUT = bo.REPO_ROOT / ".benchmarks" / "runs" / "bench_owner_floor.json"

_SIDE_TABLES = """
CREATE SCHEMA IF NOT EXISTS floor;
DROP TABLE IF EXISTS floor.narrow_interleaved, floor.narrow_clustered, floor.one_owner;
CREATE TABLE floor.narrow_interleaved (qualification_id text, id text, embedding_half halfvec(3072));
ALTER TABLE floor.narrow_interleaved ALTER COLUMN embedding_half SET STORAGE MAIN;
CREATE TABLE floor.narrow_clustered (LIKE floor.narrow_interleaved INCLUDING ALL);
CREATE TABLE floor.one_owner (LIKE floor.narrow_interleaved INCLUDING ALL);
INSERT INTO floor.narrow_interleaved
    SELECT qualification_id, id, embedding_half FROM deal_embeddings WHERE embedding_half IS NOT NULL ORDER BY ctid;
INSERT INTO floor.narrow_clustered SELECT * FROM floor.narrow_interleaved ORDER BY qualification_id, id;
INSERT INTO floor.one_owner SELECT * FROM floor.narrow_interleaved WHERE qualification_id = $owner$;
CREATE INDEX ON floor.narrow_interleaved (qualification_id);
CREATE INDEX ON floor.narrow_clustered (qualification_id);
VACUUM ANALYZE floor.narrow_interleaved;
VACUUM ANALYZE floor.narrow_clustered;
VACUUM ANALYZE floor.one_owner;
"""

_HALF_SCAN = 'SELECT max("embedding_half" <=> $1::halfvec) FROM {table} WHERE "qualification_id" = $2'
_KERNEL = 'SELECT max("embedding_half" <=> $1::halfvec) FROM floor.one_owner'


async def ensure_side_tables(conn: asyncpg.Connection, owner: str) -> None:
    done = await conn.fetchval("SELECT to_regclass('floor.one_owner') IS NOT NULL") and await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM floor.one_owner WHERE qualification_id = $1)", owner
    )
    if not done:
        script = _SIDE_TABLES.replace("$owner$", "'" + owner.replace("'", "''") + "'")
        for statement in filter(None, (s.strip() for s in script.split(";"))):
            await conn.execute(statement)  # one by one: VACUUM cannot run in the implicit transaction


def step_times(plan: dict[str, Any]) -> dict[str, float]:
    """Planning, execution, and the inclusive time of the statement's main steps (ms)."""
    out = {"planning_ms": plan["Planning Time"], "execution_ms": plan["Execution Time"]}

    def walk(node: dict[str, Any]) -> None:
        kind = node["Node Type"]
        if kind in ("Bitmap Heap Scan", "Index Scan") and node.get("Relation Name") == "deal_embeddings":
            key = "first_pass_scan_ms" if kind == "Bitmap Heap Scan" else "result_rows_fetch_ms"
            out[key] = out.get(key, 0.0) + node["Actual Total Time"] * node["Actual Loops"]
        if node.get("Subplan Name") == "CTE scored":
            out["scored_cte_ms"] = node["Actual Total Time"]
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return out


async def cold_search(server: Any, database: str, owner: str, q: Any, warm_sql: str | None) -> float:
    """One library search on a new connection right after a restart (empty buffer pool), after
    *warm_sql* ran on another connection if given (ms). Per-backend start-up costs (catalog caches,
    mapping shared memory) are the same in both cases; only the shared buffers differ."""
    server.restart()
    url = with_database(server.url, database)
    if warm_sql:
        warm = await asyncpg.connect(url)
        try:
            await warm.execute(warm_sql)
        finally:
            await warm.close()
    conn = await asyncpg.connect(url)
    try:
        await register_vector_codecs(conn)
        await conn.fetchval("SELECT count(*) FROM pg_class")  # the backend's own catalog warm-up
        t = time.perf_counter()
        await dv.search_deal_embeddings(conn, q, qualification_id=owner, threshold=THRESHOLD, limit=LIMIT)
        return (time.perf_counter() - t) * 1e3
    finally:
        await conn.close()


# A bitmap heap scan reads through shared buffers without a ring buffer (a sequential scan of a
# table larger than a quarter of shared_buffers would recycle 256 kB), so it loads every page.
WARM_SQL = (
    "SET enable_seqscan = off; SET enable_indexscan = off;"
    " SELECT count(*) FROM deal_embeddings WHERE qualification_id IS NOT NULL; RESET ALL"
)


async def main(args: argparse.Namespace) -> None:
    server = start_embedded(bo.PGDATA)
    name = bo.database_name(args.owners, args.chunks)
    db_url = with_database(server.url, name)
    data = bo.OwnerData(args.owners, args.chunks)
    o = args.owner
    owner = ds.qualification_id(o)
    matrix, ids = data.matrix[o], data.ids[o]
    norms = np.linalg.norm(matrix, axis=1).astype(np.float32)
    queries = data.queries[o]
    pool = await dv.create_pool(db_url, min_size=1, max_size=1)
    held = await conn_with(db_url, {})  # the library's session settings (jit off)
    generic = await conn_with(db_url, {"plan_cache_mode": "force_generic_plan"})
    try:
        await ensure_side_tables(held, owner)
        for q in queries:  # every path answers the same: library and statements against numpy float64
            ref = exact64(matrix, q, ids)
            hits = await dv.search_deal_embeddings(pool, q, qualification_id=owner, threshold=THRESHOLD, limit=LIMIT)
            same(ref, [(h.chunk_id, float(h.similarity or 0)) for h in hits], "library")
            sql, a = library_args(q, owner)
            for c, what in ((held, "statement"), (generic, "generic")):
                same(ref, [(r["id"], 1 - r["distance"]) for r in await c.fetch(sql, *a)], what)
            same(ref, numpy_top(matrix, norms, q, ids), "numpy")
        n_q = len(queries)
        halves = [half_copy(q) for q in queries]

        def scan(c: asyncpg.Connection, sql: str, with_owner: bool = True) -> Any:
            async def path(i: int) -> Any:
                extra = (owner,) if with_owner else ()
                return await c.fetchval(sql, halves[i % n_q], *extra)

            return path

        async def library(i: int) -> Any:
            q = queries[i % n_q]
            return await dv.search_deal_embeddings(pool, q, qualification_id=owner, threshold=THRESHOLD, limit=LIMIT)

        def statement(c: asyncpg.Connection) -> Any:
            async def path(i: int) -> Any:
                sql, a = library_args(queries[i % n_q], owner)
                return await c.fetch(sql, *a)

            return path

        async def numpy_path(i: int) -> Any:
            return numpy_top(matrix, norms, queries[i % n_q], ids)

        async def select_1(i: int) -> Any:
            return await held.fetchval("SELECT 1")

        pool_pids, held_pid, generic_pid = (
            await backend_pids(pool),
            await backend_pids(held),
            await backend_pids(generic),
        )
        paths = {
            "numpy": (numpy_path, []),
            "library": (library, pool_pids),
            "statement": (statement(held), held_pid),
            "statement_generic": (statement(generic), generic_pid),
            "half_scan": (scan(held, _HALF_SCAN.format(table='"deal_embeddings"')), held_pid),
            "narrow_interleaved": (scan(held, _HALF_SCAN.format(table="floor.narrow_interleaved")), held_pid),
            "narrow_clustered": (scan(held, _HALF_SCAN.format(table="floor.narrow_clustered")), held_pid),
            "kernel_seqscan": (scan(held, _KERNEL, with_owner=False), held_pid),
            "select_1": (select_1, held_pid),
        }
        res = await interleave_cpu(paths, args.rounds, 10)
        for p in res.values():
            p["vs_numpy"] = p["p50_ms"] / res["numpy"]["p50_ms"]
            p["cpu_vs_numpy"] = p["cpu_ms"] / res["numpy"]["cpu_ms"]
        # the same paths back to back (each 60 calls in a row: CPU caches hold the owner's pages)
        b2b = {name: (await interleave_cpu({name: path}, 60, 10))[name] for name, path in paths.items()}
        for p in b2b.values():
            p["vs_numpy"] = p["p50_ms"] / b2b["numpy"]["p50_ms"]
        steps = []
        for q in queries * 3:
            sql, a = library_args(q, owner)
            plan = json.loads(await held.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *a))[0]
            steps.append(step_times(plan))
        gplan = json.loads(await generic.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *a))[0]
        step_med = {k: statistics.median(s[k] for s in steps if k in s) for k in steps[0]}
        text_plan = "\n".join(r[0] for r in await held.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *a))
        rows_scanned = await held.fetchval(
            'SELECT count(*) FROM "deal_embeddings" WHERE "qualification_id" = $1 AND "embedding" IS NOT NULL', owner
        )
    finally:
        await generic.close()
        await held.close()
        await dv.close_pool(pool)
    cold = {}
    if not args.no_restart:
        cold["cold_no_warmup_ms"] = await cold_search(server, name, owner, queries[0], None)
        cold["cold_after_warm_query_ms"] = await cold_search(server, name, owner, queries[0], WARM_SQL)
    stop_embedded(bo.PGDATA)
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "owner_rows": int(rows_scanned),
        "paths": res,
        "back_to_back": b2b,
        "statement_steps_ms": step_med,
        "generic_plan_execution_ms": gplan["Execution Time"],
        "cold": cold,
        "plan": text_plan,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2))
    print(report(out))


async def conn_with(url: str, settings: dict[str, str]) -> asyncpg.Connection:
    conn = await asyncpg.connect(url, server_settings={"jit": "off", **settings})
    await register_vector_codecs(conn)
    return conn


def report(out: dict[str, Any]) -> str:
    rows = out["owner_rows"]
    lines = [
        f"one hot owner, {rows} rows with an embedding, {out['machine']}; paths interleaved:",
        "",
        "| path | wall p50 | vs numpy | CPU per call (client + server) | CPU vs numpy | CPU ns per dim and row |",
        "|---|---|---|---|---|---|",
    ]
    for name, p in out["paths"].items():
        per_dim = p["cpu_ms"] * 1e6 / (rows * ds.DIMS)
        server = p["server_cpu_ms"] if p["server_cpu_ms"] is not None else float("nan")
        lines.append(
            f"| {name} | {p['p50_ms']:.3f} ms | {p['vs_numpy']:.2f}x | {p['cpu_ms']:.3f} ms "
            f"({p['client_cpu_ms']:.3f} + {server:.3f}) | {p['cpu_vs_numpy']:.2f}x | {per_dim:.3f} |"
        )
    lines += ["", "back to back (60 calls of one path in a row), wall p50 / CPU per call, vs numpy:", ""]
    lines += [
        f"- {name}: {p['p50_ms']:.3f} / {p['cpu_ms']:.3f} ms, {p['vs_numpy']:.2f}x"
        for name, p in out["back_to_back"].items()
    ]
    lines += ["", "(EXPLAIN plans a custom plan every time; the prepared statement switches to a cached generic",
              "plan after 5 calls, so the planning time below is not paid per search)"]  # fmt: skip
    lines += ["", "statement steps (EXPLAIN ANALYZE, median): " + ", ".join(
        f"{k} {v:.3f}" for k, v in out["statement_steps_ms"].items())]  # fmt: skip
    lines.append(f"generic plan execution: {out['generic_plan_execution_ms']:.3f} ms")
    if out["cold"]:
        lines.append("cold start: " + ", ".join(f"{k} {v:.2f}" for k, v in out["cold"].items()))
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--owner", type=int, default=0)
    ap.add_argument("--owners", type=int, default=bo.OWNERS)
    ap.add_argument("--chunks", type=int, default=bo.CHUNKS)
    ap.add_argument("--no-restart", action="store_true", help="skip the cold-start measurement")
    return ap.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
