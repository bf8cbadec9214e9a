"""``dealhunter-vectors cluster start|stop``: a local Citus cluster for development and tests."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import platformdirs
from rich.console import Console

from ..errors import CitusError
from ..tooling.cluster import DEFAULT_CITUS_SOURCE_ENV, STATE_FILE, default_citus_source, start_cluster, stop_cluster
from ._common import EXIT_OK


def default_cluster_dir() -> Path:
    """Where ``cluster start`` keeps the data directories and the state file by default."""
    return Path(platformdirs.user_data_dir("dealhunter_vectors")) / "citus-cluster"


async def cmd_cluster_start(args: argparse.Namespace, console: Console) -> int:
    source = args.citus_source or default_citus_source()
    if source is None:
        raise CitusError(f"no Citus source tarball: pass --citus-source or set {DEFAULT_CITUS_SOURCE_ENV}")
    directory = args.dir or default_cluster_dir()
    if args.workers < 0:
        raise CitusError(f"--workers must be >= 0, got {args.workers}")
    Console(stderr=True).print(f"starting a Citus coordinator and {args.workers} worker(s) in {directory} ...")
    cluster = await asyncio.to_thread(
        start_cluster, args.workers, directory=directory, citus_source=source, database=args.database
    )
    err = Console(stderr=True)
    for node in cluster.nodes:
        err.print(f"  {node.name:<12} 127.0.0.1:{node.port}  {node.data_dir}")
    err.print(f"stop with: dealhunter-vectors cluster stop --dir {directory}")
    console.print(cluster.url, soft_wrap=True, highlight=False)
    return EXIT_OK


async def cmd_cluster_stop(args: argparse.Namespace, console: Console) -> int:
    directory = args.dir or default_cluster_dir()
    if not (Path(directory) / STATE_FILE).is_file():
        raise CitusError(f"no cluster recorded in {directory} (no {STATE_FILE})")
    stopped = await asyncio.to_thread(stop_cluster, directory, remove=args.remove)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return EXIT_OK


def register(subparsers: Any, add_database_url: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``cluster start`` / ``cluster stop`` to the CLI."""
    cluster = subparsers.add_parser("cluster", help="a local Citus cluster (coordinator + workers) for development")
    sub = cluster.add_subparsers(dest="cluster_command", required=True)
    p = sub.add_parser(
        "start",
        help="build Citus once (cached), start a coordinator and workers on free ports, print the coordinator URL",
    )
    p.add_argument("--workers", type=int, default=2, help="number of workers (default: %(default)s)")
    p.add_argument(
        "--citus-source",
        type=Path,
        default=None,
        help=f"Citus source tarball (default: ${DEFAULT_CITUS_SOURCE_ENV}, else ../shared/vendor/citus-*.tar.gz)",
    )
    p.add_argument("--dir", type=Path, default=None, help="cluster directory (default: the user data dir)")
    p.add_argument("--database", default="dealhunter", help="database to create and register (default: %(default)s)")
    p.set_defaults(handler=cmd_cluster_start)
    p = sub.add_parser("stop", help="stop exactly the servers that `cluster start` recorded in the cluster directory")
    p.add_argument("--dir", type=Path, default=None, help="cluster directory (default: the user data dir)")
    p.add_argument("--remove", action="store_true", help="also delete the cluster directory")
    p.set_defaults(handler=cmd_cluster_stop)
