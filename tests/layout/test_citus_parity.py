"""Every call site on a 1 + 2 Citus cluster returns the single node's answers.

One legacy SQLite database is migrated into a single node (the embedded server) and into
the distributed layout of a local Citus cluster; random queries then run through every
public search function on both and the typed results must be equal (same rows, same
order, same similarities). Owner-scoped searches must be single-shard router queries.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.db.pool import Pool, close_pool, create_pool
from dealhunter_vectors.layout import CITUS, CandidateQuery, OwnerRequest
from dealhunter_vectors.legacy.database import LegacyDatabaseSummary, LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.search.owner import _DealParams, _prepare_raw
from dealhunter_vectors.search.statements import (
    DEAL_SEARCH,
    DUPLICATE_CANDIDATES,
    DUPLICATE_EXACT,
    LIST_DEAL_CHUNKS,
    MMR_PAIRWISE,
    RAW_SEARCH,
)
from dealhunter_vectors.testing import CitusDatabaseFactory, seed_owners

pytestmark = pytest.mark.citus
Factory = Callable[[], Awaitable[str]]
ROUNDS = 12


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyDatabaseSummary:
    spec = dataclasses.replace(
        LegacyDatasetSpec.tiny(dims=3072, seed=12),
        pre_qualifications=10,
        qualifications=6,
        deal_embeddings_per_qualification=10,
        deal_embeddings_per_pre_qualification=8,
        raw_chunks_per_pre_qualification=6,
    )
    return build_legacy_database(tmp_path_factory.mktemp("citus-parity") / "legacy.db", spec)


@pytest.fixture(scope="module")
async def pools(
    legacy: LegacyDatabaseSummary, dhv_database_factory: Factory, dhv_citus_database_factory: CitusDatabaseFactory
) -> AsyncIterator[tuple[Pool, Pool]]:
    single = await create_pool(await dhv_database_factory(), min_size=1, max_size=4)
    cluster = await create_pool(await dhv_citus_database_factory(), min_size=1, max_size=4)
    try:
        for pool in (single, cluster):
            report = await dv.migrate_sqlite(legacy.path, pool, batch_size=40)
            assert report.ok and report.inserted == sum(legacy.row_counts.values()), report
        yield single, cluster
    finally:
        await close_pool(single)
        await close_pool(cluster)


def _queries(legacy: LegacyDatabaseSummary, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    out = []
    for _ in range(ROUNDS):
        if pick.random() < 0.5:
            owner = {"qualification_id": pick.choice(legacy.qualification_ids)}
        else:
            owner = {"pre_qualification_id": pick.choice(legacy.pre_qualification_ids)}
        oid = next(iter(owner.values()))
        cluster = legacy.owner_clusters[oid]
        query = legacy.space.query_near_centre(cluster, rng, cosine=pick.uniform(0.3, 0.9))
        out.append({"owner": owner, "query": query, "pq": pick.choice(legacy.pre_qualification_ids)})
    return out


async def _call_sites(db: Pool, q: dict[str, Any]) -> dict[str, Any]:
    owner, query = q["owner"], q["query"]
    res: dict[str, Any] = {}
    # lead retrieval (qualification or pre-qualification owner), agent filter + fallback
    res["lead"] = await dv.search_deal_embeddings(
        db, query, **owner, threshold=0.3, agent_names=["tech-agent", "legal-agent"], filter_fallback=True
    )
    res["agent"] = await dv.search_deal_embeddings(
        db, query, pre_qualification_id=q["pq"], threshold=0.5, tech_stack="dru", filter_fallback=True
    )
    res["deep_scan"] = await dv.search_deal_embeddings(
        db, query, **owner, threshold=0.2, limit=10, agent_name_contains="expert", fallback_to_top_k=True
    )
    res["strict"] = await dv.search_deal_embeddings(db, query, **owner, threshold=0.0, limit=50, inclusive=True)
    res["raw"] = await dv.search_raw_chunks(db, query, pre_qualification_id=q["pq"], threshold=0.2, limit=5)
    lead_owner = {"qualification_id": owner["qualification_id"]} if "qualification_id" in owner else {}
    res["similar"] = await dv.search_similar(
        db, query, pre_qualification_id=q["pq"], **lead_owner, threshold=0.1, limit=10
    )
    res["list"] = await dv.list_deal_chunks(db, **owner, limit=20)
    res["duplicates_exact"] = await dv.find_similar_pre_qualifications(db, query, min_similarity_percent=60)
    res["duplicates_limit_exact"] = await dv.find_similar_pre_qualifications(
        db, query, min_similarity_percent=50, limit=3, exact=True
    )
    # hybrid search (vector + German full-text, RRF) and MMR diversification
    words = q["words"]
    res["hybrid"] = await dv.hybrid_search_deal_embeddings(db, words, query, **owner, limit=8)
    res["hybrid_raw"] = await dv.hybrid_search_raw_chunks(db, words, query, pre_qualification_id=q["pq"], limit=5)
    res["hybrid_text_only"] = await dv.hybrid_search_deal_embeddings(db, words, None, **owner, limit=5)
    res["mmr"] = await dv.search_deal_embeddings(db, query, **owner, threshold=0.0, limit=5, mmr_lambda=0.5)
    res["mmr_raw"] = await dv.search_raw_chunks(db, query, pre_qualification_id=q["pq"], threshold=0.0, mmr_lambda=0.7)
    res["hybrid_mmr"] = await dv.hybrid_search_deal_embeddings(db, words, query, **owner, limit=5, mmr_lambda=0.5)
    res["batch"] = await dv.search_many(
        db,
        [
            dv.DealChunkSearch(query_embedding=query, **owner, threshold=0.1, limit=4),
            dv.RawChunkSearch(query_embedding=query, pre_qualification_id=q["pq"], threshold=0.0, limit=3),
            dv.DealChunkSearch(query_embedding=query, pre_qualification_id=q["pq"], threshold=-1.0, limit=2),
        ],
    )
    return res


async def test_every_call_site_returns_the_single_nodes_answers(
    pools: tuple[Pool, Pool], legacy: LegacyDatabaseSummary
) -> None:
    single, cluster = pools
    nonempty: dict[str, int] = {}
    # full-text query words taken from the stored chunks (the text leg must find something)
    contents = [r["content"] for r in await single.fetch("SELECT content FROM deal_embeddings ORDER BY id LIMIT 40")]
    vocabulary = sorted({w.strip(".,;:()") for c in contents for w in c.split() if len(w) > 6})
    pick = random.Random(3)
    for q in _queries(legacy, seed=1):
        q["words"] = " ".join(pick.sample(vocabulary, 2))
        expected = await _call_sites(single, q)
        got = await _call_sites(cluster, q)
        for site, hits in expected.items():
            assert got[site] == hits, (site, q["owner"])
            nonempty[site] = nonempty.get(site, 0) + bool(hits)
    # the comparison is not vacuous: every call site found something in some round
    assert all(nonempty.values()), nonempty


async def test_index_duplicate_search_recall_is_at_least_the_single_nodes(
    pools: tuple[Pool, Pool], legacy: LegacyDatabaseSummary
) -> None:
    single, cluster = pools
    recall = {"single": 0.0, "cluster": 0.0}
    for q in _queries(legacy, seed=2):
        exact = await dv.find_similar_pre_qualifications(
            single, q["query"], min_similarity_percent=0, limit=10, exact=True
        )
        truth = {m.pre_qualification_id for m in exact}
        for name, pool in (("single", single), ("cluster", cluster)):
            approx = await dv.find_similar_pre_qualifications(pool, q["query"], min_similarity_percent=0, limit=10)
            found = {m.pre_qualification_id for m in approx}
            recall[name] += len(found & truth) / max(1, len(truth))
            # re-ranked exactly: every reported similarity is the exact one
            by_id = {m.pre_qualification_id: m.similarity for m in exact}
            for m in approx:
                if m.pre_qualification_id in by_id:
                    assert m.similarity == by_id[m.pre_qualification_id]
    assert recall["cluster"] >= recall["single"] - 1e-9, recall


async def test_owner_scoped_searches_are_single_shard_router_queries(
    pools: tuple[Pool, Pool], legacy: LegacyDatabaseSummary
) -> None:
    _, cluster = pools
    q = np.zeros(3072, dtype=np.float32)
    q[0] = 1.0
    pq = legacy.pre_qualification_ids[0]
    qual = legacy.qualification_ids[0]
    tenant = await cluster.fetchval("SELECT pre_qualification_id FROM qualifications WHERE id = $1", qual)
    # the requests exactly as the search functions build them
    by_pq = _DealParams(dv.DealChunkSearch(query_embedding=q, pre_qualification_id=pq, threshold=-1.0)).request
    by_q = _DealParams(dv.DealChunkSearch(query_embedding=q, qualification_id=qual, threshold=-1.0)).request
    raw = _prepare_raw(dv.RawChunkSearch(query_embedding=q, pre_qualification_id=pq, threshold=-1.0)).request
    listing = (None, None, None, False, None, False, 10)
    cases = [
        (DEAL_SEARCH["pre_qualification_id"], by_pq, pq),
        (DEAL_SEARCH["qualification_id"], by_q, tenant),
        (RAW_SEARCH, raw, pq),
        (LIST_DEAL_CHUNKS["pre_qualification_id"], OwnerRequest(pq, (pq, *listing)), pq),
        (LIST_DEAL_CHUNKS["qualification_id"], OwnerRequest(qual, (qual, *listing)), tenant),
    ]
    async with cluster.acquire() as conn:
        for statement, request, owner_tenant in cases:
            params = statement.citus_params(request, owner_tenant)
            async with conn.transaction():
                # a custom plan shows the pruned task; the library's prepared statements get the same routing
                await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + statement.citus, *params))
            assert "Task Count: 1" in plan, (statement.name, plan)
            # and it found the owner's rows (the router query is not trivially empty)
            assert await conn.fetch(statement.citus, *params), statement.name
        # the global duplicate search is a multi-shard query over every shard
        async with conn.transaction():
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + DUPLICATE_EXACT.citus, q, None, 2.0, 10))
        assert "Task Count: 8" in plan, plan


def test_legacy_file_is_untouched(legacy: LegacyDatabaseSummary) -> None:
    assert Path(legacy.path).is_file()


async def test_no_detours_a_remembered_tenant_a_routed_mmr_matrix_and_widening(
    pools: tuple[Pool, Pool], legacy: LegacyDatabaseSummary
) -> None:
    """Issue 22: a qualification-owned search is one router query once the session knows the
    qualification's tenant; MMR's pairwise statement is a router query; the global index search
    returns the frontier the widening rule needs."""
    _, cluster = pools
    qual = legacy.qualification_ids[1]
    q = legacy.space.query_near_centre(legacy.owner_clusters[qual], np.random.default_rng(9), cosine=0.7)
    statements: list[str] = []
    async with cluster.acquire() as conn:
        first = await dv.search_deal_embeddings(conn, q, qualification_id=qual, threshold=-1.0, limit=5)

        def log(record: Any) -> None:
            statements.append(record.query)

        conn.add_query_logger(log)
        again = await dv.search_deal_embeddings(conn, q, qualification_id=qual, threshold=-1.0, limit=5)
        conn.remove_query_logger(log)
    assert again == first and first
    assert statements == [DEAL_SEARCH["qualification_id"].citus], statements  # no tenant look-up any more
    tenant = await cluster.fetchval("SELECT pre_qualification_id FROM qualifications WHERE id = $1", qual)
    ids = [h.chunk_id for h in first]
    async with cluster.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        pairwise = MMR_PAIRWISE["deal_embeddings"]["qualification_id"]
        request = OwnerRequest(qual, (ids, qual))
        plan = "\n".join(
            r[0] for r in await conn.fetch("EXPLAIN " + pairwise.citus, *pairwise.citus_params(request, tenant))
        )
    assert "Task Count: 1" in plan, plan
    async with cluster.acquire() as conn:
        scan = await CITUS.duplicate_candidates(
            conn,
            DUPLICATE_CANDIDATES,
            CandidateQuery(q, None, 2.0, limit=18, candidates=100, cap=1000, max_scan_tuples=50_000),
        )
    assert scan.seen is not None and scan.frontier is not None and scan.candidates == 100
    assert scan.rows and all(r["distance"] <= scan.frontier for r in scan.rows)


async def test_a_remembered_tenant_that_changed_is_noticed(pools: tuple[Pool, Pool]) -> None:
    """A qualification deleted and re-created under another pre-qualification (same id): the
    session's remembered tenant is stale, the routed search finds nothing with it, checks again
    and answers from the new tenant."""
    _, cluster = pools
    await seed_owners(cluster, pre_qualification_ids=["pq-move-a", "pq-move-b"])
    insert_qualification = (
        "INSERT INTO qualifications (id, pre_qualification_id, customer_name, business_unit_id)"
        " VALUES ('q-move', $1, 'Customer', 'bu-test')"
    )
    q = np.zeros(3072, dtype=np.float32)
    q[0] = 1.0
    chunk = dict(qualification_id="q-move", agent_name="a", chunk_type="text", content="x", embedding=q)
    async with cluster.acquire() as conn:
        await conn.execute(insert_qualification, "pq-move-a")
        await dv.insert_deal_chunks(conn, [dv.DealChunk(id="c-move-1", **chunk)])
        assert [h.chunk_id for h in await dv.search_deal_embeddings(conn, q, qualification_id="q-move")] == ["c-move-1"]
        # another writer moves the qualification: delete and re-insert under pq-move-b
        await conn.execute("DELETE FROM deal_embeddings WHERE qualification_id = 'q-move'")
        await conn.execute("DELETE FROM qualifications WHERE id = 'q-move'")
        await conn.execute(insert_qualification, "pq-move-b")
        await dv.insert_deal_chunks(conn, [dv.DealChunk(id="c-move-2", **chunk)])
        assert [h.chunk_id for h in await dv.search_deal_embeddings(conn, q, qualification_id="q-move")] == ["c-move-2"]
