"""The paths our library is compared with: the old app's, the best in-process ones, the plan's.

(a) :func:`old_lead_retrieval` — the literal old path of lead retrieval
    (``queryRagForLead``): read the qualification's rows from the legacy SQLite file,
    ``json.loads`` every embedding, score with the JavaScript ``cosineSimilarity`` as a
    Python loop over float64, filter ``> threshold``, sort, slice.
(b) :func:`inprocess_lead_retrieval` — the best in-process version of the same: the same
    rows, embeddings parsed with orjson into one float32 matrix, scored with numpy.
(c) :class:`NumpyBruteForce` — exact search over an in-memory float32 matrix (norms
    precomputed): the memory-bandwidth limit of exact search without a database.
(d) :func:`plan_script_migrate` — a faithful Python port of the migration plan's
    ``scripts/migrate-sqlite-to-postgres.ts`` (Task 7.2): per table ``SELECT *`` into
    memory, per row convert and ``INSERT ... ON CONFLICT DO NOTHING`` one statement at a
    time (autocommit), embeddings as the text ``[v1,...]``. Ported into *our* schema with
    *correct* conversions (seconds -> timestamp, 0/1 -> boolean, all 29 tables in foreign
    key order, identifiers quoted) so the comparison measures the method, not its bugs.
(e) :func:`raw_copy_load` — binary COPY of rows whose values (and float32 embeddings) were
    parsed beforehand: the throughput limit of loading this data set.
(f) :func:`old_duplicate_check` — the literal old semantic duplicate step (every
    pre-qualification loaded and scored in-process), used for the latency-vs-rows plot.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import orjson
from numpy.typing import NDArray

from dealhunter_vectors.db.schema import legacy_schema, quote_ident
from dealhunter_vectors.legacy import algorithms as legacy


@dataclass(frozen=True)
class LegacyHit:
    """One result of the in-process paths: chunk id and cosine similarity."""

    id: str
    similarity: float


# ---------------------------------------------------------------- (a) literal old path
# The old app's algorithms live in dealhunter_vectors.legacy (the reference the tests and
# the demo use too): Drizzle's SELECT * of the owner's rows, JSON.parse of every embedding,
# the JavaScript cosineSimilarity loop in float64.

js_cosine_similarity = legacy.cosine_similarity_strict


def old_lead_retrieval(
    sqlite_path: Path | str,
    qualification_id: str,
    query: Sequence[float] | NDArray[np.float32],
    *,
    threshold: float = 0.3,
    limit: int = 5,
) -> list[LegacyHit]:
    """Lead retrieval exactly as the old app ran it (``queryRagForLead``: threshold 0.3)."""
    if threshold != legacy.LEAD_THRESHOLD:
        raise ValueError(f"the old lead retrieval's threshold is fixed at {legacy.LEAD_THRESHOLD}")
    rows = legacy.load_legacy_rows(sqlite_path, "deal_embeddings", "qualification_id", qualification_id)
    hits = legacy.query_rag_for_lead(rows, [float(x) for x in query], max_results=limit)
    return [LegacyHit(h["chunkId"], h["similarity"]) for h in hits]


# ------------------------------------------------------------- (b) best in-process path


def inprocess_lead_retrieval(
    sqlite_path: Path | str,
    qualification_id: str,
    query: NDArray[np.float32],
    *,
    threshold: float = 0.3,
    limit: int = 5,
) -> list[LegacyHit]:
    """Same rows from SQLite, embeddings parsed with orjson into a float32 matrix, scored with numpy."""
    conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            'SELECT "id", "embedding" FROM "deal_embeddings" WHERE "qualification_id" = ? AND "embedding" IS NOT NULL',
            (qualification_id,),
        ).fetchall()
    finally:
        conn.close()
    if not rows:
        return []
    ids = [r[0] for r in rows]
    matrix = np.array([orjson.loads(r[1]) for r in rows], dtype=np.float32)
    q = np.asarray(query, dtype=np.float32)
    sims = (matrix @ q) / (np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(q)))
    keep = np.flatnonzero(sims > threshold)
    order = keep[np.argsort(-sims[keep], kind="stable")][:limit]
    return [LegacyHit(ids[i], float(sims[i])) for i in order]


# ---------------------------------------------------------------- (c) numpy brute force


class NumpyBruteForce:
    """Exact cosine top-k over an in-memory float32 matrix (row norms precomputed)."""

    def __init__(self, matrix: NDArray[np.float32]) -> None:
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.inv_norms = (1.0 / np.linalg.norm(self.matrix, axis=1)).astype(np.float32)

    def top_k(self, query: NDArray[np.float32], k: int = 10) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Indices and similarities of the ``k`` most similar rows, best first."""
        q = np.asarray(query, dtype=np.float32)
        sims = (self.matrix @ q) * self.inv_norms / np.float32(np.linalg.norm(q))
        top = np.argpartition(-sims, k)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return top.astype(np.int64), sims[top]


