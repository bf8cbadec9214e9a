"""Verify a migration: does PostgreSQL hold exactly the rows of the legacy SQLite file?

:func:`verify_migration` streams every table from both sides ordered by id (SQLite's
``BINARY`` order and PostgreSQL's ``COLLATE "C"`` are both byte order of the UTF-8 id)
and merges them, so memory stays bounded. Each row is reduced to a canonical form:

* source side: the values the loader would store (same conversions as
  :mod:`dealhunter_vectors.bulk_loader`); rows it would reject are listed as
  ``unconvertible``;
* PostgreSQL side: the fetched values (``timestamp`` -> epoch seconds, ``boolean``,
  text/JSON text as UTF-8, ``vector`` -> float32 little-endian bytes).

Per table it reports the row counts, an order-independent checksum (sum mod 2**128 of the
rows' BLAKE2b-128 digests) of each side, the ids that differ, are missing or are extra, and
checks every stored vector (dimensions of the column type, finite, non-zero).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np

from .. import observe
from ..db.faults import is_connection_error
from ..db.migrations import quote_ident
from ..db.pool import Pool, close_pool
from ..embeddings import MAX_NORM, MIN_NORM, embedding_norm
from ..errors import DatabaseUnavailableError, MigrationError
from .loader import DEFAULT_BATCH_SIZE, check_run_sizes, masked_target, open_source_and_pool
from .reports import LIST_LIMIT, TableVerification, VectorProblem, VerificationReport
from .source import BatchReader, TablePlan, check_source_table, load_order, process_pool, table_plans

__all__ = ["canonical_row_digest", "verify_migration"]

_EPOCH = datetime(1970, 1, 1)
_MOD = 2**128


def canonical_row_digest(values: Sequence[object], kinds: Sequence[str]) -> bytes:
    """BLAKE2b-128 of a row's canonical form.

    Per column: NULL -> ``N;``; text/enum/json -> ``T<len>:`` + UTF-8 bytes; integer ->
    ``I<n>;``; boolean -> ``B0;``/``B1;``; timestamp -> ``S<epoch seconds>;`` (with
    ``.ffffff`` when sub-second); vector -> ``V<len>:`` + float32 little-endian bytes.
    """
    h = hashlib.blake2b(digest_size=16)
    for value, kind in zip(values, kinds, strict=True):
        if value is None:
            h.update(b"N;")
        elif kind == "embedding":
            data = np.ascontiguousarray(value, dtype="<f4").tobytes()
            h.update(f"V{len(data)}:".encode())
            h.update(data)
        elif kind == "boolean":
            h.update(b"B1;" if value else b"B0;")
        elif kind == "timestamp_s":
            if not isinstance(value, datetime):
                raise TypeError(f"timestamp expected, got {type(value).__name__}")
            micros = (value - _EPOCH) // timedelta(microseconds=1)
            secs, frac = divmod(micros, 1_000_000)
            h.update((f"S{secs}.{frac:06d};" if frac else f"S{secs};").encode())
        elif kind == "integer":
            h.update(f"I{int(value)};".encode())  # type: ignore[call-overload]
        else:
            data = str(value).encode("utf-8")
            h.update(f"T{len(data)}:".encode())
            h.update(data)
    return h.digest()


@dataclass
class _Side:
    rows: int = 0
    checksum: int = 0

    def add(self, digest: bytes) -> None:
        self.rows += 1
        self.checksum = (self.checksum + int.from_bytes(digest, "big")) % _MOD


@dataclass
class _Ids:
    count: int = 0
    ids: list[str] = field(default_factory=list)

    def add(self, row_id: str) -> None:
        self.count += 1
        if len(self.ids) < LIST_LIMIT:
            self.ids.append(row_id)


async def _source_rows(
    reader: BatchReader, kinds: Sequence[str], side: _Side, unconvertible: _Ids
) -> AsyncIterator[tuple[bytes, str, bytes]]:
    async for batch in reader:
        for i, values in enumerate(batch.values):
            raw_id = batch.raw[i][0]
            if i in batch.problems or not isinstance(raw_id, str):
                unconvertible.add(batch.ids[i])
                continue
            digest = canonical_row_digest(values, kinds)
            side.add(digest)
            yield raw_id.encode("utf-8", "surrogateescape"), raw_id, digest


def _check_vectors(plan: TablePlan, record: asyncpg.Record, problems: list[VectorProblem]) -> int:
    checked = 0
    for k in plan.embedding_columns:
        col = plan.columns[k]
        vec = record[k]
        if vec is None:
            continue
        checked += 1
        arr = np.asarray(vec, dtype=np.float32)
        reason, detail = None, ""
        if arr.shape != (col.dims,):
            reason, detail = "dimensions", f"{arr.size} dimensions, column has {col.dims}"
        elif not np.isfinite(arr).all():
            reason, detail = "finite", "holds NaN or Infinity"
        elif not arr.any():
            reason, detail = "zero_norm", "zero vector"
        elif not (MIN_NORM <= (norm := embedding_norm(arr)) <= MAX_NORM):
            reason, detail = "norm_range", f"norm {norm:.3g} outside [{MIN_NORM:g}, {MAX_NORM:g}]"
        if reason is not None and len(problems) < LIST_LIMIT:
            problems.append(
                VectorProblem(table=plan.name, row_id=record[0], column=col.name, reason=reason, detail=detail)  # type: ignore[arg-type]
            )
    return checked


async def _target_rows(
    conn: asyncpg.Connection,
    plan: TablePlan,
    kinds: Sequence[str],
    side: _Side,
    vector_problems: list[VectorProblem],
    vectors: list[int],
    prefetch: int,
) -> AsyncIterator[tuple[bytes, str, bytes]]:
    cols = ", ".join(quote_ident(c.name) for c in plan.columns)
    sql = f'SELECT {cols} FROM {quote_ident(plan.name)} ORDER BY "id" COLLATE "C"'  # noqa: S608 - quoted identifiers
    async with conn.transaction(readonly=True):
        async for record in conn.cursor(sql, prefetch=prefetch):
            digest = canonical_row_digest(list(record.values()), kinds)
            side.add(digest)
            vectors[0] += _check_vectors(plan, record, vector_problems)
            row_id: str = record[0]
            yield row_id.encode("utf-8"), row_id, digest


async def _verify_table(
    conn: asyncpg.Connection,
    source_reader: BatchReader | None,
    plan: TablePlan,
    prefetch: int,
) -> TableVerification:
    kinds = [c.kind for c in plan.columns]
    src_side, tgt_side = _Side(), _Side()
    unconvertible, mismatched, missing, extra = _Ids(), _Ids(), _Ids(), _Ids()
    matching = 0
    vector_problems: list[VectorProblem] = []
    vectors = [0]

    async def _empty() -> AsyncIterator[tuple[bytes, str, bytes]]:
        return
        yield

    src = _source_rows(source_reader, kinds, src_side, unconvertible) if source_reader else _empty()
    tgt = _target_rows(conn, plan, kinds, tgt_side, vector_problems, vectors, prefetch)
    try:
        s = await anext(src, None)
        t = await anext(tgt, None)
        while s is not None or t is not None:
            if t is None or (s is not None and s[0] < t[0]):
                assert s is not None
                missing.add(s[1])
                s = await anext(src, None)
            elif s is None or t[0] < s[0]:
                extra.add(t[1])
                t = await anext(tgt, None)
            else:
                if s[2] == t[2]:
                    matching += 1
                else:
                    mismatched.add(s[1])
                s = await anext(src, None)
                t = await anext(tgt, None)
    finally:
        with contextlib.suppress(Exception):
            await src.aclose()  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            await tgt.aclose()  # type: ignore[attr-defined]
    return TableVerification(
        table=plan.name,
        source_rows=src_side.rows + unconvertible.count,
        target_rows=tgt_side.rows,
        source_checksum=f"{src_side.checksum:032x}",
        target_checksum=f"{tgt_side.checksum:032x}",
        matching_rows=matching,
        mismatched=mismatched.count,
        mismatched_ids=tuple(mismatched.ids),
        missing=missing.count,
        missing_ids=tuple(missing.ids),
        extra=extra.count,
        extra_ids=tuple(extra.ids),
        unconvertible=unconvertible.count,
        unconvertible_ids=tuple(unconvertible.ids),
        vectors_checked=vectors[0],
        bad_vectors=tuple(vector_problems),
    )


async def verify_migration(
    sqlite_path: str | Path,
    db: Pool | asyncpg.Pool | str,
    *,
    tables: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 2,
) -> VerificationReport:
    """Compare the legacy SQLite file with PostgreSQL table by table (see the module docs).

    *db* is a pool or a URL. The source is opened read-only and read in one snapshot.
    ``report.ok`` is True only when every table has the same rows on both sides (counts,
    checksums, ids) and every stored vector is valid. A damaged source (``PRAGMA
    quick_check``, an unreadable page) or a lost server is a one-line :class:`MigrationError`
    (``retryable`` for the server).
    """
    batch_size, workers = check_run_sizes(batch_size, workers)
    started = time.perf_counter()
    order = load_order(tables)
    source, pool = await open_source_and_pool(sqlite_path, db)
    own_pool = isinstance(db, str)
    failure: MigrationError | None = None
    processes = process_pool(workers)
    thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dhv-verify")
    results: list[TableVerification] = []
    try:
        source.execute("BEGIN")
        present = {r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        with observe.observed("verify_migration", "read", server=masked_target(pool)):
            async with pool.acquire() as conn:
                for plan in await table_plans(conn, order):
                    if plan.name in present:
                        check_source_table(source, plan)
                    reader = (
                        BatchReader(
                            source,
                            plan,
                            batch_size=batch_size,
                            thread=thread,
                            processes=processes,
                            workers=workers,
                            order_by_id=True,
                        )
                        if plan.name in present
                        else None
                    )
                    with observe.step("verify_table", table=plan.name):
                        results.append(await _verify_table(conn, reader, plan, batch_size))
        masked = masked_target(pool)
    except sqlite3.Error as exc:
        failure = MigrationError(f"reading the source {Path(sqlite_path)} failed: {exc} (the file is damaged)")
    except asyncpg.InsufficientPrivilegeError as exc:
        failure = MigrationError(
            f"verify needs SELECT on every table it compares: {str(exc).splitlines()[0]}; grant it "
            "(GRANT SELECT ON ALL TABLES IN SCHEMA public TO <role>) or verify as the tables' owner"
        )
    except Exception as exc:
        if not (isinstance(exc, DatabaseUnavailableError) or is_connection_error(exc)):
            raise
        failure = MigrationError(
            f"lost the connection to {masked_target(pool)} during verify ({type(exc).__name__});"
            " re-run once the server is back",
            retryable=True,
        )
    finally:
        if processes is not None:
            processes.shutdown(wait=True, cancel_futures=True)
        thread.shutdown(wait=True)
        source.close()
        if own_pool:
            await close_pool(pool)
    if failure is not None:
        raise failure from None
    return VerificationReport(
        source=str(Path(sqlite_path)),
        database=masked,
        tables=tuple(results),
        seconds=round(time.perf_counter() - started, 3),
    )
