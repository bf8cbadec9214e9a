"""replace / delete / upsert / get / page of deal chunks, checked against rows read back with plain SQL.

The expected selection of every selector is computed in Python from the stored rows (``json.loads``
of the metadata text, as the app's ``(metadata::jsonb)->>'sectionId'`` reads it), never by the
library's own statements.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.errors import InvalidArgumentError, NotFoundError

Vec = Callable[[int], np.ndarray[Any, Any]]

OTHER_WRITER = """
INSERT INTO deal_embeddings (id, pre_qualification_id, qualification_id, agent_name, chunk_type, chunk_index,
                             content, metadata, embedding, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, now(), now())
"""
HOSTILE = "'; DROP TABLE deal_embeddings; --"


async def other_writer(pool: dv.Pool, vec: Vec) -> None:
    """Rows as the app wrote them with plain SQL: sections, agents, and metadata that is NULL, not
    JSON, a JSON array, a number in place of a string, a nested object."""
    rows: list[tuple[Any, ...]] = []
    k = 0
    for owner in (("pq1", None), ("pq2", None), (None, "q1"), ("pq-base", "q2")):
        for section in ("budget", "risks", HOSTILE):
            for i in range(3):
                k += 1
                meta = json.dumps({"sectionId": section, "i": i})
                rows.append((f"old-{k}", *owner, "prequal_section_agent", "visualization", f"c{k}", meta, vec(k)))
        for meta in (None, "not json {", "[1, 2]", '{"sectionId": 7}', '{"x": {"sectionId": "budget"}}', '"budget"'):
            k += 1
            rows.append((f"odd-{k}", *owner, "prequal_section_agent", "visualization", f"c{k}", meta, vec(k)))
        for agent in ("dashboard_budget", "dashboard_risks"):
            k += 1
            rows.append((f"dash-{k}", *owner, agent, "dashboard_highlight", f"c{k}", None, None))
    await pool.executemany(OTHER_WRITER, rows)


def section_of(metadata: str | None) -> object:
    """What ``(metadata::jsonb)->>'sectionId'`` means for a string value (None: no string there)."""
    try:
        value = json.loads(metadata) if metadata is not None else None
    except ValueError:
        return None
    return value.get("sectionId") if isinstance(value, dict) and isinstance(value.get("sectionId"), str) else None


async def snapshot(pool: dv.Pool) -> dict[str, tuple[Any, ...]]:
    """Every stored row, by id, as plain SQL reads it (embedding as bytes)."""
    rows = await pool.fetch("SELECT * FROM deal_embeddings")
    return {
        r["id"]: tuple(v.tobytes() if isinstance(v, np.ndarray) else v for k, v in r.items() if k != "embedding_half")
        for r in rows
    }


def chunk(vec: Vec, seed: int, **fields: Any) -> dv.DealChunk:
    values: dict[str, Any] = {
        "agent_name": "prequal_section_agent",
        "chunk_type": "visualization",
        "content": f"new {seed}",
        "embedding": vec(seed),
    }
    values.update(fields)
    return dv.DealChunk(**values)


async def test_replace_a_section_changes_exactly_that_section(pool: dv.Pool, vec: Vec) -> None:
    await other_writer(pool, vec)
    before = await snapshot(pool)
    rows = await pool.fetch("SELECT id, pre_qualification_id, chunk_type, metadata FROM deal_embeddings")
    section = sorted(
        r["id"]
        for r in rows
        if r["pre_qualification_id"] == "pq1"
        and r["chunk_type"] == "visualization"
        and section_of(r["metadata"]) == "budget"
    )
    assert len(section) == 3  # '{"x": {"sectionId": ...}}', a number and a bare string are not the section
    new = [chunk(vec, 100 + i, pre_qualification_id="pq1", metadata={"sectionId": "budget", "n": i}) for i in range(4)]
    result = await dv.replace_deal_chunks(
        pool, new, pre_qualification_id="pq1", chunk_type="visualization", metadata_match={"sectionId": "budget"}
    )
    assert result.deleted_ids == section and result.deleted == 3 and result.inserted == 4
    after = await snapshot(pool)
    assert {k: v for k, v in after.items() if k not in result.inserted_ids} == {
        k: v for k, v in before.items() if k not in section
    }  # every other row byte-identical
    stored = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT id, content, metadata, embedding, embedding_model, embedding_content_hash,"
            " sha256(convert_to(content, 'UTF8')) AS server_hash FROM deal_embeddings WHERE id = ANY($1)",
            result.inserted_ids,
        )
    }
    for c, row_id in zip(new, result.inserted_ids, strict=True):
        row = stored[row_id]
        assert row["content"] == c.content and json.loads(row["metadata"]) == c.metadata
        assert row["embedding"].tobytes() == c.embedding.tobytes()
        assert row["embedding_model"] == "text-embedding-3-large"  # the Settings default
        assert bytes(row["embedding_content_hash"]) == hashlib.sha256(c.content.encode()).digest() == row["server_hash"]
    # run again: one set, the second one (idempotent re-run of an agent)
    again = await dv.replace_deal_chunks(
        pool, new[:2], pre_qualification_id="pq1", chunk_type="visualization", metadata_match={"sectionId": "budget"}
    )
    assert again.deleted_ids == sorted(result.inserted_ids)
    rows = await pool.fetch("SELECT id, chunk_type, metadata FROM deal_embeddings WHERE pre_qualification_id = 'pq1'")
    assert sorted(
        r["id"] for r in rows if r["chunk_type"] == "visualization" and section_of(r["metadata"]) == "budget"
    ) == sorted(again.inserted_ids)


async def test_the_apps_other_selectors(pool: dv.Pool, vec: Vec) -> None:
    await other_writer(pool, vec)
    before = await snapshot(pool)
    # dashboard highlights: pre_qualification_id = X, chunk_type = 'dashboard_highlight', agent_name = 'dashboard_' || S
    dash = await dv.replace_deal_chunks(
        pool,
        [chunk(vec, 1, pre_qualification_id="pq2", agent_name="dashboard_budget", chunk_type="dashboard_highlight")],
        pre_qualification_id="pq2",
        chunk_type="dashboard_highlight",
        agent_name="dashboard_budget",
    )
    expected = sorted(
        k for k, v in before.items() if v[1] == "pq2" and v[3] == "dashboard_budget" and v[4] == "dashboard_highlight"
    )
    assert dash.deleted_ids == expected and len(expected) == 1
    # a qualification's agent output: qualification_id = Q and agent_name = S (any chunk type)
    agent = await dv.replace_deal_chunks(
        pool, [chunk(vec, 2, qualification_id="q1")], qualification_id="q1", agent_name="prequal_section_agent"
    )
    assert agent.deleted_ids == sorted(k for k, v in before.items() if v[2] == "q1" and v[3] == "prequal_section_agent")
    # the hostile section id is a value like any other: its rows only, the table intact
    hostile = await dv.delete_deal_chunks(pool, pre_qualification_id="pq1", metadata_match={"sectionId": HOSTILE})
    assert hostile == 3
    assert await pool.fetchval("SELECT count(*) FROM deal_embeddings WHERE id LIKE 'old-%'") > 0
    # every chunk of an owner (the owner is being deleted), in the caller's transaction
    async with pool.acquire() as conn, conn.transaction():
        n = await dv.delete_deal_chunks(conn, qualification_id="q2")
        m = await dv.delete_deal_chunks(conn, pre_qualification_id="pq-base")
    assert n == sum(1 for v in before.values() if v[2] == "q2")
    assert m == sum(1 for v in before.values() if v[1] == "pq-base" and v[2] != "q2")
    assert await pool.fetchval("SELECT count(*) FROM deal_embeddings WHERE pre_qualification_id = 'pq-base'") == 0


async def test_a_replace_checks_everything_before_it_writes(pool: dv.Pool, vec: Vec) -> None:
    await other_writer(pool, vec)
    before = await snapshot(pool)
    selector = {"pre_qualification_id": "pq1", "chunk_type": "visualization", "metadata_match": {"sectionId": "budget"}}
    outside = [
        chunk(vec, 1, id="x1", pre_qualification_id="pq2", metadata={"sectionId": "budget"}),  # another owner
        chunk(vec, 1, id="x2", qualification_id="q1", metadata={"sectionId": "budget"}),  # no pre_qualification_id
        chunk(vec, 1, id="x3", pre_qualification_id="pq1", chunk_type="text", metadata={"sectionId": "budget"}),
        chunk(vec, 1, id="x4", pre_qualification_id="pq1", metadata={"sectionId": "risks"}),
        chunk(vec, 1, id="x5", pre_qualification_id="pq1"),  # no metadata
    ]
    for bad in outside:
        with pytest.raises(InvalidArgumentError, match=f"deal_embeddings id={bad.id}: is not in the replaced section"):
            await dv.replace_deal_chunks(pool, [bad], **selector)
    with pytest.raises(NotFoundError, match="pre_qualifications id=nope"):
        await dv.replace_deal_chunks(pool, [], pre_qualification_id="nope")
    with pytest.raises(NotFoundError, match="qualifications id=nope"):
        await dv.replace_deal_chunks(pool, [], qualification_id="nope")
    with pytest.raises(
        InvalidArgumentError, match="qualification_id: give a qualification_id or a pre_qualification_id"
    ):
        await dv.replace_deal_chunks(pool, [], chunk_type="visualization")
    # a COPY that fails after the delete (an id stored elsewhere) leaves the old section
    good = chunk(vec, 5, pre_qualification_id="pq1", metadata={"sectionId": "budget"})
    taken = chunk(vec, 6, id="old-18", pre_qualification_id="pq1", metadata={"sectionId": "budget"})  # pq2's
    with pytest.raises(InvalidArgumentError, match="an id is already stored") as info:
        await dv.replace_deal_chunks(pool, [good, taken], **selector)
    assert isinstance(info.value.__cause__, asyncpg.UniqueViolationError)
    assert await snapshot(pool) == before


@pytest.mark.parametrize(
    ("match", "argument"),
    [
        ({"sectionId": "a\x00b"}, "metadata_match['sectionId']"),
        ({"sectionId": "\ud800"}, "metadata_match['sectionId']"),
        ({"sectionId": 7}, "metadata_match['sectionId']"),
        ({"section\x00Id": "a"}, "metadata_match key"),
        ({}, "metadata_match"),
        ("sectionId=a", "metadata_match"),
    ],
)
async def test_bad_selector_values_are_typed_errors(pool: dv.Pool, match: Any, argument: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await dv.delete_deal_chunks(pool, pre_qualification_id="pq1", metadata_match=match)
    assert info.value.argument == argument
    with pytest.raises(InvalidArgumentError, match="agent_name: contains a NUL"):
        await dv.replace_deal_chunks(pool, [], pre_qualification_id="pq1", agent_name="a\x00")


async def test_delete_needs_ids_or_an_owner(pool: dv.Pool, vec: Vec) -> None:
    await other_writer(pool, vec)
    total = await pool.fetchval("SELECT count(*) FROM deal_embeddings")
    with pytest.raises(InvalidArgumentError, match="ids: give ids or an owner"):
        await dv.delete_deal_chunks(pool)
    with pytest.raises(InvalidArgumentError, match="chunk_type: narrows an owner's chunks"):
        await dv.delete_deal_chunks(pool, ids=["old-1"], chunk_type="visualization")
    with pytest.raises(InvalidArgumentError, match="ids: must be a list of ids"):
        await dv.delete_deal_chunks(pool, ids="old-1")
    assert await dv.delete_deal_chunks(pool, ids=[]) == 0
    assert await pool.fetchval("SELECT count(*) FROM deal_embeddings") == total
    assert await dv.delete_deal_chunks(pool, ids=["old-1", "old-2", "missing"]) == 2
    # ids and an owner: both apply (old-3 is pq1's, old-18 is pq2's)
    assert await dv.delete_deal_chunks(pool, ids=["old-3", "old-18"], pre_qualification_id="pq1") == 1
    assert await pool.fetchval(
        "SELECT array_agg(id ORDER BY id) FROM deal_embeddings WHERE id IN ('old-1', 'old-2', 'old-3', 'old-18')"
    ) == ["old-18"]
    assert await dv.delete_deal_chunks(pool, qualification_id="no-such-q") == 0


async def test_get_returns_what_is_stored(pool: dv.Pool, vec: Vec) -> None:
    await other_writer(pool, vec)
    got = await dv.get_deal_chunks(pool, ["odd-11", "old-1", "missing", "old-1", "dash-17"])
    assert [c.id for c in got] == ["odd-11", "old-1", "dash-17"]
    plain = {
        r["id"]: r for r in await pool.fetch("SELECT * FROM deal_embeddings WHERE id = ANY($1)", [c.id for c in got])
    }
    for c in got:
        row = plain[c.id]
        assert (c.pre_qualification_id, c.qualification_id, c.agent_name, c.chunk_type, c.content) == (
            row["pre_qualification_id"],
            row["qualification_id"],
            row["agent_name"],
            row["chunk_type"],
            row["content"],
        )
        assert c.has_embedding == (row["embedding"] is not None)
        assert (c.embedding is None) == (row["embedding"] is None)
        if c.embedding is not None:
            assert c.embedding.tobytes() == row["embedding"].tobytes()
        assert c.embedding_model is None and c.embedding_content_hash is None  # written by another writer
    assert got[0].metadata is None and got[0].metadata_raw == "not json {" and "not valid JSON" in got[0].metadata_error
    assert got[1].metadata == {"sectionId": "budget", "i": 0}
    light = await dv.get_deal_chunks(pool, ["old-1"], include_embeddings=False)
    assert light[0].embedding is None and light[0].has_embedding
    assert light[0].model_dump(mode="json")["embedding"] is None
    assert await dv.get_deal_chunks(pool, []) == []


async def test_upsert_inserts_updates_and_is_idempotent(pool: dv.Pool, vec: Vec) -> None:
    await other_writer(pool, vec)
    created = await pool.fetchval("SELECT created_at FROM deal_embeddings WHERE id = 'old-1'")
    chunks = [
        chunk(vec, 7, id="old-1", pre_qualification_id="pq1", content="rewritten", metadata={"sectionId": "budget"}),
        chunk(vec, 8, id="fresh", qualification_id="q1", embedding=None),
    ]
    first = await dv.upsert_deal_chunks(pool, chunks, embedding_model="model-b")
    assert (first.ids, first.inserted_ids, first.updated_ids) == (["old-1", "fresh"], ["fresh"], ["old-1"])
    rows = {r["id"]: r for r in await pool.fetch("SELECT * FROM deal_embeddings WHERE id IN ('old-1', 'fresh')")}
    assert rows["old-1"]["content"] == "rewritten" and rows["old-1"]["embedding"].tobytes() == vec(7).tobytes()
    assert rows["old-1"]["created_at"] == created and rows["old-1"]["updated_at"] > created
    assert rows["old-1"]["embedding_model"] == "model-b"
    assert bytes(rows["old-1"]["embedding_content_hash"]) == hashlib.sha256(b"rewritten").digest()
    assert rows["fresh"]["embedding"] is None and rows["fresh"]["embedding_model"] is None
    second = await dv.upsert_deal_chunks(pool, chunks, embedding_model="model-b")
    assert second.updated_ids == ["old-1", "fresh"] and second.inserted == 0
    again = {r["id"]: r for r in await pool.fetch("SELECT * FROM deal_embeddings WHERE id IN ('old-1', 'fresh')")}
    for row_id, row in rows.items():
        same = {k: v for k, v in row.items() if k not in ("updated_at", "embedding", "embedding_half")}
        assert same == {
            k: v for k, v in again[row_id].items() if k not in ("updated_at", "embedding", "embedding_half")
        }
    # an upsert never moves a chunk to another owner: nothing written
    before = await snapshot(pool)
    moved = [
        chunk(vec, 9, id="new-one", pre_qualification_id="pq1"),
        chunk(vec, 9, id="old-2", pre_qualification_id="pq2"),  # pq1's
    ]
    with pytest.raises(InvalidArgumentError, match="deal_embeddings id=old-2: is stored with other owners"):
        await dv.upsert_deal_chunks(pool, moved)
    assert await snapshot(pool) == before
    with pytest.raises(NotFoundError, match="an owner does not exist"):
        await dv.upsert_deal_chunks(pool, [chunk(vec, 9, id="orphan", qualification_id="no-such-q")])
    assert await dv.upsert_deal_chunks(pool, []) == dv.UpsertResult(ids=[], inserted_ids=[], updated_ids=[])


async def test_pages_are_stable_under_concurrent_inserts_and_deletes(pool: dv.Pool, vec: Vec) -> None:
    ids = [f"p{i:03d}" for i in range(0, 300, 2)]  # even numbers: room for inserts on both sides of a cursor
    await dv.insert_deal_chunks(pool, [chunk(vec, 1, id=i, pre_qualification_id="pq1", embedding=None) for i in ids])
    await dv.insert_deal_chunks(pool, [chunk(vec, 1, id="zz-other", pre_qualification_id="pq2", embedding=None)])
    seen: list[str] = []
    after = None
    inserted, deleted = [], []
    for page_no in range(100):
        page = await dv.page_deal_chunks(pool, pre_qualification_id="pq1", after=after, limit=7)
        seen += [c.id for c in page.chunks]
        if page.next_after is None:
            break
        after = page.next_after
        # between pages: a row before the cursor, one after it, and a delete of a row not seen yet
        new = [f"p{page_no * 2 + 1:03d}", f"p{page_no * 2 + 201:03d}"]
        await dv.insert_deal_chunks(
            pool, [chunk(vec, 1, id=i, pre_qualification_id="pq1", embedding=None) for i in new]
        )
        inserted += new
        victim = f"p{298 - 2 * page_no:03d}"
        if victim > after and victim in ids:
            await dv.delete_deal_chunks(pool, ids=[victim])
            deleted.append(victim)
    throughout = set(ids) - set(deleted)
    assert len(seen) == len(set(seen))  # nothing twice
    assert throughout <= set(seen)  # nothing that existed throughout was skipped
    assert set(seen) <= set(ids) | set(inserted) and "zz-other" not in seen
    assert seen == sorted(seen)
    page = await dv.page_deal_chunks(pool, pre_qualification_id="pq1", limit=5, include_embeddings=True)
    assert [c.id for c in page.chunks] == await pool.fetchval(
        "SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM deal_embeddings WHERE pre_qualification_id = 'pq1'"
        " ORDER BY id LIMIT 5) t"
    )
    everything = [c.id async for c in dv.iter_deal_chunks(pool, pre_qualification_id="pq1", page_size=13)]
    assert everything == await pool.fetchval(
        "SELECT array_agg(id ORDER BY id) FROM deal_embeddings WHERE pre_qualification_id = 'pq1'"
    )
    with pytest.raises(InvalidArgumentError, match="limit"):
        await dv.page_deal_chunks(pool, pre_qualification_id="pq1", limit=0)


async def test_writes_record_the_model_of_the_call_or_the_setting(
    pool: dv.Pool, vec: Vec, monkeypatch: pytest.MonkeyPatch
) -> None:
    await dv.insert_deal_chunks(pool, [chunk(vec, 1, id="a", qualification_id="q1")], embedding_model="m-call")
    monkeypatch.setenv("DEALHUNTER_EMBEDDING_MODEL", "m-env")
    await dv.insert_deal_chunks(pool, [chunk(vec, 1, id="b", qualification_id="q1")])
    await dv.replace_deal_chunks(pool, [chunk(vec, 1, id="c", pre_qualification_id="pq2")], pre_qualification_id="pq2")
    rows = dict(await pool.fetch("SELECT id, embedding_model FROM deal_embeddings"))  # type: ignore[arg-type]
    assert rows == {"a": "m-call", "b": "m-env", "c": "m-env"}
    with pytest.raises(InvalidArgumentError, match="embedding_model: must not be empty"):
        await dv.insert_deal_chunks(pool, [chunk(vec, 1, qualification_id="q1")], embedding_model=" ")
