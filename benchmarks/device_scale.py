"""The headline table at scale, in one command, for a many-core machine (issue 22).

    python -m benchmarks.device_scale --out scale.json                  # 1M pre-qualifications, 1,000 x 1,000 chunks
    python -m benchmarks.device_scale --pre-qualifications 20000 --owners 20 --chunks 200   # a small check

Everything is generated on the machine: clustered 3072-d vectors (numpy, in parallel
processes), loaded by parallel binary COPYs into a fresh embedded server sized to the machine
(``db/sizing.py``), then the HNSW index of ``pre_qualifications`` is built with every core
(``max_parallel_maintenance_workers``). Then, interleaved per query:

* **global duplicate search**: ``find_similar_pre_qualifications(limit=10)`` vs the raw
  statement (HNSW candidates at ``ef_search`` 40 / 64 / 100 / 200, exact re-rank, held
  connection) vs numpy brute force over the whole float32 matrix, with recall@10 against the
  exact top 10 (numpy float64 over the candidates);
* **owner-scoped search**: ``search_deal_embeddings`` (one owner's 1,000 chunks; owners rotating
  over all of them) vs its raw statement on a held connection vs numpy with the owner's matrix
  and norms precomputed in memory.

Prints the table and writes JSON (``--out``). ``--budget-s`` stops generation early (the table
then says how many rows it has). Timings are medians; ratios come from interleaved rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from numpy.typing import NDArray

import dealhunter_vectors as dv
from dealhunter_vectors.config import with_database
from dealhunter_vectors.db.pool import register_vector_codecs
from dealhunter_vectors.db.schema import create_vector_indexes, drop_vector_indexes
from dealhunter_vectors.search.owner import _DealParams
from dealhunter_vectors.search.statements import DEAL_SEARCH
from dealhunter_vectors.testing import seed_owners
from dealhunter_vectors.tooling import start_embedded, stop_embedded

DIMS = 3072
RAW_GLOBAL_SQL = """
SELECT s.id, s.distance FROM (
    SELECT c.id, c.description_embedding <=> $1::vector AS distance
    FROM (
        SELECT p.id, p.description_embedding FROM "pre_qualifications" p
        WHERE p.description_embedding IS NOT NULL AND p.extracted_requirements IS NOT NULL
        ORDER BY (p.description_embedding)::halfvec(3072) <=> ($1::vector)::halfvec(3072)
        LIMIT $2
    ) c OFFSET 0
) s ORDER BY s.distance, s.id LIMIT 10
"""
EFS = (40, 64, 100, 200)


def _vectors(seed: int, start: int, count: int, clusters: int) -> NDArray[np.float32]:
    """Rows start..start+count of a clustered set (cos ~0.5 within a cluster), reproducible per row block."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIMS)).astype(np.float32)
    block = np.random.default_rng((seed, start))
    labels = block.integers(0, clusters, count)
    noise = block.standard_normal((count, DIMS), dtype=np.float32)
    return (centres[labels] + noise).astype(np.float32)


def _blocks(total: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(size, total - s)) for s in range(0, total, size)]


async def _copy_block(url: str, table: str, seed: int, start: int, count: int, owners: int, clusters: int) -> None:
    """One generated block COPYed by a connection of its own (runs in a worker process)."""
    vectors = _vectors(seed, start, count, clusters)
    conn = await asyncpg.connect(url)
    try:
        await register_vector_codecs(conn)
        if table == "pre_qualifications":
            records = [
                (f"pq{start + i:08d}", "user-test", "reactive", "rfp", "freetext", "t", "{}", vectors[i])
                for i in range(count)
            ]
            columns = ["id", "user_id", "source", "stage", "input_type", "raw_input", "extracted_requirements",
                       "description_embedding"]  # fmt: skip
        else:
            records = [
                (f"c{start + i:09d}", f"q{(start + i) % owners:05d}", "agent", "text", "x", vectors[i])
                for i in range(count)
            ]
            columns = ["id", "qualification_id", "agent_name", "chunk_type", "content", "embedding"]
        await conn.copy_records_to_table(table, records=records, columns=columns)
    finally:
        await conn.close()


