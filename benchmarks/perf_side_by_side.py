"""Issue 14: the library against its own SQL, the bare statement, numpy and the old path, side by side.

Run (2 cores are enough; data is built once and cached in ``dhv_perf_*`` databases)::

    python -m benchmarks.perf_side_by_side --parts owner,global,write,concurrency --rounds 60

Every part measures its paths **interleaved in one loop** (round r runs each path once, in a
shuffled order, on the same query), so a noisy (shared) machine slows every path alike and
the ratios of the medians stay meaningful. Output: a markdown summary on stdout and
``.benchmarks/runs/perf_side_by_side.json``.

Parts
-----
* ``owner``: one qualification's 1,000 ``deal_embeddings`` (5 qualifications loaded, lead
  defaults threshold 0.3 / limit 5). Paths: ``search_deal_embeddings``; the library's own
  statement called directly (prepared, asyncpg cache); the frozen pre-issue-14 statement;
  the cheapest bare statement returning the same exact result (half scan + exact re-rank,
  query half copy computed by the client); the plain exact scan; numpy exact scoring of the
  owner's float32 vectors in memory. Every path's hits are checked against numpy float64
  before timing. Python CPU per call = ``time.process_time`` of this process.
* ``global``: ``pre_qualifications`` at 1k / 10k rows, on the benchmark's data set
  (near-duplicate queries) and on a *hard* clustered set (queries at cluster centres: hundreds
  of rows at nearly the same distance). Paths: ``find_similar_pre_qualifications(limit=10)``,
  the raw HNSW statement with exact re-rank at several ``hnsw.ef_search`` values, numpy brute
  force. Recall@10 against numpy float64 exact.
* ``write``: ``insert_deal_chunks`` of 50-chunk batches into a table with and without the
  ``deal_embeddings`` HNSW index (two databases, batches alternate).
* ``concurrency``: 1 / 8 / 32 concurrent owner-scoped searches through one pool (max 20),
  library vs the bare statement through raw asyncpg; throughput, Python CPU and server CPU
  (sum over the server's processes, psutil) per query.
* ``concurrency_global``: the same for the global search (10k rows of the benchmark's set;
  the bare statement at ``ef_search`` 64, the library's start count).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy single-threaded: no BLAS threads spinning on a shared box
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import asyncio
import functools
import json
import platform
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import psutil
from numpy.typing import NDArray

import dealhunter_vectors as dv
from benchmarks import datasets as ds
from benchmarks.baseline_sql import OLD_DEAL_SEARCH_BY_QUALIFICATION_SQL
from dealhunter_vectors.db.codecs import Vector
from dealhunter_vectors.db.embedded import start_embedded
from dealhunter_vectors.db.pool import register_vector_codecs
from dealhunter_vectors.db.schema import apply_schema, quote_ident
from dealhunter_vectors.legacy.synthetic import query_with_cosine
from dealhunter_vectors.models import DealChunkSearch
from dealhunter_vectors.search import global_search as gs
from dealhunter_vectors.search import owner as lib
from dealhunter_vectors.search.statements import DEAL_SEARCH, DUPLICATE_CANDIDATES
from dealhunter_vectors.testing import with_database

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / ".benchmarks" / "runs" / "perf_side_by_side.json"
PGDATA = REPO_ROOT / ".benchmarks" / "pgdata_perf"
THRESHOLD = 0.3
LIMIT = 5
OWNERS = 5  # qualifications in the owner-scoped database (--scale full: 100, as the 16-core run)
DELTA = 1.7131e-3  # >= HALF_DISTANCE_ERROR_BOUND (vector_search)

# The cheapest statement returning the owner-scoped exact result at the lead defaults (no
# filters, no fallbacks): half distances of the owner's rows, the k-th best sure row, exact
# re-rank of the candidates. $1 query vector, $2 query half copy (client side), $3 owner,
# $4 max distance, $5 limit, $6 bound.
BARE_OWNER_SQL = """
WITH half AS MATERIALIZED (
    SELECT d.id, d.content, d.embedding, d.embedding_half <=> $2::halfvec AS hd
    FROM "deal_embeddings" d
    WHERE d.qualification_id = $3 AND d.embedding IS NOT NULL
), kth AS (
    SELECT coalesce((SELECT hd FROM half WHERE hd + $6::float8 < $4::float8
                     ORDER BY hd LIMIT 1 OFFSET $5::int4 - 1), 'Infinity'::float8) AS hd
)
SELECT s.id, s.content, s.distance FROM (
    SELECT c.id, c.content, c.embedding <=> $1::vector AS distance
    FROM half c, kth k
    WHERE c.hd <= $4::float8 + $6::float8 AND c.hd <= k.hd + 2 * $6::float8
    OFFSET 0
) s
WHERE s.distance < $4::float8
ORDER BY s.distance, s.id
LIMIT $5::int4
"""

# The index migration 003 defined and 006 dropped (the "before" of the write path).
DEAL_HNSW_SQL = (
    'CREATE INDEX IF NOT EXISTS "deal_embeddings_embedding_hnsw_idx" ON "deal_embeddings"'
    ' USING hnsw ((("embedding")::halfvec(3072)) halfvec_cosine_ops) WITH (m = 32, ef_construction = 128)'
)

EXACT_OWNER_SQL = """
SELECT "id", "content", "embedding" <=> $1::vector AS distance
FROM "deal_embeddings"
WHERE "qualification_id" = $2 AND "embedding" IS NOT NULL AND ("embedding" <=> $1::vector) < $3
ORDER BY "embedding" <=> $1::vector, "id"
LIMIT $4
"""

# Raw HNSW statement with the exact re-rank (session settings: ef_search given per call).
RAW_ANN_SQL = """
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


