"""CLI and message conventions (issue 11): flags not parameters, one exit-code scheme,
--version, no numpy reprs, one-line errors when piped, python -m, narrow terminals."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dealhunter_vectors as dv
from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database
from dealhunter_vectors.models import DealChunk
from dealhunter_vectors.testing import seed_owners

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user does (a subprocess: stdout/stderr are pipes, not terminals)."""
    return subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("value", "shown", "hidden"),
    [
        ([1e6] + [0.1] * 3071, "1000000.0", "np."),
        ([float("nan")] + [0.1] * 3071, "nan", "np."),
        (["x"] * 3072, "text", "<U"),
        ([True] * 3072, "booleans", "np."),
    ],
)
def test_embedding_messages_have_no_numpy_reprs(value: list[object], shown: str, hidden: str) -> None:
    with pytest.raises(dv.InvalidEmbeddingError) as info:
        dv.as_embedding(value)
    assert shown in str(info.value) and hidden not in str(info.value) and "dtype" not in str(info.value)


def test_python_m_is_the_console_script() -> None:
    proc = _cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: dealhunter-vectors")
    for sub in ("doctor", "schema", "migrate", "verify", "search", "demo", "server"):
        assert sub in proc.stdout


def test_version_agrees_with_the_package_metadata() -> None:
    proc = _cli("--version")
    assert proc.returncode == 0, proc.stderr
    metadata = importlib.metadata.version("dealhunter-vectors")
    assert proc.stdout.strip() == f"dealhunter-vectors {metadata}"
    assert dv.__version__ == metadata


def test_help_and_readme_document_one_exit_code_scheme() -> None:
    text = _cli("--help").stdout
    readme = (REPO / "README.md").read_text()
    codes = text.split("exit codes", 1)[1]
    for code, word in (
        ("0", "success"),
        ("1", "failed"),
        ("2", "usage"),
        ("3", "problems"),
        ("4", "stopped"),
        ("5", "re-run"),
        ("130", "interrupted"),
    ):
        assert re.search(rf"\n  {code}\s+.*{word}", codes), text
        assert re.search(rf"\| {code} \|.*{word}", readme), code
    assert "## Exit codes" in readme


# --- with a database -------------------------------------------------------------------------

LONG_AGENT = "technology-stack-assessment-agent"
Q = "q-3f1c2a9e-5b7d-4c0e-9a41-7d2b8e6f0c13"


@pytest.fixture(scope="module")
def search_db(dhv_database_factory: Any) -> str:
    """A database with a few deal chunks with long ids, agent names and contents."""
    url = dhv_database_factory.create()

    async def fill() -> None:
        rng = np.random.default_rng(5)
        base = rng.standard_normal(3072)
        async with dv.open_pool(url, min_size=1, max_size=2) as pool:
            await seed_owners(pool, qualification_ids=[Q])
            await dv.insert_deal_chunks(
                pool,
                [
                    DealChunk(
                        id=f"chunk-{i}-9c0b7c1e-2f4a-4e55-8d1f-{i:012d}",
                        qualification_id=Q,
                        agent_name=LONG_AGENT,
                        chunk_type="text",
                        content="https://example.com/a/very/long/path/that/would/wrap/" * 3 + f" chunk {i}",
                        embedding=(base + 0.3 * i * rng.standard_normal(3072)).astype(np.float32),
                    )
                    for i in range(4)
                ],
            )

    asyncio.run(fill())
    return url


