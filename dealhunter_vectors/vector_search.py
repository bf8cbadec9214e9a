"""Thresholded cosine search over the three embedding columns, in SQL.

This replaces every in-process ``cosineSimilarity()`` call site of the old app
(``shared/reference/legacy-behaviour.md``):

===============================  ==========================================================
old call site                    here
===============================  ==========================================================
lead retrieval ``queryRagForLead`` :func:`search_deal_embeddings` (``qualification_id``,
                                 threshold 0.3, ``agent_names`` + ``filter_fallback=True``);
                                 no query embedding -> :func:`list_deal_chunks`
agent retrieval ``queryRAG``     :func:`search_deal_embeddings` (``pre_qualification_id``,
                                 threshold 0.7, ``tech_stack`` + ``filter_fallback=True``)
raw retrieval ``queryRawChunks`` :func:`search_raw_chunks` (threshold 0.2)
deep-scan ``queryLeadRag``       :func:`search_deal_embeddings` (threshold 0.2, limit 10,
                                 ``agent_name_contains``, ``fallback_to_top_k=True``)
search action ``searchSimilar``  :func:`search_similar`
duplicate check, semantic step   :func:`find_similar_pre_qualifications`
===============================  ==========================================================

How the searches run
--------------------
* **Distance filter.** ``similarity > t`` is evaluated as ``embedding <=> q < 1 - t``
  (``<=`` when ``inclusive``), never as ``1 - distance > t``: pgvector returns NaN for a
  zero vector and PostgreSQL sorts NaN above every number, but ``NaN < x`` is false, so
  such a row can never pass. Rows with a NaN distance are also excluded explicitly where
  no threshold applies (top-k fallback, ``distance <> 'NaN'``). Results are ordered by
  distance, then id; ``similarity = 1 - distance`` (pgvector sums the products and norms
  of ``vector`` values in float32 and divides in double precision).
* **Owner-scoped searches are exact, in two steps.** The result is always the one of the
  single-step exact scan (every row of the owner ranked by the full-precision
  ``embedding <=> q``): same rows, same order, same distances, same filters and fallbacks.
  A ``vector(3072)`` is 12 KB and always TOASTed, so that scan spends most of its time
  detoasting. Migration 004 stores ``embedding_half = l2_normalize(embedding)::halfvec``
  inline (6 KB in the heap page). Step 1 scores every row of the owner by the half
  distance ``hd = embedding_half <=> p`` with ``p = l2_normalize(q)::halfvec`` (computed
  once per request). Step 2 computes the exact distance ``d`` only for the candidates that
  the bound ``|hd - d| <= delta`` (below) cannot rule out; every later step (threshold,
  post-filters, fallback flags, order by ``d`` then id, limit) runs on the exact ``d`` of
  the candidates. A row is "surely above" when ``hd + delta < 1 - t`` and "maybe above"
  when ``hd <= 1 - t + delta``. For each set the result can be drawn from (above and
  matching; above; matching; any row - the last three only when ``filter_fallback`` /
  ``fallback_to_top_k`` make them reachable), let ``K`` be the k-th smallest ``hd`` among
  the rows surely in it (infinity when fewer than k). A row with ``hd > K + 2 delta`` has
  ``d >= hd - delta > K + delta >=`` the exact distance of each of those k rows, so k
  rows of the set beat it for certain and it cannot be in that set's top k. Candidates:
  rows that may be in a set and have ``hd <= K + 2 delta`` for it, plus the rows that may
  be above within ``delta`` of the threshold (they decide the fallback flags), plus every
  row without a half copy. The flags computed on the candidates equal the flags on all
  rows (each flag's witness, if any, is a candidate), and each set's top k is among the
  candidates, hence the results are identical. Rows without a half copy (norm outside
  [1e-12, 1e15], including zero vectors) and queries outside that range are always
  re-ranked exactly (a query outside it makes every row a candidate).
* **The bound** ``delta`` = :data:`HALF_DISTANCE_ERROR_BOUND` ~ 1.71e-3, for a row and a
  query with half copies (n = 3072, u = 2^-11 the half unit roundoff, u32 = 2^-24):

  1. *Half copy of a direction.* pgvector converts float32 -> half by rounding to nearest
     (F16C ``_cvtss_sh(x, 0)``, ``_Float16`` or its own round-to-nearest code; checked
     against IEEE in ``tests/test_inline_halfvec.py``): ``|h_i - y_i| <= u |y_i|`` for
     normal values and ``<= 2^-25`` for ``|y_i| < 2^-14`` (subnormal spacing 2^-24). For
     ``y = l2_normalize(x)`` (norm 1 up to float32 rounding of each component, relative
     ``<= 2^-24``): ``||h - y|| <= u ||y|| + 2^-25 sqrt(n)``, so the angle between ``h``
     and ``y`` is at most ``asin(u + 2^-25 sqrt(n) (1 + 2^-9))``, and between ``y`` and
     ``x`` at most ``asin(2^-23)`` (componentwise relative rounding). Normalising first
     makes this independent of the stored scale (a directly cast tiny vector would be
     all subnormals). Sum: ``a = 4.90e-4`` rad for the row and the same for the query.
  2. *True cosines.* The angle is a metric on the sphere and cos is 1-Lipschitz, so
     ``|cos(h, p) - cos(x, q)| <= angle(h, x) + angle(p, q) <= 2a``.
  3. *pgvector's arithmetic.* Both ``<=>`` kernels accumulate the dot product and both
     squared norms in float32 (products of halves are exact in float32), in any order or
     with FMA: each sum has error ``<= gamma * sum|terms|`` with
     ``gamma = n u32 / (1 - n u32) = 1.83e-4``. With ``|dot error| <= gamma ||a|| ||b||``
     and norms relative ``gamma``, the computed cosine differs from the true one by at most
     ``(1 + |c|) gamma / (1 - gamma) <= 2 gamma / (1 - gamma) = 3.66e-4``; clamping to
     [-1, 1] cannot increase it; the double-precision division and ``1 - s`` add < 1e-15.
     This holds for the half kernel and for the exact ``vector`` kernel (whose result is
     the reference, so its error counts once on each side). Norms in [1e-12, 1e15] keep
     every float32 product and sum away from overflow, and underflow adds < 1e-17.
  4. ``delta = 2a + 2 * 3.66e-4 + 1e-9 = 1.713e-3`` (the 1e-9 also covers the float8
     additions in the SQL comparisons).
* **Cost and gain.** +6 KB per row; the half distance of a row costs ~2-3 us (no TOAST
  access), the exact distance of a candidate ~10 us (6-7 TOAST chunks). A 1,000-row owner
  needs 5-6 candidates for clustered data at the lead defaults (t = 0.3, k = 5); the
  adversarial test data (many near-ties inside the bound) needs ~70. The query's half
  copy is computed once per request in a ``LATERAL (... OFFSET 0)`` subquery: a
  ``vector -> halfvec`` cast of a parameter inside the row expression would be
  re-evaluated for every row under a generic plan.
* **Global search** (duplicate step, :func:`find_similar_pre_qualifications`): candidates
  come from the halfvec HNSW index with ``hnsw.iterative_scan = relaxed_order`` (pgvector
  0.8; the iterative scan keeps going when the ``extracted_requirements``/``exclude_id``
  filters reject candidates), ``hnsw.ef_search`` = the candidate count (100..1000) and
  ``hnsw.max_scan_tuples`` = 50 000 (plus ``enable_seqscan = off`` and
  ``plan_cache_mode = force_custom_plan``: this path exists to use the index), set with ``SET LOCAL`` through
  :func:`~dealhunter_vectors.pool.transaction_settings`. The candidates are re-ranked by the
  exact ``vector`` distance in SQL, so returned similarities are the exact ones.
  ``exact=True`` forces an exact scan. **"All matches" (``limit=None``, the old behaviour
  and the default) runs the exact scan**: an ANN index needs a LIMIT and cannot promise
  every row above a threshold; ``exact=False`` with ``limit=None`` is a ValueError.
* **Batching.** Deal-chunk and raw-chunk searches are written as one statement over
  ``unnest($1::vector[], ...) WITH ORDINALITY`` with a ``LATERAL`` search per request, so
  :func:`search_many` sends every deal search of one owner kind (and every raw search) in
  one round trip; a single search is the batch of one. See :func:`search_many`.

Input rules: query embeddings go through :func:`~dealhunter_vectors.embeddings.as_embedding`
(configured dimensions, finite, non-zero norm, half-precision range) and raise
:class:`~dealhunter_vectors.errors.InvalidEmbeddingError`; thresholds outside [-1, 1] and
limits < 1 are a ``ValueError``; an unknown owner id returns ``[]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, Literal, TypeAlias

import asyncpg
import orjson
from pgvector import Vector

from .config import get_settings
from .embeddings import Float32Array, as_embedding
from .models import (
    RAW_CHUNK_DEFAULT_METADATA,
    DealChunkHit,
    DealChunkSearch,
    PreQualificationMatch,
    PreQualificationSearch,
    RawChunkHit,
    RawChunkSearch,
    SearchRequest,
    SimilarityHit,
    SimilaritySearch,
)
from .pool import transaction_settings

__all__ = [
    "ANN_MAX_SCAN_TUPLES",
    "MAX_SIMILAR_LIMIT",
    "find_similar_pre_qualifications",
    "list_deal_chunks",
    "search_deal_embeddings",
    "search_many",
    "search_raw_chunks",
    "search_similar",
]

_log = logging.getLogger(__name__)

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"
OwnerColumn = Literal["qualification_id", "pre_qualification_id"]

MAX_SIMILAR_LIMIT: Final = 50
"""The search action's maximum ``limit`` (the old zod schema's ``max(50)``)."""
ANN_MIN_CANDIDATES: Final = 100
ANN_MAX_EF_SEARCH: Final = 1000
ANN_MAX_SCAN_TUPLES: Final = 50_000
_PERCENT_SLACK: Final = 1e-9
"""Distance slack of the SQL prefilter of the percent rule; the exact rule is applied in Python."""

# Error bound of the half-precision prefilter (derivation: module docstring, "The bound").
HALF_DIMENSIONS: Final = 3072
"""Dimensions of the ``embedding_half`` columns (migration 004)."""
_HALF_UNIT_ROUNDOFF: Final = 2.0**-11  # round to nearest, normal half values
_HALF_SUBNORMAL_ERROR: Final = 2.0**-25  # absolute, |x| < 2^-14 (half subnormals, spacing 2^-24)
_FLOAT32_UNIT_ROUNDOFF: Final = 2.0**-24
_GAMMA: Final = HALF_DIMENSIONS * _FLOAT32_UNIT_ROUNDOFF / (1 - HALF_DIMENSIONS * _FLOAT32_UNIT_ROUNDOFF)
_HALF_DIRECTION_ANGLE: Final = math.asin(
    _HALF_UNIT_ROUNDOFF + _HALF_SUBNORMAL_ERROR * math.sqrt(HALF_DIMENSIONS) * (1 + 2.0**-9)
) + math.asin(2 * _FLOAT32_UNIT_ROUNDOFF)
"""Largest angle between a vector and its half copy ``l2_normalize(x)::halfvec``."""
_COSINE_ARITHMETIC_ERROR: Final = 2 * _GAMMA / (1 - _GAMMA)
"""Largest error of one pgvector cosine (float32 sums over 3072 terms) against the true cosine."""
HALF_DISTANCE_ERROR_BOUND: Final = 2 * _HALF_DIRECTION_ANGLE + 2 * _COSINE_ARITHMETIC_ERROR + 1e-9
"""Proven bound on ``|half distance - exact distance|`` for rows and queries with a half copy (~1.71e-3)."""
HALF_NORM_RANGE: Final = (1e-12, 1e15)
"""Norms with a half copy (migration 004); outside it pgvector's float32 arithmetic under- or overflows."""

