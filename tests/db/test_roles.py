"""Least privilege looks healthy (issue 19, point 5): the three roles of docs/reliability.md.

The roles and the database are created with the exact statements of docs/reliability.md,
section "Roles" (fresh names), the owner applies the schema and migrates a legacy file, and
each role then runs every public function: what its job needs succeeds, everything else
raises a typed error naming the missing privilege (never asyncpg's
``InsufficientPrivilegeError``); ``doctor --for`` judges each role for each job.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import numpy as np
import pytest
import pytest_asyncio

import dealhunter_vectors as dv
from dealhunter_vectors.config import with_database
from dealhunter_vectors.db.doctor import diagnose
from dealhunter_vectors.db.privileges import PURPOSES, grant_statements, role_capabilities
from dealhunter_vectors.db.schema import legacy_schema
from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
DIMS = 3072
RNG = np.random.default_rng(5)
QUERY = RNG.standard_normal(DIMS).astype(np.float32)
ROLES = ("owner", "writer", "reader")


def doc_blocks() -> dict[str, str]:
    """The SQL blocks of the Roles section, by their ``<!-- roles: NAME -->`` tag."""
    text = DOC.read_text(encoding="utf-8")
    return {m[1]: m[2] for m in re.finditer(r"<!-- roles: (\w+) -->\n```sql\n(.*?)```", text, re.S)}


def statements(block: str, names: dict[str, str]) -> list[str]:
    """*block*'s statements with the documented names replaced by this test's; passwords dropped
    (the embedded server trusts local connections)."""
    for old, new in names.items():
        block = re.sub(rf"\b{old}\b", new, block)
    block = re.sub(r" PASSWORD '[^']*'", "", block)
    return [s.strip() for s in block.split(";") if s.strip()]


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rsplit('@', 1)[-1]}"))


async def _run(url: str, sql: list[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class Deployment:
    urls: dict[str, str]  # role kind -> URL as that role
    roles: dict[str, str]  # role kind -> role name
    database: str
    legacy: Path


@pytest_asyncio.fixture(scope="module")
async def deployment(dhv_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    tag = uuid.uuid4().hex[:8]
    roles = {kind: f"dhv_{kind}_{tag}" for kind in ROLES}
    database = f"dhv_roles_{tag}"
    names = {f"dealhunter_{kind}": name for kind, name in roles.items()} | {"dealhunter": database}
    blocks = doc_blocks()
    assert set(blocks) == {"server", "database", "grants"}
    legacy = build_legacy_database(tmp_path_factory.mktemp("roles") / "local.db", LegacyDatasetSpec.tiny(dims=DIMS))
    await _run(dhv_server_url, statements(blocks["server"], names))
    db_url = with_database(dhv_server_url, database)
    try:
        await _run(db_url, statements(blocks["database"], names))
        owner_url = as_role(db_url, roles["owner"])
        async with dv.open_pool(owner_url, min_size=1, max_size=2) as pool:
            assert await dv.apply_schema(pool)  # the owner creates every table
            assert (await dv.migrate_sqlite(legacy.path, pool)).ok
        await _run(owner_url, statements(blocks["grants"], names))
        yield Deployment({k: as_role(db_url, r) for k, r in roles.items()}, roles, database, legacy.path)
    finally:
        await _run(dhv_server_url, [f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'])
        for role in roles.values():
            await _run(dhv_server_url, [f'DROP ROLE IF EXISTS "{role}"'])


Call = Callable[[dv.Pool, Deployment], Awaitable[Any]]


async def _owners(pool: dv.Pool) -> tuple[str, str]:
    """A qualification with deal chunks and a pre-qualification with deal and raw chunks."""
    q = await pool.fetchval("SELECT qualification_id FROM deal_embeddings WHERE qualification_id IS NOT NULL LIMIT 1")
    pq = await pool.fetchval(
        "SELECT d.pre_qualification_id FROM deal_embeddings d JOIN raw_chunks r USING (pre_qualification_id) LIMIT 1"
    )
    assert q is not None and pq is not None
    return q, pq


async def _searches(pool: dv.Pool, _: Deployment) -> None:
    q, pq = await _owners(pool)
    assert await dv.search_deal_embeddings(pool, QUERY, qualification_id=q, threshold=-1.0)
    assert await dv.search_deal_embeddings(pool, QUERY, pre_qualification_id=pq, threshold=-1.0, mmr_lambda=0.5)
    assert await dv.search_raw_chunks(pool, QUERY, pre_qualification_id=pq, threshold=-1.0)
    assert await dv.search_similar(pool, QUERY, qualification_id=q, pre_qualification_id=pq, threshold=-1.0)
    assert await dv.list_deal_chunks(pool, qualification_id=q)
    assert await dv.find_similar_pre_qualifications(pool, QUERY, min_similarity_percent=0)
    assert await dv.find_similar_pre_qualifications(pool, QUERY, min_similarity_percent=0, limit=3)
    assert await dv.hybrid_search_deal_embeddings(pool, "Angebot", QUERY, qualification_id=q)
    assert await dv.hybrid_search_raw_chunks(pool, None, QUERY, pre_qualification_id=pq)
    many = await dv.search_many(pool, [dv.DealChunkSearch(query_embedding=QUERY, qualification_id=q, threshold=-1.0)])
    assert many[0]
    assert (await dv.schema_status(pool)).up_to_date
    assert await dv.apply_schema(pool) == []  # current: a read-only check, no DDL
    assert await dv.text_search_config(pool) == "german"
    ids = [h.chunk_id for h in await dv.search_deal_embeddings(pool, QUERY, qualification_id=q, threshold=-1.0)]
    assert [c.id for c in await dv.get_deal_chunks(pool, ids)] == ids  # the read-backs of the writes
    assert (await dv.page_deal_chunks(pool, qualification_id=q, limit=2)).chunks
    await dv.stale_chunks(pool, limit=5)


async def _insert(pool: dv.Pool, _: Deployment) -> None:
    q, pq = await _owners(pool)
    chunk = dv.DealChunk(qualification_id=q, pre_qualification_id=pq, agent_name="a", chunk_type="text",
                         content="neu", embedding=QUERY)  # fmt: skip
    await dv.insert_deal_chunks(pool, [chunk])


async def _replace_raw(pool: dv.Pool, _: Deployment) -> None:
    _, pq = await _owners(pool)
    await dv.replace_raw_chunks(pool, pq, [dv.RawChunk(chunk_index=0, content="neu", token_count=1, embedding=QUERY)])


async def _describe(pool: dv.Pool, _: Deployment) -> None:
    _, pq = await _owners(pool)
    await dv.set_description_embedding(pool, pq, QUERY)


def _chunk(q: str, n: int, **fields: Any) -> dv.DealChunk:
    return dv.DealChunk(qualification_id=q, agent_name="section-agent", chunk_type="text", content=f"Abschnitt {n}",
                        metadata={"sectionId": "s1"}, embedding=QUERY, **fields)  # fmt: skip


async def _replace_deal(pool: dv.Pool, _: Deployment) -> None:
    q, _pq = await _owners(pool)
    result = await dv.replace_deal_chunks(pool, [_chunk(q, 1), _chunk(q, 2)], qualification_id=q,
                                          agent_name="section-agent", metadata_match={"sectionId": "s1"})  # fmt: skip
    assert len(result.inserted_ids) == 2


async def _upsert_delete_deal(pool: dv.Pool, _: Deployment) -> None:
    q, _pq = await _owners(pool)
    chunk_id = f"role-{uuid.uuid4().hex[:12]}"
    await dv.upsert_deal_chunks(pool, [_chunk(q, 3, id=chunk_id)])
    await dv.upsert_deal_chunks(pool, [_chunk(q, 4, id=chunk_id)])  # an overwrite: UPDATE
    assert await dv.delete_deal_chunks(pool, ids=[chunk_id], qualification_id=q) == 1


async def _upsert_delete_raw(pool: dv.Pool, _: Deployment) -> None:
    _q, pq = await _owners(pool)
    chunk_id = f"role-raw-{uuid.uuid4().hex[:12]}"
    raw = dv.RawChunk(id=chunk_id, chunk_index=99, content="Anlage", token_count=1, embedding=QUERY)
    await dv.upsert_raw_chunks(pool, pq, [raw])
    assert await dv.delete_raw_chunks(pool, pre_qualification_id=pq, ids=[chunk_id]) == 1


async def _update_embeddings(pool: dv.Pool, _: Deployment) -> None:
    q, _pq = await _owners(pool)
    row = await pool.fetchrow("SELECT id FROM deal_embeddings WHERE qualification_id = $1 ORDER BY id LIMIT 1", q)
    assert row is not None
    done = await dv.update_embeddings(pool, [dv.EmbeddingUpdate(id=row["id"], embedding=QUERY)])
    assert done.updated == 1


async def _backfill(pool: dv.Pool, d: Deployment) -> None:
    # another writer's row without its split text (as the owner): something to backfill
    await _run(
        d.urls["owner"],
        [
            "UPDATE deal_embeddings SET content_parts = NULL, content_parts_hash = NULL"
            " WHERE id = (SELECT min(id) FROM deal_embeddings)"
        ],
    )
    await dv.backfill_content_parts(pool)


async def _text_config(pool: dv.Pool, _: Deployment) -> None:
    assert await dv.set_text_search_config(pool, "simple")
    assert await dv.set_text_search_config(pool, "german")


async def _migrate(pool: dv.Pool, d: Deployment) -> None:
    assert (await dv.migrate_sqlite(d.legacy, pool, tables=["business_units"])).ok


async def _verify(pool: dv.Pool, d: Deployment) -> None:
    await dv.verify_migration(d.legacy, pool, tables=["business_units"])


CALLS: dict[str, Call] = {
    "searches": _searches,
    "insert_deal_chunks": _insert,
    "replace_raw_chunks": _replace_raw,
    "set_description_embedding": _describe,
    "replace_deal_chunks": _replace_deal,
    "upsert_deal_chunks": _upsert_delete_deal,
    "upsert_raw_chunks": _upsert_delete_raw,
    "update_embeddings": _update_embeddings,
    "backfill_content_parts": _backfill,
    "set_text_search_config": _text_config,
    "migrate_sqlite": _migrate,
    "verify_migration": _verify,
}
# what each role may run; every other call must be refused, typed, naming what is missing
ALLOWED = {
    "owner": set(CALLS),
    "writer": {
        "searches",
        "insert_deal_chunks",
        "replace_raw_chunks",
        "set_description_embedding",
        "replace_deal_chunks",
        "upsert_deal_chunks",
        "upsert_raw_chunks",
        "update_embeddings",
        "backfill_content_parts",
    },
    "reader": {"searches"},
}
# how a refusal names the missing privilege: (error type, words the message must contain)
REFUSALS: dict[str, tuple[type[Exception], tuple[str, ...]]] = {
    "insert_deal_chunks": (dv.PermissionDeniedError, ("deal_embeddings", "INSERT")),
    "replace_raw_chunks": (dv.PermissionDeniedError, ("pre_qualifications", "UPDATE")),
    "set_description_embedding": (dv.PermissionDeniedError, ("pre_qualifications", "UPDATE")),
    "set_text_search_config": (dv.PermissionDeniedError, ("schema public", "CREATE on schema public")),
    "replace_deal_chunks": (dv.PermissionDeniedError, ("pre_qualifications", "UPDATE")),
    "upsert_deal_chunks": (dv.PermissionDeniedError, ("deal_embeddings", "INSERT")),
    "upsert_raw_chunks": (dv.PermissionDeniedError, ("raw_chunks", "INSERT")),
    "update_embeddings": (dv.PermissionDeniedError, ("deal_embeddings", "UPDATE")),
    "backfill_content_parts": (dv.PermissionDeniedError, ("deal_embeddings", "UPDATE")),
    "migrate_sqlite": (dv.MigrationError, ("lacks", "business_units")),
    "verify_migration": (dv.MigrationError, ("SELECT",)),
}


@pytest.mark.parametrize("kind", ROLES)
async def test_each_role_runs_what_it_should_and_nothing_else(deployment: Deployment, kind: str) -> None:
    # create_extension stays on: with pgvector installed, the bootstrap's IF NOT EXISTS needs no privilege
    async with dv.open_pool(deployment.urls[kind], min_size=1, max_size=2) as pool:
        for name, call in CALLS.items():
            if name in ALLOWED[kind]:
                await call(pool, deployment)
                continue
            error, words = REFUSALS[name]
            with pytest.raises(dv.DealhunterVectorsError) as info:
                await call(pool, deployment)
            assert isinstance(info.value, error), (kind, name, repr(info.value))
            assert not isinstance(info.value, asyncpg.PostgresError)
            message = str(info.value)
            assert "\n" not in message and all(w in message for w in words), (kind, name, message)
            if isinstance(info.value, dv.PermissionDeniedError):
                assert info.value.retryable is False and isinstance(info.value.__cause__, asyncpg.PostgresError)
                assert name in message  # the call is named


EXPECTED_ABLE = {
    "owner": {"search", "write", "migrate", "admin"},
    "writer": {"search", "write"},
    "reader": {"search"},
}


@pytest.mark.parametrize("kind", ROLES)
async def test_doctor_judges_each_role_for_its_job(deployment: Deployment, kind: str) -> None:
    url = deployment.urls[kind]
    default = await diagnose(url)
    assert default.healthy, [c for c in default.checks if c.status == "fail"]
    privileges = next(c for c in default.checks if c.name == "privileges")
    assert privileges.status == "ok" and privileges.detail.startswith(f"role {deployment.roles[kind]}: can search")
    assert default.capabilities is not None
    assert {c.purpose for c in default.capabilities.capabilities if c.able} == EXPECTED_ABLE[kind]
    for purpose in PURPOSES:
        report = await diagnose(url, purpose=purpose)
        row = next(c for c in report.checks if c.name == "privileges")
        able = purpose in EXPECTED_ABLE[kind]
        assert report.healthy is able and row.status == ("ok" if able else "fail"), (kind, purpose, row)
        if not able:
            assert row.fix is not None and f"judged for {purpose}" in row.detail
    if kind == "reader":
        write = next(c for c in (await diagnose(url, purpose="write")).checks if c.name == "privileges")
        assert "cannot write (no INSERT on deal_embeddings" in write.detail


async def test_doctors_grants_make_the_reader_a_writer(deployment: Deployment, dhv_server_url: str) -> None:
    """The fix of a failing ``--for write`` row is the GRANTs that make the role able (run by the owner)."""
    tag = uuid.uuid4().hex[:8]
    role = f"dhv_reader2_{tag}"
    names = {"dealhunter_reader": role, "dealhunter_writer": role, "dealhunter": deployment.database}
    await _run(dhv_server_url, [f'CREATE ROLE "{role}" LOGIN'])
    try:
        grants = doc_blocks()["grants"]
        reader_only = [s for s in statements(grants, names) if "INSERT" not in s and "UPDATE" not in s]
        await _run(deployment.urls["owner"], reader_only)
        conn = await asyncpg.connect(as_role(deployment.urls["owner"], role))
        try:
            tables = sorted(t["name"] for t in legacy_schema()["tables"])
            caps = await role_capabilities(conn, tables)
            assert caps.can("search") and not caps.can("write")
            fix = grant_statements(caps.of("write").missing, role, deployment.database)
            await _run(deployment.urls["owner"], fix)
            assert (await role_capabilities(conn, tables)).can("write")
        finally:
            await conn.close()
    finally:
        await _run(with_database(dhv_server_url, deployment.database), [f'DROP OWNED BY "{role}"'])
        await _run(dhv_server_url, [f'DROP ROLE IF EXISTS "{role}"'])


def test_cli_doctor_for(deployment: Deployment) -> None:
    """``doctor --for``: exit 0 for the job the role has, 1 (one JSON document, no traceback) otherwise."""
    url = deployment.urls["reader"]
    for purpose, code in (("search", 0), ("write", 1)):
        proc = subprocess.run(
            [sys.executable, "-m", "dealhunter_vectors", "doctor", "--database-url", url, "--for", purpose, "--json"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == code and "Traceback" not in proc.stderr, proc.stderr
        report = json.loads(proc.stdout)
        assert report["purpose"] == purpose and report["role"]["can"] == ["search"]
        row = next(c for c in report["checks"] if c["name"] == "privileges")
        assert row["status"] == ("ok" if code == 0 else "fail")
