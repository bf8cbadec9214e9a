"""Memory settings of the embedded server, sized to its machine.

The rules and their overrides: docs/scaling.md, "The embedded server is sized to its machine".

* :func:`compute_sizing` is a pure function: memory budget in, PostgreSQL settings out.
* :func:`detect_memory` reads the machine's RAM and the cgroup memory limit (the smaller wins).
* :func:`sizing_from_settings` applies the ``DEALHUNTER_EMBEDDED_*`` overrides.
* :func:`render_conf` writes the settings as a ``postgresql.conf`` include file.
* :func:`buffer_check` (async, any server) compares ``shared_buffers`` with the working set
  of the embedding tables, for ``doctor``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import asyncpg

from ..config import Settings, get_settings
from ..errors import ConfigurationError

__all__ = [
    "SIZED_SETTINGS",
    "ServerSizing",
    "buffer_check",
    "compute_sizing",
    "detect_memory",
    "embedding_working_set",
    "format_memory",
    "parse_memory",
    "render_conf",
    "sizing_from_settings",
]

KB = 1024
MB = 1024 * KB
GB = 1024 * MB

SIZED_SETTINGS = ("shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem")
"""The settings the sizing writes, in file order (only ``shared_buffers`` needs a restart)."""

SHARED_BUFFERS_MIN = 128 * MB  # PostgreSQL's default: never size below it
SHARED_BUFFERS_MAX = 8 * GB  # beyond this the OS page cache serves as well (double buffering)
WORK_MEM_MIN, WORK_MEM_MAX = 4 * MB, 64 * MB
MAINTENANCE_WORK_MEM_MIN, MAINTENANCE_WORK_MEM_MAX = 64 * MB, 2 * GB
SMALLEST_SIZED_MEMORY = 1 * GB
"""Below this budget the sizing keeps PostgreSQL's defaults (they are made for small machines)."""

# PostgreSQL's lower limits (guc_tables.c), so an override fails here, naming its variable,
# rather than in the server log.
_MINIMUM = {
    "shared_buffers": 128 * KB,
    "effective_cache_size": 8 * KB,
    "work_mem": 64 * KB,
    "maintenance_work_mem": 1 * MB,
}
_UNITS = {"kb": KB, "mb": MB, "gb": GB, "tb": 1024 * GB}
_MEMORY = re.compile(r"^\s*(\d+)\s*([kKmMgGtT][bB])\s*$")
_NO_LIMIT = 1 << 60  # cgroup v1 reports "unlimited" as ~2^63


def parse_memory(text: str, variable: str) -> int:
    """``"6GB"`` -> bytes. A unit (kB, MB, GB, TB, any case) is required: a bare number means
    8 kB pages to ``shared_buffers`` but kB to ``work_mem``, so it is refused."""
    m = _MEMORY.match(text)
    if m is None:
        raise ConfigurationError(f"{variable}={text!r}: write a whole number with a unit, e.g. 2GB, 512MB or 64kB")
    return int(m[1]) * _UNITS[m[2].lower()]


def format_memory(value: int) -> str:
    """Bytes as PostgreSQL reads them: the largest of kB/MB/GB that divides evenly."""
    for unit, size in (("GB", GB), ("MB", MB)):
        if value % size == 0:
            return f"{value // size}{unit}"
    return f"{value // KB}kB"


