"""``dealhunter-vectors schema apply|indexes|validate`` and ``dealhunter-vectors doctor``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from ..config import get_settings, mask_url
from ..db.doctor import Check, DoctorReport, diagnose, replica_checks, run_doctor
from ..db.embedded import is_embedded_url
from ..db.fulltext import text_search_config
from ..db.norms import unvalidated_norm_constraints, validate_norm_constraints
from ..db.pool import Pool
from ..db.privileges import PURPOSES
from ..db.replicas import ReplicatedPool
from ..db.schema import apply_schema, create_vector_indexes
from ._common import EXIT_FAILED, EXIT_OK, EXIT_PROBLEMS, AddDatabaseUrl, connect, default_database_url, print_error
from ._progress import watch_index_builds

__all__ = ["doctor_report", "print_doctor_report", "register"]


async def cmd_schema_apply(args: argparse.Namespace, console: Console) -> int:
    async with connect(args, min_size=1, max_size=2) as pool, watch_index_builds(pool, Console(stderr=True)):
        applied = await apply_schema(pool, text_search_config=args.text_search_config, distributed=args.distributed)
        console.print(f"schema: applied {applied}" if applied else "schema: up to date, nothing to apply")
        console.print(f"text search configuration: {await text_search_config(pool)}")
    return EXIT_OK


async def cmd_schema_validate(args: argparse.Namespace, console: Console) -> int:
    """Validate migration 008's norm checks; list the rows that keep one NOT VALID (exit 3)."""
    async with connect(args, min_size=1, max_size=2) as pool, pool.acquire() as conn:
        blocked = await validate_norm_constraints(conn)
        left = await unvalidated_norm_constraints(conn)
    for finding in blocked:
        print_error(f"{finding.describe()}: fix or delete them, then run this again", prefix="problem")
    not_owned = [name for name, owner in left.items() if not owner]
    if not_owned:
        print_error(f"not validated (run as the tables' owner): {', '.join(not_owned)}", prefix="problem")
    if blocked or not_owned:
        return EXIT_PROBLEMS
    console.print("embedding norm checks: validated")
    return EXIT_OK


async def cmd_schema_indexes(args: argparse.Namespace, console: Console) -> int:
    async with connect(args, min_size=1, max_size=2) as pool:
        async with watch_index_builds(pool, Console(stderr=True)), pool.acquire() as conn:
            await create_vector_indexes(conn)
        console.print("vector indexes: present")
    return EXIT_OK


def print_doctor_report(report: DoctorReport, console: Console, *, title: str) -> None:
    """The doctor table: one row per check, what to do next to each failing one."""
    table = Table(title=title, title_justify="left")
    # the check name keeps its full width when there is room (names are keys for scripts);
    # on a narrow terminal it folds before detail and advice get squeezed
    table.add_column("check", overflow="fold")
    table.add_column("status", no_wrap=True, min_width=6)
    table.add_column("detail", overflow="fold", ratio=1, min_width=20)
    table.add_column("what to do", overflow="fold", ratio=1, min_width=20)
    styles = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    for c in report.checks:
        table.add_row(c.name, f"[{styles[c.status]}]{c.status}[/]", c.detail, c.fix or "")
    console.print(table, highlight=False)
    console.print("[green]healthy[/]" if report.healthy else "[bold red]NOT healthy[/]")


async def doctor_report(pool: Pool, console: Console) -> bool:
    """Print the doctor table for *pool*; return whether the database is healthy."""
    async with pool.acquire() as conn:
        report = await run_doctor(conn)
    if isinstance(pool, ReplicatedPool):
        report.checks.extend(await replica_checks(pool))
    print_doctor_report(report, console, title=f"doctor: {pool.masked_url}")
    return report.healthy


async def _replica_rows(args: argparse.Namespace, report: DoctorReport) -> list[Check]:
    """One row per configured read replica (``DATABASE_REPLICA_URLS``), once the primary answers."""
    primary_ok = any(c.name == "database" and c.status == "ok" for c in report.checks)
    if not (primary_ok and get_settings().replica_urls and args.database_url is None):
        return []
    async with connect(args, min_size=1, max_size=2, create_extension=False) as pool:
        return await replica_checks(pool) if isinstance(pool, ReplicatedPool) else []


async def cmd_doctor(args: argparse.Namespace, console: Console) -> int:
    url = args.database_url or default_database_url()
    report = await diagnose(url, purpose=args.purpose)
    report.checks.extend(await _replica_rows(args, report))
    if args.json:
        payload: dict[str, Any] = {"healthy": report.healthy, "checks": [dataclasses.asdict(c) for c in report.checks]}
        caps = report.capabilities
        if caps is not None:
            payload["purpose"] = report.purpose
            payload["role"] = {"name": caps.role, "can": [c.purpose for c in caps.capabilities if c.able]}
        sys.stdout.write(orjson.dumps(payload).decode() + "\n")
    else:
        print_doctor_report(report, console, title=f"doctor: {url if is_embedded_url(url) else mask_url(url)}")
    return EXIT_OK if report.healthy else EXIT_FAILED


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
    p = schema_sub.add_parser(
        "validate",
        help="validate the embedding norm checks (migration 008); list the rows that block them",
        description="Runs ALTER TABLE ... VALIDATE CONSTRAINT for each norm check still NOT VALID (as the tables' "
        "owner). Exit 0 all validated, 3 rows out of range (listed by table and id) or tables not owned.",
    )
    add_database_url(p)
    p.set_defaults(handler=cmd_schema_validate)

    p = sub.add_parser(
        "doctor",
        help="health check: server, login, versions, pgvector, privileges, schema, indexes, memory",
        description="Connects without changing anything (no CREATE EXTENSION, no schema) and reports one row "
        "per check; each failing row says what to do. Exit 0 healthy, 1 not. The privileges row judges the "
        "role for --for (search, write, migrate, admin), else reports what it can do.",
    )
    add_database_url(p)
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument(
        "--for",
        dest="purpose",
        choices=PURPOSES,
        default=None,
        help="judge the role's privileges for this job only (search service, writer service, migrate, admin: "
        "schema changes); default: report what the role can do and need only search (docs/reliability.md, Roles)",
    )
    p.set_defaults(handler=cmd_doctor)
