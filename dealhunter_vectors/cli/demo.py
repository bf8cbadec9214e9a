"""``dealhunter-vectors demo``: the whole mission in one command (see :mod:`dealhunter_vectors.demo`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from .demo_run import DEMO_SIZES, run_demo

DESCRIPTION = """\
Build a legacy dealhunter SQLite database the way the old app wrote it (all 29 tables,
clustered 3072-d embeddings), migrate it into PostgreSQL with the bulk loader, verify it
row by row, build the halfvec HNSW indexes, then run every old retrieval call site
(lead, agent, raw, deep-scan expert, search action, duplicate check) through this library
and through the old in-process path on the same data: typed results, timings, agreement.

Runs on the embedded PostgreSQL 16 + pgvector unless --database-url / DATABASE_URL names
another server (the demo creates its own database 'dealhunter_demo_<size>' there).
Exit code 0 when verification passed and every call site agrees with the old path."""


async def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    result = await run_demo(
        Console(stderr=True) if args.json else console,
        database_url=args.database_url or os.environ.get("DATABASE_URL") or "embedded",
        size=args.size,
        data_dir=args.data_dir,
        fresh=args.fresh,
        seed=args.seed,
        repeat=args.repeat,
        quiet=args.quiet,
    )
    if args.json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    return 0 if result.ok else 1


def register(subparsers: Any, add_database_url: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``demo`` to the CLI."""
    p = subparsers.add_parser(
        "demo",
        help="end-to-end demo: legacy SQLite -> migrate -> verify -> every old call site, old vs new",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_url(p)
    p.add_argument(
        "--size",
        choices=DEMO_SIZES,
        default="default",
        help="data set: 'default' ~2,400 deal chunks + 1,440 raw chunks (~250 MB SQLite); "
        "'small' ~200 + 90 for a quick look (default: %(default)s)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the legacy SQLite file lives (default: the user data dir, demo-<size>)",
    )
    p.add_argument("--fresh", action="store_true", help="delete the data dir and the demo database first")
    p.add_argument("--seed", type=int, default=0, help="random seed of the data set and queries (default: 0)")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions per call site (default: 5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout (progress on stderr)")
    p.add_argument("--quiet", action="store_true", help="no progress or tables (with --json: JSON only)")
    p.set_defaults(handler=cmd_demo)
