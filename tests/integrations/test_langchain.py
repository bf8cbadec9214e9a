"""LangChain adapter (issue 21): our searches behind LangChain's VectorStore, and langchain-tests' own suite.

The read paths are checked against numpy (exact cosine top k, thresholds, standard MMR) on
rows written by the library's own write paths; the write paths (the library's upsert / get /
delete) are proven by ``langchain-tests``' ``VectorStoreIntegrationTests``, run unmodified
(its async half: ``has_sync = False`` is the suite's own switch; no test overridden, no
xfail). The suite's embeddings are 6-dimensional (``DeterministicFakeEmbedding``); the
store here gets them **zero-padded to 3072 dimensions** by the test (:class:`ZeroPadded`):
the dot product and both norms are unchanged by zeros, so every cosine is the 6-d one
(``test_zero_padding_keeps_every_cosine`` checks it on the suite's texts through a real
search). The adapter itself never pads: a 6-d query is an ``InvalidEmbeddingError``. What the
suite does not check (owner scoping, overwrites of every column, typed errors) the write
tests check with plain SQL on the tables.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
import pytest
import pytest_asyncio

pytest.importorskip("langchain_core", reason="the [langchain] extra is not installed")
pytest.importorskip("langchain_tests", reason="langchain-tests (the [dev] extra) is not installed")

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests.vectorstores import EMBEDDING_SIZE, VectorStoreIntegrationTests

import dealhunter_vectors as dv
from dealhunter_vectors import observe
from dealhunter_vectors.errors import AsyncOnlyError, InvalidArgumentError, InvalidEmbeddingError
from dealhunter_vectors.integrations.langchain import DealChunkVectorStore, HybridRetriever, RawChunkVectorStore
from dealhunter_vectors.testing import seed_owners

DIM = 3072
QUAL = "q-lc"
PREQ = "pq-lc"
N = 30


def _rows(seed: int) -> np.ndarray[Any, Any]:
    """Six clusters of five near-duplicates (MMR has something to diversify)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, DIM))
    out = np.stack([centres[i // 5] + 0.35 * rng.standard_normal(DIM) for i in range(N)])
    return out.astype(np.float32)


VECS = _rows(11)
RAW = _rows(12)
QUERIES = {
    f"frage {i}": (VECS[i * 5] + 0.5 * np.random.default_rng(100 + i).standard_normal(DIM)).astype(np.float32)
    for i in range(6)
}
TEXTS = [f"Wartungsvertrag Nummer {i}" if i % 3 == 0 else f"Angebot {i} Hosting" for i in range(N)]


class FixedEmbeddings(Embeddings):
    """Each known text has a fixed vector (the queries above); documents are never embedded here."""

    def __init__(self, table: dict[str, np.ndarray[Any, Any]]) -> None:
        self.table = table

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.table[t].tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.table[text].tolist()


class ZeroPadded(Embeddings):
    """Another model's vectors padded with zeros to 3072 dimensions (cosine unchanged; see the module docs)."""

    def __init__(self, inner: Embeddings, dims: int = DIM) -> None:
        self.inner = inner
        self.dims = dims

    def _pad(self, vector: list[float]) -> list[float]:
        return [*vector, *([0.0] * (self.dims - len(vector)))]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._pad(v) for v in self.inner.embed_documents(texts)]

    def embed_query(self, text: str) -> list[float]:
        return self._pad(self.inner.embed_query(text))


def _cos(m: np.ndarray[Any, Any], q: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    m64, q64 = m.astype(np.float64), q.astype(np.float64)
    return (m64 @ q64) / (np.linalg.norm(m64, axis=1) * np.linalg.norm(q64))


def _top(
    m: np.ndarray[Any, Any], q: np.ndarray[Any, Any], k: int, prefix: str, mask: Any = None
) -> list[tuple[str, float]]:
    sims = _cos(m, q)
    order = [i for i in np.argsort(-sims, kind="stable") if mask is None or mask[i]]
    return [(f"{prefix}{i:02d}", float(sims[i])) for i in order[:k]]


def _mmr(m: np.ndarray[Any, Any], q: np.ndarray[Any, Any], k: int, fetch_k: int, lam: float, prefix: str) -> list[str]:
    """Standard MMR (Carbonell & Goldstein): penalty = max similarity to every chosen one."""
    sims = _cos(m, q)
    cand = list(np.argsort(-sims, kind="stable")[:fetch_k])
    unit = m.astype(np.float64) / np.linalg.norm(m.astype(np.float64), axis=1, keepdims=True)
    chosen: list[int] = []
    while cand and len(chosen) < k:

        def score(i: int) -> float:
            penalty = max((float(unit[i] @ unit[j]) for j in chosen), default=0.0)
            return lam * sims[i] - (1 - lam) * penalty

        best = max(cand, key=lambda i: (score(i), -cand.index(i)))
        chosen.append(best)
        cand.remove(best)
    return [f"{prefix}{i:02d}" for i in chosen]


@pytest_asyncio.fixture(scope="module")
async def db_url(dhv_database_factory: Any) -> str:
    url: str = await dhv_database_factory()
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        await seed_owners(pool, qualification_ids=[QUAL], pre_qualification_ids=[PREQ])
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(
                    id=f"d{i:02d}",
                    qualification_id=QUAL,
                    agent_name="lead" if i % 2 else "agent",
                    chunk_type="text",
                    chunk_index=i,
                    content=TEXTS[i],
                    metadata={"n": i, "nested": {"even": i % 2 == 0}},
                    embedding=VECS[i],
                )
                for i in range(N)
            ],
        )
        await dv.replace_raw_chunks(
            pool,
            PREQ,
            [
                dv.RawChunk(
                    id=f"r{i:02d}", chunk_index=i, content=TEXTS[i], token_count=3, metadata={"n": i}, embedding=RAW[i]
                )
                for i in range(N)
            ],
        )
    return url


@pytest_asyncio.fixture
async def pool(db_url: str) -> AsyncIterator[dv.Pool]:
    async with dv.open_pool(db_url, min_size=1, max_size=2) as p:
        yield p


@pytest.fixture
def store(pool: dv.Pool) -> DealChunkVectorStore:
    return DealChunkVectorStore(pool, FixedEmbeddings(QUERIES), qualification_id=QUAL)


class Recorder:
    """An observe subscriber: the library calls the adapter made, with their attributes."""

    def __init__(self) -> None:
        self.calls: list[observe.Observation] = []

    def started(self, observation: observe.Observation) -> None:
        pass

    def finished(self, observation: observe.Observation) -> None:
        self.calls.append(observation)

    def measured(self, name: str, value: float, attributes: Any) -> None:
        pass


async def test_similarity_search_is_the_exact_top_k_with_cosine_scores(store: DealChunkVectorStore) -> None:
    q = QUERIES["frage 2"]
    found = await store.asimilarity_search_with_score("frage 2", k=7)
    expected = _top(VECS, q, 7, "d")
    assert [d.id for d, _ in found] == [i for i, _ in expected]
    assert [s for _, s in found] == pytest.approx([s for _, s in expected], abs=1e-6)
    first = found[0][0]
    n = int(first.id[1:])  # type: ignore[index]
    assert first.page_content == TEXTS[n] and first.metadata == {"n": n, "nested": {"even": n % 2 == 0}}
    docs = await store.asimilarity_search("frage 2", k=7)
    assert docs == [d for d, _ in found]
    assert await store.asimilarity_search_by_vector(q.tolist(), k=7) == docs


async def test_score_threshold_is_the_sql_threshold(store: DealChunkVectorStore) -> None:
    q = QUERIES["frage 4"]
    sims = _cos(VECS, q)
    ranked = np.sort(sims)
    threshold = float(ranked[-4] + ranked[-5]) / 2  # exactly 4 rows reach it (float32 scores: no boundary case)
    retriever = store.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": threshold, "k": 10}
    )
    recorder = Recorder()
    observe.subscribe(recorder)
    try:
        docs = await retriever.ainvoke("frage 4")
    finally:
        observe.unsubscribe(recorder)
    assert [d.id for d in docs] == [i for i, _ in _top(VECS, q, 4, "d")]
    (call,) = recorder.calls
    # the library's own search ran with the threshold (not -1 and a filter afterwards)
    assert call.name == "search_deal_embeddings" and call.attributes["threshold"] == threshold
    assert call.attributes["limit"] == 10 and call.attributes["result_count"] == 4


