"""Read replicas: searches on healthy streaming standbys, everything else on the primary.

``create_pool(primary_url, replicas=[url, ...], max_replica_lag=5.0)`` (or
``DATABASE_REPLICA_URLS``) returns a :class:`ReplicatedPool`. It *is* an ``asyncpg.Pool``
whose own connections are the primary's, so every function that takes a pool works
unchanged and writes to the primary (``insert_deal_chunks``, ``apply_schema``, the
loader, ``pool.execute``, ``pool.acquire()``). Only the search functions
(``search_deal_embeddings``, ``search_raw_chunks``, ``search_similar``,
``find_similar_pre_qualifications``, ``list_deal_chunks``, ``search_many``, the hybrid
searches; each decorated with :func:`routed_read`) are routed: they run on a healthy replica.

Routing rules
    A replica is *healthy* when it answers, ``pg_is_in_recovery()`` is true (a promoted
    or misconfigured server is never used as a replica) and its lag is within
    ``max_replica_lag`` seconds. Lag is zero when the replica has replayed the primary's
    ``pg_current_wal_lsn()`` (read first); otherwise it is ``now() -
    pg_last_xact_replay_timestamp()`` on the replica (infinite when nothing was replayed
    yet). The status is checked at most once per ``check_interval`` (default 1 s) and
    shared by all reads; healthy replicas take reads in turn; with none healthy, reads go
    to the primary.

Read-your-writes
    Pass ``pool.primary`` (or ``on_primary(pool)``, which also accepts a plain pool)
    instead of the pool for a read that must see the caller's own committed writes::

        await dv.insert_deal_chunks(pool, chunks)
        hits = await dv.search_deal_embeddings(dv.on_primary(pool), ...)

Retry policy
    A routed read that fails because its replica went away (connection lost or refused,
    server shutting down, query cancelled by a recovery conflict) marks that replica down
    and runs again, once per remaining server: the other healthy replicas, then the
    primary. Errors of the primary and every other error (bad input, timeouts) reach the
    caller unchanged, exactly as with a plain pool. A read is only retried as a whole
    (searches are read-only, so a retry cannot duplicate anything).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Literal, ParamSpec, TypeAlias, TypeVar
from urllib.parse import urlsplit

import asyncpg

from .. import observe
from ..config import mask_text, mask_url
from ..errors import ConfigurationError, DatabaseUnavailableError, PoolExhaustedError
from .faults import is_connection_error
from .server import Pool, close_pool, connect_pool

__all__ = [
    "DEFAULT_CHECK_INTERVAL",
    "DEFAULT_MAX_REPLICA_LAG",
    "ReplicaState",
    "ReplicaStatus",
    "ReplicatedPool",
    "ServedBy",
    "connect_replicated",
    "last_served_by",
    "on_primary",
    "routed_read",
]

_log = logging.getLogger(__name__)

ROUTED_MARK = "__dhv_routed_read__"
"""Attribute set on functions decorated with :func:`routed_read` (tests check every search has it)."""

DEFAULT_MAX_REPLICA_LAG = 5.0
"""Seconds a replica may be behind the primary and still serve reads."""
DEFAULT_CHECK_INTERVAL = 1.0
"""Seconds a replica status is reused before it is checked again."""
RETIRE_TIMEOUT = 5.0
"""Seconds the reads still running on a replica marked down get before its pool is terminated."""

ReplicaState = Literal["unchecked", "ok", "down", "not_in_recovery", "lagging"]

P = ParamSpec("P")
T = TypeVar("T")
Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


@dataclass(frozen=True)
class ReplicaStatus:
    """What the last check of one replica found (``url`` has its password masked)."""

    url: str
    state: ReplicaState
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.state == "ok"


@dataclass(frozen=True)
class ServedBy:
    """Which server ran a routed read: ``role`` ``"replica"`` or ``"primary"``, masked ``url``."""

    role: Literal["replica", "primary"]
    url: str
    attempts: int = 1


_served_by: contextvars.ContextVar[ServedBy | None] = contextvars.ContextVar("dhv_served_by", default=None)


def last_served_by() -> ServedBy | None:
    """The server that ran the last routed read of the current task (None before any).

    A context variable: concurrent tasks each see their own last read.
    """
    return _served_by.get()


# Errors after which a read is retried elsewhere: the server went away or refused the work
# because of its standby role. Timeouts are not retried (the query may still be running).
_RETRYABLE_POSTGRES = (
    asyncpg.PostgresConnectionError,  # 08xxx, connection does not exist / failure
    asyncpg.exceptions.OperatorInterventionError,  # 57P01 admin shutdown, 57P02 crash, 57P03 cannot connect now
    asyncpg.exceptions.SerializationError,  # 40001: canceled because of a conflict with recovery
)


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):  # QueryTimeoutError, PoolExhaustedError included
        return False
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        return False  # statement_timeout / command timeout: not the replica's fault
    if is_connection_error(exc):  # the pool's own classification (db/pool.py)
        return True
    return isinstance(
        exc,
        (
            *_RETRYABLE_POSTGRES,
            asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
            asyncpg.InternalClientError,  # a connection that broke mid-operation
            OSError,
            DatabaseUnavailableError,
        ),
    )


class _Replica:
    __slots__ = ("lock", "masked", "pool", "status", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.masked = mask_url(url)
        self.pool: Pool | None = None
        self.status = ReplicaStatus(self.masked, "unchecked")
        self.lock = asyncio.Lock()


_CHECK_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN $1::text::pg_lsn IS NULL OR NOT pg_is_in_recovery() THEN NULL
            ELSE greatest(pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn()), 0)::bigint END AS lag_bytes,
       pg_last_wal_replay_lsn() >= coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) AS replayed_received,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS replay_age
"""