# The query's half copy, computed once per request exactly as migration 004 computes a row's
# (OFFSET 0 keeps it from being inlined into, and recomputed for, every row; a vector -> halfvec
# cast of a parameter inside the row expression runs per row under a generic plan: 8 ms vs 3 ms
# per 1,000 rows measured). NULL (every row re-ranked exactly) when the norm is out of range.
_QUERY_HALF_SQL: Final = """
    SELECT CASE WHEN vector_norm(r.q) BETWEEN '1e-12'::float8 AND '1e15'::float8
                THEN (l2_normalize(r.q))::halfvec(3072) END AS p
    OFFSET 0
"""

# --------------------------------------------------------------------------- SQL

_DEAL_COLUMNS: Final = (
    "d.id, d.pre_qualification_id, d.qualification_id, d.agent_name, d.chunk_type, d.chunk_index,"
    " d.content, d.metadata, d.chunk_category, d.confidence, (d.validated_at IS NOT NULL) AS is_validated"
)

# One search per element of the unnested arrays. Parameters (arrays, one element per request):
#  $1 query vector[], $2 owner id text[], $3 max distance float8[], $4 inclusive bool[],
#  $5 chunk categories jsonb[] (array of strings or NULL), $6 min confidence int4[] (NULL = off),
#  $7 only validated bool[], $8 agent name substring text[] (NULL = off),
#  $9 agent names jsonb[] (array of strings or NULL), $10 tech stack text[] (NULL = off),
#  $11 filter fallback bool[], $12 top-k fallback bool[], $13 limit int4[].
# "above": passes the threshold; "matches": passes the post-threshold filters (agent names,
# tech stack) that the old code applied after scoring, with an optional fallback.
# Two steps (module docstring, "Owner-scoped searches"): "half" scores every row of the
# owner by the inline half-precision copy (hd); "scored" computes the exact distance only for
# the candidates that the error bound __DELTA__ cannot exclude; everything after that is the
# exact single-step logic over the candidates.
_DEAL_SEARCH_TEMPLATE: Final = """
SELECT r.ord, h.*
FROM unnest($1::vector[], $2::text[], $3::float8[], $4::bool[], $5::jsonb[], $6::int4[], $7::bool[],
            $8::text[], $9::jsonb[], $10::text[], $11::bool[], $12::bool[], $13::int4[])
     WITH ORDINALITY AS r(q, owner_id, max_distance, inclusive, categories, min_confidence, only_validated,
                          agent_contains, agent_names, tech_stack, filter_fallback, top_k_fallback, row_limit, ord)
CROSS JOIN LATERAL (__QUERY_HALF__) qh
CROSS JOIN LATERAL (
    WITH half AS MATERIALIZED (
        SELECT s.*,
               (s.hd IS NULL OR s.hd = 'NaN'::float8) AS unsure,
               (s.hd + __DELTA__ < r.max_distance) AS sure_above,
               (s.hd <= r.max_distance + __DELTA__) AS may_above,
               (coalesce(r.agent_names ? s.agent_name, r.agent_names IS NULL)
                AND (r.tech_stack IS NULL
                     OR coalesce(jsonb_typeof(s.meta -> 'cms') = 'string'
                                 AND strpos(lower(s.meta ->> 'cms'), lower(r.tech_stack)) > 0, false)
                     OR coalesce(jsonb_typeof(s.meta -> 'framework') = 'string'
                                 AND strpos(lower(s.meta ->> 'framework'), lower(r.tech_stack)) > 0, false)
                )) AS matches
        FROM (
            SELECT __COLUMNS__, d.embedding,
                   d.embedding_half <=> qh.p AS hd,
                   CASE WHEN r.tech_stack IS NOT NULL AND pg_input_is_valid(d.metadata, 'jsonb')
                        THEN d.metadata::jsonb END AS meta
            FROM "deal_embeddings" d
            WHERE d."__OWNER__" = r.owner_id
              AND d.embedding IS NOT NULL
              AND (r.categories IS NULL OR coalesce(r.categories ? d.chunk_category, false))
              AND (r.min_confidence IS NULL OR d.confidence >= r.min_confidence)
              AND (NOT r.only_validated OR d.validated_at IS NOT NULL)
              AND (r.agent_contains IS NULL OR strpos(lower(d.agent_name), lower(r.agent_contains)) > 0)
        ) s
    ),
    kth AS (
        -- k-th smallest half distance among the rows surely in each set the result can be
        -- drawn from (Infinity when fewer than k): a row whose half distance exceeds it by
        -- more than 2 x bound is beaten by k rows of that set for certain.
        SELECT coalesce((SELECT hd FROM half WHERE NOT unsure AND sure_above AND matches
                         ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) AS above_match,
               CASE WHEN r.filter_fallback THEN
                   coalesce((SELECT hd FROM half WHERE NOT unsure AND sure_above
                             ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) END AS above_any,
               CASE WHEN r.top_k_fallback THEN
                   coalesce((SELECT hd FROM half WHERE NOT unsure AND matches
                             ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) END AS match_any,
               CASE WHEN r.top_k_fallback AND r.filter_fallback THEN
                   coalesce((SELECT hd FROM half WHERE NOT unsure
                             ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) END AS any_row
    ),
    scored AS MATERIALIZED (
        SELECT e.*,
               (e.distance < r.max_distance OR (r.inclusive AND e.distance = r.max_distance)) AS above
        FROM (
            SELECT c.id, c.pre_qualification_id, c.qualification_id, c.agent_name, c.chunk_type, c.chunk_index,
                   c.content, c.metadata, c.chunk_category, c.confidence, c.is_validated, c.matches,
                   c.embedding <=> r.q AS distance
            FROM half c CROSS JOIN kth k
            WHERE c.unsure
               OR (c.may_above AND c.matches AND c.hd <= k.above_match + 2 * __DELTA__)
               OR (c.may_above AND c.hd <= k.above_any + 2 * __DELTA__)
               OR (c.matches AND c.hd <= k.match_any + 2 * __DELTA__)
               OR c.hd <= k.any_row + 2 * __DELTA__
               -- rows near the threshold decide the fallback flags below
               OR (c.may_above AND c.hd >= r.max_distance - __DELTA__ AND (c.matches OR r.filter_fallback))
            OFFSET 0
        ) e
    ),
    flags AS (
        SELECT coalesce(bool_or(above AND matches), false) AS any_above_match,
               coalesce(bool_or(above), false) AS any_above,
               coalesce(bool_or(matches AND distance <> 'NaN'::float8), false) AS any_match
        FROM scored
    )
    SELECT s.id, s.pre_qualification_id, s.qualification_id, s.agent_name, s.chunk_type, s.chunk_index,
           s.content, s.metadata, s.chunk_category, s.confidence, s.is_validated, s.distance
    FROM scored s CROSS JOIN flags f
    WHERE s.distance <> 'NaN'::float8
      AND CASE WHEN f.any_above_match OR (r.filter_fallback AND f.any_above) OR NOT r.top_k_fallback
               THEN s.above AND (s.matches OR (r.filter_fallback AND NOT f.any_above_match))
               ELSE s.matches OR (r.filter_fallback AND NOT f.any_match)
          END
    ORDER BY s.distance, s.id
    LIMIT r.row_limit
) h
ORDER BY r.ord, h.distance, h.id
"""


