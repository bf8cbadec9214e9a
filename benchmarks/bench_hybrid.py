"""Hybrid search and MMR: latency next to vector-only search, recall@5, and what migration 005 costs.

Run from the repository root (small: about two minutes on 2 cores)::

    .venv/bin/python -m benchmarks.bench_hybrid [--rows 1000] [--repeats 100]

Uses ``DATABASE_URL`` when it names a server, else an embedded PostgreSQL in a temporary
directory. Prints the markdown tables of docs/benchmarks.md ("Hybrid search"). Not a pytest
benchmark (no ``test_`` functions): the numbers are medians of ``--repeats`` sequential calls.

1. **Latency** over one 1,000-row qualification (the synthetic German corpus of
   ``tests/search/hybrid_corpus.py``: clustered 3072-d embeddings, 2-3 sentences each): the
   owner-scoped vector search (lead defaults: threshold 0.3, limit 5), the same with MMR, and
   the hybrid search text + vector / text only / vector only / with MMR; the query text is the
   query's exact term.
2. **MMR pairwise matrix**: the server computing the candidates' cosine matrix
   (``search/sql/mmr_pairwise_*.sql``) vs fetching their 12 KB vectors and using numpy.
3. **Recall@5** of vector-only, text-only and hybrid search on the synthetic corpus.
4. **Migration 005 and write paths**: the same rows written at schema version 4 and 5, both
   without the chunk HNSW indexes (migration 006 drops them): ``insert_deal_chunks``,
   ``replace_raw_chunks``, migration 005 over existing rows, ``set_text_search_config``, and
   the column / index sizes.
"""

from __future__ import annotations

import argparse
import asyncio
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

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "search"))

from hybrid_corpus import build_corpus, recall_at  # noqa: E402

import dealhunter_vectors as dv  # noqa: E402
from dealhunter_vectors.config import with_database  # noqa: E402
from dealhunter_vectors.db.embedded import is_embedded_url, start_embedded, stop_embedded  # noqa: E402
from dealhunter_vectors.db.fulltext import set_text_search_config  # noqa: E402
from dealhunter_vectors.db.schema import apply_schema  # noqa: E402
from dealhunter_vectors.search.hybrid import hybrid_search_deal_embeddings  # noqa: E402
from dealhunter_vectors.search.mmr import pairwise_similarity  # noqa: E402
from dealhunter_vectors.testing import seed_owners  # noqa: E402

OWNER = "q-bench"
DROP_CHUNK_HNSW = 'DROP INDEX IF EXISTS "deal_embeddings_embedding_hnsw_idx", "raw_chunks_embedding_hnsw_idx"'
"""Both write-cost databases without the chunk HNSW indexes, as migration 006 leaves the schema."""


async def timed_round_robin(
    cases: dict[str, Callable[[], Awaitable[Any]]], repeats: int
) -> dict[str, tuple[float, float]]:
    """Median and p95 in ms per case; the cases take turns call by call (the machine's noise hits all)."""
    for fn in cases.values():
        for _ in range(5):
            await fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            await fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
    out = {}
    for name, values in samples.items():
        values.sort()
        out[name] = (statistics.median(values), values[int(0.95 * (len(values) - 1))])
    return out


async def fresh_database(admin: asyncpg.Connection, url: str, name: str, target: int | None) -> dv.Pool:
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    pool = await dv.create_pool(with_database(url, name), min_size=1, max_size=4)
    await apply_schema(pool, target=target)
    return pool


def long_chunks(n: int, seed: int = 5) -> list[tuple[str, np.ndarray[Any, Any]]]:
    """*n* chunks of ~1.5 KB German text (corpus sentences concatenated) with clustered embeddings."""
    corpus = build_corpus(n_docs=max(n, 60), n_queries=10, seed=seed, prefix="w")
    texts = [d.content for d in corpus.docs]
    out = []
    for i, doc in enumerate(corpus.docs[:n]):
        body = " ".join(texts[(i + k) % len(texts)] for k in range(8))
        out.append((body, doc.embedding))
    return out


