"""Write paths: binary COPY of deal chunks, atomic replace of raw chunks, description embeddings."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import numpy as np
import orjson
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.errors import InvalidArgumentError, InvalidEmbeddingError, NotFoundError
from dealhunter_vectors.testing import seed_owners
from dealhunter_vectors.writes import new_id

DIMS = 3072


def vec(seed: int) -> np.ndarray[Any, Any]:
    v = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
    return v


async def make_owners(db: Any, *, pq: tuple[str, ...] = (), q: tuple[str, ...] = ()) -> None:
    """FK parents; pre-qualifications get an old updated_at so tests can see it stays untouched."""
    await seed_owners(db, pre_qualification_ids=pq, qualification_ids=q, extracted_requirements=None)
    await db.execute("UPDATE pre_qualifications SET updated_at = '2020-01-01'")


def test_generated_ids_are_cuid2_shaped_and_distinct() -> None:
    ids = [new_id() for _ in range(2000)]
    assert all(re.fullmatch(r"[a-z][a-z0-9]{23}", i) for i in ids)
    assert len(set(ids)) == len(ids)


async def test_insert_deal_chunks_stores_every_column(dhv_pool: dv.Pool) -> None:
    await make_owners(dhv_pool, pq=("pq1",), q=("q1",))
    validated = datetime(2025, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    before = datetime.now(UTC).replace(tzinfo=None)
    chunks = [
        dv.DealChunk(
            qualification_id="q1",
            agent_name="tech",
            chunk_type="text",
            chunk_index=3,
            content="hello",
            metadata={"cms": "Drupal", "n": [1, 2]},
            embedding=vec(1),
            chunk_category="fact",
            confidence=77,
            requires_validation=True,
            validated_at=validated,
            validated_by="user-test",
        ),
        dv.DealChunk(
            id="given-id", pre_qualification_id="pq1", agent_name="shot", chunk_type="screenshot", content="img"
        ),
        dv.DealChunk(
            pre_qualification_id="pq1",
            qualification_id="q1",
            agent_name="x",
            chunk_type="t",
            content="both",
            embedding=vec(2).astype(np.float64).tolist(),
        ),
    ]
    ids = await dv.insert_deal_chunks(dhv_pool, chunks)
    after = datetime.now(UTC).replace(tzinfo=None)
    assert ids[1] == "given-id" and re.fullmatch(r"[a-z][a-z0-9]{23}", ids[0])
    rows = {r["id"]: r for r in await dhv_pool.fetch("SELECT * FROM deal_embeddings")}
    first = rows[ids[0]]
    assert first["embedding"].tobytes() == vec(1).tobytes()  # float32 bit-exact
    assert orjson.loads(first["metadata"]) == {"cms": "Drupal", "n": [1, 2]}
    assert (first["chunk_index"], first["chunk_category"], first["confidence"]) == (3, "fact", 77)
    assert first["requires_validation"] is True and first["validated_by"] == "user-test"
    assert first["validated_at"] == datetime(2025, 3, 1, 10, 30)  # converted to the UTC wall clock
    assert before <= first["created_at"] <= after and first["created_at"] == first["updated_at"]
    assert first["created_at"].tzinfo is None
    second = rows["given-id"]
    assert second["embedding"] is None and second["metadata"] is None
    assert (second["chunk_index"], second["chunk_category"], second["confidence"]) == (0, "elaboration", 50)
    assert second["requires_validation"] is False and second["validated_at"] is None
    np.testing.assert_array_equal(rows[ids[2]]["embedding"], vec(2))  # float64 list rounded once to float32


async def test_a_bad_chunk_writes_nothing_and_names_the_row(dhv_pool: dv.Pool) -> None:
    await make_owners(dhv_pool, q=("q1",))
    good = dv.DealChunk(id="good", qualification_id="q1", agent_name="a", chunk_type="t", content="c", embedding=vec(1))
    cases: list[tuple[Any, type[Exception], str]] = [
        (np.zeros(DIMS), InvalidEmbeddingError, "zero_norm"),
        (np.ones(DIMS - 2), InvalidEmbeddingError, "dimensions"),
        (np.r_[np.ones(DIMS - 1), np.nan], InvalidEmbeddingError, "finite"),
        (np.r_[np.ones(DIMS - 1), 1e5], InvalidEmbeddingError, "half_precision_range"),
    ]
    for embedding, error, rule in cases:
        bad = dv.DealChunk(
            id="bad-row", qualification_id="q1", agent_name="a", chunk_type="t", content="c", embedding=embedding
        )
        with pytest.raises(error) as info:
            await dv.insert_deal_chunks(dhv_pool, [good, bad])
        assert info.value.rule == rule  # type: ignore[attr-defined]
        assert "deal_embeddings id=bad-row column=embedding" in str(info.value)
    with pytest.raises(ValueError, match="appears twice"):
        await dv.insert_deal_chunks(dhv_pool, [good, good])
    with pytest.raises(ValueError, match=r"id=orphan.*pre_qualification_id or a qualification_id"):
        await dv.insert_deal_chunks(dhv_pool, [dv.DealChunk(id="orphan", agent_name="a", chunk_type="t", content="c")])
    with pytest.raises(NotFoundError, match="no-such-q"):  # unknown owner: the COPY fails as a whole (typed)
        await dv.insert_deal_chunks(
            dhv_pool,
            [
                good,
                dv.DealChunk(id="x", qualification_id="no-such-q", agent_name="a", chunk_type="t", content="c"),
            ],
        )
    assert await dhv_pool.fetchval("SELECT count(*) FROM deal_embeddings") == 0
    assert await dv.insert_deal_chunks(dhv_pool, []) == []


async def test_insert_many_rows_with_binary_copy(dhv_pool: dv.Pool) -> None:
    await make_owners(dhv_pool, q=("q1",))
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((500, DIMS)).astype(np.float32)
    ids = await dv.insert_deal_chunks(
        dhv_pool,
        [
            dv.DealChunk(
                qualification_id="q1", agent_name="a", chunk_type="t", chunk_index=i, content=str(i), embedding=v
            )
            for i, v in enumerate(vectors)
        ],
    )
    rows = await dhv_pool.fetch("SELECT id, chunk_index, embedding FROM deal_embeddings")
    assert len(rows) == 500 and len(set(ids)) == 500
    by_index = {r["chunk_index"]: r for r in rows}
    assert all(by_index[i]["embedding"].tobytes() == vectors[i].tobytes() for i in range(500))
    assert [by_index[i]["id"] for i in range(500)] == ids


async def test_replace_raw_chunks_replaces_and_is_atomic(dhv_pool: dv.Pool) -> None:
    await make_owners(dhv_pool, pq=("pq1", "pq2"))
    first = await dv.replace_raw_chunks(
        dhv_pool,
        "pq1",
        [
            dv.RawChunk(
                chunk_index=i, content=f"old{i}", token_count=i + 1, embedding=vec(i), metadata={"type": "text"}
            )
            for i in range(3)
        ],
    )
    other = await dv.replace_raw_chunks(
        dhv_pool, "pq2", [dv.RawChunk(id="taken", chunk_index=0, content="other", token_count=1, embedding=vec(9))]
    )
    assert other == ["taken"]

    async def contents(pq: str) -> list[str]:
        rows = await dhv_pool.fetch("SELECT content FROM raw_chunks WHERE pre_qualification_id = $1 ORDER BY 1", pq)
        return [r["content"] for r in rows]

    assert await contents("pq1") == ["old0", "old1", "old2"]
    # Failure midway: the delete has run and the COPY hits a primary-key conflict with pq2's chunk.
    with pytest.raises(InvalidArgumentError, match="taken") as conflict:
        await dv.replace_raw_chunks(
            dhv_pool,
            "pq1",
            [
                dv.RawChunk(chunk_index=0, content="new0", token_count=1, embedding=vec(20)),
                dv.RawChunk(id="taken", chunk_index=1, content="new1", token_count=1, embedding=vec(21)),
            ],
        )
    assert isinstance(conflict.value.__cause__, asyncpg.UniqueViolationError)
    assert await contents("pq1") == ["old0", "old1", "old2"]
    assert (
        await dhv_pool.fetchval(
            "SELECT array_agg(id ORDER BY chunk_index) FROM raw_chunks WHERE pre_qualification_id = 'pq1'"
        )
        == first
    )
    # Validation failure: nothing is touched either.
    with pytest.raises(InvalidEmbeddingError, match="raw_chunks id=zero column=embedding"):
        await dv.replace_raw_chunks(
            dhv_pool,
            "pq1",
            [
                dv.RawChunk(chunk_index=0, content="n", token_count=1, embedding=vec(1)),
                dv.RawChunk(id="zero", chunk_index=1, content="n", token_count=1, embedding=np.zeros(DIMS)),
            ],
        )
    assert await contents("pq1") == ["old0", "old1", "old2"]
    # A real replace: the old set is gone, the new one is there, pq2 is untouched.
    new = await dv.replace_raw_chunks(
        dhv_pool, "pq1", [dv.RawChunk(chunk_index=0, content="new0", token_count=5, embedding=vec(30))]
    )
    rows = await dhv_pool.fetch("SELECT * FROM raw_chunks WHERE pre_qualification_id = 'pq1'")
    assert [r["id"] for r in rows] == new and rows[0]["content"] == "new0" and rows[0]["token_count"] == 5
    assert rows[0]["embedding"].tobytes() == vec(30).tobytes() and rows[0]["metadata"] is None
    assert rows[0]["created_at"].tzinfo is None
    assert await contents("pq2") == ["other"]
    # Replacing with nothing deletes; an unknown pre-qualification is an error.
    assert await dv.replace_raw_chunks(dhv_pool, "pq1", []) == []
    assert await contents("pq1") == []
    with pytest.raises(NotFoundError, match="no-such-pq"):
        await dv.replace_raw_chunks(dhv_pool, "no-such-pq", [])


async def test_concurrent_replaces_of_one_pre_qualification_serialise(dhv_pool: dv.Pool) -> None:
    import asyncio

    await make_owners(dhv_pool, pq=("pq1",))

    async def replace(tag: str) -> None:
        await dv.replace_raw_chunks(
            dhv_pool,
            "pq1",
            [
                dv.RawChunk(
                    id=f"{tag}-{i}-{uuid.uuid4().hex[:6]}", chunk_index=i, content=tag, token_count=1, embedding=vec(i)
                )
                for i in range(5)
            ],
        )

    await asyncio.gather(*(replace(f"t{i}") for i in range(6)))
    rows = await dhv_pool.fetch("SELECT content FROM raw_chunks WHERE pre_qualification_id = 'pq1'")
    assert len(rows) == 5 and len({r["content"] for r in rows}) == 1  # exactly one complete set survives


async def test_set_description_embedding(dhv_pool: dv.Pool) -> None:
    await make_owners(dhv_pool, pq=("pq1",))
    await dv.set_description_embedding(dhv_pool, "pq1", vec(3).tolist())
    row = await dhv_pool.fetchrow("SELECT description_embedding, updated_at FROM pre_qualifications WHERE id='pq1'")
    assert row["description_embedding"].tobytes() == vec(3).tobytes()
    assert row["updated_at"] == datetime(2020, 1, 1)  # untouched, as the old app (no $onUpdate)
    with pytest.raises(InvalidEmbeddingError, match="pre_qualifications id=pq1 column=description_embedding"):
        await dv.set_description_embedding(dhv_pool, "pq1", np.zeros(DIMS))
    assert (
        await dhv_pool.fetchval("SELECT description_embedding FROM pre_qualifications WHERE id='pq1'")
    ).tobytes() == vec(3).tobytes()
    with pytest.raises(NotFoundError, match="nope"):
        await dv.set_description_embedding(dhv_pool, "nope", vec(3))
    await dv.set_description_embedding(dhv_pool, "pq1", None)
    assert await dhv_pool.fetchval("SELECT description_embedding FROM pre_qualifications WHERE id='pq1'") is None
