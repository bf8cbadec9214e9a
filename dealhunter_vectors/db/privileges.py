"""What a database role can do with this library: search, write, migrate, administer.

Least privilege is the recommended deployment (docs/reliability.md, "Roles"): a search
service needs ``SELECT`` on a few tables, a writer service a few more grants, only the
owner/migrator runs DDL. :func:`role_capabilities` checks each purpose's privileges with
``has_table_privilege`` and friends (read-only catalog functions, one statement), for
``doctor --for``; :func:`permission_denied` turns the server's ``42501`` into
:class:`~dealhunter_vectors.errors.PermissionDeniedError` naming what the call needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import asyncpg

from ..errors import PermissionDeniedError
from .migrations import MIGRATIONS_TABLE

__all__ = [
    "OPERATION_NEEDS",
    "PURPOSES",
    "SEARCH_NEEDS",
    "WRITE_NEEDS",
    "Capability",
    "Need",
    "Purpose",
    "RoleCapabilities",
    "grant_statements",
    "permission_denied",
    "purpose_needs",
    "role_capabilities",
]

Purpose = Literal["search", "write", "migrate", "admin"]
PURPOSES: Final[tuple[Purpose, ...]] = ("search", "write", "migrate", "admin")
_VERBS: Final[dict[Purpose, str]] = {"search": "search", "write": "write", "migrate": "migrate", "admin": "administer"}

NeedKind = Literal["table", "column", "function", "database", "schema", "owner"]


@dataclass(frozen=True)
class Need:
    """One privilege: *privilege* on *target* (a table of schema public, a function signature, ...)."""

    kind: NeedKind
    privilege: str
    target: str
    column: str = ""

    def describe(self) -> str:
        if self.kind == "owner":
            return f"ownership of {self.target}"
        if self.kind == "column":
            return f"{self.privilege} ({self.column}) on {self.target}"
        if self.kind == "database":
            return f"{self.privilege} on the database"
        if self.kind == "schema":
            return f"{self.privilege} on schema {self.target}"
        if self.kind == "function":
            return f"{self.privilege} on function {self.target.split('(')[0]}"
        return f"{self.privilege} on {self.target}"


def _select(*tables: str) -> tuple[Need, ...]:
    return tuple(Need("table", "SELECT", t) for t in tables)


def _write(*tables: str) -> tuple[Need, ...]:
    return tuple(Need("table", p, t) for t in tables for p in ("INSERT", "UPDATE", "DELETE"))


_ANN_FUNCTION: Final = (
    "dealhunter_pre_qualification_ann(vector, text, double precision, integer, integer, integer, integer)"
)
_TEXT_CONFIG_FUNCTION: Final = "dealhunter_text_search_config()"

SEARCH_NEEDS: Final = (
    *_select("deal_embeddings", "raw_chunks", "pre_qualifications", "qualifications", MIGRATIONS_TABLE),
    Need("function", "EXECUTE", _ANN_FUNCTION),
    Need("function", "EXECUTE", _TEXT_CONFIG_FUNCTION),
)
"""Every search, the listing, ``schema_status`` and ``apply_schema`` on a current schema.
``qualifications``: the Citus layout looks up a qualification's tenant."""
WRITE_NEEDS: Final = (
    *SEARCH_NEEDS,
    *(Need("table", p, t) for t in ("deal_embeddings", "raw_chunks") for p in ("INSERT", "UPDATE", "DELETE")),
    Need("column", "UPDATE", "pre_qualifications", "description_embedding"),
)
"""The searches and every write of the library: insert, replace, upsert, delete, re-embed and
backfill the chunks, ``set_description_embedding`` (a replace locks its pre-qualification with
``SELECT ... FOR NO KEY UPDATE``, which needs an ``UPDATE`` grant on one of its columns)."""


def purpose_needs(purpose: Purpose, tables: Sequence[str]) -> tuple[Need, ...]:
    """The privileges *purpose* needs; *tables*: every table of the schema (migrate, admin)."""
    if purpose == "search":
        return SEARCH_NEEDS
    if purpose == "write":
        return WRITE_NEEDS
    if purpose == "migrate":
        return (
            *(Need("table", p, t) for t in tables for p in ("SELECT", "INSERT")),
            Need("table", "SELECT", MIGRATIONS_TABLE),
            Need("database", "TEMPORARY", ""),
        )
    return (
        *(Need("owner", "OWNER", t) for t in (*tables, MIGRATIONS_TABLE)),
        Need("schema", "CREATE", "public"),
    )


