"""The PostgreSQL schema, checked against the legacy facts file read at test time.

Expected types come from the type rule of postgres-schema-notes.md, written here
independently of the migration SQL: text/enum/json -> text, integer -> integer,
timestamp_s -> timestamp without time zone, boolean -> boolean, embedding -> vector(3072).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.db.schema import VECTOR_INDEXES, legacy_schema, migrations

SHARED = Path(__file__).resolve().parents[3] / "shared" / "reference" / "sqlite-schema.json"

EXPECTED_TYPE = {
    "text": "text",
    "enum": "text",
    "json": "text",
    "integer": "integer",
    "timestamp_s": "timestamp without time zone",
    "boolean": "boolean",
    "embedding": "vector(3072)",
}


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    if SHARED.exists():
        data: dict[str, Any] = json.loads(SHARED.read_text())
        return data
    return legacy_schema()  # a checkout without ../shared: the packaged copy


def test_packaged_copy_equals_the_shared_reference() -> None:
    if not SHARED.exists():
        pytest.skip("../shared/reference is not beside this checkout")
    assert legacy_schema() == json.loads(SHARED.read_text())


def expected_default(col: dict[str, Any]) -> str | None:
    d = col["default"]
    if d is None or (isinstance(d, str) and d.startswith("app:")):
        return None
    if isinstance(d, bool):
        return "true" if d else "false"
    if isinstance(d, int):
        return str(d)
    return f"'{d}'::text"


async def test_apply_schema_twice_changes_nothing(dhv_database_factory: Any, dhv_server_url: str) -> None:
    url = await dhv_database_factory()  # already migrated (the template)
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:

        async def snapshot() -> list[Any]:
            return [
                tuple(r)
                for r in await pool.fetch(
                    "SELECT c.relname, c.relkind, c.relfilenode, a.attname, format_type(a.atttypid, a.atttypmod)"
                    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
                    " WHERE n.nspname = 'public' ORDER BY 1, 4"
                )
            ]

        before = await snapshot()
        recorded_before = await pool.fetch("SELECT * FROM dealhunter_schema_migrations ORDER BY version")
        assert await dv.apply_schema(pool) == []
        assert await dv.apply_schema(pool) == []
        assert await snapshot() == before
        assert await pool.fetch("SELECT * FROM dealhunter_schema_migrations ORDER BY version") == recorded_before
        status = await dv.schema_status(pool)
        assert status.up_to_date and status.version == max(m.version for m in migrations())


async def test_apply_schema_on_empty_database_then_again(dhv_server_url: str) -> None:
    from dealhunter_vectors.testing import with_database

    admin = await asyncpg.connect(dhv_server_url)
    await admin.execute('CREATE DATABASE "dhv_schema_fresh"')
    try:
        async with dv.open_pool(with_database(dhv_server_url, "dhv_schema_fresh"), min_size=1) as pool:
            # two concurrent appliers: the advisory lock lets exactly one do the work
            import asyncio

            a, b = await asyncio.gather(dv.apply_schema(pool), dv.apply_schema(pool))
            assert sorted(a + b) == [m.version for m in migrations()]
            assert await dv.apply_schema(pool) == []
    finally:
        await admin.execute('DROP DATABASE "dhv_schema_fresh" WITH (FORCE)')
        await admin.close()


async def test_every_table_and_column_matches_the_legacy_facts(dhv_pool: dv.Pool, facts: dict[str, Any]) -> None:
    rows = await dhv_pool.fetch(
        """
        SELECT c.relname AS table, a.attname AS column, a.attnum,
               format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
               pg_get_expr(d.adbin, d.adrelid) AS default
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        WHERE c.relkind = 'r' AND c.relname <> 'dealhunter_schema_migrations'
        ORDER BY c.relname, a.attnum
        """
    )
    actual: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        if (r["table"], r["column"]) in LIBRARY_COLUMNS or r["column"] in PLAIN_LIBRARY_COLUMNS:  # on their own
            continue
        actual.setdefault(r["table"], []).append(r)
    tables = {t["name"]: t for t in facts["tables"]}
    assert set(actual) == set(tables)
    assert len(tables) == 29
    n_columns = 0
    for name, table in tables.items():
        got = actual[name]
        assert [r["column"] for r in got] == [c["name"] for c in table["columns"]], name  # order too
        for r, col in zip(got, table["columns"], strict=True):
            where = f"{name}.{col['name']}"
            assert r["type"] == EXPECTED_TYPE[col["kind"]], where
            assert r["notnull"] == (not col["nullable"] or col["primary_key"]), where
            assert r["default"] == expected_default(col), where
            n_columns += 1
    assert n_columns == 452 == facts["stats"]["columns"]


# Columns the library adds to the legacy tables (not in the legacy facts): the inline
# half-precision copy of migration 004 (a stored generated column, STORAGE MAIN) and the
# full-text tsvector of migration 005 (stored generated, default storage).
HALF_COPY_EXPRESSION = (  # as PostgreSQL prints it (whitespace normalised)
    "CASE WHEN ((vector_norm(embedding) >= '1e-12'::double precision)"
    " AND (vector_norm(embedding) <= '1e+15'::double precision))"
    " THEN (l2_normalize(embedding))::halfvec(3072) ELSE NULL::halfvec END"
)
TSV_EXPRESSION = (  # migration 011: the content, then its compound parts while they are the content's
    "(to_tsvector('german'::regconfig, \"left\"(content, 250000)) || to_tsvector('german'::regconfig,"
    " CASE WHEN (content_parts_hash IS NULL) THEN ''::text"
    ' WHEN (content_parts_hash = dealhunter_content_hash(content)) THEN "left"(content_parts, 100000)'
    " ELSE ''::text END))"
)
PLAIN_LIBRARY_COLUMNS = ("embedding_model", "embedding_content_hash", "content_parts", "content_parts_hash")
"""Plain library-owned columns of the chunk tables (migrations 009 and 011; tests/writes/test_write_statements.py,
tests/writes/test_write_content_parts.py)."""
LIBRARY_COLUMNS = {
    ("deal_embeddings", "embedding_half"): ("halfvec(3072)", HALF_COPY_EXPRESSION, "m"),
    ("raw_chunks", "embedding_half"): ("halfvec(3072)", HALF_COPY_EXPRESSION, "m"),
    ("deal_embeddings", "content_tsv"): ("tsvector", TSV_EXPRESSION, "x"),
    ("raw_chunks", "content_tsv"): ("tsvector", TSV_EXPRESSION, "x"),
}


async def test_library_owned_columns_are_generated_inline_half_copies(dhv_pool: dv.Pool) -> None:
    rows = await dhv_pool.fetch(
        """
        SELECT c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
               a.attgenerated::text AS generated, a.attstorage::text AS storage, a.attnotnull AS notnull,
               pg_get_expr(d.adbin, d.adrelid) AS expression
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        WHERE c.relkind = 'r' AND a.attname IN ('embedding_half', 'content_tsv')
        """
    )
    got = {(r["table"], r["column"]): (r["type"], " ".join(r["expression"].split()), r["storage"]) for r in rows}
    assert got == LIBRARY_COLUMNS
    assert all(r["generated"] == "s" and not r["notnull"] for r in rows)  # STORED, NULL allowed
    options = await dhv_pool.fetch(
        "SELECT relname, reloptions FROM pg_class WHERE relname IN ('deal_embeddings', 'raw_chunks')"
    )
    assert {r["relname"]: r["reloptions"] for r in options} == {
        "deal_embeddings": ["toast_tuple_target=8160"],
        "raw_chunks": ["toast_tuple_target=8160"],
    }


async def test_primary_keys_uniques_and_foreign_keys(dhv_pool: dv.Pool, facts: dict[str, Any]) -> None:
    cons = await dhv_pool.fetch(
        """
        SELECT con.contype::text AS contype, cl.relname AS table, a.attname AS column,
               fcl.relname AS ref_table, fa.attname AS ref_column, con.confdeltype::text AS confdeltype, con.conname
        FROM pg_constraint con
        JOIN pg_class cl ON cl.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = cl.relnamespace AND n.nspname = 'public'
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
        LEFT JOIN pg_class fcl ON fcl.oid = con.confrelid
        LEFT JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[1]
        WHERE con.contype IN ('p', 'u', 'f') AND cardinality(con.conkey) = 1
          AND cl.relname <> 'dealhunter_schema_migrations'
        """
    )
    pks = {(r["table"], r["column"]) for r in cons if r["contype"] == "p"}
    uniques = {(r["table"], r["column"], r["conname"]) for r in cons if r["contype"] == "u"}
    fks = {
        (r["table"], r["column"]): (r["ref_table"], r["ref_column"], r["confdeltype"])
        for r in cons
        if r["contype"] == "f"
    }
    exp_pk, exp_unique, exp_fk = set(), set(), {}
    unique_index_names = {
        (t["name"], i["columns"][0]): i["name"] for t in facts["tables"] for i in t["indexes"] if i["unique"]
    }
    for t in facts["tables"]:
        for c in t["columns"]:
            if c["primary_key"]:
                exp_pk.add((t["name"], c["name"]))
            if c["unique"]:
                exp_unique.add((t["name"], c["name"], unique_index_names[(t["name"], c["name"])]))
            if c["references"]:
                ref = c["references"]
                exp_fk[(t["name"], c["name"])] = (
                    ref["table"],
                    ref["column"],
                    {"cascade": "c", "no action": "a"}[ref["on_delete"]],
                )
    assert pks == exp_pk and len(pks) == 29
    assert uniques == exp_unique and len(uniques) == 2
    assert set(fks) == set(exp_fk), set(fks) ^ set(exp_fk)
    assert {k: v for k, v in fks.items() if exp_fk[k] != v} == {}
    assert len(fks) == facts["stats"]["foreign_keys"] == 49


async def test_btree_index_names_and_columns(dhv_pool: dv.Pool, facts: dict[str, Any]) -> None:
    rows = await dhv_pool.fetch(
        """
        SELECT t.relname AS table, i.relname AS index, ix.indisunique AS is_unique,
               array_agg(a.attname ORDER BY k.ord) AS columns, am.amname
        FROM pg_index ix
        JOIN pg_class i ON i.oid = ix.indexrelid
        JOIN pg_class t ON t.oid = ix.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
        JOIN pg_am am ON am.oid = i.relam
        CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
        LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
        WHERE am.amname = 'btree' AND NOT ix.indisprimary AND t.relname <> 'dealhunter_schema_migrations'
        GROUP BY 1, 2, 3, 5
        """
    )
    got = {(r["table"], r["index"], r["is_unique"], tuple(r["columns"])) for r in rows}
    expected = {(t["name"], i["name"], i["unique"], tuple(i["columns"])) for t in facts["tables"] for i in t["indexes"]}
    assert got == expected
    assert len(expected) == facts["stats"]["indexes"] == 65


async def test_vector_indexes_exist_and_are_used(dhv_pool: dv.Pool) -> None:
    rows = await dhv_pool.fetch(
        "SELECT indexname, tablename, indexdef FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'"
    )
    defs = {r["indexname"]: (r["tablename"], r["indexdef"]) for r in rows}
    assert set(defs) == {i.name for i in VECTOR_INDEXES}
    for idx in VECTOR_INDEXES:
        table, definition = defs[idx.name]
        assert table == idx.table
        assert f"(({idx.column})::halfvec(3072)) halfvec_cosine_ops" in definition
        assert "WITH (m='32', ef_construction='128')" in definition  # migration 003
    # a few rows so the plans are realistic; seqscan allowed: the planner must prefer the index
    rng = np.random.default_rng(0)
    await dhv_pool.execute(
        "INSERT INTO business_units (id, name, leader_name, leader_email, keywords)"
        " VALUES ('bu', 'BU', 'L', 'l@x', '[]')"
    )
    await dhv_pool.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@x', 'p', 'U')")
    await dhv_pool.executemany(
        "INSERT INTO pre_qualifications (id, user_id, raw_input, source, stage, input_type,"
        " description_embedding) VALUES ($1, 'u', 'x', 'reactive', 'pre-qualification', 'freetext', $2)",
        [(f"pq{i}", rng.standard_normal(3072).astype(np.float32)) for i in range(300)],
    )
    await dhv_pool.executemany(
        "INSERT INTO deal_embeddings (id, pre_qualification_id, agent_name, chunk_type, content, embedding)"
        " VALUES ($1, 'pq0', 'a', 't', 'c', $2)",
        [(f"de{i}", rng.standard_normal(3072).astype(np.float32)) for i in range(300)],
    )
    await dhv_pool.executemany(
        "INSERT INTO raw_chunks (id, pre_qualification_id, content, chunk_index, token_count, embedding)"
        " VALUES ($1, 'pq0', 'c', $2, 1, $3)",
        [(f"rc{i}", i, rng.standard_normal(3072).astype(np.float32)) for i in range(300)],
    )
    await dhv_pool.execute("ANALYZE")
    q = rng.standard_normal(3072).astype(np.float32)
    for idx in VECTOR_INDEXES:
        # At 300 rows a seq scan is honestly cheaper; disabling it proves the index matches
        # the query shape (the planner would pick it at scale: see the search tests).
        async with dv.transaction_settings(dhv_pool, {"enable_seqscan": False}) as conn:
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN (COSTS OFF) SELECT id FROM " + f'"{idx.table}" ORDER BY "{idx.column}"'
                    "::halfvec(3072) <=> $1::halfvec(3072) LIMIT 10",
                    q,
                )
            )
        first_lines = plan.splitlines()[:2]
        assert any(f"Index Scan using {idx.name}" in line for line in first_lines), plan[:300]


async def test_rebuilt_vector_indexes_have_the_newest_definition(dhv_pool: dv.Pool) -> None:
    """After a bulk load drops and rebuilds them, the indexes are migration 003's, not 002's."""
    from dealhunter_vectors.db.schema import create_vector_indexes, drop_vector_indexes

    async with dhv_pool.acquire() as conn:
        assert len(await drop_vector_indexes(conn)) == len(VECTOR_INDEXES) == 1
        assert await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'") == 0
        await create_vector_indexes(conn)
        defs = [r[0] for r in await conn.fetch("SELECT indexdef FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'")]
    assert len(defs) == 1
    assert all("WITH (m='32', ef_construction='128')" in d for d in defs), defs


async def test_chunk_tables_carry_no_hnsw_index(dhv_pool: dv.Pool) -> None:
    """Migration 006: deal_embeddings and raw_chunks lose the graphs no search reads (write cost only)."""
    rows = await dhv_pool.fetch(
        "SELECT tablename, indexname FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%' ORDER BY 1"
    )
    assert [(r["tablename"], r["indexname"]) for r in rows] == [
        ("pre_qualifications", "pre_qualifications_description_embedding_hnsw_idx")
    ]
    rows = await dhv_pool.fetch("SELECT version, name FROM dealhunter_schema_migrations")
    applied = {r["version"]: r["name"] for r in rows}
    assert applied[6] == "drop_unsearched_hnsw"
