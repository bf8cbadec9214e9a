"""Moving the old app's SQLite database into PostgreSQL.

* :mod:`.source`: reading the SQLite file read-only and converting its values (timestamps,
  booleans, JSON, embeddings) into what PostgreSQL stores, with row-level problems.
* :mod:`.loader`: :func:`~.loader.migrate_sqlite`, the resumable bulk load (binary COPY, staging, reports).
* :mod:`.verify`: :func:`~.verify.verify_migration`, row-by-row checksums on both sides.
* :mod:`.reports`: the pydantic reports both produce.
"""
