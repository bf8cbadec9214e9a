"""The demo ends with commands that explore its data, and they work as printed (issue 11, item 3).

The demo runs as a user runs it (the console script from the checkout, output to a pipe at
80 columns) against its own embedded server; then every printed command is run verbatim:
doctor, a search by a printed (full) chunk id, and the FastAPI app (on a free port through
``UVICORN_PORT``; the printed curl path is requested from it). A demo that fails before
loading anything leaves no database behind.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import orjson
import pytest
from support import get_once_served

from dealhunter_vectors.db.embedded import embedded_server_status, stop_embedded_server

REPO = Path(__file__).resolve().parents[2]
DHV = str(Path(sys.executable).parent / "dealhunter-vectors")


@pytest.fixture(scope="module")
def server_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="dhv-demo-follow-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        stop_embedded_server(base / "pg")
        shutil.rmtree(base, ignore_errors=True)


def _run(command: str, *, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
    )


def _databases(server_dir: Path) -> set[str]:
    status = embedded_server_status(server_dir / "pg")
    assert status.url is not None

    async def names() -> set[str]:
        conn = await asyncpg.connect(status.url)
        try:
            return {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        finally:
            await conn.close()

    return asyncio.run(names())


def test_failed_demo_leaves_no_empty_database(server_dir: Path) -> None:
    data_dir = server_dir / "broken-demo-data"
    data_dir.mkdir()
    (data_dir / "legacy.sqlite").write_bytes(b"this is not a SQLite database" * 100)
    proc = _run(f"{DHV} demo --size default --repeat 1 --data-dir {data_dir} --database-url embedded://{server_dir}/pg")
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "dealhunter_demo_default" not in _databases(server_dir)


@pytest.fixture(scope="module")
def demo_output(server_dir: Path) -> str:
    proc = _run(
        f"{DHV} demo --size small --repeat 1 --data-dir {server_dir / 'demo-data'} "
        f"--database-url embedded://{server_dir}/pg"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _printed_commands(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("explore the demo data"))
    commands = []
    for line in lines[start + 1 :]:
        if not line.startswith("  ") or line.startswith("  ("):
            break
        commands.append(line[2:])
    return commands


def test_demo_prints_commands_with_full_ids_and_the_demo_database(demo_output: str, server_dir: Path) -> None:
    commands = _printed_commands(demo_output)
    assert len(commands) == 4, commands
    assert commands[0].split()[1] == "doctor" and commands[1].split()[1:3] == ["search", "lead"]
    assert commands[2].startswith("DATABASE_URL=") and commands[3].startswith("curl ")
    url = f"embedded://{server_dir}/pg?database=dealhunter_demo_small"
    assert all(url in c for c in commands[:3])
    search = shlex.split(commands[1])
    chunk_id = search[search.index("--like-chunk") + 1]
    assert len(chunk_id) > 12  # the whole id, as stored
    assert "server stop" in demo_output  # what keeps running, and how to stop it


def test_printed_doctor_and_search_commands_work(demo_output: str) -> None:
    doctor, search = _printed_commands(demo_output)[:2]
    proc = _run(doctor)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "healthy" in proc.stdout and "NOT healthy" not in proc.stdout
    proc = _run(search)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1.0000" in proc.stdout  # the chunk finds itself first
    proc = _run(search + " --json")
    hits = orjson.loads(proc.stdout)
    chunk_id = shlex.split(search)[shlex.split(search).index("--like-chunk") + 1]
    assert hits[0]["chunk_id"] == chunk_id


def test_printed_web_app_command_serves_the_demo_data(demo_output: str) -> None:
    app, curl = _printed_commands(demo_output)[2:4]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = curl.split("http://127.0.0.1:8000", 1)[1]
    _, raw, output = get_once_served(
        ["bash", "-c", app],
        cwd=REPO,
        env={**os.environ, "UVICORN_PORT": str(port)},
        url=f"http://127.0.0.1:{port}{path}",
        timeout=120,
    )
    body = None if raw is None else orjson.loads(raw)
    assert body, output[-3000:]
    assert len(body) == 3 and all(h["chunk_id"] for h in body)


def test_the_web_app_line_carries_the_interpreter_and_installs_what_it_needs() -> None:
    """Issue 21, "Also": after the README's main command (``[embedded]`` only) the uvicorn line
    failed: uvicorn was not installed and the line named a bare ``uvicorn``."""
    import tomllib

    from packaging.requirements import Requirement

    from dealhunter_vectors.cli.demo_run import WEB_APP_MODULES, follow_up_commands

    url = "embedded:///data/pg?database=dealhunter_demo_small"
    without = follow_up_commands(url, qualification_id="q-1", chunk_id="c-1", web_app=False)
    with_app = follow_up_commands(url, qualification_id="q-1", chunk_id="c-1", web_app=True)
    assert len(without) == 5 and len(with_app) == 4 and without[:2] == with_app[:2]
    install, serve = without[2], without[3]
    python = shlex.split(install)[0]
    assert Path(python).absolute() == Path(sys.executable).absolute()  # this environment's interpreter
    assert install == f"{shlex.quote(python)} -m pip install -e '.[examples]'"
    expected = f"DATABASE_URL={shlex.quote(url)} {shlex.quote(python)} -m uvicorn examples.fastapi_app:app"
    assert serve == with_app[2] == expected
    # what the install line installs is what the app needs
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(WEB_APP_MODULES) <= {Requirement(r).name for r in extras["examples"]}


def test_web_app_installed_tells_a_missing_uvicorn() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from dealhunter_vectors.cli.demo_run import web_app_installed\n"
        "print(web_app_installed())\n"
    )
    blocked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert blocked.stdout.strip() == "False", blocked.stderr
    from dealhunter_vectors.cli.demo_run import web_app_installed

    assert web_app_installed()  # [dev] installs [examples]