def _owner_scoped_sql(template: str, **parts: str) -> str:
    sql = template.replace("__QUERY_HALF__", _QUERY_HALF_SQL).replace("__DELTA__", repr(HALF_DISTANCE_ERROR_BOUND))
    for key, value in parts.items():
        sql = sql.replace(f"__{key.upper()}__", value)
    return sql


DEAL_SEARCH_BY_QUALIFICATION_SQL: Final = _owner_scoped_sql(
    _DEAL_SEARCH_TEMPLATE, columns=_DEAL_COLUMNS, owner="qualification_id"
)
"""Batched exact deal-chunk search of rows owned by a qualification (half-precision prefilter + exact re-rank)."""
DEAL_SEARCH_BY_PRE_QUALIFICATION_SQL: Final = _owner_scoped_sql(
    _DEAL_SEARCH_TEMPLATE, columns=_DEAL_COLUMNS, owner="pre_qualification_id"
)
"""Batched exact deal-chunk search of rows owned by a pre-qualification (half-precision prefilter + exact re-rank)."""

# $1 query vector[], $2 pre-qualification id text[], $3 max distance float8[], $4 inclusive bool[],
# $5 limit int4[]. Same two steps as the deal search (only the threshold and the limit apply).
_RAW_SEARCH_TEMPLATE: Final = """
SELECT r.ord, h.*
FROM unnest($1::vector[], $2::text[], $3::float8[], $4::bool[], $5::int4[])
     WITH ORDINALITY AS r(q, owner_id, max_distance, inclusive, row_limit, ord)
CROSS JOIN LATERAL (__QUERY_HALF__) qh
CROSS JOIN LATERAL (
    WITH half AS MATERIALIZED (
        SELECT s.*, (s.hd IS NULL OR s.hd = 'NaN'::float8) AS unsure
        FROM (
            SELECT c.id, c.pre_qualification_id, c.chunk_index, c.content, c.token_count, c.metadata,
                   c.embedding, c.embedding_half <=> qh.p AS hd
            FROM "raw_chunks" c
            WHERE c.pre_qualification_id = r.owner_id
        ) s
    ),
    kth AS (
        SELECT coalesce((SELECT hd FROM half WHERE NOT unsure AND hd + __DELTA__ < r.max_distance
                         ORDER BY hd LIMIT 1 OFFSET r.row_limit - 1), 'Infinity'::float8) AS above
    )
    SELECT s.* FROM (
        SELECT c.id, c.pre_qualification_id, c.chunk_index, c.content, c.token_count, c.metadata,
               c.embedding <=> r.q AS distance
        FROM half c CROSS JOIN kth k
        WHERE c.unsure OR (c.hd <= r.max_distance + __DELTA__ AND c.hd <= k.above + 2 * __DELTA__)
        OFFSET 0
    ) s
    WHERE s.distance < r.max_distance OR (r.inclusive AND s.distance = r.max_distance)
    ORDER BY s.distance, s.id
    LIMIT r.row_limit
) h
ORDER BY r.ord, h.distance, h.id
"""
RAW_SEARCH_SQL: Final = _owner_scoped_sql(_RAW_SEARCH_TEMPLATE)
"""Batched exact raw-chunk search (half-precision prefilter + exact re-rank of the candidates)."""

