"""Driver and OS faults as the library's typed errors, and the :func:`operation` decorator.

A lost, refused or reset connection (server restart, ``kill -9`` of the postmaster, network
reset) is a :class:`~dealhunter_vectors.errors.DatabaseUnavailableError` (``retryable``, the
driver's exception as ``__cause__``, URL masked); a statement beyond the command timeout a
:class:`~dealhunter_vectors.errors.QueryTimeoutError` naming the statement and the timeout.
Every public coroutine of the library is wrapped by :func:`operation`, which types these
faults and retries read-only calls once (docs/reliability.md); it also types what the server
refuses in a public call: a missing privilege (``PermissionDeniedError``) and a norm check
(``InvalidEmbeddingError``), see :func:`statement_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import asyncpg

from .. import observe
from ..config import mask_text
from ..errors import DatabaseUnavailableError, DealhunterVectorsError, QueryTimeoutError
from .norms import norm_violation_error
from .privileges import permission_denied

__all__ = [
    "current_operation",
    "is_connection_error",
    "masked_cause",
    "operation",
    "remote_node_failure",
    "statement_error",
    "translate_error",
]

_log = logging.getLogger("dealhunter_vectors.db.pool")

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


def current_operation() -> str | None:
    """The name of the public operation running in this task (None outside one)."""
    return _OPERATION.get()


# A Citus coordinator reports a worker it cannot reach, or one that went away mid-statement,
# as an ERROR of its own (its session with the client is fine): SQLSTATE class 08
# ("connection to the remote node user@host:port failed ..."), the worker's 57P0x relayed
# (context "while executing command on host:port"), or XX000 with a connection message.
_REMOTE_NODE: Final = re.compile(
    r"(?:remote node|executing command on)\s+(?:[^@\s]+@)?(\[[0-9A-Fa-f:.]+\]:\d+|[\w.-]+:\d+)"
)
_REMOTE_CONNECTION_TEXT: Final = (
    "connection to the remote node",
    "connection not open",
    "could not establish",
    "server closed the connection",
    "terminating connection",
    "the database system is",
)


def _remote_node(err: BaseException) -> str | None:
    if not isinstance(err, asyncpg.PostgresError):
        return None
    state = str(getattr(err, "sqlstate", "") or "")
    message = str(getattr(err, "message", None) or err)
    if not (
        state.startswith(("08", "57P0"))
        or (state == "XX000" and any(text in message for text in _REMOTE_CONNECTION_TEXT))
    ):
        return None
    found = _REMOTE_NODE.search(f"{message}\n{getattr(err, 'context', None) or ''}")
    return found[1] if found else None


def remote_node_failure(exc: BaseException) -> str | None:
    """``host:port`` of the Citus worker whose connection failed during *exc*'s statement, else None.

    The coordinator's own connection is fine then: the error is the worker's (retryable once
    it is back), and names it; see the comment above for the forms Citus reports.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        node = _remote_node(seen)
        if node is not None:
            return node
        seen = seen.__cause__ or seen.__context__
    return None


