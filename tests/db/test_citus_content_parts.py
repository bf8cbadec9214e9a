"""The split text (migration 011) on a real 1 + 2 Citus cluster: the same columns, writes, searches,
backfill and doctor row as on a single node, on a fresh distributed database and on one that was
distributed before migration 011 (the upgrade path: the migration's DDL reaches every shard)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors import compounds
from dealhunter_vectors.db.doctor import run_doctor
from dealhunter_vectors.db.fulltext import set_text_search_config
from dealhunter_vectors.db.pool import Pool, close_pool, create_pool
from dealhunter_vectors.db.schema import apply_schema
from dealhunter_vectors.testing import CitusDatabaseFactory, TemplateDatabaseFactory, seed_owners

pytestmark = [
    pytest.mark.citus,
    pytest.mark.skipif(not compounds.compounds_available(), reason="needs the [compounds] extra (wordfreq)"),
]

TEXTS = [
    "Rahmenvertragsangebot für Webentwicklung",
    "Barrierefreiheitsprüfung der Website",
    "Angebote für Hosting",
    "Relaunch des TYPO3-Portals",
]
QUERIES = ["Rahmenvertrag", "Barrierefreiheit", "Angebot", "TYPO3 Portal", "Entwicklung", "Angebot -Rahmenvertrag"]


def vec(seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(3072).astype(np.float32)


async def scenario(pool: Pool, *, tenant_column: bool) -> list[Any]:
    """Library writes and plain-SQL rows, searches before and after the backfill, the doctor row."""
    out: list[Any] = []
    await seed_owners(pool, pre_qualification_ids=("pq1", "pq2"), qualification_ids=("q1",))
    q1_tenant = await pool.fetchval("SELECT pre_qualification_id FROM qualifications WHERE id = 'q1'")
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(
                id=f"lib{i}", qualification_id="q1", agent_name="a", chunk_type="t", content=t, embedding=vec(i)
            )
            for i, t in enumerate(TEXTS)
        ],
    )
    await dv.replace_raw_chunks(
        pool,
        "pq1",
        [
            dv.RawChunk(id=f"r{i}", chunk_index=i, content=t, token_count=3, embedding=vec(i))
            for i, t in enumerate(TEXTS)
        ],
    )
    # another writer: plain SQL (on Citus it must set the tenant, as every writer there does)
    columns, values = ("id, qualification_id, agent_name, chunk_type, content", "$1, 'q1', 'a', 't', $2")
    if tenant_column:
        columns, values = columns + ", tenant_id", values + ", $3"
    await pool.executemany(
        f"INSERT INTO deal_embeddings ({columns}) VALUES ({values})",
        [(f"plain{i}", t, q1_tenant)[: 3 if tenant_column else 2] for i, t in enumerate(TEXTS)],
    )
    await pool.executemany(
        "INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
        " VALUES ($1, 'pq2', $2, $3, 1, $4)",
        [(f"pr{i}", i, t, vec(i)) for i, t in enumerate(TEXTS)],
    )
    out.append(
        [
            tuple(r)
            for r in await pool.fetch("SELECT id, content_parts, content_parts_hash FROM deal_embeddings ORDER BY id")
        ]
    )

    async def searches() -> list[Any]:
        found = []
        for query in QUERIES:
            deal = await dv.hybrid_search_deal_embeddings(pool, query, None, qualification_id="q1", limit=20)
            raw1 = await dv.hybrid_search_raw_chunks(pool, query, vec(0), pre_qualification_id="pq1", limit=20)
            raw2 = await dv.hybrid_search_raw_chunks(pool, query, None, pre_qualification_id="pq2", limit=20)
            found.append(
                [[(h.chunk_id, h.text_rank, h.vector_rank, h.fused_score) for h in hits] for hits in (deal, raw1, raw2)]
            )
        return found

    out.append(await searches())
    out.append(await doctor_row(pool))
    out.append([(r.table, r.lacking, r.filled, r.changed) for r in await dv.backfill_content_parts(pool, batch_size=3)])
    out.append(await searches())
    out.append(await doctor_row(pool))
    out.append(
        [tuple(r) for r in await pool.fetch("SELECT id, content_parts, content_parts_hash FROM raw_chunks ORDER BY id")]
    )
    return out


async def doctor_row(pool: Pool) -> tuple[str, str]:
    async with pool.acquire() as conn:
        report = await run_doctor(conn)
    [check] = [c for c in report.checks if c.name == "compound parts"]
    return check.status, check.detail


@pytest.fixture(scope="module")
async def pools(
    dhv_citus_database_factory: CitusDatabaseFactory, dhv_database_factory: TemplateDatabaseFactory
) -> AsyncIterator[tuple[Pool, Pool]]:
    single = await create_pool(await dhv_database_factory(), min_size=1, max_size=4)
    cluster = await create_pool(await dhv_citus_database_factory(), min_size=1, max_size=4)
    try:
        yield single, cluster
    finally:
        await close_pool(single)
        await close_pool(cluster)


async def test_the_cluster_answers_as_the_single_node(pools: tuple[Pool, Pool]) -> None:
    single, cluster = pools
    want = await scenario(single, tenant_column=False)
    got = await scenario(cluster, tenant_column=True)
    assert got == want
    searches_before, searches_after = want[1], want[4]
    assert searches_before != searches_after  # the backfill changed what the text leg finds
    assert want[2][0] == "warn" and want[5][0] == "ok"
    assert want[3] == [("deal_embeddings", 4, 4, 0), ("raw_chunks", 4, 4, 0)]


async def test_migration_011_on_a_database_distributed_before_it(
    dhv_citus_database_factory: CitusDatabaseFactory,
) -> None:
    pool = await create_pool(await dhv_citus_database_factory(distributed=False), min_size=1, max_size=2)
    try:
        applied = await apply_schema(pool, target=10, distributed=True)
        assert 11 not in applied and 1001 in applied
        await seed_owners(pool, pre_qualification_ids=("pq1",))
        await pool.execute(
            "INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
            " VALUES ('old', 'pq1', 0, $1, 1, $2)",
            TEXTS[0],
            vec(0),
        )
        assert await apply_schema(pool, target=11, distributed=True) == [11]  # on the distributed tables
        shards = await pool.fetch(
            "SELECT result FROM run_command_on_shards('raw_chunks', $1)",
            "SELECT count(*) FROM pg_attribute WHERE attrelid = '%s'::regclass"
            " AND attname IN ('content_parts', 'content_parts_hash', 'content_tsv')",
        )
        assert [r["result"] for r in shards] == ["3"] * len(shards) and shards
        assert await dv.hybrid_search_raw_chunks(pool, "Rahmenvertrag", None, pre_qualification_id="pq1") == []
        [_deal, raw] = await dv.backfill_content_parts(pool)
        assert (raw.lacking, raw.filled) == (1, 1)
        hits = await dv.hybrid_search_raw_chunks(pool, "Rahmenvertrag", None, pre_qualification_id="pq1")
        assert [h.chunk_id for h in hits] == ["old"]
        await dv.replace_raw_chunks(
            pool, "pq1", [dv.RawChunk(id="new", chunk_index=0, content=TEXTS[1], token_count=1, embedding=vec(1))]
        )
        hits = await dv.hybrid_search_raw_chunks(pool, "Barrierefreiheit", None, pre_qualification_id="pq1")
        assert [h.chunk_id for h in hits] == ["new"]
        # the configuration can change on the cluster too (the columns are rebuilt on every shard)
        assert await set_text_search_config(pool, "simple")
        hits = await dv.hybrid_search_raw_chunks(pool, "Barrierefreiheit", None, pre_qualification_id="pq1")
        assert [h.chunk_id for h in hits] == ["new"]
        assert await dv.hybrid_search_raw_chunks(pool, "Prüfungen", None, pre_qualification_id="pq1") == []
        assert await set_text_search_config(pool, "german")
        hits = await dv.hybrid_search_raw_chunks(pool, "Prüfungen", None, pre_qualification_id="pq1")
        assert [h.chunk_id for h in hits] == ["new"]  # stemmed again
    finally:
        await close_pool(pool)
