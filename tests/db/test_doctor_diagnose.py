"""doctor diagnoses a server as it finds it, without bootstrapping (issue 11, item 2).

Real databases on the embedded server: one where the vector extension was never created,
one seen through a role without CREATE privilege, a database that does not exist, and a
port nobody listens on.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from dealhunter_vectors.config import with_database
from dealhunter_vectors.db.doctor import diagnose


def _doctor(url: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    """Run ``doctor`` as a user does: JSON for the checks, then the table for the text."""
    proc = subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors", "doctor", "--database-url", url, "--json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    table = subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors", "doctor", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert table.returncode == proc.returncode
    assert table.stderr == "", table.stderr
    return proc.returncode, json.loads(proc.stdout), table.stdout


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


async def _admin(server_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        for s in statements:
            await conn.execute(s)
    finally:
        await conn.close()


async def _extension_installed(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"))
    finally:
        await conn.close()


@pytest.fixture
def bare_database(dhv_server_url: str) -> Iterator[str]:
    """A fresh database where nobody ran CREATE EXTENSION vector."""
    name = f"dhv_bare_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(dhv_server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(dhv_server_url, name)
    finally:
        asyncio.run(_admin(dhv_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def limited_role_url(dhv_server_url: str, bare_database: str) -> Iterator[str]:
    """*bare_database* seen through a login role that is neither superuser nor owner."""
    role = f"dhv_limited_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(dhv_server_url, f'CREATE ROLE "{role}" LOGIN'))
    parts = urlsplit(bare_database)
    netloc = f"{role}@{parts.netloc.rsplit('@', 1)[-1]}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        asyncio.run(_admin(bare_database, f'DROP OWNED BY "{role}"'))
        asyncio.run(_admin(dhv_server_url, f'DROP ROLE IF EXISTS "{role}"'))


def test_database_without_the_extension(bare_database: str) -> None:
    code, report, table = _doctor(bare_database)
    assert code == 1
    checks = _by_name(report)
    assert [c["name"] for c in report["checks"]][:4] == [
        "server reachable",
        "authenticated",
        "database",
        "postgresql version",
    ]
    assert checks["server reachable"]["status"] == "ok" and checks["authenticated"]["status"] == "ok"
    assert checks["pgvector available"]["status"] == "ok"
    assert checks["pgvector installed"]["status"] == "fail"
    assert "schema apply" in checks["pgvector installed"]["fix"]
    assert checks["pgvector version"]["detail"].startswith("pgvector 0.8")
    assert checks["privileges"]["status"] == "ok"  # the embedded server's postgres is a superuser
    assert checks["schema"]["status"] == "fail" and "schema apply" in checks["schema"]["fix"]
    # one row per check in the table, each failing row with what to do; nothing run together
    for name in ("server reachable", "authenticated", "pgvector available", "pgvector installed", "schema"):
        assert name in table
    assert "FeatureNotSupportedError" not in table and "NOT healthy" in table
    # doctor looked, it did not change anything
    assert asyncio.run(_extension_installed(bare_database)) is False


def test_role_without_create_privilege(limited_role_url: str) -> None:
    code, report, table = _doctor(limited_role_url)
    assert code == 1
    checks = _by_name(report)
    assert checks["authenticated"]["status"] == "ok"
    installed = checks["pgvector installed"]
    assert installed["status"] == "fail"
    assert "ask a superuser" in installed["fix"] and "CREATE EXTENSION vector" in installed["fix"]
    privileges = checks["privileges"]
    assert privileges["status"] == "fail"  # no schema yet: judged for applying it
    assert "cannot administer (no CREATE on schema public)" in privileges["detail"]
    assert 'GRANT CREATE ON SCHEMA "public" TO' in privileges["fix"]
    assert 'GRANT CREATE ON SCHEMA "public"' in table and "ask a superuser" in table


def test_database_that_does_not_exist(dhv_server_url: str) -> None:
    code, report, _ = _doctor(with_database(dhv_server_url, "dhv_no_such_database"))
    assert code == 1
    checks = _by_name(report)
    assert checks["server reachable"]["status"] == "ok"
    assert checks["database"]["status"] == "fail" and "CREATE DATABASE" in checks["database"]["fix"]


def test_unreachable_server_never_shows_the_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://someone:s3cret-pw@127.0.0.1:{port}/db"
    code, report, table = _doctor(url)
    assert code == 1
    [check] = report["checks"]
    assert check["name"] == "server reachable" and check["status"] == "fail"
    assert f"127.0.0.1:{port}" in check["detail"] and "start the server" in check["fix"]
    assert "s3cret-pw" not in json.dumps(report) and "s3cret-pw" not in table


async def test_healthy_database_every_row(dhv_database_url: str) -> None:
    report = await diagnose(dhv_database_url)
    assert report.healthy, report.checks
    names = [c.name for c in report.checks]
    for expected in (
        "server reachable",
        "authenticated",
        "database",
        "postgresql version",
        "pgvector available",
        "pgvector installed",
        "pgvector version",
        "privileges",
        "schema",
    ):
        assert expected in names
    assert any(n.startswith("index ") for n in names)
