"""The asyncpg connection pool, ready for pgvector.

* ``CREATE EXTENSION IF NOT EXISTS vector`` runs once, on a bootstrap connection,
  *before* any pool connection registers codecs (a type codec can only be set for a type
  that exists).
* Every pool connection gets binary codecs for ``vector`` and ``halfvec``
  (:mod:`~dealhunter_vectors.db.codecs`, pgvector's wire format, no ``pgvector`` Python
  package needed): numpy arrays, lists or :class:`~dealhunter_vectors.db.codecs.Vector`
  in, numpy ``float32`` arrays out (``halfvec`` values widened exactly).
* ``acquire()`` beyond ``max_size`` waits at most the acquire timeout and then raises
  :class:`~dealhunter_vectors.errors.PoolExhaustedError` instead of hanging.
* Closing waits for in-flight queries (up to a grace period), then terminates.
* Faults are typed (:func:`operation`, :func:`translate_error`): a lost, refused or reset
  connection (server restart, ``kill -9`` of the postmaster, network reset) is a
  :class:`~dealhunter_vectors.errors.DatabaseUnavailableError` (``retryable``, the driver's
  exception as ``__cause__``, URL masked), a statement beyond the command timeout a
  :class:`~dealhunter_vectors.errors.QueryTimeoutError` naming the statement and the timeout.
  The pool's own methods (``fetch``, ``execute``, ``copy_records_to_table``, ...) and
  ``acquire`` are typed the same way. asyncpg replaces dead connections by itself, so the
  same pool serves again as soon as the server is back. Read-only searches retry once on
  a fresh connection; writes never retry.
* The URL is validated before asyncpg sees it (one-line ``ConfigurationError``, masked);
  asyncpg gets the URL without its password and the password as a callable, so the
  connect arguments the pool keeps hold no plain-text password.
* Start-up logs a warning when the server's pgvector is older than 0.8.4
  (:data:`PGVECTOR_MIN_SAFE`).

Typical use::

    async with open_pool() as pool:            # DATABASE_URL or the docker-compose default
        rows = await pool.fetch("SELECT 1")

    pool = await create_pool("embedded")      # the embedded PostgreSQL 16 + pgvector
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from ..config import Settings, get_settings, mask_text, mask_url, split_password
from ..errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DealhunterVectorsError,
    PoolExhaustedError,
    QueryTimeoutError,
)
from .codecs import decode_halfvec, decode_vector, encode_halfvec, encode_vector
from .embedded import resolve_database_url
from .tls import connect_failure, tls_failure

__all__ = [
    "Pool",
    "acquire_for_reads",
    "close_pool",
    "create_pool",
    "is_connection_error",
    "lifespan",
    "open_pool",
    "operation",
    "register_vector_codecs",
    "transaction_settings",
]

_log = logging.getLogger(__name__)

DEFAULT_ACQUIRE_TIMEOUT = 10.0
DEFAULT_CLOSE_TIMEOUT = 30.0

# Session settings on every pool connection. JIT compilation is off: the planner's cost
# for 3072-d distance expressions crosses jit_above_cost easily and compiling costs tens
# of milliseconds per query, more than the search itself (measured in benchmarks/).
DEFAULT_SERVER_SETTINGS: Mapping[str, str] = {
    "application_name": "dealhunter_vectors",
    "jit": "off",
}


class _Default:
    """Marks "use the settings" where ``None`` is a meaningful value of its own."""

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT = _Default()


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


# --------------------------------------------------------------------------- faults

# Failures of the connection itself: the server restarted, was killed, refused or reset
# the connection, or asyncpg's protocol state broke because of that ("cannot switch to
# state 12"). Statement errors (syntax, constraints, QueryCanceledError 57014) are not here.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionRefusedError, ConnectionResetError, BrokenPipeError, FileNotFoundError (socket gone)
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, ConnectionDoesNotExistError
    asyncpg.CannotConnectNowError,  # 57P03: starting up / shutting down
    asyncpg.AdminShutdownError,  # 57P01: terminated by administrator, fast shutdown
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)

_OPERATION: contextvars.ContextVar[str | None] = contextvars.ContextVar("dhv_operation", default=None)


def is_connection_error(exc: BaseException) -> bool:
    """True for a failure of the connection itself (retryable), False for a statement error.

    An error raised while cleaning up after a connection failure counts as one too: when a
    connection breaks mid-COPY, asyncpg's pool release then fails with "another operation
    is in progress", whose ``__context__`` is the original failure.
    """
    seen: BaseException | None = exc
    for _ in range(8):  # the chain of an exception raised while handling another
        if seen is None:
            return False
        if isinstance(seen, asyncpg.InterfaceError):
            text = str(seen)
            if "connection" in text and ("closed" in text or "lost" in text or "terminated" in text):
                return True
        elif isinstance(seen, _CONNECTION_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _masked_cause(exc: BaseException) -> BaseException:
    """*exc* with its message masked in place, should it ever hold a URL with a password."""
    with contextlib.suppress(Exception):
        if any(isinstance(a, str) and a != mask_text(a) for a in exc.args):
            exc.args = tuple(mask_text(a) if isinstance(a, str) else a for a in exc.args)
    return exc


def _command_timeout(db: object) -> float | None:
    timeout = getattr(db, "_dhv_command_timeout", None)
    if timeout is None:
        config = getattr(db, "_config", None)  # an asyncpg Connection
        timeout = getattr(config, "command_timeout", None)
    return timeout if isinstance(timeout, (int, float)) else None


def _masked_url_of(db: object) -> str:
    masked = getattr(db, "masked_url", None)
    if isinstance(masked, str):
        return masked
    addr = getattr(db, "_addr", None)  # an asyncpg Connection: (host, port) or a socket path
    return f"the server at {addr}" if addr else "the server"


def translate_error(exc: BaseException, db: object, operation: str | None = None) -> DealhunterVectorsError | None:
    """The library's error for a driver/OS exception raised during *operation* (None: not ours to type)."""
    if isinstance(exc, (DealhunterVectorsError, asyncio.CancelledError)):
        return None
    what = _OPERATION.get() or operation or "a statement"
    if isinstance(exc, TimeoutError):
        timeout = _command_timeout(db)
        limit = f"the command timeout of {timeout:g} s" if timeout is not None else "its timeout"
        return QueryTimeoutError(f"{what} did not finish within {limit}; the server cancelled it")
    if isinstance(exc, asyncpg.QueryCanceledError):  # 57014: the server's statement_timeout, pg_cancel_backend
        return QueryTimeoutError(f"{what} was cancelled by the server: {' '.join(mask_text(str(exc)).split())}")
    if is_connection_error(exc):
        url = _masked_url_of(db)
        detail = mask_text(str(exc)) or type(exc).__name__
        return DatabaseUnavailableError(
            f"{what}: lost the connection to {url} ({type(exc).__name__}: {detail}); retry once the server is back"
        )
    return None


