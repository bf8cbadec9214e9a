"""The ``dealhunter-vectors`` command line: one module per command group.

* :mod:`.schema`: ``schema apply|indexes``, ``doctor``
* :mod:`.migrate`: ``migrate``, ``verify``
* :mod:`.search`: ``search lead|agent|raw|deep-scan|similar|duplicates``
* :mod:`.demo`: ``demo``, the main job

The CLI defaults to the embedded server (so it works on a fresh machine); set
``DATABASE_URL`` or pass ``--database-url`` for any other server. Exit codes:
0 success / healthy, 1 a check or run failed, 2 usage or configuration error,
3 rows rejected or conflicting (verify: differences), 4 stopped at a bad row.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console

from ..config import mask_url
from ..errors import DealhunterVectorsError
from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Handler, add_database_url, default_database_url

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "default_database_url", "main"]

COMMAND_GROUPS = ("schema", "migrate", "search", "demo", "cluster")
"""The modules of this package that register subcommands, in ``--help`` order."""

EXTRA_COMMANDS: list[Callable[[Any, Callable[[argparse.ArgumentParser], None]], None]] = []
"""Register functions of further command groups (appended by extensions)."""


def _load_extra_commands() -> None:
    for name in COMMAND_GROUPS:
        register = importlib.import_module(f"{__name__}.{name}").register
        if register not in EXTRA_COMMANDS:
            EXTRA_COMMANDS.append(register)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command group's subcommands."""
    parser = argparse.ArgumentParser(
        prog="dealhunter-vectors",
        description="PostgreSQL + pgvector retrieval layer for dealhunter.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for register in EXTRA_COMMANDS:
        register(sub, add_database_url)
    return parser


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
        # one line (soft_wrap: rich must not fold a long path into several lines), no traceback
        Console(stderr=True).print(f"[bold red]error:[/] {mask_url(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
