"""The inline half-precision copy (migration 004) and the two-step exact owner-scoped search.

Expected results come from numpy float64 cosines of the stored float32 vectors and from an
exact single-step scan written here in plain SQL (``embedding <=> q`` over every row of
the owner: the statement the library ran before migration 004), never from the code under
test. The data is adversarial: many rows sit within the half-precision error bound
(~1.7e-3) of the threshold and of the k-th neighbour, with float32 cosines 1e-4..1e-6 apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from support import plant_rows_before_norm_checks

import dealhunter_vectors as dv
from dealhunter_vectors.db.codecs import Vector
from dealhunter_vectors.search.bound import HALF_DISTANCE_ERROR_BOUND
from dealhunter_vectors.search.owner import DEAL_SEARCH_BY_QUALIFICATION_SQL, RAW_SEARCH_SQL, query_half
from dealhunter_vectors.testing import seed_owners

DIMS = 3072
Q, Q_FLAGS, PQ = "q-adv", "q-flags", "pq-adv"
T = 0.3  # the lead-retrieval threshold
TOL = 1e-5  # similarity tolerance against float64 (pgvector sums in float32)
TIE = 2e-6  # float64 and pgvector's float32 sums may order rows closer than this differently

# The exact single-step scan (reference): every row of the owner whose norm lies in the
# accepted range [1e-12, 1e15] (outside it pgvector's float32 cosine is meaningless and the
# searches skip the row, docs/reliability.md), exact distance, threshold on the distance,
# best first, ties by id.
EXACT_DEAL_SQL = """
SELECT id, embedding <=> $1::vector AS distance FROM deal_embeddings
WHERE qualification_id = $2 AND vector_norm(embedding) BETWEEN 1e-12 AND 1e15
  AND (embedding <=> $1::vector < $3 OR ($4 AND embedding <=> $1::vector = $3))
ORDER BY 2, 1 LIMIT $5
"""
EXACT_TOP_K_SQL = """
SELECT id, embedding <=> $1::vector AS distance FROM deal_embeddings
WHERE qualification_id = $2 AND vector_norm(embedding) BETWEEN 1e-12 AND 1e15
  AND embedding <=> $1::vector <> 'NaN'::float8
ORDER BY 2, 1 LIMIT $3
"""
EXACT_RAW_SQL = """
SELECT id, embedding <=> $1::vector AS distance FROM raw_chunks
WHERE pre_qualification_id = $2 AND vector_norm(embedding) BETWEEN 1e-12 AND 1e15
  AND (embedding <=> $1::vector < $3 OR ($4 AND embedding <=> $1::vector = $3))
