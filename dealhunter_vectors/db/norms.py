"""The stored embeddings' norm range, enforced by the database (migration 008).

Every embedding column carries ``CHECK (vector_norm(col) BETWEEN 1e-12 AND 1e15)``, added
``NOT VALID`` so that an upgrade over rows written by another writer (psql, a backfill, the
app's TypeScript side, a 0.1 database) never fails. This module finds such rows
(:func:`out_of_range_rows`, for ``doctor``), validates the constraints once none is left
(:func:`validate_norm_constraints`, run by ``apply_schema`` after it applied migrations), and
turns the server's check violation into the library's typed error
(:func:`norm_violation_error`). The searches skip out-of-range rows until they are fixed
(docs/reliability.md, "Rows the library did not write").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import asyncpg

from ..embeddings import MAX_NORM, MIN_NORM
from ..errors import InvalidEmbeddingError
from .migrations import INDEX_BUILD_TIMEOUT, quote_ident

__all__ = [
    "NORM_CONSTRAINTS",
    "SHOWN_IDS",
    "NormConstraint",
    "OutOfRangeRows",
    "norm_violation_error",
    "out_of_range_rows",
    "unvalidated_norm_constraints",
    "validate_norm_constraints",
]

_log = logging.getLogger(__name__)

SHOWN_IDS: Final = 20
"""How many offending ids a finding lists (the count is always complete)."""


@dataclass(frozen=True)
class NormConstraint:
    """One embedding column's check (migration 008)."""

    table: str
    column: str
    name: str
    half_copy: bool
    """The table has migration 004's ``embedding_half``: NULL beside a non-NULL embedding
    marks exactly the out-of-range rows (same expression), found without reading the 12 KB
    TOASTed vectors of the good rows."""


NORM_CONSTRAINTS: Final = (
    NormConstraint("deal_embeddings", "embedding", "deal_embeddings_embedding_norm_range", True),
    NormConstraint("raw_chunks", "embedding", "raw_chunks_embedding_norm_range", True),
    NormConstraint(
        "pre_qualifications", "description_embedding", "pre_qualifications_description_embedding_norm_range", False
    ),
)


@dataclass(frozen=True)
class OutOfRangeRows:
    """The rows of one column whose embedding norm lies outside ``[1e-12, 1e15]``."""

    table: str
    column: str
    constraint: str
    count: int
    ids: tuple[str, ...]
    """The first :data:`SHOWN_IDS` offending ids, in id order."""

    def describe(self) -> str:
        shown = ", ".join(self.ids) + (f" and {self.count - len(self.ids)} more" if self.count > len(self.ids) else "")
        return (
            f"{self.count} row(s) of {self.table}.{self.column} have a norm outside "
            f"[{MIN_NORM:g}, {MAX_NORM:g}] (id {shown})"
        )


_CONSTRAINT_STATE_SQL = """
SELECT con.conname AS name, con.convalidated AS validated, pg_has_role(cl.relowner, 'USAGE') AS owner
FROM pg_constraint con
JOIN pg_class cl ON cl.oid = con.conrelid
WHERE con.conname = ANY($1::text[]) AND cl.relnamespace = 'public'::regnamespace AND cl.relkind IN ('r', 'p')
"""


def _where(c: NormConstraint) -> str:
    col = quote_ident(c.column)
    if c.half_copy:
        return f'{col} IS NOT NULL AND "embedding_half" IS NULL'
    return f"{col} IS NOT NULL AND NOT (vector_norm({col}) BETWEEN '{MIN_NORM!r}'::float8 AND '{MAX_NORM!r}'::float8)"


async def unvalidated_norm_constraints(conn: asyncpg.Connection) -> dict[str, bool]:
    """The norm constraints present but ``NOT VALID``: name -> whether this role owns the table."""
    rows = await conn.fetch(_CONSTRAINT_STATE_SQL, [c.name for c in NORM_CONSTRAINTS])
    return {r["name"]: bool(r["owner"]) for r in rows if not r["validated"]}


async def _find(conn: asyncpg.Connection, c: NormConstraint) -> OutOfRangeRows:
    table, where = quote_ident(c.table), _where(c)
    ids = await conn.fetch(
        f'SELECT "id" FROM {table} WHERE {where} ORDER BY "id" LIMIT $1',  # noqa: S608 - constants
        SHOWN_IDS,
        timeout=INDEX_BUILD_TIMEOUT,
    )
    total = (
        len(ids)
        if len(ids) < SHOWN_IDS
        else await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", timeout=INDEX_BUILD_TIMEOUT)  # noqa: S608
    )
    return OutOfRangeRows(c.table, c.column, c.name, int(total), tuple(r["id"] for r in ids))


async def out_of_range_rows(conn: asyncpg.Connection) -> list[OutOfRangeRows]:
    """The out-of-range rows of every column whose constraint is not validated yet (only
    tables that have some). A validated constraint proves its column clean: not scanned."""
    pending = await unvalidated_norm_constraints(conn)
    found = [await _find(conn, c) for c in NORM_CONSTRAINTS if c.name in pending]
    return [f for f in found if f.count]


async def validate_norm_constraints(conn: asyncpg.Connection) -> list[OutOfRangeRows]:
    """``VALIDATE`` each ``NOT VALID`` norm constraint of a table this role owns; return what blocks the others.

    A table with out-of-range rows keeps its constraint ``NOT VALID`` (new rows are checked
    all the same) and is returned with its rows, also logged as a warning; fix or delete
    them, then run ``apply_schema`` / ``dealhunter-vectors schema validate`` again. Each
    ``VALIDATE`` scans its table under a ``SHARE UPDATE EXCLUSIVE`` lock (reads and writes go
    on) in its own transaction. Tables the role does not own are skipped (``doctor`` reports
    them).
    """
    pending = await unvalidated_norm_constraints(conn)
    blocked: list[OutOfRangeRows] = []
    for c in NORM_CONSTRAINTS:
        if not pending.get(c.name):
            continue
        if c.half_copy:  # the cheap look first: no vector is read when rows are out of range
            found = await _find(conn, c)
            if found.count:
                blocked.append(found)
                continue
        try:
            await conn.execute(
                f"ALTER TABLE {quote_ident(c.table)} VALIDATE CONSTRAINT {quote_ident(c.name)}",
                timeout=INDEX_BUILD_TIMEOUT,
            )
        except asyncpg.CheckViolationError:
            blocked.append(await _find(conn, c))
    for finding in blocked:
        _log.warning(
            "%s; constraint %s stays NOT VALID and the searches skip these rows: fix or delete them, "
            "then run `dealhunter-vectors schema validate` (docs/reliability.md)",
            finding.describe(),
            finding.constraint,
        )
    return blocked


def norm_violation_error(exc: BaseException, *, where: str | None = None) -> InvalidEmbeddingError | None:
    """The typed error for a violation of a norm constraint (None for any other exception).

    The library checks every embedding before it writes (``embeddings.check_norm``, float64
    sums); the server's check sums in another order, so only a norm within ~1e-13
    (relative) of a bound can pass one and fail the other. *where* names the rows.
    """
    if not isinstance(exc, asyncpg.CheckViolationError):
        return None
    name = getattr(exc, "constraint_name", None)
    for c in NORM_CONSTRAINTS:
        if name == c.name:
            return InvalidEmbeddingError(
                "norm_range",
                f"the server rejected an embedding whose norm lies outside [{MIN_NORM:g}, {MAX_NORM:g}] "
                f"(constraint {c.name})",
                where=where or f"{c.table} column={c.column}",
            )
    return None
