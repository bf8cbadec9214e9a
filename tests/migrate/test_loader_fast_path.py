"""The loader's direct path: batches of a table that is empty when its load starts are
COPYed straight into the target; a batch the target's constraints refuse goes through the
staging path, so reporting stays exact.

* rows PostgreSQL refuses in the middle of a batch (a parent that does not exist, an email
  another row already uses) are reported with table/id/column/reason, the rows they take
  with them (children of a rejected row) too, and every other row of those batches is
  loaded - with the direct path available and with it made impossible (constraints
  dropped, so every batch is staged): both equal the expectation computed here from the
  source with SQLite and a fixpoint over the schema's foreign keys;
* ``on_error="stop"`` on the direct path stops at the first such row; the earlier batches
  stay, the failing batch is not loaded;
* rows that appear in the target while the table loads (another writer, after the first
  batch) are classified, not overwritten: same content -> already present, other content ->
  a conflict that keeps the other writer's values; the re-run inserts nothing.

Expected values come from the SQLite source (stdlib ``json``, ``datetime``), never from the
loader.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from dealhunter_vectors.db.pool import register_vector_codecs
from dealhunter_vectors.db.schema import legacy_schema, quote_ident
from dealhunter_vectors.errors import MigrationStoppedError
from dealhunter_vectors.legacy.database import LegacyDatabaseSummary, LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.migrate.loader import MigrationProgress, migrate_sqlite
from dealhunter_vectors.migrate.reports import RowProblem

Factory = Callable[[], Awaitable[str]]
FACTS = {t["name"]: t for t in legacy_schema()["tables"]}


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyDatabaseSummary:
    return build_legacy_database(
        tmp_path_factory.mktemp("fast") / "local.db", LegacyDatasetSpec.tiny(dims=3072, seed=5)
    )


def source_ids(path: Path, table: str) -> list[str]:
    """Ids in rowid order: the order of the loader's full-table scan."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute(f"SELECT id FROM {quote_ident(table)} ORDER BY rowid")]
    finally:
        conn.close()


def plant(legacy: LegacyDatabaseSummary, dest: Path) -> set[tuple[str, str, str, str]]:
    """Copy the source and plant rows PostgreSQL must refuse in the middle of batches.

    Returns the planted problems (table, id, column, reason).
    """
    shutil.copyfile(legacy.path, dest)
    employees = source_ids(dest, "employees")
    chunks = source_ids(dest, "deal_embeddings")
    # the later of two rows with one email is the one reported (later in scan order, larger id)
    first, dup = employees[0], employees[-1]
    assert dup > first
    conn = sqlite3.connect(dest, isolation_level=None)
    try:
        # the app's file has the unique index; a damaged file may not: PostgreSQL must refuse
        conn.execute("DROP INDEX employees_email_unique")
        conn.execute(
            "UPDATE employees SET email = (SELECT email FROM employees WHERE id = ?) WHERE id = ?", (first, dup)
        )
        conn.execute("UPDATE deal_embeddings SET qualification_id = 'no-such-q' WHERE id = ?", (chunks[4],))
        conn.execute("UPDATE deal_embeddings SET pre_qualification_id = 'no-such-pq' WHERE id = ?", (chunks[13],))
    finally:
        conn.close()
    return {
        ("employees", dup, "email", "unique_violation"),
        ("deal_embeddings", chunks[4], "qualification_id", "missing_parent"),
        ("deal_embeddings", chunks[13], "pre_qualification_id", "missing_parent"),
    }


def with_children(path: Path, planted: set[tuple[str, str, str, str]]) -> set[tuple[str, str, str, str]]:
    """Planted problems plus every row whose foreign key points at a rejected row (fixpoint)."""
    expected = set(planted)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        while True:
            rejected = {(t, i) for t, i, _, _ in expected}
            new = set()
            for table in FACTS.values():
                for col in table["columns"]:
                    ref = col.get("references")
                    if not ref:
                        continue
                    sql = f"SELECT id, {quote_ident(col['name'])} FROM {quote_ident(table['name'])}"
                    for row_id, parent in conn.execute(sql):
                        if parent is not None and (ref["table"], parent) in rejected:
                            new.add((table["name"], row_id, col["name"], "missing_parent"))
            if new <= expected:
                return expected
            expected |= new
    finally:
        conn.close()


