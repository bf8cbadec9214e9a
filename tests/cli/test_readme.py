"""THE README TEST: every fenced ``bash`` and ``python`` block of README.md runs, as written.

New blocks are picked up automatically (one test per block, in README order, ids like
``L123-using-the-pool-python``). How the blocks run:

* **One working directory for the whole README**, a fresh temp dir that looks like a
  checkout (``examples/``, ``pyproject.toml``... are links into this repository), with
  ``DATABASE_URL=embedded`` and ``XDG_DATA_HOME`` inside it: the embedded server and the
  demo data live in that temp dir, as on a fresh machine. The embedded server the blocks
  start is stopped at the end.
* **bash blocks** run with ``bash -euo pipefail`` and must exit 0. The install commands are
  the one adaptation, made without rewriting the text: ``.venv/`` is already there, its
  ``bin/X`` runs this environment's X (the package is installed already);
  ``python3 -m venv .venv`` keeps it; ``.venv/bin/pip install -e '.[extras]'`` checks that the
  extras are declared by the installed package and installs nothing.
* **python blocks** run in one namespace, in order, like a notebook (``python -m asyncio``):
  top-level ``await`` works and names from an earlier block are visible in later ones.
  A python block whose first line is ``# NAME.py`` is a file the reader creates: it is
  written to the working directory (a later bash block uses it), not executed.
* **Tags**: an HTML comment right before the fence (see ``tests/support.py``):
  ``<!-- readme-test: skip REASON -->``, ``<!-- readme-test: needs citus -->`` (runs only when
  ``DHV_README_SERVERS`` names it), ``<!-- readme-test: slow -->``,
  ``<!-- readme-test: serves /PATH -->`` (a server that runs until Ctrl-C: started in the
  background with ``UVICORN_PORT`` set to a free port, passes when ``GET /PATH`` answers 200,
  then stopped), ``<!-- readme-test: setup legacy-sqlite PATH -->`` (the block needs the old
  app's SQLite database: a small one is built at PATH first; the README says so).

The only placeholders are those the README names ("data/local.db is your old app's
database"). Run just this file with ``.venv/bin/python -m pytest tests/cli/test_readme.py``.
"""

from __future__ import annotations

import ast
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import README, Block, get_once_served, prepare_workdir, readme_blocks

