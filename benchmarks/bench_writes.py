"""Write paths (issue 20): replacing a section and re-embedding in bulk, the library vs the app's way.

    .venv/bin/python -m benchmarks.bench_writes [--rounds 15] [--rows 10000] [--out results.json]

Side by side in one run, on one fresh database (``dhv_bench_writes``: schema applied, 2,000 other
chunks in the table), methods interleaved in a rotating order, medians:

**Replacing a 50-chunk section** (``pre_qualification_id = X and chunk_type = 'visualization'
and (metadata::jsonb)->>'sectionId' = S``, 3072-d embeddings):

* ``library``: :func:`dealhunter_vectors.replace_deal_chunks` with float32 numpy vectors (one
  transaction: lock the owner, delete by the selector, binary COPY; validation included);
* ``app, autocommit``: what the app does (``maphilipps/dealhunter``, drizzle): the DELETE, then
  50 single-row INSERTs, each embedding sent as JSON text and each statement its own transaction;
* ``app, one transaction``: the same DELETE and one multi-row INSERT of the 50 rows (JSON
  text), in one transaction: the best the app's statements can do.

The JSON texts are made before the clock starts (9 significant digits per number: what a
float32 needs, about what the OpenAI API returns); the library's time includes its validation.

**Bulk embedding update** of ``--rows`` rows by id:

* ``library``: :func:`dealhunter_vectors.update_embeddings` (binary COPY into a temporary table,
  one UPDATE; the row's model and content hash set too);
* ``row by row``: the app's backfill script: one ``UPDATE ... SET embedding = $2 WHERE id = $1``
  per row, JSON text, autocommit;
* ``row by row, one transaction``: the same UPDATEs with binary vectors, pipelined by asyncpg's
  ``executemany`` in one transaction (a stronger baseline than the app's).

Uses ``DATABASE_URL`` when it names a server, else the embedded PostgreSQL
(``DEALHUNTER_EMBEDDED_DATA_DIR``). Timings on a shared machine are preliminary; the ratios
come from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

import dealhunter_vectors as dv
from dealhunter_vectors.config import with_database
from dealhunter_vectors.testing import seed_owners

DB = "dhv_bench_writes"
DIMS = 3072
SECTION_ROWS = 50
OWNER = "pq-bench"
SECTION = {"pre_qualification_id": OWNER, "chunk_type": "visualization", "metadata_match": {"sectionId": "budget"}}
APP_DELETE = (
    "DELETE FROM deal_embeddings WHERE pre_qualification_id = $1 AND chunk_type = 'visualization'"
    " AND (metadata::jsonb)->>'sectionId' = $2"
)
APP_COLUMNS = (
    "id, pre_qualification_id, agent_name, chunk_type, chunk_index, content, metadata, embedding, created_at,"
    " updated_at"
)
APP_ROW = "(${0}, ${1}, ${2}, ${3}, ${4}, ${5}, ${6}, ${7}::text::vector, now(), now())"


def json_vector(v: np.ndarray[Any, Any]) -> str:
    """The embedding as the app sends it: a JSON array (9 significant digits)."""
    return "[" + ",".join(f"{x:.9g}" for x in v.tolist()) + "]"


def section_chunks(rng: np.random.Generator, round_no: int) -> list[dv.DealChunk]:
    vectors = rng.standard_normal((SECTION_ROWS, DIMS)).astype(np.float32)
    return [
        dv.DealChunk(
            id=f"r{round_no}-{i}",
            pre_qualification_id=OWNER,
            agent_name="prequal_section_agent",
            chunk_type="visualization",
            chunk_index=i,
            content=f"Abschnitt Budget, Teil {i}: Hosting, Betrieb und Weiterentwicklung",
            metadata={"sectionId": "budget", "part": i},
            embedding=vectors[i],
        )
        for i in range(SECTION_ROWS)
    ]


def app_rows(chunks: list[dv.DealChunk]) -> list[tuple[Any, ...]]:
    return [
        (
            c.id,
            c.pre_qualification_id,
            c.agent_name,
            c.chunk_type,
            c.chunk_index,
            c.content,
            json.dumps(c.metadata),
            json_vector(c.embedding),
        )
        for c in chunks
    ]


async def app_autocommit(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.execute(APP_DELETE, OWNER, "budget")
    sql = f"INSERT INTO deal_embeddings ({APP_COLUMNS}) VALUES {APP_ROW.format(*range(1, 9))}"
    for row in rows:
        await conn.execute(sql, *row)


async def app_one_transaction(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    values = ", ".join(APP_ROW.format(*range(8 * k + 1, 8 * k + 9)) for k in range(len(rows)))
    async with conn.transaction():
        await conn.execute(APP_DELETE, OWNER, "budget")
        await conn.execute(
            f"INSERT INTO deal_embeddings ({APP_COLUMNS}) VALUES {values}",
            *[v for row in rows for v in row],
        )


async def timed(work: Awaitable[Any]) -> float:
    """Seconds *work* (a coroutine, created but not started) takes to run."""
    t0 = time.perf_counter()
    await work
    return time.perf_counter() - t0


async def check_section(pool: dv.Pool, chunks: list[dv.DealChunk]) -> None:
    ids = await pool.fetchval(
        "SELECT array_agg(id ORDER BY id) FROM deal_embeddings WHERE pre_qualification_id = $1"
        " AND (metadata::jsonb)->>'sectionId' = 'budget'",
        OWNER,
    )
    assert ids == sorted(c.id for c in chunks), "the section does not hold exactly the last set"


async def bench_replace(pool: dv.Pool, rounds: int) -> dict[str, Any]:
    rng = np.random.default_rng(20)
    times: dict[str, list[float]] = {"library": [], "app, autocommit": [], "app, one transaction": []}
    methods = list(times)
    for round_no in range(rounds + 1):  # round 0 warms every path up (not counted)
        order = methods[round_no % 3 :] + methods[: round_no % 3]
        for k, name in enumerate(order):
            chunks = section_chunks(rng, round_no * 3 + k)
            rows = app_rows(chunks)
            async with pool.acquire() as conn:
                if name == "library":
                    t = await timed(dv.replace_deal_chunks(conn, chunks, **SECTION))
                elif name == "app, autocommit":
                    t = await timed(app_autocommit(conn, rows))
                else:
                    t = await timed(app_one_transaction(conn, rows))
            await check_section(pool, chunks)
            if round_no:
                times[name].append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}


async def update_one_by_one(conn: asyncpg.Connection, ids: list[str], texts: list[str]) -> None:
    for row_id, text in zip(ids, texts, strict=True):
        await conn.execute("UPDATE deal_embeddings SET embedding = $2::text::vector WHERE id = $1", row_id, text)


async def update_pipelined(conn: asyncpg.Connection, ids: list[str], vectors: np.ndarray[Any, Any]) -> None:
    async with conn.transaction():
        await conn.executemany(
            "UPDATE deal_embeddings SET embedding = $2 WHERE id = $1", list(zip(ids, vectors, strict=True))
        )


async def bench_update(pool: dv.Pool, rows: int) -> dict[str, Any]:
    await seed_owners(pool, pre_qualification_ids=["pq-bulk"])
    rng = np.random.default_rng(21)
    ids = [f"u{i:05d}" for i in range(rows)]
    for start in range(0, rows, 1000):
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(
                    id=ids[i],
                    pre_qualification_id="pq-bulk",
                    agent_name="a",
                    chunk_type="text",
                    content=f"Inhalt {i}",
                    embedding=rng.standard_normal(DIMS).astype(np.float32),
                )
                for i in range(start, min(rows, start + 1000))
            ],
        )
    await pool.execute("VACUUM ANALYZE deal_embeddings")
    times: dict[str, list[float]] = {"library": [], "row by row": [], "row by row, one transaction": []}
    plan = ["library", "row by row", "library", "row by row, one transaction", "library"]
    for name in plan:
        vectors = rng.standard_normal((rows, DIMS)).astype(np.float32)
        async with pool.acquire() as conn:
            if name == "library":
                updates = [dv.EmbeddingUpdate(id=i, embedding=v) for i, v in zip(ids, vectors, strict=True)]
                t = await timed(dv.update_embeddings(conn, updates, model="bench"))
            elif name == "row by row":
                t = await timed(update_one_by_one(conn, ids, [json_vector(v) for v in vectors]))
            else:
                t = await timed(update_pipelined(conn, ids, vectors))
        last = await pool.fetchval("SELECT embedding FROM deal_embeddings WHERE id = $1", ids[-1])
        assert last.tobytes() == vectors[-1].tobytes() or name == "row by row", name
        times[name].append(t)
        await pool.execute("VACUUM deal_embeddings")  # each method starts from a table without dead rows
    return {name: statistics.median(ts) for name, ts in times.items()}


async def background(pool: dv.Pool) -> None:
    owners = [f"pq-other-{i}" for i in range(20)]
    await seed_owners(pool, pre_qualification_ids=[OWNER, *owners])
    rng = np.random.default_rng(22)
    for owner in owners:
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(
                    pre_qualification_id=owner,
                    agent_name="prequal_section_agent",
                    chunk_type="visualization",
                    content=f"{owner} {i}",
                    metadata={"sectionId": "budget" if i % 2 else "risks"},
                    embedding=rng.standard_normal(DIMS).astype(np.float32),
                )
                for i in range(100)
            ],
        )
    await pool.execute("VACUUM ANALYZE deal_embeddings")


def report(results: dict[str, Any]) -> None:
    r, u = results["replace"], results["update"]
    print(f"\nreplacing a {SECTION_ROWS}-chunk section, median of {results['rounds']} rounds")
    print("| method | ms | library's speed-up |\n|---|---:|---:|")
    for name, seconds in r.items():
        print(f"| {name} | {seconds * 1e3:.1f} | {seconds / r['library']:.1f}x |")
    print(f"\nupdating the embeddings of {results['rows']:,} rows by id")
    print("| method | s | rows/s | library's speed-up |\n|---|---:|---:|---:|")
    for name, seconds in u.items():
        print(f"| {name} | {seconds:.2f} | {results['rows'] / seconds:,.0f} | {seconds / u['library']:.1f}x |")
    print(f"\n{results['machine']}; PostgreSQL {results['server_version']}; {results['settings']}")
    if results.get("rtt_ms"):
        print(f"over TCP through a relay that adds {results['rtt_ms']} ms to each round trip (benchmarks/net_delay.py)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=0.0,
        help="reach the server over TCP with this round-trip delay (benchmarks/net_delay.py; root + tc)",
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url or url.startswith("embedded"):
        from dealhunter_vectors.db.embedded import start_embedded

        url = start_embedded().url
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DB}"')
    finally:
        await admin.close()
    results: dict[str, Any] = {"rounds": args.rounds, "rows": args.rows, "rtt_ms": args.rtt_ms}
    with contextlib.ExitStack() as stack:
        if args.rtt_ms > 0:
            from benchmarks.net_delay import delayed_tcp

            url = stack.enter_context(delayed_tcp(url, args.rtt_ms))
        await run_all(with_database(url, DB), args, results)
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


async def run_all(url: str, args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Every measurement on one pool to *url*, filling *results*."""
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        await dv.apply_schema(pool)
        results["server_version"] = await pool.fetchval("SHOW server_version")
        settings = await pool.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers',"
            " 'wal_level') ORDER BY name"
        )
        results["settings"] = ", ".join(f"{r['name']}={r['setting']}" for r in settings)
        results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
        await background(pool)
        results["replace"] = await bench_replace(pool, args.rounds)
        results["update"] = await bench_update(pool, args.rows)


if __name__ == "__main__":
    asyncio.run(main())
