"""delete / upsert / get / page of raw chunks, checked with plain SQL."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.errors import InvalidArgumentError, NotFoundError

Vec = Callable[[int], np.ndarray[Any, Any]]


def raw(vec: Vec, i: int, **fields: Any) -> dv.RawChunk:
    values: dict[str, Any] = {"chunk_index": i, "content": f"raw {i}", "token_count": 10 + i, "embedding": vec(i)}
    values.update(fields)
    return dv.RawChunk(**values)


async def test_raw_chunks_round_trip(pool: dv.Pool, vec: Vec) -> None:
    ids1 = await dv.replace_raw_chunks(pool, "pq1", [raw(vec, i, metadata={"type": "pdf"}) for i in range(5)])
    ids2 = await dv.replace_raw_chunks(pool, "pq2", [raw(vec, i) for i in range(3)], embedding_model="m-raw")
    stored = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT id, pre_qualification_id, content, embedding, embedding_model, embedding_content_hash"
            " FROM raw_chunks"
        )
    }
    assert set(stored) == {*ids1, *ids2}
    for row_id in ids2:
        row = stored[row_id]
        assert row["embedding_model"] == "m-raw"
        assert bytes(row["embedding_content_hash"]) == hashlib.sha256(row["content"].encode()).digest()
    got = await dv.get_raw_chunks(pool, [ids1[2], "missing", ids2[0]])
    assert [c.id for c in got] == [ids1[2], ids2[0]]
    assert got[0].embedding.tobytes() == stored[ids1[2]]["embedding"].tobytes()
    assert got[0].metadata == {"type": "pdf"} and got[1].metadata is None and got[0].token_count == 12
    pages, after = [], None
    while True:
        page = await dv.page_raw_chunks(pool, "pq1", after=after, limit=2)
        pages.append([c.id for c in page.chunks])
        if page.next_after is None:
            break
        after = page.next_after
    assert [i for p in pages for i in p] == sorted(ids1) and all(len(p) <= 2 for p in pages)
    assert await dv.delete_raw_chunks(pool, pre_qualification_id="pq1", ids=[ids1[0], ids2[0]]) == 1
    assert await dv.delete_raw_chunks(pool, ids=[ids2[0], "missing"]) == 1
    assert await dv.delete_raw_chunks(pool, pre_qualification_id="pq1") == 4
    assert await pool.fetchval("SELECT count(*) FROM raw_chunks") == 2
    with pytest.raises(InvalidArgumentError, match="ids: give ids or a pre_qualification_id"):
        await dv.delete_raw_chunks(pool)
    assert await dv.delete_raw_chunks(pool, ids=[]) == 0


async def test_raw_upsert(pool: dv.Pool, vec: Vec) -> None:
    [kept] = await dv.replace_raw_chunks(pool, "pq1", [raw(vec, 0, id="r0")])
    created = await pool.fetchval("SELECT created_at FROM raw_chunks WHERE id = 'r0'")
    result = await dv.upsert_raw_chunks(pool, "pq1", [raw(vec, 5, id="r0", content="changed"), raw(vec, 6, id="r1")])
    assert (result.inserted_ids, result.updated_ids) == (["r1"], ["r0"])
    row = await pool.fetchrow("SELECT * FROM raw_chunks WHERE id = 'r0'")
    assert row["content"] == "changed" and row["embedding"].tobytes() == vec(5).tobytes()
    assert row["created_at"] == created and row["chunk_index"] == 5
    again = await dv.upsert_raw_chunks(pool, "pq1", [raw(vec, 5, id="r0", content="changed"), raw(vec, 6, id="r1")])
    assert again.updated == 2 and again.inserted == 0
    with pytest.raises(InvalidArgumentError, match="raw_chunks id=r0: is stored for another pre-qualification"):
        await dv.upsert_raw_chunks(pool, "pq2", [raw(vec, 1, id="r0")])
    assert await pool.fetchval("SELECT pre_qualification_id FROM raw_chunks WHERE id = 'r0'") == "pq1"
    with pytest.raises(NotFoundError):
        await dv.upsert_raw_chunks(pool, "no-such-pq", [raw(vec, 1, id="r9")])
    assert kept == "r0"
