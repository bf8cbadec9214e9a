"""``dealhunter-vectors text backfill``: split the German compounds of chunks that lack them.

``dealhunter-vectors text backfill [--table T] [--batch-size N] [--json] [--quiet] [--database-url URL]``

Fills ``content_parts`` (migration 011, docs/compounds.md) of the rows other writers stored, or
that were written without the extra ``[compounds]``, or whose content another writer changed
(:func:`~dealhunter_vectors.writes.content_parts.backfill_content_parts`). Batches by id, each
committed on its own: interrupted, run it again to continue. Progress goes to stderr (a bar per
table on a terminal, a line every 5 s otherwise; ``--quiet``: none), the summary to stdout.

Exit codes: 0 every lacking row filled; 1 the run failed (database error; committed batches
stay); 2 usage, or the extra ``[compounds]`` is not installed; 3 rows whose content changed during
the run were left lacking (run it again); 130 interrupted.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from ..db.content_parts import PARTS_TABLES
from ..writes.content_parts import DEFAULT_BATCH_SIZE, BackfillProgress, backfill_content_parts
from ._common import EXIT_OK, EXIT_PROBLEMS, AddDatabaseUrl, connect

__all__ = ["register"]

LOG_EVERY_SECONDS = 5.0


class _Reporter:
    """Backfill progress as a rich bar per table (terminal), log lines, or nothing."""

    def __init__(self, console: Console, *, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.last_log = 0.0

    def __enter__(self) -> _Reporter:
        if self.console.is_terminal and not self.quiet:
            self.progress = Progress(
                TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                console=self.console,
            )  # fmt: skip
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, p: BackfillProgress) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            if p.table not in self.tasks:
                self.tasks[p.table] = self.progress.add_task(p.table, total=max(p.lacking, 1))
            self.progress.update(self.tasks[p.table], completed=p.done if p.lacking else 1)
            return
        now = time.monotonic()
        if p.done == 0 or now - self.last_log >= LOG_EVERY_SECONDS:
            self.last_log = now
            self.console.print(f"text backfill: {p.table}: {p.done}/{p.lacking} rows", highlight=False)


async def cmd_text_backfill(args: argparse.Namespace, console: Console) -> int:
    async with connect(args, min_size=1, max_size=2) as pool:
        with _Reporter(Console(stderr=True), quiet=args.quiet or args.json) as reporter:
            results = await backfill_content_parts(
                pool, tables=args.table, batch_size=args.batch_size, on_progress=reporter
            )
    changed = sum(r.changed for r in results)
    if args.json:
        tables = [{"table": r.table, "lacking": r.lacking, "filled": r.filled, "changed": r.changed} for r in results]
        payload: dict[str, Any] = {"complete": changed == 0, "tables": tables}
        print(orjson.dumps(payload).decode())
    else:
        for r in results:
            line = f"text backfill: {r.table}: filled {r.filled} of {r.lacking} rows lacking their split text"
            if r.changed:
                line += f"; {r.changed} changed during the run, left lacking: run it again"
            console.print(line, highlight=False)
    return EXIT_PROBLEMS if changed else EXIT_OK


def _batch_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {value!r}") from None
    if not 1 <= size <= 10_000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 10000, got {size}")
    return size


def register(sub: Any, add_database_url: AddDatabaseUrl) -> None:
    """Add ``text backfill`` to the subcommands *sub*."""
    text = sub.add_parser("text", help="the full-text columns: German compound parts")
    text_sub = text.add_subparsers(dest="text_command", required=True)
    p = text_sub.add_parser(
        "backfill",
        help="split the German compounds of chunks stored without them (docs/compounds.md)",
        description="Fills content_parts of every chunk that lacks it (rows of other writers, rows written "
        "without the [compounds] extra, rows whose content changed), in batches by id, each committed on its "
        "own: run it again to continue after an interruption. Exit 0 all filled, 3 rows changed meanwhile "
        "(run again), 2 usage or the extra missing, 1 failed.",
    )
    add_database_url(p)
    p.add_argument("--table", choices=PARTS_TABLES, action="append", default=None, help="only this table (repeatable)")
    p.add_argument(
        "--batch-size", type=_batch_size, default=DEFAULT_BATCH_SIZE, metavar="N", help="rows per batch (1-10000)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(handler=cmd_text_backfill)
