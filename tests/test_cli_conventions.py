"""CLI and message conventions (issue 11): flags not parameters, one exit-code scheme,
--version, no numpy reprs, one-line errors when piped, python -m, narrow terminals."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dealhunter_vectors as dv

REPO = Path(__file__).resolve().parent.parent


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
    for line in ("0 ", "1 ", "2 usage", "130"):
        assert f"\n  {line}" in text.split("exit codes:", 1)[1], text
    assert "## Exit codes" in readme
