"""The server's ``statement_timeout`` (``SET LOCAL`` via ``transaction_settings``) is a typed error.

Found by benchmarks/soak.py: asyncpg's ``QueryCanceledError`` (SQLSTATE 57014) escaped the
public API untyped. A statement held up by a lock makes the timeout certain.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.testing import seed_owners

QUERY = np.random.default_rng(3).standard_normal(3072).astype(np.float32)


async def _search(conn: object) -> object:
    return await dv.search_raw_chunks(conn, QUERY, pre_qualification_id="pq-st")


async def _describe(conn: object) -> object:
    await dv.set_description_embedding(conn, "pq-st", QUERY)
    return None


@pytest.mark.parametrize(
    ("lock", "call", "name"),
    [
        ("LOCK TABLE raw_chunks IN ACCESS EXCLUSIVE MODE", _search, "search_raw_chunks"),
        ("SELECT 1 FROM pre_qualifications WHERE id = 'pq-st' FOR UPDATE", _describe, "set_description_embedding"),
    ],
)
async def test_statement_timeout_is_a_query_timeout_naming_the_call(
    dhv_pool: dv.Pool, lock: str, call: object, name: str
) -> None:
    await seed_owners(dhv_pool, pre_qualification_ids=("pq-st",))
    async with dhv_pool.acquire() as blocker:
        held = blocker.transaction()
        await held.start()
        await blocker.execute(lock)
        try:
            with pytest.raises(dv.QueryTimeoutError) as info:
                async with dv.transaction_settings(dhv_pool, {"statement_timeout": "200ms"}) as conn:
                    await call(conn)  # type: ignore[operator]
        finally:
            await held.rollback()
    message = str(info.value)
    assert name in message and "statement timeout" in message and "\n" not in message, message
    assert info.value.retryable is True
    # the pool serves as before, the write went through once the lock was gone
    assert await call(dhv_pool) in ([], None)  # type: ignore[operator]


async def test_a_cancelled_commit_is_typed(dhv_pool: dv.Pool) -> None:
    """The COMMIT that ``transaction_settings`` runs on exit can be cancelled too (the soak saw
    "canceling statement due to user request" there). A deferred trigger holds the COMMIT,
    ``pg_cancel_backend`` cancels it: typed, one line, and nothing committed."""
    await seed_owners(dhv_pool, pre_qualification_ids=("pq-st",))
    await dhv_pool.execute(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$"
    )
    await dhv_pool.execute(
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER UPDATE ON pre_qualifications"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
    )

    async def write() -> None:
        async with dv.transaction_settings(dhv_pool, {"statement_timeout": "10s"}) as conn:
            await dv.set_description_embedding(conn, "pq-st", QUERY)

    task = asyncio.ensure_future(write())
    cancelled = False
    for _ in range(200):
        cancelled = bool(
            await dhv_pool.fetchval(
                "SELECT bool_or(pg_cancel_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND state = 'active' AND query ILIKE 'COMMIT%'"
            )
        )
        if cancelled or task.done():
            break
        await asyncio.sleep(0.05)
    with pytest.raises(dv.QueryTimeoutError) as info:
        await task
    assert cancelled
    message = str(info.value)
    assert "transaction_settings" in message and "cancel" in message and "\n" not in message, message
    stored = await dhv_pool.fetchval("SELECT description_embedding IS NULL FROM pre_qualifications WHERE id = 'pq-st'")
    assert stored is True  # the COMMIT failed: nothing was written
