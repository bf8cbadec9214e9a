"""Issue 19, point 2: drifted legacy data into the distributed layout (a 1 + 2 Citus cluster).

The legacy file's foreign keys cross pre-qualifications, which one server accepts and the
distributed layout cannot hold (its foreign keys between co-located tables include the
tenant). Every such shape (found from the packaged schema and the layout, and checked
against the live catalog's foreign keys) is planted in one file:

* a qualification whose quick scan belongs to another pre-qualification;
* deal chunks whose ``pre_qualification_id`` is not their qualification's;
* (and, as before, a chunk with no owner at all: ``tenant_unknown``).

``--on-error skip``: every source row ends loaded or in the reject file with a reason
(``tenant_conflict`` naming both parents; ``missing_parent`` for the rows below a rejected
qualification), counted per table against the SQLite file read on its own; ``verify``
finds exactly the rejected rows missing. ``--on-error stop``: a clean stop naming the row,
never a raw server error. The repair query of docs/scaling.md finds exactly the planted rows.
A constraint the loader's checks do not know (added to the target by hand) is reported
row by row (``constraint_violation``), the rest loaded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from dealhunter_vectors.db.distributed import TENANT_FROM_PARENT, distribution_column, tenant_column
from dealhunter_vectors.db.schema import legacy_schema, quote_ident
from dealhunter_vectors.errors import MigrationStoppedError
from dealhunter_vectors.legacy.database import LegacyDatabaseSummary, LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.migrate.loader import migrate_sqlite
from dealhunter_vectors.migrate.verify import verify_migration
from dealhunter_vectors.testing import CitusDatabaseFactory

pytestmark = pytest.mark.citus
REPO = Path(__file__).resolve().parents[2]
TABLES = [t["name"] for t in legacy_schema()["tables"]]
QUALIFICATION_CHILDREN = [t for t, (column, *_) in TENANT_FROM_PARENT.items() if column == "qualification_id"]


def drift_shapes() -> set[tuple[str, str]]:
    """Foreign keys between co-located tables that do not decide the row's own tenant:
    where a legacy row can point at another pre-qualification's parent."""
    shapes = set()
    for table in legacy_schema()["tables"]:
        name = table["name"]
        if tenant_column(name) is None:
            continue
        own_sources = {distribution_column(name), TENANT_FROM_PARENT.get(name, ("",))[0], "pre_qualification_id"}
        for col in table["columns"]:
            ref = col.get("references")
            if ref and tenant_column(ref["table"]) is not None and col["name"] not in own_sources:
                shapes.add((name, col["name"]))
    return shapes


def test_the_drift_shapes_are_the_two_planted_below() -> None:
    assert drift_shapes() == {("qualifications", "quick_scan_id"), ("deal_embeddings", "qualification_id")}


_LAYOUT_FOREIGN_KEYS = """
SELECT c.conname, c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent,
       array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) AS columns,
       array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) AS parent_columns
FROM pg_constraint c
WHERE c.contype = 'f'
  AND c.conrelid IN (SELECT logicalrelid FROM pg_dist_partition WHERE partmethod = 'h')
  AND c.confrelid IN (SELECT logicalrelid FROM pg_dist_partition WHERE partmethod = 'h')
"""


async def test_every_foreign_key_between_distributed_tables_is_a_tenant_key_or_a_drift_shape(
    dhv_citus_database_factory: CitusDatabaseFactory,
) -> None:
    """The live layout: each foreign key between distributed tables pairs the child's tenant
    column with the parent's; its other column decides the child's tenant or is a drift shape."""
    url = await dhv_citus_database_factory()
    conn = await asyncpg.connect(url)
    try:
        keys = await conn.fetch(_LAYOUT_FOREIGN_KEYS)
    finally:
        await conn.close()
    assert keys
    kept: set[tuple[str, str]] = set()
    for key in keys:
        child, parent = key["child"].strip('"'), key["parent"].strip('"')
        own, theirs = tenant_column(child), tenant_column(parent)
        assert own is not None and theirs is not None, key  # both co-located with pre_qualifications
        pairs = dict(zip(key["columns"], key["parent_columns"], strict=True))
        if pairs == {own: "id"} and parent == "pre_qualifications":
            continue  # the tenant's own key
        assert pairs.pop(own) == theirs, key  # the tenant is part of the key ...
        ((column, parent_column),) = pairs.items()  # ... with one column of the row's own
        assert parent_column == "id", key
        kept.add((child, column))
    derived = {(t, column) for t, (column, *_) in TENANT_FROM_PARENT.items()}
    assert kept - derived == drift_shapes()


