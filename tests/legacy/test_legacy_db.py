"""Tests for dealhunter_vectors.legacy_db and dealhunter_vectors.synthetic (no PostgreSQL).

Checks are independent of the code under test where possible: the schema JSON is read
straight from the file with the stdlib, the database is inspected through SQLite's
own PRAGMAs, JSON is parsed with the stdlib ``json`` module and the JavaScript number
formats are hard-coded from what V8/SpiderMonkey print.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dealhunter_vectors.legacy.database import (
    LegacyDatabaseSummary,
    LegacyDatasetSpec,
    build_legacy_database,
    create_legacy_schema,
    embedding_to_json,
    js_json_dumps,
    js_number,
    load_legacy_schema,
    quote_identifier,
    to_sqlite_boolean,
    to_sqlite_timestamp,
)
from dealhunter_vectors.legacy.synthetic import (
    TextGenerator,
    clustered_embeddings,
    clustered_embeddings_with_labels,
    make_embedding_space,
    query_near,
    query_with_cosine,
    topic_for_cluster,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "dealhunter_vectors" / "data" / "sqlite_schema.json"
RAW_SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
TABLES: dict[str, dict[str, Any]] = {t["name"]: t for t in RAW_SCHEMA["tables"]}
TS_MIN, TS_MAX = 1_700_000_000, 1_800_000_000  # 2023-11 .. 2027-01, in seconds


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def columns_of(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(t["name"], c) for t in RAW_SCHEMA["tables"] for c in t["columns"] if c["kind"] == kind]


def f32_bits(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


# ------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LegacyDatabaseSummary, sqlite3.Connection]]:
    path = tmp_path_factory.mktemp("legacy") / "tiny.db"
    summary = build_legacy_database(path, LegacyDatasetSpec.tiny())
    conn = sqlite3.connect(path)
    yield summary, conn
    conn.close()


SMALL_SPEC = LegacyDatasetSpec(
    pre_qualifications=8,
    qualifications=5,
    deal_embeddings_per_qualification=40,
    deal_embeddings_per_pre_qualification=20,
    raw_chunks_per_pre_qualification=25,
    near_duplicate_fraction=0.25,
    orphan_deal_embeddings=2,
    dims=64,
    n_clusters=12,
    seed=7,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LegacyDatabaseSummary, sqlite3.Connection]]:
    path = tmp_path_factory.mktemp("legacy") / "small.db"
    summary = build_legacy_database(path, SMALL_SPEC)
    conn = sqlite3.connect(path)
    yield summary, conn
    conn.close()


# --------------------------------------------------------------------------- schema


def test_schema_file_facts() -> None:
    assert len(RAW_SCHEMA["tables"]) == 29
    assert sum(len(t["columns"]) for t in RAW_SCHEMA["tables"]) == 452
    schema = load_legacy_schema()
    assert schema.insert_order == tuple(RAW_SCHEMA["insert_order"])
    assert [c.name for c in schema.table("deal_embeddings").columns] == [
        c["name"] for c in TABLES["deal_embeddings"]["columns"]
    ]


def _expected_default(col: dict[str, Any]) -> str | None:
    d: object = col["default"]
    if d is None or (isinstance(d, str) and d.startswith("app:")):
        return None
    if isinstance(d, bool):
        return "true" if d else "false"
    if isinstance(d, int):
        return str(d)
    return f"'{d}'"


def test_created_schema_matches_json_via_pragmas() -> None:
    conn = sqlite3.connect(":memory:")
    create_legacy_schema(conn)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names == set(TABLES)
    n_columns = n_fks = n_indexes = 0
    for name, table in TABLES.items():
        info = conn.execute(f"PRAGMA table_info({q(name)})").fetchall()
        # cid, name, type, notnull, dflt_value, pk
        assert [r[1] for r in info] == [c["name"] for c in table["columns"]], name
        for row, col in zip(info, table["columns"], strict=True):
            where = f"{name}.{col['name']}"
            assert row[2].lower() == col["storage"], where
            assert bool(row[3]) == (not col["nullable"]), where
            assert row[4] == _expected_default(col), where
            assert bool(row[5]) == col["primary_key"], where
        n_columns += len(info)

        fks = conn.execute(f"PRAGMA foreign_key_list({q(name)})").fetchall()
        # id, seq, table, from, to, on_update, on_delete, match
        got = {(r[3], r[2], r[4], r[6]) for r in fks}
        want = {
            (c["name"], c["references"]["table"], c["references"]["column"], c["references"]["on_delete"].upper())
            for c in table["columns"]
            if c["references"]
        }
        assert got == want, name
        assert all(r[5] == "NO ACTION" for r in fks)
        n_fks += len(fks)

        indexes = [r for r in conn.execute(f"PRAGMA index_list({q(name)})").fetchall() if r[3] == "c"]
        got_ix = {}
        for _seq, ix_name, unique, _origin, _partial in indexes:
            cols = [r[2] for r in conn.execute(f"PRAGMA index_info({q(ix_name)})").fetchall()]
            got_ix[ix_name] = (tuple(cols), bool(unique))
        want_ix = {ix["name"]: (tuple(ix["columns"]), ix["unique"]) for ix in table["indexes"]}
        assert got_ix == want_ix, name
        n_indexes += len(indexes)
    assert (n_columns, n_fks, n_indexes) == (452, 49, 65)
    assert RAW_SCHEMA["stats"]["foreign_keys"] == 49 and RAW_SCHEMA["stats"]["indexes"] == 65


def test_ddl_is_drizzle_style_and_defaults_apply() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA foreign_keys = ON")
    create_legacy_schema(conn)
    users_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'users'").fetchone()[0]
    assert "`id` text PRIMARY KEY NOT NULL" in users_sql
    assert "`role` text DEFAULT 'bd' NOT NULL" in users_sql
    # a row relying on SQL defaults: the boolean default false is stored as integer 0
    conn.execute(
        "INSERT INTO deal_embeddings (id, agent_name, chunk_type, content) VALUES ('x', 'tech-agent', 't', 'c')"
    )
    row = conn.execute(
        "SELECT chunk_index, chunk_category, confidence, requires_validation, typeof(requires_validation),"
        " created_at FROM deal_embeddings"
    ).fetchone()
    assert row == (0, "elaboration", 50, 0, "integer", None)
    # the reserved word table is usable when quoted and the FK to it is enforced
    assert conn.execute('SELECT count(*) FROM "references"').fetchone() == (0,)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
                     " VALUES ('r', 'missing', 0, 'c', 1, '[1]')")  # fmt: skip


def test_quote_identifier_rejects_injection() -> None:
    assert quote_identifier("references") == "`references`"
    for bad in ("a`b", "x; DROP TABLE users", "Users", "", "1abc"):
        with pytest.raises(ValueError):
            quote_identifier(bad)


# ---------------------------------------------------------------- js formatting

JS_STRINGS = [
    (1e-7, "1e-7"),
    (1.5e-7, "1.5e-7"),
    (-2.3e-8, "-2.3e-8"),
    (1e-6, "0.000001"),
    (0.000001234, "0.000001234"),
    (9.99e-7, "9.99e-7"),
    (123456789012345680000.0, "123456789012345680000"),
    (1e20, "100000000000000000000"),
    (1e21, "1e+21"),
    (1.5e21, "1.5e+21"),
    (0.1, "0.1"),
    (0.1 + 0.2, "0.30000000000000004"),
    (1 / 3, "0.3333333333333333"),
    (0.0, "0"),
    (-0.0, "0"),
    (1.0, "1"),
    (-1.0, "-1"),
    (100.0, "100"),
    (1.5, "1.5"),
    (-123.456, "-123.456"),
    (2.0**53, "9007199254740992"),
    (1e16, "10000000000000000"),
    (5e-324, "5e-324"),
    (1e-323, "1e-323"),
    (2.2250738585072014e-308, "2.2250738585072014e-308"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (123e-20, "1.23e-18"),
    (float(np.float32(0.1)), "0.10000000149011612"),
    (float(np.float32(-0.0123)), "-0.012299999594688416"),
    (4.35, "4.35"),
    (float("nan"), "NaN"),
    (float("inf"), "Infinity"),
    (float("-inf"), "-Infinity"),
]


@pytest.mark.parametrize(("value", "expected"), JS_STRINGS)
def test_js_number_known_outputs(value: float, expected: str) -> None:
    assert js_number(value) == expected


_JS_GRAMMAR = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?(e[+-][1-9][0-9]*)?\Z")


@settings(max_examples=600, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_js_number_round_trips_and_uses_js_layout(x: float) -> None:
    s = js_number(x)
    assert float(s) == x
    assert _JS_GRAMMAR.match(s), s
    uses_exponent = "e" in s
    assert uses_exponent == (x != 0 and (abs(x) < 1e-6 or abs(x) >= 1e21))


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.integers(1, 40),
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True),
    )
)
def test_embedding_to_json_equals_js_stringify_and_is_bit_exact(v: np.ndarray) -> None:
    text = embedding_to_json(v)
    assert text == "[" + ",".join(js_number(float(x)) for x in v.astype(np.float64)) + "]"
    parsed = json.loads(text)
    back = np.asarray(parsed, dtype=np.float32)
    canon = np.where(v == 0, np.float32(0), v)  # JSON.stringify(-0) is "0"
    assert np.array_equal(f32_bits(back), f32_bits(canon))


def test_embedding_to_json_real_vectors_and_rejects_bad_input() -> None:
    vectors = clustered_embeddings(50, dims=3072, seed=3)
    for v in vectors[:20]:
        text = embedding_to_json(v)
        assert text == "[" + ",".join(js_number(float(x)) for x in v.astype(np.float64)) + "]"
        assert np.array_equal(f32_bits(json.loads(text)), f32_bits(v))
    with pytest.raises(ValueError):
        embedding_to_json(np.array([1.0, np.nan], dtype=np.float32))
    with pytest.raises(ValueError):
        embedding_to_json(np.zeros((2, 2), dtype=np.float32))


def test_js_json_dumps_matches_json_stringify() -> None:
    assert (
        js_json_dumps({"a": [1, 2.5, None, True], "b": 'ä"\n', "c": {}})
        == '{"a":[1,2.5,null,true],"b":"ä\\"\\n","c":{}}'
    )
    # ECMAScript key order: integer-like keys ascending first, then insertion order
    assert js_json_dumps({"b": 1, "10": 2, "2": 3, "01": 4}) == '{"2":3,"10":2,"b":1,"01":4}'
    assert js_json_dumps([1e-7, 1e21, 1.0, -0.0]) == "[1e-7,1e+21,1,0]"
    assert json.loads(js_json_dumps({"x": [0.1, "€"]})) == {"x": [0.1, "€"]}
    with pytest.raises(ValueError):
        js_json_dumps([math.inf])


def test_timestamp_and_boolean_helpers() -> None:
    assert to_sqlite_timestamp(datetime(2026, 1, 18, tzinfo=UTC)) == 1_768_694_400
    assert to_sqlite_timestamp(datetime(2026, 1, 18, 0, 0, 0, 999_000)) == 1_768_694_400  # naive = UTC
    # Math.floor, not truncation, before the epoch
    assert to_sqlite_timestamp(datetime(1970, 1, 1, tzinfo=UTC) - timedelta(milliseconds=500)) == -1
    assert (to_sqlite_boolean(True), to_sqlite_boolean(False)) == (1, 0)


# ---------------------------------------------------------------- built database


def test_tiny_populates_every_table(tiny: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    summary, conn = tiny
    counts = {t: conn.execute(f"SELECT count(*) FROM {q(t)}").fetchone()[0] for t in TABLES}
    assert counts == dict(summary.row_counts)
    assert all(n >= 2 for n in counts.values()), counts
    assert list(summary.row_counts) == RAW_SCHEMA["insert_order"]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert counts["deal_embeddings"] == summary.spec.expected_deal_embeddings
    assert summary.build_seconds > 0 and summary.path.exists()


def _check_storage(conn: sqlite3.Connection) -> None:
    ids: set[str] = set()
    nulls_in_nullable = 0
    for name, table in TABLES.items():
        for col in table["columns"]:
            c = q(col["name"])
            types = {r[0] for r in conn.execute(f"SELECT DISTINCT typeof({c}) FROM {q(name)}")}
            allowed = {col["storage"]} | ({"null"} if col["nullable"] else set())
            assert types <= allowed, (name, col["name"], types)
            nulls_in_nullable += conn.execute(f"SELECT count(*) FROM {q(name)} WHERE {c} IS NULL").fetchone()[0]
        for (row_id,) in conn.execute(f"SELECT id FROM {q(name)}"):
            assert re.fullmatch(r"[a-z][a-z0-9]{23}", row_id), row_id  # cuid2 shape
            assert row_id not in ids
            ids.add(row_id)
    assert nulls_in_nullable > 0


def test_storage_classes_ids_and_nulls(small: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    _check_storage(small[1])


def test_timestamps_are_seconds(small: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    conn = small[1]
    cols = columns_of("timestamp_s")
    assert len(cols) == 77
    for table, col in cols:
        lo, hi, n = conn.execute(
            f"SELECT min({q(col['name'])}), max({q(col['name'])}), count({q(col['name'])}) FROM {q(table)}"
        ).fetchone()
        if n:
            assert TS_MIN <= lo <= hi <= TS_MAX, (table, col["name"], lo, hi)
    for table, t in TABLES.items():
        names = {c["name"] for c in t["columns"]}
        if {"created_at", "updated_at"} <= names:
            bad = conn.execute(f"SELECT count(*) FROM {q(table)} WHERE updated_at < created_at").fetchone()[0]
            assert bad == 0, table
    # app:now() columns are filled by the application, like Drizzle did
    for table, col in cols:
        if col["default"] == "app:now()":
            assert conn.execute(f"SELECT count(*) FROM {q(table)} WHERE {q(col['name'])} IS NULL").fetchone() == (0,)


def test_booleans_enums_and_json(small: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    conn = small[1]
    for table, col in columns_of("boolean"):
        values = {r[0] for r in conn.execute(f"SELECT DISTINCT {q(col['name'])} FROM {q(table)}")}
        assert values <= ({0, 1} | ({None} if col["nullable"] else set())), (table, col["name"], values)
    for table, col in columns_of("enum"):
        values = {r[0] for r in conn.execute(f"SELECT DISTINCT {q(col['name'])} FROM {q(table)}")} - {None}
        assert values <= set(col["enum"]), (table, col["name"], values)
    json_cols = columns_of("json")
    assert len(json_cols) == 94
    for table, col in json_cols:
        for (text,) in conn.execute(f"SELECT {q(col['name'])} FROM {q(table)} WHERE {q(col['name'])} IS NOT NULL"):
            value = json.loads(text)
            shape = col.get("json_shape")
            if shape == "array":
                assert isinstance(value, list), (table, col["name"])
            elif shape == "object":
                assert isinstance(value, dict), (table, col["name"])
    kinds: Counter[str] = Counter()
    for table, t in TABLES.items():
        for col in t["columns"]:
            if col.get("json_or_text"):
                for (text,) in conn.execute(
                    f"SELECT {q(col['name'])} FROM {q(table)} WHERE {q(col['name'])} IS NOT NULL"
                ):
                    try:
                        json.loads(text)
                        kinds["json"] += 1
                    except json.JSONDecodeError:
                        kinds["text"] += 1
    assert kinds["json"] > 0 and kinds["text"] > 0


def test_pointers_set_after_children(small: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    conn = small[1]
    rows = conn.execute(
        "SELECT p.id, p.quick_scan_id, qs.pre_qualification_id, p.deep_migration_analysis_id, d.pre_qualification_id"
        " FROM pre_qualifications p LEFT JOIN quick_scans qs ON qs.id = p.quick_scan_id"
        " LEFT JOIN deep_migration_analyses d ON d.id = p.deep_migration_analysis_id"
    ).fetchall()
    assert rows and all(r[1] is not None and r[2] == r[0] for r in rows)
    with_dma = [r for r in rows if r[3] is not None]
    assert with_dma and all(r[4] == r[0] for r in with_dma)
    # qualification.quick_scan_id (a real FK) points at its own pre-qualification's scan
    bad = conn.execute(
        "SELECT count(*) FROM qualifications ql JOIN quick_scans qs ON qs.id = ql.quick_scan_id"
        " WHERE qs.pre_qualification_id <> ql.pre_qualification_id"
    ).fetchone()[0]
    assert bad == 0


def _check_vectors(conn: sqlite3.Connection, summary: LegacyDatabaseSummary) -> None:
    dims = summary.spec.dims
    for (table, column), data in summary.vector_columns.items():
        stored = dict(conn.execute(f"SELECT id, {q(column)} FROM {q(table)}").fetchall())
        assert {k for k, v in stored.items() if v is not None} == set(data.ids), table
        assert {k for k, v in stored.items() if v is None} == set(data.null_ids), table
        assert data.vectors is not None and data.vectors.shape == (len(data.ids), dims)
        assert data.vectors.dtype == np.float32
        for i, row_id in enumerate(data.ids):
            values = json.loads(stored[row_id])
            assert isinstance(values, list) and len(values) == dims
            assert all(isinstance(x, int | float) and not isinstance(x, bool) for x in values)
            assert np.array_equal(f32_bits(values), f32_bits(data.vectors[i])), (table, row_id)
            assert np.array_equal(data.vector(row_id), data.vectors[i])
        norms = np.linalg.norm(data.vectors.astype(np.float64), axis=1)
        assert np.allclose(norms, 1.0, atol=1e-5)


def test_embeddings_bit_exact_tiny(tiny: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    _check_vectors(tiny[1], tiny[0])


def test_embeddings_bit_exact_small(small: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    _check_vectors(small[1], small[0])


def test_deal_embeddings_rows_look_like_the_app(small: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    summary, conn = small
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM deal_embeddings").fetchall()
    finally:
        conn.row_factory = None
    enum = set(TABLES["deal_embeddings"]["columns"][9]["enum"])
    owners: Counter[tuple[bool, bool]] = Counter()
    with_tech = 0
    for r in rows:
        owners[(r["qualification_id"] is not None, r["pre_qualification_id"] is not None)] += 1
        assert r["chunk_category"] is None or r["chunk_category"] in enum
        assert r["confidence"] is None or 0 <= r["confidence"] <= 100
        assert (r["validated_at"] is None) == (r["validated_by"] is None)
        assert (r["embedding"] is None) == (r["chunk_type"] == "screenshot")
        if r["metadata"] is not None:
            meta = json.loads(r["metadata"])
            assert isinstance(meta, dict)
            with_tech += bool({"cms", "framework"} & meta.keys())
    spec = summary.spec
    assert owners[(True, False)] == spec.qualifications * spec.deal_embeddings_per_qualification
    assert owners[(False, True)] == spec.pre_qualifications * spec.deal_embeddings_per_pre_qualification
    assert owners[(False, False)] == spec.orphan_deal_embeddings and owners[(True, True)] == 0
    assert with_tech > len(rows) // 4
    assert summary.deal_embeddings.null_ids  # screenshot chunks exist
    agents = {r["agent_name"] for r in rows}
    assert {"tech-agent", "legal-agent", "commercial-agent"} <= agents
    assert any(a.startswith("deep-scan-expert-") for a in agents)
    validated = sum(r["validated_at"] is not None for r in rows)
    assert 0 < validated < len(rows)


def test_raw_chunks_rows(small: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    conn = small[1]
    rows = conn.execute(
        "SELECT pre_qualification_id, chunk_index, token_count, metadata, content FROM raw_chunks"
        " ORDER BY pre_qualification_id, chunk_index"
    ).fetchall()
    per_pq = Counter(r[0] for r in rows)
    assert set(per_pq.values()) == {SMALL_SPEC.raw_chunks_per_pre_qualification}
    missing = 0
    for pq_id, index, tokens, meta, content in rows:
        assert 0 <= index < SMALL_SPEC.raw_chunks_per_pre_qualification and tokens > 0 and content
        if meta is None:
            missing += 1
            continue
        m = json.loads(meta)
        assert set(m) == {"startPosition", "endPosition", "type"}
        assert 0 <= m["startPosition"] < m["endPosition"]
        assert pq_id
    assert 0 < missing < len(rows) // 4


def test_clusters_follow_owners(small: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    summary = small[0]
    data = summary.deal_embeddings
    assert data.vectors is not None
    rng = np.random.default_rng(0)
    for qid in summary.qualification_ids:
        own = set(data.ids_by_owner[qid])
        query = summary.space.query_near_centre(summary.owner_clusters[qid], rng, cosine=0.85)
        sims = data.vectors @ query
        hits = {data.ids[i] for i in np.flatnonzero(sims > 0.3)}
        assert hits, qid
        # most rows above the lead-retrieval threshold are on the deal's topic (at 64-d a few
        # off-topic rows pass 0.3; at 3072-d practically none do) ...
        topic = summary.owner_clusters[qid]
        same_topic = sum(data.label(h) == topic for h in hits)
        assert same_topic / len(hits) > 0.6
        # ... nearly every on-topic row is found, and the deal's own chunks are mostly on topic
        on_topic = {i for i in data.ids if data.label(i) == topic}
        assert len(on_topic & hits) >= 0.9 * len(on_topic)
        assert len(own & hits) >= 0.4 * len(own)


def test_near_duplicates_reach_the_duplicate_threshold(
    small: tuple[LegacyDatabaseSummary, sqlite3.Connection],
) -> None:
    summary = small[0]
    desc = summary.description_embeddings
    assert summary.near_duplicates
    assert desc.null_ids  # most, not all, pre-qualifications have a description embedding
    for dup, original in summary.near_duplicates:
        cos = float(desc.vector(dup).astype(np.float64) @ desc.vector(original).astype(np.float64))
        assert round((cos + 1) / 2 * 100) >= 85
    dup_pairs = {frozenset(p) for p in summary.near_duplicates}
    others = [
        float(desc.vectors[i] @ desc.vectors[j])  # type: ignore[index]
        for i in range(len(desc))
        for j in range(i)
        if frozenset((desc.ids[i], desc.ids[j])) not in dup_pairs
    ]
    assert np.median(others) < 0.5


def test_build_is_deterministic_and_refuses_overwrite(tmp_path: Path) -> None:
    spec = LegacyDatasetSpec.tiny(seed=3)
    a = build_legacy_database(tmp_path / "a.db", spec)
    b = build_legacy_database(tmp_path / "b.db", spec)

    def dump(p: Path) -> list[str]:
        conn = sqlite3.connect(p)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()

    assert dump(a.path) == dump(b.path)
    c = build_legacy_database(tmp_path / "c.db", dataclasses.replace(spec, seed=4))
    assert dump(c.path) != dump(a.path)
    with pytest.raises(FileExistsError):
        build_legacy_database(a.path, spec)
    again = build_legacy_database(a.path, spec, overwrite=True, keep_embeddings=False)
    assert again.deal_embeddings.vectors is None and len(again.deal_embeddings) == len(a.deal_embeddings)


def test_cascades_work_with_foreign_keys_on(tiny: tuple[LegacyDatabaseSummary, sqlite3.Connection]) -> None:
    summary, disk = tiny
    conn = sqlite3.connect(":memory:")
    disk.backup(conn)
    conn.execute("PRAGMA foreign_keys = ON")
    qid = summary.qualification_ids[0]
    # children without cascade must go first (no action), then the cascade removes chunks
    for table in ("pitchdeck_team_members", "pitchdeck_deliverables"):
        conn.execute(
            f"DELETE FROM {q(table)} WHERE pitchdeck_id IN (SELECT id FROM pitchdecks WHERE qualification_id = ?)",
            (qid,),
        )
    for table in ("pitchdecks", "website_audits", "cms_match_results", "baseline_comparisons", "pt_estimations",
                  "reference_matches", "competitor_matches"):  # fmt: skip
        conn.execute(f"DELETE FROM {q(table)} WHERE qualification_id = ?", (qid,))
    assert conn.execute("SELECT count(*) FROM deal_embeddings WHERE qualification_id = ?", (qid,)).fetchone()[0] > 0
    conn.execute("DELETE FROM qualifications WHERE id = ?", (qid,))
    assert conn.execute("SELECT count(*) FROM deal_embeddings WHERE qualification_id = ?", (qid,)).fetchone() == (0,)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_spec_validation_and_presets() -> None:
    with pytest.raises(ValueError):
        LegacyDatasetSpec(qualifications=2, pre_qualifications=0)
    with pytest.raises(ValueError):
        LegacyDatasetSpec(description_embedding_fraction=1.5)
    with pytest.raises(ValueError):
        LegacyDatasetSpec(users=0)
    demo = LegacyDatasetSpec.demo()
    total = demo.expected_deal_embeddings + demo.pre_qualifications * demo.raw_chunks_per_pre_qualification
    assert 2000 <= total <= 6000 and demo.dims == 3072
    big = LegacyDatasetSpec(qualifications=100, deal_embeddings_per_qualification=1000, pre_qualifications=100)
    assert big.expected_deal_embeddings >= 100_000


# ---------------------------------------------------------------- synthetic data


def test_clustered_embeddings_unit_norm_deterministic_prefix_stable() -> None:
    a = clustered_embeddings(5000, dims=128, n_clusters=10, seed=5)
    assert a.shape == (5000, 128) and a.dtype == np.float32
    norms = np.linalg.norm(a.astype(np.float64), axis=1)
    assert np.all(norms > 0) and np.allclose(norms, 1.0, atol=1e-6)
    assert np.array_equal(a, clustered_embeddings(5000, dims=128, n_clusters=10, seed=5))
    assert np.array_equal(a[:100], clustered_embeddings(100, dims=128, n_clusters=10, seed=5))
    assert not np.array_equal(a, clustered_embeddings(5000, dims=128, n_clusters=10, seed=6))


def test_clustered_embeddings_are_clustered_not_noise() -> None:
    x, labels = clustered_embeddings_with_labels(3000, dims=512, n_clusters=12, seed=1)
    assert labels.min() >= 0 and labels.max() < 12 and len(set(labels.tolist())) == 12
    sims = x.astype(np.float64) @ x.astype(np.float64).T
    same = labels[:, None] == labels[None, :]
    off_diag = ~np.eye(len(x), dtype=bool)
    intra = sims[same & off_diag].mean()
    inter = sims[~same].mean()
    assert intra > 0.45 and inter < 0.25 and intra - inter > 0.3, (intra, inter)
    # i.i.d. Gaussian unit vectors in 512-d would have |cos| ~ 0.04; embeddings share an offset
    assert inter > 0.03
    # decaying spectrum: per-dimension variance is far from flat
    var = np.sort(x.var(axis=0))
    assert var[-10:].mean() > 4 * var[:10].mean()


def test_query_helpers() -> None:
    rng = np.random.default_rng(0)
    space = make_embedding_space(dims=256, n_clusters=4, seed=2)
    target = space.sample([1], seed=9)[0]
    for cos in (0.3, 0.5, 0.7, 0.95):
        qv = query_with_cosine(target, cos, rng)
        assert qv.dtype == np.float32
        assert abs(float(qv.astype(np.float64) @ target.astype(np.float64)) - cos) < 1e-5
    near = query_near(target, rng, noise=0.3)
    assert 0.9 < float(near @ target) < 1.0
    assert abs(np.linalg.norm(space.query_near_centre(2, rng, cosine=0.8)) - 1) < 1e-5


def test_text_generator_is_deterministic_and_topical() -> None:
    topic = topic_for_cluster(0)
    a, b = TextGenerator(11), TextGenerator(11)
    texts_a = [a.agent_chunk(topic, "tech-agent"), a.raw_chunk(topic), a.company_name()]
    texts_b = [b.agent_chunk(topic, "tech-agent"), b.raw_chunk(topic), b.company_name()]
    assert texts_a == texts_b
    assert topic.tech.name in texts_a[0] and texts_a[0].startswith("[Tech Agent]")
    assert topic_for_cluster(16).tech == topic.tech and topic_for_cluster(16).theme != topic.theme


@pytest.mark.slow
def test_demo_build_at_full_dimension(tmp_path: Path) -> None:
    summary = build_legacy_database(tmp_path / "demo.db", LegacyDatasetSpec.demo(), keep_embeddings=False)
    conn = sqlite3.connect(summary.path)
    try:
        assert min(summary.row_counts.values()) >= 2
        text = conn.execute("SELECT embedding FROM raw_chunks LIMIT 1").fetchone()[0]
        assert len(json.loads(text)) == 3072
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
