"""The distributed layout on a Citus coordinator, and the Citus forms of searches and writes.

Layout (``apply_distributed_layout``, also ``apply_schema(pool, distributed=True)``): the
single-node migrations first, then the versioned layout files ``scale/sql/layout_NNN_*.sql``
(recorded in ``dealhunter_distributed_layout``). Every pre-qualification's rows live on one
shard: ``pre_qualifications`` is distributed by ``id``, its direct children by
``pre_qualification_id``, the rest of a pre-qualification's tables by a library-owned
``tenant_id`` (the owning pre-qualification's id), all co-located; shared tables are
reference tables. Design, kept and dropped constraints: ``docs/scaling.md``.

Searches on the distributed layout (chosen automatically when the database has it):

* owner-scoped searches run one statement per request with the shard key in it
  (``scale/sql/citus_*.sql``: the single-node statements with scalar parameters plus
  ``tenant_id = $n``), so each is a single-shard router query with the single node's
  results; a qualification's tenant is looked up first (one query for all of a batch);
* the global duplicate search is a distributed top-k: the exact form pushes ``ORDER BY
  distance LIMIT`` to every shard and merges; the index form takes each shard's HNSW
  candidates (``SET LOCAL hnsw.*`` reaches the workers through
  ``citus.propagate_set_commands = 'local'``), keeps the best by half distance and re-ranks
  them by the exact distance.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

import asyncpg

from ..db.schema import Migration, quote_ident, versioned_sql_files
from ..errors import CitusError, InvalidArgumentError, NotFoundError, SchemaError

__all__ = [
    "LAYOUT_TABLE",
    "TENANT_COLUMN",
    "DistributedTable",
    "apply_distributed_layout",
    "citus_statement",
    "deal_chunk_tenants",
    "distributed_tables",
    "forget_layout_cache",
    "is_distributed",
    "layout_migrations",
    "qualification_tenants",
    "require_citus",
    "run_citus_settings",
]

LAYOUT_TABLE: Final = "dealhunter_distributed_layout"
"""Records the applied distributed-layout versions (a local table on the coordinator)."""
TENANT_COLUMN: Final = "tenant_id"
_ADVISORY_LOCK_KEY: Final = "dealhunter_vectors:schema"
_LAYOUT_FILE = re.compile(r"^layout_(\d{3})_([a-z0-9_]+)\.sql$")
_INDEX_BUILD_TIMEOUT: Final = 6 * 3600.0


@dataclass(frozen=True)
class DistributedTable:
    """How one table is placed: ``reference``, or ``distributed`` by *column*."""

    table: str
    kind: str  # "reference" | "distributed"
    column: str | None = None
    colocated_with: str | None = "pre_qualifications"


_REFERENCE = (
    "business_units",
    "users",
    "references",
    "competencies",
    "technologies",
    "employees",
    "accounts",
    "competitors",
)
_BY_PRE_QUALIFICATION = (
    "quick_scans",
    "deep_migration_analyses",
    "documents",
    "team_assignments",
    "subjective_assessments",
    "qualifications",
    "raw_chunks",
)
_BY_TENANT = (
    "qualification_section_data",
    "website_audits",
    "cms_match_results",
    "baseline_comparisons",
    "pt_estimations",
    "reference_matches",
    "competitor_matches",
    "pitchdecks",
    "pitchdeck_deliverables",
    "pitchdeck_team_members",
    "deal_embeddings",
    "background_jobs",
)


def distributed_tables() -> tuple[DistributedTable, ...]:
    """The placement of all 29 tables in the distributed layout (layout 001)."""
    return (
        *(DistributedTable(t, "reference", None, None) for t in _REFERENCE),
        DistributedTable("audit_trails", "distributed", "id", None),
        DistributedTable("pre_qualifications", "distributed", "id", None),
        *(DistributedTable(t, "distributed", "pre_qualification_id") for t in _BY_PRE_QUALIFICATION),
        *(DistributedTable(t, "distributed", TENANT_COLUMN) for t in _BY_TENANT),
    )


def tenant_tables() -> tuple[str, ...]:
    """Tables that carry the library-owned ``tenant_id`` column."""
    return _BY_TENANT


# --------------------------------------------------------------------------- layout


@cache
def layout_migrations() -> tuple[Migration, ...]:
    """The packaged distributed-layout files, in version order."""
    return tuple(Migration(*f) for f in versioned_sql_files("dealhunter_vectors.scale.sql", _LAYOUT_FILE))


_layout_cache: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _raw_connection(conn: Any) -> Any:
    # A pool hands out a new proxy per acquire; cache on the connection underneath it.
    return getattr(conn, "_con", None) or conn


def forget_layout_cache(conn: Any) -> None:
    """Drop the cached answer of :func:`is_distributed` for *conn*."""
    _layout_cache.pop(_raw_connection(conn), None)


async def is_distributed(conn: asyncpg.Connection) -> bool:
    """Whether the database has the distributed layout (cached per connection)."""
    raw = _raw_connection(conn)
    try:
        return _layout_cache[raw]
    except (KeyError, TypeError):
        pass
    found = bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", LAYOUT_TABLE))
    with contextlib.suppress(TypeError):  # not weak-referenceable: no cache
        _layout_cache[raw] = found
    return found


async def require_citus(conn: asyncpg.Connection) -> str:
    """The citus extension's version (created when available); :class:`CitusError` on a plain server."""
    version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
    if version is None:
        available = await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'citus'")
        if not available:
            raise CitusError(
                "the server is not a Citus coordinator (no citus extension): point DATABASE_URL at a Citus "
                "coordinator, or start a local one with `dealhunter-vectors cluster start`"
            )
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
        except asyncpg.PostgresError as exc:
            raise CitusError(f"CREATE EXTENSION citus failed ({exc}); is citus in shared_preload_libraries?") from exc
        version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
    return str(version)


