"""Benchmark data: clustered embedding-like vectors, legacy SQLite files, PostgreSQL tables.

How the data is generated
-------------------------
* **Vectors** come from :mod:`dealhunter_vectors.synthetic` (``make_embedding_space`` /
  ``clustered_embeddings``): unit float32 3072-d vectors drawn around 64 cluster centres
  on the sphere, with a decaying per-dimension spectrum (``s_j ~ j**-0.35``, about 390
  effective dimensions), a common offset direction shared by all centres (unrelated texts
  still have cosine ~0.1), members at cosine ~0.8 to their centre and ~0.64 to each other.
  This is the geometry of real text embeddings (topics, anisotropy), not i.i.d. noise, and
  it is the harder case for graph indexes.
* **Owner-scoped data set** (``deal_embeddings``): ``owner_qualifications`` qualifications,
  1,000 chunks each (5 % screenshot chunks without embedding, as in the app). A
  qualification's chunks come 70 % from its primary topic cluster and 30 % from random
  clusters. Queries are drawn at cosine 0.8 to the owner's primary centre. The chunks of
  the first ``legacy_owner_qualifications`` qualifications are also written to a legacy
  SQLite file exactly as the old app wrote them (``legacy_db.create_legacy_schema``,
  ``embedding_to_json`` = ``JSON.stringify``), with the *same* ids and vectors, so the old
  path, the numpy path and PostgreSQL score identical data. The legacy file holds only
  the queried qualifications (the old app's query reads one qualification through an
  index, so the other 99 % of rows would only cost disk, ~63 KB of JSON each).
* **Global data set** (``pre_qualifications.description_embedding``):
  ``clustered_embeddings(N, n_clusters=64, seed=1)``; the 1k/10k tables are prefixes of
  the largest one. Queries are "re-submitted deals": ``query_near(row, noise)`` of random
  stored rows with noise 0.3-0.9 (cosine ~0.96-0.74 to the original), so a query has a
  clear nearest neighbour plus its topic cluster around it.
* **Migration data set**: ``legacy_db.build_legacy_database`` (all 29 tables, Drizzle
  conventions, JSON embeddings), sized by the scale.

PostgreSQL tables are loaded with binary COPY of float32 arrays into databases named
``dhv_bench_<kind>_<scale>_<fingerprint>`` that are kept between runs (a ``bench_meta``
row marks a completed build); numpy matrices are cached as ``.npy`` under
``.benchmarks/data/``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from numpy.typing import NDArray

from dealhunter_vectors.db.schema import apply_schema, migrations, quote_ident, vector_index_statements
from dealhunter_vectors.legacy.database import (
    LegacyDatasetSpec,
    create_legacy_schema,
    embedding_to_json,
    js_json_dumps,
)
from dealhunter_vectors.legacy.synthetic import (
    EmbeddingSpace,
    TextGenerator,
    clustered_embeddings,
    make_embedding_space,
    query_near,
    query_with_cosine,
    topic_for_cluster,
)
from dealhunter_vectors.testing import with_database
from dealhunter_vectors.writes.records import DEAL_EMBEDDING_COLUMNS

DIMS = 3072
ROWS_PER_QUALIFICATION = 1000
N_CLUSTERS = 64
DATA_VERSION = 3  # bump when the generation below changes: cached databases/files are rebuilt

# Server settings used for every HNSW build (and reported in docs/benchmarks.md).
INDEX_BUILD_SETTINGS: dict[str, str] = {
    "maintenance_work_mem": "2GB",
    "max_parallel_maintenance_workers": "1",  # + the leader = both cores
}


def _library_hnsw_parameters() -> tuple[int, int]:
    """m and ef_construction of the library's own index definition (the newest migration)."""
    statement = vector_index_statements()[0]
    m = re.search(r"\bm\s*=\s*(\d+)", statement)
    ef = re.search(r"ef_construction\s*=\s*(\d+)", statement)
    assert m and ef, statement
    return int(m[1]), int(ef[1])


HNSW_M, HNSW_EF_CONSTRUCTION = _library_hnsw_parameters()
"""The library's HNSW parameters: the data sets are indexed exactly as the library indexes."""