def sqlite_rows(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@dataclasses.dataclass(frozen=True)
class Drifted:
    legacy: LegacyDatabaseSummary
    qualification: str  # its quick scan is another pre-qualification's
    own_pre: str
    foreign_scan: str
    foreign_pre: str
    chunks: tuple[str, ...]  # pre_qualification_id is not their qualification's
    orphan: str

    @property
    def path(self) -> Path:
        return self.legacy.path


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> Drifted:
    spec = dataclasses.replace(
        LegacyDatasetSpec.tiny(dims=3072, seed=23),
        qualifications=4,
        deal_embeddings_per_qualification=30,
        orphan_deal_embeddings=1,
    )
    legacy = build_legacy_database(tmp_path_factory.mktemp("citus-drift") / "drifted.db", spec)
    conn = sqlite3.connect(legacy.path)
    try:
        qual, own_pre = conn.execute(
            "SELECT id, pre_qualification_id FROM qualifications ORDER BY id LIMIT 1"
        ).fetchone()
        scan, scan_pre = conn.execute(
            "SELECT id, pre_qualification_id FROM quick_scans WHERE pre_qualification_id <> ? ORDER BY id LIMIT 1",
            (own_pre,),
        ).fetchone()
        conn.execute("UPDATE qualifications SET quick_scan_id = ? WHERE id = ?", (scan, qual))
        other_qual, other_pre = conn.execute(
            "SELECT id, pre_qualification_id FROM qualifications WHERE id <> ? ORDER BY id LIMIT 1", (qual,)
        ).fetchone()
        wrong_pre = conn.execute(
            "SELECT id FROM pre_qualifications WHERE id <> ? ORDER BY id LIMIT 1", (other_pre,)
        ).fetchone()[0]
        chunks = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM deal_embeddings WHERE qualification_id = ? ORDER BY id LIMIT 3", (other_qual,)
            )
        ]
        conn.executemany(
            "UPDATE deal_embeddings SET pre_qualification_id = ? WHERE id = ?", [(wrong_pre, c) for c in chunks]
        )
        orphan = conn.execute(
            "SELECT id FROM deal_embeddings WHERE pre_qualification_id IS NULL AND qualification_id IS NULL"
        ).fetchone()[0]
        conn.commit()
    finally:
        conn.close()
    return Drifted(legacy, qual, own_pre, scan, scan_pre, tuple(chunks), orphan)


def expected_rejects(d: Drifted) -> dict[tuple[str, str], str]:
    """(table, id) -> reason, computed from the SQLite file on its own."""
    out: dict[tuple[str, str], str] = {("qualifications", d.qualification): "tenant_conflict"}
    out.update({("deal_embeddings", c): "tenant_conflict" for c in d.chunks})
    out[("deal_embeddings", d.orphan)] = "tenant_unknown"
    below = [*QUALIFICATION_CHILDREN, "deal_embeddings"]
    for table in below:
        for (row_id,) in sqlite_rows(
            d.path, f"SELECT id FROM {quote_ident(table)} WHERE qualification_id = ?", d.qualification
        ):
            out.setdefault((table, str(row_id)), "missing_parent")
    for table in ("pitchdeck_deliverables", "pitchdeck_team_members"):
        for (row_id,) in sqlite_rows(
            d.path,
            f"SELECT c.id FROM {quote_ident(table)} c JOIN pitchdecks p ON p.id = c.pitchdeck_id "
            "WHERE p.qualification_id = ?",
            d.qualification,
        ):
            out[(table, str(row_id))] = "missing_parent"
    return out


def source_counts(path: Path) -> dict[str, int]:
    return {t: int(sqlite_rows(path, f"SELECT count(*) FROM {quote_ident(t)}")[0][0]) for t in TABLES}


async def target_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {quote_ident(t)}")) for t in TABLES}
    finally:
        await conn.close()


async def test_drifted_rows_go_to_the_reject_file_and_everything_else_loads(
    drifted: Drifted, dhv_citus_database_factory: CitusDatabaseFactory, tmp_path: Path
) -> None:
    url = await dhv_citus_database_factory()
    rejects = tmp_path / "rejects.jsonl"
    report = await migrate_sqlite(drifted.path, url, on_error="skip", reject_file=rejects, batch_size=16)
    assert report.status == "completed"

    expected = expected_rejects(drifted)
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert {(r["table"], r["id"]): r["problems"][0]["reason"] for r in lines} == expected
    assert len(lines) == len(expected)  # one line per rejected row

    # every source row ends loaded or rejected, per table, against the file read on its own
    source = source_counts(drifted.path)
    loaded = await target_counts(url)
    by_table = {t.table: t for t in report.tables}
    for table in TABLES:
        rejected = sum(1 for (t, _) in expected if t == table)
        assert by_table[table].inserted == loaded[table], table
        assert by_table[table].rejected == rejected, table
        assert loaded[table] + rejected == source[table], table

    # the conflicts name both parents
    qual_line = next(r for r in lines if r["id"] == drifted.qualification)
    problem = qual_line["problems"][0]
    assert problem["column"] == "quick_scan_id"
    for name in (drifted.own_pre, drifted.foreign_scan, drifted.foreign_pre, "quick_scans"):
        assert name in problem["detail"], problem["detail"]
    chunk_line = next(r for r in lines if r["id"] == drifted.chunks[0])
    assert chunk_line["problems"][0]["column"] == "qualification_id"
    assert chunk_line["row"]["pre_qualification_id"] in chunk_line["problems"][0]["detail"]
    assert chunk_line["row"]["qualification_id"] in chunk_line["problems"][0]["detail"]

    # verify: identical except exactly the rejected rows
    verification = await verify_migration(drifted.path, url)
    missing = {(t.table, i) for t in verification.tables for i in t.missing_ids}
    assert missing == set(expected)
    assert all(t.mismatched == 0 and t.extra == 0 for t in verification.tables)