_LIST_TEMPLATE: Final = """
WITH base AS MATERIALIZED (
    SELECT __COLUMNS__, d.created_at,
           coalesce($2::jsonb ? d.agent_name, $2::jsonb IS NULL) AS matches
    FROM "deal_embeddings" d
    WHERE d."__OWNER__" = $1
      AND ($3::jsonb IS NULL OR coalesce($3::jsonb ? d.chunk_category, false))
      AND ($4::int4 IS NULL OR d.confidence >= $4)
      AND (NOT $5::bool OR d.validated_at IS NOT NULL)
      AND ($6::text IS NULL OR strpos(lower(d.agent_name), lower($6)) > 0)
)
SELECT b.* FROM base b
WHERE b.matches OR ($7::bool AND NOT EXISTS (SELECT 1 FROM base WHERE matches))
ORDER BY b.created_at NULLS LAST, b.id
LIMIT $8
"""
LIST_BY_QUALIFICATION_SQL: Final = _LIST_TEMPLATE.replace("__COLUMNS__", _DEAL_COLUMNS).replace(
    "__OWNER__", "qualification_id"
)
"""Unranked listing of a qualification's chunks (with or without embedding)."""
LIST_BY_PRE_QUALIFICATION_SQL: Final = _LIST_TEMPLATE.replace("__COLUMNS__", _DEAL_COLUMNS).replace(
    "__OWNER__", "pre_qualification_id"
)
"""Unranked listing of a pre-qualification's chunks (with or without embedding)."""

# $1 query vector, $2 excluded id (NULL = none), $3 max distance, $4 limit (NULL = all).
PRE_QUALIFICATION_EXACT_SQL: Final = """
SELECT s.id, s.distance
FROM (
    SELECT p.id, p.description_embedding <=> $1::vector AS distance
    FROM "pre_qualifications" p
    WHERE p.description_embedding IS NOT NULL
      AND p.extracted_requirements IS NOT NULL
      AND ($2::text IS NULL OR p.id <> $2::text)
    OFFSET 0
) s
WHERE s.distance <= $3
ORDER BY s.distance, s.id
LIMIT $4
"""
"""Exact scan of every pre-qualification with a description embedding and requirements."""

