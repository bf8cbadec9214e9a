"""What observation costs: the owner statements' counts, and OpenTelemetry on vs off, side by side.

Run from the repository root (about a minute on 2 cores)::

    .venv/bin/python -m benchmarks.bench_otel [--rows 1000] [--repeats 300]

Uses ``DATABASE_URL`` when it names a server, else an embedded PostgreSQL in a temporary
directory. Prints the markdown tables of docs/benchmarks.md, "OpenTelemetry". Not a pytest
benchmark: medians and p95 of ``--repeats`` calls, the cases taking turns call by call (the
machine's noise hits all of them alike).

1. **The counts in SQL**: ``search/sql/deal_search.sql``'s one-request form as shipped
   (``fallback``, ``rows_scored``, ``rows_reranked`` on every result row) vs the same text
   with those three columns removed, on one qualification of ``--rows`` clustered 3072-d
   rows (lead defaults: threshold 0.3, limit 5).
2. **OpenTelemetry on vs off**: ``search_deal_embeddings`` through the library with nothing
   subscribed (the code path of a process without the ``[otel]`` extra: the hooks see an
   empty subscriber tuple), with a subscriber that does nothing (the library's own hooks),
   and with ``otel.instrument()`` and the SDK (a ``BatchSpanProcessor`` or a
   ``SimpleSpanProcessor`` into an in-memory exporter, every trace or 10 % of them sampled;
   a ``MeterProvider`` with an in-memory reader); the hybrid search (text + vector) the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

import dealhunter_vectors as dv
from dealhunter_vectors import observe
from dealhunter_vectors.config import with_database
from dealhunter_vectors.db.embedded import is_embedded_url, start_embedded, stop_embedded
from dealhunter_vectors.legacy.synthetic import clustered_embeddings
from dealhunter_vectors.search.owner import _DealParams
from dealhunter_vectors.search.statements import DEAL_SEARCH
from dealhunter_vectors.testing import seed_owners

OWNER = "q-bench-otel"
_COUNT_COLUMNS = (
    "t.distance, t.fallback,\n           (SELECT count(*) FROM half) AS rows_scored, "
    "(SELECT count(*) FROM scored) AS rows_reranked\n"
)


class _NullSubscriber:
    """Listens and does nothing: what the library's own hooks cost once something subscribes."""

    def started(self, observation: observe.Observation) -> None:
        pass

    def finished(self, observation: observe.Observation) -> None:
        pass

    def measured(self, name: str, value: float, attributes: Any) -> None:
        pass


def without_counts(sql: str) -> str:
    """The deal search without the observation columns (the statement before issue 21)."""
    if _COUNT_COLUMNS not in sql:
        raise SystemExit("deal_search.sql changed: update benchmarks/bench_otel.py's _COUNT_COLUMNS")
    return sql.replace(_COUNT_COLUMNS, "t.distance\n")


