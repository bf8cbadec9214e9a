"""Several uvicorn worker processes, one pool each, sized to a total connection budget.

Run (data is built once and cached in the ``dhv_perf_owner`` database of the embedded
server at ``.benchmarks/pgdata_perf``, or of ``PERF_DATABASE_URL`` when set)::

    python -m benchmarks.bench_workers --workers 1,2 --connections 20 --concurrency 8,32 --requests 400

For each worker count P, ``examples/fastapi_app.py`` is started as
``python -m uvicorn examples.fastapi_app:app --workers P``; every worker process opens its
own pool in the app's lifespan (``dealhunter_vectors.lifespan``) with
``DEALHUNTER_POOL_MAX_SIZE = connections // P`` (and ``DEALHUNTER_POOL_MIN_SIZE`` the same,
so all connections are open before timing), so the pools add up to at most ``--connections``.
Before starting, the server's ``max_connections`` and ``superuser_reserved_connections`` are
read and ``P * max_size <= max_connections - superuser_reserved_connections - admin margin``
is asserted.

An async load generator (``httpx.AsyncClient``, C concurrent clients) then posts
``--requests`` lead searches (``POST /qualifications/{id}/lead-search``, the owner-scoped data
set's 5 qualifications x 1,000 chunks, queries at cosine 0.8 to the owner's topic, as in
``perf_side_by_side``'s concurrency part) per concurrency level C, after a warm-up. Before
timing, every query's hits are checked against the library's direct
``search_deal_embeddings`` answer; every timed response must be 200.

Measured per (P, C): requests/s, p50/p99 latency (client side, including the wait for a
client slot in the server), and CPU seconds per request (psutil user + system) of

* the uvicorn worker processes (the children of uvicorn's master; the master itself when
  P = 1, where uvicorn serves in one process),
* the PostgreSQL server processes (postmaster and its children, from
  ``<pgdata>/postmaster.pid``; only when the embedded server is used),
* the load generator (this process).

Output: a markdown table on stdout and ``.benchmarks/runs/bench_workers.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy single-threaded on a shared box
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import asyncio
import contextlib
import importlib.util
import json
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import numpy as np
import orjson
import psutil
from numpy.typing import NDArray

import dealhunter_vectors as dv
from benchmarks import datasets as ds
from benchmarks import perf_side_by_side as side
from dealhunter_vectors.db.embedded import stop_embedded
from dealhunter_vectors.legacy.synthetic import query_with_cosine

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / ".benchmarks" / "runs" / "bench_workers.json"
PGDATA = side.PGDATA
APP = "examples.fastapi_app:app"
THRESHOLD = 0.3  # the example's lead-search threshold
LIMIT = 5
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


# ------------------------------------------------------------------ the work


def lead_work(count: int = 64) -> list[tuple[str, NDArray[np.float32]]]:
    """(qualification id, query) pairs near the owners' topics, as perf_side_by_side's concurrency part."""
    space = ds.owner_space()
    rng = ds._rng(14, 4)
    work = []
    for _ in range(count):
        i = int(rng.integers(0, side.OWNERS))
        primary = int(ds._rng(7, 100, i).integers(0, ds.N_CLUSTERS))
        work.append((ds.qualification_id(i), query_with_cosine(space.centres[primary], 0.8, rng)))
    return work


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes  # JSON encoded once: the load generator measures the server, not its own encoder


def requests_for(work: list[tuple[str, NDArray[np.float32]]]) -> list[Request]:
    return [
        Request(f"/qualifications/{q_id}/lead-search", orjson.dumps({"embedding": q.tolist(), "limit": LIMIT}))
        for q_id, q in work
    ]


# ------------------------------------------------------------------ processes and CPU


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def uvicorn_workers(master: psutil.Process) -> list[psutil.Process]:
    """The processes serving requests: the master's children (multiprocessing's resource tracker left out)."""
    workers = []
    for child in master.children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.Error:
            pass
    return workers or [master]  # --workers 1: uvicorn serves in the master process


def postgres_processes(postmaster_pid: int | None) -> list[psutil.Process]:
    if postmaster_pid is None:
        return []
    try:
        main = psutil.Process(postmaster_pid)
        return [main, *main.children(recursive=True)]
    except psutil.Error:
        return []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Uvicorn:
    """``python -m uvicorn examples.fastapi_app:app --workers P`` as a subprocess; :meth:`stop` always cleans up."""

    def __init__(self, workers: int, port: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        cmd = [sys.executable, "-m", "uvicorn", APP, "--workers", str(workers), "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.master = psutil.Process(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the master (uvicorn stops its workers, the lifespan closes the pools), then kill what is left."""
        try:
            family = [self.master, *self.master.children(recursive=True)]
        except psutil.Error:
            family = [self.master]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        _, alive = psutil.wait_procs(family, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        self._log.close()


# ------------------------------------------------------------------ database checks


async def connection_limits(admin: asyncpg.Connection) -> tuple[int, int]:
    max_conn = int(await admin.fetchval("SHOW max_connections"))
    reserved = int(await admin.fetchval("SHOW superuser_reserved_connections"))
    return max_conn, reserved


async def app_connections(admin: asyncpg.Connection, database: str) -> int:
    """Backends the workers' pools hold (the library's application_name) on the benchmark database."""
    n: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
        database,
        "dealhunter_vectors",
    )
    return n


