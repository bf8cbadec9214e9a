"""Rows the library did not write (issue 19, point 1): migration 008's norm checks.

A database that already holds embeddings outside the norm range [1e-12, 1e15] (written by
psql, a backfill, the app's TypeScript side, 0.1) is upgraded: the migration never fails,
the checks stay NOT VALID and are reported, every search skips those rows (a row of 1e-30
values otherwise scores 1.0 and ranks first), ``doctor`` lists them by table and id, new
out-of-range rows are refused by the server, and once the rows are fixed the checks validate.
Reference: numpy's float64 cosine over the rows the library would have accepted.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio

import dealhunter_vectors as dv
from dealhunter_vectors.config import with_database
from dealhunter_vectors.db.codecs import Vector
from dealhunter_vectors.db.doctor import run_doctor
from dealhunter_vectors.db.faults import statement_error
from dealhunter_vectors.db.migrations import migrations
from dealhunter_vectors.db.norms import NORM_CONSTRAINTS, norm_violation_error, validate_norm_constraints
from dealhunter_vectors.errors import InvalidEmbeddingError
from dealhunter_vectors.testing import seed_owners

DIMS = 3072
RNG = np.random.default_rng(19)
QUERY = (RNG.standard_normal(DIMS) + 0.05).astype(np.float32)  # positive sum: a 1e-30 row scores +1
assert float(QUERY.astype(np.float64).sum()) > 0


def _near(cos: float) -> np.ndarray[Any, Any]:
    """A float32 vector at cosine *cos* to QUERY."""
    q = QUERY.astype(np.float64) / np.linalg.norm(QUERY)
    r = RNG.standard_normal(DIMS)
    r -= (r @ q) * q
    r /= np.linalg.norm(r)
    return (cos * q + math.sqrt(1 - cos * cos) * r).astype(np.float32)


def _cos(v: Any) -> float:
    a, b = np.asarray(v, np.float32).astype(np.float64), QUERY.astype(np.float64)
    return float(a @ b / math.sqrt(float(a @ a) * float(b @ b)))


TINY = np.full(DIMS, 1e-30, np.float32)  # norm 5.5e-29: pgvector's float32 sum of squares is 0
SMALL = np.full(DIMS, 1e-15, np.float32)  # norm 5.5e-14 < 1e-12
HUGE = np.zeros(DIMS, np.float32)
HUGE[0], HUGE[1] = 2e15, 1.0  # norm 2e15 > 1e15 (no halfvec index on the chunk tables)
ZERO = np.zeros(DIMS, np.float32)

GOOD_DEAL = {f"deal-{i:02d}": _near(c) for i, c in enumerate(np.linspace(-0.6, 0.95, 12))}
GOOD_RAW = {f"raw-{i:02d}": _near(c) for i, c in enumerate(np.linspace(-0.5, 0.9, 8))}
GOOD_PQ = {f"pq-{i:02d}": _near(c) for i, c in enumerate(np.linspace(0.1, 0.97, 6))}
BAD_DEAL = {"bad-deal-tiny": TINY, "bad-deal-small": SMALL, "bad-deal-huge": HUGE, "bad-deal-zero": ZERO}
BAD_RAW = {"bad-raw-tiny": TINY, "bad-raw-huge": HUGE}
BAD_PQ = {"bad-pq-tiny": TINY, "bad-pq-zero": ZERO}  # huge cannot be stored: the halfvec index would overflow
QID, PQID = "q-owner", "pq-owner"
BAD_CONTENT = "Sonderposten Nachtzug"  # only the bad rows say it: the hybrid text leg finds them


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _plant(pool: dv.Pool) -> None:
    """Every row with plain SQL at schema version 7, as an older library or another writer left them
    (the library's own write paths need the later migrations' columns)."""
    await seed_owners(pool, pre_qualification_ids=[PQID, *GOOD_PQ, *BAD_PQ], qualification_ids=[QID])
    deal = [(i, 100 + n, BAD_CONTENT, v) for n, (i, v) in enumerate(BAD_DEAL.items())]
    deal += [(i, n, f"Inhalt {n}", v) for n, (i, v) in enumerate(GOOD_DEAL.items())]
    raw = [(i, 100 + n, BAD_CONTENT, v) for n, (i, v) in enumerate(BAD_RAW.items())]
    raw += [(i, n, f"Rohtext {n}", v) for n, (i, v) in enumerate(GOOD_RAW.items())]
    async with pool.acquire() as conn:
        for i, index, content, v in deal:
            await conn.execute(
                "INSERT INTO deal_embeddings (id, qualification_id, pre_qualification_id, agent_name, chunk_type,"
                " chunk_index, content, embedding) VALUES ($1, $2, $3, $4, 'text', $5, $6, $7)",
                i, QID, PQID, f"agent-{index % 3}", index, content, Vector(v),
            )  # fmt: skip
        for i, index, content, v in raw:
            await conn.execute(
                "INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
                " VALUES ($1, $2, $3, $4, 3, $5)",
                i, PQID, index, content, Vector(v),
            )  # fmt: skip
        for i, v in {**GOOD_PQ, **BAD_PQ}.items():
            await conn.execute("UPDATE pre_qualifications SET description_embedding = $2 WHERE id = $1", i, Vector(v))


@pytest_asyncio.fixture(scope="module")
async def upgraded(dhv_server_url: str) -> AsyncIterator[tuple[dv.Pool, list[int], list[logging.LogRecord]]]:
    """A database at schema version 7 holding out-of-range rows, then upgraded by apply_schema."""
    name = f"dhv_norms_{uuid.uuid4().hex[:10]}"
    await _admin(dhv_server_url, f'CREATE DATABASE "{name}"')
    pool = await dv.create_pool(with_database(dhv_server_url, name), min_size=1, max_size=4)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("dealhunter_vectors.db.norms")
    try:
        assert await dv.apply_schema(pool, target=7) == [1, 2, 3, 4, 5, 6, 7]
        await _plant(pool)
        # the hazard is real: pgvector's own cosine ranks the 1e-30 row first at 1.0
        naive = await pool.fetchrow(
            "SELECT id, 1 - (embedding <=> $2) AS s FROM deal_embeddings WHERE qualification_id = $1"
            " ORDER BY embedding <=> $2, id LIMIT 1", QID, Vector(QUERY),
        )  # fmt: skip
        assert naive is not None and (naive["id"], naive["s"]) == ("bad-deal-tiny", 1.0)
        logger.addHandler(handler)
        try:
            applied = await dv.apply_schema(pool)
        finally:
            logger.removeHandler(handler)
        yield pool, applied, records
    finally:
        await dv.close_pool(pool)
        await _admin(dhv_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _validated(pool: dv.Pool) -> dict[str, bool]:
    rows = await pool.fetch(
        "SELECT conname, convalidated FROM pg_constraint WHERE conname = ANY($1::text[])",
        [c.name for c in NORM_CONSTRAINTS],
    )
    return {r["conname"]: r["convalidated"] for r in rows}


def _expected(good: dict[str, np.ndarray[Any, Any]], threshold: float) -> list[tuple[str, float]]:
    scored = [(i, _cos(v)) for i, v in good.items()]
    return sorted([(i, s) for i, s in scored if s >= threshold], key=lambda t: (-t[1], t[0]))


def _same(hits: list[tuple[str, float | None]], expected: list[tuple[str, float]]) -> None:
    assert [h[0] for h in hits] == [e[0] for e in expected]
    for (_, got), (_, want) in zip(hits, expected, strict=True):
        assert got is not None and abs(got - want) < 1e-6


# --------------------------------------------------------------------------- the server's arithmetic


async def test_vector_norm_accumulates_in_double_precision(dhv_pool: dv.Pool) -> None:
    """The check's vector_norm cannot under- or overflow where pgvector's float32 sums do."""
    for value in (1e-30, 1e-20, 1e-7, 1.0, 1e20, 3e38):
        v = np.full(DIMS, value, np.float32)
        server = await dhv_pool.fetchval("SELECT vector_norm($1::vector)", Vector(v))
        wide = v.astype(np.float64)
        assert server == pytest.approx(math.sqrt(float(wide @ wide)), rel=1e-12)
        with np.errstate(under="ignore", over="ignore"):
            narrow = float(np.sum(v * v, dtype=np.float32))
        if value in (1e-30, 1e20, 3e38):  # where a float32 sum of squares fails
            assert narrow in (0.0, math.inf)


# --------------------------------------------------------------------------- the upgrade


async def test_upgrade_over_bad_rows_succeeds_and_reports_them(upgraded: Any) -> None:
    pool, applied, records = upgraded
    assert applied == [m.version for m in migrations() if m.version > 7]  # 008 and every later one
    state = await _validated(pool)
    assert state == {
        "deal_embeddings_embedding_norm_range": False,
        "raw_chunks_embedding_norm_range": False,
        "pre_qualifications_description_embedding_norm_range": False,
    }
    logged = " ".join(r.getMessage() for r in records if r.levelno == logging.WARNING)
    for table, ids in (("deal_embeddings", BAD_DEAL), ("raw_chunks", BAD_RAW), ("pre_qualifications", BAD_PQ)):
        assert f"of {table}." in logged
        for i in ids:
            assert i in logged


async def test_every_search_skips_out_of_range_rows(upgraded: Any) -> None:
    pool, _, _ = upgraded
    bad = {*BAD_DEAL, *BAD_RAW, *BAD_PQ}
    deal = await dv.search_deal_embeddings(pool, QUERY, qualification_id=QID, threshold=-1.0, inclusive=True, limit=50)
    _same([(h.chunk_id, h.similarity) for h in deal], _expected(GOOD_DEAL, -1.0))
    by_pq = await dv.search_deal_embeddings(pool, QUERY, pre_qualification_id=PQID, threshold=0.3, limit=50)
    _same([(h.chunk_id, h.similarity) for h in by_pq], [e for e in _expected(GOOD_DEAL, 0.3) if e[1] > 0.3])
    top_k = await dv.search_deal_embeddings(
        pool, QUERY, qualification_id=QID, threshold=0.99, limit=3, fallback_to_top_k=True
    )
    _same([(h.chunk_id, h.similarity) for h in top_k], _expected(GOOD_DEAL, -1.0)[:3])
    raw = await dv.search_raw_chunks(pool, QUERY, pre_qualification_id=PQID, threshold=-1.0, limit=50)
    _same([(h.chunk_id, h.similarity) for h in raw], [e for e in _expected(GOOD_RAW, -1.0) if e[1] > -1.0])
    similar = await dv.search_similar(pool, QUERY, qualification_id=QID, pre_qualification_id=PQID,
                                      threshold=-1.0, limit=50)  # fmt: skip
    assert not {h.id for h in similar} & bad
    assert {h.id for h in similar} == {*GOOD_DEAL, *GOOD_RAW}
    assert similar[0].similarity == pytest.approx(max(_cos(v) for v in (*GOOD_DEAL.values(), *GOOD_RAW.values())))
    many = await dv.search_many(pool, [
        dv.DealChunkSearch(query_embedding=QUERY, qualification_id=QID, threshold=-1.0, inclusive=True, limit=50),
        dv.RawChunkSearch(query_embedding=QUERY, pre_qualification_id=PQID, threshold=-1.0, limit=50),
    ])  # fmt: skip
    assert [h.chunk_id for h in many[0]] == [h.chunk_id for h in deal]
    assert [h.chunk_id for h in many[1]] == [h.chunk_id for h in raw]
    mmr = await dv.search_deal_embeddings(pool, QUERY, qualification_id=QID, threshold=-1.0, limit=5, mmr_lambda=0.5)
    assert len(mmr) == 5 and not {h.chunk_id for h in mmr} & bad
    for kwargs in ({"limit": None}, {"limit": 4}, {"limit": 4, "exact": True}):
        found = await dv.find_similar_pre_qualifications(pool, QUERY, min_similarity_percent=0, **kwargs)
        expected = _expected(GOOD_PQ, -1.0)[: kwargs["limit"]]
        _same([(m.pre_qualification_id, m.similarity) for m in found], expected)


async def test_hybrid_vector_leg_skips_them_and_the_text_leg_finds_them_without_similarity(upgraded: Any) -> None:
    pool, _, _ = upgraded
    vector_only = await dv.hybrid_search_deal_embeddings(pool, None, QUERY, qualification_id=QID, limit=20)
    _same([(h.chunk_id, h.similarity) for h in vector_only], _expected(GOOD_DEAL, -1.0)[:20])
    both = await dv.hybrid_search_deal_embeddings(pool, "Nachtzug", QUERY, qualification_id=QID, limit=30)
    by_id = {h.chunk_id: h for h in both}
    for i in BAD_DEAL:  # found by their text only: no vector rank, no similarity
        assert by_id[i].vector_rank is None and by_id[i].similarity is None and by_id[i].text_rank is not None
    raw = await dv.hybrid_search_raw_chunks(pool, "Nachtzug", QUERY, pre_qualification_id=PQID, limit=30)
    raw_by_id = {h.chunk_id: h for h in raw}
    assert set(BAD_RAW) <= set(raw_by_id)
    assert all(raw_by_id[i].similarity is None and raw_by_id[i].vector_rank is None for i in BAD_RAW)
    for i in GOOD_RAW:
        assert raw_by_id[i].similarity == pytest.approx(_cos(GOOD_RAW[i]), abs=1e-6)
    diversified = await dv.hybrid_search_deal_embeddings(
        pool, "Nachtzug", QUERY, qualification_id=QID, limit=8, mmr_lambda=0.3
    )
    assert len(diversified) == 8  # the pairwise step treats the bad rows as rows without an embedding


async def test_listing_keeps_them_unranked(upgraded: Any) -> None:
    """The listing has no similarity: it shows every row of the owner, as for rows without an embedding."""
    pool, _, _ = upgraded
    listed = await dv.list_deal_chunks(pool, qualification_id=QID)
    assert {h.chunk_id for h in listed} == {*GOOD_DEAL, *BAD_DEAL}
    assert all(h.similarity is None for h in listed)


async def test_doctor_lists_them_by_table_and_id(upgraded: Any) -> None:
    pool, _, _ = upgraded
    async with pool.acquire() as conn:
        report = await run_doctor(conn)
    assert not report.healthy
    rows = {c.name: c for c in report.checks}
    for table, ids in (("deal_embeddings", BAD_DEAL), ("raw_chunks", BAD_RAW), ("pre_qualifications", BAD_PQ)):
        check = rows[f"embedding norms {table}"]
        assert check.status == "fail" and check.fix is not None and "schema validate" in check.fix
        assert f"{len(ids)} row(s) of {table}." in check.detail
        for i in ids:
            assert i in check.detail


async def test_the_server_refuses_new_out_of_range_rows(upgraded: Any) -> None:
    """NOT VALID still checks every new or updated row; the library's own error is typed."""
    pool, _, _ = upgraded
    with pytest.raises(asyncpg.CheckViolationError) as info:  # a plain SQL writer meets the server's check
        await pool.execute("UPDATE deal_embeddings SET embedding = $2 WHERE id = $1", "deal-00", Vector(TINY))
    typed = norm_violation_error(info.value)
    assert isinstance(typed, InvalidEmbeddingError) and typed.rule == "norm_range"
    assert typed.where == "deal_embeddings column=embedding" and "deal_embeddings_embedding_norm_range" in str(typed)
    assert isinstance(statement_error(info.value, "insert_deal_chunks"), InvalidEmbeddingError)
    updates = (
        ("raw_chunks", "embedding", "raw-00", HUGE),
        ("pre_qualifications", "description_embedding", "pq-00", TINY),
    )
    for table, column, row, vector in updates:
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await pool.execute(f'UPDATE "{table}" SET "{column}" = $2 WHERE id = $1', row, Vector(vector))
        named = norm_violation_error(refused.value)
        assert named is not None and named.where == f"{table} column={column}"
    with pytest.raises(InvalidEmbeddingError) as lib:  # the library refuses it before the server sees it
        await dv.set_description_embedding(pool, "pq-00", TINY)
    assert lib.value.rule == "norm_range" and "pre_qualifications" in str(lib.value)
    other = asyncpg.CheckViolationError("another check")
    assert norm_violation_error(other) is None and norm_violation_error(ValueError("x")) is None


