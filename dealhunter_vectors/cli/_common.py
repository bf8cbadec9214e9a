"""What every command group shares: exit codes, the database URL option, connecting."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Coroutine
from typing import Any

from rich.console import Console

from ..db.pool import Pool, open_pool

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PROBLEMS, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5
"""One exit-code scheme for every subcommand (see ``dealhunter-vectors --help``); 5: the
server was lost mid-run, committed work stays, re-run to finish (docs/reliability.md)."""

Handler = Callable[[argparse.Namespace, Console], Coroutine[Any, Any, int]]
AddDatabaseUrl = Callable[[argparse.ArgumentParser], None]


def default_database_url() -> str:
    """``DATABASE_URL`` when set, else the embedded server."""
    return os.environ.get("DATABASE_URL") or "embedded"


def add_database_url(p: argparse.ArgumentParser) -> None:
    """Add the ``--database-url`` option to *p*."""
    p.add_argument(
        "--database-url",
        default=None,
        help="postgresql://... or 'embedded' / 'embedded:///dir' (default: $DATABASE_URL, else embedded)",
    )


def connect(args: argparse.Namespace, **options: Any) -> Any:
    """``open_pool`` for the command's ``--database-url`` (else :func:`default_database_url`)."""
    return open_pool(args.database_url or default_database_url(), **options)


__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_STOPPED",
    "EXIT_USAGE",
    "AddDatabaseUrl",
    "Handler",
    "Pool",
    "add_database_url",
    "connect",
    "default_database_url",
]