def is_connection_error(exc: BaseException) -> bool:
    """True for a failure of the connection itself (retryable), False for a statement error.

    An error raised while cleaning up after a connection failure counts as one too: when a
    connection breaks mid-COPY, asyncpg's pool release then fails with "another operation
    is in progress", whose ``__context__`` is the original failure. So does a Citus
    worker's lost connection (:func:`remote_node_failure`).
    """
    seen: BaseException | None = exc
    for _ in range(8):  # the chain of an exception raised while handling another
        if seen is None:
            return False
        if _remote_node(seen) is not None:
            return True
        if isinstance(seen, asyncpg.InterfaceError):
            text = str(seen)
            if "connection" in text and ("closed" in text or "lost" in text or "terminated" in text):
                return True
        elif isinstance(seen, _CONNECTION_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def masked_cause(exc: BaseException) -> BaseException:
    """*exc* with its message masked in place, should it ever hold a URL with a password."""
    with contextlib.suppress(Exception):
        if any(isinstance(a, str) and a != mask_text(a) for a in exc.args):
            exc.args = tuple(mask_text(a) if isinstance(a, str) else a for a in exc.args)
    return exc


def _command_timeout(db: object) -> float | None:
    # The library's pools and connections know their command timeout (db/server.py);
    # a caller's own asyncpg objects do not say it publicly.
    timeout = getattr(db, "command_timeout", None)
    return timeout if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else None


def _masked_url_of(db: object) -> str:
    masked = getattr(db, "masked_url", None)
    return masked if isinstance(masked, str) else "the server"


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
    url = _masked_url_of(db)
    detail = " ".join(mask_text(str(exc)).split()) or type(exc).__name__  # one line (libpq adds "\n\t...")
    node = remote_node_failure(exc)
    if node is not None:
        return DatabaseUnavailableError(
            f"{what}: the Citus worker {node} is unreachable ({type(exc).__name__}: {detail}); the coordinator"
            f" {url} answers: retry once the worker is back"
        )
    if is_connection_error(exc):
        return DatabaseUnavailableError(
            f"{what}: lost the connection to {url} ({type(exc).__name__}: {detail}); retry once the server is back"
        )
    return None


def statement_error(exc: BaseException, operation: str) -> DealhunterVectorsError | None:
    """The typed error for a statement the server refused in a public *operation*: a missing
    privilege (:class:`PermissionDeniedError` naming what the call needs) or an embedding its
    norm check rejects (:class:`InvalidEmbeddingError`); None for anything else. Only the
    public operations translate these, not the pool's own ``fetch``/``execute``."""
    what = _OPERATION.get() or operation
    return permission_denied(exc, what) or norm_violation_error(exc)


_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def _observed_inputs(fn: Callable[..., Any]) -> dict[str, tuple[int | None, Any]]:
    """Where *fn* takes the inputs an observation reports: name -> (position after *db*, default)."""
    out: dict[str, tuple[int | None, Any]] = {}
    params = list(inspect.signature(fn).parameters.values())[1:]
    for position, p in enumerate(params):
        if p.name in ("limit", "threshold", "query_text"):
            positional = p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            out[p.name] = (position if positional else None, None if p.default is p.empty else p.default)
    return out


def _begin(
    name: str, read_only: bool, inputs: dict[str, tuple[int | None, Any]], db: Any, args: Any, kwargs: Any
) -> observe.Observation | None:
    """Open the observation of one call (only called when something subscribes)."""
    obs = observe.begin(name, "read" if read_only else "write", server=_masked_url_of(db))
    if obs is None:
        return None
    for key, (position, default) in inputs.items():
        value = args[position] if position is not None and position < len(args) else kwargs.get(key, default)
        if key == "query_text":
            obs.query_text = value if isinstance(value, str) else None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            obs.attributes[key] = value
    return obs


_COUNTED: Final = ("ids", "inserted_ids", "updated_ids", "chunks")
"""The list a result model's ``result_count`` is the length of, the first it has: an upsert's
ids (every row written), a replace's inserted ids, an embedding update's updated ids, a page's chunks."""


def _result_count(result: Any) -> int | None:
    if isinstance(result, bool):
        return None
    if isinstance(result, int):
        return result
    if isinstance(result, (list, tuple)):
        if result and all(isinstance(getattr(r, "filled", None), int) for r in result):
            return sum(int(r.filled) for r in result)  # a backfill's per-table progress: the rows it filled
        return len(result)
    for name in _COUNTED:
        items = getattr(result, name, None)
        if isinstance(items, list):
            return len(items)
    return None


def operation(name: str, *, read_only: bool = False) -> Callable[[_F], _F]:
    """Decorate a public coroutine ``fn(db, ...)``: name it in errors, type its faults, observe it.

    Connection failures become :class:`DatabaseUnavailableError`, command timeouts
    :class:`QueryTimeoutError`. ``read_only=True`` (searches): on a connection failure the
    call is retried **once**, on a fresh connection of the pool (a search is idempotent);
    not when *db* is a caller's connection, and never for writes (a lost commit
    acknowledgement would make a retry a duplicate). Nested calls are retried only by the
    outermost one. The outermost call is an :mod:`~dealhunter_vectors.observe` observation
    named *name* when something subscribes.
    """

    def decorate(fn: _F) -> _F:
        inputs = _observed_inputs(fn)

        @functools.wraps(fn)
        async def wrapper(db: Any, *args: Any, **kwargs: Any) -> Any:
            # Plain try/except, no context manager: this wraps every search (a few us matter).
            token = _OPERATION.set(name) if _OPERATION.get() is None else None
            obs = None
            if token is not None and observe.SUBSCRIBERS:
                obs = _begin(name, read_only, inputs, db, args, kwargs)
            error: BaseException | None = None
            try:
                attempts = 2 if read_only and token is not None and isinstance(db, asyncpg.Pool) else 1
                attempt = 1
                while True:
                    try:
                        result = await fn(db, *args, **kwargs)
                    except BaseException as exc:
                        if isinstance(exc, DatabaseUnavailableError):
                            if attempt < attempts:
                                _log.warning("%s: %s; retrying once on a fresh connection", name, exc)
                                attempt += 1
                                observe.add("retries")
                                continue
                            raise
                        translated = translate_error(exc, db) or statement_error(exc, name)
                        if translated is None:
                            raise
                        if isinstance(translated, DatabaseUnavailableError) and attempt < attempts:
                            _log.warning("%s: %s; retrying once on a fresh connection", name, translated)
                            attempt += 1
                            observe.add("retries")
                            continue
                        raise translated from masked_cause(exc)
                    if obs is not None:
                        count = _result_count(result)
                        if count is not None:
                            obs.attributes["result_count"] = count
                    return result
            except BaseException as exc:
                error = exc
                raise
            finally:
                if obs is not None:
                    observe.end(obs, error)
                if token is not None:
                    _OPERATION.reset(token)

        return wrapper  # type: ignore[return-value]

    return decorate
