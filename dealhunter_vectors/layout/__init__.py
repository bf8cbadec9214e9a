"""How statements run on this deployment: one :class:`Layout` per connection, chosen once.

:func:`layout_of` tells a single node from a Citus coordinator with the distributed layout
(``dealhunter_distributed_layout`` exists) on a connection's first use and remembers the
answer for the session (``apply_schema`` makes it forget). search/, writes and the loader
call the layout's small interface (:meth:`~Layout.owner_batch`, :meth:`~Layout.owner_rows`,
:meth:`~Layout.tenant_rows`, :meth:`~Layout.all_rows`, :meth:`~Layout.duplicate_candidates`,
:meth:`~Layout.copy_rows`, :meth:`~Layout.upsert_rows`)
with named statements (:mod:`.statements`) and read its capability flags
(:attr:`Layout.sharded`), never its name. docs/design.md, "Map".
"""

from __future__ import annotations

from typing import Final

import asyncpg

from .. import observe
from ..db.distributed import LAYOUT_TABLE
from ..db.server import session_state
from .base import CandidatePass, CandidateQuery, CandidateStatement, Layout
from .citus import Citus, copy_violation
from .single import SingleNode
from .statements import OwnerColumn, OwnerRequest, OwnerStatement, Statement

__all__ = [
    "CITUS",
    "SINGLE_NODE",
    "CandidatePass",
    "CandidateQuery",
    "CandidateStatement",
    "Layout",
    "OwnerColumn",
    "OwnerRequest",
    "OwnerStatement",
    "Statement",
    "copy_violation",
    "layout_of",
]

SINGLE_NODE: Final = SingleNode()
CITUS: Final = Citus()
_KEY: Final = "layout"


async def layout_of(conn: asyncpg.Connection) -> Layout:
    """The layout of *conn*'s database (one catalog query on a session's first use)."""
    state = session_state(conn)
    layout = state.get(_KEY)
    if layout is None:
        distributed = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", LAYOUT_TABLE)
        layout = CITUS if distributed else SINGLE_NODE
        state[_KEY] = layout
    if observe.SUBSCRIBERS:
        observe.note("layout", layout.name)
        if layout.sharded:
            observe.note("served_by", "citus")
    return layout