# $1 query vector, $2 excluded id, $3 max distance, $4 limit, $5 candidate count.
# $1 is cast to vector explicitly everywhere: otherwise PostgreSQL infers its type from the
# halfvec cast in the FROM clause (analysed first) and the "exact" re-rank silently becomes a
# halfvec distance (vector -> halfvec is an implicit cast).
PRE_QUALIFICATION_ANN_SQL: Final = """
SELECT s.id, s.distance
FROM (
    SELECT c.id, c.description_embedding <=> $1::vector AS distance
    FROM (
        SELECT p.id, p.description_embedding
        FROM "pre_qualifications" p
        WHERE p.description_embedding IS NOT NULL
          AND p.extracted_requirements IS NOT NULL
          AND ($2::text IS NULL OR p.id <> $2::text)
        ORDER BY (p.description_embedding)::halfvec(3072) <=> ($1::vector)::halfvec(3072)
        LIMIT $5
    ) c
    OFFSET 0
) s
WHERE s.distance <= $3
ORDER BY s.distance, s.id
LIMIT $4
"""
"""HNSW (halfvec) candidates, re-ranked by the exact ``vector`` distance."""


# --------------------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def _connection(db: Db) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


def _query_vector(value: Any) -> Float32Array:
    return as_embedding(value, dimensions=get_settings().embedding_dimensions, where="query_embedding")


