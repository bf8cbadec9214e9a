"""The distributed layout on a real 1 + 2 Citus cluster: placement, keys, indexes, writes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import numpy as np
import pytest

from dealhunter_vectors.db.distributed import TENANT_COLUMN, apply_distributed_layout, distributed_tables, tenant_tables
from dealhunter_vectors.db.pool import Pool, close_pool, create_pool
from dealhunter_vectors.db.schema import VECTOR_INDEXES, legacy_schema
from dealhunter_vectors.errors import CitusError, InvalidArgumentError, NotFoundError
from dealhunter_vectors.layout import layout_of
from dealhunter_vectors.layout.citus import copy_violation, set_local
from dealhunter_vectors.models import DealChunk, RawChunk
from dealhunter_vectors.testing import CitusDatabaseFactory, seed_owners
from dealhunter_vectors.writes import insert_deal_chunks, replace_raw_chunks, set_description_embedding

pytestmark = pytest.mark.citus
TABLES = {t["name"] for t in legacy_schema()["tables"]}


@pytest.fixture(scope="module")
async def cpool(dhv_citus_database_factory: CitusDatabaseFactory) -> AsyncIterator[Pool]:
    pool = await create_pool(await dhv_citus_database_factory(), min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await close_pool(pool)


def _vec(rng: np.random.Generator) -> np.ndarray[Any, np.dtype[np.float32]]:
    return rng.standard_normal(3072).astype(np.float32)


async def test_every_table_is_placed_as_designed(cpool: Pool) -> None:
    rows = await cpool.fetch(
        "SELECT logicalrelid::regclass::text AS t, partmethod::text AS partmethod,"
        " column_to_column_name(logicalrelid, partkey) AS col,"
        " colocationid FROM pg_dist_partition"
    )
    placed = {r["t"].strip('"'): r for r in rows}
    assert set(placed) == TABLES == {t.table for t in distributed_tables()}
    group = placed["pre_qualifications"]["colocationid"]
    for t in distributed_tables():
        r = placed[t.table]
        if t.kind == "reference":
            assert r["partmethod"] == "n", t
        else:
            assert (r["partmethod"], r["col"]) == ("h", t.column), t
            assert (r["colocationid"] == group) == (
                t.colocated_with == "pre_qualifications" or t.table == "pre_qualifications"
            )
    # audit_trails is in a colocation group of its own
    assert placed["audit_trails"]["colocationid"] != group
    # every tenant table has the library-owned column, NOT NULL
    for table in tenant_tables():
        assert await cpool.fetchval(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2",
            f'"{table}"',
            TENANT_COLUMN,
        )


_FKS = """
SELECT c.conrelid::regclass::text AS t, c.confrelid::regclass::text AS parent,
       array(SELECT a.attname FROM unnest(c.conkey) k JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k
             ORDER BY array_position(c.conkey, k)) AS cols,
       c.confdeltype AS on_delete
FROM pg_constraint c WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
  AND c.conrelid::regclass::text NOT LIKE '%\\_1%'