# ------------------------------------------------------------------ helpers


def benchmark_server() -> tuple[str, bool]:
    """``(url, embedded)``: ``PERF_DATABASE_URL``, else the embedded server in :data:`PGDATA`
    (started when not running; the caller stops it with ``stop_embedded(PGDATA)``)."""
    url = os.environ.get("PERF_DATABASE_URL")
    if url:
        return url, False
    PGDATA.mkdir(parents=True, exist_ok=True)
    return start_embedded(PGDATA).url, True


def half_copy(q: NDArray[np.float32]) -> NDArray[np.float16] | None:
    q64 = q.astype(np.float64)
    norm = float(np.linalg.norm(q64))
    if not (1e-12 <= norm <= 1e15):
        return None
    return (q64 / norm).astype(np.float32).astype(np.float16)


def stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50_ms": statistics.median(s) * 1e3,
        "p90_ms": s[int(0.9 * (len(s) - 1))] * 1e3,
        "p99_ms": s[int(0.99 * (len(s) - 1))] * 1e3,
        "n": len(s),
    }


@dataclass
class Timed:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        out = stats(self.wall)
        out["python_cpu_ms"] = statistics.median(self.cpu) * 1e3
        return out


async def interleave(
    paths: dict[str, Callable[[int], Awaitable[Any]]], rounds: int, warmup: int, n_queries: int
) -> dict[str, dict[str, float]]:
    """Run each path once per round on query ``r % n_queries`` in a shuffled order; per-path stats."""
    timed = {name: Timed() for name in paths}
    rng = random.Random(14)
    names = list(paths)
    for r in range(warmup + rounds):
        rng.shuffle(names)
        for name in names:
            c0, t0 = time.process_time(), time.perf_counter()
            await paths[name](r % n_queries)
            t1, c1 = time.perf_counter(), time.process_time()
            if r >= warmup:
                timed[name].wall.append(t1 - t0)
                timed[name].cpu.append(c1 - c0)
    return {name: t.summary() for name, t in timed.items()}


async def ensure_database(
    admin: asyncpg.Connection, url: str, name: str, build: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]]
) -> tuple[str, dict[str, Any]]:
    db_url = with_database(url, name)
    if await ds.database_ready(admin, url, name):
        conn = await asyncpg.connect(db_url)
        try:
            return db_url, await ds.get_meta(conn)
        finally:
            await conn.close()
    await ds.recreate_database(admin, name)
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await register_vector_codecs(conn)
        meta = await build(conn)
        for key, value in meta.items():
            await ds.set_meta(conn, key, value)
        await ds.set_meta(conn, "complete", True)
        return db_url, meta
    finally:
        await conn.close()


# ------------------------------------------------------------------ owner-scoped


@dataclass
class OwnerSet:
    ids: list[str]
    matrix: NDArray[np.float32]
    queries: list[NDArray[np.float32]]


def owner_set() -> OwnerSet:
    chunks = ds.owner_chunks(0)
    keep = chunks.has_embedding
    ids = [row["id"] for row, k in zip(chunks.rows, keep, strict=True) if k]
    space = ds.owner_space()
    rng = ds._rng(14, 1)
    queries = [query_with_cosine(space.centres[chunks.primary_cluster], 0.8, rng) for _ in range(20)]
    return OwnerSet(ids, np.ascontiguousarray(chunks.vectors[keep]), queries)


def owner_database() -> str:
    return "dhv_perf_owner" if OWNERS == 5 else f"dhv_perf_owner_{OWNERS}"