REPO = README.parent
BLOCKS = readme_blocks()
KNOWN_TAGS = {"skip", "needs", "slow", "serves", "setup"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ReadmeSession:
    workdir: Path
    env: dict[str, str]
    loop: asyncio.AbstractEventLoop
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__readme__"})

    @property
    def embedded_data_dir(self) -> Path:
        return Path(self.env["XDG_DATA_HOME"]) / "dealhunter_vectors" / "pg16"


def _stop_embedded(data_dir: Path) -> None:
    """Stop the server the README's commands left running in *data_dir* (ours only)."""
    if not (data_dir / "postmaster.pid").exists():
        return
    from dealhunter_vectors.db.embedded import start_embedded, stop_embedded

    start_embedded(data_dir)  # reuses the running server: a handle to stop it
    stop_embedded(data_dir)


@pytest.fixture(scope="module")
def readme() -> Iterator[ReadmeSession]:
    # tempfile, not tmp_path: the embedded server runs as the 'pgserver' user under root and
    # must reach the directory (pytest resets /tmp/pytest-of-<user> to 0700).
    workdir = Path(tempfile.mkdtemp(prefix="dhv-readme-"))
    workdir.chmod(0o755)
    path_dir = prepare_workdir(workdir, REPO, Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{path_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": "embedded",
        "XDG_DATA_HOME": str(workdir / ".local" / "share"),
        "UVICORN_PORT": str(_free_port()),
        "COLUMNS": "120",
    }
    for name in ("DEALHUNTER_EMBEDDED_DATA_DIR", "PYTEST_ADDOPTS", "VIRTUAL_ENV"):
        env.pop(name, None)
    mp = pytest.MonkeyPatch()
    for name in ("DATABASE_URL", "XDG_DATA_HOME"):
        mp.setenv(name, env[name])
    mp.delenv("DEALHUNTER_EMBEDDED_DATA_DIR", raising=False)
    loop = asyncio.new_event_loop()
    session = ReadmeSession(workdir, env, loop)
    try:
        yield session
    finally:
        try:
            for value in list(session.namespace.values()):
                close = getattr(value, "close", None)
                if type(value).__name__ == "Pool" and callable(close):
                    loop.run_until_complete(close())
            loop.close()
            _stop_embedded(session.embedded_data_dir)
        finally:
            mp.undo()
            shutil.rmtree(workdir, ignore_errors=True)


def _setup(block: Block, session: ReadmeSession) -> None:
    spec = block.tag("setup")
    if spec is None:
        return
    kind, _, arg = spec.partition(" ")
    if kind == "legacy-sqlite":
        from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database

        target = session.workdir / arg
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            build_legacy_database(target, LegacyDatasetSpec.tiny(dims=3072))
    else:
        raise AssertionError(f"README line {block.line}: unknown setup {kind!r}")


def _run_bash(block: Block, session: ReadmeSession) -> None:
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=session.workdir,
        env=session.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    assert proc.returncode == 0, (
        f"README line {block.line} exited {proc.returncode}:\n{block.code}\n--- stdout\n{proc.stdout[-4000:]}"
        f"\n--- stderr\n{proc.stderr[-4000:]}"
    )


def _serve(block: Block, session: ReadmeSession, path: str) -> None:
    port = session.env["UVICORN_PORT"]
    url = f"http://127.0.0.1:{port}/{path.lstrip('/')}"
    status, _, output = get_once_served(
        ["bash", "-euo", "pipefail", "-c", block.code], cwd=session.workdir, env=session.env, url=url, timeout=180
    )
    assert status == 200, f"README line {block.line}: {url} did not answer 200\n{block.code}\n{output[-4000:]}"


def _run_python(block: Block, session: ReadmeSession) -> None:
    code = compile(block.code, f"README.md:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    saved = os.getcwd()
    os.chdir(session.workdir)
    try:
        result = eval(code, session.namespace)  # the README's own code
        if asyncio.iscoroutine(result):
            session.loop.run_until_complete(result)
    finally:
        os.chdir(saved)


def _params() -> list[Any]:
    params = []
    for block in BLOCKS:
        marks: list[Any] = []
        if block.tag("slow") is not None:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(block, id=block.id, marks=marks))
    return params


def test_readme_has_runnable_blocks_and_known_tags() -> None:
    assert len(BLOCKS) >= 8
    for block in BLOCKS:
        for tag in block.tags:
            assert tag.split(" ", 1)[0] in KNOWN_TAGS, f"README line {block.line}: unknown readme-test tag {tag!r}"
        if block.tag("skip") is not None:
            assert block.tag("skip"), f"README line {block.line}: a skip tag needs a reason"


@pytest.mark.parametrize("block", _params())
def test_readme_block(block: Block, readme: ReadmeSession) -> None:
    skip = block.tag("skip")
    if skip is not None:
        pytest.skip(f"README line {block.line}: {skip}")
    needs = block.tag("needs")
    if needs is not None:
        available = {s.strip() for s in os.environ.get("DHV_README_SERVERS", "").split(",") if s.strip()}
        if needs.split()[0] not in available:
            pytest.skip(f"README line {block.line} needs {needs} (set DHV_README_SERVERS={needs.split()[0]})")
    _setup(block, readme)
    if block.filename:
        target = readme.workdir / block.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code)
        return
    serves = block.tag("serves")
    if serves is not None:
        _serve(block, readme, serves)
    elif block.lang == "bash":
        _run_bash(block, readme)
    else:
        _run_python(block, readme)
