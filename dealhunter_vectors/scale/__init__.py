"""Beyond one machine (issue 12).

Two halves, each usable on its own:

* **Read replicas** (:mod:`dealhunter_vectors.scale.replicas`): ``create_pool(primary_url,
  replicas=[...])`` returns a pool whose searches go to a healthy streaming standby
  (in recovery, lag within the bound) while writes, ``apply_schema`` and the loader stay on
  the primary; see ``docs/scaling.md``, "Read replicas".
* **Citus** (:mod:`dealhunter_vectors.scale.citus`, :mod:`dealhunter_vectors.scale.cluster`):
  the distributed schema on a Citus coordinator (``apply_schema(pool, distributed=True)``)
  and a local coordinator + workers cluster for development and tests.

:mod:`dealhunter_vectors.scale.local` runs the embedded PostgreSQL 16 binaries on data
directories of your choice (free ports, ``pg_basebackup`` standbys, the ``pgserver``
system user when run as root); both halves' test clusters are built on it.
"""
