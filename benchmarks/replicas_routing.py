"""Cost of replica routing, on one machine: a primary and a streaming standby from the embedded binaries.

    python benchmarks/replicas_routing.py [--chunks 200] [--calls 300] [--concurrency 16]

Prints the median latency of one owner-scoped search (``search_deal_embeddings``, exact,
``--chunks`` 3072-d rows of one qualification) through: a plain pool on the primary, a
plain pool on the standby, and a ``ReplicatedPool`` (served by the standby), plus the
throughput of ``--concurrency`` tasks through each. Both servers share the machine's
cores, so this shows the routing overhead, not a read speed-up.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

import dealhunter_vectors as dv
from dealhunter_vectors.testing import seed_owners
from dealhunter_vectors.tooling.local import clone_standby, init_server, wait_for_replay

DIMS = 3072


async def _measure(db: Any, queries: list[Any], calls: int, concurrency: int) -> tuple[float, float]:
    lat = []
    for i in range(calls):
        t = time.perf_counter()
        await dv.search_deal_embeddings(db, queries[i % len(queries)], qualification_id="q1", threshold=0.1, limit=5)
        lat.append(time.perf_counter() - t)

    async def worker(k: int) -> None:
        for i in range(calls // concurrency):
            await dv.search_deal_embeddings(db, queries[(k + i) % len(queries)], qualification_id="q1", threshold=0.1)

    t = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    rate = (calls // concurrency) * concurrency / (time.perf_counter() - t)
    return statistics.median(lat) * 1000, rate


async def main(chunks: int, calls: int, concurrency: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dhv-bench-replica-"))
    primary = init_server(tmp / "primary", settings={"fsync": "off"})
    standby = None
    try:
        admin = await asyncpg.connect(primary.url())
        await admin.execute('CREATE DATABASE "bench"')
        await admin.close()
        url = primary.url("bench")
        rng = np.random.default_rng(1)
        async with dv.open_pool(url, min_size=1, max_size=2) as pool:
            await dv.apply_schema(pool)
            await seed_owners(pool, qualification_ids=("q1",))
            vectors = rng.standard_normal((chunks, DIMS)).astype(np.float32)
            await dv.insert_deal_chunks(
                pool,
                [
                    dv.DealChunk(qualification_id="q1", agent_name="a", chunk_type="t", content=str(i), embedding=v)
                    for i, v in enumerate(vectors)
                ],
            )
            await pool.execute("VACUUM ANALYZE")
        standby = clone_standby(primary, tmp / "standby")
        await wait_for_replay(url, standby.url("bench"))
        queries = list(rng.standard_normal((20, DIMS)).astype(np.float32))
        size = {"min_size": concurrency, "max_size": concurrency}
        async with (
            dv.open_pool(url, **size) as on_primary,
            dv.open_pool(standby.url("bench"), **size) as on_standby,
            dv.open_pool(url, replicas=[standby.url("bench")], replica_check_interval=1, **size) as routed,
        ):
            for name, db in (
                ("primary, plain pool", on_primary),
                ("standby, plain pool", on_standby),
                ("ReplicatedPool -> standby", routed),
            ):
                await _measure(db, queries, 50, concurrency)  # warm-up
                median_ms, rate = await _measure(db, queries, calls, concurrency)
                print(f"{name:28s} median {median_ms:7.2f} ms   {concurrency} tasks: {rate:7.1f} searches/s")
            print("routed reads served:", routed.reads_served)

            async def nothing(_pool: Any) -> None:
                return None

            n = 20_000
            t = time.perf_counter()
            for _ in range(n):
                await routed.run_read(nothing)
            print(f"routing decision alone (no query): {(time.perf_counter() - t) / n * 1e6:.1f} us per read")
    finally:
        if standby is not None:
            standby.stop("immediate")
        primary.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.chunks, args.calls, args.concurrency))
