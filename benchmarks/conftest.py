"""Shared fixtures of the benchmark suite (``pytest benchmarks/ --benchmark-only --scale small``).

* ``--scale small|full``: data sizes (see ``benchmarks/datasets.py``). ``small`` runs in a
  few minutes on 2 cores (CI may run it); ``full`` uses the issue's sizes.
* ``--pg-conf NAME=VALUE`` (repeatable): ``ALTER SYSTEM SET`` on the embedded benchmark
  server before the run (restarted when needed); without it every setting is reset to the
  server's defaults, so a run is reproducible. Ignored with ``DATABASE_URL``.
* One persistent event loop owns every pool; benchmarked callables drive coroutines with
  ``loop.run_until_complete`` (pytest-benchmark has no asyncio support).
* Data sets are built once and cached: numpy matrices and legacy SQLite files under
  ``.benchmarks/data/``, PostgreSQL databases (``dhv_bench_*``) on the benchmark server.
  The server is ``DATABASE_URL`` when set, else an embedded PostgreSQL 16 + pgvector whose
  data directory ``.benchmarks/pgdata`` is kept between runs (stopped at session end).
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import numpy as np
import pytest
from numpy.typing import NDArray

from benchmarks import datasets as ds
from dealhunter_vectors.db.embedded import is_embedded_url, start_embedded
from dealhunter_vectors.db.pool import Pool, close_pool, create_pool
from dealhunter_vectors.testing import with_database

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / ".benchmarks"
DATA_DIR = BENCH_DIR / "data"
PGDATA_DIR = BENCH_DIR / "pgdata"
POOL_MAX = 20

T = TypeVar("T")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dealhunter-vectors benchmarks")
    group.addoption("--scale", choices=sorted(ds.SCALES), default="small", help="data set sizes (default: small)")
    group.addoption(
        "--pg-conf",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="ALTER SYSTEM SET on the embedded benchmark server (repeatable)",
    )


# ----------------------------------------------------------------------- event loop


class Runner:
    """Drives coroutines on the one persistent event loop of the session."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one coroutine to completion."""
        return self.loop.run_until_complete(coro)

    def call(self, fn: Callable[..., Awaitable[T]]) -> Callable[..., T]:
        """Wrap an async function into a sync callable for ``benchmark(...)``."""

        def sync(*args: Any, **kwargs: Any) -> T:
            return self.loop.run_until_complete(fn(*args, **kwargs))

        return sync


@pytest.fixture(scope="session")
def runner() -> Iterator[Runner]:
    loop = asyncio.new_event_loop()
    try:
        yield Runner(loop)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> ds.Scale:
    return ds.SCALES[request.config.getoption("--scale")]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return DATA_DIR


# --------------------------------------------------------------------------- server


