"""Typed results, search requests and write inputs of the vector layer (pydantic v2, frozen).

Result models mirror what the old app's callers used (see
``shared/reference/legacy-behaviour.md``), with snake_case names:

* :class:`DealChunkHit`: lead retrieval / agent retrieval / deep-scan rows of ``deal_embeddings``,
  with the lead service's ``sources`` list and ``similarity=None`` for unranked listings.
* :class:`RawChunkHit`: raw retrieval rows of ``raw_chunks`` (old default metadata when NULL).
* :class:`SimilarityHit`: the search action's merged hits (``source`` lead / agent / raw).
* :class:`PreQualificationMatch`: the semantic step of the duplicate check.
* :class:`HybridDealChunkHit` / :class:`HybridRawChunkHit`: hybrid (full-text + vector) hits
  with both legs' ranks and the fused score.

Metadata is stored as JSON text. It is parsed with orjson; a value that is not valid JSON
(or not a JSON object) never breaks a query: the hit carries ``metadata`` = the default,
``metadata_raw`` = the stored text and ``metadata_error`` = what was wrong, and the problem
is logged (logger ``dealhunter_vectors.vector_search``).

Request models (:class:`DealChunkSearch`, :class:`RawChunkSearch`, :class:`SimilaritySearch`,
:class:`PreQualificationSearch`) describe one search each for
:func:`~dealhunter_vectors.vector_search.search_many`; their fields are exactly the keyword
arguments of the matching single-search function. They are strict (no coercion: ``limit=True``
or ``inclusive=1`` is a pydantic ``ValidationError``, a ``ValueError``, when the model is
built); every value is checked again when the search runs (``InvalidEmbeddingError`` /
``InvalidArgumentError`` naming the argument).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StrictBool, computed_field

__all__ = [
    "ChunkSource",
    "DealChunk",
    "DealChunkHit",
    "DealChunkPage",
    "DealChunkSearch",
    "EmbeddingUpdate",
    "EmbeddingUpdateResult",
    "HybridDealChunkHit",
    "HybridRawChunkHit",
    "PreQualificationMatch",
    "PreQualificationSearch",
    "RawChunk",
    "RawChunkHit",
    "RawChunkPage",
    "RawChunkSearch",
    "ReplaceResult",
    "SearchRequest",
    "SimilarityHit",
    "SimilaritySearch",
    "StaleChunk",
    "StoredDealChunk",
    "StoredRawChunk",
    "UpsertResult",
    "section_confidence",
]

RAW_CHUNK_DEFAULT_METADATA: dict[str, Any] = {"startPosition": 0, "endPosition": 0, "type": "unknown"}
"""What the old raw retrieval reported for a chunk whose metadata is NULL."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _FrozenArbitrary(BaseModel):
    # Request and input models carry embeddings (numpy arrays, lists, tuples) as given.
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a bool is not an integer here")  # pydantic would turn True into 1
    return value


IntNotBool = Annotated[int, BeforeValidator(_not_bool)]
"""An ``int`` field that refuses ``True``/``False`` (numpy integers still convert)."""


class _Request(BaseModel):
    # Search requests: strict, so that bool never passes as an int (limit=True) nor 1 as a bool.
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, strict=True)


# --------------------------------------------------------------------------- results


class ChunkSource(_Frozen):
    """One entry of the lead service's ``sources`` list (``relevance`` = the hit's similarity)."""

    agent_name: str
    chunk_id: str
    chunk_type: str
    relevance: float | None


