"""The text search configuration of the full-text columns (migration 005), as a setting.

``deal_embeddings.content_tsv`` and ``raw_chunks.content_tsv`` are stored generated
``tsvector`` columns of ``content`` with a GIN index each; since migration 011 the content's
German compound parts follow it (``content_parts``, :mod:`.content_parts`; docs/compounds.md).
Which PostgreSQL text search configuration builds them is a database setting:

* ``german`` (the default): dealhunter's bid and website text. Snowball stemming
  (``Angebote`` and ``Angebot`` -> ``angebot``), German stop words, umlauts and ß folded
  (``Straße`` -> ``strass``, like ``Strasse``).
* ``simple``: lower-casing only, no stemming, no stop words; for mixed-language corpora.
* ``english``: English stemming and stop words.
* any other configuration the server knows (``SELECT cfgname FROM pg_ts_config``).

:func:`set_text_search_config` changes it: in one transaction (under the schema's advisory
lock) it rebuilds both generated columns and their GIN indexes and redefines
``dealhunter_text_search_config()``, which the hybrid search uses to parse query text, so
query and columns always agree. The rebuild rewrites both tables (and rebuilds their other
indexes): seconds per 1,000 rows, see docs/benchmarks.md ("Hybrid search").
:func:`~dealhunter_vectors.apply_schema` takes ``text_search_config=`` and calls it after
the migrations.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from ..errors import ConfigurationError, SchemaError
from .content_parts import has_parts_columns, parts_tsvector_sql
from .faults import operation
from .migrations import ADVISORY_LOCK_KEY, INDEX_BUILD_TIMEOUT, quote_ident

__all__ = [
    "DEFAULT_TEXT_SEARCH_CONFIG",
    "FULLTEXT_TABLES",
    "MAX_INDEXED_CHARS",
    "content_tsv_expression",
    "set_text_search_config",
    "text_search_config",
]

DEFAULT_TEXT_SEARCH_CONFIG: Final = "german"
"""The configuration migration 005 installs."""
FULLTEXT_TABLES: Final = ("deal_embeddings", "raw_chunks")
"""Tables with a ``content_tsv`` column."""
MAX_INDEXED_CHARS: Final = 250_000
"""Characters of ``content`` that are indexed (a tsvector is limited to 1 MB)."""
CONFIG_FUNCTION: Final = "dealhunter_text_search_config"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def content_tsv_expression(config: str, *, parts: bool = True) -> str:
    """The generated column's expression for a (validated, canonical) configuration name.

    With *parts* (migration 011): the content's tsvector, then its compound parts' (``||``
    shifts their positions past the content's, so phrases of the text match as before).
    """
    text = f'to_tsvector({_literal(config)}::regconfig, left("content", {MAX_INDEXED_CHARS}))'
    return f"{text} || {parts_tsvector_sql(_literal(config))}" if parts else text


def _rebuild_statements(config: str, *, parts: bool) -> list[str]:
    # The function first: on Citus a function command cannot follow the parallel DDL on the shards
    # in one transaction (it needs one connection per node), the other way round works.
    statements = [
        f'CREATE OR REPLACE FUNCTION "{CONFIG_FUNCTION}"() RETURNS regconfig LANGUAGE sql STABLE PARALLEL SAFE '
        f"AS $$ SELECT {_literal(config)}::regconfig $$"
    ]
    expression = content_tsv_expression(config, parts=parts)
    for table in FULLTEXT_TABLES:
        statements.append(
            f'ALTER TABLE {quote_ident(table)} DROP COLUMN "content_tsv", '
            f'ADD COLUMN "content_tsv" tsvector GENERATED ALWAYS AS ({expression}) STORED'
        )
        statements.append(
            f'CREATE INDEX {quote_ident(table + "_content_tsv_idx")} ON {quote_ident(table)} USING gin ("content_tsv")'
        )
    return statements


@operation("text_search_config", read_only=True)
async def text_search_config(db: asyncpg.Pool | asyncpg.Connection) -> str:
    """The configuration the full-text columns are built with (``german`` unless changed)."""
    try:
        value = await db.fetchval(f'SELECT "{CONFIG_FUNCTION}"()::text')
    except asyncpg.UndefinedFunctionError:
        raise SchemaError("the database has no full-text columns (migration 005): run apply_schema") from None
    return str(value)


async def _canonical(conn: asyncpg.Connection, config: str) -> str:
    if not isinstance(config, str) or not config or "\x00" in config:
        raise ConfigurationError(f"text_search_config must be a configuration name, got {config!r}")
    canonical = await conn.fetchval(
        "SELECT CASE WHEN pg_input_is_valid($1, 'regconfig') THEN ($1::regconfig)::text END", config
    )
    if canonical is None:
        known = [r[0] for r in await conn.fetch("SELECT cfgname FROM pg_ts_config ORDER BY cfgname")]
        raise ConfigurationError(
            f"text_search_config {config!r} is not a text search configuration of this server "
            f"(known: {', '.join(known)})"
        )
    return str(canonical)


@operation("set_text_search_config")
async def set_text_search_config(db: asyncpg.Pool | asyncpg.Connection, config: str) -> bool:
    """Rebuild the full-text columns with *config*; return False when it is already in force.

    *config* is a text search configuration name (``german``, ``simple``, ``english``, ...);
    an unknown one is a :class:`~dealhunter_vectors.errors.ConfigurationError`. Runs in one
    transaction under the schema's advisory lock: concurrent callers and ``apply_schema``
    serialise, and a failure leaves the old columns in place.
    """
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await set_text_search_config(conn, config)
    conn = db
    canonical = await _canonical(conn, config)
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", ADVISORY_LOCK_KEY)
    try:
        if await text_search_config(conn) == canonical:
            return False
        try:
            async with conn.transaction():
                for statement in _rebuild_statements(canonical, parts=await has_parts_columns(conn)):
                    await conn.execute(statement, timeout=INDEX_BUILD_TIMEOUT)
        except asyncpg.InsufficientPrivilegeError:
            raise  # typed by @operation: PermissionDeniedError (the columns belong to the tables' owner)
        except asyncpg.PostgresError as exc:
            raise SchemaError(f"rebuilding the full-text columns with {canonical!r} failed: {exc}") from exc
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", ADVISORY_LOCK_KEY)
    return True
