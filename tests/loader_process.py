"""The CLI loader as a process of its own, for the tests that kill it in the middle of a load."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg


def start_loader(path: Path, url: str, *options: str, stderr: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """``dealhunter_vectors.cli migrate PATH --database-url URL --quiet OPTIONS`` in its own
    process group (``os.killpg`` then takes its parsing workers along)."""
    cmd = [sys.executable, "-m", "dealhunter_vectors.cli", "migrate", str(path), "--database-url", url, "--quiet"]
    return subprocess.Popen([*cmd, *options], start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr)


async def kill_group_when_loaded(
    proc: subprocess.Popen[bytes], conn: asyncpg.Connection, rows: int, *, timeout: float
) -> None:
    """SIGKILL the loader's process group once ``deal_embeddings`` holds at least *rows* rows,
    and reap the loader; fails when it exits or *timeout* seconds pass first."""
    loaded = 0
    deadline = time.monotonic() + timeout
    while loaded < rows:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the loader never reached deal_embeddings"
        await asyncio.sleep(0.05)
        loaded = await conn.fetchval("SELECT count(*) FROM deal_embeddings")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
