"""The embedded server's memory sizing: the pure rules, the overrides, and the settings read back
from a started server (pg_settings), plus the doctor's shared_buffers check on a real server."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from dealhunter_vectors.config import Settings
from dealhunter_vectors.db import embedded
from dealhunter_vectors.db.schema import apply_schema
from dealhunter_vectors.db.sizing import (
    GB,
    MB,
    SIZED_SETTINGS,
    buffer_check,
    compute_sizing,
    detect_memory,
    embedding_working_set,
    parse_memory,
    render_conf,
    sizing_from_settings,
)
from dealhunter_vectors.errors import ConfigurationError
from dealhunter_vectors.testing import seed_owners

# PostgreSQL 16's built-in values (docs, "Resource Consumption" / "Planner Cost Constants")
PG_DEFAULTS = {"shared_buffers": 128 * MB, "effective_cache_size": 4 * GB, "work_mem": 4 * MB,
               "maintenance_work_mem": 64 * MB}  # fmt: skip

_ENV = ("SIZING", "MEMORY", *(name.upper() for name in SIZED_SETTINGS))


@pytest.fixture(autouse=True)
def _no_sizing_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(f"DEALHUNTER_EMBEDDED_{name}", raising=False)


# --- the pure rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        # 25 % / 50 % / budget/256 in 4-64 MB / budget/16 in 64 MB-2 GB, whole MB
        (24 * GB, (6 * GB, 12 * GB, 64 * MB, 1536 * MB)),
        (2 * GB, (512 * MB, 1 * GB, 8 * MB, 128 * MB)),
        (1 * GB, (256 * MB, 512 * MB, 4 * MB, 64 * MB)),
        (256 * GB, (8 * GB, 128 * GB, 64 * MB, 2 * GB)),  # shared_buffers and maintenance capped
        (3 * GB + 123_457, (768 * MB, 1536 * MB, 12 * MB, 192 * MB)),  # odd bytes round down to MB
    ],
)
def test_compute_sizing(memory: int, expected: tuple[int, int, int, int]) -> None:
    assert compute_sizing(memory) == dict(zip(SIZED_SETTINGS, expected, strict=True))


def test_small_machines_keep_the_defaults() -> None:
    assert compute_sizing(1 * GB - 1) == {}
    assert compute_sizing(512 * MB) == {}


def test_effective_cache_size_never_below_shared_buffers() -> None:
    for memory in (1 * GB, 5 * GB, 40 * GB, 1024 * GB):
        s = compute_sizing(memory)
        assert s["effective_cache_size"] >= s["shared_buffers"]
        assert s["shared_buffers"] <= memory // 4


@pytest.mark.parametrize(("text", "value"), [("6GB", 6 * GB), ("512mb", 512 * MB), (" 64 kB ", 64 * 1024),
                                             ("1TB", 1024 * GB)])  # fmt: skip
def test_parse_memory(text: str, value: int) -> None:
    assert parse_memory(text, "X") == value


@pytest.mark.parametrize("text", ["6", "1.5GB", "GB", "-1GB", "6 GiB", ""])
def test_parse_memory_refuses(text: str) -> None:
    with pytest.raises(ConfigurationError, match="DEALHUNTER_EMBEDDED_WORK_MEM"):
        parse_memory(text, "DEALHUNTER_EMBEDDED_WORK_MEM")


def test_overrides_and_modes() -> None:
    s = sizing_from_settings(Settings(embedded_memory="8GB", embedded_work_mem="16MB"))
    assert s.memory == 8 * GB and s.mode == "auto"
    assert s.settings == {**compute_sizing(8 * GB), "work_mem": 16 * MB}
    assert s.overridden == {"work_mem"}
    off = sizing_from_settings(Settings(embedded_sizing="defaults", embedded_shared_buffers="1GB"), memory=8 * GB)
    assert off.settings == {"shared_buffers": 1 * GB}  # only what was asked for
    assert "shared_buffers" not in render_conf(sizing_from_settings(Settings(embedded_sizing="Defaults")))


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        (Settings(embedded_sizing="big"), "DEALHUNTER_EMBEDDED_SIZING"),
        (Settings(embedded_memory="lots"), "DEALHUNTER_EMBEDDED_MEMORY"),
        (Settings(embedded_shared_buffers="64kB"), "DEALHUNTER_EMBEDDED_SHARED_BUFFERS"),  # below PostgreSQL's 128kB
        (Settings(embedded_memory="2GB", embedded_shared_buffers="3GB"), "DEALHUNTER_EMBEDDED_SHARED_BUFFERS"),
        (Settings(embedded_maintenance_work_mem="512"), "DEALHUNTER_EMBEDDED_MAINTENANCE_WORK_MEM"),
    ],
)
def test_bad_settings_name_their_variable(settings: Settings, variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        sizing_from_settings(settings, memory=8 * GB)


def _fake_root(tmp_path: Path, cgroup: str, files: dict[str, str]) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    for rel, text in files.items():
        f = tmp_path / "sys/fs/cgroup" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return tmp_path


def test_cgroup_v2_limit_of_an_ancestor_applies(tmp_path: Path) -> None:
    root = _fake_root(
        tmp_path,
        "0::/user.slice/app.scope\n",
        {"user.slice/app.scope/memory.max": "max\n", "user.slice/memory.max": f"{3 * GB}\n", "memory.max": "max"},
    )
    assert detect_memory(root) == 3 * GB


def test_cgroup_v1_limit(tmp_path: Path) -> None:
    root = _fake_root(
        tmp_path,
        "4:memory:/docker/abc\n1:cpu:/\n",
        {
            "memory/docker/abc/memory.limit_in_bytes": f"{2 * GB}\n",
            "memory/memory.limit_in_bytes": "9223372036854771712",
        },
    )
    assert detect_memory(root) == 2 * GB


def test_no_limit_anywhere_is_a_configuration_error(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, "0::/\n", {"memory.max": "max\n"})
    with pytest.raises(ConfigurationError, match="DEALHUNTER_EMBEDDED_MEMORY"):
        detect_memory(root)


def test_this_machine_is_detected() -> None:
    import os

    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < detect_memory() <= physical


# --- a started server reads back what was computed --------------------------------------------


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # not tmp_path: as root the server runs as `pgserver`, which pytest's 0700 tmp root locks out
    base = Path(tempfile.mkdtemp(prefix="dhv-sizing-"))
    try:
        yield base / "pg"
    finally:
        embedded.stop_embedded_server(base / "pg")
        shutil.rmtree(base, ignore_errors=True)


async def _read_back(url: str) -> tuple[dict[str, int], set[str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT name, setting::int8 * pg_size_bytes(CASE WHEN unit ~ '^[0-9]' THEN unit ELSE '1' || unit END)"
            " AS bytes, pending_restart FROM pg_settings WHERE name = ANY($1::text[])",
            list(SIZED_SETTINGS),
        )
    finally:
        await conn.close()
    return {r["name"]: r["bytes"] for r in rows}, {r["name"] for r in rows if r["pending_restart"]}


def test_started_server_has_the_computed_settings(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_MEMORY", "2GB")
    server = embedded.start_embedded(data_dir)
    values, pending = asyncio.run(_read_back(server.url))
    assert values == compute_sizing(2 * GB) == {"shared_buffers": 512 * MB, "effective_cache_size": 1 * GB,
                                                "work_mem": 8 * MB, "maintenance_work_mem": 128 * MB}  # fmt: skip
    assert not pending and not server.restart_pending
    assert server.sizing is not None and server.sizing.memory == 2 * GB


def test_overrides_reach_the_server(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_MEMORY", "2GB")
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_SHARED_BUFFERS", "300MB")
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_WORK_MEM", "12mb")
    values, _ = asyncio.run(_read_back(embedded.start_embedded(data_dir).url))
    assert values == {**compute_sizing(2 * GB), "shared_buffers": 300 * MB, "work_mem": 12 * MB}


def test_defaults_mode_leaves_postgresql_defaults(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_SIZING", "defaults")
    values, _ = asyncio.run(_read_back(embedded.start_embedded(data_dir).url))
    assert values == PG_DEFAULTS


def test_bad_override_fails_before_starting(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_SHARED_BUFFERS", "lots")
    with pytest.raises(ConfigurationError, match="DEALHUNTER_EMBEDDED_SHARED_BUFFERS"):
        embedded.start_embedded(data_dir)
    assert not (data_dir / "PG_VERSION").exists()


def test_running_server_keeps_shared_buffers_until_restart(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_MEMORY", "2GB")
    first = embedded.start_embedded(data_dir)
    # another process with another budget finds it running: forget this process's handle
    embedded._servers.pop(data_dir.resolve())
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_MEMORY", "4GB")
    second = embedded.start_embedded(data_dir)
    assert second.url == first.url and second.restart_pending
    values, pending = asyncio.run(_read_back(second.url))
    wanted = compute_sizing(4 * GB)
    assert values == {**wanted, "shared_buffers": compute_sizing(2 * GB)["shared_buffers"]}  # reloaded, not restarted
    assert pending == {"shared_buffers"}
    second.restart()
    values, pending = asyncio.run(_read_back(second.url))
    assert values == wanted and not pending and not second.restart_pending


def test_an_unchanged_running_server_is_not_reloaded(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_MEMORY", "2GB")
    embedded.start_embedded(data_dir)
    embedded._servers.pop(data_dir.resolve())
    conf = data_dir / embedded.SIZING_CONF
    before = conf.stat().st_mtime_ns
    assert not embedded.start_embedded(data_dir).restart_pending
    assert conf.stat().st_mtime_ns == before
    assert (data_dir / "postgresql.conf").read_text().count(embedded.SIZING_CONF) == 1


# --- doctor: shared_buffers against the embedding tables ------------------------------------------


_FILL = """
INSERT INTO "deal_embeddings" ("id", "qualification_id", "agent_name", "chunk_type", "content", "embedding")
SELECT 'c' || g, 'q-size', 'tech-expert', 'analysis', 'text ' || g,
       (SELECT array_agg(random() + 0 * g + 0 * i)::vector FROM generate_series(1, 3072) AS i)
