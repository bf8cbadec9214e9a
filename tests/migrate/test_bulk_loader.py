"""The SQLite -> PostgreSQL bulk loader on a legacy database written the way the app did.

Expected values are computed here from the raw SQLite values, independently of the
loader: timestamps compared as epoch seconds (calendar.timegm), booleans as ``== 1``,
JSON/text byte-equal, vectors parsed with the standard-library ``json`` and rounded to
float32 by numpy, and compared with the builder's own float32 vectors.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from dealhunter_vectors.db.pool import Pool, close_pool, create_pool
from dealhunter_vectors.db.schema import VECTOR_INDEXES, legacy_schema, quote_ident
from dealhunter_vectors.legacy.database import LegacyDatabaseSummary, LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.migrate.loader import load_order, migrate_sqlite
from dealhunter_vectors.migrate.reports import MigrationReport

Factory = Callable[[], Awaitable[str]]
FACTS = {t["name"]: t for t in legacy_schema()["tables"]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyDatabaseSummary:
    path = tmp_path_factory.mktemp("legacy") / "local.db"
    return build_legacy_database(path, LegacyDatasetSpec.tiny(dims=3072, seed=3))


@pytest.fixture(scope="module")
async def migrated(
    legacy: LegacyDatabaseSummary, dhv_database_factory: Factory
) -> tuple[str, MigrationReport, MigrationReport]:
    url = await dhv_database_factory()
    before = sha256(legacy.path)
    first = await migrate_sqlite(legacy.path, url, batch_size=7)
    second = await migrate_sqlite(legacy.path, url, batch_size=50)
    assert sha256(legacy.path) == before
    return url, first, second


@pytest.fixture
async def pool(migrated: tuple[str, MigrationReport, MigrationReport]) -> Any:
    p = await create_pool(migrated[0], min_size=1, max_size=2)
    yield p
    await close_pool(p)


def source_rows(path: Path, table: str) -> dict[str, tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cols = [c["name"] for c in FACTS[table]["columns"]]
        sql = f"SELECT {', '.join(quote_ident(c) for c in cols)} FROM {quote_ident(table)}"
        return {r[0]: r for r in conn.execute(sql)}
    finally:
        conn.close()


def test_load_order_puts_every_parent_first() -> None:
    order = load_order()
    assert sorted(order) == sorted(FACTS)
    pos = {t: i for i, t in enumerate(order)}
    for t in FACTS.values():
        for c in t["columns"]:
            if c["references"]:
                assert pos[c["references"]["table"]] < pos[t["name"]], (t["name"], c["name"])
    subset = load_order(["deal_embeddings", "qualifications", "pre_qualifications"])
    assert subset == ["pre_qualifications", "qualifications", "deal_embeddings"]


def test_every_table_is_covered(legacy: LegacyDatabaseSummary) -> None:
    assert set(legacy.row_counts) == set(FACTS)
    assert all(n >= 2 for n in legacy.row_counts.values())


async def test_first_run_inserts_every_row(
    legacy: LegacyDatabaseSummary, migrated: tuple[str, MigrationReport, MigrationReport], pool: Pool
) -> None:
    _, first, _ = migrated
    assert first.ok and first.status == "completed"
    assert {t.table: t.inserted for t in first.tables} == dict(legacy.row_counts)
    assert first.problem_count == 0 and first.rejected == 0 and first.conflicts == 0
    for table, n in legacy.row_counts.items():
        assert await pool.fetchval(f"SELECT count(*) FROM {quote_ident(table)}") == n
    # the HNSW indexes were dropped on the empty tables and built after the data
    assert set(first.indexes_dropped) == {ix.name for ix in VECTOR_INDEXES}
    assert first.indexes_rebuilt
    names = {r["indexname"] for r in await pool.fetch("SELECT indexname FROM pg_indexes")}
    assert {ix.name for ix in VECTOR_INDEXES} <= names
    analyzed = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'deal_embeddings' AND last_analyze IS NOT NULL"
    )
    assert analyzed == 1


async def test_second_run_inserts_nothing(
    legacy: LegacyDatabaseSummary, migrated: tuple[str, MigrationReport, MigrationReport]
) -> None:
    _, _, second = migrated
    assert second.ok
    assert second.inserted == 0
    assert {t.table: t.already_present for t in second.tables} == dict(legacy.row_counts)
    assert second.indexes_dropped == ()  # tables were not empty: indexes kept


async def test_values_are_exact(legacy: LegacyDatabaseSummary, pool: Pool) -> None:
    checked = {"timestamp_s": 0, "boolean": 0, "json": 0, "embedding": 0, "integer": 0, "text": 0, "enum": 0}
    for table, facts in FACTS.items():
        src = source_rows(legacy.path, table)
        cols = [c["name"] for c in facts["columns"]]
        rows = await pool.fetch(f"SELECT {', '.join(quote_ident(c) for c in cols)} FROM {quote_ident(table)}")
        assert {r["id"] for r in rows} == set(src)
        for r in rows:
            s = src[r["id"]]
            for k, col in enumerate(facts["columns"]):
                got, raw = r[k], s[k]
                if raw is None:
                    assert got is None, (table, col["name"])
                    continue
                kind = col["kind"]
                checked[kind] += 1
                if kind == "timestamp_s":
                    assert got.tzinfo is None
                    assert calendar.timegm(got.timetuple()) == raw and got.microsecond == 0
                elif kind == "boolean":
                    assert raw in (0, 1) and got is (raw == 1)
                elif kind == "embedding":
                    expected = np.array(json.loads(raw), dtype=np.float64).astype(np.float32)
                    assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()
                    assert got.tobytes() == legacy.vector_columns[(table, col["name"])].vector(r["id"]).tobytes()
                else:  # text, enum, json, integer: unchanged
                    assert got == raw and type(got) is type(raw), (table, col["name"])
    assert all(checked.values()), checked


async def test_iso_text_timestamp_and_blob_embedding_are_accepted(
    tmp_path: Path, legacy: LegacyDatabaseSummary, dhv_database_factory: Factory
) -> None:
    src = tmp_path / "variants.db"
    src.write_bytes(legacy.path.read_bytes())
    de_id = legacy.deal_embeddings.ids[0]
    vec = legacy.deal_embeddings.vector(de_id)
    user_id = legacy.user_ids[0]
    with sqlite3.connect(src) as conn:
        conn.execute("UPDATE users SET created_at = '2026-01-18T09:43:30+01:00' WHERE id = ?", (user_id,))
        conn.execute("UPDATE deal_embeddings SET embedding = ? WHERE id = ?", (vec.astype("<f4").tobytes(), de_id))
    url = await dhv_database_factory()
    report = await migrate_sqlite(src, url, tables=["business_units", "users"], workers=0)
    assert report.ok
    p = await create_pool(url, min_size=1, max_size=1)
    try:
        created = await p.fetchval("SELECT created_at FROM users WHERE id = $1", user_id)
        assert created.isoformat() == "2026-01-18T08:43:30"  # the UTC wall clock
        report = await migrate_sqlite(src, url, workers=2)
        assert report.ok
        got = await p.fetchval("SELECT embedding FROM deal_embeddings WHERE id = $1", de_id)
        assert got.tobytes() == vec.tobytes()
    finally:
        await close_pool(p)


async def test_conflicts_are_listed_not_overwritten_unless_asked(
    legacy: LegacyDatabaseSummary, dhv_database_factory: Factory
) -> None:
    url = await dhv_database_factory()
    assert (await migrate_sqlite(legacy.path, url, workers=0)).ok
    ref_id = sorted(source_rows(legacy.path, "references"))[0]
    de_id = legacy.deal_embeddings.ids[1]
    p = await create_pool(url, min_size=1, max_size=1)
    try:
        await p.execute('UPDATE "references" SET outcome = $1 WHERE id = $2', "edited in PG", ref_id)
        changed = legacy.deal_embeddings.vector(de_id).copy()
        changed[5] = np.float32(0.25)
        await p.execute("UPDATE deal_embeddings SET embedding = $1 WHERE id = $2", changed, de_id)

        report = await migrate_sqlite(legacy.path, url, workers=0)
        assert not report.ok and report.conflicts == 2 and report.inserted == 0
        by_table = {t.table: t for t in report.tables}
        assert by_table["references"].conflict_ids == (ref_id,)
        assert by_table["deal_embeddings"].conflict_ids == (de_id,)
        assert await p.fetchval('SELECT outcome FROM "references" WHERE id = $1', ref_id) == "edited in PG"

        report = await migrate_sqlite(legacy.path, url, workers=0, overwrite=True)
        assert report.ok and {t.table: t.overwritten for t in report.tables if t.overwritten} == {
            "references": 1,
            "deal_embeddings": 1,
        }
        cols = [c["name"] for c in FACTS["references"]["columns"]]
        outcome = source_rows(legacy.path, "references")[ref_id][cols.index("outcome")]
        assert await p.fetchval('SELECT outcome FROM "references" WHERE id = $1', ref_id) == outcome
        got = await p.fetchval("SELECT embedding FROM deal_embeddings WHERE id = $1", de_id)
        assert got.tobytes() == legacy.deal_embeddings.vector(de_id).tobytes()
    finally:
        await close_pool(p)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors.cli", *args], capture_output=True, text=True, timeout=300
    )


async def test_cli_migrate_and_verify_json_and_exit_codes(
    tmp_path: Path, legacy: LegacyDatabaseSummary, dhv_database_factory: Factory
) -> None:
    url = await dhv_database_factory()
    before = sha256(legacy.path)
    done = _cli("migrate", str(legacy.path), "--database-url", url, "--json", "--batch-size", "16")
    assert done.returncode == 0, done.stderr
    report = MigrationReport.model_validate_json(done.stdout)
    assert report.inserted == sum(legacy.row_counts.values())
    assert "migrate: deal_embeddings" in done.stderr  # plain progress lines: not a terminal

    done = _cli("verify", str(legacy.path), "--database-url", url, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True

    bad = tmp_path / "bad.db"
    bad.write_bytes(legacy.path.read_bytes())
    with sqlite3.connect(bad) as conn:
        conn.execute("UPDATE users SET created_at = created_at * 1000 WHERE id = ?", (legacy.user_ids[1],))
    done = _cli("migrate", str(bad), "--database-url", url, "--quiet")
    assert done.returncode == 4, done.stderr
    assert "timestamp_milliseconds" in done.stderr and legacy.user_ids[1] in done.stderr
    rejects = tmp_path / "rejects.jsonl"
    done = _cli("migrate", str(bad), "--database-url", url, "--on-error", "skip", "--reject-file", str(rejects))
    assert done.returncode == 3, done.stderr
    lines = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [(x["table"], x["id"]) for x in lines] == [("users", legacy.user_ids[1])]
    done = _cli("verify", str(bad), "--database-url", url)
    assert done.returncode == 3
    assert _cli("migrate", str(tmp_path / "absent.db"), "--database-url", url).returncode == 1
    assert _cli("migrate", str(legacy.path), "--batch-size", "0").returncode == 2
    assert sha256(legacy.path) == before


async def test_schema_is_applied_when_absent(legacy: LegacyDatabaseSummary, dhv_server_url: str) -> None:
    from dealhunter_vectors.testing import with_database

    name = "dhv_bulk_empty_target"
    admin = await asyncpg.connect(dhv_server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
        report = await migrate_sqlite(legacy.path, with_database(dhv_server_url, name), workers=0)
        assert report.ok and report.inserted == sum(legacy.row_counts.values())
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        await admin.close()