ORDER BY 2, 1 LIMIT $5
"""


def with_cosine(q: np.ndarray[Any, Any], cos: float, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """A float32 vector whose cosine with unit *q* is *cos* (up to float32 rounding)."""
    r = rng.standard_normal(DIMS)
    r -= (r @ q) * q
    r /= np.linalg.norm(r)
    return (cos * q + math.sqrt(1 - cos * cos) * r).astype(np.float32)


def cos64(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(a64 @ b64 / math.sqrt(float(a64 @ a64) * float(b64 @ b64)))


class Data:
    query: np.ndarray[Any, Any]
    vectors: dict[str, np.ndarray[Any, Any]]  # id -> stored float32 vector (owner Q and PQ raw chunks)
    raw: dict[str, np.ndarray[Any, Any]]
    flags: dict[str, np.ndarray[Any, Any]]


def near(center: float, rng: np.random.Generator, n: int) -> list[float]:
    """*n* cosines around *center*, offsets 1e-4..1e-6 of both signs (all inside the error bound)."""
    scales = rng.choice([1e-4, 3e-5, 1e-5, 3e-6, 1e-6], size=n)
    return [center + float(s * rng.uniform(-1, 1)) for s in scales]


@pytest_asyncio.fixture(scope="module")
async def data(dhv_module_pool: dv.Pool) -> AsyncIterator[Data]:
    pool = dhv_module_pool
    await seed_owners(pool, pre_qualification_ids=[PQ], qualification_ids=[Q, Q_FLAGS], extracted_requirements=None)
    rng = np.random.default_rng(20261123)
    q = rng.standard_normal(DIMS)
    q /= np.linalg.norm(q)
    d = Data()
    d.query = q.astype(np.float32)
    cosines = (
        near(T, rng, 60)  # around the threshold
        + near(0.8, rng, 30)  # around the 5th/10th best: every one of them is a near-tie
        + [T + 3e-4, T - 3e-4, T + HALF_DISTANCE_ERROR_BOUND * 0.9, T - HALF_DISTANCE_ERROR_BOUND * 0.9]
        + list(rng.uniform(-0.1, 0.25, 900))  # the bulk, far from both cuts
    )
    d.vectors = {f"c{i:04d}": with_cosine(q, c, rng) for i, c in enumerate(cosines)}
    # Scale does not change the cosine; the half copy normalises first. A small row (norm 1e-6:
    # half copy of its direction) sits among the best rows; a tiny one (norm ~1e-14, outside
    # the accepted range: no half copy) written before migration 008's checks is skipped.
    tiny = (with_cosine(q, 0.8 + 2e-6, rng).astype(np.float64) * 1e-14).astype(np.float32)
    d.vectors["small-scale"] = (with_cosine(q, 0.8 - 2e-6, rng).astype(np.float64) * 1e-6).astype(np.float32)
    content = "lorem ipsum dolor sit amet " * 15  # a few hundred bytes, like real chunks
    await pool.executemany(
        "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content, metadata, embedding)"
        " VALUES ($1, $2, 'agent', 'text', $3, '{\"k\": 1}', $4)",
        [(i, Q, content, v) for i, v in d.vectors.items()],
    )
    await plant_rows_before_norm_checks(  # a zero and a tiny vector planted with raw SQL: must never appear
        pool,
        (
            "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content, embedding)"
            " VALUES ('zero', $1, 'agent', 'text', 'z', $2)",
            Q,
            np.zeros(DIMS, np.float32),
        ),
        (
            "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content, embedding)"
            " VALUES ('tiny-scale', $1, 'agent', 'text', 'z', $2)",
            Q,
            tiny,
        ),
    )
    d.raw = {
        f"r{i:03d}": with_cosine(q, c, rng)
        for i, c in enumerate(near(T, rng, 30) + near(0.7, rng, 20) + list(rng.uniform(-0.1, 0.2, 150)))
    }
    await pool.executemany(
        "INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
        " VALUES ($1, $2, $3, $4, 60, $5)",
        [(i, PQ, n, content, v) for n, (i, v) in enumerate(d.raw.items())],
    )
    # Fallback flags decided by rows inside the error band of the threshold only.
    d.flags = {
        "special-above": with_cosine(q, T + 4e-4, rng),
        "other-below": with_cosine(q, T - 4e-4, rng),
        **{f"f{i:02d}": with_cosine(q, c, rng) for i, c in enumerate(rng.uniform(-0.1, 0.2, 40))},
    }
    await pool.executemany(
        "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content, embedding)"
        " VALUES ($1, $2, $3, 'text', 'c', $4)",
        [(i, Q_FLAGS, i.split("-")[0] if "-" in i else "bulk", v) for i, v in d.flags.items()],
    )
    await pool.execute("ANALYZE deal_embeddings; ANALYZE raw_chunks")
    yield d


def reference(
    vectors: dict[str, np.ndarray[Any, Any]],
    q: np.ndarray[Any, Any],
    *,
    threshold: float | None,
    inclusive: bool = False,
    limit: int,
) -> list[tuple[str, float]]:
    sims = {i: cos64(v, q) for i, v in vectors.items()}
    keep = [(i, s) for i, s in sims.items() if threshold is None or s > threshold or (inclusive and s >= threshold)]
    return sorted(keep, key=lambda item: (-item[1], item[0]))[:limit]


def assert_matches_float64(
    got: Sequence[tuple[str, float]],
    want: Sequence[tuple[str, float]],
    all_sims: dict[str, float],
    threshold: float | None,
) -> None:
    """Same ids, order and similarities (1e-5) as float64, except where float32 sums may decide otherwise.

    Rows closer than TIE to each other may swap; at the cut (threshold or limit) only rows
    whose float64 similarity is within TIE of the cut may trade places.
    """
    got_ids, want_ids = [i for i, _ in got], [i for i, _ in want]
    for i, s in got:
        assert abs(s - all_sims[i]) <= TOL, (i, s, all_sims[i])
    for a, b in zip(got_ids, want_ids, strict=False):
        assert a == b or abs(all_sims[a] - all_sims[b]) <= TIE, (got_ids, want_ids)
    for i in set(got_ids) ^ set(want_ids):
        cut = min(s for _, s in [*got, *want]) if len(got) == len(want) else threshold
        assert cut is not None and (
            abs(all_sims[i] - cut) <= TIE or (threshold is not None and abs(all_sims[i] - threshold) <= TIE)
        ), (i, all_sims[i], cut)


def as_pairs(rows: Sequence[Any]) -> list[tuple[str, float]]:
    return [(r["id"], 1.0 - r["distance"]) for r in rows]


@pytest.mark.parametrize(
    ("threshold", "limit", "inclusive"),
    [
        (T, 5, False),
        (T, 10, False),
        (T, 60, False),
        (T, 200, False),
        (T, 5, True),
        (0.8, 3, False),
        (0.8, 20, True),
        (0.79999, 50, False),
        (-1.0, 7, False),
    ],
)
async def test_deal_search_equals_exact_scan_and_float64_near_both_cuts(
    data: Data, dhv_module_pool: dv.Pool, threshold: float, limit: int, inclusive: bool
) -> None:
    pool = dhv_module_pool
    if inclusive:  # search_similar is the inclusive call site
        similar = await dv.search_similar(
            pool, data.query, qualification_id=Q, threshold=threshold, limit=min(limit, 50)
        )
        hits = [(h.id, h.similarity) for h in similar]
    else:
        found = await dv.search_deal_embeddings(pool, data.query, qualification_id=Q, threshold=threshold, limit=limit)
        hits = [(h.chunk_id, h.similarity or 0.0) for h in found]
    exact = as_pairs(
        await pool.fetch(
            EXACT_DEAL_SQL, data.query, Q, 1.0 - threshold, inclusive, min(limit, 50) if inclusive else limit
        )
    )
    assert hits == exact  # bit-identical: same rows, order and exact distances as the single-step scan
    all_sims = {i: cos64(v, data.query) for i, v in data.vectors.items()}
    want = reference(
        data.vectors, data.query, threshold=threshold, inclusive=inclusive, limit=min(limit, 50) if inclusive else limit
    )
    assert_matches_float64(hits, want, all_sims, threshold)
    assert not {"zero", "tiny-scale"} & {i for i, _ in hits}


async def test_scaled_rows_rank_by_direction(data: Data, dhv_module_pool: dv.Pool) -> None:
    hits = await dv.search_deal_embeddings(dhv_module_pool, data.query, qualification_id=Q, threshold=0.79, limit=40)
    ids = [h.chunk_id for h in hits]
    assert "small-scale" in ids and "tiny-scale" not in ids  # out of range: skipped (issue 19)
    half_null = await dhv_module_pool.fetch(
        "SELECT id FROM deal_embeddings WHERE qualification_id = $1 AND embedding_half IS NULL ORDER BY id", Q
    )
    assert [r["id"] for r in half_null] == ["tiny-scale", "zero"]  # norm outside [1e-12, 1e15]


async def test_top_k_fallback_among_near_ties(data: Data, dhv_module_pool: dv.Pool) -> None:
    pool = dhv_module_pool
    for k in (1, 5, 12):
        found = await dv.search_deal_embeddings(
            pool, data.query, qualification_id=Q, threshold=0.95, limit=k, fallback_to_top_k=True
        )
        exact = as_pairs(await pool.fetch(EXACT_TOP_K_SQL, data.query, Q, k))
        assert [(h.chunk_id, h.similarity) for h in found] == exact
        all_sims = {i: cos64(v, data.query) for i, v in data.vectors.items()}
        assert_matches_float64(exact, reference(data.vectors, data.query, threshold=None, limit=k), all_sims, None)


async def test_fallback_flags_decided_inside_the_error_band(data: Data, dhv_module_pool: dv.Pool) -> None:
    pool, q = dhv_module_pool, data.query
    assert cos64(data.flags["special-above"], q) > T > cos64(data.flags["other-below"], q)
    # the matching row is above the threshold by 4e-4 (< the bound): strict filter keeps it
    hits = await dv.search_deal_embeddings(pool, q, qualification_id=Q_FLAGS, threshold=T, agent_names="special")
    assert [h.chunk_id for h in hits] == ["special-above"]
    # the matching row is below by 4e-4: strict filter -> nothing; with fallback -> the unfiltered rows
    assert await dv.search_deal_embeddings(pool, q, qualification_id=Q_FLAGS, threshold=T, agent_names="other") == []
    hits = await dv.search_deal_embeddings(
        pool, q, qualification_id=Q_FLAGS, threshold=T, agent_names="other", filter_fallback=True
    )
    assert [h.chunk_id for h in hits] == ["special-above"]
    # nothing above for "other" and top-k fallback: its best matching rows, exactly ranked
    hits = await dv.search_deal_embeddings(
        pool, q, qualification_id=Q_FLAGS, threshold=T + 1e-3, agent_names="other", fallback_to_top_k=True, limit=3
    )
    assert [h.chunk_id for h in hits] == ["other-below"]
    hits = await dv.search_deal_embeddings(
        pool,
        q,
        qualification_id=Q_FLAGS,
        threshold=T + 1e-3,
        agent_names="nobody",
        fallback_to_top_k=True,
        filter_fallback=True,
        limit=3,
    )
    want = reference(data.flags, q, threshold=None, limit=3)
    assert [h.chunk_id for h in hits] == [i for i, _ in want]


@pytest.mark.parametrize(("threshold", "limit"), [(T, 5), (T, 40), (0.7, 4), (0.7, 15), (-1.0, 300)])
async def test_raw_search_equals_exact_scan(data: Data, dhv_module_pool: dv.Pool, threshold: float, limit: int) -> None:
    pool = dhv_module_pool
    hits = await dv.search_raw_chunks(pool, data.query, pre_qualification_id=PQ, threshold=threshold, limit=limit)
    exact = as_pairs(await pool.fetch(EXACT_RAW_SQL, data.query, PQ, 1.0 - threshold, False, limit))
    assert [(h.chunk_id, h.similarity) for h in hits] == exact
    all_sims = {i: cos64(v, data.query) for i, v in data.raw.items()}
    assert_matches_float64(
        exact, reference(data.raw, data.query, threshold=threshold, limit=limit), all_sims, threshold
    )


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = [node]
    for child in node.get("Plans", []):
        out.extend(_plan_nodes(child))
    return out


async def test_exact_distance_is_computed_for_few_candidates_only(data: Data, dhv_module_pool: dv.Pool) -> None:
    """EXPLAIN ANALYZE: the exact step ("scored") sees far fewer rows than the half step ("half")."""
    m = 1.0 - T
    async with dhv_module_pool.acquire() as conn:
        plan = json.loads(
            await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + DEAL_SEARCH_BY_QUALIFICATION_SQL,
                [Vector(data.query)],
                [Q],
                [m],
                [False],
                [None],
                [None],
                [False],
                [None],
                [None],
                [None],
                [False],
                [False],
                [5],
                [query_half(data.query)],
            )
        )
    nodes = _plan_nodes(plan[0]["Plan"])
    rows = {n.get("Subplan Name"): n["Actual Rows"] for n in nodes if n.get("Subplan Name", "").startswith("CTE")}
    assert rows["CTE half"] == len(data.vectors)  # every in-range row of the owner, scored by its half copy
    # Candidates: provably a subset of the rows within a few bounds of the 5th best or of the threshold.
    d64 = np.array(sorted(1.0 - cos64(v, data.query) for v in data.vectors.values()))
    delta = HALF_DISTANCE_ERROR_BOUND
    may_need = int(np.sum(d64 <= d64[4] + 4 * delta)) + int(np.sum(np.abs(d64 - m) <= 2 * delta)) + 2
    assert 5 <= rows["CTE scored"] <= may_need
    assert rows["CTE scored"] < 0.15 * rows["CTE half"]
    raw_plan = None
    async with dhv_module_pool.acquire() as conn:
        raw_plan = json.loads(
            await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + RAW_SEARCH_SQL,
                [Vector(data.query)],
                [PQ],
                [1.0 - 0.7],
                [False],
                [4],
                [query_half(data.query)],
            )
        )
    raw_rows = {
        n.get("Subplan Name"): n["Actual Rows"]
        for n in _plan_nodes(raw_plan[0]["Plan"])
        if n.get("Subplan Name", "").startswith("CTE")
    }
    assert raw_rows["CTE half"] == len(data.raw)


async def test_half_copy_is_inline_not_toasted(data: Data, dhv_module_pool: dv.Pool) -> None:
    pool = dhv_module_pool
    for table in ("deal_embeddings", "raw_chunks"):
        sizes = await pool.fetchrow(
            "SELECT count(*) AS n, min(pg_column_size(embedding_half)) AS lo,"
            " max(pg_column_size(embedding_half)) AS hi,"
            f" count(embedding_half) AS with_half FROM {table}"
        )
        # varlena header + dims/unused + 3072 halves, uncompressed
        assert sizes["lo"] == sizes["hi"] == 4 + 2 * DIMS + 4
        toast = await pool.fetchval("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = $1", table)
        # one TOAST value per row: the float32 embedding; no half copy lives in the TOAST table
        distinct = await pool.fetchval(f"SELECT count(DISTINCT chunk_id) FROM {toast}")
        non_null = await pool.fetchval(f"SELECT count(embedding) FROM {table}")
        assert distinct == non_null
        heap_bytes = await pool.fetchval("SELECT pg_relation_size($1::regclass)", table)
        assert heap_bytes >= sizes["with_half"] * 2 * DIMS


async def test_pgvector_half_rounding_is_round_to_nearest(dhv_module_pool: dv.Pool) -> None:
    """The bound assumes pgvector rounds float32 -> half to nearest (even): compare with IEEE (numpy)."""
    rng = np.random.default_rng(7)
    edge = np.array(
        [
            6.1035156e-05,
            6.0975552e-05,
            5.9604645e-08,
            2.9802322e-08,
            8.9406967e-08,
            1.0004883,
            1.0009766 + 2**-12,
            65504.0,
            65519.99,
            2049.0,
            2051.0,
            0.1,
            1 / 3,
            1e-7,
            3e-5,
        ],
        np.float32,
    )
    values = np.concatenate(
        [
            edge,
            -edge,
            rng.standard_normal(2000).astype(np.float32) * 0.02,
            (rng.standard_normal(1000) * 1e-5).astype(np.float32),
        ]
    )
    values = values[:DIMS]
    padded = np.zeros(DIMS, np.float32)
    padded[: values.size] = values
    got = await dhv_module_pool.fetchval("SELECT $1::vector::halfvec(3072)", padded)
    assert np.array_equal(got, padded.astype(np.float16).astype(np.float32))


async def test_half_copy_error_is_within_the_premise_of_the_bound(data: Data, dhv_module_pool: dv.Pool) -> None:
    """|h_i - x_i/||x||| <= 2^-11 |x_i/||x||| + 2^-25 (+ float32 normalisation) for every stored row."""
    rows = await dhv_module_pool.fetch(
        "SELECT id, embedding, embedding_half FROM deal_embeddings WHERE qualification_id = $1 AND embedding_half"
        " IS NOT NULL ORDER BY id LIMIT 200",
        Q,
    )
    for r in rows:
        x = np.asarray(r["embedding"], np.float64)
        unit = x / np.linalg.norm(x)
        err = np.abs(np.asarray(r["embedding_half"], np.float64) - unit)
        assert np.all(err <= 2.0**-11 * np.abs(unit) * (1 + 2.0**-22) + 2.0**-25 + 2.0**-23 * np.abs(unit)), r["id"]


async def test_write_paths_fill_the_generated_column(dhv_pool: dv.Pool) -> None:
    await seed_owners(dhv_pool, pre_qualification_ids=["pq-w"], qualification_ids=["q-w"])
    rng = np.random.default_rng(3)
    vecs = [rng.standard_normal(DIMS).astype(np.float32) * s for s in (1.0, 1e-3, 300.0)]
    ids = await dv.insert_deal_chunks(
        dhv_pool,
        [dv.DealChunk(qualification_id="q-w", agent_name="a", chunk_type="t", content="c", embedding=v) for v in vecs],
    )
    raw_ids = await dv.replace_raw_chunks(
        dhv_pool,
        "pq-w",
        [dv.RawChunk(chunk_index=i, content="c", token_count=1, embedding=v) for i, v in enumerate(vecs)],
    )
    for table, row_ids in (("deal_embeddings", ids), ("raw_chunks", raw_ids)):
        rows = await dhv_pool.fetch(
            f"SELECT id, embedding, embedding_half FROM {table} WHERE id = ANY($1::text[])", row_ids
        )
        assert len(rows) == 3
        for r in rows:
            x = np.asarray(r["embedding"], np.float64)
            assert np.allclose(r["embedding_half"], x / np.linalg.norm(x), rtol=2.0**-10, atol=2.0**-24)
    with pytest.raises(Exception, match="generated"):
        await dhv_pool.execute("UPDATE deal_embeddings SET embedding_half = NULL WHERE id = $1", ids[0])
