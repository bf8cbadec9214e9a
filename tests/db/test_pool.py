"""The pool: codecs, concurrency, exhaustion, graceful close, SET LOCAL, PgBouncer mode, masking."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg
import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.testing import with_database


async def test_float32_roundtrips_bit_exactly_through_vector_3072(dhv_pool: dv.Pool) -> None:
    rng = np.random.default_rng(7)
    v = rng.standard_normal(3072).astype(np.float32)
    v[:4] = [np.float32(1e-30), np.float32(-3.4e38), np.float32(np.nextafter(1, 2, dtype=np.float32)), 0.0]
    got = await dhv_pool.fetchval("SELECT $1::vector(3072)", v)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert got.tobytes() == v.tobytes()
    # through a real table too, and from a plain list (float64 values rounded once to float32)
    async with dhv_pool.acquire() as conn:
        await conn.execute("CREATE TEMP TABLE t (v vector(3072))")
        await conn.execute("INSERT INTO t VALUES ($1)", v.tolist())
        stored = await conn.fetchval("SELECT v FROM t")
    assert stored.tobytes() == v.tobytes()


async def test_halfvec_cast_returns_half_precision_values(dhv_pool: dv.Pool) -> None:
    v = np.random.default_rng(3).standard_normal(3072).astype(np.float32) * 10
    got = await dhv_pool.fetchval("SELECT ($1::vector(3072))::halfvec(3072)", v)
    expected = v.astype(np.float16).astype(np.float32)  # IEEE round-to-nearest-even
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, v)  # it really was rounded


async def test_text_form_of_vector_matches_numpy(dhv_pool: dv.Pool) -> None:
    v = np.array([0.5, -0.25, 3.0], dtype=np.float32)
    assert await dhv_pool.fetchval("SELECT ($1::vector)::text", v) == "[0.5,-0.25,3]"


async def test_hundred_concurrent_queries_on_pool_of_twenty(dhv_database_url: str) -> None:
    async with dv.open_pool(dhv_database_url, min_size=0, max_size=20) as pool:

        async def one(i: int) -> int:
            return int(await pool.fetchval("SELECT $1::int + 0 FROM pg_sleep(0.02)", i))

        results = await asyncio.gather(*(one(i) for i in range(100)))
        assert results == list(range(100))
        assert pool.get_size() <= 20
        backends = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dealhunter_vectors'"
            " AND datname = current_database()"
        )
        assert backends <= 20


async def test_acquire_beyond_max_raises_typed_error(dhv_database_url: str) -> None:
    async with dv.open_pool(dhv_database_url, min_size=0, max_size=2) as pool:
        a = await pool.acquire()
        b = await pool.acquire()
        try:
            with pytest.raises(dv.PoolExhaustedError, match="max_size=2"):
                # wait_for only guards against a hang; the pool itself must raise
                await asyncio.wait_for(pool.acquire(timeout=0.2), timeout=30)
            with pytest.raises(TimeoutError):  # still a TimeoutError for generic handlers
                await pool.acquire(timeout=0.05)
        finally:
            await pool.release(a)
            await pool.release(b)
        assert await pool.fetchval("SELECT 1") == 1  # the pool is still usable


async def test_default_acquire_timeout_applies(dhv_database_url: str) -> None:
    pool = await dv.create_pool(dhv_database_url, min_size=0, max_size=1, acquire_timeout=0.1)
    try:
        async with pool.acquire():
            with pytest.raises(dv.PoolExhaustedError):
                await pool.fetchval("SELECT 1")  # pool.fetch acquires without an explicit timeout
    finally:
        await dv.close_pool(pool)


async def test_close_waits_for_in_flight_queries(dhv_database_url: str) -> None:
    pool = await dv.create_pool(dhv_database_url, min_size=1, max_size=2)
    query = asyncio.create_task(pool.fetchval("SELECT 42 FROM pg_sleep(0.5)"))
    await asyncio.sleep(0.1)
    await dv.close_pool(pool, timeout=10)
    assert query.done() and query.result() == 42
    with pytest.raises(asyncpg.InterfaceError):
        await pool.fetchval("SELECT 1")


async def test_close_terminates_after_grace_period(dhv_database_url: str) -> None:
    pool = await dv.create_pool(dhv_database_url, min_size=1, max_size=2)
    query = asyncio.create_task(pool.fetchval("SELECT 1 FROM pg_sleep(30)"))
    await asyncio.sleep(0.2)
    await dv.close_pool(pool, timeout=0.3)
    with pytest.raises((asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError, ConnectionError)):
        await asyncio.wait_for(query, 10)


async def test_transaction_settings_are_local(dhv_database_url: str) -> None:
    async with dv.open_pool(dhv_database_url, min_size=1, max_size=1) as pool:
        default = await pool.fetchval("SHOW hnsw.ef_search")
        async with dv.transaction_settings(pool, {"hnsw.ef_search": 123, "enable_seqscan": False}) as conn:
            assert await conn.fetchval("SHOW hnsw.ef_search") == "123"
            assert await conn.fetchval("SHOW enable_seqscan") == "off"
        # same (only) connection, back from the pool: the settings are gone
        assert await pool.fetchval("SHOW hnsw.ef_search") == default
        assert await pool.fetchval("SHOW enable_seqscan") == "on"


async def test_pgbouncer_mode_uses_no_named_prepared_statements(dhv_database_url: str) -> None:
    count = "SELECT count(*) FROM pg_prepared_statements"
    for pgbouncer, expect_named in ((False, True), (True, False)):
        async with (
            dv.open_pool(dhv_database_url, min_size=1, max_size=1, pgbouncer=pgbouncer) as pool,
            pool.acquire() as conn,
        ):
            for _ in range(3):
                await conn.fetchval("SELECT $1::int", 1)
            assert (await conn.fetchval(count) > 0) is expect_named


async def test_codecs_registered_on_every_connection(dhv_database_url: str) -> None:
    async with dv.open_pool(dhv_database_url, min_size=5, max_size=5) as pool:
        conns = [await pool.acquire() for _ in range(5)]
        try:
            for conn in conns:
                got = await conn.fetchval("SELECT '[1,2,3]'::vector")
                assert isinstance(got, np.ndarray) and got.tolist() == [1.0, 2.0, 3.0]
        finally:
            for conn in conns:
                await pool.release(conn)


async def test_extension_is_created_by_the_pool(dhv_server_url: str) -> None:
    admin = await asyncpg.connect(dhv_server_url)
    try:
        await admin.execute('CREATE DATABASE "dhv_no_ext"')
        try:
            url = with_database(dhv_server_url, "dhv_no_ext")
            async with dv.open_pool(url, min_size=1, max_size=2) as pool:
                assert await pool.fetchval("SELECT extversion FROM pg_extension WHERE extname='vector'")
            with pytest.raises(dv.DatabaseUnavailableError, match="pgvector extension is not installed"):
                await admin.execute('CREATE DATABASE "dhv_no_ext2"')
                try:
                    await dv.create_pool(with_database(dhv_server_url, "dhv_no_ext2"), create_extension=False)
                finally:
                    await admin.execute('DROP DATABASE "dhv_no_ext2" WITH (FORCE)')
        finally:
            await admin.execute('DROP DATABASE "dhv_no_ext" WITH (FORCE)')
    finally:
        await admin.close()


async def test_lifespan_sets_state_and_closes(dhv_database_url: str) -> None:
    class App:
        class state:
            pass

    app = App()
    async with dv.lifespan(app, url=dhv_database_url, min_size=1) as state:
        pool = state["db"]
        assert app.state.db is pool  # type: ignore[attr-defined]
        assert await pool.fetchval("SELECT 1") == 1
    with pytest.raises(asyncpg.InterfaceError):
        await pool.fetchval("SELECT 1")


async def _enable_password_auth(admin: asyncpg.Connection, role: str) -> bool:
    """Make *role* log in with scram-sha-256 on this server; False when we cannot edit pg_hba."""
    hba = Path(await admin.fetchval("SHOW hba_file"))
    try:
        original = hba.read_text()
        rules = f"local all {role} scram-sha-256\nhost all {role} 127.0.0.1/32 scram-sha-256\n"
        if rules not in original:
            hba.write_text(rules + original)
    except OSError:
        return False
    await admin.execute("SELECT pg_reload_conf()")
    return True


async def test_wrong_password_error_is_masked(dhv_server_url: str, dhv_database_url: str) -> None:
    secret, wrong = "Right-S3cret-xyz", "Wr0ng-S3cret-abc"
    admin = await asyncpg.connect(dhv_server_url)
    try:
        with contextlib.suppress(asyncpg.DuplicateObjectError):
            await admin.execute(f"CREATE ROLE dhv_pw_user LOGIN PASSWORD '{secret}'")
        if not await _enable_password_auth(admin, "dhv_pw_user"):
            pytest.skip("cannot switch this server to password authentication (pg_hba not writable)")
    finally:
        await admin.close()
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dhv_database_url)  # a database where the extension exists
    host = parts.netloc.rpartition("@")[2]
    bad_url = urlunsplit((parts.scheme, f"dhv_pw_user:{wrong}@{host}", parts.path, parts.query, ""))
    with pytest.raises(dv.DatabaseUnavailableError) as info:
        await dv.create_pool(bad_url, min_size=1, max_size=1)
    err = info.value
    for text in (str(err), repr(err), repr(err.args)):
        assert wrong not in text
        assert "dhv_pw_user:***@" in text
    assert "password" in str(err).lower()  # the reason is still told
    assert err.__cause__ is None and err.__context__ is None  # nothing chained: no traceback shows the URL
    # the right password works, so the failure really was the password
    good_url = bad_url.replace(wrong, secret)
    async with dv.open_pool(good_url, min_size=1, max_size=1) as pool:
        assert await pool.fetchval("SELECT current_user") == "dhv_pw_user"
        assert secret not in repr(pool) and "***" in repr(pool)


async def test_unreachable_server_is_typed_and_masked() -> None:
    url = "postgresql://someone:TopSecret99@127.0.0.1:1/nowhere"
    with pytest.raises(dv.DatabaseUnavailableError) as info:
        await dv.create_pool(url, connect_timeout=2)
    assert "TopSecret99" not in str(info.value)
    assert "someone:***@127.0.0.1:1" in str(info.value)


async def test_command_timeout_from_settings_and_disabled_with_none(dhv_database_url: str) -> None:
    strict = dv.Settings(database_url=dhv_database_url, command_timeout=0.3)
    async with dv.open_pool(settings=strict, min_size=1, max_size=1) as pool:
        with pytest.raises(TimeoutError):
            await pool.fetchval("SELECT pg_sleep(1)")
    # None means "no per-statement timeout", not "use the settings"
    async with dv.open_pool(settings=strict, command_timeout=None, min_size=1, max_size=1) as pool:
        assert await pool.fetchval("SELECT 7 FROM pg_sleep(0.6)") == 7


SIGTERM_SCRIPT = """
import asyncio, os, signal, sys
import dealhunter_vectors as dv

async def main(url):
    async with dv.lifespan(url=url, handle_sigterm=True, min_size=1) as state:
        pool = state["db"]
        task = asyncio.create_task(pool.fetchval("SELECT 42 FROM pg_sleep(1)"))
        await asyncio.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)
        print("query result", await task, flush=True)
        await asyncio.sleep(20)
        print("still running", flush=True)

asyncio.run(main(sys.argv[1]))
"""


async def test_sigterm_closes_gracefully_then_terminates(dhv_database_url: str) -> None:
    import signal
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SIGTERM_SCRIPT,
        dhv_database_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert b"query result 42" in out, err[-2000:]  # the in-flight query finished
    assert b"still running" not in out
    assert proc.returncode == -signal.SIGTERM  # then SIGTERM was re-delivered to the default handler
