"""LlamaIndex adapter (issue 21): the store against llama-index-core's own contract.

llama-index-core ships no test suite for vector stores (unlike langchain-tests), so the
contract is checked two ways: against **its own reference store**, ``SimpleVectorStore``
(the same nodes and ``VectorStoreQuery``: same ids, same cosine similarities, in the same
order), and through its retrieval path (``VectorStoreIndex.from_vector_store(...)
.as_retriever().aretrieve``) for the behaviour its docs specify (``similarity_top_k``,
metadata filters, MMR, nodes returned as they were added). MMR is checked against numpy's
standard MMR (max similarity to every chosen node), which is what the library computes;
``SimpleVectorStore``'s MMR penalises only the most recently chosen node, so the two can
differ (docs/integrations.md). Writes (``async_add``, ``adelete`` by ``ref_doc_id``,
``adelete_nodes``) are mirrored in ``SimpleVectorStore`` and compared after each step; that
they stay with the store's owner is checked with plain SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

pytest.importorskip("llama_index.core", reason="the [llama-index] extra is not installed")

from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.core.vector_stores.utils import node_to_metadata_dict

import dealhunter_vectors as dv
from dealhunter_vectors.errors import AsyncOnlyError, InvalidArgumentError, InvalidEmbeddingError
from dealhunter_vectors.integrations.llama_index import DealChunkVectorStore
from dealhunter_vectors.testing import seed_owners

DIM = 3072
QUAL = "q-li"
N = 24


def _vectors() -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(21)
    centres = rng.standard_normal((4, DIM))
    return np.stack([centres[i % 4] + 0.4 * rng.standard_normal(DIM) for i in range(N)]).astype(np.float32)


VECS = _vectors()
QUERY = (VECS[0] + 0.6 * np.random.default_rng(5).standard_normal(DIM)).astype(np.float32)


def _nodes() -> list[TextNode]:
    return [
        TextNode(
            id_=f"n{i:02d}",
            text=f"Absatz {i}: " + ("Wartungsvertrag" if i % 4 == 1 else "Hosting und Betrieb"),
            metadata={"page": i, "section": f"s{i % 3}"},
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{i % 3}")},
            embedding=VECS[i].tolist(),
        )
        for i in range(N)
    ]


NODES = _nodes()
AGENTS = ["lead" if i % 2 else "agent" for i in range(N)]
CONFIDENCE = [10 * (i % 10) for i in range(N)]


class FixedQueryEmbedding(BaseEmbedding):
    """Every query embeds to QUERY (the retrieval path's embed model)."""

    def _get_query_embedding(self, query: str) -> list[float]:
        return QUERY.tolist()  # type: ignore[no-any-return]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return QUERY.tolist()  # type: ignore[no-any-return]

    def _get_text_embedding(self, text: str) -> list[float]:
        raise AssertionError("the test never embeds documents")


@pytest_asyncio.fixture(scope="module")
async def db_url(dhv_database_factory: Any) -> str:
    """The nodes written as LlamaIndex's stores write them (node_to_metadata_dict), by the library's insert."""
    url: str = await dhv_database_factory()
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        await seed_owners(pool, qualification_ids=[QUAL])
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(
                    id=n.node_id,
                    qualification_id=QUAL,
                    agent_name=AGENTS[i],
                    chunk_type="node",
                    chunk_index=i,
                    content=n.get_content(),
                    metadata=node_to_metadata_dict(n, remove_text=True),
                    embedding=VECS[i],
                    confidence=CONFIDENCE[i],
                )
                for i, n in enumerate(NODES)
            ],
        )
    return url


@pytest_asyncio.fixture
async def store(db_url: str) -> AsyncIterator[DealChunkVectorStore]:
    async with dv.open_pool(db_url, min_size=1, max_size=2) as pool:
        yield DealChunkVectorStore(pool, qualification_id=QUAL)


def _reference() -> SimpleVectorStore:
    ref = SimpleVectorStore()
    ref.add([n.model_copy() for n in NODES])
    return ref


def _cos() -> np.ndarray[Any, Any]:
    m, q = VECS.astype(np.float64), QUERY.astype(np.float64)
    return (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))


async def test_default_query_matches_llama_index_reference_store(store: DealChunkVectorStore) -> None:
    for k in (1, 5, N):
        query = VectorStoreQuery(query_embedding=QUERY.tolist(), similarity_top_k=k)
        ours = await store.aquery(query)
        ref = _reference().query(query)
        assert ours.ids == ref.ids
        assert ours.similarities == pytest.approx(ref.similarities, abs=1e-6)
    # nodes come back as they were added: text, metadata, source document
    by_id = {n.node_id: n for n in NODES}
    assert ours.nodes is not None
    for node in ours.nodes:
        original = by_id[node.node_id]
        assert node.get_content() == original.get_content()
        assert node.metadata == original.metadata
        assert node.ref_doc_id == original.ref_doc_id
        assert node.embedding is None  # never shipped back


