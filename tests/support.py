"""Helpers shared by the tests (one module): the README's code blocks, the CLI loader in a
process of its own, the served example app.

* Reading the fenced code blocks of README.md (used by test_readme.py and the plugin test).
* The CLI loader as a process of its own, for the tests that kill it in the middle of a load.
* A command that serves HTTP (the README's and the demo's uvicorn lines), asked once and stopped.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from dealhunter_vectors.db.migrations import migrations, split_statements
from dealhunter_vectors.db.norms import NORM_CONSTRAINTS

# README code blocks. Reading the fenced code blocks of README.md (used by test_readme.py and the plugin test).
#
# A block is a fence opened with a language (```bash, ```sh, ```python) and closed with
# ```. HTML comments of the form ``<!-- readme-test: ... -->`` right before the fence (only
# blank lines between) tag it:
#
# * ``<!-- readme-test: skip REASON -->``: not run; REASON is shown in the skip message.
# * ``<!-- readme-test: needs WHAT -->``: run only when ``DHV_README_SERVERS`` (a comma-separated
#   list, e.g. ``citus,replica``) names WHAT; otherwise skipped with that reason.
# * ``<!-- readme-test: slow -->``: marked ``pytest.mark.slow`` (still part of the default run).
#
# A ``python`` block whose first line is ``# NAME.py`` (or another file name) is a file the
# reader is asked to create: it is written to the working directory, not executed.

README = Path(__file__).resolve().parent.parent / "README.md"
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}

CHECKOUT_LINKS = ("examples", "docker-compose.yml")
_FENCE = re.compile(r"^```([\w-]*)\s*$")
_TAG = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_FILE_LINE = re.compile(r"^#\s*([\w./-]+\.(?:py|toml|ini|cfg|json|txt))\s*$")


@dataclass(frozen=True)
class Block:
    """One runnable fenced block of the README."""

    lang: str  # "bash" or "python"
    code: str
    section: str
    line: int  # 1-based line of the opening fence
    tags: tuple[str, ...]

    @property
    def filename(self) -> str | None:
        """``conftest.py`` for a python block starting with ``# conftest.py``; else None."""
        first = self.code.lstrip("\n").split("\n", 1)[0]
        m = _FILE_LINE.match(first)
        return m[1] if (m and self.lang == "python") else None

    def tag(self, kind: str) -> str | None:
        """The argument of the first tag of *kind* (``""`` when it has none), or None."""
        for t in self.tags:
            word, _, rest = t.partition(" ")
            if word == kind:
                return rest.strip()
        return None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-") or "top"
        return f"L{self.line}-{slug}-{self.lang}"


def readme_blocks(path: Path = README) -> list[Block]:
    """Every ``bash``/``python`` block of *path*, in order, with its section and tags."""
    blocks: list[Block] = []
    section = ""
    pending: list[str] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            lang = fence[1].lower()
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if lang in RUNNABLE:
                blocks.append(Block(RUNNABLE[lang], "\n".join(body) + "\n", section, start + 1, tuple(pending)))
            pending = []
        elif (tag := _TAG.match(line)) is not None:
            pending.append(tag[1])
        elif (heading := _HEADING.match(line)) is not None:
            section, pending = heading[2], []
        elif line.strip():
            pending = []
        i += 1
    return blocks


def section_blocks(section: str, path: Path = README) -> list[Block]:
    """The blocks under the heading *section*."""
    found = [b for b in readme_blocks(path) if b.section == section]
    if not found:
        raise LookupError(f"README has no runnable block under the heading {section!r}")
    return found


# --- running blocks as written -------------------------------------------------------------

_PIP_SHIM = '''#!{python}
"""pip in the README test: `install` of this project checks the named extras exist and does
nothing else (the package is installed already); anything else goes to the real pip."""
import importlib.metadata as md, os, re, sys
args = sys.argv[1:]
if args and args[0] == "install":
    provided = set(md.metadata("dealhunter-vectors").get_all("Provides-Extra") or [])
    for arg in args[1:]:
        m = re.fullmatch(r"(?:\\.|dealhunter-vectors)\\[([\\w,-]+)\\]", arg)
        if m:
            missing = set(m[1].split(",")) - provided
            if missing:
                sys.exit(f"pip shim: extras {{sorted(missing)}} are not declared by dealhunter-vectors")
    sys.exit(0)
os.execv({python!r}, [{python!r}, "-m", "pip", *args])
'''