class DealChunkHit(_Frozen):
    """A ``deal_embeddings`` row returned by a search or a listing.

    ``similarity`` is the cosine similarity (float64, ``1 - (embedding <=> query)``), or
    ``None`` for the unranked listing (:func:`~dealhunter_vectors.vector_search.list_deal_chunks`):
    no invented 0.75. ``metadata`` is the parsed JSON object, ``{}`` when the column is NULL
    or unparsable (then ``metadata_error`` says why and ``metadata_raw`` holds the text).
    """

    chunk_id: str = Field(description="deal_embeddings.id")
    pre_qualification_id: str | None
    qualification_id: str | None
    agent_name: str
    chunk_type: str
    chunk_index: int
    content: str
    similarity: float | None = Field(description="cosine similarity; None when unranked")
    metadata: dict[str, Any]
    metadata_raw: str | None = Field(default=None, description="stored text when it could not be parsed")
    metadata_error: str | None = Field(default=None, description="why metadata could not be parsed")
    chunk_category: str | None
    confidence: int | None
    is_validated: bool = Field(description="validated_at IS NOT NULL")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sources(self) -> list[ChunkSource]:
        """The old lead service's source tracking: one entry for this chunk."""
        return [
            ChunkSource(
                agent_name=self.agent_name,
                chunk_id=self.chunk_id,
                chunk_type=self.chunk_type,
                relevance=self.similarity,
            )
        ]


class RawChunkHit(_Frozen):
    """A ``raw_chunks`` row returned by raw retrieval.

    ``metadata`` is ``{"startPosition": 0, "endPosition": 0, "type": "unknown"}`` when the
    column is NULL (the old default) or unparsable (then ``metadata_error`` is set).
    ``source`` / ``web_source`` are the old service's extracted citations: ``metadata.source``
    when it is an object of kind ``pdf``, ``metadata.webSource`` when it has a string ``url``.
    """

    chunk_id: str = Field(description="raw_chunks.id")
    pre_qualification_id: str
    chunk_index: int
    content: str
    token_count: int
    similarity: float
    metadata: dict[str, Any]
    metadata_raw: str | None = None
    metadata_error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def source(self) -> dict[str, Any] | None:
        """``metadata.source`` when it is a PDF citation object, else None."""
        candidate = self.metadata.get("source")
        if isinstance(candidate, dict) and candidate.get("kind") == "pdf":
            return candidate
        return None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def web_source(self) -> dict[str, Any] | None:
        """``{url, title, accessedAt}`` from ``metadata.webSource`` when its url is a string."""
        candidate = self.metadata.get("webSource")
        if isinstance(candidate, dict) and isinstance(candidate.get("url"), str):
            return {"url": candidate["url"], "title": candidate.get("title"), "accessedAt": candidate.get("accessedAt")}
        return None


class SimilarityHit(_Frozen):
    """One hit of the search action (:func:`~dealhunter_vectors.vector_search.search_similar`).

    ``source`` is ``"lead"`` (deal_embeddings by qualification), ``"agent"``
    (deal_embeddings by pre-qualification) or ``"raw"`` (raw_chunks by pre-qualification);
    ``agent_name`` / ``chunk_type`` are None for raw hits. ``metadata`` is ``{}`` when NULL
    or unparsable (as the old ``safeParseJSON``), with ``metadata_error`` set in the latter case.
    """

    id: str
    source: Literal["lead", "agent", "raw"]
    similarity: float
    agent_name: str | None = None
    chunk_type: str | None = None
    chunk_index: int
    content: str
    metadata: dict[str, Any]
    metadata_raw: str | None = None
    metadata_error: str | None = None


class PreQualificationMatch(_Frozen):
    """A pre-qualification whose description embedding is close to the query.

    ``similarity`` is the cosine; ``similarity_percent`` the old
    ``Math.round((cos + 1) / 2 * 100)`` (JavaScript rounding: halves up).
    """

    pre_qualification_id: str
    similarity: float
    similarity_percent: int


class HybridDealChunkHit(DealChunkHit):
    """A ``deal_embeddings`` row returned by a hybrid (full-text + vector) search.

    All fields of :class:`DealChunkHit`; ``similarity`` is the exact cosine to the query
    embedding (None in a text-only search or for a row without embedding). ``vector_rank``
    / ``text_rank`` are the row's 1-based ranks in the vector and the text leg (None when
    that leg did not return it among its ``candidates``), ``text_score`` PostgreSQL's
    ``ts_rank_cd`` of the row (None when its text does not match the query or there is no
    query text) and ``fused_score`` the reciprocal-rank-fusion score
    ``sum(weight / (rrf_k + rank))`` over the legs that returned it.
    """

    vector_rank: int | None = Field(description="rank in the vector leg (1 = nearest); None when not in it")
    text_rank: int | None = Field(description="rank in the text leg (1 = best ts_rank_cd); None when not in it")
    text_score: float | None = Field(description="ts_rank_cd of the row; None when its text does not match")
    fused_score: float = Field(description="reciprocal rank fusion score")


