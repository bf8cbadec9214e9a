"""Statement errors of the write paths as the library's typed errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from ..errors import SchemaError
from .records import constraint_error

__all__ = ["typed_errors"]


@contextlib.contextmanager
def typed_errors(table: str) -> Iterator[None]:
    """A missing owner as ``NotFoundError``, a stored id as ``InvalidArgumentError``, a schema
    without migration 009 as ``SchemaError`` (the driver's exception as ``__cause__``)."""
    try:
        yield
    except (asyncpg.ForeignKeyViolationError, asyncpg.UniqueViolationError) as exc:
        raise constraint_error(table, exc) from exc
    except (asyncpg.UndefinedColumnError, asyncpg.UndefinedFunctionError, asyncpg.UndefinedTableError) as exc:
        raise SchemaError(
            f"{table}: the schema lacks what the write paths need ({exc}); run apply_schema (migration 009)"
        ) from exc
