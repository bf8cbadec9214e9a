"""A command that serves HTTP (the README's and the demo's uvicorn lines), asked once and stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path


def get_once_served(
    command: list[str], *, cwd: Path, env: Mapping[str, str], url: str, timeout: float
) -> tuple[int | None, bytes | None, str]:
    """Start *command* in its own process group, GET *url* until it answers (at most *timeout*
    seconds, while the command runs), then stop it as a reader would (Ctrl-C: SIGINT to the
    group; SIGKILL after 30 s). Returns the answer's status and body (None, None without an
    answer) and the command's output."""
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    status = body = None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    status, body = response.status, response.read()
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    output = proc.stdout.read() if proc.stdout else ""
    return status, body, output
