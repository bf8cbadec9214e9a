"""A pytest plugin for suites that need a real pgvector server.

Install it with the ``testing`` extra (``pip install 'dealhunter-vectors[testing]'``:
pytest, pytest-asyncio and the embedded server) and enable it in a ``conftest.py``::

    pytest_plugins = ["dealhunter_vectors.testing"]

The fixtures work under pytest-asyncio's defaults (strict mode, one event loop per test,
no ``asyncio_mode`` or loop-scope settings needed): everything that outlives a test
(the server, the template database, the databases it clones) is managed by *synchronous*
fixtures that talk to the server from a private event loop in a worker thread, so no
connection is ever shared between event loops; ``dhv_pool`` is created on the test's own
loop. Suites that set ``asyncio_mode = "auto"`` or wider loop scopes work the same.

Fixtures:

* ``dhv_server_url`` (session): ``DATABASE_URL`` when it names a server, otherwise an
  embedded PostgreSQL 16 + pgvector started in a temporary directory for the session.
* ``dhv_template_database`` (session): a template database with the schema applied once.
* ``dhv_database_factory`` (session): ``await factory()`` (or ``factory.create()`` from
  synchronous code) returns the URL of a new database cloned from the template, dropped
  at session end; for module-scoped data sets.
* ``dhv_database_url`` (function): a fresh, isolated database for one test.
* ``dhv_pool`` (function, async): a pool on that database, on the test's event loop.
* ``dhv_module_database_url`` (module): a fresh database shared by one test module.
* ``dhv_module_pool`` (module, async): a pool on a fresh database shared by one test
  module; it lives on the module's event loop, so use it from tests that run on a module
  (or wider) loop: ``@pytest.mark.asyncio(loop_scope="module")``, or
  ``asyncio_default_test_loop_scope`` / ``asyncio_default_fixture_loop_scope`` set to the
  same scope. ``dhv_module_database_url`` works with any loop scope.
* ``dhv_citus_cluster`` (session): a local Citus cluster (coordinator + 2 workers, built
  from source once and cached; :mod:`dealhunter_vectors.scale.cluster`), stopped and
  removed at session end. The source tarball is ``$DEALHUNTER_CITUS_SOURCE``, else
  ``../shared/vendor/citus-*.tar.gz`` next to the repository; without one the tests that
  use the fixture are skipped, saying so. ``await cluster.create_database(name)`` gives a
  database with Citus, pgvector and the nodes registered.
* ``dhv_citus_database_factory`` (session, async: session event loop): ``await factory()``
  returns the coordinator URL of a new database on that cluster with the distributed layout
  applied (``apply_schema(pool, distributed=True)``); ``await factory(distributed=False)``
  only creates it (empty, Citus and pgvector installed). Dropped at session end.

Each test gets its own database (``CREATE DATABASE ... TEMPLATE``), so tests that write
the same ids, commit, or use transactions of their own never see each other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import pytest_asyncio

from .config import with_database
from .db.embedded import is_embedded_url, resolve_database_url, start_embedded, stop_embedded
from .db.pool import Pool, close_pool, create_pool
from .db.schema import apply_schema, quote_ident
from .tooling.cluster import LocalCluster, default_citus_source, start_cluster, stop_cluster

__all__ = ["CitusDatabaseFactory", "DatabaseFactory", "TemplateDatabaseFactory", "seed_owners", "with_database"]

DatabaseFactory = Callable[[], Awaitable[str]]
"""``await factory()`` -> URL of a new database (what ``dhv_database_factory`` gives)."""

_T = TypeVar("_T")


def _run_isolated(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run ``make()`` to completion on a private event loop in a worker thread.

    Never touches the caller's event loop (running or not), so synchronous fixtures can
    use asyncpg whatever loop pytest-asyncio gives the tests.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dhv-testing") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


async def _admin_execute(server_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(server_url, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class TemplateDatabaseFactory:
    """Creates databases cloned from the schema template; drops them all in :meth:`drop_all`.

    ``await factory()`` works on any event loop (the statements run on a private loop in a
    worker thread); :meth:`create` is the synchronous form.
    """

    def __init__(self, server_url: str, template: str) -> None:
        self.server_url = server_url
        self.template = template
        self._created: list[str] = []
        self._lock = threading.Lock()

    def create(self) -> str:
        """Create a new database from the template and return its URL."""
        name = f"dhv_test_{uuid.uuid4().hex[:12]}"
        statement = f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(self.template)}"
        _run_isolated(lambda: _admin_execute(self.server_url, statement))
        with self._lock:
            self._created.append(name)
        return with_database(self.server_url, name)

    async def __call__(self) -> str:
        return await asyncio.to_thread(self.create)

    def drop_all(self) -> None:
        """Drop every database this factory created (``WITH (FORCE)``)."""
        with self._lock:
            names, self._created = self._created, []
        if names:
            _run_isolated(
                lambda: _admin_execute(
                    self.server_url, *(f"DROP DATABASE IF EXISTS {quote_ident(n)} WITH (FORCE)" for n in names)
                )
            )


@pytest.fixture(scope="session")
def dhv_server_url() -> Iterator[str]:
    """URL of the server the tests use (``DATABASE_URL`` or a session embedded server).

    The embedded server's data directory is a fresh ``tempfile.mkdtemp`` directory, not
    pytest's ``tmp_path``: pytest resets ``/tmp/pytest-of-<user>`` to mode 0700 whenever
    another pytest session (or xdist worker) starts, which would lock out the ``pgserver``
    system user that runs the server when the tests run as root.
    """
    env = os.environ.get("DATABASE_URL")
    if env and not is_embedded_url(env):
        yield env
        return
    if env and env != "embedded":
        yield resolve_database_url(env)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="dhv-test-pg-"))
    server = start_embedded(data_dir / "pgdata")
    try:
        yield server.url
    finally:
        stop_embedded(data_dir / "pgdata")
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def dhv_citus_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """A coordinator and two workers on free localhost ports, for the session."""
    source = default_citus_source(Path(request.config.rootpath))
    if source is None:
        pytest.skip("no Citus source tarball: set DEALHUNTER_CITUS_SOURCE or put citus-*.tar.gz in ../shared/vendor")
    cluster = start_cluster(2, directory=tempfile.mkdtemp(prefix="dhv-citus-"), citus_source=source)
    try:
        yield cluster
    finally:
        stop_cluster(cluster.directory, remove=True)


CitusDatabaseFactory = Callable[..., Awaitable[str]]


@pytest_asyncio.fixture(scope="session")
async def dhv_citus_database_factory(dhv_citus_cluster: LocalCluster) -> AsyncIterator[CitusDatabaseFactory]:
    """``await factory(distributed=True)`` -> coordinator URL of a new database on the cluster."""
    created: list[str] = []

    async def factory(*, distributed: bool = True) -> str:
        name = f"dhv_citus_{uuid.uuid4().hex[:12]}"
        url = await dhv_citus_cluster.create_database(name)
        created.append(name)
        if distributed:
            pool = await create_pool(url, min_size=1, max_size=2)
            try:
                await apply_schema(pool, distributed=True)
            finally:
                await close_pool(pool)
        return url

    try:
        yield factory
    finally:
        for name in created:
            await dhv_citus_cluster.drop_database(name)


async def _create_template(server_url: str, name: str) -> None:
    await _admin_execute(server_url, f"CREATE DATABASE {quote_ident(name)}")
    pool = await create_pool(with_database(server_url, name), min_size=1, max_size=2)
    try:
        await apply_schema(pool)
    finally:
        await close_pool(pool)


@pytest.fixture(scope="session")
def dhv_template_database(dhv_server_url: str) -> Iterator[str]:
    """Name of a template database with the full schema applied."""
    name = f"dhv_template_{uuid.uuid4().hex[:10]}"
    try:
        _run_isolated(lambda: _create_template(dhv_server_url, name))
        yield name
    finally:
        _run_isolated(
            lambda: _admin_execute(dhv_server_url, f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        )


@pytest.fixture(scope="session")
def dhv_database_factory(dhv_server_url: str, dhv_template_database: str) -> Iterator[TemplateDatabaseFactory]:
    """``await factory()`` (or ``factory.create()``) -> URL of a new database cloned from the template."""
    factory = TemplateDatabaseFactory(dhv_server_url, dhv_template_database)
    try:
        yield factory
    finally:
        factory.drop_all()


@pytest.fixture
def dhv_database_url(dhv_database_factory: TemplateDatabaseFactory) -> str:
    """A fresh database with the schema applied, private to one test."""
    return dhv_database_factory.create()


@pytest_asyncio.fixture
async def dhv_pool(dhv_database_url: str) -> AsyncIterator[Pool]:
    """A pool (max 10) on the test's private database, on the test's event loop."""
    pool = await create_pool(dhv_database_url, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await close_pool(pool, timeout=10)


@pytest.fixture(scope="module")
def dhv_module_database_url(dhv_database_factory: TemplateDatabaseFactory) -> str:
    """A fresh database with the schema applied, shared by the tests of one module."""
    return dhv_database_factory.create()


@pytest_asyncio.fixture(scope="module")
async def dhv_module_pool(dhv_module_database_url: str) -> AsyncIterator[Pool]:
    """A pool (max 4) on a fresh database shared by the tests of one module (module event loop)."""
    pool = await create_pool(dhv_module_database_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await close_pool(pool, timeout=10)


_SEED_BUSINESS_UNIT = (
    "INSERT INTO business_units (id, name, leader_name, leader_email, keywords)"
    " VALUES ('bu-test', 'BU', 'Lead', 'lead@example.com', '[]') ON CONFLICT DO NOTHING"
)
_SEED_USER = (
    "INSERT INTO users (id, email, password, name) VALUES ('user-test', 'u@example.com', 'x', 'U')"
    " ON CONFLICT DO NOTHING"
)
_SEED_PRE_QUALIFICATION = (
    "INSERT INTO pre_qualifications (id, user_id, source, stage, input_type, raw_input, extracted_requirements)"
    " VALUES ($1, 'user-test', 'reactive', 'rfp', 'freetext', 'text', $2) ON CONFLICT DO NOTHING"
)
_SEED_QUALIFICATION = (
    "INSERT INTO qualifications (id, pre_qualification_id, customer_name, business_unit_id)"
    " VALUES ($1, 'pq-base', 'Customer', 'bu-test') ON CONFLICT DO NOTHING"
)


async def seed_owners(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    pre_qualification_ids: tuple[str, ...] | list[str] = (),
    qualification_ids: tuple[str, ...] | list[str] = (),
    extracted_requirements: str | None = "[]",
) -> None:
    """Insert the foreign-key parents chunks need: a business unit, a user, the given
    pre-qualifications (plus ``pq-base``) and qualifications (owned by ``pq-base``).

    Idempotent (``ON CONFLICT DO NOTHING``), for tests that write chunks with the
    library's write paths.
    """
    await db.execute(_SEED_BUSINESS_UNIT)
    await db.execute(_SEED_USER)
    await db.executemany(
        _SEED_PRE_QUALIFICATION, [(i, extracted_requirements) for i in (*pre_qualification_ids, "pq-base")]
    )
    await db.executemany(_SEED_QUALIFICATION, [(i,) for i in qualification_ids])