# ------------------------------------------------------- (f) the old duplicate check


def old_duplicate_check(
    sqlite_path: Path | str,
    query: Sequence[float] | NDArray[np.float32],
    *,
    exclude_id: str | None = None,
    min_percent: int = 85,
) -> list[tuple[str, int]]:
    """The old semantic duplicate step: every pre-qualification loaded, JSON-parsed, JS-scored."""
    rows = legacy.load_legacy_rows(sqlite_path, "pre_qualifications", None, None)
    matches = legacy.duplicate_semantic_matches(
        rows, [float(x) for x in query], exclude_id=exclude_id, min_percent=min_percent
    )
    return [(m["id"], m["similarity"]) for m in matches]


# ------------------------------------------------------------ conversions (d) and (e)


@cache
def _table_kinds() -> dict[str, dict[str, str]]:
    return {t["name"]: {c["name"]: c["kind"] for c in t["columns"]} for t in legacy_schema()["tables"]}


def insert_order() -> list[str]:
    """All 29 tables in foreign-key order (the packaged legacy insert order)."""
    return list(legacy_schema()["insert_order"])


def _timestamp(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def _converter(kind: str, embedding: Callable[[str], Any]) -> Callable[[Any], Any]:
    if kind == "timestamp_s":
        return _timestamp
    if kind == "boolean":
        return lambda v: None if v is None else bool(v)
    if kind == "embedding":
        return lambda v: None if v is None else embedding(v)
    return lambda v: v


# ------------------------------------------------------------- (d) the plan's method


def _plan_vector_text(text: str) -> str:
    # const arr = JSON.parse(row[col]); row[col] = `[${arr.join(',')}]`;
    arr = json.loads(text)  # JSON.parse, the standard library (not orjson) like the plan
    return "[" + ",".join(repr(float(x)) if isinstance(x, float) else str(x) for x in arr) + "]"


async def plan_script_migrate(sqlite_path: Path | str, database_url: str) -> int:
    """Port of the plan's script; returns the number of rows inserted.

    Uses a connection *without* the binary vector codecs, so the ``[v1,...]`` text is sent
    as text and parsed by the server, as node-postgres did. asyncpg caches the prepared
    statement per table, which makes this port slightly faster than node-postgres'
    unnamed statements (the comparison errs in the plan's favour).
    """
    kinds = _table_kinds()
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    src.row_factory = sqlite3.Row
    conn = await asyncpg.connect(database_url)
    inserted = 0
    try:
        for table in insert_order():
            rows = src.execute(f"SELECT * FROM {quote_ident(table)}").fetchall()  # .all(): whole table in memory
            if not rows:
                continue
            columns = list(rows[0].keys())
            convert = [_converter(kinds[table][c], _plan_vector_text) for c in columns]
            casts = ["::text::vector" if kinds[table][c] == "embedding" else "" for c in columns]
            placeholders = ", ".join(f"${i + 1}{casts[i]}" for i in range(len(columns)))
            sql = (
                f"INSERT INTO {quote_ident(table)} ({', '.join(quote_ident(c) for c in columns)})"
                f" VALUES ({placeholders}) ON CONFLICT DO NOTHING"
            )
            for row in rows:
                await conn.execute(sql, *[f(row[i]) for i, f in enumerate(convert)])
                inserted += 1
    finally:
        await conn.close()
        src.close()
    return inserted


# ------------------------------------------------------------------ (e) raw binary COPY


@dataclass(frozen=True, eq=False)
class PreparedTable:
    """One table's rows, fully converted (float32 arrays for vectors), ready for COPY."""

    table: str
    columns: list[str]
    records: list[tuple[Any, ...]]


def _float32(text: str) -> NDArray[np.float32]:
    return np.asarray(orjson.loads(text), dtype=np.float32)


def prepare_raw_copy(sqlite_path: Path | str) -> list[PreparedTable]:
    """Read and convert every row of the legacy file (outside any timing)."""
    kinds = _table_kinds()
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    out = []
    try:
        for table in insert_order():
            cur = src.execute(f"SELECT * FROM {quote_ident(table)}")
            columns = [d[0] for d in cur.description]
            convert = [_converter(kinds[table][c], _float32) for c in columns]
            records = [tuple(f(row[i]) for i, f in enumerate(convert)) for row in cur]
            out.append(PreparedTable(table, columns, records))
    finally:
        src.close()
    return out


async def raw_copy_load(conn: asyncpg.Connection, tables: list[PreparedTable]) -> int:
    """Binary COPY of the prepared rows, table by table; returns the number of rows."""
    total = 0
    for t in tables:
        if t.records:
            await conn.copy_records_to_table(t.table, records=t.records, columns=t.columns)
            total += len(t.records)
    return total
