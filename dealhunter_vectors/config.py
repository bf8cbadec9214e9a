"""Settings read from the environment, and URL masking.

Every setting can be given as an environment variable (``DATABASE_URL``,
``DEALHUNTER_POOL_MAX_SIZE``, ...) or passed explicitly. A database URL is never
printed, logged or put in an exception with its password:

* ``Settings.database_url`` is a pydantic ``SecretStr`` (``str``/``repr``/``rich``/
  ``model_dump_json`` show ``**********``; ``Settings.__repr__`` shows the masked URL);
  read it with ``settings.database_url.get_secret_value()``;
* :func:`check_database_url` validates a URL before any driver sees it (one-line
  :class:`~dealhunter_vectors.errors.ConfigurationError`, password masked, no exception
  chained: the traceback and ``__context__`` never hold the URL);
* :func:`mask_url` / :func:`mask_text` mask a URL or free text for messages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError

DEFAULT_DATABASE_URL = "postgresql://dealhunter:dealhunter@localhost:5433/dealhunter"
"""The docker-compose server (``pgvector/pgvector:pg16`` on port 5433)."""

EMBEDDED_SCHEME = "embedded"
"""``DATABASE_URL=embedded`` (or ``embedded:///some/dir``) selects the embedded server."""


class Settings(BaseSettings):
    """Configuration of the library; values come from the environment.

    ========================================  ===========================================
    environment variable                      meaning
    ========================================  ===========================================
    ``DATABASE_URL``                          server URL, or ``embedded`` / ``embedded:///dir``
    ``DEALHUNTER_POOL_MIN_SIZE``              connections opened eagerly (default 2)
    ``DEALHUNTER_POOL_MAX_SIZE``              pool maximum (default 20)
    ``DEALHUNTER_POOL_MAX_INACTIVE_LIFETIME`` idle connection lifetime, s (default 30)
    ``DEALHUNTER_CONNECT_TIMEOUT``            connect timeout, s (default 2; waiting for a free pool
                                             connection: ``create_pool(acquire_timeout=...)``, 10 s)
    ``DEALHUNTER_COMMAND_TIMEOUT``            per-statement timeout, s (default 60)
    ``DEALHUNTER_STATEMENT_CACHE_SIZE``       0 for PgBouncer transaction mode (default 100)
    ``DEALHUNTER_EMBEDDING_DIMENSIONS``       embedding size (default 3072)
    ``DEALHUNTER_EMBEDDING_MODEL``            model name the writes record with each embedding
                                             (default ``text-embedding-3-large``; docs/reembedding.md)
    ``DEALHUNTER_EMBEDDED_DATA_DIR``          data directory of the embedded server
    ``DEALHUNTER_EMBEDDED_SIZING``            ``auto`` (size memory to the machine) or ``defaults``
    ``DEALHUNTER_EMBEDDED_MEMORY``            memory budget the sizing divides (default: RAM/cgroup)
    ``DEALHUNTER_EMBEDDED_SHARED_BUFFERS``    one embedded server setting, e.g. ``2GB`` (also
                                             ``_EFFECTIVE_CACHE_SIZE``, ``_WORK_MEM``,
                                             ``_MAINTENANCE_WORK_MEM``)
    ``DATABASE_REPLICA_URLS``                 read replicas of ``DATABASE_URL``, comma separated
    ``DEALHUNTER_MAX_REPLICA_LAG``            s a replica may lag and still serve reads (default 5)
    ``DEALHUNTER_REPLICA_CHECK_INTERVAL``     s a replica status is reused (default 1)
    ``DEALHUNTER_OTEL``                       1: ``create_pool`` turns OpenTelemetry on (extra ``[otel]``)
    ========================================  ===========================================
    """

    model_config = SettingsConfigDict(env_prefix="DEALHUNTER_", extra="ignore", frozen=True)

    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL),
        validation_alias=AliasChoices("DATABASE_URL", "DEALHUNTER_DATABASE_URL"),
    )
    pool_min_size: int = Field(default=2, ge=0)
    pool_max_size: int = Field(default=20, ge=1)
    pool_max_inactive_lifetime: float = Field(default=30.0, ge=0)
    connect_timeout: float = Field(default=2.0, gt=0)
    command_timeout: float | None = Field(default=60.0, gt=0)
    statement_cache_size: int = Field(default=100, ge=0)
    embedding_dimensions: int = Field(default=3072, ge=1, le=16000)
    embedding_model: str = Field(default="text-embedding-3-large", min_length=1, max_length=200)
    embedded_data_dir: Path | None = None
    # the embedded server's memory settings (db/sizing.py; docs/scaling.md, "The embedded server is
    # sized to its machine")
    embedded_sizing: str = "auto"
    embedded_memory: str | None = None
    embedded_shared_buffers: str | None = None
    embedded_effective_cache_size: str | None = None
    embedded_work_mem: str | None = None
    embedded_maintenance_work_mem: str | None = None
    database_replica_urls: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("DATABASE_REPLICA_URLS", "DEALHUNTER_DATABASE_REPLICA_URLS"),
    )
    max_replica_lag: float = Field(default=5.0, ge=0)
    replica_check_interval: float = Field(default=1.0, ge=0)
    otel: bool = False
    """``DEALHUNTER_OTEL=1``: :func:`~dealhunter_vectors.create_pool` calls
    ``dealhunter_vectors.integrations.otel.instrument()`` (once per process)."""

    @property
    def replica_urls(self) -> list[str]:
        """``DATABASE_REPLICA_URLS`` split at commas (blanks dropped)."""
        return [u.strip() for u in self.database_replica_urls.get_secret_value().split(",") if u.strip()]

    def __repr__(self) -> str:  # the masked URL (more useful than SecretStr's stars)
        fields = ", ".join(
            f"{k}={_masked(k, v) if isinstance(v, SecretStr) else repr(v)}" for k, v in self.__dict__.items()
        )
        return f"Settings({fields})"

    __str__ = __repr__

    def __rich_repr__(self) -> Any:  # rich.print(settings): the masked URL too
        for k, v in self.__dict__.items():
            yield k, _masked(k, v) if isinstance(v, SecretStr) else v


