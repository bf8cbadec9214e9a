"""The runtime package must work with only its declared dependencies (no dev extras)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import dealhunter_vectors

DEV_ONLY = ("pytest", "pytest_asyncio", "hypothesis", "fastapi", "httpx", "matplotlib")


def test_runtime_modules_import_without_dev_dependencies() -> None:
    modules = [
        m.name for m in pkgutil.walk_packages(dealhunter_vectors.__path__, "dealhunter_vectors.")
        if m.name != "dealhunter_vectors.testing"  # the pytest plugin needs pytest, by design
        and not m.name.endswith(".__main__")  # running them is the CLI itself
    ]
    assert "dealhunter_vectors.cli.demo_run" in modules and "dealhunter_vectors.cli" in modules
    # A None entry in sys.modules makes "import pytest" raise ImportError, as on a machine
    # where only the package was installed.
    code = (
        "import sys, importlib\n"
        + "".join(f"sys.modules[{name!r}] = None\n" for name in DEV_ONLY)
        + f"for m in {modules!r}: importlib.import_module(m)\n"
        + "from dealhunter_vectors.cli import main, _load_extra_commands, build_parser\n"
        + "_load_extra_commands(); build_parser().parse_args(['demo', '--size', 'small'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