def library_index_sql(index_name: str) -> str:
    """The library's CREATE INDEX statement for one of its vector indexes."""
    return next(s for s in vector_index_statements() if f'"{index_name}"' in s)


@dataclass(frozen=True)
class Scale:
    """Sizes of one benchmark scale."""

    name: str
    owner_qualifications: int
    legacy_owner_qualifications: int
    global_rows: tuple[int, ...]
    legacy_global_rows: tuple[int, ...]
    """Sizes for which the literal old duplicate check is measured (it is O(rows) JSON parsing)."""
    index_build_rows: int
    migration_spec: LegacyDatasetSpec = field(repr=False)
    search_rounds: int = 200
    slow_rounds: int = 5
    queries: int = 50
    concurrency: tuple[int, ...] = (1, 8, 32, 128)
    concurrency_batches: int = 5
    migration_rounds: int = 2

    @property
    def owner_rows(self) -> int:
        return self.owner_qualifications * ROWS_PER_QUALIFICATION


def _migration_spec(scale: str) -> LegacyDatasetSpec:
    if scale == "small":
        return LegacyDatasetSpec(
            business_units=3,
            users=8,
            accounts=6,
            pre_qualifications=12,
            qualifications=6,
            deal_embeddings_per_qualification=150,
            deal_embeddings_per_pre_qualification=40,
            raw_chunks_per_pre_qualification=60,
            catalogue_rows=6,
            n_clusters=32,
            seed=11,
        )
    return LegacyDatasetSpec(
        business_units=4,
        users=20,
        accounts=20,
        pre_qualifications=40,
        qualifications=20,
        deal_embeddings_per_qualification=250,
        deal_embeddings_per_pre_qualification=50,
        raw_chunks_per_pre_qualification=75,
        catalogue_rows=10,
        n_clusters=48,
        seed=11,
    )


SCALES: dict[str, Scale] = {
    "small": Scale(
        name="small",
        owner_qualifications=10,
        legacy_owner_qualifications=3,
        global_rows=(1_000, 10_000),
        legacy_global_rows=(1_000,),
        index_build_rows=10_000,
        migration_spec=_migration_spec("small"),
        search_rounds=100,
        slow_rounds=3,
        queries=30,
        concurrency_batches=3,
        migration_rounds=1,
    ),
    "full": Scale(
        name="full",
        owner_qualifications=100,
        legacy_owner_qualifications=5,
        global_rows=(1_000, 10_000, 100_000),
        legacy_global_rows=(1_000, 10_000),
        index_build_rows=10_000,
        migration_spec=_migration_spec("full"),
        search_rounds=300,
        slow_rounds=3,
        queries=100,
        concurrency_batches=5,
        migration_rounds=1,
    ),
}


def fingerprint(*parts: object) -> str:
    """Short stable hash of the generation parameters (part of cache names)."""
    items = [asdict(p) if is_dataclass(p) and not isinstance(p, type) else p for p in parts]
    # The schema's migrations are part of the key: a schema change rebuilds the cached databases.
    schema = [m.checksum for m in migrations()]
    text = json.dumps([DATA_VERSION, schema, *items], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# ------------------------------------------------------------------------ helpers

_T0 = 1_760_000_000  # 2025-10-09, Unix seconds (the legacy convention)
_AGENTS = ("tech-expert", "legal-expert", "commercial-expert", "migration-expert", "ux-expert", "website-expert")
_CHUNK_TYPES = ("analysis", "summary", "recommendation", "finding", "risk", "requirement", "tech_stack")
_CATEGORIES = ("fact", "elaboration", "recommendation", "risk", "estimate")


def _rng(*entropy: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(entropy))))


