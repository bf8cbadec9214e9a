"""Migration 008's norm checks on the distributed layout (a real 1 + 2 Citus cluster).

A new distributed database has the checks validated on every distributed table; rows stored
before the checks (planted as in tests/support.py: checks dropped and added back NOT VALID,
which Citus propagates to the shards) are skipped by the Citus forms of the searches, listed
by ``validate_norm_constraints`` and ``doctor``, and once fixed the checks validate.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from support import plant_rows_before_norm_checks

import dealhunter_vectors as dv
from dealhunter_vectors.db.codecs import Vector
from dealhunter_vectors.db.doctor import run_doctor
from dealhunter_vectors.db.norms import NORM_CONSTRAINTS, validate_norm_constraints
from dealhunter_vectors.db.pool import Pool, close_pool, create_pool
from dealhunter_vectors.testing import CitusDatabaseFactory, seed_owners

pytestmark = pytest.mark.citus
DIMS = 3072
RNG = np.random.default_rng(8)
QUERY = (RNG.standard_normal(DIMS) + 0.05).astype(np.float32)
TINY = np.full(DIMS, 1e-30, np.float32)


def _cos(v: Any) -> float:
    a, b = np.asarray(v, np.float64), QUERY.astype(np.float64)
    return float(a @ b / math.sqrt(float(a @ a) * float(b @ b)))


@pytest.fixture(scope="module")
async def cpool(dhv_citus_database_factory: CitusDatabaseFactory) -> AsyncIterator[Pool]:
    pool = await create_pool(await dhv_citus_database_factory(), min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await close_pool(pool)


async def _validated(pool: Pool) -> dict[str, bool]:
    rows = await pool.fetch(
        "SELECT conname, convalidated FROM pg_constraint WHERE conname = ANY($1::text[])",
        [c.name for c in NORM_CONSTRAINTS],
    )
    return {r["conname"]: r["convalidated"] for r in rows}


async def test_out_of_range_rows_on_the_distributed_layout(cpool: Pool) -> None:
    assert await _validated(cpool) == {c.name: True for c in NORM_CONSTRAINTS}  # a new database
    await seed_owners(cpool, pre_qualification_ids=["c-pq", "c-pq2", "c-pq-bad"], qualification_ids=["c-q"])
    good = {f"c-deal-{i}": (QUERY + RNG.standard_normal(DIMS).astype(np.float32) * s) for i, s in enumerate((1, 2, 4))}
    await dv.insert_deal_chunks(cpool, [
        dv.DealChunk(id=i, qualification_id="c-q", agent_name="a", chunk_type="t", chunk_index=n, content="x",
                     embedding=v)
        for n, (i, v) in enumerate(good.items())
    ])  # fmt: skip
    raw = QUERY + RNG.standard_normal(DIMS).astype(np.float32)
    await dv.replace_raw_chunks(cpool, "c-pq", [dv.RawChunk(id="c-raw", chunk_index=0, content="r", token_count=1,
                                                              embedding=raw)])  # fmt: skip
    await dv.set_description_embedding(cpool, "c-pq2", good["c-deal-0"])
    await plant_rows_before_norm_checks(
        cpool,
        ("INSERT INTO deal_embeddings (id, qualification_id, tenant_id, agent_name, chunk_type, content, embedding)"
         " VALUES ('c-deal-bad', 'c-q', 'pq-base', 'a', 't', 'x', $1)", Vector(TINY)),
        ("INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
         " VALUES ('c-raw-bad', 'c-pq', 1, 'r', 1, $1)", Vector(TINY)),
        ("UPDATE pre_qualifications SET description_embedding = $1, extracted_requirements = '[]'"
         " WHERE id = 'c-pq-bad'", Vector(TINY)),
    )  # fmt: skip
    assert set((await _validated(cpool)).values()) == {False}

    deal = await dv.search_deal_embeddings(cpool, QUERY, qualification_id="c-q", threshold=-1.0, limit=10)
    want = sorted(good, key=lambda i: (-_cos(good[i]), i))
    assert [h.chunk_id for h in deal] == want
    assert [h.similarity for h in deal] == pytest.approx([_cos(good[i]) for i in want], abs=1e-6)
    raws = await dv.search_raw_chunks(cpool, QUERY, pre_qualification_id="c-pq", threshold=-0.99)
    assert [h.chunk_id for h in raws] == ["c-raw"]
    for kwargs in ({"limit": None}, {"limit": 5}):
        found = await dv.find_similar_pre_qualifications(cpool, QUERY, min_similarity_percent=0, **kwargs)
        assert [m.pre_qualification_id for m in found] == ["c-pq2"]

    async with cpool.acquire() as conn:
        blocked = await validate_norm_constraints(conn)
        assert {(f.table, f.ids) for f in blocked} == {
            ("deal_embeddings", ("c-deal-bad",)),
            ("raw_chunks", ("c-raw-bad",)),
            ("pre_qualifications", ("c-pq-bad",)),
        }
        report = await run_doctor(conn)
        listed = " ".join(c.detail for c in report.checks if c.name.startswith("embedding norms"))
        assert all(i in listed for i in ("c-deal-bad", "c-raw-bad", "c-pq-bad"))
        await conn.execute("DELETE FROM deal_embeddings WHERE id = 'c-deal-bad'")
        await conn.execute("DELETE FROM raw_chunks WHERE id = 'c-raw-bad'")
        await conn.execute("UPDATE pre_qualifications SET description_embedding = NULL WHERE id = 'c-pq-bad'")
        assert await validate_norm_constraints(conn) == []
    assert await _validated(cpool) == {c.name: True for c in NORM_CONSTRAINTS}
    with pytest.raises(dv.InvalidEmbeddingError):  # the library refuses before the cluster sees it
        await dv.set_description_embedding(cpool, "c-pq-bad", TINY)
