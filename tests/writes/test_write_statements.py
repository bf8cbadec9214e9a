"""The write statements' forms and migration 009, checked without a cluster.

As ``tests/layout/test_statements.py`` does for the searches: every owner statement of the writes
carries the tenant on each scan of its table in its Citus form, prepares on a real server, and
the Citus layout's router forms answer as the single node on one server whose ``tenant_id`` is
filled. Migration 009's columns and helper functions are checked against Python (hashlib, json).
"""

from __future__ import annotations

import hashlib
import json
import re

import asyncpg
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.db.library_columns import MAIN_SLOT, content_hash
from dealhunter_vectors.layout import CITUS, SINGLE_NODE, OwnerRequest, OwnerStatement
from dealhunter_vectors.layout.statements import CITUS_MARKER, parameter_count
from dealhunter_vectors.writes import statements as st

STALE = (
    st.stale_statement("deal_embeddings", MAIN_SLOT, "qualification_id"),
    st.stale_statement("deal_embeddings", MAIN_SLOT, "pre_qualification_id"),
    st.stale_statement("raw_chunks", MAIN_SLOT, None),
)
ALL = (*st.OWNER_STATEMENTS, *STALE)
_SCAN = {"deal_embeddings": r'"deal_embeddings" d\b', "raw_chunks": r'"raw_chunks" c\b'}


def _table(statement: OwnerStatement) -> str:
    return "deal_embeddings" if '"deal_embeddings"' in statement.single else "raw_chunks"


@pytest.mark.parametrize("statement", ALL, ids=lambda s: s.name)
def test_every_scan_carries_the_tenant_and_parameters_are_as_declared(statement: OwnerStatement) -> None:
    assert CITUS_MARKER not in statement.citus
    column = 'd."tenant_id"' if _table(statement) == "deal_embeddings" else 'c."pre_qualification_id"'
    scans = len(re.findall(_SCAN[_table(statement)], statement.citus))
    predicate = f"{column} = ${statement.tenant_param}::text"
    assert scans == 1 and statement.citus.count(predicate) == statement.single.count(predicate) + scans
    n = parameter_count(statement.single)
    if statement.owner == "pre_qualification_id":
        assert statement.tenant_is_owner and parameter_count(statement.citus) == n
    else:
        assert statement.tenant_param == n + 1 == parameter_count(statement.citus)
    line = next(line for line in statement.single.splitlines() if CITUS_MARKER in line)
    assert f'."{statement.owner}" = $1' in line and statement.owner_param == 1


async def test_every_form_prepares(dhv_pool: dv.Pool) -> None:
    async with dhv_pool.acquire() as conn:
        await conn.execute('ALTER TABLE "deal_embeddings" ADD COLUMN "tenant_id" text')
        for statement in ALL:
            for sql in (statement.single, statement.citus):
                prepared = await conn.prepare(sql)
                assert len(prepared.get_parameters()) == parameter_count(sql), statement.name
        for plain in (st.GET_DEAL, st.GET_RAW, st.DELETE_DEAL_BY_ID, st.DELETE_RAW_BY_ID):
            await conn.prepare(plain.single)
        for sql in (
            st.LOCK_PRE_QUALIFICATION,
            st.QUALIFICATION_TENANT,
            st.update_embeddings_sql("raw_chunks", MAIN_SLOT),
        ):
            await conn.execute(
                'CREATE TEMP TABLE IF NOT EXISTS "dhv_embedding_update" (id text, embedding vector, content_hash bytea)'
            )
            await conn.prepare(sql)


async def test_the_citus_forms_answer_as_the_single_node(pool: dv.Pool) -> None:
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(
                id=f"c{i:02d}",
                qualification_id="q1" if i % 3 == 0 else None,
                pre_qualification_id=None if i % 3 == 0 else ("pq1" if i % 3 == 1 else "pq2"),
                agent_name=f"agent-{i % 2}",
                chunk_type="visualization",
                content=f"chunk {i}",
                metadata={"sectionId": f"s{i % 4}"},
            )
            for i in range(30)
        ],
    )
    async with pool.acquire() as conn:
        await conn.execute('ALTER TABLE "deal_embeddings" ADD COLUMN "tenant_id" text')
        await conn.execute(
            'UPDATE "deal_embeddings" d SET "tenant_id" = coalesce(d.pre_qualification_id,'
            ' (SELECT q.pre_qualification_id FROM "qualifications" q WHERE q.id = d.qualification_id))'
        )
        selector = (None, None, "agent-1", None, json.dumps({"sectionId": "s1"}))
        cases: list[tuple[OwnerStatement, OwnerRequest]] = []
        for owner, owner_id in (("qualification_id", "q1"), ("pre_qualification_id", "pq1")):
            cases.append((st.PAGE_DEAL[owner], OwnerRequest(owner_id, (owner_id, *selector, None, 100, False))))
            cases.append((st.DELETE_DEAL[owner], OwnerRequest(owner_id, (owner_id, *selector, None))))
            stale = st.stale_statement("deal_embeddings", MAIN_SLOT, owner)  # type: ignore[arg-type]
            cases.append((stale, OwnerRequest(owner_id, (owner_id, "m", True, None, 100))))
        seen = 0
        for statement, request in cases:
            answers = []
            for layout in (SINGLE_NODE, CITUS):
                tx = conn.transaction()
                await tx.start()
                answers.append([dict(r) for r in await layout.owner_rows(conn, statement, request)])
                await tx.rollback()
            assert answers[0] == answers[1], statement.name
            seen += len(answers[0])
        assert seen > 10


async def test_migration_009_columns_and_helpers(dhv_pool: dv.Pool) -> None:
    rows = await dhv_pool.fetch(
        """
        SELECT c.relname AS "table", a.attname AS "column", format_type(a.atttypid, a.atttypmod) AS "type",
               a.attnotnull AS notnull, a.atthasdef AS hasdef
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.relname IN ('deal_embeddings', 'raw_chunks')
          AND a.attname IN ('embedding_model', 'embedding_content_hash')
        """
    )
    assert sorted((r["table"], r["column"], r["type"], r["notnull"], r["hasdef"]) for r in rows) == [
        ("deal_embeddings", "embedding_content_hash", "bytea", False, False),
        ("deal_embeddings", "embedding_model", "text", False, False),
        ("raw_chunks", "embedding_content_hash", "bytea", False, False),
        ("raw_chunks", "embedding_model", "text", False, False),
    ]
    volatility = dict(
        await dhv_pool.fetch(  # type: ignore[arg-type]
            "SELECT proname, provolatile FROM pg_proc WHERE proname IN "
            "('dealhunter_content_hash', 'dealhunter_metadata_object')"
        )
    )
    assert volatility == {"dealhunter_content_hash": b"i", "dealhunter_metadata_object": b"i"}
    texts = ["", "abc", "Straße – ✓ 𝄞", "a\\b'c\"d", "x" * 100_000]
    for text in texts:
        server = await dhv_pool.fetchval('SELECT "dealhunter_content_hash"($1)', text)
        assert server == content_hash(text) == hashlib.sha256(text.encode()).digest()
    metadata = [None, "", "not json", "[1]", "7", '"s"', "null", '{"a": 1}', '{"sectionId": "x", "n": {"k": [1]}}', "{"]
    for text in metadata:
        got = await dhv_pool.fetchval('SELECT "dealhunter_metadata_object"($1)', text)
        try:
            value = json.loads(text) if text is not None else None
        except ValueError:
            value = None
        assert (json.loads(got) if got is not None else None) == (value if isinstance(value, dict) else None), text
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await dhv_pool.fetchval('SELECT "dealhunter_content_hash"(1)')