def _check_threshold(threshold: float, name: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"{name} must be a number in [-1, 1], got {type(threshold).__name__}")
    t = float(threshold)
    if not (-1.0 <= t <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must lie in [-1, 1], got {threshold!r}")
    return t


def _check_limit(limit: int, *, maximum: int | None = None) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"limit must be an integer >= 1, got {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if maximum is not None and limit > maximum:
        raise ValueError(f"limit must be <= {maximum}, got {limit}")
    return min(limit, 2**31 - 1)


def _one_owner(qualification_id: str | None, pre_qualification_id: str | None) -> tuple[OwnerColumn, str]:
    if (qualification_id is None) == (pre_qualification_id is None):
        raise ValueError("give exactly one of qualification_id and pre_qualification_id")
    if qualification_id is not None:
        return "qualification_id", _check_id(qualification_id, "qualification_id")
    assert pre_qualification_id is not None
    return "pre_qualification_id", _check_id(pre_qualification_id, "pre_qualification_id")


def _check_id(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    return value


def _string_list(value: str | Sequence[str] | None, name: str) -> str | None:
    """A list filter as JSON array text (for ``jsonb ? text``), or None when absent."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{name} must be strings, got {type(item).__name__}")
    return orjson.dumps(items).decode()


def _substring(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    # The old code skipped an empty filter (JavaScript: '' is falsy).
    return value or None


def _max_distance(threshold: float) -> float:
    # similarity > t  <=>  1 - distance > t  <=>  distance < 1 - t
    return 1.0 - threshold


def _parse_metadata(
    text: str | None, *, table: str, row_id: str, default: dict[str, Any]
) -> tuple[dict[str, Any], str | None, str | None]:
    """Parse a metadata JSON text: ``(metadata, raw_text_if_bad, error_if_bad)``."""
    if text is None:
        return dict(default), None, None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        try:  # valid JSON that orjson refuses (integers beyond 64 bits); NaN/Infinity stay invalid
            value = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            error = f"invalid JSON: {exc}"
            _log.warning("%s id=%s column=metadata: %s; returning the raw text", table, row_id, error)
            return dict(default), text, error
    if not isinstance(value, dict):
        error = f"not a JSON object (got {type(value).__name__})"
        _log.warning("%s id=%s column=metadata: %s; returning the raw text", table, row_id, error)
        return dict(default), text, error
    return value, None, None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _similarity(distance: float) -> float:
    return 1.0 - float(distance)


def _js_round(x: float) -> int:
    floor = math.floor(x)
    return int(floor + 1 if x - floor >= 0.5 else floor)


def similarity_percent(cosine: float) -> int:
    """The old duplicate check's ``Math.round((cos + 1) / 2 * 100)`` (JavaScript rounding)."""
    return _js_round((cosine + 1) / 2 * 100)


def _deal_hit(row: asyncpg.Record, similarity: float | None) -> DealChunkHit:
    metadata, raw, error = _parse_metadata(row["metadata"], table="deal_embeddings", row_id=row["id"], default={})
    return DealChunkHit(
        chunk_id=row["id"],
        pre_qualification_id=row["pre_qualification_id"],
        qualification_id=row["qualification_id"],
        agent_name=row["agent_name"],
        chunk_type=row["chunk_type"],
        chunk_index=row["chunk_index"],
        content=row["content"],
        similarity=similarity,
        metadata=metadata,
        metadata_raw=raw,
        metadata_error=error,
        chunk_category=row["chunk_category"],
        confidence=row["confidence"],
        is_validated=row["is_validated"],
    )


def _raw_hit(row: asyncpg.Record) -> RawChunkHit:
    metadata, raw, error = _parse_metadata(
        row["metadata"], table="raw_chunks", row_id=row["id"], default=RAW_CHUNK_DEFAULT_METADATA
    )
    return RawChunkHit(
        chunk_id=row["id"],
        pre_qualification_id=row["pre_qualification_id"],
        chunk_index=row["chunk_index"],
        content=row["content"],
        token_count=row["token_count"],
        similarity=_similarity(row["distance"]),
        metadata=metadata,
        metadata_raw=raw,
        metadata_error=error,
    )


# --------------------------------------------------------------------------- prepared requests


class _DealParams:
    """One validated deal-chunk search, as the per-request elements of the batched statement."""

    __slots__ = ("owner_column", "params")

    def __init__(self, req: DealChunkSearch) -> None:
        vector = _query_vector(req.query_embedding)
        self.owner_column, owner_id = _one_owner(req.qualification_id, req.pre_qualification_id)
        threshold = _check_threshold(req.threshold)
        limit = _check_limit(req.limit)
        categories = req.chunk_categories
        min_conf = req.min_confidence
        if min_conf is not None and (isinstance(min_conf, bool) or not isinstance(min_conf, int)):
            raise ValueError(f"min_confidence must be an integer, got {type(min_conf).__name__}")
        self.params: tuple[Any, ...] = (
            Vector(vector),
            owner_id,
            _max_distance(threshold),
            bool(req.inclusive),
            # the old code ignored an empty category list and a min confidence <= 0
            _string_list(categories, "chunk_categories") if categories else None,
            min_conf if min_conf is not None and min_conf > 0 else None,
            bool(req.only_validated),
            _substring(req.agent_name_contains, "agent_name_contains"),
            _string_list(req.agent_names, "agent_names"),
            _substring(req.tech_stack, "tech_stack"),
            bool(req.filter_fallback),
            bool(req.fallback_to_top_k),
            limit,
        )


class _RawParams:
    __slots__ = ("params",)

    def __init__(self, query: Float32Array, owner_id: str, threshold: float, inclusive: bool, limit: int) -> None:
        self.params: tuple[Any, ...] = (Vector(query), owner_id, _max_distance(threshold), inclusive, limit)


def _prepare_raw(req: RawChunkSearch) -> _RawParams:
    vector = _query_vector(req.query_embedding)
    owner = _check_id(req.pre_qualification_id, "pre_qualification_id")
    return _RawParams(vector, owner, _check_threshold(req.threshold), False, _check_limit(req.limit))


class _SimilarPlan:
    """The search action split into at most three sub-searches (lead, agent, raw)."""

    __slots__ = ("agent", "lead", "limit", "raw")

    def __init__(self, req: SimilaritySearch) -> None:
        vector = _query_vector(req.query_embedding)
        if req.qualification_id is None and req.pre_qualification_id is None:
            raise ValueError("give qualification_id and/or pre_qualification_id")
        threshold = _check_threshold(req.threshold)
        self.limit = _check_limit(req.limit, maximum=MAX_SIMILAR_LIMIT)
        self.lead: _DealParams | None = None
        self.agent: _DealParams | None = None
        self.raw: _RawParams | None = None
        common: dict[str, Any] = {
            "query_embedding": vector,
            "threshold": threshold,
            "limit": self.limit,
            "inclusive": True,
        }
        if req.qualification_id is not None:
            self.lead = _DealParams(
                DealChunkSearch(qualification_id=_check_id(req.qualification_id, "qualification_id"), **common)
            )
        if req.pre_qualification_id is not None:
            owner = _check_id(req.pre_qualification_id, "pre_qualification_id")
            self.agent = _DealParams(DealChunkSearch(pre_qualification_id=owner, **common))
            if req.include_raw_chunks:
                self.raw = _RawParams(vector, owner, threshold, True, self.limit)


def _merge_similar(
    plan: _SimilarPlan,
    lead: list[asyncpg.Record],
    agent: list[asyncpg.Record],
    raw: list[asyncpg.Record],
) -> list[SimilarityHit]:
    keyed: list[tuple[float, int, str, SimilarityHit]] = []
    for rank, (source, rows) in enumerate((("lead", lead), ("agent", agent))):
        for row in rows:
            hit = _deal_hit(row, _similarity(row["distance"]))
            keyed.append(
                (
                    row["distance"],
                    rank,
                    row["id"],
                    SimilarityHit(
                        id=hit.chunk_id,
                        source=source,  # type: ignore[arg-type]
                        similarity=hit.similarity or 0.0,
                        agent_name=hit.agent_name,
                        chunk_type=hit.chunk_type,
                        chunk_index=hit.chunk_index,
                        content=hit.content,
                        metadata=hit.metadata,
                        metadata_raw=hit.metadata_raw,
                        metadata_error=hit.metadata_error,
                    ),
                )
            )
    for row in raw:
        metadata, bad, error = _parse_metadata(row["metadata"], table="raw_chunks", row_id=row["id"], default={})
        keyed.append(
            (
                row["distance"],
                2,
                row["id"],
                SimilarityHit(
                    id=row["id"],
                    source="raw",
                    similarity=_similarity(row["distance"]),
                    chunk_index=row["chunk_index"],
                    content=row["content"],
                    metadata=metadata,
                    metadata_raw=bad,
                    metadata_error=error,
                ),
            )
        )
    keyed.sort(key=lambda item: (item[0], item[1], item[2]))
    return [item[3] for item in keyed[: plan.limit]]


def _transpose(batch: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*batch, strict=True)]


async def _run_deal_batch(
    conn: asyncpg.Connection, owner_column: OwnerColumn, batch: Sequence[_DealParams]
) -> list[list[asyncpg.Record]]:
    out: list[list[asyncpg.Record]] = [[] for _ in batch]
    if not batch:
        return out
    sql = (
        DEAL_SEARCH_BY_QUALIFICATION_SQL
        if owner_column == "qualification_id"
        else DEAL_SEARCH_BY_PRE_QUALIFICATION_SQL
    )
    rows = await conn.fetch(sql, *_transpose([p.params for p in batch]))
    for row in rows:
        out[row["ord"] - 1].append(row)
    return out


async def _run_raw_batch(conn: asyncpg.Connection, batch: Sequence[_RawParams]) -> list[list[asyncpg.Record]]:
    out: list[list[asyncpg.Record]] = [[] for _ in batch]
    if not batch:
        return out
    rows = await conn.fetch(RAW_SEARCH_SQL, *_transpose([p.params for p in batch]))
    for row in rows:
        out[row["ord"] - 1].append(row)
    return out


class _PreQualPlan:
    __slots__ = ("exact", "exclude_id", "limit", "max_distance", "min_percent", "vector")

    def __init__(self, req: PreQualificationSearch) -> None:
        self.vector = _query_vector(req.query_embedding)
        self.exclude_id = None if req.exclude_id is None else _check_id(req.exclude_id, "exclude_id")
        p = req.min_similarity_percent
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0 <= p <= 100):
            raise ValueError(f"min_similarity_percent must be a number in [0, 100], got {p!r}")
        self.min_percent = float(p)
        self.limit = None if req.limit is None else _check_limit(req.limit)
        if req.exact is False and self.limit is None:
            raise ValueError("an approximate (index) search needs a limit; use exact=True or give a limit")
        self.exact = self.limit is None if req.exact is None else bool(req.exact)
        # round((cos + 1) / 2 * 100) >= P  <=>  (cos + 1) / 2 * 100 >= P - 0.5  <=>  cos >= (P - 0.5) / 50 - 1
        min_cos = max(-1.0, (self.min_percent - 0.5) / 50.0 - 1.0)
        self.max_distance = 1.0 - min_cos + _PERCENT_SLACK

    def matches(self, rows: Sequence[asyncpg.Record]) -> list[PreQualificationMatch]:
        out = []
        for row in rows:
            cos = _similarity(row["distance"])
            percent = similarity_percent(cos)
            if percent >= self.min_percent:
                out.append(
                    PreQualificationMatch(pre_qualification_id=row["id"], similarity=cos, similarity_percent=percent)
                )
        return out if self.limit is None else out[: self.limit]