_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])

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
    lock or temporary table outlives them), so on release a pool made by :func:`create_pool`
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


def operation(name: str, *, read_only: bool = False) -> Callable[[_F], _F]:
    """Decorate a public coroutine ``fn(db, ...)``: name it in errors, type its faults.

    Connection failures become :class:`DatabaseUnavailableError`, command timeouts
    :class:`QueryTimeoutError`. ``read_only=True`` (searches): on a connection failure the
    call is retried **once**, on a fresh connection of the pool (a search is idempotent);
    not when *db* is a caller's connection, and never for writes (a lost commit
    acknowledgement would make a retry a duplicate). Nested calls are retried only by the
    outermost one.
    """

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        async def wrapper(db: Any, *args: Any, **kwargs: Any) -> Any:
            # Plain try/except, no context manager: this wraps every search (a few us matter).
            token = _OPERATION.set(name) if _OPERATION.get() is None else None
            try:
                attempts = 2 if read_only and token is not None and isinstance(db, asyncpg.Pool) else 1
                attempt = 1
                while True:
                    try:
                        return await fn(db, *args, **kwargs)
                    except BaseException as exc:
                        if isinstance(exc, DatabaseUnavailableError):
                            if attempt < attempts:
                                _log.warning("%s: %s; retrying once on a fresh connection", name, exc)
                                attempt += 1
                                continue
                            raise
                        translated = translate_error(exc, db)
                        if translated is None:
                            raise
                        if isinstance(translated, DatabaseUnavailableError) and attempt < attempts:
                            _log.warning("%s: %s; retrying once on a fresh connection", name, translated)
                            attempt += 1
                            continue
                        raise translated from _masked_cause(exc)
            finally:
                if token is not None:
                    _OPERATION.reset(token)

        return wrapper  # type: ignore[return-value]

    return decorate


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
            raise translated from _masked_cause(exc)

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

    @property
    def masked_url(self) -> str:
        """The server URL with its password masked."""
        return self._masked_url

    async def _acquire(self, timeout: float | None) -> Any:
        effective = self._acquire_timeout if timeout is None else timeout
        try:
            return await super()._acquire(effective)
        except TimeoutError as exc:
            in_use = self.get_size() - self.get_idle_size()
            if in_use < self.get_max_size():
                # A slot was free, so the wait was for a new connection: the server accepted the
                # socket but never answered (stopped, overloaded, a black-holed network).
                raise DatabaseUnavailableError(
                    f"{_OPERATION.get() or 'acquire'}: no answer from {self._masked_url} within the connect"
                    " timeout; retry once the server is back"
                ) from exc
            raise PoolExhaustedError(
                f"no connection free within {effective:g} s (pool max_size={self.get_max_size()}, "
                f"in use={self.get_size() - self.get_idle_size()}); raise max_size or acquire timeout"
            ) from None
        except Exception as exc:
            tls = tls_failure(exc, self._masked_url)  # a new connection's TLS failed: not retryable
            if tls is not None:
                raise tls from _masked_cause(exc)
            if not is_connection_error(exc):
                raise
            translated = translate_error(exc, self, "acquire")
            assert translated is not None
            raise translated from _masked_cause(exc)

    def __repr__(self) -> str:
        return f"<dealhunter_vectors.Pool {self._masked_url} size={self.get_size()}/{self.get_max_size()}>"