@dataclass(frozen=True)
class ServerSizing:
    """Settings for the embedded server (bytes) and where they came from.

    ``settings`` is empty for ``DEALHUNTER_EMBEDDED_SIZING=defaults`` without overrides and
    for machines below :data:`SMALLEST_SIZED_MEMORY`: PostgreSQL's defaults then apply.
    """

    memory: int
    """The budget the computed values derive from (bytes)."""
    mode: Literal["auto", "defaults"]
    settings: Mapping[str, int] = field(default_factory=dict)
    overridden: frozenset[str] = frozenset()

    def describe(self) -> str:
        """One line for logs: ``shared_buffers=6GB, work_mem=64MB, ...`` (or the defaults)."""
        if not self.settings:
            return "PostgreSQL's defaults"
        return ", ".join(f"{k}={format_memory(v)}" for k, v in self.settings.items())


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _whole_mb(value: int) -> int:
    return max(MB, value // MB * MB)


def compute_sizing(memory: int) -> dict[str, int]:
    """The memory settings (bytes) for a server that may use *memory* bytes. Pure.

    * ``shared_buffers``: 25 % of the budget, at least PostgreSQL's 128 MB, at most 8 GB;
    * ``effective_cache_size``: 50 % (a planner estimate of shared buffers + page cache; the
      embedded server shares its machine with the application);
    * ``work_mem``: budget / 256 within 4-64 MB (per sort or hash node and connection);
    * ``maintenance_work_mem``: budget / 16 within 64 MB - 2 GB (index builds, VACUUM).

    Below 1 GB nothing is set (``{}``): PostgreSQL's defaults fit small machines.
    """
    if memory < SMALLEST_SIZED_MEMORY:
        return {}
    shared = _whole_mb(_clamp(memory // 4, SHARED_BUFFERS_MIN, SHARED_BUFFERS_MAX))
    return {
        "shared_buffers": shared,
        "effective_cache_size": _whole_mb(max(memory // 2, shared)),
        "work_mem": _whole_mb(_clamp(memory // 256, WORK_MEM_MIN, WORK_MEM_MAX)),
        "maintenance_work_mem": _whole_mb(_clamp(memory // 16, MAINTENANCE_WORK_MEM_MIN, MAINTENANCE_WORK_MEM_MAX)),
    }


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():  # "max" (cgroup v2: no limit)
        return None
    value = int(text)
    return value if 0 < value < _NO_LIMIT else None


def _cgroup_limit(root: Path) -> int | None:
    """The smallest memory limit of this process's cgroup and its ancestors (v1 and v2)."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    base = root / "sys/fs/cgroup"
    candidates: list[Path] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        parts = [p for p in group.split("/") if p]
        if hierarchy == "0" and controllers == "":  # v2: memory.max at every level
            candidates += [base.joinpath(*parts[:i], "memory.max") for i in range(len(parts), -1, -1)]
        elif "memory" in controllers.split(","):  # v1: the group (or the namespaced mount root)
            candidates += [
                base / "memory" / Path(*parts) / "memory.limit_in_bytes",
                base / "memory" / "memory.limit_in_bytes",
            ]
    limits = [v for v in map(_read_limit, candidates) if v is not None]
    return min(limits) if limits else None


def detect_memory(root: Path = Path("/")) -> int:
    """The memory this machine gives its processes: physical RAM, or the cgroup limit when smaller.

    *root* is ``/`` except in tests (a directory laid out like ``/proc`` and ``/sys/fs/cgroup``).
    """
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if root == Path("/") else None
    limit = _cgroup_limit(root)
    values = [v for v in (physical, limit) if v]
    if not values:
        raise ConfigurationError(
            "cannot tell this machine's memory: set DEALHUNTER_EMBEDDED_MEMORY (e.g. 8GB) or "
            "DEALHUNTER_EMBEDDED_SIZING=defaults"
        )
    return min(values)


def sizing_from_settings(settings: Settings | None = None, *, memory: int | None = None) -> ServerSizing:
    """The sizing the ``DEALHUNTER_EMBEDDED_*`` settings ask for.

    ``DEALHUNTER_EMBEDDED_SIZING``: ``auto`` (default, :func:`compute_sizing` of the budget)
    or ``defaults`` (compute nothing). ``DEALHUNTER_EMBEDDED_MEMORY``: the budget (default:
    :func:`detect_memory`, or *memory*). ``DEALHUNTER_EMBEDDED_SHARED_BUFFERS`` /
    ``_EFFECTIVE_CACHE_SIZE`` / ``_WORK_MEM`` / ``_MAINTENANCE_WORK_MEM``: one value each,
    applied in either mode. A bad value is a :class:`ConfigurationError` naming the variable.
    """
    s = settings if settings is not None else get_settings()
    mode = s.embedded_sizing.strip().lower()
    if mode not in ("auto", "defaults"):
        raise ConfigurationError(f"DEALHUNTER_EMBEDDED_SIZING={s.embedded_sizing!r}: use 'auto' or 'defaults'")
    if s.embedded_memory is not None:
        budget = parse_memory(s.embedded_memory, "DEALHUNTER_EMBEDDED_MEMORY")
    else:
        budget = memory if memory is not None else detect_memory()
    values = compute_sizing(budget) if mode == "auto" else {}
    overrides: dict[str, int] = {}
    for name in SIZED_SETTINGS:
        text = getattr(s, f"embedded_{name}")
        if text is None:
            continue
        variable = f"DEALHUNTER_EMBEDDED_{name.upper()}"
        value = parse_memory(text, variable)
        if value < _MINIMUM[name]:
            raise ConfigurationError(f"{variable}={text!r}: PostgreSQL needs at least {format_memory(_MINIMUM[name])}")
        overrides[name] = value
    if overrides.get("shared_buffers", 0) > budget:
        raise ConfigurationError(
            f"DEALHUNTER_EMBEDDED_SHARED_BUFFERS={s.embedded_shared_buffers!r} exceeds the memory budget "
            f"{format_memory(_whole_mb(budget))} (DEALHUNTER_EMBEDDED_MEMORY or this machine's memory)"
        )
    merged = {name: overrides.get(name, values.get(name)) for name in SIZED_SETTINGS}
    return ServerSizing(
        memory=budget,
        mode="auto" if mode == "auto" else "defaults",
        settings={k: v for k, v in merged.items() if v is not None},
        overridden=frozenset(overrides),
    )


CONF_HEADER = (
    "# Written by dealhunter_vectors each time it starts the embedded server; edits are overwritten.\n"
    "# Change it with DEALHUNTER_EMBEDDED_SIZING / _MEMORY / _SHARED_BUFFERS / _EFFECTIVE_CACHE_SIZE /\n"
    "# _WORK_MEM / _MAINTENANCE_WORK_MEM; ALTER SYSTEM (postgresql.auto.conf) still overrides it.\n"
)


def render_conf(sizing: ServerSizing) -> str:
    """The include file's text for *sizing* (a header only when it sets nothing)."""
    lines = [CONF_HEADER, f"# budget {format_memory(_whole_mb(sizing.memory))}, mode {sizing.mode}\n"]
    lines += [f"{name} = '{format_memory(value)}'\n" for name, value in sizing.settings.items()]
    return "".join(lines)


# --- doctor: shared_buffers against the embedding tables' working set -------------------------

EMBEDDING_TABLES = ("deal_embeddings", "raw_chunks", "pre_qualifications")

_WORKING_SET_SQL = """
SELECT c.relname AS "table", pg_total_relation_size(c.oid) AS bytes
FROM unnest($1::text[]) AS t(name)
JOIN pg_class c ON c.relname = t.name AND c.relkind IN ('r', 'p')
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
ORDER BY c.relname
"""

_SHARED_BUFFERS_SQL = """
SELECT setting::int8 * pg_size_bytes(unit) AS bytes, pending_restart
FROM pg_settings WHERE name = 'shared_buffers'
"""

BufferStatus = Literal["ok", "warn"]


async def embedding_working_set(conn: asyncpg.Connection) -> dict[str, int]:
    """Bytes of each embedding table of the current schema: heap, TOAST and indexes (absent tables left out)."""
    rows = await conn.fetch(_WORKING_SET_SQL, list(EMBEDDING_TABLES))
    return {r["table"]: int(r["bytes"]) for r in rows}


async def buffer_check(conn: asyncpg.Connection) -> tuple[BufferStatus, str, str | None]:
    """``(status, detail, fix)``: warn when ``shared_buffers`` is smaller than the embedding
    tables' working set (heap + TOAST + indexes of :data:`EMBEDDING_TABLES`).

    Searches that rotate over many owners then read pages from the OS cache or the disk
    instead of shared memory (issue 22: owners drawn uniformly cost 2x one hot owner at the
    128 MB default). The fix names the embedded server's variable and what to set on a
    managed server. Also warns when a ``shared_buffers`` change waits for a restart.
    """
    sizes = await embedding_working_set(conn)
    working_set = sum(sizes.values())
    row = await conn.fetchrow(_SHARED_BUFFERS_SQL)
    assert row is not None  # shared_buffers always exists
    shared, pending = int(row["bytes"]), bool(row["pending_restart"])
    parts = ", ".join(f"{t} {_pretty(b)}" for t, b in sizes.items())
    tables = f"embedding tables {_pretty(working_set)} ({parts})" if sizes else "no embedding tables in this schema"
    detail = f"shared_buffers {_pretty(shared)}; {tables}"
    if pending:
        return (
            "warn",
            detail + "; a changed shared_buffers waits for a server restart",
            "restart the server (embedded: `dealhunter-vectors server stop`; the next command starts it)",
        )
    if working_set <= shared:
        return "ok", detail, None
    want = _suggest(working_set)
    return (
        "warn",
        detail + ": searches over many owners read from the OS cache or the disk",
        f"raise shared_buffers to ~{format_memory(want)} (or 25% of the server's RAM if smaller) and restart: "
        "embedded: DEALHUNTER_EMBEDDED_SHARED_BUFFERS or DEALHUNTER_EMBEDDED_MEMORY; "
        f"self-managed: ALTER SYSTEM SET shared_buffers = '{format_memory(want)}'; "
        "managed (RDS/Aurora, Cloud SQL, Azure): the shared_buffers parameter of the instance's "
        "parameter group / flags, or a larger instance class (their default is ~25% of the instance's RAM)",
    )


def _suggest(working_set: int) -> int:
    """The working set plus 25 % headroom, rounded up to a whole 256 MB."""
    step = 256 * MB
    return -(-(working_set * 5 // 4) // step) * step


def _pretty(value: int) -> str:
    for unit, size in (("GB", GB), ("MB", MB), ("kB", KB)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"
