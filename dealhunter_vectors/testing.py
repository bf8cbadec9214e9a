"""A pytest plugin for suites that need a real pgvector server.

Enable it in a ``conftest.py``::

    pytest_plugins = ["dealhunter_vectors.testing"]

Fixtures (pytest-asyncio, session event loop):

* ``dhv_server_url`` (session): ``DATABASE_URL`` when it names a server, otherwise an
  embedded PostgreSQL 16 + pgvector started in a temporary directory for the session.
* ``dhv_template_database`` (session): a template database with the schema applied once.
* ``dhv_database_factory`` (session): ``await factory()`` returns the URL of a new database
  cloned from the template (dropped at session end); for module-scoped data sets.
* ``dhv_database_url`` (function): a fresh, isolated database for one test.
* ``dhv_pool`` (function): a pool on that database.
* ``dhv_module_pool`` (module): a pool on a fresh database shared by one test module, for
  modules that build a data set once and keep their owners apart by id.
* ``dhv_citus_cluster`` (session): a local Citus cluster (coordinator + 2 workers, built
  from source once and cached; :mod:`dealhunter_vectors.scale.cluster`), stopped and
  removed at session end. The source tarball is ``$DEALHUNTER_CITUS_SOURCE``, else
  ``../shared/vendor/citus-*.tar.gz`` next to the repository; without one the tests that
  use the fixture are skipped, saying so. ``await cluster.create_database(name)`` gives a
  database with Citus, pgvector and the nodes registered.
* ``dhv_citus_database_factory`` (session): ``await factory()`` returns the coordinator URL
  of a new database on that cluster with the distributed layout applied
  (``apply_schema(pool, distributed=True)``); ``await factory(distributed=False)`` only
  creates it (empty, Citus and pgvector installed). Dropped at session end.

Each test gets its own database (``CREATE DATABASE ... TEMPLATE``), so tests that write
the same ids, commit, or use transactions of their own never see each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from .config import with_database
from .db.embedded import is_embedded_url, resolve_database_url, start_embedded, stop_embedded
from .db.pool import Pool, close_pool, create_pool
from .db.schema import apply_schema, quote_ident
from .scale.cluster import LocalCluster, default_citus_source, start_cluster, stop_cluster

DatabaseFactory = Callable[[], Awaitable[str]]

__all__ = ["CitusDatabaseFactory", "DatabaseFactory", "seed_owners", "with_database"]


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


async def _admin(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, timeout=10)


@pytest_asyncio.fixture(scope="session")
async def dhv_template_database(dhv_server_url: str) -> AsyncIterator[str]:
    """Name of a template database with the full schema applied."""
    name = f"dhv_template_{uuid.uuid4().hex[:10]}"
    admin = await _admin(dhv_server_url)
    try:
        await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
        pool = await create_pool(with_database(dhv_server_url, name), min_size=1, max_size=2)
        try:
            await apply_schema(pool)
        finally:
            await close_pool(pool)
        yield name
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        await admin.close()


@pytest_asyncio.fixture(scope="session")
async def dhv_database_factory(dhv_server_url: str, dhv_template_database: str) -> AsyncIterator[DatabaseFactory]:
    """``await factory()`` -> URL of a new database cloned from the schema template."""
    created: list[str] = []
    admin = await _admin(dhv_server_url)

    async def factory() -> str:
        name = f"dhv_test_{uuid.uuid4().hex[:12]}"
        await admin.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(dhv_template_database)}")
        created.append(name)
        return with_database(dhv_server_url, name)

    try:
        yield factory
    finally:
        for name in created:
            await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        await admin.close()


@pytest_asyncio.fixture
async def dhv_database_url(dhv_database_factory: DatabaseFactory) -> str:
    """A fresh database with the schema applied, private to one test."""
    return await dhv_database_factory()


@pytest_asyncio.fixture
async def dhv_pool(dhv_database_url: str) -> AsyncIterator[Pool]:
    """A pool (max 10) on the test's private database."""
    pool = await create_pool(dhv_database_url, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await close_pool(pool, timeout=10)


@pytest_asyncio.fixture(scope="module")
async def dhv_module_pool(dhv_database_factory: DatabaseFactory) -> AsyncIterator[Pool]:
    """A pool (max 4) on a fresh database shared by the tests of one module."""
    pool = await create_pool(await dhv_database_factory(), min_size=1, max_size=4)
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
