"""Issue 19, point 7: a Citus worker stopped in the middle of searches (a dedicated 1 + 2 cluster).

The cluster is this module's own (stopping a worker disturbs no other test). 50 concurrent
searches run, the ones of one worker's tenants held mid-statement (their shards locked on
that worker), and that worker is stopped (``fast``: its sessions terminated; ``immediate``:
as in a crash). Then:

* every search of that worker's tenants fails with ``DatabaseUnavailableError`` (retryable)
  naming the worker's host:port, one line, never a raw ``XX000`` / asyncpg error; the
  searches of the other worker's tenants return the right rows;
* while it is down, its tenants' searches and the multi-shard duplicate check get the same
  typed error, the other tenants are served;
* once it is started again the coordinator serves every search again, with the answers
  from before the fault (measured: time until the first search is served again).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio

import dealhunter_vectors as dv
from dealhunter_vectors.testing import seed_owners
from dealhunter_vectors.tooling.cluster import LocalCluster, default_citus_source, start_cluster, stop_cluster

pytestmark = [pytest.mark.citus, pytest.mark.timeout(900)]
DB = "dhv_worker_faults"
PQS = [f"pq-{i}" for i in range(8)]
DIMS = 3072


def vec(seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    source = default_citus_source(Path(request.config.rootpath))
    if source is None:
        pytest.skip("no Citus source tarball: set DEALHUNTER_CITUS_SOURCE or put citus-*.tar.gz in ../shared/vendor")
    own = start_cluster(2, directory=tempfile.mkdtemp(prefix="dhv-citus-faults-"), citus_source=source)
    try:
        yield own
    finally:
        stop_cluster(own.directory, remove=True)


@pytest_asyncio.fixture(scope="module")
async def url(cluster: LocalCluster) -> str:
    url = await cluster.create_database(DB)
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        await dv.apply_schema(pool, distributed=True)
        await seed_owners(pool, pre_qualification_ids=PQS)
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(
                    pre_qualification_id=pq,
                    agent_name="a",
                    chunk_type="text",
                    content=f"{pq} chunk {k}",
                    embedding=vec(100 * i + k),
                )
                for i, pq in enumerate(PQS)
                for k in range(4)
            ],
        )
        for i, pq in enumerate(PQS):
            await dv.set_description_embedding(pool, pq, vec(900 + i))
    return url


QUERY = vec(7)


async def search(db: Any, pq: str) -> list[tuple[str, float]]:
    hits = await dv.search_deal_embeddings(db, QUERY, pre_qualification_id=pq, threshold=-1.0, limit=10)
    return [(h.chunk_id, round(h.similarity, 6)) for h in hits]


async def expected_answers(url: str) -> dict[str, list[tuple[str, float]]]:
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        answers = {pq: await search(pool, pq) for pq in PQS}
    assert all(len(a) == 4 for a in answers.values())
    return answers


async def tenants_and_shards(url: str, port: int) -> tuple[list[str], list[str]]:
    """The pre-qualifications whose rows live on the worker at *port*, and its deal_embeddings shards."""
    conn = await asyncpg.connect(url)
    try:
        tenants = [
            r["p"]
            for r in await conn.fetch(
                "SELECT p FROM unnest($1::text[]) AS p"
                " JOIN pg_dist_placement pl ON pl.shardid = get_shard_id_for_distribution_column('deal_embeddings', p)"
                " JOIN pg_dist_node n ON n.groupid = pl.groupid WHERE n.nodeport = $2",
                PQS,
                port,
            )
        ]
        shards = [
            r[0]
            for r in await conn.fetch(
                "SELECT shard_name('deal_embeddings'::regclass, s.shardid) FROM pg_dist_shard s"
                " JOIN pg_dist_placement pl USING (shardid) JOIN pg_dist_node n USING (groupid)"
                " WHERE s.logicalrelid = 'deal_embeddings'::regclass AND n.nodeport = $1",
                port,
            )
        ]
    finally:
        await conn.close()
    return tenants, shards


async def hold_shards(worker_url: str, shards: list[str]) -> asyncpg.Connection:
    """A session on the worker holding its shards locked: searches of its tenants wait mid-statement."""
    conn = await asyncpg.connect(worker_url)
    await conn.execute("SET citus.enable_manual_changes_to_shards TO on")
    await conn.execute("BEGIN")
    for shard in shards:
        await conn.execute(f"LOCK TABLE {shard} IN ACCESS EXCLUSIVE MODE")
    return conn


async def wait_for_waiters(conn: asyncpg.Connection, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while await conn.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted") < n:
        assert time.monotonic() < deadline, "the searches never reached the worker"
        await asyncio.sleep(0.05)


def assert_names_the_worker(err: BaseException, port: int) -> None:
    assert type(err) is dv.DatabaseUnavailableError, repr(err)
    message = str(err)
    assert f"the Citus worker 127.0.0.1:{port} is unreachable" in message, message
    assert "\n" not in message and err.retryable
    assert "InternalServerError" not in message


@pytest_asyncio.fixture
async def pool(url: str) -> AsyncIterator[dv.Pool]:
    async with dv.open_pool(url, min_size=1, max_size=20) as pool:
        yield pool


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_worker_stopped_mid_search_under_fifty_tasks(
    mode: str, cluster: LocalCluster, url: str, pool: dv.Pool
) -> None:
    expected = await expected_answers(url)
    worker = cluster.workers[0]
    down, shards = await tenants_and_shards(url, worker.port)
    up = [pq for pq in PQS if pq not in down]
    assert down and up, "the tenants are spread over both workers"
    holder = await hold_shards(worker.url(DB), shards)
    order = [PQS[i % len(PQS)] for i in range(50)]
    tasks = [asyncio.create_task(search(pool, pq)) for pq in order]
    try:
        await wait_for_waiters(holder, 1)
        await asyncio.to_thread(cluster.stop_node, worker.name, mode=mode)
        outcome = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=300)
    finally:
        for task in tasks:
            task.cancel()
        if not holder.is_closed():
            holder.terminate()
    stopped_at = time.monotonic()
    try:
        for pq, result in zip(order, outcome, strict=True):
            if pq in down:
                assert isinstance(result, BaseException), (pq, result)
                assert_names_the_worker(result, worker.port)
            else:
                assert result == expected[pq], (pq, result)

        # while it is down: its tenants and the multi-shard duplicate check get the typed error
        with pytest.raises(dv.DatabaseUnavailableError) as info:
            await search(pool, down[0])
        assert_names_the_worker(info.value, worker.port)
        with pytest.raises(dv.DatabaseUnavailableError) as info:
            await dv.find_similar_pre_qualifications(pool, vec(900), min_similarity_percent=10, exact=True)
        assert_names_the_worker(info.value, worker.port)
        assert [await search(pool, pq) for pq in up] == [expected[pq] for pq in up]
    finally:
        await asyncio.to_thread(cluster.start_node, worker.name)
    back = time.monotonic()
    served = None
    while served is None:  # the coordinator serves again once the worker accepts connections
        try:
            served = await search(pool, down[0])
        except dv.DatabaseUnavailableError:
            assert time.monotonic() - back < 60, "the coordinator never served the worker's tenants again"
            await asyncio.sleep(0.1)
    print(
        f"\nworker {mode} stop: down {back - stopped_at:.2f} s, first search served "
        f"{time.monotonic() - back:.2f} s after the worker's start"
    )
    assert {pq: await search(pool, pq) for pq in PQS} == expected


async def test_migrate_losing_a_worker_names_it_and_a_rerun_finishes(cluster: LocalCluster, tmp_path: Path) -> None:
    """The loader on this module's cluster: a worker stopped mid-table ends the run with a
    retryable one-line error naming the worker; once it is back a re-run finishes exactly."""
    from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database

    spec = LegacyDatasetSpec.tiny(dims=DIMS, seed=31)
    legacy = build_legacy_database(tmp_path / "legacy.db", spec)
    url = await cluster.create_database("dhv_worker_faults_load")
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        await dv.apply_schema(pool, distributed=True)
    worker = cluster.workers[0]
    stopped = False

    def stop_mid_table(ev: dv.MigrationProgress) -> None:
        nonlocal stopped
        if ev.phase == "batch" and ev.table == "deal_embeddings" and not stopped:
            stopped = True
            cluster.stop_node(worker.name, mode="immediate")

    try:
        with pytest.raises(dv.MigrationError) as info:
            await dv.migrate_sqlite(legacy.path, url, batch_size=4, progress=stop_mid_table)
    finally:
        await asyncio.to_thread(cluster.start_node, worker.name)
    assert stopped
    message = str(info.value)
    assert info.value.retryable and "\n" not in message
    assert message.startswith(f"lost the Citus worker 127.0.0.1:{worker.port} mid-run"), message
    again = await dv.migrate_sqlite(legacy.path, url, on_error="skip")
    assert again.ok and again.inserted + again.already_present == sum(legacy.row_counts.values())
