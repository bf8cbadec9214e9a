"""The single-node layout: every statement runs as written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from .base import CandidatePass, CandidateQuery, CandidateStatement, Layout
from .statements import OwnerRequest, OwnerStatement, Statement
from .upsert import stage_and_upsert

__all__ = ["SingleNode"]


def _transpose(batch: Sequence[tuple[object, ...]]) -> list[list[object]]:
    return [list(column) for column in zip(*batch, strict=True)]


class SingleNode(Layout):
    """One PostgreSQL server (or a primary with read replicas)."""

    name = "single node"
    sharded = False

    async def owner_batch(
        self, conn: asyncpg.Connection, statement: OwnerStatement, requests: Sequence[OwnerRequest]
    ) -> list[list[asyncpg.Record]]:
        """One request: the one-request form. Several: the batched form, one round trip (each
        request one element of its ``unnest`` arrays), split by ``ord``."""
        out: list[list[asyncpg.Record]] = [[] for _ in requests]
        if not requests:
            return out
        if len(requests) == 1 or statement.batched is None:
            for k, request in enumerate(requests):
                out[k] = list(await conn.fetch(statement.single, *request.params))
            return out
        rows = await conn.fetch(statement.batched, *_transpose([r.params for r in requests]))
        for row in rows:
            out[row["ord"] - 1].append(row)
        return out

    async def all_rows(self, conn: asyncpg.Connection, statement: Statement, *args: Any) -> list[asyncpg.Record]:
        return list(await conn.fetch(statement.single, *args))

    async def duplicate_candidates(
        self, conn: asyncpg.Connection, statement: CandidateStatement, query: CandidateQuery
    ) -> CandidatePass:
        rows = await conn.fetch(
            statement.single,
            query.vector,
            query.exclude_id,
            query.max_distance,
            query.limit,
            query.candidates,
            query.growth,
            query.cap,
            query.max_scan_tuples,
            query.spread_rows,
        )
        found = [row for row in rows if row["id"] is not None]
        if not rows:
            return CandidatePass(found, query.cap, None, 0)
        first = rows[0]
        return CandidatePass(found, int(first["ef"]), first["frontier"], int(first["candidates"]), first["centre_norm"])

    async def copy_rows(
        self, conn: asyncpg.Connection, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
    ) -> None:
        await conn.copy_records_to_table(table, records=list(records), columns=list(columns))

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
        """On the primary key ``("id")``."""
        return await stage_and_upsert(conn, table, columns, records, key=("id",), fixed=fixed, keep=keep)