FROM generate_series(1, $1::int) AS g
"""


async def _check(url: str, fill: int) -> tuple[tuple[str, str, str | None], dict[str, int], int]:
    conn = await asyncpg.connect(url)
    try:
        if fill:
            await apply_schema(conn)
            await seed_owners(conn, qualification_ids=["q-size"])
            await conn.execute(_FILL, fill)
        total = await conn.fetchval(
            "SELECT sum(pg_relation_size(c.oid, f) + coalesce(pg_relation_size(c.reltoastrelid, f), 0)) "
            "FROM pg_class c, unnest(array['main', 'fsm', 'vm']) f WHERE c.relname = 'deal_embeddings'"
        )
        return await buffer_check(conn), await embedding_working_set(conn), int(total)
    finally:
        await conn.close()


def test_buffer_check_warns_below_the_working_set(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_MEMORY", "2GB")
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_SHARED_BUFFERS", "16MB")
    server = embedded.start_embedded(data_dir)
    rows = 1500  # >= 1500 x (12 KB TOASTed float32 + 6 KB inline half) = 27 MB
    (status, detail, fix), sizes, heap_and_toast = asyncio.run(_check(server.url, rows))
    assert sizes.keys() == {"deal_embeddings", "raw_chunks", "pre_qualifications"}
    assert sizes["deal_embeddings"] > heap_and_toast >= rows * 18 * 1024  # + its indexes
    assert status == "warn" and "16.0 MB" in detail
    assert fix is not None and "DEALHUNTER_EMBEDDED_SHARED_BUFFERS" in fix and "parameter group" in fix
    suggested = parse_memory(fix.split("~")[1].split()[0], "fix")
    assert suggested >= sum(sizes.values())

    # room for it: the check turns ok (and a pending restart is reported until the restart)
    monkeypatch.setenv("DEALHUNTER_EMBEDDED_SHARED_BUFFERS", "256MB")
    embedded.write_sizing_conf(data_dir, sizing_from_settings())
    embedded._pg_ctl(data_dir, "reload")
    (status, detail, fix), _, _ = asyncio.run(_check(server.url, 0))
    assert status == "warn" and "restart" in detail and fix is not None and "server stop" in fix
    server.restart()
    (status, detail, fix), _, _ = asyncio.run(_check(server.url, 0))
    assert (status, fix) == ("ok", None) and "256.0 MB" in detail
