"""docs/reembedding.md, "Switching models", run on a small table while searches keep answering.

Model A (3072 dimensions) is replaced by model B (1024 dimensions): a shadow slot is added, the
backfill fills it with the library's stale query and bulk update while a writer keeps writing
model-A chunks and editing contents, and the swap renames the slots in one short transaction.
A searcher task runs the whole time: each search reads the active model in its own transaction
(the swap's lock keeps the two consistent), embeds its question with that model and must find
the right chunk; not one search may fail or miss.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from typing import Any

import asyncpg
import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.testing import seed_owners

A, B = "model-a", "model-b"
DIMS = {A: 3072, B: 1024}

# The procedure's statements, as docs/reembedding.md gives them (deal_embeddings, 1024 dimensions).
ADD_SHADOW_SLOT = """
ALTER TABLE "deal_embeddings"
    ADD COLUMN "embedding_next" vector(1024),
    ADD COLUMN "embedding_next_model" text,
    ADD COLUMN "embedding_next_content_hash" bytea,
    ADD COLUMN "embedding_next_half" halfvec(1024) GENERATED ALWAYS AS (
        CASE WHEN vector_norm("embedding_next") BETWEEN '1e-12'::float8 AND '1e15'::float8
             THEN (l2_normalize("embedding_next"))::halfvec(1024) END
    ) STORED,
    ALTER COLUMN "embedding_next_half" SET STORAGE MAIN
