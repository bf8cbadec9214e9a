"""Developer and test tooling: local PostgreSQL servers and a local Citus cluster.

Not part of the library's application API (the old top-level names ``start_cluster``,
``build_citus``, ``start_embedded``, ... still work for one release, with a
``DeprecationWarning``).

* :mod:`.local`: the embedded PostgreSQL 16 binaries on data directories of your choice (free
  ports, ``pg_basebackup`` standbys, the ``pgserver`` system user when run as root); the
  replica tests' servers.
* :mod:`.cluster`: a local Citus coordinator + workers built from the vendored source
  (``dealhunter-vectors cluster start``), for development and the distributed tests.

Read replicas and the distributed layout themselves are the library's (``create_pool(...,
replicas=[...])``, ``apply_schema(pool, distributed=True)``; docs/scaling.md).
"""

from __future__ import annotations

from ..db.embedded import EmbeddedServer, start_embedded, stop_embedded
from .cluster import LocalCluster, build_citus, start_cluster, stop_cluster

__all__ = [
    "EmbeddedServer",
    "LocalCluster",
    "build_citus",
    "start_cluster",
    "start_embedded",
    "stop_cluster",
    "stop_embedded",
]