async def build_owner(conn: asyncpg.Connection) -> dict[str, Any]:
    await apply_schema(conn)
    await ds.load_owners(conn, OWNERS)
    await conn.execute("VACUUM (ANALYZE) deal_embeddings")
    return {"rows": OWNERS * ds.ROWS_PER_QUALIFICATION}


def numpy_top(
    matrix: NDArray[np.float32], norms: NDArray[np.float32], q: NDArray[np.float32], ids: list[str]
) -> list[tuple[str, float]]:
    sims = (matrix @ q) / (norms * np.float32(np.linalg.norm(q)))
    above = np.flatnonzero(sims > THRESHOLD)
    part = above[np.argpartition(-sims[above], LIMIT - 1)[:LIMIT]] if above.size > LIMIT else above
    order = part[np.argsort(-sims[part], kind="stable")]
    return [(ids[i], float(sims[i])) for i in order]


def exact64(matrix: NDArray[np.float32], q: NDArray[np.float32], ids: list[str]) -> list[tuple[str, float]]:
    m = matrix.astype(np.float64)
    q64 = q.astype(np.float64)
    sims = (m @ q64) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q64))
    order = sorted((i for i in range(len(ids)) if sims[i] > THRESHOLD), key=lambda i: (-sims[i], ids[i]))
    return [(ids[i], float(sims[i])) for i in order[:LIMIT]]


def same(a: list[tuple[str, float]], b: list[tuple[str, float]], what: str) -> None:
    assert len(a) == len(b), f"{what}: {len(a)} vs {len(b)}"
    for (ia, sa), (ib, sb) in zip(a, b, strict=True):
        assert abs(sa - sb) < 1e-5, f"{what}: {ia} {sa} vs {ib} {sb}"
        if ia != ib:
            assert abs(sa - sb) < 2e-6, f"{what}: order {a} vs {b}"


def library_args(q: NDArray[np.float32], owner: str) -> tuple[str, tuple[Any, ...]]:
    """The library's own statement and arguments for one lead-default search (as it sends them)."""
    params = lib._DealParams(
        DealChunkSearch(query_embedding=q, qualification_id=owner, threshold=THRESHOLD, limit=LIMIT)
    )
    return DEAL_SEARCH["qualification_id"].single, params.request.params


def old_args(q: NDArray[np.float32], owner: str) -> tuple[Any, ...]:
    return (
        [Vector(q)],
        [owner],
        [1.0 - THRESHOLD],
        [False],
        [None],
        [None],
        [False],
        [None],
        [None],
        [None],
        [False],
        [False],
        [LIMIT],
    )


async def part_owner(url: str, admin: asyncpg.Connection, rounds: int) -> dict[str, Any]:
    db_url, meta = await ensure_database(admin, url, owner_database(), build_owner)
    data = owner_set()
    owner = ds.qualification_id(0)
    norms = np.linalg.norm(data.matrix, axis=1).astype(np.float32)
    pool = await dv.create_pool(db_url, min_size=2, max_size=4)
    try:
        # correctness first: every path against numpy float64
        for q in data.queries:
            ref = exact64(data.matrix, q, data.ids)
            hits = await dv.search_deal_embeddings(pool, q, qualification_id=owner, threshold=THRESHOLD, limit=LIMIT)
            same(ref, [(h.chunk_id, float(h.similarity or 0)) for h in hits], "library")
            sql, args = library_args(q, owner)
            same(ref, [(r["id"], 1 - r["distance"]) for r in await pool.fetch(sql, *args)], "library sql")
            rows = await pool.fetch(OLD_DEAL_SEARCH_BY_QUALIFICATION_SQL, *old_args(q, owner))
            same(ref, [(r["id"], 1 - r["distance"]) for r in rows], "old sql")
            rows = await pool.fetch(BARE_OWNER_SQL, q, half_copy(q), owner, 1 - THRESHOLD, LIMIT, DELTA)
            same(ref, [(r["id"], 1 - r["distance"]) for r in rows], "bare")
            same(ref, numpy_top(data.matrix, norms, q, data.ids), "numpy")

        queries = data.queries

        async def lib(i: int) -> Any:
            return await dv.search_deal_embeddings(
                pool, queries[i], qualification_id=owner, threshold=THRESHOLD, limit=LIMIT
            )

        async def lib_sql(i: int) -> Any:
            sql, args = library_args(queries[i], owner)
            return await pool.fetch(sql, *args)

        async def old_sql(i: int) -> Any:
            return await pool.fetch(OLD_DEAL_SEARCH_BY_QUALIFICATION_SQL, *old_args(queries[i], owner))

        async def bare(i: int) -> Any:
            q = queries[i]
            return await pool.fetch(BARE_OWNER_SQL, q, half_copy(q), owner, 1 - THRESHOLD, LIMIT, DELTA)

        async def exact(i: int) -> Any:
            return await pool.fetch(EXACT_OWNER_SQL, queries[i], owner, 1 - THRESHOLD, LIMIT)

        async def numpy_path(i: int) -> Any:
            return numpy_top(data.matrix, norms, queries[i], data.ids)

        async def roundtrip(i: int) -> Any:
            return await pool.fetchval("SELECT 1")

        res = await interleave(
            {
                "library": lib,
                "library_sql": lib_sql,
                "old_library_sql": old_sql,
                "bare_half": bare,
                "bare_exact_scan": exact,
                "numpy": numpy_path,
                "select_1": roundtrip,
            },
            rounds,
            5,
            len(queries),
        )
        # server time of the statements (EXPLAIN ANALYZE, median over the queries)
        server: dict[str, float] = {}
        async with pool.acquire() as conn:
            for name, make in (
                ("library_sql", lambda q: library_args(q, owner)),
                ("old_library_sql", lambda q: (OLD_DEAL_SEARCH_BY_QUALIFICATION_SQL, old_args(q, owner))),
                ("bare_half", lambda q: (BARE_OWNER_SQL, (q, half_copy(q), owner, 1 - THRESHOLD, LIMIT, DELTA))),
            ):
                ms = []
                for q in queries * 2:
                    sql, args = make(q)
                    plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON, TIMING OFF) " + sql, *args)
                    ms.append(json.loads(plan)[0]["Execution Time"])
                server[name] = statistics.median(ms)
        for name, ms in server.items():
            res[name]["server_ms"] = ms
        return {"paths": res, "rows_in_table": meta.get("rows"), "owner_rows": len(data.ids)}
    finally:
        await dv.close_pool(pool)