def _statements(sql: str) -> list[str]:
    """Split a layout file into statements (each ends with ``;`` at the end of a line)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [stmt.strip() for stmt in re.split(r";\s*$", "\n".join(lines), flags=re.M) if stmt.strip()]


_CREATE_LAYOUT_TABLE: Final = f"""
CREATE TABLE IF NOT EXISTS "{LAYOUT_TABLE}" (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def apply_distributed_layout(conn: asyncpg.Connection) -> list[int]:
    """Apply the pending distributed-layout versions; return those applied now.

    Expects the single-node migrations applied (``apply_schema`` does both with
    ``distributed=True``). Idempotent; serialised with ``apply_schema`` by the same
    advisory lock; each layout version runs in one transaction.
    """
    await require_citus(conn)
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", _ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_CREATE_LAYOUT_TABLE)
        rows = await conn.fetch(f'SELECT version, checksum FROM "{LAYOUT_TABLE}"')  # noqa: S608 - constant
        recorded = {r["version"]: r["checksum"] for r in rows}
        known = {m.version: m for m in layout_migrations()}
        unknown = sorted(v for v in recorded if v not in known)
        if unknown:
            raise SchemaError(
                f"the database has distributed layout version(s) {unknown} that this library does not know"
            )
        changed = sorted(v for v, c in recorded.items() if known[v].checksum != c)
        if changed:
            raise SchemaError(f"distributed layout file(s) {changed} changed after they were applied")
        for mig in layout_migrations():
            if mig.version in recorded:
                continue
            try:
                async with conn.transaction():
                    # One statement at a time: Citus rejects some of its commands inside a
                    # multi-statement query string.
                    for statement in _statements(mig.sql):
                        await conn.execute(statement, timeout=_INDEX_BUILD_TIMEOUT)
                    await conn.execute(
                        f'INSERT INTO "{LAYOUT_TABLE}" (version, name, checksum) VALUES ($1, $2, $3)',  # noqa: S608
                        mig.version,
                        mig.name,
                        mig.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise SchemaError(f"distributed layout {mig.version:03d}_{mig.name} failed: {exc}") from exc
            applied.append(mig.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", _ADVISORY_LOCK_KEY)
        forget_layout_cache(conn)
    return applied


# --------------------------------------------------------------------------- statements


def _with_tenant(sql: str, anchor: str, predicate: str, joins: tuple[str, ...] = ()) -> str:
    """*sql* with *predicate* on every scan of the distributed table: a line after the one
    owner filter *anchor*, and appended to each join-back condition in *joins* (the
    statements read the display columns of the result rows by id at the end)."""
    if sql.count(anchor) != 1:
        raise CitusError(f"expected exactly one owner filter {anchor!r} in the statement")
    for join in joins:
        if sql.count(join) != 1:
            raise CitusError(f"expected exactly one join {join!r} in the statement")
        sql = sql.replace(join, f"{join} AND {predicate}")
    start = sql.index(anchor)
    line_end = sql.index("\n", start)
    line = sql[sql.rfind("\n", 0, start) + 1 : start]
    indent = " " * (len(line) - len(line.lstrip()))
    return sql[:line_end] + f"\n{indent}  AND {predicate}" + sql[line_end:]


def _next_param(sql: str) -> int:
    return max(int(n) for n in re.findall(r"\$(\d+)", sql)) + 1


@cache
def citus_statement(name: str, owner: str | None = None) -> str:
    """The statement the distributed layout runs for search statement *name*.

    ``deal_search`` / ``raw_search``: the single node's one-request form
    (``search/_sql.py single_request``) plus the tenant on the distribution column as one
    more parameter (deal chunks: ``d."tenant_id" = $n``, the last parameter; raw chunks: the
    owner parameter itself), so that Citus routes it to one shard. ``list_deal_chunks`` and
    ``hybrid_deal_embeddings``: the single node's statement plus ``d."tenant_id" = $n``.
    Derived from the single-node text, so the two never drift apart. ``pre_qualification_*``:
    the files ``scale/sql/citus_<name>.sql`` (a distributed top-k). *owner* selects the owner
    form of the statements written for a qualification.
    """
    from ..search import _sql

    def owned(text: str) -> str:
        return text if owner is None else _sql.owner_variant(text, owner)  # type: ignore[arg-type]

    column = owner or "qualification_id"
    if name == "deal_search":
        sql = _sql.single_request(owned(_sql.load("deal_search")))
        tenant = f'd."tenant_id" = ${_next_param(sql)}::text'
        return _with_tenant(sql, f'd."{column}" = r.owner_id', tenant, ('JOIN "deal_embeddings" d ON d.id = t.id',))
    if name == "raw_search":
        sql = _sql.single_request(_sql.load("raw_search"))
        tenant = 'c."pre_qualification_id" = $2::text'
        return _with_tenant(sql, "c.pre_qualification_id = r.owner_id", tenant, ('JOIN "raw_chunks" c ON c.id = t.id',))
    if name == "list_deal_chunks":
        sql = owned(_sql.load(name))
        return _with_tenant(sql, f'd."{column}" = $1', f'd."tenant_id" = ${_next_param(sql)}::text')
    if name == "hybrid_deal_embeddings":
        sql = owned(_sql.load(name))
        tenant = f'd."tenant_id" = ${_next_param(sql)}::text'
        return _with_tenant(sql, f'd."{column}" = $2::text', tenant, ('JOIN "deal_embeddings" d ON d.id = f.id',))
    if name == "hybrid_raw_chunks":
        sql = _sql.load(name)
        tenant = 'c."pre_qualification_id" = $2::text'
        return _with_tenant(sql, "c.pre_qualification_id = $2::text", tenant, ('JOIN "raw_chunks" c ON c.id = f.id',))
    text = resources.files("dealhunter_vectors.scale.sql").joinpath(f"citus_{name}.sql").read_text("utf-8")
    return owned(text)


async def qualification_tenants(conn: asyncpg.Connection, qualification_ids: Iterable[str]) -> dict[str, str]:
    """``{qualification id: its pre-qualification}`` for the ids that exist (one query)."""
    ids = sorted(set(qualification_ids))
    if not ids:
        return {}
    rows = await conn.fetch(
        'SELECT "id", "pre_qualification_id" FROM "qualifications" WHERE "id" = ANY($1::text[])', ids
    )
    return {r["id"]: r["pre_qualification_id"] for r in rows}


async def run_citus_settings(conn: asyncpg.Connection, settings: Mapping[str, str | int | float | bool]) -> None:
    """``SET LOCAL`` each setting so that it reaches the workers too (inside a transaction).

    Citus propagates ``SET LOCAL`` commands (not ``set_config()`` calls) to the worker
    connections of the transaction when ``citus.propagate_set_commands = 'local'``.
    Names are checked against ``[a-z_.]``; values are booleans, numbers or simple words.
    """
    statements = ["SET LOCAL citus.propagate_set_commands TO 'local'"]
    for name, value in settings.items():  # all checked before anything is sent
        if not re.fullmatch(r"[a-z_]+(\.[a-z_]+)?", name):
            raise ValueError(f"invalid setting name {name!r}")
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif re.fullmatch(r"[a-z_]+", value):
            text = f"'{value}'"
        else:
            raise ValueError(f"invalid value for setting {name}: {value!r}")
        statements.append(f"SET LOCAL {name} TO {text}")
    for statement in statements:
        await conn.execute(statement)


async def run_deal_searches(
    conn: asyncpg.Connection, owner_column: str, batch: Sequence[tuple[Any, ...]]
) -> list[list[asyncpg.Record]]:
    """Citus form of the batched deal-chunk search: one router query per request.

    *batch* holds each request's 13 single-node parameters (owner id second).
    """
    if not batch:
        return []
    sql = citus_statement("deal_search", owner_column)
    if owner_column == "qualification_id":
        tenants = await qualification_tenants(conn, (p[1] for p in batch))
    else:
        tenants = {p[1]: p[1] for p in batch}
    out: list[list[asyncpg.Record]] = []
    for params in batch:
        tenant = tenants.get(params[1])
        out.append([] if tenant is None else await conn.fetch(sql, *params, tenant))
    return out


async def hybrid_form(conn: asyncpg.Connection, sql: str, args: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """The Citus form of a hybrid search statement of ``search/hybrid.py`` and its arguments
    (the owner is the second argument; a deal-chunk search gets the tenant appended)."""
    from ..search import hybrid

    owner = args[1]
    if sql == hybrid._RAW_SQL:
        return citus_statement("hybrid_raw_chunks"), tuple(args)
    for column, text in hybrid._DEAL_SQL.items():
        if sql == text:
            tenants = await qualification_tenants(conn, [owner]) if column == "qualification_id" else {owner: owner}
            # an unknown qualification has no rows: any tenant gives the empty result
            return citus_statement("hybrid_deal_embeddings", column), (*args, tenants.get(owner, owner))
    raise CitusError("not a hybrid search statement of this library")


async def run_raw_searches(conn: asyncpg.Connection, batch: Sequence[tuple[Any, ...]]) -> list[list[asyncpg.Record]]:
    """Citus form of the batched raw-chunk search: one router query per request."""
    sql = citus_statement("raw_search")
    return [await conn.fetch(sql, *params) for params in batch]


async def list_deal_chunk_rows(
    conn: asyncpg.Connection, owner_column: str, params: Sequence[Any]
) -> list[asyncpg.Record]:
    """Citus form of ``list_deal_chunks``: the single-node parameters (owner first) plus the tenant."""
    owner = params[0]
    if owner_column == "qualification_id":
        tenant = (await qualification_tenants(conn, [owner])).get(owner)
        if tenant is None:
            return []
    else:
        tenant = owner
    return list(await conn.fetch(citus_statement("list_deal_chunks", owner_column), *params, tenant))


async def run_pre_qualification_search(
    conn: asyncpg.Connection, plan: Any, sql_limit: int | None
) -> list[asyncpg.Record]:
    """Citus form of the global duplicate search (*plan*: the search's validated request).

    Exact (``plan.exact``): a distributed top-k, every shard sorts and limits its own rows.
    Index: each shard's HNSW candidates (the single node's base candidate count and index
    settings, sent as ``SET LOCAL`` so that they reach the workers), the best of them by half
    distance, re-ranked by the exact distance. The single node's adaptive widening is not
    needed: each shard's graph holds a fraction of the rows.
    """
    if plan.exact:
        sql = citus_statement("pre_qualification_exact")
        return list(await conn.fetch(sql, plan.vector, plan.exclude_id, plan.max_distance, sql_limit))
    from ..search.global_search import ANN_MAX_EF_SEARCH, ANN_MAX_SCAN_TUPLES, ANN_MIN_CANDIDATES

    assert sql_limit is not None
    candidates = min(ANN_MAX_EF_SEARCH, max(ANN_MIN_CANDIDATES, 4 * sql_limit))
    settings: dict[str, str | int | float | bool] = {
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.ef_search": candidates,
        "hnsw.max_scan_tuples": max(ANN_MAX_SCAN_TUPLES, candidates),
        "enable_seqscan": False,  # this path exists to use the index (as on the single node)
        "plan_cache_mode": "force_custom_plan",
    }
    sql = citus_statement("pre_qualification_ann")
    args = (plan.vector, plan.exclude_id, plan.max_distance, sql_limit, candidates)
    if conn.is_in_transaction():
        await run_citus_settings(conn, settings)
        return list(await conn.fetch(sql, *args))
    async with conn.transaction():
        await run_citus_settings(conn, settings)
        return list(await conn.fetch(sql, *args))


# --------------------------------------------------------------------------- writes

_COPY_VIOLATIONS: Final[tuple[tuple[str, type[asyncpg.PostgresError]], ...]] = (
    ("duplicate key value violates unique constraint", asyncpg.UniqueViolationError),
    ("violates foreign key constraint", asyncpg.ForeignKeyViolationError),
    ("violates check constraint", asyncpg.CheckViolationError),
    ("null value in column", asyncpg.NotNullViolationError),
)


def copy_violation(exc: asyncpg.PostgresError) -> asyncpg.PostgresError:
    """The error a single node raises for *exc*, a constraint violation that Citus reports
    from a COPY on a worker as SQLSTATE XX000 (``InternalServerError``); else *exc*."""
    if getattr(exc, "sqlstate", None) != "XX000":
        return exc
    message = str(exc)
    for prefix, cls in _COPY_VIOLATIONS:
        if prefix in message:
            detail = getattr(exc, "detail", None)
            return cls(f"{message}\n{detail}" if detail and detail not in message else message)
    return exc


async def deal_chunk_tenants(conn: asyncpg.Connection, records: Sequence[Sequence[Any]]) -> list[str]:
    """The tenant of each ``deal_embeddings`` record (id, pre_qualification_id, qualification_id, ...).

    A chunk's tenant is its pre-qualification, else its qualification's pre-qualification.
    ``NotFoundError`` names an unknown owner; a chunk whose qualification belongs to another
    pre-qualification than the chunk's own is an ``InvalidArgumentError``.
    """
    qualifications = await qualification_tenants(conn, (r[2] for r in records if r[2] is not None))
    pre_ids = sorted({r[1] for r in records if r[1] is not None})
    existing: set[str] = set()
    if pre_ids:
        rows = await conn.fetch('SELECT "id" FROM "pre_qualifications" WHERE "id" = ANY($1::text[])', pre_ids)
        existing = {r["id"] for r in rows}
    tenants = []
    for r in records:
        row_id, pre_id, qual_id = r[0], r[1], r[2]
        if pre_id is not None and pre_id not in existing:
            raise NotFoundError(f"deal_embeddings id={row_id}: pre_qualifications id={pre_id} does not exist")
        if qual_id is not None and qual_id not in qualifications:
            raise NotFoundError(f"deal_embeddings id={row_id}: qualifications id={qual_id} does not exist")
        if pre_id is not None and qual_id is not None and qualifications[qual_id] != pre_id:
            raise InvalidArgumentError(
                f"deal_embeddings id={row_id}",
                f"qualification {qual_id} belongs to pre-qualification {qualifications[qual_id]}, not {pre_id} "
                "(the distributed layout keeps a chunk with its tenant)",
            )
        tenants.append(pre_id if pre_id is not None else qualifications[qual_id])
    return tenants


# --------------------------------------------------------------------------- loader

# How the loader fills tenant_id: (column of the row, parent table, parent's tenant column).
_TENANT_FROM_PARENT: Final[dict[str, tuple[str, str, str]]] = {
    **{
        t: ("qualification_id", "qualifications", "pre_qualification_id")
        for t in (
            "qualification_section_data",
            "website_audits",
            "cms_match_results",
            "baseline_comparisons",
            "pt_estimations",
            "reference_matches",
            "competitor_matches",
            "pitchdecks",
        )
    },
    "pitchdeck_deliverables": ("pitchdeck_id", "pitchdecks", TENANT_COLUMN),
    "pitchdeck_team_members": ("pitchdeck_id", "pitchdecks", TENANT_COLUMN),
}
_DISTRIBUTION_COLUMN: Final = {t.table: t.column for t in distributed_tables()}


async def _parent_values(conn: asyncpg.Connection, parent: str, column: str, ids: Iterable[Any]) -> dict[str, Any]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"SELECT id, {quote_ident(column)} AS v FROM {quote_ident(parent)} WHERE id = ANY($1::text[])",  # noqa: S608 - quoted
        wanted,
    )
    return {r["id"]: r["v"] for r in rows}


async def _tenants(
    conn: asyncpg.Connection, table: str, names: Sequence[str], values: Sequence[Sequence[Any]]
) -> list[tuple[str | None, str | None]]:
    """(tenant, why not) for each row of a tenant table, computed from its parents in PostgreSQL."""
    out: list[tuple[str | None, str | None]] = []
    if table in _TENANT_FROM_PARENT:
        column, parent, parent_column = _TENANT_FROM_PARENT[table]
        k = names.index(column)
        found = await _parent_values(conn, parent, parent_column, (v[k] for v in values))
        for v in values:
            tenant = found.get(v[k])
            out.append((tenant, None if tenant else f"{parent} id={v[k]!r} is not in PostgreSQL: no tenant"))
    elif table == "deal_embeddings":
        kp, kq = names.index("pre_qualification_id"), names.index("qualification_id")
        found = await _parent_values(conn, "qualifications", "pre_qualification_id", (v[kq] for v in values))
        for v in values:
            pre, qual = v[kp], v[kq]
            if qual is not None and qual not in found:
                out.append((None, f"qualifications id={qual!r} is not in PostgreSQL: no tenant"))
            elif pre is not None and qual is not None and found[qual] != pre:
                out.append(
                    (None, f"its qualification {qual!r} belongs to pre-qualification {found[qual]!r}, not {pre!r}")
                )
            elif pre is None and qual is None:
                out.append((None, "neither pre_qualification_id nor qualification_id: no tenant"))
            else:
                out.append((pre if pre is not None else found[qual], None))
    elif table == "background_jobs":
        kp, ki = names.index("pre_qualification_id"), names.index("id")
        out = [(v[kp] if v[kp] is not None else v[ki], None) for v in values]
    return out


async def load_batch(conn: asyncpg.Connection, run: Any, state: Any, batch: Any) -> None:
    """The loader's staging path on the distributed layout (one transaction per batch).

    Same reports as the single-node ``_load_batch``, in forms Citus runs: the tenant column
    is computed from the parents already in PostgreSQL (a row whose tenant cannot be
    determined is rejected as ``tenant_unknown``, never dropped); foreign keys and unique
    values are checked with ``= ANY($1)`` look-ups instead of correlated subqueries over the
    local staging table; existing rows are found with a join (not a lateral ``LIMIT 1``);
    new rows go in with a plain ``INSERT ... SELECT`` (the staging table holds new ids only,
    so the count is exact; Citus reports selected rows and has no ``ON CONFLICT (id)``).
    """
    from ..migrate.loader import _create_stage_sql, _reject_source_problems, _row_sql, _stage, _Stopped
    from ..migrate.reports import LIST_LIMIT, RowProblem

    plan = state.plan
    names = [c.name for c in plan.columns]
    good = _reject_source_problems(run, state, batch)
    values = {i: list(batch.values[i]) for i in good}
    db_problems: dict[int, list[RowProblem]] = {}

    def problem(i: int, column: str | None, reason: str, detail: str) -> None:
        db_problems.setdefault(i, []).append(
            RowProblem(
                table=plan.name,
                row_id=batch.ids[i],
                column=column,
                reason=reason,  # type: ignore[arg-type]
                value_kind="text" if column else "row",
                detail=detail,
            )
        )

    for col in plan.foreign_keys:
        k = names.index(col.name)
        assert col.parent is not None
        present = await _parent_values(conn, col.parent, "id", (values[i][k] for i in good))
        for i in good:
            if values[i][k] is not None and values[i][k] not in present:
                problem(i, col.name, "missing_parent", f"{col.parent} id={values[i][k]!r} does not exist in PostgreSQL")
    for name in plan.unique:
        k = names.index(name)
        wanted = sorted({values[i][k] for i in good if values[i][k] is not None})
        column, table = quote_ident(name), quote_ident(plan.name)
        taken = {
            r["v"]: r["id"]
            for r in await conn.fetch(
                f"SELECT id, {column} AS v FROM {table} WHERE {column} = ANY($1::text[])",  # noqa: S608 - quoted
                wanted,
            )
        }
        first_in_batch: dict[Any, str] = {}
        for i in sorted(good, key=lambda j: batch.ids[j]):
            v = values[i][k]
            if v is None:
                continue
            if (v in taken and taken[v] != batch.ids[i]) or (v in first_in_batch and first_in_batch[v] != batch.ids[i]):
                problem(i, name, "unique_violation", f"{name}={v!r} is already used by another row")
            first_in_batch.setdefault(v, batch.ids[i])
    tenant_table = plan.name in _BY_TENANT
    if tenant_table:
        candidates = [i for i in good if i not in db_problems]
        tenants = await _tenants(conn, plan.name, names, [values[i] for i in candidates])
        for i, (tenant, why) in zip(candidates, tenants, strict=True):
            if tenant is None:
                problem(i, None, "tenant_unknown", f"the distributed layout cannot place the row: {why}")
            else:
                values[i].append(tenant)
    if db_problems:
        ordered = sorted(db_problems)
        if run.on_error == "stop":
            found = db_problems[ordered[0]]
            run.record(found)
            run.rejects.write(plan, batch.raw[ordered[0]], found)
            raise _Stopped(found)
        for i in ordered:
            run.record(db_problems[i])
            run.rejects.write(plan, batch.raw[i], db_problems[i])
        state.rejected += len(db_problems)
    staged = [i for i in good if i not in db_problems]
    columns = [*names, TENANT_COLUMN] if tenant_table else names
    target, stage = quote_ident(plan.name), _stage(plan.name)
    dist = _DISTRIBUTION_COLUMN.get(plan.name)
    differing: list[str] = []
    present_count = 0
    overwritten = 0
    inserted = 0
    async with conn.transaction():
        await conn.execute(_create_stage_sql(plan))
        if staged:
            await conn.copy_records_to_table(
                f"dhv_stage_{plan.name}", records=[values[i] for i in staged], columns=columns
            )
            compare = (
                f"SELECT s.id, {_row_sql(plan, 's')} IS DISTINCT FROM {_row_sql(plan, 't')} AS differs "  # noqa: S608
                f"FROM {stage} s JOIN {target} t ON t.id = s.id"
            )
            existing = []
            for r in await conn.fetch(compare):
                existing.append(r["id"])
                if r["differs"]:
                    differing.append(r["id"])
                else:
                    present_count += 1
            if differing and run.overwrite:
                sets = [quote_ident(c) for c in names if c not in ("id", dist)]
                same_shard = f" AND t.{quote_ident(dist)} = s.{quote_ident(dist)}" if dist and dist != "id" else ""
                status = await conn.execute(
                    f"UPDATE {target} t SET ({', '.join(sets)}) = ROW({', '.join('s.' + c for c in sets)}) "  # noqa: S608
                    f"FROM {stage} s WHERE t.id = s.id{same_shard} "
                    f"AND {_row_sql(plan, 's')} IS DISTINCT FROM {_row_sql(plan, 't')}"
                )
                overwritten = int(status.rsplit(" ", 1)[-1])
            if existing:
                await conn.execute(f"DELETE FROM {stage} WHERE id = ANY($1::text[])", existing)  # noqa: S608
            inserted = len(staged) - len(existing)
            if inserted:
                cols = ", ".join(quote_ident(c) for c in columns)
                await conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage}")  # noqa: S608
    state.batches += 1
    state.inserted += inserted
    state.already_present += present_count
    if run.overwrite:
        # a row whose tenant changed cannot move to another shard: it stays a conflict
        state.overwritten += overwritten
        state.conflicts += len(differing) - overwritten
    else:
        state.conflicts += len(differing)
        room = LIST_LIMIT - len(state.conflict_ids)
        if room > 0:
            state.conflict_ids.extend(sorted(differing)[:room])
    run.rejects.flush()