_SEARCH_DEAL: Final = _select("deal_embeddings", "qualifications")
OPERATION_NEEDS: Final[dict[str, tuple[Need, ...]]] = {
    "search_deal_embeddings": _SEARCH_DEAL,
    "list_deal_chunks": _SEARCH_DEAL,
    "search_raw_chunks": _select("raw_chunks"),
    "search_similar": _select("deal_embeddings", "raw_chunks", "qualifications"),
    "search_many": _select("deal_embeddings", "raw_chunks", "qualifications"),
    "find_similar_pre_qualifications": (*_select("pre_qualifications"), Need("function", "EXECUTE", _ANN_FUNCTION)),
    "hybrid_search_deal_embeddings": (*_SEARCH_DEAL, Need("function", "EXECUTE", _TEXT_CONFIG_FUNCTION)),
    "hybrid_search_raw_chunks": (*_select("raw_chunks"), Need("function", "EXECUTE", _TEXT_CONFIG_FUNCTION)),
    "schema_status": _select(MIGRATIONS_TABLE),
    "insert_deal_chunks": (Need("table", "INSERT", "deal_embeddings"), *_select("qualifications")),
    "replace_raw_chunks": (
        *_select("pre_qualifications"),
        Need("column", "UPDATE", "pre_qualifications", "description_embedding"),
        *_select("raw_chunks"),
        Need("table", "DELETE", "raw_chunks"),
        Need("table", "INSERT", "raw_chunks"),
    ),
    "set_description_embedding": (
        *_select("pre_qualifications"),
        Need("column", "UPDATE", "pre_qualifications", "description_embedding"),
    ),
    "set_text_search_config": (
        Need("schema", "CREATE", "public"),
        Need("owner", "OWNER", "deal_embeddings"),
        Need("owner", "OWNER", "raw_chunks"),
    ),
    "replace_deal_chunks": (
        *_select("deal_embeddings", "pre_qualifications", "qualifications"),
        Need("column", "UPDATE", "pre_qualifications", "description_embedding"),  # the owner's row lock
        *_write("deal_embeddings"),
    ),
    **{
        name: (*_select("deal_embeddings", "pre_qualifications", "qualifications"), *_write("deal_embeddings"))
        for name in ("upsert_deal_chunks", "delete_deal_chunks")
    },
    **{
        name: (*_select("raw_chunks", "pre_qualifications"), *_write("raw_chunks"))
        for name in ("upsert_raw_chunks", "delete_raw_chunks")
    },
    **{
        name: _select("deal_embeddings", "raw_chunks", "qualifications")
        for name in ("get_deal_chunks", "page_deal_chunks", "get_raw_chunks", "page_raw_chunks", "stale_chunks")
    },
    "update_embeddings": (*_select("deal_embeddings", "raw_chunks"), *_write("deal_embeddings", "raw_chunks")),
    "backfill_content_parts": (*_select("deal_embeddings", "raw_chunks"), *_write("deal_embeddings", "raw_chunks")),
    "recall_self_check": (*_select("pre_qualifications"), Need("function", "EXECUTE", _ANN_FUNCTION)),
    "apply_schema": (
        Need("owner", "OWNER", "deal_embeddings"),
        Need("owner", "OWNER", "raw_chunks"),
        Need("owner", "OWNER", "pre_qualifications"),
        Need("schema", "CREATE", "public"),
    ),
}
"""What each public operation needs, by relation: the error of a refused call names it."""


@dataclass(frozen=True)
class Capability:
    """Whether the role can serve one purpose, and the privileges it lacks for it."""

    purpose: Purpose
    missing: tuple[Need, ...]

    @property
    def able(self) -> bool:
        return not self.missing

    def describe(self) -> str:
        verb = _VERBS[self.purpose]
        if self.able:
            return f"can {verb}"
        shown = ", ".join(n.describe() for n in self.missing[:3])
        more = f" and {len(self.missing) - 3} more" if len(self.missing) > 3 else ""
        return f"cannot {verb} (no {shown}{more})"


@dataclass(frozen=True)
class RoleCapabilities:
    """What the connected role can do, per purpose."""

    role: str
    superuser: bool
    capabilities: tuple[Capability, ...]

    def of(self, purpose: Purpose) -> Capability:
        return next(c for c in self.capabilities if c.purpose == purpose)

    def can(self, purpose: Purpose) -> bool:
        return self.of(purpose).able

    def summary(self) -> str:
        """``role app_reader: can search; cannot write (no INSERT on deal_embeddings, ...); ...``."""
        if self.superuser:
            return f"role {self.role} is a superuser: can search, write, migrate and administer"
        return f"role {self.role}: " + "; ".join(c.describe() for c in self.capabilities)


