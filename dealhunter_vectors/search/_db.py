"""The connection a search runs on: a pool (acquire one) or a caller's connection (use it).

Every public search function is decorated with :func:`routed`: given a pool with read
replicas (:class:`~dealhunter_vectors.db.replicas.ReplicatedPool`) it runs on a healthy
replica's pool, with failover (docs/scaling.md, "Read replicas"); anything else passes through.
:func:`connection_and_layout` also gives the connection's deployment layout (:mod:`..layout`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import asyncpg

from ..db.replicas import routed_read as routed
from ..db.server import acquire_for_reads
from ..layout import Layout, layout_of

__all__ = ["Db", "connection", "connection_and_layout", "routed", "snapshot"]

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"
"""What every search function accepts: a pool or a connection (inside a caller's transaction)."""


@contextlib.asynccontextmanager
async def connection(db: Db) -> AsyncIterator[asyncpg.Connection]:
    """A connection of *db*: acquired from a pool (and released), or *db* itself."""
    if isinstance(db, asyncpg.Pool):
        async with acquire_for_reads(db) as conn:  # no reset round trip on release
            yield conn
    else:
        yield db


@contextlib.asynccontextmanager
async def connection_and_layout(db: Db) -> AsyncIterator[tuple[asyncpg.Connection, Layout]]:
    """:func:`connection` and the deployment layout it runs on."""
    async with connection(db) as conn:
        yield conn, await layout_of(conn)


@contextlib.asynccontextmanager
async def snapshot(conn: asyncpg.Connection, statements: int) -> AsyncIterator[None]:
    """One ``REPEATABLE READ READ ONLY`` snapshot for *statements* > 1 statements (else nothing).

    Inside a caller's transaction the snapshot is the caller's.
    """
    tx: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()
    if statements > 1:
        tx = (
            conn.transaction()
            if conn.is_in_transaction()
            else conn.transaction(isolation="repeatable_read", readonly=True)
        )
    async with tx:
        yield
