"""A FastAPI service with one endpoint per retrieval call site of the old dealhunter app.

Run it from the checkout, in the project's virtual environment (embedded server by default in
this example; any DATABASE_URL works)::

    .venv/bin/pip install -e '.[embedded,examples]'
    DATABASE_URL=embedded .venv/bin/uvicorn examples.fastapi_app:app

* The pool lives in the app's lifespan (:func:`dealhunter_vectors.lifespan`): opened at
  start-up, closed gracefully at shutdown; handlers reach it as ``request.app.state.db``.
* Every handler awaits one library call and returns the library's pydantic models.
* An embedding that breaks a rule (dimensions, NaN, zero norm, half-precision range) is a
  422 naming the rule, exactly like FastAPI's own validation errors; an unknown owner in a
  write is a 404.
* Writes as the app does them: ``PUT .../sections/{section_id}/chunks`` replaces one section's
  chunks atomically (re-running an agent never duplicates its output), ``DELETE`` removes them.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import dealhunter_vectors as dv
from dealhunter_vectors.models import (
    DealChunkHit,
    HybridDealChunkHit,
    PreQualificationMatch,
    RawChunkHit,
    SimilarityHit,
    section_confidence,
)


def create_app(database_url: str | None = None, **pool_options: Any) -> FastAPI:
    """Build the app; *database_url* defaults to ``DATABASE_URL``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, dv.Pool]]:
        async with dv.lifespan(app, url=database_url, **pool_options) as state:
            yield state

    app = FastAPI(title="dealhunter retrieval", lifespan=lifespan)

    @app.exception_handler(dv.InvalidEmbeddingError)
    async def invalid_embedding(_: Request, exc: dv.InvalidEmbeddingError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "detail": [{"type": f"invalid_embedding.{exc.rule}", "loc": ["body", "embedding"], "msg": str(exc)}]
            },
        )

    @app.exception_handler(dv.DatabaseUnavailableError)
    @app.exception_handler(dv.PoolExhaustedError)
    @app.exception_handler(dv.QueryTimeoutError)
    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        # retryable faults (docs/reliability.md): 503 + Retry-After, the masked message, no traceback
        kind = {
            dv.DatabaseUnavailableError: "database_unavailable",
            dv.PoolExhaustedError: "overloaded",
            dv.QueryTimeoutError: "query_timeout",
        }[type(exc)]
        return JSONResponse(
            status_code=503, headers={"Retry-After": "1"}, content={"detail": [{"type": kind, "msg": str(exc)}]}
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the rejected input; a NaN/Infinity (which Python's JSON
        # parser accepts) cannot be written back as JSON: send it as text instead.
        return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})

    @app.exception_handler(dv.NotFoundError)
    async def not_found(_: Request, exc: dv.NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": [{"type": "not_found", "msg": str(exc)}]})

    @app.exception_handler(ValueError)
    async def bad_argument(_: Request, exc: ValueError) -> JSONResponse:
        # threshold outside [-1, 1], limit < 1, both/neither owner ...
        return JSONResponse(status_code=422, content={"detail": [{"type": "value_error", "msg": str(exc)}]})

    def db(request: Request) -> dv.Pool:
        pool: dv.Pool = request.app.state.db  # set by dv.lifespan at start-up
        return pool

    @app.post("/qualifications/{qualification_id}/lead-search", response_model=LeadSearchResponse)
    async def lead_search(qualification_id: str, body: LeadSearchRequest, request: Request) -> LeadSearchResponse:
        """Lead retrieval (queryRagForLead): similarity > 0.3, agent filter with the old fallback."""
        hits = await dv.search_deal_embeddings(
            db(request),
            body.embedding,
            qualification_id=qualification_id,
            threshold=0.3,
            limit=body.limit,
            agent_names=body.agent_names,
            chunk_categories=body.chunk_categories,
            min_confidence=body.min_confidence,
            only_validated=body.only_validated,
            filter_fallback=True,
        )
        return LeadSearchResponse(hits=hits, section_confidence=section_confidence(hits))

    @app.get("/qualifications/{qualification_id}/chunks", response_model=list[DealChunkHit])
    async def lead_chunks(
        qualification_id: str, request: Request, limit: Annotated[int | None, Query(ge=1)] = None
    ) -> list[DealChunkHit]:
        """Lead retrieval without a query embedding: the chunks, unranked (similarity null)."""
        return await dv.list_deal_chunks(db(request), qualification_id=qualification_id, limit=limit)

    @app.post("/pre-qualifications/{pre_qualification_id}/agent-search", response_model=list[DealChunkHit])
    async def agent_search(pre_qualification_id: str, body: AgentSearchRequest, request: Request) -> list[DealChunkHit]:
        """Agent retrieval (queryRAG): similarity > 0.7, tech-stack filter with the old fallback."""
        return await dv.search_deal_embeddings(
            db(request),
            body.embedding,
            pre_qualification_id=pre_qualification_id,
            threshold=0.7,
            limit=body.limit,
            tech_stack=body.tech_stack,
            filter_fallback=True,
        )

    @app.post("/pre-qualifications/{pre_qualification_id}/raw-search", response_model=list[RawChunkHit])
    async def raw_search(pre_qualification_id: str, body: EmbeddingRequest, request: Request) -> list[RawChunkHit]:
        """Raw retrieval (queryRawChunks): similarity > 0.2."""
        return await dv.search_raw_chunks(
            db(request), body.embedding, pre_qualification_id=pre_qualification_id, threshold=0.2, limit=body.limit
        )

    @app.post("/qualifications/{qualification_id}/expert-search", response_model=list[DealChunkHit])
    async def expert_search(qualification_id: str, body: ExpertSearchRequest, request: Request) -> list[DealChunkHit]:
        """Deep-scan expert (queryLeadRag): > 0.2, agent substring, best k when nothing passes."""
        return await dv.search_deal_embeddings(
            db(request),
            body.embedding,
            qualification_id=qualification_id,
            threshold=0.2,
            limit=body.limit,
            agent_name_contains=body.agent_name_contains,
            fallback_to_top_k=True,
        )

    @app.post("/qualifications/{qualification_id}/hybrid-search", response_model=list[HybridDealChunkHit])
    async def hybrid_search(
        qualification_id: str, body: HybridSearchRequest, request: Request
    ) -> list[HybridDealChunkHit]:
        """Hybrid retrieval: German full-text (exact terms such as "TYPO3") + vector, fused by RRF.

        ``text`` and/or ``embedding``; ``mmr_lambda`` diversifies the hits. Unusable text
        (over 4,096 characters, lone surrogates) is a 422 like any other bad argument.
        """
        return await dv.hybrid_search_deal_embeddings(
            db(request),
            body.text,
            body.embedding,
            qualification_id=qualification_id,
            limit=body.limit,
            agent_names=body.agent_names,
            chunk_categories=body.chunk_categories,
            threshold=body.threshold,
            text_weight=body.text_weight,
            vector_weight=body.vector_weight,
            mmr_lambda=body.mmr_lambda,
        )

    @app.post("/search", response_model=list[SimilarityHit])
    async def search_action(body: SimilarRequest, request: Request) -> list[SimilarityHit]:
        """The search action (searchSimilar): >= threshold, merged over lead, agent and raw sources."""
        return await dv.search_similar(
            db(request),
            body.embedding,
            qualification_id=body.qualification_id,
            pre_qualification_id=body.pre_qualification_id,
            threshold=body.threshold,
            limit=body.limit,
            include_raw_chunks=body.include_raw_chunks,
        )

    @app.post("/pre-qualifications/duplicates", response_model=list[PreQualificationMatch])
    async def duplicates(body: DuplicateRequest, request: Request) -> list[PreQualificationMatch]:
        """The duplicate check's semantic step: similarity percent >= 85 by default."""
        return await dv.find_similar_pre_qualifications(
            db(request),
            body.embedding,
            exclude_id=body.exclude_id,
            min_similarity_percent=body.min_similarity_percent,
            limit=body.limit,
        )

    @app.put("/pre-qualifications/{pre_qualification_id}/sections/{section_id}/chunks", response_model=dv.ReplaceResult)
    async def replace_section(
        pre_qualification_id: str, section_id: str, body: SectionChunks, request: Request
    ) -> dv.ReplaceResult:
        """Replace a section's chunks of one kind (``chunk_type``, ``metadata.sectionId``), atomically.

        Every chunk is stored with the pre-qualification, the chunk type, the agent and
        ``metadata.sectionId = section_id``; the section's old chunks are deleted in the same
        transaction. Returns the deleted and inserted ids.
        """
        chunks = [
            dv.DealChunk(
                pre_qualification_id=pre_qualification_id,
                agent_name=body.agent_name,
                chunk_type=body.chunk_type,
                chunk_index=i,
                content=c.content,
                metadata={**c.metadata, "sectionId": section_id},
                embedding=c.embedding,
                confidence=c.confidence,
            )
            for i, c in enumerate(body.chunks)
        ]
        return await dv.replace_deal_chunks(
            db(request),
            chunks,
            pre_qualification_id=pre_qualification_id,
            chunk_type=body.chunk_type,
            metadata_match={"sectionId": section_id},
        )

    @app.delete("/pre-qualifications/{pre_qualification_id}/sections/{section_id}/chunks", response_model=Deleted)
    async def delete_section(
        pre_qualification_id: str, section_id: str, request: Request, chunk_type: str = "visualization"
    ) -> Deleted:
        """Delete a section's chunks of one kind."""
        deleted = await dv.delete_deal_chunks(
            db(request),
            pre_qualification_id=pre_qualification_id,
            chunk_type=chunk_type,
            metadata_match={"sectionId": section_id},
        )
        return Deleted(deleted=deleted)

    @app.delete("/qualifications/{qualification_id}/chunks", response_model=Deleted)
    async def delete_qualification_chunks(qualification_id: str, request: Request) -> Deleted:
        """Delete every chunk of a qualification (before the qualification itself is deleted)."""
        return Deleted(deleted=await dv.delete_deal_chunks(db(request), qualification_id=qualification_id))

    return app


def _json_safe(value: Any) -> Any:
    """*value* with every non-finite float replaced by its text (``"nan"``, ``"inf"``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


class EmbeddingRequest(BaseModel):
    """A query embedding (3072 numbers) and a result limit."""

    embedding: list[float] = Field(description="query embedding, text-embedding-3-large (3072 numbers)")
    limit: int = Field(default=5, ge=1, le=50)


class LeadSearchRequest(EmbeddingRequest):
    agent_names: list[str] | None = None
    chunk_categories: list[str] | None = None
    min_confidence: int | None = Field(default=None, ge=0, le=100)
    only_validated: bool = False


class LeadSearchResponse(BaseModel):
    hits: list[DealChunkHit]
    section_confidence: int = Field(description="the old lead service's section confidence score (0-100)")


class HybridSearchRequest(BaseModel):
    """Query text and/or a query embedding, with the hybrid search's options."""

    text: str | None = Field(default=None, description='search words: exact terms, "phrases", or, -word')
    embedding: list[float] | None = Field(default=None, description="query embedding (3072 numbers)")
    limit: int = Field(default=5, ge=1, le=50)
    agent_names: list[str] | None = None
    chunk_categories: list[str] | None = None
    threshold: float | None = Field(default=None, ge=-1, le=1, description="vector leg only")
    text_weight: float = Field(default=1.0, ge=0)
    vector_weight: float = Field(default=1.0, ge=0)
    mmr_lambda: float | None = Field(default=None, ge=0, le=1, description="None: no MMR diversification")


class AgentSearchRequest(EmbeddingRequest):
    tech_stack: str | None = None


class ExpertSearchRequest(EmbeddingRequest):
    limit: int = Field(default=10, ge=1, le=50)
    agent_name_contains: str | None = None


class SimilarRequest(EmbeddingRequest):
    qualification_id: str | None = None
    pre_qualification_id: str | None = None
    threshold: float = Field(default=0.5, ge=0, le=1, allow_inf_nan=False)
    limit: int = Field(default=10, ge=1, le=50)
    include_raw_chunks: bool = True


class DuplicateRequest(BaseModel):
    embedding: list[float]
    exclude_id: str | None = None
    min_similarity_percent: int = Field(default=85, ge=0, le=100)
    limit: int | None = Field(default=None, ge=1)


class NewChunk(BaseModel):
    """One chunk of a section: its text, embedding and metadata (``sectionId`` is set by the path)."""

    content: str
    embedding: list[float] | None = Field(default=None, description="3072 numbers; None for a screenshot chunk")
    metadata: dict[str, Any] = Field(default_factory=dict)
    confidence: int = Field(default=50, ge=0, le=100)


class SectionChunks(BaseModel):
    """The new chunks of a section, all of one kind and one agent."""

    chunk_type: str = "visualization"
    agent_name: str = "prequal_section_agent"
    chunks: list[NewChunk] = Field(max_length=1000)


class Deleted(BaseModel):
    deleted: int = Field(description="rows deleted")


app = create_app()
