"""The loader's batch forms on a single node: staging (checked, resumable) and the direct COPY.

**Staging**: each batch is a binary COPY into a ``TEMP`` staging table, followed by the
foreign-key and unique checks as set queries over it, a comparison with the rows already
stored (``IS DISTINCT FROM`` over the legacy columns) and ``INSERT ... SELECT ... ON CONFLICT
(id) DO NOTHING``, one transaction per batch. An id that exists with equal values is
``already_present``; with other values a conflict (left alone unless ``overwrite``).

**Direct**: a table that is empty when its load starts (the usual first migration) gets each
batch by a binary COPY straight into the target: no staging table, no INSERT ... SELECT, no
probe. This is exact only because the target itself enforces every check the staging path
makes (primary key: a row that exists already; the plan's foreign keys, not deferrable; the
unique columns): a batch whose COPY violates any constraint is rolled back whole and goes
through staging, which classifies and reports every row as before. A batch that COPY
accepted holds only new ids whose parents exist and whose unique values are free, which is
what staging would have inserted. Each COPY commits on its own, so a killed run resumes like
any other (the re-run finds the table non-empty and uses staging).

The distributed forms are :mod:`.batches_citus`; both report through :class:`~.run.Run`.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from ..db.migrations import quote_ident
from .library_values import written_columns, written_values
from .reports import ProblemReason, RowProblem
from .run import Run, TableState
from .source import Batch, TablePlan

__all__ = [
    "SingleNodeTable",
    "command_count",
    "create_stage_sql",
    "row_problem",
    "row_sql",
    "stage_name",
]


def stage_name(table: str) -> str:
    """The staging table of *table* (unquoted)."""
    return f"dhv_stage_{table}"


def _stage(table: str) -> str:
    return quote_ident(stage_name(table))


def create_stage_sql(plan: TablePlan) -> str:
    """``CREATE TEMP TABLE`` of the staging table (the target's columns, rows gone at commit)."""
    return f"CREATE TEMP TABLE IF NOT EXISTS {_stage(plan.name)} (LIKE {quote_ident(plan.name)}) ON COMMIT DELETE ROWS"


def row_sql(plan: TablePlan, alias: str) -> str:
    """``ROW(alias.col, ...)`` over the legacy columns only: the target may hold derived columns of
    its own (migration 004's generated embedding_half), which the staging copy leaves NULL."""
    return "ROW(" + ", ".join(f"{alias}.{quote_ident(c.name)}" for c in plan.columns) + ")"


def command_count(status: str) -> int:
    """The row count of a command status (``INSERT 0 12`` -> 12)."""
    return int(status.rsplit(" ", 1)[-1])


def row_problem(
    plan: TablePlan,
    row_id: str,
    column: str | None,
    reason: ProblemReason,
    detail: str,
) -> RowProblem:
    """A problem the target found with a row (``value_kind`` text for a column, else the row)."""
    return RowProblem(
        table=plan.name,
        row_id=row_id,
        column=column,
        reason=reason,
        value_kind="text" if column else "row",
        detail=detail,
    )


def _fk_check_sql(plan: TablePlan) -> str | None:
    parts = []
    for k, col in enumerate(plan.columns):
        if col.parent is None:
            continue
        c, p = quote_ident(col.name), quote_ident(col.parent)
        parts.append(
            f"SELECT s.id, {k} AS col, s.{c} AS value FROM {_stage(plan.name)} s "  # noqa: S608 - quoted identifiers
            f"WHERE s.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {p} p WHERE p.id = s.{c})"
        )
    return " UNION ALL ".join(parts) if parts else None


def _unique_check_sql(plan: TablePlan) -> str | None:
    parts = []
    for name in plan.unique:
        k = [c.name for c in plan.columns].index(name)
        c, t, s = quote_ident(name), quote_ident(plan.name), _stage(plan.name)
        parts.append(
            f"SELECT s.id, {k} AS col, s.{c} AS value FROM {s} s "  # noqa: S608 - quoted identifiers
            f"WHERE EXISTS (SELECT 1 FROM {t} t WHERE t.{c} = s.{c} AND t.id <> s.id) "
            f"OR EXISTS (SELECT 1 FROM {s} s2 WHERE s2.{c} = s.{c} AND s2.id < s.id)"
        )
    return " UNION ALL ".join(parts) if parts else None


def _compare_sql(plan: TablePlan) -> str:
    # LIMIT 1 keeps the lateral lookup from being flattened into a hash join that would
    # read the whole target table for every batch: one primary-key probe per staged row.
    return (
        f"SELECT s.id, {row_sql(plan, 's')} IS DISTINCT FROM {row_sql(plan, 't')} AS differs "  # noqa: S608
        f"FROM {_stage(plan.name)} s CROSS JOIN LATERAL "
        f"(SELECT * FROM {quote_ident(plan.name)} t WHERE t.id = s.id LIMIT 1) t"
    )


def _delete_staged_sql(plan: TablePlan) -> str:
    return f"DELETE FROM {_stage(plan.name)} WHERE id = ANY($1::text[])"  # noqa: S608 - quoted identifiers


def _insert_sql(plan: TablePlan) -> str:
    # Named columns: generated columns of the target are computed by the server.
    cols = ", ".join(quote_ident(c) for c in written_columns(plan))
    return (
        f"INSERT INTO {quote_ident(plan.name)} ({cols}) SELECT {cols} FROM {_stage(plan.name)} "  # noqa: S608
        "ON CONFLICT (id) DO NOTHING"
    )


def _overwrite_sql(plan: TablePlan) -> str:
    cols = [quote_ident(c) for c in written_columns(plan) if c != "id"]
    return (
        f"UPDATE {quote_ident(plan.name)} t SET ({', '.join(cols)}) = "  # noqa: S608 - quoted identifiers
        f"ROW({', '.join('s.' + c for c in cols)}) FROM {_stage(plan.name)} s "
        f"WHERE t.id = s.id AND {row_sql(plan, 's')} IS DISTINCT FROM {row_sql(plan, 't')}"
    )


IS_EMPTY_SQL: Final = "SELECT NOT EXISTS (SELECT 1 FROM {table})"

_DIRECT_FK_SQL: Final = """
SELECT a.attname AS name, p.relname AS parent, pa.attname AS parent_column
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_class p ON p.oid = c.confrelid
JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
WHERE c.conrelid = to_regclass($1) AND c.contype = 'f' AND cardinality(c.conkey) = 1
  AND NOT c.condeferrable
"""
_DIRECT_UNIQUE_SQL: Final = """
SELECT a.attname AS name
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indimmediate AND i.indisvalid
  AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL
"""


async def _direct_load_possible(conn: asyncpg.Connection, plan: TablePlan) -> bool:
    """True when *plan*'s target is empty and enforces every check of the staging path."""
    table = quote_ident(plan.name)
    if not await conn.fetchval(IS_EMPTY_SQL.format(table=table)):
        return False
    unique = {r["name"] for r in await conn.fetch(_DIRECT_UNIQUE_SQL, table)}
    if "id" not in unique or not set(plan.unique) <= unique:
        return False
    fks = {(r["name"], r["parent"], r["parent_column"]) for r in await conn.fetch(_DIRECT_FK_SQL, table)}
    # A self-reference would be checked against rows of the same COPY; staging checks the
    # parents already in PostgreSQL only. Such tables (none in the legacy schema) use staging.
    return all(c.parent != plan.name and (c.name, c.parent, "id") in fks for c in plan.foreign_keys)


async def _target_problems(
    conn: asyncpg.Connection, plan: TablePlan, by_id: dict[str, int]
) -> dict[int, list[RowProblem]]:
    """The staged rows whose parent is missing or whose unique value is taken (batch index -> problems)."""
    found: dict[int, list[RowProblem]] = {}
    checks: tuple[tuple[str | None, ProblemReason], ...] = (
        (_fk_check_sql(plan), "missing_parent"),
        (_unique_check_sql(plan), "unique_violation"),
    )
    for sql, reason in checks:
        if sql is None:
            continue
        for r in await conn.fetch(sql):
            col = plan.columns[r["col"]]
            if reason == "missing_parent":
                detail = f"{col.parent} id={r['value']!r} does not exist in PostgreSQL"
            else:
                detail = f"{col.name}={r['value']!r} is already used by another row"
            found.setdefault(by_id[r["id"]], []).append(row_problem(plan, r["id"], col.name, reason, detail))
    return found


async def load_staged(conn: asyncpg.Connection, run: Run, state: TableState, batch: Batch) -> None:
    """One batch through staging, in one transaction (see the module doc)."""
    plan = state.plan
    good = run.reject_source_problems(state, batch)
    by_id = {batch.ids[i]: i for i in good}
    async with conn.transaction():
        await conn.execute(create_stage_sql(plan))
        problems: dict[int, list[RowProblem]] = {}
        if good:
            await conn.copy_records_to_table(
                stage_name(plan.name),
                records=[written_values(plan, batch, i) for i in good],
                columns=written_columns(plan),
            )
            problems = await _target_problems(conn, plan, by_id)
        if problems:
            run.reject(state, batch, problems)
            await conn.execute(_delete_staged_sql(plan), [batch.ids[i] for i in sorted(problems)])
        staged = len(good) - len(problems)
        differing: list[str] = []
        present = 0
        if staged:
            for r in await conn.fetch(_compare_sql(plan)):
                if r["differs"]:
                    differing.append(r["id"])
                else:
                    present += 1
        overwritten = 0
        if differing and run.overwrite:
            overwritten = command_count(await conn.execute(_overwrite_sql(plan)))
        inserted = command_count(await conn.execute(_insert_sql(plan))) if staged else 0
    run.committed(state, inserted=inserted, already_present=present, overwritten=overwritten, differing=differing)


async def _load_direct(conn: asyncpg.Connection, run: Run, state: TableState, batch: Batch) -> bool:
    """Load *batch* by a COPY into the target; on a constraint violation, by staging.

    Returns False when the batch went through the staging path (the caller then stays on it
    for the rest of the table).
    """
    plan = state.plan
    if batch.problems and run.on_error == "stop":
        await load_staged(conn, run, state, batch)  # raises Stopped at the first bad row, loads nothing
        return False
    good = [written_values(plan, batch, i) for i in range(len(batch.raw)) if i not in batch.problems]
    inserted = 0
    if good:
        try:
            # one statement = one transaction: all of the batch or nothing
            status = await conn.copy_records_to_table(plan.name, records=good, columns=written_columns(plan))
        except asyncpg.IntegrityConstraintViolationError:
            await load_staged(conn, run, state, batch)
            return False
        inserted = command_count(status)
    # committed: now report the rows converted with problems (skip mode) and count
    run.reject(state, batch, batch.problems)
    run.committed(state, inserted=inserted)
    return True


class SingleNodeTable:
    """One table's load on a single node: direct COPY while the target accepts it, else staging."""

    def __init__(self, conn: asyncpg.Connection, run: Run, state: TableState) -> None:
        self._conn, self._run, self._state = conn, run, state
        self._direct = False

    async def prepare(self) -> None:
        """Choose the form: direct when the target is empty and enforces every check."""
        self._direct = await _direct_load_possible(self._conn, self._state.plan)

    async def load(self, batch: Batch) -> None:
        """Load one batch."""
        if self._direct:
            self._direct = await _load_direct(self._conn, self._run, self._state, batch)
        else:
            await load_staged(self._conn, self._run, self._state, batch)
