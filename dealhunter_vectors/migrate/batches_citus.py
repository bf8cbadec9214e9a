"""The loader's batch form on the distributed layout (Citus), one transaction per batch.

Same reports as the single-node staging path (:mod:`.batches`), in forms Citus runs:

* the tenant column is computed from the parents already in PostgreSQL
  (``db.distributed.TENANT_FROM_PARENT``; a row whose tenant cannot be determined is rejected
  as ``tenant_unknown``, never dropped);
* a row and every co-located parent it refers to must belong to the same pre-qualification
  (the layout's foreign keys between distributed tables include the tenant): a row whose
  parent belongs to another one (drifted legacy data: a qualification whose quick scan is
  another pre-qualification's, a chunk whose qualification is) is rejected as
  ``tenant_conflict`` naming both, never sent to Citus (docs/scaling.md, "Drifted data");
* foreign keys and unique values are checked with ``= ANY($1)`` look-ups instead of correlated
  subqueries over the local staging table;
* existing rows are found with a join (not a lateral ``LIMIT 1``);
* new rows go in with a plain ``INSERT ... SELECT`` (the staging table holds new ids only, so
  the count is exact; Citus reports selected rows and has no ``ON CONFLICT (id)``); with
  ``overwrite`` a row whose tenant changed cannot move to another shard and stays a conflict;
* a batch that Citus still refuses with a constraint violation (one these checks do not know,
  e.g. added to the target by hand) is written again row by row: each refused row is rejected
  as ``constraint_violation`` with the server's message, the others are loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ..db.distributed import TENANT_COLUMN, TENANT_FROM_PARENT, distribution_column, tenant_column, tenant_tables
from ..db.migrations import quote_ident
from ..layout import copy_violation
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
    elif table == "deal_embeddings":  # its pre-qualification, else its qualification's (a conflict: later)
        kp, kq = names.index("pre_qualification_id"), names.index("qualification_id")
        found = await _parent_values(conn, "qualifications", "pre_qualification_id", (v[kq] for v in values))
        for v in values:
            pre, qual = v[kp], v[kq]
            if pre is not None:
                out.append((pre, None))
            elif qual is None:
                out.append((None, "neither pre_qualification_id nor qualification_id: no tenant"))
            elif qual not in found:
                out.append((None, f"qualifications id={qual!r} is not in PostgreSQL: no tenant"))
            else:
                out.append((found[qual], None))
    elif table == "background_jobs":
        kp, ki = names.index("pre_qualification_id"), names.index("id")
        out = [(v[kp] if v[kp] is not None else v[ki], None) for v in values]
    return out


async def _target_problems(
    conn: asyncpg.Connection, plan: TablePlan, batch: Batch, good: Sequence[int], values: dict[int, list[Any]]
) -> tuple[dict[int, list[RowProblem]], dict[str, dict[Any, Any]]]:
    """Missing parents and taken unique values, by look-ups (batch index -> problems), and the
    tenant of every co-located parent referred to ({foreign-key column: {parent id: tenant}})."""
    names = [c.name for c in plan.columns]
    found: dict[int, list[RowProblem]] = {}
    parent_tenants: dict[str, dict[Any, Any]] = {}
    for col in plan.foreign_keys:
        k = names.index(col.name)
        assert col.parent is not None
        parent_tenant = tenant_column(col.parent)
        present = await _parent_values(conn, col.parent, parent_tenant or "id", (values[i][k] for i in good))
        if parent_tenant is not None:
            parent_tenants[col.name] = present
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
    return found, parent_tenants


def _tenant_source(table: str, names: Sequence[str], row: Sequence[Any], tenant: Any) -> str:
    """How a row's tenant was determined, for messages (``pre_qualification_id='pq1'``)."""
    if table in TENANT_FROM_PARENT:
        column = TENANT_FROM_PARENT[table][0]
        return f"{column}={row[names.index(column)]!r} places it in pre-qualification {tenant!r}"
    if "pre_qualification_id" in names and row[names.index("pre_qualification_id")] == tenant:
        return f"pre_qualification_id={tenant!r}"
    return f"it belongs to pre-qualification {tenant!r}"


def _tenant_conflicts(
    plan: TablePlan,
    batch: Batch,
    candidates: Sequence[int],
    values: dict[int, list[Any]],
    parent_tenants: dict[str, dict[Any, Any]],
    problems: dict[int, list[RowProblem]],
) -> None:
    """A row whose co-located parent belongs to another pre-qualification than the row: ``tenant_conflict``.

    On the distributed layout a pre-qualification's rows share one shard and the foreign keys
    between them include the tenant, so such a row fits next to neither parent.
    """
    own = tenant_column(plan.name)
    if own is None:
        return
    names = [c.name for c in plan.columns]
    for i in candidates:
        row = values[i]
        tenant = row[-1] if own == TENANT_COLUMN else row[names.index(own)]
        for column, tenants in parent_tenants.items():
            ref = row[names.index(column)]
            if ref is None or ref not in tenants or tenants[ref] == tenant:
                continue
            parent = next(c.parent for c in plan.columns if c.name == column)
            detail = (
                f"{_tenant_source(plan.name, names, row, tenant)}, but {column}={ref!r} is a {parent} row of "
                f"pre-qualification {tenants[ref]!r}: the distributed layout keeps each pre-qualification's "
                "rows together and cannot place this row with both (repair the source: docs/scaling.md)"
            )
            problems.setdefault(i, []).append(row_problem(plan, batch.ids[i], column, "tenant_conflict", detail))


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


