"""Migrate a legacy dealhunter SQLite database into PostgreSQL: fast, checked, resumable.

:func:`migrate_sqlite` reads the 29 legacy tables (order computed from the foreign keys of
the packaged schema facts, :func:`load_order`), converts every value by its column kind,
and loads each batch with a binary COPY into a ``TEMP`` staging table followed by
``INSERT ... SELECT ... ON CONFLICT (id) DO NOTHING``, one transaction per batch. A table
that is empty when its load starts (a first migration) takes the direct path: each batch is
COPYed straight into the target, and a batch the target's constraints refuse (an existing
id, a missing parent, a used unique value) is rolled back and goes through staging, so the
same rows are reported (see ``_load_batch_direct``).

Conversions (``kind`` from ``schema.legacy_schema()``; the target column type is checked):

=============  ==============================================================================
kind           rule
=============  ==============================================================================
text, enum     SQLite TEXT -> ``text``. NUL bytes (``nul_byte``), invalid UTF-8
               (``invalid_utf8``) and any other storage class (``storage_class``) are reported.
               Enum values are carried as they are (the target has no CHECK either).
json           TEXT that ``orjson`` (or, for lone ``\\uD800`` escapes and the like, the strict
               standard-library parser) accepts, stored byte-unchanged; else ``invalid_json``.
               ``json_or_text`` columns are plain text.
integer        INTEGER within int4 (``int4_range``); REAL/TEXT/BLOB -> ``storage_class``.
timestamp_s    INTEGER Unix **seconds** in [1990-01-01, 2100-01-01) -> ``timestamp`` holding
               the UTC wall clock. Values in that range times 1000 are ``timestamp_milliseconds``
               (never divided), anything else ``timestamp_out_of_range``. TEXT is converted only
               when it is an unambiguous ISO-8601 date-time with seconds optional and an explicit
               ``Z``/offset (``2026-01-18T09:43:30Z``); other text is ``timestamp_text``.
boolean        INTEGER 0/1 only (``boolean_value`` otherwise).
embedding      TEXT holding a JSON array, or a float32 little-endian BLOB (sqlite-vec), checked by
               :mod:`dealhunter_vectors.embeddings` (``embedding_<rule>``: type, json, dimensions,
               finite, zero_norm, half_precision_range). Dimensions come from the target column.
=============  ==============================================================================

NULL in a NOT NULL column is ``null_not_allowed``. In the staging table, rows whose foreign
key points at a parent missing from PostgreSQL (``missing_parent``, also when the parent was
itself rejected) and rows colliding with another row on a unique column (``unique_violation``)
are reported. ``on_error="stop"`` raises :class:`~dealhunter_vectors.errors.MigrationStoppedError`
at the first bad row (its batch is not loaded; earlier batches stay); ``"skip"`` writes the row
to the reject file (JSON lines: table, id, problems and the full source row, BLOBs as base64)
and goes on.

A staged row whose id exists already is compared over all columns (``IS DISTINCT FROM``):
equal -> ``already_present``; different -> a conflict, counted and listed and left untouched,
unless ``overwrite=True`` replaces it. So a re-run after a crash (loader killed, server
restarted) inserts exactly the missing rows, and a second run after success inserts nothing.

JSON embeddings are parsed in a process pool (``workers``, default 2) while the previous batch
is being copied; at most a few batches are in memory at any time, whatever the database size.
HNSW indexes of tables that are empty before the load are dropped and rebuilt afterwards (with
a generous ``maintenance_work_mem``), then the loaded tables are ``ANALYZE``\\ d.

The source is opened with ``mode=ro`` (never ``immutable=1``): SQLite then honours the WAL and
the locks of an application that still has the file open, and reads one consistent snapshot
(one read transaction for the whole run). A read-only connection cannot modify the database
file; on a WAL database it may create the ``-wal``/``-shm`` side files when they are absent,
as any reader does. ``immutable=1`` would skip the WAL and read stale or torn data while the
application writes, so it is not used.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import re
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Literal

import asyncpg
import numpy as np
import orjson

from .config import mask_url
from .embeddings import parse_blob_embedding, parse_json_embedding
from .errors import InvalidEmbeddingError, MigrationError, MigrationStoppedError
from .migration_models import LIST_LIMIT, MigrationReport, ProblemReason, RowProblem, TableReport, ValueKind
from .pool import Pool, close_pool, create_pool
from .schema import (
    VECTOR_INDEXES,
    apply_schema,
    create_vector_indexes,
    drop_vector_indexes,
    legacy_schema,
    quote_ident,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "TIMESTAMP_MAX",
    "TIMESTAMP_MIN",
    "ColumnPlan",
    "MigrationProgress",
    "TablePlan",
    "load_order",
    "migrate_sqlite",
    "open_source",
    "table_plans",
]

DEFAULT_BATCH_SIZE: Final = 250
"""Rows per COPY batch and transaction (a 3072-d JSON embedding is ~63 KB of text)."""
TIMESTAMP_MIN: Final = 631_152_000
"""1990-01-01T00:00:00Z: the earliest Unix-seconds value accepted as a timestamp."""
TIMESTAMP_MAX: Final = 4_102_444_800
"""2100-01-01T00:00:00Z (exclusive): the latest Unix-seconds value accepted."""
INT4_MIN: Final = -(2**31)
INT4_MAX: Final = 2**31 - 1
MAINTENANCE_WORK_MEM: Final = "1GB"
"""``maintenance_work_mem`` for the HNSW rebuild (a 3072-d halfvec graph needs ~7 KB a row)."""
LONG_TIMEOUT: Final = 7 * 24 * 3600.0
"""Client-side timeout for index builds and ANALYZE (the pool's command timeout is 60 s)."""

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)$")
_MAX_DETAIL = 80


