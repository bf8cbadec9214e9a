"""dealhunter_vectors: the PostgreSQL + pgvector retrieval layer of dealhunter.

* :func:`create_pool` / :func:`open_pool` / :func:`lifespan`: an asyncpg pool with pgvector codecs.
* :func:`apply_schema`: the legacy 29-table schema plus halfvec HNSW indexes, versioned.
* vector search, write paths and the SQLite bulk loader (see their modules).
"""

from __future__ import annotations

from .config import DEFAULT_DATABASE_URL, Settings, get_settings, mask_url
from .embedded import EmbeddedServer, resolve_database_url, start_embedded, stop_embedded
from .embeddings import as_embedding, parse_blob_embedding, parse_json_embedding
from .errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DealhunterVectorsError,
    EmbeddedServerError,
    InvalidEmbeddingError,
    PoolExhaustedError,
    SchemaError,
)
from .pool import Pool, close_pool, create_pool, lifespan, open_pool, transaction_settings
from .schema import VECTOR_INDEXES, apply_schema, schema_status

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