# ------------------------------------------------------------------ global


def hard_set(n: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """A hard set for graph indexes: tight clusters, queries between two clusters.

    ``n // 40`` isotropic cluster centres, members at cosine ~0.97 to their centre; each query
    is the normalised mean of two centres plus a little noise, so its exact top 10 is split
    between two clusters of near-equidistant rows that the graph links weakly.
    """
    rng = ds._rng(41, n)
    k = max(2, n // 40)
    centres = rng.standard_normal((k, ds.DIMS))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, k, size=n)
    noise = rng.standard_normal((n, ds.DIMS))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    rows = 0.97 * centres[labels] + np.sqrt(1 - 0.97**2) * noise
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    qs = []
    for _ in range(30):
        a, b = rng.choice(k, size=2, replace=False)
        q = centres[a] + centres[b] + 0.05 * rng.standard_normal(ds.DIMS) / np.sqrt(ds.DIMS)
        qs.append(q / np.linalg.norm(q))
    return np.ascontiguousarray(rows.astype(np.float32)), np.stack(qs).astype(np.float32)


def bench_set(n: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    cache = REPO_ROOT / ".benchmarks" / "data"
    cache.mkdir(parents=True, exist_ok=True)
    vectors = np.ascontiguousarray(ds.global_vectors(max(n, 10_000), cache)[:n])
    return vectors, ds.global_queries(vectors, 30)


def build_global(vectors: NDArray[np.float32]) -> Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]]:
    async def build(conn: asyncpg.Connection) -> dict[str, Any]:
        return await ds.build_global_database(conn, vectors)

    return build


class _GlobalPaths:
    """The global-search paths on one data set; ``hits`` keeps each path's last answer per query."""

    def __init__(
        self,
        pool: Any,
        conns: dict[int, asyncpg.Connection],
        vectors: NDArray[np.float32],
        queries: NDArray[np.float32],
        ids: list[str],
    ) -> None:
        self.pool, self.conns, self.vectors, self.queries, self.ids = pool, conns, vectors, queries, ids
        self.norms = np.linalg.norm(vectors, axis=1)

    async def library(self, i: int) -> list[str]:
        res = await dv.find_similar_pre_qualifications(self.pool, self.queries[i], min_similarity_percent=0, limit=10)
        return [m.pre_qualification_id for m in res]

    async def library_call(self, i: int) -> list[str]:
        """The library's first statement (migration 010's function, the arguments it sends) on a held
        connection: the library minus its Python work, the pool's acquire/release and any widening."""
        rows = await self.conns[0].fetch(
            DUPLICATE_CANDIDATES.single, self.queries[i], None, 2.0 + 1e-9, 18, gs.ANN_START_CANDIDATES, gs.ANN_GROWTH,
            gs.ANN_MAX_EF_SEARCH, gs.ANN_MAX_SCAN_TUPLES, 10,
        )  # fmt: skip
        return [r["id"] for r in rows if r["id"] is not None][:10]

    async def raw(self, ef: int, i: int) -> list[str]:
        # one round trip: the connection's session already has hnsw.ef_search = ef
        rows = await self.conns[ef].fetch(RAW_ANN_SQL, self.queries[i], ef)
        return [r["id"] for r in rows]

    async def numpy(self, i: int) -> list[str]:
        sims = (self.vectors @ self.queries[i]) / self.norms
        top = np.argpartition(-sims, 10)[:10]
        return [self.ids[j] for j in top[np.argsort(-sims[top])]]


