"""Bad-input corpus: each case corrupts one thing in a small valid legacy database.

Every case runs twice on a fresh PostgreSQL database: first ``on_error="stop"``
(``MigrationStoppedError`` naming exactly the expected table / id / column / reason /
value kind; the bad row is not loaded), then ``on_error="skip"`` on the same database
(the run resumes: every good row is loaded - a bad row hides none - the expected problems
are reported, and the reject file holds the rejected rows with their source values).

Cases (table.column <- value: expected reason, value kind):

 Rows: users u1..u3 (u2 has children ref2 and acc2; u3 has none), references ref1/ref2,
 accounts acc1/acc2, one pre-qualification, one qualification, deal_embeddings de1..de4,
 raw_chunks rc1..rc3 (3072-d JSON embeddings as the app wrote them).

 1. users.created_at <- 1768000000000 (milliseconds): timestamp_milliseconds, integer
 2. users.created_at <- 86400 (1970): timestamp_out_of_range, integer
 3. users.created_at <- -5: timestamp_out_of_range, integer
 4. users.deleted_at <- 5000000000 (year 2128): timestamp_out_of_range, integer
 5. users.created_at <- '18.01.2026 09:43': timestamp_text, text
 6. users.created_at <- '2026-01-18T09:43:30' (no offset: ambiguous): timestamp_text, text
 7. users.created_at <- 1768000000.5 (REAL): storage_class, real
 8. references.is_validated <- 2: boolean_value, integer
 9. references.is_validated <- 'true': storage_class, text
10. deal_embeddings.requires_validation <- -1: boolean_value, integer
11. references.technologies <- '["drupal"' (truncated JSON): invalid_json, text
12. references.technologies <- '{"a": NaN}': invalid_json, text
13. references.highlights <- "{'a': 1}" (single quotes): invalid_json, text
14. users.name <- 'Ann\\x00Lee' (NUL byte): nul_byte, text
15. users.name <- bytes C3 28 stored as TEXT (invalid UTF-8): invalid_utf8, text
16. references.team_size <- 2**31: int4_range, integer
17. references.team_size <- -2**31 - 1: int4_range, integer
18. references.team_size <- 'five': storage_class, text
19. references.team_size <- 2.5: storage_class, real
20. users.name <- BLOB 01 02: storage_class, blob
21. deal_embeddings.embedding <- JSON of 3071 numbers: embedding_dimensions, text
22. deal_embeddings.embedding <- JSON with a string element: embedding_type, text
23. deal_embeddings.embedding <- float32 BLOB with a NaN: embedding_finite, blob
24. deal_embeddings.embedding <- JSON of 3072 zeros: embedding_zero_norm, text
25. deal_embeddings.embedding <- JSON with 1e5 (beyond half precision): embedding_half_precision_range, text
26. deal_embeddings.embedding <- '[0.1, 0.2' (invalid JSON): embedding_json, text
27. deal_embeddings.embedding <- BLOB of 5 bytes: embedding_type, blob
28. raw_chunks.embedding <- '42' (a JSON number, not an array): embedding_type, text
29. raw_chunks.embedding <- JSON text stored as a BLOB: embedding_type, blob
30. raw_chunks.embedding <- NULL (source table without NOT NULL): null_not_allowed, null
31. deal_embeddings.qualification_id <- 'no-such-qualification': missing_parent, text
32. users u2 rejected (ms timestamp), so references.ref2 and accounts.acc2 -> u2: timestamp_milliseconds on the
    user, missing_parent on both children (a rejected parent takes its children with it)
33. users.email <- an email PostgreSQL already holds for another id: unique_violation, text
34. users.name with a NUL byte and created_at in milliseconds on the same row: both problems
    reported, one row rejected
35. deal_embeddings.embedding <- JSON with 1e400 (Infinity after parsing): embedding_json, text
"""

from __future__ import annotations

import base64
import json
import sqlite3
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dealhunter_vectors.db.pool import close_pool, create_pool
from dealhunter_vectors.db.schema import legacy_schema, quote_ident
from dealhunter_vectors.errors import MigrationStoppedError
from dealhunter_vectors.legacy.database import create_legacy_schema, embedding_to_json
from dealhunter_vectors.migrate.loader import migrate_sqlite
from dealhunter_vectors.migrate.reports import MigrationReport

Factory = Callable[[], Awaitable[str]]
FACTS = {t["name"]: t for t in legacy_schema()["tables"]}
DIMS = 3072
T0 = 1_768_000_000


def vec_json(seed: int) -> str:
    v = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
    return embedding_to_json(v / np.linalg.norm(v))


