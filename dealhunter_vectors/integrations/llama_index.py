"""A LlamaIndex vector store over ``deal_embeddings`` (extra ``[llama-index]``).

::

    from llama_index.core.vector_stores import VectorStoreQuery
    from dealhunter_vectors.integrations.llama_index import DealChunkVectorStore

    store = DealChunkVectorStore(pool, qualification_id="q-1")
    await store.async_add(nodes)                    # nodes with embeddings (upsert by node id)
    result = await store.aquery(VectorStoreQuery(query_embedding=q, similarity_top_k=5))

Bound to **one owner** (a qualification or a pre-qualification) and **async** (``async_add``,
``adelete``, ``aquery``, ``aget_nodes``, ``adelete_nodes``, ``aclear``; the synchronous
methods raise :class:`~dealhunter_vectors.errors.AsyncOnlyError`: an asyncpg pool belongs
to its event loop). A node is stored as LlamaIndex's own vector stores store it: its text as
the row's content, ``node_to_metadata_dict(node, remove_text=True)`` (the node, its metadata
and ``ref_doc_id``) as the row's JSON metadata, so a query returns the node as it was added.

Query modes: ``DEFAULT`` (the library's exact cosine search: ``similarity_top_k`` rows, best
first, similarity = cosine), ``MMR`` (server-side maximal marginal relevance;
``mmr_threshold`` is the lambda, default 0.5; candidates ``mmr_prefetch_k`` or
``mmr_prefetch_factor`` x top k), ``HYBRID`` (German full text + vector, reciprocal rank
fusion; ``alpha`` weights the vector leg, ``1 - alpha`` the text), ``TEXT_SEARCH`` (text
only). ``filters`` map to the deal search's typed filters (:data:`FILTERS`); any other key,
operator or condition is an :class:`~dealhunter_vectors.errors.InvalidArgumentError`, never
ignored. docs/integrations.md has the details.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ..errors import AsyncOnlyError, InvalidArgumentError, MissingExtraError

try:
    from llama_index.core.schema import BaseNode, MetadataMode, TextNode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
    from pydantic import PrivateAttr
except ImportError:  # pragma: no cover - the packaging test covers it in a process of its own
    raise MissingExtraError(__name__, "llama-index", "llama-index-core") from None

from pydantic import ValidationError

from .. import validation
from ..models import DealChunk, StoredDealChunk
from ..search import search_deal_embeddings
from ..search.hybrid import hybrid_search_deal_embeddings
from ..writes import delete_deal_chunks, get_deal_chunks, upsert_deal_chunks

__all__ = ["FILTERS", "REF_DOC_ID_KEY", "DealChunkVectorStore"]

NO_THRESHOLD: Final = -1.0
"""``similarity >= -1``: every row (pgvector keeps the cosine distance within [0, 2])."""
DEFAULT_MMR_LAMBDA: Final = 0.5
"""LlamaIndex's default ``mmr_threshold``."""
REF_DOC_ID_KEY: Final = "ref_doc_id"
"""The metadata key holding a node's source document (``node_to_metadata_dict`` writes it)."""

FILTERS: Final[dict[tuple[str, str], str]] = {
    ("agent_name", "=="): "agent_names",
    ("agent_name", "in"): "agent_names",
    ("agent_name", "text_match_insensitive"): "agent_name_contains",
    ("chunk_category", "=="): "chunk_categories",
    ("chunk_category", "in"): "chunk_categories",
    ("confidence", ">="): "min_confidence",
    ("confidence", ">"): "min_confidence",
    ("is_validated", "=="): "only_validated",
    ("tech_stack", "text_match_insensitive"): "tech_stack",
}
"""(metadata filter key, operator) -> the search's typed filter. ``agent_name``,
``chunk_category``, ``confidence`` and ``is_validated`` are the row's columns (not node
metadata); ``tech_stack`` matches ``metadata.cms`` / ``metadata.framework`` as a substring."""


def _flatten(filters: MetadataFilters, where: str) -> list[MetadataFilter]:
    if filters.condition not in (None, FilterCondition.AND):
        raise InvalidArgumentError(where, f"only AND conditions map to the typed filters, got {filters.condition!s}")
    out: list[MetadataFilter] = []
    for item in filters.filters:
        out.extend(_flatten(item, where) if isinstance(item, MetadataFilters) else [item])
    return out


