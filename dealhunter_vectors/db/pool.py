"""The asyncpg connection pool, ready for pgvector: :func:`create_pool`, :func:`open_pool`, :func:`lifespan`.

One server: :class:`~dealhunter_vectors.db.server.Pool` (:mod:`.server`: codecs, typed faults,
acquire timeout, release without reset). With read replicas: a
:class:`~dealhunter_vectors.db.replicas.ReplicatedPool` (:mod:`.replicas`). Faults are typed
by :mod:`.faults`: a lost, refused or reset connection is a ``DatabaseUnavailableError``
(retryable), a statement beyond the command timeout a ``QueryTimeoutError``; read-only
searches retry once on a fresh connection, writes never. Start-up logs a warning when the
server's pgvector is older than 0.8.4. Reliability rules: docs/reliability.md.

Typical use::

    async with open_pool() as pool:            # DATABASE_URL or the docker-compose default
        rows = await pool.fetch("SELECT 1")

    pool = await create_pool("embedded")      # the embedded PostgreSQL 16 + pgvector
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from .. import observe
from ..config import Settings, get_settings
from ..errors import InvalidArgumentError
from ..validation import integer, number
from .faults import is_connection_error, operation, translate_error
from .replicas import ReplicatedPool, connect_replicated
from .server import (
    DEFAULT_ACQUIRE_TIMEOUT,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_SERVER_SETTINGS,
    PGVECTOR_MIN_SAFE,
    Pool,
    acquire_for_reads,
    close_pool,
    connect_pool,
    pgvector_outdated,
    register_vector_codecs,
    transaction_settings,
)

__all__ = [
    "DEFAULT_ACQUIRE_TIMEOUT",
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_SERVER_SETTINGS",
    "PGVECTOR_MIN_SAFE",
    "Pool",
    "ReplicatedPool",
    "acquire_for_reads",
    "close_pool",
    "create_pool",
    "is_connection_error",
    "lifespan",
    "open_pool",
    "operation",
    "pgvector_outdated",
    "register_vector_codecs",
    "transaction_settings",
    "translate_error",
]


class _Default:
    """Marks "use the settings" where ``None`` is a meaningful value of its own."""

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT = _Default()


MAX_SECONDS = 1e7
"""Largest timeout or interval a pool option accepts (115 days; ``None`` turns a timeout off)."""


def _seconds(value: Any, name: str, *, zero: bool = False) -> float | None:
    """``None`` or a number of seconds in ``(0, MAX_SECONDS]`` (``[0, ...]`` when *zero* is allowed)."""
    if value is None:
        return None
    seconds = number(value, name, minimum=0.0, maximum=MAX_SECONDS)
    if seconds == 0 and not zero:
        raise InvalidArgumentError(name, f"must be a number of seconds > 0 (at most {MAX_SECONDS:g}), got {value!r}")
    return seconds


def _checked_options(options: dict[str, Any]) -> dict[str, Any]:
    """:func:`create_pool`'s numeric options checked (``InvalidArgumentError`` naming one) and normalised."""
    out = dict(options)
    for name in ("min_size", "max_size", "statement_cache_size"):
        if out[name] is not None:
            low = 1 if name == "max_size" else 0
            out[name] = integer(
                out[name], name, minimum=low, maximum=1_000_000 if name == "statement_cache_size" else 10_000
            )
    for name in ("connect_timeout", "acquire_timeout"):
        out[name] = _seconds(out[name], name)
    if not isinstance(out["command_timeout"], _Default):
        out["command_timeout"] = _seconds(out["command_timeout"], "command_timeout")
    for name in ("max_inactive_connection_lifetime", "max_replica_lag", "replica_check_interval"):
        out[name] = _seconds(out[name], name, zero=True)
    return out


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
    when the server cannot be reached or refuses the login. Sizes are integers (``min_size``
    >= 0, ``max_size`` >= 1), timeouts and intervals numbers of seconds in (0, 1e7] (``None``
    where it turns them off; a lifetime, lag or check interval may be 0); anything else is an
    :class:`~dealhunter_vectors.errors.InvalidArgumentError` naming the option.

    *replicas* (default: ``DATABASE_REPLICA_URLS`` when *url* is ``DATABASE_URL``'s) are
    streaming standbys of *url*: the result is then a
    :class:`~dealhunter_vectors.db.replicas.ReplicatedPool`, whose searches run on a
    replica lagging at most *max_replica_lag* seconds (default 5) and everything else on
    the primary (docs/scaling.md, "Read replicas").
    """
    checked = _checked_options(
        {
            "min_size": min_size,
            "max_size": max_size,
            "max_inactive_connection_lifetime": max_inactive_connection_lifetime,
            "connect_timeout": connect_timeout,
            "acquire_timeout": acquire_timeout,
            "command_timeout": command_timeout,
            "statement_cache_size": statement_cache_size,
            "max_replica_lag": max_replica_lag,
            "replica_check_interval": replica_check_interval,
        }
    )
    min_size, max_size, statement_cache_size = checked["min_size"], checked["max_size"], checked["statement_cache_size"]
    max_inactive_connection_lifetime = checked["max_inactive_connection_lifetime"]
    connect_timeout, acquire_timeout = checked["connect_timeout"], checked["acquire_timeout"]
    command_timeout = checked["command_timeout"]
    max_replica_lag, replica_check_interval = checked["max_replica_lag"], checked["replica_check_interval"]
    cfg = settings or get_settings()
    if cfg.otel:
        observe.enable("otel")  # DEALHUNTER_OTEL=1: the [otel] extra's instrument(), once per process
    if replicas is None and (url is None or url == cfg.database_url.get_secret_value()):
        replicas = cfg.replica_urls
    resolved_timeout = cfg.command_timeout if isinstance(command_timeout, _Default) else command_timeout
    if replicas:
        return await connect_replicated(
            url if url is not None else cfg.database_url.get_secret_value(),
            replicas,
            max_replica_lag=cfg.max_replica_lag if max_replica_lag is None else max_replica_lag,
            check_interval=cfg.replica_check_interval if replica_check_interval is None else replica_check_interval,
            min_size=min_size, max_size=max_size, max_inactive_connection_lifetime=max_inactive_connection_lifetime,
            connect_timeout=connect_timeout, acquire_timeout=acquire_timeout, command_timeout=resolved_timeout,
            pgbouncer=pgbouncer, statement_cache_size=statement_cache_size, create_extension=create_extension,
            server_settings=server_settings, settings=cfg, **connect_kwargs,
        )  # fmt: skip
    return await connect_pool(
        url if url is not None else cfg.database_url,
        settings=cfg,
        min_size=min_size,
        max_size=max_size,
        max_inactive_connection_lifetime=max_inactive_connection_lifetime,
        connect_timeout=connect_timeout,
        acquire_timeout=acquire_timeout,
        command_timeout=resolved_timeout,
        pgbouncer=pgbouncer,
        statement_cache_size=statement_cache_size,
        create_extension=create_extension,
        server_settings=server_settings,
        **connect_kwargs,
    )


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
