"""vector_search: thresholds on the distance, NaN/zero vectors, input rules, filters, fallbacks, metadata.

Expected values come from numpy float64 cosines of the stored float32 vectors and from the
legacy reference (``dealhunter_vectors.legacy``), never from the code under test.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from support import plant_rows_before_norm_checks

import dealhunter_vectors as dv
from dealhunter_vectors.errors import InvalidEmbeddingError
from dealhunter_vectors.legacy import algorithms as legacy
from dealhunter_vectors.search import similarity_percent
from dealhunter_vectors.testing import seed_owners

DIMS = 3072


# --------------------------------------------------------------------------- helpers


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def unit(rng: np.random.Generator) -> np.ndarray[Any, Any]:
    v = rng.standard_normal(DIMS)
    return v / np.linalg.norm(v)


def with_cosine(q: np.ndarray[Any, Any], cos: float, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """A float32 vector whose cosine with unit *q* is *cos* (up to float32 rounding)."""
    r = rng.standard_normal(DIMS)
    r -= (r @ q) * q
    r /= np.linalg.norm(r)
    return (cos * q + math.sqrt(max(0.0, 1 - cos * cos)) * r).astype(np.float32)


def cos64(a: Any, b: Any) -> float:
    a64 = np.asarray(a, dtype=np.float32).astype(np.float64)
    b64 = np.asarray(b, dtype=np.float32).astype(np.float64)
    return float(a64 @ b64 / math.sqrt(float(a64 @ a64) * float(b64 @ b64)))


async def make_owners(
    db: Any, *, pre_qualification_ids: Sequence[str] = (), qualification_ids: Sequence[str] = ()
) -> None:
    """Insert the FK parents (pre-qualifications without extracted requirements)."""
    await seed_owners(
        db,
        pre_qualification_ids=list(pre_qualification_ids),
        qualification_ids=list(qualification_ids),
        extracted_requirements=None,
    )


async def insert_raw_deal_row(
    db: Any,
    row_id: str,
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    embedding: Any = None,
    metadata: str | None = None,
    agent_name: str = "agent",
) -> None:
    """Insert a deal_embeddings row with raw SQL, bypassing every check of the write path."""
    await db.execute(
        "INSERT INTO deal_embeddings (id, pre_qualification_id, qualification_id, agent_name, chunk_type,"
        " content, metadata, embedding) VALUES ($1, $2, $3, $4, 'text', 'content', $5, $6)",
        row_id,
        pre_qualification_id,
        qualification_id,
        agent_name,
        metadata,
        embedding,
    )


@pytest.fixture(scope="module")
def pool(dhv_module_pool: dv.Pool) -> dv.Pool:
    return dhv_module_pool


# --------------------------------------------------------------------------- exactness and order


async def test_similarities_equal_numpy_float64_and_order_is_by_similarity(pool: dv.Pool) -> None:
    rng = np.random.default_rng(1)
    qid = uid("q")
    await make_owners(pool, qualification_ids=[qid])
    q = unit(rng)
    vectors = [with_cosine(q, c, rng) for c in rng.uniform(-0.95, 0.95, 60)]
    ids = await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(qualification_id=qid, agent_name="a", chunk_type="t", content=f"c{i}", embedding=v)
            for i, v in enumerate(vectors)
        ],
    )
    hits = await dv.search_deal_embeddings(pool, q, qualification_id=qid, threshold=-1.0, limit=100)
    expected = sorted(((cos64(q, v), i) for i, v in zip(ids, vectors, strict=True)), key=lambda t: -t[0])
    assert [h.chunk_id for h in hits] == [i for _, i in expected]
    for hit, (sim, _) in zip(hits, expected, strict=True):
        assert hit.similarity is not None and abs(hit.similarity - sim) <= 1e-5
    # threshold and limit: exactly the rows above 0.3, best five
    top = await dv.search_deal_embeddings(pool, q, qualification_id=qid)
    assert [h.chunk_id for h in top] == [i for s, i in expected if s > 0.3][:5]


async def test_threshold_is_strict_unless_inclusive_on_an_exact_boundary(pool: dv.Pool) -> None:
    # cos(e1, [3, 4, 0...]) = 3/5 = 0.6 exactly in double precision: 1 - 0.6 == 0.4 too.
    qid, pqid = uid("q"), uid("pq")
    await make_owners(pool, qualification_ids=[qid], pre_qualification_ids=[pqid])
    e1 = np.zeros(DIMS, np.float32)
    e1[0] = 1
    v = np.zeros(DIMS, np.float32)
    v[:2] = [3, 4]
    assert legacy.cosine_similarity_strict(e1.tolist(), v.tolist()) == 0.6
    [row_id] = await dv.insert_deal_chunks(
        pool, [dv.DealChunk(qualification_id=qid, agent_name="a", chunk_type="t", content="x", embedding=v)]
    )
    await dv.replace_raw_chunks(pool, pqid, [dv.RawChunk(chunk_index=0, content="r", token_count=1, embedding=v)])
    strict = await dv.search_deal_embeddings(pool, e1, qualification_id=qid, threshold=0.6)
    inclusive = await dv.search_deal_embeddings(pool, e1, qualification_id=qid, threshold=0.6, inclusive=True)
    assert strict == []
    assert [h.chunk_id for h in inclusive] == [row_id] and inclusive[0].similarity == 0.6
    assert await dv.search_raw_chunks(pool, e1, pre_qualification_id=pqid, threshold=0.6) == []
    raw_inclusive = await dv.search_raw_chunks(pool, e1, pre_qualification_id=pqid, threshold=0.6, inclusive=True)
    assert [h.similarity for h in raw_inclusive] == [0.6]
    raw_request = dv.RawChunkSearch(query_embedding=e1, pre_qualification_id=pqid, threshold=0.6, inclusive=True)
    assert [h.similarity for h in (await dv.search_many(pool, [raw_request]))[0]] == [0.6]
    # the search action's threshold is inclusive (>=), as the old action
    similar = await dv.search_similar(pool, e1, qualification_id=qid, threshold=0.6)
    assert [(h.id, h.source, h.similarity) for h in similar] == [(row_id, "lead", 0.6)]


async def test_zero_vectors_stored_by_raw_sql_never_appear(pool: dv.Pool) -> None:
    rng = np.random.default_rng(2)
    qid, pqid = uid("q"), uid("pq-zero")
    await make_owners(pool, qualification_ids=[qid], pre_qualification_ids=[pqid])
    q = unit(rng).astype(np.float32)
    zero = np.zeros(DIMS, np.float32)
    good = with_cosine(q, 0.1, rng)
    await insert_raw_deal_row(pool, "good-" + qid, qualification_id=qid, embedding=good)
    # written before migration 008's norm checks (they refuse a zero vector since)
    await plant_rows_before_norm_checks(
        pool,
        (
            "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content, embedding)"
            " VALUES ($1, $2, 'agent', 'text', 'content', $3)",
            "zero-" + qid,
            qid,
            zero,
        ),
        (
            "INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
            " VALUES ($1, $2, 0, 'z', 1, $3)",
            "zero-raw-" + pqid,
            pqid,
            zero,
        ),
        (
            "UPDATE pre_qualifications SET description_embedding = $2, extracted_requirements = '{}' WHERE id = $1",
            pqid,
            zero,
        ),
    )
    # The hazard is real: pgvector gives NaN and a "1 - distance >= t" filter lets the row through.
    naive = await pool.fetch(
        "SELECT id FROM deal_embeddings WHERE qualification_id = $1 AND 1 - (embedding <=> $2) >= 0.9", qid, q
    )
    assert [r["id"] for r in naive] == ["zero-" + qid]

    every = await dv.search_deal_embeddings(pool, q, qualification_id=qid, threshold=-1.0, inclusive=True)
    assert [h.chunk_id for h in every] == ["good-" + qid]
    topk = await dv.search_deal_embeddings(pool, q, qualification_id=qid, threshold=0.99, fallback_to_top_k=True)
    assert [h.chunk_id for h in topk] == ["good-" + qid]
    assert await dv.search_raw_chunks(pool, q, pre_qualification_id=pqid, threshold=-1.0) == []
    assert await dv.search_similar(pool, q, pre_qualification_id=pqid, threshold=-1.0) == []
    for kwargs in ({"min_similarity_percent": 0}, {"min_similarity_percent": 0, "limit": 5}):
        matches = await dv.find_similar_pre_qualifications(pool, q, **kwargs)  # type: ignore[arg-type]
        assert pqid not in {m.pre_qualification_id for m in matches}
        assert all(not math.isnan(m.similarity) for m in matches)
    listed = await dv.list_deal_chunks(pool, qualification_id=qid)  # the unranked listing shows every row
    assert {h.chunk_id for h in listed} == {"zero-" + qid, "good-" + qid}


# --------------------------------------------------------------------------- input rules


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (np.ones(DIMS - 1, np.float32), "dimensions"),
        (np.ones(DIMS + 1, np.float32), "dimensions"),
        (np.r_[np.ones(DIMS - 1), np.nan], "finite"),
        (np.r_[np.ones(DIMS - 1), np.inf], "finite"),
        (np.zeros(DIMS), "zero_norm"),
        (np.r_[np.ones(DIMS - 1), 70000.0], "half_precision_range"),
        ("[0.1, 0.2]", "type"),
        (None, "type"),
        (np.ones((2, DIMS)), "type"),
    ],
)
async def test_invalid_query_embeddings_name_the_rule(pool: dv.Pool, value: Any, rule: str) -> None:
    calls = [
        dv.search_deal_embeddings(pool, value, qualification_id="nobody"),
        dv.search_raw_chunks(pool, value, pre_qualification_id="nobody"),
        dv.search_similar(pool, value, qualification_id="nobody"),
        dv.find_similar_pre_qualifications(pool, value),
    ]
    for call in calls:
        with pytest.raises(InvalidEmbeddingError) as info:
            await call
        assert info.value.rule == rule
        assert "query_embedding" in str(info.value)
        assert isinstance(info.value, ValueError)


async def test_lists_tuples_and_any_float_dtype_are_accepted(pool: dv.Pool) -> None:
    rng = np.random.default_rng(3)
    qid = uid("q")
    await make_owners(pool, qualification_ids=[qid])
    q = unit(rng)
    v = with_cosine(q, 0.8, rng)
    await dv.insert_deal_chunks(
        pool, [dv.DealChunk(qualification_id=qid, agent_name="a", chunk_type="t", content="x", embedding=v.tolist())]
    )
    for form in (q.tolist(), tuple(q.tolist()), q.astype(np.float16), q.astype(np.float32), q, q.astype(np.longdouble)):
        hits = await dv.search_deal_embeddings(pool, form, qualification_id=qid)
        expected = cos64(np.asarray(form, dtype=np.float64).astype(np.float32), v)
        assert len(hits) == 1 and abs((hits[0].similarity or 0) - expected) <= 1e-5


@pytest.mark.parametrize("threshold", [1.0000001, -1.5, 2, math.nan, math.inf])
async def test_threshold_outside_minus_one_one_is_a_value_error(pool: dv.Pool, threshold: float) -> None:
    q = unit(np.random.default_rng(4))
    with pytest.raises(ValueError, match="threshold"):
        await dv.search_deal_embeddings(pool, q, qualification_id="x", threshold=threshold)
    with pytest.raises(ValueError, match="threshold"):
        await dv.search_raw_chunks(pool, q, pre_qualification_id="x", threshold=threshold)
    with pytest.raises(ValueError, match="threshold"):
        await dv.search_similar(pool, q, qualification_id="x", threshold=threshold)


async def test_limits_and_owner_rules(pool: dv.Pool) -> None:
    q = unit(np.random.default_rng(5))
    for bad in (0, -1):
        with pytest.raises(ValueError, match="limit"):
            await dv.search_deal_embeddings(pool, q, qualification_id="x", limit=bad)
        with pytest.raises(ValueError, match="limit"):
            await dv.search_raw_chunks(pool, q, pre_qualification_id="x", limit=bad)
        with pytest.raises(ValueError, match="limit"):
            await dv.find_similar_pre_qualifications(pool, q, limit=bad)
        with pytest.raises(ValueError, match="limit"):
            await dv.list_deal_chunks(pool, qualification_id="x", limit=bad)
    with pytest.raises(ValueError, match="limit"):
        await dv.search_similar(pool, q, qualification_id="x", limit=51)
    with pytest.raises(ValueError, match="exactly one"):
        await dv.search_deal_embeddings(pool, q)
    with pytest.raises(ValueError, match="exactly one"):
        await dv.search_deal_embeddings(pool, q, qualification_id="a", pre_qualification_id="b")
    with pytest.raises(ValueError, match="exactly one"):
        await dv.list_deal_chunks(pool)
    with pytest.raises(ValueError):
        await dv.search_similar(pool, q)
    with pytest.raises(ValueError, match="needs a limit"):
        await dv.find_similar_pre_qualifications(pool, q, exact=False)
    with pytest.raises(ValueError, match="min_similarity_percent"):
        await dv.find_similar_pre_qualifications(pool, q, min_similarity_percent=101)
    # unknown owners: empty results, no error
    assert await dv.search_deal_embeddings(pool, q, qualification_id="no-such-owner") == []
    assert await dv.search_deal_embeddings(pool, q, pre_qualification_id="no-such-owner") == []
    assert await dv.search_raw_chunks(pool, q, pre_qualification_id="no-such-owner") == []
    assert await dv.search_similar(pool, q, qualification_id="no", pre_qualification_id="no") == []
    assert await dv.list_deal_chunks(pool, qualification_id="no-such-owner") == []


# --------------------------------------------------------------------------- metadata


async def test_bad_metadata_is_flagged_and_logged_and_hides_nothing(
    pool: dv.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(6)
    qid = uid("q")
    await make_owners(pool, qualification_ids=[qid])
    q = unit(rng)
    rows = {
        "ok-" + qid: '{"cms": "Drupal"}',
        "null-" + qid: None,
        "broken-" + qid: '{"cms": "Dru',
        "array-" + qid: "[1, 2]",
        "nan-" + qid: '{"x": NaN}',
        "bigint-" + qid: '{"n": 123456789012345678901234567890}',
    }
    vectors = {}
    for i, (row_id, meta) in enumerate(rows.items()):
        vectors[row_id] = with_cosine(q, 0.9 - 0.05 * i, rng)
        await insert_raw_deal_row(pool, row_id, qualification_id=qid, embedding=vectors[row_id], metadata=meta)
    with caplog.at_level(logging.WARNING, logger="dealhunter_vectors.search"):
        hits = await dv.search_deal_embeddings(pool, q, qualification_id=qid, limit=10)
    by_id = {h.chunk_id: h for h in hits}
    assert list(by_id) == list(rows)  # all six, best first
    assert by_id["ok-" + qid].metadata == {"cms": "Drupal"} and by_id["ok-" + qid].metadata_error is None
    assert by_id["null-" + qid].metadata == {} and by_id["null-" + qid].metadata_error is None
    assert by_id["bigint-" + qid].metadata == {"n": 1.2345678901234568e29}  # a double, as JSON.parse
    for bad in ("broken-", "array-", "nan-"):
        hit = by_id[bad + qid]
        assert hit.metadata == {} and hit.metadata_raw == rows[bad + qid] and hit.metadata_error
        assert any(bad + qid in rec.getMessage() for rec in caplog.records)
    # The old code returned [] for the whole query because of one bad row; we do not.
    legacy_rows = [
        {
            "id": k,
            "agent_name": "agent",
            "chunk_type": "text",
            "content": "content",
            "metadata": m,
            "embedding": str([float(x) for x in vectors[k]]),
            "chunk_category": "elaboration",
            "confidence": 50,
            "validated_at": None,
        }
        for k, m in rows.items()
    ]
    assert legacy.query_rag_for_lead(legacy_rows, q.tolist(), max_results=10) == []
    with pytest.raises(legacy.LegacyError):
        legacy.query_rag_for_lead(legacy_rows, q.tolist(), swallow_errors=False)
    # the tech-stack filter never matches unparsable metadata, and does not fail on it
    tech = await dv.search_deal_embeddings(pool, q, qualification_id=qid, threshold=0.0, tech_stack="drupal")
    assert [h.chunk_id for h in tech] == ["ok-" + qid]


async def test_raw_chunk_default_metadata_and_citations(pool: dv.Pool) -> None:
    rng = np.random.default_rng(7)
    pqid = uid("pq")
    await make_owners(pool, pre_qualification_ids=[pqid])
    q = unit(rng)
    source = {"kind": "pdf", "fileName": "a.pdf", "page": 2, "paragraphStart": 1, "paragraphEnd": 3, "heading": None}
    chunks = [
        dv.RawChunk(id="r-null-" + pqid, chunk_index=0, content="a", token_count=3, embedding=with_cosine(q, 0.9, rng)),
        dv.RawChunk(
            id="r-pdf-" + pqid,
            chunk_index=1,
            content="b",
            token_count=4,
            embedding=with_cosine(q, 0.8, rng),
            metadata={"startPosition": 1, "endPosition": 9, "type": "text", "source": source},
        ),
        dv.RawChunk(
            id="r-web-" + pqid,
            chunk_index=2,
            content="c",
            token_count=5,
            embedding=with_cosine(q, 0.7, rng),
            metadata={"type": "web", "webSource": {"url": "https://example.com", "title": "T"}},
        ),
        dv.RawChunk(id="r-low-" + pqid, chunk_index=3, content="d", token_count=5, embedding=with_cosine(q, 0.1, rng)),
    ]
    await dv.replace_raw_chunks(pool, pqid, chunks)
    hits = await dv.search_raw_chunks(pool, q, pre_qualification_id=pqid)
    assert [h.chunk_id for h in hits] == ["r-null-" + pqid, "r-pdf-" + pqid, "r-web-" + pqid]
    assert hits[0].metadata == {"startPosition": 0, "endPosition": 0, "type": "unknown"}
    assert hits[0].token_count == 3 and hits[0].source is None and hits[0].web_source is None
    assert hits[1].source == source
    assert hits[2].web_source == {"url": "https://example.com", "title": "T", "accessedAt": None}


# --------------------------------------------------------------------------- filters and fallbacks


async def test_agent_name_contains_is_case_insensitive_and_literal(pool: dv.Pool) -> None:
    rng = np.random.default_rng(8)
    qid = uid("q")
    await make_owners(pool, qualification_ids=[qid])
    q = unit(rng)
    names = ["a%b", "axb", "A_B", "a\\b", "Tech_Agent", "TECHNICAL", "ab"]
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(
                id=f"{qid}-{i}",
                qualification_id=qid,
                agent_name=n,
                chunk_type="t",
                content=n,
                embedding=with_cosine(q, 0.5, rng),
            )
            for i, n in enumerate(names)
        ],
    )

    async def agents(needle: str) -> set[str]:
        hits = await dv.search_deal_embeddings(pool, q, qualification_id=qid, limit=50, agent_name_contains=needle)
        return {h.agent_name for h in hits}

    assert await agents("%") == {"a%b"}
    assert await agents("_") == {"A_B", "Tech_Agent"}
    assert await agents("\\") == {"a\\b"}
    assert await agents("tech") == {"Tech_Agent", "TECHNICAL"}
    assert await agents("a_b") == {"A_B"}
    assert await agents("") == set(names)  # an empty filter is no filter, as the old code
    # the old SQLite LIKE treated % and _ as wildcards (reference only)
    assert legacy.sqlite_like("axb", "%a_b%") and legacy.sqlite_like("TECHNICAL", "%tech%")


async def test_agent_names_and_tech_stack_filters_with_and_without_fallback(pool: dv.Pool) -> None:
    rng = np.random.default_rng(9)
    pqid = uid("pq")
    await make_owners(pool, pre_qualification_ids=[pqid])
    q = unit(rng)
    spec = [  # id suffix, agent, cos, metadata
        ("hi-drupal", "tech_agent", 0.95, {"cms": "Drupal 10"}),
        ("hi-react", "legal_agent", 0.9, {"framework": "React"}),
        ("hi-num", "tech_agent", 0.85, {"cms": 7}),
        ("lo-drupal", "risk_agent", 0.5, {"cms": "drupal"}),
    ]
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(
                id=f"{s}-{pqid}",
                pre_qualification_id=pqid,
                agent_name=a,
                chunk_type="t",
                content=s,
                metadata=m,
                embedding=with_cosine(q, c, rng),
            )
            for s, a, c, m in spec
        ],
    )

    async def ids(**kw: Any) -> list[str]:
        hits = await dv.search_deal_embeddings(pool, q, pre_qualification_id=pqid, threshold=0.7, **kw)
        return [h.chunk_id.removesuffix("-" + pqid) for h in hits]

    assert await ids(tech_stack="DRUPAL") == ["hi-drupal"]
    assert await ids(tech_stack="react") == ["hi-react"]
    assert await ids(tech_stack="angular") == []
    assert await ids(tech_stack="angular", filter_fallback=True) == ["hi-drupal", "hi-react", "hi-num"]
    # only lo-drupal matches, but it is below the threshold: the fallback applies
    assert await ids(agent_names="risk_agent", filter_fallback=True) == ["hi-drupal", "hi-react", "hi-num"]
    assert await ids(agent_names=["legal_agent", "risk_agent"]) == ["hi-react"]
    assert await ids(agent_names=[]) == []
    # the reference agrees on the fallback cases
    rows = await pool.fetch("SELECT * FROM deal_embeddings WHERE pre_qualification_id = $1", pqid)
    legacy_rows = [{**dict(r), "embedding": str([float(x) for x in r["embedding"]])} for r in rows]
    without_num = [r for r in legacy_rows if not r["id"].startswith("hi-num")]
    assert [
        r["chunkId"].removesuffix("-" + pqid)
        for r in legacy.query_rag(without_num, q.tolist(), tech_stack_filter="angular")
    ] == ["hi-drupal", "hi-react"]
    assert await ids(tech_stack="DRUPAL") == [
        r["chunkId"].removesuffix("-" + pqid)
        for r in legacy.query_rag(without_num, q.tolist(), tech_stack_filter="DRUPAL")
    ]
    # a numeric cms made the old code throw (and return []): the defect the library leaves behind
    assert legacy.query_rag(legacy_rows, q.tolist(), tech_stack_filter="DRUPAL") == []


async def test_pre_threshold_filters_and_top_k_fallback(pool: dv.Pool) -> None:
    rng = np.random.default_rng(10)
    qid = uid("q")
    await make_owners(pool, qualification_ids=[qid])
    q = unit(rng)
    rows = [  # suffix, cos, category, confidence, validated
        ("a", 0.6, "fact", 90, True),
        ("b", 0.5, "risk", 40, False),
        ("c", 0.4, "fact", None, False),
        ("d", 0.1, "estimate", 80, True),
        ("e", 0.05, None, 10, False),
    ]
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(
                id=f"{s}-{qid}",
                qualification_id=qid,
                agent_name="agent",
                chunk_type="t",
                content=s,
                chunk_category=cat,
                confidence=conf,
                validated_at=dv.writes.utc_now() if val else None,
                embedding=with_cosine(q, c, rng),
            )
            for s, c, cat, conf, val in rows
        ],
    )

    async def ids(**kw: Any) -> list[str]:
        hits = await dv.search_deal_embeddings(pool, q, qualification_id=qid, **kw)
        return [h.chunk_id.removesuffix("-" + qid) for h in hits]

    assert await ids() == ["a", "b", "c"]
    assert await ids(chunk_categories=["fact", "estimate"]) == ["a", "c"]
    assert await ids(chunk_categories=[]) == ["a", "b", "c"]
    assert await ids(min_confidence=50) == ["a"]
    assert await ids(min_confidence=0) == ["a", "b", "c"]  # <= 0: no filter, as the old code
    assert await ids(only_validated=True) == ["a"]
    assert await ids(threshold=0.7) == []
    assert await ids(threshold=0.7, fallback_to_top_k=True, limit=2) == ["a", "b"]
    assert await ids(threshold=0.7, fallback_to_top_k=True, chunk_categories=["estimate"]) == ["d"]
    hit = (await dv.search_deal_embeddings(pool, q, qualification_id=qid, limit=1))[0]
    assert hit.is_validated and hit.chunk_category == "fact" and hit.confidence == 90
    assert [s.model_dump() for s in hit.sources] == [
        {"agent_name": "agent", "chunk_id": hit.chunk_id, "chunk_type": "t", "relevance": hit.similarity}
    ]


async def test_list_deal_chunks_is_unranked_and_includes_rows_without_embedding(pool: dv.Pool) -> None:
    rng = np.random.default_rng(11)
    qid = uid("q")
    await make_owners(pool, qualification_ids=[qid])
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(id=f"{qid}-1", qualification_id=qid, agent_name="tech", chunk_type="screenshot", content="s"),
            dv.DealChunk(
                id=f"{qid}-2",
                qualification_id=qid,
                agent_name="legal",
                chunk_type="t",
                content="t",
                embedding=unit(rng),
            ),
        ],
    )
    listed = await dv.list_deal_chunks(pool, qualification_id=qid)
    assert {h.chunk_id for h in listed} == {f"{qid}-1", f"{qid}-2"}
    assert all(h.similarity is None and h.sources[0].relevance is None for h in listed)
    assert len(await dv.list_deal_chunks(pool, qualification_id=qid, limit=1)) == 1
    assert [h.chunk_id for h in await dv.list_deal_chunks(pool, qualification_id=qid, agent_names="legal")] == [
        f"{qid}-2"
    ]
    assert await dv.list_deal_chunks(pool, qualification_id=qid, agent_names="nobody") == []
    fallback = await dv.list_deal_chunks(pool, qualification_id=qid, agent_names="nobody", filter_fallback=True)
    assert len(fallback) == 2
    assert dv.section_confidence(listed) == legacy.calculate_confidence_score(
        [{"similarity": 0.0, "agentName": h.agent_name} for h in listed]
    )


async def test_search_similar_merges_sources(pool: dv.Pool) -> None:
    rng = np.random.default_rng(12)
    qid, pqid = uid("q"), uid("pq")
    await make_owners(pool, qualification_ids=[qid], pre_qualification_ids=[pqid])
    q = unit(rng)
    lead = [with_cosine(q, c, rng) for c in (0.9, 0.55, 0.3)]
    agent = [with_cosine(q, c, rng) for c in (0.8, 0.6)]
    raw = [with_cosine(q, c, rng) for c in (0.95, 0.52, 0.1)]
    await dv.insert_deal_chunks(
        pool,
        [
            *(
                dv.DealChunk(
                    id=f"L{i}-{qid}", qualification_id=qid, agent_name="a", chunk_type="t", content="l", embedding=v
                )
                for i, v in enumerate(lead)
            ),
            *(
                dv.DealChunk(
                    id=f"A{i}-{qid}",
                    pre_qualification_id=pqid,
                    agent_name="b",
                    chunk_type="t",
                    content="a",
                    embedding=v,
                )
                for i, v in enumerate(agent)
            ),
        ],
    )
    await dv.replace_raw_chunks(
        pool,
        pqid,
        [
            dv.RawChunk(id=f"R{i}-{qid}", chunk_index=i, content="r", token_count=1, embedding=v)
            for i, v in enumerate(raw)
        ],
    )
    hits = await dv.search_similar(pool, q, qualification_id=qid, pre_qualification_id=pqid)
    assert [(h.id.split("-")[0], h.source) for h in hits] == [
        ("R0", "raw"),
        ("L0", "lead"),
        ("A0", "agent"),
        ("A1", "agent"),
        ("L1", "lead"),
        ("R1", "raw"),
    ]
    expected = {f"L{i}-{qid}": cos64(q, v) for i, v in enumerate(lead)}
    expected |= {f"A{i}-{qid}": cos64(q, v) for i, v in enumerate(agent)}
    expected |= {f"R{i}-{qid}": cos64(q, v) for i, v in enumerate(raw)}
    assert all(abs(h.similarity - expected[h.id]) <= 1e-5 for h in hits)
    assert hits[0].agent_name is None and hits[1].agent_name == "a"
    no_raw = await dv.search_similar(pool, q, pre_qualification_id=pqid, include_raw_chunks=False, limit=1)
    assert [h.id.split("-")[0] for h in no_raw] == ["A0"]


# --------------------------------------------------------------------------- duplicate check


def test_js_rounding_of_the_percentage() -> None:
    assert legacy.js_round(84.5) == 85 and legacy.js_round(-0.5) == 0 and legacy.js_round(2.5) == 3
    assert legacy.js_round(0.49999999999999994) == 0 and legacy.js_round(-2.5) == -2
    assert legacy.similarity_to_percentage(0.69) == 85  # (1.69 / 2) * 100 == 84.5 -> 85
    rng = np.random.default_rng(13)
    for c in [*rng.uniform(-1, 1, 2000), *(np.arange(-100, 101) / 100), 0.69, 0.6899999999999999]:
        assert similarity_percent(float(c)) == legacy.similarity_to_percentage(float(c))


async def test_find_similar_pre_qualifications_percent_rule_and_candidates(dhv_pool: dv.Pool) -> None:
    rng = np.random.default_rng(14)
    q = unit(rng)
    cosines = {"p95": 0.953, "p80": 0.8, "p70": 0.7, "p68": 0.68, "p20": 0.2, "pneg": -0.5}
    ids = [*cosines, "p-noreq", "p-self", "p-noemb"]
    await make_owners(dhv_pool, pre_qualification_ids=ids)
    vectors = {k: with_cosine(q, c, rng) for k, c in cosines.items()}
    vectors["p-noreq"] = with_cosine(q, 0.99, rng)
    vectors["p-self"] = q.astype(np.float32)
    for k, v in vectors.items():
        await dv.set_description_embedding(dhv_pool, k, v)
    await dhv_pool.execute(
        "UPDATE pre_qualifications SET extracted_requirements = '{\"customerName\": \"x\"}' WHERE id <> 'p-noreq'"
    )
    legacy_rows = [
        {
            "id": r["id"],
            "extracted_requirements": r["extracted_requirements"],
            "description_embedding": None
            if r["description_embedding"] is None
            else str([float(x) for x in r["description_embedding"]]),
        }
        for r in await dhv_pool.fetch(
            "SELECT id, extracted_requirements, description_embedding FROM pre_qualifications"
        )
    ]
    # the stored query is float32: give the reference the same numbers
    ref = legacy.duplicate_semantic_matches(legacy_rows, q.astype(np.float32).tolist(), exclude_id="p-self")
    assert [m["id"] for m in ref] == ["p95", "p80", "p70"]
    for kwargs in ({}, {"exact": True, "limit": 10}, {"limit": 10}, {"limit": 2}):
        got = await dv.find_similar_pre_qualifications(dhv_pool, q, exclude_id="p-self", **kwargs)  # type: ignore[arg-type]
        n = kwargs.get("limit") or 10
        assert [m.pre_qualification_id for m in got] == [m["id"] for m in ref][:n]
        for m, r in zip(got, ref, strict=False):
            assert m.similarity_percent == r["similarity"] and abs(m.similarity - r["cosine"]) <= 1e-5
    with_self = await dv.find_similar_pre_qualifications(dhv_pool, q)
    assert with_self[0].pre_qualification_id == "p-self" and with_self[0].similarity_percent == 100
    low = await dv.find_similar_pre_qualifications(dhv_pool, q, exclude_id="p-self", min_similarity_percent=50)
    assert [m.pre_qualification_id for m in low] == ["p95", "p80", "p70", "p68", "p20"]


# --------------------------------------------------------------------------- search_many and plans


async def test_search_many_returns_results_in_request_order(pool: dv.Pool) -> None:
    rng = np.random.default_rng(15)
    q1, q2 = uid("q"), uid("q")
    pq = uid("pq")
    await make_owners(pool, qualification_ids=[q1, q2], pre_qualification_ids=[pq])
    queries = [unit(rng) for _ in range(3)]
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(
                qualification_id=owner,
                pre_qualification_id=pq if i % 3 == 0 else None,
                agent_name=f"ag{i % 4}",
                chunk_type="t",
                content=str(i),
                embedding=with_cosine(queries[i % 3], 0.2 + 0.01 * i, rng),
            )
            for i, owner in enumerate([q1, q2] * 20)
        ],
    )
    await dv.replace_raw_chunks(
        pool,
        pq,
        [
            dv.RawChunk(chunk_index=i, content="r", token_count=1, embedding=with_cosine(queries[i % 3], 0.3, rng))
            for i in range(9)
        ],
    )
    requests: list[Any] = [
        dv.DealChunkSearch(query_embedding=queries[0], qualification_id=q1, threshold=0.1, limit=7),
        dv.RawChunkSearch(query_embedding=queries[1], pre_qualification_id=pq),
        dv.DealChunkSearch(query_embedding=queries[1], qualification_id=q2, threshold=0.0, agent_names="ag1"),
        dv.SimilaritySearch(query_embedding=queries[2], qualification_id=q2, pre_qualification_id=pq, threshold=0.1),
        dv.PreQualificationSearch(query_embedding=queries[0], min_similarity_percent=0, limit=3),
        dv.DealChunkSearch(query_embedding=queries[2], pre_qualification_id=pq, threshold=-1.0, limit=50),
        dv.DealChunkSearch(query_embedding=queries[0], qualification_id="nobody"),
    ]
    batched = await dv.search_many(pool, requests)
    singles = [
        await dv.search_deal_embeddings(pool, queries[0], qualification_id=q1, threshold=0.1, limit=7),
        await dv.search_raw_chunks(pool, queries[1], pre_qualification_id=pq),
        await dv.search_deal_embeddings(pool, queries[1], qualification_id=q2, threshold=0.0, agent_names="ag1"),
        await dv.search_similar(pool, queries[2], qualification_id=q2, pre_qualification_id=pq, threshold=0.1),
        await dv.find_similar_pre_qualifications(pool, queries[0], min_similarity_percent=0, limit=3),
        await dv.search_deal_embeddings(pool, queries[2], pre_qualification_id=pq, threshold=-1.0, limit=50),
        [],
    ]
    assert batched == singles
    assert len(batched[0]) == 7 and len(batched[5]) == 14
    # the same on a connection inside the caller's transaction
    async with pool.acquire() as conn, conn.transaction():
        assert await dv.search_many(conn, requests) == singles
    with pytest.raises(InvalidEmbeddingError):  # validation happens before anything runs
        await dv.search_many(pool, [requests[0], dv.RawChunkSearch(query_embedding=[1.0], pre_qualification_id=pq)])


def test_load_legacy_rows_reads_the_owner_rows_as_stored(tmp_path: Any) -> None:
    import sqlite3

    folder = tmp_path / "odd #dir? 100%"
    folder.mkdir()
    path = folder / "legacy.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE deal_embeddings (id TEXT PRIMARY KEY, qualification_id TEXT, embedding TEXT,"
        " validated_at INTEGER)"
    )
    conn.executemany(
        "INSERT INTO deal_embeddings VALUES (?, ?, ?, ?)",
        [("a", "q1", "[1,0]", 1735000000), ("b", "q2", None, None), ("c", "q1", "[0,1]", None)],
    )
    conn.commit()
    conn.close()
    rows = legacy.load_legacy_rows(path, "deal_embeddings", "qualification_id", "q1")
    assert rows == [
        {"id": "a", "qualification_id": "q1", "embedding": "[1,0]", "validated_at": 1735000000},
        {"id": "c", "qualification_id": "q1", "embedding": "[0,1]", "validated_at": None},
    ]
    with pytest.raises(ValueError, match="unsupported"):
        legacy.load_legacy_rows(path, "users", None, None)