def _lag_seconds(row: asyncpg.Record, primary_lsn: str | None) -> float:
    if primary_lsn is not None:
        if row["lag_bytes"] == 0:
            return 0.0
    elif row["replayed_received"]:
        return 0.0  # primary unknown: judged by what the replica itself has received
    age = row["replay_age"]
    return math.inf if age is None else max(float(age), 0.0)


async def connect_replicated(
    primary_url: str,
    replicas: Sequence[str],
    *,
    max_replica_lag: float = DEFAULT_MAX_REPLICA_LAG,
    check_interval: float = DEFAULT_CHECK_INTERVAL,
    **pool_options: Any,
) -> ReplicatedPool:
    """Open the primary pool (failures raise as :func:`create_pool` does) and one pool per replica.

    A replica that cannot be reached now is marked down and retried at the next check,
    so a pool opens while a replica is being rebuilt. *pool_options* are
    :func:`~dealhunter_vectors.db.server.connect_pool` options, used for every server.
    """
    if isinstance(max_replica_lag, bool) or not isinstance(max_replica_lag, (int, float)) or not (max_replica_lag >= 0):
        raise ValueError(f"max_replica_lag must be a number of seconds >= 0, got {max_replica_lag!r}")
    if isinstance(check_interval, bool) or not isinstance(check_interval, (int, float)) or not (check_interval >= 0):
        raise ValueError(f"check_interval must be a number of seconds >= 0, got {check_interval!r}")
    if isinstance(replicas, str):
        raise ConfigurationError(
            "replicas must be a list of URLs, not one string (DATABASE_REPLICA_URLS is split at commas)"
        )
    urls = [str(u).strip() for u in replicas if str(u).strip()]
    for u in urls:
        if urlsplit(u).scheme not in ("postgres", "postgresql"):
            raise ConfigurationError(f"replica URL {mask_url(u)!r} is not a postgresql:// URL")
    primary = await connect_pool(primary_url, **pool_options)
    pool = ReplicatedPool(
        primary,
        urls,
        max_replica_lag=float(max_replica_lag),
        check_interval=float(check_interval),
        pool_options=pool_options,
    )
    try:
        await pool.refresh_replicas()
    except BaseException:
        await pool.close()
        raise
    return pool


