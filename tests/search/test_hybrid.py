"""Hybrid search (full-text + vector, reciprocal rank fusion) and the full-text columns (migration 005).

Expected results come from an independent computation: numpy float64 cosines of the stored
vectors (small integers, so pgvector's float32 sums are exact and ties are real ties), the
``ts_rank_cd`` values PostgreSQL gives for ``to_tsvector('german', content)`` fetched in a
separate query, and reciprocal rank fusion written out in Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hybrid_corpus import build_corpus, recall_at
from hybrid_reference import (
    PQ_TIES,
    Q_TIES,
    QUERY,
    assert_same,
    expected_hybrid,
    insert_tie_data,
    int_vector,
    observed,
    tie_rows,
)

import dealhunter_vectors as dv
from dealhunter_vectors.db.fulltext import set_text_search_config, text_search_config
from dealhunter_vectors.errors import ConfigurationError, InvalidQueryTextError
from dealhunter_vectors.models import HybridRawChunkHit
from dealhunter_vectors.search.hybrid import (
    MAX_QUERY_TEXT_CHARS,
    hybrid_search_deal_embeddings,
    hybrid_search_raw_chunks,
)
from dealhunter_vectors.testing import seed_owners

Q_CORPUS = "q-corpus"
Q_GERMAN = "q-german"


@pytest.fixture(scope="module")
async def pool(dhv_module_pool: dv.Pool) -> dv.Pool:
    db = dhv_module_pool
    await seed_owners(db, pre_qualification_ids=[PQ_TIES], qualification_ids=[Q_TIES, Q_CORPUS, Q_GERMAN])
    await insert_tie_data(db)
    corpus = build_corpus(n_docs=120, n_queries=10, prefix="c")
    await db.executemany(
        "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content, embedding)"
        " VALUES ($1, $2, 'agent', 'text', $3, $4)",
        [(d.id, Q_CORPUS, d.content, d.embedding) for d in corpus.docs],
    )
    return db


# --------------------------------------------------------------------------- fusion and ranks


CASES = [
    pytest.param({}, id="defaults"),
    pytest.param({"limit": 20}, id="limit20"),
    pytest.param({"limit": 10, "candidates": 10}, id="candidates10"),
    pytest.param({"limit": 8, "rrf_k": 0, "text_weight": 2.0, "vector_weight": 0.5}, id="k0-weights"),
    pytest.param({"limit": 30, "rrf_k": 1.5, "candidates": 40}, id="k1.5"),
    pytest.param({"limit": 12, "threshold": 0.6}, id="threshold"),
    pytest.param({"limit": 48, "threshold": 0.6}, id="threshold-all"),
    pytest.param({"limit": 25, "candidates": 25, "rrf_k": 2}, id="candidates25"),
    pytest.param({"limit": 12, "text_weight": 0.0}, id="text-weight-0"),
    pytest.param({"limit": 12, "vector_weight": 0.0}, id="vector-weight-0"),
]


TEXT_QUERIES = ["TYPO3 Angebot", "Relaunch", "Drupal or Wartung", '"Relaunch der Webseite" -Drupal']


@pytest.mark.parametrize("options", CASES)
@pytest.mark.parametrize("text", TEXT_QUERIES)
async def test_deal_fusion_equals_independent_rrf(pool: dv.Pool, text: str, options: dict[str, Any]) -> None:
    got = await hybrid_search_deal_embeddings(pool, text, QUERY, qualification_id=Q_TIES, **options)
    want = await expected_hybrid(pool, "deal_embeddings", "qualification_id", Q_TIES, text, QUERY, **options)
    assert_same(observed(got), want)
    assert len(got) == min(options.get("limit", 5), len(want))


async def test_the_tie_data_has_ties(pool: dv.Pool) -> None:
    want = await expected_hybrid(pool, "deal_embeddings", "qualification_id", Q_TIES, "TYPO3 Angebot", QUERY, limit=48)
    # equal fused scores (a row only in one leg at the rank of a row only in the other) occur
    # in the cases the fusion test compares
    tied_cases = []
    for text in TEXT_QUERIES:
        for case in CASES:
            options = case.values[0]
            assert isinstance(options, dict)
            got = await expected_hybrid(pool, "deal_embeddings", "qualification_id", Q_TIES, text, QUERY, **options)
            fused = [w["fused_score"] for w in got]
            if len(set(fused)) < len(fused):
                tied_cases.append((text, case.id))
    assert len(tied_cases) >= 3, tied_cases
    sims = [w["similarity"] for w in want if w["similarity"] is not None]
    assert len(set(sims)) < len(sims)
    scores = [w["text_score"] for w in want if w["text_score"] is not None]
    assert len(set(scores)) < len(scores)


@pytest.mark.parametrize("text", ["TYPO3 Angebot", "Relaunch", None, "der die das"])
@pytest.mark.parametrize("with_vector", [True, False])
async def test_raw_fusion_equals_independent_rrf(pool: dv.Pool, text: str | None, with_vector: bool) -> None:
    if text is None and not with_vector:
        with pytest.raises(ValueError, match="query_text and/or query_embedding"):
            await hybrid_search_raw_chunks(pool, None, None, pre_qualification_id=PQ_TIES)
        return
    query = QUERY if with_vector else None
    got = await hybrid_search_raw_chunks(pool, text, query, pre_qualification_id=PQ_TIES, limit=15, threshold=0.1)
    want = await expected_hybrid(
        pool, "raw_chunks", "pre_qualification_id", PQ_TIES, text, query, limit=15, threshold=0.1
    )
    assert_same(observed(got), want)
    assert all(isinstance(h, HybridRawChunkHit) for h in got)
    if got:
        assert got[0].metadata == {"startPosition": 0, "endPosition": 0, "type": "unknown"}


FILTERS = [
    pytest.param({"agent_names": ["tech", "legal"]}, lambda r: r["agent_name"] in ("tech", "legal"), id="agents"),
    pytest.param({"agent_name_contains": "EG"}, lambda r: "eg" in r["agent_name"].lower(), id="agent-contains"),
    pytest.param({"chunk_categories": ["fact"]}, lambda r: r["chunk_category"] == "fact", id="categories"),
    pytest.param({"min_confidence": 50}, lambda r: r["confidence"] >= 50, id="min-confidence"),
]


@pytest.mark.parametrize(("options", "keep"), FILTERS)
async def test_filters_apply_to_both_legs(
    pool: dv.Pool, options: dict[str, Any], keep: Callable[[dict[str, Any]], bool]
) -> None:
    got = await hybrid_search_deal_embeddings(
        pool, "TYPO3 or Relaunch", QUERY, qualification_id=Q_TIES, limit=40, **options
    )
    want = await expected_hybrid(
        pool, "deal_embeddings", "qualification_id", Q_TIES, "TYPO3 or Relaunch", QUERY, limit=40, keep=keep
    )
    assert_same(observed(got), want)


async def test_text_only_and_vector_only(pool: dv.Pool) -> None:
    text_only = await hybrid_search_deal_embeddings(pool, "TYPO3", None, qualification_id=Q_TIES, limit=10)
    assert text_only and all(h.vector_rank is None and h.similarity is None for h in text_only)
    assert [h.text_rank for h in text_only] == list(range(1, len(text_only) + 1))
    # rows without an embedding are found by their text
    null_embedding = {r["id"] for r in tie_rows() if r["embedding"] is None and "TYPO3" in r["content"]}
    everything = await hybrid_search_deal_embeddings(pool, "TYPO3", None, qualification_id=Q_TIES, limit=48)
    assert null_embedding and null_embedding <= {h.chunk_id for h in everything}

    vector_only = await hybrid_search_deal_embeddings(
        pool, None, QUERY, qualification_id=Q_TIES, limit=10, threshold=0.3
    )
    plain = await dv.search_deal_embeddings(pool, QUERY, qualification_id=Q_TIES, limit=10, threshold=0.3)
    assert [h.chunk_id for h in vector_only] == [h.chunk_id for h in plain]
    assert [h.similarity for h in vector_only] == [h.similarity for h in plain]
    assert all(h.text_rank is None and h.text_score is None for h in vector_only)
    # text without any word is no text leg: the vector-only result
    for blank in ["", "   ", "der die das", "&|!():*"]:
        got = await hybrid_search_deal_embeddings(pool, blank, QUERY, qualification_id=Q_TIES, limit=10, threshold=0.3)
        assert [h.chunk_id for h in got] == [h.chunk_id for h in plain], blank


async def test_unknown_owner_and_bad_arguments(pool: dv.Pool) -> None:
    assert await hybrid_search_deal_embeddings(pool, "TYPO3", QUERY, qualification_id="nobody") == []
    assert await hybrid_search_raw_chunks(pool, "TYPO3", QUERY, pre_qualification_id="nobody") == []
    bad: list[tuple[dict[str, Any], str]] = [
        ({"qualification_id": Q_TIES, "pre_qualification_id": PQ_TIES}, "exactly one"),
        ({}, "exactly one"),
        ({"qualification_id": Q_TIES, "limit": 0}, "limit"),
        ({"qualification_id": Q_TIES, "candidates": 3}, "candidates"),
        ({"qualification_id": Q_TIES, "candidates": 0}, "candidates"),
        ({"qualification_id": Q_TIES, "rrf_k": -1}, "rrf_k"),
        ({"qualification_id": Q_TIES, "rrf_k": math.nan}, "rrf_k"),
        ({"qualification_id": Q_TIES, "text_weight": 0, "vector_weight": 0}, "both 0"),
        ({"qualification_id": Q_TIES, "vector_weight": -0.5}, "vector_weight"),
        ({"qualification_id": Q_TIES, "threshold": 2}, "threshold"),
        ({"qualification_id": Q_TIES, "mmr_lambda": 1.5}, "mmr_lambda"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            await hybrid_search_deal_embeddings(pool, "TYPO3", QUERY, **kwargs)
    with pytest.raises(dv.InvalidEmbeddingError):
        await hybrid_search_deal_embeddings(pool, "TYPO3", [1.0, 2.0], qualification_id=Q_TIES)
    with pytest.raises(InvalidQueryTextError, match="query_text"):
        await hybrid_search_deal_embeddings(pool, 42, QUERY, qualification_id=Q_TIES)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- hostile query text

HOSTILE = [
    "'",
    '"',
    '"""',
    "''; DROP TABLE deal_embeddings; --",
    "&|!():*",
    "TYPO3 & | ! ( ) : *",
    "TYPO3 <-> Angebot",
    "<->",
    "!!!TYPO3",
    "TYPO3:*",
    "(TYPO3",
    "TYPO3)",
    "\\",
    "\\\\TYPO3\\",
    "TYPO3\\' OR 1=1",
    "-",
    "or",
    "-TYPO3",
    "TYPO3 or",
    "a\x00b",
    "\x00",
    "TYPO3\x00Angebot",
    "$1 $$ $tag$",
    "%_",
    "😀 TYPO3 🚀",
    "\u200b\ufeff",
    "TYPO3\n\t\r",
    " ".join(["TYPO3 or"] * 400)[:MAX_QUERY_TEXT_CHARS],
    "x" * MAX_QUERY_TEXT_CHARS,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_query_text_gives_a_result(pool: dv.Pool, text: str) -> None:
    for vector in (QUERY, None):
        got = await hybrid_search_deal_embeddings(pool, text, vector, qualification_id=Q_TIES, limit=5)
        assert isinstance(got, list)
        raw = await hybrid_search_raw_chunks(pool, text, vector, pre_qualification_id=PQ_TIES, limit=5)
        assert isinstance(raw, list)
    assert await pool.fetchval("SELECT count(*) FROM deal_embeddings WHERE qualification_id = $1", Q_TIES) == 48


