"""``dealhunter-vectors server status|start|stop``: the embedded PostgreSQL in the background.

Every CLI command that uses the embedded server (``DATABASE_URL`` unset or ``embedded``)
starts it on first use and leaves it running, so the next command connects at once. These
commands show it, start it, and stop it: only the server of the given data directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from ..db.embedded import (
    EmbeddedServerStatus,
    default_data_dir,
    embedded_server_status,
    embedded_url,
    start_embedded,
    stop_embedded_server,
)
from ._common import EXIT_OK, AddDatabaseUrl

__all__ = ["register"]

EXIT_NOT_RUNNING = 3
"""``server status``: the server is not running (the problems code of the common scheme)."""


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser().resolve() if args.data_dir else default_data_dir()


def _show(status: EmbeddedServerStatus, console: Console, *, as_json: bool) -> None:
    if as_json:
        payload = {
            "data_dir": str(status.data_dir),
            "initialised": status.initialised,
            "running": status.running,
            "pid": status.pid if status.running else None,
            "port": status.port,
            "socket_dir": str(status.socket_dir) if status.socket_dir else None,
            "owner": status.owner,
            "started_at": status.started_at.isoformat() if status.started_at else None,
            "database_url": embedded_url(status.data_dir),
        }
        sys.stdout.write(orjson.dumps(payload).decode() + "\n")
        return
    table = Table(title="embedded PostgreSQL", title_justify="left", show_header=False)
    table.add_column("what", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("data dir", str(status.data_dir))
    table.add_row("running", "[green]yes[/]" if status.running else "no")
    if status.running:
        table.add_row("pid", str(status.pid))
        table.add_row("port", str(status.port))
        table.add_row("socket dir", str(status.socket_dir))
        table.add_row("owner", status.owner or "?")
        table.add_row("started", status.started_at.isoformat(timespec="seconds") if status.started_at else "?")
    elif not status.initialised:
        table.add_row("note", "no data directory yet: the first command that needs it creates it")
    table.add_row("DATABASE_URL", embedded_url(status.data_dir))
    console.print(table)


async def cmd_status(args: argparse.Namespace, console: Console) -> int:
    status = embedded_server_status(_data_dir(args))
    _show(status, console, as_json=args.json)
    return EXIT_OK if status.running else EXIT_NOT_RUNNING


async def cmd_start(args: argparse.Namespace, console: Console) -> int:
    start_embedded(_data_dir(args))
    _show(embedded_server_status(_data_dir(args)), console, as_json=args.json)
    return EXIT_OK


async def cmd_stop(args: argparse.Namespace, console: Console) -> int:
    before = stop_embedded_server(_data_dir(args))
    if args.json:
        sys.stdout.write(
            orjson.dumps(
                {
                    "data_dir": str(before.data_dir),
                    "stopped": before.running,
                    "pid": before.pid if before.running else None,
                }
            ).decode()
            + "\n"
        )
    elif before.running:
        console.print(f"stopped the embedded server in {before.data_dir} (pid {before.pid})", highlight=False)
    else:
        console.print(f"no embedded server running in {before.data_dir}", highlight=False)
    return EXIT_OK


def register(sub: Any, add_database_url: AddDatabaseUrl) -> None:
    """Add ``server status|start|stop`` to the subcommands *sub*."""
    server = sub.add_parser(
        "server",
        help="the embedded PostgreSQL that runs in the background: status, start, stop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server_sub = server.add_subparsers(dest="server_command", required=True)
    for name, handler, text in (
        ("status", cmd_status, "data dir, running or not, pid, port, owner (exit 3 when not running)"),
        ("start", cmd_start, "start it (or find it running) and show its status"),
        ("stop", cmd_stop, "stop the server of this data dir (only that one); data stays on disk"),
    ):
        p = server_sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--data-dir",
            default=None,
            help="data directory (default: $DEALHUNTER_EMBEDDED_DATA_DIR, else the user data dir .../pg16)",
        )
        p.add_argument("--json", action="store_true", help="print the status as JSON")
        p.set_defaults(handler=handler)
