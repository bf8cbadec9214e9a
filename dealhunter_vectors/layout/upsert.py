"""Upsert by id, the statements both layouts run: a binary COPY into a staging table, then one
``INSERT ... SELECT ... ON CONFLICT (<key>) DO UPDATE``.

The key is the table's primary key: ``("id")`` on a single node, ``(<distribution column>,
"id")`` on Citus (its unique keys must contain the distribution column). The update sets every
given column except the key, the *fixed* columns (a row's owners: an upsert never moves a row
to another owner, which Citus could not do across shards) and the *keep* columns (``created_at``
keeps the first write's value); a conflicting row whose fixed columns differ is left alone and
absent from the result, so the caller can name it. ``RETURNING (xmax = 0)`` tells an inserted
row from an updated one (an updated row version carries the locking transaction in ``xmax``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from ..db.migrations import quote_ident

__all__ = ["stage_and_upsert", "upsert_sql"]


def _stage(table: str) -> str:
    return quote_ident(f"dhv_upsert_{table}")


def upsert_sql(
    table: str, columns: Sequence[str], *, key: Sequence[str], fixed: Sequence[str], keep: Sequence[str]
) -> str:
    """``INSERT ... SELECT`` from the staging table of *table*, updating on a *key* conflict."""
    names = ", ".join(quote_ident(c) for c in columns)
    updated = [quote_ident(c) for c in columns if c not in key and c not in fixed and c not in keep]
    same_owner = " AND ".join(f"t.{quote_ident(c)} IS NOT DISTINCT FROM EXCLUDED.{quote_ident(c)}" for c in fixed)
    return (
        f"INSERT INTO {quote_ident(table)} AS t ({names})\n"  # noqa: S608 - quoted identifiers
        f"SELECT {names} FROM {_stage(table)}\n"
        f"ON CONFLICT ({', '.join(quote_ident(c) for c in key)}) DO UPDATE\n"
        f"SET ({', '.join(updated)}) = ROW({', '.join('EXCLUDED.' + c for c in updated)})\n"
        + (f"WHERE {same_owner}\n" if same_owner else "")
        + 'RETURNING t."id", (t.xmax = 0) AS "inserted"'
    )


async def stage_and_upsert(
    conn: asyncpg.Connection,
    table: str,
    columns: Sequence[str],
    records: Sequence[Sequence[Any]],
    *,
    key: Sequence[str],
    fixed: Sequence[str],
    keep: Sequence[str],
) -> list[asyncpg.Record]:
    """COPY *records* into the session's staging table of *table* (rows gone at commit) and
    upsert them; one transaction (a savepoint inside the caller's)."""
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_stage(table)} (LIKE {quote_ident(table)}) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table(f"dhv_upsert_{table}", records=list(records), columns=list(columns))
        rows = list(await conn.fetch(upsert_sql(table, columns, key=key, fixed=fixed, keep=keep)))
        await conn.execute(f"DELETE FROM {_stage(table)}")  # noqa: S608 - quoted; for a second upsert in one transaction
        return rows
