"""Every form of every named statement, derived and checked without a cluster.

The Citus forms are built at import from the single-node files (``-- citus:`` markers); here
each one is checked for what routing needs (the tenant on every scan of the distributed
table, the declared parameter numbers), prepared on a real server whose tables carry the
distributed layout's ``tenant_id`` column, and *run*: on a single node whose tenant column is
filled as the distributed layout fills it, the Citus layout's answers (router forms, tenant
look-up) must equal the single-node layout's. A reformatted ``.sql`` file that breaks a
route fails here, in CI, not first on a cluster.
"""

from __future__ import annotations

import re

import asyncpg
import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.db.codecs import Vector
from dealhunter_vectors.layout import CITUS, SINGLE_NODE, OwnerRequest, OwnerStatement
from dealhunter_vectors.layout.statements import CITUS_MARKER, citus_form, parameter_count, single_request
from dealhunter_vectors.legacy.synthetic import clustered_embeddings
from dealhunter_vectors.search.owner import _DealParams, _prepare_raw
from dealhunter_vectors.search.statements import (
    DEAL_SEARCH,
    DUPLICATE_CANDIDATES,
    DUPLICATE_EXACT,
    HYBRID_DEAL,
    HYBRID_RAW,
    LIST_DEAL_CHUNKS,
    MMR_PAIRWISE,
    OWNER_STATEMENTS,
    RAW_SEARCH,
)
from dealhunter_vectors.testing import seed_owners

_SCAN = {"deal_embeddings": r'"deal_embeddings" d\b', "raw_chunks": r'"raw_chunks" c\b'}


def _rows(batches: list[list[asyncpg.Record]]) -> list[list[dict[str, object]]]:
    # ord: the request's position in a batched statement (a single request is always 1)
    return [[{k: v for k, v in r.items() if k != "ord"} for r in rows] for rows in batches]


def _table(statement: OwnerStatement) -> str:
    return "deal_embeddings" if '"deal_embeddings"' in statement.single else "raw_chunks"


def _tenant_predicate(statement: OwnerStatement) -> str:
    column = 'd."tenant_id"' if _table(statement) == "deal_embeddings" else 'c."pre_qualification_id"'
    return f"{column} = ${statement.tenant_param}::text"


@pytest.mark.parametrize("statement", OWNER_STATEMENTS, ids=lambda s: s.name)
def test_every_scan_of_the_distributed_table_carries_the_tenant(statement: OwnerStatement) -> None:
    assert CITUS_MARKER not in statement.citus
    scans = len(re.findall(_SCAN[_table(statement)], statement.citus))
    assert scans >= 1
    assert statement.citus.count(_tenant_predicate(statement)) == scans, statement.citus


@pytest.mark.parametrize("statement", OWNER_STATEMENTS, ids=lambda s: s.name)
def test_parameters_are_numbered_as_declared(statement: OwnerStatement) -> None:
    n = parameter_count(statement.single)
    if statement.owner == "pre_qualification_id":
        assert statement.tenant_is_owner and parameter_count(statement.citus) == n
    else:
        assert statement.tenant_param == n + 1 == parameter_count(statement.citus)
    # the owner parameter is the one the owner predicate (the first routed line) reads
    line = next(line for line in statement.single.splitlines() if CITUS_MARKER in line)
    assert statement.owner in line
    read = re.search(r"= (\$\d+|r\.owner_id)", line)
    assert read is not None
    if read[1] == "r.owner_id":
        assert re.search(rf"\${statement.owner_param}::text AS owner_id", statement.single)
    else:
        assert read[1] == f"${statement.owner_param}"


def test_batched_statements_have_one_request_forms() -> None:
    for statement in (*DEAL_SEARCH.values(), RAW_SEARCH):
        assert statement.batched is not None
        assert statement.single == single_request(statement.batched)
        assert "unnest(" not in statement.single.split("CROSS JOIN LATERAL")[0]


def test_a_statement_without_a_route_or_with_a_bad_marker_fails_at_build_time() -> None:
    with pytest.raises(ValueError, match="no '-- citus:' line"):
        OwnerStatement.build(
            "x",
            'SELECT 1 FROM "raw_chunks" c WHERE c.pre_qualification_id = $1',
            owner="pre_qualification_id",
            owner_param=1,
        )
    with pytest.raises(ValueError, match="AND"):
        citus_form("SELECT 1  -- citus: OR true", 2)


async def test_every_form_prepares_on_a_real_server(dhv_pool: dv.Pool) -> None:
    async with dhv_pool.acquire() as conn:
        await conn.execute('ALTER TABLE "deal_embeddings" ADD COLUMN "tenant_id" text')  # the layout's column
        for statement in OWNER_STATEMENTS:
            forms = {"single": statement.single, "citus": statement.citus, "batched": statement.batched}
            for form, sql in forms.items():
                if sql is None:
                    continue
                prepared = await conn.prepare(sql)
                assert len(prepared.get_parameters()) == parameter_count(sql), (statement.name, form)
        await conn.prepare(DUPLICATE_EXACT.single)
        await conn.prepare(DUPLICATE_EXACT.citus)
        await conn.prepare(DUPLICATE_CANDIDATES.single)
        await conn.prepare(DUPLICATE_CANDIDATES.citus)


