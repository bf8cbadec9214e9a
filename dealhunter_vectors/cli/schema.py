"""``dealhunter-vectors schema apply|indexes`` and ``dealhunter-vectors doctor``."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from ..db.doctor import run_doctor
from ..db.fulltext import text_search_config
from ..db.pool import Pool
from ..db.schema import apply_schema, create_vector_indexes
from ..scale.replicas import ReplicatedPool, replica_checks
from ._common import EXIT_FAILED, EXIT_OK, AddDatabaseUrl, connect

__all__ = ["doctor_report", "register"]


async def cmd_schema_apply(args: argparse.Namespace, console: Console) -> int:
    async with connect(args, min_size=1, max_size=2) as pool:
        applied = await apply_schema(pool, text_search_config=args.text_search_config, distributed=args.distributed)
        console.print(f"schema: applied {applied}" if applied else "schema: up to date, nothing to apply")
        console.print(f"text search configuration: {await text_search_config(pool)}")
    return EXIT_OK


async def cmd_schema_indexes(args: argparse.Namespace, console: Console) -> int:
    async with connect(args, min_size=1, max_size=2) as pool, pool.acquire() as conn:
        await create_vector_indexes(conn)
        console.print("vector indexes: present")
    return EXIT_OK


async def doctor_report(pool: Pool, console: Console) -> bool:
    """Print the doctor table for *pool*; return whether the database is healthy."""
    async with pool.acquire() as conn:
        report = await run_doctor(conn)
    if isinstance(pool, ReplicatedPool):
        report.checks.extend(await replica_checks(pool))
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
    async with connect(args, min_size=1, max_size=2) as pool:
        return EXIT_OK if await doctor_report(pool, console) else EXIT_FAILED


def register(sub: Any, add_database_url: AddDatabaseUrl) -> None:
    """Add ``schema`` and ``doctor`` to the subcommands *sub*."""
    schema = sub.add_parser("schema", help="database schema")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    p = schema_sub.add_parser("apply", help="apply pending migrations (idempotent)")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="on a Citus coordinator: then distribute the tables (versions 1001+; docs/scaling.md)",
    )
    add_database_url(p)
    p.add_argument(
        "--text-search-config",
        metavar="NAME",
        default=None,
        help="rebuild the full-text columns with this configuration (german, simple, english, ...); "
        "default: keep the current one (german on a new database)",
    )
    p.set_defaults(handler=cmd_schema_apply)
    p = schema_sub.add_parser("indexes", help="(re)create the HNSW vector indexes if missing")
    add_database_url(p)
    p.set_defaults(handler=cmd_schema_indexes)

    p = sub.add_parser("doctor", help="health check: server, versions, schema, indexes, memory")
    add_database_url(p)
    p.set_defaults(handler=cmd_doctor)
