"""The connection a write runs on: acquired from a pool (the primary's, with read replicas), or
the caller's connection (then a write's transaction is a savepoint inside the caller's)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeAlias

import asyncpg

__all__ = ["Db", "connection"]

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"
"""What every write function accepts: a pool or a connection."""


@contextlib.asynccontextmanager
async def connection(db: Db) -> AsyncIterator[asyncpg.Connection]:
    """A connection of *db*: acquired from a pool (and released), or *db* itself.

    A :class:`~dealhunter_vectors.db.replicas.ReplicatedPool`'s own connections are the
    primary's, so every write lands on the primary.
    """
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db
