"""The pytest plugin users put in their suites: every test gets its own database.

Both tests below write the same primary key and commit; with shared state the second
would fail on the primary key and see the first one's row.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import prepare_workdir, section_blocks

import dealhunter_vectors as dv

REPO = Path(__file__).resolve().parent.parent


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


def test_readme_section_runs_verbatim_in_a_throwaway_project(tmp_path: Path, dhv_server_url: str) -> None:
    """The README's "In your own tests" section, verbatim, in a new project with
    pytest-asyncio's defaults (strict mode, a loop per test, no ini options): the
    session-scoped server/template fixtures and the per-test pool must not share a loop."""
    blocks = section_blocks("In your own tests")
    assert any(b.filename == "conftest.py" for b in blocks)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # an empty config: every option at its default
    path_dir = prepare_workdir(tmp_path, REPO, Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{path_dir}{os.pathsep}{os.environ['PATH']}", "DATABASE_URL": dhv_server_url}
    env.pop("PYTEST_ADDOPTS", None)
    ran = 0
    for block in blocks:
        if block.filename:
            (tmp_path / block.filename).write_text(block.code)
            continue
        assert block.lang == "bash"
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{block.code}\n{proc.stdout}\n{proc.stderr}"
        ran += 1
        if "pytest" in block.code:
            assert " passed" in proc.stdout and "failed" not in proc.stdout and "error" not in proc.stdout.lower()
    assert ran == 2


def test_fixtures_work_under_pytest_asyncio_defaults_with_several_tests(tmp_path: Path, dhv_server_url: str) -> None:
    """Several tests (each on its own loop) and a module-scoped database URL, default config."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["dealhunter_vectors.testing"]\n')
    (tmp_path / "test_many.py").write_text(
        "import pytest\n"
        "import dealhunter_vectors as dv\n\n"
        "@pytest.mark.asyncio\n"
        "@pytest.mark.parametrize('i', range(3))\n"
        "async def test_pool(dhv_pool, i):\n"
        "    await dhv_pool.execute(\"INSERT INTO users (id, email, password, name) VALUES ('u', 'e', 'p', 'n')\")\n"
        "    assert await dhv_pool.fetchval('SELECT count(*) FROM users') == 1\n\n"
        "@pytest.mark.asyncio\n"
        "async def test_factory(dhv_database_factory):\n"
        "    url = await dhv_database_factory()\n"
        "    async with dv.open_pool(url, min_size=1) as pool:\n"
        "        assert await pool.fetchval('SELECT count(*) FROM deal_embeddings') == 0\n\n"
        "@pytest.mark.asyncio\n"
        "async def test_module_url(dhv_module_database_url):\n"
        "    async with dv.open_pool(dhv_module_database_url, min_size=1) as pool:\n"
        "        assert (await dv.schema_status(pool)).up_to_date\n\n"
        "def test_sync_factory(dhv_database_factory):\n"
        "    assert dhv_database_factory.create() != dhv_database_factory.create()\n"
    )
    env = {**os.environ, "DATABASE_URL": dhv_server_url}
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 passed" in proc.stdout, proc.stdout


def test_testing_extra_brings_what_the_plugin_needs() -> None:
    requires = importlib.metadata.requires("dealhunter-vectors") or []
    testing = [r for r in requires if 'extra == "testing"' in r]
    names = {r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip().lower() for r in testing}
    assert {"pytest", "pytest-asyncio", "dealhunter-vectors"} <= names, testing
    assert any("embedded" in r for r in testing)
