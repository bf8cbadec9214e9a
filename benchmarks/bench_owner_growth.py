"""Issue 22: how the owner-scoped search's cost grows with the owner's size, exact scan vs an HNSW path.

Run (embedded server in ``.benchmarks/pgdata_owners``; data and index built once, kept)::

    nice -n 5 python -m benchmarks.bench_owner_growth [--sizes 100,1000,10000,100000] [--rounds 15]

Data: one ``deal_embeddings`` table holding one qualification per size (100 / 1k / 10k / 100k rows
by default, the benchmark's clustered 3072-d vectors: 70 % of an owner's rows from its topic
cluster), loaded by binary COPY, plus an HNSW index on the half-precision embedding over the whole
table (migration 003's definition, m = 32, ef_construction = 128: the index migration 006 dropped).

Paths per size, interleaved (round r: every path once, shuffled), lead defaults (similarity > 0.3,
top 5), queries at cosine 0.8 to the owner's topic (20 timed; recall over 200, 1,000 expected hits):

* ``exact``: ``search_deal_embeddings`` (the library's exact half scan + exact re-rank);
* ``numpy``: the owner's float32 matrix and norms in memory;
* ``hnsw_efN``: ``hnsw.iterative_scan = relaxed_order``, ``hnsw.ef_search = min(N, 1000)``, N candidates
  of the owner's rows in index order (the owner filter written so the btree cannot serve it),
  re-ranked by the exact float32 distance. Recall@5 against numpy float64 over all queries.

Each cell: wall p50 and CPU per call (client + server backend, ``benchmarks/cpu_interleave.py``).
Output: markdown on stdout, ``.benchmarks/runs/bench_owner_growth.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import asyncio
import functools
import json
import platform
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
from numpy.typing import NDArray

import dealhunter_vectors as dv
from benchmarks import bench_owners as bo
from benchmarks import datasets as ds
from benchmarks.cpu_interleave import backend_pids, interleave_cpu
from benchmarks.perf_side_by_side import DEAL_HNSW_SQL, LIMIT, THRESHOLD, exact64, numpy_top
from dealhunter_vectors.db.embedded import start_embedded, stop_embedded
from dealhunter_vectors.db.pool import register_vector_codecs
from dealhunter_vectors.legacy.synthetic import query_with_cosine
from dealhunter_vectors.testing import with_database

OUT = bo.REPO_ROOT / ".benchmarks" / "runs" / "bench_owner_growth.json"
QUERIES = 20  # timed
RECALL_QUERIES = 200  # recall@5 over 1,000 expected hits (the exact path: over the timed queries)
EFS = [40, 100, 200, 400]
BLOCK = 5000

# N candidates of the owner's rows in HNSW order ("|| ''": the btree on qualification_id cannot
# serve the predicate, so the plan is the graph scan with the owner as a filter), exact re-rank.
HNSW_SQL = """
SELECT s.id, s.distance FROM (
    SELECT c.id, c.embedding <=> $1::vector AS distance
    FROM (
        SELECT d.id, d.embedding FROM "deal_embeddings" d
        WHERE (d."qualification_id" || '') = $2 AND d.embedding IS NOT NULL
        ORDER BY (d.embedding)::halfvec(3072) <=> ($1::vector)::halfvec(3072)
        LIMIT $3
    ) c OFFSET 0
) s
WHERE s.distance < $4::float8
ORDER BY s.distance, s.id
LIMIT $5
"""


def owner_id(size: int) -> str:
    return f"gq{size}"


def owner_primary(size: int) -> int:
    return int(ds._rng(22, 300, size).integers(0, ds.N_CLUSTERS))


def owner_block(size: int, lo: int, space: Any) -> tuple[list[str], NDArray[np.float32]]:
    """Rows lo..lo+BLOCK of the owner of *size* rows: ids and vectors (deterministic)."""
    n = min(BLOCK, size - lo)
    rng = ds._rng(22, 301, size, lo)
    labels = np.where(rng.random(n) < 0.7, owner_primary(size), rng.integers(0, ds.N_CLUSTERS, size=n))
    return [f"g{size}c{lo + k:06d}" for k in range(n)], space.sample(labels, seed=(22, size, lo))


def owner_matrix(size: int, space: Any) -> tuple[list[str], NDArray[np.float32]]:
    ids: list[str] = []
    blocks = []
    for lo in range(0, size, BLOCK):
        i, v = owner_block(size, lo, space)
        ids += i
        blocks.append(v)
    return ids, np.ascontiguousarray(np.concatenate(blocks))


async def build(conn: asyncpg.Connection, sizes: list[int]) -> dict[str, Any]:
    meta = await ds.get_meta(conn)
    if not meta.get("loaded"):
        await dv.apply_schema(conn)
        await conn.execute(
            "TRUNCATE deal_embeddings, qualifications, pre_qualifications, users, business_units CASCADE"
        )
        await ds._parents(conn)
        space = ds.owner_space()
        t = time.perf_counter()
        for size in sizes:
            pq = f"gp{size}"
            await conn.copy_records_to_table(
                "pre_qualifications", records=[ds._pq_record(pq, ds._T0, None)], columns=ds._PQ_COLUMNS
            )
            await conn.execute(
                'INSERT INTO "qualifications" (id, pre_qualification_id, status, customer_name, business_unit_id,'
                " more_info_requested, deep_scan_status, created_at, updated_at)"
                " VALUES ($1, $2, 'routed', 'Kunde', 'bbu0', false, 'pending', now(), now())",
                owner_id(size),
                pq,
            )
            for lo in range(0, size, BLOCK):
                ids, vectors = owner_block(size, lo, space)
                await conn.copy_records_to_table(
                    "deal_embeddings",
                    records=[
                        (i, owner_id(size), "tech-expert", "analysis", f"chunk {i}", v)
                        for i, v in zip(ids, vectors, strict=True)
                    ],
                    columns=["id", "qualification_id", "agent_name", "chunk_type", "content", "embedding"],
                )
            print(f"  loaded owner of {size} rows", flush=True)
        await ds.set_meta(conn, "load_seconds", time.perf_counter() - t)
        await conn.execute("VACUUM (ANALYZE) deal_embeddings")
        await ds.set_meta(conn, "loaded", True)
    if not await conn.fetchval("SELECT to_regclass('deal_embeddings_embedding_hnsw_idx') IS NOT NULL"):
        print("  building the HNSW index", flush=True)
        await ds.set_meta(conn, "hnsw_build_seconds", await ds.timed_create_index(conn, DEAL_HNSW_SQL))
        await conn.execute("ANALYZE deal_embeddings")
    await ds.set_meta(conn, "complete", True)
    return await ds.get_meta(conn)


def exact_truth(
    matrix: NDArray[np.float32], norms: NDArray[np.float32], queries: list[NDArray[np.float32]], ids: list[str]
) -> list[list[tuple[str, float]]]:
    """The exact top 5 above the threshold of every query: float32 scores pick 50 candidates,
    float64 decides among them (exact64 on a 100k-row matrix would copy 2.4 GB per query)."""
    q = np.stack(queries)
    sims = (matrix @ q.T) / (norms[:, None] * np.linalg.norm(q, axis=1)[None, :])
    out = []
    for j in range(q.shape[0]):
        cand = np.argpartition(-sims[:, j], min(50, len(ids) - 1))[:50]
        out.append(exact64(matrix[cand], queries[j], [ids[i] for i in cand]))
    return out


async def one_size(db_url: str, size: int, rounds: int, space: Any) -> dict[str, Any]:
    ids, matrix = owner_matrix(size, space)
    norms = np.linalg.norm(matrix, axis=1).astype(np.float32)
    rng = ds._rng(22, 302, size)
    queries = [query_with_cosine(space.centres[owner_primary(size)], 0.8, rng) for _ in range(RECALL_QUERIES)]
    truth = exact_truth(matrix, norms, queries, ids)
    owner = owner_id(size)
    pool = await dv.create_pool(db_url, min_size=1, max_size=1)
    conns: dict[int, asyncpg.Connection] = {}
    for ef in EFS:
        conns[ef] = await asyncpg.connect(
            db_url,
            server_settings={
                "jit": "off",
                "enable_seqscan": "off",  # small tables: the planner would sort a seq scan instead
                "hnsw.iterative_scan": "relaxed_order",
                "hnsw.ef_search": str(min(ef, 1000)),  # pgvector's maximum; the scan iterates past it
            },
        )
        await register_vector_codecs(conns[ef])
    try:

        async def exact(i: int) -> list[str]:
            hits = await dv.search_deal_embeddings(
                pool, queries[i % RECALL_QUERIES], qualification_id=owner, threshold=THRESHOLD, limit=LIMIT
            )
            return [h.chunk_id for h in hits]

        async def numpy_path(i: int) -> list[str]:
            return [h[0] for h in numpy_top(matrix, norms, queries[i % RECALL_QUERIES], ids)]

        async def hnsw(ef: int, i: int) -> list[str]:
            rows = await conns[ef].fetch(HNSW_SQL, queries[i % RECALL_QUERIES], owner, ef, 1 - THRESHOLD, LIMIT)
            return [r["id"] for r in rows]

        fns: dict[str, Any] = {"exact": exact, "numpy": numpy_path}
        for ef in EFS:
            fns[f"hnsw_ef{ef}"] = functools.partial(hnsw, ef)
        recall: dict[str, float] = {}
        misses: dict[str, int] = {}
        for name, fn in fns.items():
            found = total = 0
            for i in range(QUERIES if name == "exact" else RECALL_QUERIES):
                got = set(await fn(i))
                want = {t[0] for t in truth[i]}
                found, total = found + len(got & want), total + len(want)
            recall[name] = found / total if total else 1.0
            misses[name] = total - found
        plan = await conns[EFS[0]].fetchval(
            "EXPLAIN (FORMAT JSON) " + HNSW_SQL, queries[0], owner, EFS[0], 1 - THRESHOLD, LIMIT
        )
        uses_hnsw = "deal_embeddings_embedding_hnsw_idx" in str(plan)
        pids = {"exact": await backend_pids(pool), "numpy": []} | {
            f"hnsw_ef{ef}": await backend_pids(conns[ef]) for ef in EFS
        }
        res = await interleave_cpu({name: (fn, pids[name]) for name, fn in fns.items()}, rounds, 2)
        for name in res:
            res[name]["recall_at_5"] = recall[name]
            res[name]["missed_hits"] = misses[name]
        return {"rows": size, "paths": res, "hnsw_plan_uses_index": uses_hnsw}
    finally:
        for c in conns.values():
            await c.close()
        await dv.close_pool(pool)


def report(out: dict[str, Any]) -> str:
    names = ["exact", "numpy", *(f"hnsw_ef{ef}" for ef in EFS)]
    lines = [
        f"owner-scoped search by owner size, {out['machine']}; HNSW build {out['hnsw_build_seconds']:.0f} s",
        "",
        "wall p50 / CPU per search (client + server backend), recall@5 against exact:",
        "",
        "| owner rows | " + " | ".join(names) + " |",
        "|---:|" + "---|" * len(names),
    ]
    for size, r in out["sizes"].items():
        p = r["paths"]
        cells = [f"{p[n]['p50_ms']:.2f} / {p[n]['cpu_ms']:.2f} ms (recall {p[n]['recall_at_5']:.3f})" for n in names]
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
        if not r["hnsw_plan_uses_index"]:
            lines.append(f"| {size} | (the HNSW statement's plan did not use the index at this size) |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    server = start_embedded(bo.PGDATA)
    name = f"dhv_bench_owner_growth_{'_'.join(map(str, sizes))}_v{ds.DATA_VERSION}"
    try:
        admin = await asyncpg.connect(server.url)
        try:
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        db_url = with_database(server.url, name)
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            await register_vector_codecs(conn)
            meta = await build(conn, sizes)
        finally:
            await conn.close()
        if args.build_only:
            return
        space = ds.owner_space()
        out: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "hnsw_build_seconds": meta.get("hnsw_build_seconds", 0.0),
            "load_seconds": meta.get("load_seconds", 0.0),
            "sizes": {},
        }
        EFS[:] = [int(e) for e in args.efs.split(",")]
        for size in [int(s) for s in args.only.split(",")] if args.only else sizes:
            print(f"size {size}", flush=True)
            out["sizes"][str(size)] = await one_size(db_url, size, args.rounds, space)
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(out, indent=2))
        print(report(out))
    finally:
        stop_embedded(bo.PGDATA)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--efs", default="40,100,200,400", help="hnsw.ef_search values (= candidates re-ranked)")
    ap.add_argument("--only", default="", help="measure only these of the built sizes")
    ap.add_argument("--build-only", action="store_true", help="build the data and the index, measure nothing")
    return ap.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
