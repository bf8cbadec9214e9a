"""The loader's batch form on the distributed layout (Citus), one transaction per batch.

Same reports as the single-node staging path (:mod:`.batches`), in forms Citus runs:

* the tenant column is computed from the parents already in PostgreSQL
  (``db.distributed.TENANT_FROM_PARENT``; a row whose tenant cannot be determined is rejected
  as ``tenant_unknown``, never dropped);
* foreign keys and unique values are checked with ``= ANY($1)`` look-ups instead of correlated
  subqueries over the local staging table;
* existing rows are found with a join (not a lateral ``LIMIT 1``);
* new rows go in with a plain ``INSERT ... SELECT`` (the staging table holds new ids only, so
  the count is exact; Citus reports selected rows and has no ``ON CONFLICT (id)``); with
  ``overwrite`` a row whose tenant changed cannot move to another shard and stays a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from ..db.distributed import TENANT_COLUMN, TENANT_FROM_PARENT, distribution_column, tenant_tables
from ..db.migrations import quote_ident
from .batches import command_count, create_stage_sql, row_problem, row_sql, stage_name
from .library_values import written_columns, written_values
from .reports import RowProblem
from .run import Run, TableState
from .source import Batch, TablePlan

__all__ = ["CitusTable"]


async def _parent_values(conn: asyncpg.Connection, parent: str, column: str, ids: Iterable[Any]) -> dict[str, Any]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"SELECT id, {quote_ident(column)} AS v FROM {quote_ident(parent)} WHERE id = ANY($1::text[])",  # noqa: S608 - quoted
        wanted,
    )
    return {r["id"]: r["v"] for r in rows}


async def _tenants(
    conn: asyncpg.Connection, table: str, names: Sequence[str], values: Sequence[Sequence[Any]]
) -> list[tuple[str | None, str | None]]:
    """(tenant, why not) for each row of a tenant table, computed from its parents in PostgreSQL."""
    out: list[tuple[str | None, str | None]] = []
    if table in TENANT_FROM_PARENT:
        column, parent, parent_column = TENANT_FROM_PARENT[table]
        k = names.index(column)
        found = await _parent_values(conn, parent, parent_column, (v[k] for v in values))
        for v in values:
            tenant = found.get(v[k])
            out.append((tenant, None if tenant else f"{parent} id={v[k]!r} is not in PostgreSQL: no tenant"))
    elif table == "deal_embeddings":
        kp, kq = names.index("pre_qualification_id"), names.index("qualification_id")
        found = await _parent_values(conn, "qualifications", "pre_qualification_id", (v[kq] for v in values))
        for v in values:
            pre, qual = v[kp], v[kq]
            if qual is not None and qual not in found:
                out.append((None, f"qualifications id={qual!r} is not in PostgreSQL: no tenant"))
            elif pre is not None and qual is not None and found[qual] != pre:
                out.append(
                    (None, f"its qualification {qual!r} belongs to pre-qualification {found[qual]!r}, not {pre!r}")
                )
            elif pre is None and qual is None:
                out.append((None, "neither pre_qualification_id nor qualification_id: no tenant"))
            else:
                out.append((pre if pre is not None else found[qual], None))
    elif table == "background_jobs":
        kp, ki = names.index("pre_qualification_id"), names.index("id")
        out = [(v[kp] if v[kp] is not None else v[ki], None) for v in values]
    return out


async def _target_problems(
    conn: asyncpg.Connection, plan: TablePlan, batch: Batch, good: Sequence[int], values: dict[int, list[Any]]
) -> dict[int, list[RowProblem]]:
    """Missing parents and taken unique values, by look-ups (batch index -> problems)."""
    names = [c.name for c in plan.columns]
    found: dict[int, list[RowProblem]] = {}
    for col in plan.foreign_keys:
        k = names.index(col.name)
        assert col.parent is not None
        present = await _parent_values(conn, col.parent, "id", (values[i][k] for i in good))
        for i in good:
            if values[i][k] is not None and values[i][k] not in present:
                detail = f"{col.parent} id={values[i][k]!r} does not exist in PostgreSQL"
                found.setdefault(i, []).append(row_problem(plan, batch.ids[i], col.name, "missing_parent", detail))
    for name in plan.unique:
        k = names.index(name)
        wanted = sorted({values[i][k] for i in good if values[i][k] is not None})
        column, table = quote_ident(name), quote_ident(plan.name)
        taken = {
            r["v"]: r["id"]
            for r in await conn.fetch(
                f"SELECT id, {column} AS v FROM {table} WHERE {column} = ANY($1::text[])",  # noqa: S608 - quoted
                wanted,
            )
        }
        first_in_batch: dict[Any, str] = {}
        for i in sorted(good, key=lambda j: batch.ids[j]):
            v = values[i][k]
            if v is None:
                continue
            if (v in taken and taken[v] != batch.ids[i]) or (v in first_in_batch and first_in_batch[v] != batch.ids[i]):
                detail = f"{name}={v!r} is already used by another row"
                found.setdefault(i, []).append(row_problem(plan, batch.ids[i], name, "unique_violation", detail))
            first_in_batch.setdefault(v, batch.ids[i])
    return found


async def _place(
    conn: asyncpg.Connection,
    plan: TablePlan,
    batch: Batch,
    candidates: Sequence[int],
    values: dict[int, list[Any]],
    problems: dict[int, list[RowProblem]],
) -> None:
    """Append each row's tenant to its values; a row that cannot be placed becomes a problem."""
    names = [c.name for c in plan.columns]
    tenants = await _tenants(conn, plan.name, names, [values[i] for i in candidates])
    for i, (tenant, why) in zip(candidates, tenants, strict=True):
        if tenant is None:
            detail = f"the distributed layout cannot place the row: {why}"
            problems.setdefault(i, []).append(row_problem(plan, batch.ids[i], None, "tenant_unknown", detail))
        else:
            values[i].append(tenant)