async def test_mmr_is_the_standard_mmr_over_fetch_k_candidates(store: DealChunkVectorStore) -> None:
    q = QUERIES["frage 1"]
    for lam in (0.0, 0.3, 0.5, 1.0):
        docs = await store.amax_marginal_relevance_search("frage 1", k=4, fetch_k=12, lambda_mult=lam)
        assert [d.id for d in docs] == _mmr(VECS, q, 4, 12, lam, "d"), lam
    retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 10, "lambda_mult": 0.25})
    assert [d.id for d in await retriever.ainvoke("frage 1")] == _mmr(VECS, q, 3, 10, 0.25, "d")


async def test_plain_retriever_and_typed_filters(store: DealChunkVectorStore) -> None:
    q = QUERIES["frage 3"]
    plain = await store.as_retriever(search_kwargs={"k": 5}).ainvoke("frage 3")
    assert [d.id for d in plain] == [i for i, _ in _top(VECS, q, 5, "d")]
    lead = np.array([i % 2 == 1 for i in range(N)])
    for flt in ({"agent_name": "lead"}, {"agent_names": ["lead"]}, {"agent_name": ["lead"]}):
        docs = await store.asimilarity_search("frage 3", k=5, filter=flt)
        assert [d.id for d in docs] == [i for i, _ in _top(VECS, q, 5, "d", lead)], flt
    with pytest.raises(InvalidArgumentError, match="'n'"):
        await store.asimilarity_search("frage 3", k=5, filter={"n": 3})
    with pytest.raises(InvalidArgumentError, match="given twice"):
        await store.asimilarity_search("frage 3", k=5, filter={"agent_name": "x", "agent_names": ["y"]})


