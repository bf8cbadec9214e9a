"""The library and its adapter extras install next to the ecosystem's usual pins (langchain-postgres, llama-index).

langchain-postgres pins the ``pgvector`` Python package below 0.4, llama-index below 1.0; the
library needs no ``pgvector`` package at all (its codecs are in ``vector_codec``), so pip's
resolver must accept it next to both. The resolver test asks the package index (PyPI here):
it is skipped, with the reason, when no index answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("langchain-postgres", "llama-index-vector-stores-postgres")


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def test_runtime_dependencies_do_not_include_pgvector_or_peers() -> None:
    deps = [Requirement(r).name.lower() for r in _project()["dependencies"]]  # type: ignore[union-attr]
    assert "pgvector" not in deps
    assert not set(deps) & set(PEERS)
    extras = _project()["optional-dependencies"]
    # the peers, uvloop for perf_side_by_side --loop uvloop, the sentence model of bench_global_rule's real set
    assert {Requirement(r).name for r in extras["benchmarks"]} == {*PEERS, "uvloop"}  # type: ignore[index]


def test_shared_pins_intersect_with_the_peers() -> None:
    """asyncpg / numpy: our ranges admit versions inside the peers' published ranges (offline check)."""
    ours = {Requirement(r).name.lower(): Requirement(r).specifier for r in _project()["dependencies"]}  # type: ignore[union-attr]
    peer_pins = {  # langchain-postgres 0.0.19 and llama-index-vector-stores-postgres 0.9.0 metadata
        "asyncpg": ["0.30.0", "0.31.0", "0.32.0"],
        "numpy": ["1.26.4", "2.2.6", "2.4.0"],
    }
    for name, versions in peer_pins.items():
        assert any(ours[name].contains(v) for v in versions), f"{name}: {ours[name]} excludes {versions}"


ADAPTER_EXTRAS = ("otel", "langchain", "llama-index")


def test_adapter_extras_are_declared_with_tested_bounds_and_in_dev() -> None:
    extras = _project()["optional-dependencies"]
    for extra in ADAPTER_EXTRAS:
        for requirement in extras[extra]:  # type: ignore[index]
            spec = Requirement(requirement).specifier
            assert any(s.operator == ">=" for s in spec) and any(s.operator == "<" for s in spec), requirement
    dev_self = next(Requirement(r) for r in extras["dev"] if Requirement(r).name == "dealhunter-vectors")  # type: ignore[index]
    assert set(ADAPTER_EXTRAS) <= dev_self.extras  # CI installs [dev]: the adapter tests run there


@pytest.mark.slow
def test_pip_resolves_the_library_next_to_both_peers(tmp_path: Path) -> None:
    extras = _project()["optional-dependencies"]
    adapters = [r for extra in ADAPTER_EXTRAS for r in extras[extra]]  # type: ignore[index]
    requirements = [*_project()["dependencies"], *adapters, *PEERS]  # type: ignore[misc]
    report = tmp_path / "report.json"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--disable-pip-version-check",
        "--report",
        str(report),
        *requirements,
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("the package index did not answer within 600 s")
    if done.returncode != 0:
        unreachable = ("Could not fetch", "No matching distribution", "Failed to establish", "NewConnectionError")
        if any(s in done.stderr for s in unreachable) and "ResolutionImpossible" not in done.stderr:
            pytest.skip(f"no package index reachable: {done.stderr.strip().splitlines()[-1]}")
        pytest.fail(f"pip could not resolve the library next to {PEERS}:\n{done.stderr[-3000:]}")
    installed = {
        i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]
    }
    for peer in PEERS:
        assert peer in installed
    for requirement in map(Requirement, adapters):  # the adapters' frameworks, within our pins, next to the peers
        assert requirement.specifier.contains(installed[requirement.name.lower()], prereleases=True), requirement
    # the peers bring their own pgvector (< 0.4 for langchain-postgres); nothing of ours constrains it
    assert "pgvector" in installed and Requirement("pgvector<0.4").specifier.contains(installed["pgvector"])