def search_filters(filters: MetadataFilters | None, *, where: str = "filters") -> dict[str, Any]:
    """The typed search filters of LlamaIndex metadata filters (see :data:`FILTERS`)."""
    if filters is None:
        return {}
    out: dict[str, Any] = {}
    for f in _flatten(filters, where):
        op = f.operator.value if isinstance(f.operator, FilterOperator) else str(f.operator)
        target = FILTERS.get((f.key, op))
        name = f"{where}[{f.key!r} {op}]"
        if target is None:
            supported = ", ".join(f"{k} {o}" for k, o in FILTERS)
            raise InvalidArgumentError(name, f"no typed filter for this key and operator; supported: {supported}")
        if target in out:
            raise InvalidArgumentError(name, f"a second condition on {f.key!r}")
        value: Any = f.value
        if target in ("agent_names", "chunk_categories"):
            value = [value] if op == "==" else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidArgumentError(name, f"expected strings, got {f.value!r}")
        elif target == "min_confidence":
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidArgumentError(name, f"expected an integer, got {f.value!r}")
            value = value + 1 if op == ">" else value
        elif target == "only_validated":
            if value is not True:
                raise InvalidArgumentError(name, "only is_validated == True is a typed filter")
        elif not isinstance(value, str):
            raise InvalidArgumentError(name, f"expected a string, got {f.value!r}")
        out[target] = value
    return out


def _node(hit: Any) -> BaseNode:
    """The node a row holds (rows not written through LlamaIndex: a TextNode of the row)."""
    chunk_id = getattr(hit, "chunk_id", None) or hit.id
    metadata = dict(hit.metadata or {})
    if "_node_content" in metadata:
        try:
            node = metadata_dict_to_node(metadata, text=hit.content)
        except (ValueError, TypeError):
            node = None
        if node is not None:
            node.id_ = chunk_id
            return node
    return TextNode(id_=chunk_id, text=hit.content, metadata=metadata)


