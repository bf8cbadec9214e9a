"""The interface every deployment layout implements, and the records it exchanges.

A :class:`Layout` owns *how* a named statement runs on one deployment: a single node runs the
statement as written; Citus runs its routed form with the tenant (shard key) filled in. The
callers (search/, writes, the loader) say *what* runs (a statement record, the owner, the
values) and read capability flags, never the layout's name. docs/design.md, "Map".
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg

from .statements import OwnerRequest, OwnerStatement, Statement

__all__ = ["CandidatePass", "CandidateQuery", "CandidateStatement", "Layout"]


@dataclass(frozen=True)
class CandidateStatement:
    """The global index search in both forms.

    ``single``: one call of the server function of migration 010 (its SET clauses carry the
    index settings; it sizes the candidate count from *base*, *growth*, *cap* and the table, and
    returns the result's spread). ``citus``:
    each shard's HNSW candidates, re-ranked by the exact distance (``$1`` query, ``$2``
    excluded id, ``$3`` max distance, ``$4`` limit, ``$5`` candidates), run after ``SET LOCAL``
    of the index settings (propagated to the shards).
    """

    name: str
    single: str
    citus: str


@dataclass(frozen=True)
class CandidateQuery:
    """One pass of the global index search."""

    vector: Any
    exclude_id: str | None
    max_distance: float
    limit: int
    candidates: int
    """The candidate count to start from (``hnsw.ef_search``)."""
    cap: int
    """The largest candidate count."""
    max_scan_tuples: int
    growth: float = 0.0
    """Above 10,000 rows a single node multiplies the start by ``(rows / 10,000) ** growth``."""
    spread_rows: int = 0
    """How many result rows the spread (``centre_norm``) is computed over (0: none)."""


@dataclass(frozen=True)
class CandidatePass:
    """What one pass returned: the rows (id, exact distance, best first) and what the scan saw.

    ``frontier`` (the farthest candidate's exact distance) and ``seen`` (how many candidates the
    scan produced) are None where the layout cannot tell (then the pass is final);
    ``centre_norm`` where it cannot compute the result's spread.
    """

    rows: list[asyncpg.Record]
    candidates: int
    frontier: float | None
    seen: int | None
    centre_norm: float | None = None
    """The norm of the mean of the first ``spread_rows`` result rows' unit vectors (None: unknown)."""


class Layout(abc.ABC):
    """How statements run on one deployment (single node, Citus). Chosen once per connection
    by :func:`~dealhunter_vectors.layout.layout_of`."""

    name: ClassVar[str]
    sharded: ClassVar[bool]
    """Rows are placed on shards by a tenant: every write must carry its tenant, and the loader
    uses its sharded batch forms (no correlated subqueries over local staging tables, no
    ``ON CONFLICT`` on ``id`` alone)."""

    @abc.abstractmethod
    async def owner_batch(
        self, conn: asyncpg.Connection, statement: OwnerStatement, requests: Sequence[OwnerRequest]
    ) -> list[list[asyncpg.Record]]:
        """Run *statement* for each request; one row list per request, in order."""

    async def owner_rows(
        self, conn: asyncpg.Connection, statement: OwnerStatement, request: OwnerRequest
    ) -> list[asyncpg.Record]:
        """Run *statement* for one request."""
        return (await self.owner_batch(conn, statement, [request]))[0]

    async def tenant_rows(
        self, conn: asyncpg.Connection, statement: OwnerStatement, request: OwnerRequest, tenant: str
    ) -> list[asyncpg.Record]:
        """Run *statement* for one request whose tenant (owning pre-qualification) the caller
        has looked up already (a write that locked it); the single node ignores it."""
        return await self.owner_rows(conn, statement, request)

    @abc.abstractmethod
    async def all_rows(self, conn: asyncpg.Connection, statement: Statement, *args: Any) -> list[asyncpg.Record]:
        """Run a statement over every row of its table."""

    @abc.abstractmethod
    async def duplicate_candidates(
        self, conn: asyncpg.Connection, statement: CandidateStatement, query: CandidateQuery
    ) -> CandidatePass:
        """One pass of the global index search."""

    @abc.abstractmethod
    async def copy_rows(
        self, conn: asyncpg.Connection, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
    ) -> None:
        """Binary COPY of *records* (values in *columns* order) into *table*, one statement.

        Constraint violations raise asyncpg's class for them (``UniqueViolationError``,
        ``ForeignKeyViolationError``, ...), the same on every layout.
        """

    @abc.abstractmethod
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
        """Insert *records* or update the stored rows with their ids (layout/upsert.py), one transaction.

        Returns ``(id, inserted)`` per row written. A record whose id is stored with other
        *fixed* values (its owners) is not written and not returned; *keep* columns keep their
        stored values. Constraint violations raise asyncpg's class for them, as :meth:`copy_rows`.
        """

    def __repr__(self) -> str:
        return f"<layout {self.name}>"