class HybridRawChunkHit(_Frozen):
    """A ``raw_chunks`` row returned by a hybrid (full-text + vector) search.

    The fields of :class:`RawChunkHit` (``similarity`` None in a text-only search) plus the
    ranks and scores of :class:`HybridDealChunkHit`.
    """

    chunk_id: str = Field(description="raw_chunks.id")
    pre_qualification_id: str
    chunk_index: int
    content: str
    token_count: int
    similarity: float | None = Field(description="cosine similarity; None without a query embedding")
    metadata: dict[str, Any]
    metadata_raw: str | None = None
    metadata_error: str | None = None
    vector_rank: int | None = Field(description="rank in the vector leg (1 = nearest); None when not in it")
    text_rank: int | None = Field(description="rank in the text leg (1 = best ts_rank_cd); None when not in it")
    text_score: float | None = Field(description="ts_rank_cd of the row; None when its text does not match")
    fused_score: float = Field(description="reciprocal rank fusion score")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def source(self) -> dict[str, Any] | None:
        """``metadata.source`` when it is a PDF citation object, else None (as :class:`RawChunkHit`)."""
        return _pdf_source(self.metadata)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def web_source(self) -> dict[str, Any] | None:
        """``{url, title, accessedAt}`` from ``metadata.webSource`` (as :class:`RawChunkHit`)."""
        return _web_source(self.metadata)


def _pdf_source(metadata: dict[str, Any]) -> dict[str, Any] | None:
    candidate = metadata.get("source")
    if isinstance(candidate, dict) and candidate.get("kind") == "pdf":
        return candidate
    return None


def _web_source(metadata: dict[str, Any]) -> dict[str, Any] | None:
    candidate = metadata.get("webSource")
    if isinstance(candidate, dict) and isinstance(candidate.get("url"), str):
        return {"url": candidate["url"], "title": candidate.get("title"), "accessedAt": candidate.get("accessedAt")}
    return None


# --------------------------------------------------------------------------- requests


class DealChunkSearch(_Request):
    """A :func:`~dealhunter_vectors.vector_search.search_deal_embeddings` call, for ``search_many``."""

    kind: Literal["deal_chunks"] = "deal_chunks"
    query_embedding: Any
    qualification_id: str | None = None
    pre_qualification_id: str | None = None
    threshold: float = 0.3
    limit: int = 5
    agent_names: str | Sequence[str] | None = None
    agent_name_contains: str | None = None
    chunk_categories: Sequence[str] | None = None
    min_confidence: int | None = None
    only_validated: bool = False
    tech_stack: str | None = None
    filter_fallback: bool = False
    inclusive: bool = False
    fallback_to_top_k: bool = False
    mmr_lambda: float | None = Field(default=None, strict=True)
    mmr_candidates: int | None = Field(default=None, strict=True)


class RawChunkSearch(_Request):
    """A :func:`~dealhunter_vectors.vector_search.search_raw_chunks` call, for ``search_many``."""

    kind: Literal["raw_chunks"] = "raw_chunks"
    query_embedding: Any
    pre_qualification_id: str
    threshold: float = 0.2
    limit: int = 5
    inclusive: bool = False
    mmr_lambda: float | None = Field(default=None, strict=True)
    mmr_candidates: int | None = Field(default=None, strict=True)


class SimilaritySearch(_Request):
    """A :func:`~dealhunter_vectors.vector_search.search_similar` call, for ``search_many``."""

    kind: Literal["similar"] = "similar"
    query_embedding: Any
    qualification_id: str | None = None
    pre_qualification_id: str | None = None
    threshold: float = 0.5
    limit: int = 10
    include_raw_chunks: bool = True


