"""``dealhunter-vectors recall-check``: the global search's recall on the stored data (issue 22).

The duplicate check's index search is approximate. This command samples stored description
embeddings as queries, runs the index search and the exact scan for each
(:func:`~dealhunter_vectors.search.recall_check.recall_self_check`) and prints recall@k and
both latencies, so a user need not trust the library's own data sets. Exit 0 when the mean
recall reaches ``--min-recall`` (default 0.99), 1 when it does not.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from ..search.recall_check import RecallReport, recall_self_check
from ._common import EXIT_FAILED, EXIT_OK, AddDatabaseUrl, connect

__all__ = ["register"]

DEFAULT_MIN_RECALL = 0.99


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def report_table(report: RecallReport, *, worst: int = 5) -> Table:
    """The report as a table: recall, the two latencies, and the worst queries."""
    table = Table(title=f"global search recall@{report.limit} on {report.samples} stored rows", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("rows that can be searched", f"{report.eligible_rows:,}")
    table.add_row(f"recall@{report.limit} mean / min", f"{report.recall_mean:.4f} / {report.recall_min:.4f}")
    table.add_row("queries with recall 1", f"{report.perfect_share:.1%}")
    table.add_row("index search ms, median / p95", f"{report.index_ms_median:.2f} / {report.index_ms_p95:.2f}")
    table.add_row("exact scan ms, median / p95", f"{report.exact_ms_median:.2f} / {report.exact_ms_p95:.2f}")
    for q in sorted(report.queries, key=lambda q: (q.recall, q.pre_qualification_id))[:worst]:
        if q.recall < 1.0:
            table.add_row(f"  worst: {q.pre_qualification_id}", f"{q.recall:.2f}")
    return table


async def cmd_recall_check(args: argparse.Namespace, console: Console) -> int:
    async with connect(args, min_size=1, max_size=2) as pool:
        report = await recall_self_check(pool, samples=args.samples, limit=args.limit, seed=args.seed)
    if args.json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        console.print(report_table(report))
    if report.recall_mean < args.min_recall:
        if not args.json:
            console.print(
                f"[red]recall@{report.limit} {report.recall_mean:.4f} is below {args.min_recall}[/]: the index search"
                " misses rows on this data; see docs/design.md, 'When the global search widens'"
            )
        return EXIT_FAILED
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], add_database_url: AddDatabaseUrl) -> None:
    p = subparsers.add_parser(
        "recall-check",
        help="measure the duplicate check's index recall and latency on the stored pre-qualifications",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    add_database_url(p)
    p.add_argument("--samples", type=_positive, default=50, help="stored rows used as queries (default 50)")
    p.add_argument("--limit", type=_positive, default=10, help="k of recall@k (default 10)")
    p.add_argument("--seed", type=int, default=0, help="which rows are sampled (default 0)")
    p.add_argument(
        "--min-recall", type=_fraction, default=DEFAULT_MIN_RECALL, help="exit 1 below this mean recall (0.99)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(handler=cmd_recall_check)
