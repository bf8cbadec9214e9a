"""The CLI skeleton on a real server: schema apply is idempotent, errors are typed and masked."""

from __future__ import annotations

import asyncpg
import pytest

from dealhunter_vectors.cli import main
from dealhunter_vectors.testing import with_database


async def test_schema_apply_then_again(dhv_server_url: str) -> None:
    import asyncio

    admin = await asyncpg.connect(dhv_server_url)
    await admin.execute('CREATE DATABASE "dhv_cli_fresh"')
    try:
        url = with_database(dhv_server_url, "dhv_cli_fresh")
        assert await asyncio.to_thread(main, ["schema", "apply", "--database-url", url]) == 0
        n = await admin.fetchval("SELECT 1")  # keep admin alive
        assert n == 1
        conn = await asyncpg.connect(url)
        try:
            tables = await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
                " AND table_name <> 'dealhunter_schema_migrations'"
            )
            assert tables == 29
        finally:
            await conn.close()
        assert await asyncio.to_thread(main, ["schema", "apply", "--database-url", url]) == 0
    finally:
        await admin.execute('DROP DATABASE "dhv_cli_fresh" WITH (FORCE)')
        await admin.close()


def test_unreachable_server_exit_code_and_masking(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--database-url", "postgresql://me:Sup3rSecret@127.0.0.1:1/x"])
    assert code == 1
    captured = capsys.readouterr()
    assert "Sup3rSecret" not in captured.out + captured.err
    # doctor reports the unreachable server as its first row (the title shows the masked URL)
    assert "me:***@127.0.0.1:1" in captured.out and "server reachable" in captured.out
    assert "cannot reach" in captured.out


def test_usage_error_exit_code() -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
