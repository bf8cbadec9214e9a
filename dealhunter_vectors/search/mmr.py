"""Maximal marginal relevance (MMR): diversify a search result over its candidates.

``mmr_lambda`` (None = off) on :func:`search_deal_embeddings`, :func:`search_raw_chunks` and
the hybrid searches turns the plain top-``limit`` into a greedy MMR selection:

1. the search runs unchanged with ``limit = mmr_candidates`` (default
   ``max(20, 4 * limit)``, at most :data:`MAX_MMR_CANDIDATES`) - the candidates, best first;
2. the server computes the exact cosine ``1 - (a.embedding <=> b.embedding)`` of every pair
   of candidates (``search/sql/mmr_pairwise_*.sql``; the vectors never leave the server);
3. greedily, ``limit`` times, the candidate maximising
   ``mmr_lambda * relevance - (1 - mmr_lambda) * max(similarity to the hits chosen so far)``
   is chosen (the penalty is 0 for the first pick, so the first hit is the most relevant
   one); ties go to the better-ranked candidate (the search's own order: similarity, then id).

Relevance is the hit's cosine to the query for the owner-scoped searches, and the fused
score divided by the best candidate's fused score (so in (0, 1]) for the hybrid searches: a
text-only hit whose embedding is far from the query keeps its fused relevance. A candidate
without an embedding (deal chunks may have none) has similarity 0 to every other one.
``mmr_lambda = 1`` returns the plain ranking; ``0`` maximises diversity only. Both
statements run in one ``REPEATABLE READ`` snapshot (or the caller's transaction).

Why server-side: shipping the candidates' vectors to numpy costs 12 KB each (50 candidates:
600 KB decoded per search); the pairwise matrix is ``n (n - 1) / 2`` float8 values (50
candidates: 1,225 values, ~20 KB). Both are measured in ``benchmarks/bench_hybrid.py``
(docs/benchmarks.md, "Hybrid search").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, Literal, TypeVar

import asyncpg
import numpy as np
import numpy.typing as npt

from ..layout import OwnerColumn, OwnerRequest, layout_of
from ..models import DealChunkSearch, RawChunkSearch, SearchRequest
from . import _db
from ._args import check_id, check_limit, integer, number, one_owner
from ._db import connection
from .statements import MMR_PAIRWISE

__all__ = [
    "MAX_MMR_CANDIDATES",
    "check_mmr_lambda",
    "default_mmr_candidates",
    "mmr_candidates",
    "mmr_select",
    "pairwise_similarity",
    "search_many_with_mmr",
    "snapshot",
    "wants_mmr",
]

MAX_MMR_CANDIDATES: Final = 1000
"""Largest candidate pool of an MMR selection (the pairwise matrix grows with its square)."""

MmrTable = Literal["deal_embeddings", "raw_chunks"]
T = TypeVar("T")


def check_mmr_lambda(value: Any) -> float | None:
    """``None`` (MMR off) or a number in [0, 1]; anything else is a ``ValueError``."""
    if value is None:
        return None
    return number(value, "mmr_lambda", minimum=0.0, maximum=1.0)


def default_mmr_candidates(limit: int) -> int:
    """The candidate pool when ``mmr_candidates`` is not given: ``max(20, 4 * limit)``."""
    return min(MAX_MMR_CANDIDATES, max(20, 4 * limit))


def mmr_candidates(value: Any, limit: int) -> int:
    """Validate ``mmr_candidates`` (None = the default) against ``limit``."""
    if value is None:
        return max(limit, default_mmr_candidates(limit))
    return integer(value, "mmr_candidates", minimum=limit, maximum=MAX_MMR_CANDIDATES)


def mmr_select(relevance: Sequence[float], similarity: npt.NDArray[np.float64], mmr_lambda: float, k: int) -> list[int]:
    """Greedy MMR: the positions of at most *k* candidates, in the order chosen.

    *relevance*: one value per candidate (in the search's order); *similarity*: the
    symmetric candidate x candidate cosine matrix. Each step picks the candidate maximising
    ``mmr_lambda * relevance - (1 - mmr_lambda) * max(similarity to the chosen ones)`` (no
    penalty for the first); ties go to the earliest candidate.
    """
    n = len(relevance)
    rel = np.asarray(relevance, dtype=np.float64)
    chosen: list[int] = []
    available = np.ones(n, dtype=bool)
    max_sim = np.zeros(n, dtype=np.float64)
    while len(chosen) < min(k, n):
        penalty = max_sim if chosen else np.zeros(n, dtype=np.float64)
        score = mmr_lambda * rel - (1.0 - mmr_lambda) * penalty
        score[~available] = -math.inf
        best = int(np.argmax(score))  # the first of equal maxima: the better-ranked candidate
        chosen.append(best)
        available[best] = False
        column = similarity[:, best]
        max_sim = column.copy() if len(chosen) == 1 else np.maximum(max_sim, column)
    return chosen


async def pairwise_similarity(
    conn: asyncpg.Connection, table: MmrTable, ids: Sequence[str], *, owner: tuple[OwnerColumn, str]
) -> npt.NDArray[np.float64]:
    """The exact cosine matrix of the rows *ids* of *table* owned by *owner*, computed by the server.

    Diagonal 1; 0 for a pair where a row has no embedding (or is not the owner's, or no longer
    exists) and for a NaN cosine (zero vector). On Citus the owner's tenant routes it to one shard.
    """
    n = len(ids)
    matrix = np.zeros((n, n), dtype=np.float64)
    np.fill_diagonal(matrix, 1.0)
    if n < 2:
        return matrix
    owner_column, owner_id = owner
    statement = MMR_PAIRWISE[table][owner_column]
    layout = await layout_of(conn)
    rows = await layout.owner_rows(conn, statement, OwnerRequest(owner_id, (list(ids), owner_id)))
    for row in rows:
        distance = row["distance"]
        if distance is None or math.isnan(distance):
            continue
        i, j = row["i"] - 1, row["j"] - 1
        matrix[i, j] = matrix[j, i] = 1.0 - float(distance)
    return matrix


@contextlib.asynccontextmanager
async def snapshot(db: asyncpg.Pool | asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """One connection in one ``REPEATABLE READ READ ONLY`` transaction (or the caller's)."""
    async with connection(db) as conn, _db.snapshot(conn, 2):
        yield conn


async def diversify(
    conn: asyncpg.Connection,
    table: MmrTable,
    hits: Sequence[T],
    *,
    owner: tuple[OwnerColumn, str],
    ids: Sequence[str],
    relevance: Sequence[float],
    mmr_lambda: float,
    limit: int,
) -> list[T]:
    """Apply :func:`mmr_select` to *hits* (with their *ids* and *relevance*)."""
    if len(hits) <= 1:
        return list(hits)[:limit]
    similarity = await pairwise_similarity(conn, table, ids, owner=owner)
    return [hits[i] for i in mmr_select(relevance, similarity, mmr_lambda, limit)]


PlainSearchMany = Callable[[Any, Sequence[SearchRequest]], Awaitable[list[Any]]]


def wants_mmr(requests: Sequence[SearchRequest]) -> bool:
    """Whether any request of a batch asks for MMR (``mmr_lambda`` set)."""
    return any(isinstance(r, (DealChunkSearch, RawChunkSearch)) and r.mmr_lambda is not None for r in requests)


async def search_many_with_mmr(
    db: asyncpg.Pool | asyncpg.Connection, requests: Sequence[SearchRequest], plain: PlainSearchMany
) -> list[Any]:
    """``search_many`` for a batch with MMR requests: the post-step over each one's candidates.

    Each MMR request runs as the plain search with ``limit = mmr_candidates`` (validated
    first, nothing runs when one is invalid); then, on the same connection and snapshot, its
    candidates' cosine matrix is fetched and :func:`mmr_select` picks ``limit`` of them
    (relevance: the hit's cosine). Other requests are untouched.
    """
    widened: list[SearchRequest] = []
    plans: list[tuple[float, int, MmrTable, tuple[OwnerColumn, str]] | None] = []
    for req in requests:
        lam = check_mmr_lambda(req.mmr_lambda) if isinstance(req, (DealChunkSearch, RawChunkSearch)) else None
        if lam is None or not isinstance(req, (DealChunkSearch, RawChunkSearch)):
            widened.append(req)
            plans.append(None)
            continue
        limit = check_limit(req.limit)
        pool_size = mmr_candidates(req.mmr_candidates, limit)
        widened.append(req.model_copy(update={"limit": pool_size, "mmr_lambda": None, "mmr_candidates": None}))
        if isinstance(req, DealChunkSearch):
            plans.append((lam, limit, "deal_embeddings", one_owner(req.qualification_id, req.pre_qualification_id)))
        else:
            plans.append(
                (
                    lam,
                    limit,
                    "raw_chunks",
                    ("pre_qualification_id", check_id(req.pre_qualification_id, "pre_qualification_id")),
                )
            )
    async with snapshot(db) as conn:
        results = await plain(conn, widened)
        for k, plan in enumerate(plans):
            if plan is None:
                continue
            lam, limit, table, owner = plan
            hits = results[k]
            results[k] = await diversify(
                conn,
                table,
                hits,
                owner=owner,
                ids=[h.chunk_id for h in hits],
                relevance=[h.similarity for h in hits],
                mmr_lambda=lam,
                limit=limit,
            )
    return results
