"""Issue 10, secrets: a password never shows, whatever prints, logs or chains the object.

Before: ``postgresql://app:Sup3rS3cret#1@db.example.com:5432/dh`` gave a traceback that
showed the password, ports ``notaport`` / ``99999`` and ``[::1`` gave Python tracebacks,
and ``rich.print(get_settings())`` printed the password (pydantic's ``__rich_repr__``
bypassed the masking ``__repr__``).
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import rich
from pydantic import SecretStr
from rich.console import Console

import dealhunter_vectors as dv
from dealhunter_vectors.config import check_database_url
from dealhunter_vectors.db.embedded import EmbeddedServer
from dealhunter_vectors.legacy.database import LegacyDatasetSpec, build_legacy_database

SECRET = "Sup3rS3cret"


def _every_text(obj: object) -> str:
    """str, repr, rich, logging (%s and %r), pydantic dumps."""
    buf = io.StringIO()
    Console(file=buf, width=300).print(obj)
    rich.print(obj, file=buf)
    text = f"{obj!s}\n{obj!r}\n{buf.getvalue()}"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("dhv-secrets-test")
    log.addHandler(handler)
    try:
        log.warning("object %s / %r", obj, obj)
    finally:
        log.removeHandler(handler)
    text += stream.getvalue()
    for dump in ("model_dump", "model_dump_json"):
        if hasattr(obj, dump):
            text += str(getattr(obj, dump)())
    return text


def _chain_text(err: BaseException) -> str:
    text = "".join(traceback.format_exception(err))
    seen: BaseException | None = err
    while seen is not None:
        text += f"{seen}\n{seen!r}\n{seen.args!r}\n"
        seen = seen.__cause__ or seen.__context__
    return text


BAD_URLS = [
    (f"postgresql://app:{SECRET}#1@db.example.com:5432/dh", "'#'"),
    (f"postgresql://app:{SECRET}@db.example.com:notaport/dh", "port is not a number"),
    (f"postgresql://app:{SECRET}@db.example.com:99999/dh", "outside 1-65535"),
    (f"postgresql://app:{SECRET}@[::1/dh", "IPv6"),
    (f"postgresql://app:{SECRET}@::1:5432/dh", "brackets"),
    (f"postgresql://app:{SECRET}/x@db:5432/dh", "percent-encoded"),
    (f"postgresql://app:{SECRET}@h1:5432,h2:0/dh", "outside 1-65535"),
    (f"mysql://app:{SECRET}@db/dh", "unsupported database URL scheme 'mysql'"),
    (f"app:{SECRET}@db/dh", "must start with postgresql://"),
]


@pytest.mark.parametrize(("url", "reason"), BAD_URLS)
def test_malformed_urls_are_one_line_and_masked(url: str, reason: str) -> None:
    with pytest.raises(dv.ConfigurationError) as info:
        check_database_url(url)
    err = info.value
    assert reason in str(err)
    assert "\n" not in str(err)
    assert err.__cause__ is None and err.__context__ is None
    assert SECRET not in _chain_text(err)


@pytest.mark.parametrize(("url", "reason"), BAD_URLS)
async def test_pool_creation_rejects_them_before_the_driver(url: str, reason: str) -> None:
    with pytest.raises(dv.ConfigurationError) as info:
        await dv.create_pool(url, connect_timeout=1)
    assert SECRET not in _chain_text(info.value)
    assert info.value.__context__ is None


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p%23w@db:5432/dh",
        "postgres://u@/dh?host=/tmp/sock",
        "postgresql://u:pw@[::1]:5432/dh",
        "postgresql://u:pw@h1:5432,h2:5433,[::1]/dh?target_session_attrs=read-write",
        "postgresql:///dh",
        "postgresql://db.example.com/dh?password=x%26y&sslmode=require",
    ],
)
def test_valid_urls_pass_unchanged(url: str) -> None:
    assert check_database_url(url) == url


def test_settings_hold_the_url_as_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{SECRET}@db.example.com:5432/dh")
    settings = dv.get_settings()
    assert isinstance(settings.database_url, SecretStr)
    assert settings.database_url.get_secret_value().endswith(f"{SECRET}@db.example.com:5432/dh")
    text = _every_text(settings)
    assert SECRET not in text
    assert "app:***@db.example.com" in text  # repr and rich show the masked URL, not just stars
    assert SECRET not in str(settings.model_dump()) and SECRET not in settings.model_dump_json()


def test_a_validation_error_of_the_settings_does_not_show_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{SECRET}@db/dh")
    monkeypatch.setenv("DEALHUNTER_POOL_MAX_SIZE", "many")
    with pytest.raises(ValueError) as info:
        dv.get_settings()
    assert SECRET not in _chain_text(info.value)


async def test_pool_and_embedded_server_objects_are_masked(dhv_database_url: str) -> None:
    # the embedded server trusts its socket: any password logs in
    assert dhv_database_url.startswith("postgresql://postgres:@")
    url = dhv_database_url.replace("postgres:@", f"postgres:{SECRET}@", 1)
    async with dv.open_pool(url, min_size=1, max_size=1) as pool:
        assert await pool.fetchval("SELECT 1") == 1
        text = _every_text(pool)
        assert SECRET not in text and "postgres:***@" in text
        assert SECRET not in pool.masked_url
    # the pool keeps no plain-text password in its connect arguments either
    assert SECRET not in repr(pool._connect_args) + repr(pool._connect_kwargs)


def test_embedded_server_object_is_masked(tmp_path: Path) -> None:
    url = f"postgresql://postgres:{SECRET}@/postgres?host=/tmp/sock"
    server = EmbeddedServer(tmp_path, None, url)
    assert SECRET not in _every_text(server) + repr(vars(server))
    assert server.url == url  # connectable for asyncpg


async def test_connection_failure_chain_is_masked() -> None:
    url = f"postgresql://someone:{SECRET}@127.0.0.1:1/nowhere"
    with pytest.raises(dv.DatabaseUnavailableError) as info:
        await dv.create_pool(url, connect_timeout=2)
    assert SECRET not in _chain_text(info.value)
    assert "someone:***@127.0.0.1:1" in str(info.value)


async def test_reports_hold_only_the_masked_url(
    dhv_database_factory: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    legacy = build_legacy_database(tmp_path / "legacy.db", LegacyDatasetSpec.tiny(dims=3072, seed=9))
    url = (await dhv_database_factory()).replace("postgres:@", f"postgres:{SECRET}@", 1)
    report = await dv.migrate_sqlite(legacy.path, url, workers=0)
    assert report.ok and "postgres:***@" in report.database
    verification = await dv.verify_migration(legacy.path, url, workers=0)
    for obj in (report, verification):
        assert SECRET not in _every_text(obj)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(("url", "reason"), BAD_URLS[:4])
def test_cli_prints_one_masked_line(url: str, reason: str) -> None:
    done = _cli("doctor", "--database-url", url)
    assert done.returncode == 2  # a configuration error: the usage code of the one exit-code scheme
    assert "Traceback" not in done.stderr and SECRET not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and reason in lines[0], done.stderr
