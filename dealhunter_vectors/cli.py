"""The ``dealhunter-vectors`` command line.

The CLI defaults to the embedded server (so it works on a fresh machine); set
``DATABASE_URL`` or pass ``--database-url`` for any other server. Exit codes:
0 success / healthy, 1 a check or run failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from .config import mask_url
from .doctor import run_doctor
from .errors import DealhunterVectorsError
from .pool import Pool, open_pool
from .schema import apply_schema, create_vector_indexes

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Handler = Callable[[argparse.Namespace, Console], Coroutine[Any, Any, int]]


def default_database_url() -> str:
    """``DATABASE_URL`` when set, else the embedded server."""
    return os.environ.get("DATABASE_URL") or "embedded"


def _add_database_url(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database-url",
        default=None,
        help="postgresql://... or 'embedded' / 'embedded:///dir' (default: $DATABASE_URL, else embedded)",
    )


async def _connect(args: argparse.Namespace, **options: Any) -> Any:
    return open_pool(args.database_url or default_database_url(), **options)


async def cmd_schema_apply(args: argparse.Namespace, console: Console) -> int:
    async with await _connect(args, min_size=1, max_size=2) as pool:
        applied = await apply_schema(pool)
        console.print(f"schema: applied {applied}" if applied else "schema: up to date, nothing to apply")
    return EXIT_OK


async def cmd_schema_indexes(args: argparse.Namespace, console: Console) -> int:
    async with await _connect(args, min_size=1, max_size=2) as pool, pool.acquire() as conn:
        await create_vector_indexes(conn)
        console.print("vector indexes: present")
    return EXIT_OK


async def doctor_report(pool: Pool, console: Console) -> bool:
    """Print the doctor table for *pool*; return whether the database is healthy."""
    async with pool.acquire() as conn:
        report = await run_doctor(conn)
    table = Table(title=f"doctor: {pool.masked_url}", title_justify="left")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail / what to do", overflow="fold")
    styles = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    table.add_row("server", "[green]ok[/]", "reachable")
    for c in report.checks:
        detail = c.detail if c.fix is None else f"{c.detail}\n-> {c.fix}"
        table.add_row(c.name, f"[{styles[c.status]}]{c.status}[/]", detail)
    console.print(table)
    console.print("[green]healthy[/]" if report.healthy else "[bold red]NOT healthy[/]")
    return report.healthy


async def cmd_doctor(args: argparse.Namespace, console: Console) -> int:
    async with await _connect(args, min_size=1, max_size=2) as pool:
        return EXIT_OK if await doctor_report(pool, console) else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands register here)."""
    parser = argparse.ArgumentParser(
        prog="dealhunter-vectors",
        description="PostgreSQL + pgvector retrieval layer for dealhunter.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    schema = sub.add_parser("schema", help="database schema")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    p = schema_sub.add_parser("apply", help="apply pending migrations (idempotent)")
    _add_database_url(p)
    p.set_defaults(handler=cmd_schema_apply)
    p = schema_sub.add_parser("indexes", help="(re)create the HNSW vector indexes if missing")
    _add_database_url(p)
    p.set_defaults(handler=cmd_schema_indexes)

    p = sub.add_parser("doctor", help="health check: server, versions, schema, indexes, memory")
    _add_database_url(p)
    p.set_defaults(handler=cmd_doctor)

    for register in EXTRA_COMMANDS:
        register(sub, _add_database_url)
    return parser


EXTRA_COMMANDS: list[Callable[[Any, Callable[[argparse.ArgumentParser], None]], None]] = []
"""Modules with more subcommands (migrate, verify, demo, search) append a register function."""


def _load_extra_commands() -> None:
    import importlib

    for name in ("dealhunter_vectors.cli_migrate", "dealhunter_vectors.cli_demo", "dealhunter_vectors.cli_search"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        register = getattr(module, "register", None)
        if register is not None and register not in EXTRA_COMMANDS:
            EXTRA_COMMANDS.append(register)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    _load_extra_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=False)
    handler: Handler = args.handler
    try:
        return asyncio.run(handler(args, console))
    except DealhunterVectorsError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {mask_url(str(exc))}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
