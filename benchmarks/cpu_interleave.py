"""Interleaved timing that also counts CPU time: the client's and the server backends'.

On a shared machine a search's wall time includes waiting for a core (the backend process is
woken for every statement); the CPU time it burns does not. ``/proc/<pid>/schedstat`` (first
field: nanoseconds on a CPU) gives a backend's CPU time exactly, so each path reports

* ``p50_ms`` / ``p90_ms``: wall time per call (as :func:`benchmarks.perf_side_by_side.interleave`);
  ``min_ms`` / ``p10_ms``: the uncontended end (a busy machine delays most calls, rarely all);
* ``client_cpu_ms``: this thread's CPU time per call (mean);
* ``server_cpu_ms``: the CPU time of the path's backends per call (mean; None when the server
  runs elsewhere or its processes cannot be read);
* ``cpu_ms``: the sum, the work one call costs the machine.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

Path_ = Callable[[int], Awaitable[Any]]


def schedstat_ns(pid: int) -> int | None:
    """Nanoseconds process *pid* has spent on a CPU (None when unreadable)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


async def backend_pids(*conns: Any) -> list[int]:
    """The backend pids of connections or pools (every connection a pool holds open)."""
    pids: list[int] = []
    for c in conns:
        if isinstance(c, asyncpg.Connection):
            pids.append(c.get_server_pid())
        else:  # a pool: its open connections
            for holder in c._holders:  # asyncpg keeps no public list
                con = holder._con
                if con is not None:
                    pids.append(con.get_server_pid())
    return pids


@dataclass
class _Samples:
    wall: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)
    server_known: bool = True


def _server_ns(pids: Sequence[int]) -> int | None:
    total = 0
    for pid in pids:
        v = schedstat_ns(pid)
        if v is None:
            return None
        total += v
    return total


async def interleave_cpu(
    paths: Mapping[str, tuple[Path_, Sequence[int]]], rounds: int, warmup: int, seed: int = 22
) -> dict[str, dict[str, Any]]:
    """Run each path (callable of the round number, backend pids it uses) once per round, shuffled."""
    samples = {name: _Samples() for name in paths}
    rng = random.Random(seed)
    names = list(paths)
    for r in range(warmup + rounds):
        rng.shuffle(names)
        for name in names:
            fn, pids = paths[name]
            s0 = _server_ns(pids) if pids else 0
            c0, t0 = time.thread_time(), time.perf_counter()
            await fn(r)
            t1, c1 = time.perf_counter(), time.thread_time()
            s1 = _server_ns(pids) if pids else 0
            if r < warmup:
                continue
            smp = samples[name]
            smp.wall.append(t1 - t0)
            smp.client.append(c1 - c0)
            if s0 is None or s1 is None:
                smp.server_known = False
            else:
                smp.server.append((s1 - s0) / 1e9)
    out: dict[str, dict[str, Any]] = {}
    for name, smp in samples.items():
        wall = sorted(smp.wall)
        server = statistics.fmean(smp.server) * 1e3 if smp.server_known else None
        client = statistics.fmean(smp.client) * 1e3
        out[name] = {
            "min_ms": wall[0] * 1e3,
            "p10_ms": wall[int(0.1 * (len(wall) - 1))] * 1e3,
            "p50_ms": statistics.median(wall) * 1e3,
            "p90_ms": wall[int(0.9 * (len(wall) - 1))] * 1e3,
            "client_cpu_ms": client,
            "server_cpu_ms": server,
            "cpu_ms": client + (server or 0.0),
            "n": len(wall),
        }
    return out