_ENV_NAMES: tuple[str, ...] = (
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    *(f"DEALHUNTER_{name.upper()}" for name in Settings.model_fields),
)
_cached: tuple[tuple[object, ...], Settings] | None = None


def _environment_key() -> tuple[object, ...]:
    # The variables' upper-case names; the number of variables catches a variable added
    # under another spelling (pydantic-settings ignores case). os.environ's own mapping of
    # encoded names (CPython's os._Environ) answers in ~1 us; os.environ.get() on a missing
    # name raises and catches a KeyError inside (~3 us each, 11 names, on every search).
    data = getattr(os.environ, "_data", None)
    encode = getattr(os.environ, "encodekey", None)
    if isinstance(data, dict) and encode is not None:
        keys = _encoded_names(encode)
        return (len(data), *map(data.get, keys))
    environ = os.environ
    return (len(environ), *(environ.get(name) for name in _ENV_NAMES))


_ENCODED: dict[object, tuple[object, ...]] = {}


def _encoded_names(encode: Any) -> tuple[object, ...]:
    names = _ENCODED.get(encode)
    if names is None:
        names = _ENCODED[encode] = tuple(encode(name) for name in _ENV_NAMES)
    return names


def _masked(name: str, value: SecretStr) -> str:
    """A secret setting for display: the URL (or each URL of a list) with its password masked."""
    text = value.get_secret_value()
    if name == "database_replica_urls":
        return ",".join(mask_url(u.strip()) for u in text.split(","))
    return mask_url(text)


def get_settings() -> Settings:
    """The settings of the current environment.

    Re-read whenever a ``DEALHUNTER_*`` variable, ``DATABASE_URL`` or ``DATABASE_REPLICA_URLS`` changed (tests change
    them), otherwise cached: building :class:`Settings` costs ~3 ms of pydantic-settings
    work, more than a whole search used to spend in Python (every search reads the
    configured embedding dimensions).
    """
    global _cached
    snapshot = _environment_key()
    cached = _cached
    if cached is not None and cached[0] == snapshot:
        return cached[1]
    settings = Settings()
    _cached = (snapshot, settings)
    return settings


_PASSWORD_IN_TEXT = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\x00-\x20]*):(?P<pw>[^@/\x00-\x20]*)@", re.I
)
_URL_USERINFO = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<userinfo>.*)@(?P<rest>[^@]*)$", re.I | re.S)
_PASSWORD_PARAM = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#]*")  # also sslpassword (the key's passphrase)
_SCHEMES = ("postgresql", "postgres")


