"""The distributed layout on a Citus coordinator: table placement and its versioned DDL.

``apply_schema(pool, distributed=True)`` runs the single-node migrations first, then the
versioned layout files ``db/sql/distributed/layout_NNN_*.sql`` (recorded in
``dealhunter_distributed_layout``). Every pre-qualification's rows live on one shard:
``pre_qualifications`` is distributed by ``id``, its direct children by
``pre_qualification_id``, the rest of a pre-qualification's tables by a library-owned
``tenant_id`` (the owning pre-qualification's id), all co-located; shared tables are
reference tables. Design, kept and dropped constraints: ``docs/scaling.md``.

How statements *run* on this layout (router queries, the tenant of a write) is
:mod:`dealhunter_vectors.layout.citus`; the loader's batch forms are
:mod:`dealhunter_vectors.migrate.batches_citus`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Final

import asyncpg

from ..errors import CitusError, SchemaError
from .migrations import ADVISORY_LOCK_KEY, Migration, apply_recorded, split_statements, versioned_sql_files

__all__ = [
    "LAYOUT_TABLE",
    "TENANT_COLUMN",
    "TENANT_FROM_PARENT",
    "DistributedTable",
    "apply_distributed_layout",
    "distributed_tables",
    "distribution_column",
    "layout_migrations",
    "require_citus",
    "tenant_column",
    "tenant_tables",
]

LAYOUT_TABLE: Final = "dealhunter_distributed_layout"
"""Records the applied distributed-layout versions (a local table on the coordinator); its
presence is how a connection tells the distributed layout from a single node."""
TENANT_COLUMN: Final = "tenant_id"
_LAYOUT_FILE = re.compile(r"^layout_(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class DistributedTable:
    """How one table is placed: ``reference``, or ``distributed`` by *column*."""

    table: str
    kind: str  # "reference" | "distributed"
    column: str | None = None
    colocated_with: str | None = "pre_qualifications"


_REFERENCE = (
    "business_units",
    "users",
    "references",
    "competencies",
    "technologies",
    "employees",
    "accounts",
    "competitors",
)
_BY_PRE_QUALIFICATION = (
    "quick_scans",
    "deep_migration_analyses",
    "documents",
    "team_assignments",
    "subjective_assessments",
    "qualifications",
    "raw_chunks",
)
_BY_QUALIFICATION = (  # tenant tables whose tenant is their qualification's pre-qualification
    "qualification_section_data",
    "website_audits",
    "cms_match_results",
    "baseline_comparisons",
    "pt_estimations",
    "reference_matches",
    "competitor_matches",
    "pitchdecks",
)
_BY_TENANT = (
    *_BY_QUALIFICATION,
    "pitchdeck_deliverables",
    "pitchdeck_team_members",
    "deal_embeddings",
    "background_jobs",
)


def distributed_tables() -> tuple[DistributedTable, ...]:
    """The placement of all 29 tables in the distributed layout (layout 001)."""
    return (
        *(DistributedTable(t, "reference", None, None) for t in _REFERENCE),
        DistributedTable("audit_trails", "distributed", "id", None),
        DistributedTable("pre_qualifications", "distributed", "id", None),
        *(DistributedTable(t, "distributed", "pre_qualification_id") for t in _BY_PRE_QUALIFICATION),
        *(DistributedTable(t, "distributed", TENANT_COLUMN) for t in _BY_TENANT),
    )


_DISTRIBUTION_COLUMN: Final = {t.table: t.column for t in distributed_tables()}


def distribution_column(table: str) -> str | None:
    """The column *table* is distributed by (None for a reference table)."""
    return _DISTRIBUTION_COLUMN.get(table)


def tenant_column(table: str) -> str | None:
    """The column holding a row's tenant (its pre-qualification's id) in a table co-located
    with ``pre_qualifications`` (``id`` there, else its distribution column); None for the
    reference tables and ``audit_trails``."""
    if table == "pre_qualifications":
        return "id"
    placed = next((t for t in distributed_tables() if t.table == table), None)
    if placed is None or placed.kind != "distributed" or placed.colocated_with != "pre_qualifications":
        return None
    return placed.column


def tenant_tables() -> tuple[str, ...]:
    """Tables that carry the library-owned ``tenant_id`` column."""
    return _BY_TENANT


TENANT_FROM_PARENT: Final[dict[str, tuple[str, str, str]]] = {
    **{t: ("qualification_id", "qualifications", "pre_qualification_id") for t in _BY_QUALIFICATION},
    "pitchdeck_deliverables": ("pitchdeck_id", "pitchdecks", TENANT_COLUMN),
    "pitchdeck_team_members": ("pitchdeck_id", "pitchdecks", TENANT_COLUMN),
}
"""How a tenant table's ``tenant_id`` follows from its parent: (the row's column, the parent
table, the parent's tenant column). ``deal_embeddings`` and ``background_jobs`` have rules of
their own (their pre-qualification, else their qualification's)."""


@cache
def layout_migrations() -> tuple[Migration, ...]:
    """The packaged distributed-layout files, in version order."""
    return tuple(Migration(*f) for f in versioned_sql_files("dealhunter_vectors.db.sql.distributed", _LAYOUT_FILE))


async def require_citus(conn: asyncpg.Connection) -> str:
    """The citus extension's version (created when available); :class:`CitusError` on a plain server."""
    version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
    if version is None:
        available = await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'citus'")
        if not available:
            raise CitusError(
                "the server is not a Citus coordinator (no citus extension): point DATABASE_URL at a Citus "
                "coordinator, or start a local one with `dealhunter-vectors cluster start`"
            )
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
        except asyncpg.PostgresError as exc:
            raise CitusError(f"CREATE EXTENSION citus failed ({exc}); is citus in shared_preload_libraries?") from exc
        version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
    return str(version)


_CREATE_LAYOUT_TABLE: Final = f"""
CREATE TABLE IF NOT EXISTS "{LAYOUT_TABLE}" (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def apply_distributed_layout(conn: asyncpg.Connection) -> list[int]:
    """Apply the pending distributed-layout versions; return those applied now.

    Expects the single-node migrations applied (``apply_schema`` does both with
    ``distributed=True``). Idempotent; serialised with ``apply_schema`` by the same
    advisory lock; each layout version runs in one transaction.
    """
    await require_citus(conn)
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_CREATE_LAYOUT_TABLE)
        rows = await conn.fetch(f'SELECT version, checksum FROM "{LAYOUT_TABLE}"')  # noqa: S608 - constant
        recorded = {r["version"]: r["checksum"] for r in rows}
        known = {m.version: m for m in layout_migrations()}
        unknown = sorted(v for v in recorded if v not in known)
        if unknown:
            raise SchemaError(
                f"the database has distributed layout version(s) {unknown} that this library does not know"
            )
        changed = sorted(v for v, c in recorded.items() if known[v].checksum != c)
        if changed:
            raise SchemaError(f"distributed layout file(s) {changed} changed after they were applied")
        for mig in layout_migrations():
            if mig.version not in recorded:
                # one statement at a time: Citus rejects some of its commands in a multi-statement string
                statements = split_statements(mig.sql)
                await apply_recorded(conn, mig, table=LAYOUT_TABLE, what="distributed layout", statements=statements)
                applied.append(mig.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", ADVISORY_LOCK_KEY)
    return applied
