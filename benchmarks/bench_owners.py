"""Issue 22: owner-scoped searches over many owners, PostgreSQL's default memory settings vs the sized ones.

Run (embedded server in ``.benchmarks/pgdata_owners``; data built once, kept)::

    nice -n 5 python -m benchmarks.bench_owners [--rounds 240] [--phases defaults,sized]

Data: 120 qualifications x 500 ``deal_embeddings`` chunks (5 % without embedding, the
benchmark's clustered 3072-d vectors, ``benchmarks/datasets.py``), written **interleaved as the
app writes them**: rounds of 25-chunk ``insert_deal_chunks`` batches, one batch per owner per
round in a shuffled owner order, so an owner's rows are spread over the whole table (~1.2 GB:
far more than the 128 MB default ``shared_buffers``).

Paths, interleaved in one loop (round r runs each once, shuffled order): the lead search
``search_deal_embeddings(qualification_id=..., threshold=0.3, limit=5)`` for

* ``hot``: one owner, always the same;
* ``rotating``: owners in random permutations of all 120, one after another (uniform);
* ``zipf``: owners drawn from Zipf(1.1) over the 120 (a fixed random popularity order);
* ``numpy``: the hot owner's float32 matrix and norms precomputed in memory (the floor).

Phases: the embedded server is restarted with each phase's settings (``dealhunter_vectors.conf``,
:mod:`dealhunter_vectors.db.sizing`): ``defaults`` (PostgreSQL's) and ``sized`` (this machine's).
Each phase starts with a cold buffer pool (the OS page cache stays warm); each of the pool's two
connections searches every owner once before timing (the first pass is reported separately).
``PERF_DATABASE_URL`` runs one phase on that server as it is configured.
Output: markdown on stdout, ``.benchmarks/runs/bench_owners.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import asyncio
import json
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from numpy.typing import NDArray

import dealhunter_vectors as dv
from benchmarks import datasets as ds
from benchmarks.cpu_interleave import backend_pids, interleave_cpu
from benchmarks.perf_side_by_side import LIMIT, THRESHOLD, ensure_database, exact64, numpy_top, same
from dealhunter_vectors.config import Settings
from dealhunter_vectors.db.embedded import EmbeddedServer, start_embedded, stop_embedded, write_sizing_conf
from dealhunter_vectors.db.sizing import buffer_check, sizing_from_settings
from dealhunter_vectors.legacy.synthetic import query_with_cosine
from dealhunter_vectors.models import DealChunk
from dealhunter_vectors.testing import with_database

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / ".benchmarks" / "runs" / "bench_owners.json"
PGDATA = REPO_ROOT / ".benchmarks" / "pgdata_owners"
OWNERS = 120
CHUNKS = 500
BATCH = 25
QUERIES_PER_OWNER = 4
ZIPF_S = 1.1
POOL_SIZE = 2


def database_name(owners: int, chunks: int) -> str:
    return f"dhv_bench_owners_{owners}x{chunks}_v{ds.DATA_VERSION}"


# ------------------------------------------------------------------ data


def _chunk(chunks: ds.OwnerChunks, k: int) -> DealChunk:
    row = chunks.rows[k]
    return DealChunk(
        id=row["id"],
        qualification_id=chunks.qualification_id,
        agent_name=row["agent_name"],
        chunk_type=row["chunk_type"],
        chunk_index=row["chunk_index"],
        content=row["content"],
        metadata=json.loads(row["metadata"]),
        embedding=chunks.vectors[k] if chunks.has_embedding[k] else None,
        chunk_category=row["chunk_category"],
        confidence=row["confidence"],
    )


def build(owners: int, chunks_per_owner: int) -> Any:
    async def run(conn: asyncpg.Connection) -> dict[str, Any]:
        await dv.apply_schema(conn)
        space = ds.owner_space()
        await ds._parents(conn)
        all_chunks = []
        for i in range(owners):
            oc = ds.owner_chunks(i, space)
            pq = ds.pre_qualification_id(i)
            await conn.copy_records_to_table(
                "pre_qualifications", records=[ds._pq_record(pq, ds._T0, None)], columns=ds._PQ_COLUMNS
            )
            await conn.execute(
                'INSERT INTO "qualifications" (id, pre_qualification_id, status, customer_name, business_unit_id,'
                " more_info_requested, deep_scan_status, created_at, updated_at)"
                " VALUES ($1, $2, 'routed', $3, 'bbu0', false, 'pending', now(), now())",
                oc.qualification_id,
                pq,
                f"Kunde {i}",
            )
            all_chunks.append(  # only the written rows: 120 x 1,000 float32 vectors would be 1.5 GB
                ds.OwnerChunks(oc.qualification_id, oc.primary_cluster, oc.rows[:chunks_per_owner],
                               oc.vectors[:chunks_per_owner].copy(), oc.has_embedding[:chunks_per_owner])
            )  # fmt: skip
            del oc
        rng = random.Random(22)
        order = list(range(owners))
        t0 = asyncio.get_running_loop().time()
        for lo in range(0, chunks_per_owner, BATCH):
            rng.shuffle(order)
            for i in order:
                oc = all_chunks[i]
                batch = [_chunk(oc, k) for k in range(lo, min(lo + BATCH, chunks_per_owner))]
                await dv.insert_deal_chunks(conn, batch)
            print(f"  written {min(lo + BATCH, chunks_per_owner)}/{chunks_per_owner} chunks per owner", flush=True)
        load_s = asyncio.get_running_loop().time() - t0
        await conn.execute("VACUUM (ANALYZE) deal_embeddings")
        size = await conn.fetchval("SELECT pg_total_relation_size('deal_embeddings')")
        return {"owners": owners, "chunks": chunks_per_owner, "load_seconds": load_s, "table_bytes": size}

    return run


class OwnerData:
    """Per owner: ids and float32 matrix of its rows with an embedding, and its queries."""

    def __init__(self, owners: int, chunks_per_owner: int) -> None:
        space = ds.owner_space()
        rng = ds._rng(22, 1)
        self.ids: list[list[str]] = []
        self.matrix: list[NDArray[np.float32]] = []
        self.queries: list[list[NDArray[np.float32]]] = []
        for i in range(owners):
            oc = ds.owner_chunks(i, space)
            keep = oc.has_embedding[:chunks_per_owner]
            self.ids.append([r["id"] for r, k in zip(oc.rows[:chunks_per_owner], keep, strict=True) if k])
            self.matrix.append(np.ascontiguousarray(oc.vectors[:chunks_per_owner][keep]))
            centre = space.centres[oc.primary_cluster]
            self.queries.append([query_with_cosine(centre, 0.8, rng) for _ in range(QUERIES_PER_OWNER)])


def owner_sequences(owners: int, n: int, seed: int = 22) -> dict[str, list[int]]:
    """Owner index per round for the hot, rotating and Zipf paths."""
    rng = np.random.default_rng(seed)
    rotating: list[int] = []
    while len(rotating) < n:
        rotating += [int(x) for x in rng.permutation(owners)]
    popularity = rng.permutation(owners)  # rank -> owner
    weights = 1.0 / np.arange(1, owners + 1) ** ZIPF_S
    ranks = rng.choice(owners, size=n, p=weights / weights.sum())
    return {"hot": [0] * n, "rotating": rotating[:n], "zipf": [int(popularity[r]) for r in ranks]}


# ------------------------------------------------------------------ one phase


async def buffer_stats(pool: Any, data: OwnerData, owners: list[int]) -> dict[str, float]:
    """Median shared-buffer hits / reads of the library's statement (EXPLAIN ANALYZE BUFFERS)."""
    from benchmarks.perf_side_by_side import library_args

    hits, reads = [], []
    async with pool.acquire() as conn:
        for o in owners:
            sql, args = library_args(data.queries[o][0], ds.qualification_id(o))
            plan = json.loads(await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args))[0]["Plan"]
            hits.append(plan["Shared Hit Blocks"])
            reads.append(plan["Shared Read Blocks"])
    return {"shared_hit_blocks": statistics.median(hits), "shared_read_blocks": statistics.median(reads)}