async def target_ids(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        return {t: {r["id"] for r in await conn.fetch(f"SELECT id FROM {quote_ident(t)}")} for t in FACTS}
    finally:
        await conn.close()


# Dropping these makes the direct path impossible for their tables (the loader must then
# stage every batch and find the same rows by its own checks).
_DROP_CONSTRAINTS = """
SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', conrelid::regclass::text, conname)
FROM pg_constraint
WHERE conrelid IN ('deal_embeddings'::regclass, 'employees'::regclass) AND contype IN ('f', 'u')
"""


@pytest.mark.parametrize("path", ["direct", "staging_only"])
async def test_refused_rows_mid_batch_are_reported_exactly_and_hide_no_good_row(
    path: str, legacy: LegacyDatabaseSummary, tmp_path: Path, dhv_database_factory: Factory
) -> None:
    src = tmp_path / "planted.db"
    expected = with_children(src, plant(legacy, src))
    assert len(expected) > 3  # the duplicate employee has children that go with it
    url = await dhv_database_factory()
    if path == "staging_only":
        conn = await asyncpg.connect(url)
        try:
            for (stmt,) in await conn.fetch(_DROP_CONSTRAINTS):
                await conn.execute(stmt)
        finally:
            await conn.close()
    report = await migrate_sqlite(src, url, on_error="skip", batch_size=4, reject_file=tmp_path / "rejects.jsonl")

    assert {(p.table, p.row_id, p.column, p.reason) for p in report.problems} == expected
    assert report.problem_count == len(expected)
    rejected_rows = {(t, i) for t, i, _, _ in expected}
    loaded = await target_ids(url)
    for table in FACTS:
        want = {i for i in source_ids(src, table) if (table, i) not in rejected_rows}
        assert loaded[table] == want, table
    by_table = {t.table: t for t in report.tables}
    for table, t in by_table.items():
        bad = sum(1 for tb, _ in rejected_rows if tb == table)
        assert (t.inserted, t.rejected, t.conflicts, t.already_present) == (t.source_rows - bad, bad, 0, 0), table
    lines = (tmp_path / "rejects.jsonl").read_text().splitlines()
    assert {(r["table"], r["id"]) for r in map(json.loads, lines)} == rejected_rows

    # a re-run (tables no longer empty: staging) finds every loaded row present, inserts nothing
    again = await migrate_sqlite(src, url, on_error="skip", batch_size=4)
    assert again.inserted == 0 and again.conflicts == 0
    assert again.already_present == sum(len(v) for v in loaded.values())
    assert {(p.table, p.row_id, p.column, p.reason) for p in again.problems} == expected


async def test_stop_mode_stops_at_the_first_refused_row_on_the_direct_path(
    legacy: LegacyDatabaseSummary, tmp_path: Path, dhv_database_factory: Factory
) -> None:
    src = tmp_path / "planted.db"
    plant(legacy, src)
    employees = source_ids(src, "employees")
    url = await dhv_database_factory()
    with pytest.raises(MigrationStoppedError) as info:
        await migrate_sqlite(src, url, on_error="stop", batch_size=3)
    first = info.value.problems[0]
    assert isinstance(first, RowProblem)
    # employees load before deal_embeddings; its 4th row (2nd batch) repeats the 1st row's email
    assert (first.table, first.row_id, first.column, first.reason) == (
        "employees",
        employees[-1],
        "email",
        "unique_violation",
    )
    loaded = await target_ids(url)
    assert loaded["employees"] == set(employees[:3])  # the first batch stays, the failing one is not loaded
    assert loaded["deal_embeddings"] == set()


def _timestamp(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC).replace(tzinfo=None)


def converted_row(path: Path, row_id: str) -> dict[str, Any]:
    """A deal_embeddings source row as PostgreSQL must hold it (independent conversion)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        row = dict(conn.execute("SELECT * FROM deal_embeddings WHERE id = ?", (row_id,)).fetchone())
    finally:
        conn.close()
    for col in FACTS["deal_embeddings"]["columns"]:
        name, value = col["name"], row[col["name"]]
        if col["kind"] == "timestamp_s":
            row[name] = _timestamp(value)
        elif col["kind"] == "boolean" and value is not None:
            row[name] = value == 1
        elif col["kind"] == "embedding" and value is not None:
            row[name] = np.asarray(json.loads(value), dtype=np.float64).astype(np.float32)
    return row


async def _insert_rows(url: str, rows: list[dict[str, Any]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await register_vector_codecs(conn)
        for row in rows:
            names = list(row)
            cols = ", ".join(quote_ident(n) for n in names)
            marks = ", ".join(f"${k}" for k in range(1, len(names) + 1))
            await conn.execute(f"INSERT INTO deal_embeddings ({cols}) VALUES ({marks})", *row.values())
    finally:
        await conn.close()


async def test_rows_another_writer_adds_mid_load_are_classified_never_overwritten(
    legacy: LegacyDatabaseSummary, dhv_database_factory: Factory
) -> None:
    url = await dhv_database_factory()
    chunks = source_ids(legacy.path, "deal_embeddings")
    same_id, other_id = chunks[9], chunks[17]
    same = converted_row(legacy.path, same_id)
    other = converted_row(legacy.path, other_id)
    other["content"] = "written by another writer while the migration ran"
    done: list[BaseException | None] = []

    def writer(ev: MigrationProgress) -> None:
        # after the first committed batch of the (then empty) table; the loader waits meanwhile
        if ev.phase == "batch" and ev.table == "deal_embeddings" and not done:
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    asyncio.run(_insert_rows(url, [same, other]))
                except BaseException as exc:
                    errors.append(exc)

            t = threading.Thread(target=run)
            t.start()
            t.join()
            done.append(errors[0] if errors else None)

    report = await migrate_sqlite(legacy.path, url, batch_size=4, progress=writer)
    assert done == [None]
    de = next(t for t in report.tables if t.table == "deal_embeddings")
    assert (de.inserted, de.already_present, de.conflicts, de.rejected) == (len(chunks) - 2, 1, 1, 0)
    assert de.conflict_ids == (other_id,)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT content FROM deal_embeddings WHERE id = $1", other_id) == other["content"]
        assert await conn.fetchval("SELECT count(*) FROM deal_embeddings") == len(chunks)
    finally:
        await conn.close()
    again = await migrate_sqlite(legacy.path, url, batch_size=4)
    de2 = next(t for t in again.tables if t.table == "deal_embeddings")
    assert again.inserted == 0
    assert (de2.already_present, de2.conflicts, de2.conflict_ids) == (len(chunks) - 1, 1, (other_id,))
