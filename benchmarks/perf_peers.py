"""Issue 14, goal 3: the library next to langchain-postgres and llama-index on the same data, interleaved.

Needs the ``benchmarks`` extra (``pip install -e '.[benchmarks]'``); the embedded server of
``perf_side_by_side`` unless ``PERF_DATABASE_URL`` names another::

    python -m benchmarks.perf_peers --rounds 40 --insert-batches 200

Data (one database ``dhv_perf_peers``): the chunks of two qualifications of the benchmark's
owner-scoped set (1,904 vectors with embeddings, 3072-d), loaded into the library's schema
(``deal_embeddings``; the same vectors as ``pre_qualifications`` for the global search), into a
langchain-postgres ``PGVectorStore`` table (async engine, owner as a metadata column, as its
docs recommend for filters; ``vector(3072)`` cannot be HNSW-indexed, so it scans) and into a
llama-index ``PGVectorStore`` (``use_halfvec=True``, HNSW ``halfvec_cosine_ops``, m 16,
ef_construction 64, ef_search 40: its documented defaults; owner as a metadata filter).

* owner-scoped: top 5 of one owner with similarity > 0.3 (ours); the peers cannot put a
  threshold before the top k, so they return the top 5 of the owner and the threshold is
  applied afterwards (same rows here: every query has >= 5 rows above 0.3).
* global: top 10 over all 1,904 vectors; recall@10 against numpy float64.
* insert: ``--insert-batches`` batches of 50 new chunks (200: the issue's 10,000 chunks), per
  library, batches interleaved.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

import dealhunter_vectors as dv
from benchmarks import datasets as ds
from benchmarks.perf_side_by_side import THRESHOLD, benchmark_server, exact64, same
from dealhunter_vectors.db.schema import apply_schema, create_vector_indexes
from dealhunter_vectors.legacy.synthetic import query_with_cosine
from dealhunter_vectors.testing import with_database

OUT = Path(__file__).resolve().parents[1] / ".benchmarks" / "runs" / "perf_peers.json"
DB = "dhv_perf_peers"
LC_TABLE = "lc_chunks"
LI_TABLE = "li_chunks"


class _NoEmbeddings:
    """langchain needs an Embeddings object; every call here passes vectors directly."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    def embed_query(self, text: str) -> list[float]:
        raise NotImplementedError

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    async def aembed_query(self, text: str) -> list[float]:
        raise NotImplementedError


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": statistics.median(samples) * 1e3, "n": len(samples)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--insert-batches", type=int, default=20)
    args = ap.parse_args()
    url, _ = benchmark_server()  # PERF_DATABASE_URL, else perf_side_by_side's embedded server
    admin = await asyncpg.connect(url)
    await ds.recreate_database(admin, DB)
    await admin.close()
    db_url = with_database(url, DB)

    from langchain_core.embeddings import Embeddings
    from langchain_postgres import Column, PGEngine, PGVectorStore
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery
    from llama_index.vector_stores.postgres import PGVectorStore as LlamaStore

    # ------------------------------------------------------------------ data
    owners = [ds.owner_chunks(i) for i in range(2)]
    rows = [
        (o.qualification_id, o.rows[k], o.vectors[k]) for o in owners for k in range(len(o.rows)) if o.has_embedding[k]
    ]
    ids = [r[1]["id"] for r in rows]
    matrix = np.stack([r[2] for r in rows])
    space = ds.owner_space()
    rng = ds._rng(14, 9)
    owner_queries = [query_with_cosine(space.centres[owners[0].primary_cluster], 0.8, rng) for _ in range(20)]
    global_queries = ds.global_queries(matrix, 20)
    owner0 = owners[0].qualification_id
    mask0 = np.array([r[0] == owner0 for r in rows])
    ids0 = [i for i, m in zip(ids, mask0, strict=True) if m]

    # ours
    pool = await dv.create_pool(db_url, min_size=2, max_size=4)
    async with pool.acquire() as conn:
        await apply_schema(conn)
        await ds._parents(conn)
        for i, o in enumerate(owners):
            await ds.copy_owner(conn, o, ds.pre_qualification_id(900 + i), "K")
        await conn.execute('DROP INDEX IF EXISTS "pre_qualifications_description_embedding_hnsw_idx"')
        await conn.copy_records_to_table(
            "pre_qualifications",
            records=[ds._pq_record(f"g{row_id}", ds._T0, vec) for row_id, vec in zip(ids, matrix, strict=True)],
            columns=ds._PQ_COLUMNS,
        )
        await create_vector_indexes(conn)
        await conn.execute("VACUUM ANALYZE")

    # langchain-postgres (async engine; owner as a metadata column)
    lc_url = db_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    lc_engine = PGEngine.from_connection_string(url=lc_url)
    await lc_engine.ainit_vectorstore_table(
        LC_TABLE, 3072, metadata_columns=[Column("owner", "TEXT")], overwrite_existing=True
    )

    class NoEmb(_NoEmbeddings, Embeddings):
        pass

    lc = await PGVectorStore.create(
        lc_engine, embedding_service=NoEmb(), table_name=LC_TABLE, metadata_columns=["owner"]
    )
    for lo in range(0, len(rows), 200):
        part = rows[lo : lo + 200]
        await lc.aadd_embeddings(
            [r[1]["content"] for r in part],
            [r[2].tolist() for r in part],
            metadatas=[{"owner": r[0], "chunk_id": r[1]["id"]} for r in part],
            ids=[str(uuid.uuid4()) for _ in part],
        )

    # llama-index (halfvec HNSW, its documented parameters)
    li = LlamaStore.from_params(
        connection_string=db_url.replace("postgresql://", "postgresql+psycopg2://", 1),
        async_connection_string=lc_url,
        table_name=LI_TABLE,
        embed_dim=3072,
        use_halfvec=True,
        hnsw_kwargs={
            "hnsw_m": 16,
            "hnsw_ef_construction": 64,
            "hnsw_ef_search": 40,
            "hnsw_dist_method": "halfvec_cosine_ops",
        },
    )
    nodes = [
        TextNode(
            id_=str(uuid.uuid4()),
            text=r[1]["content"],
            embedding=r[2].tolist(),
            metadata={"owner": r[0], "chunk_id": r[1]["id"]},
        )
        for r in rows
    ]
    for lo in range(0, len(nodes), 200):
        await li.async_add(nodes[lo : lo + 200])
    conn = await asyncpg.connect(db_url)
    await conn.execute("VACUUM ANALYZE")
    await conn.close()

    # ------------------------------------------------------------------ paths
    async def ours_owner(q: np.ndarray) -> list[tuple[str, float]]:
        hits = await dv.search_deal_embeddings(pool, q, qualification_id=owner0, threshold=THRESHOLD, limit=5)
        return [(h.chunk_id, float(h.similarity or 0)) for h in hits]

    async def lc_owner(q: np.ndarray) -> list[tuple[str, float]]:
        res = await lc.asimilarity_search_with_score_by_vector(q.tolist(), k=5, filter={"owner": {"$eq": owner0}})
        return [(d.metadata["chunk_id"], 1 - s) for d, s in res if 1 - s > THRESHOLD]

    async def li_owner(q: np.ndarray) -> list[tuple[str, float]]:
        flt = MetadataFilters(filters=[MetadataFilter(key="owner", value=owner0)])
        res = await li.aquery(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=5, filters=flt))
        return [(n.metadata["chunk_id"], s) for n, s in zip(res.nodes, res.similarities, strict=True) if s > THRESHOLD]

    async def ours_global(q: np.ndarray) -> list[str]:
        res = await dv.find_similar_pre_qualifications(pool, q, min_similarity_percent=0, limit=10)
        return [m.pre_qualification_id[1:] for m in res]

    async def lc_global(q: np.ndarray) -> list[str]:
        res = await lc.asimilarity_search_with_score_by_vector(q.tolist(), k=10)
        return [d.metadata["chunk_id"] for d, _ in res]

    async def li_global(q: np.ndarray) -> list[str]:
        res = await li.aquery(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=10))
        return [n.metadata["chunk_id"] for n in res.nodes]

    report: dict[str, Any] = {"rows": len(rows), "owner_rows": int(mask0.sum())}
    # exactness first
    exact_owner = {"ours": 0, "langchain": 0, "llama_index_hnsw": 0}
    for q in owner_queries:
        ref = exact64(matrix[mask0], q, ids0)
        for name, fn in (("ours", ours_owner), ("langchain", lc_owner), ("llama_index_hnsw", li_owner)):
            try:
                same(ref, await fn(q), name)
                exact_owner[name] += 1
            except AssertionError:
                pass
    report["owner_exact_queries"] = {k: f"{v}/{len(owner_queries)}" for k, v in exact_owner.items()}
    truth = ds.exact_top_k(matrix, global_queries, 10)
    recall: dict[str, list[float]] = {"ours": [], "langchain": [], "llama_index_hnsw": []}
    for qi, q in enumerate(global_queries):
        want = {ids[j] for j in truth[qi]}
        for name, fn in (("ours", ours_global), ("langchain", lc_global), ("llama_index_hnsw", li_global)):
            recall[name].append(len(want & set(await fn(q))) / 10)
    report["global_recall_at_10"] = {k: float(np.mean(v)) for k, v in recall.items()}

    async def timed(paths: dict[str, Callable[[np.ndarray], Awaitable[Any]]], queries: Any) -> dict[str, Any]:
        samples: dict[str, list[float]] = {n: [] for n in paths}
        cpu: dict[str, list[float]] = {n: [] for n in paths}
        order = list(paths)
        shuffle = random.Random(3)
        for r in range(args.rounds + 3):
            shuffle.shuffle(order)
            q = queries[r % len(queries)]
            for n in order:
                c0, t0 = time.process_time(), time.perf_counter()
                await paths[n](q)
                t1, c1 = time.perf_counter(), time.process_time()
                if r >= 3:
                    samples[n].append(t1 - t0)
                    cpu[n].append(c1 - c0)
        return {n: {**summary(samples[n]), "python_cpu_ms": statistics.median(cpu[n]) * 1e3} for n in paths}

    report["owner"] = await timed(
        {"ours": ours_owner, "langchain": lc_owner, "llama_index_hnsw": li_owner}, owner_queries
    )
    report["global"] = await timed(
        {"ours": ours_global, "langchain": lc_global, "llama_index_hnsw": li_global}, global_queries
    )

    # inserts: 50 new chunks per batch, interleaved
    from dealhunter_vectors.models import DealChunk

    ins: dict[str, list[float]] = {"ours": [], "langchain": [], "llama_index_hnsw": []}
    for b in range(args.insert_batches):
        vecs = space.sample(ds._rng(14, 10, b).integers(0, ds.N_CLUSTERS, size=50), seed=(14, 11, b))
        order = list(ins) if b % 2 == 0 else list(ins)[::-1]
        for name in order:
            t0 = time.perf_counter()
            if name == "ours":
                await dv.insert_deal_chunks(
                    pool,
                    [
                        DealChunk(
                            id=f"ins{b:03d}_{k:02d}",
                            qualification_id=owner0,
                            agent_name="tech",
                            chunk_type="text",
                            chunk_index=k,
                            content="x" * 800,
                            metadata={"cms": "drupal"},
                            embedding=vecs[k],
                        )
                        for k in range(50)
                    ],
                )
            elif name == "langchain":
                await lc.aadd_embeddings(
                    ["x" * 800] * 50,
                    [v.tolist() for v in vecs],
                    metadatas=[{"owner": owner0, "chunk_id": f"ins{b}_{k}"} for k in range(50)],
                    ids=[str(uuid.uuid4()) for _ in range(50)],
                )
            else:
                await li.async_add(
                    [
                        TextNode(
                            id_=str(uuid.uuid4()),
                            text="x" * 800,
                            embedding=v.tolist(),
                            metadata={"owner": owner0, "chunk_id": f"ins{b}_{k}"},
                        )
                        for k, v in enumerate(vecs)
                    ]
                )
            ins[name].append(time.perf_counter() - t0)
    report["insert_rows_per_s"] = {n: 50 * len(s) / sum(s) for n, s in ins.items()}
    print(json.dumps(report, indent=1))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1))
    await dv.close_pool(pool)
    await lc_engine.close()
    await li.close()


if __name__ == "__main__":
    asyncio.run(main())