async def _configure(url: str, settings: list[str]) -> bool:
    """Reset the server's ALTER SYSTEM settings, apply *settings*; True when a restart is needed."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ALTER SYSTEM RESET ALL")
        for item in settings:
            name, _, value = item.partition("=")
            # ALTER SYSTEM takes no parameters; names are checked against pg_settings first
            if not await conn.fetchval("SELECT 1 FROM pg_settings WHERE name = $1", name):
                raise pytest.UsageError(f"--pg-conf: unknown setting {name!r}")
            literal = await conn.fetchval("SELECT quote_literal($1)", value)
            await conn.execute(f"ALTER SYSTEM SET {name} = {literal}")
        await conn.execute("SELECT pg_reload_conf()")
        await asyncio.sleep(0.2)
        return bool(await conn.fetchval("SELECT count(*) FROM pg_settings WHERE pending_restart"))
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest, runner: Runner) -> Iterator[str]:
    """``DATABASE_URL`` (a real server) or the embedded benchmark server."""
    env = os.environ.get("DATABASE_URL")
    if env and not is_embedded_url(env):
        yield env
        return
    PGDATA_DIR.mkdir(parents=True, exist_ok=True)
    # another pytest session may be using the same server: then leave it running at the end
    shared = (PGDATA_DIR / "postmaster.pid").exists()
    server = start_embedded(PGDATA_DIR)
    if not shared and runner.run(_configure(server.url, request.config.getoption("--pg-conf"))):
        server.stop()
        from dealhunter_vectors.db.embedded import stop_embedded

        stop_embedded(PGDATA_DIR)
        server = start_embedded(PGDATA_DIR)
    try:
        yield server.url
    finally:
        if not shared:
            from dealhunter_vectors.db.embedded import stop_embedded

            server.stop()
            stop_embedded(PGDATA_DIR)


@pytest.fixture(scope="session")
def admin(server_url: str, runner: Runner) -> Iterator[asyncpg.Connection]:
    conn = runner.run(asyncpg.connect(server_url))
    try:
        yield conn
    finally:
        runner.run(conn.close())


async def _server_facts(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        facts: dict[str, Any] = {
            "server_version": await conn.fetchval("SHOW server_version"),
            "pgvector": await conn.fetchval(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ),
        }
        for name in (
            "shared_buffers",
            "work_mem",
            "maintenance_work_mem",
            "max_parallel_workers_per_gather",
            "max_parallel_maintenance_workers",
            "effective_cache_size",
            "synchronous_commit",
            "max_wal_size",
        ):
            facts[name] = await conn.fetchval("SELECT current_setting($1)", name)
        return facts
    finally:
        await conn.close()


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record the scale, CPU count and RAM with the benchmark JSON."""
    import psutil  # type: ignore[import-untyped]

    machine_info["dhv_scale"] = config.getoption("--scale")
    machine_info["dhv_pg_conf"] = config.getoption("--pg-conf")
    machine_info["dhv_cpu_count"] = os.cpu_count()
    machine_info["dhv_ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    machine_info["dhv_platform"] = platform.platform()


@pytest.fixture(scope="session")
def server_facts(server_url: str, runner: Runner) -> dict[str, Any]:
    return runner.run(_server_facts(server_url))


# --------------------------------------------------------------------- data sets


async def _ensure_database(
    admin: asyncpg.Connection,
    server_url: str,
    name: str,
    build: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    if not await ds.database_ready(admin, server_url, name):
        await ds.recreate_database(admin, name)
        conn = await asyncpg.connect(with_database(server_url, name))
        try:
            from dealhunter_vectors.db.pool import register_vector_codecs

            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            await register_vector_codecs(conn)
            t = time.perf_counter()
            info = await build(conn)
            info["build_seconds"] = time.perf_counter() - t
            for key, value in info.items():
                await ds.set_meta(conn, key, value)
            await ds.set_meta(conn, "complete", True)
        finally:
            await conn.close()
    conn = await asyncpg.connect(with_database(server_url, name))
    try:
        return await ds.get_meta(conn)
    finally:
        await conn.close()


@dataclass(eq=False)
class OwnerData:
    """The owner-scoped data set: PostgreSQL database + pool, legacy file, queries."""

    url: str
    pool: Pool
    legacy_path: Path
    queries: list[tuple[str, NDArray[np.float32]]]
    meta: dict[str, Any]
    qualification_ids: list[str]


@pytest.fixture(scope="session")
def owner_data(
    scale: ds.Scale, runner: Runner, admin: asyncpg.Connection, server_url: str, data_dir: Path
) -> Iterator[OwnerData]:
    name = f"dhv_bench_owner_{scale.name}_{ds.fingerprint('owner', scale.owner_qualifications)}"
    legacy = ds.build_owner_legacy_file(
        scale, data_dir / f"owner_{ds.fingerprint('owner-legacy', scale.legacy_owner_qualifications)}.sqlite"
    )

    async def build(conn: asyncpg.Connection) -> dict[str, Any]:
        return await ds.build_owner_database(conn, scale)

    meta = runner.run(_ensure_database(admin, server_url, name, build))
    url = with_database(server_url, name)
    pool = runner.run(create_pool(url, min_size=POOL_MAX, max_size=POOL_MAX))
    try:
        yield OwnerData(
            url,
            pool,
            legacy,
            ds.owner_queries(scale),
            meta,
            [ds.qualification_id(i) for i in range(scale.owner_qualifications)],
        )
    finally:
        runner.run(close_pool(pool))


@dataclass(eq=False)
class GlobalData:
    """The global data set of one size: database + pool, matrix, queries, exact top-10."""

    rows: int
    url: str
    pool: Pool
    vectors: NDArray[np.float32]
    queries: NDArray[np.float32]
    truth: NDArray[np.int64]
    meta: dict[str, Any]

    def ids(self, indices: Any) -> list[str]:
        return [ds.pre_qualification_id(int(i)) for i in indices]


class GlobalSets:
    """Lazily built global data sets by size (each size is its own database)."""

    def __init__(self, scale: ds.Scale, runner: Runner, admin: asyncpg.Connection, server_url: str, data_dir: Path):
        self.scale, self.runner, self.admin, self.server_url, self.data_dir = scale, runner, admin, server_url, data_dir
        self._sets: dict[int, GlobalData] = {}
        self._largest = max(scale.global_rows)

    def get(self, rows: int) -> GlobalData:
        if rows in self._sets:
            return self._sets[rows]
        vectors = ds.global_vectors(self._largest, self.data_dir)[:rows]
        name = f"dhv_bench_global_{rows}_{ds.fingerprint('global', rows)}"

        async def build(conn: asyncpg.Connection) -> dict[str, Any]:
            return await ds.build_global_database(conn, vectors)

        meta = self.runner.run(_ensure_database(self.admin, self.server_url, name, build))
        url = with_database(self.server_url, name)
        pool = self.runner.run(create_pool(url, min_size=2, max_size=POOL_MAX))
        queries = ds.global_queries(vectors, self.scale.queries)
        truth = ds.exact_top_k(vectors, queries, 10)
        data = GlobalData(rows, url, pool, np.asarray(vectors), queries, truth, meta)
        self._sets[rows] = data
        return data

    def close(self) -> None:
        for data in self._sets.values():
            self.runner.run(close_pool(data.pool))


@pytest.fixture(scope="session")
def global_sets(
    scale: ds.Scale, runner: Runner, admin: asyncpg.Connection, server_url: str, data_dir: Path
) -> Iterator[GlobalSets]:
    sets = GlobalSets(scale, runner, admin, server_url, data_dir)
    try:
        yield sets
    finally:
        sets.close()


# ------------------------------------------------------------------ measurement


def latency_stats(benchmark: Any) -> dict[str, float]:
    """p50/p99 (ms) of the rounds just measured by *benchmark* (one query per round)."""
    data = sorted(benchmark.stats.stats.data)
    if not data:
        return {}
    return {
        "p50_ms": statistics.median(data) * 1e3,
        "p99_ms": float(np.percentile(data, 99)) * 1e3,
        "mean_ms": statistics.fmean(data) * 1e3,
        "rounds": len(data),
    }


def record(benchmark: Any, *, case: str, role: str, **extra: Any) -> None:
    """Tag a measured benchmark for ``benchmarks/report.py`` (case + role) and add p50/p99."""
    benchmark.extra_info.update({"case": case, "role": role, **latency_stats(benchmark), **extra})


class Cycle:
    """Round-robin over a list (each benchmark round takes the next query)."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.i = 0

    def next(self) -> Any:
        item = self.items[self.i % len(self.items)]
        self.i += 1
        return item
