"""The connection a search runs on: a pool (acquire one) or a caller's connection (use it).

Every public search function is decorated with :func:`routed`: given a pool with read
replicas (:class:`~dealhunter_vectors.scale.replicas.ReplicatedPool`) it runs on a healthy
replica's pool, with failover (docs/scaling.md, "Read replicas"); anything else passes through.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import asyncpg

from ..db.pool import acquire_for_reads
from ..scale.replicas import routed_read as routed

__all__ = ["Db", "connection", "routed", "snapshot"]

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