async def latency_and_recall(pool: dv.Pool, rows: int, repeats: int) -> dict[str, Any]:
    corpus = build_corpus(n_docs=rows, n_queries=10, prefix="b")
    await seed_owners(pool, qualification_ids=[OWNER])
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(
                id=d.id,
                qualification_id=OWNER,
                agent_name="agent",
                chunk_type="text",
                content=d.content,
                embedding=d.embedding,
            )
            for d in corpus.docs
        ],
    )
    await pool.execute("VACUUM ANALYZE deal_embeddings")
    queries = corpus.queries
    state = {"i": 0}

    def next_query() -> Any:
        state["i"] = (state["i"] + 1) % len(queries)
        return queries[state["i"]]

    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "vector-only `search_deal_embeddings` (t > 0.3, k 5)": lambda: dv.search_deal_embeddings(
            pool, next_query().embedding, qualification_id=OWNER
        ),
        "  + MMR (lambda 0.5, 20 candidates)": lambda: dv.search_deal_embeddings(
            pool, next_query().embedding, qualification_id=OWNER, mmr_lambda=0.5
        ),
        "hybrid, text + vector (50 candidates per leg, k 5)": lambda: hybrid_search_deal_embeddings(
            pool, (q := next_query()).term, q.embedding, qualification_id=OWNER
        ),
        "hybrid, text only": lambda: hybrid_search_deal_embeddings(
            pool, next_query().term, None, qualification_id=OWNER
        ),
        "hybrid, vector only": lambda: hybrid_search_deal_embeddings(
            pool, None, next_query().embedding, qualification_id=OWNER
        ),
        "hybrid + MMR (lambda 0.5 over the 50 fused candidates)": lambda: hybrid_search_deal_embeddings(
            pool, (q := next_query()).term, q.embedding, qualification_id=OWNER, mmr_lambda=0.5
        ),
    }
    latency = await timed_round_robin(cases, repeats)

    recalls: dict[str, list[float]] = {"vector-only": [], "text-only": [], "hybrid": []}
    for q in queries:
        found = {
            "vector-only": await dv.search_deal_embeddings(pool, q.embedding, qualification_id=OWNER, threshold=-1.0),
            "text-only": await hybrid_search_deal_embeddings(pool, q.term, None, qualification_id=OWNER),
            "hybrid": await hybrid_search_deal_embeddings(pool, q.term, q.embedding, qualification_id=OWNER),
        }
        for name, hits in found.items():
            recalls[name].append(recall_at([h.chunk_id for h in hits], q.relevant))

    # MMR's pairwise matrix: server-side vs shipping the vectors to numpy
    ids_by_n = {}
    for n in (20, 50):
        hits = await dv.search_deal_embeddings(
            pool, queries[0].embedding, qualification_id=OWNER, threshold=-1.0, limit=n
        )
        ids_by_n[n] = [h.chunk_id for h in hits]
    pairwise = {}
    async with pool.acquire() as conn:
        for n, ids in ids_by_n.items():

            async def server(ids: list[str] = ids) -> Any:
                return await pairwise_similarity(conn, "deal_embeddings", ids, owner=("qualification_id", OWNER))

            async def client(ids: list[str] = ids) -> Any:
                rows = await conn.fetch(
                    "SELECT u.ord, t.embedding FROM unnest($1::text[]) WITH ORDINALITY u(id, ord)"
                    " JOIN deal_embeddings t ON t.id = u.id ORDER BY u.ord",
                    ids,
                )
                m = np.stack([np.asarray(r["embedding"], np.float64) for r in rows])
                m /= np.linalg.norm(m, axis=1, keepdims=True)
                return m @ m.T

            a, b = await server(), await client()
            assert np.allclose(a, b, atol=1e-6)
            both = await timed_round_robin({"server": server, "client": client}, repeats)
            pairwise[n] = (both["server"], both["client"])
    return {
        "latency": latency,
        "recall": {k: sum(v) / len(v) for k, v in recalls.items()},
        "pairwise": pairwise,
    }


async def interleaved_inserts(pools: dict[int, dv.Pool], deal: list[dv.DealChunk]) -> dict[int, float]:
    """Insert *deal* in batches of 100 into both databases, alternating which goes first; seconds each."""
    spent = dict.fromkeys(pools, 0.0)
    for b, k in enumerate(range(0, len(deal), 100)):
        order = sorted(pools) if b % 2 == 0 else sorted(pools, reverse=True)
        for version in order:
            t0 = time.perf_counter()
            await dv.insert_deal_chunks(pools[version], deal[k : k + 100])
            spent[version] += time.perf_counter() - t0
    return spent


