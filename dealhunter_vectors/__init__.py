"""dealhunter_vectors: the PostgreSQL + pgvector retrieval layer of dealhunter.

* :func:`create_pool` / :func:`open_pool` / :func:`lifespan`: an asyncpg pool with pgvector codecs.
* :func:`apply_schema`: the legacy 29-table schema plus halfvec HNSW indexes, versioned.
* vector search, write paths and the SQLite bulk loader (see their modules).
"""

from __future__ import annotations

from .bulk_loader import MigrationProgress, load_order, migrate_sqlite
from .config import DEFAULT_DATABASE_URL, Settings, get_settings, mask_url
from .embedded import EmbeddedServer, resolve_database_url, start_embedded, stop_embedded
from .embeddings import as_embedding, parse_blob_embedding, parse_json_embedding
from .errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DealhunterVectorsError,
    EmbeddedServerError,
    InvalidEmbeddingError,
    MigrationError,
    MigrationStoppedError,
    NotFoundError,
    PoolExhaustedError,
    SchemaError,
)
from .migration_models import (
    MigrationReport,
    RowProblem,
    TableReport,
    TableVerification,
    VectorProblem,
    VerificationReport,
)
from .models import (
    ChunkSource,
    DealChunk,
    DealChunkHit,
    DealChunkSearch,
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
from .pool import Pool, close_pool, create_pool, lifespan, open_pool, transaction_settings
from .schema import VECTOR_INDEXES, apply_schema, schema_status
from .vector_search import (
    find_similar_pre_qualifications,
    list_deal_chunks,
    search_deal_embeddings,
    search_many,
    search_raw_chunks,
    search_similar,
)
from .verify import verify_migration
from .writes import insert_deal_chunks, replace_raw_chunks, set_description_embedding

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_DATABASE_URL",
    "VECTOR_INDEXES",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "DealhunterVectorsError",
    "EmbeddedServer",
    "EmbeddedServerError",
    "InvalidEmbeddingError",
    "Pool",
    "PoolExhaustedError",
    "SchemaError",
    "Settings",
    "__version__",
    "apply_schema",
    "as_embedding",
    "close_pool",
    "create_pool",
    "get_settings",
    "lifespan",
    "mask_url",
    "open_pool",
    "parse_blob_embedding",
    "parse_json_embedding",
    "resolve_database_url",
    "schema_status",
    "start_embedded",
    "stop_embedded",
    "transaction_settings",
]

# vector search, write paths and their models (issue 3)
__all__ += [
    "ChunkSource",
    "DealChunk",
    "DealChunkHit",
    "DealChunkSearch",
    "NotFoundError",
    "PreQualificationMatch",
    "PreQualificationSearch",
    "RawChunk",
    "RawChunkHit",
    "RawChunkSearch",
    "SearchRequest",
    "SimilarityHit",
    "SimilaritySearch",
    "find_similar_pre_qualifications",
    "insert_deal_chunks",
    "list_deal_chunks",
    "replace_raw_chunks",
    "search_deal_embeddings",
    "search_many",
    "search_raw_chunks",
    "search_similar",
    "section_confidence",
    "set_description_embedding",
]

# SQLite -> PostgreSQL migration and its verification (issue 4)
__all__ += [
    "MigrationError",
    "MigrationProgress",
    "MigrationReport",
    "MigrationStoppedError",
    "RowProblem",
    "TableReport",
    "TableVerification",
    "VectorProblem",
    "VerificationReport",
    "load_order",
    "migrate_sqlite",
    "verify_migration",
]