async def timed_round_robin(
    cases: dict[str, Callable[[], Awaitable[Any]]], repeats: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Per case: wall ms and this thread's CPU ms (the event loop's own work, robust to other load) per call."""
    for fn in cases.values():
        for _ in range(10):
            await fn()
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            c0, t0 = time.thread_time(), time.perf_counter()
            await fn()
            samples[name][0].append((time.perf_counter() - t0) * 1000)
            samples[name][1].append((time.thread_time() - c0) * 1000)
    return samples


HEADER = (
    "| {what} | median ms | p95 ms | ratio | loop-thread CPU ms (median) | added CPU / off wall |\n"
    "|---|---|---|---|---|---|"
)


def _row(name: str, measured: tuple[list[float], list[float]], base: tuple[list[float], list[float]] | None) -> str:
    wall, cpu = sorted(measured[0]), measured[1]
    med = statistics.median(wall)
    p95 = wall[int(0.95 * (len(wall) - 1))]
    cpu_med = statistics.median(cpu)
    if base is None:
        return f"| {name} | {med:.3f} | {p95:.3f} | 1.00 | {cpu_med:.3f} | |"
    ratio = med / statistics.median(base[0])
    added = (cpu_med - statistics.median(base[1])) / statistics.median(base[0])
    return f"| {name} | {med:.3f} | {p95:.3f} | {ratio:.3f} | {cpu_med:.3f} | {100 * added:+.1f} % |"


async def run(url: str, rows: int, repeats: int) -> None:
    admin = await asyncpg.connect(url)
    try:
        await admin.execute('DROP DATABASE IF EXISTS "dhv_bench_otel" WITH (FORCE)')
        await admin.execute('CREATE DATABASE "dhv_bench_otel"')
    finally:
        await admin.close()
    vectors = clustered_embeddings(rows + 20, seed=21)
    async with dv.open_pool(with_database(url, "dhv_bench_otel"), min_size=1, max_size=2) as pool:
        await dv.apply_schema(pool)
        await seed_owners(pool, qualification_ids=[OWNER])
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(
                    qualification_id=OWNER, agent_name="a", chunk_type="t", content=f"Angebot {i} Wartung", embedding=v
                )
                for i, v in enumerate(vectors[:rows])
            ],
        )
        await pool.execute("ANALYZE")
        queries = vectors[rows:]
        turn = iter(range(10**9))

        def query() -> np.ndarray[Any, Any]:
            return queries[next(turn) % len(queries)]

        shipped = DEAL_SEARCH["qualification_id"].single
        stripped = without_counts(shipped)

        async def sql(text: str) -> None:
            params = _DealParams(dv.DealChunkSearch(query_embedding=query(), qualification_id=OWNER, threshold=0.3))
            async with pool.acquire() as conn:
                await conn.fetch(text, *params.request.params)

        first = _DealParams(dv.DealChunkSearch(query_embedding=queries[0], qualification_id=OWNER, threshold=0.3))
        found = await pool.fetch(shipped, *first.request.params)
        samples = await timed_round_robin(
            {"without counts": lambda: sql(stripped), "with counts (shipped)": lambda: sql(shipped)}, repeats
        )
        print(f"\n### The counts in SQL ({rows} rows, {len(found)} hits, {found[0]['rows_reranked']} re-ranked)\n")
        print(HEADER.format(what="deal_search.sql one-request form"))
        print(_row("without the three columns", samples["without counts"], None))
        print(
            _row(
                "with fallback, rows_scored, rows_reranked", samples["with counts (shipped)"], samples["without counts"]
            )
        )

        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from dealhunter_vectors.integrations import otel

        exporter = InMemorySpanExporter()
        subscribers: dict[str, Any] = {}
        providers = []
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

        for label, processor, sampler in (
            ("batch", BatchSpanProcessor, None),
            ("simple", SimpleSpanProcessor, None),
            ("sampled", BatchSpanProcessor, TraceIdRatioBased(0.1)),
        ):
            tracer_provider = TracerProvider(sampler=sampler)
            tracer_provider.add_span_processor(processor(exporter))
            providers.append(tracer_provider)
            otel.instrument(
                tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()])
            )
            subscribers[label] = observe.SUBSCRIBERS[-1]  # switched on and off per call (no set-up cost timed)
            otel.uninstrument()
        subscribers["null"] = _NullSubscriber()

        async def search(label: str | None) -> None:
            if label is not None:
                observe.subscribe(subscribers[label])
            try:
                await dv.search_deal_embeddings(pool, query(), qualification_id=OWNER, threshold=0.3, limit=5)
            finally:
                if label is not None:
                    observe.unsubscribe(subscribers[label])

        async def hybrid(label: str | None) -> None:
            if label is not None:
                observe.subscribe(subscribers[label])
            try:
                await dv.hybrid_search_deal_embeddings(pool, "Wartung", query(), qualification_id=OWNER, limit=5)
            finally:
                if label is not None:
                    observe.unsubscribe(subscribers[label])

        samples = await timed_round_robin(
            {
                "search off": lambda: search(None),
                "search null": lambda: search("null"),
                "search batch": lambda: search("batch"),
                "search simple": lambda: search("simple"),
                "search sampled": lambda: search("sampled"),
                "hybrid off": lambda: hybrid(None),
                "hybrid null": lambda: hybrid("null"),
                "hybrid batch": lambda: hybrid("batch"),
                "hybrid simple": lambda: hybrid("simple"),
                "hybrid sampled": lambda: hybrid("sampled"),
            },
            repeats,
        )
        for provider in providers:
            provider.force_flush()
        spans = len(exporter.get_finished_spans())
        print(f"\n### OpenTelemetry on vs off ({rows} rows; {spans} spans exported)\n")
        print(HEADER.format(what="call"))
        for call, name in (("search", "search_deal_embeddings"), ("hybrid", "hybrid_search_deal_embeddings")):
            off = samples[f"{call} off"]
            print(_row(f"{name}, nothing subscribed", off, None))
            print(_row(f"{name}, a subscriber that does nothing (the core's hooks)", samples[f"{call} null"], off))
            print(_row(f"{name}, instrument(): SDK, BatchSpanProcessor", samples[f"{call} batch"], off))
            print(_row(f"{name}, instrument(): SDK, SimpleSpanProcessor", samples[f"{call} simple"], off))
            print(_row(f"{name}, instrument(): SDK, 10% of traces sampled", samples[f"{call} sampled"], off))
        for provider in providers:
            provider.shutdown()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    env = os.environ.get("DATABASE_URL")
    data_dir: Path | None = None
    if env and not is_embedded_url(env):
        url = env
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="dhv-bench-otel-"))
        url = start_embedded(data_dir / "pgdata").url
    try:
        await run(url, args.rows, args.repeats)
    finally:
        if data_dir is not None:
            stop_embedded(data_dir / "pgdata")


if __name__ == "__main__":
    asyncio.run(main())
