"""Latency and throughput of every call site on a local 1 + 2 Citus cluster next to a single node (one run).

    .venv/bin/python -m benchmarks.citus_latency [--repeat 30] [--concurrency 8]

Builds one legacy SQLite database, migrates it into the embedded single node and into the
distributed layout of a local cluster (coordinator + 2 workers, all on this machine), checks
that every call site returns the same hits on both, then times each call site (median and
p95 over ``--repeat`` random queries, warm caches) and its throughput with ``--concurrency``
searches in flight (calls per second over ``--repeat`` x concurrency calls). On one machine the cluster adds network
hops and the coordinator's planning; it shows correctness and routing, not speed-up.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import dealhunter_vectors as dv
from dealhunter_vectors.config import with_database
from dealhunter_vectors.db.embedded import start_embedded, stop_embedded
from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.tooling.cluster import default_citus_source, start_cluster, stop_cluster

Call = Callable[[Any, dict[str, Any]], Awaitable[Any]]

CALL_SITES: dict[str, Call] = {
    "lead (qualification, 0.3, agent filter + fallback)": lambda db, q: dv.search_deal_embeddings(
        db, q["v"], qualification_id=q["qual"], threshold=0.3, agent_names=["tech-agent"], filter_fallback=True
    ),
    "agent (pre-qualification, 0.7, tech stack)": lambda db, q: dv.search_deal_embeddings(
        db, q["v"], pre_qualification_id=q["pq"], threshold=0.7, tech_stack="dru", filter_fallback=True
    ),
    "raw chunks (0.2)": lambda db, q: dv.search_raw_chunks(db, q["v"], pre_qualification_id=q["pq"], threshold=0.2),
    "deep-scan (0.2, top-k fallback)": lambda db, q: dv.search_deal_embeddings(
        db,
        q["v"],
        qualification_id=q["qual"],
        threshold=0.2,
        limit=10,
        agent_name_contains="expert",
        fallback_to_top_k=True,
    ),
    "lead + MMR (lambda 0.5, top 5 of 20)": lambda db, q: dv.search_deal_embeddings(
        db, q["v"], qualification_id=q["qual"], threshold=0.2, mmr_lambda=0.5
    ),
    "search action (lead + agent + raw)": lambda db, q: dv.search_similar(
        db, q["v"], qualification_id=q["qual"], pre_qualification_id=q["pq"], threshold=0.5
    ),
    "list chunks (no query)": lambda db, q: dv.list_deal_chunks(db, qualification_id=q["qual"], limit=20),
    "duplicates, exact (all matches)": lambda db, q: dv.find_similar_pre_qualifications(db, q["v"]),
    "duplicates, index (limit 10)": lambda db, q: dv.find_similar_pre_qualifications(
        db, q["v"], min_similarity_percent=0, limit=10
    ),
}


async def _throughput(call: Call, pool: Any, queries: list[dict[str, Any]], concurrency: int) -> float:
    """Calls per second with *concurrency* callers sharing *pool*, len(queries) x concurrency calls."""
    calls = iter(range(len(queries) * concurrency))

    async def caller() -> None:
        for k in calls:
            await call(pool, queries[k % len(queries)])

    t = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return len(queries) * concurrency / (time.perf_counter() - t)


async def main(repeat: int, concurrency: int) -> None:
    source = default_citus_source()
    if source is None:
        raise SystemExit("no Citus source tarball (DEALHUNTER_CITUS_SOURCE)")
    work = Path(tempfile.mkdtemp(prefix="dhv-citus-bench-"))
    spec = dataclasses.replace(
        LegacyDatasetSpec.tiny(dims=3072, seed=7),
        pre_qualifications=20,
        qualifications=12,
        deal_embeddings_per_qualification=40,
        deal_embeddings_per_pre_qualification=30,
        raw_chunks_per_pre_qualification=20,
        n_clusters=8,
    )
    legacy = build_legacy_database(work / "legacy.db", spec)
    server = start_embedded(work / "single")
    t0 = time.perf_counter()
    cluster = await asyncio.to_thread(start_cluster, 2, directory=work / "cluster", citus_source=source)
    print(f"cluster started in {time.perf_counter() - t0:.1f} s (build cached)")
    admin = await dv.create_pool(server.url, min_size=1, max_size=1)
    await admin.execute("CREATE DATABASE bench")
    await dv.close_pool(admin)
    size = max(2, concurrency)
    single = await dv.create_pool(with_database(server.url, "bench"), min_size=1, max_size=size)
    dist = await dv.create_pool(cluster.url, min_size=1, max_size=size)
    try:
        await dv.apply_schema(dist, distributed=True)
        for name, pool in (("single node", single), ("cluster", dist)):
            t0 = time.perf_counter()
            report = await dv.migrate_sqlite(legacy.path, pool)
            assert report.ok, report
            print(f"migrate into {name}: {report.inserted} rows in {time.perf_counter() - t0:.1f} s")
        rng = __import__("numpy").random.default_rng(1)
        pick = random.Random(1)
        queries = []
        for _ in range(repeat):
            qual = pick.choice(legacy.qualification_ids)
            queries.append(
                {
                    "qual": qual,
                    "pq": pick.choice(legacy.pre_qualification_ids),
                    "v": legacy.space.query_near_centre(legacy.owner_clusters[qual], rng, cosine=0.7),
                }
            )
        print(
            f"\n{len(legacy.qualification_ids)} qualifications, {len(legacy.pre_qualification_ids)} "
            f"pre-qualifications, {legacy.row_counts['deal_embeddings']} deal chunks, "
            f"{legacy.row_counts['raw_chunks']} raw chunks; {repeat} queries per call site\n"
        )
        print("| call site | single node median / p95 ms | cluster median / p95 ms | same hits |")
        print("|---|---|---|---|")
        for site, call in CALL_SITES.items():
            same = True
            times: dict[str, list[float]] = {"single": [], "cluster": []}
            for q in queries[:3]:  # warm-up, and the answers must agree
                same &= await call(single, q) == await call(dist, q)
            for q in queries:
                for name, pool in (("single", single), ("cluster", dist)):
                    t = time.perf_counter()
                    await call(pool, q)
                    times[name].append((time.perf_counter() - t) * 1000)
            cells = []
            for name in ("single", "cluster"):
                xs = sorted(times[name])
                cells.append(f"{statistics.median(xs):.1f} / {xs[int(0.95 * (len(xs) - 1))]:.1f}")
            print(f"| {site} | {cells[0]} | {cells[1]} | {'yes' if same else 'NO'} |")
        print(f"\n| call site | single node calls/s | cluster calls/s ({concurrency} concurrent, pool {size}) |")
        print("|---|---:|---:|")
        for site, call in CALL_SITES.items():
            rates = [await _throughput(call, pool, queries, concurrency) for pool in (single, dist)]
            print(f"| {site} | {rates[0]:.0f} | {rates[1]:.0f} |")
    finally:
        await dv.close_pool(single)
        await dv.close_pool(dist)
        stop_cluster(cluster.directory, remove=True)
        stop_embedded(work / "single")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=8)
    options = parser.parse_args()
    asyncio.run(main(options.repeat, options.concurrency))
