"""``verify`` lists rows another writer stored outside the norm range (issue 19, point 1).

A legacy file is migrated, then one embedding per column is overwritten with plain SQL the way
a database got them before migration 008 (tests/support.py); ``verify_migration`` names each by
table, id and column with reason ``norm_range`` (besides the changed checksum).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import plant_rows_before_norm_checks

import dealhunter_vectors as dv
from dealhunter_vectors.db.codecs import Vector
from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database

DIMS = 3072


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_legacy_database(tmp_path_factory.mktemp("verify") / "local.db", LegacyDatasetSpec.tiny(dims=DIMS)).path


async def test_verify_lists_out_of_range_rows_by_table_id_and_column(legacy_file: Path, dhv_database_url: str) -> None:
    tiny = Vector(np.full(DIMS, 1e-30, np.float32))
    async with dv.open_pool(dhv_database_url, min_size=1, max_size=2) as pool:
        assert (await dv.migrate_sqlite(legacy_file, pool)).ok
        deal = await pool.fetchval("SELECT min(id) FROM deal_embeddings WHERE embedding IS NOT NULL")
        raw = await pool.fetchval("SELECT min(id) FROM raw_chunks")
        pq = await pool.fetchval("SELECT min(id) FROM pre_qualifications WHERE description_embedding IS NOT NULL")
        await plant_rows_before_norm_checks(
            pool,
            ("UPDATE deal_embeddings SET embedding = $2 WHERE id = $1", deal, tiny),
            ("UPDATE raw_chunks SET embedding = $2 WHERE id = $1", raw, tiny),
            ("UPDATE pre_qualifications SET description_embedding = $2 WHERE id = $1", pq, tiny),
        )
        report = await dv.verify_migration(legacy_file, pool)
    assert not report.ok
    problems = {(p.table, p.row_id, p.column, p.reason) for t in report.tables for p in t.bad_vectors}
    assert problems == {
        ("deal_embeddings", deal, "embedding", "norm_range"),
        ("raw_chunks", raw, "embedding", "norm_range"),
        ("pre_qualifications", pq, "description_embedding", "norm_range"),
    }
    mismatched = {t.table: set(t.mismatched_ids) for t in report.tables}
    assert deal in mismatched["deal_embeddings"] and raw in mismatched["raw_chunks"]