class PreQualificationSearch(_Request):
    """A :func:`~dealhunter_vectors.vector_search.find_similar_pre_qualifications` call."""

    kind: Literal["pre_qualifications"] = "pre_qualifications"
    query_embedding: Any
    exclude_id: str | None = None
    min_similarity_percent: float = 85
    limit: int | None = None
    exact: bool | None = None


SearchRequest = DealChunkSearch | RawChunkSearch | SimilaritySearch | PreQualificationSearch
"""Any request accepted by ``search_many``."""


# --------------------------------------------------------------------------- write inputs


class DealChunk(_FrozenArbitrary):
    """A chunk to insert into ``deal_embeddings`` (:func:`~dealhunter_vectors.writes.insert_deal_chunks`).

    At least one owner (``pre_qualification_id`` / ``qualification_id``) is required.
    ``id`` defaults to a generated cuid2-shaped id; ``embedding`` may be None (screenshot
    chunks have none); ``metadata`` is stored as JSON text (orjson). Defaults are the old
    schema's: ``chunk_index`` 0, ``chunk_category`` ``"elaboration"``, ``confidence`` 50,
    ``requires_validation`` False. ``validated_at``: naive datetimes are taken as UTC.
    """

    id: str | None = None
    pre_qualification_id: str | None = None
    qualification_id: str | None = None
    agent_name: str
    chunk_type: str
    chunk_index: IntNotBool = 0
    content: str
    metadata: dict[str, Any] | None = None
    embedding: Any = None
    chunk_category: str | None = "elaboration"
    confidence: IntNotBool | None = 50
    requires_validation: StrictBool | None = False
    validated_at: datetime | None = None
    validated_by: str | None = None


class RawChunk(_FrozenArbitrary):
    """A chunk for :func:`~dealhunter_vectors.writes.replace_raw_chunks` (embedding required)."""

    id: str | None = None
    chunk_index: IntNotBool
    content: str
    token_count: IntNotBool
    embedding: Any
    metadata: dict[str, Any] | None = None


# --------------------------------------------------------------------------- stored rows and write results


def _vector_json(value: Any) -> list[float] | None:
    return None if value is None else [float(x) for x in value]


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


StoredVector = Annotated[Any, PlainSerializer(_vector_json, when_used="json")]
"""A stored embedding: a float32 numpy array (a list of numbers in JSON), or None."""
Digest = Annotated[bytes | None, PlainSerializer(_hex, when_used="json")]
"""A sha256 digest (hex in JSON), or None."""


class StoredDealChunk(_FrozenArbitrary):
    """A ``deal_embeddings`` row as stored (:func:`~dealhunter_vectors.writes.get_deal_chunks`).

    ``metadata`` is the parsed JSON object (None when NULL; when the text is not a JSON
    object, None with ``metadata_raw`` / ``metadata_error`` set). ``embedding`` is the float32
    vector, or None when the row has none or it was not asked for (``has_embedding`` tells
    which). ``embedding_model`` / ``embedding_content_hash`` are the library-owned re-embedding
    columns (NULL for rows written by other writers; docs/reembedding.md).
    """

    id: str
    pre_qualification_id: str | None
    qualification_id: str | None
    agent_name: str
    chunk_type: str
    chunk_index: int
    content: str
    metadata: dict[str, Any] | None
    metadata_raw: str | None = None
    metadata_error: str | None = None
    has_embedding: bool
    embedding: StoredVector = None
    chunk_category: str | None
    confidence: int | None
    requires_validation: bool | None
    validated_at: datetime | None
    validated_by: str | None
    created_at: datetime | None
    updated_at: datetime | None
    embedding_model: str | None
    embedding_content_hash: Digest = None