async def test_hybrid_retriever_is_the_librarys_fusion(store: DealChunkVectorStore, pool: dv.Pool) -> None:
    q = QUERIES["frage 0"]
    expected = await dv.hybrid_search_deal_embeddings(pool, "frage 0", q, qualification_id=QUAL, limit=6)
    found = await store.ahybrid_search_with_score("frage 0", k=6)
    assert [d.id for d, _ in found] == [h.chunk_id for h in expected]
    assert [s for _, s in found] == [h.fused_score for h in expected]
    retriever = store.as_hybrid_retriever(k=6)
    assert isinstance(retriever, HybridRetriever)
    assert [d.id for d in await retriever.ainvoke("frage 0")] == [h.chunk_id for h in expected]
    # the text leg finds the term: text only, the library's answer, no embedding involved
    text_only = await store.ahybrid_search_with_score("Wartungsvertrag", k=10, with_vector=False)
    reference = await dv.hybrid_search_deal_embeddings(pool, "Wartungsvertrag", None, qualification_id=QUAL, limit=10)
    assert [d.id for d, _ in text_only] == [h.chunk_id for h in reference]
    assert {d.id for d, _ in text_only} == {f"d{i:02d}" for i in range(0, N, 3)}


async def test_raw_chunk_store_reads(pool: dv.Pool) -> None:
    store = RawChunkVectorStore(pool, FixedEmbeddings(QUERIES), pre_qualification_id=PREQ)
    q = QUERIES["frage 5"]
    found = await store.asimilarity_search_with_score("frage 5", k=6)
    expected = _top(RAW, q, 6, "r")
    assert [d.id for d, _ in found] == [i for i, _ in expected]
    assert [s for _, s in found] == pytest.approx([s for _, s in expected], abs=1e-6)
    sims = _cos(RAW, q)
    ranked = np.sort(sims)
    threshold = float(ranked[-3] + ranked[-4]) / 2  # exactly the best 3
    docs = await store.asimilarity_search_with_relevance_scores("frage 5", k=10, score_threshold=threshold)
    assert [d.id for d, _ in docs] == [i for i, _ in expected[:3]]
    mmr = await store.amax_marginal_relevance_search("frage 5", k=3, fetch_k=9, lambda_mult=0.4)
    assert [d.id for d in mmr] == _mmr(RAW, q, 3, 9, 0.4, "r")
    with pytest.raises(InvalidArgumentError, match="raw_chunks searches take no filters"):
        await store.asimilarity_search("frage 5", filter={"agent_name": "x"})