async def test_nul_is_a_space(pool: dv.Pool) -> None:
    with_nul = await hybrid_search_deal_embeddings(pool, "TYPO3\x00Angebot", None, qualification_id=Q_TIES, limit=20)
    with_space = await hybrid_search_deal_embeddings(pool, "TYPO3 Angebot", None, qualification_id=Q_TIES, limit=20)
    assert observed(with_nul) == observed(with_space) != []


@pytest.mark.parametrize(
    "text",
    ["x" * (MAX_QUERY_TEXT_CHARS + 1), "TYPO3 " * 20_000, "\ud800", "TYPO3 \udfff"],
    ids=["4097", "100KB", "surrogate", "low"],
)
async def test_unusable_query_text_is_a_typed_error(pool: dv.Pool, text: str) -> None:
    with pytest.raises(InvalidQueryTextError, match="query_text") as info:
        await hybrid_search_deal_embeddings(pool, text, QUERY, qualification_id=Q_TIES)
    assert isinstance(info.value, ValueError) and isinstance(info.value, dv.DealhunterVectorsError)
    with pytest.raises(InvalidQueryTextError):
        await hybrid_search_raw_chunks(pool, text, None, pre_qualification_id=PQ_TIES)


# --------------------------------------------------------------------------- German text


GERMAN = {
    "g1": "Wir senden Ihnen unser Angebot für den Relaunch.",
    "g2": "Die Straße vor dem Rathaus wird saniert.",
    "g3": "Die Strasse am Bahnhof bleibt gesperrt.",
    "g4": "Viele Grüße aus dem Vertrieb, Ihr Team Müller.",
    "g5": "Öffnungszeiten der Behörde und Größe der Abteilung.",
    "g6": "Ausschreibungen der Stadt Köln für 2025.",
    "g7": "Die Ausschreibung wurde veröffentlicht.",
}


