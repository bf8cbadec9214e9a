"""Reading the legacy SQLite file and converting its values, row by row, for the loader.

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
               finite, zero_norm, norm_range, half_precision_range). Dimensions come from the target column.
=============  ==============================================================================

NULL in a NOT NULL column is ``null_not_allowed``. In the staging table, rows whose foreign
key points at a parent missing from PostgreSQL (``missing_parent``, also when the parent was
itself rejected) and rows colliding with another row on a unique column (``unique_violation``)
are reported. ``on_error="stop"`` raises :class:`~dealhunter_vectors.errors.MigrationStoppedError`
at the first bad row (its batch is not loaded; earlier batches stay); ``"skip"`` writes the row
to the reject file (JSON lines: table, id, problems and the full source row, BLOBs as base64)
and goes on.

The source is opened with ``mode=ro`` (never ``immutable=1``): SQLite then honours the WAL and
the locks of an application that still has the file open, and reads one consistent snapshot
(one read transaction for the whole run). A read-only connection cannot modify the database
file; on a WAL database it may create the ``-wal``/``-shm`` side files when they are absent,
as any reader does. ``immutable=1`` would skip the WAL and read stale or torn data while the
application writes, so it is not used.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import re
import sqlite3
import sys
import urllib.parse
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
import numpy as np
import orjson

from ..db.library_columns import CHUNK_TABLES, LEGACY_EMBEDDING_MODEL, library_values_many
from ..db.schema import (
    VECTOR_INDEXES,
    legacy_schema,
    quote_ident,
)
from ..embeddings import parse_blob_embedding, parse_json_embedding
from ..errors import InvalidEmbeddingError, MigrationError
from .reports import ProblemReason, RowProblem, ValueKind

__all__ = [
    "TIMESTAMP_MAX",
    "TIMESTAMP_MIN",
    "Batch",
    "BatchReader",
    "ColumnPlan",
    "TablePlan",
    "convert_rows",
    "convert_value",
    "display_id",
    "load_order",
    "open_source",
    "process_pool",
    "select_sql",
    "table_plans",
    "value_kind",
]

TIMESTAMP_MIN: Final = 631_152_000
"""1990-01-01T00:00:00Z: the earliest Unix-seconds value accepted as a timestamp."""
TIMESTAMP_MAX: Final = 4_102_444_800
"""2100-01-01T00:00:00Z (exclusive): the latest Unix-seconds value accepted."""
INT4_MIN: Final = -(2**31)
INT4_MAX: Final = 2**31 - 1

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)$")
_MAX_DETAIL = 80


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


def legacy_tables() -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in legacy_schema()["tables"]}


def load_order(tables: Iterable[str] | None = None) -> list[str]:
    """Tables in an order where every foreign-key parent comes before its children.

    Computed from the foreign keys of the packaged legacy schema (Kahn's algorithm; ties
    keep the schema's declaration order). Parents outside *tables* are ignored (they must
    already be in PostgreSQL). Raises :class:`MigrationError` for unknown names or a cycle.
    """
    legacy = legacy_tables()
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


async def table_plans(conn: asyncpg.Connection, tables: Sequence[str]) -> list[TablePlan]:
    """Plans for *tables*: packaged column facts checked against the target's columns.

    Raises :class:`MigrationError` when a target table or column is missing, has a type
    the conversion rules do not produce, or is NOT NULL without default and absent from
    the source.
    """
    legacy = legacy_tables()
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
        # the Citus layout's tenant_id is library-owned: the loader fills it (migrate/batches_citus.py)
        extra_required = [
            n for n, r in target.items() if n not in known and r["notnull"] and not r["hasdef"] and n != "tenant_id"
        ]
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


def open_source(path: str | Path, *, preflight: bool = True) -> sqlite3.Connection:
    """Open the legacy SQLite file read-only (``mode=ro``) for this module's readers.

    TEXT arrives as ``str`` (invalid UTF-8 as surrogate escapes, reported later), BLOB as
    ``bytes``. Raises :class:`MigrationError` (one line) when the file is missing, not a
    database, or (``preflight``) fails ``PRAGMA quick_check``: the b-tree structure of every
    page is checked before a single row is loaded (0.3 s for a 214 MB file with a warm page
    cache; a damaged page would otherwise stop the load in the middle of a table).
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise MigrationError(f"source database {p} does not exist")
    uri = "file:" + urllib.parse.quote(str(p)) + "?mode=ro"
    failure: MigrationError | None = None
    conn: sqlite3.Connection | None = None
    stage = "cannot read it as an SQLite database"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.text_factory = _decode_text
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if preflight:
            stage = "is damaged (PRAGMA quick_check)"
            found = [str(r[0]) for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
            if found != ["ok"]:
                detail = "; ".join(" ".join(line.split()) for line in found)[:300]
                failure = MigrationError(f"source database {p} is damaged (PRAGMA quick_check: {detail})")
    except sqlite3.DatabaseError as exc:
        failure = MigrationError(f"source database {p} {stage}: {exc}")
    if failure is not None:  # raised here: no sqlite3 exception chained
        if conn is not None:
            conn.close()
        raise failure
    assert conn is not None
    return conn


def _source_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({quote_ident(table)})")]


def check_source_table(conn: sqlite3.Connection, plan: TablePlan) -> None:
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
    library: list[tuple[object, ...] | None] = field(default_factory=list)
    """The library-owned values of each row of a chunk table, computed by the worker processes
    (``None`` for a row converted with a problem); empty: not computed (the writer computes them)."""

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

    def _submit_library(self, batch: Batch) -> list[asyncio.Future[list[tuple[object, ...] | None]]]:
        """The library-owned values of a chunk table's rows (:mod:`..db.library_columns`): content
        hash and compound parts, split in the worker processes beside the embedding parsing."""
        if self.processes is None or self.plan.name not in CHUNK_TABLES or not batch.raw:
            return []
        names = [c.name for c in self.plan.columns]
        content, embedding = names.index("content"), names.index("embedding")
        rows = [  # a row with a problem is not written: nothing to compute (its text may not encode)
            None if i in batch.problems else (values[content], raw[embedding] is not None)
            for i, (values, raw) in enumerate(zip(batch.values, batch.raw, strict=True))
        ]
        return [
            asyncio.wrap_future(self.processes.submit(library_values_many, part, LEGACY_EMBEDDING_MODEL))
            for part in self._jobs(rows)
        ]

    def _jobs(self, items: list[Any]) -> list[list[Any]]:
        """*items* in consecutive slices, one worker job each: about two per worker, >= 8 items a job."""
        n = max(1, min(self.workers * 2, math.ceil(len(items) / 8)))
        size = math.ceil(len(items) / n)
        return [items[k : k + size] for k in range(0, len(items), size)]

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
        return [
            asyncio.wrap_future(self.processes.submit(parse_embedding_cells, part, dims)) for part in self._jobs(cells)
        ]

    async def __aiter__(self) -> AsyncGenerator[Batch, None]:
        loop = asyncio.get_running_loop()
        sql = select_sql(self.plan, order_by_id=self.order_by_id)
        cursor = await loop.run_in_executor(self.thread, self.source.execute, sql)
        queue: asyncio.Queue[
            tuple[Batch, list[asyncio.Future[Any]], list[asyncio.Future[Any]]] | BaseException | None
        ] = asyncio.Queue(self.depth)

        async def produce() -> None:
            try:
                while True:
                    batch = await loop.run_in_executor(self.thread, self._read, cursor)
                    if batch is None:
                        break
                    await queue.put((batch, self._submit(batch), self._submit_library(batch)))
                await queue.put(None)
            except asyncio.CancelledError:  # the consumer is gone: nobody would take it from a full queue
                raise
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
                batch, futures, library = item
                parsed: list[bytes | tuple[str, str, str]] = []
                for fut in futures:
                    parsed.extend(await fut)
                apply_parsed(self.plan, batch, parsed)
                for fut in library:
                    batch.library.extend(await fut)
                yield batch
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            while not queue.empty():  # parsing jobs nobody will wait for
                left = queue.get_nowait()
                if isinstance(left, tuple):
                    for fut in (*left[1], *left[2]):
                        fut.cancel()
            await _close_cursor(loop, self.thread, cursor)


async def _close_cursor(
    loop: asyncio.AbstractEventLoop, thread: concurrent.futures.ThreadPoolExecutor, cursor: sqlite3.Cursor
) -> None:
    """Close *cursor* in the reader's thread, or here when that thread pool is shut down already.

    A reader closed late (e.g. an abandoned iteration finalised after the run released its
    thread) must not fail with "cannot schedule new futures after shutdown"; nothing else
    uses the connection then.
    """
    try:
        await loop.run_in_executor(thread, cursor.close)
    except RuntimeError:  # the executor is shut down
        cursor.close()


def _warm_up() -> int:
    return 0


_PR_SET_PDEATHSIG: Final = 1


def _die_with_parent(parent: int) -> None:
    """Worker initializer: the kernel sends SIGKILL to this worker when its parent dies.

    Ctrl-C on a terminal sends SIGINT to the whole process group: a worker ignores it (no
    ``KeyboardInterrupt`` traceback from each worker); the loader shuts its workers down.

    ``kill -9`` of the loader cannot run any cleanup, so without this its workers would
    live on as orphans. Linux only (``prctl(PR_SET_PDEATHSIG)``); the signal fires when the
    thread that forked the worker exits, which is the loader's thread that created the pool.
    If the parent died before the call, the worker exits at once.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform != "linux":  # pragma: no cover - other platforms keep the default
        return
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:  # pragma: no cover - prctl cannot fail here
        return
    if os.getppid() != parent:  # the parent is already gone (we were re-parented)
        os._exit(1)


def process_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor | None:
    """A process pool for embedding parsing (``None`` when *workers* is 0), workers started.

    The workers also split German compounds (the chunk tables' library-owned values): the
    loader loads the word list before it calls this, so they share it instead of each loading it
    (:func:`~dealhunter_vectors.compounds.load_word_list`).

    On Linux the workers are forked (``spawn``/``forkserver`` would re-import the caller's
    main module, which breaks scripts without an ``if __name__ == "__main__"`` guard); they
    are forked at once, before the loader starts its own threads (the word list's thread has
    ended), and only run :func:`parse_embedding_cells` and
    :func:`~dealhunter_vectors.db.library_columns.library_values_many`. Elsewhere ``spawn`` is
    used. Each worker dies with the loader, also on ``kill -9`` (:func:`_die_with_parent`).
    """
    if workers <= 0:
        return None
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform == "linux" else "spawn"
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )
    for fut in [pool.submit(_warm_up) for _ in range(workers)]:
        fut.result()
    return pool


def count_rows(source: sqlite3.Connection, table: str) -> int:
    row = source.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()  # noqa: S608 - quoted identifier
    return int(row[0])


def source_tables(source: sqlite3.Connection) -> set[str]:
    return {r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