async def test_on_error_stop_stops_cleanly_at_the_first_drifted_row(
    drifted: Drifted, dhv_citus_database_factory: CitusDatabaseFactory
) -> None:
    url = await dhv_citus_database_factory()
    with pytest.raises(MigrationStoppedError) as info:
        await migrate_sqlite(drifted.path, url, batch_size=16)
    message = str(info.value)
    assert "\n" not in message and f"qualifications id={drifted.qualification}" in message
    assert "tenant_conflict" in message and drifted.foreign_pre in message, message
    # the CLI: exit code 4, one line, no raw server error, no "re-run the same command"
    cmd = ["migrate", str(drifted.path), "--database-url", url, "--quiet"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dealhunter_vectors.cli", *cmd],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 4, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("stopped: ") and "tenant_conflict" in lines[0], lines
    for raw in ("InternalServerError", "violates foreign key constraint", "Traceback", "re-run the same command"):
        assert raw not in done.stderr


def repair_query() -> str:
    """The query of docs/scaling.md that lists the drifted rows of a legacy file."""
    text = (REPO / "docs" / "scaling.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- drift-query -->\s*```sql\n(.*?)```", text, re.S)
    assert found, "docs/scaling.md has no sql block tagged <!-- drift-query -->"
    return found[1]


def test_the_documented_query_finds_exactly_the_drifted_rows(drifted: Drifted) -> None:
    rows = sqlite_rows(drifted.path, repair_query())
    got = {(str(r[0]), str(r[1])): str(r[2]) for r in rows}
    assert got == {
        ("qualifications", drifted.qualification): "tenant_conflict",
        **{("deal_embeddings", c): "tenant_conflict" for c in drifted.chunks},
        ("deal_embeddings", drifted.orphan): "tenant_unknown",
    }
    # the intact file: nothing
    assert sqlite_rows(intact(drifted), repair_query()) == []


def intact(drifted: Drifted) -> Path:
    """A file built from the same spec without the drift (and without the orphan)."""
    spec = dataclasses.replace(drifted.legacy.spec, orphan_deal_embeddings=0)
    path = drifted.path.with_name("intact.db")
    if not path.exists():
        build_legacy_database(path, spec)
    return path


async def test_a_constraint_the_checks_do_not_know_is_reported_row_by_row(
    drifted: Drifted, dhv_citus_database_factory: CitusDatabaseFactory, tmp_path: Path
) -> None:
    url = await dhv_citus_database_factory()
    pick = "SELECT id, customer_name FROM qualifications WHERE id <> ? ORDER BY id LIMIT 1"
    refused = sqlite_rows(drifted.path, pick, drifted.qualification)[0]
    same = "SELECT id FROM qualifications WHERE customer_name = ? AND id <> ?"
    same_name = {str(r[0]) for r in sqlite_rows(drifted.path, same, refused[1], drifted.qualification)}
    conn = await asyncpg.connect(url)
    try:  # a rule of the target's own, unknown to the loader
        await conn.execute(
            "ALTER TABLE qualifications ADD CONSTRAINT qualifications_customer_check CHECK (customer_name <> $$"
            + str(refused[1]).replace("$", "")
            + "$$)"
        )
    finally:
        await conn.close()
    rejects = tmp_path / "rejects.jsonl"
    report = await migrate_sqlite(drifted.path, url, on_error="skip", reject_file=rejects, batch_size=16)
    lines = {(r["table"], r["id"]): r["problems"][0] for r in map(json.loads, rejects.read_text().splitlines())}
    for row_id in same_name:  # each refused row reported on its own, with the server's reason
        problem = lines[("qualifications", row_id)]
        assert problem["reason"] == "constraint_violation" and "qualifications_customer_check" in problem["detail"]
    assert lines[("qualifications", drifted.qualification)]["reason"] == "tenant_conflict"
    quals = next(t for t in report.tables if t.table == "qualifications")
    assert quals.rejected == len(same_name) + 1
    assert quals.inserted == source_counts(drifted.path)["qualifications"] - quals.rejected > 0
    assert report.status == "completed"
