"""Thresholded cosine search over the three embedding columns, in SQL: one function per old call site.

Modules: :mod:`.owner` (owner-scoped exact search: lead, agent, raw, deep-scan, the search
action), :mod:`.global_search` (the duplicate check over every pre-qualification),
:mod:`.hybrid` (full-text + vector, RRF), :mod:`.mmr`, :mod:`.batching` (:func:`search_many`),
:mod:`.statements` (every statement as a named record; the SQL is in ``sql/``),
:mod:`.results` (rows to models), :mod:`.bound` (the half-precision error bound).

How the searches run (distance filter and NaN, the two-step exact owner search and its
proof, the global index search and its widening, batching), the call-site table and the
input rules: docs/design.md, "Search".
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
