"""``dealhunter-vectors server status|start|stop`` and the embedded URL forms (issue 11, items 4-5)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from dealhunter_vectors.db.embedded import (
    EmbeddedTarget,
    embedded_server_status,
    embedded_url,
    parse_embedded_url,
    stop_embedded_server,
)
from dealhunter_vectors.errors import ConfigurationError


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def data_dirs() -> Iterator[tuple[Path, Path]]:
    # tempfile, not tmp_path: the server runs as 'pgserver' under root (see testing.py)
    base = Path(tempfile.mkdtemp(prefix="dhv-server-cli-"))
    base.chmod(0o755)
    a, b = base / "a", base / "b"
    try:
        yield a, b
    finally:
        for d in (a, b):
            stop_embedded_server(d)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("embedded", EmbeddedTarget(None, None)),
        ("embedded?database=demo", EmbeddedTarget(None, "demo")),
        ("embedded:///srv/pg", EmbeddedTarget(Path("/srv/pg"), None)),
        ("embedded:///srv/pg?database=demo", EmbeddedTarget(Path("/srv/pg"), "demo")),
        ("embedded:rel/dir", EmbeddedTarget(Path("/work/here/rel/dir"), None)),
        ("embedded:rel/dir?database=x", EmbeddedTarget(Path("/work/here/rel/dir"), "x")),
    ],
)
def test_embedded_url_forms(url: str, expected: EmbeddedTarget) -> None:
    assert parse_embedded_url(url, cwd="/work/here") == expected


@pytest.mark.parametrize(
    "url", ["embedded://relative/dir", "embedded://relative", "embedded://relative/dir?database=x"]
)
def test_two_slashes_with_a_relative_path_is_an_error_naming_both_forms(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_embedded_url(url, cwd="/work/here")
    message = str(info.value)
    assert "embedded:///relative" in message and "embedded:relative" in message


def test_unknown_embedded_options_are_errors() -> None:
    with pytest.raises(ConfigurationError, match="unknown option"):
        parse_embedded_url("embedded:///srv/pg?user=x")


def test_embedded_url_round_trips() -> None:
    assert parse_embedded_url(embedded_url("/srv/pg", "demo")) == EmbeddedTarget(Path("/srv/pg"), "demo")


def test_server_status_start_stop_only_that_data_dir(data_dirs: tuple[Path, Path]) -> None:
    a, b = data_dirs
    proc = _cli("server", "status", "--data-dir", str(a), "--json")
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["running"] is False

    for d in (a, b):
        proc = _cli("server", "start", "--data-dir", str(d), "--json")
        assert proc.returncode == 0, proc.stderr
        started = json.loads(proc.stdout)
        assert started["running"] is True and started["data_dir"] == str(d.resolve())
        assert started["pid"] > 0 and started["owner"]
        assert started["database_url"] == f"embedded://{d.resolve()}"
    pid_a = json.loads(_cli("server", "status", "--data-dir", str(a), "--json").stdout)["pid"]
    # the reported pid is the postmaster of that data dir (the server says so itself)
    status_b = embedded_server_status(b)
    assert status_b.running and status_b.pid != pid_a

    proc = _cli("server", "stop", "--data-dir", str(a))
    assert proc.returncode == 0, proc.stderr
    assert f"pid {pid_a}" in proc.stdout
    assert not embedded_server_status(a).running
    assert embedded_server_status(b).running, "stopping a must leave b running"

    async def ping() -> int:
        assert status_b.url is not None
        conn = await asyncpg.connect(status_b.url)
        try:
            return int(await conn.fetchval("SELECT pg_backend_pid() > 0 AND pg_postmaster_start_time() IS NOT NULL"))
        finally:
            await conn.close()

    import asyncio

    assert asyncio.run(ping()) == 1
    proc = _cli("server", "stop", "--data-dir", str(a))
    assert proc.returncode == 0 and "no embedded server running" in proc.stdout


def test_relative_embedded_url_resolves_against_the_working_directory(data_dirs: tuple[Path, Path]) -> None:
    a, _ = data_dirs
    proc = subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors", "server", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=a.parent,
        env={**os.environ, "DEALHUNTER_EMBEDDED_DATA_DIR": "a"},
    )
    assert json.loads(proc.stdout)["data_dir"] == str(a.resolve())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dealhunter_vectors",
            "schema",
            "apply",
            "--database-url",
            "embedded:a?database=postgres",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=a.parent,
    )
    assert proc.returncode == 0, proc.stderr
    assert embedded_server_status(a).running
