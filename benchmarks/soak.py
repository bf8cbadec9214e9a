"""Soak: mixed searches and writes through ONE pool for a long run; does anything grow or escape untyped?

    python benchmarks/soak.py [--operations 100000] [--concurrency 50] [--pool-max 20]
                              [--sample-every 5] [--out soak.json] [--database-url URL]

``--concurrency`` tasks share one pool (:func:`dealhunter_vectors.create_pool`) and run
``--operations`` operations of the public API, drawn at random: owner-scoped searches
(``search_deal_embeddings``, ``search_raw_chunks``, ``search_similar``), the global
duplicate search (``find_similar_pre_qualifications``, HNSW and exact), hybrid searches,
and writes (``insert_deal_chunks``, ``replace_raw_chunks``, ``set_description_embedding``).
Mixed in: ``--cancel-share`` of the operations are cancelled mid-flight (after 0-20 ms) and
``--timeout-share`` run inside ``transaction_settings(pool, {"statement_timeout": "1ms"})``.

Every ``--sample-every`` seconds: the client's RSS (psutil), Python objects (gc) and allocated blocks, asyncio
tasks, the pool's open and idle connections, and the server's backends on the soak
database (``pg_stat_activity``, from a separate monitor connection). At the end: the
series, every exception type seen (the library's typed errors, ``CancelledError`` of the
cancelled operations, and any other, an *untyped* one, with its traceback), and a
verdict on growth after warm-up: over the second half of the run, the least-squares
slope of RSS against operations (MB per 10,000 operations) and max - min. "Flat" means
a slope of at most ``--max-slope`` MB per 10k operations, backends never above the pool's
``max_size`` (+1 for the bootstrap), and every connection back in the pool at the end
(docs/reliability.md, "Long runs"). Exit code 0 when flat and nothing untyped, else 1.

The server: ``--database-url``, else ``DATABASE_URL``, else the embedded server
(``DEALHUNTER_EMBEDDED_DATA_DIR``). A database ``dhv_soak_<random>`` is created, seeded
and dropped at the end. Not a timed test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import psutil

import dealhunter_vectors as dv
from dealhunter_vectors.config import mask_url, with_database
from dealhunter_vectors.db.embedded import resolve_database_url
from dealhunter_vectors.testing import seed_owners

DIMS = 3072
OWNERS = 10  # qualifications and pre-qualifications each
CHUNKS_PER_OWNER = 30
RAW_PER_PQ = 8
MIN_FIT_SAMPLES = 5  # fewer samples after warm-up: the RSS slope is not judged (a short run)
WORDS = (
    "Angebot", "Ausschreibung", "Webseite", "Relaunch", "Drupal", "Migration", "Barrierefreiheit", "Schnittstelle",
    "Hosting", "Wartung", "Entwicklung", "Konzept", "Gestaltung", "Suche", "Redaktion", "Mehrsprachigkeit",
    "Datenschutz", "Sicherheit", "Leistung", "Kunde", "Vergabe", "Frist", "Budget", "Referenz", "Team", "Projekt",
    "Analyse", "Betrieb", "Support", "Schulung",
)  # fmt: skip

Op = Callable[[Any, random.Random], Awaitable[object]]


# --------------------------------------------------------------------------- data


@dataclass
class Corpus:
    rng: np.random.Generator
    centroids: dict[str, np.ndarray[Any, Any]]  # owner id -> direction its chunks lie around
    noise: np.ndarray[Any, Any]  # pre-drawn noise rows (cheap vectors per operation)

    def vector(self, owner: str, r: random.Random, spread: float = 1.0) -> np.ndarray[Any, Any]:
        row = self.noise[r.randrange(len(self.noise))]
        return (self.centroids[owner] + spread * row).astype(np.float32)

    def any_vector(self, r: random.Random) -> np.ndarray[Any, Any]:
        return self.vector(r.choice(list(self.centroids)), r)


def _q(i: int) -> str:
    return f"q-soak-{i}"


def _pq(i: int) -> str:
    return f"pq-soak-{i}"


def _text(r: random.Random, n: int = 12) -> str:
    return " ".join(r.choice(WORDS) for _ in range(n))


def _deal_chunk(corpus: Corpus, r: random.Random, *, index: int = 0) -> dv.DealChunk:
    if r.random() < 0.5:
        k = r.randrange(OWNERS)
        owner: dict[str, str] = {"qualification_id": _q(k)}
        centroid = _q(k)
    else:
        k = r.randrange(OWNERS)
        owner = {"pre_qualification_id": _pq(k)}
        centroid = _pq(k)
    return dv.DealChunk(
        **owner, agent_name=r.choice(("tech", "legal", "lead")), chunk_type="text", chunk_index=index,
        content=_text(r), embedding=corpus.vector(centroid, r), confidence=r.randrange(101),
        metadata={"cms": r.choice(("Drupal", "TYPO3", "WordPress"))},
    )  # fmt: skip


def _raw_chunks(corpus: Corpus, pq: str, r: random.Random) -> list[dv.RawChunk]:
    return [
        dv.RawChunk(chunk_index=i, content=_text(r, 20), token_count=20, embedding=corpus.vector(pq, r))
        for i in range(RAW_PER_PQ)
    ]


async def seed(pool: dv.Pool, seed_value: int) -> Corpus:
    rng = np.random.default_rng(seed_value)
    owners = [_q(i) for i in range(OWNERS)] + [_pq(i) for i in range(OWNERS)]
    centroids = {o: rng.standard_normal(DIMS).astype(np.float32) for o in owners}
    corpus = Corpus(rng, centroids, rng.standard_normal((256, DIMS)).astype(np.float32))
    await seed_owners(
        pool,
        pre_qualification_ids=[_pq(i) for i in range(OWNERS)],
        qualification_ids=[_q(i) for i in range(OWNERS)],
        extracted_requirements='[{"requirement": "Drupal"}]',
    )
    r = random.Random(seed_value)
    await dv.insert_deal_chunks(pool, [_deal_chunk(corpus, r, index=i) for i in range(OWNERS * 2 * CHUNKS_PER_OWNER)])
    for i in range(OWNERS):
        await dv.replace_raw_chunks(pool, _pq(i), _raw_chunks(corpus, _pq(i), r))
        await dv.set_description_embedding(pool, _pq(i), corpus.vector(_pq(i), r))
    return corpus


# --------------------------------------------------------------------------- operations


def operations(corpus: Corpus) -> dict[str, tuple[float, bool, Op]]:
    """name -> (weight, read-only, coroutine(db, rng)); the weights are the mix of the run."""

    def owner(r: random.Random) -> tuple[str, dict[str, str]]:
        k = r.randrange(OWNERS)
        return (_q(k), {"qualification_id": _q(k)}) if r.random() < 0.5 else (_pq(k), {"pre_qualification_id": _pq(k)})

    async def deal(db: Any, r: random.Random) -> object:
        o, kw = owner(r)
        mmr = {"mmr_lambda": 0.5} if r.random() < 0.1 else {}
        return await dv.search_deal_embeddings(db, corpus.vector(o, r), threshold=0.1, limit=5, **kw, **mmr)

    async def raw(db: Any, r: random.Random) -> object:
        pq = _pq(r.randrange(OWNERS))
        return await dv.search_raw_chunks(db, corpus.vector(pq, r), pre_qualification_id=pq, threshold=0.1)

    async def similar(db: Any, r: random.Random) -> object:
        k = r.randrange(OWNERS)
        return await dv.search_similar(
            db, corpus.vector(_pq(k), r), qualification_id=_q(k), pre_qualification_id=_pq(k), threshold=0.1
        )

    async def duplicates(db: Any, r: random.Random) -> object:
        pq = _pq(r.randrange(OWNERS))
        limit = r.choice((None, 5))
        return await dv.find_similar_pre_qualifications(
            db, corpus.vector(pq, r), exclude_id=pq, min_similarity_percent=60, limit=limit
        )

    async def hybrid_deal(db: Any, r: random.Random) -> object:
        o, kw = owner(r)
        return await dv.hybrid_search_deal_embeddings(db, _text(r, 3), corpus.vector(o, r), limit=5, **kw)

    async def hybrid_raw(db: Any, r: random.Random) -> object:
        pq = _pq(r.randrange(OWNERS))
        return await dv.hybrid_search_raw_chunks(db, _text(r, 3), corpus.vector(pq, r), pre_qualification_id=pq)

    async def insert(db: Any, r: random.Random) -> object:
        return await dv.insert_deal_chunks(db, [_deal_chunk(corpus, r, index=i) for i in range(r.randint(1, 3))])

    async def replace(db: Any, r: random.Random) -> object:
        pq = _pq(r.randrange(OWNERS))
        return await dv.replace_raw_chunks(db, pq, _raw_chunks(corpus, pq, r))

    async def describe(db: Any, r: random.Random) -> object:
        pq = _pq(r.randrange(OWNERS))
        await dv.set_description_embedding(db, pq, corpus.vector(pq, r))
        return None

    return {
        "search_deal_embeddings": (25, True, deal),
        "search_raw_chunks": (15, True, raw),
        "search_similar": (10, True, similar),
        "find_similar_pre_qualifications": (8, True, duplicates),
        "hybrid_search_deal_embeddings": (8, True, hybrid_deal),
        "hybrid_search_raw_chunks": (6, True, hybrid_raw),
        "insert_deal_chunks": (12, False, insert),
        "replace_raw_chunks": (8, False, replace),
        "set_description_embedding": (8, False, describe),
    }


# --------------------------------------------------------------------------- the run


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)  # "<op> <mode> <outcome>"
    exceptions: Counter[str] = field(default_factory=Counter)  # type name -> count
    typed: Counter[str] = field(default_factory=Counter)
    untyped: dict[str, dict[str, Any]] = field(default_factory=dict)  # type -> {count, traceback, op}
    done: int = 0

    def error(self, exc: BaseException, what: str) -> None:
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        self.exceptions[name] += 1
        if isinstance(exc, dv.DealhunterVectorsError):
            self.typed[name] += 1
            self.outcomes[f"{what} {type(exc).__name__}"] += 1
            return
        self.outcomes[f"{what} UNTYPED {type(exc).__name__}"] += 1
        entry = self.untyped.setdefault(
            name, {"count": 0, "first_op": what, "traceback": "".join(traceback.format_exception(exc))[-6000:]}
        )
        entry["count"] += 1


@dataclass
class Sample:
    t: float
    ops: int
    rss_mb: float
    python_objects: int
    python_blocks: int  # sys.getallocatedblocks(): every Python allocation, gc-tracked or not
    tasks: int
    pool_size: int
    pool_idle: int
    server_backends: int


async def _backends(monitor: asyncpg.Connection, database: str) -> int:
    return int(
        await monitor.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'", database
        )
    )


async def run_soak(
    server_url: str,
    *,
    operations_total: int,
    concurrency: int = 50,
    pool_max: int = 20,
    sample_every: float = 5.0,
    cancel_share: float = 0.05,
    timeout_share: float = 0.03,
    seed_value: int = 7,
    max_slope: float = 1.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Create a soak database on *server_url*, run the soak, drop the database; return the report."""
    server_url = resolve_database_url(server_url)
    database = f"dhv_soak_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    url = with_database(server_url, database)
    process = psutil.Process()
    samples: list[Sample] = []
    tally = Tally()
    try:
        setup = await dv.create_pool(url, min_size=1, max_size=2)
        try:
            await dv.apply_schema(setup)
            corpus = await seed(setup, seed_value)
        finally:
            await dv.close_pool(setup)
        ops = operations(corpus)
        names = list(ops)
        weights = [ops[n][0] for n in names]
        started = 0
        t0 = time.perf_counter()
        pool = await dv.create_pool(url, min_size=1, max_size=pool_max)
        try:

            async def sample() -> Sample:
                s = Sample(
                    t=round(time.perf_counter() - t0, 2),
                    ops=tally.done,
                    rss_mb=round(process.memory_info().rss / 2**20, 2),
                    python_objects=len(gc.get_objects()),
                    python_blocks=sys.getallocatedblocks(),
                    tasks=len(asyncio.all_tasks()),
                    pool_size=pool.get_size(),
                    pool_idle=pool.get_idle_size(),
                    server_backends=await _backends(admin, database),
                )
                samples.append(s)
                if progress:
                    rate = s.ops / s.t if s.t else 0.0
                    print(
                        f"{s.t:8.1f}s ops {s.ops:>7}/{operations_total} ({rate:5.0f}/s) rss {s.rss_mb:7.1f} MB"
                        f" objects {s.python_objects:>8} pool {s.pool_size - s.pool_idle}/{s.pool_size}"
                        f" backends {s.server_backends} typed errors {sum(tally.typed.values())}"
                        f" untyped {sum(v['count'] for v in tally.untyped.values())}",
                        flush=True,
                    )
                return s

            async def sampler() -> None:
                while True:
                    await asyncio.sleep(sample_every)
                    await sample()

            async def one(r: random.Random) -> None:
                name = r.choices(names, weights)[0]
                op = ops[name][2]
                mode = r.random()
                if mode < cancel_share:
                    what = f"{name} cancelled"
                    task = asyncio.ensure_future(op(pool, r))
                    await asyncio.sleep(r.uniform(0, 0.02))
                    task.cancel()
                    try:
                        await task
                        tally.outcomes[f"{what} finished-first"] += 1
                    except asyncio.CancelledError:
                        current = asyncio.current_task()
                        if current is not None and current.cancelling():
                            raise  # the worker itself is being cancelled
                        tally.outcomes[f"{what} CancelledError"] += 1
                    except Exception as exc:
                        tally.error(exc, what)
                    return
                what = f"{name} {'timeout' if mode < cancel_share + timeout_share else 'plain'}"
                try:
                    if mode < cancel_share + timeout_share:
                        async with dv.transaction_settings(pool, {"statement_timeout": "1ms"}) as conn:
                            await op(conn, r)
                    else:
                        await op(pool, r)
                    tally.outcomes[f"{what} ok"] += 1
                except Exception as exc:
                    tally.error(exc, what)

            async def worker(k: int) -> None:
                nonlocal started
                r = random.Random(seed_value * 1000 + k)
                while started < operations_total:
                    started += 1
                    await one(r)
                    tally.done += 1

            await sample()
            sampling = asyncio.ensure_future(sampler())
            try:
                await asyncio.gather(*(worker(k) for k in range(concurrency)))
            finally:
                sampling.cancel()
                await asyncio.gather(sampling, return_exceptions=True)
            await sample()
            duration = time.perf_counter() - t0
            trimmed = _rss_after_trim(process)
            in_use_at_end = pool.get_size() - pool.get_idle_size()
            size_at_end = pool.get_size()
        finally:
            await dv.close_pool(pool, timeout=30)
        for _ in range(50):  # the server notices closed connections asynchronously
            backends_after_close = await _backends(admin, database)
            if backends_after_close == 0:
                break
            await asyncio.sleep(0.1)
        counts = await _table_counts(url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    report: dict[str, Any] = {
        "run": datetime.now(UTC).isoformat(),
        "machine": f"{os.cpu_count()} CPUs {platform.machine()}, load avg at end {os.getloadavg()}",
        "python": platform.python_version(),
        "asyncpg": asyncpg.__version__,
        "server": mask_url(server_url),
        "config": {
            "operations": operations_total,
            "concurrency": concurrency,
            "pool_max": pool_max,
            "sample_every_s": sample_every,
            "cancel_share": cancel_share,
            "timeout_share": timeout_share,
            "seed": seed_value,
            "max_slope_mb_per_10k": max_slope,
        },
        "duration_s": round(duration, 1),
        "operations_per_s": round(tally.done / duration, 1),
        "operations_done": tally.done,
        "rows_at_end": counts,
        "rss_mb_after_gc_and_malloc_trim": trimmed,
        "samples": [s.__dict__ for s in samples],
        "outcomes": dict(sorted(tally.outcomes.items())),
        "exceptions": dict(tally.exceptions.most_common()),
        "untyped": tally.untyped,
        "pool_at_end": {
            "size": size_at_end,
            "in_use": in_use_at_end,
            "server_backends_after_close": backends_after_close,
        },
    }
    report["verdict"] = verdict(samples, report, pool_max=pool_max, max_slope=max_slope)
    return report


def _rss_after_trim(process: psutil.Process) -> float | None:
    """RSS after ``gc.collect()`` and glibc's ``malloc_trim(0)`` (None off glibc): what of the growth
    is memory the allocator kept, not memory still in use."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    gc.collect()
    libc.malloc_trim(0)
    return round(process.memory_info().rss / 2**20, 2)


async def _table_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            "deal_embeddings": int(await conn.fetchval("SELECT count(*) FROM deal_embeddings")),
            "raw_chunks": int(await conn.fetchval("SELECT count(*) FROM raw_chunks")),
        }
    finally:
        await conn.close()


def _fit(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs (0.0 with fewer than 3 points)."""
    if len(xs) < 3 or max(xs) == min(xs):
        return 0.0
    return float(np.polyfit(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64), 1)[0])