# ------------------------------------------------------------------ load


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


async def wait_ready(
    client: httpx.AsyncClient,
    server: Uvicorn,
    admin: asyncpg.Connection,
    database: str,
    qualification_id: str,
    expected_connections: int,
) -> int:
    """Until the endpoint answers 200 and all workers' pools have opened their connections."""
    deadline = time.monotonic() + READY_TIMEOUT
    answered = False
    opened = 0
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.proc.returncode}:\n{server.log_tail()}")
        if not answered:
            try:
                r = await client.get(f"/qualifications/{qualification_id}/chunks", params={"limit": 1})
                answered = r.status_code == 200
            except httpx.TransportError:
                pass
        opened = await app_connections(admin, database)
        if answered and opened >= expected_connections:
            return opened
        await asyncio.sleep(0.2)
    raise RuntimeError(
        f"uvicorn not ready after {READY_TIMEOUT:.0f} s (answered={answered}, pool connections {opened}"
        f" of {expected_connections}):\n{server.log_tail()}"
    )


async def verify(
    client: httpx.AsyncClient, pool: dv.Pool, work: list[tuple[str, NDArray[np.float32]]], reqs: list[Request]
) -> None:
    """Every query's HTTP hits equal the library's direct answer (same call as the example's handler)."""
    for (q_id, q), req in zip(work, reqs, strict=True):
        r = await client.post(req.path, content=req.body, headers={"content-type": "application/json"})
        assert r.status_code == 200, f"{req.path}: {r.status_code} {r.text[:300]}"
        direct = await dv.search_deal_embeddings(
            pool, q, qualification_id=q_id, threshold=THRESHOLD, limit=LIMIT, filter_fallback=True
        )
        expected = [h.model_dump(mode="json") for h in direct]
        got = r.json()["hits"]
        assert expected, f"{req.path}: the direct search found nothing (data set?)"
        assert got == expected, f"{req.path}: HTTP hits differ from search_deal_embeddings"


