"""Framework filters mapped to the searches' typed filters (shared by the LangChain and LlamaIndex adapters).

The owner-scoped deal-chunk search filters on columns, never on arbitrary metadata keys
(docs/integrations.md): ``agent_names`` (exact, one or many), ``agent_name_contains``
(case-insensitive substring), ``chunk_categories``, ``min_confidence``, ``only_validated``,
``tech_stack`` (substring of ``metadata.cms`` / ``metadata.framework``). Anything else is an
:class:`~dealhunter_vectors.errors.InvalidArgumentError` naming the key, never a silently
ignored or post-filtered condition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..errors import InvalidArgumentError

__all__ = ["DEAL_FILTER_KEYS", "EQUALITY_ALIASES", "deal_filters", "no_filters"]

DEAL_FILTER_KEYS: Final = (
    "agent_names",
    "agent_name_contains",
    "chunk_categories",
    "min_confidence",
    "only_validated",
    "tech_stack",
)
"""The keyword filters of :func:`~dealhunter_vectors.search_deal_embeddings`, accepted as they are."""

EQUALITY_ALIASES: Final = {"agent_name": "agent_names", "chunk_category": "chunk_categories"}
"""Column equality (``{"agent_name": "x"}`` or ``{"agent_name": ["x", "y"]}``) as the list filter."""


def _as_list(value: Any, key: str, where: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return list(value)
    raise InvalidArgumentError(
        f"{where}[{key!r}]", f"expected a string or a list of strings, got {type(value).__name__}"
    )


def deal_filters(filter: Mapping[str, Any] | None, *, where: str = "filter") -> dict[str, Any]:
    """The search keywords of a LangChain-style filter dict (None or empty: no filter)."""
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise InvalidArgumentError(where, f"expected a dict of filters, got {type(filter).__name__}")
    out: dict[str, Any] = {}
    for key, value in filter.items():
        if key in DEAL_FILTER_KEYS:
            target, converted = key, value
        elif key in EQUALITY_ALIASES:
            target, converted = EQUALITY_ALIASES[key], _as_list(value, key, where)
        else:
            raise InvalidArgumentError(
                f"{where}[{key!r}]",
                "no typed filter of that name (metadata keys cannot be filtered on); supported: "
                + ", ".join((*DEAL_FILTER_KEYS, *EQUALITY_ALIASES)),
            )
        if target in out:
            raise InvalidArgumentError(f"{where}[{key!r}]", f"given twice (as {target!r})")
        out[target] = converted
    return out


def no_filters(filter: Mapping[str, Any] | None, *, where: str = "filter", table: str = "raw_chunks") -> None:
    """Raw chunks have no typed filters: any filter is an error naming it."""
    if filter:
        raise InvalidArgumentError(where, f"{table} searches take no filters (got {sorted(filter)!r})")