PGVECTOR_MIN_SAFE = (0, 8, 4)
"""Older pgvector releases: CVE-2026-3172 (fixed in 0.8.2), HNSW vacuum corruption (fixed in 0.8.3/0.8.4)."""


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


async def create_pool(
    url: str | None = None,
    *,
    min_size: int | None = None,
    max_size: int | None = None,
    max_inactive_connection_lifetime: float | None = None,
    connect_timeout: float | None = None,
    acquire_timeout: float | None = DEFAULT_ACQUIRE_TIMEOUT,
    command_timeout: float | _Default | None = _DEFAULT,
    pgbouncer: bool = False,
    statement_cache_size: int | None = None,
    create_extension: bool = True,
    server_settings: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    replicas: Sequence[str] | None = None,
    max_replica_lag: float | None = None,
    replica_check_interval: float | None = None,
    **connect_kwargs: Any,
) -> Pool:
    """Create and initialise a pgvector-ready pool.

    *url* defaults to ``DATABASE_URL`` (``embedded`` starts the embedded server). Sizes
    and timeouts default to the :class:`~dealhunter_vectors.config.Settings`
    (max 20 connections, idle lifetime 30 s, connect timeout 2 s).
    ``pgbouncer=True`` turns the prepared-statement cache off for PgBouncer's
    transaction pooling mode. ``command_timeout=None`` disables the per-statement
    timeout (default: the settings' 60 s). Raises :class:`DatabaseUnavailableError` (URL masked)
    when the server cannot be reached or refuses the login.

    *replicas* (default: ``DATABASE_REPLICA_URLS`` when *url* is ``DATABASE_URL``'s) are
    streaming standbys of *url*: the result is then a
    :class:`~dealhunter_vectors.scale.replicas.ReplicatedPool`, whose searches run on a
    replica lagging at most *max_replica_lag* seconds (default 5) and everything else on
    the primary (docs/scaling.md, "Read replicas").
    """
    cfg = settings or get_settings()
    if replicas is None and (url is None or url == cfg.database_url.get_secret_value()):
        replicas = cfg.replica_urls
    if replicas:
        from ..scale.replicas import connect_replicated

        return await connect_replicated(
            url if url is not None else cfg.database_url.get_secret_value(),
            replicas,
            max_replica_lag=cfg.max_replica_lag if max_replica_lag is None else max_replica_lag,
            check_interval=cfg.replica_check_interval if replica_check_interval is None else replica_check_interval,
            min_size=min_size, max_size=max_size, max_inactive_connection_lifetime=max_inactive_connection_lifetime,
            connect_timeout=connect_timeout, acquire_timeout=acquire_timeout, command_timeout=command_timeout,
            pgbouncer=pgbouncer, statement_cache_size=statement_cache_size, create_extension=create_extension,
            server_settings=server_settings, settings=cfg, **connect_kwargs,
        )  # fmt: skip
    dsn = resolve_database_url(url if url is not None else cfg.database_url)  # ConfigurationError when malformed
    masked = mask_url(dsn)
    dsn, secret = split_password(dsn)
    password = connect_kwargs.pop("password", None) or (secret.get_secret_value if secret is not None else None)
    timeout = cfg.connect_timeout if connect_timeout is None else connect_timeout
    cache = 0 if pgbouncer else (cfg.statement_cache_size if statement_cache_size is None else statement_cache_size)
    max_sz = cfg.pool_max_size if max_size is None else max_size
    min_sz = min(cfg.pool_min_size if min_size is None else min_size, max_sz)
    settings_map = {**DEFAULT_SERVER_SETTINGS, **(server_settings or {})}
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
            max_inactive_connection_lifetime=(
                cfg.pool_max_inactive_lifetime
                if max_inactive_connection_lifetime is None
                else max_inactive_connection_lifetime
            ),
            init=register_vector_codecs,
            reset=reset,
            loop=None,
            connection_class=asyncpg.Connection,
            record_class=asyncpg.Record,
            timeout=timeout,
            command_timeout=cfg.command_timeout if isinstance(command_timeout, _Default) else command_timeout,
            statement_cache_size=cache,
            server_settings=settings_map,
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