async def test_wrong_dimension_and_sync_calls_are_typed_errors(pool: dv.Pool) -> None:
    six = DealChunkVectorStore(pool, DeterministicFakeEmbedding(size=EMBEDDING_SIZE), qualification_id=QUAL)
    with pytest.raises(InvalidEmbeddingError) as info:
        await six.asimilarity_search("foo")
    assert info.value.rule == "dimensions"
    with pytest.raises(AsyncOnlyError, match="asimilarity_search"):
        six.similarity_search("foo")
    with pytest.raises(AsyncOnlyError, match="aadd_documents"):
        six.add_documents([Document(page_content="x")])
    with pytest.raises(AsyncOnlyError, match="afrom_texts"):
        DealChunkVectorStore.from_texts(["x"], DeterministicFakeEmbedding(size=6))
    with pytest.raises(InvalidArgumentError, match="exactly one owner"):
        DealChunkVectorStore(pool, six.embeddings)
    with pytest.raises(AsyncOnlyError, match="ainvoke"):
        six.as_hybrid_retriever().invoke("foo")


async def test_zero_padding_keeps_every_cosine(pool: dv.Pool) -> None:
    """The suite's 6-d vectors, padded, give the 6-d cosine through a real search (float32 storage)."""
    fake = DeterministicFakeEmbedding(size=EMBEDDING_SIZE)
    texts = ["foo", "bar", "baz", "new foo"]
    six = np.array(fake.embed_documents(texts), dtype=np.float32)
    padded = ZeroPadded(fake)
    owner = f"q-pad-{uuid.uuid4().hex[:8]}"
    await seed_owners(pool, qualification_ids=[owner])
    await dv.insert_deal_chunks(
        pool,
        [
            dv.DealChunk(id=f"{owner}-{t}", qualification_id=owner, agent_name="a", chunk_type="t", content=t,
                         embedding=padded.embed_documents([t])[0])
            for t in texts
        ],
    )  # fmt: skip
    store = DealChunkVectorStore(pool, padded, qualification_id=owner)
    for query in texts:
        q = np.array(fake.embed_query(query), dtype=np.float32)
        found = await store.asimilarity_search_with_score(query, k=4)
        expected = _cos(six, q)
        got = {d.page_content: s for d, s in found}
        assert got == pytest.approx({t: float(expected[i]) for i, t in enumerate(texts)}, abs=1e-6)


# --------------------------------------------------------------------------- writes, beyond the suite
# Checked with plain SQL on the tables (not through the adapter or the write API).

FAKE = ZeroPadded(DeterministicFakeEmbedding(size=EMBEDDING_SIZE))


async def _stored(pool: dv.Pool, table: str, owner_column: str, owner: str) -> dict[str, tuple[str, Any, Any]]:
    rows = await pool.fetch(
        f'SELECT "id", "content", "metadata", "embedding" FROM "{table}" WHERE "{owner_column}" = $1', owner
    )
    return {r["id"]: (r["content"], orjson.loads(r["metadata"]), np.asarray(r["embedding"])) for r in rows}


async def test_upsert_overwrites_by_id_and_never_touches_the_callers_documents(dhv_pool: dv.Pool) -> None:
    await seed_owners(dhv_pool, qualification_ids=["q-a"])
    store = DealChunkVectorStore(dhv_pool, FAKE, qualification_id="q-a")
    docs = [
        Document(page_content="foo", metadata={"n": 1, "nested": {"tags": ["x"]}}, id="from-doc"),
        Document(page_content="bar", metadata={"n": 2}),
    ]
    before = copy.deepcopy(docs)
    ids = await store.aadd_documents(docs)
    assert ids[0] == "from-doc" and len(ids[1]) == 24 and ids[1] != ids[0]  # Document.id, else a new id
    assert docs == before and docs[1].id is None
    # ids= wins over Document.id (LangChain's rule); new content, metadata and vector overwrite
    again = await store.aadd_texts(["new foo"], metadatas=[{"n": 3}], ids=["from-doc"])
    assert again == ["from-doc"]
    await store.aadd_documents([Document(page_content="baz", id="ignored")], ids=[ids[1]])
    stored = await _stored(dhv_pool, "deal_embeddings", "qualification_id", "q-a")
    assert set(stored) == set(ids)  # no duplicate, "ignored" never written
    assert stored["from-doc"][:2] == ("new foo", {"n": 3})
    assert stored[ids[1]][:2] == ("baz", {})
    np.testing.assert_array_equal(stored["from-doc"][2], np.asarray(FAKE.embed_query("new foo"), dtype=np.float32))
    # the adapter's answers are the stored rows
    got = await store.aget_by_ids([ids[1], "missing", "from-doc", ids[1]])
    assert [(d.id, d.page_content, d.metadata) for d in got] == [(ids[1], "baz", {}), ("from-doc", "new foo", {"n": 3})]


