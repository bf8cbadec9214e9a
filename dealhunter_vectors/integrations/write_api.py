"""The library's upsert / get / delete write API (issue 20), as the adapters call it.

Issue 20 adds ``upsert_deal_chunks(db, chunks) -> ids``, ``get_deal_chunks(db, ids)``,
``delete_deal_chunks(db, *, ids=None, qualification_id=None, pre_qualification_id=None) -> int``
and their raw-chunk equivalents to :mod:`dealhunter_vectors.writes`. The adapters call
them only through this module; until they exist, each call raises
:class:`WriteApiMissingError` naming the function (the adapters never write SQL of their own).
When issue 20 lands, this module imports them directly (and the error goes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import writes
from ..errors import DealhunterVectorsError
from ..models import DealChunk, RawChunk

__all__ = [
    "WriteApiMissingError",
    "delete_deal_chunks",
    "delete_raw_chunks",
    "get_deal_chunks",
    "get_raw_chunks",
    "upsert_deal_chunks",
    "upsert_raw_chunks",
]


class WriteApiMissingError(DealhunterVectorsError, NotImplementedError):
    """The installed library lacks a function of issue 20's write API."""


def _function(name: str) -> Any:
    fn = getattr(writes, name, None)
    if fn is None:
        raise WriteApiMissingError(
            f"dealhunter_vectors.writes.{name} (issue 20's write API) is not in this version of the library"
        )
    return fn


async def upsert_deal_chunks(db: Any, chunks: Sequence[DealChunk]) -> list[str]:
    """Insert or overwrite *chunks* by id (one transaction); their ids in order."""
    ids: list[str] = await _function("upsert_deal_chunks")(db, chunks)
    return ids


async def get_deal_chunks(db: Any, ids: Sequence[str]) -> list[Any]:
    """The stored deal chunks of *ids* (unknown ids are skipped)."""
    found: list[Any] = await _function("get_deal_chunks")(db, ids)
    return found


async def delete_deal_chunks(
    db: Any,
    *,
    ids: Sequence[str] | None = None,
    qualification_id: str | None = None,
    pre_qualification_id: str | None = None,
) -> int:
    """Delete deal chunks by id and/or owner (both: the owner's rows among *ids*); how many went."""
    deleted: int = await _function("delete_deal_chunks")(
        db, ids=ids, qualification_id=qualification_id, pre_qualification_id=pre_qualification_id
    )
    return deleted


async def upsert_raw_chunks(db: Any, pre_qualification_id: str, chunks: Sequence[RawChunk]) -> list[str]:
    """Insert or overwrite a pre-qualification's raw *chunks* by id; their ids in order."""
    ids: list[str] = await _function("upsert_raw_chunks")(db, pre_qualification_id, chunks)
    return ids


async def get_raw_chunks(db: Any, ids: Sequence[str]) -> list[Any]:
    """The stored raw chunks of *ids* (unknown ids are skipped)."""
    found: list[Any] = await _function("get_raw_chunks")(db, ids)
    return found


async def delete_raw_chunks(
    db: Any, *, ids: Sequence[str] | None = None, pre_qualification_id: str | None = None
) -> int:
    """Delete raw chunks by id and/or pre-qualification; how many went."""
    deleted: int = await _function("delete_raw_chunks")(db, ids=ids, pre_qualification_id=pre_qualification_id)
    return deleted