async def _global_one(
    db_url: str, vectors: NDArray[np.float32], queries: NDArray[np.float32], rounds: int, efs: list[int]
) -> dict[str, Any]:
    n = vectors.shape[0]
    ids = [ds.pre_qualification_id(i) for i in range(n)]
    truth = ds.exact_top_k(vectors, queries, 10)
    truth_ids = [{ids[j] for j in row} for row in truth]
    pool = await dv.create_pool(db_url, min_size=1, max_size=2)
    conns: dict[int, asyncpg.Connection] = {0: await asyncpg.connect(db_url, server_settings={"jit": "off"})}
    await register_vector_codecs(conns[0])
    for ef in efs:
        conn = await asyncpg.connect(
            db_url,
            server_settings={
                "jit": "off",
                "enable_seqscan": "off",
                "hnsw.iterative_scan": "relaxed_order",
                "hnsw.ef_search": str(ef),
            },
        )
        await register_vector_codecs(conn)
        conns[ef] = conn
    g = _GlobalPaths(pool, conns, vectors, queries, ids)
    try:
        paths: dict[str, Callable[[int], Awaitable[list[str]]]] = {
            "library": g.library,
            "library_call": g.library_call,
            "numpy": g.numpy,
        }
        for ef in efs:
            paths[f"raw_hnsw_ef{ef}"] = functools.partial(g.raw, ef)
        recall = {}
        for name, fn in paths.items():  # recall over every query first
            got = [await fn(i) for i in range(len(queries))]
            recall[name] = float(np.mean([len(set(h) & t) / 10 for h, t in zip(got, truth_ids, strict=True)]))
        res = await interleave(paths, rounds, 3, len(queries))
        for name in res:
            res[name]["recall_at_10"] = recall[name]
        return res
    finally:
        for conn in conns.values():
            await conn.close()
        await dv.close_pool(pool)


