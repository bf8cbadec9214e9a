"""Versioned SQL migrations, applied under an advisory lock and recorded in a table.

The migrations are the ``.sql`` files in ``dealhunter_vectors/db/sql`` named
``NNN_description.sql``; each runs in its own transaction. ``apply_schema`` is
idempotent: a second run finds every version recorded and changes nothing. A recorded
migration whose file changed since (checksum) is reported, never re-run silently.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import asyncpg

from .. import observe
from ..errors import ConfigurationError, ReadOnlyServerError, SchemaError
from .distributed import apply_distributed_layout, require_citus
from .faults import operation
from .fulltext import set_text_search_config
from .migrations import (
    ADVISORY_LOCK_KEY,
    INDEX_BUILD_TIMEOUT,
    MIGRATIONS_TABLE,
    Migration,
    apply_recorded,
    migrations,
    quote_ident,
)
from .norms import validate_norm_constraints
from .server import session_state

__all__ = [
    "DISTRIBUTED_LAYOUT_VERSION_OFFSET",
    "MIGRATIONS_TABLE",
    "VECTOR_INDEXES",
    "IndexBuildProgress",
    "Migration",
    "SchemaStatus",
    "apply_schema",
    "create_vector_indexes",
    "drop_vector_indexes",
    "ensure_writable",
    "index_build_progress",
    "legacy_schema",
    "migrations",
    "quote_ident",
    "schema_status",
    "vector_index_statements",
]

_log = logging.getLogger(__name__)

DISTRIBUTED_LAYOUT_VERSION_OFFSET = 1000
"""``apply_schema(..., distributed=True)`` reports distributed-layout version n as 1000 + n."""


_CREATE_MIGRATIONS_TABLE = f"""
CREATE TABLE IF NOT EXISTS "{MIGRATIONS_TABLE}" (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class VectorIndex:
    """One HNSW halfvec index (defined by migration 002, redefined by 003)."""

    name: str
    table: str
    column: str


VECTOR_INDEXES: tuple[VectorIndex, ...] = (
    VectorIndex("pre_qualifications_description_embedding_hnsw_idx", "pre_qualifications", "description_embedding"),
)
"""The HNSW halfvec indexes the schema ends with (migration 003's definition; the bulk loader
drops and rebuilds them). Migration 006 dropped those of ``deal_embeddings`` and ``raw_chunks``:
their searches are owner-scoped and exact and never read a graph."""


@dataclass(frozen=True)
class SchemaStatus:
    """What :func:`schema_status` found: applied and pending versions, changed files."""

    applied: tuple[int, ...]
    pending: tuple[int, ...]
    changed: tuple[int, ...]

    @property
    def version(self) -> int:
        return max(self.applied, default=0)

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.changed


@cache
def legacy_schema() -> dict[str, Any]:
    """The packaged facts about the legacy SQLite schema (29 tables, 452 columns)."""
    text = resources.files("dealhunter_vectors.data").joinpath("sqlite_schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


async def _recorded(conn: asyncpg.Connection) -> dict[int, str]:
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", MIGRATIONS_TABLE)
    if not exists:
        return {}
    rows = await conn.fetch(f'SELECT version, checksum FROM "{MIGRATIONS_TABLE}"')  # noqa: S608 - constant
    return {r["version"]: r["checksum"] for r in rows}


@operation("schema_status")
async def schema_status(db: asyncpg.Pool | asyncpg.Connection) -> SchemaStatus:
    """Which migrations are applied, pending, or changed since they were applied."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await schema_status(conn)
    recorded = await _recorded(db)
    known = {m.version: m for m in migrations()}
    unknown = sorted(v for v in recorded if v not in known)
    if unknown:
        raise SchemaError(f"the database has schema version(s) {unknown} that this library does not know; upgrade it")
    return SchemaStatus(
        applied=tuple(sorted(recorded)),
        pending=tuple(v for v in known if v not in recorded),
        changed=tuple(v for v, c in recorded.items() if known[v].checksum != c),
    )


async def _schema_is_current(conn: asyncpg.Connection, target: int | None) -> bool:
    """True when the extension exists and every migration (up to *target*) is applied unchanged (read-only)."""
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')"):
        return False
    status = await schema_status(conn)
    wanted = [m.version for m in migrations() if target is None or m.version <= target]
    return not status.changed and all(v in status.applied for v in wanted)


async def ensure_writable(
    db: asyncpg.Pool | asyncpg.Connection, *, action: str, target: str = "DATABASE_URL (--database-url)"
) -> None:
    """Raise :class:`ReadOnlyServerError` when *db* is a read-only standby (or read-only by default).

    :func:`apply_schema` and the loader call this first, so ``schema apply`` or ``migrate``
    pointed at a replica fails with one line instead of a ``ReadOnlySQLTransactionError``
    traceback halfway through.
    """
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            await ensure_writable(conn, action=action, target=target)
        return
    row = await db.fetchrow("SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS ro")
    assert row is not None
    if row["standby"]:
        raise ReadOnlyServerError(f"{action}: server is a read-only standby: point {target} at the primary")
    if row["ro"] == "on" and not db.is_in_transaction():
        raise ReadOnlyServerError(
            f"{action}: server is read-only (default_transaction_read_only = on): point {target} at a writable primary"
        )


@operation("apply_schema")
async def apply_schema(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    target: int | None = None,
    text_search_config: str | None = None,
    distributed: bool = False,
) -> list[int]:
    """Apply every pending migration (up to *target*); return the versions applied now.

    Safe to run concurrently from several processes: an advisory lock serialises them
    and the second finds nothing to do. Each migration runs in its own transaction. When
    the schema is current nothing but a read-only check runs (no lock, no DDL), so a role
    without DDL rights may call it.

    *text_search_config* (e.g. ``"simple"``): afterwards, rebuild the full-text columns of
    migration 005 with that text search configuration unless it is already in force
    (:func:`~dealhunter_vectors.db.fulltext.set_text_search_config`); None keeps the current
    one (``german`` on a new database).

    After applying migrations it validates migration 008's norm checks
    (:func:`~dealhunter_vectors.db.norms.validate_norm_constraints`): a table holding
    embeddings whose norm lies outside [1e-12, 1e15] keeps its check ``NOT VALID`` and is
    logged as a warning (``doctor`` lists the rows); the searches skip those rows.

    ``distributed=True`` (a Citus coordinator): then the distributed layout
    (:mod:`dealhunter_vectors.db.distributed`, docs/scaling.md); its versions are reported as
    ``DISTRIBUTED_LAYOUT_VERSION_OFFSET + n`` (layout 1 -> 1001).
    """
    if text_search_config is not None and target is not None and target < 5:
        raise ConfigurationError(f"text_search_config needs migration 005 (full-text columns), target is {target}")
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await apply_schema(
                conn, target=target, text_search_config=text_search_config, distributed=distributed
            )
    try:
        if distributed:
            await require_citus(db)  # before any table is created as a plain local table
        await ensure_writable(db, action="schema apply")
        applied = [] if await _schema_is_current(db, target) else await _apply_pending(db, target)
        if applied:  # a separate step: out-of-range rows keep a check NOT VALID, never fail the upgrade
            await validate_norm_constraints(db)
        if text_search_config is not None:
            await set_text_search_config(db, text_search_config)
        if distributed:
            applied += [DISTRIBUTED_LAYOUT_VERSION_OFFSET + v for v in await apply_distributed_layout(db)]
    finally:
        # What this session learned about the schema (e.g. its deployment layout) is stale now.
        session_state(db).clear()
    return applied


async def _apply_pending(conn: asyncpg.Connection, target: int | None) -> list[int]:
    """Under the schema lock: the extension, the migrations table, each pending migration in its own transaction."""
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", ADVISORY_LOCK_KEY)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute(_CREATE_MIGRATIONS_TABLE)
        status = await schema_status(conn)
        if status.changed:
            raise SchemaError(
                f"migration file(s) {list(status.changed)} changed after they were applied; "
                "write a new migration instead of editing an applied one"
            )
        for mig in migrations():
            if mig.version in status.applied or (target is not None and mig.version > target):
                continue
            with observe.step("apply_migration", migration=f"{mig.version:03d}_{mig.name}"):
                await apply_recorded(conn, mig, table=MIGRATIONS_TABLE, what="migration", statements=[mig.sql])
            applied.append(mig.version)
            _log.info("applied migration %03d_%s", mig.version, mig.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", ADVISORY_LOCK_KEY)
    return applied


def vector_index_statements() -> list[str]:
    """The ``CREATE INDEX`` statements of the newest migration that defines the vector indexes.

    Later migrations may redefine the HNSW indexes (003: m = 32); rebuilding after a bulk
    load must produce the current definition, not the first one. Only the indexes the schema
    still has (:data:`VECTOR_INDEXES`; 006 dropped two) are returned.
    """
    defining = [m for m in migrations() if "USING hnsw" in m.sql]
    if not defining:
        raise SchemaError("no migration in the package defines the vector indexes")
    lines = [line for line in defining[-1].sql.splitlines() if not line.lstrip().startswith("--")]
    statements = [stmt.strip() for stmt in "\n".join(lines).split(";")]
    wanted = {quote_ident(idx.name) for idx in VECTOR_INDEXES}
    return [
        stmt
        for stmt in statements
        if stmt.upper().startswith("CREATE INDEX") and any(f" {name} " in stmt for name in wanted)
    ]


async def drop_vector_indexes(conn: asyncpg.Connection, tables: set[str] | None = None) -> list[str]:
    """Drop the HNSW indexes (of *tables*, default all) before a bulk load; return their names."""
    dropped = []
    for idx in VECTOR_INDEXES:
        if tables is None or idx.table in tables:
            await conn.execute(f"DROP INDEX IF EXISTS {quote_ident(idx.name)}")
            dropped.append(idx.name)
    return dropped


async def create_vector_indexes(conn: asyncpg.Connection, *, timeout: float = INDEX_BUILD_TIMEOUT) -> None:
    """(Re)create the HNSW indexes as the newest migration defines them (``IF NOT EXISTS``).

    An HNSW build of many 3072-d rows takes minutes, so this statement gets its own
    *timeout* instead of the pool's command timeout.
    """
    for statement in vector_index_statements():
        _log.info("building index: %s", " ".join(statement.split()))
        await conn.execute(statement, timeout=timeout)


@dataclass(frozen=True)
class IndexBuildProgress:
    """One ``CREATE INDEX`` in progress in the current database (``pg_stat_progress_create_index``).

    pgvector reports its HNSW build there: phase ``building index: loading tuples`` with
    ``tuples_done`` of ``tuples_total``; ``CREATE INDEX CONCURRENTLY`` adds its waiting phases.
    """

    pid: int
    table: str
    index: str | None
    command: str
    phase: str
    done: int
    total: int


_INDEX_PROGRESS_SQL = """
SELECT p.pid, t.relname AS table_name, i.relname AS index_name, p.command, p.phase,
       p.tuples_done, p.tuples_total, p.blocks_done, p.blocks_total
FROM pg_stat_progress_create_index p
JOIN pg_class t ON t.oid = p.relid
LEFT JOIN pg_class i ON i.oid = p.index_relid
WHERE p.datname = current_database()
ORDER BY p.pid
"""


async def index_build_progress(conn: asyncpg.Connection | asyncpg.Pool) -> list[IndexBuildProgress]:
    """The index builds running in this database now (empty when none): for progress bars."""
    rows = await conn.fetch(_INDEX_PROGRESS_SQL)
    out = []
    for r in rows:
        by_tuples = (r["tuples_total"] or 0) > 0
        out.append(
            IndexBuildProgress(
                pid=r["pid"],
                table=r["table_name"],
                index=r["index_name"],
                command=r["command"],
                phase=r["phase"],
                done=int((r["tuples_done"] if by_tuples else r["blocks_done"]) or 0),
                total=int((r["tuples_total"] if by_tuples else r["blocks_total"]) or 0),
            )
        )
    return out