async def write_costs(admin: asyncpg.Connection, url: str, rows: int) -> dict[str, Any]:
    """The same writes at schema 004 and 005, interleaved batch by batch (the machine's noise hits both)."""
    chunks = long_chunks(rows)
    deal = [
        dv.DealChunk(
            id=f"d{i:05d}", qualification_id="q-w", agent_name="agent", chunk_type="text", content=text, embedding=vec
        )
        for i, (text, vec) in enumerate(chunks)
    ]
    raw = [
        dv.RawChunk(id=f"r{i:05d}", chunk_index=i, content=text, token_count=300, embedding=vec)
        for i, (text, vec) in enumerate(chunks)
    ]
    names = {4: "dhv_bench_hybrid_v4", 5: "dhv_bench_hybrid_v5"}
    pools = {v: await fresh_database(admin, url, name, target=v) for v, name in names.items()}
    out: dict[str, Any] = {"content_avg_chars": sum(len(c.content) for c in deal) / len(deal)}
    try:
        for pool in pools.values():
            await seed_owners(pool, pre_qualification_ids=["pq-w"], qualification_ids=["q-w"])
            await pool.execute(DROP_CHUNK_HNSW)  # as migration 006 does: the chunk tables have none
        out["insert"] = await interleaved_inserts(pools, deal)
        replace: dict[int, list[float]] = {4: [], 5: []}
        for r in range(3):
            for version in sorted(pools) if r % 2 == 0 else sorted(pools, reverse=True):
                t0 = time.perf_counter()
                await dv.replace_raw_chunks(pools[version], "pq-w", raw)
                replace[version].append(time.perf_counter() - t0)
        out["replace_raw"] = {v: statistics.median(t) for v, t in replace.items()}
        out["size"] = {
            v: await p.fetchval("SELECT pg_total_relation_size('deal_embeddings')") for v, p in pools.items()
        }
        out["gin_bytes"] = await pools[5].fetchval("SELECT pg_relation_size('deal_embeddings_content_tsv_idx')")
        out["tsv_avg_bytes"] = await pools[5].fetchval(
            "SELECT avg(pg_column_size(content_tsv))::float8 FROM deal_embeddings"
        )
        t0 = time.perf_counter()
        await apply_schema(pools[4], target=5)  # migration 005 over the existing rows
        out["migration_005"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await set_text_search_config(pools[5], "simple")
        out["set_config"] = time.perf_counter() - t0
    finally:
        for version, pool in pools.items():
            await dv.close_pool(pool)
            await admin.execute(f'DROP DATABASE IF EXISTS "{names[version]}" WITH (FORCE)')
    return out


def report(res: dict[str, Any], writes: dict[str, Any] | None, rows: int, repeats: int) -> None:
    print(f"\n#### Latency, one {rows:,}-row qualification, {repeats} sequential calls each (cases in turn)\n")
    print("| search | median ms | p95 ms |")
    print("|---|---:|---:|")
    for name, (med, p95) in res["latency"].items():
        print(f"| {name} | {med:.2f} | {p95:.2f} |")
    print("\n#### MMR: the candidates' cosine matrix\n")
    print("| candidates | server-side matrix, median ms | fetch vectors + numpy, median ms |")
    print("|---:|---:|---:|")
    for n, (server, client) in res["pairwise"].items():
        print(f"| {n} | {server[0]:.2f} | {client[0]:.2f} |")
    print("\n#### Recall@5 (synthetic corpus, 10 queries)\n")
    print("| search | recall@5 |")
    print("|---|---:|")
    for name, value in res["recall"].items():
        print(f"| {name} | {value:.2f} |")
    if writes is None:
        return
    print(
        f"\n#### Migration 005 and the write paths ({rows:,} chunks of ~{writes['content_avg_chars']:.0f} characters,"
        " schema 004 and 005 written batch by batch in turn)\n"
    )
    print("| | schema 004 | schema 005 | change |")
    print("|---|---:|---:|---:|")
    lines = (
        ("insert", "`insert_deal_chunks`, batches of 100, s"),
        ("replace_raw", "`replace_raw_chunks` (one call of all chunks), median of 3, s"),
        ("size", "deal_embeddings total size (heap, TOAST, indexes), MB"),
    )
    for key, label in lines:
        a, b = writes[key][4], writes[key][5]
        scale = 1e-6 if key == "size" else 1.0
        print(f"| {label} | {a * scale:.2f} | {b * scale:.2f} | {100 * (b / a - 1):+.0f} % |")
    print(
        f"\nMigration 005 over those {rows:,} deal + {rows:,} raw rows (two table rewrites with their btree"
        f" indexes, two GIN builds; no chunk HNSW index, as after migration 006): {writes['migration_005']:.2f} s;"
        f" `set_text_search_config(pool, 'simple')`"
        f" (the same rebuild): {writes['set_config']:.2f} s. content_tsv: {writes['tsv_avg_bytes']:.0f} bytes per"
        f" row on average; GIN index of deal_embeddings: {writes['gin_bytes'] / 1e6:.2f} MB."
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--skip-writes", action="store_true", help="only latency, MMR matrix and recall")
    args = parser.parse_args()
    env = os.environ.get("DATABASE_URL")
    data_dir = None
    if env and not is_embedded_url(env):
        url = env
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="dhv-bench-hybrid-"))
        url = start_embedded(data_dir / "pgdata").url
    try:
        admin = await asyncpg.connect(url)
        try:
            pool = await fresh_database(admin, url, "dhv_bench_hybrid", target=None)
            try:
                res = await latency_and_recall(pool, args.rows, args.repeats)
            finally:
                await dv.close_pool(pool)
                await admin.execute('DROP DATABASE IF EXISTS "dhv_bench_hybrid" WITH (FORCE)')
            writes = None if args.skip_writes else await write_costs(admin, url, args.rows)
        finally:
            await admin.close()
        report(res, writes, args.rows, args.repeats)
    finally:
        if data_dir is not None:
            stop_embedded(data_dir / "pgdata")


if __name__ == "__main__":
    asyncio.run(main())