async def warm_connections(pool: Any, data: OwnerData, owners: int) -> dict[str, float]:
    """One search of every owner on every pooled connection; the per-search times of each pass."""
    conns = [await pool.acquire() for _ in range(POOL_SIZE)]
    out: dict[str, float] = {}
    try:
        for n, conn in enumerate(conns):
            times = []
            for o in range(owners):
                t = time.perf_counter()
                await dv.search_deal_embeddings(
                    conn, data.queries[o][0], qualification_id=ds.qualification_id(o), threshold=THRESHOLD, limit=LIMIT
                )
                times.append(time.perf_counter() - t)
            out[f"connection_{n}_p50_ms"] = statistics.median(times) * 1e3
    finally:
        for conn in conns:
            await pool.release(conn)
    return out


async def phase(db_url: str, data: OwnerData, owners: int, rounds: int) -> dict[str, Any]:
    pool = await dv.create_pool(db_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
    try:
        async with pool.acquire() as conn:
            settings = {
                r["name"]: r["setting"]
                for r in await conn.fetch(
                    "SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name = ANY($1::text[])",
                    ["shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem"],
                )
            }
            doctor = await buffer_check(conn)
        # correctness (library vs numpy float64) on a few owners, then one search per owner (warm-up)
        for o in (0, 1, owners // 2, owners - 1):
            for q in data.queries[o]:
                hits = await dv.search_deal_embeddings(
                    pool, q, qualification_id=ds.qualification_id(o), threshold=THRESHOLD, limit=LIMIT
                )
                same(exact64(data.matrix[o], q, data.ids[o]), [(h.chunk_id, float(h.similarity or 0)) for h in hits],
                     f"owner {o}")  # fmt: skip
        # every pooled connection searches every owner once before timing: a backend maps each
        # shared-buffer page it touches the first time (a minor page fault per 4 KB, ~1,000 per
        # search of a 500-row owner), which a long-running app's pool has paid long before
        first_pass = await warm_connections(pool, data, owners)
        warmup = 5
        seq = owner_sequences(owners, warmup + rounds)
        norms0 = np.linalg.norm(data.matrix[0], axis=1).astype(np.float32)

        def search(kind: str) -> Any:
            async def path(r: int) -> Any:
                o = seq[kind][r]
                q = data.queries[o][r % QUERIES_PER_OWNER]
                return await dv.search_deal_embeddings(
                    pool, q, qualification_id=ds.qualification_id(o), threshold=THRESHOLD, limit=LIMIT
                )

            return path

        async def numpy_path(r: int) -> Any:
            return numpy_top(data.matrix[0], norms0, data.queries[0][r % QUERIES_PER_OWNER], data.ids[0])

        pids = await backend_pids(pool)
        res = await interleave_cpu(
            {
                "hot": (search("hot"), pids),
                "rotating": (search("rotating"), pids),
                "zipf": (search("zipf"), pids),
                "numpy": (numpy_path, []),
            },
            rounds,
            warmup,
        )
        for name in res:
            res[name]["vs_hot"] = res[name]["p50_ms"] / res["hot"]["p50_ms"]
            res[name]["cpu_vs_hot"] = res[name]["cpu_ms"] / res["hot"]["cpu_ms"]
        buffers = {
            "hot": await buffer_stats(pool, data, [0] * 5),
            "rotating": await buffer_stats(pool, data, seq["rotating"][:15]),
        }
        return {
            "settings": settings,
            "doctor_buffer_check": list(doctor),
            "paths": res,
            "first_pass": first_pass,
            "buffers": buffers,
        }
    finally:
        await dv.close_pool(pool)


def restart_with(server: EmbeddedServer, mode: str) -> None:
    sizing = sizing_from_settings(Settings(embedded_sizing="auto" if mode == "sized" else "defaults"))
    write_sizing_conf(server.data_dir, sizing)
    server.restart()


def report(out: dict[str, Any]) -> str:
    lines = [
        f"owners {out['owners']} x {out['chunks']} chunks, deal_embeddings {out['table_bytes'] / 2**30:.2f} GB, "
        f"{out['rounds']} rounds, {out['machine']}",
        "",
        "wall p50 / CPU per search (client + server backend):",
        "",
        "| phase | shared_buffers | hot | rotating | zipf | numpy | rotating/hot | zipf/hot "
        "| hot/numpy | reads/search rotating |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, ph in out["phases"].items():
        p = ph["paths"]

        def cell(k: str, p: dict[str, Any] = p) -> str:
            return f"{p[k]['p50_ms']:.2f} / {p[k]['cpu_ms']:.2f} ms"

        def ratio(a: str, b: str, p: dict[str, Any] = p) -> str:
            return f"{p[a]['p50_ms'] / p[b]['p50_ms']:.2f}x / {p[a]['cpu_ms'] / p[b]['cpu_ms']:.2f}x"

        lines.append(
            f"| {name} | {ph['settings']['shared_buffers']} | {cell('hot')} | {cell('rotating')} | {cell('zipf')} "
            f"| {cell('numpy')} | {ratio('rotating', 'hot')} | {ratio('zipf', 'hot')} | {ratio('hot', 'numpy')} "
            f"| {ph['buffers']['rotating']['shared_read_blocks']:.0f} |"
        )
    for name, ph in out["phases"].items():
        first = ", ".join(f"{v:.2f} ms" for v in ph["first_pass"].values())
        lines.append(f"\n{name}: first search of each owner on each new connection (p50): {first}")
        lines.append(f"{name}: doctor buffer check: {ph['doctor_buffer_check'][0]}: {ph['doctor_buffer_check'][1]}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    url = os.environ.get("PERF_DATABASE_URL")
    server = None
    if url is None:
        PGDATA.mkdir(parents=True, exist_ok=True)
        server = start_embedded(PGDATA)
        url = server.url
    try:
        admin = await asyncpg.connect(url)
        try:
            db_url, meta = await ensure_database(
                admin, url, database_name(args.owners, args.chunks), build(args.owners, args.chunks)
            )
        finally:
            await admin.close()
        data = OwnerData(args.owners, args.chunks)
        out: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "owners": args.owners,
            "chunks": args.chunks,
            "rounds": args.rounds,
            "table_bytes": meta["table_bytes"],
            "load_seconds": meta["load_seconds"],
            "phases": {},
        }
        phases = args.phases.split(",") if server is not None else ["as_configured"]
        for n, name in enumerate(phases):
            if server is not None:
                restart_with(server, name)
                db_url = with_database(server.url, database_name(args.owners, args.chunks))
            key = name if phases.count(name) == 1 else f"{name} ({n + 1})"
            print(f"phase {key}", flush=True)
            out["phases"][key] = await phase(db_url, data, args.owners, args.rounds)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(out, indent=2))
        print(report(out))
    finally:
        if server is not None:  # leave the settings file as a normal start would write it
            write_sizing_conf(PGDATA, sizing_from_settings())
            stop_embedded(PGDATA)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rounds", type=int, default=240)
    ap.add_argument("--owners", type=int, default=OWNERS)
    ap.add_argument("--chunks", type=int, default=CHUNKS)
    ap.add_argument("--phases", default="defaults,sized")
    return ap.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