async def part_global(
    url: str,
    admin: asyncpg.Connection,
    rounds: int,
    sizes: list[int],
    efs: list[int],
    sets: tuple[str, ...] = ("bench", "hard2"),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for set_name, make in [(n, m) for n, m in (("bench", bench_set), ("hard2", hard_set)) if n in sets]:
        for n in sizes:
            vectors, queries = make(n)
            db_url, _ = await ensure_database(admin, url, f"dhv_perf_global_{set_name}_{n}", build_global(vectors))
            out[f"{set_name}_{n}"] = await _global_one(db_url, vectors, queries, rounds, efs)
    return out


# ------------------------------------------------------------------ writes


async def part_write(url: str, admin: asyncpg.Connection, batches: int) -> dict[str, Any]:
    from dealhunter_vectors.models import DealChunk

    def chunks(prefix: str, vectors: NDArray[np.float32]) -> list[DealChunk]:
        return [
            DealChunk(
                id=f"{prefix}{k:04d}",
                pre_qualification_id="bp000000",
                agent_name="tech",
                chunk_type="text",
                chunk_index=k,
                content="x" * 800,
                metadata={"cms": "drupal"},
                embedding=v,
            )
            for k, v in enumerate(vectors)
        ]

    results: dict[str, Any] = {}
    pools = {}
    for variant in ("with_hnsw", "without_hnsw"):
        name = f"dhv_perf_write_{variant}"
        await ds.recreate_database(admin, name)
        db_url = with_database(url, name)
        pool = await dv.create_pool(db_url, min_size=1, max_size=2)
        await apply_schema(pool)
        async with pool.acquire() as conn:
            await ds._parents(conn)
            await conn.copy_records_to_table(
                "pre_qualifications", records=[ds._pq_record("bp000000", ds._T0, None)], columns=ds._PQ_COLUMNS
            )
            seed = ds.owner_space().sample(ds._rng(14, 8).integers(0, ds.N_CLUSTERS, size=1000), seed=(14, 8))
            await dv.insert_deal_chunks(conn, chunks("seed", seed))
            if variant == "with_hnsw":  # the schema has no chunk HNSW index since migration 006
                await conn.execute(DEAL_HNSW_SQL)
        pools[variant] = pool
    space = ds.owner_space()
    rng = ds._rng(14, 2)
    timed: dict[str, list[float]] = {v: [] for v in pools}
    for b in range(batches):
        labels = rng.integers(0, ds.N_CLUSTERS, size=50)
        vecs = space.sample(labels, seed=(14, 3, b))
        for variant in list(pools) if b % 2 == 0 else list(pools)[::-1]:
            batch = chunks(f"w{b:04d}_", vecs)
            t0 = time.perf_counter()
            await dv.insert_deal_chunks(pools[variant], batch)
            timed[variant].append(time.perf_counter() - t0)
    for variant, samples in timed.items():
        st = stats(samples)
        st["rows_per_s_median_batch"] = 50 / (st["p50_ms"] / 1e3)
        st["rows_per_s_total"] = 50 * len(samples) / sum(samples)
        results[variant] = st
    for pool in pools.values():
        await dv.close_pool(pool)
    return results


# ------------------------------------------------------------------ migration

CHUNK_HNSW_SQL = (
    DEAL_HNSW_SQL,
    'CREATE INDEX IF NOT EXISTS "raw_chunks_embedding_hnsw_idx" ON "raw_chunks"'
    ' USING hnsw ((("embedding")::halfvec(3072)) halfvec_cosine_ops) WITH (m = 32, ef_construction = 128)',
)


async def part_migration(url: str, admin: asyncpg.Connection, rounds: int, scale: str) -> dict[str, Any]:
    """``migrate_sqlite`` end to end (every index the schema ends with, ANALYZE) on the *scale*
    legacy data set, against the plan's script method and raw binary COPY of pre-parsed rows
    (the limit), each round in fresh databases, methods in a shuffled order; then the two chunk
    HNSW builds that the schema before migration 006 added to every load (timed on the loaded
    database)."""
    from benchmarks.legacy_paths import plan_script_migrate, prepare_raw_copy, raw_copy_load
    from dealhunter_vectors.legacy.database import build_legacy_database
    from dealhunter_vectors.migrate.loader import migrate_sqlite

    spec = ds._migration_spec(scale)
    data = REPO_ROOT / ".benchmarks" / "data"
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"migration_{scale}_{ds.fingerprint('migration', spec)}.sqlite"
    if not path.exists():
        tmp = path.with_suffix(".building")
        build_legacy_database(tmp, spec, overwrite=True, keep_embeddings=False)
        tmp.rename(path)
    prepared = prepare_raw_copy(path)  # outside every timing
    out: dict[str, list[float]] = {"ours_end_to_end": [], "plan_script": [], "raw_copy": [], "chunk_hnsw_builds": []}
    rows = chunk_rows = 0
    rng = random.Random(4)

    async def fresh(name: str) -> str:
        await ds.recreate_database(admin, name)
        db_url = with_database(url, name)
        conn = await asyncpg.connect(db_url)
        try:
            await apply_schema(conn)
        finally:
            await conn.close()
        return db_url

    async def ours(db_url: str) -> None:
        nonlocal rows, chunk_rows
        report = await migrate_sqlite(path, db_url)
        assert report.status == "completed"
        conn = await asyncpg.connect(db_url)
        try:
            chunk_rows = int(await conn.fetchval("SELECT count(*) FROM deal_embeddings") or 0) + int(
                await conn.fetchval("SELECT count(*) FROM raw_chunks") or 0
            )
        finally:
            await conn.close()

    async def plan(db_url: str) -> None:
        nonlocal rows
        rows = await plan_script_migrate(path, db_url)

    async def raw(db_url: str) -> None:
        conn = await asyncpg.connect(db_url)
        try:
            await register_vector_codecs(conn)
            await raw_copy_load(conn, prepared)
        finally:
            await conn.close()

    methods = {"ours_end_to_end": ours, "plan_script": plan, "raw_copy": raw}
    for _ in range(rounds):
        order = list(methods)
        rng.shuffle(order)
        for method in order:
            name = f"dhv_perf_mig_{method}"
            db_url = await fresh(name)
            t0 = time.perf_counter()
            await methods[method](db_url)
            out[method].append(time.perf_counter() - t0)
            if method == "ours_end_to_end":
                conn = await asyncpg.connect(db_url)
                try:
                    for key, value in ds.INDEX_BUILD_SETTINGS.items():
                        await conn.execute("SELECT set_config($1, $2, false)", key, value)
                    t0 = time.perf_counter()
                    for sql in CHUNK_HNSW_SQL:
                        await conn.execute(sql)
                    out["chunk_hnsw_builds"].append(time.perf_counter() - t0)
                finally:
                    await conn.close()
            await admin.execute(f"DROP DATABASE {quote_ident(name)} WITH (FORCE)")
    med = {k: statistics.median(v) for k, v in out.items()}
    return {
        "scale": scale,
        "source_mb": round(path.stat().st_size / 2**20, 1),
        "rows": rows,
        "chunk_rows": chunk_rows,
        "seconds_median": med,
        "seconds_all": out,
        "ours_vs_plan": med["plan_script"] / med["ours_end_to_end"],
        "ours_share_of_raw_copy": med["raw_copy"] / med["ours_end_to_end"],
        "before_006_estimate_s": med["ours_end_to_end"] + med["chunk_hnsw_builds"],
        "before_006_vs_plan": med["plan_script"] / (med["ours_end_to_end"] + med["chunk_hnsw_builds"]),
        "rounds": rounds,
    }


# ------------------------------------------------------------------ concurrency


def server_cpu(server_pid: int) -> float:
    total = 0.0
    try:
        main = psutil.Process(server_pid)
        for p in [main, *main.children(recursive=True)]:
            with_children = p.cpu_times()
            total += with_children.user + with_children.system
    except psutil.Error:
        pass
    return total


async def part_concurrency(
    url: str, admin: asyncpg.Connection, server_pid: int | None, total: int, levels: list[int]
) -> dict[str, Any]:
    db_url, _ = await ensure_database(admin, url, owner_database(), build_owner)
    space = ds.owner_space()
    rng = ds._rng(14, 4)
    work = []
    for _ in range(64):
        i = int(rng.integers(0, OWNERS))
        primary = int(ds._rng(7, 100, i).integers(0, ds.N_CLUSTERS))
        work.append((ds.qualification_id(i), query_with_cosine(space.centres[primary], 0.8, rng)))
    pool = await dv.create_pool(db_url, min_size=20, max_size=20)
    raw = await asyncpg.create_pool(
        db_url, min_size=20, max_size=20, init=register_vector_codecs, server_settings={"jit": "off"}
    )
    out: dict[str, Any] = {}
    try:

        async def lib(k: int) -> Any:
            q_id, q = work[k % len(work)]
            return await dv.search_deal_embeddings(pool, q, qualification_id=q_id, threshold=THRESHOLD, limit=LIMIT)

        async def bare(k: int) -> Any:
            q_id, q = work[k % len(work)]
            return await raw.fetch(BARE_OWNER_SQL, q, half_copy(q), q_id, 1 - THRESHOLD, LIMIT, DELTA)

        for k in range(len(work)):  # warm both paths over every owner's pages before any level is timed
            await lib(k)
            await bare(k)
        out = await _levels(lib, bare, total, levels, server_pid)
    finally:
        await dv.close_pool(pool)
        await raw.close()
    return out


async def _levels(
    lib: Callable[[int], Awaitable[Any]],
    bare: Callable[[int], Awaitable[Any]],
    total: int,
    levels: list[int],
    server_pid: int | None,
) -> dict[str, Any]:
    """*total* calls of each path at each concurrency level (the order of the two alternates):
    throughput, Python CPU and server CPU per call."""
    out: dict[str, Any] = {}
    for level in levels:
        for name, fn in (
            (("library", lib), ("bare_asyncpg", bare)) if level % 2 else (("bare_asyncpg", bare), ("library", lib))
        ):
            counter = iter(range(total))

            async def worker(fn: Callable[[int], Awaitable[Any]] = fn, counter: Any = counter) -> None:
                for k in counter:
                    await fn(k)

            s0 = server_cpu(server_pid) if server_pid else 0.0
            c0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(level)))
            t1, c1 = time.perf_counter(), time.process_time()
            s1 = server_cpu(server_pid) if server_pid else 0.0
            out[f"{name}_c{level}"] = {
                "throughput_qps": total / (t1 - t0),
                "python_cpu_ms_per_query": (c1 - c0) / total * 1e3,
                "server_cpu_ms_per_query": (s1 - s0) / total * 1e3 if server_pid else None,
            }
    return out