async def drive(client: httpx.AsyncClient, reqs: list[Request], total: int, concurrency: int) -> list[float]:
    """*total* requests by *concurrency* clients; latencies in seconds. Raises on any non-200."""
    latencies: list[float] = []
    failures: list[str] = []
    counter = iter(range(total))
    headers = {"content-type": "application/json"}

    async def one_client() -> None:
        for k in counter:
            req = reqs[k % len(reqs)]
            t0 = time.perf_counter()
            r = await client.post(req.path, content=req.body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200:
                failures.append(f"{req.path}: {r.status_code} {r.text[:200]}")

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    if failures:
        raise AssertionError(f"{len(failures)} of {total} responses were not 200; first: {failures[0]}")
    return latencies


async def run_workers(
    p: int,
    args: argparse.Namespace,
    db_url: str,
    admin: asyncpg.Connection,
    verify_pool: dv.Pool,
    postmaster_pid: int | None,
    work: list[tuple[str, NDArray[np.float32]]],
    reqs: list[Request],
) -> list[dict[str, Any]]:
    per_worker = args.connections // p
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALHUNTER_")}
    env.pop("DATABASE_REPLICA_URLS", None)
    env.update(
        DATABASE_URL=db_url,
        DEALHUNTER_POOL_MAX_SIZE=str(per_worker),
        DEALHUNTER_POOL_MIN_SIZE=str(per_worker),
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
    )
    levels = [int(x) for x in args.concurrency.split(",")]
    port = free_port()
    log_path = Path(args.out).with_name(f"bench_workers_uvicorn_p{p}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    limits = httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    timeout = httpx.Timeout(60.0)
    rows: list[dict[str, Any]] = []
    server = Uvicorn(p, port, env, log_path)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=timeout) as client:
            opened = await wait_ready(
                client, server, admin, side.owner_database(), work[0][0], expected_connections=p * per_worker
            )
            workers = uvicorn_workers(server.master)
            assert len(workers) == p, f"expected {p} uvicorn worker processes, found {len(workers)}"
            assert opened <= args.connections, f"{opened} pool connections exceed the budget {args.connections}"
            print(f"P={p}: {len(workers)} worker process(es), pool max {per_worker} each, {opened} pool connections")
            await verify(client, verify_pool, work, reqs)
            await drive(client, reqs, args.warmup, max(levels))
            for c in levels:
                pg = postgres_processes(postmaster_pid)
                w0, s0 = cpu_seconds(workers), cpu_seconds(pg)
                c0, t0 = time.process_time(), time.perf_counter()
                latencies = await drive(client, reqs, args.requests, c)
                t1, c1 = time.perf_counter(), time.process_time()
                w1, s1 = cpu_seconds(workers), cpu_seconds(pg)
                n = args.requests
                row = {
                    "workers": p,
                    "pool_max_per_worker": per_worker,
                    "pool_connections_total": p * per_worker,
                    "clients": c,
                    "requests": n,
                    "requests_per_s": n / (t1 - t0),
                    "p50_ms": percentile(latencies, 50) * 1e3,
                    "p99_ms": percentile(latencies, 99) * 1e3,
                    "uvicorn_cpu_ms_per_request": (w1 - w0) / n * 1e3,
                    "postgres_cpu_ms_per_request": (s1 - s0) / n * 1e3 if pg else None,
                    "loadgen_cpu_ms_per_request": (c1 - c0) / n * 1e3,
                    "pool_connections_after": await app_connections(admin, side.owner_database()),
                }
                rows.append(row)
                print(f"  C={c}: {row['requests_per_s']:.1f} req/s, p50 {row['p50_ms']:.1f} ms", flush=True)
    finally:
        server.stop()
    return rows


# ------------------------------------------------------------------ main


def markdown(rows: list[dict[str, Any]]) -> str:
    def ms(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    lines = [
        "| workers | pool max / worker | clients | req/s | p50 ms | p99 ms"
        " | uvicorn CPU ms/req | PostgreSQL CPU ms/req | load gen CPU ms/req |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workers']} | {r['pool_max_per_worker']} | {r['clients']} | {r['requests_per_s']:.1f}"
            f" | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {ms(r['uvicorn_cpu_ms_per_request'])}"
            f" | {ms(r['postgres_cpu_ms_per_request'])} | {ms(r['loadgen_cpu_ms_per_request'])} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--workers", default="1,2", help="uvicorn worker counts, comma separated (default 1,2)")
    ap.add_argument("--connections", type=int, default=20, help="total pool connections over all workers")
    ap.add_argument("--concurrency", default="8,32", help="concurrent clients, comma separated (default 8,32)")
    ap.add_argument("--requests", type=int, default=400, help="requests per (workers, clients) level")
    ap.add_argument("--warmup", type=int, default=100, help="requests before timing, per worker count")
    ap.add_argument(
        "--admin-margin",
        type=int,
        default=5,
        help="connections kept free for admin/migrate/CLI (this script holds 2 of them)",
    )
    ap.add_argument("--out", default=str(OUT))
    return ap.parse_args()


async def main(args: argparse.Namespace) -> None:
    worker_counts = [int(x) for x in args.workers.split(",")]
    url, embedded = side.benchmark_server()
    admin = await asyncpg.connect(url)
    verify_pool: dv.Pool | None = None
    try:
        postmaster_pid = None
        pid_file = PGDATA / "postmaster.pid"
        if embedded and pid_file.exists():
            postmaster_pid = int(pid_file.read_text().split()[0])
        max_conn, reserved = await connection_limits(admin)
        available = max_conn - reserved - args.admin_margin
        print(
            f"server: max_connections {max_conn}, superuser_reserved_connections {reserved},"
            f" admin margin {args.admin_margin}: {available} connections for the workers' pools"
        )
        for p in worker_counts:
            per = args.connections // p
            assert per >= 1, f"--connections {args.connections} is less than {p} workers"
            assert p * per <= available, (
                f"{p} workers x pool max {per} = {p * per} > max_connections {max_conn} - reserved {reserved}"
                f" - admin margin {args.admin_margin}"
            )
            print(f"  P={p}: {p} x {per} = {p * per} <= {available}: ok")
        db_url, meta = await side.ensure_database(admin, url, side.owner_database(), side.build_owner)
        verify_pool = await dv.create_pool(  # not counted as a worker's pool connection (application_name)
            db_url, min_size=1, max_size=1, server_settings={"application_name": "bench_workers_verify"}
        )
        work = lead_work()
        reqs = requests_for(work)
        report: dict[str, Any] = {
            "run": datetime.now(UTC).isoformat(),
            "machine": f"{os.cpu_count()} CPUs {platform.machine()}, load avg {os.getloadavg()}",
            "python": platform.python_version(),
            "postgres": await admin.fetchval("SHOW server_version"),
            "database_rows": meta.get("rows"),
            "max_connections": max_conn,
            "superuser_reserved_connections": reserved,
            "admin_margin": args.admin_margin,
            "connections_budget": args.connections,
            "uvicorn": {
                "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
                "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
            },
            "postgres_cpu_measured": postmaster_pid is not None,
            "options": vars(args),
            "results": [],
        }
        for p in worker_counts:
            report["results"] += await run_workers(p, args, db_url, admin, verify_pool, postmaster_pid, work, reqs)
        report["load_avg_end"] = os.getloadavg()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, default=float))
        print()
        print(markdown(report["results"]))
        print(f"\nwritten: {out}")
    finally:
        if verify_pool is not None:
            await dv.close_pool(verify_pool)
        await admin.close()
        if embedded:
            stop_embedded(PGDATA)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
