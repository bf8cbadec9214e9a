"""Argument validation of the search functions: every check names the argument it refuses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ..config import get_settings
from ..embeddings import Float32Array, as_embedding
from ._sql import OwnerColumn


def query_vector(value: Any) -> Float32Array:
    return as_embedding(value, dimensions=get_settings().embedding_dimensions, where="query_embedding")


def check_threshold(threshold: float, name: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"{name} must be a number in [-1, 1], got {type(threshold).__name__}")
    t = float(threshold)
    if not (-1.0 <= t <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must lie in [-1, 1], got {threshold!r}")
    return t


def check_limit(limit: int, *, maximum: int | None = None) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"limit must be an integer >= 1, got {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if maximum is not None and limit > maximum:
        raise ValueError(f"limit must be <= {maximum}, got {limit}")
    return min(limit, 2**31 - 1)


def one_owner(qualification_id: str | None, pre_qualification_id: str | None) -> tuple[OwnerColumn, str]:
    if (qualification_id is None) == (pre_qualification_id is None):
        raise ValueError("give exactly one of qualification_id and pre_qualification_id")
    if qualification_id is not None:
        return "qualification_id", check_id(qualification_id, "qualification_id")
    assert pre_qualification_id is not None
    return "pre_qualification_id", check_id(pre_qualification_id, "pre_qualification_id")


def check_id(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    return value


def string_list(value: str | Sequence[str] | None, name: str) -> str | None:
    """A list filter as JSON array text (for ``jsonb ? text``), or None when absent."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{name} must be strings, got {type(item).__name__}")
    return orjson.dumps(items).decode()


def substring(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    # The old code skipped an empty filter (JavaScript: '' is falsy).
    return value or None


def max_distance(threshold: float) -> float:
    # similarity > t  <=>  1 - distance > t  <=>  distance < 1 - t
    return 1.0 - threshold