class ReplicatedPool(Pool):
    """A pool whose own connections are the primary's and whose searches go to healthy replicas.

    Made by :func:`connect_replicated` (``create_pool(..., replicas=[...])``), never directly.
    """

    def __init__(  # asyncpg.Pool.__init__ is not called: this pool has no connections of its own
        self,
        primary: Pool,
        urls: Sequence[str],
        *,
        max_replica_lag: float,
        check_interval: float,
        pool_options: dict[str, Any],
    ) -> None:
        self._primary = primary
        self._replicas = [_Replica(u) for u in urls]
        self.max_replica_lag = max_replica_lag
        self.check_interval = check_interval
        self._pool_options = {k: v for k, v in pool_options.items() if k not in ("create_extension", "replicas")}
        self._checked_at = -math.inf
        self._check_lock = asyncio.Lock()
        self._turn = 0
        self._retiring: set[asyncio.Task[None]] = set()
        self._refresh_task: asyncio.Task[list[ReplicaStatus]] | None = None
        self.reads_served: dict[str, int] = {}
        """Routed reads per server (``"replica <url>"`` / ``"primary <url>"``), for monitoring and tests."""
        self.failovers = 0
        """Routed reads that failed on a replica and were run again on another server."""

    # ---- the primary pool, by delegation (asyncpg's query methods all go through acquire())
    @property
    def primary(self) -> Pool:
        """The primary's own pool: reads through it always see committed writes."""
        return self._primary

    @property
    def masked_url(self) -> str:
        return self._primary.masked_url

    @property
    def command_timeout(self) -> float | None:
        return self._primary.command_timeout

    @property
    def replica_urls(self) -> list[str]:
        """The replicas' URLs, passwords masked."""
        return [r.masked for r in self._replicas]

    def acquire(self, *, timeout: float | None = None) -> Any:
        return self._primary.acquire(timeout=timeout)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        await self._primary.release(connection, timeout=timeout)

    def is_closing(self) -> bool:
        return self._primary.is_closing()  # type: ignore[no-any-return]

    def get_size(self) -> int:
        return self._primary.get_size()  # type: ignore[no-any-return]

    def get_min_size(self) -> int:
        return self._primary.get_min_size()  # type: ignore[no-any-return]

    def get_max_size(self) -> int:
        return self._primary.get_max_size()  # type: ignore[no-any-return]

    def get_idle_size(self) -> int:
        return self._primary.get_idle_size()  # type: ignore[no-any-return]

    async def expire_connections(self) -> None:
        await self._primary.expire_connections()
        for r in self._replicas:
            if r.pool is not None:
                await r.pool.expire_connections()

    async def close(self) -> None:
        if self._refresh_task is not None and not self._refresh_task.done():
            self._refresh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresh_task
        replicas = [r.pool for r in self._replicas if r.pool is not None]
        for r in self._replicas:
            r.pool = None
        await asyncio.gather(*(p.close() for p in replicas), *self._retiring, return_exceptions=True)
        await self._primary.close()

    def terminate(self) -> None:
        for r in self._replicas:
            if r.pool is not None:
                r.pool.terminate()
                r.pool = None
        self._primary.terminate()

    def __await__(self) -> Generator[Any, None, Any]:
        async def _ready() -> Any:
            return self

        return _ready().__await__()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        states = ", ".join(f"{r.masked}={r.status.state}" for r in self._replicas)
        return f"<dealhunter_vectors.ReplicatedPool primary={self.masked_url} replicas=[{states}]>"

    # ---- replica health
    def replica_status(self) -> list[ReplicaStatus]:
        """The last known status of every replica (no check is made)."""
        return [r.status for r in self._replicas]

    async def refresh_replicas(self, *, force: bool = True) -> list[ReplicaStatus]:
        """Check every replica now (``force=False``: only when the last check is older than the interval)."""
        async with self._check_lock:
            if not force and time.monotonic() - self._checked_at < self.check_interval:
                return self.replica_status()
            primary_lsn: str | None
            try:
                primary_lsn = await self._primary.fetchval(
                    "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END"
                )
            except Exception as exc:
                _log.warning("replica check: primary LSN unavailable (%s)", type(exc).__name__)
                primary_lsn = None
            await asyncio.gather(*(self._check(r, primary_lsn) for r in self._replicas))
            self._checked_at = time.monotonic()
            return self.replica_status()

    async def _check(self, replica: _Replica, primary_lsn: str | None) -> None:
        timeout = max(self._pool_options.get("connect_timeout") or 2.0, 0.1)
        try:
            pool = await self._replica_pool(replica)
            row = await pool.fetchrow(_CHECK_SQL, primary_lsn, timeout=timeout)
        except Exception as exc:
            self._mark_down(replica, f"{type(exc).__name__}: {mask_text(str(exc))}")
            return
        assert row is not None
        if not row["in_recovery"]:
            replica.status = ReplicaStatus(
                replica.masked, "not_in_recovery", detail="pg_is_in_recovery() is false (promoted or a primary)"
            )
            return
        lag = _lag_seconds(row, primary_lsn)
        lag_bytes = row["lag_bytes"]
        state: ReplicaState = "ok" if lag <= self.max_replica_lag else "lagging"
        detail = f"lag {lag:.3f} s" if math.isfinite(lag) else "lag unknown (nothing replayed yet)"
        if lag_bytes is not None:
            detail += f", {lag_bytes} bytes behind the primary"
        replica.status = ReplicaStatus(
            replica.masked,
            state,
            lag_seconds=lag if math.isfinite(lag) else None,
            lag_bytes=lag_bytes,
            detail=detail,
        )

    async def _replica_pool(self, replica: _Replica) -> Pool:
        async with replica.lock:
            if replica.pool is None or replica.pool.is_closing():
                replica.pool = await connect_pool(replica.url, create_extension=False, **self._pool_options)
            return replica.pool

    def _mark_down(self, replica: _Replica, detail: str) -> None:
        if replica.status.state != "down":
            _log.warning("replica %s is down: %s", replica.masked, detail)
        replica.status = ReplicaStatus(replica.masked, "down", detail=detail)
        pool, replica.pool = replica.pool, None
        if pool is not None:
            # Closed in the background: reads still running on it fail over by themselves;
            # terminating under them would break asyncpg's connection state.
            task = asyncio.get_running_loop().create_task(close_pool(pool, timeout=RETIRE_TIMEOUT))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    def _healthy(self) -> list[_Replica]:
        return [r for r in self._replicas if r.status.healthy and r.pool is not None]

    def healthy_replica_pools(self) -> list[Pool]:
        """The pools of the replicas that passed the last check (each masks its own URL)."""
        return [r.pool for r in self._healthy() if r.pool is not None]

    # ---- routing
    async def run_read(self, fn: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
        """Run ``fn(pool)`` on a healthy replica's pool (else the primary's) with the retry policy."""
        self._refresh_if_stale()
        if observe.SUBSCRIBERS:
            for r in self._replicas:
                if not (r.status.healthy and r.pool is not None):
                    _observe_skip(r.status.state)
        tried: set[int] = set()
        attempts = 0
        while True:
            candidates = [r for r in self._healthy() if id(r) not in tried]
            if not candidates:
                break
            replica = candidates[self._turn % len(candidates)]
            self._turn += 1
            tried.add(id(replica))
            attempts += 1
            pool = replica.pool
            if pool is None:
                continue
            try:
                result = await fn(pool)
            except PoolExhaustedError:
                # the replica is busy (or slow to connect): nothing ran there, try the next server
                self.failovers += 1
                _observe_skip("busy")
                continue
            except Exception as exc:
                if not _is_retryable(exc):
                    raise
                self.failovers += 1
                _observe_skip("failed")
                self._mark_down(replica, f"read failed: {type(exc).__name__}: {mask_text(str(exc))}")
                continue
            self._served(ServedBy("replica", replica.masked, attempts), replica)
            return result
        result = await fn(self._primary)
        self._served(ServedBy("primary", self.masked_url, attempts + 1))
        return result

    def _refresh_if_stale(self) -> None:
        """Start a background check when the status is older than the interval.

        Reads never wait for it: a check of an unreachable host may take the whole connect
        timeout, and meanwhile reads go by the last status (failing over by themselves).
        """
        if time.monotonic() - self._checked_at < self.check_interval:
            return
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = asyncio.get_running_loop().create_task(self.refresh_replicas(force=False))

    def _served(self, served: ServedBy, replica: _Replica | None = None) -> None:
        _served_by.set(served)
        key = f"{served.role} {served.url}"
        self.reads_served[key] = self.reads_served.get(key, 0) + 1
        obs = observe.current()
        if obs is not None:
            obs.server = served.url
            if replica is None:
                obs.attributes["served_by"] = "primary"
            else:
                obs.attributes["served_by"] = f"replica {self._replicas.index(replica) + 1}"
                if replica.status.lag_seconds is not None:
                    obs.attributes["replica_lag_s"] = replica.status.lag_seconds


def _observe_skip(reason: str) -> None:
    """A routed read passed a replica over (*reason*: its state, ``busy`` or ``failed``)."""
    if observe.SUBSCRIBERS:
        observe.add("replica_skips")
        observe.measure("replica_skip", 1, reason=reason)


def on_primary(db: Db) -> Db:
    """*db* pinned to the primary: ``pool.primary`` for a :class:`ReplicatedPool`, else *db* itself.

    Pass it instead of the pool for read-your-writes::

        await dv.search_raw_chunks(dv.on_primary(pool), ...)
    """
    return db.primary if isinstance(db, ReplicatedPool) else db


def is_replicated(db: object) -> bool:
    """Whether *db* is a pool with read replicas."""
    return isinstance(db, ReplicatedPool)


def routed_read(
    fn: Callable[Concatenate[Db, P], Awaitable[T]],
) -> Callable[Concatenate[Db, P], Awaitable[T]]:
    """Decorate a read-only function of ``(db, ...)``: with a :class:`ReplicatedPool` it runs on a replica.

    Any other *db* (a plain pool, a connection, ``pool.primary``) is passed through unchanged.
    """

    @functools.wraps(fn)
    async def wrapper(db: Db, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if isinstance(db, ReplicatedPool):
            return await db.run_read(lambda target: fn(target, *args, **kwargs))
        return await fn(db, *args, **kwargs)

    wrapper.__dict__[ROUTED_MARK] = True  # functools.wraps of outer decorators copies it along
    return wrapper