@dataclass
class _Written:
    """What one transaction of :func:`_write` did."""

    inserted: int = 0
    already_present: int = 0
    overwritten: int = 0
    differing: list[str] = field(default_factory=list)

    def add(self, other: _Written) -> None:
        self.inserted += other.inserted
        self.already_present += other.already_present
        self.overwritten += other.overwritten
        self.differing.extend(other.differing)


async def _write(conn: asyncpg.Connection, run: Run, plan: TablePlan, records: list[list[Any]]) -> _Written:
    """Stage *records* and insert the new ones (one transaction): present, differing, overwritten."""
    names = written_columns(plan)  # the legacy columns, then the library-owned ones
    columns = [*names, TENANT_COLUMN] if plan.name in tenant_tables() else names
    target, stage = quote_ident(plan.name), quote_ident(stage_name(plan.name))
    dist = distribution_column(plan.name)
    done = _Written()
    async with conn.transaction():
        await conn.execute(create_stage_sql(plan))
        if not records:
            return done
        await conn.copy_records_to_table(stage_name(plan.name), records=records, columns=columns)
        compare = (
            f"SELECT s.id, {row_sql(plan, 's')} IS DISTINCT FROM {row_sql(plan, 't')} AS differs "  # noqa: S608
            f"FROM {stage} s JOIN {target} t ON t.id = s.id"
        )
        existing = []
        for r in await conn.fetch(compare):
            existing.append(r["id"])
            if r["differs"]:
                done.differing.append(r["id"])
            else:
                done.already_present += 1
        if done.differing and run.overwrite:
            sets = [quote_ident(c) for c in names if c not in ("id", dist)]
            same_shard = f" AND t.{quote_ident(dist)} = s.{quote_ident(dist)}" if dist and dist != "id" else ""
            status = await conn.execute(
                f"UPDATE {target} t SET ({', '.join(sets)}) = ROW({', '.join('s.' + c for c in sets)}) "  # noqa: S608
                f"FROM {stage} s WHERE t.id = s.id{same_shard} "
                f"AND {row_sql(plan, 's')} IS DISTINCT FROM {row_sql(plan, 't')}"
            )
            done.overwritten = command_count(status)
        if existing:
            await conn.execute(f"DELETE FROM {stage} WHERE id = ANY($1::text[])", existing)  # noqa: S608
        done.inserted = len(records) - len(existing)
        if done.inserted:
            cols = ", ".join(quote_ident(c) for c in columns)
            await conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage}")  # noqa: S608
    return done


def _violation(exc: asyncpg.PostgresError) -> asyncpg.PostgresError | None:
    """The constraint violation *exc* is (Citus reports a worker's as SQLSTATE XX000), or None."""
    mapped = copy_violation(exc)
    return mapped if isinstance(mapped, asyncpg.IntegrityConstraintViolationError) else None


async def _write_row_by_row(
    conn: asyncpg.Connection,
    run: Run,
    plan: TablePlan,
    batch: Batch,
    staged: Sequence[int],
    values: dict[int, list[Any]],
) -> tuple[_Written, dict[int, list[RowProblem]]]:
    """Each row in a transaction of its own: the refused ones as ``constraint_violation``
    problems (``on_error="stop"``: up to the first)."""
    total = _Written()
    refused: dict[int, list[RowProblem]] = {}
    for i in staged:
        try:
            total.add(await _write(conn, run, plan, [values[i]]))
        except asyncpg.PostgresError as exc:
            violation = _violation(exc)
            if violation is None:
                raise
            detail = "the distributed layout refused the row: " + " ".join(str(violation).split())
            refused[i] = [row_problem(plan, batch.ids[i], None, "constraint_violation", detail)]
            if run.on_error == "stop":
                break
    return total, refused


async def load_batch(conn: asyncpg.Connection, run: Run, state: TableState, batch: Batch) -> None:
    """One batch on the distributed layout (see the module doc)."""
    plan = state.plan
    good = run.reject_source_problems(state, batch)
    values = {i: written_values(plan, batch, i) for i in good}  # legacy columns first: indexes hold
    problems, parent_tenants = await _target_problems(conn, plan, batch, good, values)
    if plan.name in tenant_tables():
        await _place(conn, plan, batch, [i for i in good if i not in problems], values, problems)
    _tenant_conflicts(plan, batch, [i for i in good if i not in problems], values, parent_tenants, problems)
    run.reject(state, batch, problems)
    staged = [i for i in good if i not in problems]
    refused: dict[int, list[RowProblem]] = {}
    try:
        written = await _write(conn, run, plan, [values[i] for i in staged])
    except asyncpg.PostgresError as exc:
        if _violation(exc) is None:
            raise
        written, refused = await _write_row_by_row(conn, run, plan, batch, staged, values)
    run.committed(
        state,
        inserted=written.inserted,
        already_present=written.already_present,
        overwritten=written.overwritten,
        differing=written.differing,
    )
    run.reject(state, batch, refused)


class CitusTable:
    """One table's load on the distributed layout: every batch through :func:`load_batch`."""

    def __init__(self, conn: asyncpg.Connection, run: Run, state: TableState) -> None:
        self._conn, self._run, self._state = conn, run, state

    async def prepare(self) -> None:
        """Nothing to choose: the distributed layout has one form."""

    async def load(self, batch: Batch) -> None:
        """Load one batch."""
        await load_batch(self._conn, self._run, self._state, batch)
