"""The Citus layout: statements routed to one shard by their tenant, distributed top-k, tenant-placed writes.

* **Owner statements** run their Citus form (:func:`~.statements.citus_form`: the shard key on
  every scan of a distributed table), one router query per request. The tenant is the owner
  itself for a pre-qualification; a qualification's is looked up once per session (one query
  for a whole batch) and remembered. An unknown qualification has no rows: its requests return
  ``[]`` without a query.
* **The global duplicate search** is a distributed top-k: the exact form pushes ``ORDER BY
  distance LIMIT`` to every shard and merges; the index form takes each shard's HNSW
  candidates (``SET LOCAL hnsw.*`` reaches the workers through
  ``citus.propagate_set_commands = 'local'``), keeps the best by half distance and re-ranks
  them by the exact distance; the widening rule of the single node applies to the merged candidates.
* **Writes** carry the tenant: a ``deal_embeddings`` row's is its pre-qualification, else its
  qualification's; constraint violations that Citus reports from a worker as SQLSTATE XX000
  are raised as the single node's error class. An upsert conflicts on the primary key
  ``(<distribution column>, "id")``; an id stored under another tenant is not written (a row
  cannot move to another shard), as a single node leaves a row whose owners differ.

Design and measurements: docs/scaling.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import asyncpg

from ..db.distributed import TENANT_COLUMN, distribution_column, tenant_tables
from ..db.migrations import quote_ident
from ..db.server import session_state
from ..errors import InvalidArgumentError, NotFoundError
from .base import CandidatePass, CandidateQuery, CandidateStatement, Layout
from .statements import OwnerRequest, OwnerStatement, Statement
from .upsert import stage_and_upsert

__all__ = [
    "Citus",
    "copy_violation",
    "deal_chunk_tenants",
    "qualification_tenants",
    "set_local",
]


async def qualification_tenants(conn: asyncpg.Connection, qualification_ids: Iterable[str]) -> dict[str, str]:
    """``{qualification id: its pre-qualification}`` for the ids that exist (one query)."""
    ids = sorted(set(qualification_ids))
    if not ids:
        return {}
    rows = await conn.fetch(
        'SELECT "id", "pre_qualification_id" FROM "qualifications" WHERE "id" = ANY($1::text[])', ids
    )
    return {r["id"]: r["pre_qualification_id"] for r in rows}


SHARD_MIN_CANDIDATES: Final = 100
"""Fewest HNSW candidates each shard contributes to the global search (a shard's graph holds a
fraction of the rows; the merged list needs enough of each)."""
_TENANT_CACHE_KEY: Final = "citus_qualification_tenants"
TENANT_CACHE_SIZE: Final = 10_000
"""Qualification tenants a session remembers (a qualification never changes its tenant: Citus
refuses to update a distribution column, so an entry can only go stale by a delete and a
re-insert of the same id, which the routed search notices)."""


def _tenant_cache(conn: asyncpg.Connection) -> dict[str, str]:
    cache: dict[str, str] = session_state(conn).setdefault(_TENANT_CACHE_KEY, {})
    return cache


async def _qualification_tenants_cached(
    conn: asyncpg.Connection, qualification_ids: Sequence[str]
) -> tuple[dict[str, str], set[str]]:
    """The tenants of *qualification_ids* (unknown ids absent) and which of them came from the cache.

    Only the ids the session has not seen are looked up (one multi-shard query); after that a
    qualification-owned search is one single-shard router query.
    """
    cache = _tenant_cache(conn)
    found = {q: cache[q] for q in qualification_ids if q in cache}
    missing = [q for q in qualification_ids if q not in found]
    if missing:
        looked_up = await qualification_tenants(conn, missing)
        if len(cache) + len(looked_up) > TENANT_CACHE_SIZE:
            cache.clear()
        cache.update(looked_up)
        found.update(looked_up)
    return found, {q for q in qualification_ids if q not in missing}


def _forget_tenant(conn: asyncpg.Connection, qualification_id: str, tenant: str | None) -> None:
    cache = _tenant_cache(conn)
    if tenant is None:
        cache.pop(qualification_id, None)
    else:
        cache[qualification_id] = tenant


async def set_local(conn: asyncpg.Connection, settings: Mapping[str, str | int | float | bool]) -> None:
    """``SET LOCAL`` each setting so that it reaches the workers too (inside a transaction).

    Citus propagates ``SET LOCAL`` commands (not ``set_config()`` calls) to the worker
    connections of the transaction when ``citus.propagate_set_commands = 'local'``.
    Names are checked against ``[a-z_.]``; values are booleans, numbers or simple words.
    """
    statements = ["SET LOCAL citus.propagate_set_commands TO 'local'"]
    for name, value in settings.items():  # all checked before anything is sent
        if not re.fullmatch(r"[a-z_]+(\.[a-z_]+)?", name):
            raise ValueError(f"invalid setting name {name!r}")
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif re.fullmatch(r"[a-z_]+", value):
            text = f"'{value}'"
        else:
            raise ValueError(f"invalid value for setting {name}: {value!r}")
        statements.append(f"SET LOCAL {name} TO {text}")
    for statement in statements:
        await conn.execute(statement)


_COPY_VIOLATIONS: Final[tuple[tuple[str, type[asyncpg.PostgresError]], ...]] = (
    ("duplicate key value violates unique constraint", asyncpg.UniqueViolationError),
    ("violates foreign key constraint", asyncpg.ForeignKeyViolationError),
    ("violates check constraint", asyncpg.CheckViolationError),
    ("null value in column", asyncpg.NotNullViolationError),
)


def copy_violation(exc: asyncpg.PostgresError) -> asyncpg.PostgresError:
    """The error a single node raises for *exc*, a constraint violation that Citus reports
    from a COPY on a worker as SQLSTATE XX000 (``InternalServerError``); else *exc*."""
    if getattr(exc, "sqlstate", None) != "XX000":
        return exc
    message = str(exc)
    for prefix, cls in _COPY_VIOLATIONS:
        if prefix in message:
            detail = getattr(exc, "detail", None)
            return cls(f"{message}\n{detail}" if detail and detail not in message else message)
    return exc


async def deal_chunk_tenants(
    conn: asyncpg.Connection, columns: Sequence[str], records: Sequence[Sequence[Any]]
) -> list[str]:
    """The tenant of each ``deal_embeddings`` record (values in *columns* order).

    A chunk's tenant is its pre-qualification, else its qualification's pre-qualification.
    ``NotFoundError`` names an unknown owner; a chunk whose qualification belongs to another
    pre-qualification than the chunk's own is an ``InvalidArgumentError``.
    """
    kid, kpre, kqual = columns.index("id"), columns.index("pre_qualification_id"), columns.index("qualification_id")
    qualifications = await qualification_tenants(conn, (r[kqual] for r in records if r[kqual] is not None))
    pre_ids = sorted({r[kpre] for r in records if r[kpre] is not None})
    existing: set[str] = set()
    if pre_ids:
        rows = await conn.fetch('SELECT "id" FROM "pre_qualifications" WHERE "id" = ANY($1::text[])', pre_ids)
        existing = {r["id"] for r in rows}
    tenants = []
    for r in records:
        row_id, pre_id, qual_id = r[kid], r[kpre], r[kqual]
        if pre_id is not None and pre_id not in existing:
            raise NotFoundError(f"deal_embeddings id={row_id}: pre_qualifications id={pre_id} does not exist")
        if qual_id is not None and qual_id not in qualifications:
            raise NotFoundError(f"deal_embeddings id={row_id}: qualifications id={qual_id} does not exist")
        if pre_id is not None and qual_id is not None and qualifications[qual_id] != pre_id:
            raise InvalidArgumentError(
                f"deal_embeddings id={row_id}",
                f"qualification {qual_id} belongs to pre-qualification {qualifications[qual_id]}, not {pre_id} "
                "(the distributed layout keeps a chunk with its tenant)",
            )
        tenants.append(pre_id if pre_id is not None else qualifications[qual_id])
    return tenants


class Citus(Layout):
    """A Citus coordinator with the distributed layout (db/distributed.py)."""

    name = "citus"
    sharded = True

    async def owner_batch(
        self, conn: asyncpg.Connection, statement: OwnerStatement, requests: Sequence[OwnerRequest]
    ) -> list[list[asyncpg.Record]]:
        """One single-shard router query per request (its Citus form, the tenant filled in).

        A qualification's tenant comes from the session's tenant cache (:func:`_tenant_cache`),
        looked up once per qualification and session otherwise. A routed search that finds
        nothing with a cached tenant checks the tenant again before it answers ``[]``.
        """
        if statement.tenant_is_owner:
            tenants = {r.owner_id: r.owner_id for r in requests}
            cached: set[str] = set()
        else:
            tenants, cached = await _qualification_tenants_cached(conn, [r.owner_id for r in requests])
        out: list[list[asyncpg.Record]] = []
        for request in requests:
            tenant = tenants.get(request.owner_id)
            rows = [] if tenant is None else await self.tenant_rows(conn, statement, request, tenant)
            if not rows and request.owner_id in cached:  # re-created under another tenant (ids are never reused
                fresh = await qualification_tenants(conn, [request.owner_id])  # in practice; stay exact anyway)
                _forget_tenant(conn, request.owner_id, fresh.get(request.owner_id))
                if fresh.get(request.owner_id, tenant) != tenant:
                    rows = await self.tenant_rows(conn, statement, request, fresh[request.owner_id])
            out.append(rows)
        return out

    async def tenant_rows(
        self, conn: asyncpg.Connection, statement: OwnerStatement, request: OwnerRequest, tenant: str
    ) -> list[asyncpg.Record]:
        """The Citus form with the caller's tenant: a single-shard router query, no look-up."""
        return list(await conn.fetch(statement.citus, *statement.citus_params(request, tenant)))

    async def all_rows(self, conn: asyncpg.Connection, statement: Statement, *args: Any) -> list[asyncpg.Record]:
        return list(await conn.fetch(statement.citus, *args))

    async def duplicate_candidates(
        self, conn: asyncpg.Connection, statement: CandidateStatement, query: CandidateQuery
    ) -> CandidatePass:
        """Each shard's HNSW candidates at the pass's candidate count, the best of them re-ranked
        exactly, with the frontier and the candidate count (the search widens as on a single node)."""
        candidates = min(query.cap, max(query.candidates, SHARD_MIN_CANDIDATES))
        settings: dict[str, str | int | float | bool] = {
            "hnsw.iterative_scan": "relaxed_order",
            "hnsw.ef_search": candidates,
            "hnsw.max_scan_tuples": max(query.max_scan_tuples, candidates),
            "enable_seqscan": False,  # this path exists to use the index (as on the single node)
            "plan_cache_mode": "force_custom_plan",
        }
        args = (query.vector, query.exclude_id, query.max_distance, query.limit, candidates)
        if conn.is_in_transaction():
            await set_local(conn, settings)
            rows = await conn.fetch(statement.citus, *args)
        else:
            async with conn.transaction():
                await set_local(conn, settings)
                rows = await conn.fetch(statement.citus, *args)
        found = [row for row in rows if row["id"] is not None]
        if not rows:
            return CandidatePass(found, query.cap, None, 0)
        return CandidatePass(found, candidates, rows[0]["frontier"], int(rows[0]["candidates"]))

    async def copy_rows(
        self, conn: asyncpg.Connection, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
    ) -> None:
        """The tenant column is filled for a tenant table; worker violations raise the single node's class."""
        names, rows = await _with_tenants(conn, table, columns, records)
        try:
            await conn.copy_records_to_table(table, records=rows, columns=names)
        except asyncpg.InternalServerError as exc:
            mapped = copy_violation(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def upsert_rows(
        self,
        conn: asyncpg.Connection,
        table: str,
        columns: Sequence[str],
        records: Sequence[Sequence[Any]],
        *,
        fixed: Sequence[str],
        keep: Sequence[str],
    ) -> list[asyncpg.Record]:
        """On ``(<distribution column>, "id")``, tenants filled; ids stored under another tenant are skipped."""
        names, rows = await _with_tenants(conn, table, columns, records)
        dist = distribution_column(table)
        if dist is None:
            raise NotImplementedError(f"upserts into the reference table {table}")
        kid, kdist = names.index("id"), names.index(dist)
        stored = await conn.fetch(
            f'SELECT "id", {quote_ident(dist)} AS "tenant" FROM {quote_ident(table)} '  # noqa: S608 - quoted
            'WHERE "id" = ANY($1::text[])',
            [r[kid] for r in rows],
        )
        tenant_of = {r[kid]: r[kdist] for r in rows}
        elsewhere = {r["id"] for r in stored if r["tenant"] != tenant_of[r["id"]]}
        rows = [r for r in rows if r[kid] not in elsewhere]
        try:
            return await stage_and_upsert(conn, table, names, rows, key=(dist, "id"), fixed=fixed, keep=keep)
        except asyncpg.InternalServerError as exc:
            mapped = copy_violation(exc)
            if mapped is exc:
                raise
            raise mapped from exc


async def _with_tenants(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """*columns* and *records* with the tenant column appended for a tenant table."""
    names = list(columns)
    rows = [tuple(r) for r in records]
    if table in tenant_tables():
        if table != "deal_embeddings":
            raise NotImplementedError(f"writes to {table} on the distributed layout go through the loader")
        tenants = await deal_chunk_tenants(conn, names, rows)
        rows = [(*r, t) for r, t in zip(rows, tenants, strict=True)]
        names.append(TENANT_COLUMN)
    return names, rows
