"""Issue 19, point 9: a full disk, on real small filesystems (tmpfs mounts; skipped without root).

* The server's data directory on a small tmpfs (its WAL on the ordinary disk, so the server
  itself keeps running): ``migrate`` ends with one line (``the server's disk is full: could
  not extend file ...: No space left on device``, or ``could not write block ...``), no
  traceback, exit code 1; after the filesystem is grown, a re-run loads exactly the missing
  rows (the target then holds exactly the source's rows; ``verify`` agrees).
* The reject file on a full tmpfs: a ``MigrationError`` naming the file (never a plain
  ``OSError``), the loader's own pool closed; the CLI prints one line naming the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from dealhunter_vectors.db.pool import close_pool, create_pool
from dealhunter_vectors.db.schema import apply_schema, quote_ident
from dealhunter_vectors.errors import MigrationError
from dealhunter_vectors.legacy.database import LegacyDatabaseSummary, LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.migrate.loader import migrate_sqlite
from dealhunter_vectors.migrate.verify import verify_migration
from dealhunter_vectors.tooling.local import LocalServer, init_server

pytestmark = pytest.mark.timeout(900)

SETTINGS = {"fsync": "off", "full_page_writes": "off", "shared_buffers": "16MB", "max_connections": "20"}
MIB = 1024 * 1024


def _mount(args: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:  # no mount binary
        return subprocess.CompletedProcess(args, 127, "", str(exc))


@contextlib.contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of *size* bytes mounted on *path* (skips the test, saying why, where that is impossible)."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (a real full filesystem, not a simulated one)")
    path.mkdir(parents=True, exist_ok=True)
    done = _mount(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {(done.stderr or done.stdout).strip()}")
    try:
        yield path
    finally:
        _mount(["umount", "-l", str(path)])


def resize(path: Path, size: int) -> None:
    done = _mount(["mount", "-o", f"remount,size={size}", str(path)])
    assert done.returncode == 0, done.stderr


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors.cli", *args], capture_output=True, text=True, timeout=600
    )


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "cannot schedule new futures" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


async def counts(url: str, tables: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(url, timeout=30)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {quote_ident(t)}")) for t in tables}
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyDatabaseSummary:
    """~500 deal chunks at 3072 dimensions (~20 KB each in PostgreSQL): about 10 MB to load."""
    spec = LegacyDatasetSpec(
        business_units=2,
        users=3,
        accounts=2,
        pre_qualifications=4,
        qualifications=4,
        deal_embeddings_per_qualification=110,
        deal_embeddings_per_pre_qualification=10,
        raw_chunks_per_pre_qualification=10,
        catalogue_rows=2,
        document_bytes=128,
        n_clusters=4,
        seed=9,
    )
    return build_legacy_database(tmp_path_factory.mktemp("disk-full") / "local.db", spec)


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dhv-disk-full-"))
    path.chmod(0o755)  # the server user reaches the WAL directory below it
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def server_on(mount: Path, root: Path) -> LocalServer:
    """A server whose data directory is on *mount* and whose WAL is on the ordinary disk."""
    server = init_server(mount / "pg", settings=SETTINGS, start=False)
    wal = root / "wal"
    shutil.copytree(server.data_dir / "pg_wal", wal, symlinks=True)
    if server.user is not None:
        for path in [wal, *wal.rglob("*")]:
            shutil.chown(path, server.user, server.user)
    shutil.rmtree(server.data_dir / "pg_wal")
    (server.data_dir / "pg_wal").symlink_to(wal)
    return server.start()


async def test_server_disk_full_is_one_line_and_a_rerun_after_freeing_space_finishes(
    legacy: LegacyDatabaseSummary, root: Path
) -> None:
    with tmpfs(root / "mnt", 512 * MIB) as mount:
        server = await asyncio.to_thread(server_on, mount, root)
        try:
            admin = await asyncpg.connect(server.url(), timeout=30)
            try:
                await admin.execute("CREATE DATABASE full_target")
            finally:
                await admin.close()
            url = server.url("full_target")
            pool = await create_pool(url, min_size=1, max_size=1)
            try:
                await apply_schema(pool)
            finally:
                await close_pool(pool)
            resize(mount, used_bytes(mount) + 8 * MIB)  # room for a part of the load only

            first = await asyncio.to_thread(cli, "migrate", str(legacy.path), "--database-url", url, "--quiet")
            assert first.returncode == 1, first.stderr
            line = one_line(first.stderr)
            # "could not extend file ..." (a table grows) or "could not write block ..." (a buffer written out)
            assert line.startswith("error: the server's disk is full: could not "), line
            assert "No space left on device" in line and "free space on the server, then re-run" in line, line
            assert "re-run the same command" not in line  # no re-run can finish before space is freed
            resize(mount, 512 * MIB)  # space freed (before any query: evicting a dirty page needs room too)
            tables = list(legacy.row_counts)
            before = await counts(url, tables)
            assert 0 < sum(before.values()) < sum(legacy.row_counts.values())
            started = time.perf_counter()
            again = await asyncio.to_thread(
                cli, "migrate", str(legacy.path), "--database-url", url, "--quiet", "--json"
            )
            seconds = time.perf_counter() - started
            assert again.returncode == 0, again.stderr
            assert await counts(url, tables) == dict(legacy.row_counts)
            assert (await verify_migration(legacy.path, url)).ok
            inserted = sum(legacy.row_counts.values()) - sum(before.values())
            print(
                f"\ndisk-full recovery: {sum(before.values())} rows loaded before the fault "
                f"({before['deal_embeddings']} deal chunks), "
                f"re-run inserted {inserted} rows in {seconds:.1f} s (CLI process included)"
            )
        finally:
            server.stop("immediate")


# --------------------------------------------------------------------------- the reject file


def _bad_audit_entry(legacy: LegacyDatabaseSummary, path: Path) -> str:
    """Copy the source to *path*, one audit-trail entry (no table refers to it) with an
    unreadable timestamp: one small reject line; returns its id."""
    shutil.copyfile(legacy.path, path)
    conn = sqlite3.connect(path)
    row_id = str(conn.execute("SELECT min(id) FROM audit_trails").fetchone()[0])
    conn.execute("UPDATE audit_trails SET created_at = 'yesterday' WHERE id = ?", (row_id,))
    conn.commit()
    conn.close()
    return row_id


def _fill(mount: Path) -> None:
    """Write until the filesystem is full."""
    with (mount / "filler").open("wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)


async def _loader_connections(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=30)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await conn.close()


async def test_reject_file_on_a_full_filesystem_is_a_migration_error_naming_it(
    legacy: LegacyDatabaseSummary, dhv_database_factory: Callable[[], Awaitable[str]], root: Path
) -> None:
    source = root / "bad.db"
    bad_id = _bad_audit_entry(legacy, source)
    url = await dhv_database_factory()
    with tmpfs(root / "rejects", 64 * 1024) as mount:
        _fill(mount)
        rejects = mount / "rejects.jsonl"
        # on_error=stop writes the bad row and stops: the line waits in the buffer until the file is closed
        with pytest.raises(MigrationError) as info:
            await migrate_sqlite(source, url, reject_file=rejects)
        message = str(info.value)
        assert type(info.value) is MigrationError and "\n" not in message
        assert f"cannot write the reject file {rejects}: No space left on device" in message, message
        assert f"stopped at audit_trails id={bad_id}" in message and "timestamp_text" in message, message
        assert info.value.report is not None and not info.value.retryable
        for _ in range(100):  # the loader's own pool is closed (its backends go within moments)
            if await _loader_connections(url) == 0:
                break
            await asyncio.sleep(0.1)
        assert await _loader_connections(url) == 0

        # on_error=skip: the first flush after a batch fails the same way
        with pytest.raises(MigrationError, match=r"cannot write the reject file .*: No space left on device"):
            await migrate_sqlite(source, url, on_error="skip", reject_file=rejects)

        done = await asyncio.to_thread(
            cli, "migrate", str(source), "--database-url", url, "--quiet", "--reject-file", str(rejects)
        )
        assert done.returncode == 1, done.stderr
        line = one_line(done.stderr)
        assert f"cannot write the reject file {rejects}: No space left on device" in line, line
        assert "unexpected" not in line and "re-run the same command" not in line, line

        (mount / "filler").unlink()  # space freed: the same command finishes, the bad row in the file
        done = await asyncio.to_thread(
            cli,
            "migrate",
            str(source),
            "--database-url",
            url,
            "--quiet",
            "--on-error",
            "skip",
            "--reject-file",
            str(rejects),
        )
        assert done.returncode == 3, done.stderr  # finished, one row rejected
        written = [json.loads(line) for line in rejects.read_text().splitlines()]
        assert [(r["table"], r["id"]) for r in written] == [("audit_trails", bad_id)]
        assert await counts(url, list(legacy.row_counts)) == {
            t: n - (t == "audit_trails") for t, n in legacy.row_counts.items()
        }
