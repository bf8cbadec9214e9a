"""Migrate a legacy dealhunter SQLite database into PostgreSQL: fast, checked, resumable.

:func:`migrate_sqlite` reads the 29 legacy tables (order computed from the foreign keys of
the packaged schema facts, :func:`load_order`), converts every value by its column kind,
and loads each batch with a binary COPY into a ``TEMP`` staging table followed by
``INSERT ... SELECT ... ON CONFLICT (id) DO NOTHING``, one transaction per batch. A table
that is empty when its load starts (a first migration) takes the direct path: each batch is
COPYed straight into the target, and a batch the target's constraints refuse (an existing
id, a missing parent, a used unique value) is rolled back and goes through staging, so the
same rows are reported (see ``_load_batch_direct``).

Conversions and the read-only source: :mod:`.source`.

A staged row whose id exists already is compared over all columns (``IS DISTINCT FROM``):
equal -> ``already_present``; different -> a conflict, counted and listed and left untouched,
unless ``overwrite=True`` replaces it. So a re-run after a crash (loader killed, server
restarted) inserts exactly the missing rows, and a second run after success inserts nothing.

JSON embeddings are parsed in a process pool (``workers``, default 2) while the previous batch
is being copied; at most a few batches are in memory at any time, whatever the database size.
HNSW indexes of tables that are empty before the load are dropped and rebuilt afterwards (with
a generous ``maintenance_work_mem``), then the loaded tables are ``ANALYZE``\\ d.

Faults (docs/reliability.md): every source or target fault is a one-line
:class:`~dealhunter_vectors.errors.MigrationError` whose ``report`` (status ``failed``)
tells what was committed before it; a re-run finishes the job exactly.

* The source passes ``PRAGMA quick_check`` before anything is loaded (``preflight``); a page
  that still cannot be read mid-load ends the run the same way.
* A lost server (restart, ``kill -9``, network reset) ends the run with ``retryable=True``.
* Least privilege: the schema version is checked read-only first (no DDL runs against a
  current schema); ``SELECT`` and ``INSERT`` (``UPDATE`` with ``overwrite``) on every table
  and ``TEMPORARY`` on the database are checked up front (``has_table_privilege``), and the
  first missing one is named in one line. HNSW indexes are dropped for the load and rebuilt
  only when the role owns the table; otherwise they stay in place.
* ``kill -9`` of the loader takes its parsing workers along (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal

import asyncpg
import orjson

from ..config import mask_text, mask_url
from ..db.pool import Pool, close_pool, create_pool, is_connection_error
from ..db.schema import (
    VECTOR_INDEXES,
    apply_schema,
    create_vector_indexes,
    drop_vector_indexes,
    ensure_writable,
    quote_ident,
)
from ..errors import (
    DatabaseUnavailableError,
    DealhunterVectorsError,
    MigrationError,
    MigrationStoppedError,
    ReadOnlyServerError,
)
from ..scale import citus
from .reports import LIST_LIMIT, MigrationReport, RowProblem, TableReport
from .source import (
    Batch,
    BatchReader,
    TablePlan,
    _check_source_table,
    _count_rows,
    _legacy_tables,
    _source_tables,
    load_order,
    open_source,
    process_pool,
    table_plans,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MigrationProgress",
    "migrate_sqlite",
]

DEFAULT_BATCH_SIZE: Final = 250
"""Rows per COPY batch and transaction (a 3072-d JSON embedding is ~63 KB of text)."""
MAINTENANCE_WORK_MEM: Final = "1GB"
"""``maintenance_work_mem`` for the HNSW rebuild (a 3072-d halfvec graph needs ~7 KB a row)."""
LONG_TIMEOUT: Final = 7 * 24 * 3600.0
"""Client-side timeout for index builds and ANALYZE (the pool's command timeout is 60 s)."""


# ------------------------------------------------------------------------------ target SQL


def _stage(table: str) -> str:
    return quote_ident(f"dhv_stage_{table}")


def _create_stage_sql(plan: TablePlan) -> str:
    return f"CREATE TEMP TABLE IF NOT EXISTS {_stage(plan.name)} (LIKE {quote_ident(plan.name)}) ON COMMIT DELETE ROWS"


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


def _row_sql(plan: TablePlan, alias: str) -> str:
    # The legacy columns only: the target may hold derived columns of its own (migration 004's
    # generated embedding_half), which the staging copy of its definition leaves NULL.
    return "ROW(" + ", ".join(f"{alias}.{quote_ident(c.name)}" for c in plan.columns) + ")"


def _compare_sql(plan: TablePlan) -> str:
    # LIMIT 1 keeps the lateral lookup from being flattened into a hash join that would
    # read the whole target table for every batch: one primary-key probe per staged row.
    return (
        f"SELECT s.id, {_row_sql(plan, 's')} IS DISTINCT FROM {_row_sql(plan, 't')} AS differs "  # noqa: S608
        f"FROM {_stage(plan.name)} s CROSS JOIN LATERAL "
        f"(SELECT * FROM {quote_ident(plan.name)} t WHERE t.id = s.id LIMIT 1) t"
    )


def _delete_staged_sql(plan: TablePlan) -> str:
    return f"DELETE FROM {_stage(plan.name)} WHERE id = ANY($1::text[])"  # noqa: S608 - quoted identifiers


def _insert_sql(plan: TablePlan) -> str:
    # Named columns: generated columns of the target are computed by the server.
    cols = ", ".join(quote_ident(c.name) for c in plan.columns)
    return (
        f"INSERT INTO {quote_ident(plan.name)} ({cols}) SELECT {cols} FROM {_stage(plan.name)} "  # noqa: S608
        "ON CONFLICT (id) DO NOTHING"
    )


def _overwrite_sql(plan: TablePlan) -> str:
    cols = [quote_ident(c.name) for c in plan.columns if c.name != "id"]
    return (
        f"UPDATE {quote_ident(plan.name)} t SET ({', '.join(cols)}) = "  # noqa: S608 - quoted identifiers
        f"ROW({', '.join('s.' + c for c in cols)}) FROM {_stage(plan.name)} s "
        f"WHERE t.id = s.id AND {_row_sql(plan, 's')} IS DISTINCT FROM {_row_sql(plan, 't')}"
    )


_IS_EMPTY_SQL: Final = "SELECT NOT EXISTS (SELECT 1 FROM {table})"
_SET_MAINTENANCE_MEM: Final = "SELECT set_config('maintenance_work_mem', $1, false)"


def _command_count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def rebuild_vector_indexes(conn: asyncpg.Connection, *, maintenance_work_mem: str = MAINTENANCE_WORK_MEM) -> None:
    """Create the HNSW indexes that are missing (migration 2's SQL) with a generous memory budget."""
    await conn.execute(_SET_MAINTENANCE_MEM, maintenance_work_mem)
    await create_vector_indexes(conn, timeout=LONG_TIMEOUT)


# ------------------------------------------------------------------------------ progress


@dataclass(frozen=True)
class MigrationProgress:
    """A progress event: a table starts, a batch is committed, a table is done, or the
    final index / ANALYZE phase runs."""

    phase: Literal["table_start", "batch", "table_done", "indexes", "analyze"]
    table: str
    rows_done: int
    rows_total: int


ProgressCallback = Callable[[MigrationProgress], None]


# ------------------------------------------------------------------------------ reject file


def _json_cell(value: object) -> object:
    if isinstance(value, bytes):
        return {"$blob_base64": base64.b64encode(value).decode()}
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return {"$text_base64": base64.b64encode(value.encode("utf-8", "surrogateescape")).decode()}
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return {"$real": repr(value)}
    return value


class _RejectWriter:
    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._fh: IO[bytes] | None = None

    def write(self, plan: TablePlan, raw: tuple[Any, ...], problems: Sequence[RowProblem]) -> None:
        if self.path is None:
            return
        self.open_empty()
        assert self._fh is not None
        record = {
            "table": plan.name,
            "id": problems[0].row_id,
            "problems": [p.model_dump(exclude={"table", "row_id"}) for p in problems],
            "row": {c.name: _json_cell(v) for c, v in zip(plan.columns, raw, strict=True)},
        }
        try:
            self._fh.write(orjson.dumps(record) + b"\n")
        except OSError as exc:
            raise MigrationError(f"cannot write the reject file {self.path}: {exc.strerror or exc}") from None

    def open_empty(self) -> None:
        if self.path is not None and self._fh is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("wb")
            except OSError as exc:
                raise MigrationError(f"cannot write the reject file {self.path}: {exc.strerror or exc}") from None

    def flush(self) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
            except OSError as exc:
                raise MigrationError(f"cannot write the reject file {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# ------------------------------------------------------------------------------ loader


@dataclass
class _TableState:
    plan: TablePlan
    source_rows: int
    present: bool = True
    inserted: int = 0
    already_present: int = 0
    overwritten: int = 0
    conflicts: int = 0
    conflict_ids: list[str] = field(default_factory=list)
    rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    completed: bool = False

    def report(self) -> TableReport:
        return TableReport(
            table=self.plan.name,
            present_in_source=self.present,
            source_rows=self.source_rows,
            inserted=self.inserted,
            already_present=self.already_present,
            overwritten=self.overwritten,
            conflicts=self.conflicts,
            conflict_ids=tuple(self.conflict_ids[:LIST_LIMIT]),
            rejected=self.rejected,
            batches=self.batches,
            seconds=round(self.seconds, 3),
            completed=self.completed,
        )


class _Stopped(Exception):
    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__(problems[0].describe())
        self.problems = problems


@dataclass
class _Run:
    on_error: Literal["stop", "skip"]
    overwrite: bool
    rejects: _RejectWriter
    progress: ProgressCallback | None
    problems: list[RowProblem] = field(default_factory=list)
    problem_count: int = 0

    def record(self, found: Sequence[RowProblem]) -> None:
        self.problem_count += len(found)
        room = LIST_LIMIT - len(self.problems)
        if room > 0:
            self.problems.extend(found[:room])

    def emit(self, event: MigrationProgress) -> None:
        if self.progress is not None:
            self.progress(event)


def _reject_source_problems(run: _Run, state: _TableState, batch: Batch) -> list[int]:
    """Report the batch's conversion problems (stop at the first, or reject each); the good rows' indices."""
    plan = state.plan
    if batch.problems:
        first = min(batch.problems)
        if run.on_error == "stop":
            found = batch.problems[first]
            run.record(found)
            run.rejects.write(plan, batch.raw[first], found)
            raise _Stopped(found)
        for i in sorted(batch.problems):
            run.record(batch.problems[i])
            run.rejects.write(plan, batch.raw[i], batch.problems[i])
        state.rejected += len(batch.problems)
    return [i for i in range(len(batch.raw)) if i not in batch.problems]


async def _load_batch(conn: asyncpg.Connection, run: _Run, state: _TableState, batch: Batch) -> None:
    plan = state.plan
    good = _reject_source_problems(run, state, batch)
    by_id = {batch.ids[i]: i for i in good}
    names = [c.name for c in plan.columns]
    async with conn.transaction():
        await conn.execute(_create_stage_sql(plan))
        if good:
            await conn.copy_records_to_table(
                f"dhv_stage_{plan.name}", records=[batch.values[i] for i in good], columns=names
            )
        db_problems: dict[str, list[RowProblem]] = {}
        for sql, reason, what in (
            (_fk_check_sql(plan), "missing_parent", "fk"),
            (_unique_check_sql(plan), "unique_violation", "unique"),
        ):
            if sql is None or not good:
                continue
            for r in await conn.fetch(sql):
                col = plan.columns[r["col"]]
                if what == "fk":
                    detail = f"{col.parent} id={r['value']!r} does not exist in PostgreSQL"
                else:
                    detail = f"{col.name}={r['value']!r} is already used by another row"
                db_problems.setdefault(r["id"], []).append(
                    RowProblem(
                        table=plan.name,
                        row_id=r["id"],
                        column=col.name,
                        reason=reason,  # type: ignore[arg-type]
                        value_kind="text",
                        detail=detail,
                    )
                )
        if db_problems:
            ordered = sorted(db_problems, key=by_id.__getitem__)
            if run.on_error == "stop":
                found = db_problems[ordered[0]]
                run.record(found)
                run.rejects.write(plan, batch.raw[by_id[ordered[0]]], found)
                raise _Stopped(found)
            for row_id in ordered:
                run.record(db_problems[row_id])
                run.rejects.write(plan, batch.raw[by_id[row_id]], db_problems[row_id])
            state.rejected += len(db_problems)
            await conn.execute(_delete_staged_sql(plan), ordered)
        staged = len(good) - len(db_problems)
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
            overwritten = _command_count(await conn.execute(_overwrite_sql(plan)))
        inserted = _command_count(await conn.execute(_insert_sql(plan))) if staged else 0
    # committed: count only now
    state.batches += 1
    state.inserted += inserted
    state.already_present += present
    if run.overwrite:
        state.overwritten += overwritten
    else:
        state.conflicts += len(differing)
        room = LIST_LIMIT - len(state.conflict_ids)
        if room > 0:
            state.conflict_ids.extend(sorted(differing)[:room])
    run.rejects.flush()


# ------------------------------------------------------------------------------ direct load
# A table that is empty when its load starts (the usual first migration) gets each batch by a
# binary COPY straight into the target: no staging table, no INSERT ... SELECT, no probe. This
# is exact only because the target itself enforces every check the staging path makes (primary
# key: a row that exists already; the plan's foreign keys, not deferrable; the unique columns):
# a batch whose COPY violates any constraint is rolled back whole and goes through the staging
# path, which classifies and reports every row as before. A batch that COPY accepted holds only
# new ids whose parents exist and whose unique values are free, which is what staging would
# have inserted. Each COPY commits on its own, so a killed run resumes like any other (the
# re-run finds the table non-empty and uses staging).

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
    if not await conn.fetchval(_IS_EMPTY_SQL.format(table=table)):
        return False
    unique = {r["name"] for r in await conn.fetch(_DIRECT_UNIQUE_SQL, table)}
    if "id" not in unique or not set(plan.unique) <= unique:
        return False
    fks = {(r["name"], r["parent"], r["parent_column"]) for r in await conn.fetch(_DIRECT_FK_SQL, table)}
    # A self-reference would be checked against rows of the same COPY; staging checks the
    # parents already in PostgreSQL only. Such tables (none in the legacy schema) use staging.
    return all(c.parent != plan.name and (c.name, c.parent, "id") in fks for c in plan.foreign_keys)


async def _load_batch_direct(conn: asyncpg.Connection, run: _Run, state: _TableState, batch: Batch) -> bool:
    """Load *batch* by a COPY into the target; on a constraint violation, by staging.

    Returns False when the batch went through the staging path (the caller then stays on it
    for the rest of the table).
    """
    plan = state.plan
    if batch.problems and run.on_error == "stop":
        await _load_batch(conn, run, state, batch)  # raises _Stopped at the first bad row, loads nothing
        return False
    good = [batch.values[i] for i in range(len(batch.raw)) if i not in batch.problems]
    inserted = 0
    if good:
        try:
            # one statement = one transaction: all of the batch or nothing
            status = await conn.copy_records_to_table(plan.name, records=good, columns=[c.name for c in plan.columns])
        except asyncpg.IntegrityConstraintViolationError:
            await _load_batch(conn, run, state, batch)
            return False
        inserted = _command_count(status)
    # committed: report the rows converted with problems (skip mode) and count
    for i in sorted(batch.problems):
        run.record(batch.problems[i])
        run.rejects.write(plan, batch.raw[i], batch.problems[i])
    state.rejected += len(batch.problems)
    state.batches += 1
    state.inserted += inserted
    run.rejects.flush()
    return True


async def _inspect_source(
    loop: asyncio.AbstractEventLoop,
    thread: concurrent.futures.Executor,
    source: sqlite3.Connection,
    plans: Sequence[TablePlan],
    *,
    sqlite_path: str | Path,
    requested: bool,
) -> tuple[list[_TableState], list[str]]:
    """Open the source's read snapshot, check each table against its plan, count its rows.

    Returns one state per plan (tables absent from the source are complete at 0 rows) and the
    source's non-legacy tables (ignored). Raises :class:`MigrationError` when the file holds no
    legacy table, or a table that was asked for by name is absent.
    """
    # one read transaction: a consistent snapshot of the source for the whole run
    await loop.run_in_executor(thread, source.execute, "BEGIN")
    present_tables = await loop.run_in_executor(thread, _source_tables, source)
    legacy_names = set(_legacy_tables())
    ignored = sorted(t for t in present_tables - legacy_names if not t.startswith("sqlite_"))
    if not present_tables & legacy_names:
        raise MigrationError(f"{sqlite_path} holds none of the legacy dealhunter tables")
    if requested:
        absent = [plan.name for plan in plans if plan.name not in present_tables]
        if absent:
            raise MigrationError(f"requested table(s) {absent} do not exist in {sqlite_path}")
    states: list[_TableState] = []
    for plan in plans:
        if plan.name in present_tables:
            await loop.run_in_executor(thread, _check_source_table, source, plan)
            count = await loop.run_in_executor(thread, _count_rows, source, plan.name)
            states.append(_TableState(plan=plan, source_rows=count))
        else:
            states.append(_TableState(plan=plan, source_rows=0, present=False, completed=True))
    return states, ignored


_OWNS_TABLE_SQL: Final = "SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = to_regclass($1)"
_MISSING_PRIVILEGES_SQL: Final = """
SELECT t.name AS "table", p.privilege
FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n)
CROSS JOIN unnest($2::text[]) WITH ORDINALITY AS p(privilege, m)
WHERE NOT has_table_privilege(format('%I', t.name), p.privilege)
ORDER BY t.n, p.m
"""


async def check_privileges(conn: asyncpg.Connection, tables: Sequence[str], *, overwrite: bool) -> None:
    """Raise a one-line :class:`MigrationError` naming the first privilege the role lacks.

    The loader needs ``SELECT`` and ``INSERT`` on every table it loads (``UPDATE`` too with
    ``overwrite``) and ``TEMPORARY`` on the database (staging tables).
    """
    role = await conn.fetchval("SELECT current_user")
    if not await conn.fetchval("SELECT has_database_privilege(current_database(), 'TEMPORARY')"):
        raise MigrationError(f"role {role} lacks TEMPORARY on the database (the loader stages batches in TEMP tables)")
    privileges = ["SELECT", "INSERT", *(["UPDATE"] if overwrite else [])]
    missing = await conn.fetch(_MISSING_PRIVILEGES_SQL, list(tables), privileges)
    if missing:
        first = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MigrationError(
            f'role {role} lacks {first["privilege"]} on table "{first["table"]}"{more}; '
            "grant it or migrate as the tables' owner"
        )


async def _owns(conn: asyncpg.Connection, table: str) -> bool:
    return bool(await conn.fetchval(_OWNS_TABLE_SQL, quote_ident(table)))


async def _missing_vector_indexes(conn: asyncpg.Connection) -> list[str]:
    names = [idx.name for idx in VECTOR_INDEXES]
    rows = await conn.fetch("SELECT n FROM unnest($1::text[]) AS n WHERE to_regclass(format('%I', n)) IS NULL", names)
    return [r["n"] for r in rows]


async def _drop_indexes_of_empty_tables(conn: asyncpg.Connection, states: Sequence[_TableState]) -> list[str]:
    """Drop the vector indexes of tables about to be loaded from empty (rebuilt once at the end).

    Only tables the role owns (dropping and building an index needs ownership); the
    indexes of other tables stay in place and are maintained during the load.
    """
    dropped: list[str] = []
    for st in states:
        if st.plan.vector_indexes and st.source_rows and await _owns(conn, st.plan.name):
            empty = await conn.fetchval(_IS_EMPTY_SQL.format(table=quote_ident(st.plan.name)))
            if empty:
                dropped.extend(await drop_vector_indexes(conn, {st.plan.name}))
    return dropped


async def _load_table(conn: asyncpg.Connection, run: _Run, st: _TableState, reader: BatchReader) -> None:
    """Load every batch of one table (direct COPY while the target accepts it, else staging)."""
    run.emit(MigrationProgress("table_start", st.plan.name, 0, st.source_rows))
    t0 = time.perf_counter()
    distributed = await citus.is_distributed(conn)  # the Citus layout has forms of its own
    direct = not distributed and await _direct_load_possible(conn, st.plan)
    try:
        async for batch in reader:
            if distributed:
                await citus.load_batch(conn, run, st, batch)
            elif direct:
                direct = await _load_batch_direct(conn, run, st, batch)
            else:
                await _load_batch(conn, run, st, batch)
            done = st.inserted + st.already_present + st.overwritten + st.conflicts + st.rejected
            run.emit(MigrationProgress("batch", st.plan.name, done, st.source_rows))
    finally:
        st.seconds += time.perf_counter() - t0
    st.completed = True
    run.emit(MigrationProgress("table_done", st.plan.name, st.source_rows, st.source_rows))


async def _analyze_loaded(conn: asyncpg.Connection, run: _Run, states: Sequence[_TableState]) -> list[str]:
    """``ANALYZE`` every table this run inserted into or overwrote; returns their names."""
    analyzed: list[str] = []
    for st in states:
        if st.inserted or st.overwritten:
            run.emit(MigrationProgress("analyze", st.plan.name, 0, 0))
            await conn.execute(f"ANALYZE {quote_ident(st.plan.name)}", timeout=LONG_TIMEOUT)
            analyzed.append(st.plan.name)
    return analyzed


async def open_source_and_pool(
    sqlite_path: str | Path, db: asyncpg.Pool | str, *, preflight: bool = True
) -> tuple[sqlite3.Connection, asyncpg.Pool]:
    """The legacy file (:func:`open_source`) and a pool: *db* itself, or a small pool of our own
    for a URL (the caller closes it); the file is closed again when no pool can be made."""
    source = open_source(sqlite_path, preflight=preflight)
    try:
        pool: asyncpg.Pool = await create_pool(db, min_size=1, max_size=2) if isinstance(db, str) else db
    except BaseException:
        source.close()
        raise
    return source, pool


async def migrate_sqlite(
    sqlite_path: str | Path,
    db: Pool | asyncpg.Pool | str,
    *,
    on_error: Literal["stop", "skip"] = "stop",
    reject_file: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tables: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    workers: int = 2,
    rebuild_indexes: bool = True,
    maintenance_work_mem: str = MAINTENANCE_WORK_MEM,
    preflight: bool = True,
) -> MigrationReport:
    """Copy the legacy SQLite database at *sqlite_path* into PostgreSQL (*db*: pool or URL).

    Applies the schema when absent, loads *tables* (default all 29) in foreign-key order
    with the conversions and checks described in this module, and returns a
    :class:`MigrationReport`. ``on_error="stop"`` raises
    :class:`~dealhunter_vectors.errors.MigrationStoppedError` (with ``.report``) at the
    first bad row; ``"skip"`` rejects bad rows to *reject_file* (JSON lines, rewritten each
    run) and continues. ``overwrite=True`` replaces rows that exist with different content
    (otherwise they are conflicts, listed and left alone). ``workers`` processes parse JSON
    embeddings (0: parse in this process). ``preflight`` runs ``PRAGMA quick_check`` on the
    source before anything is loaded.

    Raises :class:`MigrationError` (one line) when the source is not a legacy database, is
    damaged, the target schema does not fit, the role lacks a privilege, or the server is
    lost mid-run (``retryable``); its ``report`` (status ``failed``) tells what was loaded
    before the fault, and a re-run finishes the job exactly.
    """
    if on_error not in ("stop", "skip"):
        raise MigrationError(f"on_error must be 'stop' or 'skip', not {on_error!r}")
    if batch_size < 1:
        raise MigrationError("batch_size must be >= 1")
    started = time.perf_counter()
    order = load_order(tables)
    source, pool = await open_source_and_pool(sqlite_path, db, preflight=preflight)
    own_pool = isinstance(db, str)
    run = _Run(on_error=on_error, overwrite=overwrite, rejects=_RejectWriter(reject_file), progress=progress)
    states: list[_TableState] = []
    ignored: list[str] = []
    dropped: list[str] = []
    analyzed: list[str] = []
    rebuilt = False
    stopped: _Stopped | None = None
    failure: MigrationError | None = None
    report: MigrationReport | None = None

    def make_report(status: Literal["completed", "stopped", "failed"]) -> MigrationReport:
        return MigrationReport(
            source=str(Path(sqlite_path)),
            database=_masked(pool),
            status=status,
            on_error=on_error,
            overwrite=overwrite,
            tables=tuple(st.report() for st in states),
            problems=tuple(run.problems),
            problem_count=run.problem_count,
            problems_truncated=run.problem_count > len(run.problems),
            reject_file=str(reject_file) if reject_file is not None else None,
            ignored_source_tables=tuple(ignored),
            indexes_dropped=tuple(dropped),
            indexes_rebuilt=rebuilt,
            analyzed=tuple(analyzed),
            seconds=round(time.perf_counter() - started, 3),
        )

    # fork the parsing workers before this run starts any thread of its own
    processes = process_pool(workers)
    thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dhv-sqlite")
    loop = asyncio.get_running_loop()
    try:
        run.rejects.open_empty()
        await ensure_writable(pool, action="migrate")
        await apply_schema(pool)
        async with pool.acquire() as conn:
            await check_privileges(conn, order, overwrite=overwrite)
            plans = await table_plans(conn, order)
            states, ignored = await _inspect_source(
                loop, thread, source, plans, sqlite_path=sqlite_path, requested=tables is not None
            )
            if rebuild_indexes:
                dropped = await _drop_indexes_of_empty_tables(conn, states)
            try:
                for st in states:
                    if st.present:
                        reader = BatchReader(
                            source, st.plan, batch_size=batch_size, thread=thread, processes=processes, workers=workers
                        )
                        await _load_table(conn, run, st, reader)
            except _Stopped as exc:
                stopped = exc
            # Rebuild what this run dropped, and what an earlier (killed) run dropped and never
            # rebuilt; never a DDL statement when every index is there.
            if rebuild_indexes and (dropped or await _missing_vector_indexes(conn)):
                run.emit(MigrationProgress("indexes", "", 0, 0))
                await rebuild_vector_indexes(conn, maintenance_work_mem=maintenance_work_mem)
                rebuilt = True
            analyzed = await _analyze_loaded(conn, run, states)
        report = make_report("stopped" if stopped else "completed")
    except MigrationError as exc:
        if exc.report is not None or isinstance(exc, (MigrationStoppedError, ReadOnlyServerError)):
            raise  # a standby target: nothing ran, nothing to resume
        failure = MigrationError(str(exc), report=make_report("failed"), retryable=exc.retryable)
    except sqlite3.Error as exc:
        failure = MigrationError(
            f"reading the source {Path(sqlite_path)} failed: {exc} (the file is damaged; repair or re-export it"
            " and re-run: committed batches stay)",
            report=make_report("failed"),
        )
    except Exception as exc:
        # The reject file and the source raise their own MigrationError above, so an OSError
        # here is the connection (refused, reset, the server's socket gone).
        if isinstance(exc, DatabaseUnavailableError) or is_connection_error(exc):
            failure = MigrationError(
                f"lost the connection to {_masked(pool)} mid-run ({type(exc).__name__}); committed batches stay,"
                " re-run once the server is back to finish",
                report=make_report("failed"),
                retryable=True,
            )
        elif isinstance(exc, asyncpg.InsufficientPrivilegeError):
            failure = MigrationError(f"missing privilege: {mask_text(str(exc))}", report=make_report("failed"))
        elif isinstance(exc, (asyncpg.PostgresError, TimeoutError, DealhunterVectorsError)):
            failure = MigrationError(
                f"the target refused the load: {type(exc).__name__}: {mask_text(str(exc))}",
                report=make_report("failed"),
            )
        else:
            raise
    finally:
        run.rejects.close()
        if processes is not None:
            processes.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Exception):
            await loop.run_in_executor(thread, source.close)
        thread.shutdown(wait=True)
        if own_pool:
            await close_pool(pool)
    if failure is not None:
        assert failure.report is not None
        raise failure from None
    assert report is not None
    if stopped is not None:
        raise MigrationStoppedError(
            f"stopped at the first bad row (on_error=stop): {stopped.problems[0].describe()}",
            problems=tuple(stopped.problems),
            report=report,
        )
    return report


def _masked(pool: asyncpg.Pool) -> str:
    masked = getattr(pool, "masked_url", None)
    if isinstance(masked, str):
        return masked
    params = getattr(pool, "_connect_args", None)
    return mask_url(str(params[0])) if params else "<pool>"