async def test_the_citus_layout_answers_as_the_single_node_on_a_single_node(dhv_pool: dv.Pool) -> None:
    """Router forms + tenant look-up, run on one server whose tenant column is filled: same rows."""
    await seed_owners(dhv_pool, pre_qualification_ids=["pq-a", "pq-b"], qualification_ids=["q-a"])
    vectors = clustered_embeddings(60, n_clusters=3, seed=4)
    chunks = [
        dv.DealChunk(
            qualification_id="q-a" if i % 3 == 0 else None,
            pre_qualification_id=None if i % 3 == 0 else ("pq-a" if i % 3 == 1 else "pq-b"),
            agent_name=f"agent-{i % 4}",
            chunk_type="summary",
            content=f"Angebot {i} für Hosting und Webentwicklung",
            embedding=vectors[i],
        )
        for i in range(45)
    ]
    await dv.insert_deal_chunks(dhv_pool, chunks)
    raw = [
        dv.RawChunk(chunk_index=i, content=f"Rahmenvertrag {i}", token_count=3, embedding=vectors[45 + i])
        for i in range(15)
    ]
    await dv.replace_raw_chunks(dhv_pool, "pq-a", raw)
    async with dhv_pool.acquire() as conn:
        await conn.execute('ALTER TABLE "deal_embeddings" ADD COLUMN "tenant_id" text')
        await conn.execute(
            'UPDATE "deal_embeddings" d SET "tenant_id" = coalesce(d.pre_qualification_id,'
            ' (SELECT q.pre_qualification_id FROM "qualifications" q WHERE q.id = d.qualification_id))'
        )
        q = vectors[0] + 0.1 * vectors[30]
        requests = {
            "deal_search[qualification_id]": [
                _DealParams(dv.DealChunkSearch(query_embedding=q, qualification_id=o, threshold=-1.0, limit=7)).request
                for o in ("q-a", "q-missing")
            ],
            "deal_search[pre_qualification_id]": [
                _DealParams(dv.DealChunkSearch(query_embedding=q, pre_qualification_id=o, threshold=0.1)).request
                for o in ("pq-a", "pq-b")
            ],
            "raw_search": [
                _prepare_raw(dv.RawChunkSearch(query_embedding=q, pre_qualification_id="pq-a", threshold=-1.0)).request
            ],
        }
        listing = (None, None, None, False, None, False, 50)
        for owner, statement in LIST_DEAL_CHUNKS.items():
            owner_id = "q-a" if owner == "qualification_id" else "pq-b"
            requests[statement.name] = [OwnerRequest(owner_id, (owner_id, *listing))]
        hybrid_tail = (None, None, False, None, None, None, 50, 60.0, 1.0, 1.0, 10)
        for owner, statement in HYBRID_DEAL.items():
            owner_id = "q-a" if owner == "qualification_id" else "pq-a"
            requests[statement.name] = [
                OwnerRequest(owner_id, (Vector(q), owner_id, "Hosting", None, *hybrid_tail, None)),
                OwnerRequest(
                    owner_id, (Vector(q), owner_id, "Webentwicklung", None, *hybrid_tail, '"web entwicklung"')
                ),
            ]
        raw_tail = (None, 50, 60.0, 1.0, 1.0, 10)
        requests[HYBRID_RAW.name] = [
            OwnerRequest("pq-a", (Vector(q), "pq-a", "Rahmenvertrag", *raw_tail, None)),
            OwnerRequest("pq-a", (Vector(q), "pq-a", "Rahmenvertrag", *raw_tail, '"rahmen vertrag"')),
        ]
        for table, by_owner in MMR_PAIRWISE.items():
            for owner, statement in by_owner.items():
                column = "pre_qualification_id" if owner == "pre_qualification_id" else "qualification_id"
                owner_id = "q-a" if owner == "qualification_id" else "pq-a"
                ids = [r["id"] for r in await conn.fetch(f'SELECT id FROM "{table}" WHERE "{column}" = $1', owner_id)]
                requests[statement.name] = [OwnerRequest(owner_id, (ids, owner_id))]
        by_name = {s.name: s for s in OWNER_STATEMENTS}
        compared = 0
        for name, batch in requests.items():
            statement = by_name[name]
            single = await SINGLE_NODE.owner_batch(conn, statement, batch)
            routed = await CITUS.owner_batch(conn, statement, batch)
            assert _rows(routed) == _rows(single), name
            compared += sum(len(rows) for rows in single)
        assert compared > 300  # the comparison saw real rows (pairwise cosines included)
        exact = (q, None, 2.0, 10)
        assert [tuple(r) for r in await CITUS.all_rows(conn, DUPLICATE_EXACT, *exact)] == [
            tuple(r) for r in await SINGLE_NODE.all_rows(conn, DUPLICATE_EXACT, *exact)
        ]
    assert np.isfinite(q).all()
