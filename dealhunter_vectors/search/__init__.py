"""Thresholded cosine search over the three embedding columns, in SQL.

Modules: :mod:`.owner` (owner-scoped exact search), :mod:`.global_search` (the duplicate
check over every pre-qualification), :mod:`.batching` (:func:`search_many`), :mod:`.results`
(rows to models), :mod:`.bound` (the half-precision error bound), ``sql/`` (one file per
statement, read by :mod:`._sql`).

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
* **The bound** ``delta`` = :data:`~.bound.HALF_DISTANCE_ERROR_BOUND` ~ 1.71e-3; its derivation is in
  docs/design.md ("Owner-scoped search: the error bound").
* **Cost and gain.** +6 KB per row; the half distance of a row costs ~2-3 us (no TOAST
  access), the exact distance of a candidate ~10 us (6-7 TOAST chunks). A 1,000-row owner
  needs 5-6 candidates for clustered data at the lead defaults (t = 0.3, k = 5); the
  adversarial test data (many near-ties inside the bound) needs ~70. The query's half
  copy is computed once per request by the client (:func:`~.owner.query_half`) and sent
  as a parameter: a constant of any plan (a ``vector -> halfvec`` cast of a parameter
  inside the row expression would be re-evaluated for every row under a generic plan, and
  computed in a ``LATERAL`` subquery it reached the per-row distance as a nested-loop
  parameter, 2x slower).
* **Global search** (duplicate step, :func:`find_similar_pre_qualifications`): candidates
  come from the halfvec HNSW index with ``hnsw.iterative_scan = relaxed_order`` (pgvector
  0.8; the iterative scan keeps going when the ``extracted_requirements``/``exclude_id``
  filters reject candidates), ``hnsw.ef_search`` = the candidate count (64..1000) and
  ``hnsw.max_scan_tuples`` = 50 000 (plus ``enable_seqscan = off`` and
  ``plan_cache_mode = force_custom_plan``: this path exists to use the index), carried by
  the SET clauses of migration 008's function ``dealhunter_pre_qualification_ann_spread`` (one
  round trip; restored when it returns). The candidate count grows with the table and is
  widened 4x while the result is a compact group seen from afar (:mod:`.global_search`).
  The candidates are re-ranked by the exact ``vector`` distance in SQL, so returned
  similarities are the exact ones. ``exact=True`` forces an exact scan. **"All matches"
  (``limit=None``, the old behaviour and the default) runs the exact scan**: an ANN index
  needs a LIMIT and cannot promise every row above a threshold; ``exact=False`` with
  ``limit=None`` is a ValueError.
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

from ._db import Db
from .batching import SearchResult, search_many
from .bound import HALF_DISTANCE_ERROR_BOUND, HALF_NORM_RANGE
from .global_search import ANN_MAX_SCAN_TUPLES, find_similar_pre_qualifications
from .owner import MAX_SIMILAR_LIMIT, list_deal_chunks, search_deal_embeddings, search_raw_chunks, search_similar
from .results import similarity_percent

__all__ = [
    "ANN_MAX_SCAN_TUPLES",
    "HALF_DISTANCE_ERROR_BOUND",
    "HALF_NORM_RANGE",
    "MAX_SIMILAR_LIMIT",
    "Db",
    "SearchResult",
    "find_similar_pre_qualifications",
    "list_deal_chunks",
    "search_deal_embeddings",
    "search_many",
    "search_raw_chunks",
    "search_similar",
    "similarity_percent",
]