async def test_fixing_the_rows_lets_the_checks_validate(upgraded: Any) -> None:
    pool, _, _ = upgraded  # runs last in this module: it repairs the database
    async with pool.acquire() as conn:
        assert {f.table for f in await validate_norm_constraints(conn)} == {
            "deal_embeddings", "raw_chunks", "pre_qualifications"
        }  # fmt: skip
        await conn.execute("DELETE FROM deal_embeddings WHERE id = ANY($1::text[])", list(BAD_DEAL))
        await conn.execute("UPDATE raw_chunks SET embedding = $2 WHERE id = ANY($1::text[])", list(BAD_RAW),
                           Vector(_near(0.2)))  # fmt: skip
        await conn.execute("UPDATE pre_qualifications SET description_embedding = NULL WHERE id = ANY($1::text[])",
                           list(BAD_PQ))  # fmt: skip
        assert await validate_norm_constraints(conn) == []
        report = await run_doctor(conn)
    assert set((await _validated(pool)).values()) == {True}
    norms = [c for c in report.checks if c.name.startswith("embedding norms")]
    assert [(c.name, c.status) for c in norms] == [("embedding norms", "ok")]


# --------------------------------------------------------------------------- a new database, NaN and Infinity


async def test_a_new_schema_has_validated_checks(dhv_pool: dv.Pool) -> None:
    assert set((await _validated(dhv_pool)).values()) == {True}
    assert len(await _validated(dhv_pool)) == 3
    async with dhv_pool.acquire() as conn:
        report = await run_doctor(conn)
    assert next(c for c in report.checks if c.name == "embedding norms").status == "ok"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_nan_and_infinity_cannot_be_stored_and_the_library_names_the_row(dhv_pool: dv.Pool, bad: float) -> None:
    """pgvector refuses NaN/Infinity at input (text and binary), so no search can meet one;
    the library refuses them before any SQL, naming table, row and column."""
    await seed_owners(dhv_pool, qualification_ids=["q-nan"])
    text = "[" + ",".join(["1"] * (DIMS - 1) + [repr(bad).replace("inf", "Infinity").replace("nan", "NaN")]) + "]"
    with pytest.raises(asyncpg.DataError, match="not allowed in vector"):
        await dhv_pool.fetchval("SELECT $1::text::vector", text)  # the text input function
    v = np.ones(DIMS, np.float32)
    v[7] = bad
    with pytest.raises(asyncpg.DataError, match="not allowed in vector"):
        await dhv_pool.execute(
            "INSERT INTO deal_embeddings (id, qualification_id, agent_name, chunk_type, content, embedding)"
            " VALUES ('nan-row', 'q-nan', 'a', 'text', 'c', $1)", Vector(v),
        )  # fmt: skip
    chunk = dv.DealChunk(id="nan-row", qualification_id="q-nan", agent_name="a", chunk_type="text", content="c",
                         embedding=v)  # fmt: skip
    with pytest.raises(InvalidEmbeddingError) as info:
        await dv.insert_deal_chunks(dhv_pool, [chunk])
    assert info.value.rule == "finite" and info.value.where == "deal_embeddings id=nan-row column=embedding"
    with pytest.raises(InvalidEmbeddingError) as raw:
        await dv.replace_raw_chunks(dhv_pool, "pq-base", [dv.RawChunk(id="r", chunk_index=0, content="c",
                                                                       token_count=1, embedding=v)])  # fmt: skip
    assert raw.value.rule == "finite" and "raw_chunks" in str(raw.value) and "embedding" in str(raw.value)
    with pytest.raises(InvalidEmbeddingError) as query:
        await dv.search_deal_embeddings(dhv_pool, v, qualification_id="q-nan")
    assert query.value.rule == "finite" and query.value.where == "query_embedding"