async def load_batch(conn: asyncpg.Connection, run: Run, state: TableState, batch: Batch) -> None:
    """One batch on the distributed layout (see the module doc)."""
    plan = state.plan
    good = run.reject_source_problems(state, batch)
    values = {i: written_values(plan, batch.values[i]) for i in good}  # legacy columns first: indexes hold
    problems = await _target_problems(conn, plan, batch, good, values)
    tenant_table = plan.name in tenant_tables()
    if tenant_table:
        await _place(conn, plan, batch, [i for i in good if i not in problems], values, problems)
    run.reject(state, batch, problems)
    staged = [i for i in good if i not in problems]
    columns = [*written_columns(plan), TENANT_COLUMN] if tenant_table else written_columns(plan)
    target, stage = quote_ident(plan.name), quote_ident(stage_name(plan.name))
    dist = distribution_column(plan.name)
    differing: list[str] = []
    present = overwritten = inserted = 0
    async with conn.transaction():
        await conn.execute(create_stage_sql(plan))
        if staged:
            await conn.copy_records_to_table(
                stage_name(plan.name), records=[values[i] for i in staged], columns=columns
            )
            compare = (
                f"SELECT s.id, {row_sql(plan, 's')} IS DISTINCT FROM {row_sql(plan, 't')} AS differs "  # noqa: S608
                f"FROM {stage} s JOIN {target} t ON t.id = s.id"
            )
            existing = []
            for r in await conn.fetch(compare):
                existing.append(r["id"])
                if r["differs"]:
                    differing.append(r["id"])
                else:
                    present += 1
            if differing and run.overwrite:
                sets = [quote_ident(c) for c in written_columns(plan) if c not in ("id", dist)]
                same_shard = f" AND t.{quote_ident(dist)} = s.{quote_ident(dist)}" if dist and dist != "id" else ""
                status = await conn.execute(
                    f"UPDATE {target} t SET ({', '.join(sets)}) = ROW({', '.join('s.' + c for c in sets)}) "  # noqa: S608
                    f"FROM {stage} s WHERE t.id = s.id{same_shard} "
                    f"AND {row_sql(plan, 's')} IS DISTINCT FROM {row_sql(plan, 't')}"
                )
                overwritten = command_count(status)
            if existing:
                await conn.execute(f"DELETE FROM {stage} WHERE id = ANY($1::text[])", existing)  # noqa: S608
            inserted = len(staged) - len(existing)
            if inserted:
                cols = ", ".join(quote_ident(c) for c in columns)
                await conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage}")  # noqa: S608
    run.committed(state, inserted=inserted, already_present=present, overwritten=overwritten, differing=differing)


class CitusTable:
    """One table's load on the distributed layout: every batch through :func:`load_batch`."""

    def __init__(self, conn: asyncpg.Connection, run: Run, state: TableState) -> None:
        self._conn, self._run, self._state = conn, run, state

    async def prepare(self) -> None:
        """Nothing to choose: the distributed layout has one form."""

    async def load(self, batch: Batch) -> None:
        """Load one batch."""
        await load_batch(self._conn, self._run, self._state, batch)
