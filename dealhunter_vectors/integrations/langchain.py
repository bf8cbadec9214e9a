"""LangChain vector stores over ``deal_embeddings`` and ``raw_chunks`` (extra ``[langchain]``).

::

    from dealhunter_vectors.integrations.langchain import DealChunkVectorStore

    store = DealChunkVectorStore(pool, embeddings, qualification_id="q-1")
    await store.aadd_documents(docs)                                 # upsert by id
    docs = await store.asimilarity_search("Wartungsvertrag", k=5)    # our exact search
    retriever = store.as_retriever(search_type="similarity_score_threshold",
                                   search_kwargs={"score_threshold": 0.3})

A store is bound to **one owner** (a qualification or a pre-qualification; ``RawChunkVectorStore``
a pre-qualification) and is **async**: an asyncpg pool belongs to its event loop, so the
synchronous methods raise :class:`~dealhunter_vectors.errors.AsyncOnlyError` naming the async
one. Searches are the library's: exact cosine similarity as the score (best first, ties by id,
``k`` rows whatever their score), ``score_threshold`` as the SQL threshold (``>=``, never a
post-filter), MMR on the server (``fetch_k`` candidates), hybrid text + vector search with
reciprocal rank fusion (:meth:`DealChunkVectorStore.as_hybrid_retriever`). ``filter`` takes the
searches' typed filters (:mod:`.filters`); a key without one is an error, never ignored. A query
embedding of the wrong dimension is an :class:`~dealhunter_vectors.errors.InvalidEmbeddingError`.

Writes are the library's own (:mod:`dealhunter_vectors.writes`): ``aadd_documents`` upserts
(``ids`` or ``Document.id`` overwrite the stored row of that id; an id stored for another owner
is an :class:`~dealhunter_vectors.errors.InvalidArgumentError`, never moved), the caller's
documents are never changed; ``aget_by_ids`` and ``adelete`` see only the store's owner's rows
(unknown ids: skipped, no error). ``Document.metadata`` is stored as the row's JSON metadata
and read back unchanged. docs/integrations.md has the details.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from ..errors import AsyncOnlyError, InvalidArgumentError, MissingExtraError

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.vectorstores import VectorStore
    from pydantic import ConfigDict, Field
except ImportError:  # pragma: no cover - the packaging test covers it in a process of its own
    raise MissingExtraError(__name__, "langchain", "langchain-core") from None

from pydantic import ValidationError

from .. import validation
from ..models import DealChunk, RawChunk, StoredDealChunk, StoredRawChunk
from ..search import search_deal_embeddings, search_raw_chunks
from ..search.hybrid import hybrid_search_deal_embeddings, hybrid_search_raw_chunks
from ..writes import (
    delete_deal_chunks,
    delete_raw_chunks,
    get_deal_chunks,
    get_raw_chunks,
    upsert_deal_chunks,
    upsert_raw_chunks,
)
from .filters import deal_filters, no_filters

__all__ = ["DealChunkVectorStore", "HybridRetriever", "RawChunkVectorStore"]

NO_THRESHOLD = -1.0
"""``similarity >= -1``: every row (pgvector keeps the cosine distance within [0, 2])."""


def _metadata(hit: Any) -> dict[str, Any]:
    """The row's JSON metadata as stored; an unparsable legacy value is reported, not dropped."""
    meta = dict(hit.metadata or {})
    if getattr(hit, "metadata_error", None) is not None:
        meta["dealhunter_metadata_error"] = hit.metadata_error
        meta["dealhunter_metadata_raw"] = hit.metadata_raw
    return meta


def _document(hit: Any) -> Document:
    chunk_id = getattr(hit, "chunk_id", None) or hit.id
    return Document(id=chunk_id, page_content=hit.content, metadata=_metadata(hit))


def _ids_for(documents: Sequence[Document], ids: Sequence[str | None] | None) -> list[str | None]:
    """``ids=`` (one per document, None: a new id), else each ``Document.id``; validated."""
    if ids is None:
        return [validation.optional_text(d.id, f"documents[{n}].id") for n, d in enumerate(documents)]
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence) or len(ids) != len(documents):
        raise InvalidArgumentError("ids", f"give one id per document ({len(documents)}), got {ids!r}")
    return [validation.optional_text(i, f"ids[{n}]") for n, i in enumerate(ids)]


