"""Migrate a legacy dealhunter SQLite database into PostgreSQL: fast, checked, resumable.

:func:`migrate_sqlite` reads the 29 legacy tables (order computed from the foreign keys of
the packaged schema facts, :func:`load_order`), converts every value by its column kind
(:mod:`.source`) and loads each table batch by batch in the form of the target's layout:
:mod:`.batches` on a single node (a direct COPY into an empty table, else a checked staging
path), :mod:`.batches_citus` on the distributed layout. Both report through :mod:`.run`.

A staged row whose id exists already is compared over all columns (``IS DISTINCT FROM``):
equal -> ``already_present``; different -> a conflict, counted and listed and left untouched,
unless ``overwrite=True`` replaces it. So a re-run after a crash (loader killed, server
restarted) inserts exactly the missing rows, and a second run after success inserts nothing.

JSON embeddings are parsed (and the chunks' library-owned values computed) in a process pool
(``workers``, default 2) while the previous batch is being copied; at most a few batches are
in memory at any time, whatever the database size. HNSW indexes of tables that are empty
before the load are dropped and rebuilt afterwards (with a generous ``maintenance_work_mem``),
then the loaded tables are ``ANALYZE``\\ d.

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
import concurrent.futures
import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import asyncpg

from .. import observe
from ..compounds import load_word_list
from ..config import mask_text
from ..db.content_parts import splitting_available
from ..db.faults import is_connection_error, remote_node_failure
from ..db.library_columns import CHUNK_TABLES
from ..db.migrations import quote_ident
from ..db.pool import Pool, close_pool, create_pool
from ..db.schema import VECTOR_INDEXES, apply_schema, create_vector_indexes, drop_vector_indexes, ensure_writable
from ..errors import (
    DatabaseUnavailableError,
    DealhunterVectorsError,
    MigrationError,
    MigrationStoppedError,
    ReadOnlyServerError,
)
from ..layout import layout_of
from ..validation import integer
from .batches import IS_EMPTY_SQL, SingleNodeTable
from .batches_citus import CitusTable
from .reports import MigrationReport
from .run import MigrationProgress, ProgressCallback, RejectWriter, Run, Stopped, TableState
from .source import (
    BatchReader,
    TablePlan,
    check_source_table,
    count_rows,
    legacy_tables,
    load_order,
    open_source,
    process_pool,
    source_tables,
    table_plans,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_BATCH_SIZE",
    "MAX_WORKERS",
    "MigrationProgress",
    "check_privileges",
    "check_run_sizes",
    "masked_target",
    "migrate_sqlite",
    "open_source_and_pool",
    "rebuild_vector_indexes",
]

DEFAULT_BATCH_SIZE: Final = 250
"""Rows per COPY batch and transaction (a 3072-d JSON embedding is ~63 KB of text)."""
MAX_BATCH_SIZE: Final = 1_000_000
"""Largest ``batch_size`` (rows per COPY; memory grows with it: ~12 KB per embedding)."""
MAX_WORKERS: Final = 256
"""Most parsing processes ``workers`` may ask for."""
MAINTENANCE_WORK_MEM: Final = "1GB"
"""``maintenance_work_mem`` for the HNSW rebuild (a 3072-d halfvec graph needs ~7 KB a row)."""
LONG_TIMEOUT: Final = 7 * 24 * 3600.0
"""Client-side timeout for index builds and ANALYZE (the pool's command timeout is 60 s)."""


def check_run_sizes(batch_size: object, workers: object) -> tuple[int, int]:
    """``batch_size`` in [1, MAX_BATCH_SIZE] and ``workers`` in [0, MAX_WORKERS] (``InvalidArgumentError``)."""
    return (
        integer(batch_size, "batch_size", minimum=1, maximum=MAX_BATCH_SIZE),
        integer(workers, "workers", minimum=0, maximum=MAX_WORKERS),
    )


_SET_MAINTENANCE_MEM: Final = "SELECT set_config('maintenance_work_mem', $1, false)"


async def rebuild_vector_indexes(conn: asyncpg.Connection, *, maintenance_work_mem: str = MAINTENANCE_WORK_MEM) -> None:
    """Create the HNSW indexes that are missing (migration 2's SQL) with a generous memory budget."""
    await conn.execute(_SET_MAINTENANCE_MEM, maintenance_work_mem)
    await create_vector_indexes(conn, timeout=LONG_TIMEOUT)


# ------------------------------------------------------------------------------ checks before loading


async def _inspect_source(
    loop: asyncio.AbstractEventLoop,
    thread: concurrent.futures.Executor,
    source: sqlite3.Connection,
    plans: Sequence[TablePlan],
    *,
    sqlite_path: str | Path,
    requested: bool,
) -> tuple[list[TableState], list[str]]:
    """Open the source's read snapshot, check each table against its plan, count its rows.

    Returns one state per plan (tables absent from the source are complete at 0 rows) and the
    source's non-legacy tables (ignored). Raises :class:`MigrationError` when the file holds no
    legacy table, or a table that was asked for by name is absent.
    """
    # one read transaction: a consistent snapshot of the source for the whole run
    await loop.run_in_executor(thread, source.execute, "BEGIN")
    present_tables = await loop.run_in_executor(thread, source_tables, source)
    legacy_names = set(legacy_tables())
    ignored = sorted(t for t in present_tables - legacy_names if not t.startswith("sqlite_"))
    if not present_tables & legacy_names:
        raise MigrationError(f"{sqlite_path} holds none of the legacy dealhunter tables")
    if requested:
        absent = [plan.name for plan in plans if plan.name not in present_tables]
        if absent:
            raise MigrationError(f"requested table(s) {absent} do not exist in {sqlite_path}")
    states: list[TableState] = []
    for plan in plans:
        if plan.name in present_tables:
            await loop.run_in_executor(thread, check_source_table, source, plan)
            count = await loop.run_in_executor(thread, count_rows, source, plan.name)
            states.append(TableState(plan=plan, source_rows=count))
        else:
            states.append(TableState(plan=plan, source_rows=0, present=False, completed=True))
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


# ------------------------------------------------------------------------------ indexes and statistics


async def _owns(conn: asyncpg.Connection, table: str) -> bool:
    return bool(await conn.fetchval(_OWNS_TABLE_SQL, quote_ident(table)))


async def _missing_vector_indexes(conn: asyncpg.Connection) -> list[str]:
    names = [idx.name for idx in VECTOR_INDEXES]
    rows = await conn.fetch("SELECT n FROM unnest($1::text[]) AS n WHERE to_regclass(format('%I', n)) IS NULL", names)
    return [r["n"] for r in rows]


async def _drop_indexes_of_empty_tables(conn: asyncpg.Connection, states: Sequence[TableState]) -> list[str]:
    """Drop the vector indexes of tables about to be loaded from empty (rebuilt once at the end).

    Only tables the role owns (dropping and building an index needs ownership); the
    indexes of other tables stay in place and are maintained during the load.
    """
    dropped: list[str] = []
    for st in states:
        if st.plan.vector_indexes and st.source_rows and await _owns(conn, st.plan.name):
            empty = await conn.fetchval(IS_EMPTY_SQL.format(table=quote_ident(st.plan.name)))
            if empty:
                dropped.extend(await drop_vector_indexes(conn, {st.plan.name}))
    return dropped


async def _analyze_loaded(conn: asyncpg.Connection, run: Run, states: Sequence[TableState]) -> list[str]:
    """``ANALYZE`` every table this run inserted into or overwrote; returns their names."""
    analyzed: list[str] = []
    for st in states:
        if st.inserted or st.overwritten:
            run.emit(MigrationProgress("analyze", st.plan.name, 0, 0))
            await conn.execute(f"ANALYZE {quote_ident(st.plan.name)}", timeout=LONG_TIMEOUT)
            analyzed.append(st.plan.name)
    return analyzed


# ------------------------------------------------------------------------------ the run


async def _load_table(conn: asyncpg.Connection, run: Run, st: TableState, reader: BatchReader) -> None:
    """Load every batch of one table in the form of the target's layout."""
    run.emit(MigrationProgress("table_start", st.plan.name, 0, st.source_rows))
    t0 = time.perf_counter()
    layout = await layout_of(conn)
    table = (CitusTable if layout.sharded else SingleNodeTable)(conn, run, st)
    try:
        await table.prepare()
        # closed here, also on a fault: an abandoned reader would be finalised later, after
        # the run has shut down the thread its cursor needs
        async with contextlib.aclosing(reader.__aiter__()) as batches:
            async for batch in batches:
                await table.load(batch)
                run.emit(MigrationProgress("batch", st.plan.name, st.rows_done, st.source_rows))
    finally:
        st.seconds += time.perf_counter() - t0
    st.completed = True
    run.emit(MigrationProgress("table_done", st.plan.name, st.source_rows, st.source_rows))


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


def masked_target(pool: asyncpg.Pool) -> str:
    """The pool's server for messages and reports (its URL masked)."""
    masked = getattr(pool, "masked_url", None)
    return masked if isinstance(masked, str) else "the given pool's server"


@dataclass
class _Job:
    """What one :func:`migrate_sqlite` call has done so far (for its report, even after a fault)."""

    sqlite_path: str | Path
    pool: asyncpg.Pool
    run: Run
    started: float
    states: list[TableState] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    analyzed: list[str] = field(default_factory=list)
    rebuilt: bool = False
    stopped: Stopped | None = None

    def report(
        self, status: Literal["completed", "stopped", "failed"], reject_file: str | Path | None
    ) -> MigrationReport:
        run = self.run
        return MigrationReport(
            source=str(Path(self.sqlite_path)),
            database=masked_target(self.pool),
            status=status,
            on_error=run.on_error,
            overwrite=run.overwrite,
            tables=tuple(st.report() for st in self.states),
            problems=tuple(run.problems),
            problem_count=run.problem_count,
            problems_truncated=run.problem_count > len(run.problems),
            reject_file=str(reject_file) if reject_file is not None else None,
            ignored_source_tables=tuple(self.ignored),
            indexes_dropped=tuple(self.dropped),
            indexes_rebuilt=self.rebuilt,
            analyzed=tuple(self.analyzed),
            seconds=round(time.perf_counter() - self.started, 3),
        )

    def failure(self, exc: BaseException, reject_file: str | Path | None) -> MigrationError | None:
        """The one-line error (with the report so far) for a fault; None: not ours to type."""
        failed = self.report("failed", reject_file)
        if isinstance(exc, MigrationError):
            return MigrationError(str(exc), report=failed, retryable=exc.retryable)
        if isinstance(exc, sqlite3.Error):
            return MigrationError(
                f"reading the source {Path(self.sqlite_path)} failed: {exc} (the file is damaged; repair or re-export"
                " it and re-run: committed batches stay)",
                report=failed,
            )
        # The reject file and the source raise their own MigrationError above, so an OSError
        # here is the connection (refused, reset, the server's socket gone).
        node = remote_node_failure(exc)
        if node is not None:
            return MigrationError(
                f"lost the Citus worker {node} mid-run ({type(exc).__name__}); committed batches stay, re-run once"
                " it is back to finish",
                report=failed,
                retryable=True,
            )
        if isinstance(exc, DatabaseUnavailableError) or is_connection_error(exc):
            return MigrationError(
                f"lost the connection to {masked_target(self.pool)} mid-run ({type(exc).__name__}); committed batches"
                " stay, re-run once the server is back to finish",
                report=failed,
                retryable=True,
            )
        if isinstance(exc, asyncpg.DiskFullError):  # 53100: "could not extend file ...: No space left on device"
            return MigrationError(
                f"the server's disk is full: {mask_text(str(exc))}; free space on the server, then re-run:"
                " committed batches stay",
                report=failed,
            )
        if isinstance(exc, asyncpg.InsufficientPrivilegeError):
            return MigrationError(f"missing privilege: {mask_text(str(exc))}", report=failed)
        if isinstance(exc, (asyncpg.PostgresError, TimeoutError, DealhunterVectorsError)):
            text = " ".join(mask_text(str(exc)).split())  # one line: the server's DETAIL included
            return MigrationError(f"the target refused the load: {type(exc).__name__}: {text}", report=failed)
        return None

    async def load(
        self,
        source: sqlite3.Connection,
        order: Sequence[str],
        *,
        thread: concurrent.futures.ThreadPoolExecutor,
        processes: concurrent.futures.ProcessPoolExecutor | None,
        requested: bool,
        batch_size: int,
        workers: int,
        rebuild_indexes: bool,
        maintenance_work_mem: str,
    ) -> None:
        """The steps: schema, privileges, source check, index drop, every table, index rebuild, ANALYZE."""
        run, pool = self.run, self.pool
        run.rejects.open_empty()
        await ensure_writable(pool, action="migrate")
        await apply_schema(pool)
        async with pool.acquire() as conn:
            with observe.step("inspect_source"):
                await check_privileges(conn, order, overwrite=run.overwrite)
                plans = await table_plans(conn, order)
                self.states, self.ignored = await _inspect_source(
                    asyncio.get_running_loop(), thread, source, plans, sqlite_path=self.sqlite_path, requested=requested
                )
            if rebuild_indexes:
                with observe.step("drop_indexes"):
                    self.dropped = await _drop_indexes_of_empty_tables(conn, self.states)
            try:
                for st in self.states:
                    if st.present:
                        reader = BatchReader(
                            source, st.plan, batch_size=batch_size, thread=thread, processes=processes, workers=workers
                        )
                        with observe.step("load_table", table=st.plan.name):
                            await _load_table(conn, run, st, reader)
            except Stopped as exc:
                self.stopped = exc
            # Rebuild what this run dropped, and what an earlier (killed) run dropped and never
            # rebuilt; never a DDL statement when every index is there.
            if rebuild_indexes and (self.dropped or await _missing_vector_indexes(conn)):
                run.emit(MigrationProgress("indexes", "", 0, 0))
                with observe.step("rebuild_indexes"):
                    await rebuild_vector_indexes(conn, maintenance_work_mem=maintenance_work_mem)
                self.rebuilt = True
            with observe.step("analyze"):
                self.analyzed = await _analyze_loaded(conn, run, self.states)


async def _release(
    run: Run,
    source: sqlite3.Connection,
    thread: concurrent.futures.ThreadPoolExecutor,
    processes: concurrent.futures.ProcessPoolExecutor | None,
    own_pool: asyncpg.Pool | None,
) -> MigrationError | None:
    """Close what a run opened: the reject file, the parsing workers, the source, its thread, our pool.

    Every step runs, whatever an earlier one raised; the reject file's failure (a full disk:
    its last rows could not be written) is returned for the caller to raise.
    """
    rejects_failed: MigrationError | None = None
    try:
        run.rejects.close()
    except MigrationError as exc:
        rejects_failed = exc
    finally:
        try:
            if processes is not None:
                processes.shutdown(wait=True, cancel_futures=True)
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(thread, source.close)
        finally:
            thread.shutdown(wait=True)
            if own_pool is not None:
                await close_pool(own_pool)
    return rejects_failed


def _load_word_list_meanwhile(order: Sequence[str], workers: int) -> threading.Thread | None:
    """Load the compound splitter's word list in a thread while the source is opened and checked
    (``PRAGMA quick_check`` releases the GIL), so the workers forked after it inherit it
    (:func:`~.source.process_pool`); joined before the fork. Errors surface at the split."""
    if workers <= 0 or not any(t in order for t in CHUNK_TABLES) or not splitting_available():
        return None
    thread = threading.Thread(target=_load_word_list_quietly, name="dhv-word-list", daemon=True)
    thread.start()
    return thread


def _load_word_list_quietly() -> None:
    with contextlib.suppress(Exception):  # an unreadable list raises again, typed, at the first split
        load_word_list()


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
    batch_size, workers = check_run_sizes(batch_size, workers)
    started = time.perf_counter()
    order = load_order(tables)
    word_list = _load_word_list_meanwhile(order, workers)
    try:
        source, pool = await open_source_and_pool(sqlite_path, db, preflight=preflight)
    finally:
        if word_list is not None:
            word_list.join()
    run = Run(on_error=on_error, overwrite=overwrite, rejects=RejectWriter(reject_file), progress=progress)
    job = _Job(sqlite_path, pool, run, started)
    failure: MigrationError | None = None
    rejects_failed: MigrationError | None = None
    # fork the parsing workers before this run starts any thread of its own
    processes = process_pool(workers)
    thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dhv-sqlite")
    try:
        with observe.observed("migrate_sqlite", "write", server=masked_target(pool)):
            await job.load(
                source,
                order,
                thread=thread,
                processes=processes,
                requested=tables is not None,
                batch_size=batch_size,
                workers=workers,
                rebuild_indexes=rebuild_indexes,
                maintenance_work_mem=maintenance_work_mem,
            )
    except Exception as exc:
        if isinstance(exc, MigrationError) and (
            exc.report is not None or isinstance(exc, (MigrationStoppedError, ReadOnlyServerError))
        ):
            raise  # a standby target: nothing ran, nothing to resume
        failure = job.failure(exc, reject_file)
        if failure is None:
            raise
    finally:
        rejects_failed = await _release(run, source, thread, processes, pool if isinstance(db, str) else None)
    if rejects_failed is not None:  # the reject file lacks rows the report counts: the run failed
        if failure is not None:
            raise MigrationError(f"{failure}; {rejects_failed}", report=failure.report) from None
        before = f"stopped at {job.stopped.problems[0].describe()}; " if job.stopped is not None else ""
        raise MigrationError(f"{before}{rejects_failed}", report=job.report("failed", reject_file)) from None
    if failure is not None:
        raise failure from None
    report = job.report("stopped" if job.stopped else "completed", reject_file)
    if job.stopped is not None:
        raise MigrationStoppedError(
            f"stopped at the first bad row (on_error=stop): {job.stopped.problems[0].describe()}",
            problems=tuple(job.stopped.problems),
            report=report,
        )
    return report