async def test_the_frameworks_retrieval_path(store: DealChunkVectorStore) -> None:
    index = VectorStoreIndex.from_vector_store(store, embed_model=FixedQueryEmbedding())
    found = await index.as_retriever(similarity_top_k=4).aretrieve("egal")
    expected = [f"n{i:02d}" for i in np.argsort(-_cos(), kind="stable")[:4]]
    assert [r.node.node_id for r in found] == expected
    assert [r.score for r in found] == pytest.approx([float(_cos()[int(i[1:])]) for i in expected], abs=1e-6)
    leads = MetadataFilters(filters=[MetadataFilter(key="agent_name", value="lead")])
    filtered = await index.as_retriever(similarity_top_k=3, filters=leads).aretrieve("egal")
    lead_order = [i for i in np.argsort(-_cos(), kind="stable") if AGENTS[i] == "lead"][:3]
    assert [r.node.node_id for r in filtered] == [f"n{i:02d}" for i in lead_order]


def _standard_mmr(k: int, fetch_k: int, lam: float) -> list[str]:
    sims = _cos()
    cand = list(np.argsort(-sims, kind="stable")[:fetch_k])
    unit = VECS.astype(np.float64) / np.linalg.norm(VECS.astype(np.float64), axis=1, keepdims=True)
    chosen: list[int] = []
    while cand and len(chosen) < k:
        scores = [
            lam * sims[i] - (1 - lam) * max((float(unit[i] @ unit[j]) for j in chosen), default=0.0) for i in cand
        ]
        best = cand[int(np.argmax(scores))]  # first maximum: the better-ranked candidate
        chosen.append(best)
        cand.remove(best)
    return [f"n{i:02d}" for i in chosen]


async def test_mmr_mode(store: DealChunkVectorStore) -> None:
    for lam in (0.2, 0.5, 0.9):
        query = VectorStoreQuery(
            query_embedding=QUERY.tolist(), similarity_top_k=4, mode=VectorStoreQueryMode.MMR, mmr_threshold=lam
        )
        ours = await store.aquery(query, mmr_prefetch_k=12)
        assert ours.ids == _standard_mmr(4, 12, lam), lam
    default = VectorStoreQuery(query_embedding=QUERY.tolist(), similarity_top_k=3, mode=VectorStoreQueryMode.MMR)
    assert (await store.aquery(default, mmr_prefetch_factor=4)).ids == _standard_mmr(3, 12, 0.5)
    assert (await store.aquery(default)).ids == _standard_mmr(3, 20, 0.5)  # the library's default pool


async def test_filters_map_to_typed_filters_or_fail(store: DealChunkVectorStore) -> None:
    order = np.argsort(-_cos(), kind="stable")

    def expect(mask: Any, k: int = 5) -> list[str]:
        return [f"n{i:02d}" for i in order if mask(i)][:k]

    cases = [
        (MetadataFilter(key="agent_name", value=["lead"], operator=FilterOperator.IN), lambda i: AGENTS[i] == "lead"),
        (MetadataFilter(key="confidence", value=50, operator=FilterOperator.GTE), lambda i: CONFIDENCE[i] >= 50),
        (MetadataFilter(key="confidence", value=50, operator=FilterOperator.GT), lambda i: CONFIDENCE[i] > 50),
        (
            MetadataFilter(key="agent_name", value="LEA", operator=FilterOperator.TEXT_MATCH_INSENSITIVE),
            lambda i: AGENTS[i] == "lead",
        ),
    ]
    for flt, mask in cases:
        query = VectorStoreQuery(
            query_embedding=QUERY.tolist(), similarity_top_k=5, filters=MetadataFilters(filters=[flt])
        )
        assert (await store.aquery(query)).ids == expect(mask), flt
    both = MetadataFilters(
        filters=[
            MetadataFilter(key="agent_name", value="agent"),
            MetadataFilters(filters=[MetadataFilter(key="confidence", value=40, operator=FilterOperator.GTE)]),
        ]
    )
    query = VectorStoreQuery(query_embedding=QUERY.tolist(), similarity_top_k=5, filters=both)
    assert (await store.aquery(query)).ids == expect(lambda i: AGENTS[i] == "agent" and CONFIDENCE[i] >= 40)
    bad = [
        MetadataFilters(filters=[MetadataFilter(key="page", value=3)]),  # node metadata: no typed filter
        MetadataFilters(filters=[MetadataFilter(key="agent_name", value="x", operator=FilterOperator.NE)]),
        MetadataFilters(
            filters=[MetadataFilter(key="agent_name", value="a"), MetadataFilter(key="confidence", value=1)],
            condition=FilterCondition.OR,
        ),
    ]
    for filters in bad:
        with pytest.raises(InvalidArgumentError):
            await store.aquery(VectorStoreQuery(query_embedding=QUERY.tolist(), filters=filters))


