"""Releasing a connection after a library search skips asyncpg's reset round trip, safely.

The searches leave the session as they found it (checked here against the server's own view:
``pg_settings``, ``pg_cursors``, ``pg_locks``, temporary tables), so the reset query they skip
would have changed nothing; every other hold of a pool connection is still reset.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio

import dealhunter_vectors as dv
from dealhunter_vectors.db.pool import acquire_for_reads
from dealhunter_vectors.models import DealChunk, RawChunk
from dealhunter_vectors.testing import seed_owners

pytestmark = pytest.mark.asyncio(loop_scope="module")

Q, PQ = "q-reset", "pq-reset"
rng = np.random.default_rng(5)

SESSION_STATE_SQL = """
SELECT
    (SELECT array_agg(name || '=' || setting ORDER BY name) FROM pg_settings) AS settings,
    (SELECT count(*) FROM pg_cursors) AS cursors,
    (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory,
    (SELECT count(*) FROM pg_class WHERE relpersistence = 't') AS temp_relations,
    (SELECT count(*) FROM pg_listening_channels()) AS listening
"""


def unit() -> np.ndarray[Any, Any]:
    v = rng.standard_normal(3072)
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def one_connection_pool(dhv_module_database_url: str) -> AsyncIterator[dv.Pool]:
    """A pool of exactly one connection: every call below runs on the same server session."""
    pool = await dv.create_pool(dhv_module_database_url, min_size=1, max_size=1)
    await seed_owners(pool, pre_qualification_ids=[PQ], qualification_ids=[Q])
    await dv.insert_deal_chunks(
        pool,
        [
            DealChunk(
                id=f"d{i}", qualification_id=Q, agent_name="tech", chunk_type="text", chunk_index=i,
                content=f"chunk {i} TYPO3 relaunch", embedding=unit(),
            )
            for i in range(30)
        ],
    )  # fmt: skip
    await dv.replace_raw_chunks(
        pool, PQ, [RawChunk(chunk_index=i, content=f"raw {i}", token_count=2, embedding=unit()) for i in range(10)]
    )
    await dv.set_description_embedding(pool, PQ, unit())
    yield pool
    await dv.close_pool(pool)


class StatementLog:
    """Every statement the pool's one connection runs (asyncpg's query logger)."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, record: Any) -> None:
        self.queries.append(record.query)

    def resets(self) -> int:
        return sum("RESET ALL" in q for q in self.queries)


@pytest_asyncio.fixture(loop_scope="module")
async def statement_log(one_connection_pool: dv.Pool) -> AsyncIterator[StatementLog]:
    log = StatementLog()
    async with one_connection_pool.acquire() as conn:
        raw: asyncpg.Connection = conn._con  # the pooled connection itself: the logger outlives the proxy
    raw.add_query_logger(log)
    log.queries.clear()
    yield log
    raw.remove_query_logger(log)


SEARCHES = {
    "search_deal_embeddings": lambda db, q: dv.search_deal_embeddings(db, q, qualification_id=Q, threshold=0.0),
    "search_deal_embeddings_mmr": lambda db, q: dv.search_deal_embeddings(
        db, q, qualification_id=Q, threshold=-1.0, mmr_lambda=0.5
    ),
    "search_raw_chunks": lambda db, q: dv.search_raw_chunks(db, q, pre_qualification_id=PQ, threshold=-1.0),
    "search_similar": lambda db, q: dv.search_similar(db, q, qualification_id=Q, threshold=-1.0),
    "find_similar_pre_qualifications": lambda db, q: dv.find_similar_pre_qualifications(
        db, q, min_similarity_percent=0
    ),
    "hybrid_search_deal_embeddings": lambda db, q: dv.hybrid_search_deal_embeddings(db, "TYPO3", q, qualification_id=Q),
    "search_many": lambda db, q: dv.search_many(
        db,
        [
            dv.DealChunkSearch(query_embedding=q, qualification_id=Q, threshold=0.0),
            dv.RawChunkSearch(query_embedding=q, pre_qualification_id=PQ, threshold=-1.0),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(SEARCHES))
async def test_search_leaves_the_session_as_it_found_it_and_sends_no_reset(
    one_connection_pool: dv.Pool, statement_log: StatementLog, name: str
) -> None:
    before = dict(await one_connection_pool.fetchrow(SESSION_STATE_SQL))
    statement_log.queries.clear()
    hits = await SEARCHES[name](one_connection_pool, unit())
    assert hits, f"{name} found nothing: the check would prove nothing"
    assert statement_log.queries, "the query logger saw nothing: the check would prove nothing"
    assert statement_log.resets() == 0, statement_log.queries
    after = dict(await one_connection_pool.fetchrow(SESSION_STATE_SQL))
    assert after == before


async def test_every_other_hold_is_still_reset(one_connection_pool: dv.Pool, statement_log: StatementLog) -> None:
    default = await one_connection_pool.fetchval("SHOW work_mem")
    async with one_connection_pool.acquire() as conn:
        await conn.execute("SET work_mem = '77MB'")
        assert await conn.fetchval("SHOW work_mem") == "77MB"
    assert statement_log.resets() == 2  # one per release: the fetchval above and this hold
    assert await one_connection_pool.fetchval("SHOW work_mem") == default
    # a search right after a caller's hold does not inherit its session either
    async with one_connection_pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
    await dv.search_deal_embeddings(one_connection_pool, unit(), qualification_id=Q, threshold=0.0)
    assert await one_connection_pool.fetchval("SHOW enable_seqscan") == "on"


async def test_a_hold_whose_body_raises_gets_the_full_reset(
    one_connection_pool: dv.Pool, statement_log: StatementLog
) -> None:
    default = await one_connection_pool.fetchval("SHOW work_mem")
    statement_log.queries.clear()
    with pytest.raises(RuntimeError):
        async with acquire_for_reads(one_connection_pool) as conn:
            await conn.execute("SET work_mem = '33MB'")
            raise RuntimeError("a statement failed half way")
    assert statement_log.resets() == 1
    assert await one_connection_pool.fetchval("SHOW work_mem") == default


async def test_a_plain_asyncpg_pool_keeps_its_reset(dhv_module_database_url: str) -> None:
    pool = await asyncpg.create_pool(dhv_module_database_url, min_size=1, max_size=1)
    try:
        default = await pool.fetchval("SHOW work_mem")
        async with acquire_for_reads(pool) as conn:
            await conn.execute("SET work_mem = '44MB'")  # not a library read: the reset must undo it
        assert await pool.fetchval("SHOW work_mem") == default
    finally:
        await pool.close()