@contextlib.asynccontextmanager
async def open_pool(
    url: str | None = None, *, close_timeout: float = DEFAULT_CLOSE_TIMEOUT, **options: Any
) -> AsyncIterator[Pool]:
    """``async with open_pool(...) as pool:`` — :func:`create_pool`, closed gracefully on exit."""
    pool = await create_pool(url, **options)
    try:
        yield pool
    finally:
        await close_pool(pool, timeout=close_timeout)


@contextlib.asynccontextmanager
async def lifespan(
    app: Any = None,
    *,
    url: str | None = None,
    state_key: str = "db",
    handle_sigterm: bool = False,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    **options: Any,
) -> AsyncIterator[dict[str, Pool]]:
    """An ASGI lifespan: opens the pool at start-up, closes it gracefully at shutdown.

    FastAPI / Starlette: ``FastAPI(lifespan=dealhunter_vectors.lifespan)``; handlers reach
    the pool as ``request.state.db`` (the yielded state) or ``app.state.db``.
    Servers such as uvicorn already turn SIGTERM into a lifespan shutdown; for other
    hosts ``handle_sigterm=True`` installs a handler that closes the pool gracefully
    (in-flight queries finish) and then re-delivers SIGTERM to the previous handler.
    """
    pool = await create_pool(url, **options)
    if app is not None and hasattr(app, "state"):
        setattr(app.state, state_key, pool)
    loop = asyncio.get_running_loop()
    closing: asyncio.Task[None] | None = None
    if handle_sigterm:
        previous = signal.getsignal(signal.SIGTERM)

        def _on_sigterm() -> None:
            nonlocal closing
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)

            async def _close_then_redeliver() -> None:
                await close_pool(pool, timeout=close_timeout)
                signal.raise_signal(signal.SIGTERM)

            closing = loop.create_task(_close_then_redeliver())

        loop.add_signal_handler(signal.SIGTERM, _on_sigterm)
    try:
        yield {state_key: pool}
    finally:
        if handle_sigterm:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signal.SIGTERM)
        if closing is not None:
            await closing
        else:
            await close_pool(pool, timeout=close_timeout)


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
        raise translated from _masked_cause(exc)