async def part_concurrency_global(
    url: str, admin: asyncpg.Connection, server_pid: int | None, total: int, levels: list[int], rows: int = 10_000
) -> dict[str, Any]:
    """The ``concurrency`` part's harness for the global search: ``find_similar_pre_qualifications
    (limit=10)`` through the library's pool vs the raw statement at ``ef_search`` 64 (the library's
    start count) through a raw asyncpg pool whose sessions carry the index settings."""
    vectors, queries = bench_set(rows)
    db_url, _ = await ensure_database(admin, url, f"dhv_perf_global_bench_{rows}", build_global(vectors))
    pool = await dv.create_pool(db_url, min_size=20, max_size=20)
    raw = await asyncpg.create_pool(
        db_url,
        min_size=20,
        max_size=20,
        init=register_vector_codecs,
        server_settings={
            "jit": "off",
            "hnsw.iterative_scan": "relaxed_order",
            "hnsw.ef_search": str(gs.ANN_START_CANDIDATES),
        },
    )
    try:

        async def lib(k: int) -> Any:
            q = queries[k % len(queries)]
            return await dv.find_similar_pre_qualifications(pool, q, limit=10, min_similarity_percent=0)

        async def bare(k: int) -> Any:
            return await raw.fetch(RAW_ANN_SQL, queries[k % len(queries)], gs.ANN_START_CANDIDATES)

        for k in range(len(queries)):
            await lib(k)
            await bare(k)
        return await _levels(lib, bare, total, levels, server_pid)
    finally:
        await dv.close_pool(pool)
        await raw.close()


