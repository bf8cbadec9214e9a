"""The runtime package must work with only its declared dependencies (no dev extras)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import dealhunter_vectors

DEV_ONLY = ("pytest", "pytest_asyncio", "hypothesis", "fastapi", "httpx", "matplotlib")
# The adapters' frameworks are extras, never runtime dependencies: hidden too. Each adapter module
# must then fail to import with the library's typed error naming its extra (and nothing else may
# import it).
ADAPTERS = {
    "dealhunter_vectors.integrations.otel": ("otel", "opentelemetry"),
    "dealhunter_vectors.integrations.langchain": ("langchain", "langchain_core"),
    "dealhunter_vectors.integrations.llama_index": ("llama-index", "llama_index"),
}
HIDDEN = (*DEV_ONLY, "opentelemetry", "langchain_core", "langchain_tests", "llama_index")


def test_runtime_modules_import_without_dev_dependencies() -> None:
    modules = [
        m.name
        for m in pkgutil.walk_packages(dealhunter_vectors.__path__, "dealhunter_vectors.")
        if m.name != "dealhunter_vectors.testing"  # the pytest plugin needs pytest, by design
        and not m.name.endswith(".__main__")  # running them is the CLI itself
        and m.name not in ADAPTERS  # their frameworks are extras: checked below
    ]
    assert "dealhunter_vectors.cli.demo_run" in modules and "dealhunter_vectors.cli" in modules
    walked = {m.name for m in pkgutil.walk_packages(dealhunter_vectors.__path__, "dealhunter_vectors.")}
    assert set(ADAPTERS) <= walked
    # A None entry in sys.modules makes "import pytest" raise ImportError, as on a machine
    # where only the package was installed.
    code = (
        "import sys, importlib\n"
        + "".join(f"sys.modules[{name!r}] = None\n" for name in HIDDEN)
        + f"for m in {modules!r}: importlib.import_module(m)\n"
        + "from dealhunter_vectors.cli import main, _load_extra_commands, build_parser\n"
        + "_load_extra_commands(); build_parser().parse_args(['demo', '--size', 'small'])\n"
        + "from dealhunter_vectors.errors import MissingExtraError\n"
        + f"for m, (extra, framework) in {ADAPTERS!r}.items():\n"
        + "    try:\n"
        + "        importlib.import_module(m)\n"
        + "    except MissingExtraError as exc:\n"
        + "        assert exc.extra == extra and f'dealhunter-vectors[{extra}]' in str(exc), exc\n"
        + "    else:\n"
        + "        raise AssertionError(f'{m} imported without {framework}')\n"
        + "leaked = [n for n in sys.modules if n.split('.')[0] in ('opentelemetry', 'langchain_core', 'llama_index')"
        + " and sys.modules[n] is not None]\n"
        + "assert not leaked, leaked\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