def default(col: dict[str, Any]) -> Any:
    """A valid value for a NOT NULL column (nullable ones stay NULL)."""
    if col["nullable"]:
        return None
    kind = col["kind"]
    if kind == "enum":
        return col["enum"][0]
    if kind == "json":
        return "[]" if col.get("json_shape") == "array" else "{}"
    if kind == "integer":
        return 1
    if kind == "timestamp_s":
        return T0
    if kind == "boolean":
        return 0
    if kind == "embedding":
        return vec_json(0)
    return "x"


def insert(conn: sqlite3.Connection, table: str, **values: Any) -> None:
    cols = FACTS[table]["columns"]
    row = {c["name"]: values.pop(c["name"], default(c)) for c in cols}
    assert not values, values
    names = ", ".join(quote_ident(n) for n in row)
    marks = ", ".join("?" for _ in row)
    conn.execute(f"INSERT INTO {quote_ident(table)} ({names}) VALUES ({marks})", list(row.values()))


def build_base(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    create_legacy_schema(conn)
    insert(conn, "business_units", id="bu1", name="Digital", created_at=T0)
    insert(conn, "users", id="u1", email="a@x.de", name="Ann", business_unit_id="bu1", created_at=T0)
    insert(conn, "users", id="u2", email="b@x.de", name="Ben", created_at=T0 + 60)
    insert(conn, "users", id="u3", email="c@x.de", name="Cem", created_at=T0 + 120)
    insert(conn, "references", id="ref1", user_id="u1", technologies='["drupal"]', is_validated=1)
    insert(conn, "references", id="ref2", user_id="u2", technologies='["typo3"]', highlights='["fast"]')
    insert(conn, "accounts", id="acc1", user_id="u1", name="Stadt", industry="public")
    insert(conn, "accounts", id="acc2", user_id="u2", name="Land", industry="public")
    insert(conn, "pre_qualifications", id="pq1", user_id="u1", raw_input="RFP text", account_id="acc1")
    insert(conn, "qualifications", id="q1", pre_qualification_id="pq1", customer_name="Stadt", business_unit_id="bu1")
    for i in range(1, 5):
        insert(
            conn,
            "deal_embeddings",
            id=f"de{i}",
            qualification_id="q1" if i % 2 else None,
            pre_qualification_id=None if i % 2 else "pq1",
            agent_name="tech-agent",
            chunk_type="analysis",
            content=f"chunk {i}",
            embedding=vec_json(i),
            requires_validation=0,
            created_at=T0 + i,
        )
    for i in range(1, 4):
        insert(
            conn, "raw_chunks", id=f"rc{i}", pre_qualification_id="pq1", content=f"raw {i}", embedding=vec_json(10 + i)
        )
    conn.execute("COMMIT")
    conn.close()


@dataclass(frozen=True)
class Case:
    name: str
    sql: str
    params: tuple[Any, ...]
    expected: tuple[tuple[str, str, str | None, str, str], ...]
    """(table, row id, column, reason, value kind) in report order; first one stops the run."""
    rejected: int = 1
    pg_setup: str | None = None
    raw_sql: bool = False


def upd(table: str, column: str, row_id: str, value: Any, reason: str, kind: str, name: str) -> Case:
    return Case(
        name=name,
        sql=f"UPDATE {quote_ident(table)} SET {quote_ident(column)} = ? WHERE id = ?",
        params=(value, row_id),
        expected=((table, row_id, column, reason, kind),),
    )


def _blob(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


_VEC = json.loads(vec_json(99))
CASES = [
    upd("users", "created_at", "u3", 1_768_000_000_000, "timestamp_milliseconds", "integer", "ms-timestamp"),
    upd("users", "created_at", "u3", 86_400, "timestamp_out_of_range", "integer", "1970-timestamp"),
    upd("users", "created_at", "u3", -5, "timestamp_out_of_range", "integer", "negative-timestamp"),
    upd("users", "deleted_at", "u3", 5_000_000_000, "timestamp_out_of_range", "integer", "year-2128"),
    upd("users", "created_at", "u3", "18.01.2026 09:43", "timestamp_text", "text", "german-date-text"),
    upd("users", "created_at", "u3", "2026-01-18T09:43:30", "timestamp_text", "text", "iso-without-offset"),
    upd("users", "created_at", "u3", 1_768_000_000.5, "storage_class", "real", "real-timestamp"),
    upd("references", "is_validated", "ref2", 2, "boolean_value", "integer", "boolean-2"),
    upd("references", "is_validated", "ref2", "true", "storage_class", "text", "boolean-text"),
    upd("deal_embeddings", "requires_validation", "de2", -1, "boolean_value", "integer", "boolean-minus-1"),
    upd("references", "technologies", "ref2", '["drupal"', "invalid_json", "text", "truncated-json"),
    upd("references", "technologies", "ref2", '{"a": NaN}', "invalid_json", "text", "json-nan"),
    upd("references", "highlights", "ref2", "{'a': 1}", "invalid_json", "text", "json-single-quotes"),
    upd("users", "name", "u3", "Ann\x00Lee", "nul_byte", "text", "nul-byte"),
    Case(
        "invalid-utf8",
        "UPDATE users SET name = CAST(X'C328' AS TEXT) WHERE id = ?",
        ("u3",),
        (("users", "u3", "name", "invalid_utf8", "text"),),
    ),
    upd("references", "team_size", "ref2", 2**31, "int4_range", "integer", "int4-overflow"),
    upd("references", "team_size", "ref2", -(2**31) - 1, "int4_range", "integer", "int4-underflow"),
    upd("references", "team_size", "ref2", "five", "storage_class", "text", "text-in-integer"),
    upd("references", "team_size", "ref2", 2.5, "storage_class", "real", "real-in-integer"),
    upd("users", "name", "u3", b"\x01\x02", "storage_class", "blob", "blob-in-text"),
    upd("deal_embeddings", "embedding", "de2", json.dumps(_VEC[:-1]), "embedding_dimensions", "text", "dims-3071"),
    upd(
        "deal_embeddings", "embedding", "de2", json.dumps(["a", *_VEC[1:]]), "embedding_type", "text", "string-element"
    ),
    upd(
        "deal_embeddings",
        "embedding",
        "de2",
        _blob([float("nan"), *_VEC[1:]]),
        "embedding_finite",
        "blob",
        "nan-in-blob",
    ),
    upd("deal_embeddings", "embedding", "de2", json.dumps([0] * DIMS), "embedding_zero_norm", "text", "zero-vector"),
    upd(
        "deal_embeddings",
        "embedding",
        "de2",
        json.dumps([1e5, *_VEC[1:]]),
        "embedding_half_precision_range",
        "text",
        "beyond-half",
    ),
    upd("deal_embeddings", "embedding", "de2", "[0.1, 0.2", "embedding_json", "text", "embedding-bad-json"),
    upd("deal_embeddings", "embedding", "de2", b"\x01\x02\x03\x04\x05", "embedding_type", "blob", "odd-blob"),
    upd("raw_chunks", "embedding", "rc2", "42", "embedding_type", "text", "number-embedding"),
    upd("raw_chunks", "embedding", "rc2", json.dumps(_VEC).encode(), "embedding_type", "blob", "json-in-blob"),
    Case(
        "null-in-not-null",
        "",
        (),
        (("raw_chunks", "rc2", "embedding", "null_not_allowed", "null"),),
        raw_sql=True,
    ),
    upd("deal_embeddings", "qualification_id", "de3", "no-such-qualification", "missing_parent", "text", "orphan"),
    Case(
        "rejected-parent",
        "UPDATE users SET created_at = ? WHERE id = ?",
        (T0 * 1000, "u2"),
        (
            ("users", "u2", "created_at", "timestamp_milliseconds", "integer"),
            ("references", "ref2", "user_id", "missing_parent", "text"),
            ("accounts", "acc2", "user_id", "missing_parent", "text"),
        ),
        rejected=3,
    ),
    Case(
        "unique-email",
        "",
        (),
        (("users", "u3", "email", "unique_violation", "text"),),
        pg_setup="INSERT INTO users (id, email, password, name, role) VALUES ('pg-user', 'c@x.de', 'p', 'PG', 'bd')",
    ),
    Case(
        "two-problems-one-row",
        "UPDATE users SET name = ?, created_at = ? WHERE id = ?",
        ("B\x00n", T0 * 1000, "u2"),
        (
            ("users", "u2", "name", "nul_byte", "text"),
            ("users", "u2", "created_at", "timestamp_milliseconds", "integer"),
            ("references", "ref2", "user_id", "missing_parent", "text"),
            ("accounts", "acc2", "user_id", "missing_parent", "text"),
        ),
        rejected=3,  # u2, and its children ref2 and acc2
    ),
    upd("deal_embeddings", "embedding", "de2", "[1e400" + ", 0.5" * (DIMS - 1) + "]", "embedding_json", "text", "inf"),
]
assert len({c.name for c in CASES}) == len(CASES) >= 25


def _apply(case: Case, path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        if case.raw_sql:  # raw_chunks without its NOT NULL constraint, one NULL embedding
            rows = conn.execute("SELECT * FROM raw_chunks").fetchall()
            ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'raw_chunks'").fetchone()[0]
            conn.execute("DROP TABLE raw_chunks")
            conn.execute(ddl.replace("`embedding` text NOT NULL", "`embedding` text"))
            conn.executemany(f"INSERT INTO raw_chunks VALUES ({', '.join('?' * len(rows[0]))})", rows)
            conn.execute("UPDATE raw_chunks SET embedding = NULL WHERE id = 'rc2'")
        elif case.sql:
            conn.execute(case.sql, case.params)
    finally:
        conn.close()


def _key(p: Any) -> tuple[str, str, str | None, str, str]:
    return (p.table, p.row_id, p.column, p.reason, p.value_kind)


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad") / "base.db"
    build_base(path)
    return path


def _counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {quote_ident(t)}").fetchone()[0] for t in FACTS}
    finally:
        conn.close()


async def test_base_database_is_clean(base_db: Path, dhv_database_factory: Factory) -> None:
    report = await migrate_sqlite(base_db, await dhv_database_factory(), workers=0)
    assert report.ok and report.inserted == sum(_counts(base_db).values())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_bad_input(case: Case, base_db: Path, tmp_path: Path, dhv_database_factory: Factory) -> None:
    src = tmp_path / "source.db"
    src.write_bytes(base_db.read_bytes())
    _apply(case, src)
    source_bytes = src.read_bytes()
    url = await dhv_database_factory()
    pool = await create_pool(url, min_size=1, max_size=1)
    workers = 2 if case.expected[0][0] in ("deal_embeddings", "raw_chunks") else 0  # exercise both paths
    try:
        if case.pg_setup:
            await pool.execute(case.pg_setup)
        before = {t: await pool.fetchval(f"SELECT count(*) FROM {quote_ident(t)}") for t in FACTS}

        # --- stop: the first problem stops the run, naming table / id / column / reason / kind
        stop_rejects = tmp_path / "stop.jsonl"
        with pytest.raises(MigrationStoppedError) as info:
            await migrate_sqlite(src, pool, on_error="stop", reject_file=stop_rejects, workers=workers)
        exc = info.value
        first = case.expected[0]
        assert _key(exc.problems[0]) == first
        assert first[1] in str(exc) and first[3] in str(exc) and (first[2] or "") in str(exc)
        report = exc.report
        assert isinstance(report, MigrationReport) and report.status == "stopped" and not report.ok
        stopped_table = next(t for t in report.tables if t.table == first[0])
        assert not stopped_table.completed
        assert await pool.fetchval(f"SELECT count(*) FROM {quote_ident(first[0])} WHERE id = $1", first[1]) == 0
        stop_lines = [json.loads(x) for x in stop_rejects.read_text().splitlines()]
        assert [(x["table"], x["id"]) for x in stop_lines] == [(first[0], first[1])]

        # --- skip on the same database: resumes, loads every good row, reports every problem
        skip_rejects = tmp_path / "skip.jsonl"
        report = await migrate_sqlite(src, pool, on_error="skip", reject_file=skip_rejects, workers=workers)
        assert report.status == "completed" and not report.ok
        assert [_key(p) for p in report.problems] == list(case.expected)
        assert report.problem_count == len(case.expected)
        assert report.rejected == case.rejected
        rejected_ids = {(e[0], e[1]) for e in case.expected}
        source = _counts(src)
        for t in report.tables:
            assert t.accounted == t.source_rows and t.completed
            bad_here = sum(1 for r in rejected_ids if r[0] == t.table)
            assert t.rejected == bad_here
            n = await pool.fetchval(f"SELECT count(*) FROM {quote_ident(t.table)}")
            assert n == before[t.table] + source[t.table] - bad_here, t.table
        for table, row_id in rejected_ids:
            assert await pool.fetchval(f"SELECT count(*) FROM {quote_ident(table)} WHERE id = $1", row_id) == 0
        lines = [json.loads(x) for x in skip_rejects.read_text().splitlines()]
        assert sorted((x["table"], x["id"]) for x in lines) == sorted(rejected_ids)
        for line in lines:  # enough to fix and re-load: every source column is there
            assert set(line["row"]) == {c["name"] for c in FACTS[line["table"]]["columns"]}
            assert line["row"]["id"] == line["id"]
            for p in line["problems"]:
                assert (line["table"], line["id"], p["column"], p["reason"], p["value_kind"]) in case.expected
        col = first[2]
        if case.sql.startswith("UPDATE") and len(case.params) == 2 and col is not None:
            stored = next(x for x in lines if x["id"] == first[1])["row"][col]
            value = case.params[0]
            if isinstance(value, bytes):
                assert base64.b64decode(stored["$blob_base64"]) == value
            else:
                assert stored == value
        assert src.read_bytes() == source_bytes
    finally:
        await close_pool(pool)
