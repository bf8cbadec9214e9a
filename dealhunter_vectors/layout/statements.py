"""Named statements: one record per statement, with every form a deployment layout runs.

A statement is written once, as a ``.sql`` file that runs as written on a single node
(``EXPLAIN`` it with ``PREPARE``). Its other forms are derived here, **eagerly, when the
record is built** (at import), so a file that no longer fits its derivation fails at import
and in ``tests/layout/``, never first on a cluster:

* **owner variant**: a deal-chunk statement is written for ``d."qualification_id"``; the
  pre-qualification form replaces that one predicate (:func:`owner_variant`);
* **one-request form** of a batched statement: its ``unnest(...) WITH ORDINALITY AS r(...)``
  head becomes scalar parameters (:func:`single_request`);
* **Citus form**: every line that ends with a ``-- citus: <predicate>`` comment gets
  ``<predicate>`` appended, with ``:tenant`` replaced by the tenant parameter
  (:func:`citus_form`); the single node ignores the comment. The predicate puts the shard key
  on each scan of a distributed table, so Citus routes the statement to one shard.

An :class:`OwnerStatement` carries its owner column and the number of its owner parameter, so
no code reads arguments by position; a :class:`Statement` runs over every row of a table and
carries the Citus form that a distributed top-k needs (its own file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

__all__ = [
    "CITUS_MARKER",
    "OwnerColumn",
    "OwnerRequest",
    "OwnerStatement",
    "Statement",
    "citus_form",
    "load_sql",
    "owner_variant",
    "parameter_count",
    "single_request",
]

OwnerColumn = Literal["qualification_id", "pre_qualification_id"]
"""The two owners of deal chunks (raw chunks are owned by a pre-qualification)."""

CITUS_MARKER = "-- citus:"
_OWNER_PREDICATE = 'd."qualification_id" = '
_PARAM = re.compile(r"\$(\d+)")


def load_sql(package: str, name: str) -> str:
    """The statement in ``<package>/sql/<name>.sql``."""
    return resources.files(package).joinpath("sql", f"{name}.sql").read_text("utf-8")


def parameter_count(sql: str) -> int:
    """The highest ``$n`` of *sql* (0 when it has none)."""
    return max((int(n) for n in _PARAM.findall(sql)), default=0)


def owner_variant(sql: str, owner: OwnerColumn) -> str:
    """*sql* (written for ``d."qualification_id"``) for rows of the given owner column."""
    if sql.count(_OWNER_PREDICATE) != 1:
        raise ValueError(f"expected exactly one owner predicate {_OWNER_PREDICATE!r} in the statement")
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
        raise ValueError("expected exactly one 'unnest(...) WITH ORDINALITY AS r(...)' head in the statement")
    head = heads[0]
    params = _ARRAY_PARAM.findall(head["arrays"])
    names = [n.strip() for n in head["names"].split(",")]
    if len(names) != len(params) + 1 or names[-1] != "ord":
        raise ValueError("the unnest head must name every array and end with ord")
    scalars = ", ".join(f"${num}::{typ} AS {name}" for (num, typ), name in zip(params, names, strict=False))
    return sql[: head.start()] + f"(SELECT {scalars}, 1::bigint AS ord) r" + sql[head.end() :]


def _batched_owner_param(sql: str) -> int:
    """The ``$n`` of the ``owner_id`` array in a batched statement's unnest head."""
    head = _UNNEST_HEAD.search(sql)
    if head is None:
        raise ValueError("not a batched statement")
    names = [n.strip() for n in head["names"].split(",")]
    params = _ARRAY_PARAM.findall(head["arrays"])
    if "owner_id" not in names:
        raise ValueError("the unnest head names no owner_id")
    return int(params[names.index("owner_id")][0])


def citus_form(sql: str, tenant: int) -> str:
    """*sql* with each ``-- citus: <predicate>`` comment turned into ``<predicate>`` on its line,
    ``:tenant`` becoming ``$<tenant>::text``. At least one marker is required."""
    lines = sql.splitlines()
    found = 0
    for i, line in enumerate(lines):
        code, marker, extra = line.partition(CITUS_MARKER)
        if not marker:
            continue
        extra = extra.strip()
        if not extra.startswith("AND ") or ":tenant" not in extra:
            raise ValueError(f"a '{CITUS_MARKER}' comment must add 'AND ... :tenant', got {extra!r}")
        lines[i] = f"{code.rstrip()} {extra.replace(':tenant', f'${tenant}::text')}"
        found += 1
    if not found:
        raise ValueError(f"the statement has no '{CITUS_MARKER}' line: Citus could not route it to one shard")
    return "\n".join(lines) + ("\n" if sql.endswith("\n") else "")


@dataclass(frozen=True)
class OwnerRequest:
    """One request of an owner statement: the owner's id and the statement's parameters.

    The parameters include the owner id at the statement's ``owner_param`` position; the
    layout reads the owner from :attr:`owner_id`, never from the parameters.
    """

    owner_id: str
    params: tuple[object, ...]


@dataclass(frozen=True)
class OwnerStatement:
    """A statement over one owner's rows, in every form the layouts run.

    ``single``: the one-request form; ``batched``: the ``unnest`` form of many requests (None
    when the statement takes one request); ``citus``: ``single`` with the tenant predicates.
    ``owner_param``: the ``$n`` of the owner id. ``tenant_param``: the ``$n`` the Citus form
    reads the tenant from: the owner parameter itself when the owner column is the shard key
    (``pre_qualification_id``), else one parameter appended after the others (the layout
    looks the tenant up: a qualification's pre-qualification).
    """

    name: str
    owner: OwnerColumn
    owner_param: int
    single: str
    citus: str
    tenant_param: int
    batched: str | None = None

    @property
    def tenant_is_owner(self) -> bool:
        """Whether the owner id is the tenant (no look-up needed)."""
        return self.tenant_param == self.owner_param

    def citus_params(self, request: OwnerRequest, tenant: str) -> tuple[object, ...]:
        """The Citus form's parameters: the request's, plus the tenant unless the owner is the tenant."""
        return request.params if self.tenant_is_owner else (*request.params, tenant)

    @classmethod
    def build(cls, name: str, sql: str, *, owner: OwnerColumn, owner_param: int | None = None) -> OwnerStatement:
        """The record of *sql*: batched when it has an ``unnest`` head (then the owner parameter is
        the ``owner_id`` array's), else *owner_param* must be given."""
        batched = sql if _UNNEST_HEAD.search(sql) else None
        single = single_request(sql) if batched is not None else sql
        if batched is not None:
            owner_param = _batched_owner_param(sql)
        if owner_param is None:
            raise ValueError(f"{name}: give owner_param for a statement of one request")
        tenant_param = owner_param if owner == "pre_qualification_id" else parameter_count(single) + 1
        return cls(
            name=name,
            owner=owner,
            owner_param=owner_param,
            single=single,
            citus=citus_form(single, tenant_param),
            tenant_param=tenant_param,
            batched=batched,
        )


@dataclass(frozen=True)
class Statement:
    """A statement over every row of a table (the global duplicate search): the single-node
    text and the Citus form (a distributed top-k, written as a file of its own), with the same
    parameters."""

    name: str
    single: str
    citus: str

    def __post_init__(self) -> None:
        if parameter_count(self.single) != parameter_count(self.citus):
            raise ValueError(f"{self.name}: the single-node and Citus forms take different parameters")