async def _run_pre_qualification(conn: asyncpg.Connection, plan: _PreQualPlan) -> list[PreQualificationMatch]:
    # A few extra rows so that rows dropped by the exact percent rule never shorten the result.
    sql_limit = None if plan.limit is None else plan.limit + 8
    if plan.exact:
        rows = await conn.fetch(PRE_QUALIFICATION_EXACT_SQL, plan.vector, plan.exclude_id, plan.max_distance, sql_limit)
        return plan.matches(rows)
    assert sql_limit is not None
    candidates = max(ANN_MIN_CANDIDATES, 4 * sql_limit)
    settings: dict[str, str | int | float | bool] = {
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.ef_search": min(ANN_MAX_EF_SEARCH, candidates),
        "hnsw.max_scan_tuples": max(ANN_MAX_SCAN_TUPLES, candidates),
        # This path exists to use the index: on small tables the planner prefers a seq scan
        # that reads every 12 KB vector through TOAST (15.7 ms vs 4.0 ms at 1k rows), and
        # after five executions a prepared statement may switch to a slower generic plan
        # (6.6 ms vs 3.7 ms at 10k rows); both measured in benchmarks/bench_global.py.
        "enable_seqscan": False,
        "plan_cache_mode": "force_custom_plan",
    }
    async with transaction_settings(conn, settings) as tx:
        rows = await tx.fetch(
            PRE_QUALIFICATION_ANN_SQL, plan.vector, plan.exclude_id, plan.max_distance, sql_limit, candidates
        )
    return plan.matches(rows)


# --------------------------------------------------------------------------- public API


async def search_deal_embeddings(
    db: Db,
    query_embedding: Any,
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    threshold: float = 0.3,
    limit: int = 5,
    agent_names: str | Sequence[str] | None = None,
    agent_name_contains: str | None = None,
    chunk_categories: Sequence[str] | None = None,
    min_confidence: int | None = None,
    only_validated: bool = False,
    tech_stack: str | None = None,
    filter_fallback: bool = False,
    inclusive: bool = False,
    fallback_to_top_k: bool = False,
) -> list[DealChunkHit]:
    """Exact thresholded cosine search over one owner's ``deal_embeddings`` rows.

    Rows of exactly one owner (``qualification_id`` or ``pre_qualification_id``; both or
    neither is a ``ValueError``) with a non-null embedding and similarity ``> threshold``
    (``>=`` when ``inclusive``), best first (ties by id), at most ``limit``.

    Filters applied before the threshold (as the old SQL did): ``chunk_categories`` (an
    empty list means no filter), ``min_confidence`` (only when > 0; NULL confidence fails
    it), ``only_validated`` (``validated_at IS NOT NULL``), ``agent_name_contains``
    (case-insensitive substring; ``%``, ``_`` and ``\\`` are literal characters; an empty
    string means no filter).

    Filters applied after the threshold (as the old code did): ``agent_names`` (exact
    match, one or many) and ``tech_stack`` (case-insensitive substring of the string
    ``metadata.cms`` or ``metadata.framework``; rows with unparsable metadata do not
    match). With ``filter_fallback=True``, when these leave nothing above the threshold
    the unfiltered thresholded rows are returned (the old lead/agent retrieval behaviour);
    without it the filters are strict.

    ``fallback_to_top_k=True`` (the old deep-scan expert): when nothing passes, return the
    best ``limit`` rows by similarity ignoring the threshold (NaN distances still excluded).
    """
    req = DealChunkSearch(
        query_embedding=query_embedding,
        qualification_id=qualification_id,
        pre_qualification_id=pre_qualification_id,
        threshold=threshold,
        limit=limit,
        agent_names=agent_names,
        agent_name_contains=agent_name_contains,
        chunk_categories=chunk_categories,
        min_confidence=min_confidence,
        only_validated=only_validated,
        tech_stack=tech_stack,
        filter_fallback=filter_fallback,
        inclusive=inclusive,
        fallback_to_top_k=fallback_to_top_k,
    )
    return (await search_many(db, [req]))[0]  # type: ignore[return-value]


async def search_raw_chunks(
    db: Db,
    query_embedding: Any,
    *,
    pre_qualification_id: str,
    threshold: float = 0.2,
    limit: int = 5,
) -> list[RawChunkHit]:
    """Exact thresholded search over a pre-qualification's ``raw_chunks`` (similarity ``> threshold``).

    Best first, ties by id, at most ``limit``. NULL metadata is reported as the old default
    ``{"startPosition": 0, "endPosition": 0, "type": "unknown"}``.
    """
    req = RawChunkSearch(
        query_embedding=query_embedding, pre_qualification_id=pre_qualification_id, threshold=threshold, limit=limit
    )
    return (await search_many(db, [req]))[0]  # type: ignore[return-value]


async def search_similar(
    db: Db,
    query_embedding: Any,
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    threshold: float = 0.5,
    limit: int = 10,
    include_raw_chunks: bool = True,
) -> list[SimilarityHit]:
    """The old search action: hits with similarity ``>= threshold`` merged over sources.

    ``"lead"``: deal_embeddings of ``qualification_id``; ``"agent"``: deal_embeddings of
    ``pre_qualification_id``; ``"raw"``: raw_chunks of ``pre_qualification_id`` (when
    ``include_raw_chunks``). At least one owner is required; ``limit`` at most 50. Sorted by
    similarity (ties: lead, agent, raw, then id) and sliced to ``limit``. A row owned by
    both ids appears once per source, as in the old action.
    """
    req = SimilaritySearch(
        query_embedding=query_embedding,
        qualification_id=qualification_id,
        pre_qualification_id=pre_qualification_id,
        threshold=threshold,
        limit=limit,
        include_raw_chunks=include_raw_chunks,
    )
    return (await search_many(db, [req]))[0]  # type: ignore[return-value]


