"""dealhunter_vectors: the PostgreSQL + pgvector retrieval layer of dealhunter.

* Connect: :func:`create_pool` / :func:`open_pool` / :func:`lifespan` give an asyncpg pool
  with pgvector codecs (numpy float32 in and out); ``DATABASE_URL=embedded`` runs an
  embedded PostgreSQL 16 + pgvector 0.8.
* Schema: :func:`apply_schema` (the legacy 29 tables, halfvec HNSW indexes, versioned).
* Search, one function per call site of the old app: :func:`search_deal_embeddings`,
  :func:`search_raw_chunks`, :func:`search_similar`, :func:`find_similar_pre_qualifications`,
  :func:`list_deal_chunks`, :func:`search_many`; ``mmr_lambda`` diversifies the owner-scoped ones.
* Hybrid search (German full-text + vector, reciprocal rank fusion):
  :func:`hybrid_search_deal_embeddings`, :func:`hybrid_search_raw_chunks`; the text search
  configuration: :func:`text_search_config`, :func:`set_text_search_config`; German compounds
  are split (extra ``[compounds]``; docs/compounds.md), :func:`backfill_content_parts` splits
  rows that other writers stored.
* Write (one function per write of the app; README "Writing"): :func:`insert_deal_chunks`,
  :func:`replace_deal_chunks` (a section, atomically), :func:`delete_deal_chunks`,
  :func:`upsert_deal_chunks`, :func:`get_deal_chunks`, :func:`page_deal_chunks` /
  :func:`iter_deal_chunks`; the raw-chunk twins :func:`replace_raw_chunks`,
  :func:`delete_raw_chunks`, :func:`upsert_raw_chunks`, :func:`get_raw_chunks`,
  :func:`page_raw_chunks`; :func:`set_description_embedding`.
* Re-embed (docs/reembedding.md): :func:`stale_chunks` finds what a model must (re-)embed,
  :func:`update_embeddings` stores new embeddings by id in bulk.
* Migrate: :func:`migrate_sqlite` and :func:`verify_migration` move the old SQLite database.
* Errors (docs/reliability.md): :class:`InvalidArgumentError` / :class:`InvalidEmbeddingError`
  for bad input, :class:`DatabaseUnavailableError` (retryable) for a lost server,
  :class:`QueryTimeoutError` for the command timeout, all under :class:`DealhunterVectorsError`.
* Scale reads: ``create_pool(url, replicas=[...])`` returns a :class:`ReplicatedPool` whose
  searches run on healthy streaming standbys; :func:`on_primary` for read-your-writes.
* Scale out on Citus: ``apply_schema(pool, distributed=True)`` on a coordinator; every call
  above works unchanged there.

Developer tooling (the embedded server's and a local Citus cluster's control) lives in
:mod:`dealhunter_vectors.tooling`; its old top-level names still work for one release, with a
``DeprecationWarning`` (CHANGELOG.md).
"""

from __future__ import annotations

from . import _compat
from .config import DEFAULT_DATABASE_URL, Settings, get_settings, mask_url
from .db.fulltext import set_text_search_config, text_search_config
from .db.pool import Pool, close_pool, create_pool, lifespan, open_pool, transaction_settings
from .db.replicas import ReplicaStatus, ReplicatedPool, ServedBy, last_served_by, on_primary
from .db.schema import apply_schema, schema_status
from .embeddings import as_embedding, parse_blob_embedding, parse_json_embedding
from .errors import (
    AsyncOnlyError,
    CitusError,
    ConfigurationError,
    DatabaseUnavailableError,
    DealhunterVectorsError,
    EmbeddedServerError,
    InvalidArgumentError,
    InvalidEmbeddingError,
    InvalidQueryTextError,
    MigrationError,
    MigrationStoppedError,
    MissingExtraError,
    NotFoundError,
    PermissionDeniedError,
    PoolExhaustedError,
    QueryTimeoutError,
    ReadOnlyServerError,
    SchemaError,
    TLSConfigurationError,
)
from .migrate.loader import MigrationProgress, migrate_sqlite
from .migrate.reports import (
    MigrationReport,
    RowProblem,
    TableReport,
    TableVerification,
    VectorProblem,
    VerificationReport,
)
from .migrate.verify import verify_migration
from .models import (
    ChunkSource,
    DealChunk,
    DealChunkHit,
    DealChunkPage,
    DealChunkSearch,
    EmbeddingUpdate,
    EmbeddingUpdateResult,
    HybridDealChunkHit,
    HybridRawChunkHit,
    PreQualificationMatch,
    PreQualificationSearch,
    RawChunk,
    RawChunkHit,
    RawChunkPage,
    RawChunkSearch,
    ReplaceResult,
    SearchRequest,
    SimilarityHit,
    SimilaritySearch,
    StaleChunk,
    StoredDealChunk,
    StoredRawChunk,
    UpsertResult,
    section_confidence,
)
from .search import (
    find_similar_pre_qualifications,
    list_deal_chunks,
    search_deal_embeddings,
    search_many,
    search_raw_chunks,
    search_similar,
)
from .search.hybrid import hybrid_search_deal_embeddings, hybrid_search_raw_chunks
from .search.recall_check import RecallReport, recall_self_check
from .writes import (
    backfill_content_parts,
    delete_deal_chunks,
    delete_raw_chunks,
    get_deal_chunks,
    get_raw_chunks,
    insert_deal_chunks,
    iter_deal_chunks,
    page_deal_chunks,
    page_raw_chunks,
    replace_deal_chunks,
    replace_raw_chunks,
    set_description_embedding,
    stale_chunks,
    update_embeddings,
    upsert_deal_chunks,
    upsert_raw_chunks,
)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dealhunter-vectors")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
        return "0+unknown"


