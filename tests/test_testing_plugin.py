"""The pytest plugin users put in their suites: every test gets its own database.

Both tests below write the same primary key and commit; with shared state the second
would fail on the primary key and see the first one's row.
"""

from __future__ import annotations

import pytest

import dealhunter_vectors as dv


@pytest.mark.parametrize("marker", ["first", "second"])
async def test_same_ids_do_not_collide(dhv_pool: dv.Pool, marker: str) -> None:
    async with dhv_pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO business_units (id, name, leader_name, leader_email, keywords)"
            " VALUES ('same-id', $1, 'L', 'l@example.com', '[]')",
            marker,
        )
    rows = await dhv_pool.fetch("SELECT name FROM business_units")
    assert [r["name"] for r in rows] == [marker]


async def test_each_database_has_the_schema(dhv_pool: dv.Pool) -> None:
    status = await dv.schema_status(dhv_pool)
    assert status.up_to_date and status.version >= 2
    assert await dhv_pool.fetchval("SELECT count(*) FROM deal_embeddings") == 0


async def test_factory_databases_are_distinct(dhv_database_factory: object) -> None:
    a = await dhv_database_factory()  # type: ignore[operator]
    b = await dhv_database_factory()  # type: ignore[operator]
    assert a != b
    async with dv.open_pool(a, min_size=1) as pa, dv.open_pool(b, min_size=1) as pb:
        await pa.execute("INSERT INTO users (id, email, password, name) VALUES ('u', 'u@x', 'p', 'U')")
        assert await pb.fetchval("SELECT count(*) FROM users") == 0
