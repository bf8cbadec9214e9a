"""migrate and verify into the distributed layout of a 1 + 2 Citus cluster.

The legacy file holds two deal chunks with neither a pre-qualification nor a qualification
(the old app allowed it): the single node stores them, the distributed layout cannot
place them (no tenant), so they must be rejected into the reject file, never dropped
silently. Everything else must arrive exactly (counts and verify), and a re-run, a run
killed with SIGKILL and resumed, and ``overwrite`` must behave as on a single node.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from support import kill_group_when_loaded, start_loader

from dealhunter_vectors.db.schema import legacy_schema, quote_ident
from dealhunter_vectors.errors import MigrationStoppedError
from dealhunter_vectors.legacy.database import LegacyDatabaseSummary, LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.migrate.loader import migrate_sqlite
from dealhunter_vectors.migrate.verify import verify_migration
from dealhunter_vectors.testing import CitusDatabaseFactory

pytestmark = pytest.mark.citus
TABLES = [t["name"] for t in legacy_schema()["tables"]]


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyDatabaseSummary:
    spec = dataclasses.replace(
        LegacyDatasetSpec.tiny(dims=3072, seed=21),
        deal_embeddings_per_qualification=40,
        orphan_deal_embeddings=2,
    )
    return build_legacy_database(tmp_path_factory.mktemp("citus-loader") / "legacy.db", spec)


def orphan_ids(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT id FROM deal_embeddings WHERE pre_qualification_id IS NULL AND qualification_id IS NULL ORDER BY id"
        ).fetchall()
        return [r[0] for r in rows]
    finally:
        conn.close()


async def counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {quote_ident(t)}") for t in TABLES}
    finally:
        await conn.close()


async def test_migrate_rejects_tenantless_rows_and_loads_everything_else(
    legacy: LegacyDatabaseSummary, dhv_citus_database_factory: CitusDatabaseFactory, tmp_path: Path
) -> None:
    url = await dhv_citus_database_factory()
    orphans = orphan_ids(legacy.path)
    assert len(orphans) == 2
    rejects = tmp_path / "rejects.jsonl"
    report = await migrate_sqlite(legacy.path, url, on_error="skip", reject_file=rejects, batch_size=16)
    assert report.status == "completed"
    expected = dict(legacy.row_counts)
    expected["deal_embeddings"] -= 2
    assert {t.table: t.inserted for t in report.tables} == expected
    assert {t.table: t.rejected for t in report.tables if t.rejected} == {"deal_embeddings": 2}
    assert [p.reason for p in report.problems] == ["tenant_unknown", "tenant_unknown"]
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == orphans
    assert all(line["table"] == "deal_embeddings" and line["row"]["content"] for line in lines)
    assert await counts(url) == expected

    # verify: identical except exactly the rejected rows
    verification = await verify_migration(legacy.path, url)
    bad = {t.table: t for t in verification.tables if not t.ok}
    assert set(bad) == {"deal_embeddings"}
    assert sorted(bad["deal_embeddings"].missing_ids) == orphans
    assert bad["deal_embeddings"].mismatched == 0 and bad["deal_embeddings"].extra == 0
    assert sum(t.matching_rows for t in verification.tables) == sum(expected.values())

    # a second run inserts nothing and reports every row as present
    again = await migrate_sqlite(legacy.path, url, on_error="skip", batch_size=50)
    assert again.inserted == 0 and again.conflicts == 0
    assert {t.table: t.already_present for t in again.tables} == expected

    # on_error=stop stops at the first tenantless row
    with pytest.raises(MigrationStoppedError, match="tenant_unknown"):
        await migrate_sqlite(legacy.path, url, tables=["deal_embeddings"])

    # a changed source row is a conflict; overwrite replaces it on its shard
    changed = tmp_path / "changed.db"
    changed.write_bytes(legacy.path.read_bytes())
    conn = sqlite3.connect(changed)
    row_id = conn.execute("SELECT id FROM website_audits ORDER BY id LIMIT 1").fetchone()[0]
    conn.execute("UPDATE website_audits SET status = 'changed' WHERE id = ?", (row_id,))
    conn.commit()
    conn.close()
    conflict = await migrate_sqlite(changed, url, tables=["website_audits"])
    wa = conflict.tables[0]
    assert (wa.conflicts, wa.conflict_ids, wa.inserted) == (1, (row_id,), 0)
    replaced = await migrate_sqlite(changed, url, tables=["website_audits"], overwrite=True)
    assert replaced.tables[0].overwritten == 1
    pg = await asyncpg.connect(url)
    try:
        assert await pg.fetchval("SELECT status FROM website_audits WHERE id = $1", row_id) == "changed"
    finally:
        await pg.close()


async def test_resume_after_sigkill_on_the_cluster(
    legacy: LegacyDatabaseSummary, dhv_citus_database_factory: CitusDatabaseFactory, tmp_path: Path
) -> None:
    url = await dhv_citus_database_factory()
    total = legacy.row_counts["deal_embeddings"] - 2
    proc = start_loader(
        legacy.path, url, "--batch-size", "4", "--on-error", "skip", "--reject-file", str(tmp_path / "r.jsonl")
    )
    conn = await asyncpg.connect(url)
    try:
        await kill_group_when_loaded(proc, conn, 20, timeout=300)
        await asyncio.sleep(1.0)  # the coordinator notices the dead connection and rolls back
        after_kill = await conn.fetchval("SELECT count(*) FROM deal_embeddings")
        assert 0 < after_kill < total
    finally:
        await conn.close()
    report = await migrate_sqlite(legacy.path, url, on_error="skip")
    de = next(t for t in report.tables if t.table == "deal_embeddings")
    assert de.already_present == after_kill and de.inserted == total - after_kill and de.rejected == 2
    expected = dict(legacy.row_counts)
    expected["deal_embeddings"] -= 2
    assert await counts(url) == expected