_PYTHON3_SHIM = """#!/bin/sh
# python3 in the README test: `python3 -m venv .venv` keeps the prepared .venv; else the real one.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then exit 0; fi
exec {python} "$@"
"""


def prepare_workdir(workdir: Path, repo: Path, venv_bin: Path) -> Path:
    """Make *workdir* look like a fresh checkout with its ``.venv`` already installed.

    What the README's commands use from the checkout is linked in (``examples/``; not
    ``pyproject.toml``, whose pytest options would hide the defaults a new project has);
    ``.venv/bin/X`` runs the current environment's X; ``python3 -m venv .venv`` and
    ``pip install -e '.[extras]'`` are no-ops that check the extras exist. Returns the
    directory to put first on ``PATH`` (the ``python3`` shim).
    """
    for name in CHECKOUT_LINKS:
        target = workdir / name
        if (repo / name).exists() and not target.exists():
            target.symlink_to(repo / name)
    bin_dir = workdir / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    python = venv_bin / "python"
    for tool in venv_bin.iterdir():
        if tool.name.startswith(("activate", "pip", "Activate")) or not tool.is_file():
            continue
        shim = bin_dir / tool.name
        shim.write_text(f'#!/bin/sh\nexec "{tool}" "$@"\n')
        shim.chmod(0o755)
    for name in ("pip", "pip3"):
        shim = bin_dir / name
        shim.write_text(_PIP_SHIM.format(python=str(python)))
        shim.chmod(0o755)
    path_dir = workdir / ".readme-test-bin"
    path_dir.mkdir(exist_ok=True)
    shim = path_dir / "python3"
    shim.write_text(_PYTHON3_SHIM.format(python=str(python)))
    shim.chmod(0o755)
    return path_dir


_AS_FROM_A_TERMINAL = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler);"
    " runpy.run_module('dealhunter_vectors.cli', run_name='__main__', alter_sys=True)"
)
"""``python -m dealhunter_vectors.cli`` with Ctrl-C handled as when started from a terminal. A
process started with SIGINT ignored (a suite run from a background shell job: ``cmd &``) would
otherwise pass that on, and Python then leaves SIGINT ignored, as ``nohup`` users expect."""


def start_loader(path: Path, url: str, *options: str, stderr: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """``dealhunter_vectors.cli migrate PATH --database-url URL --quiet OPTIONS`` in its own
    process group (``os.killpg`` then takes its parsing workers along), SIGINT handled."""
    cmd = [sys.executable, "-c", _AS_FROM_A_TERMINAL, "migrate", str(path), "--database-url", url, "--quiet"]
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


# Rows another writer stored before migration 008's norm checks existed. ------------------------


def norm_check_statements() -> list[str]:
    """Migration 008's three ``ADD CONSTRAINT ... NOT VALID`` statements, as the file has them."""
    [mig] = [m for m in migrations() if m.version == 8]
    return [s for s in split_statements(mig.sql) if "ADD CONSTRAINT" in s]


async def plant_rows_before_norm_checks(db: Any, *writes: tuple[Any, ...]) -> None:
    """Run raw SQL *writes* (``(sql, *args)``; *db* a pool or a connection) that migration 008's
    checks would refuse, as on a database that got them before 008: the checks are dropped for the writes and added back
    ``NOT VALID``, exactly as 008 adds them over such rows (one transaction)."""
    if isinstance(db, asyncpg.Connection):
        await _plant(db, writes)
    else:
        async with db.acquire() as conn:
            await _plant(conn, writes)


async def _plant(conn: asyncpg.Connection, writes: tuple[tuple[Any, ...], ...]) -> None:
    async with conn.transaction():
        for c in NORM_CONSTRAINTS:
            await conn.execute(f'ALTER TABLE "{c.table}" DROP CONSTRAINT IF EXISTS "{c.name}"')
        for sql, *args in writes:
            await conn.execute(sql, *args)
        for statement in norm_check_statements():
            await conn.execute(statement)
