"""Property-based parity with the old algorithm (hypothesis).

Hypothesis generates owners with deal chunks (agents, categories, confidences, validation
states, metadata with cms/framework, rows without embedding), raw chunks,
pre-qualifications and the query parameters of every old call site. The rows go into
PostgreSQL through the library's write path and, as the old app stored them (JSON text,
Unix seconds), into the literal reference port ``dealhunter_vectors.legacy``. For every call
site our ids must equal the reference's, in the same order, with similarities within 1e-5;
only rows within 1e-5 of a neighbour may swap places or trade places at the limit.
Generated cosines are kept 2e-4 away from every threshold (and every duplicate-percent
boundary) so that float32 storage cannot flip a threshold decision.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dealhunter_vectors as dv
from dealhunter_vectors.legacy import algorithms as legacy
from dealhunter_vectors.legacy.database import embedding_to_json

DIMS = 3072
TOL = 1e-5
AGENTS = ["tech_agent", "legal_agent", "Risk_Agent", "quick_scan", "TECH"]
CATEGORIES = ["fact", "elaboration", "recommendation", "risk", "estimate", None]
CMS = ["Drupal", "drupal 9", "WordPress", "TYPO3"]
FRAMEWORKS = ["React", "Next.js", "vue"]
FIXED_THRESHOLDS = [0.2, 0.3, 0.5, 0.7] + [(k - 0.5) / 50 - 1 for k in range(1, 101)]  # percent boundaries

cosines = st.one_of(
    st.floats(-0.999, 0.999),
    st.sampled_from([0.2, 0.3, 0.5, 0.69, 0.7]).flatmap(lambda t: st.floats(t - 0.01, t + 0.01)),
)
metadata = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {}, optional={"cms": st.sampled_from(CMS), "framework": st.sampled_from(FRAMEWORKS), "type": st.just("text")}
    ),
)
deal_row = st.fixed_dictionaries(
    {
        "agent": st.sampled_from(AGENTS),
        "category": st.sampled_from(CATEGORIES),
        "confidence": st.one_of(st.none(), st.integers(0, 100)),
        "validated": st.booleans(),
        "metadata": metadata,
        "embedded": st.sampled_from([True, True, True, False]),
        "cos": cosines,
    }
)
raw_row = st.fixed_dictionaries({"cos": cosines, "metadata": metadata, "tokens": st.integers(1, 500)})
pq_row = st.fixed_dictionaries({"cos": cosines, "requirements": st.sampled_from([True, True, False])})
params = st.fixed_dictionaries(
    {
        "lead_agents": st.one_of(
            st.none(), st.sampled_from([*AGENTS, "nobody"]), st.lists(st.sampled_from([*AGENTS, "nobody"]), max_size=3)
        ),
        "categories": st.one_of(st.none(), st.lists(st.sampled_from(CATEGORIES[:-1]), max_size=3)),
        "min_confidence": st.one_of(st.none(), st.integers(0, 100)),
        "only_validated": st.booleans(),
        "max_results": st.integers(1, 8),
        "tech": st.one_of(st.none(), st.sampled_from(["drupal", "REACT", "typo", "next", "angular"])),
        "deep_filter": st.one_of(st.none(), st.sampled_from(["tech", "agent", "risk", "SCAN", "nomatch"])),
        "similar_threshold": st.floats(0.0, 1.0),
        "similar_limit": st.integers(1, 50),
        "include_raw": st.booleans(),
        "similar_owners": st.sampled_from(["lead", "agent", "both"]),
        "exclude": st.booleans(),
    }
)


def keep_off(cos: float, thresholds: Sequence[float]) -> float:
    """Move a cosine at least 2e-4 away from every threshold (float32 storage moves it ~1e-7)."""
    for t in thresholds:
        if abs(cos - t) < 2e-4:
            cos = t + 3e-4 if cos >= t else t - 3e-4
    return max(-0.999, min(0.999, cos))


def with_cosine(q: np.ndarray[Any, Any], cos: float, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    r = rng.standard_normal(DIMS)
    r -= (r @ q) * q
    r /= np.linalg.norm(r)
    return (cos * q + math.sqrt(1 - cos * cos) * r).astype(np.float32)


def assert_same_ranking(
    ours: Sequence[tuple[str, float]], ref: Sequence[tuple[str, float]], *, limit: int | None, what: str
) -> None:
    """Same ids in the same order, similarities within TOL; near-ties may swap or trade places at the limit."""
    assert len(ours) == len(ref), (what, ours, ref)
    ref_sim = dict(ref)
    for row_id, sim in ours:
        assert not math.isnan(sim)
        if row_id in ref_sim:
            assert abs(sim - ref_sim[row_id]) <= TOL, (what, row_id, sim, ref_sim[row_id])
    for (a, sa), (b, sb) in zip(ours, ref, strict=True):
        assert a == b or abs(sa - sb) <= TOL, (what, ours, ref)
    differing = {i for i, _ in ours} ^ {i for i, _ in ref}
    if differing:
        assert limit is not None and len(ours) == limit, (what, differing)
        cut = min(s for _, s in [*ours, *ref])
        sims = dict([*ours, *ref])
        assert all(abs(sims[i] - cut) <= TOL for i in differing), (what, differing)


async def make_parents(db: Any, pq_ids: Sequence[str], q_ids: Sequence[str]) -> None:
    await db.execute(
        "INSERT INTO business_units (id, name, leader_name, leader_email, keywords)"
        " VALUES ('bu', 'BU', 'L', 'l@example.com', '[]') ON CONFLICT DO NOTHING"
    )
    await db.execute(
        "INSERT INTO users (id, email, password, name) VALUES ('u', 'u@e.com', 'x', 'U') ON CONFLICT DO NOTHING"
    )
    await db.executemany(
        "INSERT INTO pre_qualifications (id, user_id, source, stage, input_type, raw_input)"
        " VALUES ($1, 'u', 'reactive', 'rfp', 'freetext', 't')",
        [(i,) for i in pq_ids],
    )
    await db.executemany(
        "INSERT INTO qualifications (id, pre_qualification_id, customer_name, business_unit_id)"
        " VALUES ($1, $2, 'c', 'bu')",
        [(i, pq_ids[0]) for i in q_ids],
    )


@pytest.fixture(scope="module")
def pool(dhv_module_pool: dv.Pool) -> dv.Pool:
    return dhv_module_pool


def ranked(hits: Sequence[Any], key: str = "chunk_id") -> list[tuple[str, float]]:
    return [(getattr(h, key), h.similarity) for h in hits]


def ranked_ref(rows: Sequence[dict[str, Any]], key: str = "chunkId") -> list[tuple[str, float]]:
    return [(r[key], r["similarity"]) for r in rows]


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    lead=st.lists(deal_row, max_size=10),
    agent=st.lists(deal_row, max_size=10),
    raw=st.lists(raw_row, max_size=8),
    pqs=st.lists(pq_row, max_size=5),
    p=params,
)
async def test_every_call_site_matches_the_legacy_reference(
    pool: dv.Pool,
    seed: int,
    lead: list[dict[str, Any]],
    agent: list[dict[str, Any]],
    raw: list[dict[str, Any]],
    pqs: list[dict[str, Any]],
    p: dict[str, Any],
) -> None:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(DIMS)
    q /= np.linalg.norm(q)
    q32 = q.astype(np.float32)
    query = q32.astype(np.float64).tolist()  # the stored query is float32: the reference gets the same numbers
    thresholds = [*FIXED_THRESHOLDS, p["similar_threshold"]]
    tag = uuid.uuid4().hex[:10]
    qid, pqid = f"q-{tag}", f"pq-{tag}"
    pq_ids = [pqid] + [f"pqd{i}-{tag}" for i in range(len(pqs))]
    await make_parents(pool, pq_ids, [qid])

    # ---- store: library write path (PostgreSQL) and the old storage format (reference rows)
    def deal_rows(spec: list[dict[str, Any]], owner: dict[str, str], prefix: str) -> tuple[list[Any], list[Any]]:
        chunks, legacy_rows = [], []
        for i, r in enumerate(spec):
            row_id = f"{prefix}{i:02d}-{tag}"
            vector = with_cosine(q, keep_off(r["cos"], thresholds), rng) if r["embedded"] else None
            validated_at = 1_735_000_000 + i if r["validated"] else None
            chunks.append(
                dv.DealChunk(
                    id=row_id,
                    **owner,
                    agent_name=r["agent"],
                    chunk_type="text",
                    chunk_index=i,
                    content=f"c{i}",
                    metadata=r["metadata"],
                    embedding=vector,
                    chunk_category=r["category"],
                    confidence=r["confidence"],
                    validated_at=None if validated_at is None else dv.writes.utc_now(),
                )
            )
            legacy_rows.append(
                {
                    "id": row_id,
                    "agent_name": r["agent"],
                    "chunk_type": "text",
                    "chunk_index": i,
                    "content": f"c{i}",
                    "metadata": None if r["metadata"] is None else json.dumps(r["metadata"]),
                    "embedding": None if vector is None else embedding_to_json(vector),
                    "chunk_category": r["category"],
                    "confidence": r["confidence"],
                    "validated_at": validated_at,
                }
            )
        return chunks, legacy_rows

    lead_chunks, lead_rows = deal_rows(lead, {"qualification_id": qid}, "L")
    agent_chunks, agent_rows = deal_rows(agent, {"pre_qualification_id": pqid}, "A")
    await dv.insert_deal_chunks(pool, [*lead_chunks, *agent_chunks])
    raw_chunks, raw_rows = [], []
    for i, r in enumerate(raw):
        vector = with_cosine(q, keep_off(r["cos"], thresholds), rng)
        raw_chunks.append(
            dv.RawChunk(
                id=f"R{i:02d}-{tag}",
                chunk_index=i,
                content=f"r{i}",
                token_count=r["tokens"],
                embedding=vector,
                metadata=r["metadata"],
            )
        )
        raw_rows.append(
            {
                "id": f"R{i:02d}-{tag}",
                "chunk_index": i,
                "content": f"r{i}",
                "token_count": r["tokens"],
                "embedding": embedding_to_json(vector),
                "metadata": None if r["metadata"] is None else json.dumps(r["metadata"]),
            }
        )
    await dv.replace_raw_chunks(pool, pqid, raw_chunks)
    for pq_id, r in zip(pq_ids[1:], pqs, strict=True):
        await dv.set_description_embedding(pool, pq_id, with_cosine(q, keep_off(r["cos"], thresholds), rng))
        if r["requirements"]:
            await pool.execute(
                'UPDATE pre_qualifications SET extracted_requirements = \'{"customerName": "c"}\' WHERE id = $1',
                pq_id,
            )

    # ---- lead retrieval (queryRagForLead)
    ours = await dv.search_deal_embeddings(
        pool,
        q32,
        qualification_id=qid,
        threshold=0.3,
        limit=p["max_results"],
        agent_names=p["lead_agents"],
        chunk_categories=p["categories"],
        min_confidence=p["min_confidence"],
        only_validated=p["only_validated"],
        filter_fallback=True,
    )
    ref = legacy.query_rag_for_lead(
        lead_rows,
        query,
        agent_name_filter=p["lead_agents"],
        max_results=p["max_results"],
        chunk_categories=p["categories"],
        min_confidence=p["min_confidence"],
        only_validated=p["only_validated"],
        swallow_errors=False,
    )
    assert_same_ranking(ranked(ours), ranked_ref(ref), limit=p["max_results"], what="lead")
    by_id = {r["chunkId"]: r for r in ref}
    for hit in ours:
        r = by_id.get(hit.chunk_id)
        if r is not None:
            assert (
                hit.agent_name,
                hit.chunk_type,
                hit.metadata,
                hit.chunk_category,
                hit.confidence,
                hit.is_validated,
            ) == (
                r["agentName"],
                r["chunkType"],
                r["metadata"],
                r["chunkCategory"],
                r["chunkConfidence"],
                r["isValidated"],
            )
    if [h.chunk_id for h in ours] == [r["chunkId"] for r in ref]:
        score = dv.section_confidence(ours)
        assert abs(score - legacy.calculate_confidence_score(ref)) <= (
            0 if all(abs(h.similarity - r["similarity"]) <= 1e-9 for h, r in zip(ours, ref, strict=True)) else 1
        )

    # ---- agent retrieval (queryRAG)
    ours = await dv.search_deal_embeddings(
        pool,
        q32,
        pre_qualification_id=pqid,
        threshold=0.7,
        limit=p["max_results"],
        tech_stack=p["tech"],
        filter_fallback=True,
    )
    ref = legacy.query_rag(
        agent_rows, query, tech_stack_filter=p["tech"], max_results=p["max_results"], swallow_errors=False
    )
    assert_same_ranking(ranked(ours), ranked_ref(ref), limit=p["max_results"], what="agent")

    # ---- raw retrieval (queryRawChunks)
    ours_raw = await dv.search_raw_chunks(pool, q32, pre_qualification_id=pqid, limit=p["max_results"])
    ref = legacy.query_raw_chunks(raw_rows, query, max_results=p["max_results"], swallow_errors=False)
    assert_same_ranking(ranked(ours_raw), ranked_ref(ref), limit=p["max_results"], what="raw")
    for hit, r in zip(ours_raw, ref, strict=True):
        if hit.chunk_id == r["chunkId"]:
            assert (hit.metadata, hit.token_count, hit.chunk_index) == (r["metadata"], r["tokenCount"], r["chunkIndex"])

    # ---- deep-scan expert (queryLeadRag): substring filter, threshold 0.2, top-k fallback
    ours = await dv.search_deal_embeddings(
        pool,
        q32,
        qualification_id=qid,
        threshold=0.2,
        limit=10,
        agent_name_contains=p["deep_filter"],
        fallback_to_top_k=True,
    )
    ref = legacy.query_lead_rag(lead_rows, query, agent_filter=p["deep_filter"], swallow_errors=False)
    assert_same_ranking(ranked(ours), ranked_ref(ref, "id"), limit=10, what="deep-scan")

    # ---- search action (searchSimilar)
    owners: dict[str, Any] = {
        "lead": {"qualification_id": qid},
        "agent": {"pre_qualification_id": pqid},
        "both": {"qualification_id": qid, "pre_qualification_id": pqid},
    }[p["similar_owners"]]
    ours_similar = await dv.search_similar(
        pool,
        q32,
        threshold=p["similar_threshold"],
        limit=p["similar_limit"],
        include_raw_chunks=p["include_raw"],
        **owners,
    )
    ref = legacy.search_similar(
        query,
        lead_rows=lead_rows if "qualification_id" in owners else None,
        agent_rows=agent_rows if "pre_qualification_id" in owners else None,
        raw_rows=raw_rows,
        threshold=p["similar_threshold"],
        max_results=p["similar_limit"],
        include_raw_chunks=p["include_raw"],
        swallow_errors=False,
    )
    assert_same_ranking(
        [(f"{h.source}:{h.id}", h.similarity) for h in ours_similar],
        [(f"{r['source']}:{r['id']}", r["similarity"]) for r in ref],
        limit=p["similar_limit"],
        what="similar",
    )

    # ---- duplicate check, semantic step (over every pre-qualification in the database)
    exclude = pq_ids[1] if p["exclude"] and len(pq_ids) > 1 else None
    stored = await pool.fetch("SELECT id, extracted_requirements, description_embedding FROM pre_qualifications")
    pq_rows = [
        {
            "id": r["id"],
            "extracted_requirements": r["extracted_requirements"],
            "description_embedding": None
            if r["description_embedding"] is None
            else embedding_to_json(r["description_embedding"]),
        }
        for r in stored
    ]
    ours_dup = await dv.find_similar_pre_qualifications(pool, q32, exclude_id=exclude)
    ref_dup = legacy.duplicate_semantic_matches(pq_rows, query, exclude_id=exclude)
    ref_dup.sort(key=lambda m: -m["cosine"])  # the old sort was by integer percent; ours refines it by cosine
    assert_same_ranking(
        [(m.pre_qualification_id, m.similarity) for m in ours_dup],
        [(m["id"], m["cosine"]) for m in ref_dup],
        limit=None,
        what="duplicates",
    )
    assert {m.pre_qualification_id: m.similarity_percent for m in ours_dup} == {
        m["id"]: m["similarity"] for m in ref_dup
    }