class DealChunkVectorStore(BasePydanticVectorStore):
    """``deal_embeddings`` rows of one qualification or one pre-qualification, as LlamaIndex nodes."""

    stores_text: bool = True
    flat_metadata: bool = False
    qualification_id: str | None = None
    pre_qualification_id: str | None = None
    agent_name: str = "llama_index"
    chunk_type: str = "node"
    chunk_category: str | None = "elaboration"

    _pool: Any = PrivateAttr()

    def __init__(
        self,
        pool: Any,
        *,
        qualification_id: str | None = None,
        pre_qualification_id: str | None = None,
        agent_name: str = "llama_index",
        chunk_type: str = "node",
        chunk_category: str | None = "elaboration",
    ) -> None:
        if (qualification_id is None) == (pre_qualification_id is None):
            raise InvalidArgumentError(
                "qualification_id/pre_qualification_id",
                "give exactly one owner: qualification_id or pre_qualification_id",
            )
        fields: dict[str, Any] = {
            "qualification_id": None
            if qualification_id is None
            else validation.text(qualification_id, "qualification_id"),
            "pre_qualification_id": None
            if pre_qualification_id is None
            else validation.text(pre_qualification_id, "pre_qualification_id"),
            "agent_name": validation.text(agent_name, "agent_name"),
            "chunk_type": validation.text(chunk_type, "chunk_type"),
            "chunk_category": chunk_category,
        }
        super().__init__(**fields)
        self._pool = pool

    @classmethod
    def class_name(cls) -> str:
        return "DealhunterDealChunkVectorStore"

    @property
    def client(self) -> Any:
        """The pool (or connection) the store runs on."""
        return self._pool

    # ---- queries
    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Run *query* (modes DEFAULT, MMR, HYBRID, TEXT_SEARCH; see the module docs)."""
        if query.doc_ids or query.node_ids:
            raise InvalidArgumentError("doc_ids/node_ids", "restricting a query to ids is not supported by this store")
        filters = search_filters(query.filters)
        k = query.similarity_top_k
        mode = query.mode
        if mode in (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.TEXT_SEARCH):
            text_only = mode == VectorStoreQueryMode.TEXT_SEARCH
            alpha = 0.5 if query.alpha is None else query.alpha
            hybrid_hits = await hybrid_search_deal_embeddings(
                self._pool,
                query.query_str,
                None if text_only else query.query_embedding,
                qualification_id=self.qualification_id,
                pre_qualification_id=self.pre_qualification_id,
                limit=query.hybrid_top_k or k,
                vector_weight=0.0 if text_only else alpha,
                text_weight=1.0 if text_only else 1.0 - alpha,
                **filters,
            )
            return VectorStoreQueryResult(
                nodes=[_node(h) for h in hybrid_hits],
                similarities=[float(h.fused_score) for h in hybrid_hits],
                ids=[h.chunk_id for h in hybrid_hits],
            )
        if mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            raise InvalidArgumentError(
                "mode", f"query mode {mode.value!r} is not supported (default, mmr, hybrid, text_search)"
            )
        if query.query_embedding is None:
            raise InvalidArgumentError("query_embedding", "a default or MMR query needs a query embedding")
        mmr: dict[str, Any] = {}
        if mode == VectorStoreQueryMode.MMR:
            prefetch = kwargs.get("mmr_prefetch_k")
            if prefetch is None and kwargs.get("mmr_prefetch_factor") is not None:
                prefetch = int(kwargs["mmr_prefetch_factor"] * k)
            lam = DEFAULT_MMR_LAMBDA if query.mmr_threshold is None else query.mmr_threshold
            mmr = {"mmr_lambda": lam, "mmr_candidates": None if prefetch is None else max(k, prefetch)}
        hits = await search_deal_embeddings(
            self._pool,
            query.query_embedding,
            qualification_id=self.qualification_id,
            pre_qualification_id=self.pre_qualification_id,
            threshold=NO_THRESHOLD,
            inclusive=True,
            limit=k,
            **filters,
            **mmr,
        )
        return VectorStoreQueryResult(
            nodes=[_node(h) for h in hits],
            similarities=[float(h.similarity or 0.0) for h in hits],
            ids=[h.chunk_id for h in hits],
        )

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        raise AsyncOnlyError("DealChunkVectorStore.query is async only: await store.aquery(query)")

    # ---- writes (the library's upsert / get / delete: dealhunter_vectors.writes)
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Upsert *nodes* (each needs its embedding) by node id; their ids.

        A node id stored for another owner, or twice in one call, is an ``InvalidArgumentError``
        (nothing written).
        """
        chunks = []
        for index, node in enumerate(nodes):
            if node.embedding is None:
                raise InvalidArgumentError(f"nodes[{index}]", f"node {node.node_id!r} has no embedding")
            try:
                chunk = DealChunk(
                    id=node.node_id,
                    qualification_id=self.qualification_id,
                    pre_qualification_id=self.pre_qualification_id,
                    agent_name=self.agent_name,
                    chunk_type=self.chunk_type,
                    chunk_index=index,
                    content=node.get_content(metadata_mode=MetadataMode.NONE),
                    metadata=node_to_metadata_dict(node, remove_text=True, flat_metadata=self.flat_metadata),
                    embedding=node.embedding,
                    chunk_category=self.chunk_category,
                )
            except ValidationError as exc:
                raise InvalidArgumentError(f"nodes[{index}]", str(exc.errors()[0]["msg"])) from None
            chunks.append(chunk)
        if not chunks:
            return []
        return (await upsert_deal_chunks(self._pool, chunks)).ids

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete this owner's nodes of the source document *ref_doc_id* (none: no error).

        The source document is the ``ref_doc_id`` key of the row's metadata, where
        ``node_to_metadata_dict`` puts it (a node without one has ``"None"`` there: LlamaIndex's
        own convention, ``SimpleVectorStore`` included); one owner-scoped ``DELETE``, other
        owners' rows untouched.
        """
        if delete_kwargs:
            raise InvalidArgumentError(next(iter(delete_kwargs)), "adelete takes a ref_doc_id only")
        await delete_deal_chunks(
            self._pool,
            qualification_id=self.qualification_id,
            pre_qualification_id=self.pre_qualification_id,
            metadata_match={REF_DOC_ID_KEY: validation.text(ref_doc_id, "ref_doc_id")},
        )

    def _owns(self, chunk: StoredDealChunk) -> bool:
        if self.qualification_id is not None:
            return chunk.qualification_id == self.qualification_id
        return chunk.pre_qualification_id == self.pre_qualification_id

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """The stored nodes of *node_ids* that belong to this owner, in the order asked (unknown
        ids and other owners' rows: skipped)."""
        if filters is not None or node_ids is None:
            raise InvalidArgumentError("node_ids/filters", "give node_ids (filters are for queries)")
        found = await get_deal_chunks(self._pool, node_ids, include_embeddings=False)
        return [_node(c) for c in found if self._owns(c)]

    async def adelete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete this owner's nodes among *node_ids* (unknown ids, other owners' rows: untouched)."""
        if filters is not None or node_ids is None or delete_kwargs:
            raise InvalidArgumentError("node_ids/filters", "give node_ids only (use aclear() for every node)")
        await delete_deal_chunks(
            self._pool,
            ids=node_ids,
            qualification_id=self.qualification_id,
            pre_qualification_id=self.pre_qualification_id,
        )

    async def aclear(self) -> None:
        """Delete every node of this owner."""
        await delete_deal_chunks(
            self._pool, qualification_id=self.qualification_id, pre_qualification_id=self.pre_qualification_id
        )

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        raise AsyncOnlyError("DealChunkVectorStore.add is async only: await store.async_add(nodes)")

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        raise AsyncOnlyError("DealChunkVectorStore.delete is async only: await store.adelete(ref_doc_id)")

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        raise AsyncOnlyError("DealChunkVectorStore.get_nodes is async only: await store.aget_nodes(node_ids)")

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        raise AsyncOnlyError("DealChunkVectorStore.delete_nodes is async only: await store.adelete_nodes(node_ids)")

    def clear(self) -> None:
        raise AsyncOnlyError("DealChunkVectorStore.clear is async only: await store.aclear()")
