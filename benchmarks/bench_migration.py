"""Migration: legacy SQLite (JSON embeddings) -> PostgreSQL, rows/s of three methods on one file.

* ``ours``: ``bulk_loader.migrate_sqlite`` end to end (schema check, orjson parsing in a
  process pool, binary COPY straight into the empty target tables - the staging path with
  ``INSERT ... SELECT ... ON CONFLICT`` only for batches the constraints refuse -, HNSW
  rebuild, ANALYZE), and the same without the HNSW rebuild (``ours_no_index``: the
  indexes dropped beforehand, ``rebuild_indexes=False``), which is the like-for-like
  comparison with the two other methods (neither builds a vector index);
* ``plan_script``: the migration plan's script method, ported (``legacy_paths.plan_script_migrate``);
* ``raw_copy``: binary COPY of rows parsed beforehand (``legacy_paths.raw_copy_load``), the limit;
* ``raw_copy_external``: the same with ``ALTER COLUMN ... SET STORAGE EXTERNAL`` on the three
  vector columns (3072 float32 = 12 KB is always TOASTed and random floats do not compress,
  so EXTERNAL skips a useless pglz attempt) - a design experiment.

Every round loads into a fresh database cloned from a schema template named after the
package's migration files, so every method loads into the current schema (e.g. migration
004's generated ``embedding_half``, which the server computes on every insert). extra_info: rows,
rows/s, MB of JSON embeddings. ``test_loader_peak_rss`` runs ``migrate_sqlite`` in a
subprocess and reports its peak RSS (and its parser workers') next to the source size.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import dealhunter_vectors.db.schema
from benchmarks import datasets as ds
from benchmarks.conftest import REPO_ROOT, Runner
from benchmarks.legacy_paths import PreparedTable, plan_script_migrate, prepare_raw_copy, raw_copy_load
from dealhunter_vectors.db.pool import register_vector_codecs
from dealhunter_vectors.db.schema import VECTOR_INDEXES, apply_schema, drop_vector_indexes, quote_ident
from dealhunter_vectors.legacy.database import build_legacy_database
from dealhunter_vectors.testing import with_database

CASE = "migration"


class MigrationEnv:
    """Legacy file + schema template + fresh target databases for each round."""

    def __init__(self, runner: Runner, admin: asyncpg.Connection, server_url: str, path: Path, template: str):
        self.runner, self.admin, self.server_url, self.path, self.template = runner, admin, server_url, path, template
        self.created: list[str] = []
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            self.rows = sum(src.execute(f"SELECT count(*) FROM {quote_ident(n)}").fetchone()[0] for n in names)
            self.vector_rows = sum(
                src.execute(f"SELECT count({quote_ident(c)}) FROM {quote_ident(t)}").fetchone()[0]
                for t, c in (
                    ("deal_embeddings", "embedding"),
                    ("raw_chunks", "embedding"),
                    ("pre_qualifications", "description_embedding"),
                )
            )
        finally:
            src.close()
        self.file_mb = path.stat().st_size / 2**20

    def fresh(self, *, drop_indexes: bool, external: bool = False) -> str:
        name = f"dhv_bench_mig_{uuid.uuid4().hex[:10]}"

        async def make() -> str:
            await self.admin.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(self.template)}")
            url = with_database(self.server_url, name)
            conn = await asyncpg.connect(url)
            try:
                if drop_indexes:
                    await drop_vector_indexes(conn)
                if external:
                    for idx in VECTOR_INDEXES:
                        await conn.execute(
                            f"ALTER TABLE {quote_ident(idx.table)} ALTER COLUMN {quote_ident(idx.column)}"
                            " SET STORAGE EXTERNAL"
                        )
            finally:
                await conn.close()
            return url

        url = self.runner.run(make())
        self.created.append(name)
        return url

    def drop_all(self) -> None:
        for name in self.created:
            self.runner.run(self.admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)"))
        self.created.clear()

    def info(self, benchmark: Any, role: str) -> None:
        median = benchmark.stats.stats.median
        benchmark.extra_info.update(
            {
                "case": CASE,
                "role": role,
                "rows": self.rows,
                "vector_rows": self.vector_rows,
                "source_mb": round(self.file_mb, 1),
                "rows_per_s": self.rows / median,
                "vector_rows_per_s": self.vector_rows / median,
                "p50_ms": median * 1e3,
            }
        )


@pytest.fixture(scope="module")
def migration_env(scale: ds.Scale, runner: Runner, admin: asyncpg.Connection, server_url: str, data_dir: Path) -> Any:
    spec = scale.migration_spec
    path = data_dir / f"migration_{scale.name}_{ds.fingerprint('migration', spec)}.sqlite"
    if not path.exists():
        tmp = path.with_suffix(".building")
        build_legacy_database(tmp, spec, overwrite=True, keep_embeddings=False)
        tmp.rename(path)
    # named after the migration files: a template never holds an older text of a migration
    sql = sorted((Path(dealhunter_vectors.db.schema.__file__).parent / "sql").glob("*.sql"))
    template = f"dhv_bench_mig_template_{ds.fingerprint('mig-template', *(p.read_text() for p in sql))}"

    async def ensure_template() -> None:
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", template):
            return
        await admin.execute(f"CREATE DATABASE {quote_ident(template)}")
        conn = await asyncpg.connect(with_database(server_url, template))
        try:
            await apply_schema(conn)
        finally:
            await conn.close()

    runner.run(ensure_template())
    env = MigrationEnv(runner, admin, server_url, path, template)
    try:
        yield env
    finally:
        env.drop_all()


def _bulk_loader() -> Any:
    try:
        return importlib.import_module("dealhunter_vectors.bulk_loader")
    except ImportError:
        return None


def _check_count(env: MigrationEnv, url: str) -> None:
    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM deal_embeddings"))
        finally:
            await conn.close()

    src = sqlite3.connect(f"file:{env.path}?mode=ro", uri=True)
    expected = src.execute("SELECT count(*) FROM deal_embeddings").fetchone()[0]
    src.close()
    assert env.runner.run(count()) == expected


def _run_ours(env: MigrationEnv, scale: ds.Scale, benchmark: Any, *, rebuild: bool, role: str) -> None:
    bl = _bulk_loader()
    if bl is None:
        pytest.skip("dealhunter_vectors.bulk_loader has not landed yet")
    urls: list[str] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        urls.append(env.fresh(drop_indexes=not rebuild))
        return (), {}

    def run() -> Any:
        report = env.runner.run(bl.migrate_sqlite(env.path, urls[-1], rebuild_indexes=rebuild))
        assert report.status == "completed"
        return report

    # the figure compared with the other methods gets as many rounds as the raw COPY (noise)
    rounds = scale.migration_rounds if rebuild else max(2, scale.migration_rounds)
    benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1)
    _check_count(env, urls[-1])
    env.info(benchmark, role)
    env.drop_all()


def test_migration_ours(benchmark: Any, migration_env: MigrationEnv, scale: ds.Scale) -> None:
    _run_ours(migration_env, scale, benchmark, rebuild=True, role="ours")


def test_migration_ours_no_index(benchmark: Any, migration_env: MigrationEnv, scale: ds.Scale) -> None:
    _run_ours(migration_env, scale, benchmark, rebuild=False, role="ours_no_index")


def test_migration_plan_script(benchmark: Any, migration_env: MigrationEnv, scale: ds.Scale) -> None:
    env = migration_env
    urls: list[str] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        urls.append(env.fresh(drop_indexes=True))
        return (), {}

    benchmark.pedantic(
        lambda: env.runner.run(plan_script_migrate(env.path, urls[-1])), setup=setup, rounds=1, iterations=1
    )
    _check_count(env, urls[-1])
    env.info(benchmark, "plan_script")
    env.drop_all()


def _raw(
    benchmark: Any, env: MigrationEnv, scale: ds.Scale, prepared: list[PreparedTable], *, external: bool, role: str
) -> None:
    urls: list[str] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        urls.append(env.fresh(drop_indexes=True, external=external))
        return (), {}

    async def load() -> int:
        conn = await asyncpg.connect(urls[-1])
        try:
            await register_vector_codecs(conn)
            return await raw_copy_load(conn, prepared)
        finally:
            await conn.close()

    benchmark.pedantic(lambda: env.runner.run(load()), setup=setup, rounds=max(2, scale.migration_rounds), iterations=1)
    _check_count(env, urls[-1])
    env.info(benchmark, role)
    env.drop_all()


@pytest.fixture(scope="module")
def prepared(migration_env: MigrationEnv) -> list[PreparedTable]:
    return prepare_raw_copy(migration_env.path)


def test_migration_raw_copy(
    benchmark: Any, migration_env: MigrationEnv, scale: ds.Scale, prepared: list[PreparedTable]
) -> None:
    _raw(benchmark, migration_env, scale, prepared, external=False, role="raw_copy")


def test_migration_raw_copy_external(
    benchmark: Any, migration_env: MigrationEnv, scale: ds.Scale, prepared: list[PreparedTable]
) -> None:
    _raw(benchmark, migration_env, scale, prepared, external=True, role="raw_copy_external")


# Peak RSS = VmHWM of /proc/self/status: ru_maxrss would be wrong here, Linux carries it over
# execve, so a child of the (large) pytest process would report the parent's peak.
_RSS_SCRIPT = """
import asyncio, json, resource, sys
from dealhunter_vectors.migrate.loader import migrate_sqlite

