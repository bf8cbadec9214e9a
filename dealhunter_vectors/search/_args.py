"""The search functions' own argument checks, built on :mod:`dealhunter_vectors.validation`.

Query embeddings are checked by :func:`dealhunter_vectors.embeddings.as_embedding`
(``InvalidEmbeddingError``, also a ``ValueError``); thresholds lie in [-1, 1], limits in
``[1, MAX_LIMIT]``; owners are exactly one of the two owner ids.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..config import get_settings
from ..embeddings import Float32Array, as_embedding
from ..errors import InvalidArgumentError
from ..layout import OwnerColumn
from ..validation import (
    MAX_LIMIT,
    flag,
    integer,
    limit,
    number,
    optional_flag,
    optional_integer,
    optional_text,
    text,
    text_list,
)

__all__ = [
    "MAX_LIMIT",
    "check_id",
    "check_limit",
    "check_threshold",
    "deal_filters",
    "flag",
    "integer",
    "max_distance",
    "number",
    "one_owner",
    "optional_flag",
    "optional_integer",
    "query_vector",
    "string_list",
    "substring",
]


def query_vector(value: Any) -> Float32Array:
    """The query embedding (``InvalidEmbeddingError`` naming ``query_embedding``)."""
    return as_embedding(value, dimensions=get_settings().embedding_dimensions, where="query_embedding")


def check_threshold(threshold: Any, name: str = "threshold") -> float:
    """A similarity threshold in [-1, 1]."""
    return number(threshold, name, minimum=-1.0, maximum=1.0)


def check_limit(value: Any, *, maximum: int | None = None, name: str = "limit") -> int:
    """A row limit in ``[1, maximum or MAX_LIMIT]``."""
    return limit(value, name, maximum=MAX_LIMIT if maximum is None else maximum)


def one_owner(qualification_id: Any, pre_qualification_id: Any) -> tuple[OwnerColumn, str]:
    """Exactly one of the two owner ids."""
    if (qualification_id is None) == (pre_qualification_id is None):
        raise InvalidArgumentError(
            "qualification_id/pre_qualification_id", "give exactly one of qualification_id and pre_qualification_id"
        )
    if qualification_id is not None:
        return "qualification_id", check_id(qualification_id, "qualification_id")
    return "pre_qualification_id", check_id(pre_qualification_id, "pre_qualification_id")


def check_id(value: Any, name: str) -> str:
    """A row id: a text without NUL."""
    return text(value, name)


def string_list(value: Any, name: str) -> str | None:
    """A list filter as JSON array text (for ``jsonb ? text``), or None when absent."""
    items = text_list(value, name)
    return None if items is None else orjson.dumps(items).decode()


def substring(value: Any, name: str) -> str | None:
    """A substring filter; the old code skipped an empty one (JavaScript: '' is falsy)."""
    return optional_text(value, name) or None


def deal_filters(
    chunk_categories: Any,
    min_confidence: Any,
    only_validated: Any,
    agent_name_contains: Any,
    agent_names: Any,
    tech_stack: Any,
) -> tuple[str | None, int | None, bool, str | None, str | None, str | None]:
    """The deal-chunk filters as statement parameters, in the deal statements' order.

    The old code ignored an empty category list and a min confidence <= 0 (None here).
    """
    categories = string_list(chunk_categories, "chunk_categories")
    min_conf = optional_integer(min_confidence, "min_confidence")
    return (
        categories if categories != "[]" else None,
        min_conf if min_conf is not None and min_conf > 0 else None,
        flag(only_validated, "only_validated"),
        substring(agent_name_contains, "agent_name_contains"),
        string_list(agent_names, "agent_names"),
        substring(tech_stack, "tech_stack"),
    )


def max_distance(threshold: float) -> float:
    # similarity > t  <=>  1 - distance > t  <=>  distance < 1 - t
    return 1.0 - threshold