async def find_similar_pre_qualifications(
    db: Db,
    query_embedding: Any,
    *,
    exclude_id: str | None = None,
    min_similarity_percent: float = 85,
    limit: int | None = None,
    exact: bool | None = None,
) -> list[PreQualificationMatch]:
    """The duplicate check's semantic step over every pre-qualification.

    Candidates: pre-qualifications other than ``exclude_id`` with a description embedding
    and ``extracted_requirements``. A match has ``round((cos + 1) / 2 * 100) >=
    min_similarity_percent`` (JavaScript rounding, halves up; 85 means cos >= 0.69).
    Best first (ties by id).

    ``limit=None`` (all matches, the old behaviour) scans exactly. With a ``limit`` the
    halfvec HNSW index supplies candidates (iterative scan) that are re-ranked by the exact
    distance; ``exact=True`` forces the exact scan, ``exact=False`` without a limit is a
    ``ValueError``.
    """
    req = PreQualificationSearch(
        query_embedding=query_embedding,
        exclude_id=exclude_id,
        min_similarity_percent=min_similarity_percent,
        limit=limit,
        exact=exact,
    )
    return (await search_many(db, [req]))[0]  # type: ignore[return-value]


async def list_deal_chunks(
    db: Db,
    *,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
    limit: int | None = None,
    agent_names: str | Sequence[str] | None = None,
    agent_name_contains: str | None = None,
    chunk_categories: Sequence[str] | None = None,
    min_confidence: int | None = None,
    only_validated: bool = False,
    filter_fallback: bool = False,
) -> list[DealChunkHit]:
    """Unranked listing of one owner's chunks (also those without embedding), similarity None.

    The old "no query embedding" paths: the lead service listed every chunk of the
    qualification (and reported an invented similarity 0.75: not reproduced), the deep-scan
    expert took the first ``k`` rows. Order: ``created_at`` (NULLs last), then id. Filters
    as in :func:`search_deal_embeddings`; ``filter_fallback`` applies to ``agent_names``.
    """
    owner_column, owner_id = _one_owner(qualification_id, pre_qualification_id)
    row_limit = None if limit is None else _check_limit(limit)
    if min_confidence is not None and (isinstance(min_confidence, bool) or not isinstance(min_confidence, int)):
        raise ValueError(f"min_confidence must be an integer, got {type(min_confidence).__name__}")
    sql = LIST_BY_QUALIFICATION_SQL if owner_column == "qualification_id" else LIST_BY_PRE_QUALIFICATION_SQL
    async with _connection(db) as conn:
        rows = await conn.fetch(
            sql,
            owner_id,
            _string_list(agent_names, "agent_names"),
            _string_list(chunk_categories, "chunk_categories") if chunk_categories else None,
            min_confidence if min_confidence is not None and min_confidence > 0 else None,
            bool(only_validated),
            _substring(agent_name_contains, "agent_name_contains"),
            bool(filter_fallback),
            row_limit,
        )
    return [_deal_hit(row, None) for row in rows]


SearchResult = list[DealChunkHit] | list[RawChunkHit] | list[SimilarityHit] | list[PreQualificationMatch]


async def search_many(db: Db, requests: Sequence[SearchRequest]) -> list[SearchResult]:
    """Run several searches together; results in request order (one list per request).

    All requests are validated first (nothing runs if one is invalid). Then, on one
    connection:

    * every deal-chunk search owned by a qualification (including the ``lead`` part of
      :class:`SimilaritySearch`) is **one statement** (one round trip), likewise every
      deal-chunk search owned by a pre-qualification and every raw-chunk search: each
      request is one element of the ``unnest`` arrays of the batched SQL;
    * :class:`PreQualificationSearch` requests run one statement each (the HNSW index scan
      needs its own ``SET LOCAL`` settings and LIMIT).

    With more than one statement the batch runs in one ``REPEATABLE READ READ ONLY``
    transaction, so every result sees the same snapshot. ``db`` may be a pool or a
    connection (inside a caller's transaction the snapshot is the caller's).
    """
    deal_plans: dict[OwnerColumn, list[_DealParams]] = {"qualification_id": [], "pre_qualification_id": []}
    raw_plans: list[_RawParams] = []
    # What each request needs: ("deal", column, index) / ("raw", index) / ("similar", plan, refs) / ("pq", plan)
    slots: list[tuple[Any, ...]] = []

    def add_deal(params: _DealParams) -> tuple[OwnerColumn, int]:
        bucket = deal_plans[params.owner_column]
        bucket.append(params)
        return params.owner_column, len(bucket) - 1

    def add_raw(params: _RawParams) -> int:
        raw_plans.append(params)
        return len(raw_plans) - 1

    for req in requests:
        if isinstance(req, DealChunkSearch):
            slots.append(("deal", *add_deal(_DealParams(req))))
        elif isinstance(req, RawChunkSearch):
            slots.append(("raw", add_raw(_prepare_raw(req))))
        elif isinstance(req, SimilaritySearch):
            plan = _SimilarPlan(req)
            refs = (
                add_deal(plan.lead) if plan.lead else None,
                add_deal(plan.agent) if plan.agent else None,
                add_raw(plan.raw) if plan.raw else None,
            )
            slots.append(("similar", plan, refs))
        elif isinstance(req, PreQualificationSearch):
            slots.append(("pq", _PreQualPlan(req)))
        else:
            raise TypeError(f"unsupported search request: {type(req).__name__}")

    statements = sum(1 for bucket in deal_plans.values() if bucket) + (1 if raw_plans else 0)
    statements += sum(1 for slot in slots if slot[0] == "pq")

    async with _connection(db) as conn:
        tx: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()
        if statements > 1:
            tx = (
                conn.transaction()
                if conn.is_in_transaction()
                else conn.transaction(isolation="repeatable_read", readonly=True)
            )
        async with tx:
            deal_rows = {
                column: await _run_deal_batch(conn, column, bucket) for column, bucket in deal_plans.items()
            }
            raw_rows = await _run_raw_batch(conn, raw_plans)
            results: list[SearchResult] = []
            for slot in slots:
                kind = slot[0]
                if kind == "deal":
                    rows = deal_rows[slot[1]][slot[2]]
                    results.append([_deal_hit(row, _similarity(row["distance"])) for row in rows])
                elif kind == "raw":
                    results.append([_raw_hit(row) for row in raw_rows[slot[1]]])
                elif kind == "similar":
                    plan, (lead_ref, agent_ref, raw_ref) = slot[1], slot[2]
                    results.append(
                        _merge_similar(
                            plan,
                            deal_rows[lead_ref[0]][lead_ref[1]] if lead_ref else [],
                            deal_rows[agent_ref[0]][agent_ref[1]] if agent_ref else [],
                            raw_rows[raw_ref] if raw_ref is not None else [],
                        )
                    )
                else:
                    results.append(await _run_pre_qualification(conn, slot[1]))
    return results
