"""The stale-chunk query and the bulk embedding update, against an independent computation
(Python's hashlib and the stored rows read with plain SQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.errors import InvalidArgumentError, InvalidEmbeddingError

Vec = Callable[[int], np.ndarray[Any, Any]]


def expected_stale(rows: list[Any], model: str, *, include_missing: bool = False) -> dict[str, str]:
    """id -> reason, computed in Python from plain-SQL rows."""
    out = {}
    for r in rows:
        if r["embedding"] is None:
            if include_missing:
                out[r["id"]] = "no_embedding"
        elif r["embedding_model"] is None or r["embedding_content_hash"] is None:
            out[r["id"]] = "unknown"
        elif r["embedding_model"] != model:
            out[r["id"]] = "model"
        elif bytes(r["embedding_content_hash"]) != hashlib.sha256(r["content"].encode()).digest():
            out[r["id"]] = "content"
    return out


async def fingerprints(pool: dv.Pool) -> dict[str, str]:
    """md5 of every row's text form, by id (plain SQL)."""
    return dict(await pool.fetch("SELECT id, md5(d::text) FROM deal_embeddings d"))  # type: ignore[arg-type]


async def setup(pool: dv.Pool, vec: Vec) -> None:
    chunks = [
        dv.DealChunk(
            id=f"c{i:02d}",
            qualification_id="q1" if i % 2 else None,
            pre_qualification_id=None if i % 2 else "pq1",
            agent_name="a",
            chunk_type="t",
            content=f"Inhalt {i} – Straße ✓",  # non-ASCII: the UTF-8 bytes are hashed
            embedding=None if i % 7 == 0 else vec(i),
        )
        for i in range(40)
    ]
    await dv.insert_deal_chunks(pool, chunks[:20], embedding_model="model-a")
    await dv.insert_deal_chunks(pool, chunks[20:30], embedding_model="model-b")
    # another writer: plain SQL, no library-owned values
    await pool.executemany(
        "INSERT INTO deal_embeddings (id, pre_qualification_id, agent_name, chunk_type, chunk_index, content,"
        " embedding) VALUES ($1, 'pq1', 'a', 't', 0, $2, $3)",
        [(c.id, c.content, c.embedding) for c in chunks[30:]],
    )
    # content edited after embedding
    await pool.execute("UPDATE deal_embeddings SET content = content || ' (edited)' WHERE id IN ('c03', 'c24')")


async def test_stale_chunks_are_exactly_the_ones_to_embed(pool: dv.Pool, vec: Vec) -> None:
    await setup(pool, vec)
    rows = await pool.fetch("SELECT * FROM deal_embeddings")
    for model in ("model-a", "model-b", "model-c"):
        for missing in (False, True):
            got = await dv.stale_chunks(pool, model=model, include_missing=missing)
            assert {s.id: s.reason for s in got} == expected_stale(rows, model, include_missing=missing)
            assert [s.id for s in got] == sorted(s.id for s in got)
            for s in got:
                assert s.content_hash == hashlib.sha256(s.content.encode()).digest()
    # one owner; pages by id
    wanted = {
        k: v
        for k, v in expected_stale(rows, "model-a").items()
        if next(r for r in rows if r["id"] == k)["qualification_id"] == "q1"
    }
    pages: list[str] = []
    after = None
    while True:
        page = await dv.stale_chunks(pool, model="model-a", qualification_id="q1", after=after, limit=3)
        pages += [s.id for s in page]
        if len(page) < 3:
            break
        after = page[-1].id
    assert pages == sorted(wanted)
    assert {s.id for s in await dv.stale_chunks(pool, model="model-a", pre_qualification_id="pq1")} == {
        k
        for k in expected_stale(rows, "model-a")
        if next(r for r in rows if r["id"] == k)["pre_qualification_id"] == "pq1"
    }
    with pytest.raises(InvalidArgumentError, match="table: must be one of"):
        await dv.stale_chunks(pool, table="users")
    with pytest.raises(InvalidArgumentError, match="column: must be a plain"):
        await dv.stale_chunks(pool, column='embedding"; DROP TABLE x; --')
    with pytest.raises(InvalidArgumentError, match=r"deal_embeddings\.embedding_x must exist"):
        await dv.stale_chunks(pool, column="embedding_x")


