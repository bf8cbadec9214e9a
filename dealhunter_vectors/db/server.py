"""A pool of pgvector-ready connections to one server (:class:`Pool`), built on asyncpg's public hooks.

* ``CREATE EXTENSION IF NOT EXISTS vector`` runs once, on a bootstrap connection,
  *before* any pool connection registers codecs (a type codec can only be set for a type
  that exists).
* Every pool connection is a :class:`Connection` (``connection_class=``) and gets binary
  codecs for ``vector`` and ``halfvec`` (``init=``; :mod:`.codecs`): numpy arrays, lists or
  :class:`~dealhunter_vectors.db.codecs.Vector` in, numpy ``float32`` arrays out.
* ``acquire()`` beyond ``max_size`` waits at most the acquire timeout and then raises
  :class:`~dealhunter_vectors.errors.PoolExhaustedError` instead of hanging; the pool's
  query methods type their faults (:mod:`.faults`).
* Release skips asyncpg's reset round trip after the library's own reads (``reset=``;
  :func:`acquire_for_reads`, docs/design.md "Pool reset").
* The URL is validated before asyncpg sees it (one-line ``ConfigurationError``, masked);
  asyncpg gets the URL without its password and the password as a callable, so the
  connect arguments the pool keeps hold no plain-text password.

:func:`~dealhunter_vectors.db.pool.create_pool` is the public entry point (it adds replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from typing import Any

import asyncpg

from .. import observe
from ..config import Settings, get_settings, mask_url, split_password
from ..errors import ConfigurationError, DatabaseUnavailableError, DealhunterVectorsError, PoolExhaustedError
from .codecs import decode_halfvec, decode_vector, encode_halfvec, encode_vector
from .embedded import resolve_database_url
from .faults import current_operation, is_connection_error, masked_cause, translate_error
from .tls import connect_failure, tls_failure

__all__ = [
    "DEFAULT_ACQUIRE_TIMEOUT",
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_SERVER_SETTINGS",
    "PGVECTOR_MIN_SAFE",
    "Connection",
    "Pool",
    "acquire_for_reads",
    "close_pool",
    "connect_pool",
    "pgvector_outdated",
    "register_vector_codecs",
    "session_state",
    "transaction_settings",
]

_log = logging.getLogger("dealhunter_vectors.db.pool")

DEFAULT_ACQUIRE_TIMEOUT = 10.0
DEFAULT_CLOSE_TIMEOUT = 30.0

# Session settings on every pool connection. JIT compilation is off: the planner's cost
# for 3072-d distance expressions crosses jit_above_cost easily and compiling costs tens
# of milliseconds per query, more than the search itself (measured in benchmarks/).
DEFAULT_SERVER_SETTINGS: Mapping[str, str] = {
    "application_name": "dealhunter_vectors",
    "jit": "off",
}

PGVECTOR_MIN_SAFE = (0, 8, 4)
"""Older pgvector releases: CVE-2026-3172 (fixed in 0.8.2), HNSW vacuum corruption (fixed in 0.8.3/0.8.4)."""


class Connection(asyncpg.Connection):  # type: ignore[misc]
    """asyncpg's connection, plus what the library keeps per server session.

    The pools of :func:`connect_pool` make every connection one of these
    (``connection_class=``). Through a pool's connection proxy, attributes and methods reach
    the connection underneath, so what is remembered here lives as long as the session.
    """

    __slots__ = ("_dhv_session", "command_timeout", "masked_url")

    def session_state(self) -> dict[str, Any]:
        """A dict that lives as long as this server session (cleared by ``apply_schema``)."""
        try:
            return self._dhv_session
        except AttributeError:
            self._dhv_session: dict[str, Any] = {}
            return self._dhv_session


_foreign_sessions: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def session_state(conn: Any) -> dict[str, Any]:
    """What the library remembers about *conn*'s server session (e.g. its deployment layout).

    A connection of the library's pools keeps it for the whole session. A caller's own
    asyncpg connection keeps it as long as the object lives; a connection proxy of a pool not
    made by the library is a new object per acquire, so nothing is remembered across
    acquires there (one cheap query more per call).
    """
    method = getattr(conn, "session_state", None)
    if method is not None:
        return method()  # type: ignore[no-any-return]
    try:
        return _foreign_sessions.setdefault(conn, {})
    except TypeError:  # not weak-referenceable
        return {}


async def register_vector_codecs(conn: asyncpg.Connection) -> None:
    """Register binary ``vector``/``halfvec`` codecs (numpy float32 out) on *conn*.

    The ``vector`` extension must exist. Lists, tuples, numpy arrays and
    :class:`~dealhunter_vectors.db.codecs.Vector`/``HalfVector`` (also the ``pgvector``
    package's classes, when installed) are accepted as parameters.
    """
    schema = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    )
    if schema is None:
        raise DatabaseUnavailableError(
            "the pgvector extension is not installed in this database "
            "(CREATE EXTENSION vector needs a role allowed to create extensions)"
        )
    await conn.set_type_codec("vector", schema=schema, encoder=encode_vector, decoder=decode_vector, format="binary")
    await conn.set_type_codec("halfvec", schema=schema, encoder=encode_halfvec, decoder=decode_halfvec, format="binary")
    # Load pgvector's library in this backend now, so its settings (hnsw.ef_search,
    # hnsw.iterative_scan, ...) exist for SHOW / SET LOCAL before the first vector query.
    await conn.execute("SELECT '[1]'::vector")


def _init_connection(masked_url: str, command_timeout: float | None) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    async def init(conn: asyncpg.Connection) -> None:
        if isinstance(conn, Connection):
            conn.masked_url = masked_url
            conn.command_timeout = command_timeout
        await register_vector_codecs(conn)

    return init


# --------------------------------------------------------------------------- release without reset

# True while a connection held by acquire_for_reads() goes back to the pool (docs/design.md,
# "Pool reset"): the pool's reset hook then skips asyncpg's reset query.
_SESSION_UNCHANGED: contextvars.ContextVar[bool] = contextvars.ContextVar("dhv_session_unchanged", default=False)


async def _reset_on_release(conn: asyncpg.Connection) -> None:
    """The pools' reset hook: asyncpg's ``Connection.reset()`` (``RESET ALL``, ``CLOSE ALL``,
    ``UNLISTEN *``, advisory unlock: one round trip) unless the holder only ran the library's
    read statements. asyncpg has already rolled back an open transaction before calling this."""
    if not _SESSION_UNCHANGED.get():
        await conn.reset()


@contextlib.asynccontextmanager
async def acquire_for_reads(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """Acquire a connection for the library's own read statements.

    They leave the session as they found it (no session ``SET``, ``LISTEN``, cursor, advisory
    lock or temporary table outlives them), so on release a pool made by :func:`connect_pool`
    skips the reset query and its round trip. A body that raises gets the full reset, and so
    does every other ``acquire()``. Pools not made here (a plain ``asyncpg`` pool, a pool
    with a caller's ``reset=``) reset as they always do.
    """
    token = None
    try:
        async with pool.acquire() as conn:
            yield conn
            token = _SESSION_UNCHANGED.set(True)
    finally:
        if token is not None:
            _SESSION_UNCHANGED.reset(token)


# --------------------------------------------------------------------------- the pool


class _Acquire:
    """``Pool.acquire()``: asyncpg's acquire context with the pool's default timeout and typed faults."""

    __slots__ = ("_context", "_pool", "_timeout")

    def __init__(self, pool: Pool, context: Any, timeout: float | None) -> None:
        self._pool = pool
        self._context = context
        self._timeout = timeout

    async def __aenter__(self) -> Any:
        if observe.SUBSCRIBERS:
            return await self._observed(self._context.__aenter__())
        return await self._typed(self._context.__aenter__())

    async def __aexit__(self, *exc: object) -> None:
        await self._context.__aexit__(*exc)

    def __await__(self) -> Generator[Any, None, Any]:
        if observe.SUBSCRIBERS:
            return self._observed(self._context).__await__()
        return self._typed(self._context).__await__()

    async def _observed(self, acquiring: Awaitable[Any]) -> Any:
        """Acquire; an acquire that finds no idle connection (it waits for one, or for a new one) is a pool wait."""
        waits = self._pool.get_idle_size() == 0
        started = time.perf_counter()
        conn = await self._typed(acquiring)
        if waits:
            waited = time.perf_counter() - started
            observe.add("pool_waits")
            observe.add("pool_wait_s", waited)
            observe.measure("pool_wait", waited)
        return conn

    async def _typed(self, acquiring: Awaitable[Any]) -> Any:
        pool = self._pool
        try:
            return await acquiring
        except TimeoutError as exc:
            in_use = pool.get_size() - pool.get_idle_size()
            if in_use < pool.get_max_size():
                # A slot was free, so the wait was for a new connection: the server accepted the
                # socket but never answered (stopped, overloaded, a black-holed network).
                raise DatabaseUnavailableError(
                    f"{current_operation() or 'acquire'}: no answer from {pool.masked_url} within the connect"
                    " timeout; retry once the server is back"
                ) from exc
            raise PoolExhaustedError(
                f"no connection free within {self._timeout:g} s (pool max_size={pool.get_max_size()}, "
                f"in use={in_use}); raise max_size or acquire timeout"
            ) from None
        except Exception as exc:
            tls = tls_failure(exc, pool.masked_url)  # a new connection's TLS failed: not retryable
            if tls is not None:
                raise tls from masked_cause(exc)
            if not is_connection_error(exc):
                raise
            translated = translate_error(exc, pool, "acquire")
            assert translated is not None
            raise translated from masked_cause(exc)


class Pool(asyncpg.Pool):  # type: ignore[misc]
    """An ``asyncpg.Pool`` whose acquire timeout raises :class:`PoolExhaustedError`.

    Everything else is asyncpg's pool: ``fetch``, ``execute``, ``acquire``,
    ``copy_records_to_table`` ... ``acquire()`` without a timeout uses the pool's
    ``acquire_timeout`` (default 10 s), so a saturated pool never hangs a handler forever.
    Connection failures and command timeouts of these methods (and of ``acquire``) are
    :class:`DatabaseUnavailableError` / :class:`QueryTimeoutError`.
    """

    __slots__ = ("_acquire_timeout", "_dhv_command_timeout", "_masked_url")

    def __init__(
        self,
        *args: Any,
        acquire_timeout: float | None,
        masked_url: str,
        command_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, command_timeout=command_timeout, **kwargs)
        self._acquire_timeout = acquire_timeout
        self._masked_url = masked_url
        self._dhv_command_timeout = command_timeout

    async def _typed(self, name: str, method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except BaseException as exc:
            translated = translate_error(exc, self, name)
            if translated is None:
                raise
            raise translated from masked_cause(exc)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._typed("Pool.execute", super().execute, *args, **kwargs)

    async def executemany(self, *args: Any, **kwargs: Any) -> Any:
        return await self._typed("Pool.executemany", super().executemany, *args, **kwargs)

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        return await self._typed("Pool.fetch", super().fetch, *args, **kwargs)

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        return await self._typed("Pool.fetchval", super().fetchval, *args, **kwargs)

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        return await self._typed("Pool.fetchrow", super().fetchrow, *args, **kwargs)

    async def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        return await self._typed("Pool.fetchmany", super().fetchmany, *args, **kwargs)

    async def copy_records_to_table(self, *args: Any, **kwargs: Any) -> Any:
        return await self._typed("Pool.copy_records_to_table", super().copy_records_to_table, *args, **kwargs)

    async def copy_to_table(self, *args: Any, **kwargs: Any) -> Any:
        return await self._typed("Pool.copy_to_table", super().copy_to_table, *args, **kwargs)

    async def copy_from_query(self, *args: Any, **kwargs: Any) -> Any:
        return await self._typed("Pool.copy_from_query", super().copy_from_query, *args, **kwargs)

    async def copy_from_table(self, *args: Any, **kwargs: Any) -> Any:
        return await self._typed("Pool.copy_from_table", super().copy_from_table, *args, **kwargs)

    def acquire(self, *, timeout: float | None = None) -> Any:
        """asyncpg's ``acquire()`` with the pool's acquire timeout by default; typed faults."""
        effective = self._acquire_timeout if timeout is None else timeout
        return _Acquire(self, super().acquire(timeout=effective), effective)

    @property
    def masked_url(self) -> str:
        """The server URL with its password masked."""
        return self._masked_url

    @property
    def command_timeout(self) -> float | None:
        """The per-statement timeout of the pool's connections, s (None: none)."""
        return self._dhv_command_timeout

    def __repr__(self) -> str:
        return f"<dealhunter_vectors.Pool {self._masked_url} size={self.get_size()}/{self.get_max_size()}>"


def pgvector_outdated(version: str | None) -> bool:
    """True when *version* (``pg_extension.extversion``) is older than :data:`PGVECTOR_MIN_SAFE`."""
    if version is None:
        return False
    m = re.match(r"\s*(\d+(?:\.\d+)*)", version)
    return m is not None and tuple(int(p) for p in m[1].split(".")) < PGVECTOR_MIN_SAFE


async def _bootstrap(dsn: str, *, timeout: float, ssl: Any, create_extension: bool, password: Any) -> None:
    conn = await asyncpg.connect(dsn, timeout=timeout, ssl=ssl, password=password)
    try:
        if create_extension:
            exists = await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
            if not exists:
                # Concurrent bootstraps may race on CREATE EXTENSION; serialise them.
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('dealhunter_vectors:ext'))")
                    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        if pgvector_outdated(version):
            _log.warning(
                "the server's pgvector is %s, older than %s: CVE-2026-3172 (fixed in 0.8.2) and HNSW vacuum"
                " corruption (fixed in 0.8.3/0.8.4); install pgvector >= 0.8.5 and run ALTER EXTENSION vector UPDATE",
                version,
                ".".join(map(str, PGVECTOR_MIN_SAFE)),
            )
    finally:
        await conn.close()


async def connect_pool(
    url: Any,
    *,
    settings: Settings | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    max_inactive_connection_lifetime: float | None = None,
    connect_timeout: float | None = None,
    acquire_timeout: float | None = DEFAULT_ACQUIRE_TIMEOUT,
    command_timeout: float | None,
    pgbouncer: bool = False,
    statement_cache_size: int | None = None,
    create_extension: bool = True,
    server_settings: Mapping[str, str] | None = None,
    **connect_kwargs: Any,
) -> Pool:
    """Create and initialise a pgvector-ready :class:`Pool` for the one server at *url*.

    Options as :func:`~dealhunter_vectors.db.pool.create_pool` (which resolves the defaults
    and adds replicas). Raises :class:`DatabaseUnavailableError` (URL masked) when the
    server cannot be reached or refuses the login, :class:`ConfigurationError` for an
    unusable URL or connect option.
    """
    cfg = settings or get_settings()
    dsn = resolve_database_url(url)  # ConfigurationError when malformed
    masked = mask_url(dsn)
    dsn, secret = split_password(dsn)
    password = connect_kwargs.pop("password", None) or (secret.get_secret_value if secret is not None else None)
    timeout = cfg.connect_timeout if connect_timeout is None else connect_timeout
    cache = 0 if pgbouncer else (cfg.statement_cache_size if statement_cache_size is None else statement_cache_size)
    max_sz = cfg.pool_max_size if max_size is None else max_size
    min_sz = min(cfg.pool_min_size if min_size is None else min_size, max_sz)
    lifetime = (
        cfg.pool_max_inactive_lifetime if max_inactive_connection_lifetime is None else max_inactive_connection_lifetime
    )
    ssl = connect_kwargs.pop("ssl", None)
    reset = connect_kwargs.pop("reset", None) or _reset_on_release
    failure: DealhunterVectorsError | None = None
    try:
        await _bootstrap(dsn, timeout=timeout, ssl=ssl, create_extension=create_extension, password=password)
        pool = Pool(
            dsn,
            min_size=min_sz,
            max_size=max_sz,
            max_queries=50_000,
            max_inactive_connection_lifetime=lifetime,
            init=_init_connection(masked, command_timeout),
            reset=reset,
            loop=None,
            connection_class=Connection,
            record_class=asyncpg.Record,
            timeout=timeout,
            command_timeout=command_timeout,
            statement_cache_size=cache,
            server_settings={**DEFAULT_SERVER_SETTINGS, **(server_settings or {})},
            ssl=ssl,
            password=password,
            acquire_timeout=acquire_timeout,
            masked_url=masked,
            **connect_kwargs,
        )
        await pool
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        failure = connect_failure(exc, masked)  # TLS misconfigurations: not retryable (db/tls.py)
    except (ValueError, TypeError, asyncpg.exceptions.ClientConfigurationError) as exc:
        # asyncpg's own URL/option parsing (sslmode=bogus, ...): never its message (it may quote the URL)
        failure = ConfigurationError(f"unusable database URL or connect option for {masked} ({type(exc).__name__})")
    if failure is not None:
        # Raised outside the except block: no __cause__ and no __context__, so no traceback can
        # show the driver's view of the URL.
        raise failure
    return pool


async def close_pool(pool: asyncpg.Pool, *, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
    """Close *pool* gracefully: wait up to *timeout* s for in-flight queries, then terminate."""
    try:
        await asyncio.wait_for(pool.close(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        _log.warning("pool did not close within %.1f s; terminating connections", timeout)
        pool.terminate()


_SET_LOCAL_SQL = "SELECT count(set_config(s.name, s.value, true)) FROM unnest($1::text[], $2::text[]) AS s(name, value)"


@contextlib.asynccontextmanager
async def transaction_settings(
    db: asyncpg.Pool | asyncpg.Connection, settings: Mapping[str, str | int | float | bool]
) -> AsyncIterator[asyncpg.Connection]:
    """Run statements with per-query planner settings (``SET LOCAL``) in a transaction.

    asyncpg resets session state when a connection returns to the pool, so planner
    settings must be transaction-local. Names and values are sent as parameters of
    ``set_config(name, value, true)`` (one statement for all of them), never spliced into SQL::

        async with transaction_settings(pool, {"hnsw.ef_search": 100}) as conn:
            rows = await conn.fetch(query, ...)
    """

    names = list(settings)
    values = [("on" if v else "off") if isinstance(v, bool) else str(v) for v in settings.values()]

    async def _apply(conn: asyncpg.Connection) -> None:
        if names:  # one round trip for all of them
            await conn.execute(_SET_LOCAL_SQL, names, values)

    body_error: BaseException | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            conn = await stack.enter_async_context(db.acquire()) if isinstance(db, asyncpg.Pool) else db
            await stack.enter_async_context(conn.transaction())
            await _apply(conn)
            try:
                yield conn
            except BaseException as exc:
                body_error = exc
                raise
    except Exception as exc:  # our SET LOCAL, COMMIT or ROLLBACK failed (the caller's own errors pass as they are)
        translated = None if exc is body_error else translate_error(exc, db, "transaction_settings")
        if translated is None:
            raise
        raise translated from masked_cause(exc)