def _chunk(model: type[DealChunk] | type[RawChunk], index: int, **fields: Any) -> Any:
    """*model* of *fields* (a document's values); a value the model refuses names the document."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidArgumentError(f"documents[{index}]", problems) from None


class _ChunkStore(VectorStore):
    """What both stores share: embedding, search entry points, the async-only rule."""

    table: ClassVar[str]

    def __init__(self, pool: Any, embedding: Embeddings) -> None:
        if not isinstance(embedding, Embeddings):
            raise InvalidArgumentError("embedding", f"expected a LangChain Embeddings, got {type(embedding).__name__}")
        self.pool = pool
        self.embedding = embedding

    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    def _select_relevance_score_fn(self) -> Any:
        return lambda score: score  # the score already is the cosine similarity

    # ---- what a store implements
    async def _search(self, vector: Any, k: int, threshold: float, **kwargs: Any) -> list[Any]:
        raise NotImplementedError

    async def _hybrid(self, query: str | None, vector: Any, k: int, **kwargs: Any) -> list[Any]:
        raise NotImplementedError

    async def _upsert(
        self, documents: Sequence[Document], ids: list[str | None], vectors: list[list[float]]
    ) -> list[str]:
        raise NotImplementedError

    async def _get(self, ids: Any) -> list[Any]:
        raise NotImplementedError

    async def _delete(self, ids: Any) -> int:
        raise NotImplementedError

    # ---- searches
    async def asimilarity_search_by_vector_with_score(
        self, embedding: Sequence[float], k: int = 4, *, score_threshold: float | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The best *k* rows by exact cosine similarity (``>= score_threshold`` when given), with it."""
        threshold = NO_THRESHOLD if score_threshold is None else score_threshold
        hits = await self._search(embedding, k, threshold, **kwargs)
        return [(_document(h), float(h.similarity)) for h in hits]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        vector = await self.embedding.aembed_query(query)
        return await self.asimilarity_search_by_vector_with_score(vector, k, **kwargs)

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in await self.asimilarity_search_by_vector_with_score(embedding, k, **kwargs)]

    async def asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """As :meth:`asimilarity_search_with_score`: ``score_threshold`` is the SQL threshold (``>=``)."""
        return await self.asimilarity_search_with_score(query, k, **kwargs)

    async def amax_marginal_relevance_search_by_vector(
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        """*k* rows chosen by MMR (on the server) among the best ``max(k, fetch_k)``."""
        hits = await self._search(
            embedding, k, kwargs.pop("score_threshold", NO_THRESHOLD), mmr_lambda=lambda_mult,
            mmr_candidates=max(k, fetch_k), **kwargs,
        )  # fmt: skip
        return [_document(h) for h in hits]

    async def amax_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        vector = await self.embedding.aembed_query(query)
        return await self.amax_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult, **kwargs)

    async def ahybrid_search_with_score(
        self, query: str, k: int = 4, *, with_vector: bool = True, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Hybrid search (German full-text + exact vector, reciprocal rank fusion) with the fused score.

        Keywords as the library's hybrid search (``text_weight``, ``vector_weight``, ``rrf_k``,
        ``candidates``, ``threshold``, ``mmr_lambda``) plus ``filter``; ``with_vector=False``
        searches the text only (no embedding call).
        """
        vector = await self.embedding.aembed_query(query) if with_vector else None
        hits = await self._hybrid(query, vector, k, **kwargs)
        return [(_document(h), float(h.fused_score)) for h in hits]

    def as_hybrid_retriever(self, *, k: int = 4, **search_kwargs: Any) -> HybridRetriever:
        """A retriever over :meth:`ahybrid_search_with_score` (async; ``ainvoke``)."""
        return HybridRetriever(store=self, k=k, search_kwargs=search_kwargs)

    # ---- writes (the library's upsert / get / delete: dealhunter_vectors.writes)
    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upsert *documents* (``ids=`` or ``Document.id`` overwrite that row; else a new id); their ids.

        The documents are embedded with ``aembed_documents`` and never modified. An id stored
        for another owner, or twice in one call, is an ``InvalidArgumentError`` (nothing written).
        """
        ids = _ids_for(documents, kwargs.pop("ids", None))
        if not documents:
            return []
        vectors = await self.embedding.aembed_documents([d.page_content for d in documents])
        if len(vectors) != len(documents):
            raise InvalidArgumentError(
                "embedding", f"aembed_documents returned {len(vectors)} vectors for {len(documents)} documents"
            )
        return await self._upsert(documents, ids, vectors)

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidArgumentError("metadatas", f"give one per text ({len(texts)}), got {len(metadatas)}")
        documents = [
            Document(page_content=t, metadata=dict(m))
            for t, m in zip(texts, metadatas or [{}] * len(texts), strict=True)
        ]
        return await self.aadd_documents(documents, ids=ids, **kwargs)

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents of *ids* that belong to this store's owner, in the order asked
        (an id twice: once; unknown ids and other owners' rows: skipped, no error)."""
        return [_document(c) for c in await self._get(ids)]

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete this owner's rows among *ids* (unknown ids and other owners' rows: untouched, no
        error; ``[]``: nothing); ``None``: every row of the owner. True (LangChain: it succeeded)."""
        if kwargs:
            raise InvalidArgumentError(next(iter(kwargs)), "adelete takes ids only")
        await self._delete(ids)
        return True

    # ---- the synchronous API: not available (an asyncpg pool belongs to its event loop)
    def _sync(self, name: str) -> AsyncOnlyError:
        return AsyncOnlyError(f"{type(self).__name__}.{name} is async only: await {type(self).__name__}.a{name}(...)")

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        raise self._sync("similarity_search")

    def similarity_search_with_score(self, *args: Any, **kwargs: Any) -> list[tuple[Document, float]]:
        raise self._sync("similarity_search_with_score")

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        raise self._sync("similarity_search_by_vector")

    def similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        raise self._sync("similarity_search_with_relevance_scores")

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        raise self._sync("max_marginal_relevance_search")

    def max_marginal_relevance_search_by_vector(
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        raise self._sync("max_marginal_relevance_search_by_vector")

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        raise self._sync("add_texts")

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        raise self._sync("add_documents")

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        raise self._sync("delete")

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        raise self._sync("get_by_ids")

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        raise AsyncOnlyError(f"{cls.__name__}.from_texts is async only: await {cls.__name__}.afrom_texts(...)")

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A store (``pool=`` and the owner as keywords) with *texts* added."""
        if "pool" not in kwargs:
            raise InvalidArgumentError("pool", f"{cls.__name__}.afrom_texts needs pool=...")
        store = cls(kwargs.pop("pool"), embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store


class DealChunkVectorStore(_ChunkStore):
    """``deal_embeddings`` rows of one qualification or one pre-qualification.

    New rows get ``agent_name``, ``chunk_type`` and ``chunk_category`` from the store
    (defaults ``"langchain"``, ``"document"``, ``"elaboration"``); ``filter`` takes the deal
    search's typed filters (:mod:`.filters`).
    """

    table = "deal_embeddings"

    def __init__(
        self,
        pool: Any,
        embedding: Embeddings,
        *,
        qualification_id: str | None = None,
        pre_qualification_id: str | None = None,
        agent_name: str = "langchain",
        chunk_type: str = "document",
        chunk_category: str | None = "elaboration",
    ) -> None:
        super().__init__(pool, embedding)
        if (qualification_id is None) == (pre_qualification_id is None):
            raise InvalidArgumentError(
                "qualification_id/pre_qualification_id",
                "give exactly one owner: qualification_id or pre_qualification_id",
            )
        self.qualification_id = (
            None if qualification_id is None else validation.text(qualification_id, "qualification_id")
        )
        self.pre_qualification_id = (
            None if pre_qualification_id is None else validation.text(pre_qualification_id, "pre_qualification_id")
        )
        self.agent_name = validation.text(agent_name, "agent_name")
        self.chunk_type = validation.text(chunk_type, "chunk_type")
        self.chunk_category = chunk_category

    async def _search(self, vector: Any, k: int, threshold: float, **kwargs: Any) -> list[Any]:
        filters = deal_filters(kwargs.pop("filter", None))
        return await search_deal_embeddings(
            self.pool,
            vector,
            qualification_id=self.qualification_id,
            pre_qualification_id=self.pre_qualification_id,
            threshold=threshold,
            inclusive=True,
            limit=k,
            **filters,
            **kwargs,
        )

    async def _hybrid(self, query: str | None, vector: Any, k: int, **kwargs: Any) -> list[Any]:
        filters = deal_filters(kwargs.pop("filter", None))
        return await hybrid_search_deal_embeddings(
            self.pool,
            query,
            vector,
            qualification_id=self.qualification_id,
            pre_qualification_id=self.pre_qualification_id,
            limit=k,
            **filters,
            **kwargs,
        )

    async def _upsert(
        self, documents: Sequence[Document], ids: list[str | None], vectors: list[list[float]]
    ) -> list[str]:
        chunks = [
            _chunk(
                DealChunk,
                index,
                id=chunk_id,
                qualification_id=self.qualification_id,
                pre_qualification_id=self.pre_qualification_id,
                agent_name=self.agent_name,
                chunk_type=self.chunk_type,
                chunk_index=index,
                content=doc.page_content,
                metadata=dict(doc.metadata),
                embedding=vector,
                chunk_category=self.chunk_category,
            )
            for index, (doc, chunk_id, vector) in enumerate(zip(documents, ids, vectors, strict=True))
        ]
        return (await upsert_deal_chunks(self.pool, chunks)).ids

    def _owns(self, chunk: StoredDealChunk) -> bool:
        if self.qualification_id is not None:
            return chunk.qualification_id == self.qualification_id
        return chunk.pre_qualification_id == self.pre_qualification_id

    async def _get(self, ids: Any) -> list[Any]:
        found = await get_deal_chunks(self.pool, ids, include_embeddings=False)
        return [c for c in found if self._owns(c)]

    async def _delete(self, ids: Any) -> int:
        return await delete_deal_chunks(
            self.pool, ids=ids, qualification_id=self.qualification_id, pre_qualification_id=self.pre_qualification_id
        )


class RawChunkVectorStore(_ChunkStore):
    """``raw_chunks`` rows of one pre-qualification.

    ``token_counter`` gives a new row's ``token_count`` (NOT NULL in the schema; default: the
    number of whitespace-separated words, an approximation: pass your tokenizer's count).
    """

    table = "raw_chunks"

    def __init__(
        self,
        pool: Any,
        embedding: Embeddings,
        *,
        pre_qualification_id: str,
        token_counter: Any = None,
    ) -> None:
        super().__init__(pool, embedding)
        self.pre_qualification_id = validation.text(pre_qualification_id, "pre_qualification_id")
        self.token_counter = token_counter or (lambda text: len(text.split()))

    async def _search(self, vector: Any, k: int, threshold: float, **kwargs: Any) -> list[Any]:
        no_filters(kwargs.pop("filter", None))
        return await search_raw_chunks(
            self.pool, vector, pre_qualification_id=self.pre_qualification_id,
            threshold=threshold, inclusive=True, limit=k, **kwargs,
        )  # fmt: skip

    async def _hybrid(self, query: str | None, vector: Any, k: int, **kwargs: Any) -> list[Any]:
        no_filters(kwargs.pop("filter", None))
        return await hybrid_search_raw_chunks(
            self.pool, query, vector, pre_qualification_id=self.pre_qualification_id, limit=k, **kwargs
        )

    async def _upsert(
        self, documents: Sequence[Document], ids: list[str | None], vectors: list[list[float]]
    ) -> list[str]:
        chunks = [
            _chunk(
                RawChunk,
                index,
                id=chunk_id,
                chunk_index=index,
                content=doc.page_content,
                token_count=self.token_counter(doc.page_content),
                metadata=dict(doc.metadata),
                embedding=vector,
            )
            for index, (doc, chunk_id, vector) in enumerate(zip(documents, ids, vectors, strict=True))
        ]
        return (await upsert_raw_chunks(self.pool, self.pre_qualification_id, chunks)).ids

    async def _get(self, ids: Any) -> list[Any]:
        found: list[StoredRawChunk] = await get_raw_chunks(self.pool, ids, include_embeddings=False)
        return [c for c in found if c.pre_qualification_id == self.pre_qualification_id]

    async def _delete(self, ids: Any) -> int:
        return await delete_raw_chunks(self.pool, ids=ids, pre_qualification_id=self.pre_qualification_id)


class HybridRetriever(BaseRetriever):
    """Hybrid (text + vector, reciprocal rank fusion) retrieval over a store; async (``ainvoke``)."""

    store: Any
    k: int = 4
    search_kwargs: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        raise AsyncOnlyError("HybridRetriever is async only: await retriever.ainvoke(query)")

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        found = await self.store.ahybrid_search_with_score(query, self.k, **{**self.search_kwargs, **kwargs})
        return [doc for doc, _ in found]
