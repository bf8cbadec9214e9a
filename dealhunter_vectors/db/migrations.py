"""Versioned SQL files and the helpers every schema change shares.

The schema's migrations are the ``.sql`` files in ``dealhunter_vectors/db/sql`` named
``NNN_description.sql`` (:func:`migrations`); the distributed layout's are
``db/sql/distributed/layout_NNN_*.sql`` (:mod:`.distributed`). Both are applied under one
advisory lock (:data:`ADVISORY_LOCK_KEY`) and recorded with their checksums.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import asyncpg

from ..errors import SchemaError

__all__ = [
    "ADVISORY_LOCK_KEY",
    "INDEX_BUILD_TIMEOUT",
    "MIGRATIONS_TABLE",
    "Migration",
    "apply_recorded",
    "migrations",
    "quote_ident",
    "split_statements",
    "versioned_sql_files",
]

MIGRATIONS_TABLE = "dealhunter_schema_migrations"
ADVISORY_LOCK_KEY = "dealhunter_vectors:schema"
"""``pg_advisory_lock(hashtext(...))`` key that serialises every schema change."""

INDEX_BUILD_TIMEOUT = 6 * 3600.0
"""Seconds an index build may take: far beyond the pool's per-statement command timeout."""


@dataclass(frozen=True)
class Migration:
    """A migration file: version, name, SQL text and its SHA-256."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (``references`` -> ``"references"``)."""
    return '"' + name.replace('"', '""') + '"'


def versioned_sql_files(package: str, pattern: re.Pattern[str]) -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of each file of *package* whose name *pattern* matches
    (groups: version, name), in version order."""
    found = []
    for entry in resources.files(package).iterdir():
        m = pattern.match(entry.name)
        if m:
            found.append((int(m[1]), m[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


_MIGRATION_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@cache
def migrations() -> tuple[Migration, ...]:
    """All packaged migrations, in version order."""
    return tuple(Migration(*f) for f in versioned_sql_files("dealhunter_vectors.db.sql", _MIGRATION_FILE))


def split_statements(sql: str) -> list[str]:
    """Split a file into statements (each ends with ``;`` at the end of a line; ``--`` lines dropped)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [stmt.strip() for stmt in re.split(r";\s*$", "\n".join(lines), flags=re.M) if stmt.strip()]


async def apply_recorded(
    conn: asyncpg.Connection, mig: Migration, *, table: str, what: str, statements: Sequence[str]
) -> None:
    """Run *statements* (the file *mig*) and record it in *table*, in one transaction.

    Statements may build indexes over existing rows: they get :data:`INDEX_BUILD_TIMEOUT`, not
    the pool's command timeout. A failure is a :class:`SchemaError` naming *what* and the file.
    """
    try:
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement, timeout=INDEX_BUILD_TIMEOUT)
            await conn.execute(
                f"INSERT INTO {quote_ident(table)} (version, name, checksum) VALUES ($1, $2, $3)",  # noqa: S608
                mig.version,
                mig.name,
                mig.checksum,
            )
    except asyncpg.InsufficientPrivilegeError:
        raise  # typed by @operation: PermissionDeniedError naming what the role lacks
    except asyncpg.PostgresError as exc:
        raise SchemaError(f"{what} {mig.version:03d}_{mig.name} failed: {exc}") from exc
