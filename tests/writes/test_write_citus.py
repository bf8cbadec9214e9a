"""The write paths on a real 1 + 2 Citus cluster: the single node's answers and rows, routed writes,
concurrent replaces."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.db.pool import Pool, close_pool, create_pool
from dealhunter_vectors.errors import InvalidArgumentError
from dealhunter_vectors.layout import OwnerRequest
from dealhunter_vectors.testing import CitusDatabaseFactory, TemplateDatabaseFactory, seed_owners
from dealhunter_vectors.writes import statements as st

pytestmark = pytest.mark.citus
DIMS = 3072


def vec(seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)


@pytest.fixture(scope="module")
async def pools(
    dhv_citus_database_factory: CitusDatabaseFactory, dhv_database_factory: TemplateDatabaseFactory
) -> AsyncIterator[tuple[Pool, Pool]]:
    single = await create_pool(await dhv_database_factory(), min_size=1, max_size=6)
    cluster = await create_pool(await dhv_citus_database_factory(), min_size=1, max_size=6)
    try:
        for pool in (single, cluster):
            await seed_owners(pool, pre_qualification_ids=("pq1", "pq2", "pq3"), qualification_ids=("q1", "q2"))
        yield single, cluster
    finally:
        await close_pool(single)
        await close_pool(cluster)


def deal(i: int, **fields: Any) -> dv.DealChunk:
    values: dict[str, Any] = {
        "id": f"d{i:03d}",
        "agent_name": "prequal_section_agent",
        "chunk_type": "visualization",
        "content": f"chunk {i}",
        "embedding": vec(i),
    }
    values.update(fields)
    return dv.DealChunk(**values)


async def scenario(pool: Pool) -> list[Any]:
    """The same calls on either layout; what they returned, as plain data."""
    out: list[Any] = []
    section = {"pre_qualification_id": "pq1", "chunk_type": "visualization", "metadata_match": {"sectionId": "s1"}}
    chunks = [deal(i, pre_qualification_id="pq1", metadata={"sectionId": f"s{i % 3}"}) for i in range(12)]
    chunks += [deal(100 + i, qualification_id="q1", agent_name=f"agent-{i % 2}") for i in range(6)]
    chunks += [deal(200 + i, pre_qualification_id="pq-base", qualification_id="q2", embedding=None) for i in range(3)]
    out.append(await dv.insert_deal_chunks(pool, chunks, embedding_model="m1"))
    await pool.execute("UPDATE deal_embeddings SET metadata = 'not json' WHERE id = 'd004'")  # sectionId s1 before
    new = [deal(300 + i, pre_qualification_id="pq1", metadata={"sectionId": "s1"}) for i in range(5)]
    out.append((await dv.replace_deal_chunks(pool, new, **section)).model_dump())
    out.append((await dv.replace_deal_chunks(pool, new[:2], **section)).model_dump())
    agent = [deal(400, qualification_id="q1", agent_name="agent-1")]
    out.append((await dv.replace_deal_chunks(pool, agent, qualification_id="q1", agent_name="agent-1")).model_dump())
    up = [
        deal(300, pre_qualification_id="pq1", content="changed", metadata={"sectionId": "s1"}),
        deal(500, pre_qualification_id="pq2"),
    ]
    out.append((await dv.upsert_deal_chunks(pool, up, embedding_model="m2")).model_dump())
    out.append((await dv.upsert_deal_chunks(pool, up, embedding_model="m2")).model_dump())
    with pytest.raises(InvalidArgumentError, match="is stored with other owners"):
        await dv.upsert_deal_chunks(pool, [deal(500, pre_qualification_id="pq3")])  # another tenant
    with pytest.raises(InvalidArgumentError, match="is stored with other owners"):
        await dv.upsert_deal_chunks(pool, [deal(201, pre_qualification_id="pq-base")])  # same tenant, q2 dropped
    out.append(await dv.delete_deal_chunks(pool, ids=["d000", "d101", "nope"]))
    out.append(await dv.delete_deal_chunks(pool, pre_qualification_id="pq1", metadata_match={"sectionId": "s2"}))
    out.append(await dv.delete_deal_chunks(pool, qualification_id="q2"))
    pages, after = [], None
    while True:
        page = await dv.page_deal_chunks(
            pool, pre_qualification_id="pq1", after=after, limit=4, include_embeddings=True
        )
        pages.append([(c.id, c.content, c.embedding.tobytes(), c.metadata, c.embedding_model) for c in page.chunks])
        if page.next_after is None:
            break
        after = page.next_after
    out.append(pages)
    out.append([(c.id, c.agent_name) for c in await dv.get_deal_chunks(pool, ["d400", "d100", "nope", "d301"])])
    stale = await dv.stale_chunks(pool, model="m2")
    out.append([(s.id, s.reason) for s in stale])
    out.append([(s.id, s.reason) for s in await dv.stale_chunks(pool, model="m2", qualification_id="q1")])
    updates = [
        dv.EmbeddingUpdate(id=s.id, embedding=vec(900 + k), content_hash=s.content_hash) for k, s in enumerate(stale)
    ]
    await pool.execute("UPDATE deal_embeddings SET content = 'edited' WHERE id = $1", stale[0].id)
    out.append(
        (
            await dv.update_embeddings(pool, [*updates, dv.EmbeddingUpdate(id="nope", embedding=vec(1))], model="m2")
        ).model_dump()
    )
    raw = [
        dv.RawChunk(id=f"r{i}", chunk_index=i, content=f"raw {i}", token_count=i, embedding=vec(i)) for i in range(6)
    ]
    out.append(await dv.replace_raw_chunks(pool, "pq2", raw))
    out.append(
        (
            await dv.upsert_raw_chunks(
                pool, "pq2", [raw[0], dv.RawChunk(id="r9", chunk_index=9, content="x", token_count=1, embedding=vec(9))]
            )
        ).model_dump()
    )
    with pytest.raises(InvalidArgumentError, match="another pre-qualification"):
        await dv.upsert_raw_chunks(pool, "pq3", [raw[1]])
    out.append(await dv.delete_raw_chunks(pool, pre_qualification_id="pq2", ids=["r1", "r2"]))
    out.append([c.id for c in (await dv.page_raw_chunks(pool, "pq2", limit=3)).chunks])
    out.append([(s.id, s.reason) for s in await dv.stale_chunks(pool, table="raw_chunks", model="other", limit=2)])
    return out


async def stored(pool: Pool) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT id, pre_qualification_id, qualification_id, agent_name, chunk_type, content, metadata, embedding,"
        " embedding_model, embedding_content_hash FROM deal_embeddings ORDER BY id"
    )
    raw = await pool.fetch(
        "SELECT id, pre_qualification_id, content, embedding, embedding_model FROM raw_chunks ORDER BY id"
    )
    return [tuple(v.tobytes() if isinstance(v, np.ndarray) else v for v in r.values()) for r in [*rows, *raw]]


async def test_every_write_answers_and_stores_as_on_a_single_node(pools: tuple[Pool, Pool]) -> None:
    single, cluster = pools
    expected = await scenario(single)
    assert await scenario(cluster) == expected
    assert await stored(cluster) == await stored(single)
    parent = dict(await cluster.fetch("SELECT id, pre_qualification_id FROM qualifications"))  # type: ignore[arg-type]
    rows = await cluster.fetch("SELECT tenant_id, pre_qualification_id, qualification_id FROM deal_embeddings")
    assert rows and all(r["tenant_id"] == (r["pre_qualification_id"] or parent[r["qualification_id"]]) for r in rows)


async def test_owner_writes_are_single_shard(pools: tuple[Pool, Pool]) -> None:
    _, cluster = pools
    selector = (None, "pq1", None, "visualization", json.dumps({"sectionId": "s1"}))
    delete = st.DELETE_DEAL["pre_qualification_id"]
    async with cluster.acquire() as conn:
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                f"EXPLAIN {delete.citus}",
                *delete.citus_params(OwnerRequest("pq1", ("pq1", *selector, None)), "pq1"),
            )
        )
    assert "Task Count: 1" in plan, plan


async def test_concurrent_replaces_on_the_cluster(pools: tuple[Pool, Pool]) -> None:
    _, cluster = pools
    section = {"pre_qualification_id": "pq3", "chunk_type": "visualization", "metadata_match": {"sectionId": "c"}}
    for round_no in range(8):
        sets = [
            [
                deal(1000 + 100 * round_no + 10 * k + i, pre_qualification_id="pq3", metadata={"sectionId": "c"})
                for i in range(2 + k)
            ]
            for k in range(3)
        ]
        await asyncio.gather(*(dv.replace_deal_chunks(cluster, s, **section) for s in sets))
        ids = {
            r["id"] for r in await cluster.fetch("SELECT id FROM deal_embeddings WHERE pre_qualification_id = 'pq3'")
        }
        assert ids in [{c.id for c in s} for s in sets], f"round {round_no}"