async def test_a_store_sees_and_deletes_only_its_owners_rows(dhv_pool: dv.Pool) -> None:
    await seed_owners(dhv_pool, qualification_ids=["q-a", "q-b"], pre_qualification_ids=["pq-a"])
    mine = DealChunkVectorStore(dhv_pool, FAKE, qualification_id="q-a")
    other = DealChunkVectorStore(dhv_pool, FAKE, qualification_id="q-b")
    await mine.aadd_texts(["foo", "bar"], ids=["a1", "a2"])
    await other.aadd_texts(["foo"], ids=["b1"])
    assert [d.id for d in await mine.aget_by_ids(["a1", "b1", "a2"])] == ["a1", "a2"]
    await mine.adelete(["b1", "a1", "nobody"])  # another owner's id and an unknown one: no error, untouched
    assert set(await _stored(dhv_pool, "deal_embeddings", "qualification_id", "q-b")) == {"b1"}
    assert set(await _stored(dhv_pool, "deal_embeddings", "qualification_id", "q-a")) == {"a2"}
    await mine.adelete([])  # nothing, not everything
    assert set(await _stored(dhv_pool, "deal_embeddings", "qualification_id", "q-a")) == {"a2"}
    # an id stored for another owner is never moved nor overwritten: a typed error naming it
    with pytest.raises(InvalidArgumentError, match="id=b1"):
        await mine.aadd_texts(["hijack", "fine"], ids=["b1", "a3"])
    assert (await _stored(dhv_pool, "deal_embeddings", "qualification_id", "q-b"))["b1"][0] == "foo"
    assert "a3" not in await _stored(dhv_pool, "deal_embeddings", "qualification_id", "q-a")  # all or nothing
    await mine.adelete()  # every row of the owner, no other
    assert await _stored(dhv_pool, "deal_embeddings", "qualification_id", "q-a") == {}
    assert set(await _stored(dhv_pool, "deal_embeddings", "qualification_id", "q-b")) == {"b1"}
    # a store of a pre-qualification: its rows by pre_qualification_id
    by_preq = DealChunkVectorStore(dhv_pool, FAKE, pre_qualification_id="pq-a")
    await by_preq.aadd_texts(["foo"], ids=["p1"])
    assert [d.id for d in await by_preq.aget_by_ids(["p1", "b1"])] == ["p1"]
    assert [d.id for d in await other.aget_by_ids(["p1", "b1"])] == ["b1"]
    # a row the app stored with both owners: the qualification's store reads it, never rewrites
    # it without its pre-qualification (the upsert keeps both owner columns)
    both = dv.DealChunk(id="both", qualification_id="q-a", pre_qualification_id="pq-a", agent_name="app",
                        chunk_type="text", content="foo", embedding=FAKE.embed_query("foo"))  # fmt: skip
    await dv.insert_deal_chunks(dhv_pool, [both])
    assert [d.id for d in await mine.aget_by_ids(["both"])] == ["both"]
    with pytest.raises(InvalidArgumentError, match="id=both"):
        await mine.aadd_texts(["rewritten"], ids=["both"])
    assert await dhv_pool.fetchval('SELECT "content" FROM "deal_embeddings" WHERE "id" = $1', "both") == "foo"


