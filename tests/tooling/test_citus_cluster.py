"""The local Citus cluster: build (cached), start, node registration, CLI, stop."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import asyncpg
import psutil
import pytest

from dealhunter_vectors.errors import CitusError
from dealhunter_vectors.tooling.cluster import (
    LocalCluster,
    build_citus,
    default_citus_source,
    load_cluster,
    stop_cluster,
)

pytestmark = pytest.mark.citus


async def test_cluster_has_a_coordinator_and_two_registered_workers(dhv_citus_cluster: LocalCluster) -> None:
    conn = await asyncpg.connect(dhv_citus_cluster.url)
    try:
        assert (await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'citus'")).startswith("14.0")
        nodes = await conn.fetch("SELECT nodeport, groupid FROM pg_dist_node WHERE noderole = 'primary' ORDER BY 2")
        assert [r["nodeport"] for r in nodes] == [n.port for n in dhv_citus_cluster.nodes]
        assert [r["groupid"] for r in nodes] == [0, 1, 2]
        # every worker answers (citus_check_cluster_node_health tests coordinator <-> worker connections)
        health = await conn.fetch("SELECT * FROM citus_check_cluster_node_health()")
        assert health and all(r["result"] for r in health)
        assert await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'") is not None
    finally:
        await conn.close()


async def test_a_distributed_table_spreads_over_both_workers(dhv_citus_cluster: LocalCluster) -> None:
    name = f"dhv_c_{uuid.uuid4().hex[:8]}"
    url = await dhv_citus_cluster.create_database(name)
    try:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE t (id text PRIMARY KEY, v vector(3))")
            await conn.execute("SELECT create_distributed_table('t', 'id')")
            await conn.execute("INSERT INTO t SELECT i::text, '[1,2,3]' FROM generate_series(1, 200) i")
            ports = await conn.fetch("SELECT DISTINCT nodeport FROM citus_shards WHERE table_name = 't'::regclass")
            assert {r["nodeport"] for r in ports} == {w.port for w in dhv_citus_cluster.workers}
            assert await conn.fetchval("SELECT count(*) FROM t") == 200
        finally:
            await conn.close()
        # the same rows, read on the workers directly
        total = 0
        for worker in dhv_citus_cluster.workers:
            wconn = await asyncpg.connect(worker.url(name))
            try:
                await wconn.execute("SET citus.override_table_visibility TO off")  # show the shards
                shards = await wconn.fetch(
                    "SELECT relname FROM pg_class WHERE relname ~ '^t_[0-9]+$' AND relkind = 'r'"
                )
                for shard in shards:
                    total += await wconn.fetchval(f'SELECT count(*) FROM "{shard["relname"]}"')
            finally:
                await wconn.close()
        assert total == 200
    finally:
        await dhv_citus_cluster.drop_database(name)


def test_build_is_cached(dhv_citus_cluster: LocalCluster) -> None:
    source = default_citus_source()
    assert source is not None
    # the fixture built it: the second call returns the same install dir without building
    install = build_citus(source)
    assert install == Path(dhv_citus_cluster.install_dir)
    assert (install / "lib" / "postgresql" / "citus.so").is_file()


def test_build_rejects_a_missing_or_bad_tarball(tmp_path: Path) -> None:
    with pytest.raises(CitusError, match="not found"):
        build_citus(tmp_path / "nope.tar.gz")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(CitusError, match="cannot unpack"):
        build_citus(bad, cache_dir=tmp_path / "cache")
    not_citus = tmp_path / "empty.tar.gz"
    with tarfile.open(not_citus, "w:gz") as tar:
        tar.add(bad, arcname="src/README")
    with pytest.raises(CitusError, match="not a Citus source tree"):
        build_citus(not_citus, cache_dir=tmp_path / "cache")
    # nothing was marked complete: a later call builds again
    assert not list((tmp_path / "cache").glob("*/complete"))


def test_stop_of_an_unknown_directory_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(CitusError, match="no usable cluster state"):
        stop_cluster(tmp_path)


def _running(pid: int) -> bool:
    # a server that exited may linger as a zombie where PID 1 does not reap orphans (containers)
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


async def _sql(url: str, *statements: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        result: object = None
        for statement in statements:
            result = await conn.fetchval(statement)
        return result
    finally:
        await conn.close()


@pytest.mark.usefixtures("dhv_citus_cluster")  # the build is cached by then
def test_cli_cluster_start_prints_the_coordinator_url_and_stop_stops_exactly_those_servers() -> None:
    directory = Path(tempfile.mkdtemp(prefix="dhv-citus-cli-"))
    try:
        started = _cli("cluster", "start", "--workers", "1", "--dir", str(directory))
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith("/dealhunter")
        cluster = load_cluster(directory)
        assert cluster.url == url and len(cluster.workers) == 1
        pids = [int((Path(n.data_dir) / "postmaster.pid").read_text().split()[0]) for n in cluster.nodes]
        assert asyncio.run(_sql(url, "SELECT count(*) FROM pg_dist_node")) == 2
        asyncio.run(
            _sql(
                url,
                "CREATE TABLE t (id int PRIMARY KEY)",
                "SELECT create_distributed_table('t', 'id')",
                "INSERT INTO t SELECT generate_series(1, 50)",
            )
        )
        stopped = _cli("cluster", "stop", "--dir", str(directory))
        assert stopped.returncode == 0, stopped.stderr
        assert "worker1" in stopped.stdout and "coordinator" in stopped.stdout
        assert not any(_running(pid) for pid in pids)
        again = _cli("cluster", "stop", "--dir", str(tmp := directory / "elsewhere"))
        assert again.returncode == 1 and "no cluster recorded" in again.stderr and "Traceback" not in again.stderr
        assert not tmp.exists()

        # a restart keeps the data; a worker whose old port is taken moves and is re-registered
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT
            taken.bind(("127.0.0.1", cluster.workers[0].port))
            taken.listen()
            restarted = _cli("cluster", "start", "--workers", "1", "--dir", str(directory))
        assert restarted.returncode == 0, restarted.stderr
        now = load_cluster(directory)
        assert now.workers[0].port != cluster.workers[0].port
        assert asyncio.run(_sql(now.url, "SELECT count(*) FROM t")) == 50
        wrong = _cli("cluster", "start", "--workers", "2", "--dir", str(directory))
        assert wrong.returncode == 1 and "1 worker(s), not 2" in wrong.stderr
    finally:
        if (directory / "cluster.json").exists():
            stop_cluster(directory, remove=True)