@pytest.fixture(scope="module")
async def german(pool: dv.Pool) -> dv.Pool:
    await pool.executemany(
        "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content)"
        " VALUES ($1, $2, 'agent', 'text', $3)",
        [(i, Q_GERMAN, text) for i, text in GERMAN.items()],
    )
    return pool


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Angebote", {"g1"}),  # plural finds singular (stemming)
        ("Angebot", {"g1"}),
        ("Angeboten", {"g1"}),
        ("Straße", {"g2", "g3"}),  # ß and ss
        ("Strasse", {"g2", "g3"}),
        ("STRASSE", {"g2", "g3"}),
        ("Grüße", {"g4"}),
        ("Müller", {"g4"}),
        ("Muller", {"g4"}),  # umlauts folded by the German stemmer
        ("Größe", {"g5"}),
        ("Behörden", {"g5"}),
        ("Ausschreibung", {"g6", "g7"}),
        ("Köln", {"g6"}),
        ('"Stadt Köln"', {"g6"}),
        ("Ausschreibung -Köln", {"g7"}),
        ("Rathaus or Bahnhof", {"g2", "g3"}),
    ],
)
async def test_german_stemming_umlauts_and_eszett(german: dv.Pool, query: str, expected: set[str]) -> None:
    got = await hybrid_search_deal_embeddings(german, query, None, qualification_id=Q_GERMAN, limit=10)
    assert {h.chunk_id for h in got} == expected