_GRANTED_SQL = """
SELECT n.ord, CASE n.kind
    WHEN 'table' THEN to_regclass(format('public.%I', n.target)) IS NULL
                      OR has_table_privilege(format('public.%I', n.target), n.privilege)
    WHEN 'column' THEN to_regclass(format('public.%I', n.target)) IS NULL
                       OR has_column_privilege(format('public.%I', n.target), n.col, n.privilege)
    WHEN 'function' THEN to_regprocedure(n.target) IS NULL OR has_function_privilege(n.target, n.privilege)
    WHEN 'database' THEN has_database_privilege(current_database(), n.privilege)
    WHEN 'schema' THEN has_schema_privilege(n.target, n.privilege)
    WHEN 'owner' THEN coalesce((SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c
                                 WHERE c.oid = to_regclass(format('public.%I', n.target))), true)
    END AS granted
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS n(kind, privilege, target, col, ord)
"""


async def role_capabilities(conn: asyncpg.Connection, tables: Sequence[str]) -> RoleCapabilities:
    """Check every purpose's privileges for the connected role (catalog functions only; a
    relation or function that does not exist yet is not counted as missing)."""
    needs = {p: purpose_needs(p, tables) for p in PURPOSES}
    unique = list(dict.fromkeys(n for ns in needs.values() for n in ns))
    rows = await conn.fetch(
        _GRANTED_SQL,
        [n.kind for n in unique],
        [n.privilege for n in unique],
        [n.target for n in unique],
        [n.column for n in unique],
    )
    granted = {unique[r["ord"] - 1]: bool(r["granted"]) for r in rows}
    facts = await conn.fetchrow("SELECT current_user AS role, rolsuper FROM pg_roles WHERE rolname = current_user")
    assert facts is not None
    return RoleCapabilities(
        role=facts["role"],
        superuser=bool(facts["rolsuper"]),
        capabilities=tuple(Capability(p, tuple(n for n in needs[p] if not granted[n])) for p in PURPOSES),
    )


_OBJECT = re.compile(
    r"(?:permission denied for|must be owner of) (?:table|relation|view|function|schema|database|sequence) "
    r'"?([^"\s]+)"?'
)


def permission_denied(exc: BaseException, operation: str) -> PermissionDeniedError | None:
    """The typed error for a refused privilege (SQLSTATE 42501) in *operation* (None for any other exception)."""
    if not isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return None
    text = str(exc).splitlines()[0] if str(exc) else "permission denied"
    m = _OBJECT.search(text)
    relation = m[1] if m else None
    needs = [
        n for n in OPERATION_NEEDS.get(operation, ()) if relation is not None and n.target.split("(")[0] == relation
    ]
    needed = f": the role needs {', '.join(n.describe() for n in needs)}" if needs else ""
    return PermissionDeniedError(
        f"{operation}: {text}{needed} (grants per service: docs/reliability.md, section Roles)",
        privileges=tuple(dict.fromkeys(n.privilege for n in needs)),
        relation=relation,
    )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def grant_statements(missing: Sequence[Need], role: str, database: str) -> list[str]:
    """The ``GRANT`` statements that give *role* the *missing* privileges (ownership: a note).

    Tables are grouped per privilege, in first-seen order; run them as the tables' owner.
    """
    by_privilege: dict[str, list[str]] = {}
    out: list[str] = []
    who = _quoted(role)
    for n in missing:
        if n.kind == "table":
            by_privilege.setdefault(n.privilege, []).append(_quoted(n.target))
        elif n.kind == "column":
            out.append(f"GRANT {n.privilege} ({_quoted(n.column)}) ON {_quoted(n.target)} TO {who}")
        elif n.kind == "function":
            out.append(f"GRANT EXECUTE ON FUNCTION {n.target} TO {who}")
        elif n.kind == "database":
            out.append(f"GRANT {n.privilege} ON DATABASE {_quoted(database)} TO {who}")
        elif n.kind == "schema":
            out.append(f"GRANT {n.privilege} ON SCHEMA {_quoted(n.target)} TO {who}")
    tables = [f"GRANT {p} ON {', '.join(dict.fromkeys(ts))} TO {who}" for p, ts in by_privilege.items()]
    owners = [n.target for n in missing if n.kind == "owner"]
    note = [f"run schema commands as the owner of {owners[0]} (and the other tables)"] if owners else []
    return [*tables, *out, *note]
