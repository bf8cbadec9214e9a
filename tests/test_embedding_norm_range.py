"""Issue 10, wrong answers: one accepted norm range for every embedding the library touches.

pgvector computes ``<=>`` with float32 sums of squares: a vector with components around
1e-21..1e-30 has a float32 norm that underflows to 0, so it used to score 1.0 against
everything. Every path (query, writes, set_description_embedding, loader) now rejects a
norm outside [1e-12, 1e15] with ``InvalidEmbeddingError`` (rule ``norm_range``, the norm),
and every accepted vector's similarity equals numpy's float64 cosine within 1e-5.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dealhunter_vectors as dv
from dealhunter_vectors.embeddings import MAX_NORM, MIN_NORM, embedding_norm
from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database

DIMS = 3072
TOL = 1e-5


@pytest.fixture(scope="module")
def pool(dhv_module_pool: dv.Pool) -> dv.Pool:
    return dhv_module_pool


async def _parents(db: Any, tag: str) -> tuple[str, str]:
    pq, q = f"pq-{tag}", f"q-{tag}"
    await db.execute(
        "INSERT INTO business_units (id, name, leader_name, leader_email, keywords)"
        " VALUES ('bu', 'BU', 'L', 'l@example.com', '[]') ON CONFLICT DO NOTHING"
    )
    await db.execute(
        "INSERT INTO users (id, email, password, name) VALUES ('u', 'u@e.com', 'x', 'U') ON CONFLICT DO NOTHING"
    )
    await db.execute(
        "INSERT INTO pre_qualifications (id, user_id, source, stage, input_type, raw_input)"
        " VALUES ($1, 'u', 'reactive', 'rfp', 'freetext', 't')",
        pq,
    )
    await db.execute(
        "INSERT INTO qualifications (id, pre_qualification_id, customer_name, business_unit_id)"
        " VALUES ($1, $2, 'c', 'bu')",
        q,
        pq,
    )
    return pq, q


def _accepted(vec: np.ndarray[Any, Any]) -> bool:
    try:
        dv.as_embedding(vec, dimensions=DIMS)
    except dv.InvalidEmbeddingError as exc:
        assert exc.rule in {"norm_range", "zero_norm", "half_precision_range"}, exc
        return False
    return True


def _cos64(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    # the exact cosine of the float32 values that are stored (float64 arithmetic, no underflow
    # at these scales once both vectors were accepted)
    a64, b64 = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))


@pytest.mark.parametrize("scale", [1e-21, 1e-25, 1e-30])
def test_tiny_vectors_are_rejected_with_rule_and_norm(scale: float) -> None:
    vec = np.random.default_rng(0).standard_normal(DIMS) * scale
    with pytest.raises(dv.InvalidEmbeddingError) as info:
        dv.as_embedding(vec, dimensions=DIMS, where="query_embedding")
    assert info.value.rule == "norm_range"
    assert info.value.norm is not None and 0 < info.value.norm < MIN_NORM
    assert "norm" in str(info.value) and str(info.value).startswith("query_embedding: ")


def test_range_edges() -> None:
    unit = np.zeros(DIMS)
    unit[0] = 1.0
    assert _accepted(unit * MIN_NORM * 1.001)
    assert not _accepted(unit * MIN_NORM * 0.999)
    # the upper end cannot be reached inside the half-precision range (|x| <= 65504)
    assert embedding_norm(np.full(DIMS, 65504.0, dtype=np.float32)) < MAX_NORM


async def test_every_write_path_rejects_a_tiny_vector(pool: dv.Pool) -> None:
    pq, q = await _parents(pool, uuid.uuid4().hex[:10])
    tiny = np.random.default_rng(1).standard_normal(DIMS) * 1e-25
    chunk = dv.DealChunk(
        id=f"d-{q}", qualification_id=q, agent_name="a", chunk_type="text", chunk_index=0, content="c", embedding=tiny
    )
    for call in (
        lambda: dv.insert_deal_chunks(pool, [chunk]),
        lambda: dv.set_description_embedding(pool, pq, tiny),
        lambda: dv.search_deal_embeddings(pool, tiny, qualification_id=q, threshold=-1.0),
        lambda: dv.search_raw_chunks(pool, tiny, pre_qualification_id=pq, threshold=-1.0),
        lambda: dv.find_similar_pre_qualifications(pool, tiny, exact=True),
    ):
        with pytest.raises(dv.InvalidEmbeddingError) as info:
            await call()
        assert info.value.rule == "norm_range"
    assert await pool.fetchval("SELECT count(*) FROM deal_embeddings WHERE qualification_id = $1", q) == 0


scales = st.floats(-40.0, 20.0).map(lambda e: 10.0**e)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), q_scale=scales, row_scales=st.lists(scales, min_size=1, max_size=4))
async def test_accepted_vectors_score_exactly(
    pool: dv.Pool, seed: int, q_scale: float, row_scales: list[float]
) -> None:
    """Random vectors scaled across 1e-40..1e20: rejected, or the similarity equals numpy's within 1e-5."""
    rng = np.random.default_rng(seed)
    _pq, q = await _parents(pool, uuid.uuid4().hex[:10])
    query = rng.standard_normal(DIMS) * q_scale
    rows = []
    for i, s in enumerate(row_scales):
        # a mix of directions: random, close to the query, opposite to it
        direction = [rng.standard_normal(DIMS), query / q_scale + 0.1 * rng.standard_normal(DIMS), -query / q_scale]
        vec = direction[i % 3] * s
        if _accepted(vec):
            rows.append((f"r{i}-{q}", vec))
        else:
            with pytest.raises(dv.InvalidEmbeddingError):
                await dv.insert_deal_chunks(
                    pool,
                    [
                        dv.DealChunk(
                            id=f"r{i}-{q}",
                            qualification_id=q,
                            agent_name="a",
                            chunk_type="text",
                            chunk_index=i,
                            content="c",
                            embedding=vec,
                        )
                    ],
                )
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(
                id=row_id,
                qualification_id=q,
                agent_name="a",
                chunk_type="text",
                chunk_index=i,
                content="c",
                embedding=vec,
            )
            for i, (row_id, vec) in enumerate(rows)
        ],
    )
    if not _accepted(query):
        with pytest.raises(dv.InvalidEmbeddingError):
            await dv.search_deal_embeddings(pool, query, qualification_id=q, threshold=-1.0, limit=10)
        return
    hits = await dv.search_deal_embeddings(pool, query, qualification_id=q, threshold=-1.0, inclusive=True, limit=10)
    expected = {row_id: _cos64(query, vec) for row_id, vec in rows}
    got = {h.chunk_id: h.similarity for h in hits}
    assert set(got) <= set(expected)
    for row_id, sim in got.items():
        assert sim is not None and abs(sim - expected[row_id]) <= TOL, (row_id, sim, expected[row_id])
    # every accepted row with an exact cosine > -1 + TOL is found (threshold -1, inclusive)
    assert {r for r, c in expected.items() if c > -1 + TOL} <= set(got)