# --------------------------------------------------------------------------- exact terms: hybrid vs vector-only


async def test_hybrid_finds_exact_terms_that_vector_search_misses(pool: dv.Pool) -> None:
    corpus = build_corpus(n_docs=120, n_queries=10, prefix="c")
    recalls: dict[str, list[float]] = {"vector": [], "text": [], "hybrid": []}
    for query in corpus.queries:
        vector = await dv.search_deal_embeddings(pool, query.embedding, qualification_id=Q_CORPUS, threshold=-1.0)
        text = await hybrid_search_deal_embeddings(pool, query.term, None, qualification_id=Q_CORPUS)
        hybrid = await hybrid_search_deal_embeddings(pool, query.term, query.embedding, qualification_id=Q_CORPUS)
        ids = {
            name: [h.chunk_id for h in hits] for name, hits in (("vector", vector), ("text", text), ("hybrid", hybrid))
        }
        assert set(query.needles) <= set(ids["hybrid"]), query.term  # found by hybrid
        assert not set(query.needles) & set(ids["vector"]), query.term  # missed by vector-only
        assert set(query.needles) <= set(ids["text"]), query.term
        for name in recalls:
            recalls[name].append(recall_at(ids[name], query.relevant))
    mean = {name: sum(values) / len(values) for name, values in recalls.items()}
    assert mean["hybrid"] > max(mean["vector"], mean["text"])


# --------------------------------------------------------------------------- columns, writes, configuration