async def test_raw_chunk_store_writes_are_owner_scoped(dhv_pool: dv.Pool) -> None:
    await seed_owners(dhv_pool, pre_qualification_ids=["pq-a", "pq-b"])
    mine = RawChunkVectorStore(dhv_pool, FAKE, pre_qualification_id="pq-a", token_counter=len)
    other = RawChunkVectorStore(dhv_pool, FAKE, pre_qualification_id="pq-b")
    await mine.aadd_texts(["foo bar", "baz"], metadatas=[{"page": 1}, {"page": 2}], ids=["r1", "r2"])
    await other.aadd_texts(["foo bar"], ids=["o1"])
    counts = dict(await dhv_pool.fetch('SELECT "id", "token_count" FROM "raw_chunks"'))
    assert counts == {"r1": 7, "r2": 3, "o1": 2}  # the store's counter; by default whitespace words
    await mine.aadd_texts(["foo bar v2"], metadatas=[{"page": 9}], ids=["r1"])
    assert (await _stored(dhv_pool, "raw_chunks", "pre_qualification_id", "pq-a"))["r1"][:2] == (
        "foo bar v2",
        {"page": 9},
    )
    assert [d.id for d in await mine.aget_by_ids(["o1", "r2", "r1"])] == ["r2", "r1"]
    await mine.adelete(["o1", "r2"])
    assert set(await _stored(dhv_pool, "raw_chunks", "pre_qualification_id", "pq-b")) == {"o1"}
    assert set(await _stored(dhv_pool, "raw_chunks", "pre_qualification_id", "pq-a")) == {"r1"}
    with pytest.raises(InvalidArgumentError, match="id=o1"):
        await mine.aadd_texts(["x"], ids=["o1"])


async def test_bad_write_input_is_a_typed_error_before_anything_is_written(dhv_pool: dv.Pool) -> None:
    await seed_owners(dhv_pool, qualification_ids=["q-a"])
    store = DealChunkVectorStore(dhv_pool, FAKE, qualification_id="q-a")
    cases: list[tuple[Any, str]] = [
        (store.aadd_texts(["a", "b"], ids=["only-one"]), "ids"),
        (store.aadd_texts(["a"], ids="a"), "ids"),  # type: ignore[arg-type]
        (store.aadd_texts(["a"], ids=[7]), r"ids\[0\]"),  # type: ignore[list-item]
        (store.aadd_texts(["a", "b"], ids=["same", "same"]), "appears twice"),
        (store.aadd_texts(["a"], metadatas=[{"when": object()}]), "metadata"),
        (store.aadd_texts(["a"], metadatas=[{1: "int key"}]), r"documents\[0\]"),  # type: ignore[dict-item]
        (store.aadd_texts(["a\x00"]), "NUL"),
        (store.aget_by_ids("abc"), "ids"),
        (store.adelete("abc"), "ids"),  # type: ignore[arg-type]
        (store.adelete(["a"], cascade=True), "cascade"),
    ]
    for call, match in cases:
        with pytest.raises(InvalidArgumentError, match=match):
            await call
    assert await dhv_pool.fetchval('SELECT count(*) FROM "deal_embeddings"') == 0


# --------------------------------------------------------------------------- langchain-tests, unmodified


class TestDealChunkVectorStoreStandard(VectorStoreIntegrationTests):
    """The suite against a store bound to a new qualification of a fresh database (empty)."""

    @pytest_asyncio.fixture
    async def vectorstore(self, dhv_pool: dv.Pool) -> AsyncIterator[VectorStore]:  # type: ignore[override]
        owner = f"q-{uuid.uuid4().hex[:12]}"
        await seed_owners(dhv_pool, qualification_ids=[owner])
        yield DealChunkVectorStore(dhv_pool, ZeroPadded(self.get_embeddings()), qualification_id=owner)

    @property
    def has_sync(self) -> bool:
        return False


class TestRawChunkVectorStoreStandard(VectorStoreIntegrationTests):
    """The suite against a store bound to a new pre-qualification of a fresh database (empty)."""

    @pytest_asyncio.fixture
    async def vectorstore(self, dhv_pool: dv.Pool) -> AsyncIterator[VectorStore]:  # type: ignore[override]
        owner = f"pq-{uuid.uuid4().hex[:12]}"
        await seed_owners(dhv_pool, pre_qualification_ids=[owner])
        yield RawChunkVectorStore(dhv_pool, ZeroPadded(self.get_embeddings()), pre_qualification_id=owner)

    @property
    def has_sync(self) -> bool:
        return False
