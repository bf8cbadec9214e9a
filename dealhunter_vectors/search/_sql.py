"""The search statements, one ``.sql`` file each in ``search/sql/``, read once at import.

Each file is the statement as it runs (``EXPLAIN`` it as written, with ``PREPARE``). The
deal-chunk statements are written for rows owned by a qualification; :func:`owner_variant`
derives the pre-qualification form by replacing the one owner predicate, so both forms
share one text; :func:`single_request` derives the one-request form of a batched
statement (scalar parameters instead of ``unnest`` arrays).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Literal

OwnerColumn = Literal["qualification_id", "pre_qualification_id"]

_OWNER_PREDICATE = 'd."qualification_id" = '


def load(name: str) -> str:
    """The statement in ``search/sql/<name>.sql``."""
    return resources.files("dealhunter_vectors.search").joinpath("sql", f"{name}.sql").read_text("utf-8")


def owner_variant(sql: str, owner: OwnerColumn) -> str:
    """*sql* (written for ``d."qualification_id"``) for rows of the given owner column."""
    if sql.count(_OWNER_PREDICATE) != 1:
        raise RuntimeError(f"expected exactly one owner predicate {_OWNER_PREDICATE!r} in the statement")
    return sql.replace(_OWNER_PREDICATE, f'd."{owner}" = ')


_UNNEST_HEAD = re.compile(r"unnest\((?P<arrays>[^()]*)\)\s*WITH ORDINALITY AS r\((?P<names>[^()]*)\)", re.S)
_ARRAY_PARAM = re.compile(r"\$(\d+)::([a-z0-9]+)\[\]")


def single_request(sql: str) -> str:
    """The one-request form of a batched statement: ``unnest($1::t[], ...) WITH ORDINALITY AS
    r(a, ..., ord)`` becomes ``(SELECT $1::t AS a, ..., 1::bigint AS ord) r``.

    Same body and parameter numbers, scalar values: no set-returning function and no
    per-request lateral loop, and under a custom plan the absent filters fold away.
    """
    heads = list(_UNNEST_HEAD.finditer(sql))
    if len(heads) != 1:
        raise RuntimeError("expected exactly one 'unnest(...) WITH ORDINALITY AS r(...)' head in the statement")
    head = heads[0]
    params = _ARRAY_PARAM.findall(head["arrays"])
    names = [n.strip() for n in head["names"].split(",")]
    if len(names) != len(params) + 1 or names[-1] != "ord":
        raise RuntimeError("the unnest head must name every array and end with ord")
    scalars = ", ".join(f"${num}::{typ} AS {name}" for (num, typ), name in zip(params, names, strict=False))
    return sql[: head.start()] + f"(SELECT {scalars}, 1::bigint AS ord) r" + sql[head.end() :]