def hwm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

report = asyncio.run(migrate_sqlite(sys.argv[1], sys.argv[2], rebuild_indexes=False))
print(json.dumps({
    "status": report.status,
    "self_kb": hwm_kb(),
    "children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
}))
"""


def test_loader_peak_rss(benchmark: Any, migration_env: MigrationEnv, scale: ds.Scale) -> None:
    """Peak RSS of ``migrate_sqlite`` in a subprocess (main process and largest parser worker)."""
    if _bulk_loader() is None:
        pytest.skip("dealhunter_vectors.bulk_loader has not landed yet")
    env = migration_env
    url = env.fresh(drop_indexes=True)
    result: dict[str, Any] = {}

    def run() -> None:
        out = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT, str(env.path), url],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(run, rounds=1, iterations=1)
    assert result["status"] == "completed"
    env.info(benchmark, "ours_subprocess")
    benchmark.extra_info.update(
        {
            "case": "loader_rss",
            "role": "ours_rss",
            "peak_rss_mb": round(result["self_kb"] / 1024, 1),
            "worker_peak_rss_mb": round(result["children_kb"] / 1024, 1),
        }
    )
    env.drop_all()


# ------------------------------------------------------------------ design experiment
# What the loader could reach: the same JSON -> float32 work with a numpy fast path
# (orjson.loads + np.asarray + vectorised checks: dims, finite, non-zero, half range) in 2
# worker processes, pipelined with binary COPY straight into the (empty) target table - no
# staging table, no per-element Python type loop. Not a loader: no reject handling, no resume.


def _fast_parse(cells: list[str]) -> list[bytes]:
    import numpy as np
    import orjson

    out = []
    for text in cells:
        arr = np.asarray(orjson.loads(text), dtype=np.float32)
        if arr.shape != (3072,) or not np.isfinite(arr).all() or not arr.any() or np.abs(arr).max() > 65504:
            raise ValueError("bad embedding")
        out.append(arr.tobytes())
    return out


async def fast_path_prototype(sqlite_path: Path, url: str, workers: int = 2, batch: int = 250) -> int:
    import asyncio
    import concurrent.futures
    import multiprocessing

    import numpy as np

    from benchmarks.legacy_paths import _converter, _table_kinds, insert_order

    kinds = _table_kinds()
    loop = asyncio.get_running_loop()
    procs = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    conn = await asyncpg.connect(url)
    await register_vector_codecs(conn)
    total = 0
    try:
        for table in insert_order():
            cur = src.execute(f"SELECT * FROM {quote_ident(table)}")
            columns = [d[0] for d in cur.description]
            conv = [_converter(kinds[table][c], lambda v: v) for c in columns]
            emb = [j for j, c in enumerate(columns) if kinds[table][c] == "embedding"]
            pending: Any = None

            async def flush(item: Any, table: str = table, columns: list[str] = columns) -> int:
                records, futures = item
                for j, fut_list in futures.items():
                    parsed: list[bytes] = []
                    for f in fut_list:
                        parsed.extend(await asyncio.wrap_future(f))
                    k = 0
                    for r in records:
                        if r[j] is not None:
                            r[j] = np.frombuffer(parsed[k], dtype=np.float32)
                            k += 1
                await conn.copy_records_to_table(table, records=records, columns=columns)
                return len(records)

            while True:
                rows = cur.fetchmany(batch)
                if not rows:
                    break
                records = [[f(row[i]) for i, f in enumerate(conv)] for row in rows]
                futures: dict[int, list[Any]] = {}
                for j in emb:
                    cells = [r[j] for r in records if r[j] is not None]
                    half = max(1, (len(cells) + workers - 1) // workers)
                    futures[j] = [procs.submit(_fast_parse, cells[k : k + half]) for k in range(0, len(cells), half)]
                if pending is not None:
                    total += await flush(pending)
                pending = (records, futures)
            if pending is not None:
                total += await flush(pending)
        await loop.run_in_executor(None, lambda: None)
    finally:
        await conn.close()
        src.close()
        procs.shutdown()
    return total


def test_migration_design_fast_path(benchmark: Any, migration_env: MigrationEnv, scale: ds.Scale) -> None:
    env = migration_env
    urls: list[str] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        urls.append(env.fresh(drop_indexes=True))
        return (), {}

    benchmark.pedantic(
        lambda: env.runner.run(fast_path_prototype(env.path, urls[-1])),
        setup=setup,
        rounds=max(2, scale.migration_rounds),
        iterations=1,
    )
    _check_count(env, urls[-1])
    env.info(benchmark, "design_fast_path")
    env.drop_all()