# ------------------------------------------------------------------------------ plans


@dataclass(frozen=True)
class ColumnPlan:
    """One column: its legacy kind and how PostgreSQL stores it."""

    name: str
    kind: str
    """text, enum, json, integer, timestamp_s, boolean or embedding (``json_or_text`` -> text)."""
    nullable: bool
    parent: str | None = None
    """Table referenced by a foreign key on this column."""
    dims: int = 0
    """Vector dimensions of an embedding column (from the target column type)."""


@dataclass(frozen=True)
class TablePlan:
    """One table: columns in source order, foreign keys, unique columns, vector columns."""

    name: str
    columns: tuple[ColumnPlan, ...]
    unique: tuple[str, ...] = ()

    @property
    def foreign_keys(self) -> tuple[ColumnPlan, ...]:
        """Columns with a foreign key."""
        return tuple(c for c in self.columns if c.parent is not None)

    @property
    def embedding_columns(self) -> tuple[int, ...]:
        """Positions of the embedding columns."""
        return tuple(i for i, c in enumerate(self.columns) if c.kind == "embedding")

    @property
    def vector_indexes(self) -> tuple[str, ...]:
        """Names of this table's HNSW indexes."""
        return tuple(ix.name for ix in VECTOR_INDEXES if ix.table == self.name)


def _legacy_tables() -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in legacy_schema()["tables"]}


def load_order(tables: Iterable[str] | None = None) -> list[str]:
    """Tables in an order where every foreign-key parent comes before its children.

    Computed from the foreign keys of the packaged legacy schema (Kahn's algorithm; ties
    keep the schema's declaration order). Parents outside *tables* are ignored (they must
    already be in PostgreSQL). Raises :class:`MigrationError` for unknown names or a cycle.
    """
    legacy = _legacy_tables()
    wanted = list(legacy) if tables is None else list(dict.fromkeys(tables))
    unknown = [t for t in wanted if t not in legacy]
    if unknown:
        raise MigrationError(f"unknown table(s) {unknown}; the legacy schema has {sorted(legacy)}")
    rank = {name: i for i, name in enumerate(legacy)}
    parents = {
        t: {c["references"]["table"] for c in legacy[t]["columns"] if c.get("references")} & set(wanted) - {t}
        for t in wanted
    }
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(wanted):
        ready = sorted((t for t in wanted if t not in done and parents[t] <= done), key=rank.__getitem__)
        if not ready:
            raise MigrationError(f"foreign-key cycle among {sorted(set(wanted) - done)}")
        order.append(ready[0])
        done.add(ready[0])
    return order