def _copy_block_sync(args: tuple[str, str, int, int, int, int, int]) -> int:
    asyncio.run(_copy_block(*args))
    return args[4]


async def load(url: str, args: argparse.Namespace, started: float) -> dict[str, int]:
    """Generate and COPY both tables in parallel processes; stop early at the budget."""
    pool = await dv.create_pool(url, min_size=1, max_size=2)
    try:
        await dv.apply_schema(pool)
        async with pool.acquire() as conn:
            await drop_vector_indexes(conn)
        await seed_owners(pool, qualification_ids=[f"q{i:05d}" for i in range(args.owners)])
    finally:
        await pool.close()
    loaded = {"pre_qualifications": 0, "deal_embeddings": 0}
    jobs = [
        (url, "pre_qualifications", 1, s, n, args.owners, 256) for s, n in _blocks(args.pre_qualifications, 5000)
    ] + [(url, "deal_embeddings", 2, s, n, args.owners, 64) for s, n in _blocks(args.owners * args.chunks, 5000)]
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=args.workers) as ex:
        futures = [(job[1], loop.run_in_executor(ex, _copy_block_sync, job)) for job in jobs]
        for table, fut in futures:
            if time.perf_counter() - started > args.budget_s:
                fut.cancel()
                continue
            loaded[table] += await fut
    return loaded


