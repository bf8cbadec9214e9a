"""The backfill of the split text: German compound parts for rows that lack them (migration 011).

A row lacks its split text (:data:`~dealhunter_vectors.db.content_parts.LACKING`) when another
writer inserted it (plain SQL, the old app), when the library wrote it without the optional
extra ``[compounds]``, or when another writer changed its content since (then the stored parts
are ignored by ``content_tsv``). Such a row is found by its text meanwhile, not by a part of a
compound. :func:`backfill_content_parts` fills them:

* per table, keyset batches by id: read ``batch_size`` lacking rows after the last id, split
  their content in Python (:func:`~dealhunter_vectors.compounds.compound_parts_text`), write the
  parts and the content's sha256 with one ``UPDATE`` that applies only where the row still holds
  the content that was read (a concurrent writer wins; the row is counted as *changed* and stays
  lacking for the next run);
* each batch commits on its own: an interrupted run keeps what it wrote and a second run
  continues with what is left (it reads only lacking rows), so the backfill is resumable and
  idempotent;
* on Citus both statements are multi-shard (every tenant's rows).

Needs the extra: without it a :class:`~dealhunter_vectors.errors.ConfigurationError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import asyncpg

from .. import compounds, validation
from ..db.content_parts import LACKING, PARTS_TABLES
from ..db.faults import operation
from ..db.library_columns import content_hash
from ..db.migrations import quote_ident
from ..errors import ConfigurationError, InvalidArgumentError, SchemaError
from ..layout.statements import load_sql
from ._conn import Db, connection

__all__ = ["DEFAULT_BATCH_SIZE", "MAX_BATCH_SIZE", "BackfillProgress", "backfill_content_parts"]

DEFAULT_BATCH_SIZE: Final = 500
MAX_BATCH_SIZE: Final = 10_000


@dataclass(frozen=True)
class BackfillProgress:
    """One table's backfill so far: rows *filled*, rows skipped as *changed* meanwhile, of the
    *lacking* rows counted when the table's backfill started."""

    table: str
    filled: int
    changed: int
    lacking: int

    @property
    def done(self) -> int:
        """Rows handled (filled or skipped)."""
        return self.filled + self.changed


@cache
def _statements(table: str) -> tuple[str, str, str]:
    """(count, page, update) for *table* (one of the chunk tables: a constant)."""
    name = quote_ident(table)
    count = f"SELECT count(*) FROM {name} WHERE {LACKING}"  # noqa: S608 - constants
    page = load_sql("dealhunter_vectors.writes", "lacking_content_parts").format(table=name, lacking=LACKING)
    update = load_sql("dealhunter_vectors.writes", "set_content_parts").format(table=name)
    return count, page, update


def _tables(value: Any) -> tuple[str, ...]:
    if value is None:
        return PARTS_TABLES
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Sequence) or not value:
        raise InvalidArgumentError("tables", f"must be a list of {list(PARTS_TABLES)}, got {value!r}")
    for table in value:
        if table not in PARTS_TABLES:
            raise InvalidArgumentError("tables", f"must be among {list(PARTS_TABLES)}, got {table!r}")
    return tuple(dict.fromkeys(value))


def _require_extra() -> None:
    if not compounds.compounds_available():
        raise ConfigurationError(
            "splitting German compounds needs the optional dependency wordfreq: "
            f"pip install 'dealhunter-vectors[{compounds.EXTRA}]'"
        )


async def _backfill_table(
    conn: asyncpg.Connection,
    table: str,
    batch_size: int,
    on_progress: Callable[[BackfillProgress], None] | None,
) -> BackfillProgress:
    count, page, update = _statements(table)
    progress = BackfillProgress(table, 0, 0, int(await conn.fetchval(count)))
    if on_progress is not None:
        on_progress(progress)
    after: str | None = None
    while True:
        rows = await conn.fetch(page, after, batch_size)
        if not rows:
            return progress
        ids = [r["id"] for r in rows]
        parts = [compounds.compound_parts_text(r["content"]) for r in rows]
        hashes = [content_hash(r["content"]) for r in rows]
        written = await conn.fetch(update, ids, parts, hashes)
        progress = BackfillProgress(
            table, progress.filled + len(written), progress.changed + len(rows) - len(written), progress.lacking
        )
        if on_progress is not None:
            on_progress(progress)
        after = ids[-1]


@operation("backfill_content_parts")
async def backfill_content_parts(
    db: Db,
    *,
    tables: str | Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[BackfillProgress], None] | None = None,
) -> list[BackfillProgress]:
    """Fill the split text (``content_parts``) of every row that lacks it; one result per table.

    *tables*: ``deal_embeddings`` and/or ``raw_chunks`` (default both). Batches of *batch_size*
    rows (1 to 10,000) by id, each its own transaction; *on_progress* is called with each table's
    count before its first batch and after every batch. Resumable: run it again after an
    interruption. Rows whose content changed during the run are counted as ``changed`` and left
    lacking (run again). Needs the extra ``[compounds]`` (else ``ConfigurationError``).
    """
    chosen = _tables(tables)
    size = validation.limit(batch_size, "batch_size", maximum=MAX_BATCH_SIZE)
    _require_extra()
    results = []
    async with connection(db) as conn:
        for table in chosen:
            try:
                results.append(await _backfill_table(conn, table, size, on_progress))
            except (asyncpg.UndefinedColumnError, asyncpg.UndefinedFunctionError) as exc:
                raise SchemaError(
                    f"{table} has no split-text columns ({exc}): run apply_schema (migration 011)"
                ) from exc
    return results