class StoredRawChunk(_FrozenArbitrary):
    """A ``raw_chunks`` row as stored (:func:`~dealhunter_vectors.writes.get_raw_chunks`); fields as
    :class:`StoredDealChunk`."""

    id: str
    pre_qualification_id: str
    chunk_index: int
    content: str
    token_count: int
    metadata: dict[str, Any] | None
    metadata_raw: str | None = None
    metadata_error: str | None = None
    has_embedding: bool
    embedding: StoredVector = None
    created_at: datetime | None
    embedding_model: str | None
    embedding_content_hash: Digest = None


class DealChunkPage(_Frozen):
    """One page of an owner's deal chunks, by id (:func:`~dealhunter_vectors.writes.page_deal_chunks`).

    ``next_after`` is the cursor of the next page (the last id here), None after the last page.
    """

    chunks: list[StoredDealChunk]
    next_after: str | None


class RawChunkPage(_Frozen):
    """One page of a pre-qualification's raw chunks, by id (as :class:`DealChunkPage`)."""

    chunks: list[StoredRawChunk]
    next_after: str | None


class ReplaceResult(_Frozen):
    """What a replace did: the ids it deleted (sorted) and the ids it inserted (input order)."""

    deleted_ids: list[str]
    inserted_ids: list[str]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def deleted(self) -> int:
        """Rows deleted."""
        return len(self.deleted_ids)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def inserted(self) -> int:
        """Rows inserted."""
        return len(self.inserted_ids)


class UpsertResult(_Frozen):
    """What an upsert did: every id (input order), split into inserted and updated ones."""

    ids: list[str]
    inserted_ids: list[str]
    updated_ids: list[str]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def inserted(self) -> int:
        """Rows inserted."""
        return len(self.inserted_ids)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def updated(self) -> int:
        """Rows updated."""
        return len(self.updated_ids)


class StaleChunk(_Frozen):
    """A chunk to (re-)embed (:func:`~dealhunter_vectors.writes.stale_chunks`).

    ``reason``: ``"no_embedding"`` (NULL embedding, only with ``include_missing``),
    ``"unknown"`` (no recorded model or hash: written by another writer), ``"model"`` (embedded
    by another model) or ``"content"`` (the content changed since it was embedded).
    ``content_hash`` is the current content's sha256: pass it back in
    :class:`EmbeddingUpdate` so that a row whose content changes meanwhile is not overwritten.
    """

    id: str
    content: str
    content_hash: Digest
    embedding_model: str | None
    reason: Literal["no_embedding", "unknown", "model", "content"]


class EmbeddingUpdate(_FrozenArbitrary):
    """A new embedding for one row (:func:`~dealhunter_vectors.writes.update_embeddings`).

    ``content_hash``: the sha256 of the content that was embedded (``StaleChunk.content_hash``);
    the row is updated only while its content still has that hash. None: whatever the row holds now.
    """

    id: str
    embedding: Any
    content_hash: bytes | None = None


class EmbeddingUpdateResult(_Frozen):
    """What a bulk embedding update did: ids updated, ids not found, ids whose content changed
    since it was embedded (left alone: embed them again)."""

    updated_ids: list[str]
    missing_ids: list[str]
    changed_ids: list[str]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def updated(self) -> int:
        """Rows updated."""
        return len(self.updated_ids)


# --------------------------------------------------------------------------- confidence


def _js_round(x: float) -> int:
    """JavaScript ``Math.round``: the nearest integer, halves rounded up (towards +inf)."""
    floor = math.floor(x)
    return int(floor + 1 if x - floor >= 0.5 else floor)


def section_confidence(hits: Sequence[DealChunkHit]) -> int:
    """The old lead service's section confidence score (0-100).

    ``round(min(100, min(40, n/5*40) + avg_similarity*40 + min(20, unique_agents/3*20)))``
    with JavaScript rounding; 0 for no hits. Unranked hits (similarity None) count as 0
    similarity (the old code's invented 0.75 is not reproduced).
    """
    n = len(hits)
    if n == 0:
        return 0
    count_score = min(40.0, n / 5 * 40)
    avg = sum((h.similarity or 0.0) for h in hits) / n
    diversity = min(20.0, len({h.agent_name for h in hits}) / 3 * 20)
    return _js_round(min(100.0, count_score + avg * 40 + diversity))