"""
RENAMES = [
    (old, new)
    for suffix in ("", "_model", "_content_hash", "_half")
    for old, new in (
        (f"embedding{suffix}", f"embedding_prev{suffix}"),
        (f"embedding_next{suffix}", f"embedding{suffix}"),
    )
]


def embed(model: str, content: str) -> np.ndarray[Any, Any]:
    """A deterministic stand-in for an embedding model: the content's hash seeds the vector."""
    seed = int.from_bytes(hashlib.sha256(f"{model}:{content}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIMS[model]).astype(np.float32)


def chunk(i: int, content: str) -> dv.DealChunk:
    return dv.DealChunk(
        id=f"c{i:03d}",
        qualification_id="q1",
        agent_name="a",
        chunk_type="t",
        content=content,
        embedding=embed(A, content),
    )


class Searcher:
    """Searches until stopped; records per model how many searches found the right chunk."""

    def __init__(self, pool: dv.Pool, contents: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.pool, self.contents, self.monkeypatch = pool, contents, monkeypatch
        self.found: dict[str, int] = {A: 0, B: 0}
        self.stop = asyncio.Event()

    async def run(self) -> None:
        rng = random.Random(7)
        while not self.stop.is_set():
            content = rng.choice(self.contents)
            async with self.pool.acquire() as conn, conn.transaction():
                # the active model, read in the search's transaction: the swap cannot happen in between
                model = await conn.fetchval(
                    "SELECT embedding_model FROM deal_embeddings WHERE id = 'c000' AND embedding IS NOT NULL"
                )
                self.monkeypatch.setenv("DEALHUNTER_EMBEDDING_DIMENSIONS", str(DIMS[model]))
                hits = await dv.search_deal_embeddings(
                    conn, embed(model, content), qualification_id="q1", threshold=0.99, limit=3
                )
            assert [h.content for h in hits] == [content], (model, content)
            self.found[model] += 1
            await asyncio.sleep(0.005)


async def backfill(pool: dv.Pool | asyncpg.Connection, *, limit: int = 7) -> int:
    """Embed every stale row of the shadow slot with model B; the rows done."""
    done = 0
    while True:
        stale = await dv.stale_chunks(pool, model=B, column="embedding_next", limit=limit)
        if not stale:
            return done
        updates = [
            dv.EmbeddingUpdate(id=s.id, embedding=embed(B, s.content), content_hash=s.content_hash) for s in stale
        ]
        result = await dv.update_embeddings(pool, updates, model=B, column="embedding_next")
        done += result.updated
        await asyncio.sleep(0.01)


async def test_switch_to_a_model_of_another_size_while_searches_answer(
    dhv_pool: dv.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = dhv_pool
    await seed_owners(pool, qualification_ids=("q1",))
    contents = [f"Abschnitt {i}: Hosting, Betrieb, Lizenzen ({i * 7})" for i in range(30)]
    await dv.insert_deal_chunks(pool, [chunk(i, c) for i, c in enumerate(contents)], embedding_model=A)
    searcher = Searcher(pool, contents[:20], monkeypatch)  # rows 20-29 are edited below
    search_task = asyncio.create_task(searcher.run())
    try:
        await asyncio.sleep(0.2)
        await pool.execute(ADD_SHADOW_SLOT)  # step 1 (rewrites the table once: searches wait, then go on)

        async def writer() -> None:  # the app keeps writing model A meanwhile
            for i in range(30, 36):
                await dv.insert_deal_chunks(pool, [chunk(i, f"neu {i}")], embedding_model=A)
                await pool.execute(
                    "UPDATE deal_embeddings SET content = content || ' v2' WHERE id = $1", f"c{i - 10:03d}"
                )
                await asyncio.sleep(0.03)

        done, _ = await asyncio.gather(backfill(pool), writer())  # step 2
        assert done > 0
        async with pool.acquire() as conn, conn.transaction():  # step 3: the swap
            await conn.execute('LOCK TABLE "deal_embeddings" IN SHARE ROW EXCLUSIVE MODE')
            await backfill(conn)  # the rows written or edited since the last pass
            for old, new in RENAMES:
                await conn.execute(f'ALTER TABLE "deal_embeddings" RENAME COLUMN "{old}" TO "{new}"')
        await asyncio.sleep(0.3)
    finally:
        searcher.stop.set()
        await search_task
    assert searcher.found[A] > 0 and searcher.found[B] > 0  # every search succeeded (else the task raised)
    monkeypatch.setenv("DEALHUNTER_EMBEDDING_DIMENSIONS", "1024")
    rows = await pool.fetch(
        "SELECT id, content, embedding, embedding_model, embedding_content_hash FROM deal_embeddings"
    )
    assert len(rows) == 36
    for r in rows:
        assert r["embedding_model"] == B and r["embedding"].tobytes() == embed(B, r["content"]).tobytes(), r["id"]
        assert bytes(r["embedding_content_hash"]) == hashlib.sha256(r["content"].encode()).digest()
    assert await dv.stale_chunks(pool, model=B) == []
    # after the swap the app writes and searches model B, hybrid search included
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(
                id="new",
                qualification_id="q1",
                agent_name="a",
                chunk_type="t",
                content="Rahmenvertrag",
                embedding=embed(B, "Rahmenvertrag"),
            )
        ],
        embedding_model=B,
    )
    hits = await dv.hybrid_search_deal_embeddings(
        pool, "Rahmenvertrag", embed(B, "Rahmenvertrag"), qualification_id="q1"
    )
    assert hits[0].chunk_id == "new" and hits[0].vector_rank == 1 and hits[0].text_rank == 1
    half_dims = await pool.fetchval("SELECT vector_dims(embedding_half::vector) FROM deal_embeddings WHERE id = 'new'")
    assert half_dims == 1024
    await pool.execute(
        'ALTER TABLE "deal_embeddings" DROP COLUMN "embedding_prev_half", DROP COLUMN "embedding_prev",'
        ' DROP COLUMN "embedding_prev_model", DROP COLUMN "embedding_prev_content_hash"'
    )  # step 4, once nothing reads model A any more
    assert [
        h.chunk_id
        for h in await dv.search_deal_embeddings(pool, embed(B, "Rahmenvertrag"), qualification_id="q1", threshold=0.99)
    ] == ["new"]