def _ts(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def owner_space() -> EmbeddingSpace:
    """The embedding space of the owner-scoped data set."""
    return make_embedding_space(dims=DIMS, n_clusters=N_CLUSTERS, seed=7)


def qualification_id(i: int) -> str:
    return f"bq{i:05d}"


def pre_qualification_id(i: int) -> str:
    return f"bp{i:06d}"


@dataclass(frozen=True, eq=False)
class OwnerChunks:
    """The 1,000 deal_embeddings rows of one qualification, in legacy (SQLite) form + vectors."""

    qualification_id: str
    primary_cluster: int
    rows: list[dict[str, Any]]
    """Column -> SQLite value (timestamps as seconds, booleans 0/1, JSON text), no embedding."""
    vectors: NDArray[np.float32]
    """One row per entry of ``rows``; NaN rows for screenshot chunks (NULL embedding)."""
    has_embedding: NDArray[np.bool_]


def owner_chunks(i: int, space: EmbeddingSpace | None = None) -> OwnerChunks:
    """Deterministic chunks of qualification ``i`` (see the module docstring)."""
    space = space or owner_space()
    rng = _rng(7, 100, i)
    primary = int(rng.integers(0, N_CLUSTERS))
    n = ROWS_PER_QUALIFICATION
    labels = np.where(rng.random(n) < 0.7, primary, rng.integers(0, N_CLUSTERS, size=n))
    has_embedding = rng.random(n) >= 0.05
    vectors = space.sample(labels, seed=(100, i))
    vectors[~has_embedding] = np.nan
    text = TextGenerator(seed=i)
    q_id = qualification_id(i)
    rows: list[dict[str, Any]] = []
    counters: dict[tuple[str, str], int] = {}
    for k in range(n):
        agent = _AGENTS[int(rng.integers(0, len(_AGENTS)))]
        chunk_type = _CHUNK_TYPES[int(rng.integers(0, len(_CHUNK_TYPES)))] if has_embedding[k] else "screenshot"
        idx = counters.get((agent, chunk_type), 0)
        counters[(agent, chunk_type)] = idx + 1
        topic = topic_for_cluster(int(labels[k]))
        created = _T0 + i * 3600 + k
        validated = bool(rng.random() < 0.35)
        rows.append(
            {
                "id": f"{q_id}c{k:04d}",
                "pre_qualification_id": None,
                "qualification_id": q_id,
                "agent_name": agent,
                "chunk_type": chunk_type,
                "chunk_index": idx,
                "content": text.agent_chunk(topic, agent),
                "metadata": js_json_dumps({"agent": agent, "cms": topic.tech.name, "language": "de"}),
                "chunk_category": _CATEGORIES[int(rng.integers(0, len(_CATEGORIES)))],
                "confidence": int(rng.integers(0, 101)),
                "requires_validation": 0,
                "validated_at": created + 600 if validated else None,
                "validated_by": None,
                "created_at": created,
                "updated_at": created,
            }
        )
    return OwnerChunks(q_id, primary, rows, vectors, has_embedding)


def owner_queries(scale: Scale, space: EmbeddingSpace | None = None) -> list[tuple[str, NDArray[np.float32]]]:
    """(qualification id, query) pairs over the legacy-backed qualifications, cosine 0.8 to the topic."""
    space = space or owner_space()
    rng = _rng(7, 200)
    out = []
    for j in range(scale.queries):
        i = j % scale.legacy_owner_qualifications
        primary = int(_rng(7, 100, i).integers(0, N_CLUSTERS))
        out.append((qualification_id(i), query_with_cosine(space.centres[primary], 0.8, rng)))
    return out


def owner_queries_all(scale: Scale, count: int) -> list[tuple[str, NDArray[np.float32]]]:
    """(qualification id, query) pairs spread over *all* qualifications (concurrency benchmark)."""
    space = owner_space()
    rng = _rng(7, 201)
    out = []
    for _ in range(count):
        i = int(rng.integers(0, scale.owner_qualifications))
        primary = int(_rng(7, 100, i).integers(0, N_CLUSTERS))
        out.append((qualification_id(i), query_with_cosine(space.centres[primary], 0.8, rng)))
    return out


def global_vectors(n: int, cache_dir: Path) -> NDArray[np.float32]:
    """The first ``n`` rows of the global data set (cached as .npy, memory-mapped)."""
    path = cache_dir / f"global_{fingerprint('global', n)}_{n}.npy"
    if not path.exists():
        vectors = clustered_embeddings(n, dims=DIMS, n_clusters=N_CLUSTERS, seed=1)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.rename(path)
    loaded: NDArray[np.float32] = np.load(path, mmap_mode="r")
    return loaded


def global_queries(vectors: NDArray[np.float32], count: int) -> NDArray[np.float32]:
    """Near-duplicate queries: random stored rows plus noise (cosine ~0.74-0.96)."""
    rng = _rng(1, 300)
    rows = rng.integers(0, vectors.shape[0], size=count)
    noise = rng.uniform(0.3, 0.9, size=count)
    return np.stack([query_near(vectors[r], rng, float(s)) for r, s in zip(rows, noise, strict=True)])


def exact_top_k(matrix: NDArray[np.float32], queries: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """Exact top-k row indices by cosine (float64 scoring; rows and queries are unit vectors)."""
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    q64 = queries.astype(np.float64)
    norms = np.zeros(matrix.shape[0])
    for lo in range(0, matrix.shape[0], 20_000):
        block = np.asarray(matrix[lo : lo + 20_000], dtype=np.float64)
        norms[lo : lo + block.shape[0]] = np.linalg.norm(block, axis=1)
    sims = np.empty((queries.shape[0], matrix.shape[0]))
    for lo in range(0, matrix.shape[0], 20_000):
        block = np.asarray(matrix[lo : lo + 20_000], dtype=np.float64)
        sims[:, lo : lo + block.shape[0]] = (q64 @ block.T) / norms[lo : lo + block.shape[0]]
    sims /= np.linalg.norm(q64, axis=1)[:, None]
    for r in range(queries.shape[0]):
        top = np.argpartition(-sims[r], k)[:k]
        out[r] = top[np.lexsort((top, -sims[r, top]))]
    return out


# ------------------------------------------------------------------ legacy SQLite


def _legacy_connect(path: Path) -> sqlite3.Connection:
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    create_legacy_schema(conn)
    conn.execute(
        'INSERT INTO "business_units" ("id", "name", "leader_name", "leader_email", "keywords", "created_at",'
        ' "updated_at") VALUES (?, ?, ?, ?, ?, ?, ?)',
        ("bbu0", "Digital Experience", "Anna Schmidt", "anna@example.com", '["cms"]', _T0, _T0),
    )
    conn.execute(
        'INSERT INTO "users" ("id", "email", "password", "name", "role", "business_unit_id", "created_at")'
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("buser0", "bench@example.com", "x", "Bench User", "bd", "bbu0", _T0),
    )
    return conn


def _legacy_finish(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    path.with_suffix(".building").rename(path)


def _legacy_pre_qualification(pq_id: str, created: int, embedding: str | None) -> dict[str, Any]:
    return {
        "id": pq_id,
        "user_id": "buser0",
        "source": "reactive",
        "stage": "pre_qualification",
        "input_type": "freetext",
        "raw_input": f"Ausschreibung {pq_id}",
        "extracted_requirements": '{"technologies":["Drupal"]}',
        "status": "draft",
        "decision": "pending",
        "description_embedding": embedding,
        "version": 1,
        "created_at": created,
        "updated_at": created,
    }


def _insert(conn: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    sql = (
        f"INSERT INTO {quote_ident(table)} ({', '.join(quote_ident(c) for c in cols)})"
        f" VALUES ({', '.join('?' for _ in cols)})"
    )
    conn.executemany(sql, [tuple(r[c] for c in cols) for r in rows])


def build_owner_legacy_file(scale: Scale, path: Path) -> Path:
    """Legacy SQLite with the queried qualifications' chunks (JSON embeddings), built once."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _legacy_connect(path)
    space = owner_space()
    for i in range(scale.legacy_owner_qualifications):
        chunks = owner_chunks(i, space)
        pq = pre_qualification_id(i)
        _insert(conn, "pre_qualifications", [_legacy_pre_qualification(pq, _T0, None)])
        _insert(
            conn,
            "qualifications",
            [
                {
                    "id": chunks.qualification_id,
                    "pre_qualification_id": pq,
                    "status": "routed",
                    "customer_name": f"Kunde {i}",
                    "business_unit_id": "bbu0",
                    "more_info_requested": 0,
                    "deep_scan_status": "pending",
                    "created_at": _T0,
                    "updated_at": _T0,
                }
            ],
        )
        rows = []
        for k, row in enumerate(chunks.rows):
            emb = embedding_to_json(chunks.vectors[k]) if chunks.has_embedding[k] else None
            rows.append({**row, "embedding": emb})
        _insert(conn, "deal_embeddings", rows)
    _legacy_finish(conn, path)
    return path


def build_global_legacy_file(vectors: NDArray[np.float32], path: Path) -> Path:
    """Legacy SQLite whose pre_qualifications hold ``vectors`` as JSON description embeddings."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _legacy_connect(path)
    batch: list[dict[str, Any]] = []
    for r in range(vectors.shape[0]):
        batch.append(_legacy_pre_qualification(pre_qualification_id(r), _T0 + r, embedding_to_json(vectors[r])))
        if len(batch) == 1000:
            _insert(conn, "pre_qualifications", batch)
            batch = []
    _insert(conn, "pre_qualifications", batch)
    _legacy_finish(conn, path)
    return path


# --------------------------------------------------------------------- PostgreSQL

_META = """CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value jsonb NOT NULL)"""


async def database_ready(admin: asyncpg.Connection, server_url: str, name: str) -> bool:
    """True when database ``name`` exists and its build completed."""
    if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        return False
    conn = await asyncpg.connect(with_database(server_url, name))
    try:
        if not await conn.fetchval("SELECT to_regclass('bench_meta') IS NOT NULL"):
            return False
        return bool(await conn.fetchval("SELECT value = 'true'::jsonb FROM bench_meta WHERE key = 'complete'"))
    finally:
        await conn.close()


async def recreate_database(admin: asyncpg.Connection, name: str) -> None:
    await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {quote_ident(name)}")


async def set_meta(conn: asyncpg.Connection, key: str, value: object) -> None:
    await conn.execute(_META)
    await conn.execute(
        "INSERT INTO bench_meta (key, value) VALUES ($1, $2::jsonb)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        key,
        json.dumps(value),
    )


async def get_meta(conn: asyncpg.Connection) -> dict[str, Any]:
    if not await conn.fetchval("SELECT to_regclass('bench_meta') IS NOT NULL"):
        return {}
    return {r["key"]: json.loads(r["value"]) for r in await conn.fetch("SELECT key, value::text FROM bench_meta")}


async def apply_index_build_settings(conn: asyncpg.Connection) -> None:
    for name, value in INDEX_BUILD_SETTINGS.items():
        await conn.execute("SELECT set_config($1, $2, false)", name, value)


async def timed_create_index(conn: asyncpg.Connection, sql: str) -> float:
    await apply_index_build_settings(conn)
    t = time.perf_counter()
    await conn.execute(sql)
    return time.perf_counter() - t


_BU_ROW = ("bbu0", "Digital Experience", "Anna Schmidt", "anna@example.com", '["cms"]', _ts(_T0), _ts(_T0))
_USER_ROW = ("buser0", "bench@example.com", "x", "Bench User", "bd", "bbu0", _ts(_T0))
_PQ_COLUMNS = [
    "id",
    "user_id",
    "source",
    "stage",
    "input_type",
    "raw_input",
    "extracted_requirements",
    "status",
    "decision",
    "description_embedding",
    "version",
    "created_at",
    "updated_at",
]
_DEAL_COLUMNS = list(DEAL_EMBEDDING_COLUMNS)  # the legacy columns, in the writes' order


async def _parents(conn: asyncpg.Connection) -> None:
    await conn.copy_records_to_table(
        "business_units",
        records=[_BU_ROW],
        columns=["id", "name", "leader_name", "leader_email", "keywords", "created_at", "updated_at"],
    )
    await conn.copy_records_to_table(
        "users",
        records=[_USER_ROW],
        columns=["id", "email", "password", "name", "role", "business_unit_id", "created_at"],
    )


def _pq_record(pq_id: str, created: int, vector: NDArray[np.float32] | None) -> tuple[Any, ...]:
    r = _legacy_pre_qualification(pq_id, created, None)
    r["description_embedding"] = vector
    r["created_at"] = r["updated_at"] = _ts(created)
    return tuple(r[c] for c in _PQ_COLUMNS)


def _deal_records(chunks: OwnerChunks) -> Iterator[tuple[Any, ...]]:
    for k, row in enumerate(chunks.rows):
        rec = dict(row)
        rec["embedding"] = chunks.vectors[k] if chunks.has_embedding[k] else None
        rec["requires_validation"] = bool(row["requires_validation"])
        for col in ("validated_at", "created_at", "updated_at"):
            rec[col] = _ts(row[col])
        yield tuple(rec[c] for c in _DEAL_COLUMNS)


async def copy_owner(conn: asyncpg.Connection, chunks: OwnerChunks, pq: str, customer: str) -> None:
    """One qualification by binary COPY: its pre-qualification parent *pq*, the qualification
    row and its chunks (``_parents`` first)."""
    await conn.copy_records_to_table("pre_qualifications", records=[_pq_record(pq, _T0, None)], columns=_PQ_COLUMNS)
    await conn.copy_records_to_table(
        "qualifications",
        records=[(chunks.qualification_id, pq, "routed", customer, "bbu0", False, "pending", _ts(_T0), _ts(_T0))],
        columns=[
            "id",
            "pre_qualification_id",
            "status",
            "customer_name",
            "business_unit_id",
            "more_info_requested",
            "deep_scan_status",
            "created_at",
            "updated_at",
        ],
    )
    await conn.copy_records_to_table("deal_embeddings", records=list(_deal_records(chunks)), columns=_DEAL_COLUMNS)


async def load_owners(conn: asyncpg.Connection, count: int) -> float:
    """The parents and the first *count* owner-scoped qualifications (``copy_owner``); seconds taken."""
    await _parents(conn)
    space = owner_space()
    t = time.perf_counter()
    for i in range(count):
        await copy_owner(conn, owner_chunks(i, space), pre_qualification_id(i), f"Kunde {i}")
    return time.perf_counter() - t


async def build_owner_database(conn: asyncpg.Connection, scale: Scale) -> dict[str, Any]:
    """Schema + ``scale.owner_rows`` deal_embeddings (binary COPY) + HNSW indexes + ANALYZE."""
    await apply_schema(conn)
    await conn.execute('DROP INDEX IF EXISTS "deal_embeddings_embedding_hnsw_idx"')
    load_s = await load_owners(conn, scale.owner_qualifications)
    # No HNSW index on deal_embeddings since migration 006: owner-scoped searches never read one.
    await conn.execute("VACUUM (ANALYZE) deal_embeddings")
    return {"rows": scale.owner_rows, "load_seconds": load_s, "hnsw_build_seconds": 0.0}


async def build_global_database(conn: asyncpg.Connection, vectors: NDArray[np.float32]) -> dict[str, Any]:
    """Schema + one pre_qualification per vector (binary COPY) + the halfvec HNSW index."""
    await apply_schema(conn)
    await conn.execute('DROP INDEX IF EXISTS "pre_qualifications_description_embedding_hnsw_idx"')
    await _parents(conn)
    t = time.perf_counter()
    for lo in range(0, vectors.shape[0], 2000):
        block = np.asarray(vectors[lo : lo + 2000])
        await conn.copy_records_to_table(
            "pre_qualifications",
            records=[_pq_record(pre_qualification_id(lo + j), _T0 + lo + j, block[j]) for j in range(block.shape[0])],
            columns=_PQ_COLUMNS,
        )
    load_s = time.perf_counter() - t
    build_s = await timed_create_index(conn, library_index_sql("pre_qualifications_description_embedding_hnsw_idx"))
    await conn.execute("VACUUM (ANALYZE) pre_qualifications")
    return {"rows": int(vectors.shape[0]), "load_seconds": load_s, "hnsw_build_seconds": build_s}
