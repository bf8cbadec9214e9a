"""What the owner-scoped statements report about their own work, noted on the current observation.

``search/sql/deal_search.sql`` and ``raw_search.sql`` return, on every result row, how many
rows were scored by their half copy (``rows_scored``) and re-ranked exactly
(``rows_reranked``), and the deal search which fallback produced the row (``fallback``).
A request with no result row reports nothing (there is no row to carry the counts):
observers see these attributes only for searches that found something.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from .. import observe

__all__ = ["note_scans"]


def note_scans(batches: Sequence[Sequence[asyncpg.Record]]) -> None:
    """Add each request's counts (from its first row) to the current observation (nothing when nobody listens)."""
    if not observe.SUBSCRIBERS:
        return
    for rows in batches:
        if not rows:
            continue
        first = rows[0]
        observe.add("rows_scored", first["rows_scored"])
        observe.add("rows_reranked", first["rows_reranked"])
        fallback = first.get("fallback")
        if fallback is not None:
            observe.note("fallback", fallback)