async def test_update_embeddings_in_bulk(pool: dv.Pool, vec: Vec) -> None:
    await setup(pool, vec)
    stale = await dv.stale_chunks(pool, model="model-c", include_missing=True)
    # one row's content changes between the stale query and the update: it must be left alone
    await pool.execute("UPDATE deal_embeddings SET content = 'rewritten meanwhile' WHERE id = 'c05'")
    updates = [
        dv.EmbeddingUpdate(id=s.id, embedding=vec(1000 + k), content_hash=s.content_hash) for k, s in enumerate(stale)
    ]
    updates.append(dv.EmbeddingUpdate(id="no-such-id", embedding=vec(1)))
    before = {r["id"]: r for r in await pool.fetch("SELECT * FROM deal_embeddings")}
    prints = await fingerprints(pool)
    result = await dv.update_embeddings(pool, updates, model="model-c")
    assert result.missing_ids == ["no-such-id"] and result.changed_ids == ["c05"]
    assert result.updated_ids == [s.id for s in stale if s.id != "c05"]
    after = {r["id"]: r for r in await pool.fetch("SELECT * FROM deal_embeddings")}
    for k, s in enumerate(stale):
        row = after[s.id]
        if s.id == "c05":
            assert row["embedding_model"] == before["c05"]["embedding_model"]
            assert (row["embedding"] is None) == (before["c05"]["embedding"] is None)
            continue
        assert row["embedding"].tobytes() == vec(1000 + k).tobytes()
        assert row["embedding_model"] == "model-c"
        assert bytes(row["embedding_content_hash"]) == hashlib.sha256(row["content"].encode()).digest()
        assert row["updated_at"] == before[s.id]["updated_at"]  # as the app's backfill: embedding only
        assert row["embedding_half"] is not None  # the generated half copy follows
    untouched = set(before) - {s.id for s in stale}
    now = await fingerprints(pool)
    assert {i: now[i] for i in untouched} == {i: prints[i] for i in untouched}
    assert [s.id for s in await dv.stale_chunks(pool, model="model-c", include_missing=True)] == ["c05"]
    # without content_hash: whatever the row holds now
    fix = await dv.update_embeddings(pool, [dv.EmbeddingUpdate(id="c05", embedding=vec(5))], model="model-c")
    assert fix.updated_ids == ["c05"] and await dv.stale_chunks(pool, model="model-c", include_missing=True) == []
    # the search sees the new embedding
    k = next(k for k, s in enumerate(stale) if after[s.id]["qualification_id"] == "q1" and s.id != "c05")
    hits = await dv.search_deal_embeddings(pool, vec(1000 + k), qualification_id="q1", threshold=0.99)
    assert [h.chunk_id for h in hits] == [stale[k].id]


async def test_update_embeddings_checks_before_it_writes(pool: dv.Pool, vec: Vec) -> None:
    await setup(pool, vec)
    before = await fingerprints(pool)
    bad_cases: list[tuple[list[Any], type[Exception], str]] = [
        (
            [dv.EmbeddingUpdate(id="c01", embedding=vec(1)), dv.EmbeddingUpdate(id="c01", embedding=vec(2))],
            InvalidArgumentError,
            "appears twice",
        ),
        ([dv.EmbeddingUpdate(id="c02", embedding=np.zeros(3072))], InvalidEmbeddingError, "id=c02 column=embedding"),
        ([dv.EmbeddingUpdate(id="c02", embedding=vec(1), content_hash=b"short")], InvalidArgumentError, "32-byte"),
        ([dv.EmbeddingUpdate(id="c\x00", embedding=vec(1))], InvalidArgumentError, "NUL"),
        ([("c01", vec(1))], InvalidArgumentError, "expected EmbeddingUpdate"),
    ]
    for updates, error, message in bad_cases:
        with pytest.raises(error, match=message):
            await dv.update_embeddings(pool, updates)
    assert await fingerprints(pool) == before
    empty = await dv.update_embeddings(pool, [])
    assert empty.updated_ids == empty.missing_ids == empty.changed_ids == []


async def test_raw_chunks_are_re_embedded_the_same_way(pool: dv.Pool, vec: Vec) -> None:
    ids = await dv.replace_raw_chunks(
        pool, "pq1", [dv.RawChunk(chunk_index=i, content=f"r{i}", token_count=1, embedding=vec(i)) for i in range(4)]
    )
    assert await dv.stale_chunks(pool, table="raw_chunks") == []  # the default model wrote them
    await pool.execute("UPDATE raw_chunks SET content = 'edited' WHERE id = $1", ids[1])
    stale = await dv.stale_chunks(pool, table="raw_chunks", pre_qualification_id="pq1")
    assert [(s.id, s.reason) for s in stale] == [(ids[1], "content")]
    with pytest.raises(InvalidArgumentError, match="raw chunks belong to a pre-qualification"):
        await dv.stale_chunks(pool, table="raw_chunks", qualification_id="q1")
    result = await dv.update_embeddings(
        pool, [dv.EmbeddingUpdate(id=ids[1], embedding=vec(9), content_hash=stale[0].content_hash)], table="raw_chunks"
    )
    assert result.updated_ids == [ids[1]]
    assert (await pool.fetchval("SELECT embedding FROM raw_chunks WHERE id = $1", ids[1])).tobytes() == vec(9).tobytes()
    assert await dv.stale_chunks(pool, table="raw_chunks") == []