async def test_loader_rejects_out_of_range_norms(
    dhv_database_factory: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """A stored vector with norm ~1e-24 is a rejected row (reject file, reason embedding_norm_range)."""
    legacy = build_legacy_database(tmp_path / "legacy.db", LegacyDatasetSpec.tiny(dims=DIMS, seed=4))
    conn = sqlite3.connect(legacy.path)
    try:
        row_id = conn.execute("SELECT id FROM deal_embeddings WHERE embedding IS NOT NULL ORDER BY id").fetchone()[0]
        tiny = (np.random.default_rng(2).standard_normal(DIMS) * 1e-26).tolist()
        conn.execute("UPDATE deal_embeddings SET embedding = ? WHERE id = ?", (json.dumps(tiny), row_id))
        conn.commit()
    finally:
        conn.close()
    url = await dhv_database_factory()
    rejects = tmp_path / "rejects.jsonl"
    report = await dv.migrate_sqlite(legacy.path, url, on_error="skip", reject_file=rejects, workers=0)
    assert [(p.table, p.row_id, p.column, p.reason) for p in report.problems] == [
        ("deal_embeddings", row_id, "embedding", "embedding_norm_range")
    ]
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(line["table"], line["id"]) for line in lines] == [("deal_embeddings", row_id)]
    assert lines[0]["problems"][0]["reason"] == "embedding_norm_range"
    with pytest.raises(dv.MigrationStoppedError) as info:
        await dv.migrate_sqlite(legacy.path, await dhv_database_factory(), on_error="stop", workers=0)
    assert info.value.problems[0].reason == "embedding_norm_range"  # type: ignore[attr-defined]
