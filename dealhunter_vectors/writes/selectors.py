"""Which deal chunks a replace, delete or page is about: an owner plus optional filters.

A selector is an owner (``qualification_id`` and/or ``pre_qualification_id``), optionally
narrowed by ``agent_name``, ``chunk_type`` and ``metadata_match`` (a mapping of keys to string
values that the row's metadata, a JSON object stored as text, must hold: ``{"sectionId": S}``
is the app's ``(metadata::jsonb)->>'sectionId' = S`` for string values; a row whose metadata is
NULL, not JSON or not an object never matches and never fails the statement). Every value is
validated here (texts without NUL characters and valid Unicode; ``InvalidArgumentError``
naming the argument) and sent as a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .. import validation
from ..errors import InvalidArgumentError
from ..layout import OwnerColumn

__all__ = ["DealSelector", "deal_selector", "id_list"]


@dataclass(frozen=True)
class DealSelector:
    """A validated selector of deal chunks."""

    qualification_id: str | None
    pre_qualification_id: str | None
    agent_name: str | None
    chunk_type: str | None
    metadata_match: dict[str, str] | None

    @property
    def owner(self) -> tuple[OwnerColumn, str] | None:
        """The owner that routes the statement: the pre-qualification when given (it is the tenant)."""
        if self.pre_qualification_id is not None:
            return "pre_qualification_id", self.pre_qualification_id
        if self.qualification_id is not None:
            return "qualification_id", self.qualification_id
        return None

    def params(self) -> tuple[object, ...]:
        """``$2``-``$6`` of the selector statements (``writes/sql/delete_deal_chunks.sql``)."""
        match = None if self.metadata_match is None else orjson.dumps(self.metadata_match).decode()
        return (self.qualification_id, self.pre_qualification_id, self.agent_name, self.chunk_type, match)

    def mismatch(self, record: Mapping[str, Any]) -> str | None:
        """Why a row with these values is not selected (None when it is): for a replace, whose new
        chunks must all be selected again by the same selector."""
        for column in ("qualification_id", "pre_qualification_id", "agent_name", "chunk_type"):
            wanted = getattr(self, column)
            if wanted is not None and record[column] != wanted:
                return f"column={column}: {record[column]!r} is not the selector's {wanted!r}"
        if self.metadata_match:
            metadata = record["metadata"]
            for key, value in self.metadata_match.items():
                if not isinstance(metadata, Mapping) or metadata.get(key) != value:
                    return f"column=metadata: has no {key!r}: {value!r} (the selector's metadata_match)"
        return None


def _metadata_match(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            "metadata_match", f"must be a mapping of keys to strings, got {type(value).__name__}"
        )
    if not value:
        raise InvalidArgumentError("metadata_match", "must name at least one key (None: no metadata filter)")
    out: dict[str, str] = {}
    for key, item in value.items():
        name = validation.text(key, "metadata_match key")
        out[name] = validation.text(item, f"metadata_match[{name!r}]")
    return out


def deal_selector(
    *,
    qualification_id: Any = None,
    pre_qualification_id: Any = None,
    agent_name: Any = None,
    chunk_type: Any = None,
    metadata_match: Any = None,
    owner_required: bool = True,
) -> DealSelector:
    """The selector of these arguments, validated; an owner is required unless told otherwise."""
    selector = DealSelector(
        qualification_id=validation.optional_text(qualification_id, "qualification_id"),
        pre_qualification_id=validation.optional_text(pre_qualification_id, "pre_qualification_id"),
        agent_name=validation.optional_text(agent_name, "agent_name"),
        chunk_type=validation.optional_text(chunk_type, "chunk_type"),
        metadata_match=_metadata_match(metadata_match),
    )
    if owner_required and selector.owner is None:
        raise InvalidArgumentError(
            "qualification_id", "give a qualification_id or a pre_qualification_id (the owner of the chunks)"
        )
    return selector


def id_list(value: Any, name: str = "ids") -> list[str]:
    """A list of chunk ids (a ``str`` alone is refused: it would be one id, or a typo)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise InvalidArgumentError(name, f"must be a list of ids, got {type(value).__name__}")
    ids = validation.text_list(list(value), name)
    return ids or []
