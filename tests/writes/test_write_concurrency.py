"""Concurrent replaces of one section on a real server: exactly one chunk set survives, never a mix,
and a replace never touches another section's rows."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

import dealhunter_vectors as dv

Vec = Callable[[int], np.ndarray[Any, Any]]
SECTION = {"pre_qualification_id": "pq1", "chunk_type": "visualization", "metadata_match": {"sectionId": "budget"}}
ROUNDS = 25
_ids = itertools.count()


def chunk_set(vec: Vec, tag: str, n: int, section: str = "budget") -> list[dv.DealChunk]:
    return [
        dv.DealChunk(
            id=f"{tag}-{next(_ids)}",
            pre_qualification_id="pq1",
            agent_name="prequal_section_agent",
            chunk_type="visualization",
            content=f"{tag} {i}",
            metadata={"sectionId": section},
            embedding=vec(i),
        )
        for i in range(n)
    ]


async def section_ids(pool: dv.Pool, section: str) -> set[str]:
    """The section's rows, read with plain SQL (the library's own selector is not used)."""
    rows = await pool.fetch(
        "SELECT id FROM deal_embeddings WHERE pre_qualification_id = 'pq1' AND chunk_type = 'visualization'"
        " AND (metadata::jsonb)->>'sectionId' = $1",
        section,
    )
    return {r["id"] for r in rows}


async def test_a_second_replace_waits_for_the_first_and_then_replaces_its_rows(pool: dv.Pool, vec: Vec) -> None:
    """Deterministic: replace A holds its transaction open; replace B must wait, then delete A's rows.

    Without the lock B's DELETE (snapshot taken before A committed) would not see A's new rows
    and both sets would survive.
    """
    old = await dv.replace_deal_chunks(pool, chunk_set(vec, "old", 3), **SECTION)
    a, b = chunk_set(vec, "a", 4), chunk_set(vec, "b", 5)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        first = await dv.replace_deal_chunks(conn, a, **SECTION)
        second = asyncio.create_task(dv.replace_deal_chunks(pool, b, **SECTION))
        await asyncio.sleep(0.5)
        assert not second.done()  # waiting for A's lock
        await tx.commit()
        result = await asyncio.wait_for(second, 30)
    assert first.deleted_ids == sorted(old.inserted_ids)
    assert result.deleted_ids == sorted(c.id for c in a)  # A's rows, committed meanwhile
    assert await section_ids(pool, "budget") == {c.id for c in b}


async def test_concurrent_replaces_leave_exactly_one_set(pool: dv.Pool, vec: Vec) -> None:
    other = await dv.replace_deal_chunks(
        pool, chunk_set(vec, "risks", 3, "risks"), **{**SECTION, "metadata_match": {"sectionId": "risks"}}
    )
    current = await section_ids(pool, "budget")
    for round_no in range(ROUNDS):
        sets = [chunk_set(vec, f"r{round_no}s{k}", 3 + 2 * k) for k in range(3)]
        risks = chunk_set(vec, f"r{round_no}risks", 2, "risks")
        results = await asyncio.gather(
            *(dv.replace_deal_chunks(pool, s, **SECTION) for s in sets),
            dv.replace_deal_chunks(pool, risks, **{**SECTION, "metadata_match": {"sectionId": "risks"}}),
        )
        final = await section_ids(pool, "budget")
        assert final in [{c.id for c in s} for s in sets], f"round {round_no}: a mix or both"
        # the replaces ran one after the other: each deleted exactly what the previous one left
        deleted = [tuple(sorted(r.deleted_ids)) for r in results[:3]]
        inserted = [tuple(sorted(r.inserted_ids)) for r in results[:3]]
        assert sorted([*deleted, tuple(sorted(final))]) == sorted([*inserted, tuple(sorted(current))])
        current = final
        # the other section of the same owner holds exactly its own replace's set
        assert await section_ids(pool, "risks") == {c.id for c in risks}
        assert results[3].deleted_ids == sorted(other.inserted_ids)
        other = results[3]
    assert await pool.fetchval("SELECT count(*) FROM deal_embeddings") == len(current) + 2