__version__ = _package_version()
"""The installed distribution's version (``importlib.metadata``): what ``--version`` prints."""

_compat.install()  # 0.1 module paths (dealhunter_vectors.vector_search, ...) for one release


def __getattr__(name: str) -> object:
    """The 0.2 top-level names that moved out of the application API (one release, with a warning)."""
    return _compat.moved_name(name)


__all__ = [
    "DEFAULT_DATABASE_URL",
    "AsyncOnlyError",
    "ChunkSource",
    "CitusError",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "DealChunk",
    "DealChunkHit",
    "DealChunkPage",
    "DealChunkSearch",
    "DealhunterVectorsError",
    "EmbeddedServerError",
    "EmbeddingUpdate",
    "EmbeddingUpdateResult",
    "HybridDealChunkHit",
    "HybridRawChunkHit",
    "InvalidArgumentError",
    "InvalidEmbeddingError",
    "InvalidQueryTextError",
    "MigrationError",
    "MigrationProgress",
    "MigrationReport",
    "MigrationStoppedError",
    "MissingExtraError",
    "NotFoundError",
    "PermissionDeniedError",
    "Pool",
    "PoolExhaustedError",
    "PreQualificationMatch",
    "PreQualificationSearch",
    "QueryTimeoutError",
    "RawChunk",
    "RawChunkHit",
    "RawChunkPage",
    "RawChunkSearch",
    "ReadOnlyServerError",
    "RecallReport",
    "ReplaceResult",
    "ReplicaStatus",
    "ReplicatedPool",
    "RowProblem",
    "SchemaError",
    "SearchRequest",
    "ServedBy",
    "Settings",
    "SimilarityHit",
    "SimilaritySearch",
    "StaleChunk",
    "StoredDealChunk",
    "StoredRawChunk",
    "TLSConfigurationError",
    "TableReport",
    "TableVerification",
    "UpsertResult",
    "VectorProblem",
    "VerificationReport",
    "__version__",
    "apply_schema",
    "as_embedding",
    "backfill_content_parts",
    "close_pool",
    "create_pool",
    "delete_deal_chunks",
    "delete_raw_chunks",
    "find_similar_pre_qualifications",
    "get_deal_chunks",
    "get_raw_chunks",
    "get_settings",
    "hybrid_search_deal_embeddings",
    "hybrid_search_raw_chunks",
    "insert_deal_chunks",
    "iter_deal_chunks",
    "last_served_by",
    "lifespan",
    "list_deal_chunks",
    "mask_url",
    "migrate_sqlite",
    "on_primary",
    "open_pool",
    "page_deal_chunks",
    "page_raw_chunks",
    "parse_blob_embedding",
    "parse_json_embedding",
    "recall_self_check",
    "replace_deal_chunks",
    "replace_raw_chunks",
    "schema_status",
    "search_deal_embeddings",
    "search_many",
    "search_raw_chunks",
    "search_similar",
    "section_confidence",
    "set_description_embedding",
    "set_text_search_config",
    "stale_chunks",
    "text_search_config",
    "transaction_settings",
    "update_embeddings",
    "upsert_deal_chunks",
    "upsert_raw_chunks",
    "verify_migration",
]
