"""The ``migrate`` and ``verify`` subcommands (loaded by :mod:`dealhunter_vectors.cli`).

``dealhunter-vectors migrate SQLITE_PATH [--database-url URL] [--on-error stop|skip]
[--reject-file PATH] [--batch-size N] [--tables T ...] [--overwrite] [--workers N] [--json] [--quiet]``

``dealhunter-vectors verify SQLITE_PATH [--database-url URL] [--tables T ...] [--json]``

Exit codes:

====  ==========================================================================================
0     migrate: every source row is in PostgreSQL (inserted or already present) and none was
      rejected or conflicting. verify: both sides hold exactly the same rows, vectors valid.
1     the run failed (unreadable source, schema mismatch, database error); nothing is wrong
      with individual rows as far as we know.
2     usage error (bad arguments).
3     migrate: finished, but rows were rejected (``--on-error skip``; see the reject file) or
      rows exist in PostgreSQL with different content (conflicts; ``--overwrite`` replaces them).
      verify: differences found (counts, checksums, mismatched/missing/extra ids, bad vectors).
4     migrate: stopped at the first bad row (``--on-error stop``, the default); the message
      names table, row id, column, reason and value kind. Batches before it stay loaded.
====  ==========================================================================================

Progress goes to stderr: a rich progress bar per table (rows, rows/s, ETA) on a terminal,
plain log lines otherwise; ``--quiet`` turns it off. ``--json`` prints the report (the
pydantic model) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..db.pool import open_pool
from ..errors import MigrationError, MigrationStoppedError
from ..migrate.loader import DEFAULT_BATCH_SIZE, MigrationProgress, migrate_sqlite
from ..migrate.reports import MigrationReport, VerificationReport
from ..migrate.verify import verify_migration

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_PROBLEMS", "EXIT_STOPPED", "EXIT_USAGE", "register"]

from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_STOPPED,
    EXIT_USAGE,
    default_database_url,
    print_error,
)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="cyan")


class MigrationReporter:
    """Turns :class:`MigrationProgress` events into a rich bar, log lines, or nothing."""

    def __init__(self, console: Console, *, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.last_log = 0.0
        self.started: dict[str, float] = {}

    def __enter__(self) -> MigrationReporter:
        if self.live:
            self.progress = Progress(
                TextColumn("{task.description:<26}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, ev: MigrationProgress) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            if ev.phase == "table_start":
                self.tasks[ev.table] = self.progress.add_task(ev.table, total=max(ev.rows_total, 1))
                if ev.rows_total == 0:
                    self.progress.update(self.tasks[ev.table], completed=1)
            elif ev.phase in ("batch", "table_done") and ev.table in self.tasks:
                self.progress.update(self.tasks[ev.table], completed=max(ev.rows_done, 1 if not ev.rows_total else 0))
            elif ev.phase == "indexes":
                self.progress.console.print("building vector indexes ...")
            return
        now = time.monotonic()
        if ev.phase == "table_start":
            self.started[ev.table] = now
            self.console.print(f"migrate: {ev.table}: {ev.rows_total} rows", highlight=False)
        elif ev.phase == "batch" and now - self.last_log >= 5.0:
            self.last_log = now
            elapsed = now - self.started.get(ev.table, now)
            rate = ev.rows_done / elapsed if elapsed > 0 else 0.0
            self.console.print(
                f"migrate: {ev.table}: {ev.rows_done}/{ev.rows_total} rows ({rate:,.0f} rows/s)", highlight=False
            )
        elif ev.phase == "table_done":
            elapsed = now - self.started.get(ev.table, now)
            self.console.print(f"migrate: {ev.table}: done in {elapsed:.1f} s", highlight=False)
        elif ev.phase == "indexes":
            self.console.print("migrate: building vector indexes", highlight=False)
        elif ev.phase == "analyze":
            self.console.print(f"migrate: ANALYZE {ev.table}", highlight=False)


@contextlib.contextmanager
def _working(console: Console, text: str) -> Iterator[None]:
    """A spinner with the elapsed time while a long step runs (on a terminal only)."""
    if not console.is_terminal:
        yield
        return
    with Progress(SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=console, transient=True) as bar:
        bar.add_task(text, total=None)
        yield


def _migration_summary(report: MigrationReport, console: Console) -> None:
    table = Table(title=f"migrate {report.source} -> {report.database}", title_justify="left")
    for name in ("table", "source", "inserted", "present", "overwritten", "conflicts", "rejected", "rows/s"):
        table.add_column(name, justify="left" if name == "table" else "right")
    for t in report.tables:
        if not t.present_in_source:
            table.add_row(t.table, "[dim]absent[/]", "", "", "", "", "", "")
            continue
        table.add_row(
            t.table,
            str(t.source_rows),
            str(t.inserted),
            str(t.already_present),
            str(t.overwritten),
            f"[yellow]{t.conflicts}[/]" if t.conflicts else "0",
            f"[red]{t.rejected}[/]" if t.rejected else "0",
            f"{t.rows_per_second:,.0f}",
        )
    console.print(table)
    for p in report.problems[:20]:
        console.print(f"[red]problem:[/] {p.describe()}", highlight=False, soft_wrap=True)
    if report.problem_count > 20:
        console.print(f"... {report.problem_count - 20} more problems (see the report / reject file)")
    for t in report.tables:
        if t.conflict_ids:
            shown = ", ".join(t.conflict_ids[:10])
            console.print(f"[yellow]conflicts in {t.table}:[/] {shown}{' ...' if t.conflicts > 10 else ''}")
    if report.ignored_source_tables:
        console.print(f"ignored source tables (not legacy tables): {', '.join(report.ignored_source_tables)}")
    verdict = "[green]OK: every source row is in PostgreSQL[/]" if report.ok else "[bold red]NOT complete[/]"
    console.print(f"{verdict} ({report.source_rows} rows, {report.seconds:.1f} s)")


def failure_line(exc: MigrationError, report: MigrationReport) -> str:
    """The one line for a run that failed: the error, what was loaded before it, and "re-run"
    only when a re-run can finish the job (``exc.retryable``: the server was lost)."""
    loaded = sum(t.inserted + t.overwritten for t in report.tables)
    parts = [str(exc)]
    if loaded:
        parts.append(f"loaded before the fault: {loaded} rows")
    if exc.retryable and "re-run" not in parts[0]:
        parts.append("re-run the same command to finish")
    return "; ".join(parts)


def _exit_code(report: MigrationReport) -> int:
    if report.status == "stopped":
        return EXIT_STOPPED
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _source_problem(path: str) -> str | None:
    """Why *path* cannot be the legacy SQLite file (checked before connecting), or None."""
    p = Path(path)
    if p.is_dir():
        return f"SQLITE_PATH {path} is a directory, not a SQLite file: give the database file (e.g. {p / 'local.db'})"
    if not p.exists():
        return f"SQLITE_PATH {path} does not exist"
    return None


async def cmd_migrate(args: argparse.Namespace, console: Console) -> int:
    """Handler of ``migrate``."""
    if (problem := _source_problem(args.sqlite_path)) is not None:
        print_error(problem)
        return EXIT_FAILED  # an unreadable source: the run failed (exit code 1, as documented)

    err = Console(stderr=True)
    async with open_pool(args.database_url or default_database_url(), min_size=1, max_size=2) as pool:
        with MigrationReporter(err, quiet=args.quiet) as reporter:
            try:
                report = await migrate_sqlite(
                    args.sqlite_path,
                    pool,
                    on_error=args.on_error,
                    reject_file=args.reject_file,
                    batch_size=args.batch_size,
                    tables=args.tables,
                    overwrite=args.overwrite,
                    workers=args.workers,
                    progress=reporter,
                )
            except MigrationStoppedError as exc:
                stopped = exc.report
                assert isinstance(stopped, MigrationReport)
                report = stopped
                print_error(
                    f"{exc}; fix the row (or run with --on-error skip --reject-file PATH) and re-run: loaded rows stay",
                    prefix="stopped",
                )
            except MigrationError as exc:
                if not isinstance(exc.report, MigrationReport):
                    raise  # nothing ran: the one-line error of main()
                print_error(failure_line(exc, exc.report))
                return EXIT_INTERRUPTED if exc.retryable else EXIT_FAILED
            except asyncio.CancelledError:  # SIGINT / SIGTERM (cli.main): one line, then the interruption
                print_error("committed batches stay; re-run the same command to finish", prefix="interrupted")
                raise
    if args.json:
        print(report.model_dump_json(indent=2))
    elif not args.quiet:
        _migration_summary(report, console)
    return _exit_code(report)


EMPTY_TARGET = "target has none of these rows: run migrate first"


def _target_is_empty(report: VerificationReport) -> bool:
    return sum(t.source_rows for t in report.tables) > 0 and all(t.target_rows == 0 for t in report.tables)


def _verification_summary(report: VerificationReport, console: Console) -> None:
    if _target_is_empty(report):
        rows = sum(t.source_rows for t in report.tables)
        console.print(
            f"[bold red]DIFFERENCES FOUND[/]: {EMPTY_TARGET} ({rows} rows in {len(report.tables)} tables of "
            f"{report.source}; {report.database} has none)",
            highlight=False,
        )
        return
    table = Table(title=f"verify {report.source} <-> {report.database}", title_justify="left")
    for name in (
        "table",
        "source",
        "target",
        "checksum",
        "mismatched",
        "missing",
        "extra",
        "unconvertible",
        "bad vectors",
    ):
        table.add_column(name, justify="left" if name == "table" else "right")
    for t in report.tables:
        same = t.source_checksum == t.target_checksum
        table.add_row(
            t.table,
            str(t.source_rows),
            str(t.target_rows),
            "[green]equal[/]" if same else "[red]differs[/]",
            str(t.mismatched),
            str(t.missing),
            str(t.extra),
            str(t.unconvertible),
            str(len(t.bad_vectors)),
        )
    console.print(table)
    for t in report.tables:
        for label, ids in (
            ("mismatched", t.mismatched_ids),
            ("missing", t.missing_ids),
            ("extra", t.extra_ids),
            ("unconvertible", t.unconvertible_ids),
        ):
            if ids:
                console.print(f"[red]{t.table} {label}:[/] {', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}")
        for v in t.bad_vectors[:10]:
            console.print(f"[red]{t.table} id={v.row_id} {v.column}:[/] {v.reason}: {v.detail}")
    console.print("[green]OK: identical[/]" if report.ok else "[bold red]DIFFERENCES FOUND[/]")


async def cmd_verify(args: argparse.Namespace, console: Console) -> int:
    """Handler of ``verify``."""
    if (problem := _source_problem(args.sqlite_path)) is not None:
        print_error(problem)
        return EXIT_FAILED  # an unreadable source: the run failed (exit code 1, as documented)

    async with open_pool(args.database_url or default_database_url(), min_size=1, max_size=2) as pool:
        with _working(Console(stderr=True), "verify: checksumming every row on both sides"):
            report = await verify_migration(args.sqlite_path, pool, tables=args.tables, workers=args.workers)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        _verification_summary(report, console)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def register(subparsers: Any, add_database_url: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``migrate`` and ``verify`` to the CLI's subparsers."""
    epilog = (
        "exit codes: 0 complete, 1 failed, 2 usage, 3 rows rejected/conflicting (or differences), 4 stopped,"
        " 5 server lost mid-run (re-run to finish)"
    )
    p = subparsers.add_parser(
        "migrate",
        help="copy a legacy dealhunter SQLite database into PostgreSQL (resumable, idempotent)",
        epilog=epilog,
    )
    p.add_argument("sqlite_path", metavar="SQLITE_PATH", help="the legacy SQLite file (opened read-only)")
    add_database_url(p)
    p.add_argument(
        "--on-error", choices=("stop", "skip"), default="stop", help="stop at the first bad row (default) or skip it"
    )
    p.add_argument("--reject-file", default=None, help="JSON lines file for rejected rows (rewritten each run)")
    p.add_argument("--batch-size", type=_positive, default=DEFAULT_BATCH_SIZE, help="rows per COPY batch / transaction")
    p.add_argument("--tables", nargs="+", metavar="T", default=None, help="only these tables (parents must exist)")
    p.add_argument("--overwrite", action="store_true", help="replace rows that exist with different content")
    p.add_argument("--workers", type=_non_negative, default=2, help="processes parsing JSON embeddings (0: none)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=cmd_migrate)

    p = subparsers.add_parser(
        "verify", help="compare a legacy SQLite database with PostgreSQL row by row", epilog=epilog
    )
    p.add_argument("sqlite_path", metavar="SQLITE_PATH", help="the legacy SQLite file (opened read-only)")
    add_database_url(p)
    p.add_argument("--tables", nargs="+", metavar="T", default=None, help="only these tables")
    p.add_argument("--workers", type=_non_negative, default=2, help="processes parsing JSON embeddings (0: none)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(handler=cmd_verify)
