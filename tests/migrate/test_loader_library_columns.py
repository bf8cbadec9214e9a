"""The loader fills the library-owned columns of migrated chunks (migrations 009 and 011); verify ignores them."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

import dealhunter_vectors as dv
from dealhunter_vectors import compounds
from dealhunter_vectors.db.library_columns import LEGACY_EMBEDDING_MODEL
from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database


async def check_library_columns(pool: dv.Pool) -> int:
    """Every chunk with an embedding has the legacy model and its content's sha256 (hashlib); none without.
    Every chunk has its compound parts and their content's sha256 (with the extra [compounds])."""
    checked = 0
    split = compounds.compounds_available()
    for table in ("deal_embeddings", "raw_chunks"):
        rows = await pool.fetch(
            "SELECT id, content, embedding IS NOT NULL AS embedded, embedding_model, embedding_content_hash,"
            f" content_parts, content_parts_hash FROM {table}"
        )
        assert rows
        for r in rows:
            digest = hashlib.sha256(r["content"].encode()).digest()
            if split:
                assert r["content_parts"] == compounds.compound_parts_text(r["content"]), (table, r["id"])
                assert bytes(r["content_parts_hash"]) == digest, (table, r["id"])
            else:
                assert r["content_parts"] is None and r["content_parts_hash"] is None
            if r["embedded"]:
                assert r["embedding_model"] == LEGACY_EMBEDDING_MODEL, (table, r["id"])
                assert bytes(r["embedding_content_hash"]) == hashlib.sha256(r["content"].encode()).digest()
                checked += 1
            else:
                assert r["embedding_model"] is None and r["embedding_content_hash"] is None
    return checked


async def test_migrated_chunks_are_not_stale_for_the_legacy_model(dhv_pool: dv.Pool, tmp_path: Path) -> None:
    legacy = build_legacy_database(tmp_path / "local.db", LegacyDatasetSpec.tiny(dims=3072, seed=4))
    report = await dv.migrate_sqlite(legacy.path, dhv_pool, batch_size=7)  # direct COPY batches
    assert report.ok
    assert await check_library_columns(dhv_pool) > 0
    assert await dv.stale_chunks(dhv_pool, model=LEGACY_EMBEDDING_MODEL) == []
    assert await dv.stale_chunks(dhv_pool, table="raw_chunks", model=LEGACY_EMBEDDING_MODEL) == []
    assert (await dv.verify_migration(legacy.path, dhv_pool)).ok
    # staging with overwrite: a row changed in PostgreSQL is restored with its library-owned values
    row_id = await dhv_pool.fetchval("SELECT id FROM deal_embeddings WHERE embedding IS NOT NULL ORDER BY id LIMIT 1")
    await dhv_pool.execute(
        "UPDATE deal_embeddings SET content = 'changed', embedding_model = 'x', embedding_content_hash = NULL"
        " WHERE id = $1",
        row_id,
    )
    assert not (await dv.verify_migration(legacy.path, dhv_pool)).ok
    again = await dv.migrate_sqlite(legacy.path, dhv_pool, batch_size=7, overwrite=True)
    assert again.ok and sum(t.overwritten for t in again.tables) == 1
    await check_library_columns(dhv_pool)
    assert (await dv.verify_migration(legacy.path, dhv_pool)).ok


async def test_staged_batches_fill_them_too(dhv_pool: dv.Pool, tmp_path: Path) -> None:
    legacy = build_legacy_database(tmp_path / "local.db", LegacyDatasetSpec.tiny(dims=3072, seed=5))
    # a chunk table that is not empty when its load starts takes the staging path
    await dv.migrate_sqlite(legacy.path, dhv_pool, tables=["users", "business_units", "accounts", "pre_qualifications"])
    pq = await dhv_pool.fetchval("SELECT id FROM pre_qualifications ORDER BY id LIMIT 1")
    await dv.insert_deal_chunks(
        dhv_pool, [dv.DealChunk(id="mine", pre_qualification_id=pq, agent_name="a", chunk_type="t", content="c")]
    )
    await dv.replace_raw_chunks(
        dhv_pool, pq, [dv.RawChunk(id="mine-raw", chunk_index=0, content="c", token_count=1, embedding=[1.0] * 3072)]
    )
    report = await dv.migrate_sqlite(legacy.path, dhv_pool, batch_size=5)
    assert report.ok
    assert await check_library_columns(dhv_pool) > 0


@pytest.mark.parametrize("workers", [0, 1, 2])
async def test_values_split_by_the_workers_stay_with_their_rows(
    dhv_pool: dv.Pool, tmp_path: Path, workers: int
) -> None:
    """The worker processes compute each chunk's library-owned values (compound parts included);
    rows the loader rejects (content a BLOB, invalid UTF-8, a NUL byte) leave every other row's
    values where they belong, and their text is never encoded (invalid UTF-8 would raise)."""
    legacy = build_legacy_database(tmp_path / "local.db", LegacyDatasetSpec.tiny(dims=3072, seed=6))
    with sqlite3.connect(legacy.path) as con:
        bad = [r[0] for r in con.execute("SELECT id FROM deal_embeddings ORDER BY id LIMIT 3")]
        con.execute("UPDATE deal_embeddings SET content = X'00ff' WHERE id = ?", (bad[0],))
        con.execute("UPDATE deal_embeddings SET content = CAST(X'41ff42' AS TEXT) WHERE id = ?", (bad[1],))
        con.execute("UPDATE deal_embeddings SET content = CAST(X'410042' AS TEXT) WHERE id = ?", (bad[2],))
    report = await dv.migrate_sqlite(
        legacy.path, dhv_pool, batch_size=4, workers=workers, on_error="skip", reject_file=tmp_path / "rejects.jsonl"
    )
    assert {t.table: t.rejected for t in report.tables if t.rejected} == {"deal_embeddings": 3}
    rejected = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rejected) == sorted(bad)
    assert await check_library_columns(dhv_pool) > 0
    assert await dhv_pool.fetchval("SELECT count(*) FROM deal_embeddings WHERE id = ANY($1::text[])", bad) == 0