# ------------------------------------------------------------------ main


def _fmt(res: dict[str, Any]) -> str:
    return json.dumps(res, indent=1, default=float)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--scale",
        choices=("small", "full"),
        default="small",
        help="full: 100 qualifications, global sets up to 100k rows, concurrency up to 128, the full"
        " migration set (the options below still override it)",
    )
    ap.add_argument("--parts", default="owner,global,write,concurrency")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--global-sizes", default=None, help="default 1000,10000 (full: 1000,10000,100000)")
    ap.add_argument("--efs", default="40,100,200,400")
    ap.add_argument("--sets", default="bench,hard2")
    ap.add_argument("--write-batches", type=int, default=20)
    ap.add_argument("--concurrency", default=None, help="default 1,8,32 (full: 1,8,32,128)")
    ap.add_argument("--migration-rounds", type=int, default=2)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--concurrency-queries", type=int, default=300)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    full = args.scale == "full"
    args.owners = 100 if full else 5
    args.global_sizes = args.global_sizes or ("1000,10000,100000" if full else "1000,10000")
    args.concurrency = args.concurrency or ("1,8,32,128" if full else "1,8,32")
    return args


async def main(args: argparse.Namespace) -> None:
    global OWNERS
    OWNERS = args.owners
    parts = set(args.parts.split(","))
    url, embedded = benchmark_server()
    admin = await asyncpg.connect(url)
    server_pid = None
    try:
        pid_file = PGDATA / "postmaster.pid"
        if pid_file.exists():
            server_pid = int(pid_file.read_text().split()[0])
        report: dict[str, Any] = {
            "run": datetime.now(UTC).isoformat(),
            "machine": f"{os.cpu_count()} CPUs {platform.machine()}, load avg {os.getloadavg()}",
            "python": platform.python_version(),
            "postgres": await admin.fetchval("SHOW server_version"),
            "scale": args.scale,
            "loop": args.loop,
            "owners": OWNERS,
        }
        if "owner" in parts:
            report["owner"] = await part_owner(url, admin, args.rounds)
            print("owner", _fmt(report["owner"]), flush=True)
        if "global" in parts:
            report["global"] = await part_global(
                url,
                admin,
                args.rounds,
                [int(x) for x in args.global_sizes.split(",")],
                [int(x) for x in args.efs.split(",")],
                tuple(args.sets.split(",")),
            )
            print("global", _fmt(report["global"]), flush=True)
        if "write" in parts:
            report["write"] = await part_write(url, admin, args.write_batches)
            print("write", _fmt(report["write"]), flush=True)
        if "migration" in parts:
            report["migration"] = await part_migration(url, admin, args.migration_rounds, args.scale)
            print("migration", _fmt(report["migration"]), flush=True)
        if "concurrency" in parts:
            report["concurrency"] = await part_concurrency(
                url, admin, server_pid, args.concurrency_queries, [int(x) for x in args.concurrency.split(",")]
            )
            print("concurrency", _fmt(report["concurrency"]), flush=True)
        if "concurrency_global" in parts:
            report["concurrency_global"] = await part_concurrency_global(
                url, admin, server_pid, args.concurrency_queries, [int(x) for x in args.concurrency.split(",")]
            )
            print("concurrency_global", _fmt(report["concurrency_global"]), flush=True)
        report["load_avg_end"] = os.getloadavg()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(out.read_text()) if out.exists() else {}
        previous.update({k: v for k, v in report.items()})
        out.write_text(json.dumps(previous, indent=1, default=float))
    finally:
        await admin.close()
        if embedded:
            from dealhunter_vectors.db.embedded import stop_embedded

            stop_embedded(PGDATA)


if __name__ == "__main__":
    _args = parse_args()
    if _args.loop == "uvloop":  # asyncpg's recommended event loop (the benchmarks extra installs it)
        import uvloop

        uvloop.run(main(_args))
    else:
        asyncio.run(main(_args))