def mask_url(url: str) -> str:
    """Return *url* with its password replaced by ``***``.

    Handles ``postgresql://user:secret@host/db``, a ``password=`` query parameter and URLs
    that do not parse: everything between ``scheme://user:`` and the **last** ``@`` is
    masked, so a password holding ``#``, ``/``, ``?`` or ``@`` never shows.
    """
    masked = url
    m = _URL_USERINFO.match(url)
    if m is not None and ":" in m["userinfo"]:
        user = m["userinfo"].split(":", 1)[0]
        masked = f"{m['scheme']}{user}:***@{m['rest']}"
    masked = _PASSWORD_PARAM.sub(lambda p: f"{p[1]}***", masked)
    return mask_text(masked)


def _bad_url(url: str, reason: str) -> ConfigurationError:
    return ConfigurationError(f"invalid database URL {mask_url(url)}: {reason}")


# Messages never echo the port text: when a password holds an unencoded '/' or '?', part
# of the password is what a naive parse takes for "host:port".
def _check_port(url: str, port: str) -> None:
    if not port.isascii() or not port.isdigit():
        raise _bad_url(url, "the port is not a number" + _encoding_hint(url))
    if not 1 <= int(port) <= 65535:
        raise _bad_url(url, "the port is outside 1-65535" + _encoding_hint(url))


def _encoding_hint(url: str) -> str:
    authority = re.split(r"[/?]", url.partition("://")[2], maxsplit=1)[0]
    if "@" in url and "@" not in authority:
        return " (a '/', '?' or '@' in the user name or password must be percent-encoded)"
    return ""


def _check_host(url: str, host: str) -> None:
    """One ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` of the (comma-separated) host list."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise _bad_url(url, "an IPv6 address opened with '[' is not closed with ']'")
        rest = host[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _bad_url(url, "unexpected characters after the IPv6 address")
        if rest:
            _check_port(url, rest[1:])
        return
    if "[" in host or "]" in host:
        raise _bad_url(url, "'[' and ']' may only enclose an IPv6 address")
    if host.count(":") > 1:
        raise _bad_url(url, "an IPv6 address must be written in brackets, e.g. [::1]:5432")
    if ":" in host:
        _check_port(url, host.split(":", 1)[1])


def check_database_url(url: object) -> str:
    """Validate a ``postgresql://`` URL before the driver sees it; return it unchanged.

    Checked: the scheme, that there is no ``#`` (a fragment: a password holding ``#``
    must be written ``%23``), the host list (``host``, ``host:port``, ``[v6]:port``,
    comma-separated), every port (a number in 1-65535). Raises a one-line
    :class:`ConfigurationError` with the password masked and nothing chained.
    """
    if isinstance(url, SecretStr):
        url = url.get_secret_value()
    if not isinstance(url, str):
        raise ConfigurationError(f"the database URL must be a string, got {type(url).__name__}")
    if "\x00" in url or any(c in url for c in "\r\n\t "):
        raise _bad_url(url, "contains whitespace or a NUL character")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        shown = scheme if sep and len(scheme) < 20 and scheme.isascii() and scheme.isalnum() else None
        raise ConfigurationError(
            f"unsupported database URL scheme {shown!r}: use postgresql://..., 'embedded' or 'embedded:///data/dir'"
            if shown
            else "the database URL must start with postgresql:// (or be 'embedded' / 'embedded:///data/dir')"
        )
    if "#" in url:
        raise _bad_url(url, "it contains '#' (write a '#' in the password as %23)")
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    hostinfo = authority.rpartition("@")[2]
    for host in hostinfo.split(",") if hostinfo else []:
        _check_host(url, host)
    return url


def mask_text(text: str) -> str:
    """Mask every ``scheme://user:password@`` occurrence inside free text (error messages)."""
    return _PASSWORD_IN_TEXT.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def with_database(url: str, database: str) -> str:
    """Return *url* pointing at *database* (path replaced; query such as ``host=`` kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def split_password(url: str) -> tuple[str, SecretStr | None]:
    """Split the password out of a URL's user info: ``(url without it, password as a secret)``.

    The pool hands asyncpg the URL without the password and the password as a callable
    (``secret.get_secret_value``), so no connect argument the driver stores holds it as
    plain text. A ``password=`` query parameter is left in place (asyncpg reads it there).
    """
    m = _URL_USERINFO.match(url)
    if m is None or ":" not in m["userinfo"]:
        return url, None
    user, _, password = m["userinfo"].partition(":")
    return f"{m['scheme']}{user}@{m['rest']}", SecretStr(unquote(password))