def verdict(samples: list[Sample], report: dict[str, Any], *, pool_max: int, max_slope: float) -> dict[str, Any]:
    """Growth after warm-up (the second half of the operations) and whether it is flat."""
    total = report["operations_done"]
    late = [s for s in samples if s.ops >= total / 2] or samples[-1:]
    ops = [float(s.ops) for s in late]

    def series(attr: str) -> list[float]:
        return [float(getattr(s, attr)) for s in late]

    rss = series("rss_mb")
    slope_rss = _fit(ops, rss) * 10_000
    objects, late_backends = series("python_objects"), series("server_backends")
    slope_objects = _fit(ops, objects) * 10_000
    backends = [s.server_backends for s in samples]
    untyped = sum(v["count"] for v in report["untyped"].values())
    end = report["pool_at_end"]
    checks = {
        "rss_slope_ok": slope_rss <= max_slope if len(late) >= MIN_FIT_SAMPLES else None,  # None: too short to judge
        "backends_bounded": max(backends) <= pool_max + 1,
        "pool_returned_every_connection": end["in_use"] == 0,
        "no_backend_left_after_close": end["server_backends_after_close"] == 0,
        "no_untyped_exception": untyped == 0,
    }
    return {
        "warm_up": f"first half ({total // 2} operations); fitted over {len(late)} samples after it",
        "rss_mb_first_sample": samples[0].rss_mb,
        "rss_mb_at_warm_up_end": late[0].rss_mb,
        "rss_mb_last": samples[-1].rss_mb,
        "rss_slope_mb_per_10k_ops": round(slope_rss, 3),
        "rss_max_minus_min_mb_after_warm_up": round(max(rss) - min(rss), 2),
        "python_objects_slope_per_10k_ops": round(slope_objects, 1),
        "python_objects_max_minus_min_after_warm_up": int(max(objects) - min(objects)),
        "python_blocks_slope_per_10k_ops": round(_fit(ops, series("python_blocks")) * 10_000, 1),
        "pool_size_max": max(s.pool_size for s in samples),
        "server_backends_min_max_after_warm_up": [int(min(late_backends)), int(max(late_backends))],
        "server_backends_max": max(backends),
        "untyped_exceptions": untyped,
        "checks": checks,
        "flat": all(ok is not False for ok in checks.values()),
    }


