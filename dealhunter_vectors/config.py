"""Settings read from the environment, and URL masking.

Every setting can be given as an environment variable (``DATABASE_URL``,
``DEALHUNTER_POOL_MAX_SIZE``, ...) or passed explicitly. A database URL is never
printed, logged or put in an exception with its password: use :func:`mask_url`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    ``DEALHUNTER_CONNECT_TIMEOUT``            connect / acquire timeout, s (default 2)
    ``DEALHUNTER_COMMAND_TIMEOUT``            per-statement timeout, s (default 60)
    ``DEALHUNTER_STATEMENT_CACHE_SIZE``       0 for PgBouncer transaction mode (default 100)
    ``DEALHUNTER_EMBEDDING_DIMENSIONS``       embedding size (default 3072)
    ``DEALHUNTER_EMBEDDED_DATA_DIR``          data directory of the embedded server
    ========================================  ===========================================
    """

    model_config = SettingsConfigDict(env_prefix="DEALHUNTER_", extra="ignore", frozen=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL", "DEALHUNTER_DATABASE_URL"),
    )
    pool_min_size: int = Field(default=2, ge=0)
    pool_max_size: int = Field(default=20, ge=1)
    pool_max_inactive_lifetime: float = Field(default=30.0, ge=0)
    connect_timeout: float = Field(default=2.0, gt=0)
    command_timeout: float | None = Field(default=60.0, gt=0)
    statement_cache_size: int = Field(default=100, ge=0)
    embedding_dimensions: int = Field(default=3072, ge=1, le=16000)
    embedded_data_dir: Path | None = None

    def __repr__(self) -> str:  # never leak the password through repr()
        fields = ", ".join(f"{k}={mask_url(v) if k == 'database_url' else v!r}" for k, v in self.__dict__.items())
        return f"Settings({fields})"

    __str__ = __repr__


_ENV_NAMES: tuple[str, ...] = (
    "DATABASE_URL",
    *(f"DEALHUNTER_{name.upper()}" for name in Settings.model_fields),
)
_cached: tuple[tuple[object, ...], Settings] | None = None


def _environment_key() -> tuple[object, ...]:
    # The variables' upper-case names (a few dict lookups, ~2 us); the number of variables
    # catches a variable added under another spelling (pydantic-settings ignores case).
    environ = os.environ
    return (len(environ), *(environ.get(name) for name in _ENV_NAMES))


def get_settings() -> Settings:
    """The settings of the current environment.

    Re-read whenever a ``DEALHUNTER_*`` variable or ``DATABASE_URL`` changed (tests change
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


def mask_url(url: str) -> str:
    """Return *url* with its password replaced by ``***``.

    Handles ``postgresql://user:secret@host/db``, a ``password=`` query parameter and
    anything that fails to parse (then every ``user:secret@`` pattern is masked).
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostinfo = netloc.rpartition("@")
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                userinfo = f"{user}:***"
            netloc = f"{userinfo}@{hostinfo}"
        query = re.sub(r"(?i)(^|&)(password)=[^&]*", r"\1\2=***", parts.query)
        masked = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        masked = url
    return mask_text(masked)


def mask_text(text: str) -> str:
    """Mask every ``scheme://user:password@`` occurrence inside free text (error messages)."""
    return _PASSWORD_IN_TEXT.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def with_database(url: str, database: str) -> str:
    """Return *url* pointing at *database* (path replaced; query such as ``host=`` kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))