_TARGET_COLUMNS_SQL: Final = """
SELECT a.attname AS name, t.typname AS type, a.atttypmod AS typmod, a.attnotnull AS notnull,
       a.atthasdef AS hasdef
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_PG_TYPES: Final = {
    "text": {"text"},
    "enum": {"text"},
    "json": {"text"},
    "integer": {"int4"},
    "timestamp_s": {"timestamp"},
    "boolean": {"bool"},
    "embedding": {"vector"},
}


async def table_plans(conn: asyncpg.Connection, tables: Sequence[str]) -> list[TablePlan]:
    """Plans for *tables*: packaged column facts checked against the target's columns.

    Raises :class:`MigrationError` when a target table or column is missing, has a type
    the conversion rules do not produce, or is NOT NULL without default and absent from
    the source.
    """
    legacy = _legacy_tables()
    plans = []
    for name in tables:
        rows = await conn.fetch(_TARGET_COLUMNS_SQL, quote_ident(name))
        if not rows:
            raise MigrationError(f"target table {name!r} does not exist (apply the schema first)")
        target = {r["name"]: r for r in rows}
        cols = []
        for c in legacy[name]["columns"]:
            kind = "text" if c.get("json_or_text") else c["kind"]
            t = target.get(c["name"])
            if t is None:
                raise MigrationError(f"target table {name!r} has no column {c['name']!r}")
            if t["type"] not in _PG_TYPES[kind]:
                raise MigrationError(
                    f"target column {name}.{c['name']} is {t['type']}, expected {sorted(_PG_TYPES[kind])} for "
                    f"legacy kind {kind}"
                )
            dims = 0
            if kind == "embedding":
                dims = int(t["typmod"]) if t["typmod"] > 0 else int(c.get("dims") or 3072)
            ref = c.get("references")
            cols.append(
                ColumnPlan(
                    name=c["name"],
                    kind=kind,
                    nullable=bool(c["nullable"]) and not t["notnull"],
                    parent=ref["table"] if ref else None,
                    dims=dims,
                )
            )
        known = {c.name for c in cols}
        extra_required = [n for n, r in target.items() if n not in known and r["notnull"] and not r["hasdef"]]
        if extra_required:
            raise MigrationError(f"target table {name!r} has NOT NULL column(s) {extra_required} the source lacks")
        unique = tuple(
            ix["columns"][0]
            for ix in legacy[name].get("indexes", [])
            if ix.get("unique") and len(ix["columns"]) == 1 and ix["columns"][0] != "id"
        )
        plans.append(TablePlan(name=name, columns=tuple(cols), unique=unique))
    return plans


# ------------------------------------------------------------------------------ source


def _decode_text(raw: bytes) -> str:
    # Keep invalid UTF-8 visible (lone surrogates) instead of failing the whole fetch.
    return raw.decode("utf-8", "surrogateescape")


def open_source(path: str | Path) -> sqlite3.Connection:
    """Open the legacy SQLite file read-only (``mode=ro``) for this module's readers.

    TEXT arrives as ``str`` (invalid UTF-8 as surrogate escapes, reported later), BLOB as
    ``bytes``. Raises :class:`MigrationError` when the file is missing or not a database.
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise MigrationError(f"source database {p} does not exist")
    uri = "file:" + urllib.parse.quote(str(p)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.text_factory = _decode_text
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise MigrationError(f"cannot read {p} as an SQLite database: {exc}") from exc
    return conn


def _source_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({quote_ident(table)})")]


def _check_source_table(conn: sqlite3.Connection, plan: TablePlan) -> None:
    have = _source_columns(conn, plan.name)
    want = [c.name for c in plan.columns]
    missing = [c for c in want if c not in have]
    extra = [c for c in have if c not in want]
    if missing or extra:
        raise MigrationError(
            f"source table {plan.name!r} differs from the legacy schema: missing columns {missing}, "
            f"unknown columns {extra} (nothing is loaded rather than dropping or inventing data)"
        )


def select_sql(plan: TablePlan, *, order_by_id: bool = False) -> str:
    """The source SELECT of *plan* (identifiers from the packaged schema, quoted)."""
    cols = ", ".join(quote_ident(c.name) for c in plan.columns)
    order = ' ORDER BY "id"' if order_by_id else ""
    return f"SELECT {cols} FROM {quote_ident(plan.name)}{order}"  # noqa: S608 - quoted schema identifiers


# ------------------------------------------------------------------------------ conversion


class _Bad(Exception):
    def __init__(self, reason: ProblemReason, kind: ValueKind, detail: str) -> None:
        super().__init__(detail)
        self.reason: ProblemReason = reason
        self.kind: ValueKind = kind
        self.detail = detail


def value_kind(value: object) -> ValueKind:
    """SQLite storage class of a fetched value."""
    if value is None:
        return "null"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "text"
    return "blob"


def _preview(value: object) -> str:
    if isinstance(value, str):
        text = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        short = text[:_MAX_DETAIL]
        return repr(short) + ("..." if len(text) > _MAX_DETAIL else "")
    if isinstance(value, bytes):
        return f"{len(value)} bytes {value[:16].hex()}{'...' if len(value) > 16 else ''}"
    return repr(value)


def display_id(value: object) -> str:
    """A printable primary key (text ids unchanged, anything else tagged)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return value
    return f"<{value_kind(value)} {_preview(value)}>"


def _check_text(value: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Bad("invalid_utf8", "text", f"not valid UTF-8: {_preview(value)}") from None
    if "\x00" in value:
        raise _Bad("nul_byte", "text", f"contains a NUL byte at offset {value.index(chr(0))} (PostgreSQL text cannot)")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_json(value: str) -> None:
    try:
        orjson.loads(value)
        return
    except orjson.JSONDecodeError as exc:
        first = str(exc)
    try:  # orjson refuses lone surrogate escapes that JSON.stringify writes; the stdlib accepts them
        json.loads(value, parse_constant=_reject_constant)
    except ValueError:
        raise _Bad("invalid_json", "text", f"invalid JSON ({first})") from None


def timestamp_from_seconds(seconds: int) -> datetime:
    """Unix seconds -> naive ``datetime`` holding the UTC wall clock."""
    return datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None)


def _convert_timestamp(value: object) -> datetime:
    if isinstance(value, int):
        if TIMESTAMP_MIN <= value < TIMESTAMP_MAX:
            return timestamp_from_seconds(value)
        if TIMESTAMP_MIN * 1000 <= value < TIMESTAMP_MAX * 1000:
            raise _Bad(
                "timestamp_milliseconds",
                "integer",
                f"{value} looks like milliseconds ({timestamp_from_seconds(value // 1000):%Y-%m-%d}); "
                "Drizzle stored seconds, so it is not divided",
            )
        raise _Bad(
            "timestamp_out_of_range",
            "integer",
            f"{value} is outside 1990-01-01..2100-01-01 as Unix seconds",
        )
    if isinstance(value, str):
        if _ISO.match(value):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                utc = parsed.astimezone(UTC).replace(tzinfo=None)
                if timestamp_from_seconds(TIMESTAMP_MIN) <= utc < timestamp_from_seconds(TIMESTAMP_MAX):
                    return utc
                raise _Bad("timestamp_out_of_range", "text", f"{_preview(value)} is outside 1990..2100")
        raise _Bad(
            "timestamp_text",
            "text",
            f"{_preview(value)} is not an unambiguous ISO-8601 date-time with a UTC offset",
        )
    raise _Bad("storage_class", value_kind(value), f"timestamp column holds {value_kind(value)} {_preview(value)}")


def convert_value(col: ColumnPlan, value: object) -> object:
    """Convert one non-embedding source value for *col*; raises ``_Bad`` with the reason."""
    if value is None:
        if not col.nullable:
            raise _Bad("null_not_allowed", "null", "NULL in a NOT NULL column")
        return None
    kind = col.kind
    if kind in ("text", "enum", "json"):
        if not isinstance(value, str):
            vk = value_kind(value)
            raise _Bad("storage_class", vk, f"{kind} column holds {vk} {_preview(value)}")
        _check_text(value)
        if kind == "json":
            _check_json(value)
        return value
    if kind == "integer":
        if type(value) is int:
            if INT4_MIN <= value <= INT4_MAX:
                return value
            raise _Bad("int4_range", "integer", f"{value} does not fit a 4-byte integer")
        vk = value_kind(value)
        raise _Bad("storage_class", vk, f"integer column holds {vk} {_preview(value)}")
    if kind == "boolean":
        if type(value) is int:
            if value in (0, 1):
                return value == 1
            raise _Bad("boolean_value", "integer", f"{value} is not 0 or 1")
        vk = value_kind(value)
        raise _Bad("storage_class", vk, f"boolean column holds {vk} {_preview(value)}")
    if kind == "timestamp_s":
        return _convert_timestamp(value)
    raise AssertionError(f"no converter for kind {kind}")  # pragma: no cover


def parse_embedding_cells(cells: Sequence[object], dims: int) -> list[bytes | tuple[str, str, str]]:
    """Parse embedding cells (JSON text or float32 LE BLOB) -> float32 bytes or (rule, kind, message).

    Runs in the worker processes; module-level so it pickles by reference.
    """
    out: list[bytes | tuple[str, str, str]] = []
    for cell in cells:
        try:
            if isinstance(cell, str):
                arr = parse_json_embedding(cell, dimensions=dims)
            elif isinstance(cell, bytes):
                head, tail = cell[:1], cell.rstrip()[-1:]
                if head == b"[" and tail == b"]" and cell.isascii():
                    raise InvalidEmbeddingError("type", "a BLOB holding JSON text, not float32 values")
                arr = parse_blob_embedding(cell, dimensions=dims)
            else:
                vk = value_kind(cell)
                raise InvalidEmbeddingError("type", f"embedding column holds {vk} {_preview(cell)}")
            out.append(np.ascontiguousarray(arr, dtype="<f4").tobytes())
        except InvalidEmbeddingError as exc:
            out.append((exc.rule, value_kind(cell), str(exc)))
    return out


@dataclass
class Batch:
    """Converted source rows; ``problems`` maps row positions to their findings."""

    raw: list[tuple[Any, ...]]
    values: list[list[Any]]
    ids: list[str]
    problems: dict[int, list[RowProblem]] = field(default_factory=dict)
    cells: list[tuple[int, int]] = field(default_factory=list)
    """(row, column) of each embedding cell still to parse."""

    def add(self, table: str, row: int, column: str | None, bad: _Bad) -> None:
        self.problems.setdefault(row, []).append(
            RowProblem(
                table=table,
                row_id=self.ids[row],
                column=column,
                reason=bad.reason,
                value_kind=bad.kind,
                detail=bad.detail,
            )
        )


def convert_rows(plan: TablePlan, rows: list[tuple[Any, ...]]) -> Batch:
    """Convert the scalar columns of *rows*; embedding cells are left for :func:`parse_embedding_cells`."""
    batch = Batch(raw=rows, values=[], ids=[display_id(r[0]) for r in rows])
    cols = plan.columns
    for i, row in enumerate(rows):
        out: list[Any] = list(row)
        for j, col in enumerate(cols):
            value = row[j]
            if col.kind == "embedding":
                if value is None:
                    if not col.nullable:
                        batch.add(plan.name, i, col.name, _Bad("null_not_allowed", "null", "NULL in a NOT NULL column"))
                    continue
                batch.cells.append((i, j))
                continue
            try:
                out[j] = convert_value(col, value)
            except _Bad as bad:
                batch.add(plan.name, i, col.name, bad)
        batch.values.append(out)
    return batch


def apply_parsed(plan: TablePlan, batch: Batch, parsed: Sequence[bytes | tuple[str, str, str]]) -> None:
    """Put parsed vectors (float32 arrays) into *batch*, or record the embedding problems."""
    for (i, j), result in zip(batch.cells, parsed, strict=True):
        if isinstance(result, bytes):
            batch.values[i][j] = np.frombuffer(result, dtype=np.float32)
        else:
            rule, vk, message = result
            reason: ProblemReason = f"embedding_{rule}"  # type: ignore[assignment]
            batch.add(plan.name, i, plan.columns[j].name, _Bad(reason, vk, message))  # type: ignore[arg-type]


class BatchReader:
    """Streams converted batches of one table: SQLite reads and scalar conversion in a
    thread, embedding parsing in the process pool, a bounded queue in between (pipelined
    with whatever the consumer does, e.g. COPY)."""

    def __init__(
        self,
        source: sqlite3.Connection,
        plan: TablePlan,
        *,
        batch_size: int,
        thread: concurrent.futures.ThreadPoolExecutor,
        processes: concurrent.futures.ProcessPoolExecutor | None,
        workers: int,
        order_by_id: bool = False,
        depth: int = 2,
    ) -> None:
        self.source = source
        self.plan = plan
        self.batch_size = batch_size
        self.thread = thread
        self.processes = processes
        self.workers = max(1, workers)
        self.order_by_id = order_by_id
        self.depth = depth

    def _read(self, cursor: sqlite3.Cursor) -> Batch | None:
        rows = cursor.fetchmany(self.batch_size)
        return convert_rows(self.plan, rows) if rows else None

    def _submit(self, batch: Batch) -> list[asyncio.Future[list[bytes | tuple[str, str, str]]]]:
        cells = [batch.raw[i][j] for i, j in batch.cells]
        if not cells:
            return []
        dims = self.plan.columns[batch.cells[0][1]].dims
        loop = asyncio.get_running_loop()
        if self.processes is None:
            fut: asyncio.Future[list[bytes | tuple[str, str, str]]] = loop.create_future()
            fut.set_result(parse_embedding_cells(cells, dims))
            return [fut]
        # several embedding columns in one table share dims in this schema; parse per column
        by_col: dict[int, list[int]] = {}
        for k, (_, j) in enumerate(batch.cells):
            by_col.setdefault(j, []).append(k)
        if len(by_col) > 1:  # keep the (row, column) order of batch.cells: one job per column
            raise AssertionError("tables with several embedding columns are not in the legacy schema")
        n = max(1, min(self.workers * 2, math.ceil(len(cells) / 8)))
        size = math.ceil(len(cells) / n)
        return [
            asyncio.wrap_future(self.processes.submit(parse_embedding_cells, cells[k : k + size], dims))
            for k in range(0, len(cells), size)
        ]

    async def __aiter__(self) -> AsyncIterator[Batch]:
        loop = asyncio.get_running_loop()
        sql = select_sql(self.plan, order_by_id=self.order_by_id)
        cursor = await loop.run_in_executor(self.thread, self.source.execute, sql)
        queue: asyncio.Queue[tuple[Batch, list[asyncio.Future[Any]]] | BaseException | None] = asyncio.Queue(self.depth)

        async def produce() -> None:
            try:
                while True:
                    batch = await loop.run_in_executor(self.thread, self._read, cursor)
                    if batch is None:
                        break
                    await queue.put((batch, self._submit(batch)))
                await queue.put(None)
            except BaseException as exc:  # handed to the consumer
                await queue.put(exc)
                raise

        task = asyncio.create_task(produce())
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                batch, futures = item
                parsed: list[bytes | tuple[str, str, str]] = []
                for fut in futures:
                    parsed.extend(await fut)
                apply_parsed(self.plan, batch, parsed)
                yield batch
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await loop.run_in_executor(self.thread, cursor.close)


def _warm_up() -> int:
    return 0


def process_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor | None:
    """A process pool for embedding parsing (``None`` when *workers* is 0), workers started.

    On Linux the workers are forked (``spawn``/``forkserver`` would re-import the caller's
    main module, which breaks scripts without an ``if __name__ == "__main__"`` guard); they
    are forked at once, before the loader starts its own threads, and only run
    :func:`parse_embedding_cells`. Elsewhere ``spawn`` is used.
    """
    if workers <= 0:
        return None
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform == "linux" else "spawn"
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
    for fut in [pool.submit(_warm_up) for _ in range(workers)]:
        fut.result()
    return pool


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
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("wb")
        record = {
            "table": plan.name,
            "id": problems[0].row_id,
            "problems": [p.model_dump(exclude={"table", "row_id"}) for p in problems],
            "row": {c.name: _json_cell(v) for c, v in zip(plan.columns, raw, strict=True)},
        }
        self._fh.write(orjson.dumps(record) + b"\n")

    def open_empty(self) -> None:
        if self.path is not None and self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("wb")

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

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


async def _load_batch(conn: asyncpg.Connection, run: _Run, state: _TableState, batch: Batch) -> None:
    plan = state.plan
    n = len(batch.raw)
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
    good = [i for i in range(n) if i not in batch.problems]
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


def _count_rows(source: sqlite3.Connection, table: str) -> int:
    row = source.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()  # noqa: S608 - quoted identifier
    return int(row[0])


def _source_tables(source: sqlite3.Connection) -> set[str]:
    return {r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


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
) -> MigrationReport:
    """Copy the legacy SQLite database at *sqlite_path* into PostgreSQL (*db*: pool or URL).

    Applies the schema when absent, loads *tables* (default all 29) in foreign-key order
    with the conversions and checks described in this module, and returns a
    :class:`MigrationReport`. ``on_error="stop"`` raises
    :class:`~dealhunter_vectors.errors.MigrationStoppedError` (with ``.report``) at the
    first bad row; ``"skip"`` rejects bad rows to *reject_file* (JSON lines, rewritten each
    run) and continues. ``overwrite=True`` replaces rows that exist with different content
    (otherwise they are conflicts, listed and left alone). ``workers`` processes parse JSON
    embeddings (0: parse in this process). Raises :class:`MigrationError` when the source is
    not a legacy database or the target schema does not fit.
    """
    if on_error not in ("stop", "skip"):
        raise MigrationError(f"on_error must be 'stop' or 'skip', not {on_error!r}")
    if batch_size < 1:
        raise MigrationError("batch_size must be >= 1")
    started = time.perf_counter()
    order = load_order(tables)
    source = open_source(sqlite_path)
    own_pool = isinstance(db, str)
    pool: asyncpg.Pool = await create_pool(db, min_size=1, max_size=2) if isinstance(db, str) else db
    run = _Run(on_error=on_error, overwrite=overwrite, rejects=_RejectWriter(reject_file), progress=progress)
    states: list[_TableState] = []
    dropped: list[str] = []
    analyzed: list[str] = []
    rebuilt = False
    stopped: _Stopped | None = None
    # fork the parsing workers before this run starts any thread of its own
    processes = process_pool(workers)
    thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dhv-sqlite")
    loop = asyncio.get_running_loop()
    try:
        run.rejects.open_empty()
        await apply_schema(pool)
        async with pool.acquire() as conn:
            plans = await table_plans(conn, order)
            # one read transaction: a consistent snapshot of the source for the whole run
            await loop.run_in_executor(thread, source.execute, "BEGIN")
            present_tables = await loop.run_in_executor(thread, _source_tables, source)
            legacy_names = set(_legacy_tables())
            ignored = sorted(t for t in present_tables - legacy_names if not t.startswith("sqlite_"))
            if not present_tables & legacy_names:
                raise MigrationError(f"{sqlite_path} holds none of the legacy dealhunter tables")
            if tables is not None:
                absent = [t for t in order if t not in present_tables]
                if absent:
                    raise MigrationError(f"requested table(s) {absent} do not exist in {sqlite_path}")
            for plan in plans:
                if plan.name in present_tables:
                    await loop.run_in_executor(thread, _check_source_table, source, plan)
                    count = await loop.run_in_executor(thread, _count_rows, source, plan.name)
                    states.append(_TableState(plan=plan, source_rows=count))
                else:
                    states.append(_TableState(plan=plan, source_rows=0, present=False, completed=True))
            for st in states:
                if st.plan.vector_indexes and st.source_rows and rebuild_indexes:
                    empty = await conn.fetchval(_IS_EMPTY_SQL.format(table=quote_ident(st.plan.name)))
                    if empty:
                        dropped.extend(await drop_vector_indexes(conn, {st.plan.name}))
            try:
                for st in states:
                    if not st.present:
                        continue
                    run.emit(MigrationProgress("table_start", st.plan.name, 0, st.source_rows))
                    t0 = time.perf_counter()
                    reader = BatchReader(
                        source,
                        st.plan,
                        batch_size=batch_size,
                        thread=thread,
                        processes=processes,
                        workers=workers,
                    )
                    direct = await _direct_load_possible(conn, st.plan)
                    try:
                        async for batch in reader:
                            if direct:
                                direct = await _load_batch_direct(conn, run, st, batch)
                            else:
                                await _load_batch(conn, run, st, batch)
                            run.emit(
                                MigrationProgress(
                                    "batch",
                                    st.plan.name,
                                    st.inserted + st.already_present + st.overwritten + st.conflicts + st.rejected,
                                    st.source_rows,
                                )
                            )
                    finally:
                        st.seconds += time.perf_counter() - t0
                    st.completed = True
                    run.emit(MigrationProgress("table_done", st.plan.name, st.source_rows, st.source_rows))
            except _Stopped as exc:
                stopped = exc
            if rebuild_indexes and any(st.plan.vector_indexes for st in states):
                run.emit(MigrationProgress("indexes", "", 0, 0))
                await rebuild_vector_indexes(conn, maintenance_work_mem=maintenance_work_mem)
                rebuilt = True
            for st in states:
                if st.inserted or st.overwritten:
                    run.emit(MigrationProgress("analyze", st.plan.name, 0, 0))
                    await conn.execute(f"ANALYZE {quote_ident(st.plan.name)}", timeout=LONG_TIMEOUT)
                    analyzed.append(st.plan.name)
        report = MigrationReport(
            source=str(Path(sqlite_path)),
            database=_masked(pool),
            status="stopped" if stopped else "completed",
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
    finally:
        run.rejects.close()
        if processes is not None:
            processes.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Exception):
            await loop.run_in_executor(thread, source.close)
        thread.shutdown(wait=True)
        if own_pool:
            await close_pool(pool)
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