"""


async def test_foreign_keys_kept_wherever_citus_allows(cpool: Pool, dhv_pool: Pool) -> None:
    single = {(r["t"], r["parent"], tuple(r["cols"])): r["on_delete"] for r in await dhv_pool.fetch(_FKS)}
    citus = {(r["t"], r["parent"], tuple(r["cols"])): r["on_delete"] for r in await cpool.fetch(_FKS)}
    assert len(single) == 49
    dist = {t.table: t.column for t in distributed_tables()}
    missing = []
    for (table, parent, cols), on_delete in single.items():
        # kept as it is, or as a composite key led by the distribution column
        same = (table, parent, cols) in citus
        composite = (table, parent, (dist[table.strip('"')], *cols)) in citus
        tenant_only = (table, parent, (TENANT_COLUMN,)) in citus
        if not (same or composite or tenant_only):
            missing.append((table, cols))
            continue
        key = (
            (table, parent, cols)
            if same
            else (table, parent, (dist[table.strip('"')], *cols))
            if composite
            else (table, parent, (TENANT_COLUMN,))
        )
        assert citus[key] == on_delete, (table, cols)
    # the one foreign key that cannot include the distribution column (docs/scaling.md)
    assert missing == [("background_jobs", ("pre_qualification_id",))]


async def test_hnsw_indexes_and_the_inline_half_copy_are_on_every_shard(cpool: Pool) -> None:
    for ix in VECTOR_INDEXES:
        shards = await cpool.fetchval("SELECT count(*) FROM citus_shards WHERE table_name = $1::regclass", ix.table)
        indexes = await cpool.fetchval(
            "SELECT sum(result::int) FROM run_command_on_shards($1, $2)",
            ix.table,
            f"SELECT count(*) FROM pg_indexes WHERE indexname LIKE '{ix.name}%%' AND indexdef LIKE '%%hnsw%%' "
            "AND indexdef LIKE '%%halfvec(3072)%%' AND tablename = '%s'",
        )
        assert shards == 8 and indexes == shards, ix
    for table in ("deal_embeddings", "raw_chunks"):  # the full-text GIN index (migration 005) too
        gin = await cpool.fetchval(
            "SELECT sum(result::int) FROM run_command_on_shards($1, $2)",
            table,
            f"SELECT count(*) FROM pg_indexes WHERE indexname LIKE '{table}_content_tsv_idx%%' AND tablename = '%s'",
        )
        assert gin == 8, table
        results = await cpool.fetch(
            "SELECT result FROM run_command_on_shards($1, $2)",
            table,
            "SELECT attstorage::text || attgenerated::text FROM pg_attribute WHERE attrelid = '%s'::regclass"
            " AND attname = 'embedding_half'",
        )
        assert [r["result"] for r in results] == ["ms"] * 8


async def test_layout_is_versioned_and_idempotent(cpool: Pool) -> None:
    async with cpool.acquire() as conn:
        assert await apply_distributed_layout(conn) == []
        assert (await layout_of(conn)).sharded


async def test_a_server_without_citus_is_a_typed_error(dhv_pool: Pool) -> None:
    async with dhv_pool.acquire() as conn:
        with pytest.raises(CitusError, match="not a Citus coordinator"):
            await apply_distributed_layout(conn)
        assert not (await layout_of(conn)).sharded


async def test_write_paths_place_rows_with_their_tenant(cpool: Pool) -> None:
    rng = np.random.default_rng(5)
    await seed_owners(cpool, pre_qualification_ids=["w-pq1", "w-pq2"], qualification_ids=["w-q1"])
    ids = await insert_deal_chunks(
        cpool,
        [
            DealChunk(
                pre_qualification_id="w-pq1",
                agent_name="a",
                chunk_type="t",
                chunk_index=0,
                content="p",
                embedding=_vec(rng),
            ),
            DealChunk(
                qualification_id="w-q1", agent_name="a", chunk_type="t", chunk_index=0, content="q", embedding=_vec(rng)
            ),
            DealChunk(
                pre_qualification_id="pq-base",
                qualification_id="w-q1",
                agent_name="a",
                chunk_type="t",
                chunk_index=1,
                content="both",
                embedding=None,
            ),
        ],
    )
    rows = await cpool.fetch(
        "SELECT id, tenant_id, get_shard_id_for_distribution_column('deal_embeddings', tenant_id) AS shard"
        " FROM deal_embeddings WHERE id = ANY($1::text[])",
        ids,
    )
    tenants = {r["id"]: r["tenant_id"] for r in rows}
    # the qualification w-q1 belongs to pq-base (seed_owners): its chunks live with pq-base
    assert tenants == {ids[0]: "w-pq1", ids[1]: "pq-base", ids[2]: "pq-base"}
    # same hash range = the co-located shard of the pre-qualification
    ranges = await cpool.fetch(
        "SELECT shardminvalue FROM pg_dist_shard WHERE shardid IN"
        " (get_shard_id_for_distribution_column('pre_qualifications', 'pq-base'),"
        "  get_shard_id_for_distribution_column('deal_embeddings', 'pq-base'))"
    )
    assert len(ranges) == 2 and ranges[0]["shardminvalue"] == ranges[1]["shardminvalue"]
    assert {r["shard"] for r in rows if r["tenant_id"] == "pq-base"} == {
        await cpool.fetchval("SELECT get_shard_id_for_distribution_column('deal_embeddings', 'pq-base')")
    }
    # a duplicate id: the single node's error (Citus itself reports XX000 from the worker)
    with pytest.raises(InvalidArgumentError, match="an id is already stored"):
        await insert_deal_chunks(
            cpool,
            [
                DealChunk(
                    id=ids[0],
                    pre_qualification_id="w-pq1",
                    agent_name="a",
                    chunk_type="t",
                    chunk_index=0,
                    content="dup",
                )
            ],
        )
    with pytest.raises(NotFoundError, match="qualifications id=nope"):
        await insert_deal_chunks(
            cpool, [DealChunk(qualification_id="nope", agent_name="a", chunk_type="t", chunk_index=0, content="x")]
        )
    with pytest.raises(NotFoundError, match="pre_qualifications id=nope"):
        await insert_deal_chunks(
            cpool, [DealChunk(pre_qualification_id="nope", agent_name="a", chunk_type="t", chunk_index=0, content="x")]
        )
    with pytest.raises(InvalidArgumentError, match="belongs to pre-qualification pq-base"):
        await insert_deal_chunks(
            cpool,
            [
                DealChunk(
                    pre_qualification_id="w-pq2",
                    qualification_id="w-q1",
                    agent_name="a",
                    chunk_type="t",
                    chunk_index=0,
                    content="x",
                )
            ],
        )
    raw = await replace_raw_chunks(
        cpool, "w-pq2", [RawChunk(chunk_index=i, content="r", token_count=1, embedding=_vec(rng)) for i in range(3)]
    )
    raw2 = await replace_raw_chunks(
        cpool, "w-pq2", [RawChunk(chunk_index=0, content="r", token_count=1, embedding=_vec(rng))]
    )
    assert await cpool.fetchval("SELECT array_agg(id) FROM raw_chunks WHERE pre_qualification_id = 'w-pq2'") == raw2
    assert len(raw) == 3
    with pytest.raises(NotFoundError):
        await replace_raw_chunks(cpool, "nope", [])
    v = _vec(rng)
    await set_description_embedding(cpool, "w-pq1", v)
    stored = await cpool.fetchval("SELECT description_embedding FROM pre_qualifications WHERE id = 'w-pq1'")
    assert np.array_equal(stored, v)
    with pytest.raises(NotFoundError):
        await set_description_embedding(cpool, "nope", v)
    # deleting a pre-qualification deletes its chunks on its shard (ON DELETE CASCADE kept)
    await cpool.execute("DELETE FROM raw_chunks WHERE pre_qualification_id = 'w-pq1'")
    await cpool.execute("DELETE FROM pre_qualifications WHERE id = 'w-pq1'")
    assert await cpool.fetchval("SELECT count(*) FROM deal_embeddings WHERE tenant_id = 'w-pq1'") == 0


async def test_a_chunk_cannot_leave_its_tenant(cpool: Pool) -> None:
    await seed_owners(cpool, pre_qualification_ids=["t-pq1"])
    with pytest.raises(asyncpg.PostgresError):
        await cpool.execute(
            "INSERT INTO deal_embeddings (id, tenant_id, pre_qualification_id, agent_name, chunk_type,"
            " chunk_index, content) VALUES ('bad', 'pq-base', 't-pq1', 'a', 't', 0, 'x')"
        )


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dealhunter_vectors.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_schema_apply_distributed(dhv_citus_database_factory: CitusDatabaseFactory) -> None:
    url = await dhv_citus_database_factory(distributed=False)
    rc, out, err = await _cli("schema", "apply", "--distributed", "--database-url", url)
    assert rc == 0, err
    assert "1, 2, 3, 4" in out and "1001" in out
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_dist_partition") == len(TABLES)
    finally:
        await conn.close()
    rc, out, _ = await _cli("schema", "apply", "--distributed", "--database-url", url)
    assert rc == 0 and "nothing to apply" in out


async def test_cli_schema_apply_distributed_on_a_plain_server_is_one_line(dhv_database_url: str) -> None:
    rc, _, err = await _cli("schema", "apply", "--distributed", "--database-url", dhv_database_url)
    assert rc == 1
    assert "not a Citus coordinator" in err and "Traceback" not in err
    conn = await asyncpg.connect(dhv_database_url)
    try:  # the check comes first: nothing was changed
        assert await conn.fetchval("SELECT to_regclass('dealhunter_distributed_layout')") is None
    finally:
        await conn.close()


async def test_hnsw_settings_reach_the_shards_only_through_propagated_set_local(cpool: Pool) -> None:
    await seed_owners(cpool, pre_qualification_ids=["s-pq1", "s-pq2", "s-pq3"])
    # evaluated on every shard (the query runs on the workers)
    on_shards = "SELECT DISTINCT current_setting('hnsw.ef_search') AS v FROM pre_qualifications"
    async with cpool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SET LOCAL hnsw.ef_search = 123")  # the coordinator only
            assert [r["v"] for r in await conn.fetch(on_shards)] == ["40"]
        async with conn.transaction():
            await set_local(conn, {"hnsw.ef_search": 123, "enable_seqscan": False})
            assert [r["v"] for r in await conn.fetch(on_shards)] == ["123"]
        with pytest.raises(ValueError):
            await set_local(conn, {"hnsw.ef_search; DROP TABLE x": 1})


def test_copy_violations_reported_as_xx000_map_to_the_single_nodes_classes() -> None:
    class Internal(asyncpg.InternalServerError):
        pass

    dup = Internal('duplicate key value violates unique constraint "x_pkey_1"')
    assert isinstance(copy_violation(dup), asyncpg.UniqueViolationError)
    fk = Internal('insert or update on table "t_1" violates foreign key constraint "fk_1"')
    assert isinstance(copy_violation(fk), asyncpg.ForeignKeyViolationError)
    other = Internal("could not connect to the worker")
    assert copy_violation(other) is other