async def test_write_paths_fill_the_generated_column(dhv_pool: dv.Pool) -> None:
    await seed_owners(dhv_pool, pre_qualification_ids=["pq-w"], qualification_ids=["q-w"])
    vec = int_vector([1, 2, 3])
    [chunk_id] = await dv.insert_deal_chunks(
        dhv_pool,
        [
            dv.DealChunk(
                qualification_id="q-w", agent_name="a", chunk_type="t", content="Angebote für TYPO3", embedding=vec
            )
        ],
    )
    await dv.replace_raw_chunks(
        dhv_pool, "pq-w", [dv.RawChunk(chunk_index=0, content="Straßenbau mit Drupal", token_count=3, embedding=vec)]
    )
    assert await dhv_pool.fetchval("SELECT content_tsv::text FROM deal_embeddings WHERE id = $1", chunk_id) == (
        "'angebot':1 'typo3':3"
    )
    assert await dhv_pool.fetchval("SELECT content_tsv::text FROM raw_chunks") == "'drupal':3 'strassenbau':1"
    await dhv_pool.execute("UPDATE deal_embeddings SET content = 'Schulung' WHERE id = $1", chunk_id)
    assert await dhv_pool.fetchval("SELECT content_tsv::text FROM deal_embeddings WHERE id = $1", chunk_id) == (
        "'schulung':1"
    )
    # only the first 250,000 characters are indexed: a huge chunk never fails the write
    huge = " ".join(f"w{i:07d}" for i in range(120_000))
    await dhv_pool.execute("UPDATE deal_embeddings SET content = $2 WHERE id = $1", chunk_id, huge)
    assert await dhv_pool.fetchval("SELECT length(content_tsv) FROM deal_embeddings WHERE id = $1", chunk_id) == len(
        huge[:250_000].split()
    )


async def test_text_search_config_is_a_setting(dhv_pool: dv.Pool) -> None:
    await seed_owners(dhv_pool, qualification_ids=["q-c"])
    await dhv_pool.executemany(
        "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content) VALUES ($1, 'q-c', 'a',"
        " 't', $2)",
        [("c1", "Unser Angebot"), ("c2", "the offers we make"), ("c3", "die Angebote")],
    )

    async def found(text: str) -> set[str]:
        return {h.chunk_id for h in await hybrid_search_deal_embeddings(dhv_pool, text, None, qualification_id="q-c")}

    assert await text_search_config(dhv_pool) == "german"
    assert await found("Angebote") == {"c1", "c3"}
    assert await set_text_search_config(dhv_pool, "simple") is True
    assert await text_search_config(dhv_pool) == "simple"
    assert await found("Angebote") == {"c3"}  # no stemming
    assert await found("die") == {"c3"}  # no stop words
    assert await set_text_search_config(dhv_pool, "english") is True
    assert await found("offer") == {"c2"}
    assert await set_text_search_config(dhv_pool, "english") is False  # already in force
    with pytest.raises(ConfigurationError, match="klingon"):
        await set_text_search_config(dhv_pool, "klingon")
    with pytest.raises(ConfigurationError):
        await set_text_search_config(dhv_pool, "german'; DROP TABLE x; --")
    assert await text_search_config(dhv_pool) == "english"  # unchanged by the failures
    assert await set_text_search_config(dhv_pool, "german") is True
    assert await found("Angebote") == {"c1", "c3"}
    indexes = await dhv_pool.fetch(
        "SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%gin (content_tsv)%' ORDER BY 1"
    )
    assert [r["indexname"] for r in indexes] == ["deal_embeddings_content_tsv_idx", "raw_chunks_content_tsv_idx"]
    assert (await dv.schema_status(dhv_pool)).up_to_date  # no migration checksum touched


async def test_apply_schema_sets_the_text_search_config(dhv_pool: dv.Pool) -> None:
    assert await dv.apply_schema(dhv_pool, text_search_config="simple") == []  # nothing pending, config rebuilt
    assert await dv.text_search_config(dhv_pool) == "simple"
    assert await dv.apply_schema(dhv_pool, text_search_config="simple") == []
    assert await dv.apply_schema(dhv_pool) == [] and await dv.text_search_config(dhv_pool) == "simple"  # kept
    with pytest.raises(ConfigurationError, match="migration 005"):
        await dv.apply_schema(dhv_pool, target=4, text_search_config="simple")
    with pytest.raises(ConfigurationError, match="nope"):
        await dv.apply_schema(dhv_pool, text_search_config="nope")