def test_search_table_keeps_rank_score_and_agent_at_80_columns(search_db: str) -> None:
    first = "chunk-0-9c0b7c1e-2f4a-4e55-8d1f-000000000000"
    proc = _cli(
        "search",
        "lead",
        "--like-chunk",
        first,
        "--qualification-id",
        Q,
        "--threshold",
        "0",
        "--database-url",
        search_db,
        env={"COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), proc.stdout
    header = next(line for line in lines if "similarity" in line)
    assert "#" in header and "agent" in header
    rows = [line for line in lines if "1.0000" in line]
    assert len(rows) == 1, proc.stdout
    assert rows[0].lstrip("│ ").startswith("1 ")
    assert "technology" in rows[0]
    assert sum(1 for line in lines if line.lstrip("│ ")[:2] in {"1 ", "2 ", "3 ", "4 "}) == 4


def test_search_json_is_unaffected_by_the_terminal_width(search_db: str) -> None:
    first = "chunk-0-9c0b7c1e-2f4a-4e55-8d1f-000000000000"
    proc = _cli(
        "search",
        "lead",
        "--like-chunk",
        first,
        "--qualification-id",
        Q,
        "--threshold",
        "0",
        "--json",
        "--database-url",
        search_db,
        env={"COLUMNS": "40"},
    )
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert hits[0]["chunk_id"] == first and hits[0]["similarity"] == pytest.approx(1.0, abs=1e-6)
    assert hits[0]["content"].startswith("https://example.com/a/very/long/path/")


def test_owner_errors_name_flags_and_are_usage_errors(search_db: str) -> None:
    first = "chunk-0-9c0b7c1e-2f4a-4e55-8d1f-000000000000"
    proc = _cli(
        "search",
        "lead",
        "--like-chunk",
        first,
        "--qualification-id",
        Q,
        "--pre-qualification-id",
        "pq-x",
        "--database-url",
        search_db,
    )
    assert proc.returncode == 2
    assert "--qualification-id" in proc.stderr and "--pre-qualification-id" in proc.stderr
    assert "qualification_id" not in proc.stderr.replace("--qualification-id", "").replace("--pre-qualification-id", "")


def test_errors_are_one_line_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    missing = tmp_path / ("a-rather-long-directory-name-" * 4) / "local.db"
    proc = _cli("migrate", str(missing), "--database-url", "postgresql://u@127.0.0.1:1/x", env={"COLUMNS": "40"})
    assert proc.returncode in (1, 2), proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and str(missing) in lines[0]
    assert "Traceback" not in proc.stderr


def test_migrate_a_directory_says_so(tmp_path: Path) -> None:
    proc = _cli("migrate", str(tmp_path), "--database-url", "postgresql://u@127.0.0.1:1/x")
    assert proc.returncode == 1  # an unreadable source: the run failed
    assert "is a directory" in proc.stderr and str(tmp_path) in proc.stderr


def test_verify_against_an_empty_target_says_run_migrate_first(tmp_path: Path, dhv_database_url: str) -> None:
    source = tmp_path / "local.db"
    build_legacy_database(source, LegacyDatasetSpec.tiny(dims=3072))
    proc = _cli("verify", str(source), "--database-url", dhv_database_url)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "target has none of these rows: run migrate first" in out
    assert len(out.splitlines()) < 20, out  # not hundreds of ids


def test_relative_embedded_url_is_a_clear_error(tmp_path: Path) -> None:
    root_dir = Path("/") / f"dhv-not-here-{os.getpid()}"
    try:
        proc = _cli("doctor", env={"DATABASE_URL": f"embedded://relative/{root_dir.name}"})
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "embedded:///" in proc.stderr and "embedded:relative" in proc.stderr
        assert not root_dir.exists()
    finally:
        if (root_dir / "postmaster.pid").exists():  # the old behaviour: a server at the filesystem root
            from dealhunter_vectors.embedded import start_embedded, stop_embedded

            start_embedded(root_dir)
            stop_embedded(root_dir)
        shutil.rmtree(root_dir, ignore_errors=True)


def test_unexpected_errors_are_one_line_without_a_traceback() -> None:
    # the demo cannot create its data directory under /proc: an OSError, not a library error
    proc = _cli("demo", "--size", "small", "--data-dir", "/proc/dhv-no-such/demo", "--database-url", "embedded")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "/proc/dhv-no-such" in lines[0], proc.stderr


def test_name_flags_replaces_parameters_not_words() -> None:
    from dealhunter_vectors.cli._common import name_flags

    flags = {"qualification_id": "--qualification-id", "raw": "--raw", "limit": "--limit"}
    assert name_flags("give exactly one of qualification_id and x", flags) == (
        "give exactly one of --qualification-id and x"
    )
    assert name_flags("no raw chunk with id x", flags) == "no raw chunk with id x"
    assert name_flags("limit must be >= 1, got 0", flags) == "--limit must be >= 1, got 0"