async def test_hybrid_and_text_modes_are_the_librarys_fusion(store: DealChunkVectorStore) -> None:
    pool = store.client
    hybrid = VectorStoreQuery(
        query_embedding=QUERY.tolist(), query_str="Wartungsvertrag", similarity_top_k=5,
        mode=VectorStoreQueryMode.HYBRID, alpha=0.7,
    )  # fmt: skip
    ours = await store.aquery(hybrid)
    ref = await dv.hybrid_search_deal_embeddings(
        pool, "Wartungsvertrag", QUERY, qualification_id=QUAL, limit=5, vector_weight=0.7, text_weight=1 - 0.7
    )
    assert ours.ids == [h.chunk_id for h in ref] and ours.similarities == [h.fused_score for h in ref]
    text = VectorStoreQuery(query_str="Wartungsvertrag", similarity_top_k=10, mode=VectorStoreQueryMode.TEXT_SEARCH)
    assert set((await store.aquery(text)).ids or []) == {f"n{i:02d}" for i in range(N) if i % 4 == 1}


async def test_unsupported_queries_and_sync_calls_are_typed_errors(store: DealChunkVectorStore) -> None:
    with pytest.raises(InvalidArgumentError, match="svm"):
        await store.aquery(VectorStoreQuery(query_embedding=QUERY.tolist(), mode=VectorStoreQueryMode.SVM))
    with pytest.raises(InvalidArgumentError, match="ids"):
        await store.aquery(VectorStoreQuery(query_embedding=QUERY.tolist(), node_ids=["n01"]))
    with pytest.raises(InvalidEmbeddingError) as info:
        await store.aquery(VectorStoreQuery(query_embedding=[0.1] * 8))
    assert info.value.rule == "dimensions"
    with pytest.raises(AsyncOnlyError, match="aquery"):
        store.query(VectorStoreQuery(query_embedding=QUERY.tolist()))
    with pytest.raises(AsyncOnlyError, match="async_add"):
        store.add(NODES[:1])
    with pytest.raises(InvalidArgumentError, match="exactly one owner"):
        DealChunkVectorStore(store.client)


async def _owner_ids(pool: dv.Pool, owner: str) -> set[str]:
    """The ids stored for a qualification, by plain SQL."""
    rows = await pool.fetch('SELECT "id" FROM "deal_embeddings" WHERE "qualification_id" = $1', owner)
    return {r["id"] for r in rows}


async def test_writes_match_the_reference_store_and_stay_with_their_owner(dhv_pool: dv.Pool) -> None:
    """Every write mirrored in SimpleVectorStore: after each, a query over all nodes gives the
    same ids and similarities; another owner's nodes of the same source documents stay."""
    await seed_owners(dhv_pool, qualification_ids=["q-w", "q-x"])
    store = DealChunkVectorStore(dhv_pool, qualification_id="q-w")
    other = DealChunkVectorStore(dhv_pool, qualification_id="q-x")
    ref = SimpleVectorStore()
    query = VectorStoreQuery(query_embedding=QUERY.tolist(), similarity_top_k=N + 5)

    async def same_as_reference() -> None:
        ours, expected = await store.aquery(query), ref.query(query)
        assert ours.ids == expected.ids
        assert ours.similarities == pytest.approx(expected.similarities, abs=1e-6)

    orphan = TextNode(id_="orphan", text="ohne Quelle", embedding=VECS[3].tolist())  # no source document
    added = [*NODES, orphan]
    assert await store.async_add(added) == ref.add([n.model_copy() for n in added]) == [n.node_id for n in added]
    theirs = [n.model_copy(update={"id_": f"x-{n.node_id}"}) for n in NODES]
    await other.async_add(theirs)
    await same_as_reference()
    # an upsert: new text, metadata and source document (n02 moves from doc-2 to doc-1), no duplicate
    moved = NODES[2].model_copy(
        update={
            "text": "geändert",
            "metadata": {"page": 99},
            "relationships": {NodeRelationship.SOURCE: RelatedNodeInfo(node_id="doc-1")},
        }
    )
    assert await store.async_add([moved]) == ref.add([moved.model_copy()]) == ["n02"]
    await same_as_reference()
    (node,) = await store.aget_nodes(["n02"])
    assert (node.get_content(), node.metadata, node.ref_doc_id) == ("geändert", {"page": 99}, "doc-1")
    for ref_doc_id in ("doc-1", "no-such-document", "None"):  # "None": the nodes without a source
        await store.adelete(ref_doc_id)
        ref.delete(ref_doc_id)
        await same_as_reference()
    assert await _owner_ids(dhv_pool, "q-x") == {n.node_id for n in theirs}  # the same documents, untouched
    # the owner's nodes only: another owner's ids are skipped by reads and untouched by deletes
    assert [n.node_id for n in await store.aget_nodes(["x-n00", "n00", "missing", "n00"])] == ["n00"]
    await store.adelete_nodes(["n00", "x-n00", "missing"])
    ref.delete_nodes(["n00"])
    await same_as_reference()
    assert "x-n00" in await _owner_ids(dhv_pool, "q-x")
    with pytest.raises(InvalidArgumentError, match="id=x-n03"):
        await store.async_add([theirs[3]])  # never moved to this owner
    await store.aclear()
    assert await _owner_ids(dhv_pool, "q-w") == set()
    assert await _owner_ids(dhv_pool, "q-x") == {n.node_id for n in theirs}
    assert (await store.aquery(query)).ids == []
