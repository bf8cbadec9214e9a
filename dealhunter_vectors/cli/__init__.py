"""The ``dealhunter-vectors`` command line: one module per command group.

* :mod:`.schema`: ``schema apply|indexes|validate``, ``doctor``
* :mod:`.migrate`: ``migrate``, ``verify``
* :mod:`.search`: ``search lead|agent|raw|deep-scan|similar|duplicates``
* :mod:`.demo`: ``demo``, the main job
* :mod:`.server`: ``server status|start|stop``, the embedded server
* :mod:`.text`: ``text backfill``, the German compound parts of chunks stored without them

The CLI defaults to the embedded server (so it works on a fresh machine); set
``DATABASE_URL`` or pass ``--database-url`` for any other server. Exit codes (one scheme
for every subcommand, :data:`._common.EXIT_CODES_HELP`): 0 success / healthy, 1 a check
or run failed, 2 usage or configuration error, 3 rows rejected or conflicting (verify:
differences), 4 stopped at a bad row, 130 interrupted.

Errors are one line on stderr (wrapped only on a terminal) and never show a traceback or
a password; ``--json`` output is the machine format and ignores the terminal width.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console

from .. import __version__
from ..errors import ConfigurationError, DealhunterVectorsError
from ._common import (
    EXIT_CODES_HELP,
    EXIT_CTRL_C,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Handler,
    add_database_url,
    default_database_url,
    print_error,
)

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "default_database_url", "main"]

COMMAND_GROUPS = ("schema", "migrate", "search", "recall", "text", "demo", "server", "cluster")
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
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dealhunter-vectors {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log the library's INFO messages on stderr (-vv: DEBUG); loggers 'dealhunter_vectors.*'",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for register in EXTRA_COMMANDS:
        register(sub, add_database_url)
    return parser


class _DriverNoise(logging.Filter):
    """Without ``-v``: no log lines of asyncpg and asyncio (after a lost server they report
    what the command's one error line already says: pool refills, orphaned futures)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("asyncpg", "asyncio"))


class _NoTraceback(logging.Formatter):
    """Below ``-vv``: a log record is one line, its exception's traceback left out."""

    def format(self, record: logging.LogRecord) -> str:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return super().format(record)


def _configure_logging(verbose: int) -> None:
    """Log lines on stderr: the library's at WARNING (``-v`` INFO, ``-vv`` DEBUG and tracebacks)."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if verbose >= 2 else _NoTraceback(fmt))
    if verbose == 0:
        handler.addFilter(_DriverNoise())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("dealhunter_vectors").setLevel(level)


class _Terminated(Exception):
    """The command was cancelled by SIGTERM."""


async def _run(handler: Handler, args: argparse.Namespace, console: Console) -> int:
    """Run *handler*; SIGTERM cancels it as Ctrl-C does (its cleanup runs: pools, workers, files)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    # not in the main thread (main() called from a test's thread) or without signals: no handler
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await handler(args, console)
    except asyncio.CancelledError:
        if terminated:
            raise _Terminated from None
        raise
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGTERM)


def _die_of_sigterm() -> int:
    """After the cleanup: end as SIGTERM ends a process (what a supervisor expects to see)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    return 128 + signal.SIGTERM  # not reached where the signal is delivered


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    _load_extra_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    console = Console(stderr=False)
    handler: Handler = args.handler
    try:
        return asyncio.run(_run(handler, args, console))
    except _Terminated:
        return _die_of_sigterm()
    except ConfigurationError as exc:  # DATABASE_URL, settings: the user's input
        print_error(str(exc))
        return EXIT_USAGE
    except DealhunterVectorsError as exc:
        print_error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_CTRL_C
    except Exception as exc:  # a bug or an environment problem: one line, the traceback only with -v
        logging.getLogger("dealhunter_vectors.cli").debug("unexpected error", exc_info=True)
        print_error(f"unexpected {type(exc).__name__}: {exc} (run with -vv for the traceback)")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