def _print_summary(report: dict[str, Any]) -> None:
    v = report["verdict"]
    print(f"\n{report['operations_done']} operations in {report['duration_s']} s ({report['operations_per_s']}/s)")
    print("exceptions seen:")
    for name, count in report["exceptions"].items():
        print(f"  {count:>7}  {name}")
    for name, entry in report["untyped"].items():
        print(f"UNTYPED {name} x{entry['count']} (first in {entry['first_op']}):\n{entry['traceback']}")
    print(
        f"RSS {v['rss_mb_first_sample']} -> {v['rss_mb_at_warm_up_end']} (warm-up end) -> {v['rss_mb_last']} MB;"
        f" after warm-up: slope {v['rss_slope_mb_per_10k_ops']} MB/10k ops,"
        f" max-min {v['rss_max_minus_min_mb_after_warm_up']} MB"
    )
    print(f"RSS after gc + malloc_trim(0) at the end: {report['rss_mb_after_gc_and_malloc_trim']} MB")
    print(
        f"python objects slope {v['python_objects_slope_per_10k_ops']}/10k ops, allocated blocks slope"
        f" {v['python_blocks_slope_per_10k_ops']}/10k ops; pool size max {v['pool_size_max']};"
        f" server backends max {v['server_backends_max']}; at end {report['pool_at_end']}"
    )
    print(f"verdict: {'FLAT' if v['flat'] else 'NOT FLAT'} {v['checks']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--operations", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--pool-max", type=int, default=20)
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--cancel-share", type=float, default=0.05)
    p.add_argument("--timeout-share", type=float, default=0.03)
    p.add_argument("--max-slope", type=float, default=1.0, help="flat: RSS slope at most this many MB per 10k ops")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or "embedded")
    p.add_argument("--out", default=None, help="write the report (series, exceptions, verdict) as JSON here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    report = asyncio.run(
        run_soak(
            args.database_url,
            operations_total=args.operations,
            concurrency=args.concurrency,
            pool_max=args.pool_max,
            sample_every=args.sample_every,
            cancel_share=args.cancel_share,
            timeout_share=args.timeout_share,
            seed_value=args.seed,
            max_slope=args.max_slope,
            progress=not args.quiet,
        )
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
    _print_summary(report)
    return 0 if report["verdict"]["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
