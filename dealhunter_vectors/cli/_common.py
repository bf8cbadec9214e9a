"""What every command group shares: exit codes, the database URL option, connecting, errors."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from rich.console import Console
from rich.text import Text

from ..config import mask_text
from ..db.pool import Pool, open_pool

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PROBLEMS, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5
"""One exit-code scheme for every subcommand (see ``dealhunter-vectors --help``); 5: the
server was lost mid-run, committed work stays, re-run to finish (docs/reliability.md)."""
EXIT_CTRL_C = 130

EXIT_CODES_HELP = """\
exit codes (every subcommand):
  0    success; doctor: healthy; migrate/verify: complete and identical
  1    failed: server unreachable, a check failed, a database error, a missing or unreadable file
  2    usage: bad arguments or configuration (flags, DATABASE_URL)
  3    finished with problems: rows rejected or conflicting; verify: differences;
       server status: not running
  4    migrate stopped at the first bad row (--on-error stop)
  5    migrate lost the server mid-run: committed batches stay, re-run to finish
  130  interrupted (Ctrl-C)"""

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
        help="postgresql://... or 'embedded' / 'embedded:///abs/dir' / 'embedded:rel/dir' "
        "(default: $DATABASE_URL, else embedded)",
    )


def connect(args: argparse.Namespace, **options: Any) -> Any:
    """``open_pool`` for the command's ``--database-url`` (else :func:`default_database_url`)."""
    return open_pool(args.database_url or default_database_url(), **options)


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``{"qualification_id": "--qualification-id", ...}`` for every option of *parser*."""
    return {a.dest: a.option_strings[-1] for a in parser._actions if a.option_strings and a.dest != "help"}


def name_flags(message: str, flags: Mapping[str, str]) -> str:
    """*message* with the library's parameter names replaced by the CLI's flags.

    A parameter name with an underscore (``qualification_id``) is replaced wherever it
    stands alone; a one-word name (``limit``) only where it is clearly the parameter
    (``limit must ...``, ``limit=``), so ordinary words ("raw chunk") stay as they are.
    """
    for dest in sorted(flags, key=len, reverse=True):
        flag = flags[dest]
        if "_" in dest:
            message = re.sub(rf"(?<![\w-]){re.escape(dest)}(?![\w-])", flag, message)
        else:
            message = re.sub(rf"(?<![\w-]){re.escape(dest)}(?=\s+must\b|=)", flag, message)
    return message


def print_error(message: str, *, prefix: str = "error") -> None:
    """Print an error for a person: one line (never wrapped) when stderr is not a terminal.

    On a terminal rich wraps it to the window; in a pipe or a log file the message is a
    single line, whitespace collapsed, so ``grep`` and log collectors see it whole. The
    text is always passed through :func:`~dealhunter_vectors.config.mask_text`.
    """
    text = mask_text(message)
    if sys.stderr.isatty():
        Console(stderr=True, highlight=False).print(Text.assemble((f"{prefix}:", "bold red"), " ", text))
    else:
        sys.stderr.write(f"{prefix}: {' '.join(text.split())}\n")
        sys.stderr.flush()


__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_CTRL_C",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
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
    "flag_names",
    "name_flags",
    "print_error",
]
