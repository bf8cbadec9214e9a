"""``dealhunter-vectors schema validate``: the norm checks of migration 008 (issue 19, point 1).

Exit 3 with one ``problem:`` line per table naming the out-of-range rows while they exist
(the check stays NOT VALID), exit 0 once they are fixed (the check is validated).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from support import plant_rows_before_norm_checks

import dealhunter_vectors as dv
from dealhunter_vectors.db.codecs import Vector
from dealhunter_vectors.testing import seed_owners


def _validate(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors", "schema", "validate", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_schema_validate_lists_the_rows_then_validates(dhv_database_url: str) -> None:
    async with dv.open_pool(dhv_database_url, min_size=1, max_size=2) as pool:
        await seed_owners(pool, pre_qualification_ids=["v-pq"])
        await plant_rows_before_norm_checks(
            pool,
            ("INSERT INTO raw_chunks (id, pre_qualification_id, chunk_index, content, token_count, embedding)"
             " VALUES ('v-raw-bad', 'v-pq', 0, 'r', 1, $1)", Vector(np.full(3072, 1e-30, np.float32))),
        )  # fmt: skip
        blocked = _validate(dhv_database_url)
        assert blocked.returncode == 3 and "Traceback" not in blocked.stderr, blocked.stderr
        [line] = [x for x in blocked.stderr.splitlines() if x.startswith("problem:")]
        assert "raw_chunks.embedding" in line and "v-raw-bad" in line
        await pool.execute("DELETE FROM raw_chunks WHERE id = 'v-raw-bad'")
        done = _validate(dhv_database_url)
        assert done.returncode == 0 and "validated" in done.stdout, (done.stdout, done.stderr)
        assert await pool.fetchval("SELECT bool_and(convalidated) FROM pg_constraint WHERE conname LIKE '%_norm_range'")
