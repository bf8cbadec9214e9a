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
  configuration: :func:`text_search_config`, :func:`set_text_search_config`.
* Write: :func:`insert_deal_chunks`, :func:`replace_raw_chunks`, :func:`set_description_embedding`.
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
    NotFoundError,
    PermissionDeniedError,
    PoolExhaustedError,
    QueryTimeoutError,
    ReadOnlyServerError,
    SchemaError,
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
    DealChunkSearch,
    HybridDealChunkHit,
    HybridRawChunkHit,
    PreQualificationMatch,
    PreQualificationSearch,
    RawChunk,
    RawChunkHit,
    RawChunkSearch,
    SearchRequest,
    SimilarityHit,
    SimilaritySearch,
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
from .writes import insert_deal_chunks, replace_raw_chunks, set_description_embedding


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
    "ChunkSource",
    "CitusError",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "DealChunk",
    "DealChunkHit",
    "DealChunkSearch",
    "DealhunterVectorsError",
    "EmbeddedServerError",
    "HybridDealChunkHit",
    "HybridRawChunkHit",
    "InvalidArgumentError",
    "InvalidEmbeddingError",
    "InvalidQueryTextError",
    "MigrationError",
    "MigrationProgress",
    "MigrationReport",
    "MigrationStoppedError",
    "NotFoundError",
    "PermissionDeniedError",
    "Pool",
    "PoolExhaustedError",
    "PreQualificationMatch",
    "PreQualificationSearch",
    "QueryTimeoutError",
    "RawChunk",
    "RawChunkHit",
    "RawChunkSearch",
    "ReadOnlyServerError",
    "ReplicaStatus",
    "ReplicatedPool",
    "RowProblem",
    "SchemaError",
    "SearchRequest",
    "ServedBy",
    "Settings",
    "SimilarityHit",
    "SimilaritySearch",
    "TableReport",
    "TableVerification",
    "VectorProblem",
    "VerificationReport",
    "__version__",
    "apply_schema",
    "as_embedding",
    "close_pool",
    "create_pool",
    "find_similar_pre_qualifications",
    "get_settings",
    "hybrid_search_deal_embeddings",
    "hybrid_search_raw_chunks",
    "insert_deal_chunks",
    "last_served_by",
    "lifespan",
    "list_deal_chunks",
    "mask_url",
    "migrate_sqlite",
    "on_primary",
    "open_pool",
    "parse_blob_embedding",
    "parse_json_embedding",
    "replace_raw_chunks",
    "schema_status",
    "search_deal_embeddings",
    "search_many",
    "search_raw_chunks",
    "search_similar",
    "section_confidence",
    "set_description_embedding",
    "set_text_search_config",
    "text_search_config",
    "transaction_settings",
    "verify_migration",
]