async def build_index(url: str, workers: int) -> float:
    pool = await dv.create_pool(url, min_size=1, max_size=1, command_timeout=None)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"SET max_parallel_maintenance_workers = {max(0, workers - 1)}")
            t0 = time.perf_counter()
            await create_vector_indexes(conn)
            await conn.execute("ANALYZE")
            return time.perf_counter() - t0
    finally:
        await pool.close()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def measure(url: str, args: argparse.Namespace, loaded: dict[str, int]) -> dict[str, Any]:
    rng = np.random.default_rng(9)
    n_pq = loaded["pre_qualifications"]
    matrix = np.concatenate([_vectors(1, s, c, 256) for s, c in _blocks(n_pq, 5000)]) if n_pq else np.zeros((0, DIMS))
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    pool = await dv.create_pool(url, min_size=2, max_size=4)
    held = await asyncpg.connect(url)
    await register_vector_codecs(held)
    out: dict[str, Any] = {"global": {}, "owner": {}}
    try:
        times: dict[str, list[float]] = {k: [] for k in ("ours", "numpy", *(f"raw_ef{e}" for e in EFS))}
        recall: dict[str, list[float]] = {k: [] for k in times}
        for i in range(args.queries):
            q = (matrix[rng.integers(0, n_pq)] + rng.standard_normal(DIMS).astype(np.float32)).astype(np.float32)
            t0 = time.perf_counter()
            sims = unit @ (q / np.linalg.norm(q))
            exact = [f"pq{j:08d}" for j in np.argsort(-sims, kind="stable")[:10]]
            times["numpy"].append(time.perf_counter() - t0)
            recall["numpy"].append(1.0)
            order = ["ours", *(f"raw_ef{e}" for e in EFS)]
            for name in order[i % len(order) :] + order[: i % len(order)]:
                t0 = time.perf_counter()
                if name == "ours":
                    hits = await dv.find_similar_pre_qualifications(pool, q, min_similarity_percent=0, limit=10)
                    got = [h.pre_qualification_id for h in hits]
                else:
                    ef = int(name.removeprefix("raw_ef"))
                    async with held.transaction():
                        await held.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                        await held.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                        await held.execute("SET LOCAL enable_seqscan = off")  # as the library's function does
                        got = [r["id"] for r in await held.fetch(RAW_GLOBAL_SQL, q, ef)]
                times[name].append(time.perf_counter() - t0)
                recall[name].append(len(set(got) & set(exact)) / 10)
        for name in times:
            out["global"][name] = {"p50_ms": 1e3 * _median(times[name]), "recall_at_10": statistics.fmean(recall[name])}
        # owner-scoped: rotating owners, ours vs its raw statement vs numpy with the owner's matrix in memory
        owner_times: dict[str, list[float]] = {"ours": [], "raw_statement": [], "numpy": []}
        raw = DEAL_SEARCH["qualification_id"]
        for _ in range(args.queries):
            owner = f"q{rng.integers(0, args.owners):05d}"
            rows = await held.fetch('SELECT embedding FROM "deal_embeddings" WHERE qualification_id = $1', owner)
            m = np.stack([r["embedding"] for r in rows]) if rows else np.zeros((0, DIMS), np.float32)
            norms = np.linalg.norm(m, axis=1)
            q = (m[0] if len(m) else rng.standard_normal(DIMS)).astype(np.float32)
            t0 = time.perf_counter()
            hits = await dv.search_deal_embeddings(pool, q, qualification_id=owner, threshold=0.3, limit=5)
            owner_times["ours"].append(time.perf_counter() - t0)
            params = _DealParams(dv.DealChunkSearch(query_embedding=q, qualification_id=owner, threshold=0.3)).request
            t0 = time.perf_counter()
            await held.fetch(raw.single, *params.params)
            owner_times["raw_statement"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sims = (m @ q) / (norms * np.linalg.norm(q))
            top = np.argsort(-sims, kind="stable")[:5]
            owner_times["numpy"].append(time.perf_counter() - t0)
            assert len(hits) <= 5 and len(top) <= 5
        for name, values in owner_times.items():
            out["owner"][name] = {"p50_ms": 1e3 * _median(values)}
    finally:
        await held.close()
        await pool.close()
    return out


def table(result: dict[str, Any]) -> str:
    g, o = result["global"], result["owner"]
    lines = [
        f"rows: {result['loaded']['pre_qualifications']:,} pre-qualifications, "
        f"{result['loaded']['deal_embeddings']:,} deal chunks ({result['owners']} owners); "
        f"load {result['load_s']:.0f} s, HNSW build {result['index_s']:.0f} s; {result['cpus']} cores",
        "",
        "| global duplicate search | p50 ms | recall@10 | / ours |",
        "|---|---:|---:|---:|",
    ]
    for name, v in g.items():
        lines.append(
            f"| {name} | {v['p50_ms']:.2f} | {v['recall_at_10']:.3f} | {v['p50_ms'] / g['ours']['p50_ms']:.2f} |"
        )
    lines += ["", "| owner-scoped lead search (rotating owners) | p50 ms | / numpy |", "|---|---:|---:|"]
    for name, v in o.items():
        lines.append(f"| {name} | {v['p50_ms']:.3f} | {v['p50_ms'] / o['numpy']['p50_ms']:.2f} |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="dhv-scale-"))
    server = start_embedded(data_dir / "pgdata")
    url = with_database(server.url, "dhv_scale")
    admin = await asyncpg.connect(server.url)
    try:
        await admin.execute("DROP DATABASE IF EXISTS dhv_scale")
        await admin.execute("CREATE DATABASE dhv_scale")
    finally:
        await admin.close()
    try:
        loaded = await load(url, args, started)
        load_s = time.perf_counter() - started
        index_s = await build_index(url, args.workers)
        result: dict[str, Any] = {
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "owners": args.owners,
            "loaded": loaded,
            "load_s": load_s,
            "index_s": index_s,
            **await measure(url, args, loaded),
        }
        result["total_s"] = time.perf_counter() - started
        print(table(result))
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2))
    finally:
        stop_embedded(data_dir / "pgdata")
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--pre-qualifications", type=int, default=1_000_000)
    p.add_argument("--owners", type=int, default=1000)
    p.add_argument("--chunks", type=int, default=1000, help="chunks per owner")
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--budget-s", type=float, default=420.0, help="stop generating rows after this many seconds")
    p.add_argument("--data-dir", default=None, help="keep the server's data here (default: a temp dir, removed)")
    p.add_argument("--out", default=None, help="write the results as JSON")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
